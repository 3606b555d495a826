//! The cluster as the engine sees it: inventory, route table and volume
//! claims, parsed once and indexed so that a decision costs what the
//! inventory costs, not what the route table costs.
//!
//! A `Cluster` is built from a snapshot (the `inventory` and `routes` of the
//! decision input) and kept current with [`Change`]s. Every map is ordered,
//! so nothing depends on a hash seed and the same state always gives the
//! same answer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::error::DecisionError;
use crate::fnv::FnvMap;
#[cfg(test)]
use crate::hosts::Usage;
use crate::hosts::{self, load, Hosts, Listed};
use crate::json_path::{field, index, object, opt_array, opt_object, required_string, string};
use crate::route::{Route, REMOVED};
use crate::server::Server;

/// A live route joins its service: one more member on its server, and its
/// name among the members. The maps are looked in before a key is copied:
/// routes mostly join services and servers already there.
fn join_service(
    spread: &mut BTreeMap<String, BTreeMap<String, u64>>,
    members: &mut BTreeMap<String, BTreeSet<String>>,
    route: &Route,
) {
    let hosts = match spread.get_mut(&route.service) {
        Some(s) => s,
        None => spread.entry(route.service.clone()).or_default(),
    };
    match hosts.get_mut(&route.server) {
        Some(n) => *n += 1,
        None => {
            hosts.insert(route.server.clone(), 1);
        }
    }
    let names = match members.get_mut(&route.service) {
        Some(m) => m,
        None => members.entry(route.service.clone()).or_default(),
    };
    names.insert(route.name.clone());
}

/// The first 64 distinct tags the inventory has used, each given a bit, so
/// that routing tests a `VIKING_TAGS` rule against a server with an `and`
/// instead of comparing strings. Bits are never reused; a tag past the
/// 64th is tested by name.
#[derive(Debug, Clone, Default)]
struct TagBits {
    bits: BTreeMap<String, u64>,
}

impl TagBits {
    fn of(&mut self, tags: &[String]) -> u64 {
        let mut out = 0;
        for t in tags {
            let next = self.bits.len();
            let bit = match self.bits.get(t) {
                Some(b) => *b,
                None if next < 64 => {
                    self.bits.insert(t.clone(), 1 << next);
                    1 << next
                }
                None => 0,
            };
            out |= bit;
        }
        out
    }
}

/// How routing tests one `VIKING_TAGS` tag against a server.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TagTest<'a> {
    /// The tag's bit in the dictionary.
    Bit(u64),
    /// No inventory server has ever had this tag.
    Nobody,
    /// Past the dictionary's 64 bits: compared by name.
    Name(&'a str),
}

impl Listed {
    /// Whether the server has the tag `test` stands for.
    pub fn has(&self, test: TagTest<'_>) -> bool {
        match test {
            TagTest::Bit(b) => self.hot.tags & b != 0,
            TagTest::Nobody => false,
            TagTest::Name(t) => self.server().has_tag(t),
        }
    }
}

/// The `inventory` and `routes` of SPEC section 2, indexed for deciding:
/// build it with [`Cluster::from_snapshot`], keep it current with
/// [`Cluster::apply`], decide with [`Cluster::decide`].
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    hosts: Hosts,
    routes: BTreeMap<String, Route>,
    volumes: BTreeMap<String, String>,
    /// service -> its live members, ordered by name.
    members: BTreeMap<String, BTreeSet<String>>,
    /// service -> hostname -> its live members there. Keyed by service first
    /// so a decision fetches one service's spread and walks it beside the
    /// servers (both in hostname order) instead of a lookup per server.
    spread: BTreeMap<String, BTreeMap<String, u64>>,
    /// hostname -> host ports a store holds claimed with no live route
    /// behind them (an orphan claim). A save over such a port would lose,
    /// so decisions count them as used until the claim is repaired.
    claimed: BTreeMap<String, BTreeSet<u16>>,
    tag_bits: TagBits,
}

/// One incremental change to a [`Cluster`], as a host's store reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `{"op": "upsert_server", "server": {...}}`
    UpsertServer(Server),
    /// `{"op": "remove_server", "hostname": "..."}`
    RemoveServer {
        /// The server's `hostname`.
        hostname: String,
    },
    /// `{"op": "save_route", "route": {...}}`: adds or replaces the record.
    SaveRoute(Route),
    /// `{"op": "remove_route", "name": "..."}`: marks it removed, which frees
    /// its ports and its place in its service but keeps it for its volumes.
    RemoveRoute {
        /// The route's container name.
        name: String,
    },
    /// `{"op": "delete_route", "name": "..."}`: forgets the record.
    DeleteRoute {
        /// The route's container name.
        name: String,
    },
    /// `{"op": "claim_volume", "volume": "...", "server": "..."}`
    ClaimVolume {
        /// The volume name, as in `routes.volumes`.
        volume: String,
        /// The hostname that holds it.
        server: String,
    },
    /// `{"op": "release_volume", "volume": "..."}`
    ReleaseVolume {
        /// The volume name.
        volume: String,
    },
    /// `{"op": "claim_port", "server": "...", "port": n}`: a host port the
    /// store holds claimed although no live route holds it.
    ClaimPort {
        /// The hostname the claim is on.
        server: String,
        /// The host port.
        port: u16,
    },
    /// `{"op": "release_port", "server": "...", "port": n}`: that claim is gone.
    ReleasePort {
        /// The hostname the claim was on.
        server: String,
        /// The host port.
        port: u16,
    },
}

impl Change {
    /// Reads one change record; `path` names it in errors.
    pub fn from_value(v: &Value, path: &str) -> Result<Change, DecisionError> {
        let o = object(v, path)?;
        let op = required_string(o, path, "op")?;
        let text = |key: &str| required_string(o, path, key).map(str::to_string);
        let record = |key: &str| {
            crate::json_path::present(o.get(key))
                .ok_or_else(|| DecisionError::invalid(field(path, key), "is required but missing"))
        };
        Ok(match op {
            "upsert_server" => Change::UpsertServer(Server::from_value(
                record("server")?,
                &field(path, "server"),
            )?),
            "remove_server" => Change::RemoveServer {
                hostname: text("hostname")?,
            },
            "save_route" => Change::SaveRoute(Route::from_value(
                record("route")?,
                None,
                &field(path, "route"),
            )?),
            "remove_route" => Change::RemoveRoute { name: text("name")? },
            "delete_route" => Change::DeleteRoute { name: text("name")? },
            "claim_volume" => Change::ClaimVolume {
                volume: text("volume")?,
                server: text("server")?,
            },
            "release_volume" => Change::ReleaseVolume {
                volume: text("volume")?,
            },
            "claim_port" => Change::ClaimPort {
                server: text("server")?,
                port: port_field(o, path)?,
            },
            "release_port" => Change::ReleasePort {
                server: text("server")?,
                port: port_field(o, path)?,
            },
            other => {
                return Err(DecisionError::invalid(
                    field(path, "op"),
                    format!("unknown change {other:?}: expected upsert_server, remove_server, save_route, remove_route, delete_route, claim_volume, release_volume, claim_port or release_port"),
                ))
            }
        })
    }

    /// The change record [`Change::from_value`] reads.
    pub fn to_value(&self) -> Value {
        match self {
            Change::UpsertServer(s) => json!({"op": "upsert_server", "server": s.to_value()}),
            Change::RemoveServer { hostname } => {
                json!({"op": "remove_server", "hostname": hostname})
            }
            Change::SaveRoute(r) => json!({"op": "save_route", "route": r.to_value()}),
            Change::RemoveRoute { name } => json!({"op": "remove_route", "name": name}),
            Change::DeleteRoute { name } => json!({"op": "delete_route", "name": name}),
            Change::ClaimVolume { volume, server } => {
                json!({"op": "claim_volume", "volume": volume, "server": server})
            }
            Change::ReleaseVolume { volume } => json!({"op": "release_volume", "volume": volume}),
            Change::ClaimPort { server, port } => {
                json!({"op": "claim_port", "server": server, "port": port})
            }
            Change::ReleasePort { server, port } => {
                json!({"op": "release_port", "server": server, "port": port})
            }
        }
    }
}

/// The `port` of a port claim record: 1-65535.
fn port_field(o: &Map<String, Value>, path: &str) -> Result<u16, DecisionError> {
    let at = field(path, "port");
    match o.get("port") {
        Some(v) => port_value(v, &at),
        None => Err(DecisionError::invalid(at, "is required but missing")),
    }
}

fn port_value(v: &Value, at: &str) -> Result<u16, DecisionError> {
    v.as_u64()
        .and_then(crate::route::host_port)
        .ok_or_else(|| DecisionError::invalid(at, "must be a port number 1-65535"))
}

impl Cluster {
    /// An empty cluster: no servers, routes or volume claims.
    pub fn new() -> Cluster {
        Cluster::default()
    }

    /// Builds the state from `{"inventory": [...], "routes": {...}}`, the
    /// shape of the decision input; other fields are ignored.
    pub fn from_snapshot(v: &Value) -> Result<Cluster, DecisionError> {
        let o = object(v, "")?;
        Cluster::from_parts(o)
    }

    /// Reads `inventory` and `routes` out of an object that may hold more.
    pub(crate) fn from_parts(o: &Map<String, Value>) -> Result<Cluster, DecisionError> {
        let mut cluster = Cluster::new();
        let inventory = opt_array(o, "", "inventory")?
            .ok_or_else(|| DecisionError::invalid("inventory", "is required but missing"))?;
        let duplicate = |at: usize, hostname: &str| {
            DecisionError::invalid(
                field(&index("inventory", at), "hostname"),
                format!("duplicate hostname {hostname:?}"),
            )
        };
        let mut servers = Vec::with_capacity(inventory.len());
        for (i, s) in inventory.iter().enumerate() {
            match Server::from_value(s, &index("inventory", i)) {
                Ok(server) => servers.push(server),
                // Read one by one, a repeated hostname before this record
                // would have been found first.
                Err(e) => {
                    let order = hosts::hostname_order(&servers);
                    return Err(match hosts::first_repeat(&servers, &order) {
                        Some(at) => duplicate(at, &servers[at].hostname),
                        None => e,
                    });
                }
            }
        }
        cluster
            .snapshot_inventory(servers)
            .map_err(|(at, hostname)| duplicate(at, &hostname))?;
        if let Some(routes) = opt_object(o, "", "routes")? {
            if let Some(containers) = opt_object(routes, "routes", "containers")? {
                let mut records = Vec::with_capacity(containers.len());
                for (name, r) in containers {
                    let path = field("routes.containers", name);
                    let mut route = Route::from_value(r, Some(name), &path)?;
                    name.clone_into(&mut route.name);
                    records.push(route);
                }
                // The keys of one object are distinct.
                cluster.snapshot_routes(records);
            }
            if let Some(volumes) = opt_object(routes, "routes", "volumes")? {
                for (volume, server) in volumes {
                    let path = field("routes.volumes", volume);
                    let server = string(server, &path)?;
                    cluster.snapshot_volume(volume, server);
                }
            }
            if let Some(claimed) = opt_object(routes, "routes", "claimed_ports")? {
                for (hostname, ports) in claimed {
                    let path = field("routes.claimed_ports", hostname);
                    let ports = ports
                        .as_array()
                        .ok_or_else(|| DecisionError::invalid(&path, "must be an array"))?;
                    for (i, p) in ports.iter().enumerate() {
                        let port = port_value(p, &index(&path, i))?;
                        cluster.claim_port(hostname, port);
                    }
                }
            }
        }
        Ok(cluster)
    }

    /// The `inventory` of a snapshot, into a cluster that has none yet;
    /// nothing changed, and the place and hostname of the first repeated
    /// one ([`hosts::first_repeat`]) back, when a hostname repeats.
    pub(crate) fn snapshot_inventory(
        &mut self,
        mut servers: Vec<Server>,
    ) -> Result<(), (usize, String)> {
        let order = hosts::hostname_order(&servers);
        if let Some(at) = hosts::first_repeat(&servers, &order) {
            return Err((at, std::mem::take(&mut servers[at].hostname)));
        }
        let tagged = servers
            .into_iter()
            .map(|s| {
                let tags = self.tag_bits.of(&s.tags);
                (s, tags)
            })
            .collect();
        self.hosts.set_inventory(tagged, &order);
        Ok(())
    }

    /// A `routes.volumes` entry of a snapshot; `false`, and nothing
    /// changed, when that volume is already claimed.
    pub(crate) fn snapshot_volume(&mut self, volume: &str, server: &str) -> bool {
        if self.volumes.contains_key(volume) {
            return false;
        }
        self.volumes.insert(volume.to_string(), server.to_string());
        true
    }

    /// Applies one change record, or an array of them all-or-nothing.
    pub fn apply(&mut self, v: &Value) -> Result<(), DecisionError> {
        let changes = match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, c)| Change::from_value(c, &index("", i)))
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![Change::from_value(v, "")?],
        };
        for change in changes {
            self.apply_change(change);
        }
        Ok(())
    }

    /// Applies one parsed change; removing or releasing what the cluster
    /// does not hold is a no-op.
    pub fn apply_change(&mut self, change: Change) {
        match change {
            Change::UpsertServer(s) => self.upsert_server(s),
            Change::RemoveServer { hostname } => self.remove_server(&hostname),
            Change::SaveRoute(r) => self.save_route(r),
            Change::RemoveRoute { name } => {
                if let Some(mut r) = self.delete_route(&name) {
                    r.state = REMOVED.to_string();
                    self.save_route(r);
                }
            }
            Change::DeleteRoute { name } => {
                self.delete_route(&name);
            }
            Change::ClaimVolume { volume, server } => {
                self.volumes.insert(volume, server);
            }
            Change::ReleaseVolume { volume } => {
                self.volumes.remove(&volume);
            }
            Change::ClaimPort { server, port } => self.claim_port(&server, port),
            Change::ReleasePort { server, port } => self.release_port(&server, port),
        }
    }

    pub(crate) fn claim_port(&mut self, hostname: &str, port: u16) {
        if self
            .claimed
            .entry(hostname.to_string())
            .or_default()
            .insert(port)
        {
            self.hosts.change_usage(hostname, |u| u.ports.insert(port));
        }
    }

    fn release_port(&mut self, hostname: &str, port: u16) {
        let Some(ports) = self.claimed.get_mut(hostname) else {
            return;
        };
        if !ports.remove(&port) {
            return;
        }
        if ports.is_empty() {
            self.claimed.remove(hostname);
        }
        self.hosts.change_known(hostname, |u| u.ports.remove(port));
        self.forget_if_idle(hostname);
    }

    /// Drops a hostname that is neither in the inventory nor used by a
    /// live route or a claim.
    fn forget_if_idle(&mut self, hostname: &str) {
        let claimed = self.claimed.contains_key(hostname);
        self.hosts.forget_if_idle(hostname, claimed);
    }

    pub(crate) fn upsert_server(&mut self, server: Server) {
        let tags = self.tag_bits.of(&server.tags);
        self.hosts.upsert(server, tags);
    }

    fn remove_server(&mut self, hostname: &str) {
        let claimed = self.claimed.contains_key(hostname);
        if !self.hosts.remove(hostname, claimed) {
            self.forget_if_idle(hostname);
        }
    }

    fn save_route(&mut self, route: Route) {
        self.delete_route(&route.name);
        self.count_live(&route);
        self.routes.insert(route.name.clone(), route);
    }

    /// What a live route adds to its server's usage and its service.
    fn count_live(&mut self, route: &Route) {
        if !route.is_live() {
            return;
        }
        self.hosts.change_usage(&route.server, |u| u.add(route));
        join_service(&mut self.spread, &mut self.members, route);
    }

    /// [`join_service`] for many routes: each service's spread and members
    /// are gathered through a hash table and added in one go, a lookup per
    /// route instead of four walks down ordered maps.
    fn join_services<'r>(&mut self, live: impl Iterator<Item = &'r Route>) {
        // One table type for every bulk lookup: each instance of a hash
        // table costs the WASM module kilobytes.
        let mut index: FnvMap<&str, usize> = FnvMap::default();
        // Per service: its name, its live members per server, their names.
        type Gathered<'r> = (&'r str, Vec<(&'r str, u64)>, Vec<&'r str>);
        let mut services: Vec<Gathered<'_>> = Vec::new();
        for r in live {
            let at = *index.entry(&r.service).or_insert_with(|| {
                services.push((&r.service, Vec::new(), Vec::new()));
                services.len() - 1
            });
            let (_, hosts, names) = &mut services[at];
            // A service spans few servers: a scan beats a table here.
            match hosts.iter_mut().find(|(h, _)| *h == r.server) {
                Some((_, n)) => *n += 1,
                None => hosts.push((&r.server, 1)),
            }
            names.push(&r.name);
        }
        for (service, hosts, names) in services {
            let spread = self.spread.entry(service.to_string()).or_default();
            for (h, n) in hosts {
                *spread.entry(h.to_string()).or_default() += n;
            }
            let members = self.members.entry(service.to_string()).or_default();
            for name in names {
                members.insert(name.to_string());
            }
        }
    }

    /// The `routes.containers` of a snapshot, each already named by its
    /// key (what etcd and the name lookups go by), into a cluster that has
    /// no routes yet. The same state as saving them one by one, built in
    /// bulk: each server is found through a hash table instead of a walk
    /// down the ordered map, and the route table is built from the records
    /// at once. `false` when a name repeats, which only the one-shot reader
    /// can see; it then throws the cluster away.
    pub(crate) fn snapshot_routes(&mut self, routes: Vec<Route>) -> bool {
        self.hosts.add_live(&routes);
        self.join_services(routes.iter().filter(|r| r.is_live()));
        let expected = self.routes.len() + routes.len();
        let named = routes.into_iter().map(|r| (r.name.clone(), r));
        if self.routes.is_empty() {
            self.routes = named.collect();
        } else {
            self.routes.extend(named);
        }
        self.routes.len() == expected
    }

    fn delete_route(&mut self, name: &str) -> Option<Route> {
        let route = self.routes.remove(name)?;
        if route.is_live() {
            self.hosts.change_known(&route.server, |usage| {
                usage.live = usage.live.saturating_sub(1);
                for p in &route.host_ports {
                    usage.ports.remove(*p);
                }
            });
            self.forget_if_idle(&route.server);
            if let Some(hosts) = self.spread.get_mut(&route.service) {
                if let Some(n) = hosts.get_mut(&route.server) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        hosts.remove(&route.server);
                    }
                }
                if hosts.is_empty() {
                    self.spread.remove(&route.service);
                }
            }
            if let Some(m) = self.members.get_mut(&route.service) {
                m.remove(&route.name);
                if m.is_empty() {
                    self.members.remove(&route.service);
                }
            }
        }
        Some(route)
    }

    /// Servers in hostname order.
    pub fn servers(&self) -> impl Iterator<Item = &Server> {
        self.hosts.listed().iter().map(Listed::server)
    }

    /// How many servers the inventory holds.
    pub fn server_count(&self) -> usize {
        self.hosts.listed().len()
    }

    /// Servers in hostname order, each with what live routes use of it.
    pub(crate) fn listed(&self) -> &[Listed] {
        self.hosts.listed()
    }

    /// How routing tests servers for `tag`.
    pub(crate) fn tag_test<'a>(&self, tag: &'a str) -> TagTest<'a> {
        match self.tag_bits.bits.get(tag) {
            Some(b) => TagTest::Bit(*b),
            None if self.tag_bits.bits.len() < 64 => TagTest::Nobody,
            None => TagTest::Name(tag),
        }
    }

    /// The inventory server of that hostname; `None` also for a hostname
    /// that only routes name.
    pub fn server(&self, hostname: &str) -> Option<&Server> {
        self.hosts.server(hostname)
    }

    /// Routes in name order.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }

    /// The route of that container name, in any state.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    /// The route of that container name when its state is `live`.
    pub fn live_route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name).filter(|r| r.is_live())
    }

    /// Volume claims in volume order.
    pub fn volumes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.volumes.iter().map(|(v, s)| (v.as_str(), s.as_str()))
    }

    /// The hostname that holds a named volume (`routes.volumes`).
    pub fn volume_server(&self, volume: &str) -> Option<&str> {
        self.volumes.get(volume).map(String::as_str)
    }

    /// Host ports claimed in the store with no live route behind them,
    /// in hostname and port order.
    pub fn claimed_ports(&self) -> impl Iterator<Item = (&str, u16)> {
        self.claimed
            .iter()
            .flat_map(|(h, ports)| ports.iter().map(move |p| (h.as_str(), *p)))
    }

    /// Whether that host port is held by a claim no live route explains.
    pub fn is_claimed(&self, hostname: &str, port: u16) -> bool {
        self.claimed
            .get(hostname)
            .is_some_and(|p| p.contains(&port))
    }

    /// Live members of a service, ordered by name.
    pub fn members(&self, service: &str) -> impl Iterator<Item = &Route> {
        self.members
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|name| self.routes.get(name))
    }

    #[cfg(test)]
    pub(crate) fn usage(&self, hostname: &str) -> Option<&Usage> {
        self.hosts.usage(hostname)
    }

    /// hostname -> live members of `service` there, in hostname order.
    pub(crate) fn spread(&self, service: &str) -> Option<&BTreeMap<String, u64>> {
        self.spread.get(service)
    }

    /// A server's load: its stated `containers`, else its live routes.
    pub fn load(&self, server: &Server) -> u64 {
        load(
            server,
            self.hosts.usage(&server.hostname).map_or(0, |u| u.live),
        )
    }

    /// The changes that turn this state into `new`: what a store tells the
    /// followers of its cache (a resident module) after re-reading everything.
    pub fn changes_to(&self, new: &Cluster) -> Vec<Change> {
        let old = self;
        let mut out = Vec::new();
        for s in old.servers() {
            if new.server(&s.hostname).is_none() {
                out.push(Change::RemoveServer {
                    hostname: s.hostname.clone(),
                });
            }
        }
        for s in new.servers() {
            if old.server(&s.hostname) != Some(s) {
                out.push(Change::UpsertServer(s.clone()));
            }
        }
        for r in old.routes() {
            if new.route(&r.name).is_none() {
                out.push(Change::DeleteRoute {
                    name: r.name.clone(),
                });
            }
        }
        for r in new.routes() {
            if old.route(&r.name) != Some(r) {
                out.push(Change::SaveRoute(r.clone()));
            }
        }
        for (v, _) in old.volumes() {
            if new.volume_server(v).is_none() {
                out.push(Change::ReleaseVolume {
                    volume: v.to_string(),
                });
            }
        }
        for (v, s) in new.volumes() {
            if old.volume_server(v) != Some(s) {
                out.push(Change::ClaimVolume {
                    volume: v.to_string(),
                    server: s.to_string(),
                });
            }
        }
        for (h, p) in old.claimed_ports() {
            if !new.is_claimed(h, p) {
                out.push(Change::ReleasePort {
                    server: h.to_string(),
                    port: p,
                });
            }
        }
        for (h, p) in new.claimed_ports() {
            if !old.is_claimed(h, p) {
                out.push(Change::ClaimPort {
                    server: h.to_string(),
                    port: p,
                });
            }
        }
        out
    }

    /// The snapshot this state would be rebuilt from: `{"inventory", "routes"}`.
    pub fn to_snapshot(&self) -> Value {
        let mut containers = Map::new();
        for r in self.routes.values() {
            containers.insert(r.name.clone(), r.to_value());
        }
        let mut volumes = Map::new();
        for (v, s) in &self.volumes {
            volumes.insert(v.clone(), json!(s));
        }
        let mut routes =
            json!({ "containers": Value::Object(containers), "volumes": Value::Object(volumes) });
        // Only when there are any, so a store without orphan claims exports
        // the snapshot it always did.
        if !self.claimed.is_empty() {
            let claimed: Map<String, Value> = self
                .claimed
                .iter()
                .map(|(h, ports)| (h.clone(), json!(ports)))
                .collect();
            routes["claimed_ports"] = Value::Object(claimed);
        }
        json!({
            "inventory": self.servers().map(Server::to_value).collect::<Vec<_>>(),
            "routes": routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Value {
        json!({
            "inventory": [
                {"hostname": "n1", "address": "10.0.0.1"},
                {"hostname": "n2", "address": "10.0.0.2", "containers": 7}
            ],
            "routes": {
                "containers": {
                    "a.1": {"server": "n1", "ports": {"80/tcp": 20000}},
                    "a.2": {"server": "n1", "ports": {"80/tcp": 20001}},
                    "b.1": {"server": "n1", "state": "removed", "ports": {"80/tcp": 20002}}
                },
                "volumes": {"pg": "n2"}
            }
        })
    }

    #[test]
    fn load_counts_live_routes_unless_stated() {
        let c = Cluster::from_snapshot(&snapshot()).unwrap();
        assert_eq!(c.load(c.server("n1").unwrap()), 2);
        assert_eq!(c.load(c.server("n2").unwrap()), 7);
        assert_eq!(c.members("a").count(), 2);
        assert_eq!(c.members("b").count(), 0);
        assert!(!c.usage("n1").unwrap().ports.contains(20002));
    }

    #[test]
    fn remove_route_frees_ports_and_membership_but_keeps_the_record() {
        let mut c = Cluster::from_snapshot(&snapshot()).unwrap();
        c.apply(&json!({"op": "remove_route", "name": "a.1"}))
            .unwrap();
        assert_eq!(c.route("a.1").unwrap().state, "removed");
        assert!(!c.usage("n1").unwrap().ports.contains(20000));
        assert_eq!(c.members("a").count(), 1);
        assert_eq!(c.spread("a").and_then(|h| h.get("n1")), Some(&1));
    }

    #[test]
    fn incremental_changes_rebuild_the_same_snapshot() {
        let fresh = Cluster::from_snapshot(&snapshot()).unwrap();
        let mut built = Cluster::new();
        for s in fresh.servers() {
            built.apply_change(Change::UpsertServer(s.clone()));
        }
        for r in fresh.routes() {
            built
                .apply(&Change::SaveRoute(r.clone()).to_value())
                .unwrap();
        }
        built
            .apply(&json!([{"op": "claim_volume", "volume": "pg", "server": "n2"}]))
            .unwrap();
        assert_eq!(built.to_snapshot(), fresh.to_snapshot());
    }

    #[test]
    fn changes_to_turns_one_state_into_another() {
        let old = Cluster::from_snapshot(&snapshot()).unwrap();
        let mut new = old.clone();
        new.apply(&json!([
            {"op": "remove_server", "hostname": "n2"},
            {"op": "upsert_server", "server": {"hostname": "n3", "address": "3"}},
            {"op": "remove_route", "name": "a.1"},
            {"op": "delete_route", "name": "b.1"},
            {"op": "release_volume", "volume": "pg"},
            {"op": "claim_volume", "volume": "logs", "server": "n3"}
        ]))
        .unwrap();
        let mut followed = old.clone();
        for c in old.changes_to(&new) {
            followed.apply_change(c);
        }
        assert_eq!(followed.to_snapshot(), new.to_snapshot());
        assert!(new.changes_to(&new).is_empty());
    }

    #[test]
    fn a_bad_change_in_a_batch_applies_none_of_it() {
        let mut c = Cluster::from_snapshot(&snapshot()).unwrap();
        let before = c.to_snapshot();
        let e = c
            .apply(&json!([{"op": "delete_route", "name": "a.1"}, {"op": "claim_volume"}]))
            .unwrap_err();
        assert!(e.to_string().starts_with("[1].volume"), "{e}");
        assert_eq!(c.to_snapshot(), before);
    }

    #[test]
    fn an_orphan_port_claim_is_used_until_released_and_survives_snapshots() {
        let mut c = Cluster::from_snapshot(&snapshot()).unwrap();
        c.apply(&json!({"op": "claim_port", "server": "n1", "port": 20005}))
            .unwrap();
        c.apply(&json!({"op": "claim_port", "server": "ghost", "port": 7}))
            .unwrap();
        assert!(c.usage("n1").unwrap().ports.contains(20005));
        let again = Cluster::from_snapshot(&c.to_snapshot()).unwrap();
        assert!(again.usage("n1").unwrap().ports.contains(20005));
        assert!(again.is_claimed("ghost", 7));
        assert!(Cluster::new()
            .changes_to(&again)
            .contains(&Change::ClaimPort {
                server: "n1".into(),
                port: 20005
            }));
        // A route on the same port leaving keeps the claim's use.
        c.apply(&json!({"op": "save_route", "route": {"name": "c.1", "server": "n1", "ports": {"80/tcp": 20005}}}))
            .unwrap();
        c.apply(&json!({"op": "remove_route", "name": "c.1"}))
            .unwrap();
        assert!(c.usage("n1").unwrap().ports.contains(20005));
        c.apply(
            &json!([{"op": "release_port", "server": "n1", "port": 20005},
                        {"op": "release_port", "server": "ghost", "port": 7},
                        {"op": "delete_route", "name": "c.1"}]),
        )
        .unwrap();
        assert!(!c.usage("n1").unwrap().ports.contains(20005));
        assert!(c.usage("ghost").is_none());
        assert_eq!(
            c.to_snapshot(),
            Cluster::from_snapshot(&snapshot()).unwrap().to_snapshot()
        );
        let e = c
            .apply(&json!({"op": "claim_port", "server": "n1", "port": 0}))
            .unwrap_err();
        assert!(e.to_string().starts_with("port"), "{e}");
    }

    #[test]
    fn duplicate_hostnames_are_invalid() {
        let e = Cluster::from_snapshot(&json!({"inventory": [
            {"hostname": "n1", "address": "a"}, {"hostname": "n1", "address": "b"}]}))
        .unwrap_err();
        assert!(e.to_string().starts_with("inventory[1].hostname"), "{e}");
    }

    /// Read one by one, the first record whose hostname came before is the
    /// error, wherever the records sort; an invalid record is the error
    /// only when no repeat comes before it.
    #[test]
    fn the_first_repeat_in_input_order_is_the_error() {
        let server = |h: &str| json!({"hostname": h, "address": "a"});
        let error = |inventory: Vec<Value>| {
            Cluster::from_snapshot(&json!({ "inventory": inventory }))
                .unwrap_err()
                .to_string()
        };
        let e = error(vec![
            server("z"),
            server("b"),
            server("a"),
            server("b"),
            server("z"),
        ]);
        assert!(e.starts_with("inventory[3].hostname"), "{e}");
        assert!(e.contains(r#"duplicate hostname "b""#), "{e}");
        let e = error(vec![server("z"), server("a"), server("z"), json!({})]);
        assert!(e.starts_with("inventory[2].hostname"), "{e}");
        let e = error(vec![server("z"), json!({}), server("z")]);
        assert!(e.starts_with("inventory[1]"), "{e}");
        assert!(!e.contains("duplicate"), "{e}");
    }

    /// Servers added, replaced and removed in any order are walked in
    /// hostname order, and what runs on a removed server stays counted.
    #[test]
    fn servers_changed_out_of_order_stay_in_hostname_order() {
        let mut c = Cluster::new();
        for h in ["n5", "n1", "n9", "n3", "n7"] {
            c.apply(&json!({"op": "upsert_server", "server": {"hostname": h, "address": "a"}}))
                .unwrap();
        }
        c.apply(&json!({"op": "save_route", "route": {"name": "c.1", "server": "n9"}}))
            .unwrap();
        c.apply(&json!({"op": "remove_server", "hostname": "n9"}))
            .unwrap();
        c.apply(&json!({"op": "upsert_server", "server": {"hostname": "n0", "address": "b"}}))
            .unwrap();
        c.apply(&json!({"op": "upsert_server", "server": {"hostname": "n5", "address": "c"}}))
            .unwrap();
        let walked: Vec<&str> = c.hosts.listed().iter().map(|l| &*l.hostname).collect();
        assert_eq!(walked, ["n0", "n1", "n3", "n5", "n7"]);
        assert_eq!(c.hosts.server("n5").unwrap().address, "c");
        assert!(c.hosts.server("n9").is_none());
        assert_eq!(c.hosts.usage("n9").map(|u| u.live), Some(1));
    }
}
