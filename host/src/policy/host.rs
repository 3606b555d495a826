//! [`PolicyHost`]: the active module, swapped without a restart or a
//! dropped request.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use flocker_core::{Change, Cluster, Server};
use tokio::sync::broadcast::{self, error::TryRecvError};

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
///   ([`PolicyHost::follow`]) and rebuilt after a swap, a lagged stream or a
///   failed call.
///
/// `PolicyHost` is `Send + Sync`; share it in an `Arc`.
pub struct PolicyHost {
    runtime: Runtime,
    active: RwLock<Arc<Active>>,
    slot: Mutex<Slot>,
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
            slot: Mutex::new(Slot::default()),
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
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let active = self.current();
        let mut rebuild = match &slot.state {
            None => true,
            Some(s) => s.poisoned().is_some() || s.policy().digest() != active.policy.digest(),
        };
        let mut pending = Vec::new();
        let mut closed = false;
        if let Some(rx) = slot.changes.as_mut() {
            loop {
                match rx.try_recv() {
                    Ok(c) => pending.push(c),
                    Err(TryRecvError::Lagged(_)) => rebuild = true,
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
        } else if slot.changes.is_none()
            && !slot
                .built_from
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, cluster))
        {
            rebuild = true;
        }
        if rebuild {
            slot.state = None;
            slot.down.clear();
            slot.state = Some(Resident::load(&active.policy, cluster)?);
            slot.built_from = Some(cluster.clone());
        }
        for change in &mut pending {
            if let Change::UpsertServer(s) = change {
                if down.contains(&s.hostname) {
                    mark_down(s);
                }
            }
        }
        for hostname in slot.down.symmetric_difference(down) {
            if let Some(record) = cluster.server(hostname) {
                let mut s = record.clone();
                if down.contains(hostname) {
                    mark_down(&mut s);
                }
                pending.push(Change::UpsertServer(s));
            }
        }
        // Through a plain reference, so the state and the overlay it holds
        // can be borrowed apart.
        let slot = &mut *slot;
        let Some(state) = slot.state.as_mut() else {
            return Err(PolicyError::Refused("no resident state".into()));
        };
        if let Err(e) = state.apply(&pending) {
            slot.state = None;
            return Err(e);
        }
        slot.down.clone_from(down);
        state.decide(request)
    }

    /// Drops the resident state (it is rebuilt on the next
    /// [`PolicyHost::decide_resident`]).
    pub fn reset_resident(&self) {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state = None;
    }
}

/// The record as the proxy decides on it while its daemon does not answer.
fn mark_down(server: &mut Server) {
    server.down = true;
}
