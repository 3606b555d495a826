//! A server of the inventory (SPEC section 2), with its defaults applied.

use serde_json::{json, Map, Value};

use crate::error::DecisionError;
use crate::json_path::{
    field, index, object, opt_array, opt_bool, opt_u64, required_string, string,
};

/// The port range a server publishes from when its record gives none.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (20000, 29999);

/// One server record of `inventory` (SPEC section 2, etcd
/// `/inventory/<hostname>`), with the SPEC defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `hostname` (required, not empty): the name routes, pins and
    /// `VIKING_SERVER` refer to it by.
    pub hostname: String,
    /// `address` (required, not empty): where containers on other servers
    /// reach this server's published ports; link variables' `_ADDR`.
    pub address: String,
    /// The Docker endpoint; `tcp://<address>:2375` when the record gives none.
    pub docker: String,
    /// `tags` (default `[]`): what `VIKING_TAGS` matches, case-sensitively.
    pub tags: Vec<String>,
    /// `reserved` (default false): takes a container only when
    /// `VIKING_SERVER` names it or a pin sends it there (SPEC 3, Routing 3).
    pub reserved: bool,
    /// `full` (default false): takes no container (SPEC 3, Routing 3).
    pub full: bool,
    /// The server's Docker daemon does not answer: it takes nothing, named or
    /// pinned (SPEC 3, Routing 3).
    pub down: bool,
    /// `max_containers` (optional): a load of this or more makes the server
    /// full; `None` is no limit.
    pub max_containers: Option<u64>,
    /// The load the record states; when absent the load is its live routes.
    pub containers: Option<u64>,
    /// `port_range` (default `[20000, 29999]`), inclusive bounds: where
    /// published host ports are taken from, lowest free first.
    pub port_range: (u16, u16),
}

impl Server {
    /// Reads one inventory record; `path` names it in errors (`inventory[2]`).
    pub fn from_value(v: &Value, path: &str) -> Result<Server, DecisionError> {
        let o = object(v, path)?;
        let hostname = non_empty(required_string(o, path, "hostname")?, path, "hostname")?;
        let address = non_empty(required_string(o, path, "address")?, path, "address")?;
        let docker = crate::json_path::opt_string(o, path, "docker")?;
        let tags = read_tags(o, path)?;
        let fields = Fields {
            reserved: opt_bool(o, path, "reserved")?,
            full: opt_bool(o, path, "full")?,
            down: opt_bool(o, path, "down")?,
            max_containers: opt_u64(o, path, "max_containers")?,
            containers: opt_u64(o, path, "containers")?,
            port_range: read_port_range(o, path)?,
        };
        Ok(Server::assemble(hostname, address, docker, tags, fields))
    }

    /// The record from fields each reader has checked, with the SPEC
    /// defaults for those it did not find.
    pub(crate) fn assemble(
        hostname: &str,
        address: &str,
        docker: Option<&str>,
        tags: Vec<String>,
        f: Fields,
    ) -> Server {
        Server {
            hostname: hostname.to_string(),
            address: address.to_string(),
            docker: match docker {
                Some(d) => d.to_string(),
                None => format!("tcp://{address}:2375"),
            },
            tags,
            reserved: f.reserved.unwrap_or(false),
            full: f.full.unwrap_or(false),
            down: f.down.unwrap_or(false),
            max_containers: f.max_containers,
            containers: f.containers,
            port_range: f.port_range,
        }
    }

    /// The record as it is stored and sent, with defaults filled in.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("hostname".into(), json!(self.hostname));
        m.insert("address".into(), json!(self.address));
        m.insert("docker".into(), json!(self.docker));
        m.insert("tags".into(), json!(self.tags));
        m.insert("reserved".into(), json!(self.reserved));
        m.insert("full".into(), json!(self.full));
        m.insert("down".into(), json!(self.down));
        if let Some(max) = self.max_containers {
            m.insert("max_containers".into(), json!(max));
        }
        if let Some(c) = self.containers {
            m.insert("containers".into(), json!(c));
        }
        m.insert(
            "port_range".into(),
            json!([self.port_range.0, self.port_range.1]),
        );
        Value::Object(m)
    }

    /// Whether `tags` holds exactly `tag` (case-sensitive).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

fn read_tags(o: &Map<String, Value>, path: &str) -> Result<Vec<String>, DecisionError> {
    let Some(items) = opt_array(o, path, "tags")? else {
        return Ok(Vec::new());
    };
    let tags_path = field(path, "tags");
    items
        .iter()
        .enumerate()
        .map(|(i, t)| string(t, &index(&tags_path, i)).map(str::to_string))
        .collect()
}

/// A record's scalar fields as read, before defaults: what both readers
/// (the `Value` one here and the one-shot one) hand to [`Server::assemble`].
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub reserved: Option<bool>,
    pub full: Option<bool>,
    pub down: Option<bool>,
    pub max_containers: Option<u64>,
    pub containers: Option<u64>,
    pub port_range: (u16, u16),
}

/// `hostname` and `address` must not be empty.
pub(crate) fn non_empty<'a>(s: &'a str, path: &str, key: &str) -> Result<&'a str, DecisionError> {
    if s.is_empty() {
        return Err(DecisionError::invalid(
            field(path, key),
            "must not be empty",
        ));
    }
    Ok(s)
}

fn read_port_range(o: &Map<String, Value>, path: &str) -> Result<(u16, u16), DecisionError> {
    let Some(items) = opt_array(o, path, "port_range")? else {
        return Ok(DEFAULT_PORT_RANGE);
    };
    let bounds: Vec<Option<u64>> = items.iter().map(Value::as_u64).collect();
    port_range(&bounds, path)
}

/// `port_range` from its entries (`None` for one that is not a
/// non-negative integer): two port numbers, the first not above the last.
pub(crate) fn port_range(items: &[Option<u64>], path: &str) -> Result<(u16, u16), DecisionError> {
    let range_path = || field(path, "port_range");
    let bound = |i: usize| -> Result<u16, DecisionError> {
        items
            .get(i)
            .copied()
            .flatten()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                DecisionError::invalid(
                    index(&range_path(), i),
                    "expected a port number from 1 to 65535",
                )
            })
    };
    if items.len() != 2 {
        return Err(DecisionError::invalid(
            range_path(),
            "expected [first, last], two port numbers",
        ));
    }
    let (lo, hi) = (bound(0)?, bound(1)?);
    if lo > hi {
        return Err(DecisionError::invalid(
            range_path(),
            format!("first port {lo} is above last port {hi}"),
        ));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_defaults_follow_spec_section_2() {
        let s = Server::from_value(
            &json!({"hostname": "n1", "address": "10.0.0.1"}),
            "inventory[0]",
        )
        .unwrap();
        assert_eq!(s.docker, "tcp://10.0.0.1:2375");
        assert!(s.tags.is_empty());
        assert!(!s.reserved && !s.full && !s.down);
        assert_eq!(s.port_range, (20000, 29999));
        assert_eq!(s.containers, None);
    }

    #[test]
    fn server_without_address_names_the_field() {
        let e = Server::from_value(&json!({"hostname": "n1"}), "inventory[3]").unwrap_err();
        assert_eq!(e.kind(), "invalid_request");
        assert!(e.to_string().starts_with("inventory[3].address"), "{e}");
    }

    #[test]
    fn down_is_read_and_written_like_reserved_and_full() {
        let s = Server::from_value(
            &json!({"hostname": "n1", "address": "a", "down": true}),
            "inventory[0]",
        )
        .unwrap();
        assert!(s.down);
        assert_eq!(s.to_value()["down"], json!(true));
        assert_eq!(Server::from_value(&s.to_value(), "x").unwrap(), s);
        let e = Server::from_value(
            &json!({"hostname": "n1", "address": "a", "down": "yes"}),
            "inventory[4]",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("inventory[4].down"), "{e}");
    }

    #[test]
    fn reversed_port_range_is_invalid() {
        let e = Server::from_value(
            &json!({"hostname": "n1", "address": "a", "port_range": [30000, 20000]}),
            "inventory[0]",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("inventory[0].port_range"), "{e}");
    }
}
