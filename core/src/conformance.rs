//! The contract's hard rules as a check of any engine's answer (feature
//! `testgen`): a brute-force model of SPEC section 3 written apart from the
//! engine (plain loops over the raw JSON, none of its indexes), used by the
//! property tests here and by `flocker policy check` on modules people
//! write. [`check`] holds an answer to what every policy must keep; the
//! property tests also compare the outcome with [`Model::expected`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Fails the check with a message when `cond` does not hold.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Fails the check when the two differ, saying both.
macro_rules! ensure_eq {
    ($a:expr, $b:expr) => {
        ensure_eq!($a, $b, "values differ")
    };
    ($a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!("{}: {:?} is not {:?}", format!($($fmt)+), a, b));
        }
    }};
}

/// Checks `output` (SPEC section 4) answered for `input` (a whole SPEC
/// input, cluster included) against the rules every policy keeps, whatever
/// server it prefers: an error answer has a kind and a message (a policy
/// may refuse); a decision is made only where the rules allow one, never on
/// a full, down or (unless named or pinned) reserved server, respects pins
/// and `VIKING_TAGS`, publishes host ports in range, free and unique, keeps
/// every create-body field the rules do not rewrite, and saves the
/// request's own live route on the chosen server.
pub fn check(input: &Value, output: &Value) -> Result<(), String> {
    if let Some(e) = output.get("error") {
        ensure!(
            e["kind"].is_string() && e["message"].is_string(),
            "an error answer without a kind and a message: {e}"
        );
        return Ok(());
    }
    let host = output["server"]["hostname"].as_str().unwrap_or("");
    ensure!(!host.is_empty(), "neither a decision nor an error");
    let (expected, pin) = Model::new(input).expected();
    if let Expected::Error(kind) = expected {
        return Err(format!(
            "decided on {host} where the rules allow no server ({kind})"
        ));
    }
    check_route(input, output, host)?;
    check_decision(input, output, pin.as_deref())
}

/// The route is the named request's own, live, on the chosen server; an
/// unnamed request has none.
fn check_route(input: &Value, output: &Value, host: &str) -> Result<(), String> {
    let route = &output["route"];
    let name = input["name"]
        .as_str()
        .map(|n| n.strip_prefix('/').unwrap_or(n));
    let Some(name) = name else {
        ensure!(route.is_null(), "a route for an unnamed container: {route}");
        return Ok(());
    };
    ensure_eq!(route["name"].as_str(), Some(name), "the route's name");
    ensure_eq!(route["server"].as_str(), Some(host), "the route's server");
    ensure!(
        route["state"].is_null() || route["state"] == "live",
        "the route is not live: {}",
        route["state"]
    );
    Ok(())
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn port_key(k: &str) -> String {
    if k.contains('/') {
        k.to_ascii_lowercase()
    } else {
        format!("{k}/tcp")
    }
}

/// What the model says the decision must be.
#[derive(Debug, PartialEq)]
pub enum Expected {
    /// An error of this kind.
    Error(&'static str),
    /// A decision on this server (the spread the default engine makes).
    Server(String),
}

/// The rules over one raw SPEC input.
pub struct Model<'a> {
    input: &'a Value,
    routes: BTreeMap<&'a str, &'a Value>,
}

impl<'a> Model<'a> {
    /// The model of `input` (a whole SPEC input).
    pub fn new(input: &'a Value) -> Self {
        let routes = input["routes"]["containers"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default();
        Model { input, routes }
    }

    fn live(&self, name: &str) -> Option<&'a Value> {
        self.routes
            .get(name)
            .copied()
            .filter(|r| r["state"] == "live")
    }

    fn servers(&self) -> Vec<&'a Value> {
        self.input["inventory"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    fn server(&self, host: &str) -> Option<&'a Value> {
        self.servers().into_iter().find(|s| s["hostname"] == host)
    }

    fn live_on(&self, host: &str) -> Vec<&'a Value> {
        self.routes
            .values()
            .copied()
            .filter(|r| r["state"] == "live" && r["server"] == host)
            .collect()
    }

    fn load(&self, s: &Value) -> u64 {
        s["containers"]
            .as_u64()
            .unwrap_or_else(|| self.live_on(s["hostname"].as_str().unwrap_or("")).len() as u64)
    }

    /// Every host port live routes on `host` bind: their `host_ports`, and
    /// the values of their `ports` (all a record from before `host_ports` has).
    fn used_ports(&self, host: &str) -> BTreeSet<u64> {
        self.live_on(host)
            .iter()
            .flat_map(|r| {
                r["ports"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(_, h)| h)
                    .chain(r["host_ports"].as_array().into_iter().flatten())
                    .filter_map(Value::as_u64)
            })
            .collect()
    }

    fn env(&self, key: &str) -> Option<&'a str> {
        strs(&self.input["container"]["Env"])
            .into_iter()
            .rev()
            .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// The decision the rules call for, and the server pins (or
    /// `VIKING_SERVER`) send the container to, if any.
    pub fn expected(&self) -> (Expected, Option<String>) {
        let c = &self.input["container"];
        let hc = &c["HostConfig"];
        let name = self.input["name"].as_str();
        if let Some(n) = name {
            if self.live(n).is_some() {
                return (Expected::Error("name_in_use"), None);
            }
        }
        let viking = self.env("VIKING_SERVER").filter(|v| !v.is_empty());
        if let Some(v) = viking {
            if self.server(v).is_none() {
                return (Expected::Error("unknown_server"), None);
            }
        }
        let mut named: Vec<&str> = strs(&hc["Binds"])
            .iter()
            .map(|b| b.split(':').next().unwrap_or(""))
            .collect();
        for m in hc["Mounts"].as_array().into_iter().flatten() {
            if m["Type"] == "volume" {
                named.extend(m["Source"].as_str());
            }
        }
        let has_volume =
            !named.is_empty() || hc["Mounts"].as_array().is_some_and(|m| !m.is_empty());
        let mut pins: Vec<String> = viking.map(str::to_string).into_iter().collect();
        for v in &named {
            if let Some(s) = self.input["routes"]["volumes"][*v].as_str() {
                pins.push(s.to_string());
            }
        }
        if let (Some(n), true) = (name, has_volume) {
            if let Some(r) = self.routes.get(n) {
                pins.push(r["server"].as_str().unwrap_or("").to_string());
            }
        }
        for src in strs(&hc["VolumesFrom"]) {
            let src = src.split(':').next().unwrap_or("");
            match self.live(src) {
                Some(r) => pins.push(r["server"].as_str().unwrap_or("").to_string()),
                None => return (Expected::Error("unknown_container"), None),
            }
        }
        let pinned: BTreeSet<&String> = pins.iter().collect();
        if pinned.len() > 1 {
            return (Expected::Error("conflicting_pins"), None);
        }
        let pin = pins.first().cloned();
        if let Some(p) = &pin {
            match self.server(p) {
                None => return (Expected::Error("pinned_server_unavailable"), None),
                // A pin other than VIKING_SERVER itself to a down server.
                Some(s) if s["down"] == true && pins.len() > usize::from(viking.is_some()) => {
                    return (Expected::Error("pinned_server_unavailable"), None)
                }
                Some(_) => {}
            }
        }
        for link in strs(&hc["Links"]) {
            let target = link.split(':').next().unwrap_or("");
            let group = self
                .routes
                .values()
                .any(|r| r["state"] == "live" && r["service"] == target);
            if self.live(target).is_none() && !group {
                return (Expected::Error("unknown_link"), None);
            }
        }

        // Ports: (explicit host ports, number to pick from the range).
        let host_mode = hc["NetworkMode"] == "host";
        let mut exposed: BTreeMap<String, Vec<Option<u64>>> = BTreeMap::new();
        for src in [
            &c["ExposedPorts"],
            &self.input["image"]["Config"]["ExposedPorts"],
        ] {
            for k in src.as_object().into_iter().flatten().map(|(k, _)| k) {
                exposed.entry(port_key(k)).or_default();
            }
        }
        for (k, list) in hc["PortBindings"].as_object().into_iter().flatten() {
            let e = exposed.entry(port_key(k)).or_default();
            for b in list.as_array().into_iter().flatten() {
                e.push(b["HostPort"].as_str().and_then(|h| h.parse().ok()));
            }
        }
        let mut explicit: BTreeSet<u64> = BTreeSet::new();
        let mut any = 0u64;
        for (k, hosts) in &exposed {
            if host_mode {
                explicit.insert(k.split('/').next().unwrap_or("").parse().unwrap_or(0));
                continue;
            }
            if hosts.is_empty() {
                any += 1;
            }
            for h in hosts {
                match h {
                    Some(p) => {
                        explicit.insert(*p);
                    }
                    None => any += 1,
                }
            }
        }

        let tags = self.env("VIKING_TAGS").unwrap_or("");
        let service = name.map(|n| n.rsplit_once('.').map_or(n, |(s, _)| s));
        let mut best: Option<(u64, u64, String)> = None;
        for s in self.servers() {
            let host = s["hostname"].as_str().unwrap_or("");
            if pin.as_deref().is_some_and(|p| p != host) || s["down"] == true {
                continue;
            }
            let server_tags = strs(&s["tags"]);
            let tags_ok = tags
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .all(|t| match t.strip_prefix('!') {
                    Some(neg) => !server_tags.contains(&neg.trim()),
                    None => server_tags.contains(&t),
                });
            let load = self.load(s);
            let full = s["full"] == true || s["max_containers"].as_u64().is_some_and(|m| load >= m);
            let reserved = s["reserved"] == true && pin.is_none();
            let used = self.used_ports(host);
            let lo = s["port_range"][0].as_u64().unwrap_or(20000);
            let hi = s["port_range"][1].as_u64().unwrap_or(29999);
            let free = (lo..=hi)
                .filter(|p| !used.contains(p) && !explicit.contains(p))
                .count() as u64;
            let ports_ok = explicit.iter().all(|p| !used.contains(p)) && free >= any;
            if !tags_ok || full || reserved || !ports_ok {
                continue;
            }
            let same = service.map_or(0, |sv| {
                self.live_on(host)
                    .iter()
                    .filter(|r| r["service"] == sv)
                    .count() as u64
            });
            let key = (load, same, host.to_string());
            if best.as_ref().is_none_or(|b| key < *b) {
                best = Some(key);
            }
        }
        match best {
            Some((_, _, host)) => (Expected::Server(host), pin),
            None => (Expected::Error("no_eligible_server"), pin),
        }
    }
}

/// What an answer is, in the model's terms.
pub fn outcome(out: &Value) -> Expected {
    match out.get("error") {
        Some(e) => Expected::Error(match e["kind"].as_str().unwrap_or("") {
            "invalid_request" => "invalid_request",
            "invalid_name" => "invalid_name",
            "name_in_use" => "name_in_use",
            "unknown_server" => "unknown_server",
            "unknown_container" => "unknown_container",
            "unknown_link" => "unknown_link",
            "conflicting_pins" => "conflicting_pins",
            "pinned_server_unavailable" => "pinned_server_unavailable",
            "no_eligible_server" => "no_eligible_server",
            _ => "unexpected kind",
        }),
        None => Expected::Server(out["server"]["hostname"].as_str().unwrap_or("").to_string()),
    }
}

/// Checks what a successful decision did to ports and to the create body.
pub fn check_decision(input: &Value, out: &Value, pin: Option<&str>) -> Result<(), String> {
    let model = Model::new(input);
    let host = out["server"]["hostname"].as_str().unwrap_or("");
    let server = model
        .server(host)
        .ok_or_else(|| "chosen server not in inventory".to_string())?;
    let lo = server["port_range"][0].as_u64().unwrap_or(20000);
    let hi = server["port_range"][1].as_u64().unwrap_or(29999);
    let used = model.used_ports(host);
    let hc_in = &input["container"]["HostConfig"];
    let hc_out = &out["container"]["HostConfig"];

    // Never a down or full server; a reserved one only when named or pinned.
    ensure!(server["down"] != true, "chose down server {}", host);
    let load = model.load(server);
    ensure!(server["full"] != true, "chose a full server");
    ensure!(
        server["max_containers"].as_u64().is_none_or(|m| load < m),
        "chose a server at its max"
    );
    if server["reserved"] == true {
        ensure_eq!(pin, Some(host), "chose reserved {} unasked", host);
    }
    // Pins are respected.
    if let Some(p) = pin {
        ensure_eq!(p, host, "pinned to {} but chose {}", p, host);
    }
    // Every plain tag is on the chosen server and no `!` tag is.
    let tags = strs(&server["tags"]);
    for t in model
        .env("VIKING_TAGS")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match t.strip_prefix('!') {
            Some(neg) => ensure!(!tags.contains(&neg.trim()), "chose {} with !{}", host, neg),
            None => ensure!(tags.contains(&t), "chose {} without {}", host, t),
        }
    }

    // Every host port the engine picked lies in the range and is used once,
    // explicit ones are as asked, and none is used by a live route's
    // host_ports there. The route lists every one of them.
    let mut bound = BTreeSet::new();
    if hc_in["NetworkMode"] != "host" {
        let mut picked = BTreeSet::new();
        let mut explicit = BTreeSet::new();
        for (k, list) in hc_out["PortBindings"].as_object().into_iter().flatten() {
            for (i, b) in list.as_array().into_iter().flatten().enumerate() {
                let asked = hc_in["PortBindings"][k][i]["HostPort"]
                    .as_str()
                    .filter(|h| !h.is_empty());
                let got = b["HostPort"].as_str().unwrap_or("");
                let p: u64 = got
                    .parse()
                    .map_err(|_| "HostPort not a number".to_string())?;
                ensure!(!used.contains(&p), "port {} used by a live route", p);
                bound.insert(p);
                match asked {
                    Some(a) => {
                        ensure_eq!(a, got);
                        explicit.insert(p);
                    }
                    None => {
                        ensure!((lo..=hi).contains(&p), "port {} outside {}-{}", p, lo, hi);
                        ensure!(picked.insert(p), "port {} picked twice", p);
                    }
                }
            }
        }
        ensure!(
            picked.is_disjoint(&explicit),
            "picked {:?} over explicit {:?}",
            picked,
            explicit
        );
    } else {
        for (k, _) in out["route"]["ports"].as_object().into_iter().flatten() {
            let p: u64 = k.split('/').next().unwrap_or("").parse().unwrap_or(0);
            ensure!(
                !used.contains(&p),
                "host-network port {} used by a live route",
                p
            );
            bound.insert(p);
        }
    }
    if !out["route"].is_null() {
        let listed: Vec<u64> = out["route"]["host_ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        let bound: Vec<u64> = bound.into_iter().collect();
        ensure_eq!(listed, bound, "route.host_ports is not every bound port");
    }

    // Fields the rules do not name are untouched.
    let c_in = input["container"].as_object().cloned().unwrap_or_default();
    let c_out = out["container"].as_object().cloned().unwrap_or_default();
    for (k, v) in &c_in {
        if k != "Env" && k != "HostConfig" {
            ensure_eq!(Some(v), c_out.get(k), "field {} changed", k);
        }
    }
    for (k, v) in hc_in.as_object().into_iter().flatten() {
        if k != "Links" && k != "PortBindings" {
            ensure_eq!(Some(v), hc_out.get(k), "HostConfig.{} changed", k);
        }
    }
    ensure!(hc_out.get("Links").is_none(), "Links left in the body");
    // The user's env comes first, unchanged.
    let env_in = strs(&input["container"]["Env"]);
    let env_out = strs(&out["container"]["Env"]);
    ensure_eq!(&env_out[..env_in.len()], &env_in[..]);
    Ok(())
}
