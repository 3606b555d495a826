//! [`App`]: what a long-running host (`flocker serve`, `flocker proxy`) is
//! built from: a store, the engine that decides (native, or the store's
//! active policy module, hot-swapped), the placer that saves decisions, and
//! the policy follower. Both services construct it with [`App::open`] and
//! place through [`App::place`], so choosing a placer by store kind and an
//! engine by name happens once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::place::{self, Engine, Native, PlaceError, Placed};
use crate::policy::PolicyHost;
use crate::store::any::AnyStore;
use crate::store::file::Placer;
use crate::store::{PolicyRecord, Store};
use crate::wasm_engine::{self, Wasm};

/// Most places decided and saved in one embedded-store transaction.
const PLACER_BATCH: usize = 256;

/// Which engine decides.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EngineChoice {
    /// The engine compiled into the binary.
    Native,
    /// The store's active policy module (the embedded default when none
    /// was pushed), followed and hot-swapped.
    Wasm,
}

/// Why an [`App`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot start the policy runtime: {0}")]
    Policy(String),
    #[error("cannot start the embedded store's placer: {0}")]
    Placer(String),
}

/// A store, an engine and a placer; see the module doc.
pub struct App {
    pub store: AnyStore,
    /// The `--store` URL as given, for health answers.
    pub store_url: String,
    pub engine: Arc<dyn Engine>,
    /// The hot-swappable module behind a wasm engine.
    pub policy: Option<Arc<PolicyHost>>,
    pub metrics: Metrics,
    pub retries: u32,
    /// On the embedded store, places go through a batching placer: the
    /// places that arrive while one batch is written are decided in order
    /// and saved together, one transaction and one fsync per batch, never
    /// conflicting with each other. On etcd, places run concurrently and
    /// conflicts are retried.
    placer: Option<Placer>,
}

impl App {
    /// Builds the engine for `choice` over `store` and, on the embedded
    /// store, its batching placer. `wrap` lets a service put its own layer
    /// around the engine (the proxy's down-server overlay) before the
    /// placer takes it.
    pub async fn open(
        store: AnyStore,
        store_url: String,
        choice: EngineChoice,
        retries: u32,
        wrap: impl FnOnce(Arc<dyn Engine>, Option<Arc<PolicyHost>>) -> Arc<dyn Engine>,
    ) -> Result<App, AppError> {
        let (engine, policy): (Arc<dyn Engine>, Option<Arc<PolicyHost>>) = match choice {
            EngineChoice::Native => (Arc::new(Native), None),
            EngineChoice::Wasm => {
                let host = match wasm_engine::policy_host_for(&store).await {
                    Ok(h) => h,
                    Err(e) => {
                        // A stored module that no longer validates must not
                        // stop the service: serve the embedded default and
                        // say so.
                        eprintln!("flocker: {e}; serving the embedded default module");
                        wasm_engine::policy_host(None).map_err(AppError::Policy)?
                    }
                };
                let host = Arc::new(host);
                host.follow(store.changes());
                (Arc::new(Wasm { host: host.clone() }), Some(host))
            }
        };
        let engine = wrap(engine, policy.clone());
        let placer = match &store {
            AnyStore::File(fs) => Some(
                fs.placer(engine.clone(), retries, PLACER_BATCH)
                    .map_err(|e| AppError::Placer(e.to_string()))?,
            ),
            AnyStore::Etcd(_) => None,
        };
        let app = App {
            placer,
            store,
            store_url,
            engine,
            policy,
            metrics: Metrics::default(),
            retries,
        };
        app.set_policy_metric();
        Ok(app)
    }

    /// Decides `request` (`{name, container, image}`) against the store and
    /// saves its route, through the placer on the embedded store.
    pub async fn place(&self, request: Value) -> Result<Placed, PlaceError> {
        match &self.placer {
            Some(placer) => placer.place(request).await,
            None => place::place(&self.store, &self.engine, &request, self.retries).await,
        }
    }

    fn set_policy_metric(&self) {
        if let Some(host) = &self.policy {
            let info = host.info();
            self.metrics
                .set_policy(Some((info.digest, info.name, info.version)));
        }
    }

    /// Follows the store's active policy (and the watched `file`) and swaps
    /// it in; runs until the process ends. Does nothing for the native
    /// engine.
    pub fn spawn_policy_follower(self: &Arc<Self>, file: Option<PathBuf>, every: Duration) {
        if let Some(host) = self.policy.clone() {
            tokio::spawn(follow_policy(self.clone(), host, file, every));
        }
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
                                    eprintln!("flocker: cannot push {}: {e}", path.display());
                                }
                            }
                            Ok(Err(e)) => {
                                app.metrics.swapped(false);
                                eprintln!(
                                    "flocker: {} refused, keeping {}: {e}",
                                    path.display(),
                                    host.info().digest
                                );
                            }
                            Err(e) => eprintln!("flocker: validation task failed: {e}"),
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
                eprintln!("flocker: cannot read the active policy: {e}");
                continue;
            }
        }
        let (digest, bytes) = match app.store.policy_active().await {
            Ok(Some(active)) => active,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("flocker: cannot read the active policy: {e}");
                continue;
            }
        };
        let h = host.clone();
        let swapped = tokio::task::spawn_blocking(move || h.swap(&bytes)).await;
        match swapped {
            Ok(Ok(s)) => {
                app.metrics.swapped(true);
                failed_digest = None;
                app.set_policy_metric();
                eprintln!(
                    "flocker: policy {} swapped in (was {})",
                    s.current.digest, s.previous.digest
                );
            }
            Ok(Err(e)) => {
                app.metrics.swapped(false);
                failed_digest = Some(digest.clone());
                eprintln!(
                    "flocker: policy {digest} refused, keeping {}: {e}",
                    host.info().digest
                );
            }
            Err(e) => eprintln!("flocker: swap task failed: {e}"),
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

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
pub async fn shutdown_signal() {
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
