//! [`check`]: a module's decision is held to what the host can verify
//! cheaply before anything saves it. A module is code someone pushed; the
//! store saves whatever route it answers, so a module that routes another
//! container, or to a server that is not there, would corrupt the routes
//! every later decision reads.

use std::collections::BTreeSet;

use flocker_core::{Cluster, Route, LIVE};
use serde_json::Value;

use super::PolicyError;

/// Checks a module's answer `output` to `request` (`{name, container,
/// image}` JSON bytes) decided on `cluster` with the servers in `down`
/// decided on as down: for a decision (an `{"error": ...}` answer saves
/// nothing and passes), the route is the named request's own, live, on the
/// chosen server, which is in the inventory and not down, and every host
/// port it claims is in that server's `port_range` unless the request
/// asked for that port itself (an explicit `HostPort`, or host networking,
/// where each exposed port is its own host port: SPEC section 3, Mapping 1).
///
/// Shape problems (output that is not JSON, a malformed route) are left to
/// the engine's reading of the output, which reports them as bad output.
pub fn check(
    output: &str,
    cluster: &Cluster,
    request: &[u8],
    down: &BTreeSet<String>,
) -> Result<(), PolicyError> {
    let Ok(out) = serde_json::from_str::<Value>(output) else {
        return Ok(());
    };
    if out.get("error").is_some() {
        return Ok(());
    }
    let lie = |what: String| Err(PolicyError::Contract(what));
    let request: Value = serde_json::from_slice(request)
        .map_err(|e| PolicyError::Input(format!("the request is not JSON: {e}")))?;
    let name = request
        .get("name")
        .and_then(Value::as_str)
        .map(|n| n.strip_prefix('/').unwrap_or(n));
    let Some(hostname) = out
        .get("server")
        .and_then(|s| s.get("hostname"))
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let Some(server) = cluster.server(hostname) else {
        return lie(format!(
            "the decision chose server {hostname:?}, which is not in the inventory"
        ));
    };
    if server.down || down.contains(hostname) {
        return lie(format!(
            "the decision chose server {hostname:?}, which is down"
        ));
    }
    let route = match (out.get("route"), name) {
        (None | Some(Value::Null), None) => return Ok(()),
        (None | Some(Value::Null), Some(n)) => {
            return lie(format!(
                "the decision has no route for the named container {n:?}"
            ))
        }
        (Some(r), _) => match Route::from_value(r, None, "route") {
            Ok(r) => r,
            Err(_) => return Ok(()),
        },
    };
    match name {
        Some(n) if n == route.name => {}
        Some(n) => {
            return lie(format!(
                "the route names container {:?}, not the request's {n:?}",
                route.name
            ))
        }
        None => {
            return lie(format!(
                "the route names container {:?}, but the request is unnamed",
                route.name
            ))
        }
    }
    if route.server != hostname {
        return lie(format!(
            "the route is on server {:?}, but the decision chose {hostname:?}",
            route.server
        ));
    }
    if route.state != LIVE {
        return lie(format!(
            "the route's state is {:?}, not {LIVE:?}",
            route.state
        ));
    }
    let (lo, hi) = server.port_range;
    let asked = asked_host_ports(&request);
    let claimed = route
        .host_ports
        .iter()
        .chain(route.ports.iter().map(|(_, h)| h));
    for &port in claimed {
        if !(lo..=hi).contains(&port) && !asked.iter().any(|(a, b)| (*a..=*b).contains(&port)) {
            return lie(format!(
                "the route claims host port {port}, outside {hostname}'s port range {lo}-{hi} and not asked for by the request"
            ));
        }
    }
    Ok(())
}

/// The host ports a request names itself, as inclusive ranges: each
/// explicit `HostPort` of `HostConfig.PortBindings` (`"8080"`,
/// `"8000-8010"`), and under `NetworkMode: host` every exposed port number
/// (the container's, the image's and the binding keys).
fn asked_host_ports(request: &Value) -> Vec<(u16, u16)> {
    let c = &request["container"];
    let hc = &c["HostConfig"];
    let mut out = Vec::new();
    let number = |s: &str| s.trim().parse::<u16>().ok();
    let bindings = hc["PortBindings"].as_object();
    for list in bindings.into_iter().flat_map(|m| m.values()) {
        for b in list.as_array().into_iter().flatten() {
            let Some(h) = b.get("HostPort").and_then(Value::as_str) else {
                continue;
            };
            let range = match h.split_once('-') {
                Some((a, b)) => number(a).zip(number(b)),
                None => number(h).map(|n| (n, n)),
            };
            out.extend(range);
        }
    }
    if hc["NetworkMode"] == "host" {
        let keys = [
            &c["ExposedPorts"],
            &request["image"]["Config"]["ExposedPorts"],
        ]
        .into_iter()
        .filter_map(Value::as_object)
        .chain(bindings)
        .flat_map(|m| m.keys());
        for k in keys {
            if let Some(n) = number(k.split('/').next().unwrap_or(k)) {
                out.push((n, n));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Cluster {
        Cluster::from_snapshot(&json!({"inventory": [
            {"hostname": "n1", "address": "10.0.0.1", "port_range": [20000, 20009]},
            {"hostname": "n2", "address": "10.0.0.2", "down": true}
        ]}))
        .unwrap()
    }

    fn decision(server: &str, route: Value) -> String {
        json!({"server": {"hostname": server, "address": "10.0.0.1"}, "container": {}, "route": route})
            .to_string()
    }

    fn route(name: &str, server: &str, host_ports: &[u16]) -> Value {
        json!({"name": name, "server": server, "address": "10.0.0.1",
               "ports": {}, "host_ports": host_ports, "state": "live"})
    }

    fn refused(out: &str, request: &Value, down: &[&str]) -> String {
        let down = down.iter().map(|d| d.to_string()).collect();
        match check(out, &cluster(), request.to_string().as_bytes(), &down) {
            Err(PolicyError::Contract(why)) => why,
            other => panic!("expected a contract error for {out}, got {other:?}"),
        }
    }

    #[test]
    fn a_decision_the_request_and_cluster_bear_out_passes() {
        let req = json!({"name": "/web.1", "container": {"HostConfig": {
            "PortBindings": {"80/tcp": [{"HostPort": "8080"}], "81/tcp": [{"HostPort": "9000-9001"}]}}}});
        let out = decision("n1", route("web.1", "n1", &[8080, 9001, 20000]));
        check(
            &out,
            &cluster(),
            req.to_string().as_bytes(),
            &BTreeSet::new(),
        )
        .unwrap();
        let err = r#"{"error":{"kind":"no_eligible_server","message":"x"}}"#;
        check(err, &cluster(), b"{}", &BTreeSet::new()).unwrap();
        let unnamed = decision("n1", Value::Null);
        check(&unnamed, &cluster(), b"{}", &BTreeSet::new()).unwrap();
        let host_net = json!({"name": "web.1", "container": {"ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"NetworkMode": "host"}}});
        let out = decision("n1", route("web.1", "n1", &[80]));
        check(
            &out,
            &cluster(),
            host_net.to_string().as_bytes(),
            &BTreeSet::new(),
        )
        .unwrap();
    }

    #[test]
    fn each_lie_is_refused_with_what_was_wrong() {
        let req = json!({"name": "web.1", "container": {}});
        let cases = [
            (
                decision("n1", route("other.1", "n1", &[])),
                &[][..],
                "names container \"other.1\"",
            ),
            (
                decision("ghost", route("web.1", "ghost", &[])),
                &[],
                "\"ghost\", which is not in the inventory",
            ),
            (
                decision("n2", route("web.1", "n2", &[])),
                &[],
                "\"n2\", which is down",
            ),
            (
                decision("n1", route("web.1", "n1", &[])),
                &["n1"],
                "\"n1\", which is down",
            ),
            (
                decision("n1", route("web.1", "n2", &[])),
                &[],
                "the route is on server \"n2\"",
            ),
            (
                decision("n1", route("web.1", "n1", &[20010])),
                &[],
                "host port 20010, outside n1's port range 20000-20009",
            ),
            (
                decision("n1", Value::Null),
                &[],
                "no route for the named container",
            ),
        ];
        for (out, down, says) in cases {
            let why = refused(&out, &req, down);
            assert!(why.contains(says), "{out}: {why}");
        }
        let mut removed = route("web.1", "n1", &[]);
        removed["state"] = json!("removed");
        assert!(refused(&decision("n1", removed), &req, &[]).contains("state is \"removed\""));
    }
}
