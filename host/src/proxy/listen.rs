//! Starting `flocker proxy`: its listeners (`tcp://HOST:PORT`,
//! `unix:///PATH`), the health loop, the metrics listener, and a graceful
//! stop on SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{any, get};
use axum::Router;

use super::down::{DownAware, DownSet};
use super::error::BadAddress;
use super::{follow, forward, health, locate, metrics, pull, Proxy};
use crate::app::{shutdown_signal, App};
use crate::engine::EngineChoice;
use crate::net::server::STOP_GRACE;
use crate::net::{ListenError, Listener, Server, Transport};
use crate::store::any::AnyStore;

/// One `--listen` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

impl Listen {
    /// `tcp://HOST:PORT` or `unix:///PATH`.
    pub fn parse(s: &str) -> Result<Listen, BadAddress> {
        let bad = |expected| BadAddress {
            url: s.to_string(),
            expected,
        };
        if let Some(hp) = s.strip_prefix("tcp://") {
            if hp.is_empty() || hp.contains('/') {
                return Err(bad("tcp://HOST:PORT"));
            }
            return Ok(Listen::Tcp(hp.to_string()));
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("unix:///ABSOLUTE/PATH"));
            }
            return Ok(Listen::Unix(path.into()));
        }
        Err(bad("tcp://HOST:PORT or unix:///PATH"))
    }
}

/// The proxy's settings (the CLI's flags, without clap).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub engine: EngineChoice,
    pub retries: u32,
    pub listen: Vec<Listen>,
    pub metrics_listen: Option<String>,
    /// How long a server may take to answer a call that does not stream.
    pub backend_timeout: Duration,
    /// How often every server is checked.
    pub health_every: Duration,
    /// TLS and the transport limits of every listener (metrics included).
    pub transport: Transport,
    /// Client certificates for daemons reached over TLS (see
    /// [`super::dial_tls::DialTls`]).
    pub server_certs: Option<PathBuf>,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
}

/// The proxy's routes: every path goes to the one handler.
pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .fallback(any(forward::handle))
        .with_state(proxy)
}

/// Builds the proxy over `store`; the health loop is not started.
pub async fn build(store: AnyStore, config: ProxyConfig) -> Result<Arc<Proxy>, StartError> {
    let down = Arc::new(DownSet::default());
    let d = down.clone();
    let app = App::open(
        store,
        config.engine,
        config.retries,
        move |engine, policy| Arc::new(DownAware::new(engine, policy, d)),
    )
    .await?;
    Ok(Arc::new(Proxy {
        app: Arc::new(app),
        health: health::Health::new(down),
        locator: locate::Locator::default(),
        pulls: pull::PendingPulls::default(),
        watchers: follow::Watchers::default(),
        metrics: metrics::ProxyMetrics::default(),
        dial_tls: super::dial_tls::DialTls::new(config.server_certs.clone()),
        decisions: crate::net::Gate::new(config.transport.limits.max_decisions),
        config,
    }))
}

/// Runs `flocker proxy` until SIGTERM: binds every listener (printing
/// `listening on URL` for each), checks the servers once, then serves.
pub async fn run(store: AnyStore, config: ProxyConfig) -> Result<(), StartError> {
    let listen = if config.listen.is_empty() {
        vec![Listen::Tcp("127.0.0.1:2375".into())]
    } else {
        config.listen.clone()
    };
    // Every address is bound and checked before the store is touched, so a
    // refused flag fails fast and nothing is half started.
    let mut servers = Vec::new();
    for l in &listen {
        let listener = match l {
            Listen::Tcp(hp) => Listener::tcp(hp).await?,
            Listen::Unix(path) => {
                remove_stale_socket(path);
                Listener::unix(path)?
            }
        };
        servers.push(Server::new(listener, &config.transport)?);
    }
    let metrics_server = match &config.metrics_listen {
        Some(addr) => Some(Server::new(Listener::tcp(addr).await?, &config.transport)?),
        None => None,
    };
    let every = config.health_every;
    let proxy = build(store, config).await?;
    // One round before serving, so the first ping has an API version.
    let _ = health::check_all(&proxy).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut lines = Vec::new();
    for server in servers {
        lines.push(format!("listening on {}", server.url()));
        let app = router(proxy.clone());
        tasks.push(tokio::spawn(server.serve(app, stop_rx.clone())));
    }
    if let Some(server) = metrics_server {
        let scheme = if server.tls() { "https" } else { "http" };
        if let Some(bound) = server.local_addr() {
            lines.push(format!("metrics on {scheme}://{bound}/metrics"));
        }
        tasks.push(tokio::spawn(
            server.serve(metrics_router(proxy.clone()), stop_rx.clone()),
        ));
    }
    {
        let mut out = std::io::stdout().lock();
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
    health::spawn(proxy.clone(), every);
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    // Calls in flight finish; streams that would not end on their own are
    // cut after a grace.
    let all = futures_util::future::join_all(tasks);
    let _ = tokio::time::timeout(STOP_GRACE, all).await;
    for l in &listen {
        if let Listen::Unix(path) = l {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// `GET /metrics`: the proxy's counters and the decisions'.
fn metrics_router(proxy: Arc<Proxy>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let p = proxy.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    format!("{}{}", p.metrics.render(), p.app.metrics.render()),
                )
            }
        }),
    )
}

/// A socket file left by a proxy that did not stop cleanly would make the
/// bind fail; anything that is not a socket is left alone (the bind then
/// says why).
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
        && std::os::unix::net::UnixStream::connect(path).is_err()
    {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_urls() {
        assert_eq!(
            Listen::parse("tcp://127.0.0.1:0").unwrap(),
            Listen::Tcp("127.0.0.1:0".into())
        );
        assert_eq!(
            Listen::parse("unix:///tmp/d.sock").unwrap(),
            Listen::Unix("/tmp/d.sock".into())
        );
        assert!(Listen::parse("127.0.0.1:2375").is_err());
        assert!(Listen::parse("unix://rel").is_err());
    }
}
