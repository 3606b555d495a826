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
//! Placing: [`FileStore::placer`] decides inside the write transaction,
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

use flocker_core::{Change, Cluster, Route, Server, REMOVED};
use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::{named_volumes, PolicyRecord, Saved, Store, StoreError};
use crate::place::{Decided, Engine, PlaceError, Placed};

const INVENTORY: TableDefinition<&str, &str> = TableDefinition::new("inventory");
const ROUTES: TableDefinition<&str, &str> = TableDefinition::new("routes");
const VOLUMES: TableDefinition<&str, &str> = TableDefinition::new("volumes");
const PORTS: TableDefinition<&str, &str> = TableDefinition::new("ports");
const POLICY_MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("policy_modules");
const POLICY_HISTORY: TableDefinition<u64, &str> = TableDefinition::new("policy_history");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const CHANGELOG: TableDefinition<u64, &str> = TableDefinition::new("changelog");

const GENERATION: &str = "generation";
const POLICY_ACTIVE: &str = "policy_active";

/// How many changes the changelog keeps for handles that fell behind.
pub const CHANGELOG_KEEP: u64 = 10_000;

/// The embedded store. Cheap to clone: clones share one database handle.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: redb::Database,
    path: PathBuf,
    cache: Mutex<Cache>,
    changes: broadcast::Sender<Change>,
}

struct Cache {
    generation: u64,
    cluster: Arc<Cluster>,
}

fn db_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError::Unavailable(format!("{}: {e}", path.display()))
}

macro_rules! tried {
    ($inner:expr, $e:expr) => {
        $e.map_err(|e| (db_err(&$inner.path))(&e))
    };
}

impl FileStore {
    /// Opens the store at `path`, creating the file and its tables when missing.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(StoreError::Unavailable(format!(
                    "{}: directory {} does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
        let err_path = path.clone();
        let err = db_err(&err_path);
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .set_cache_size(64 * 1024 * 1024)
            .create(&path)
            .map_err(|e| err(&e))?;
        // Create every table so that readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| err(&e))?;
        {
            txn.open_table(INVENTORY).map_err(|e| err(&e))?;
            txn.open_table(ROUTES).map_err(|e| err(&e))?;
            txn.open_table(VOLUMES).map_err(|e| err(&e))?;
            txn.open_table(PORTS).map_err(|e| err(&e))?;
            txn.open_table(POLICY_MODULES).map_err(|e| err(&e))?;
            txn.open_table(POLICY_HISTORY).map_err(|e| err(&e))?;
            txn.open_table(META).map_err(|e| err(&e))?;
            txn.open_table(CHANGELOG).map_err(|e| err(&e))?;
        }
        txn.commit().map_err(|e| err(&e))?;
        let (changes, _) = broadcast::channel(4096);
        let store = FileStore {
            inner: Arc::new(Inner {
                db,
                path,
                cache: Mutex::new(Cache {
                    generation: 0,
                    cluster: Arc::new(Cluster::new()),
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

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

fn corrupt(key: String, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key,
        reason: reason.to_string(),
    }
}

fn parse_json(key: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(key.to_string(), e))
}

fn read_route(name: &str, text: &str) -> Result<Route, StoreError> {
    let key = format!("/routes/containers/{name}");
    let v = parse_json(&key, text)?;
    let mut r = Route::from_value(&v, Some(name), &key).map_err(|e| corrupt(key.clone(), e))?;
    r.name = name.to_string();
    Ok(r)
}

fn read_server(hostname: &str, text: &str) -> Result<Server, StoreError> {
    let key = format!("/inventory/{hostname}");
    let v = parse_json(&key, text)?;
    Server::from_value(&v, &key).map_err(|e| corrupt(key.clone(), e))
}

fn port_key(server: &str, port: u16) -> String {
    format!("{server}/{port}")
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the cache half
        // updated (it is replaced whole), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        tried!(self, self.db.begin_read())
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        tried!(self, self.db.begin_write())
    }

    fn generation_in(&self, txn: &ReadTransaction) -> Result<u64, StoreError> {
        self.generation_of(&tried!(self, txn.open_table(META))?)
    }

    /// The generation recorded in the meta table, read or write.
    fn generation_of(
        &self,
        meta: &impl ReadableTable<&'static str, &'static str>,
    ) -> Result<u64, StoreError> {
        let g = tried!(self, meta.get(GENERATION))?;
        match g {
            None => Ok(0),
            Some(v) => v
                .value()
                .parse()
                .map_err(|e| corrupt("meta/generation".into(), e)),
        }
    }

    /// The cached cluster, first brought up to the store's generation.
    fn fresh_cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        let mut cache = self.lock();
        let txn = self.begin_read()?;
        let generation = self.generation_in(&txn)?;
        if generation != cache.generation {
            self.catch_up(&mut cache, &txn, generation)?;
        }
        Ok(cache.cluster.clone())
    }

    /// Brings `cache` to `generation`: by the changelog when it holds every
    /// missing change, else by rebuilding from the tables.
    fn catch_up(
        &self,
        cache: &mut Cache,
        txn: &ReadTransaction,
        generation: u64,
    ) -> Result<(), StoreError> {
        if generation > cache.generation && cache.generation > 0 {
            let log = tried!(self, txn.open_table(CHANGELOG))?;
            let first = cache.generation + 1;
            let mut changes = Vec::new();
            let mut expect = first;
            for item in tried!(self, log.range(first..=generation))? {
                let (k, v) = tried!(self, item)?;
                if k.value() != expect {
                    break;
                }
                let key = format!("changelog/{}", k.value());
                let value = parse_json(&key, v.value())?;
                changes.push(Change::from_value(&value, &key).map_err(|e| corrupt(key, e))?);
                expect += 1;
            }
            if expect == generation + 1 {
                let cluster = Arc::make_mut(&mut cache.cluster);
                for c in changes {
                    cluster.apply_change(c.clone());
                    let _ = self.changes.send(c);
                }
                cache.generation = generation;
                return Ok(());
            }
        }
        let rebuilt = self.load_all(txn)?;
        for c in cache.cluster.changes_to(&rebuilt) {
            let _ = self.changes.send(c);
        }
        cache.cluster = Arc::new(rebuilt);
        cache.generation = generation;
        Ok(())
    }

    fn load_all(&self, txn: &ReadTransaction) -> Result<Cluster, StoreError> {
        let mut cluster = Cluster::new();
        for item in tried!(self, tried!(self, txn.open_table(INVENTORY))?.iter())? {
            let (k, v) = tried!(self, item)?;
            cluster.apply_change(Change::UpsertServer(read_server(k.value(), v.value())?));
        }
        for item in tried!(self, tried!(self, txn.open_table(ROUTES))?.iter())? {
            let (k, v) = tried!(self, item)?;
            cluster.apply_change(Change::SaveRoute(read_route(k.value(), v.value())?));
        }
        for item in tried!(self, tried!(self, txn.open_table(VOLUMES))?.iter())? {
            let (k, v) = tried!(self, item)?;
            cluster.apply_change(Change::ClaimVolume {
                volume: k.value().to_string(),
                server: v.value().to_string(),
            });
        }
        Ok(cluster)
    }

    /// Runs one write transaction that may record cluster changes. `body`
    /// returns its result and the changes it made (already written to the
    /// tables); they go to the changelog, the generation moves past them,
    /// the transaction commits, and the cache follows.
    fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<(T, Vec<Change>), StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.begin_write()?;
        let (out, changes) = body(&txn)?;
        if changes.is_empty() {
            // Nothing to record; an abort keeps the file untouched.
            tried!(self, txn.abort())?;
            return Ok(out);
        }
        let start = self.record(&txn, &changes)?;
        tried!(self, txn.commit())?;
        let end = start + changes.len() as u64;
        let mut cache = self.lock();
        if cache.generation == start {
            let cluster = Arc::make_mut(&mut cache.cluster);
            for c in changes {
                cluster.apply_change(c.clone());
                let _ = self.changes.send(c);
            }
            cache.generation = end;
        } else if cache.generation < end {
            let rtxn = self.begin_read()?;
            let generation = self.generation_in(&rtxn)?;
            self.catch_up(&mut cache, &rtxn, generation)?;
        }
        Ok(out)
    }

    /// The generation a write transaction starts from.
    fn generation_in_write(&self, txn: &WriteTransaction) -> Result<u64, StoreError> {
        self.generation_of(&tried!(self, txn.open_table(META))?)
    }

    /// Appends `changes` to the changelog and moves the generation past
    /// them, in `txn`; returns the generation the transaction started from.
    fn record(&self, txn: &WriteTransaction, changes: &[Change]) -> Result<u64, StoreError> {
        let start = self.generation_in_write(txn)?;
        let end = start + changes.len() as u64;
        let mut meta = tried!(self, txn.open_table(META))?;
        tried!(self, meta.insert(GENERATION, end.to_string().as_str()))?;
        let mut log = tried!(self, txn.open_table(CHANGELOG))?;
        for (i, c) in changes.iter().enumerate() {
            let text = c.to_value().to_string();
            tried!(self, log.insert(start + 1 + i as u64, text.as_str()))?;
        }
        if end > CHANGELOG_KEEP {
            tried!(self, log.retain_in(..=(end - CHANGELOG_KEEP), |_, _| false))?;
        }
        Ok(start)
    }

    fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut inv = tried!(self, txn.open_table(INVENTORY))?;
            let mut changes = Vec::new();
            for s in servers {
                let text = s.to_value().to_string();
                tried!(self, inv.insert(s.hostname.as_str(), text.as_str()))?;
                changes.push(Change::UpsertServer(s.clone()));
            }
            Ok(((), changes))
        })
    }

    fn remove_server(&self, hostname: &str) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut inv = tried!(self, txn.open_table(INVENTORY))?;
            let existed = tried!(self, inv.remove(hostname))?.is_some();
            let changes = if existed {
                vec![Change::RemoveServer {
                    hostname: hostname.to_string(),
                }]
            } else {
                vec![]
            };
            Ok((existed, changes))
        })
    }

    fn save_decision(&self, route: &Route) -> Result<Saved, StoreError> {
        self.write(|txn| self.save_in(txn, route))
    }

    /// Checks and writes one route in `txn` (see [`Store::save_decision`]);
    /// nothing is written on a conflict.
    fn save_in(
        &self,
        txn: &WriteTransaction,
        route: &Route,
    ) -> Result<(Saved, Vec<Change>), StoreError> {
        {
            let mut routes = tried!(self, txn.open_table(ROUTES))?;
            let mut volumes = tried!(self, txn.open_table(VOLUMES))?;
            let mut ports = tried!(self, txn.open_table(PORTS))?;
            if let Some(old) = tried!(self, routes.get(route.name.as_str()))? {
                let old = read_route(&route.name, old.value())?;
                if old.is_live() {
                    return Ok((
                        Saved::Conflict(format!(
                            "name {} is already live on {}",
                            route.name, old.server
                        )),
                        vec![],
                    ));
                }
            }
            let mut claims = Vec::new();
            for v in named_volumes(route) {
                match tried!(self, volumes.get(v))? {
                    Some(s) if s.value() != route.server => {
                        return Ok((
                            Saved::Conflict(format!(
                                "volume {v} is held by {}, not {}",
                                s.value(),
                                route.server
                            )),
                            vec![],
                        ));
                    }
                    Some(_) => {}
                    None => claims.push(v),
                }
            }
            let live = route.is_live();
            if live {
                for host in &route.host_ports {
                    let key = port_key(&route.server, *host);
                    if let Some(holder) = tried!(self, ports.get(key.as_str()))? {
                        if holder.value() != route.name {
                            return Ok((
                                Saved::Conflict(format!(
                                    "port {host} on {} is held by {}",
                                    route.server,
                                    holder.value()
                                )),
                                vec![],
                            ));
                        }
                    }
                }
            }
            let text = route.to_value().to_string();
            tried!(self, routes.insert(route.name.as_str(), text.as_str()))?;
            let mut changes = vec![Change::SaveRoute(route.clone())];
            for v in claims {
                tried!(self, volumes.insert(v, route.server.as_str()))?;
                changes.push(Change::ClaimVolume {
                    volume: v.to_string(),
                    server: route.server.clone(),
                });
            }
            if live {
                for host in &route.host_ports {
                    let key = port_key(&route.server, *host);
                    tried!(self, ports.insert(key.as_str(), route.name.as_str()))?;
                }
            }
            Ok((Saved::Saved, changes))
        }
    }

    fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError> {
        self.write(|txn| {
            let mut routes = tried!(self, txn.open_table(ROUTES))?;
            let mut ports = tried!(self, txn.open_table(PORTS))?;
            let old = match tried!(self, routes.get(name))? {
                None => return Ok((None, vec![])),
                Some(text) => read_route(name, text.value())?,
            };
            if !old.is_live() {
                return Ok((Some(old), vec![]));
            }
            let mut removed = old.clone();
            removed.state = REMOVED.to_string();
            let text = removed.to_value().to_string();
            tried!(self, routes.insert(name, text.as_str()))?;
            for host in &old.host_ports {
                let key = port_key(&old.server, *host);
                let holder = tried!(self, ports.get(key.as_str()))?.map(|h| h.value() == name);
                if holder == Some(true) {
                    tried!(self, ports.remove(key.as_str()))?;
                }
            }
            Ok((
                Some(old),
                vec![Change::RemoveRoute {
                    name: name.to_string(),
                }],
            ))
        })
    }

    fn policy_push(&self, module: &[u8], record: &PolicyRecord) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut modules = tried!(self, txn.open_table(POLICY_MODULES))?;
            tried!(self, modules.insert(record.digest.as_str(), module))?;
            let mut history = tried!(self, txn.open_table(POLICY_HISTORY))?;
            let next = match tried!(self, history.last())? {
                Some((k, _)) => k.value() + 1,
                None => 1,
            };
            let text = json!({"digest": record.digest, "pushed_at": record.pushed_at, "info": record.info})
                .to_string();
            tried!(self, history.insert(next, text.as_str()))?;
            let mut meta = tried!(self, txn.open_table(META))?;
            tried!(self, meta.insert(POLICY_ACTIVE, record.digest.as_str()))?;
        }
        tried!(self, txn.commit())
    }

    fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let txn = self.begin_read()?;
        let history = tried!(self, txn.open_table(POLICY_HISTORY))?;
        let mut out = Vec::new();
        for item in tried!(self, history.iter())? {
            let (k, v) = tried!(self, item)?;
            let key = format!("policy_history/{}", k.value());
            let value = parse_json(&key, v.value())?;
            let digest = value["digest"].as_str();
            let pushed_at = value["pushed_at"].as_u64();
            let info = value["info"].as_str();
            match (digest, pushed_at, info) {
                (Some(d), Some(p), Some(i)) => out.push(PolicyRecord {
                    digest: d.to_string(),
                    pushed_at: p,
                    info: i.to_string(),
                }),
                _ => return Err(corrupt(key, "expected {digest, pushed_at, info}")),
            }
        }
        Ok(out)
    }

    fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let txn = self.begin_read()?;
        let meta = tried!(self, txn.open_table(META))?;
        let Some(digest) = tried!(self, meta.get(POLICY_ACTIVE))? else {
            return Ok(None);
        };
        let digest = digest.value().to_string();
        let modules = tried!(self, txn.open_table(POLICY_MODULES))?;
        match tried!(self, modules.get(digest.as_str()))? {
            Some(bytes) => Ok(Some((digest, bytes.value().to_vec()))),
            None => Err(corrupt(
                "meta/policy_active".into(),
                format!("names {digest}, which is not stored"),
            )),
        }
    }

    fn policy_active_digest(&self) -> Result<Option<String>, StoreError> {
        let txn = self.begin_read()?;
        let meta = tried!(self, txn.open_table(META))?;
        let digest = tried!(self, meta.get(POLICY_ACTIVE))?;
        Ok(digest.map(|d| d.value().to_string()))
    }

    fn policy_activate(&self, digest: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let modules = tried!(self, txn.open_table(POLICY_MODULES))?;
            if tried!(self, modules.get(digest))?.is_none() {
                return Err(StoreError::NotFound(format!(
                    "no policy module with digest {digest} was pushed"
                )));
            }
            let mut meta = tried!(self, txn.open_table(META))?;
            tried!(self, meta.insert(POLICY_ACTIVE, digest))?;
        }
        tried!(self, txn.commit())
    }

    fn check(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.begin_read()?;
        let mut problems = Vec::new();
        let cluster = match self.load_all(&txn) {
            Ok(c) => c,
            Err(e) => return Ok(vec![e.to_string()]),
        };
        let ports = tried!(self, txn.open_table(PORTS))?;
        let mut claims = std::collections::BTreeMap::new();
        for item in tried!(self, ports.iter())? {
            let (k, v) = tried!(self, item)?;
            claims.insert(k.value().to_string(), v.value().to_string());
        }
        for r in cluster.routes().filter(|r| r.is_live()) {
            for host in &r.host_ports {
                let key = port_key(&r.server, *host);
                match claims.get(&key) {
                    Some(holder) if holder == &r.name => {}
                    Some(holder) => problems.push(format!(
                        "route {} holds host port {key}, but the claim names {holder}",
                        r.name
                    )),
                    None => problems.push(format!(
                        "route {} holds host port {key}, which is not claimed",
                        r.name
                    )),
                }
            }
            for v in named_volumes(r) {
                match cluster.volume_server(v) {
                    Some(s) if s == r.server => {}
                    other => problems.push(format!(
                        "route {} on {} uses volume {v}, claimed for {:?}",
                        r.name, r.server, other
                    )),
                }
            }
        }
        for (key, holder) in &claims {
            let held = cluster
                .live_route(holder)
                .is_some_and(|r| r.host_ports.iter().any(|h| port_key(&r.server, *h) == *key));
            if !held {
                problems.push(format!(
                    "port claim {key} names {holder}, which has no live route holding it"
                ));
            }
        }
        let generation = self.generation_in(&txn)?;
        let log = tried!(self, txn.open_table(CHANGELOG))?;
        if let Some((k, _)) = tried!(self, log.last())? {
            if k.value() != generation {
                problems.push(format!(
                    "generation is {generation} but the last change is {}",
                    k.value()
                ));
            }
        }
        Ok(problems)
    }
}

/// What one request of a batch came to: the decision, and whether its
/// route was saved (`None` when there was nothing to save).
type BatchOutcome = Result<(Decided, Option<Saved>), PlaceError>;

impl Inner {
    /// Decides and saves `requests` in one write transaction, one fsync.
    ///
    /// The batch holds redb's write lock (across processes) and first
    /// brings the cache to the generation the transaction starts from
    /// (reading what other processes wrote, as a read transaction sees it
    /// while no one else can commit), so
    /// every decision is made on exactly the state it is saved over, and
    /// each request sees the routes saved before it in the batch: the same
    /// answers as placing them one after another. The save's checks still
    /// run (and a conflict is reported), as a guard.
    ///
    /// The cache shows the batch's routes from their decision on (like the
    /// etcd store's saves in flight); if the commit fails, the cache is
    /// rebuilt from the file.
    fn place_batch(
        &self,
        requests: &[&Value],
        engine: &dyn Engine,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        let txn = self.begin_write()?;
        let start = self.generation_in_write(&txn)?;
        let mut cache = self.lock();
        if cache.generation != start {
            // Another process wrote since the cache last looked. While this
            // transaction holds the write lock nothing else can commit, so a
            // read transaction sees exactly the state it starts from.
            let rtxn = self.begin_read()?;
            let generation = self.generation_in(&rtxn)?;
            self.catch_up(&mut cache, &rtxn, generation)?;
            if cache.generation != start {
                cache.generation = 0;
                return Err(corrupt(
                    "meta/generation".into(),
                    format!("read {generation} beside a write from {start}"),
                ));
            }
        }
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut changes = Vec::new();
        for request in requests {
            let decided = match engine.decide(&cache.cluster, request) {
                Ok(d) => d,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            let Some(route) = decided.route.clone().filter(|_| !decided.is_error()) else {
                outcomes.push(Ok((decided, None)));
                continue;
            };
            let (saved, made) = match self.save_in(&txn, &route) {
                Ok(x) => x,
                Err(e) => {
                    cache.generation = 0; // the cache may show this batch: rebuild
                    return Err(e);
                }
            };
            if !made.is_empty() {
                let cluster = Arc::make_mut(&mut cache.cluster);
                for c in &made {
                    cluster.apply_change(c.clone());
                    let _ = self.changes.send(c.clone());
                }
                changes.extend(made);
            }
            outcomes.push(Ok((decided, Some(saved))));
        }
        if changes.is_empty() {
            drop(cache);
            tried!(self, txn.abort())?;
            return Ok(outcomes);
        }
        // The decisions are made; readers may take the cache (with this
        // batch in it) while the commit waits for the disk.
        drop(cache);
        let committed = self
            .record(&txn, &changes)
            .and_then(|_| tried!(self, txn.commit()));
        let mut cache = self.lock();
        match committed {
            Ok(()) => {
                let end = start + changes.len() as u64;
                if cache.generation < end {
                    // Unless a reader already caught up through the log.
                    cache.generation = if cache.generation == start { end } else { 0 };
                }
                Ok(outcomes)
            }
            Err(e) => {
                cache.generation = 0;
                Err(e)
            }
        }
    }
}

/// Places requests against the embedded store in batches: requests that
/// arrive while a batch is being written wait for the next one, which is
/// decided and saved in one transaction (see `Inner::place_batch`). So
/// concurrent places cost one fsync per batch instead of one each, and
/// never conflict with each other. A clone shares the one writer thread;
/// it stops when the last clone is dropped.
#[derive(Clone)]
pub struct Placer {
    jobs: std::sync::mpsc::Sender<Job>,
}

struct Job {
    request: Value,
    conflicts: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<Placed, PlaceError>>,
}

impl FileStore {
    /// A batching placer deciding with `engine`; a request whose save
    /// conflicts (another process got in first) is re-decided in the next
    /// batch, at most `max_retries` times.
    pub fn placer(
        &self,
        engine: Arc<dyn Engine>,
        max_retries: u32,
        max_batch: usize,
    ) -> Result<Placer, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let inner = self.inner.clone();
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name("flocker-placer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < max_batch {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    run_jobs(&inner, &*engine, jobs, max_retries);
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the placer: {e}")))?;
        Ok(Placer { jobs: tx })
    }
}

fn run_jobs(inner: &Inner, engine: &dyn Engine, mut jobs: Vec<Job>, max_retries: u32) {
    while !jobs.is_empty() {
        let requests: Vec<&Value> = jobs.iter().map(|j| &j.request).collect();
        let outcomes = match inner.place_batch(&requests, engine) {
            Ok(o) => o,
            Err(e) => {
                let message = e.to_string();
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(PlaceError::Store(StoreError::Unavailable(
                            message.clone(),
                        ))));
                }
                return;
            }
        };
        let mut again = Vec::new();
        for (mut job, outcome) in jobs.into_iter().zip(outcomes) {
            let retries = job.conflicts.len() as u32;
            let answer = match outcome {
                Err(e) => Err(e),
                Ok((decided, None)) => Ok(Placed {
                    decided,
                    saved: false,
                    retries,
                    conflicts: job.conflicts,
                }),
                Ok((decided, Some(Saved::Saved))) => Ok(Placed {
                    decided,
                    saved: true,
                    retries,
                    conflicts: job.conflicts,
                }),
                Ok((_, Some(Saved::Conflict(why)))) => {
                    job.conflicts.push(why);
                    if job.conflicts.len() as u32 > max_retries {
                        Err(PlaceError::Contention {
                            retries: max_retries,
                            conflicts: job.conflicts,
                        })
                    } else {
                        again.push(job);
                        continue;
                    }
                }
            };
            let _ = job.reply.send(answer);
        }
        jobs = again;
    }
}

impl Placer {
    /// Decides `request` and saves its route, batched with whatever else
    /// is being placed; the answer of [`crate::place::place`].
    pub async fn place(&self, request: Value) -> Result<Placed, PlaceError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            request,
            conflicts: Vec::new(),
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| PlaceError::Store(StoreError::Unavailable("the placer stopped".into())))?;
        answer
            .await
            .map_err(|_| PlaceError::Store(StoreError::Unavailable("the placer stopped".into())))?
    }
}

impl Store for FileStore {
    async fn cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        // A read transaction and one lookup; the rare catch-up after another
        // process wrote is short enough to run here.
        self.inner.fresh_cluster()
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

    async fn save_decision(&self, route: &Route) -> Result<Saved, StoreError> {
        let route = route.clone();
        self.blocking(move |i| i.save_decision(&route)).await
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

    async fn policy_activate(&self, digest: &str) -> Result<(), StoreError> {
        let digest = digest.to_string();
        self.blocking(move |i| i.policy_activate(&digest)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flocker_core::Port;

    fn server(h: &str) -> Server {
        Server::from_value(
            &json!({"hostname": h, "address": format!("10.0.0.{}", h.len())}),
            "s",
        )
        .unwrap()
    }

    fn route(name: &str, server: &str, ports: &[u16], volumes: &[&str]) -> Route {
        let mut r = Route::from_value(
            &json!({"name": name, "server": server, "volumes": volumes}),
            None,
            "r",
        )
        .unwrap();
        for (i, p) in ports.iter().enumerate() {
            let port = Port::parse(&format!("{}/tcp", 80 + i), "p").unwrap();
            r.ports.push((port, *p));
            r.host_ports.push(*p);
        }
        r.host_ports.sort_unstable();
        r.host_ports.dedup();
        r
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn saving_checks_name_ports_and_volumes_then_writes_all_of_it() {
        let dir = tempdir();
        let store = FileStore::open(dir.join("s.redb")).unwrap();
        rt().block_on(async {
            store.put_servers(&[server("n1"), server("n2")]).await.unwrap();
            let a = route("a.1", "n1", &[20000, 20001], &["pg:/data", "/host:/x"]);
            assert_eq!(store.save_decision(&a).await.unwrap(), Saved::Saved);
            // Same name again while live.
            let again = route("a.1", "n2", &[], &[]);
            assert!(matches!(store.save_decision(&again).await.unwrap(), Saved::Conflict(m) if m.contains("live")));
            // A port another name holds.
            let b = route("b.1", "n1", &[20001], &[]);
            assert!(matches!(store.save_decision(&b).await.unwrap(), Saved::Conflict(m) if m.contains("20001")));
            // A volume held for another server.
            let c = route("c.1", "n2", &[], &["pg"]);
            assert!(matches!(store.save_decision(&c).await.unwrap(), Saved::Conflict(m) if m.contains("pg")));
            let cluster = store.cluster().await.unwrap();
            assert_eq!(cluster.volume_server("pg"), Some("n1"));
            assert!(cluster.live_route("a.1").is_some());
            assert!(cluster.route("b.1").is_none());
            assert_eq!(store.check().unwrap(), Vec::<String>::new());
            // Removing frees the ports, keeps the volume claim.
            let old = store.remove_route("a.1").await.unwrap().unwrap();
            assert!(old.is_live());
            assert_eq!(store.save_decision(&b).await.unwrap(), Saved::Saved);
            let cluster = store.cluster().await.unwrap();
            assert_eq!(cluster.route("a.1").unwrap().state, REMOVED);
            assert_eq!(cluster.volume_server("pg"), Some("n1"));
            assert_eq!(store.check().unwrap(), Vec::<String>::new());
        });
    }

    #[test]
    fn another_handle_sees_writes_through_the_changelog_and_after_reopen() {
        let dir = tempdir();
        let path = dir.join("s.redb");
        let one = FileStore::open(&path).unwrap();
        let two = FileStore::open(&path).unwrap();
        rt().block_on(async {
            let mut changes = two.changes();
            one.put_servers(&[server("n1")]).await.unwrap();
            one.save_decision(&route("a.1", "n1", &[20000], &[]))
                .await
                .unwrap();
            let c2 = two.cluster().await.unwrap();
            assert!(c2.live_route("a.1").is_some());
            assert!(matches!(
                changes.recv().await.unwrap(),
                Change::UpsertServer(_)
            ));
            assert!(two.remove_server("n1").await.unwrap());
            assert!(!two.remove_server("n1").await.unwrap());
            assert!(one.cluster().await.unwrap().server("n1").is_none());
        });
        drop(one);
        drop(two);
        let three = FileStore::open(&path).unwrap();
        let c = rt().block_on(three.cluster()).unwrap();
        assert_eq!(c.routes().count(), 1);
        assert_eq!(c.servers().count(), 0);
    }

    #[test]
    fn policy_history_and_rollback() {
        let dir = tempdir();
        let store = FileStore::open(dir.join("s.redb")).unwrap();
        rt().block_on(async {
            assert_eq!(store.policy_active().await.unwrap(), None);
            for (d, bytes) in [("aa", b"one".as_slice()), ("bb", b"two".as_slice())] {
                let rec = PolicyRecord {
                    digest: d.into(),
                    pushed_at: 1,
                    info: "{}".into(),
                };
                store.policy_push(bytes, rec).await.unwrap();
            }
            assert_eq!(store.policy_active().await.unwrap().unwrap().0, "bb");
            assert_eq!(store.policy_history().await.unwrap().len(), 2);
            store.policy_activate("aa").await.unwrap();
            assert_eq!(
                store.policy_active().await.unwrap(),
                Some(("aa".into(), b"one".to_vec()))
            );
            assert!(matches!(
                store.policy_activate("cc").await,
                Err(StoreError::NotFound(_))
            ));
        });
    }

    #[test]
    fn check_finds_orphan_and_missing_claims_and_bad_records() {
        let dir = tempdir();
        let store = FileStore::open(dir.join("s.redb")).unwrap();
        rt().block_on(async {
            store.put_servers(&[server("n1")]).await.unwrap();
            let a = route("a.1", "n1", &[20000, 20001], &["pg"]);
            store.save_decision(&a).await.unwrap();
        });
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
        // Break the records behind the store's back, one way at a time.
        let db = &store.inner.db;
        let txn = db.begin_write().unwrap();
        {
            let mut ports = txn.open_table(PORTS).unwrap();
            ports.remove("n1/20001").unwrap();
            ports.insert("n1/29999", "ghost.1").unwrap();
            let mut volumes = txn.open_table(VOLUMES).unwrap();
            volumes.insert("pg", "n2").unwrap();
        }
        txn.commit().unwrap();
        let problems = store.check().unwrap();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("n1/20001, which is not claimed"),
            "{problems:?}"
        );
        assert!(problems[1].contains("volume pg"), "{problems:?}");
        assert!(
            problems[2].contains("n1/29999 names ghost.1"),
            "{problems:?}"
        );
        let txn = db.begin_write().unwrap();
        txn.open_table(ROUTES)
            .unwrap()
            .insert("b.1", "{not json")
            .unwrap();
        txn.commit().unwrap();
        let problems = store.check().unwrap();
        assert!(
            problems[0].contains("/routes/containers/b.1"),
            "{problems:?}"
        );
    }

    #[test]
    fn diff_turns_one_cluster_into_the_other() {
        let mut old = Cluster::new();
        let mut new = Cluster::new();
        for c in [&mut old, &mut new] {
            c.apply_change(Change::UpsertServer(server("keep")));
            c.apply_change(Change::SaveRoute(route("same.1", "keep", &[20000], &[])));
        }
        old.apply_change(Change::UpsertServer(server("gone")));
        old.apply_change(Change::SaveRoute(route("old.1", "gone", &[20001], &["v1"])));
        old.apply_change(Change::ClaimVolume {
            volume: "v1".into(),
            server: "gone".into(),
        });
        new.apply_change(Change::UpsertServer(server("added")));
        new.apply_change(Change::SaveRoute(route(
            "new.1",
            "added",
            &[20002],
            &["v2"],
        )));
        new.apply_change(Change::ClaimVolume {
            volume: "v2".into(),
            server: "added".into(),
        });
        let mut patched = old.clone();
        for c in old.changes_to(&new) {
            patched.apply_change(c);
        }
        assert_eq!(patched.to_snapshot(), new.to_snapshot());
        assert!(new.changes_to(&new).is_empty());
    }

    #[test]
    fn the_placer_batches_concurrent_places_as_if_one_after_another() {
        let dir = tempdir();
        let store = FileStore::open(dir.join("s.redb")).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            store
                .put_servers(&[server("n1"), server("n2")])
                .await
                .unwrap();
            let placer = store.placer(Arc::new(crate::place::Native), 8, 64).unwrap();
            let req = |n: String| {
                json!({"name": n, "container": {"Image": "w"},
                       "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}})
            };
            let tasks: Vec<_> = (0..40)
                .map(|i| {
                    let (p, r) = (placer.clone(), req(format!("w.{i}")));
                    tokio::spawn(async move { p.place(r).await })
                })
                .collect();
            // The same name twice in flight: one is placed, the other is
            // decided after it and refused.
            let twins: Vec<_> = (0..2)
                .map(|_| {
                    let (p, r) = (placer.clone(), req("twin.1".into()));
                    tokio::spawn(async move { p.place(r).await })
                })
                .collect();
            for t in tasks {
                let placed = t.await.unwrap().unwrap();
                assert!(placed.saved, "{}", placed.decided.output);
                assert_eq!(placed.retries, 0);
            }
            let mut kinds: Vec<Option<String>> = Vec::new();
            for t in twins {
                kinds.push(t.await.unwrap().unwrap().decided.error_kind);
            }
            kinds.sort();
            assert_eq!(kinds, vec![None, Some("name_in_use".to_string())]);
            let cluster = store.cluster().await.unwrap();
            assert_eq!(cluster.routes().count(), 41);
            let mut ports = std::collections::BTreeSet::new();
            for r in cluster.routes() {
                assert!(ports.insert((r.server.clone(), r.ports[0].1)), "{r:?}");
            }
            // Least loaded, as one after another: 21 and 20 (or 20 and 21).
            let on_n1 = cluster.routes().filter(|r| r.server == "n1").count();
            assert!(on_n1 == 20 || on_n1 == 21, "{on_n1}");
        });
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
        // Another handle (another process) reads the same records back.
        let other = FileStore::open(dir.join("s.redb")).unwrap();
        let c = rt.block_on(other.cluster()).unwrap();
        assert_eq!(c.routes().count(), 41);
    }

    #[test]
    fn placers_of_two_handles_catch_up_under_the_write_lock_and_never_conflict() {
        let dir = tempdir();
        let one = FileStore::open(dir.join("s.redb")).unwrap();
        let two = FileStore::open(dir.join("s.redb")).unwrap();
        rt().block_on(async {
            one.put_servers(&[server("n1")]).await.unwrap();
            let p1 = one.placer(Arc::new(crate::place::Native), 0, 8).unwrap();
            let p2 = two.placer(Arc::new(crate::place::Native), 0, 8).unwrap();
            for i in 0..10 {
                let placer = if i % 2 == 0 { &p1 } else { &p2 };
                let req = json!({"name": format!("w.{i}"), "container": {"Image": "w"},
                                 "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}});
                // max_retries 0: a lost save would be an error.
                let placed = placer.place(req).await.unwrap();
                assert!(placed.saved);
                let port = placed.decided.route.unwrap().ports[0].1;
                assert_eq!(port, 20000 + i);
            }
        });
        assert_eq!(one.check().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn every_host_port_of_a_route_is_claimed_checked_and_freed() {
        let dir = tempdir();
        let store = FileStore::open(dir.join("s.redb")).unwrap();
        rt().block_on(async {
            store.put_servers(&[server("n1")]).await.unwrap();
            // 80/tcp bound twice: `ports` records the first, `host_ports` both.
            let mut a = route("a.1", "n1", &[20000], &[]);
            a.host_ports = vec![20000, 20001];
            assert_eq!(store.save_decision(&a).await.unwrap(), Saved::Saved);
            let b = route("b.1", "n1", &[20001], &[]);
            match store.save_decision(&b).await.unwrap() {
                Saved::Conflict(why) => assert!(why.contains("port 20001"), "{why}"),
                Saved::Saved => panic!("b.1 saved over a.1's second binding"),
            }
            assert_eq!(store.check().unwrap(), Vec::<String>::new());
            store.remove_route("a.1").await.unwrap();
            assert_eq!(store.save_decision(&b).await.unwrap(), Saved::Saved);
        });
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn places_binding_one_port_twice_never_share_a_host_port() {
        let dir = tempdir();
        let one = FileStore::open(dir.join("s.redb")).unwrap();
        let two = FileStore::open(dir.join("s.redb")).unwrap();
        let mut bound = std::collections::BTreeSet::new();
        rt().block_on(async {
            one.put_servers(&[server("n1")]).await.unwrap();
            let p1 = one.placer(Arc::new(crate::place::Native), 0, 8).unwrap();
            let p2 = two.placer(Arc::new(crate::place::Native), 0, 8).unwrap();
            for i in 0..6 {
                let placer = if i % 2 == 0 { &p1 } else { &p2 };
                let req = json!({"name": format!("w.{i}"), "container": {"Image": "w",
                    "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}, {"HostIp": "::1"}]}}}});
                let placed = placer.place(req).await.unwrap();
                assert!(placed.saved, "{}", placed.decided.output);
                let route = placed.decided.route.unwrap();
                assert_eq!(route.host_ports.len(), 2, "{route:?}");
                for p in route.host_ports {
                    assert!(bound.insert(p), "host port {p} bound twice");
                }
            }
        });
        assert_eq!(one.check().unwrap(), Vec::<String>::new());
        assert_eq!(bound.len(), 12);
    }

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "flocker-file-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
