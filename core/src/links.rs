//! SPEC 3, Links: parsing `HostConfig.Links`, resolving a link to one
//! container or a service group, and the legacy-link variables of Docker
//! Engine 28+, pointed at the target's server and published ports.

use std::collections::BTreeMap;

use crate::cluster::Cluster;
use crate::error::DecisionError;
use crate::naming::ContainerName;
use crate::port::Port;
use crate::route::Route;
use crate::text::{joined, upper, Decimal};

/// One `HostConfig.Links` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkSpec {
    pub name: String,
    pub alias: String,
    pub path: String,
}

impl LinkSpec {
    /// Parses as Docker does: `name:alias`, bare `name`, or the legacy
    /// `/name:/parent/alias`; more than one `:` is `invalid_request`.
    pub fn parse(entry: &str, path: &str) -> Result<LinkSpec, DecisionError> {
        let bad = |why: &str| DecisionError::invalid(path, format!("link {entry:?} {why}"));
        let parts: Vec<&str> = entry.split(':').collect();
        let (name, alias) = match parts.as_slice() {
            [bare] => {
                // A bare `/name` is the name itself; the slash is Docker's prefix.
                let bare = bare.strip_prefix('/').unwrap_or(bare);
                (bare, bare)
            }
            [name, alias] => match name.strip_prefix('/') {
                Some(stripped) => (stripped, alias.rsplit('/').next().unwrap_or(alias)),
                None => (*name, *alias),
            },
            _ => return Err(bad("has more than one ':'; expected name:alias")),
        };
        if name.is_empty() {
            return Err(bad("names no container"));
        }
        if alias.is_empty() {
            return Err(bad("has an empty alias"));
        }
        Ok(LinkSpec {
            name: name.to_string(),
            alias: alias.to_string(),
            path: path.to_string(),
        })
    }
}

/// What a link resolved to.
pub(crate) enum Target<'c> {
    Single(&'c Route),
    /// Live members of a service ordered by name, and the one the plain
    /// variables point at.
    Group {
        members: Vec<&'c Route>,
        chosen: usize,
    },
}

/// Resolves a link: an exact live container first, else the live members of
/// the service of that name, else `unknown_link`.
pub(crate) fn resolve<'c>(
    cluster: &'c Cluster,
    link: &LinkSpec,
    linker: Option<&ContainerName>,
) -> Result<Target<'c>, DecisionError> {
    if let Some(r) = cluster.live_route(&link.name) {
        return Ok(Target::Single(r));
    }
    let members: Vec<&Route> = cluster.members(&link.name).collect();
    if members.is_empty() {
        return Err(DecisionError::UnknownLink {
            path: link.path.clone(),
            name: link.name.clone(),
        });
    }
    let chosen = linker.map_or(0, |n| n.pid_mod(members.len()));
    Ok(Target::Group { members, chosen })
}

/// The variable prefix: the alias upper-cased, every character outside
/// `A-Z0-9_` made `_`.
pub(crate) fn env_prefix(alias: &str) -> String {
    alias
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where a linked container is reached: its server's address and, per
/// container port in link order, the host port it is published on.
pub(crate) struct Endpoint<'a> {
    pub address: &'a str,
    pub ports: &'a [(Port, u16)],
    pub env: &'a [String],
}

impl<'a> Endpoint<'a> {
    pub fn of(route: &'a Route, cluster: &'a Cluster) -> Endpoint<'a> {
        // The route records the address it was placed at; an older record
        // without one falls back to the inventory.
        let address = if route.address.is_empty() {
            cluster
                .server(&route.server)
                .map_or("", |s| s.address.as_str())
        } else {
            route.address.as_str()
        };
        Endpoint {
            address,
            ports: &route.ports,
            env: &route.env,
        }
    }

    fn url(&self, port: &Port, host: u16) -> String {
        joined(&[
            port.proto,
            "://",
            self.address,
            ":",
            Decimal::new(host).as_str(),
        ])
    }
}

/// `<A>_PORT_<num>_<PROTO>`, the stem of a port's variables.
fn port_var(prefix: &str, port: &Port) -> String {
    let num = Decimal::new(port.num);
    joined(&[prefix, "_PORT_", num.as_str(), "_", &upper(port.proto)])
}

/// Docker's legacy-link variables for one target (`links.go` `ToEnv`), with
/// the address and port values taken from `target`. `name_var` is the value
/// of `<A>_NAME`.
pub(crate) fn docker_link_env(prefix: &str, name_var: &str, target: &Endpoint) -> Vec<String> {
    let mut env = Vec::with_capacity(2 + target.ports.len() * 4);
    let ports = target.ports;
    let mut start = 0usize;
    for (i, (port, host)) in ports.iter().enumerate() {
        let url = target.url(port, *host);
        if i == 0 {
            env.push(joined(&[prefix, "_PORT=", &url]));
        }
        let var = port_var(prefix, port);
        env.push(joined(&[&var, "=", &url]));
        env.push(joined(&[&var, "_ADDR=", target.address]));
        env.push(joined(&[&var, "_PORT=", Decimal::new(*host).as_str()]));
        env.push(joined(&[&var, "_PROTO=", port.proto]));

        // A range is a run of consecutive container ports of one protocol;
        // it is written out when the run ends.
        let continues = i > 0 && {
            let prev = &ports[i - 1].0;
            prev.proto == port.proto && prev.num.checked_add(1) == Some(port.num)
        };
        if continues && i + 1 < ports.len() {
            continue;
        }
        let end = if continues { i } else { i.saturating_sub(1) };
        if continues || (i > 0 && end > start) {
            let (sp, sh) = &ports[start];
            let (ep, eh) = &ports[end];
            let rv = port_var(prefix, sp);
            env.push(joined(&[&rv, "_START=", &target.url(sp, *sh)]));
            env.push(joined(&[&rv, "_PORT_START=", Decimal::new(*sh).as_str()]));
            env.push(joined(&[&rv, "_END=", &target.url(ep, *eh)]));
            env.push(joined(&[&rv, "_PORT_END=", Decimal::new(*eh).as_str()]));
        }
        if !continues {
            start = i;
        }
    }
    env.push(joined(&[prefix, "_NAME=", name_var]));
    for entry in target.env {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        if key == "HOME" || key == "PATH" {
            continue;
        }
        env.push(joined(&[prefix, "_ENV_", key, "=", value]));
    }
    env
}

/// Every variable one link gives, before de-duplication against the user's
/// env: Docker's variables for the target (the chosen member of a group),
/// then for a group `<A>_MEMBERS` and one `_ENDPOINTS` per port.
pub(crate) fn link_env(
    cluster: &Cluster,
    link: &LinkSpec,
    target: &Target,
    linker_id: Option<&str>,
) -> Vec<String> {
    let prefix = env_prefix(&link.alias);
    let name_var = match linker_id {
        Some(id) => joined(&["/", id, "/", &link.alias]),
        None => joined(&["/", &link.alias]),
    };
    match target {
        Target::Single(route) => docker_link_env(&prefix, &name_var, &Endpoint::of(route, cluster)),
        Target::Group { members, chosen } => {
            let endpoints: Vec<Endpoint> =
                members.iter().map(|m| Endpoint::of(m, cluster)).collect();
            let Some(main) = endpoints.get(*chosen) else {
                return Vec::new();
            };
            let mut env = docker_link_env(&prefix, &name_var, main);
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            env.push(joined(&[&prefix, "_MEMBERS=", &names.join(",")]));
            // Each member's ports indexed once (the first entry for a port
            // wins, as a scan would find it), not scanned once per port.
            let by_port: Vec<BTreeMap<&Port, u16>> = endpoints
                .iter()
                .map(|e| {
                    let mut m = BTreeMap::new();
                    for (p, h) in e.ports {
                        m.entry(p).or_insert(*h);
                    }
                    m
                })
                .collect();
            for (port, _) in main.ports {
                let urls: Vec<String> = endpoints
                    .iter()
                    .zip(&by_port)
                    .filter_map(|(e, ports)| Some(e.url(port, *ports.get(port)?)))
                    .collect();
                let var = port_var(&prefix, port);
                env.push(joined(&[&var, "_ENDPOINTS=", &urls.join(",")]));
            }
            env
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::env_key;
    use std::collections::BTreeMap;

    fn keys(env: &[String]) -> Vec<&str> {
        env.iter().map(|e| env_key(e)).collect()
    }

    fn ports(specs: &[&str]) -> Vec<(Port, u16)> {
        let mut v: Vec<(Port, u16)> = specs
            .iter()
            .map(|s| {
                let p = Port::parse(s, "p").unwrap();
                let n = p.num;
                (p, n)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Docker's vectors: the child IP as address, host port == container port.
    fn docker(name: &str, child_ip: &str, env: &[&str], specs: &[&str]) -> Vec<String> {
        let ports = ports(specs);
        let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
        let alias = name.rsplit('/').next().unwrap();
        docker_link_env(
            &env_prefix(alias),
            name,
            &Endpoint {
                address: child_ip,
                ports: &ports,
                env: &env,
            },
        )
    }

    fn as_map(env: &[String]) -> BTreeMap<&str, &str> {
        env.iter().map(|e| e.split_once('=').unwrap()).collect()
    }

    #[test]
    fn links_docker_vector_link_naming() {
        let env = docker("/db/docker-1", "172.0.17.2", &[], &["6379/tcp"]);
        assert_eq!(as_map(&env)["DOCKER_1_PORT"], "tcp://172.0.17.2:6379");
    }

    #[test]
    fn links_docker_vector_link_env() {
        let env = docker(
            "/db/docker",
            "172.0.17.2",
            &["PASSWORD=gordon"],
            &["6379/tcp"],
        );
        assert_eq!(
            env,
            [
                "DOCKER_PORT=tcp://172.0.17.2:6379",
                "DOCKER_PORT_6379_TCP=tcp://172.0.17.2:6379",
                "DOCKER_PORT_6379_TCP_ADDR=172.0.17.2",
                "DOCKER_PORT_6379_TCP_PORT=6379",
                "DOCKER_PORT_6379_TCP_PROTO=tcp",
                "DOCKER_NAME=/db/docker",
                "DOCKER_ENV_PASSWORD=gordon",
            ]
        );
    }

    #[test]
    fn links_docker_vector_multiple_env_and_port_range() {
        let env = docker(
            "/db/docker",
            "172.0.17.2",
            &["PASSWORD=gordon"],
            &["6379/tcp", "6380/tcp", "6381/tcp"],
        );
        let m = as_map(&env);
        assert_eq!(m["DOCKER_PORT"], "tcp://172.0.17.2:6379");
        assert_eq!(m["DOCKER_PORT_6379_TCP_START"], "tcp://172.0.17.2:6379");
        assert_eq!(m["DOCKER_PORT_6379_TCP_END"], "tcp://172.0.17.2:6381");
        assert_eq!(m["DOCKER_PORT_6379_TCP_PORT_START"], "6379");
        assert_eq!(m["DOCKER_PORT_6379_TCP_PORT_END"], "6381");
        assert_eq!(m["DOCKER_PORT_6380_TCP_ADDR"], "172.0.17.2");
        assert_eq!(m["DOCKER_PORT_6381_TCP"], "tcp://172.0.17.2:6381");
        assert_eq!(m["DOCKER_NAME"], "/db/docker");
        assert_eq!(m["DOCKER_ENV_PASSWORD"], "gordon");
        // No duplicates, and the range comes after the last port of the run.
        assert_eq!(env.len(), m.len());
        let k = keys(&env);
        let pos = |key: &str| k.iter().position(|x| *x == key).unwrap();
        assert!(pos("DOCKER_PORT_6381_TCP_PROTO") < pos("DOCKER_PORT_6379_TCP_START"));
    }

    #[test]
    fn links_ranges_stay_within_one_protocol_and_tcp_comes_first() {
        let env = docker(
            "/web/db",
            "1.2.3.4",
            &[],
            &["6380/udp", "6379/tcp", "6381/udp", "6380/tcp"],
        );
        let k = keys(&env);
        assert_eq!(
            k,
            [
                "DB_PORT",
                "DB_PORT_6379_TCP",
                "DB_PORT_6379_TCP_ADDR",
                "DB_PORT_6379_TCP_PORT",
                "DB_PORT_6379_TCP_PROTO",
                "DB_PORT_6380_TCP",
                "DB_PORT_6380_TCP_ADDR",
                "DB_PORT_6380_TCP_PORT",
                "DB_PORT_6380_TCP_PROTO",
                "DB_PORT_6380_UDP",
                "DB_PORT_6380_UDP_ADDR",
                "DB_PORT_6380_UDP_PORT",
                "DB_PORT_6380_UDP_PROTO",
                "DB_PORT_6379_TCP_START",
                "DB_PORT_6379_TCP_PORT_START",
                "DB_PORT_6379_TCP_END",
                "DB_PORT_6379_TCP_PORT_END",
                "DB_PORT_6381_UDP",
                "DB_PORT_6381_UDP_ADDR",
                "DB_PORT_6381_UDP_PORT",
                "DB_PORT_6381_UDP_PROTO",
                "DB_PORT_6380_UDP_START",
                "DB_PORT_6380_UDP_PORT_START",
                "DB_PORT_6380_UDP_END",
                "DB_PORT_6380_UDP_PORT_END",
                "DB_NAME",
            ]
        );
        assert_eq!(as_map(&env)["DB_PORT"], "tcp://1.2.3.4:6379");
    }

    #[test]
    fn links_env_skips_home_path_and_bare_entries() {
        let env = docker(
            "/a/b",
            "1.1.1.1",
            &["HOME=/root", "PATH=/bin", "BARE", "K=v=w"],
            &[],
        );
        assert_eq!(env, ["B_NAME=/a/b", "B_ENV_K=v=w"]);
    }

    #[test]
    fn links_parse_like_docker() {
        let l = LinkSpec::parse("auth", "p").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("auth", "auth"));
        let l = LinkSpec::parse("auth:db", "p").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("auth", "db"));
        let l = LinkSpec::parse("/auth.1:/myapp.1/db", "p").unwrap();
        assert_eq!((l.name.as_str(), l.alias.as_str()), ("auth.1", "db"));
        for bad in ["a:b:c", "", ":x", "x:"] {
            let e = LinkSpec::parse(bad, "container.HostConfig.Links[1]").unwrap_err();
            assert!(
                e.to_string().starts_with("container.HostConfig.Links[1]:"),
                "{e}"
            );
        }
    }

    #[test]
    fn links_prefix_is_the_alias_made_an_env_name() {
        assert_eq!(env_prefix("auth.db-1"), "AUTH_DB_1");
        assert_eq!(env_prefix("Über"), "_BER");
    }
}
