//! `flocker serve`: an HTTP decision service for proxies that do not embed
//! WASM.
//!
//! - `POST /v1/place`: body `{name, container, image}`; decides against the
//!   store, saves the route (re-deciding on conflict) and answers the
//!   decision. 200 for a decision, 422 for an `{"error": ...}` decision.
//! - `POST /v1/decide`: decides only. A body with `inventory` is a full
//!   decision input (SPEC section 2) decided on its own; otherwise it is
//!   `{name, container, image}` decided against the store's state. Same
//!   statuses.
//! - `GET /healthz`: 200 `{"status": "ok", "store", "policy", "servers", "routes"}`
//!   when the store answers, else 503.
//! - `GET /metrics`: Prometheus text (see [`crate::metrics`]).
//!
//! Host failures answer `{"error": {"kind", "message"}}` with the kinds
//! `invalid_body` (400: not JSON), `store_unavailable` (503),
//! `save_conflict` (409: every retry lost) and `policy_failed` (500).
//!
//! With `--engine wasm` (the default) decisions run on the store's active
//! policy module (the embedded default when none was pushed). Every
//! `--poll-ms` the store's active digest is compared with the running one,
//! and a change is validated and swapped in; in-flight decisions finish on
//! the old module, and a module that fails validation leaves the old one
//! serving. `--policy-file FILE.wasm` is watched the same way: when its
//! content changes it is validated, pushed to the store (history kept) and
//! swapped in.
//!
//! The first line on stdout is `listening on http://ADDR` with the bound
//! address (so `--listen 127.0.0.1:0` picks a free port).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use serde_json::json;

use crate::app::{shutdown_signal, App, EngineChoice};
use crate::cli::{open_or_create_store, EngineKind, Failure, StoreArg, EXIT_OK};
use crate::place::{self, Decided, PlaceError};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8640")]
    pub listen: String,
    /// Which engine decides.
    #[arg(long, value_enum, default_value = "wasm")]
    pub engine: EngineKind,
    /// A policy module file to watch: pushed (after validation) and swapped
    /// in whenever its content changes.
    #[arg(long, value_name = "FILE.wasm")]
    pub policy_file: Option<PathBuf>,
    /// How often to look for a new active policy, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Re-decisions allowed after a save loses to another writer.
    #[arg(long, default_value_t = place::DEFAULT_MAX_RETRIES)]
    pub retries: u32,
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn host_error(kind: &str, message: &str) -> String {
    json!({"error": {"kind": kind, "message": message}}).to_string()
}

fn place_status(e: &PlaceError) -> StatusCode {
    match e {
        PlaceError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        PlaceError::Contention { .. } => StatusCode::CONFLICT,
        PlaceError::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn decided_response(d: &Decided) -> Response {
    let status = if d.is_error() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    json_response(status, d.output.to_string())
}

async fn v1_place(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let start = Instant::now();
    let request = match flocker_core::parse(&body) {
        Ok(v) => v,
        Err(e) => {
            app.metrics
                .observe("place", Some("invalid_body"), start.elapsed());
            return json_response(
                StatusCode::BAD_REQUEST,
                host_error("invalid_body", &e.to_string()),
            );
        }
    };
    let placed = app.place(request).await;
    match placed {
        Ok(p) => {
            app.metrics.placed(p.saved, p.retries);
            app.metrics
                .observe("place", p.decided.error_kind.as_deref(), start.elapsed());
            let mut resp = decided_response(&p.decided);
            if let Ok(v) = p.retries.to_string().parse() {
                resp.headers_mut().insert("x-flocker-retries", v);
            }
            resp
        }
        Err(e) => {
            if let PlaceError::Contention { retries, .. } = &e {
                app.metrics.placed(false, *retries);
            }
            app.metrics
                .observe("place", Some(e.kind()), start.elapsed());
            json_response(place_status(&e), host_error(e.kind(), &e.to_string()))
        }
    }
}

async fn v1_decide(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let start = Instant::now();
    let request = match flocker_core::parse(&body) {
        Ok(v) => v,
        Err(e) => {
            app.metrics
                .observe("decide", Some("invalid_body"), start.elapsed());
            return json_response(
                StatusCode::BAD_REQUEST,
                host_error("invalid_body", &e.to_string()),
            );
        }
    };
    let result = if request.get("inventory").is_some() {
        match &app.policy {
            Some(host) => host
                .decide(&body)
                .map_err(|e| PlaceError::Engine(e.to_string()))
                .and_then(|out| Decided::from_output(&out)),
            None => Ok(Decided::from_result(&flocker_core::decide(&request))),
        }
    } else {
        match app.store.cluster().await {
            Ok(cluster) => app.engine.decide(&cluster, &request),
            Err(e) => Err(PlaceError::Store(e)),
        }
    };
    match result {
        Ok(d) => {
            app.metrics
                .observe("decide", d.error_kind.as_deref(), start.elapsed());
            decided_response(&d)
        }
        Err(e) => {
            app.metrics
                .observe("decide", Some(e.kind()), start.elapsed());
            json_response(place_status(&e), host_error(e.kind(), &e.to_string()))
        }
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.store.cluster().await {
        Ok(c) => json_response(
            StatusCode::OK,
            json!({
                "status": "ok",
                "store": app.store_url,
                "engine": app.engine.describe(),
                "servers": c.servers().count(),
                "routes": c.routes().filter(|r| r.is_live()).count(),
            })
            .to_string(),
        ),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "store": app.store_url, "error": e.to_string()})
                .to_string(),
        ),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// The service's routes over a store and an engine; `policy` is the
/// hot-swappable module behind a wasm engine.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/place", post(v1_place))
        .route("/v1/decide", post(v1_decide))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // Full decision inputs carry the whole cluster: accept what the
        // engine accepts rather than axum's 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::max(
            flocker_core::MAX_INPUT_BYTES,
        ))
        .with_state(app)
}

pub async fn run(args: ServeArgs) -> Result<i32, Failure> {
    let store = open_or_create_store(&args.store).await?;
    let choice = match args.engine {
        EngineKind::Native => EngineChoice::Native,
        EngineKind::Wasm => EngineChoice::Wasm,
    };
    if args.policy_file.is_some() && choice != EngineChoice::Wasm {
        return Err(Failure::usage("--policy-file needs --engine wasm"));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::failed(e.to_string()))?;
    let app = App::open(
        store,
        args.store.store.clone(),
        choice,
        args.retries,
        |engine, _| engine,
    )
    .await
    .map_err(|e| Failure::failed(e.to_string()))?;
    let app = Arc::new(app);
    app.spawn_policy_follower(
        args.policy_file.clone(),
        Duration::from_millis(args.poll_ms.max(10)),
    );
    println!("listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Failure::failed(format!("serve: {e}")))?;
    Ok(EXIT_OK)
}
