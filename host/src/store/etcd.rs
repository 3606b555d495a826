//! The etcd store: several hosts share one etcd (SPEC section 5).
//!
//! # Keys
//!
//! Under a configurable prefix `P` (default none):
//!
//! | key | value |
//! |---|---|
//! | `P/inventory/<hostname>` | server record (JSON) |
//! | `P/routes/containers/<name>` | route record (JSON) |
//! | `P/routes/volumes/<volume>` | hostname holding the volume |
//! | `P/ports/<hostname>/<port>` | name of the container holding the host port |
//! | `P/policy/modules/<digest>` | `{"size": bytes, "chunks": n}`, written last, so a module is complete once it exists |
//! | `P/policy/modules/<digest>/<0000n>` | the module bytes, in chunks of at most 1 MiB (etcd refuses requests over 1.5 MiB) |
//! | `P/policy/history/<seq>` | `{"digest", "pushed_at", "info"}`, `seq` zero-padded to 20 digits |
//! | `P/policy/active` | the active digest |
//!
//! # The cache
//!
//! [`EtcdStore::connect`] reads inventory, routes, volume claims and the
//! active policy digest in one transaction at revision `R`, then a task
//! watches `P/` from `R + 1` and turns each event into a [`Change`], applied
//! to the cached [`Cluster`] (copy-on-write: readers keep the `Arc` they
//! got) and sent to [`Store::changes`] receivers.
//!
//! Resync: when the watch stream breaks (member gone, connection lost) the
//! task marks the cache down, moves to the next member and watches again
//! from the last revision it applied plus one, so no event is missed. When etcd answers that this revision is compacted,
//! or the watch is canceled for any other reason, the task re-reads
//! everything at a new revision, sends the difference between the old and
//! new cluster as `Change`s, and watches from there. While the cache is down,
//! [`Store::cluster`] waits up to the request timeout for it to come back,
//! then fails with [`StoreError::Unavailable`].
//!
//! # Saving
//!
//! [`Store::save_decision`] is one transaction. Its compares: the name key
//! absent, or at exactly the `mod_revision` at which the cache saw it not
//! live; each `P/ports/<server>/<port>` key absent; each new volume key
//! absent, or holding the route's server already. On failure the same
//! transaction reads those keys back, which says what was taken; before it
//! returns `Conflict`, the store waits until its cache has applied those
//! keys' revisions, so the caller's re-decision sees them. After a
//! successful write it likewise waits for its own write to reach the cache,
//! so a host's next decision sees its previous one. While a save is in
//! flight its route is shown in the cached cluster (not in etcd's records
//! the saves compare against, nor in [`Store::changes`]), so that the
//! host's concurrent decisions take other ports instead of losing to it.
//!
//! # Members and failures
//!
//! The store keeps one client per member and sends each request to a
//! preferred member; a failed request moves the preference on and is sent
//! again to the next member, within the request timeout (each attempt gets
//! a third of it). So a dead member costs one failed attempt, and a leader
//! election is ridden through. The watch follows: when requests leave a
//! member, the watch leaves it too and resumes on the next one, so a hung
//! member (connections open, nothing answered) does not hold the cache back
//! until keepalive (10 s + 5 s) notices. A retried save whose earlier
//! attempt may have been applied (the answer was lost) is recognised: when the retry finds
//! the name, ports and volumes holding exactly what this save writes, it
//! reports `Saved`. When no member answers, every call fails with
//! [`StoreError::Unavailable`] naming the endpoints and the last error, within
//! about the request timeout (at once when every connection is refused); a
//! transaction is applied whole or not at all, so nothing is left half written.
//! A request etcd itself refuses (too large, too many operations) fails at
//! once with etcd's reason.
//!
//! # Limits
//!
//! - `http://` endpoints only: no TLS, no etcd authentication.
//! - The member list is the one given; members added later are not found.
//! - A save holds one compare per host port and new volume plus the name,
//!   at most [`EtcdConfig::max_txn_ops`] (etcd's `--max-txn-ops`, 128 by
//!   default); a route with more is refused whole.
//! - A lost answer is taken for our own write when the keys hold exactly
//!   what this save writes; two hosts writing the very same route for the
//!   same name at the same moment, one of them losing the answer, would
//!   both report `Saved` (the Docker daemon then refuses the duplicate name).
//! - Volume claims are never released (the data stays on that server).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use flocker_core::{Change, Cluster, Route, Server};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::{named_volumes, PolicyRecord, Saved, Store, StoreError};

/// etcd's default `--max-txn-ops`; a transaction with more compares or
/// more operations is refused. See [`EtcdConfig::max_txn_ops`].
pub const MAX_TXN_OPS: usize = 128;

/// The largest answer the store accepts from etcd (the whole state is read
/// in one transaction; gRPC's default limit is 4 MiB).
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

fn kv(client: &Client) -> etcd_client::KvClient {
    client.kv_client().max_decoding_message_size(MAX_MESSAGE)
}

/// Policy modules are stored in chunks of this many bytes.
const MODULE_CHUNK: usize = 1024 * 1024;

/// How many times a read-modify-write (route removal, policy push) is
/// retried when another writer changed its keys in between.
const RMW_ATTEMPTS: usize = 16;

/// How to reach etcd and where the records live.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `host:port` or `http://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// Key prefix (`/flocker`), or empty for none.
    pub prefix: String,
    /// Time allowed to open a connection to one member.
    pub connect_timeout: Duration,
    /// Time allowed for one request, and for the cache to recover before
    /// [`Store::cluster`] gives up.
    pub request_timeout: Duration,
    /// The members' `--max-txn-ops`: a save needs one compare per host port
    /// and new volume plus the name, so a route with more claims than this
    /// is refused before it is sent.
    pub max_txn_ops: usize,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            prefix: prefix.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_txn_ops: MAX_TXN_OPS,
        }
    }
}

/// The etcd key layout under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

/// What a watched key is.
#[derive(Debug, PartialEq)]
enum Kind<'a> {
    Server(&'a str),
    Route(&'a str),
    Volume(&'a str),
    PolicyActive,
    Other,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Keys { prefix }
    }
    fn root(&self) -> String {
        format!("{}/", self.prefix)
    }
    fn servers(&self) -> String {
        format!("{}/inventory/", self.prefix)
    }
    fn server(&self, hostname: &str) -> String {
        format!("{}/inventory/{hostname}", self.prefix)
    }
    fn routes(&self) -> String {
        format!("{}/routes/containers/", self.prefix)
    }
    fn route(&self, name: &str) -> String {
        format!("{}/routes/containers/{name}", self.prefix)
    }
    fn volumes(&self) -> String {
        format!("{}/routes/volumes/", self.prefix)
    }
    fn volume(&self, volume: &str) -> String {
        format!("{}/routes/volumes/{volume}", self.prefix)
    }
    fn port(&self, server: &str, port: u16) -> String {
        format!("{}/ports/{server}/{port}", self.prefix)
    }
    fn module(&self, digest: &str) -> String {
        format!("{}/policy/modules/{digest}", self.prefix)
    }
    fn module_chunk(&self, digest: &str, index: usize) -> String {
        format!("{}/policy/modules/{digest}/{index:05}", self.prefix)
    }
    fn history(&self) -> String {
        format!("{}/policy/history/", self.prefix)
    }
    fn history_entry(&self, seq: u64) -> String {
        format!("{}/policy/history/{seq:020}", self.prefix)
    }
    fn active(&self) -> String {
        format!("{}/policy/active", self.prefix)
    }

    fn kind<'a>(&self, key: &'a str) -> Kind<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return Kind::Other;
        };
        let named = |n: &'a str| !n.is_empty() && !n.contains('/');
        if let Some(h) = rest.strip_prefix("/inventory/").filter(|n| named(n)) {
            Kind::Server(h)
        } else if let Some(n) = rest
            .strip_prefix("/routes/containers/")
            .filter(|n| named(n))
        {
            Kind::Route(n)
        } else if let Some(v) = rest.strip_prefix("/routes/volumes/").filter(|n| named(n)) {
            Kind::Volume(v)
        } else if rest == "/policy/active" {
            Kind::PolicyActive
        } else {
            Kind::Other
        }
    }
}

/// Where the cache stands, shared with waiters.
#[derive(Debug, Clone)]
struct Status {
    /// The etcd revision of the last event (or snapshot) applied.
    revision: i64,
    /// Why the cache is not following etcd right now, if it is not.
    down: Option<String>,
}

struct Cache {
    /// What etcd holds, plus the routes of this store's saves in flight
    /// (see [`Pending`]).
    cluster: Arc<Cluster>,
    /// `mod_revision` of each route key, for the name compare.
    route_revs: HashMap<String, i64>,
    active_policy: Option<String>,
    /// Keys whose records could not be read, with the reason.
    corrupt: BTreeMap<String, String>,
    /// Saves in flight, by id.
    pending: BTreeMap<u64, Pending>,
    next_pending: u64,
}

/// A save in flight. Its route is shown in the cached cluster from just
/// before its transaction until the watch brings the outcome back, so that
/// concurrent decisions of this host count it (its host ports, its load)
/// instead of all choosing the same port and losing to each other. What
/// the overlay hides of etcd's records is kept here, updated by the watch,
/// and put back when the save ends. Only decisions see the overlay: saves
/// compare against etcd's records, and [`Store::changes`] carries etcd's
/// changes only.
struct Pending {
    route: Route,
    /// None when the overlay was not applied (the name was live already);
    /// else etcd's record of the name, which the overlay hides.
    hidden_route: Option<Option<Route>>,
    /// Volume claims the overlay made, with etcd's claim they hide.
    hidden_volumes: Vec<(String, Option<String>)>,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            cluster: Arc::new(Cluster::new()),
            route_revs: HashMap::new(),
            active_policy: None,
            corrupt: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_pending: 0,
        }
    }

    /// etcd's record of a route, seen through any overlay.
    fn stored_route(&self, name: &str) -> Option<&Route> {
        for p in self.pending.values() {
            if let (true, Some(hidden)) = (p.route.name == name, &p.hidden_route) {
                return hidden.as_ref();
            }
        }
        self.cluster.route(name)
    }

    /// etcd's claim of a volume, seen through any overlay.
    fn stored_volume(&self, volume: &str) -> Option<&str> {
        for p in self.pending.values() {
            if let Some((_, hidden)) = p.hidden_volumes.iter().find(|(v, _)| v == volume) {
                return hidden.as_deref();
            }
        }
        self.cluster.volume_server(volume)
    }

    /// Shows a save in flight in the cluster; returns its id.
    fn add_pending(&mut self, route: &Route) -> u64 {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut pending = Pending {
            route: route.clone(),
            hidden_route: None,
            hidden_volumes: Vec::new(),
        };
        if route.is_live() {
            overlay(Arc::make_mut(&mut self.cluster), &mut pending);
        }
        self.pending.insert(id, pending);
        id
    }

    /// A save ended (saved, lost or failed): put back what its overlay hid.
    fn end_pending(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            unoverlay(Arc::make_mut(&mut self.cluster), p);
        }
    }

    /// Applies one of etcd's changes: to the cluster, and to what overlays hide.
    fn apply_stored(&mut self, change: &Change) {
        for p in self.pending.values_mut() {
            match change {
                Change::SaveRoute(r) if r.name == p.route.name && p.hidden_route.is_some() => {
                    p.hidden_route = Some(Some(r.clone()));
                }
                Change::DeleteRoute { name }
                    if *name == p.route.name && p.hidden_route.is_some() =>
                {
                    p.hidden_route = Some(None);
                }
                Change::ClaimVolume { volume, server } => {
                    for (v, hidden) in p.hidden_volumes.iter_mut() {
                        if v == volume {
                            *hidden = Some(server.clone());
                        }
                    }
                }
                Change::ReleaseVolume { volume } => {
                    for (v, hidden) in p.hidden_volumes.iter_mut() {
                        if v == volume {
                            *hidden = None;
                        }
                    }
                }
                _ => {}
            }
        }
        Arc::make_mut(&mut self.cluster).apply_change(change.clone());
    }
}

fn overlay(cluster: &mut Cluster, p: &mut Pending) {
    let route = &p.route;
    if cluster.live_route(&route.name).is_some() {
        return;
    }
    p.hidden_route = Some(cluster.route(&route.name).cloned());
    for v in named_volumes(route) {
        if cluster.volume_server(v).is_none() {
            p.hidden_volumes.push((v.to_string(), None));
            cluster.apply_change(Change::ClaimVolume {
                volume: v.to_string(),
                server: route.server.clone(),
            });
        }
    }
    cluster.apply_change(Change::SaveRoute(route.clone()));
}

fn unoverlay(cluster: &mut Cluster, p: Pending) {
    let Some(hidden) = p.hidden_route else {
        return;
    };
    match hidden {
        Some(r) => cluster.apply_change(Change::SaveRoute(r)),
        None => cluster.apply_change(Change::DeleteRoute { name: p.route.name }),
    }
    for (volume, hidden) in p.hidden_volumes {
        cluster.apply_change(match hidden {
            Some(server) => Change::ClaimVolume { volume, server },
            None => Change::ReleaseVolume { volume },
        });
    }
    // Taking the overlay out leaves a port another live route holds too
    // in use: the cluster counts each port's holders.
}

struct Shared {
    cache: RwLock<Cache>,
    changes: broadcast::Sender<Change>,
    status: watch::Sender<Status>,
    policy: watch::Sender<Option<String>>,
    /// Full re-reads after a canceled (compacted) watch.
    reloads: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }
    fn set_down(&self, why: String) {
        self.status.send_modify(|s| s.down = Some(why));
    }
}

/// The state store on etcd. Dropping it stops its watch.
pub struct EtcdStore {
    members: Arc<Members>,
    keys: Keys,
    config: EtcdConfig,
    shared: Arc<Shared>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// One client per etcd member and the member requests go to first. A
/// request that fails moves the preference to the next member and is tried
/// again there, within about the request timeout: a member that died costs
/// one failed attempt, not a share of every later request.
struct Members {
    clients: Vec<Client>,
    preferred: AtomicUsize,
    /// Told each time requests move to another member, so that the watch
    /// leaves a member that stopped answering (a hung one keeps its
    /// connections open) instead of waiting for keepalive to notice.
    moved: watch::Sender<usize>,
    config: EtcdConfig,
}

/// How sure a failed request is not to have been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// The member was not reached (connection refused).
    Refused,
    /// The member refused it unapplied (no leader).
    NotApplied,
    /// It may have been applied: the connection broke or it timed out after sending.
    Maybe,
    /// etcd refused the request itself (too large, too many operations, not
    /// permitted): sending it again anywhere gives the same answer.
    Refusal,
}

fn classify(e: &etcd_client::Error) -> Failed {
    if let etcd_client::Error::GRpcStatus(status) = e {
        let code = format!("{:?}", status.code());
        if matches!(
            code.as_str(),
            "InvalidArgument"
                | "FailedPrecondition"
                | "PermissionDenied"
                | "Unauthenticated"
                | "OutOfRange"
                | "Unimplemented"
                | "AlreadyExists"
                | "NotFound"
        ) {
            return Failed::Refusal;
        }
    }
    let text = e.to_string();
    if text.contains("tcp connect error") || text.contains("Connection refused") {
        Failed::Refused
    } else if text.contains("etcdserver: no leader") {
        Failed::NotApplied
    } else {
        Failed::Maybe
    }
}

impl Members {
    fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.clients.len().max(1)
    }

    /// Member `i` failed: prefer the next one (unless another request
    /// already moved on).
    fn failed(&self, i: usize) {
        let next = (i + 1) % self.clients.len().max(1);
        if self
            .preferred
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.moved.send_replace(next);
        }
    }

    /// Runs `op` on the preferred member, moving to the next on failure,
    /// until it succeeds or `request_timeout` has passed. Each attempt gets
    /// a third of that (at least 250 ms), so that a request stuck on a
    /// member that lost its leader is sent again once another is elected.
    /// Two whole rounds of refused connections end it at once: etcd is
    /// down. The flag says whether an earlier attempt may have been applied.
    async fn call<T, F, Fut>(&self, what: &str, mut op: F) -> Result<(T, bool), StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let n = self.clients.len();
        let timeout = self.config.request_timeout;
        let per_attempt = (timeout / 3).max(Duration::from_millis(250));
        let start = Instant::now();
        let mut maybe = false;
        let mut last = String::from("no member tried");
        let (mut tried, mut refused, mut refused_rounds) = (0usize, 0usize, 0u32);
        let mut backoff = Duration::from_millis(25);
        for attempt in 1usize.. {
            let i = self.preferred();
            let Some(client) = self.clients.get(i) else {
                break;
            };
            match tokio::time::timeout(per_attempt, op(client.clone())).await {
                Ok(Ok(v)) => return Ok((v, maybe)),
                Ok(Err(e)) => {
                    match classify(&e) {
                        Failed::Refused => refused += 1,
                        Failed::NotApplied => {}
                        Failed::Maybe => maybe = true,
                        Failed::Refusal => {
                            return Err(StoreError::Unavailable(format!(
                                "etcd refused {what}: {}",
                                status_message(&e)
                            )))
                        }
                    }
                    last = e.to_string();
                }
                Err(_) => {
                    maybe = true;
                    last = format!("no answer in {per_attempt:?}");
                }
            }
            self.failed(i);
            tried += 1;
            let spent = start.elapsed();
            if tried >= n {
                refused_rounds = if refused == tried {
                    refused_rounds + 1
                } else {
                    0
                };
                (tried, refused) = (0, 0);
                if refused_rounds >= 2 || (spent >= timeout && attempt >= 2) {
                    break;
                }
                tokio::time::sleep(backoff.min(timeout.saturating_sub(spent))).await;
                backoff = (backoff * 2).min(Duration::from_millis(400));
            } else if spent >= timeout && attempt >= 2 {
                break;
            }
        }
        Err(unavailable(&self.config, what, last))
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<(TxnResponse, bool), StoreError> {
        self.call(what, |c| {
            let txn = txn.clone();
            async move { kv(&c).txn(txn).await }
        })
        .await
    }
}

/// The server's own words for a refusal, without the transport's detail.
fn status_message(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    }
}

/// Whether the keys a failed save read back hold exactly what this save
/// writes: an earlier attempt of it was applied.
fn is_ours(route: &Route, route_json: &str, checks: &[Check], found: &[Vec<KeyValue>]) -> bool {
    checks.iter().zip(found).all(|(check, kvs)| {
        let value = kvs.first().map(KeyValue::value);
        match check {
            Check::Name(_) => value == Some(route_json.as_bytes()),
            Check::Port(_) => value == Some(route.name.as_bytes()),
            Check::Volume(_) => value == Some(route.server.as_bytes()),
        }
    }) && checks.len() == found.len()
}

/// One consistent read of everything the cache holds.
struct Snapshot {
    revision: i64,
    cache: Cache,
}

fn unavailable(config: &EtcdConfig, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!(
        "etcd at {}: {what}: {e}",
        config.endpoints.join(",")
    ))
}

impl EtcdStore {
    /// Connects, reads the state once and starts following it. Fails with
    /// [`StoreError::Unavailable`] within about the request timeout when no
    /// member answers.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore, StoreError> {
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::BadUrl {
                url: String::new(),
                reason: "no etcd endpoint given".into(),
            });
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout)
            // etcd refuses pings more often than every 5 s (too_many_pings).
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        // One client per member: the store picks the member itself, so a
        // dead one is skipped instead of taking a share of the requests.
        let mut clients = Vec::with_capacity(endpoints.len());
        for e in &endpoints {
            let client = tokio::time::timeout(
                config.request_timeout,
                Client::connect([e.as_str()], Some(options.clone())),
            )
            .await
            .map_err(|_| unavailable(&config, "connect", "timed out"))?
            .map_err(|err| unavailable(&config, &format!("connect to {e}"), err))?;
            clients.push(client);
        }
        let members = Arc::new(Members {
            clients,
            preferred: AtomicUsize::new(0),
            moved: watch::channel(0).0,
            config: config.clone(),
        });
        let keys = Keys::new(&config.prefix);
        let snapshot = load(&members, &keys).await?;
        let (changes, _) = broadcast::channel(4096);
        let (status, _) = watch::channel(Status {
            revision: snapshot.revision,
            down: None,
        });
        let (policy, _) = watch::channel(snapshot.cache.active_policy.clone());
        let shared = Arc::new(Shared {
            cache: RwLock::new(snapshot.cache),
            changes,
            status,
            policy,
            reloads: std::sync::atomic::AtomicU64::new(0),
        });
        let watcher = tokio::spawn(follow(
            members.clone(),
            keys.clone(),
            shared.clone(),
            snapshot.revision,
        ));
        Ok(EtcdStore {
            members,
            keys,
            config,
            shared,
            watcher,
        })
    }

    /// The revision the cache has applied up to.
    pub fn revision(&self) -> i64 {
        self.shared.status.borrow().revision
    }

    /// Waits (up to the request timeout) until the cache has applied
    /// `revision`; false when it did not get there in time.
    pub async fn wait_for_revision(&self, revision: i64) -> bool {
        let mut rx = self.shared.status.subscribe();
        let wait = async { rx.wait_for(|s| s.revision >= revision).await.is_ok() };
        tokio::time::timeout(self.config.request_timeout, wait)
            .await
            .unwrap_or(false)
    }

    /// How many times the cache re-read all state because its watch was
    /// canceled (its revision compacted).
    pub fn reloads(&self) -> u64 {
        self.shared
            .reloads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why the cache is not following etcd right now, or None when it is.
    pub fn down(&self) -> Option<String> {
        self.shared.status.borrow().down.clone()
    }

    /// The active policy digest as the watch last saw it; changes when any
    /// host pushes or rolls back.
    pub fn policy_watch(&self) -> watch::Receiver<Option<String>> {
        self.shared.policy.subscribe()
    }

    /// Keys whose records could not be read (and are left out of the
    /// cluster), with the reason.
    pub fn corrupt_keys(&self) -> Vec<(String, String)> {
        self.shared
            .read()
            .corrupt
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse, StoreError> {
        Ok(self.members.txn(what, txn).await?.0)
    }

    async fn get(
        &self,
        what: &str,
        key: String,
        options: Option<GetOptions>,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let (mut resp, _) = self
            .members
            .call(what, |c| {
                let (key, options) = (key.clone(), options.clone());
                async move { kv(&c).get(key, options).await }
            })
            .await?;
        Ok(resp.take_kvs())
    }

    /// Waits for the cache to apply a write of ours (read-your-writes). A
    /// cache that does not catch up in time is left to its resync: the
    /// write is done either way.
    async fn settle(&self, revision: i64) {
        if !self.wait_for_revision(revision).await {
            tracing::warn!(
                revision,
                "etcd cache did not reach its own write in time; it will resync"
            );
        }
    }
}

fn header_revision(resp: &TxnResponse) -> i64 {
    resp.header().map_or(0, |h| h.revision())
}

/// The key-values a transaction's `get` operations returned, in order.
fn txn_gets(resp: &TxnResponse) -> Vec<Vec<KeyValue>> {
    resp.op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(mut g) => Some(g.take_kvs()),
            _ => None,
        })
        .collect()
}

fn utf8(kv: &KeyValue) -> Result<(&str, &str), (String, String)> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let k = kv
        .key_str()
        .map_err(|_| (key.clone(), "key is not UTF-8".to_string()))?;
    let v = kv
        .value_str()
        .map_err(|_| (key, "value is not UTF-8".to_string()))?;
    Ok((k, v))
}

fn parse_json(key: &str, text: &str) -> Result<Value, (String, String)> {
    serde_json::from_str(text).map_err(|e| (key.to_string(), format!("not JSON: {e}")))
}

fn parse_server(key: &str, hostname: &str, text: &str) -> Result<Server, (String, String)> {
    let v = parse_json(key, text)?;
    let server = Server::from_value(&v, key).map_err(|e| (key.to_string(), e.to_string()))?;
    if server.hostname != hostname {
        return Err((
            key.to_string(),
            format!("record names hostname {:?}", server.hostname),
        ));
    }
    Ok(server)
}

fn parse_route(key: &str, name: &str, text: &str) -> Result<Route, (String, String)> {
    let v = parse_json(key, text)?;
    let mut route =
        Route::from_value(&v, Some(name), key).map_err(|e| (key.to_string(), e.to_string()))?;
    // The key is what names and compares go by.
    route.name = name.to_string();
    Ok(route)
}

/// Reads inventory, routes, volume claims and the active policy digest in
/// one transaction, so they are all at one revision.
async fn load(members: &Members, keys: &Keys) -> Result<Snapshot, StoreError> {
    let txn = Txn::new().and_then(vec![
        TxnOp::get(keys.servers(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.routes(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.volumes(), Some(GetOptions::new().with_prefix())),
        TxnOp::get(keys.active(), None),
    ]);
    let (resp, _) = members.txn("read state", txn).await?;
    let revision = header_revision(&resp);
    let mut cluster = Cluster::new();
    let mut cache = Cache::new();
    for kvs in txn_gets(&resp) {
        for item in &kvs {
            if let Some(change) = read_put(keys, item, &mut cache) {
                cluster.apply_change(change);
            }
        }
    }
    cache.cluster = Arc::new(cluster);
    Ok(Snapshot { revision, cache })
}

/// The change a put of `kv` makes, keeping the cache's side tables; None
/// for keys the cluster does not hold. A record that cannot be read is
/// recorded in `cache.corrupt` and reads as a deletion.
fn read_put(keys: &Keys, kv: &KeyValue, cache: &mut Cache) -> Option<Change> {
    let (key, text) = match utf8(kv) {
        Ok(kt) => kt,
        Err((key, reason)) => {
            tracing::warn!(%key, %reason, "unreadable etcd record");
            cache.corrupt.insert(key, reason);
            return None;
        }
    };
    let kind = keys.kind(key);
    if let Kind::Route(name) = kind {
        cache.route_revs.insert(name.to_string(), kv.mod_revision());
    }
    let parsed = match kind {
        Kind::Server(h) => parse_server(key, h, text).map(Change::UpsertServer),
        Kind::Route(n) => parse_route(key, n, text).map(Change::SaveRoute),
        Kind::Volume(v) => {
            if text.is_empty() {
                Err((key.to_string(), "empty hostname".to_string()))
            } else {
                Ok(Change::ClaimVolume {
                    volume: v.to_string(),
                    server: text.to_string(),
                })
            }
        }
        Kind::PolicyActive => {
            cache.active_policy = Some(text.to_string());
            return None;
        }
        Kind::Other => return None,
    };
    match parsed {
        Ok(change) => {
            cache.corrupt.remove(key);
            Some(change)
        }
        Err((key, reason)) => {
            tracing::warn!(%key, %reason, "corrupt etcd record left out of the cluster");
            cache.corrupt.insert(key, reason);
            read_delete(keys, kv, cache)
        }
    }
}

/// The change a deletion of `kv`'s key makes.
fn read_delete(keys: &Keys, kv: &KeyValue, cache: &mut Cache) -> Option<Change> {
    let key = kv.key_str().ok()?;
    cache.corrupt.remove(key);
    match keys.kind(key) {
        Kind::Server(h) => Some(Change::RemoveServer {
            hostname: h.to_string(),
        }),
        Kind::Route(n) => {
            cache.route_revs.remove(n);
            Some(Change::DeleteRoute {
                name: n.to_string(),
            })
        }
        Kind::Volume(v) => Some(Change::ReleaseVolume {
            volume: v.to_string(),
        }),
        Kind::PolicyActive => {
            cache.active_policy = None;
            None
        }
        Kind::Other => None,
    }
}

/// Replaces the cache with a fresh snapshot, telling receivers the difference.
fn install(shared: &Shared, snapshot: Snapshot) {
    let changes = {
        let mut cache = shared.write();
        // Receivers follow etcd's records: diff without the overlays.
        let pending = std::mem::take(&mut cache.pending);
        let mut stored = (*cache.cluster).clone();
        for p in pending.values().rev() {
            unoverlay(
                &mut stored,
                Pending {
                    route: p.route.clone(),
                    hidden_route: p.hidden_route.clone(),
                    hidden_volumes: p.hidden_volumes.clone(),
                },
            );
        }
        let changes = stored.changes_to(&snapshot.cache.cluster);
        let next_pending = cache.next_pending;
        *cache = snapshot.cache;
        cache.next_pending = next_pending;
        for (id, p) in pending {
            let mut again = Pending {
                route: p.route,
                hidden_route: None,
                hidden_volumes: Vec::new(),
            };
            overlay(Arc::make_mut(&mut cache.cluster), &mut again);
            cache.pending.insert(id, again);
        }
        changes
    };
    for c in changes {
        let _ = shared.changes.send(c);
    }
    let active = shared.read().active_policy.clone();
    shared.policy.send_if_modified(|p| {
        if *p != active {
            *p = active;
            true
        } else {
            false
        }
    });
    shared.status.send_modify(|s| {
        s.revision = snapshot.revision;
        s.down = None;
    });
}

/// How one watch stream ended.
enum Ended {
    /// The stream broke or the connection went away: watch again from the
    /// next revision. The flag says whether the watch had been created (it
    /// was following, so the member was fine until now).
    Lost(String, bool),
    /// etcd canceled the watch (compaction or otherwise): re-read everything.
    Canceled(String),
}

/// The watch task: follows `P/` from `revision + 1` for as long as the store lives.
async fn follow(members: Arc<Members>, keys: Keys, shared: Arc<Shared>, mut revision: i64) {
    let min_backoff = Duration::from_millis(50);
    let max_backoff = Duration::from_secs(1);
    let mut backoff = min_backoff;
    let mut reload = false;
    loop {
        if reload {
            match load(&members, &keys).await {
                Ok(snapshot) => {
                    revision = snapshot.revision;
                    shared
                        .reloads
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    install(&shared, snapshot);
                    reload = false;
                }
                Err(e) => {
                    shared.set_down(e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            }
        }
        let member = members.preferred();
        let Some(client) = members.clients.get(member).cloned() else {
            return;
        };
        match watch_once(&client, member, &members, &keys, &shared, &mut revision).await {
            Ended::Lost(why, followed) => {
                if followed {
                    backoff = min_backoff;
                }
                members.failed(member);
                tracing::warn!(%why, revision, "etcd watch lost; watching again");
                shared.set_down(why);
            }
            Ended::Canceled(why) => {
                tracing::warn!(%why, revision, "etcd watch canceled; re-reading all state");
                shared.set_down(why);
                reload = true;
                backoff = min_backoff;
                continue;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Resolves once requests have moved away from `member`.
async fn left(moved: &mut watch::Receiver<usize>, members: &Members, member: usize) {
    loop {
        if members.preferred() != member {
            return;
        }
        if moved.changed().await.is_err() {
            // The store is gone; its task is aborted with it.
            std::future::pending::<()>().await;
        }
    }
}

/// Opens one watch from `revision + 1` and applies what it delivers until it ends.
async fn watch_once(
    client: &Client,
    member: usize,
    members: &Members,
    keys: &Keys,
    shared: &Shared,
    revision: &mut i64,
) -> Ended {
    let config = &members.config;
    let mut moved = members.moved.subscribe();
    let mut wc = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(*revision + 1)
        .with_progress_notify();
    let mut stream =
        match tokio::time::timeout(config.request_timeout, wc.watch(keys.root(), Some(options)))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Ended::Lost(format!("watch: {e}"), false),
            Err(_) => return Ended::Lost("watch: timed out".into(), false),
        };
    let mut followed = false;
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            () = left(&mut moved, members, member) => {
                return Ended::Lost(
                    format!("requests left member {member} after failing there"),
                    followed,
                );
            }
        };
        let resp = match message {
            Ok(Some(r)) => r,
            Ok(None) => return Ended::Lost("watch stream closed".into(), followed),
            Err(e) => return Ended::Lost(format!("watch stream: {e}"), followed),
        };
        if resp.canceled() {
            let why = if resp.compact_revision() > 0 {
                format!(
                    "revision {} is compacted (oldest kept {})",
                    *revision + 1,
                    resp.compact_revision()
                )
            } else {
                format!("watch canceled: {}", resp.cancel_reason())
            };
            return Ended::Canceled(why);
        }
        if resp.created() {
            // Following again from where the cache stands.
            followed = true;
            shared.status.send_modify(|s| s.down = None);
        }
        let events = resp.events();
        if events.is_empty() {
            // A progress notification: every event up to its revision is delivered.
            if !resp.created() {
                if let Some(h) = resp.header() {
                    if h.revision() > *revision {
                        *revision = h.revision();
                        let r = *revision;
                        shared.status.send_modify(|s| s.revision = r);
                    }
                }
            }
            continue;
        }
        let mut changes = Vec::with_capacity(events.len());
        let mut last = *revision;
        let mut policy_touched = false;
        {
            let mut cache = shared.write();
            for ev in events {
                let Some(kv) = ev.kv() else { continue };
                last = last.max(kv.mod_revision());
                if keys.kind(kv.key_str().unwrap_or("")) == Kind::PolicyActive {
                    policy_touched = true;
                }
                let change = match ev.event_type() {
                    EventType::Put => read_put(keys, kv, &mut cache),
                    EventType::Delete => read_delete(keys, kv, &mut cache),
                };
                if let Some(c) = change {
                    changes.push(c);
                }
            }
            for c in &changes {
                cache.apply_stored(c);
            }
        }
        for c in changes {
            let _ = shared.changes.send(c);
        }
        if policy_touched {
            let active = shared.read().active_policy.clone();
            shared.policy.send_replace(active);
        }
        *revision = last;
        shared.status.send_modify(|s| s.revision = last);
    }
}

/// Ends a save's overlay however the save ends, cancellation included.
struct InFlight<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.write().end_pending(self.id);
    }
}

/// What a save must check and write, planned from the cache.
struct Plan {
    compares: Vec<Compare>,
    puts: Vec<TxnOp>,
    /// Keys read back when the compares fail, to say what was taken.
    checks: Vec<Check>,
}

enum Check {
    Name(Option<i64>),
    Port(u16),
    Volume(String),
}

impl EtcdStore {
    fn plan(&self, route: &Route) -> Result<Plan, Saved> {
        let cache = self.shared.read();
        let name = &route.name;
        let route_key = self.keys.route(name);
        let mut compares = Vec::new();
        let mut puts = Vec::new();
        let mut checks = Vec::new();
        let seen = match cache.stored_route(name) {
            Some(r) if r.is_live() => {
                return Err(Saved::Conflict(format!(
                    "name {name} is in use: live on {}",
                    r.server
                )))
            }
            Some(_) => cache.route_revs.get(name).copied(),
            None if cache.route_revs.contains_key(name) => {
                // A record the cache could not read: never overwrite it.
                return Err(Saved::Conflict(format!(
                    "name {name} has an unreadable route record"
                )));
            }
            None => None,
        };
        match seen {
            Some(rev) => compares.push(Compare::mod_revision(
                route_key.clone(),
                CompareOp::Equal,
                rev,
            )),
            None => compares.push(Compare::version(route_key.clone(), CompareOp::Equal, 0)),
        }
        checks.push(Check::Name(seen));
        for v in named_volumes(route) {
            let key = self.keys.volume(v);
            match cache.stored_volume(v) {
                Some(s) if s == route.server => {
                    compares.push(Compare::value(key, CompareOp::Equal, s));
                }
                Some(s) => {
                    return Err(Saved::Conflict(format!(
                        "volume {v} is held by server {s}, not {}",
                        route.server
                    )))
                }
                None => {
                    compares.push(Compare::version(key.clone(), CompareOp::Equal, 0));
                    puts.push(TxnOp::put(key, route.server.as_str(), None));
                }
            }
            checks.push(Check::Volume(v.to_string()));
        }
        if route.is_live() {
            let mut ports = route.host_ports.clone();
            ports.sort_unstable();
            ports.dedup();
            for p in ports {
                let key = self.keys.port(&route.server, p);
                compares.push(Compare::version(key.clone(), CompareOp::Equal, 0));
                puts.push(TxnOp::put(key, name.as_str(), None));
                checks.push(Check::Port(p));
            }
        }
        puts.push(TxnOp::put(route_key, route.to_value().to_string(), None));
        Ok(Plan {
            compares,
            puts,
            checks,
        })
    }

    fn check_key(&self, route: &Route, check: &Check) -> String {
        match check {
            Check::Name(_) => self.keys.route(&route.name),
            Check::Port(p) => self.keys.port(&route.server, *p),
            Check::Volume(v) => self.keys.volume(v),
        }
    }
}

/// Says what a failed save found taken.
fn describe_conflict(route: &Route, checks: &[Check], found: &[Vec<KeyValue>]) -> String {
    let mut taken = Vec::new();
    for (check, kvs) in checks.iter().zip(found) {
        let kv = kvs.first();
        let value = kv.map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
        match check {
            Check::Name(seen) => {
                if let Some(kv) = kv {
                    if Some(kv.mod_revision()) != *seen {
                        let state = value
                            .as_deref()
                            .and_then(|t| serde_json::from_str::<Value>(t).ok())
                            .and_then(|v| v.get("state").and_then(Value::as_str).map(String::from))
                            .unwrap_or_else(|| "unknown".into());
                        taken.push(format!(
                            "name {} was saved by another writer (state {state})",
                            route.name
                        ));
                    }
                } else if seen.is_some() {
                    taken.push(format!("route {} was deleted meanwhile", route.name));
                }
            }
            Check::Port(p) => {
                if let Some(holder) = value {
                    taken.push(format!(
                        "host port {p} on {} is held by {holder}",
                        route.server
                    ));
                }
            }
            Check::Volume(v) => {
                if let Some(holder) = value.filter(|h| *h != route.server) {
                    taken.push(format!("volume {v} is held by server {holder}"));
                }
            }
        }
    }
    if taken.is_empty() {
        "state changed meanwhile".into()
    } else {
        taken.join("; ")
    }
}

fn policy_record_value(record: &PolicyRecord) -> String {
    json!({"digest": record.digest, "pushed_at": record.pushed_at, "info": record.info}).to_string()
}

fn parse_policy_record(kv: &KeyValue) -> Result<PolicyRecord, StoreError> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    let v: Value =
        serde_json::from_slice(kv.value()).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("digest is missing".into()))?;
    let pushed_at = v
        .get("pushed_at")
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("pushed_at is missing".into()))?;
    let info = v.get("info").and_then(Value::as_str).unwrap_or_default();
    Ok(PolicyRecord {
        digest: digest.to_string(),
        pushed_at,
        info: info.to_string(),
    })
}

fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.contains('/') {
        return Err(StoreError::Corrupt {
            key: name.to_string(),
            reason: format!("{what} must be non-empty and contain no '/'"),
        });
    }
    Ok(())
}

impl Store for EtcdStore {
    async fn cluster(&self) -> Result<Arc<Cluster>, StoreError> {
        let mut rx = self.shared.status.subscribe();
        let down = rx.borrow_and_update().down.clone();
        if let Some(why) = down {
            let wait = async { rx.wait_for(|s| s.down.is_none()).await.is_ok() };
            let back = tokio::time::timeout(self.config.request_timeout, wait)
                .await
                .unwrap_or(false);
            if !back {
                let why = self.down().unwrap_or(why);
                return Err(unavailable(&self.config, "cluster state", why));
            }
        }
        Ok(self.shared.read().cluster.clone())
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    async fn put_servers(&self, servers: &[Server]) -> Result<(), StoreError> {
        if servers.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::with_capacity(servers.len());
        for s in servers {
            check_name("hostname", &s.hostname)?;
            ops.push(TxnOp::put(
                self.keys.server(&s.hostname),
                s.to_value().to_string(),
                None,
            ));
        }
        let mut last = 0;
        for chunk in ops.chunks(self.config.max_txn_ops.max(1)) {
            let resp = self
                .txn("put servers", Txn::new().and_then(chunk.to_vec()))
                .await?;
            last = header_revision(&resp);
        }
        self.settle(last).await;
        Ok(())
    }

    async fn remove_server(&self, hostname: &str) -> Result<bool, StoreError> {
        check_name("hostname", hostname)?;
        let key = self.keys.server(hostname);
        let (resp, maybe) = self
            .members
            .call("remove server", |c| {
                let key = key.clone();
                async move { kv(&c).delete(key, None).await }
            })
            .await?;
        // An earlier attempt whose answer was lost may have deleted it.
        let removed = resp.deleted() > 0 || maybe;
        if removed {
            self.settle(resp.header().map_or(0, |h| h.revision())).await;
        }
        Ok(removed)
    }

    async fn save_decision(&self, route: &Route) -> Result<Saved, StoreError> {
        check_name("route name", &route.name)?;
        check_name("route server", &route.server)?;
        for v in named_volumes(route) {
            check_name("volume name", v)?;
        }
        let plan = match self.plan(route) {
            Ok(p) => p,
            Err(conflict) => return Ok(conflict),
        };
        let limit = self.config.max_txn_ops;
        if plan.compares.len() > limit || plan.puts.len() > limit || plan.checks.len() > limit {
            return Err(StoreError::Unavailable(format!(
                "route {} needs {} checks in one transaction and etcd allows {limit} \
                 (its --max-txn-ops); nothing was written",
                route.name,
                plan.compares.len()
            )));
        }
        let reads: Vec<TxnOp> = plan
            .checks
            .iter()
            .map(|c| TxnOp::get(self.check_key(route, c), None))
            .collect();
        let txn = Txn::new()
            .when(plan.compares)
            .and_then(plan.puts)
            .or_else(reads);
        let route_json = route.to_value().to_string();
        let in_flight = InFlight {
            shared: &self.shared,
            id: self.shared.write().add_pending(route),
        };
        let (resp, maybe) = self.members.txn("save decision", txn).await?;
        if resp.succeeded() {
            // The overlay stays until the watch has brought the route.
            self.settle(header_revision(&resp)).await;
            drop(in_flight);
            return Ok(Saved::Saved);
        }
        drop(in_flight);
        let found = txn_gets(&resp);
        let newest = found
            .iter()
            .flatten()
            .map(KeyValue::mod_revision)
            .max()
            .unwrap_or(0);
        self.settle(newest).await;
        if maybe && is_ours(route, &route_json, &plan.checks, &found) {
            // An earlier attempt was applied but its answer was lost.
            return Ok(Saved::Saved);
        }
        Ok(Saved::Conflict(describe_conflict(
            route,
            &plan.checks,
            &found,
        )))
    }

    async fn remove_route(&self, name: &str) -> Result<Option<Route>, StoreError> {
        check_name("route name", name)?;
        let key = self.keys.route(name);
        for _ in 0..RMW_ATTEMPTS {
            let kvs = self.get("read route", key.clone(), None).await?;
            let Some(kv) = kvs.first() else {
                return Ok(None);
            };
            let text = kv.value_str().map_err(|_| StoreError::Corrupt {
                key: key.clone(),
                reason: "value is not UTF-8".into(),
            })?;
            let route = parse_route(&key, name, text)
                .map_err(|(key, reason)| StoreError::Corrupt { key, reason })?;
            if !route.is_live() {
                return Ok(Some(route));
            }
            let mut ports = route.host_ports.clone();
            ports.sort_unstable();
            ports.dedup();
            // Free only the claims that are this route's.
            let reads: Vec<TxnOp> = ports
                .iter()
                .map(|p| TxnOp::get(self.keys.port(&route.server, *p), None))
                .collect();
            let mut ops = Vec::new();
            for chunk in reads.chunks(self.config.max_txn_ops.max(1)) {
                let resp = self
                    .txn("read port claims", Txn::new().and_then(chunk.to_vec()))
                    .await?;
                for kvs in txn_gets(&resp) {
                    for kv in kvs.iter().filter(|kv| kv.value() == name.as_bytes()) {
                        ops.push(TxnOp::delete(kv.key().to_vec(), None));
                    }
                }
            }
            let mut removed = route.clone();
            removed.state = flocker_core::REMOVED.to_string();
            ops.push(TxnOp::put(
                key.clone(),
                removed.to_value().to_string(),
                None,
            ));
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then(ops);
            let resp = self.txn("remove route", txn).await?;
            if resp.succeeded() {
                self.settle(header_revision(&resp)).await;
                return Ok(Some(route));
            }
        }
        Err(StoreError::Unavailable(format!(
            "route {name} kept changing while it was being removed ({RMW_ATTEMPTS} attempts)"
        )))
    }

    async fn policy_push(&self, module: &[u8], record: PolicyRecord) -> Result<(), StoreError> {
        check_name("policy digest", &record.digest)?;
        let digest = record.digest.as_str();
        let chunks: Vec<&[u8]> = module.chunks(MODULE_CHUNK).collect();
        let meta_key = self.keys.module(digest);
        let stored = !self
            .get("read module", meta_key.clone(), None)
            .await?
            .is_empty();
        if !stored {
            // Chunks first, one request each (etcd refuses requests over
            // 1.5 MiB); the module exists once its meta key does.
            for (i, chunk) in chunks.iter().enumerate() {
                self.txn(
                    "store module chunk",
                    Txn::new().and_then(vec![TxnOp::put(
                        self.keys.module_chunk(digest, i),
                        chunk.to_vec(),
                        None,
                    )]),
                )
                .await?;
            }
        }
        let meta = json!({"size": module.len(), "chunks": chunks.len()}).to_string();
        for _ in 0..RMW_ATTEMPTS {
            let last = self
                .get(
                    "read policy history",
                    self.keys.history(),
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_keys_only()
                            .with_sort(SortTarget::Key, SortOrder::Descend)
                            .with_limit(1),
                    ),
                )
                .await?;
            let seq = match last.first() {
                Some(kv) => {
                    let k = String::from_utf8_lossy(kv.key()).into_owned();
                    let n = k
                        .rsplit('/')
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| StoreError::Corrupt {
                            key: k.clone(),
                            reason: "history key does not end in a sequence number".into(),
                        })?;
                    n + 1
                }
                None => 1,
            };
            let entry = self.keys.history_entry(seq);
            let mut ops = vec![
                TxnOp::put(entry.clone(), policy_record_value(&record), None),
                TxnOp::put(self.keys.active(), digest, None),
            ];
            if !stored {
                ops.push(TxnOp::put(meta_key.clone(), meta.as_str(), None));
            }
            let txn = Txn::new()
                .when(vec![Compare::version(entry, CompareOp::Equal, 0)])
                .and_then(ops);
            let resp = self.txn("push policy", txn).await?;
            if resp.succeeded() {
                self.settle(header_revision(&resp)).await;
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "policy history kept changing while pushing ({RMW_ATTEMPTS} attempts)"
        )))
    }

    async fn policy_history(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let kvs = self
            .get(
                "read policy history",
                self.keys.history(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Key, SortOrder::Ascend),
                ),
            )
            .await?;
        kvs.iter().map(parse_policy_record).collect()
    }

    async fn policy_active(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let active = self.keys.active();
        let kvs = self.get("read active policy", active.clone(), None).await?;
        let Some(kv) = kvs.first() else {
            return Ok(None);
        };
        let digest = kv
            .value_str()
            .map_err(|_| StoreError::Corrupt {
                key: active.clone(),
                reason: "value is not UTF-8".into(),
            })?
            .to_string();
        let meta_key = self.keys.module(&digest);
        let corrupt = |reason: String| StoreError::Corrupt {
            key: meta_key.clone(),
            reason,
        };
        let meta = self.get("read module", meta_key.clone(), None).await?;
        let meta = meta
            .first()
            .ok_or_else(|| corrupt(format!("active digest {digest} has no module")))?;
        let meta: Value =
            serde_json::from_slice(meta.value()).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let size = meta
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("size is missing".into()))?;
        let count = meta
            .get("chunks")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("chunks is missing".into()))?;
        let chunks = self
            .get(
                "read module",
                format!("{meta_key}/"),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Key, SortOrder::Ascend),
                ),
            )
            .await?;
        if chunks.len() as u64 != count {
            return Err(corrupt(format!(
                "{} of {count} chunks are stored",
                chunks.len()
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for c in &chunks {
            bytes.extend_from_slice(c.value());
        }
        if bytes.len() as u64 != size {
            return Err(corrupt(format!(
                "chunks hold {} bytes, not {size}",
                bytes.len()
            )));
        }
        Ok(Some((digest, bytes)))
    }

    /// From the watch-fed cache: no request to etcd.
    async fn policy_active_digest(&self) -> Result<Option<String>, StoreError> {
        Ok(self.shared.read().active_policy.clone())
    }

    async fn policy_activate(&self, digest: &str) -> Result<(), StoreError> {
        check_name("policy digest", digest)?;
        let txn = Txn::new()
            .when(vec![Compare::version(
                self.keys.module(digest),
                CompareOp::Greater,
                0,
            )])
            .and_then(vec![TxnOp::put(self.keys.active(), digest, None)]);
        let resp = self.txn("activate policy", txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::NotFound(format!(
                "no policy module with digest {digest} was pushed"
            )));
        }
        self.settle(header_revision(&resp)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_spec_section_5_under_a_prefix() {
        let k = Keys::new("flocker/");
        assert_eq!(k.server("n1"), "/flocker/inventory/n1");
        assert_eq!(k.route("a.1"), "/flocker/routes/containers/a.1");
        assert_eq!(k.volume("pg"), "/flocker/routes/volumes/pg");
        assert_eq!(k.port("n1", 20000), "/flocker/ports/n1/20000");
        assert_eq!(k.kind("/flocker/routes/containers/a.1"), Kind::Route("a.1"));
        assert_eq!(k.kind("/flocker/inventory/n1"), Kind::Server("n1"));
        assert_eq!(k.kind("/flocker/ports/n1/20000"), Kind::Other);
        assert_eq!(k.kind("/flockerx/inventory/n1"), Kind::Other);
        let none = Keys::new("");
        assert_eq!(none.server("n1"), "/inventory/n1");
        assert_eq!(none.root(), "/");
        assert_eq!(none.kind("/routes/volumes/pg"), Kind::Volume("pg"));
        assert_eq!(none.kind("/routes/volumes/"), Kind::Other);
    }

    #[test]
    fn diff_turns_one_cluster_into_the_other() {
        let old = Cluster::from_snapshot(&json!({
            "inventory": [{"hostname": "n1", "address": "a"}, {"hostname": "n2", "address": "b"}],
            "routes": {"containers": {"x.1": {"server": "n1"}, "y.1": {"server": "n2"}},
                       "volumes": {"pg": "n1", "old": "n2"}}
        }))
        .unwrap();
        let new = Cluster::from_snapshot(&json!({
            "inventory": [{"hostname": "n1", "address": "a2"}, {"hostname": "n3", "address": "c"}],
            "routes": {"containers": {"x.1": {"server": "n1", "state": "removed"}, "z.1": {"server": "n3"}},
                       "volumes": {"pg": "n3"}}
        }))
        .unwrap();
        let mut c = old.clone();
        for change in old.changes_to(&new) {
            c.apply_change(change);
        }
        assert_eq!(c.to_snapshot(), new.to_snapshot());
    }

    fn next_port_on_n1(c: &Cluster) -> u64 {
        let d = c
            .decide(&json!({"name": "probe.1", "container": {"Image": "x",
                "Env": ["VIKING_SERVER=n1"], "ExposedPorts": {"80/tcp": {}}}}))
            .unwrap();
        d.to_value()["route"]["ports"]["80/tcp"].as_u64().unwrap()
    }

    fn live(name: &str, port: u16, volumes: &[&str]) -> Route {
        Route::from_value(
            &json!({"name": name, "server": "n1", "ports": {"80/tcp": port}, "volumes": volumes}),
            None,
            "r",
        )
        .unwrap()
    }

    fn base() -> Cluster {
        Cluster::from_snapshot(&json!({
            "inventory": [{"hostname": "n1", "address": "a"}, {"hostname": "n2", "address": "b"}],
            "routes": {"containers": {"a.1": {"server": "n1", "ports": {"80/tcp": 20000}}},
                       "volumes": {"pg": "n2"}}
        }))
        .unwrap()
    }

    #[test]
    fn a_save_in_flight_is_seen_by_decisions_and_comes_off_exactly() {
        let mut cache = Cache::new();
        cache.cluster = Arc::new(base());
        assert_eq!(next_port_on_n1(&cache.cluster), 20001);
        let b = live("b.1", 20001, &["data:/d"]);
        let id = cache.add_pending(&b);
        assert_eq!(next_port_on_n1(&cache.cluster), 20002);
        assert_eq!(cache.cluster.volume_server("data"), Some("n1"));
        assert_eq!(cache.stored_route("b.1"), None);
        assert_eq!(cache.stored_volume("data"), None);
        // Meanwhile another host took port 20001: this save loses.
        let c = live("c.1", 20001, &[]);
        cache.apply_stored(&Change::SaveRoute(c.clone()));
        cache.end_pending(id);
        let mut want = base();
        want.apply_change(Change::SaveRoute(c));
        assert_eq!(cache.cluster.to_snapshot(), want.to_snapshot());
        // c.1 still holds 20001 although the overlay held it too.
        assert_eq!(next_port_on_n1(&cache.cluster), 20002);
    }

    #[test]
    fn a_saved_overlay_gives_way_to_the_watched_record() {
        let mut cache = Cache::new();
        cache.cluster = Arc::new(base());
        let b = live("b.1", 20001, &["data:/d"]);
        let id = cache.add_pending(&b);
        // The watch brings the save back before it ends.
        cache.apply_stored(&Change::ClaimVolume {
            volume: "data".into(),
            server: "n1".into(),
        });
        cache.apply_stored(&Change::SaveRoute(b.clone()));
        assert_eq!(cache.stored_route("b.1"), Some(&b));
        cache.end_pending(id);
        let mut want = base();
        want.apply_change(Change::ClaimVolume {
            volume: "data".into(),
            server: "n1".into(),
        });
        want.apply_change(Change::SaveRoute(b));
        assert_eq!(cache.cluster.to_snapshot(), want.to_snapshot());
        assert_eq!(next_port_on_n1(&cache.cluster), 20002);
    }
}
