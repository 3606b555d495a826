//! SPEC 3, Routing: which servers may take the container, and which one does.

use crate::cluster::Cluster;
use crate::error::DecisionError;
use crate::explain::Explain;
use crate::pins::Restriction;
use crate::port::HostPortRequest;
use crate::publishing;
use crate::request::{Request, TagRule};
use crate::server::Server;

/// The first routing rule that removes `server`, as the explanation says it.
fn rejection(
    cluster: &Cluster,
    server: &Server,
    req: &Request,
    restriction: &Restriction,
    ports: &[HostPortRequest],
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
    for rule in &req.tags {
        match rule {
            TagRule::Has(t) if !server.has_tag(t) => return Some(format!("missing tag {t}")),
            TagRule::HasNot(t) if server.has_tag(t) => return Some(format!("has tag !{t}")),
            _ => {}
        }
    }
    if is_full(cluster, server) {
        return Some("full".into());
    }
    // A reserved server takes only what is sent to it by name or by a pin;
    // past the check above, a restriction always names this server.
    if server.reserved && restriction.server().is_none() {
        return Some("reserved".into());
    }
    publishing::rejection(cluster, server, ports)
}

fn is_full(cluster: &Cluster, server: &Server) -> bool {
    server.full
        || server
            .max_containers
            .is_some_and(|max| cluster.load(server) >= max)
}

/// Picks the server: the fewest containers, then the fewest live members of
/// the same service, then the smallest hostname.
pub(crate) fn choose<'c>(
    cluster: &'c Cluster,
    req: &Request,
    restriction: &Restriction,
    ports: &[HostPortRequest],
) -> Result<(&'c Server, Explain), DecisionError> {
    let service = req.name.as_ref().map(|n| n.service.as_str());
    let mut rejected = Vec::new();
    let mut best: Option<((u64, u64), &Server)> = None;
    let mut total = 0usize;
    for server in cluster.servers() {
        total += 1;
        if let Some(reason) = rejection(cluster, server, req, restriction, ports) {
            rejected.push((server.hostname.clone(), reason));
            continue;
        }
        let same_service = service.map_or(0, |s| cluster.service_load(s, &server.hostname));
        let key = (cluster.load(server), same_service);
        // Servers come in hostname order, so a strict `<` keeps the smallest
        // hostname among equal keys.
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, server));
        }
    }
    let explain = Explain::new(total, rejected);
    match best {
        Some((_, server)) => Ok((server, explain)),
        None => Err(DecisionError::NoEligibleServer { explain }),
    }
}
