//! Port claims in the cache: only the ones no live route explains (orphan
//! claims) are kept, as [`Change::ClaimPort`], so decisions do not pick a
//! port every save of it would lose.

#[allow(unused_imports)]
use super::*;

/// The hostname and port of a port claim key.
pub(super) fn port_of(keys: &Keys, kv: &KeyValue) -> Option<(String, u16)> {
    match keys.kind(kv.key_str().ok()?) {
        Kind::Port(server, port) => Some((server.to_string(), port)),
        _ => None,
    }
}

/// The port claims a watch batch touched, each as it stands after the
/// batch (the holder, or None when deleted), turned into the claim changes
/// that keep the cluster's orphan claims true: a claim no live route
/// explains is claimed, one that is gone or now explained is released.
pub(super) fn claim_changes(
    cluster: &Cluster,
    touched: BTreeMap<(String, u16), Option<String>>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for ((server, port), holder) in touched {
        let orphan = holder
            .as_deref()
            .is_some_and(|h| !claim_explained(cluster, &server, port, h));
        match (orphan, cluster.is_claimed(&server, port)) {
            (true, false) => out.push(Change::ClaimPort { server, port }),
            (false, true) => out.push(Change::ReleasePort { server, port }),
            _ => {}
        }
    }
    out
}
