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
//! The first line on stdout is `listening on http://ADDR` (`https://` with
//! TLS) with the bound address (so `--listen 127.0.0.1:0` picks a free
//! port). TLS, the transport limits and the refusal to listen beyond
//! loopback without `--tlsverify` are [`crate::net`]'s; the decision
//! endpoints' body cap and decision slots are the `guard` middleware's.
//!
//! The parts: [`router`] builds the routes over an [`App`] (testable
//! in-process), `handlers` answers them, `error` renders host failures,
//! `guard` reads bodies and takes decision slots, and one `timing`
//! middleware counts and times every decision endpoint.

use std::sync::Arc;

use crate::app::{shutdown_signal, App, AppError};
use crate::engine::EngineChoice;
use crate::net::{ListenError, Listener, Server, Transport};
use crate::rollout::Follow;
use crate::store::any::AnyStore;

mod error;
mod guard;
mod handlers;
mod router;
mod timing;

#[cfg(test)]
mod tests;

pub use router::router;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `HOST:PORT` to listen on; port 0 picks a free one.
    pub listen: String,
    pub engine: EngineChoice,
    /// Re-decisions allowed after a save loses to another writer.
    pub retries: u32,
    /// The policy follower's file and period.
    pub follow: Follow,
    /// TLS and the transport limits.
    pub transport: Transport,
}

/// Why the service did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--policy-file` with the native engine.
    #[error("--policy-file needs --engine wasm")]
    PolicyFileNeedsWasm,
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Serves until SIGTERM or Ctrl-C; prints `listening on http(s)://ADDR` first.
pub async fn run(store: AnyStore, config: ServeConfig) -> Result<(), ServeError> {
    if config.follow.file.is_some() && config.engine != EngineChoice::Wasm {
        return Err(ServeError::PolicyFileNeedsWasm);
    }
    let listener = Listener::tcp(&config.listen).await?;
    let server = Server::new(listener, &config.transport)?;
    let app = App::open(store, config.engine, config.retries, |engine, _| engine).await?;
    let app = Arc::new(app);
    app.spawn_policy_follower(config.follow.clone());
    let scheme = if server.tls() { "https" } else { "http" };
    match server.local_addr() {
        Some(addr) => println!("listening on {scheme}://{addr}"),
        None => println!("listening on {}", server.url()),
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    server
        .serve(router(app, &config.transport.limits), stop_rx)
        .await;
    Ok(())
}
