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
use crate::store::any::AnyStore;

/// How long open streams (a `logs -f`, an `events`) may hold a stop up.
const STOP_GRACE: Duration = Duration::from_secs(5);

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
    pub store_url: String,
    pub engine: EngineChoice,
    pub retries: u32,
    pub listen: Vec<Listen>,
    pub metrics_listen: Option<String>,
    /// How long a server may take to answer a call that does not stream.
    pub backend_timeout: Duration,
    /// How often every server is checked.
    pub health_every: Duration,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error("serving: {0}")]
    Serve(std::io::Error),
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
        config.store_url.clone(),
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
    let every = config.health_every;
    let metrics_addr = config.metrics_listen.clone();
    let proxy = build(store, config).await?;
    // One round before serving, so the first ping has an API version.
    let _ = health::check_all(&proxy).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut lines = Vec::new();
    for l in &listen {
        let app = router(proxy.clone());
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        match l {
            Listen::Tcp(hp) => {
                let listener =
                    tokio::net::TcpListener::bind(hp.as_str())
                        .await
                        .map_err(|source| StartError::Listen {
                            what: format!("tcp://{hp}"),
                            source,
                        })?;
                let addr = listener.local_addr().map_err(StartError::Serve)?;
                lines.push(format!("listening on tcp://{addr}"));
                tasks.push(tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                }));
            }
            Listen::Unix(path) => {
                remove_stale_socket(path);
                let listener =
                    tokio::net::UnixListener::bind(path).map_err(|source| StartError::Listen {
                        what: format!("unix://{}", path.display()),
                        source,
                    })?;
                lines.push(format!("listening on unix://{}", path.display()));
                tasks.push(tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .await
                }));
            }
        }
    }
    if let Some(addr) = metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr.as_str())
            .await
            .map_err(|source| StartError::Listen {
                what: addr.clone(),
                source,
            })?;
        let bound = listener.local_addr().map_err(StartError::Serve)?;
        lines.push(format!("metrics on http://{bound}/metrics"));
        let p = proxy.clone();
        let metrics = Router::new().route(
            "/metrics",
            get(move || {
                let p = p.clone();
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
        );
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, metrics)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }));
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
