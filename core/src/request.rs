//! The request half of the decision input (`name`, `container`, `image`),
//! read and checked in full before any rule runs, so that every bad field is
//! `invalid_request` with its JSON path whatever the cluster holds.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::env::{env_key, env_value};
use crate::error::DecisionError;
use crate::json_path::{
    field, index, object, opt_array, opt_object, opt_string, opt_strings, present,
};
use crate::limits::{self, check};
use crate::links::LinkSpec;
use crate::naming::ContainerName;
use crate::port::{HostPortRequest, Port};

/// How the container is networked, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetworkMode {
    /// Ports are published from the server's range.
    Published,
    /// `host`: each exposed port is its own host port.
    Host,
    /// `container:<name>`: shares another container's network; no ports.
    Container(String),
}

/// One exposed port and the host ports its bindings ask for.
#[derive(Debug, Clone)]
pub(crate) struct ExposedPort {
    pub port: Port,
    /// Where the port was first named, for errors about it.
    pub path: String,
    /// One entry per `PortBindings` binding, each with the key it came from
    /// (`"80"` or `"80/tcp"`) and its place in that key's array. Empty when
    /// the port is only exposed.
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub key: String,
    pub slot: usize,
    pub host: HostPortRequest,
}

/// A name taken from the body, with the JSON path it was read at.
pub(crate) type Located<'a> = (&'a str, String);

/// A tag filter of `VIKING_TAGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagRule<'a> {
    Has(&'a str),
    HasNot(&'a str),
}

#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub name: Option<ContainerName>,
    pub container: &'a Map<String, Value>,
    /// The user's `Env`, as sent.
    pub env: Vec<&'a str>,
    pub image_env: Vec<&'a str>,
    /// `VIKING_SERVER`'s value and the path of the entry that set it.
    pub viking_server: Option<(&'a str, String)>,
    pub tags: Vec<TagRule<'a>>,
    /// In Docker's link order, without duplicates.
    pub ports: Vec<ExposedPort>,
    pub network: NetworkMode,
    /// Named volumes with the path of the entry naming them, in body order.
    pub named_volumes: Vec<Located<'a>>,
    /// Any volume at all: named, bind, `Mounts`, `Volumes`, image volumes.
    pub has_volume: bool,
    /// `VolumesFrom` sources with their paths.
    pub volumes_from: Vec<Located<'a>>,
    pub links: Vec<LinkSpec>,
}

impl<'a> Request<'a> {
    pub fn parse(input: &'a Value) -> Result<Request<'a>, DecisionError> {
        let o = object(input, "")?;
        let name = match opt_string(o, "", "name")? {
            None | Some("") => None,
            Some(n) => Some(ContainerName::parse(n)?),
        };
        let container = match present(o.get("container")) {
            Some(c) => object(c, "container")?,
            None => {
                return Err(DecisionError::invalid(
                    "container",
                    "is required but missing",
                ))
            }
        };
        let image_config = match opt_object(o, "", "image")? {
            Some(image) => opt_object(image, "image", "Config")?,
            None => None,
        };
        let host_config = opt_object(container, "container", "HostConfig")?;
        const HC: &str = "container.HostConfig";

        let env = opt_strings(container, "container", "Env")?;
        let env_path = field("container", "Env");
        check_len(
            env.len(),
            limits::MAX_ENV_ENTRIES,
            &env_path,
            "env entries",
            "MAX_ENV_ENTRIES",
        )?;
        let image_env = match image_config {
            Some(c) => opt_strings(c, "image.Config", "Env")?,
            None => Vec::new(),
        };
        check_len(
            image_env.len(),
            limits::MAX_ENV_ENTRIES,
            "image.Config.Env",
            "env entries",
            "MAX_ENV_ENTRIES",
        )?;
        let mut viking_server = None;
        let mut viking_tags = None;
        for (i, e) in env.iter().enumerate() {
            // Later entries win, as they do for the Docker daemon.
            match (env_key(e), env_value(e)) {
                ("VIKING_SERVER", Some(v)) if !v.is_empty() => {
                    viking_server = Some((v, index(&env_path, i)))
                }
                ("VIKING_SERVER", _) => viking_server = None,
                ("VIKING_TAGS", v) => viking_tags = v.map(|v| (v, i)),
                _ => {}
            }
        }
        let tags = match viking_tags {
            Some((list, i)) => {
                let tags = parse_tags(list);
                check(
                    tags.len(),
                    limits::MAX_TAG_RULES,
                    &index(&env_path, i),
                    "VIKING_TAGS rules",
                    "MAX_TAG_RULES",
                )?;
                tags
            }
            None => Vec::new(),
        };

        let network = match opt_string(host_config.unwrap_or(&Map::new()), HC, "NetworkMode")? {
            Some("host") => NetworkMode::Host,
            Some(mode) => match mode.strip_prefix("container:") {
                Some(other) => {
                    let other = other.strip_prefix('/').unwrap_or(other);
                    if other.is_empty() {
                        return Err(DecisionError::invalid(
                            field(HC, "NetworkMode"),
                            "container: needs a container name",
                        ));
                    }
                    NetworkMode::Container(other.to_string())
                }
                None => NetworkMode::Published,
            },
            None => NetworkMode::Published,
        };

        let ports = read_ports(container, image_config, host_config)?;
        check_host_ports(&ports, &network)?;
        let (named_volumes, has_volume) = read_volumes(container, image_config, host_config)?;

        let mut volumes_from = Vec::new();
        if let Some(hc) = host_config {
            let path = field(HC, "VolumesFrom");
            let entries = opt_strings(hc, HC, "VolumesFrom")?;
            check_len(
                entries.len(),
                limits::MAX_VOLUMES_FROM,
                &path,
                "VolumesFrom entries",
                "MAX_VOLUMES_FROM",
            )?;
            for (i, entry) in entries.into_iter().enumerate() {
                let p = index(&path, i);
                let source = match entry.split_once(':') {
                    Some((s, "ro" | "rw")) => s,
                    Some(_) => {
                        return Err(DecisionError::invalid(
                            p,
                            format!("{entry:?}: expected name, name:ro or name:rw"),
                        ))
                    }
                    None => entry,
                };
                let source = source.strip_prefix('/').unwrap_or(source);
                if source.is_empty() {
                    return Err(DecisionError::invalid(p, "names no container"));
                }
                volumes_from.push((source, p));
            }
        }

        let mut links = Vec::new();
        if let Some(hc) = host_config {
            let path = field(HC, "Links");
            let entries = opt_strings(hc, HC, "Links")?;
            check_len(
                entries.len(),
                limits::MAX_LINKS,
                &path,
                "links",
                "MAX_LINKS",
            )?;
            for (i, entry) in entries.into_iter().enumerate() {
                links.push(LinkSpec::parse(entry, &index(&path, i))?);
            }
        }

        Ok(Request {
            name,
            container,
            env,
            image_env,
            viking_server,
            tags,
            ports,
            network,
            named_volumes,
            has_volume,
            volumes_from,
            links,
        })
    }
}

/// `a, b,,!c` -> has a, has b, has not c.
fn parse_tags(list: &str) -> Vec<TagRule<'_>> {
    list.split(',')
        .filter_map(|item| {
            let item = item.trim();
            match item.strip_prefix('!') {
                Some(neg) => {
                    let neg = neg.trim();
                    (!neg.is_empty()).then_some(TagRule::HasNot(neg))
                }
                None => (!item.is_empty()).then_some(TagRule::Has(item)),
            }
        })
        .collect()
}

/// The union of the container's and image's `ExposedPorts` and the keys of
/// `PortBindings`, each with its bindings, in link order.
fn read_ports(
    container: &Map<String, Value>,
    image_config: Option<&Map<String, Value>>,
    host_config: Option<&Map<String, Value>>,
) -> Result<Vec<ExposedPort>, DecisionError> {
    let mut ports: Vec<ExposedPort> = Vec::new();
    // Port -> its place in `ports`, so a repeated port is found in log time.
    let mut seen: BTreeMap<Port, usize> = BTreeMap::new();
    let mut add = |port: Port, path: String| -> Result<usize, DecisionError> {
        if let Some(i) = seen.get(&port) {
            return Ok(*i);
        }
        check(
            ports.len() + 1,
            limits::MAX_EXPOSED_PORTS,
            &path,
            "exposed ports",
            "MAX_EXPOSED_PORTS",
        )?;
        seen.insert(port.clone(), ports.len());
        ports.push(ExposedPort {
            port,
            path,
            bindings: Vec::new(),
        });
        Ok(ports.len() - 1)
    };
    let exposed = [
        (
            opt_object(container, "container", "ExposedPorts")?,
            "container.ExposedPorts",
        ),
        (
            match image_config {
                Some(c) => opt_object(c, "image.Config", "ExposedPorts")?,
                None => None,
            },
            "image.Config.ExposedPorts",
        ),
    ];
    for (map, path) in exposed {
        for key in map.into_iter().flat_map(|m| m.keys()) {
            let key_path = field(path, key);
            add(Port::parse(key, &key_path)?, key_path)?;
        }
    }
    let mut bindings: Vec<(usize, Binding)> = Vec::new();
    if let Some(hc) = host_config {
        const PB: &str = PORT_BINDINGS;
        if let Some(pb) = opt_object(hc, "container.HostConfig", "PortBindings")? {
            for (key, list) in pb {
                let key_path = field(PB, key);
                let at = add(Port::parse(key, &key_path)?, key_path.clone())?;
                let Some(list) = present(Some(list)) else {
                    continue;
                };
                let list = list.as_array().ok_or_else(|| {
                    DecisionError::invalid(&key_path, "expected an array of bindings")
                })?;
                check_len(
                    list.len(),
                    limits::MAX_BINDINGS_PER_PORT,
                    &key_path,
                    "bindings of one port",
                    "MAX_BINDINGS_PER_PORT",
                )?;
                for (slot, b) in list.iter().enumerate() {
                    let b_path = index(&key_path, slot);
                    let b = object(b, &b_path)?;
                    let host = match opt_string(b, &b_path, "HostPort")? {
                        Some(hp) => HostPortRequest::parse(hp, &field(&b_path, "HostPort"))?,
                        None => HostPortRequest::Any,
                    };
                    opt_string(b, &b_path, "HostIp")?;
                    bindings.push((
                        at,
                        Binding {
                            key: key.clone(),
                            slot,
                            host,
                        },
                    ));
                }
            }
        }
    }
    for (at, b) in bindings {
        ports[at].bindings.push(b);
    }
    ports.sort_by(|a, b| a.port.cmp(&b.port));
    Ok(ports)
}

/// Named volumes (with paths) and whether the container has any volume.
fn read_volumes<'a>(
    container: &'a Map<String, Value>,
    image_config: Option<&'a Map<String, Value>>,
    host_config: Option<&'a Map<String, Value>>,
) -> Result<(Vec<Located<'a>>, bool), DecisionError> {
    const HC: &str = "container.HostConfig";
    let mut named = NamedVolumes::default();
    let mut any = false;
    if let Some(hc) = host_config {
        let binds_path = field(HC, "Binds");
        let binds = opt_strings(hc, HC, "Binds")?;
        check_len(
            binds.len(),
            limits::MAX_MOUNTS,
            &binds_path,
            "Binds",
            "MAX_MOUNTS",
        )?;
        for (i, bind) in binds.into_iter().enumerate() {
            any = true;
            let source = bind.split(':').next().unwrap_or(bind);
            if bind.contains(':') && !source.is_empty() && !source.starts_with('/') {
                named.push(source, index(&binds_path, i))?;
            }
        }
        if let Some(mounts) = opt_array(hc, HC, "Mounts")? {
            let mounts_path = field(HC, "Mounts");
            check_len(
                mounts.len(),
                limits::MAX_MOUNTS,
                &mounts_path,
                "Mounts",
                "MAX_MOUNTS",
            )?;
            for (i, m) in mounts.iter().enumerate() {
                any = true;
                let p = index(&mounts_path, i);
                let m = object(m, &p)?;
                let kind = opt_string(m, &p, "Type")?;
                let source = opt_string(m, &p, "Source")?;
                if let (Some("volume"), Some(s)) = (kind, source) {
                    if !s.is_empty() {
                        named.push(s, field(&p, "Source"))?;
                    }
                }
            }
        }
    }
    any |= opt_object(container, "container", "Volumes")?.is_some_and(|v| !v.is_empty());
    if let Some(c) = image_config {
        any |= opt_object(c, "image.Config", "Volumes")?.is_some_and(|v| !v.is_empty());
    }
    Ok((named.all, any))
}

/// Named volumes as read, each checked against Docker's rule, with the
/// distinct ones counted.
#[derive(Default)]
struct NamedVolumes<'a> {
    all: Vec<Located<'a>>,
    distinct: BTreeSet<&'a str>,
}

impl<'a> NamedVolumes<'a> {
    fn push(&mut self, name: &'a str, path: String) -> Result<(), DecisionError> {
        if !is_volume_name(name) {
            return Err(DecisionError::invalid(
                path,
                format!(
                    "{name:?} is not a volume name: Docker allows only \
                     [a-zA-Z0-9][a-zA-Z0-9_.-]+, and a host directory must be an absolute path"
                ),
            ));
        }
        if self.distinct.insert(name) && self.distinct.len() > limits::MAX_NAMED_VOLUMES {
            return Err(limits::exceeded(
                path,
                "named volumes",
                limits::MAX_NAMED_VOLUMES,
                "MAX_NAMED_VOLUMES",
            ));
        }
        self.all.push((name, path));
        Ok(())
    }
}

/// Docker's rule for a volume name (`RestrictedNamePattern`,
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`): the local driver refuses any other at
/// create time, so such a `Bind` is refused here, before it is claimed.
pub(crate) fn is_volume_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A list with more than `limit` entries is refused at its first entry past it.
fn check_len(
    len: usize,
    limit: usize,
    list_path: &str,
    what: &str,
    name: &str,
) -> Result<(), DecisionError> {
    // The path is only built for the error: this runs on every request.
    if len > limit {
        return Err(limits::exceeded(index(list_path, limit), what, limit, name));
    }
    Ok(())
}

/// [`limits::MAX_HOST_PORTS`]: under host networking each exposed port is
/// a host port; published, each binding is (or one for a port with none).
/// Refused at the port or binding that asks for one too many.
fn check_host_ports(ports: &[ExposedPort], network: &NetworkMode) -> Result<(), DecisionError> {
    let over =
        |path: &str| limits::exceeded(path, "host ports", limits::MAX_HOST_PORTS, "MAX_HOST_PORTS");
    match network {
        NetworkMode::Container(_) => Ok(()),
        NetworkMode::Host => match ports.get(limits::MAX_HOST_PORTS) {
            Some(p) => Err(over(&p.path)),
            None => Ok(()),
        },
        NetworkMode::Published => {
            let mut count = 0usize;
            for p in ports {
                if p.bindings.is_empty() {
                    count += 1;
                    if count > limits::MAX_HOST_PORTS {
                        return Err(over(&p.path));
                    }
                }
                for b in &p.bindings {
                    count += 1;
                    if count > limits::MAX_HOST_PORTS {
                        return Err(over(&index(&field(PORT_BINDINGS, &b.key), b.slot)));
                    }
                }
            }
            Ok(())
        }
    }
}

const PORT_BINDINGS: &str = "container.HostConfig.PortBindings";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn viking_tags_are_trimmed_split_and_negated() {
        assert_eq!(
            parse_tags(" ssd, eu ,, !gpu,!"),
            vec![
                TagRule::Has("ssd"),
                TagRule::Has("eu"),
                TagRule::HasNot("gpu")
            ]
        );
    }

    #[test]
    fn exposed_ports_union_container_image_and_bindings() {
        let input = json!({
            "container": {"ExposedPorts": {"53/udp": {}, "80/tcp": {}},
                          "HostConfig": {"PortBindings": {"80": [{"HostPort": "8080"}], "443/tcp": null}}},
            "image": {"Config": {"ExposedPorts": {"80/tcp": {}, "9000/tcp": {}}}}
        });
        let r = Request::parse(&input).unwrap();
        let got: Vec<String> = r.ports.iter().map(|p| p.port.to_string()).collect();
        assert_eq!(got, ["80/tcp", "443/tcp", "9000/tcp", "53/udp"]);
        assert_eq!(
            r.ports[0].bindings[0].host,
            HostPortRequest::Explicit(8080, 8080)
        );
        assert_eq!(r.ports[0].bindings[0].key, "80");
    }

    #[test]
    fn named_volumes_come_from_binds_and_volume_mounts() {
        let input = json!({"container": {"HostConfig": {
            "Binds": ["pgdata:/var/lib/pg", "/srv:/srv:ro"],
            "Mounts": [{"Type": "volume", "Source": "logs", "Target": "/l"}, {"Type": "bind", "Source": "/x", "Target": "/y"}]
        }}});
        let r = Request::parse(&input).unwrap();
        let names: Vec<&str> = r.named_volumes.iter().map(|v| v.0).collect();
        assert_eq!(names, ["pgdata", "logs"]);
        assert!(r.has_volume);
    }

    #[test]
    fn wrong_types_name_their_path() {
        let cases = [
            (json!({"container": []}), "container"),
            (json!({"container": {"Env": "A=1"}}), "container.Env"),
            (
                json!({"container": {"Env": ["A=1", 3]}}),
                "container.Env[1]",
            ),
            (
                json!({"container": {"HostConfig": {"Links": ["a:b:c"]}}}),
                "container.HostConfig.Links[0]",
            ),
            (
                json!({"container": {"ExposedPorts": {"http/tcp": {}}}}),
                "container.ExposedPorts[\"http/tcp\"]",
            ),
            (
                json!({"container": {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}}}),
                "container.HostConfig.PortBindings[\"80/tcp\"][0].HostPort",
            ),
            (json!({"name": 5, "container": {}}), "name"),
            (json!({}), "container"),
        ];
        for (input, path) in cases {
            let e = Request::parse(&input).unwrap_err();
            assert_eq!(e.kind(), "invalid_request", "{input}");
            assert!(
                e.to_string().starts_with(&format!("{path}:")),
                "{path} vs {e}"
            );
        }
    }
}
