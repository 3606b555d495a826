//! `place`: decide against a store's current state and save the decision
//! atomically, re-deciding on fresh state when another writer got there first.
//!
//! 1. Take the store's cached [`flocker_core::Cluster`] (no re-read of the world).
//! 2. Decide the request `{name, container, image}` with the engine.
//! 3. An engine error, or an unnamed container (no route), is the answer:
//!    nothing is saved.
//! 4. Save the route with [`Store::save_decision`], one transaction that
//!    checks the name, the host ports and the volumes were not taken.
//! 5. On [`Saved::Conflict`], count a retry and go back to 1; the store's
//!    cache has the other writer's records by then (the file store reads the
//!    changelog, etcd's cache follows its watch). After `max_retries`
//!    retries the place fails with [`PlaceError::Contention`], which names
//!    every conflict it met; nothing of it was written.
//!
//! Retries are reported in [`Placed::retries`] and [`Placed::conflicts`];
//! `flocker place --report` prints them on stderr, `flocker serve` counts
//! them in `flocker_place_retries_total`.
//!
//! This loop is how places run on etcd. On the embedded store the
//! [`Placer`] runs the same steps inside the file's write transaction
//! ([`crate::store::file::FileStore::write_batch`], so a save cannot lose)
//! and batches concurrent places into one transaction; it answers the same
//! [`Placed`]. Every caller (the CLI, the service, the proxy, bench) places
//! through a [`Placer`], which picks the way by store.

use std::sync::Arc;

use serde_json::Value;

use crate::engine::{decide_blocking, Decided, Engine, EngineError};
use crate::policy::PolicyError;
use crate::store::{Saved, Store, StoreError};

mod batch;
mod placer;
mod replay;
#[cfg(test)]
mod tests;

pub use placer::Placer;

/// What a place answers when the name already has a live route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Repeat {
    /// SPEC section 3: `name_in_use`, even for the very request that saved
    /// the route.
    #[default]
    NameInUse,
    /// The caller says this place may repeat one whose answer it lost (it
    /// asked for it: `flocker place --retry`, `POST /v1/place?retry=true`):
    /// if the live route was saved from this very request, its saved
    /// decision is the answer ([`Placed`]`.replayed` is true); any other request is
    /// still `name_in_use`.
    Replay,
}

impl Repeat {
    /// [`Repeat::Replay`] when the caller said the place is a retry.
    pub fn asked(retry: bool) -> Repeat {
        if retry {
            Repeat::Replay
        } else {
            Repeat::NameInUse
        }
    }
}

/// Retries after a conflict before a place gives up.
pub const DEFAULT_MAX_RETRIES: u32 = 8;

/// Why a place could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed (trap, deadline, memory cap, bad output).
    #[error("policy engine failed: {0}")]
    Engine(#[from] EngineError),
    /// Every attempt lost to another writer.
    #[error("could not save after {retries} retries, each lost to another writer: {}", .conflicts.join("; "))]
    Contention {
        retries: u32,
        conflicts: Vec<String>,
    },
}

impl PlaceError {
    /// Every [`PlaceError::kind`], for metrics' label set.
    pub const KINDS: &'static [&'static str] =
        &["store_unavailable", "policy_failed", "save_conflict"];

    /// A short machine-readable kind for logs, metrics and HTTP answers.
    pub fn kind(&self) -> &'static str {
        match self {
            PlaceError::Store(_) => "store_unavailable",
            PlaceError::Engine(_) => "policy_failed",
            PlaceError::Contention { .. } => "save_conflict",
        }
    }

    /// What a client is told. Store failures name paths and endpoints,
    /// trap texts name the module's internals and lost saves name other
    /// callers' containers: those stay in the host's log, where
    /// [`PlaceError`]'s `Display` puts them.
    pub fn public_message(&self) -> String {
        match self {
            PlaceError::Store(_) => {
                "the cluster state store is unavailable (the host's log says why)".into()
            }
            PlaceError::Engine(EngineError::BadOutput { what }) => {
                format!("policy engine failed: the policy returned {what}")
            }
            // Which rule the module's decision broke names only the
            // request and the inventory's servers: the caller may know it.
            PlaceError::Engine(EngineError::Policy(e @ PolicyError::Contract(_))) => {
                format!("policy engine failed: {e}")
            }
            PlaceError::Engine(_) => "policy engine failed (the host's log says why)".into(),
            PlaceError::Contention { retries, .. } => {
                format!("could not save after {retries} retries, each lost to another writer")
            }
        }
    }
}

/// What a place answered.
#[derive(Debug, Clone)]
pub struct Placed {
    pub decided: Decided,
    /// Whether a route was written (false for errors, unnamed containers
    /// and replays).
    pub saved: bool,
    /// Whether the answer is the saved decision of an earlier place of
    /// this very request ([`Repeat::Replay`]): nothing new was written.
    pub replayed: bool,
    /// How many times a save lost to another writer and the place re-decided.
    pub retries: u32,
    /// What each lost save found taken.
    pub conflicts: Vec<String>,
}

impl Placed {
    /// A decision that wrote nothing (an error, an unnamed container).
    pub(crate) fn unsaved(decided: Decided, conflicts: Vec<String>) -> Placed {
        Placed::new(decided, false, false, conflicts)
    }

    /// A decision whose route was saved.
    pub(crate) fn saved(decided: Decided, conflicts: Vec<String>) -> Placed {
        Placed::new(decided, true, false, conflicts)
    }

    /// The saved answer of an earlier place of this request.
    pub(crate) fn replayed(decided: Decided, conflicts: Vec<String>) -> Placed {
        Placed::new(decided, false, true, conflicts)
    }

    fn new(decided: Decided, saved: bool, replayed: bool, conflicts: Vec<String>) -> Placed {
        Placed {
            decided,
            saved,
            replayed,
            retries: conflicts.len() as u32,
            conflicts,
        }
    }
}

/// Decides `request` against `store` and saves it; see the module doc.
pub async fn place<S: Store, E: Engine + ?Sized + 'static>(
    store: &S,
    engine: &Arc<E>,
    request: &Value,
    max_retries: u32,
    repeat: Repeat,
) -> Result<Placed, PlaceError> {
    let mut conflicts = Vec::new();
    loop {
        let decided = {
            let cluster = store.cluster().await?;
            // Off the runtime's workers: see `engine::decide_blocking`.
            match decide_blocking(engine, &cluster, request).await {
                Ok(d) => d,
                // A module's resident state follows the store's change feed,
                // which can be a change ahead of `cluster` (a server added
                // in between): a decision refused against an older cluster
                // is re-decided on the newer one, as a lost save is.
                Err(EngineError::Policy(PolicyError::Contract(why)))
                    if (conflicts.len() as u32) < max_retries =>
                {
                    if Arc::ptr_eq(&store.cluster().await?, &cluster) {
                        return Err(EngineError::Policy(PolicyError::Contract(why)).into());
                    }
                    conflicts.push(format!("decided on a cluster that changed: {why}"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // The Arc is dropped here, before the save, so the store can
            // update its cache in place.
        };
        if repeat == Repeat::Replay && replay::is_name_in_use(&decided) {
            if let Some(saved) = replay::replay(store, request).await {
                return Ok(Placed::replayed(saved, conflicts));
            }
        }
        let Some(route) = decided.route.as_ref().filter(|_| !decided.is_error()) else {
            return Ok(Placed::unsaved(decided, conflicts));
        };
        let answer = replay::answer_for(request, &decided);
        let saved = match store.save_answered(route, Some(&answer)).await {
            Err(StoreError::Unstorable { path, reason }) => {
                return Ok(Placed::unsaved(replay::unstorable(path, reason), conflicts))
            }
            other => other?,
        };
        match saved {
            Saved::Saved => return Ok(Placed::saved(decided, conflicts)),
            Saved::Conflict(why) => {
                conflicts.push(why);
                if conflicts.len() as u32 > max_retries {
                    return Err(PlaceError::Contention {
                        retries: max_retries,
                        conflicts,
                    });
                }
            }
        }
    }
}
