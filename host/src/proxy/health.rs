//! Which servers answer: every server's daemon is pinged (`GET /_ping`)
//! every `--health-ms`. One that refuses the connection, or does not answer
//! twice in a row, is decided on as `down` (SPEC section 5) until it answers
//! again; its stored record is not changed.
//!
//! The API version the proxy advertises (the highest every up server
//! supports) comes from each server's `GET /version`, asked when a server
//! is first seen, when it comes back, and every [`VERSION_EVERY`]. It is
//! not the liveness check: podman 4.3.1 answers `/version` by running
//! `dpkg` for its components (about 0.7 CPU-s, 1 to 6 s on a busy
//! machine), while `/_ping` answers in about a millisecond.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::down::DownSet;
use super::error::ProxyError;
use super::Proxy;

/// How long one ping may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a `/version` may take (it does not decide up or down).
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

/// How often an up server's `/version` is asked again.
pub const VERSION_EVERY: Duration = Duration::from_secs(300);

/// Failed checks in a row (timeouts) before a server is down; a refused
/// connection is down at once.
const FAILURES_TO_DOWN: u32 = 2;

/// The API version advertised before any server answered.
const FALLBACK_API: &str = "1.41";

#[derive(Debug, Clone, Default)]
struct State {
    up: bool,
    failures: u32,
    /// The last `/version` answer, and when it came.
    version: Option<Value>,
    version_at: Option<Instant>,
}

/// What the checks found; shared with the engine's down overlay.
pub struct Health {
    servers: RwLock<BTreeMap<String, State>>,
    down: Arc<DownSet>,
}

impl Health {
    pub fn new(down: Arc<DownSet>) -> Health {
        Health {
            servers: RwLock::new(BTreeMap::new()),
            down,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, State>> {
        self.servers.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `hostname` answers (a server not checked yet counts as up).
    pub fn is_up(&self, hostname: &str) -> bool {
        self.read().get(hostname).is_none_or(|s| s.up)
    }

    /// Every checked server's last `/version` answer.
    pub fn versions(&self) -> Vec<(String, Value)> {
        self.read()
            .iter()
            .filter(|(_, s)| s.up)
            .filter_map(|(h, s)| s.version.clone().map(|v| (h.clone(), v)))
            .collect()
    }

    /// The lowest `ApiVersion` of the up servers: every one of them speaks it.
    pub fn api_version(&self) -> String {
        self.versions()
            .iter()
            .filter_map(|(_, v)| {
                v.get("ApiVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .min_by_key(|v| version_key(v))
            .unwrap_or_else(|| FALLBACK_API.into())
    }

    /// The highest `MinAPIVersion` of the up servers.
    pub fn min_api_version(&self) -> String {
        self.versions()
            .iter()
            .filter_map(|(_, v)| {
                v.get("MinAPIVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .max_by_key(|v| version_key(v))
            .unwrap_or_else(|| "1.24".into())
    }

    /// Marks `hostname` down now (a call found its daemon gone), until a
    /// ping answers again.
    pub fn mark_down(&self, hostname: &str) {
        {
            let mut servers = self.servers.write().unwrap_or_else(|e| e.into_inner());
            let s = servers.entry(hostname.to_string()).or_default();
            if s.up {
                eprintln!("flocker proxy: server {hostname} is down");
            }
            s.up = false;
            s.failures = FAILURES_TO_DOWN;
            s.version_at = None;
        }
        self.down.set(self.down());
    }

    /// The servers decided on as down now.
    pub fn down(&self) -> BTreeSet<String> {
        self.read()
            .iter()
            .filter(|(_, s)| !s.up)
            .map(|(h, _)| h.clone())
            .collect()
    }
}

/// `1.41` -> (1, 41), for comparing versions as numbers.
fn version_key(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Pings every server at once and updates the down set; returns the
/// servers found up and those of them whose version is due.
pub async fn ping_all(p: &Proxy) -> Result<(Vec<super::Backend>, Vec<super::Backend>), ProxyError> {
    let backends = p.backends().await?;
    let answers = super::call_each(&backends, Method::GET, "/_ping", CHECK_TIMEOUT, 4096).await;
    let mut up = Vec::new();
    let mut need_version = Vec::new();
    {
        let mut servers = p.health.servers.write().unwrap_or_else(|e| e.into_inner());
        // Servers removed from the inventory are forgotten.
        servers.retain(|h, _| backends.iter().any(|b| &b.hostname == h));
        for (b, answer) in backends.iter().zip(answers) {
            let s = servers.entry(b.hostname.clone()).or_insert(State {
                up: true,
                ..State::default()
            });
            let was_up = s.up;
            let mut why = String::new();
            match answer {
                Ok((StatusCode::OK, _)) => {
                    s.up = true;
                    s.failures = 0;
                }
                other => {
                    why = match &other {
                        Ok((status, _)) => format!(": /_ping answered {status}"),
                        Err(e) => format!(": {e}"),
                    };
                    s.failures += 1;
                    let refused = matches!(other, Err(ProxyError::Unreachable(_)));
                    if refused || s.failures >= FAILURES_TO_DOWN {
                        s.up = false;
                    }
                }
            }
            if s.up != was_up {
                let state = if s.up { "up again" } else { "down" };
                eprintln!("flocker proxy: server {} is {state}{why}", b.hostname);
                s.version_at = None;
            }
            p.metrics.set_up(&b.hostname, s.up);
            if s.up {
                up.push(b.clone());
                if s.version_at.is_none_or(|t| t.elapsed() >= VERSION_EVERY) {
                    need_version.push(b.clone());
                }
            }
        }
    }
    p.health.down.set(p.health.down());
    Ok((up, need_version))
}

/// Asks `backends` for their `/version`. A server is marked as asked
/// first, so that overlapping rounds do not ask it twice; a failed ask is
/// tried again next round.
pub async fn refresh_versions(p: &Proxy, backends: &[super::Backend]) {
    {
        let mut servers = p.health.servers.write().unwrap_or_else(|e| e.into_inner());
        for b in backends {
            if let Some(s) = servers.get_mut(&b.hostname) {
                s.version_at = Some(Instant::now());
            }
        }
    }
    let versions =
        super::call_each(backends, Method::GET, "/version", VERSION_TIMEOUT, 1 << 20).await;
    let mut servers = p.health.servers.write().unwrap_or_else(|e| e.into_inner());
    for (b, answer) in backends.iter().zip(versions) {
        let Some(s) = servers.get_mut(&b.hostname) else {
            continue;
        };
        match answer {
            Ok((StatusCode::OK, body)) => s.version = serde_json::from_slice(&body).ok(),
            _ => s.version_at = None,
        }
    }
}

/// One round of pings and, for the servers that need it, of versions,
/// waited for (the proxy's first round, before it serves).
pub async fn check_all(p: &Proxy) -> Result<Vec<super::Backend>, ProxyError> {
    let (up, need) = ping_all(p).await?;
    refresh_versions(p, &need).await;
    Ok(up)
}

/// Pings every `every` (versions in the background), and keeps an events
/// watcher on each up server ([`super::follow`]). Runs until the process
/// ends.
pub fn spawn(p: Arc<Proxy>, every: Duration) {
    tokio::spawn(async move {
        loop {
            match ping_all(&p).await {
                Ok((up, need)) => {
                    super::follow::ensure(&p, &up);
                    if !need.is_empty() {
                        let p = p.clone();
                        tokio::spawn(async move { refresh_versions(&p, &need).await });
                    }
                }
                Err(e) => eprintln!("flocker proxy: health check: {e}"),
            }
            tokio::time::sleep(every).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version_key("1.41") < version_key("1.100"));
        assert!(version_key("1.9") < version_key("1.41"));
    }
}
