//! The embedded store: one redb file on one machine, no etcd.
//!
//! It keeps the records of SPEC section 5 in redb tables named after the
//! etcd key spaces:
//!
//! | table | key | value |
//! |---|---|---|
//! | `inventory` | hostname | server record (JSON) |
//! | `routes` | container name | route record (JSON) |
//! | `volumes` | volume | hostname holding it |
//! | `ports` | `<hostname>/<port>` | container name holding that host port |
//! | `answers` | container name | `{digest, output}`: the answer its live route was saved with |
//! | `policy_modules` | sha256 digest | module bytes |
//! | `policy_history` | push sequence number | `{digest, pushed_at, info}` (JSON) |
//! | `meta` | `generation`, `policy_active` | change counter, active digest |
//! | `changelog` | sequence number | one `flocker_core::Change` (JSON) |
//!
//! Every write is one redb transaction committed with fsync (redb's default
//! `Durability::Immediate`), so a write is whole or absent after a crash,
//! SIGKILL included. The database is opened in redb's `MultiWriter` mode, so
//! several `flocker` processes (a `serve` and CLI commands) share one file;
//! redb serializes their write transactions.
//!
//! Placing: [`FileStore::write_batch`] decides inside the write transaction,
//! after bringing the cache to the state that transaction starts from, so a
//! decision is always made on the state it is saved over and cannot lose to
//! another writer; places that arrive while one transaction is written are
//! decided in turn and saved together in the next (one fsync per batch).
//!
//! The cache: each handle keeps a [`Cluster`] and the generation it reflects.
//! Every write that changes the cluster appends its changes to `changelog`
//! and raises `generation` to the last change's sequence number, in the same
//! transaction. A handle whose cache is behind (another process wrote)
//! applies the missing changes in order; when the changelog no longer holds
//! them (it keeps the last [`CHANGELOG_KEEP`]), it rebuilds from the tables.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use flocker_core::{Change, Cluster, Route, Server};
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::broadcast;

use super::check::{claim_explained, parse_port_key, Checked};
use super::records;
use super::{
    active_changed, named_volumes, Answer, PolicyRecord, Prune, Released, Saved, Store, StoreError,
    Twin,
};

macro_rules! tried {
    ($inner:expr, $e:expr) => {
        $e.map_err(|e| $inner.db_error(e))
    };
}

mod handle;
mod tables;
#[allow(unused_imports)]
pub use tables::*;
mod cache;
#[allow(unused_imports)]
use cache::*;
mod writes;
#[allow(unused_imports)]
use writes::*;
mod check;
#[allow(unused_imports)]
use check::*;
mod batch;
mod prune;
#[allow(unused_imports)]
pub use batch::*;
#[cfg(test)]
mod bad_day_tests;
#[cfg(test)]
mod prune_tests;
#[cfg(test)]
mod tests;

/// The embedded store. Cheap to clone: clones share one database handle.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: handle::Db,
    path: PathBuf,
    cache: Mutex<Cache>,
    changes: broadcast::Sender<Change>,
}

struct Cache {
    generation: u64,
    cluster: Twin,
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::unavailable_by(path.display().to_string(), e.into())
}

impl Inner {
    /// A redb error as the store's, noting one that needs a reopen.
    fn db_error(&self, e: impl Into<redb::Error>) -> StoreError {
        let e = e.into();
        self.db.note(&e);
        db_err(&self.path, e)
    }
}

/// Creates a missing store file mode 0600 (it holds every container's
/// env, secrets included; redb alone would leave it 0644 under umask 022).
/// An existing file keeps the mode its owner gave it.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::unavailable_by(
            format!("{}: cannot create the store file", path.display()),
            e,
        )),
    }
}

impl FileStore {
    /// Opens the store at `path`, creating the file (mode 0600) and its
    /// tables when missing.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(StoreError::unavailable(format!(
                    "{}: directory {} does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
        create_private(&path)?;
        let db = handle::Db::open(&path).map_err(|e| db_err(&path, e))?;
        // Create every table so that readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            txn.open_table(INVENTORY).map_err(|e| db_err(&path, e))?;
            txn.open_table(ROUTES).map_err(|e| db_err(&path, e))?;
            txn.open_table(VOLUMES).map_err(|e| db_err(&path, e))?;
            txn.open_table(PORTS).map_err(|e| db_err(&path, e))?;
            txn.open_table(ANSWERS).map_err(|e| db_err(&path, e))?;
            txn.open_table(POLICY_MODULES)
                .map_err(|e| db_err(&path, e))?;
            txn.open_table(POLICY_HISTORY)
                .map_err(|e| db_err(&path, e))?;
            txn.open_table(META).map_err(|e| db_err(&path, e))?;
            txn.open_table(CHANGELOG).map_err(|e| db_err(&path, e))?;
        }
        txn.commit().map_err(|e| db_err(&path, e))?;
        let (changes, _) = broadcast::channel(4096);
        let store = FileStore {
            inner: Arc::new(Inner {
                db,
                path,
                cache: Mutex::new(Cache {
                    generation: 0,
                    cluster: Twin::default(),
                }),
                changes,
            }),
        };
        store.inner.fresh_cluster()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Checks that the records agree with each other: every live route's
    /// port claims are present and name it, every port claim belongs to a
    /// live route on that server holding that port, every named volume of a
    /// live route is claimed for its server, and every record parses.
    /// Returns the problems found, none when consistent.
    pub fn check(&self) -> Result<Vec<String>, StoreError> {
        self.inner.check()
    }

    /// [`FileStore::check`], after deleting (with `repair`) every port
    /// claim no live route explains, in one write transaction: nothing can
    /// save over the file in between, so a claim a save just made is never
    /// taken for an orphan.
    pub fn check_repair(&self, repair: bool) -> Result<Checked, StoreError> {
        let repaired = if repair {
            self.inner.repair()?
        } else {
            Vec::new()
        };
        Ok(Checked {
            problems: self.inner.check()?,
            repaired,
        })
    }

    /// [`Store::answer`] without a blocking-pool hop (one small read), for
    /// the batching placer's thread.
    pub fn answer_now(&self, name: &str) -> Result<Option<Answer>, StoreError> {
        self.inner.answer(name)
    }

    /// [`Store::cluster`] for a caller on a thread of its own.
    pub fn cluster_now(&self) -> Result<Arc<Cluster>, StoreError> {
        self.inner.fresh_cluster()
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::unavailable_by("store task failed", e))?
    }
}

impl Store for FileStore {
    async fn cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        // A read transaction and one lookup; the rare catch-up after another
        // process wrote is short enough to run here. While a batch holds
        // the cache (its decisions run under it) the wait is the blocking
        // pool's, not a runtime worker's.
        match self.inner.fresh_cluster_if_free() {
            Some(cluster) => cluster,
            None => self.blocking(Inner::fresh_cluster).await,
        }
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    async fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError> {
        let servers = servers.to_vec();
        self.blocking(move |i| i.put_servers(&servers)).await
    }

    async fn remove_server(&self, hostname: &str) -> Result<bool, StoreError> {
        let hostname = hostname.to_string();
        self.blocking(move |i| i.remove_server(&hostname)).await
    }

    async fn save_answered(
        &self,
        route: &Route,
        answer: Option<&Answer>,
    ) -> Result<Saved, StoreError> {
        let route = route.clone();
        let answer = answer.cloned();
        self.blocking(move |i| i.save_decision(&route, answer.as_ref()))
            .await
    }

    async fn answer(&self, name: &str) -> Result<Option<Answer>, StoreError> {
        self.answer_now(name)
    }

    async fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError> {
        let name = name.to_string();
        self.blocking(move |i| i.remove_route(&name)).await
    }

    async fn policy_push(&self, module: &[u8], record: PolicyRecord) -> Result<(), StoreError> {
        let module = module.to_vec();
        self.blocking(move |i| i.policy_push(&module, &record))
            .await
    }

    async fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        self.blocking(|i| i.policy_history()).await
    }

    async fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.blocking(|i| i.policy_active()).await
    }

    async fn policy_active_digest(&self) -> Result<Option<String>, StoreError> {
        // One small record; no need for a blocking-pool hop.
        self.inner.policy_active_digest()
    }

    async fn policy_activate(
        &self,
        digest: &str,
        expected: Option<&str>,
    ) -> Result<(), StoreError> {
        let digest = digest.to_string();
        let expected = expected.map(str::to_string);
        self.blocking(move |i| i.policy_activate(&digest, expected.as_deref()))
            .await
    }

    async fn prune_routes(&self, prune: &Prune) -> Result<u64, StoreError> {
        let prune = prune.clone();
        self.blocking(move |i| i.prune_routes(&prune)).await
    }

    async fn release_volume(&self, volume: &str) -> Result<Released, StoreError> {
        let volume = volume.to_string();
        self.blocking(move |i| i.release_volume(&volume)).await
    }
}
