//! The cached cluster, and the saves in flight shown over it.

#[allow(unused_imports)]
use super::*;

/// Where the cache stands, shared with waiters.
#[derive(Debug, Clone)]
pub(super) struct Status {
    /// The etcd revision of the last event (or snapshot) applied.
    pub(super) revision: i64,
    /// Why the cache is not following etcd right now, if it is not.
    pub(super) down: Option<String>,
}

pub(super) struct Cache {
    /// What etcd holds, plus the routes of this store's saves in flight
    /// (see [`Pending`]).
    pub(super) cluster: Twin,
    /// `mod_revision` of each route key, for the name compare.
    pub(super) route_revs: HashMap<String, i64>,
    pub(super) active_policy: Option<String>,
    /// Keys whose records could not be read, with the reason.
    pub(super) corrupt: BTreeMap<String, String>,
    /// Saves in flight, by id.
    pub(super) pending: BTreeMap<u64, Pending>,
    pub(super) next_pending: u64,
    /// Every change made to `cluster` since the lock was taken, overlays
    /// included, in order; [`Shared::update`] sends them to
    /// [`Store::changes`] before it lets the lock go.
    pub(super) outbox: Vec<Change>,
}

/// A save in flight. Its route is shown in the cached cluster from just
/// before its transaction until the watch brings the outcome back, so that
/// concurrent decisions of this host count it (its host ports, its load)
/// instead of all choosing the same port and losing to each other. What
/// the overlay hides of etcd's records is kept here, updated by the watch,
/// and put back when the save ends. Decisions see the overlay, on the
/// cached cluster and on [`Store::changes`] alike (a resident engine state
/// follows that feed: it must count the save in flight too, and take it
/// back out when the save loses); saves compare against etcd's records.
pub(super) struct Pending {
    pub(super) route: Route,
    /// None when the overlay was not applied (the name was live already);
    /// else etcd's record of the name, which the overlay hides.
    pub(super) hidden_route: Option<Option<Route>>,
    /// Volume claims the overlay made, with etcd's claim they hide.
    pub(super) hidden_volumes: Vec<(String, Option<String>)>,
}

impl Cache {
    pub(super) fn new() -> Cache {
        Cache {
            cluster: Twin::default(),
            route_revs: HashMap::new(),
            active_policy: None,
            corrupt: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_pending: 0,
            outbox: Vec::new(),
        }
    }

    /// etcd's record of a route, seen through any overlay.
    pub(super) fn stored_route(&self, name: &str) -> Option<&Route> {
        for p in self.pending.values() {
            if let (true, Some(hidden)) = (p.route.name == name, &p.hidden_route) {
                return hidden.as_ref();
            }
        }
        self.cluster.route(name)
    }

    /// etcd's claim of a volume, seen through any overlay.
    pub(super) fn stored_volume(&self, volume: &str) -> Option<&str> {
        for p in self.pending.values() {
            if let Some((_, hidden)) = p.hidden_volumes.iter().find(|(v, _)| v == volume) {
                return hidden.as_deref();
            }
        }
        self.cluster.volume_server(volume)
    }

    /// Shows a save in flight in the cluster; returns its id.
    pub(super) fn add_pending(&mut self, route: &Route) -> u64 {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut pending = Pending {
            route: route.clone(),
            hidden_route: None,
            hidden_volumes: Vec::new(),
        };
        if route.is_live() {
            overlay(&mut self.cluster, &mut pending, &mut self.outbox);
        }
        self.pending.insert(id, pending);
        id
    }

    /// A save ended (saved, lost or failed): put back what its overlay hid.
    pub(super) fn end_pending(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            unoverlay(&mut self.cluster, p, &mut self.outbox);
        }
    }

    /// Applies one of etcd's changes: to the cluster, and to what overlays hide.
    pub(super) fn apply_stored(&mut self, change: &Change) {
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
        self.cluster.apply(change.clone());
        self.outbox.push(change.clone());
    }
}

/// Applies `change` to `cluster` and records it in `sent`.
fn apply(cluster: &mut Twin, change: Change, sent: &mut Vec<Change>) {
    cluster.apply(change.clone());
    sent.push(change);
}

pub(super) fn overlay(cluster: &mut Twin, p: &mut Pending, sent: &mut Vec<Change>) {
    let route = &p.route;
    if cluster.live_route(&route.name).is_some() {
        return;
    }
    p.hidden_route = Some(cluster.route(&route.name).cloned());
    for v in named_volumes(route) {
        if cluster.volume_server(v).is_none() {
            p.hidden_volumes.push((v.to_string(), None));
            let claim = Change::ClaimVolume {
                volume: v.to_string(),
                server: route.server.clone(),
            };
            apply(cluster, claim, sent);
        }
    }
    apply(cluster, Change::SaveRoute(route.clone()), sent);
}

pub(super) fn unoverlay(cluster: &mut Twin, p: Pending, sent: &mut Vec<Change>) {
    let Some(hidden) = p.hidden_route else {
        return;
    };
    let back = match hidden {
        Some(r) => Change::SaveRoute(r),
        None => Change::DeleteRoute { name: p.route.name },
    };
    apply(cluster, back, sent);
    for (volume, hidden) in p.hidden_volumes {
        let back = match hidden {
            Some(server) => Change::ClaimVolume { volume, server },
            None => Change::ReleaseVolume { volume },
        };
        apply(cluster, back, sent);
    }
    // Taking the overlay out leaves a port another live route holds too
    // in use: the cluster counts each port's holders.
}
