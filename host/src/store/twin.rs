//! [`Twin`]: a cached cluster that readers share and writers change in
//! place, without copying it while a reader holds it.
//!
//! A store's cache hands readers an `Arc<Cluster>` (a decision, `/healthz`
//! counting routes, a policy rebuild), and a save or watch event must not
//! change what a reader holds. `Arc::make_mut` keeps that promise by
//! cloning the whole cluster whenever a reader holds it: at 10^5 routes a
//! copy of every record per save (F19 of the reliability audit). A `Twin`
//! keeps a second copy instead (left-right): a change is applied in place
//! to the copy no reader holds, which then becomes the one readers get,
//! and the copy that was current catches up with the changes it missed the
//! next time it is free. A change so costs what the change costs, twice;
//! a whole copy is made only when both copies are held at once (a reader
//! slower than two updates), and the second copy exists only once readers
//! and writers first overlapped.

use std::sync::Arc;

use flocker_core::{Change, Cluster};

/// Changes the spare copy may lag behind before it is dropped (and made
/// again, by one copy, when readers next overlap a write): bounds the
/// memory a spare that stays held for long would pin in its backlog.
const MAX_LAG: usize = 4096;

/// The cached cluster; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct Twin {
    /// What readers get: the cluster with every change applied.
    front: Arc<Cluster>,
    /// The other copy, `lag` behind `front`, when readers and writers have
    /// overlapped.
    spare: Option<Arc<Cluster>>,
    lag: Vec<Change>,
}

impl Twin {
    pub fn new(cluster: Cluster) -> Twin {
        Twin {
            front: Arc::new(cluster),
            spare: None,
            lag: Vec::new(),
        }
    }

    /// The current cluster, to hold while deciding.
    pub fn share(&self) -> Arc<Cluster> {
        self.front.clone()
    }

    /// Replaces the cluster (a rebuild from the store's records).
    pub fn replace(&mut self, cluster: Cluster) {
        *self = Twin::new(cluster);
    }

    /// Applies `change`; readers holding the cluster keep what they hold.
    pub fn apply(&mut self, change: Change) {
        if let Some(front) = Arc::get_mut(&mut self.front) {
            // No reader: in place. The spare catches up when it is used.
            front.apply_change(change.clone());
            self.lagged(change);
            return;
        }
        // The spare, if no reader holds it, brought up to date; else the
        // one copy F19 allows (both copies held, or no spare yet). Either
        // way the held front becomes the spare.
        let lag = &mut self.lag;
        let next = self
            .spare
            .take()
            .and_then(|mut spare| {
                let copy = Arc::get_mut(&mut spare)?;
                catch_up(copy, lag);
                copy.apply_change(change.clone());
                Some(spare)
            })
            .unwrap_or_else(|| {
                let mut fresh = (*self.front).clone();
                fresh.apply_change(change.clone());
                Arc::new(fresh)
            });
        self.spare = Some(std::mem::replace(&mut self.front, next));
        self.lag.clear();
        self.lagged(change);
    }

    /// Notes that the spare misses `change`. A full backlog is applied to
    /// the spare if it is free, else the spare is dropped.
    fn lagged(&mut self, change: Change) {
        let Some(spare) = self.spare.as_mut() else {
            return;
        };
        self.lag.push(change);
        if self.lag.len() < MAX_LAG {
            return;
        }
        match Arc::get_mut(spare) {
            Some(copy) => catch_up(copy, &mut self.lag),
            None => {
                self.spare = None;
                self.lag = Vec::new();
            }
        }
    }
}

/// Applies the backlog `lag` to the spare `copy`, emptying it.
fn catch_up(copy: &mut Cluster, lag: &mut Vec<Change>) {
    for c in lag.drain(..) {
        copy.apply_change(c);
    }
}

impl std::ops::Deref for Twin {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.front
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flocker_core::fixtures::server;
    use flocker_core::Route;

    fn route(name: &str, port: u16) -> Route {
        flocker_core::fixtures::route(name, "n1", &[port], &[])
    }

    fn base() -> Cluster {
        let mut c = Cluster::default();
        c.apply_change(Change::UpsertServer(server("n1")));
        c
    }

    #[test]
    fn held_readers_keep_their_cluster_and_the_spare_catches_up_without_a_copy() {
        let mut twin = Twin::new(base());
        let mut model = base();
        let mut held = Vec::new();
        for i in 0..40u16 {
            let change = Change::SaveRoute(route(&format!("w.{i}"), 20000 + i));
            model.apply_change(change.clone());
            twin.apply(change);
            assert_eq!(twin.to_snapshot(), model.to_snapshot(), "after change {i}");
            // A reader holds every third cluster across the next change.
            if i % 3 == 0 {
                held.push((twin.share(), model.to_snapshot()));
            }
            if held.len() > 1 {
                held.remove(0);
            }
        }
        for (cluster, want) in &held {
            assert_eq!(&cluster.to_snapshot(), want, "a reader's cluster changed");
        }
        // Let the readers go: the next changes run in place, on both copies.
        held.clear();
        let before = Arc::as_ptr(&twin.share());
        let change = Change::SaveRoute(route("w.last", 21000));
        model.apply_change(change.clone());
        twin.apply(change);
        assert_eq!(Arc::as_ptr(&twin.share()), before, "changed in place");
        assert_eq!(twin.to_snapshot(), model.to_snapshot());
    }

    #[test]
    fn a_write_while_one_reader_holds_swaps_to_the_spare_instead_of_copying() {
        let mut twin = Twin::new(base());
        // The first overlap makes the spare (one copy)...
        let reader = twin.share();
        twin.apply(Change::SaveRoute(route("a.1", 20000)));
        drop(reader);
        // ...after which a held front swaps with the free spare.
        let reader = twin.share();
        let spare = twin.spare.as_ref().map(Arc::as_ptr);
        twin.apply(Change::SaveRoute(route("b.1", 20001)));
        assert_eq!(
            Some(Arc::as_ptr(&twin.share())),
            spare,
            "the spare became the front"
        );
        assert!(reader.route("b.1").is_none() && twin.route("b.1").is_some());
        assert!(twin.route("a.1").is_some(), "the spare caught up first");
    }

    #[test]
    fn a_full_backlog_catches_a_free_spare_up_and_drops_a_held_one() {
        for hold in [false, true] {
            let mut twin = Twin::new(base());
            let reader = twin.share();
            twin.apply(Change::SaveRoute(route("a.1", 20000)));
            // The first overlap left `reader`'s cluster as the spare.
            let spare = hold.then_some(reader);
            let mut model = twin.share().as_ref().clone();
            // `a.1` is the backlog's first change; these fill it.
            for i in 0..(MAX_LAG - 1) as u16 {
                let change = Change::SaveRoute(route(&format!("w.{i}"), 21000 + i));
                model.apply_change(change.clone());
                twin.apply(change);
            }
            assert!(twin.lag.is_empty(), "hold {hold}");
            match &twin.spare {
                Some(s) => {
                    assert!(!hold);
                    assert_eq!(s.to_snapshot(), model.to_snapshot());
                }
                None => assert!(hold),
            }
            drop(spare);
        }
    }
}
