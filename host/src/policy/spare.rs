//! The spare resident state: a second warm instance of the active module,
//! built on its own thread and kept current beside the one decisions use,
//! so that a call that poisons that one (a deadline, a trap, the memory
//! cap) is followed by the spare at once instead of a rebuild of the whole
//! cluster under the lock every decision waits on.
//!
//! Why it is consistent: a spare is built from a cluster the store gave,
//! then takes every change decisions took since its build started, the
//! last [`RECENT`] changes before that first. Changes set a record whole
//! (a route, a server, a volume claim), so replaying ones its cluster
//! already holds leaves it as it was, and the changes it may lack (taken by
//! decisions between the moment its cluster was read and the start of the
//! build) are among the recent ones replayed. The primary state is built
//! the same way when it has to be built inline.
//!
//! The price: the resident state is held twice (twice the memory the
//! route table costs in the module, see `docs/PERFORMANCE.md`), and each
//! change is applied twice, the spare's in batches of [`BACKLOG`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use flocker_core::{Change, Cluster};

use super::{Policy, Resident};

/// Changes kept to replay onto a state built from a cluster that may be a
/// little older than the feed (as many as the store's feed holds).
pub(super) const RECENT: usize = 4096;

/// Changes the spare takes in one apply.
pub(super) const BACKLOG: usize = 1024;

/// Where the spare stands.
#[derive(Default)]
pub(super) enum Spare {
    /// None, and none coming: at the start, or after the feed could not be
    /// trusted (lagged, closed, a swap).
    #[default]
    Empty,
    /// Being built on its own thread; the changes decisions took since.
    Building { epoch: u64, backlog: Vec<Change> },
    /// Built and following: the changes not applied to it yet.
    Ready {
        state: Box<Resident>,
        backlog: Vec<Change>,
    },
    /// The last build failed: none is tried until the state is rebuilt.
    Failed,
}

/// The spare and what it is built from, inside the host's slot.
#[derive(Default)]
pub(super) struct Spares {
    pub(super) spare: Spare,
    /// Bumped whenever the spare is thrown away, so a build still running
    /// for the old one is dropped when it ends.
    epoch: u64,
    /// The last [`RECENT`] changes decisions took, as applied.
    recent: VecDeque<Change>,
}

impl Spares {
    /// Throws the spare away, and the recent changes with it: the feed
    /// they came from is no longer followed.
    pub(super) fn discard(&mut self) {
        self.spare = Spare::Empty;
        self.epoch += 1;
        self.recent.clear();
    }

    /// The recent changes, oldest first, to replay onto a state built inline.
    pub(super) fn recent(&self) -> Vec<Change> {
        self.recent.iter().cloned().collect()
    }

    /// Records changes the primary state took.
    pub(super) fn took(&mut self, changes: &[Change]) {
        for c in changes {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(c.clone());
        }
        match &mut self.spare {
            Spare::Building { backlog, .. } => backlog.extend_from_slice(changes),
            Spare::Ready { state, backlog } => {
                backlog.extend_from_slice(changes);
                if backlog.len() >= BACKLOG {
                    let batch = std::mem::take(backlog);
                    if state.apply(&batch).is_err() {
                        self.spare = Spare::Empty;
                    }
                }
            }
            Spare::Empty | Spare::Failed => {}
        }
    }

    /// The spare, brought current, if one is ready for `digest`.
    pub(super) fn take(&mut self, digest: &str) -> Option<Resident> {
        match std::mem::take(&mut self.spare) {
            Spare::Ready { mut state, backlog } if state.policy().digest() == digest => {
                state.apply(&backlog).ok().map(|()| *state)
            }
            other @ (Spare::Building { .. } | Spare::Failed) => {
                self.spare = other;
                None
            }
            Spare::Ready { .. } | Spare::Empty => None,
        }
    }

    /// Whether a spare is ready.
    pub(super) fn ready(&self) -> bool {
        matches!(self.spare, Spare::Ready { .. })
    }

    /// The state was rebuilt inline: a failed build may be tried again.
    pub(super) fn rebuilt(&mut self) {
        if matches!(self.spare, Spare::Failed) {
            self.spare = Spare::Empty;
        }
    }
}

/// What the builder thread reaches: the slot holding the [`Spares`].
pub(super) trait HoldsSpares: Send + 'static {
    fn spares(&mut self) -> &mut Spares;
}

/// Starts building a spare from `cluster` when none is ready or coming.
pub(super) fn start<S: HoldsSpares>(
    slot: &Arc<Mutex<S>>,
    held: &mut S,
    policy: &Policy,
    cluster: &Arc<Cluster>,
) {
    let spares = held.spares();
    if !matches!(spares.spare, Spare::Empty) {
        return;
    }
    let epoch = spares.epoch;
    spares.spare = Spare::Building {
        epoch,
        backlog: spares.recent(),
    };
    let (shared, policy, cluster) = (slot.clone(), policy.clone(), cluster.clone());
    let spawned = std::thread::Builder::new()
        .name("flocker-spare".into())
        .spawn(move || build(&shared, &policy, cluster, epoch));
    if spawned.is_err() {
        held.spares().spare = Spare::Failed;
    }
}

/// The builder thread: loads `cluster`, then takes the backlog until it
/// is empty and the spare is installed, or the spare was thrown away.
fn build<S: HoldsSpares>(slot: &Mutex<S>, policy: &Policy, cluster: Arc<Cluster>, epoch: u64) {
    let built = Resident::load(policy, &cluster);
    drop(cluster);
    let lock = || slot.lock().unwrap_or_else(PoisonError::into_inner);
    let mut state = match built {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the spare resident state");
            let mut held = lock();
            let spares = held.spares();
            if spares.epoch == epoch {
                spares.spare = Spare::Failed;
            }
            return;
        }
    };
    loop {
        let mut held = lock();
        let spares = held.spares();
        let todo = match &mut spares.spare {
            Spare::Building { epoch: e, backlog } if *e == epoch => std::mem::take(backlog),
            _ => return,
        };
        if todo.is_empty() {
            spares.spare = Spare::Ready {
                state: Box::new(state),
                backlog: Vec::new(),
            };
            return;
        }
        drop(held);
        if let Err(e) = state.apply(&todo) {
            tracing::warn!(error = %e, "the spare resident state failed a change");
            let mut held = lock();
            let spares = held.spares();
            if spares.epoch == epoch {
                spares.spare = Spare::Failed;
            }
            return;
        }
    }
}
