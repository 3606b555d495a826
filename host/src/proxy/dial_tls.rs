//! Which daemons are dialed over TLS, and with which certificates.
//!
//! A server's `docker` URL asks for TLS with `https://HOST:PORT`, or with
//! `tcp://HOST:2376` (the port Docker reserves for TLS). The certificates
//! are a directory in `DOCKER_CERT_PATH`'s layout (`ca.pem`, and
//! `cert.pem`/`key.pem` when the daemon checks clients), given by
//! `--server-certs DIR`: `DIR/<hostname>/` for one server when it exists,
//! else `DIR` itself. A per-server directory also turns TLS on for a
//! `tcp://` URL on any port. The daemon's certificate must name the URL's
//! host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio_rustls::TlsConnector;

use crate::net::tls;

/// The `--server-certs` directory and the connectors read from it.
#[derive(Default)]
pub struct DialTls {
    dir: Option<PathBuf>,
    /// Read once per directory; a directory that failed is read again on
    /// the next dial, so fixing its files needs no restart.
    loaded: Mutex<HashMap<PathBuf, TlsConnector>>,
}

impl std::fmt::Debug for DialTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialTls").field("dir", &self.dir).finish()
    }
}

impl DialTls {
    pub fn new(dir: Option<PathBuf>) -> DialTls {
        DialTls {
            dir,
            loaded: Mutex::default(),
        }
    }

    /// `DIR/<hostname>` when it is a directory. A hostname that could
    /// leave `DIR` (a `/`, or a leading `.`) has none.
    fn server_dir(&self, hostname: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        if hostname.is_empty() || hostname.contains('/') || hostname.starts_with('.') {
            return None;
        }
        let d = dir.join(hostname);
        d.is_dir().then_some(d)
    }

    /// Whether `hostname` has certificates of its own (TLS on any port).
    pub fn has_own(&self, hostname: &str) -> bool {
        self.server_dir(hostname).is_some()
    }

    /// The connector for `hostname`, or why there is none (the dial then
    /// fails with it, and the health check reports it).
    pub fn connector(&self, hostname: &str) -> Result<TlsConnector, String> {
        let dir = match (self.server_dir(hostname), &self.dir) {
            (Some(d), _) => d,
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Err("its docker URL needs TLS and no --server-certs DIR was given".into())
            }
        };
        if let Some(c) = self.cached(&dir) {
            return Ok(c);
        }
        let c = tls::connector(&dir).map_err(|e| e.to_string())?;
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(dir, c.clone());
        }
        Ok(c)
    }

    fn cached(&self, dir: &Path) -> Option<TlsConnector> {
        self.loaded.lock().ok()?.get(dir).cloned()
    }
}
