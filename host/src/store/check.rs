//! What `flocker store check` finds, on either store, and which port
//! claims count as orphans.

use flocker_core::Cluster;

/// The outcome of checking (and maybe repairing) a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// What disagrees, one line each; empty when consistent.
    pub problems: Vec<String>,
    /// What `--repair` deleted, one line each.
    pub repaired: Vec<String>,
}

/// Whether the claim of host port `port` on `server` by `holder` has a
/// live route behind it: `holder` is live on `server` and binds that port.
/// A claim that is not is an orphan: it blocks the port for every save
/// while no route explains it, so decisions must count it as used.
pub fn claim_explained(cluster: &Cluster, server: &str, port: u16, holder: &str) -> bool {
    cluster
        .live_route(holder)
        .is_some_and(|r| r.server == server && r.host_ports.contains(&port))
}

/// Reads a port claim key `<hostname>/<port>` (the file store's `ports`
/// table, the tail of etcd's `P/ports/<hostname>/<port>`).
pub fn parse_port_key(key: &str) -> Option<(&str, u16)> {
    let (server, port) = key.rsplit_once('/')?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    (!server.is_empty() && !server.contains('/')).then_some((server, port))
}
