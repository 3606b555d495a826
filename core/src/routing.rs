//! SPEC 3, Routing: which servers may take the container, and which one does.

use std::cmp::Ordering;
use std::collections::{btree_set, BTreeSet};
use std::iter::Peekable;

use crate::cluster::{Cluster, Usage};
use crate::error::DecisionError;
use crate::explain::Explain;
use crate::pins::Restriction;
use crate::publishing::HostPorts;
use crate::request::{Request, TagRule};
use crate::server::Server;

/// The first routing rule that removes `server`, as the explanation says it.
/// `down` comes right after the restriction, so that a named server that is
/// down reads `down` while the others read `not VIKING_SERVER`, and before
/// tags, load and ports: it is what an operator has to fix first.
fn rejection(
    server: &Server,
    usage: &Usage,
    down: bool,
    req: &Request,
    restriction: &Restriction,
    ports: &HostPorts,
) -> Option<String> {
    match restriction {
        Restriction::VikingServer(h) if *h != server.hostname => {
            return Some("not VIKING_SERVER".into())
        }
        Restriction::Pinned(h) if *h != server.hostname => {
            return Some("not the pinned server".into())
        }
        _ => {}
    }
    if down {
        return Some("down".into());
    }
    for rule in &req.tags {
        match rule {
            TagRule::Has(t) if !server.has_tag(t) => return Some(format!("missing tag {t}")),
            TagRule::HasNot(t) if server.has_tag(t) => return Some(format!("has tag !{t}")),
            _ => {}
        }
    }
    if is_full(server, usage) {
        return Some("full".into());
    }
    // A reserved server takes only what is sent to it by name or by a pin;
    // past the check above, a restriction always names this server.
    if server.reserved && restriction.server().is_none() {
        return Some("reserved".into());
    }
    ports.rejection(server, &usage.ports)
}

fn load(server: &Server, usage: &Usage) -> u64 {
    server.containers.unwrap_or(usage.live)
}

fn is_full(server: &Server, usage: &Usage) -> bool {
    server.full
        || server
            .max_containers
            .is_some_and(|max| load(server, usage) >= max)
}

/// The sort key of an eligible server: its load, then its live members of
/// the request's service. The smallest key wins; hostname breaks ties.
pub(crate) type SortKey = (u64, u64);

/// Picks the server: the fewest containers, then the fewest live members of
/// the same service, then the smallest hostname.
/// `down` names servers to treat as down beside those whose record says so.
/// `seen` is told each server's outcome in hostname order (its sort key, or
/// why it was removed); deciding passes a no-op, which compiles away.
pub(crate) fn choose<'c>(
    cluster: &'c Cluster,
    req: &Request,
    restriction: &Restriction,
    ports: &HostPorts,
    down: &BTreeSet<String>,
    mut seen: impl FnMut(&'c Server, Result<SortKey, &str>),
) -> Result<(&'c Server, &'c Usage, Explain), DecisionError> {
    let service = req.name.as_ref().map(|n| n.service.as_str());
    let mut rejected = Vec::new();
    let mut best: Option<(SortKey, &Server, &Usage)> = None;
    let mut spread = Spread::new(service.and_then(|s| cluster.spread(s)));
    let mut down_walk = down.iter().peekable();
    for (server, usage) in cluster.servers_with_usage() {
        let is_down = server.down || advance_to(&mut down_walk, &server.hostname);
        if let Some(reason) = rejection(server, usage, is_down, req, restriction, ports) {
            seen(server, Err(&reason));
            rejected.push((server.hostname.clone(), reason));
            continue;
        }
        let same_service = spread.count(&server.hostname);
        let key = (load(server, usage), same_service);
        seen(server, Ok(key));
        // Servers come in hostname order, so a strict `<` keeps the smallest
        // hostname among equal keys.
        if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
            best = Some((key, server, usage));
        }
    }
    let explain = Explain::new(cluster.server_count(), rejected);
    match best {
        Some((_, server, usage)) => Ok((server, usage, explain)),
        None => Err(DecisionError::NoEligibleServer { explain }),
    }
}

/// Whether the ascending `names` hold `hostname`, consuming the names before
/// it: asked for each server in hostname order, the walk costs a comparison
/// or two per server however many names there are.
fn advance_to<'d>(names: &mut Peekable<btree_set::Iter<'d, String>>, hostname: &str) -> bool {
    while let Some(name) = names.peek() {
        match name.as_str().cmp(hostname) {
            Ordering::Less => {
                names.next();
            }
            Ordering::Equal => return true,
            Ordering::Greater => return false,
        }
    }
    false
}

/// Live members of the service per hostname, read by walking the service's
/// (hostname-ordered) map alongside the servers, which come in the same order.
struct Spread<'c> {
    hosts: Option<std::iter::Peekable<std::collections::btree_map::Iter<'c, String, u64>>>,
}

impl<'c> Spread<'c> {
    fn new(map: Option<&'c std::collections::BTreeMap<String, u64>>) -> Self {
        Spread {
            hosts: map.map(|m| m.iter().peekable()),
        }
    }

    /// The count for `hostname`; hostnames must be asked in ascending order.
    fn count(&mut self, hostname: &str) -> u64 {
        let Some(hosts) = self.hosts.as_mut() else {
            return 0;
        };
        while let Some((h, n)) = hosts.peek() {
            match h.as_str().cmp(hostname) {
                std::cmp::Ordering::Less => {
                    hosts.next();
                }
                std::cmp::Ordering::Equal => return **n,
                std::cmp::Ordering::Greater => return 0,
            }
        }
        0
    }
}
