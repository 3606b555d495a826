//! Cluster state behind one trait: the embedded file store (the default, one
//! machine) and etcd (several proxies). Both keep the records of SPEC
//! section 5 and give the same guarantees: a decision is saved whole or not
//! at all, and never over a name or host port another proxy took first.

use flocker_core::{Cluster, Route, Server};

// Submodules: `file` (embedded redb store), `etcd` (etcd store with a
// watch-fed cache), `url` (parsing `--store`). Each owner adds its line.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the call (etcd down, file locked).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record in the store is not what SPEC section 5 says it is.
    #[error("corrupt record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// `--store` is not a URL this host understands.
    #[error("bad store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
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
/// Every method is async so that etcd calls do not block a runtime thread;
/// the file store runs its redb transactions on `spawn_blocking`.
#[allow(async_fn_in_trait)]
pub trait Store: Send + Sync {
    /// The cluster as the engine needs it: inventory, routes, volume claims.
    /// Cheap: both stores keep a `Cluster` current in memory (etcd from its
    /// watch, the file store from its own writes) and hand out the `Arc`;
    /// writers replace it copy-on-write.
    async fn cluster(&self) -> Result<std::sync::Arc<Cluster>, StoreError>;

    /// The changes applied to the cached cluster from now on, so a resident
    /// engine state (the WASM module's snapshot handle) can follow them.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<flocker_core::Change>;

    /// Adds or replaces servers (`/inventory/<hostname>`).
    async fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError>;

    /// Removes a server; false when there was none.
    async fn remove_server(&self, hostname: &str) -> Result<bool, StoreError>;

    /// Writes in one transaction the route, the claim of each named volume
    /// the route uses that no one holds yet, and the claim of each host port
    /// (`/ports/<server>/<port>` = name), conditioned on the name having no
    /// live route and none of those volumes and ports being held by another.
    async fn save_decision(&self, route: &Route) -> Result<Saved, StoreError>;

    /// Marks the route removed and frees its port claims; returns the route
    /// as it was, or None when there was none.
    async fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError>;

    /// Stores a module and makes it the active one.
    async fn policy_push(&self, module: &[u8], record: PolicyRecord) -> Result<(), StoreError>;

    /// Every pushed module's record, oldest first; the last is active unless
    /// a rollback moved the pointer (see [`Store::policy_active`]).
    async fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError>;

    /// The active module's digest and bytes, if one was pushed.
    async fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError>;

    /// Points the active module at an earlier digest.
    async fn policy_activate(&self, digest: &str) -> Result<(), StoreError>;
}
