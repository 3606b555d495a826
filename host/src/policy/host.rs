//! [`PolicyHost`]: the active module, swapped without a restart or a
//! dropped request.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use flocker_core::{Change, Cluster, Server};
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::spare::{self, HoldsSpares, Spares};
use super::{
    guard, load_validated, Limits, Policy, PolicyError, PolicyInfo, Resident, Runtime,
    DEFAULT_MODULE,
};

struct Active {
    policy: Policy,
    info: PolicyInfo,
}

/// The outcome of a successful [`PolicyHost::swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swapped {
    /// The module that was active before.
    pub previous: PolicyInfo,
    /// The module active now (the same when the bytes were already active).
    pub current: PolicyInfo,
}

/// The resident state and what keeps it current.
#[derive(Default)]
struct Slot {
    changes: Option<broadcast::Receiver<Change>>,
    state: Option<Resident>,
    /// The cluster the state was built from, when no change feed is set:
    /// a different `Arc` means rebuild.
    built_from: Option<Arc<Cluster>>,
    /// The hostnames the state holds as `down` beyond their records (see
    /// [`PolicyHost::decide_resident_with_down`]).
    down: BTreeSet<String>,
    /// The spare state a poisoned one is replaced by (see `spare`).
    spares: Spares,
}

impl HoldsSpares for Slot {
    fn spares(&mut self) -> &mut Spares {
        &mut self.spares
    }
}

/// How the resident state was (re)built, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResidentStats {
    /// Builds of the whole cluster made by a decision, under the lock.
    pub built_inline: u64,
    /// Poisoned (or missing) states replaced by the warm spare.
    pub spares_used: u64,
    /// Whether a spare is ready now.
    pub spare_ready: bool,
}

/// The active policy module, hot-swappable.
///
/// - [`PolicyHost::decide`] runs a one-shot decision on the active module.
///   The module is picked when the call starts, so a decision in flight
///   during a swap finishes on the old module.
/// - [`PolicyHost::swap`] validates the new module first ([`super::validate`])
///   and only then makes it active; on failure the old module stays active
///   and the error says why.
/// - [`PolicyHost::decide_resident`] decides `{name, container, image}` on a
///   warm instance holding the cluster, fed by the store's change stream
///   ([`PolicyHost::follow`]) and rebuilt after a swap or a lagged stream.
///   After a failed call that poisons it, the spare state (a second warm
///   instance, built on its own thread) takes its place at once, and a new
///   spare is built in the background: a deadline costs the caller that hit
///   it, not every caller behind the lock.
///
/// `PolicyHost` is `Send + Sync`; share it in an `Arc`.
pub struct PolicyHost {
    runtime: Runtime,
    active: RwLock<Arc<Active>>,
    slot: Arc<Mutex<Slot>>,
    built_inline: AtomicU64,
    spares_used: AtomicU64,
    /// Whether to keep a spare (services do; a one-off command exits first).
    keep_spare: AtomicBool,
}

impl std::fmt::Debug for PolicyHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHost")
            .field("active", &self.info())
            .finish()
    }
}

impl PolicyHost {
    /// Validates `module` and makes it the active one.
    pub fn new(runtime: Runtime, module: &[u8]) -> Result<PolicyHost, PolicyError> {
        let (policy, info) = load_validated(&runtime, module)?;
        Ok(PolicyHost {
            runtime,
            active: RwLock::new(Arc::new(Active { policy, info })),
            slot: Arc::new(Mutex::new(Slot::default())),
            built_inline: AtomicU64::new(0),
            spares_used: AtomicU64::new(0),
            keep_spare: AtomicBool::new(false),
        })
    }

    /// A host running the embedded [`DEFAULT_MODULE`] under `limits`.
    pub fn with_default(limits: Limits) -> Result<PolicyHost, PolicyError> {
        PolicyHost::new(Runtime::new(limits)?, DEFAULT_MODULE)
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn current(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The active module.
    pub fn policy(&self) -> Policy {
        self.current().policy.clone()
    }

    /// The active module's info (with its digest).
    pub fn info(&self) -> PolicyInfo {
        self.current().info.clone()
    }

    /// Validates `module` and, if it passes, makes it active. In-flight
    /// decisions finish on the module they started on. On `Err` nothing
    /// changed.
    pub fn swap(&self, module: &[u8]) -> Result<Swapped, PolicyError> {
        let (policy, info) = load_validated(&self.runtime, module)?;
        Ok(self.activate(policy, info))
    }

    /// Makes an already validated module active (see [`super::load_validated`]).
    pub fn activate(&self, policy: Policy, info: PolicyInfo) -> Swapped {
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        let previous = active.info.clone();
        *active = Arc::new(Active {
            policy,
            info: info.clone(),
        });
        Swapped {
            previous,
            current: info,
        }
    }

    /// One-shot decision of SPEC input bytes on the active module; see
    /// [`Policy::decide`].
    pub fn decide(&self, input: &[u8]) -> Result<String, PolicyError> {
        let active = self.current();
        active.policy.decide(input)
    }

    /// Feeds the resident state from a store's change stream
    /// (`Store::changes()`). Replaces any earlier feed; the state is rebuilt
    /// on the next decision.
    ///
    /// The store must publish a change in its cluster (what
    /// `Store::cluster()` returns) before it sends the change. Changes are
    /// idempotent, so replaying ones the cluster already holds is harmless.
    /// When the feed closes, the state is rebuilt and follows the cluster
    /// given to [`PolicyHost::decide_resident`] from then on.
    pub fn follow(&self, changes: broadcast::Receiver<Change>) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.changes = Some(changes);
        slot.state = None;
        slot.spares.discard();
    }

    /// Keeps a spare resident state from the next decision on (see
    /// [`PolicyHost`]): for services, which outlive a poisoning call; a
    /// one-off command does not pay for it.
    pub fn keep_spare(&self) {
        self.keep_spare.store(true, Ordering::Relaxed);
    }

    /// How the resident state was built so far.
    pub fn resident_stats(&self) -> ResidentStats {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        ResidentStats {
            built_inline: self.built_inline.load(Ordering::Relaxed),
            spares_used: self.spares_used.load(Ordering::Relaxed),
            spare_ready: slot.spares.ready(),
        }
    }

    /// Decides `{name, container, image}` on the resident state.
    ///
    /// `cluster` is the store's current cluster; it is read only when the
    /// state has to be (re)built: the first time, after a swap, after the
    /// change stream lagged, after a failed call, or, with no feed set, when
    /// it is a different `Arc` than last time. Otherwise only the changes
    /// received since the last call are sent to the module.
    pub fn decide_resident(
        &self,
        cluster: &Arc<Cluster>,
        request: &[u8],
    ) -> Result<String, PolicyError> {
        self.decide_resident_with_down(cluster, request, &BTreeSet::new())
    }

    /// [`PolicyHost::decide_resident`], with the servers in `down` decided
    /// on as `down` whatever their records say (the proxy's servers whose
    /// daemons stopped answering; SPEC section 5). The overlay is sent to
    /// the module as `upsert_server` changes only when it changes, and
    /// re-applied to every server record the change feed brings.
    ///
    /// The answer is checked against `request`, `cluster` and `down`
    /// ([`super::guard::check`]) before it is returned: this is the path
    /// every place takes (the placer, the proxy), so a module that lies is
    /// refused before a save.
    pub fn decide_resident_with_down(
        &self,
        cluster: &Arc<Cluster>,
        request: &[u8],
        down: &BTreeSet<String>,
    ) -> Result<String, PolicyError> {
        let out = self.decide_resident_unchecked(cluster, request, down)?;
        guard::check(&out, cluster, request, down)?;
        Ok(out)
    }

    fn decide_resident_unchecked(
        &self,
        cluster: &Arc<Cluster>,
        request: &[u8],
        down: &BTreeSet<String>,
    ) -> Result<String, PolicyError> {
        let mut held = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        // Through a plain reference, so the state, the spare and the
        // overlay can be borrowed apart.
        let slot = &mut *held;
        let active = self.current();
        let digest = active.policy.digest();
        let mut rebuild = match &slot.state {
            None => true,
            Some(s) => s.poisoned().is_some() || s.policy().digest() != digest,
        };
        // A swap, a lag or a lost feed: the spare is no better than the state.
        let mut untrusted = matches!(&slot.state, Some(s) if s.policy().digest() != digest);
        let mut pending = Vec::new();
        let mut closed = false;
        if let Some(rx) = slot.changes.as_mut() {
            loop {
                match rx.try_recv() {
                    Ok(c) => pending.push(c),
                    Err(TryRecvError::Lagged(_)) => {
                        rebuild = true;
                        untrusted = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            // The store is gone: without a feed, follow the cluster given.
            slot.changes = None;
            rebuild = true;
            untrusted = true;
        } else if slot.changes.is_none()
            && !slot
                .built_from
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, cluster))
        {
            rebuild = true;
        }
        if untrusted {
            slot.spares.discard();
        }
        for change in &mut pending {
            if let Change::UpsertServer(s) = change {
                if down.contains(&s.hostname) {
                    mark_down(s);
                }
            }
        }
        let mut overlay = slot.down.clone();
        if rebuild {
            slot.state = None;
            let spare = match slot.changes {
                Some(_) => slot.spares.take(digest),
                None => None,
            };
            let state = match spare {
                Some(s) => {
                    self.spares_used.fetch_add(1, Ordering::Relaxed);
                    s
                }
                None => {
                    self.built_inline.fetch_add(1, Ordering::Relaxed);
                    let mut s = Resident::load(&active.policy, cluster)?;
                    s.apply(&slot.spares.recent())?;
                    slot.spares.rebuilt();
                    s
                }
            };
            slot.state = Some(state);
            slot.built_from = Some(cluster.clone());
            // A state built from a cluster (and replayed changes) may hold
            // any earlier overlay: send every server either overlay names.
            overlay.extend(down.iter().cloned());
            slot.down.clear();
        } else {
            overlay = overlay.symmetric_difference(down).cloned().collect();
        }
        for hostname in &overlay {
            if let Some(record) = cluster.server(hostname) {
                let mut s = record.clone();
                if down.contains(hostname) {
                    mark_down(&mut s);
                }
                pending.push(Change::UpsertServer(s));
            }
        }
        let Some(state) = slot.state.as_mut() else {
            return Err(PolicyError::Refused("no resident state".into()));
        };
        if let Err(e) = state.apply(&pending) {
            slot.state = None;
            return Err(e);
        }
        slot.spares.took(&pending);
        slot.down.clone_from(down);
        let out = state.decide(request);
        if slot.changes.is_some() && self.keep_spare.load(Ordering::Relaxed) {
            spare::start(&self.slot, slot, &active.policy, cluster);
        }
        out
    }

    /// Drops the resident state (it is rebuilt on the next
    /// [`PolicyHost::decide_resident`]).
    pub fn reset_resident(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.state = None;
        slot.spares.discard();
    }
}

/// The record as the proxy decides on it while its daemon does not answer.
fn mark_down(server: &mut Server) {
    server.down = true;
}
