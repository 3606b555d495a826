//! [`App`]: what a long-running host (`flocker serve`, `flocker proxy`) is
//! built from: a store, the engine that decides (native, or the store's
//! active policy module, hot-swapped), the placer that saves decisions, the
//! policy follower and the metrics. Both services construct it with
//! [`App::open`] and place through [`App::place`]; the engine and the
//! placer are chosen by [`crate::engine::open`] and [`Placer::new`], which
//! the one-off commands use too.

use std::sync::Arc;

use flocker_core::DecisionError;
use serde_json::Value;

use crate::engine::{self, Engine, EngineChoice, EngineError, StoredModule};
use crate::metrics::Metrics;
use crate::place::{PlaceError, Placed, Placer, Repeat};
use crate::policy::PolicyHost;
use crate::rollout::{self, Follow, FollowEvents};
use crate::store::any::AnyStore;

/// The kind of a request body that is not JSON, refused before deciding.
pub const INVALID_BODY: &str = "invalid_body";

/// The kind of a call whose query the service does not take
/// (`?retry=yes`), refused before deciding.
pub const INVALID_QUERY: &str = "invalid_query";

/// The kind of a decision refused because `--max-decisions` are running.
pub const OVERLOADED: &str = "overloaded";

/// Most places decided and saved in one embedded-store transaction.
const PLACER_BATCH: usize = 256;

/// Why an [`App`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot start the policy runtime: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot start the placer: {0}")]
    Placer(#[from] PlaceError),
}

/// A store, an engine and a placer; see the module doc.
pub struct App {
    pub store: Arc<AnyStore>,
    pub engine: Arc<dyn Engine>,
    /// The hot-swappable module behind a wasm engine.
    pub policy: Option<Arc<PolicyHost>>,
    pub metrics: Arc<Metrics>,
    placer: Placer,
}

impl App {
    /// Builds the engine for `choice` over `store` (a stored module that no
    /// longer loads falls back to the embedded default: a service must not
    /// stay down over a bad push) and the placer. `wrap` lets a service put
    /// its own layer around the engine (the proxy's down-server overlay)
    /// before the placer takes it.
    pub async fn open(
        store: AnyStore,
        choice: EngineChoice,
        retries: u32,
        wrap: impl FnOnce(Arc<dyn Engine>, Option<Arc<PolicyHost>>) -> Arc<dyn Engine>,
    ) -> Result<App, AppError> {
        let opened = engine::open(choice, &store, StoredModule::FallBack).await?;
        let engine = wrap(opened.engine, opened.policy.clone());
        let store = Arc::new(store);
        let placer = Placer::new(store.clone(), engine.clone(), retries, PLACER_BATCH)?;
        let app = App {
            placer,
            store,
            engine,
            policy: opened.policy,
            metrics: Arc::new(Metrics::new(known_kinds())),
        };
        if let Some(host) = &app.policy {
            host.keep_spare();
            set_policy(&app.metrics, host);
        }
        Ok(app)
    }

    /// Decides `request` (`{name, container, image}`) against the store and
    /// saves its route.
    pub async fn place(&self, request: Value) -> Result<Placed, PlaceError> {
        self.placer.place(request).await
    }

    /// [`App::place`], answering a retry of a place whose answer was lost
    /// as [`Placer::place_as`] does.
    pub async fn place_as(&self, request: Value, repeat: Repeat) -> Result<Placed, PlaceError> {
        self.placer.place_as(request, repeat).await
    }

    /// Whether places cannot be made any more (see [`Placer::stopped`]).
    pub fn placer_stopped(&self) -> bool {
        self.placer.stopped()
    }

    /// Follows the store's active policy (and the watched file) and swaps
    /// it in; runs until the process ends. Does nothing for the native
    /// engine.
    pub fn spawn_policy_follower(&self, follow: Follow) {
        if let Some(host) = self.policy.clone() {
            tokio::spawn(rollout::follow(
                self.store.clone(),
                host,
                follow,
                Swaps(self.metrics.clone()),
            ));
        }
    }
}

/// Swaps counted in the metrics, and the running module's labels updated.
struct Swaps(Arc<Metrics>);

impl FollowEvents for Swaps {
    fn swapped(&self, host: &PolicyHost, ok: bool) {
        self.0.swapped(ok);
        if ok {
            set_policy(&self.0, host);
        }
    }
}

fn set_policy(metrics: &Metrics, host: &PolicyHost) {
    let info = host.info();
    metrics.set_policy(Some((info.digest, info.name, info.version)));
}

/// Every error kind the service can answer: the engine's, the place's,
/// and the body or query it refuses before deciding. A policy module's own kinds
/// are counted as `other`.
fn known_kinds() -> impl Iterator<Item = &'static str> {
    DecisionError::KINDS
        .iter()
        .chain(PlaceError::KINDS)
        .copied()
        .chain([INVALID_BODY, INVALID_QUERY, OVERLOADED])
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
