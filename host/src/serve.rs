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
use sha2::{Digest, Sha256};

use crate::cli::{open_or_create_store, EngineKind, Failure, StoreArg, EXIT_OK};
use crate::metrics::Metrics;
use crate::place::{self, Decided, Engine, Native, PlaceError};
use crate::policy::PolicyHost;
use crate::store::any::AnyStore;
use crate::store::file::Placer;
use crate::store::{PolicyRecord, Store};
use crate::wasm_engine::{self, Wasm};

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

/// Most places decided and saved in one embedded-store transaction.
const PLACER_BATCH: usize = 256;

struct App {
    store: AnyStore,
    store_url: String,
    engine: Arc<dyn Engine>,
    policy: Option<Arc<PolicyHost>>,
    metrics: Metrics,
    retries: u32,
    /// On the embedded store, places go through a batching placer: the
    /// places that arrive while one batch is written are decided in order
    /// and saved together, one transaction and one fsync per batch, never
    /// conflicting with each other. On etcd, places run concurrently and
    /// conflicts are retried.
    placer: Option<Placer>,
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
    let placed = match &app.placer {
        Some(placer) => placer.place(request).await,
        None => place::place(&app.store, &app.engine, &request, app.retries).await,
    };
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

fn set_policy_metric(app: &App) {
    if let Some(host) = &app.policy {
        let info = host.info();
        app.metrics
            .set_policy(Some((info.digest, info.name, info.version)));
    }
}

/// Follows the store's active policy (and the watched file) and swaps.
async fn follow_policy(
    app: Arc<App>,
    host: Arc<PolicyHost>,
    file: Option<PathBuf>,
    every: Duration,
) {
    let mut failed_digest: Option<String> = None;
    let mut file_digest: Option<String> = None;
    // (modified time, length) of the watched file when last read: the file
    // is read and hashed only when one of them changes.
    let mut file_stamp = None;
    loop {
        tokio::time::sleep(every).await;
        if let Some(path) = &file {
            let stamp = std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().ok(), m.len()));
            let changed = stamp.is_some() && stamp != file_stamp;
            file_stamp = stamp;
            if let Some(bytes) = changed.then(|| std::fs::read(path).ok()).flatten() {
                let digest = hex(&Sha256::digest(&bytes));
                if file_digest.as_deref() != Some(digest.as_str()) {
                    file_digest = Some(digest.clone());
                    if digest != host.info().digest {
                        let h = host.clone();
                        let b = bytes.clone();
                        let checked = tokio::task::spawn_blocking(move || {
                            crate::policy::validate(h.runtime(), &b)
                        })
                        .await;
                        match checked {
                            Ok(Ok(info)) => {
                                let record = PolicyRecord {
                                    digest: info.digest.clone(),
                                    pushed_at: now(),
                                    info: info.raw.clone(),
                                };
                                if let Err(e) = app.store.policy_push(&bytes, record).await {
                                    eprintln!("flocker serve: cannot push {}: {e}", path.display());
                                }
                            }
                            Ok(Err(e)) => {
                                app.metrics.swapped(false);
                                eprintln!(
                                    "flocker serve: {} refused, keeping {}: {e}",
                                    path.display(),
                                    host.info().digest
                                );
                            }
                            Err(e) => eprintln!("flocker serve: validation task failed: {e}"),
                        }
                    }
                }
            }
        }
        match app.store.policy_active_digest().await {
            Ok(Some(d))
                if d != host.info().digest && failed_digest.as_deref() != Some(d.as_str()) => {}
            Ok(_) => continue,
            Err(e) => {
                eprintln!("flocker serve: cannot read the active policy: {e}");
                continue;
            }
        }
        let (digest, bytes) = match app.store.policy_active().await {
            Ok(Some(active)) => active,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("flocker serve: cannot read the active policy: {e}");
                continue;
            }
        };
        let h = host.clone();
        let swapped = tokio::task::spawn_blocking(move || h.swap(&bytes)).await;
        match swapped {
            Ok(Ok(s)) => {
                app.metrics.swapped(true);
                failed_digest = None;
                set_policy_metric(&app);
                eprintln!(
                    "flocker serve: policy {} swapped in (was {})",
                    s.current.digest, s.previous.digest
                );
            }
            Ok(Err(e)) => {
                app.metrics.swapped(false);
                failed_digest = Some(digest.clone());
                eprintln!(
                    "flocker serve: policy {digest} refused, keeping {}: {e}",
                    host.info().digest
                );
            }
            Err(e) => eprintln!("flocker serve: swap task failed: {e}"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub async fn run(args: ServeArgs) -> Result<i32, Failure> {
    let store = open_or_create_store(&args.store).await?;
    let (engine, policy): (Arc<dyn Engine>, Option<Arc<PolicyHost>>) = match args.engine {
        EngineKind::Native => (Arc::new(Native), None),
        EngineKind::Wasm => {
            let host = match wasm_engine::policy_host_for(&store).await {
                Ok(h) => h,
                Err(e) => {
                    // A stored module that no longer validates must not stop
                    // the service: serve the embedded default and say so.
                    eprintln!("flocker serve: {e}; serving the embedded default module");
                    wasm_engine::policy_host(None).map_err(Failure::failed)?
                }
            };
            let host = Arc::new(host);
            host.follow(store.changes());
            (Arc::new(Wasm { host: host.clone() }), Some(host))
        }
    };
    if args.policy_file.is_some() && policy.is_none() {
        return Err(Failure::usage("--policy-file needs --engine wasm"));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::failed(e.to_string()))?;
    let placer = match &store {
        AnyStore::File(fs) => Some(
            fs.placer(engine.clone(), args.retries, PLACER_BATCH)
                .map_err(|e| Failure::failed(e.to_string()))?,
        ),
        AnyStore::Etcd(_) => None,
    };
    let app = Arc::new(App {
        placer,
        store,
        store_url: args.store.store.clone(),
        engine,
        policy: policy.clone(),
        metrics: Metrics::default(),
        retries: args.retries,
    });
    set_policy_metric(&app);
    if let Some(host) = policy {
        tokio::spawn(follow_policy(
            app.clone(),
            host,
            args.policy_file.clone(),
            Duration::from_millis(args.poll_ms.max(10)),
        ));
    }
    println!("listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| Failure::failed(format!("serve: {e}")))?;
    Ok(EXIT_OK)
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
