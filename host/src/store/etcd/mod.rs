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
//! | `P/routes/answers/<name>` | `{digest, output}`: the answer the live route was saved with (not cached; read on `name_in_use`) |
//! | `P/ports/<hostname>/<port>` | name of the container holding the host port |
//! | `P/policy/modules/<digest>` | `{"size": bytes, "chunks": n}`, written last, so a module is complete once it exists |
//! | `P/policy/modules/<digest>/<0000n>` | the module bytes, in chunks of at most 1 MiB (etcd refuses requests over 1.5 MiB) |
//! | `P/policy/history/<seq>` | `{"digest", "pushed_at", "info"}`, `seq` zero-padded to 20 digits |
//! | `P/policy/active` | the active digest |
//! | `P/inventory-staged/<id>`, `.../<id>/<0000n>` | an `inventory add` over one transaction, staged (see `inventory.rs`) |
//!
//! # The cache
//!
//! [`EtcdStore::connect`] reads inventory, routes, volume claims and the
//! active policy digest in one transaction at revision `R`, then a task
//! watches `P/` from `R + 1` and turns each event into a [`Change`], applied
//! to the cached [`Cluster`] (copy-on-write: readers keep the `Arc` they
//! got) and sent to [`Store::changes`] receivers, together with the
//! overlays of this store's saves in flight (see Saving), so the feed
//! replays exactly what the cached cluster went through.
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
//! flight its route is shown in the cached cluster and on
//! [`Store::changes`] (not in etcd's records the saves compare against),
//! so that the host's concurrent decisions, native or on a module's
//! resident state, take other ports instead of losing to it. When the save
//! ends the feed carries the overlay's removal too, so a save that lost
//! leaves no route behind in a resident state.
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
//! - TLS and authentication as the `--store` URL says (`store::url`); a
//!   refusal by etcd (password, certificate, permission) is
//!   [`StoreError::Denied`] at once, never retried.
//! - The member list is the one given; members added later are not found.
//! - A save holds one compare per host port and new volume plus the name,
//!   at most [`EtcdConfig::max_txn_ops`] (etcd's `--max-txn-ops`, 128 by
//!   default); a route with more is refused whole.
//! - A lost answer is taken for our own write when the keys hold exactly
//!   what this save writes; two hosts writing the very same route for the
//!   same name at the same moment, one of them losing the answer, would
//!   both report `Saved` (the Docker daemon then refuses the duplicate name).
//! - Volume claims stay until `flocker volumes rm` releases one (the data
//!   stays on that server); `flocker routes prune` deletes removed routes
//!   and then compacts etcd up to the revision of its last deletion.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use flocker_core::{Change, Cluster, Route, Server};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::check::{claim_explained, parse_port_key, Checked};
use super::records::{read_route, read_server, read_volume_claim};
use super::{
    active_changed, named_volumes, Answer, PolicyRecord, Prune, Released, Saved, Store, StoreError,
    Twin,
};

mod config;
#[allow(unused_imports)]
pub use config::*;
mod keys;
#[allow(unused_imports)]
use keys::*;
mod cache;
#[allow(unused_imports)]
use cache::*;
mod members;
#[allow(unused_imports)]
use members::*;
mod save;
#[allow(unused_imports)]
use save::*;
mod records;
#[allow(unused_imports)]
use records::*;
mod watcher;
#[allow(unused_imports)]
use watcher::*;
mod claims;
#[allow(unused_imports)]
use claims::*;
mod ops;
#[allow(unused_imports)]
use ops::*;
mod access;
#[allow(unused_imports)]
use access::*;
mod check;
mod inventory;
mod prune;
#[cfg(test)]
mod tests;

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
    /// Changes the cache with `f` and sends every change it made to the
    /// cluster to [`Store::changes`] receivers before the lock is let go,
    /// so they take the changes in the order the cluster did.
    fn update<R>(&self, f: impl FnOnce(&mut Cache) -> R) -> R {
        let mut cache = self.write();
        let r = f(&mut cache);
        for change in cache.outbox.drain(..) {
            // No receiver is not an error: nobody follows.
            let _ = self.changes.send(change);
        }
        r
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

/// One consistent read of everything the cache holds.
struct Snapshot {
    revision: i64,
    cache: Cache,
}

fn unavailable(
    config: &EtcdConfig,
    what: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::unavailable_by(format!("etcd at {}: {what}", config.endpoints.join(",")), e)
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
                } else if config.tls.is_some() {
                    format!("https://{e}")
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
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout)
            // etcd refuses pings more often than every 5 s (too_many_pings).
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        if let Some((user, password)) = &config.user {
            // etcd forgets a simple token after --auth-token-ttl (300 s) of
            // disuse, and an idle proxy or serve outlives it: the client
            // authenticates again on "invalid auth token" and retries once.
            options = options
                .with_user(user.as_str(), password.reveal())
                .with_auto_token_refresh(true);
        }
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
            .map_err(|err| {
                // Authenticating (USER@) is the first request, made here
                // once: a close at once is as telling as two rounds in call.
                denied(&config, "connect", &err)
                    .or_else(|| {
                        early_close(&config, &err).map(|(_, what)| StoreError::Denied { what })
                    })
                    .unwrap_or_else(|| unavailable(&config, &format!("connect to {e}"), err))
            })?;
            clients.push(client);
        }
        let members = Arc::new(Members {
            clients,
            preferred: AtomicUsize::new(0),
            moved: watch::channel(0).0,
            config: config.clone(),
            answered: AtomicBool::new(false),
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
        let store = EtcdStore {
            members,
            keys,
            config,
            shared,
            watcher,
        };
        // An inventory add another writer committed but did not finish.
        if let Err(e) = store.roll_forward().await {
            tracing::warn!(error = %e, "could not finish a staged inventory add");
        }
        Ok(store)
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
