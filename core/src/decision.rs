//! The decision (SPEC section 4) and the order in which the rules make it.

use std::collections::BTreeSet;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};

use crate::cluster::Cluster;
use crate::env::{merge_image_env, Appender};
use crate::error::DecisionError;
use crate::explain::{Explain, Rejections};
use crate::json_out;
use crate::links::Target as LinkTarget;
use crate::pins::Restriction;
use crate::port::Port;
use crate::publishing::HostPorts;
use crate::request::{NetworkMode, Request};
use crate::route::{Route, LIVE};
use crate::routing::Preference;
use crate::server::Server;
use crate::text::joined;
use crate::{links, pins, routing};

/// The chosen server, as a proxy needs it to forward the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRef {
    /// The server's `hostname`.
    pub hostname: String,
    /// The server's `address`.
    pub address: String,
    /// The server's Docker endpoint, where the create request goes.
    pub docker: String,
}

/// A successful decision (SPEC section 4): where the container goes and
/// what to send there.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The chosen server.
    pub server: ServerRef,
    /// The rewritten create body.
    pub container: Map<String, Value>,
    /// The link variables appended to the body's `Env`, in order; a key
    /// the user set is not among them.
    pub links_env: Vec<String>,
    /// What the host saves; `None` for an unnamed container.
    pub route: Option<Route>,
    /// Why the server was chosen: the other servers' rejections.
    pub explain: Explain,
}

impl Decision {
    /// The SPEC success output object.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Written straight to the output, with no `Value` tree in between: a
/// decision is rendered on every call, and the body can be large.
impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("server", &self.server)?;
        m.serialize_entry("container", &self.container)?;
        m.serialize_entry("links_env", &self.links_env)?;
        m.serialize_entry("route", &self.route)?;
        m.serialize_entry("explain", &self.explain)?;
        m.end()
    }
}

impl Serialize for ServerRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("hostname", &self.hostname)?;
        m.serialize_entry("address", &self.address)?;
        m.serialize_entry("docker", &self.docker)?;
        m.end()
    }
}

/// A decision as routing makes it: the chosen server and the explanation
/// borrowed from the cluster and the request, the rest owned. `decide_json`
/// writes it to the output as it is; [`Decision`] is its owned form, made
/// only for callers that keep it.
pub(crate) struct DecisionRef<'a> {
    server: &'a Server,
    container: Map<String, Value>,
    links_env: Vec<String>,
    route: Option<Route>,
    explain: Rejections<'a>,
}

impl DecisionRef<'_> {
    fn into_decision(self) -> Decision {
        Decision {
            server: ServerRef {
                hostname: self.server.hostname.clone(),
                address: self.server.address.clone(),
                docker: self.server.docker.clone(),
            },
            explain: self.explain.to_explain(),
            container: self.container,
            links_env: self.links_env,
            route: self.route,
        }
    }

    /// The SPEC output as compact JSON: the same bytes serde_json writes
    /// for the owned [`Decision`], with the explanation written directly.
    pub(crate) fn to_json(&self) -> Result<String, serde_json::Error> {
        let container = serde_json::to_string(&self.container)?;
        let mut out = String::with_capacity(256 + container.len() + self.explain.json_len_hint());
        out.push_str("{\"server\":{\"hostname\":");
        json_out::push_str(&mut out, &self.server.hostname);
        out.push_str(",\"address\":");
        json_out::push_str(&mut out, &self.server.address);
        out.push_str(",\"docker\":");
        json_out::push_str(&mut out, &self.server.docker);
        out.push_str("},\"container\":");
        out.push_str(&container);
        out.push_str(",\"links_env\":");
        json_out::push_serde(&mut out, &self.links_env)?;
        out.push_str(",\"route\":");
        json_out::push_serde(&mut out, &self.route)?;
        out.push_str(",\"explain\":");
        self.explain.write_json(&mut out);
        out.push('}');
        Ok(out)
    }
}

impl Cluster {
    /// Decides `{name, container, image}` against this state. The rules run
    /// in a fixed order, so that when a request breaks several of them the
    /// error is always the same one: bad input, name, `VIKING_SERVER`, pins,
    /// links, then routing.
    ///
    /// Servers whose record says `down: true` are removed; see
    /// [`Cluster::decide_with_down`] for a host that knows of more.
    pub fn decide(&self, request: &Value) -> Result<Decision, DecisionError> {
        self.decide_with_down(request, &BTreeSet::new())
    }

    /// [`Cluster::decide`], with each hostname in `down` decided as if its
    /// inventory record said `down: true` (SPEC 3, Routing 3): the server is
    /// removed with reason `down`, named by `VIKING_SERVER` it leaves
    /// `no_eligible_server`, and a pin to it is `pinned_server_unavailable`.
    ///
    /// This is for a host that checks the servers' Docker daemons and treats
    /// one that stopped answering as down until it answers again, without
    /// writing that into the stored records (SPEC 5). The state is not copied
    /// or changed: `down` is read beside the servers, both in hostname
    /// order, which costs a comparison or two per server. Hostnames that are
    /// not in the inventory are ignored.
    ///
    /// ```
    /// use std::collections::BTreeSet;
    /// use flocker_core::Cluster;
    /// use serde_json::json;
    ///
    /// let cluster = Cluster::from_snapshot(&json!({"inventory": [
    ///     {"hostname": "node1", "address": "10.0.0.1"},
    ///     {"hostname": "node2", "address": "10.0.0.2", "containers": 5},
    /// ]}))?;
    /// let request = json!({"name": "web.1", "container": {"Image": "nginx"}});
    /// let down = BTreeSet::from(["node1".to_string()]);
    /// let d = cluster.decide_with_down(&request, &down)?;
    /// assert_eq!(d.server.hostname, "node2");
    /// assert_eq!(d.explain.summary, "1/2 servers eligible: 1 down");
    /// # Ok::<(), flocker_core::DecisionError>(())
    /// ```
    pub fn decide_with_down(
        &self,
        request: &Value,
        down: &BTreeSet<String>,
    ) -> Result<Decision, DecisionError> {
        self.decide_with(request, down, Preference::Spread)
    }

    /// [`Cluster::decide_with_down`], choosing among the servers that pass
    /// every rule by `preference`; [`Preference::Spread`] is the SPEC's
    /// choice and what [`Cluster::decide`] uses. Every other part of the
    /// decision (the rules, their errors, the rewritten body, the route) is
    /// the same whatever the preference.
    ///
    /// ```
    /// use std::collections::BTreeSet;
    /// use flocker_core::{Cluster, Preference};
    /// use serde_json::json;
    ///
    /// let cluster = Cluster::from_snapshot(&json!({"inventory": [
    ///     {"hostname": "node1", "address": "10.0.0.1", "containers": 1},
    ///     {"hostname": "node2", "address": "10.0.0.2", "containers": 5, "max_containers": 6},
    ///     {"hostname": "node3", "address": "10.0.0.3", "containers": 9, "full": true},
    /// ]}))?;
    /// let request = json!({"name": "web.1", "container": {"Image": "nginx"}});
    /// let none = BTreeSet::new();
    /// let packed = cluster.decide_with(&request, &none, Preference::Pack)?;
    /// assert_eq!(packed.server.hostname, "node2");
    /// let spread = cluster.decide_with(&request, &none, Preference::Spread)?;
    /// assert_eq!(spread.server.hostname, "node1");
    /// # Ok::<(), flocker_core::DecisionError>(())
    /// ```
    pub fn decide_with(
        &self,
        request: &Value,
        down: &BTreeSet<String>,
        preference: Preference,
    ) -> Result<Decision, DecisionError> {
        self.decide_ref(request, down, preference)
            .map(DecisionRef::into_decision)
    }

    /// The decision, borrowing what it names from the cluster and the
    /// request; [`Cluster::decide_with`] makes it owned.
    pub(crate) fn decide_ref<'a>(
        &'a self,
        request: &'a Value,
        down: &BTreeSet<String>,
        preference: Preference,
    ) -> Result<DecisionRef<'a>, DecisionError> {
        let Prepared {
            req,
            restriction,
            targets,
            ports,
        } = self.prepare(request, down)?;
        let (chosen, explain) = routing::choose(
            self,
            &req,
            &restriction,
            &ports,
            down,
            preference,
            |_, _| {},
        )
        .map_err(|explain| DecisionError::NoEligibleServer {
            explain: explain.to_explain(),
        })?;
        let server = chosen.server();
        let host_ports = ports
            .assign(server, &chosen.usage().ports)
            .map_err(|reason| {
                // `choose` only returns a server that passed the same check.
                let mut one = Rejections::new(std::slice::from_ref(chosen));
                one.push(0, reason);
                DecisionError::NoEligibleServer {
                    explain: one.to_explain(),
                }
            })?;

        let mut env = Appender::new(&req.env);
        if let Some(name) = &req.name {
            env.push(joined(&["SERVICE_ID=", &name.id]));
            env.push(joined(&["SERVICE_NAME=", &name.service]));
        }
        let mut links_env = Vec::new();
        let linker = req.name.as_ref().map(|n| n.id.as_str());
        for (link, target) in req.links.iter().zip(&targets) {
            for entry in links::link_env(self, link, target, linker) {
                if env.push(entry.clone()) {
                    links_env.push(entry);
                }
            }
        }

        let route_ports = route_ports(&req, &host_ports);
        let container = rewrite(&req, env.added, &host_ports);
        let route = req.name.as_ref().map(|name| Route {
            name: name.id.clone(),
            service: name.service.clone(),
            server: server.hostname.clone(),
            address: server.address.clone(),
            ports: route_ports,
            host_ports: claimed(&host_ports),
            env: merge_image_env(&req.env, &req.image_env),
            volumes: unique(req.named_volumes.iter().map(|(v, _)| *v)),
            state: LIVE.to_string(),
        });
        Ok(DecisionRef {
            server,
            container,
            links_env,
            route,
            explain,
        })
    }

    /// The rules before routing, in their fixed order: bad input, name,
    /// `VIKING_SERVER` and pins, links; then the host ports asked for.
    fn prepare<'r>(
        &'r self,
        request: &'r Value,
        down: &BTreeSet<String>,
    ) -> Result<Prepared<'r>, DecisionError> {
        let req = Request::parse(request)?;
        if let Some(name) = &req.name {
            if let Some(live) = self.live_route(&name.id) {
                return Err(DecisionError::NameInUse {
                    name: name.id.clone(),
                    server: live.server.clone(),
                });
            }
        }
        let restriction = pins::restriction(self, &req, down)?;
        let targets = req
            .links
            .iter()
            .map(|l| links::resolve(self, l, req.name.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let ports = HostPorts::of(&req);
        Ok(Prepared {
            req,
            restriction,
            targets,
            ports,
        })
    }

    /// Every server as routing saw `request` (`{name, container, image}`),
    /// in hostname order: removed with its reason, or eligible with its
    /// sort key, and which one was chosen. This is for tools that show why
    /// (`flocker explain`); it is not part of the SPEC output. A request
    /// that fails before routing (bad input, name in use, pins, links) is
    /// that error, as [`Cluster::decide`] gives it.
    ///
    /// ```
    /// use flocker_core::{Cluster, Verdict};
    /// use serde_json::json;
    ///
    /// let cluster = Cluster::from_snapshot(&json!({"inventory": [
    ///     {"hostname": "node1", "address": "10.0.0.1", "containers": 3},
    ///     {"hostname": "node2", "address": "10.0.0.2", "containers": 1},
    ///     {"hostname": "node3", "address": "10.0.0.3", "tags": ["hdd"]},
    /// ]}))?;
    /// let request = json!({"name": "web.1",
    ///     "container": {"Image": "nginx", "Env": ["VIKING_TAGS=!hdd"]}});
    /// let ranking = cluster.rank(&request)?;
    /// assert_eq!(ranking.chosen.as_deref(), Some("node2"));
    /// assert_eq!(ranking.servers[0].verdict, Verdict::Eligible { load: 3, same_service: 0 });
    /// assert_eq!(ranking.servers[2].verdict, Verdict::Removed("has tag !hdd".into()));
    /// # Ok::<(), flocker_core::DecisionError>(())
    /// ```
    pub fn rank(&self, request: &Value) -> Result<Ranking, DecisionError> {
        let none = BTreeSet::new();
        let Prepared {
            req,
            restriction,
            ports,
            ..
        } = self.prepare(request, &none)?;
        let mut servers = Vec::with_capacity(self.server_count());
        let spread = Preference::Spread;
        let chosen = routing::choose(
            self,
            &req,
            &restriction,
            &ports,
            &none,
            spread,
            |s, outcome| {
                servers.push(Ranked {
                    hostname: s.hostname.clone(),
                    verdict: match outcome {
                        Ok((load, same_service)) => Verdict::Eligible { load, same_service },
                        Err(reason) => Verdict::Removed(reason.to_string()),
                    },
                })
            },
        );
        let (chosen, summary) = match chosen {
            Ok((c, explain)) => (Some(c.server().hostname.clone()), explain.summary()),
            Err(explain) => (None, explain.summary()),
        };
        Ok(Ranking {
            servers,
            chosen,
            summary,
        })
    }

    /// [`Cluster::decide`] on bytes, rendered as SPEC output JSON.
    pub fn decide_json(&self, request: &[u8]) -> String {
        self.decide_json_with(request, Preference::Spread)
    }

    /// [`Cluster::decide_json`], choosing among the eligible servers by
    /// `preference` (see [`Cluster::decide_with`]).
    pub fn decide_json_with(&self, request: &[u8], preference: Preference) -> String {
        match crate::parse(request) {
            Ok(v) => crate::render_ref(&self.decide_ref(&v, &BTreeSet::new(), preference)),
            Err(e) => crate::render(&Err(e)),
        }
    }
}

/// Container port -> host port for the route: the first binding's port, or
/// the port itself under host networking.
fn route_ports(req: &Request, host_ports: &[u16]) -> Vec<(Port, u16)> {
    match req.network {
        NetworkMode::Published => {
            let mut next = host_ports.iter();
            req.ports
                .iter()
                .filter_map(|p| {
                    let n = p.bindings.len().max(1);
                    let first = next.next().copied();
                    for _ in 1..n {
                        next.next();
                    }
                    first.map(|h| (p.port.clone(), h))
                })
                .collect()
        }
        NetworkMode::Host => req
            .ports
            .iter()
            .map(|p| (p.port.clone(), p.port.num))
            .collect(),
        NetworkMode::Container(_) => Vec::new(),
    }
}

/// Every host port the container binds, ascending and unique: each binding
/// of each published port, or under host networking each exposed port
/// (one number for `53/tcp` and `53/udp`, as `/ports/<hostname>/<port>` is).
fn claimed(host_ports: &[u16]) -> Vec<u16> {
    let mut out = host_ports.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

/// The create body for the chosen server: env appended, `Links` removed,
/// every published port bound to its host port. Nothing else changes.
fn rewrite(req: &Request, added_env: Vec<String>, host_ports: &[u16]) -> Map<String, Value> {
    let mut body = req.container.clone();
    if !added_env.is_empty() {
        let mut env: Vec<Value> = req
            .env
            .iter()
            .map(|e| Value::String(e.to_string()))
            .collect();
        env.extend(added_env.into_iter().map(Value::String));
        body.insert("Env".into(), Value::Array(env));
    }
    let publishes = req.network == NetworkMode::Published && !req.ports.is_empty();
    let has_links_key =
        matches!(body.get("HostConfig"), Some(Value::Object(hc)) if hc.contains_key("Links"));
    if !publishes && !has_links_key {
        return body;
    }
    let Some(hc) = object_at(&mut body, "HostConfig") else {
        return body;
    };
    hc.remove("Links");
    if publishes {
        bind_ports(req, hc, host_ports);
    }
    body
}

fn bind_ports(req: &Request, hc: &mut Map<String, Value>, host_ports: &[u16]) {
    let Some(bindings) = object_at(hc, "PortBindings") else {
        return;
    };
    let mut next = host_ports.iter();
    for p in &req.ports {
        if p.bindings.is_empty() {
            if let Some(h) = next.next() {
                bindings.insert(
                    p.port.to_string(),
                    json!([{ "HostIp": "", "HostPort": h.to_string() }]),
                );
            }
            continue;
        }
        for b in &p.bindings {
            let Some(h) = next.next() else { return };
            if let Some(Value::Object(slot)) = bindings
                .get_mut(&b.key)
                .and_then(Value::as_array_mut)
                .and_then(|list| list.get_mut(b.slot))
            {
                slot.insert("HostPort".into(), json!(h.to_string()));
            }
        }
    }
}

/// The object under `key`, made an empty one when absent or `null` (the
/// request was read first, so anything else there was already an error).
fn object_at<'m>(map: &'m mut Map<String, Value>, key: &str) -> Option<&'m mut Map<String, Value>> {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// `items` without repeats, in first-seen order.
fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .filter(|i| seen.insert(*i))
        .map(str::to_string)
        .collect()
}

/// What [`Cluster::prepare`] found: the parsed request, where it may go,
/// its links' targets and the host ports it asks for.
struct Prepared<'r> {
    req: Request<'r>,
    restriction: Restriction,
    /// The target of each of `req.links`, in order.
    targets: Vec<LinkTarget<'r>>,
    ports: HostPorts,
}

/// [`Cluster::rank`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// Every server, in hostname order.
    pub servers: Vec<Ranked>,
    /// The server the decision takes; None when none is eligible.
    pub chosen: Option<String>,
    /// The explanation's summary, as in the SPEC output.
    pub summary: String,
}

/// One server in a [`Ranking`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// The server's `hostname`.
    pub hostname: String,
    /// Whether routing removed it or kept it, and why.
    pub verdict: Verdict,
}

/// How routing saw one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Removed by a routing rule; the reason reads as in `explain.rejected`.
    Removed(String),
    /// Eligible, with its sort key: the fewest `load` wins, then the fewest
    /// `same_service` (live members of the request's service), then the
    /// smallest hostname.
    Eligible {
        /// The server's load: `containers`, else its live routes.
        load: u64,
        /// Its live members of the request's service.
        same_service: u64,
    },
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Cluster;

    /// The directly written output escapes hostnames, addresses and
    /// reasons as serde_json does.
    #[test]
    fn direct_output_escapes_as_serde_does() {
        let cluster = Cluster::from_snapshot(&json!({"inventory": [
            {"hostname": "a\"quote", "address": "10.0.0.1", "tags": ["x"]},
            {"hostname": "b\\slash\u{1}", "address": "ad\tdr", "docker": "tcp://é:1",
             "tags": ["y\"z"]},
            {"hostname": "c日本", "address": "10.0.0.3", "full": true},
        ]}))
        .unwrap();
        for env in ["VIKING_TAGS=!x", "VIKING_TAGS=y\"z", "VIKING_TAGS=!\\"] {
            let request = json!({"name": "w.1", "container": {"Image": "w", "Env": [env]}});
            let direct = cluster.decide_json(request.to_string().as_bytes());
            assert_eq!(direct, crate::render(&cluster.decide(&request)), "{env}");
            assert!(direct.starts_with("{\"server\""), "{direct}");
        }
    }
}
