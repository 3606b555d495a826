//! Cluster state behind one trait: the embedded file store (the default, one
//! machine) and etcd (several proxies). Both keep the records of SPEC
//! section 5 and give the same guarantees: a decision is saved whole or not
//! at all, and never over a name or host port another proxy took first.

use std::future::Future;
use std::sync::Arc;

use flocker_core::{Cluster, Route, Server};

pub use answer::Answer;
pub use prune::{Prune, Released};
pub use twin::Twin;

// Submodules: `file` (embedded redb store), `etcd` (etcd store with a
// watch-fed cache), `url` (parsing `--store`). Each owner adds its line.

pub mod answer;
pub mod any;
pub mod check;
pub mod etcd;
pub mod file;
pub mod prune;
pub mod records;
pub mod storable;
pub mod twin;
pub mod url;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the call (etcd down, file
    /// locked): what was being done, and the error underneath when there
    /// is one (a redb or etcd error, a task that died).
    #[error("store unavailable: {what}{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Unavailable {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The store will not let us in, and asking again will not change that:
    /// etcd refused the user's password, the TLS handshake failed on a
    /// certificate (ours refused, or theirs not trusted), the user may not
    /// touch the key prefix, or a certificate file cannot be used. Says
    /// what to fix; never holds a password.
    #[error("{what}")]
    Denied { what: String },
    /// The save cannot be stored by either store, and asking again will
    /// not change that (a `/` in a key segment, more claims or bytes than
    /// one transaction holds; see [`storable`]): the request is invalid.
    #[error("{path}: {reason}")]
    Unstorable { path: String, reason: String },
    /// A record in the store is not what SPEC section 5 says it is.
    #[error("corrupt record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// `--store` is not a URL this host understands.
    #[error("bad store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The caller named something the store does not hold (an unknown policy
    /// digest for [`Store::policy_activate`]).
    #[error("not found: {0}")]
    NotFound(String),
    /// A conditional write found the store changed since the caller read
    /// it (the active module, for [`Store::policy_activate`]); nothing was
    /// written.
    #[error("{0}")]
    Changed(String),
}

/// The error underneath a [`StoreError::Unavailable`]; shared, so that
/// one failed batch can answer each of its places with it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// The record at `key` cannot be read, and `reason` says why.
    pub fn corrupt(key: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    /// The store refused or could not do `what`, for a reason of its own.
    pub fn unavailable(what: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            what: what.into(),
            cause: None,
        }
    }

    /// The store could not do `what` because of `cause`.
    pub fn unavailable_by(
        what: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Unavailable {
            what: what.into(),
            cause: Some(Arc::from(cause.into())),
        }
    }
}

/// The outcome of [`Store::save_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// The route, its volume claims and its port claims are all written.
    Saved,
    /// Another writer took something first; nothing was written. The caller
    /// re-decides on fresh state. The string says what was taken.
    Conflict(String),
}

/// A policy module kept by the store, newest last in [`Store::policy_history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// sha256 of the module bytes, lowercase hex.
    pub digest: String,
    /// Seconds since the epoch when it was pushed (the host's clock, not the engine's).
    pub pushed_at: u64,
    /// Policy info the module reported (JSON text).
    pub info: String,
}

/// State a host decides against and saves to.
///
/// Every method returns a `Send` future so that a generic caller can run it
/// on a multi-threaded tokio runtime and inside axum handlers. An
/// implementation may still write each method as `async fn`; the compiler
/// then checks that its future is `Send`. etcd calls do not block a runtime
/// thread; the file store runs its redb transactions on `spawn_blocking`.
///
/// Names used below: a route's *named volumes* are the entries of
/// `route.volumes` that do not start with `/`, each read up to its first `:`
/// (`pgdata:/var/lib/pg` claims `pgdata`); see [`named_volumes`]. A route's
/// *port claims* are `(route.server, host_port)` for each of `route.host_ports`
/// (every host port the container binds, not only the first of each port).
pub trait Store: Send + Sync {
    /// The cluster as the engine needs it: inventory, routes, volume claims.
    /// Cheap: both stores keep a `Cluster` current in memory (etcd from its
    /// watch, the file store from its own writes and a generation check
    /// against other processes' writes) and hand out the `Arc`; writers
    /// replace it copy-on-write. A caller drops the `Arc` before it saves,
    /// so the copy is usually avoided.
    fn cluster(&self) -> impl Future<Output = Result<Arc<Cluster>, StoreError>> + Send;

    /// The changes applied to the cached cluster from now on, so a resident
    /// engine state (the WASM module's snapshot handle) can follow them. A
    /// receiver that lags (`RecvError::Lagged`) rebuilds from [`Store::cluster`].
    fn changes(&self) -> tokio::sync::broadcast::Receiver<flocker_core::Change>;

    /// Adds or replaces servers (`/inventory/<hostname>`), all in one write.
    fn put_servers(
        &self,
        servers: &[Server],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a server; false when there was none.
    fn remove_server(
        &self,
        hostname: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes in one transaction the route, the claim of each named volume
    /// the route uses that no one holds yet (`/routes/volumes/<v>` =
    /// route.server), and the claim of each host port (`/ports/<server>/<port>`
    /// = name), conditioned on the name having no live route, none of those
    /// volumes being held for another server, and none of those ports being
    /// held by another name. A route that is not `live` is written without
    /// port claims.
    fn save_decision(
        &self,
        route: &Route,
    ) -> impl Future<Output = Result<Saved, StoreError>> + Send {
        self.save_answered(route, None)
    }

    /// [`Store::save_decision`], writing in the same transaction the
    /// answer given for the route (`/routes/answers/<name>`), which stays
    /// until the route is removed: a place asked again after its answer
    /// was lost gets it back ([`Store::answer`]).
    fn save_answered(
        &self,
        route: &Route,
        answer: Option<&Answer>,
    ) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// The answer saved with the live route of `name`, if there is one.
    fn answer(&self, name: &str)
        -> impl Future<Output = Result<Option<Answer>, StoreError>> + Send;

    /// Marks the route removed, frees its port claims and forgets its
    /// answer (volume claims stay: the data is still on that server);
    /// returns the route as it
    /// was, or None when there was none.
    fn remove_route(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Route>, StoreError>> + Send;

    /// Stores a module and makes it the active one. Pushing a digest that is
    /// already stored appends a history record and re-activates it.
    fn policy_push(
        &self,
        module: &[u8],
        record: PolicyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every pushed module's record, oldest first; the last is active unless
    /// a rollback moved the pointer (see [`Store::policy_active`]).
    fn policy_history(&self) -> impl Future<Output = Result<Vec<PolicyRecord>, StoreError>> + Send;

    /// The active module's digest and bytes, if one was pushed.
    fn policy_active(
        &self,
    ) -> impl Future<Output = Result<Option<(String, Vec<u8>)>, StoreError>> + Send;

    /// The active module's digest alone, for callers that poll for a
    /// change (`flocker serve`). The default reads the module through
    /// [`Store::policy_active`]; a store that can answer from its cache or
    /// one small record should override it.
    fn policy_active_digest(
        &self,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        async { Ok(self.policy_active().await?.map(|(digest, _)| digest)) }
    }

    /// Points the active module at an earlier digest, if the active one is
    /// still `expected` (`None`: no module was pushed), in one conditional
    /// write: a push that lands between a rollback's read and its
    /// activation is not silently undone. `StoreError::NotFound` when no
    /// module with that digest was pushed, `StoreError::Changed` ("active
    /// module changed") when the active one is no longer `expected`.
    fn policy_activate(
        &self,
        digest: &str,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    // Bounded growth (issue 11, F12): deleting history, releasing claims.

    /// Deletes the removed routes `prune` selects (see [`Prune`]), each
    /// only if it is still the record that was read (a name placed again
    /// meanwhile is kept); volume and port claims are not touched. Returns
    /// how many were deleted. The etcd store then compacts its history up
    /// to the revision of the last deletion.
    fn prune_routes(&self, prune: &Prune) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Releases the claim of a named volume, unless a live route uses it
    /// ([`Released::InUse`], nothing written); the check and the release
    /// are one transaction, so a route placed meanwhile keeps its claim.
    fn release_volume(
        &self,
        volume: &str,
    ) -> impl Future<Output = Result<Released, StoreError>> + Send;
}

/// The [`StoreError::Changed`] of a [`Store::policy_activate`] that found
/// `found` active where the caller expected `expected`.
pub fn active_changed(expected: Option<&str>, found: Option<&str>) -> StoreError {
    let name = |d: Option<&str>| d.map_or("none".to_string(), str::to_string);
    StoreError::Changed(format!(
        "active module changed: {} is active, not {}; nothing was activated",
        name(found),
        name(expected)
    ))
}

/// The named volumes of a route: entries of `route.volumes` not starting
/// with `/`, each up to its first `:`, without duplicates, in order.
pub fn named_volumes(route: &Route) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for v in &route.volumes {
        if v.is_empty() || v.starts_with('/') {
            continue;
        }
        let name = v.split(':').next().unwrap_or(v);
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}
