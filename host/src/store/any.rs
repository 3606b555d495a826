//! One store chosen at run time from a `--store` URL.

use std::sync::Arc;

use flocker_core::{Change, Cluster, Route, Server};
use tokio::sync::broadcast;

use super::check::Checked;
use super::etcd::{EtcdConfig, EtcdStore};
use super::file::FileStore;
use super::url::StoreUrl;
use super::{Answer, PolicyRecord, Prune, Released, Saved, Store, StoreError};

/// The embedded file store or etcd, behind the one [`Store`] trait.
pub enum AnyStore {
    File(FileStore),
    Etcd(Box<EtcdStore>),
}

impl AnyStore {
    /// `file` or `etcd`: what health answers say of the store, never its
    /// URL (a path, endpoints, a user name).
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::File(_) => "file",
            AnyStore::Etcd(_) => "etcd",
        }
    }

    /// [`AnyStore::open`], except that an embedded store file that does
    /// not exist yet is an error rather than created: for commands that
    /// only read or change what is there.
    pub async fn open_existing(url: &StoreUrl) -> Result<AnyStore, StoreError> {
        if let StoreUrl::File(path) = url {
            if !path.exists() {
                return Err(StoreError::unavailable(format!(
                    "no embedded store at {} (`flocker inventory add --store {url}` creates one)",
                    path.display()
                )));
            }
        }
        AnyStore::open(url).await
    }

    /// `flocker store check`: what disagrees in the records, after
    /// deleting (with `repair`) the port claims no live route explains.
    pub async fn check(&self, repair: bool) -> Result<Checked, StoreError> {
        match self {
            AnyStore::File(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.check_repair(repair))
                    .await
                    .map_err(|e| StoreError::unavailable_by("store task failed", e))?
            }
            AnyStore::Etcd(s) => s.check_repair(repair).await,
        }
    }

    /// Opens (file, created when missing) or connects to (etcd) the store a
    /// URL names.
    pub async fn open(url: &StoreUrl) -> Result<AnyStore, StoreError> {
        match url {
            StoreUrl::File(path) => {
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || FileStore::open(path))
                    .await
                    .map_err(|e| StoreError::unavailable(format!("store task failed: {e}")))??;
                Ok(AnyStore::File(store))
            }
            StoreUrl::Etcd(e) => Ok(AnyStore::Etcd(Box::new(
                EtcdStore::connect(EtcdConfig::from_url(e)?).await?,
            ))),
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::File($s) => $e,
            AnyStore::Etcd($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        each!(self, s => s.cluster().await)
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        each!(self, s => s.changes())
    }

    async fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError> {
        each!(self, s => s.put_servers(servers).await)
    }

    async fn remove_server(&self, hostname: &str) -> Result<bool, StoreError> {
        each!(self, s => s.remove_server(hostname).await)
    }

    async fn save_answered(
        &self,
        route: &Route,
        answer: Option<&Answer>,
    ) -> Result<Saved, StoreError> {
        each!(self, s => s.save_answered(route, answer).await)
    }

    async fn answer(&self, name: &str) -> Result<Option<Answer>, StoreError> {
        each!(self, s => s.answer(name).await)
    }

    async fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError> {
        each!(self, s => s.remove_route(name).await)
    }

    async fn policy_push(&self, module: &[u8], record: PolicyRecord) -> Result<(), StoreError> {
        each!(self, s => s.policy_push(module, record).await)
    }

    async fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        each!(self, s => s.policy_history().await)
    }

    async fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        each!(self, s => s.policy_active().await)
    }

    async fn policy_active_digest(&self) -> Result<Option<String>, StoreError> {
        match self {
            AnyStore::File(s) => s.policy_active_digest().await,
            // The watch-fed digest: no read of etcd per poll.
            AnyStore::Etcd(s) => Ok(s.policy_watch().borrow().clone()),
        }
    }

    async fn policy_activate(
        &self,
        digest: &str,
        expected: Option<&str>,
    ) -> Result<(), StoreError> {
        each!(self, s => s.policy_activate(digest, expected).await)
    }

    async fn prune_routes(&self, prune: &Prune) -> Result<u64, StoreError> {
        each!(self, s => s.prune_routes(prune).await)
    }

    async fn release_volume(&self, volume: &str) -> Result<Released, StoreError> {
        each!(self, s => s.release_volume(volume).await)
    }
}
