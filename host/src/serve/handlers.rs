//! The handlers: each answers a decision, a [`HostError`], or a status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::{json_response, HostError};
use super::timing::Outcome;
use crate::app::App;
use crate::engine::{decide_blocking, Decided, EngineError};
use crate::place::{PlaceError, Repeat};
use crate::store::Store;

fn read_body(body: &[u8]) -> Result<Value, HostError> {
    flocker_core::parse(body).map_err(HostError::InvalidBody)
}

/// 200 for a decision, 422 for an `{"error": ...}` decision.
fn decided_response(d: &Decided) -> Response {
    let (status, outcome) = match &d.error_kind {
        Some(kind) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Outcome::Error(kind.clone()),
        ),
        None => (StatusCode::OK, Outcome::Decision),
    };
    let mut resp = json_response(status, d.output.to_string());
    resp.extensions_mut().insert(outcome);
    resp
}

/// `?retry=true` (or `1`): this place may repeat one whose answer was lost
/// ([`Repeat::Replay`]); `false`, `0` or no `retry` leave the SPEC's
/// `name_in_use`. Any other value is a 400: a client that meant a retry
/// and misspelt it would otherwise get `name_in_use` for its own place.
fn repeat_of(uri: &Uri) -> Result<Repeat, HostError> {
    let mut asked = false;
    for pair in uri.query().unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "retry" {
            continue;
        }
        asked = match value {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(HostError::InvalidQuery(format!(
                    "retry: expected true, 1, false or 0, got {other:?}"
                )))
            }
        };
    }
    Ok(Repeat::asked(asked))
}

pub(super) async fn v1_place(
    State(app): State<Arc<App>>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, HostError> {
    let repeat = repeat_of(&uri)?;
    let request = read_body(&body)?;
    match app.place_as(request, repeat).await {
        Ok(p) => {
            app.metrics.placed(p.saved, p.retries);
            let mut resp = decided_response(&p.decided);
            let headers = resp.headers_mut();
            headers.insert("x-flocker-retries", p.retries.into());
            if p.replayed {
                headers.insert("x-flocker-replayed", HeaderValue::from_static("true"));
            }
            Ok(resp)
        }
        Err(e) => {
            if let PlaceError::Contention { retries, .. } = &e {
                app.metrics.placed(false, *retries);
            }
            Err(e.into())
        }
    }
}

pub(super) async fn v1_decide(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Response, HostError> {
    let request = read_body(&body)?;
    let decided = if request.get("inventory").is_some() {
        // A whole SPEC input costs what it holds: decided on the blocking
        // pool, like every decision (`engine::decide_blocking`).
        let policy = app.policy.clone();
        tokio::task::spawn_blocking(move || match policy {
            Some(host) => host
                .decide(&body)
                .map_err(EngineError::from)
                .and_then(|out| Decided::from_output(&out)),
            None => Ok(Decided::from_result(&flocker_core::decide(&request))),
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))
        .and_then(|r| r)
        .map_err(PlaceError::from)?
    } else {
        let cluster = app.store.cluster().await.map_err(PlaceError::Store)?;
        decide_blocking(&app.engine, &cluster, &request)
            .await
            .map_err(PlaceError::from)?
    };
    Ok(decided_response(&decided))
}

pub(super) async fn healthz(State(app): State<Arc<App>>) -> Response {
    if app.placer_stopped() {
        eprintln!("flocker serve: /healthz: the placer thread is gone; no place can be saved");
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "store": app.store.kind(), "placer": "stopped"})
                .to_string(),
        );
    }
    match app.store.cluster().await {
        Ok(c) => json_response(
            StatusCode::OK,
            json!({
                "status": "ok",
                "store": app.store.kind(),
                "engine": app.engine.describe(),
                "servers": c.servers().count(),
                "routes": c.routes().filter(|r| r.is_live()).count(),
            })
            .to_string(),
        ),
        Err(e) => {
            // The cause names paths or endpoints: the log has it, the
            // answer only says which kind of store is down.
            eprintln!("flocker serve: /healthz: {e}");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable", "store": app.store.kind()}).to_string(),
            )
        }
    }
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
