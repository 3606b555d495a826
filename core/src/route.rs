//! A route record (SPEC sections 4 and 5): where an earlier decision put a
//! named container, which host ports it holds and what env it was given.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::DecisionError;
use crate::json_path::{
    field, index, object, opt_array, opt_object, opt_string, opt_strings, required_string,
};
use crate::naming::ContainerName;
use crate::port::Port;

/// The `state` of a route the engine treats as running.
pub const LIVE: &str = "live";
/// The `state` `routes rm` gives a route: kept for its volumes, not running.
pub const REMOVED: &str = "removed";

/// A route record: `routes.containers.<name>` of the decision input, the
/// `route` of a decision, etcd `/routes/containers/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `name`: the container name (no leading `/`); the key it is stored
    /// under stands in when the record has none.
    pub name: String,
    /// `service`: the name before its last dot (the whole name when it has
    /// none), which is also the default when the record has none.
    pub service: String,
    /// `server` (required): the hostname the container runs on.
    pub server: String,
    /// `address`: that server's `address` when the decision was made, what
    /// link variables' `_ADDR` use; empty when the record has none.
    pub address: String,
    /// Container port -> its first host port, in Docker's link order: what
    /// link variables point at.
    pub ports: Vec<(Port, u16)>,
    /// Every host port the container binds on its server, ascending and
    /// unique: what a save claims and what a live route holds.
    pub host_ports: Vec<u16>,
    /// `env` (default `[]`): the user's env merged with the image's, before
    /// `SERVICE_*` and link variables; linkers read `<A>_ENV_<k>` from it.
    pub env: Vec<String>,
    /// `volumes` (default `[]`): the named volumes the container uses
    /// (`Binds` sources not starting with `/`, `Mounts` of `Type` volume).
    pub volumes: Vec<String>,
    /// `state`: [`LIVE`] (the default) or [`REMOVED`]; only live routes
    /// hold names, host ports and places in a service.
    pub state: String,
}

impl Route {
    /// Whether `state` is [`LIVE`].
    pub fn is_live(&self) -> bool {
        self.state == LIVE
    }

    /// Reads a route record. `key` is the name it is stored under, which
    /// stands in for a missing `name`; `path` names the record in errors.
    pub fn from_value(v: &Value, key: Option<&str>, path: &str) -> Result<Route, DecisionError> {
        let o = object(v, path)?;
        let name = match (opt_string(o, path, "name")?, key) {
            (Some(n), _) => n,
            (None, Some(k)) => k,
            (None, None) => required_string(o, path, "name")?,
        };
        let service = opt_string(o, path, "service")?;
        let server = required_string(o, path, "server")?;
        let address = opt_string(o, path, "address")?.unwrap_or_default();
        let mut ports = Vec::new();
        if let Some(map) = opt_object(o, path, "ports")? {
            for (k, hp) in map {
                // Paths are only built for errors: a route table is large.
                let at = || field(&field(path, "ports"), k);
                let port = Port::parse(k, "").map_err(|e| match e {
                    DecisionError::InvalidRequest { reason, .. } => {
                        DecisionError::invalid(at(), reason)
                    }
                    other => other,
                })?;
                let host = hp
                    .as_u64()
                    .and_then(host_port)
                    .ok_or_else(|| DecisionError::invalid(at(), BAD_HOST_PORT))?;
                ports.push((port, host));
            }
        }
        let mut host_ports = Vec::new();
        if let Some(list) = opt_array(o, path, "host_ports")? {
            for (i, hp) in list.iter().enumerate() {
                let host = hp.as_u64().and_then(host_port).ok_or_else(|| {
                    DecisionError::invalid(index(&field(path, "host_ports"), i), BAD_HOST_PORT)
                })?;
                host_ports.push(host);
            }
        }
        let parts = Parts {
            name,
            service,
            server,
            address,
            ports,
            host_ports,
            env: strings(o, path, "env")?,
            volumes: strings(o, path, "volumes")?,
            state: opt_string(o, path, "state")?,
        };
        Ok(Route::assemble(parts))
    }

    /// The record from fields each reader has checked (the `Value` one here
    /// and the one-shot one), with the defaults for those it did not find.
    pub(crate) fn assemble(p: Parts<'_>) -> Route {
        let mut ports = p.ports;
        ports.sort_by(|a, b| a.0.cmp(&b.0));
        ports.dedup_by(|a, b| a.0 == b.0);
        // A record from before `host_ports` holds the values of its `ports`.
        // One that has both holds both: a `ports` value is bound even when a
        // hand-written list leaves it out.
        let mut host_ports = p.host_ports;
        host_ports.extend(ports.iter().map(|(_, h)| *h));
        host_ports.sort_unstable();
        host_ports.dedup();
        Route {
            name: p.name.to_string(),
            service: p
                .service
                .unwrap_or_else(|| ContainerName::split(p.name).0)
                .to_string(),
            server: p.server.to_string(),
            address: p.address.to_string(),
            ports,
            host_ports,
            env: p.env,
            volumes: p.volumes,
            state: p.state.unwrap_or(LIVE).to_string(),
        }
    }

    /// The record as SPEC section 4 writes it, with every field.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for Route {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(9))?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("service", &self.service)?;
        m.serialize_entry("server", &self.server)?;
        m.serialize_entry("address", &self.address)?;
        m.serialize_entry("ports", &PortMap(&self.ports))?;
        m.serialize_entry("host_ports", &self.host_ports)?;
        m.serialize_entry("env", &self.env)?;
        m.serialize_entry("volumes", &self.volumes)?;
        m.serialize_entry("state", &self.state)?;
        m.end()
    }
}

/// `{"80/tcp": 20001, ...}` in link order.
struct PortMap<'a>(&'a [(Port, u16)]);

impl Serialize for PortMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (port, host) in self.0 {
            m.serialize_entry(&port.to_string(), host)?;
        }
        m.end()
    }
}

const BAD_HOST_PORT: &str = "host port must be a number from 1 to 65535";

/// A host port: 1 to 65535.
pub(crate) fn host_port(n: u64) -> Option<u16> {
    u16::try_from(n).ok().filter(|h| *h > 0)
}

/// A route record's fields as read: `name` is the record's or its key,
/// `ports` and `host_ports` as they came (unsorted, perhaps repeated).
pub(crate) struct Parts<'a> {
    pub name: &'a str,
    pub service: Option<&'a str>,
    pub server: &'a str,
    pub address: &'a str,
    pub ports: Vec<(Port, u16)>,
    pub host_ports: Vec<u16>,
    pub env: Vec<String>,
    pub volumes: Vec<String>,
    pub state: Option<&'a str>,
}

fn strings(o: &Map<String, Value>, path: &str, key: &str) -> Result<Vec<String>, DecisionError> {
    Ok(opt_strings(o, path, key)?
        .into_iter()
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_record_round_trips_with_ports_in_link_order() {
        let v = json!({"name": "auth.1", "service": "auth", "server": "node2", "address": "10.0.0.2",
                       "ports": {"53/udp": 20002, "80/tcp": 20001}, "env": ["A=1"], "volumes": [],
                       "state": "live"});
        let r = Route::from_value(&v, None, "r").unwrap();
        assert!(r.is_live());
        assert_eq!(
            serde_json::to_string(&r.to_value()["ports"]).unwrap(),
            r#"{"80/tcp":20001,"53/udp":20002}"#
        );
        assert_eq!(Route::from_value(&r.to_value(), None, "r").unwrap(), r);
    }

    #[test]
    fn host_ports_default_to_the_ports_values_and_always_hold_them() {
        let old = Route::from_value(
            &json!({"server": "n", "ports": {"80/tcp": 20001, "53/udp": 20001, "443/tcp": 20000}}),
            Some("a"),
            "r",
        )
        .unwrap();
        assert_eq!(old.host_ports, [20000, 20001]);
        let new = Route::from_value(
            &json!({"server": "n", "ports": {"80/tcp": 20001}, "host_ports": [20005, 20002, 20005]}),
            Some("a"),
            "r",
        )
        .unwrap();
        assert_eq!(new.host_ports, [20001, 20002, 20005]);
        assert_eq!(
            serde_json::to_string(&new.to_value()["host_ports"]).unwrap(),
            "[20001,20002,20005]"
        );
        assert_eq!(Route::from_value(&new.to_value(), None, "r").unwrap(), new);
    }

    #[test]
    fn route_with_bad_host_ports_entry_names_it() {
        let e = Route::from_value(
            &json!({"server": "n", "host_ports": [20000, 0]}),
            Some("a"),
            "routes.containers.a",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("routes.containers.a.host_ports[1]"),
            "{e}"
        );
    }

    #[test]
    fn route_defaults_name_and_service_from_its_key() {
        let r = Route::from_value(&json!({"server": "n"}), Some("db.2"), "r").unwrap();
        assert_eq!(
            (r.name.as_str(), r.service.as_str(), r.state.as_str()),
            ("db.2", "db", "live")
        );
    }

    #[test]
    fn route_with_bad_host_port_names_it() {
        let e = Route::from_value(
            &json!({"server": "n", "ports": {"80/tcp": "x"}}),
            Some("a"),
            "routes.containers.a",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("routes.containers.a.ports[\"80/tcp\"]"),
            "{e}"
        );
    }
}
