//! `flocker proxy`: the Docker Engine API in front of the inventory's
//! servers (SPEC section 6; the endpoint table is in docs/PROXY.md).
//!
//! A call comes in on a listener ([`listen`]), is classified
//! ([`endpoint`]) and then:
//! - answered here: `/_ping`, `/version`, `/info` ([`combine`]);
//! - decided: `POST /containers/create` ([`create`]; reading the body and
//!   the rewritten request, pure, in [`create_request`]): the image's config
//!   from a server that has it, [`App::place`], the rewritten body sent to
//!   the chosen server;
//! - routed to the server that holds the container or exec instance
//!   ([`locate`], [`forward`]), upgrades spliced both ways ([`splice`]),
//!   streams passed on as they come;
//! - combined over every server: lists and events ([`combine`]);
//! - refused: 501 "... is not supported by flocker proxy".
//!
//! Beside the calls, [`health`] pings every server and decides on the ones
//! that stopped answering as `down` ([`down`]), and [`follow`] watches each
//! server's events so routes follow containers the daemon removed.

pub mod backend;
pub mod combine;
pub mod create;
pub mod create_request;
pub mod dial_tls;
pub mod down;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod follow;
pub mod forward;
pub mod health;
pub mod listen;
pub mod locate;
pub mod metrics;
pub mod pull;
pub mod splice;

use std::sync::Arc;
use std::time::Duration;

use flocker_core::Cluster;

pub use backend::Dial;
pub use error::ProxyError;
pub use listen::{run, Listen, ProxyConfig};

use crate::app::App;
use crate::store::Store;

/// Sends the same body-less call to each of `backends` at once; the
/// answers come back in their order.
pub async fn call_each(
    backends: &[Backend],
    method: hyper::Method,
    path: &str,
    timeout: Duration,
    cap: usize,
) -> Vec<Result<(hyper::StatusCode, bytes::Bytes), ProxyError>> {
    futures_util::future::join_all(
        backends
            .iter()
            .map(|b| backend::call(&b.dial, method.clone(), path, None, timeout, cap)),
    )
    .await
}

/// A server of the inventory as the proxy dials it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub hostname: String,
    /// Where containers on other servers reach its published ports.
    pub address: String,
    pub dial: Dial,
}

/// Everything a call needs; shared by every connection.
pub struct Proxy {
    pub app: Arc<App>,
    pub health: health::Health,
    pub locator: locate::Locator,
    pub pulls: pull::PendingPulls,
    pub watchers: follow::Watchers,
    pub metrics: metrics::ProxyMetrics,
    pub dial_tls: dial_tls::DialTls,
    /// Decisions running at once (`--max-decisions`).
    pub decisions: crate::net::Gate,
    pub config: ProxyConfig,
}

impl Proxy {
    /// The store's cluster, as an error the client understands when the
    /// store is gone.
    pub async fn cluster(&self) -> Result<Arc<Cluster>, ProxyError> {
        self.app
            .store
            .cluster()
            .await
            .map_err(|e| ProxyError::Place(e.into()))
    }

    /// Every server of the inventory whose `docker` URL the proxy can dial;
    /// a record it cannot is logged once per call and skipped.
    pub async fn backends(&self) -> Result<Vec<Backend>, ProxyError> {
        let cluster = self.cluster().await?;
        Ok(cluster
            .servers()
            .filter_map(
                |s| match Dial::parse(&s.docker, &s.hostname, &self.dial_tls) {
                    Ok(dial) => Some(Backend {
                        hostname: s.hostname.clone(),
                        address: s.address.clone(),
                        dial,
                    }),
                    Err(e) => {
                        eprintln!("flocker proxy: server {}: {e}", s.hostname);
                        None
                    }
                },
            )
            .collect())
    }

    /// The servers that answer their pings (all of them until the first
    /// round of pings has run).
    pub async fn up_backends(&self) -> Result<Vec<Backend>, ProxyError> {
        Ok(self
            .backends()
            .await?
            .into_iter()
            .filter(|b| self.health.is_up(&b.hostname))
            .collect())
    }

    /// The server named `hostname`.
    pub async fn backend(&self, hostname: &str) -> Result<Backend, ProxyError> {
        self.backends()
            .await?
            .into_iter()
            .find(|b| b.hostname == hostname)
            .ok_or_else(|| ProxyError::UnknownServer(hostname.to_string()))
    }

    /// The timeout for the proxy's own small calls to a daemon.
    pub fn call_timeout(&self) -> Duration {
        self.config.backend_timeout
    }
}
