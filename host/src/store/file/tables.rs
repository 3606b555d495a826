//! The redb tables (named after the etcd key spaces) and reading their records.

#[allow(unused_imports)]
use super::*;

pub(super) const INVENTORY: TableDefinition<&str, &str> = TableDefinition::new("inventory");
pub(super) const ROUTES: TableDefinition<&str, &str> = TableDefinition::new("routes");
pub(super) const VOLUMES: TableDefinition<&str, &str> = TableDefinition::new("volumes");
pub(super) const PORTS: TableDefinition<&str, &str> = TableDefinition::new("ports");
pub(super) const ANSWERS: TableDefinition<&str, &str> = TableDefinition::new("answers");
pub(super) const POLICY_MODULES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("policy_modules");
pub(super) const POLICY_HISTORY: TableDefinition<u64, &str> =
    TableDefinition::new("policy_history");
pub(super) const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
pub(super) const CHANGELOG: TableDefinition<u64, &str> = TableDefinition::new("changelog");

pub(super) const GENERATION: &str = "generation";
pub(super) const POLICY_ACTIVE: &str = "policy_active";

/// How long a write waits for redb's write lock, held by another
/// transaction of this or another process, before it fails.
pub const WRITE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many changes the changelog keeps for handles that fell behind.
pub const CHANGELOG_KEEP: u64 = 10_000;

pub(super) fn read_route(name: &str, text: &str) -> Result<Route, StoreError> {
    records::read_route(&format!("/routes/containers/{name}"), name, text)
}

pub(super) fn read_server(hostname: &str, text: &str) -> Result<Server, StoreError> {
    records::read_server(&format!("/inventory/{hostname}"), hostname, text)
}

pub(super) fn port_key(server: &str, port: u16) -> String {
    format!("{server}/{port}")
}
