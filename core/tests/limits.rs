//! The request limits (`flocker_core::limits`, docs/CONTRACT.md "Request
//! limits"): the largest request they allow decides, one more of anything
//! is `invalid_request` naming the limit at the entry past it, and the
//! hostile requests of the reliability audit (F3) are refused. Their cost
//! is measured in `core/benches/decide.rs`, not here.

use flocker_core::limits::*;
use serde_json::{json, Map, Value};

fn decide(input: &Value) -> Value {
    serde_json::from_str(&flocker_core::decide_json(input.to_string().as_bytes()))
        .unwrap_or_else(|e| panic!("output is not JSON: {e}"))
}

/// Two servers; `db.1` lives on node2 with data, `cache.1..=3` on node1.
fn cluster() -> (Value, Value) {
    let inventory = json!([
        {"hostname": "node1", "address": "10.0.0.1"},
        {"hostname": "node2", "address": "10.0.0.2"},
    ]);
    let mut containers = Map::new();
    let mut add = |name: &str, service: &str, server: &str, port: u16| {
        containers.insert(
            name.to_string(),
            json!({"name": name, "service": service, "server": server,
                   "address": "10.0.0.2", "ports": {"5432/tcp": port},
                   "env": ["PASSWORD=x"], "volumes": [], "state": "live"}),
        );
    };
    add("db.1", "db", "node2", 20000);
    for i in 1..=3 {
        add(&format!("cache.{i}"), "cache", "node1", 20000 + i);
    }
    (inventory, json!({"containers": containers, "volumes": {}}))
}

/// A create request with every published-network limit at its maximum:
/// 100 bindings of one port (`MAX_BINDINGS_PER_PORT`, `MAX_HOST_PORTS`),
/// `MAX_ENV_ENTRIES` env entries in the body and the image with
/// `MAX_TAG_RULES` tag rules, `MAX_MOUNTS` binds naming `MAX_NAMED_VOLUMES`
/// volumes, `MAX_MOUNTS` mounts, `MAX_LINKS` links, `MAX_VOLUMES_FROM`
/// sources.
fn largest() -> Value {
    let tags: Vec<String> = (0..MAX_TAG_RULES).map(|i| format!("!t{i}")).collect();
    let mut env: Vec<String> = (1..MAX_ENV_ENTRIES).map(|i| format!("E{i}=v")).collect();
    env.push(format!("VIKING_TAGS={}", tags.join(",")));
    let image_env: Vec<String> = (0..MAX_ENV_ENTRIES).map(|i| format!("I{i}=v")).collect();
    let binds: Vec<String> = (0..MAX_MOUNTS)
        .map(|i| match i < MAX_NAMED_VOLUMES {
            true => format!("vol{i}:/v{i}"),
            false => format!("/srv/{i}:/s{i}:ro"),
        })
        .collect();
    let mounts: Vec<Value> = (0..MAX_MOUNTS)
        .map(|i| json!({"Type": "volume", "Source": format!("vol{}", i % MAX_NAMED_VOLUMES), "Target": format!("/m{i}")}))
        .collect();
    let links: Vec<String> = (0..MAX_LINKS)
        .map(|i| match i % 2 {
            0 => format!("db.1:db{i}"),
            _ => format!("cache:c{i}"),
        })
        .collect();
    let bindings: Vec<Value> = (0..MAX_BINDINGS_PER_PORT)
        .map(|i| match i % 3 {
            0 => json!({}),
            1 => json!({"HostIp": "127.0.0.1", "HostPort": format!("{}", 30000 + i)}),
            _ => json!({"HostPort": "31000-31999"}),
        })
        .collect();
    json!({
        "name": "app.1",
        "container": {"Image": "app", "Env": env,
            "HostConfig": {"Binds": binds, "Mounts": mounts, "Links": links,
                "VolumesFrom": vec!["db.1:ro"; MAX_VOLUMES_FROM],
                "PortBindings": {"80/tcp": bindings}}},
        "image": {"Config": {"Env": image_env}}
    })
}

/// The exposed-port limit, reachable only where ports are not published.
fn largest_unpublished() -> Value {
    let exposed: Map<String, Value> = (0..MAX_EXPOSED_PORTS)
        .map(|i| (format!("{}/udp", 1000 + i), json!({})))
        .collect();
    json!({"name": "side.1", "container": {"ExposedPorts": exposed,
        "HostConfig": {"NetworkMode": "container:db.1"}}})
}

fn with_cluster(mut request: Value) -> Value {
    let (inventory, routes) = cluster();
    request["inventory"] = inventory;
    request["routes"] = routes;
    request
}

#[test]
fn the_largest_allowed_requests_decide() {
    let out = decide(&with_cluster(largest()));
    assert_eq!(out["server"]["hostname"], "node2", "{}", out["error"]);
    let route = &out["route"];
    let host_ports = route["host_ports"].as_array().map_or(0, Vec::len);
    assert_eq!(host_ports, MAX_HOST_PORTS, "every binding is claimed");
    let volumes = route["volumes"].as_array().map_or(0, Vec::len);
    assert_eq!(volumes, MAX_NAMED_VOLUMES);
    // One etcd transaction: the route, each port and volume claim, a spare.
    let ops = 1 + host_ports + volumes + 1;
    assert!(ops <= 128, "{ops} operations");

    let out = decide(&with_cluster(largest_unpublished()));
    assert_eq!(out["server"]["hostname"], "node2", "{}", out["error"]);
}

/// `(what was changed, the request, the path the error names, the limit)`.
fn one_over_each() -> Vec<(&'static str, Value, String, &'static str)> {
    const HC: &str = "container.HostConfig";
    let mut cases = Vec::new();
    let mut case = |what, f: &dyn Fn(&mut Value), path: String, limit| {
        let mut r = largest();
        f(&mut r);
        cases.push((what, r, path, limit));
    };
    case(
        "a binding",
        &|r| {
            push(
                &mut r["container"]["HostConfig"]["PortBindings"]["80/tcp"],
                json!({}),
            )
        },
        format!("{HC}.PortBindings[\"80/tcp\"][{MAX_BINDINGS_PER_PORT}]"),
        "MAX_BINDINGS_PER_PORT",
    );
    case(
        "a host port",
        &|r| r["container"]["ExposedPorts"] = json!({"9000/udp": {}}),
        "container.ExposedPorts[\"9000/udp\"]".into(),
        "MAX_HOST_PORTS",
    );
    case(
        "an env entry",
        &|r| push(&mut r["container"]["Env"], json!("X=1")),
        format!("container.Env[{MAX_ENV_ENTRIES}]"),
        "MAX_ENV_ENTRIES",
    );
    case(
        "an image env entry",
        &|r| push(&mut r["image"]["Config"]["Env"], json!("X=1")),
        format!("image.Config.Env[{MAX_ENV_ENTRIES}]"),
        "MAX_ENV_ENTRIES",
    );
    case(
        "a tag rule",
        &|r| {
            let env = &mut r["container"]["Env"][MAX_ENV_ENTRIES - 1];
            *env = json!(format!("{},extra", env.as_str().unwrap_or_default()));
        },
        format!("container.Env[{}]", MAX_ENV_ENTRIES - 1),
        "MAX_TAG_RULES",
    );
    case(
        "a bind",
        &|r| push(&mut r["container"]["HostConfig"]["Binds"], json!("/x:/x")),
        format!("{HC}.Binds[{MAX_MOUNTS}]"),
        "MAX_MOUNTS",
    );
    case(
        "a named volume",
        &|r| r["container"]["HostConfig"]["Binds"][MAX_NAMED_VOLUMES] = json!("one_more:/o"),
        format!("{HC}.Binds[{MAX_NAMED_VOLUMES}]"),
        "MAX_NAMED_VOLUMES",
    );
    case(
        "a mount",
        &|r| {
            push(
                &mut r["container"]["HostConfig"]["Mounts"],
                json!({"Type": "tmpfs", "Target": "/t"}),
            )
        },
        format!("{HC}.Mounts[{MAX_MOUNTS}]"),
        "MAX_MOUNTS",
    );
    case(
        "a link",
        &|r| {
            push(
                &mut r["container"]["HostConfig"]["Links"],
                json!("db.1:more"),
            )
        },
        format!("{HC}.Links[{MAX_LINKS}]"),
        "MAX_LINKS",
    );
    case(
        "a volumes_from source",
        &|r| {
            push(
                &mut r["container"]["HostConfig"]["VolumesFrom"],
                json!("db.1"),
            )
        },
        format!("{HC}.VolumesFrom[{MAX_VOLUMES_FROM}]"),
        "MAX_VOLUMES_FROM",
    );
    let mut exposed = largest_unpublished();
    exposed["container"]["ExposedPorts"]["1/sctp"] = json!({});
    cases.push((
        "an exposed port",
        exposed,
        "container.ExposedPorts[\"1/sctp\"]".into(),
        "MAX_EXPOSED_PORTS",
    ));
    let host: Map<String, Value> = (0..=MAX_HOST_PORTS)
        .map(|i| (format!("{}", 2000 + i), json!({})))
        .collect();
    cases.push((
        "a port under host networking",
        json!({"container": {"ExposedPorts": host, "HostConfig": {"NetworkMode": "host"}}}),
        format!("container.ExposedPorts.{}", 2000 + MAX_HOST_PORTS),
        "MAX_HOST_PORTS",
    ));
    cases
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(a) => a.push(item),
        None => panic!("not a list: {list}"),
    }
}

#[test]
fn one_over_any_limit_is_invalid_request_naming_it_at_the_entry_past_it() {
    for (what, request, path, limit) in one_over_each() {
        let out = decide(&with_cluster(request));
        assert_eq!(
            out["error"]["kind"], "invalid_request",
            "{what}: {out:.200}"
        );
        let message = out["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{path}: ")) && message.contains(limit),
            "{what}: expected {path} and {limit} in {message:?}"
        );
    }
}

#[test]
fn the_audits_hostile_requests_are_refused() {
    let (inventory, _) = cluster();
    let wide = json!([{"hostname": "node1", "address": "10.0.0.1", "port_range": [20000, 29999]}]);
    let bindings = vec![json!({}); 9_000];
    let exposed: Map<String, Value> = (1..=60_000u32)
        .map(|i| (i.to_string(), json!({})))
        .collect();
    let binds: Vec<String> = (0..100_000).map(|i| format!("v{i}:/d{i}")).collect();
    let hostile = [
        (
            json!({"HostConfig": {"PortBindings": {"80/tcp": bindings}}}),
            "MAX_BINDINGS_PER_PORT",
        ),
        (json!({"ExposedPorts": exposed}), "MAX_EXPOSED_PORTS"),
        (json!({"HostConfig": {"Binds": binds}}), "MAX_MOUNTS"),
    ];
    for (container, limit) in hostile {
        let out = decide(&json!({"container": container, "inventory": wide, "routes": {}}));
        assert_eq!(out["error"]["kind"], "invalid_request", "{limit}");
        let message = out["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(limit), "{limit} not in {message:?}");
    }
    // A hundred `{}` bindings, the most allowed, take a hundred ports.
    let out = decide(&json!({"container": {"HostConfig": {"PortBindings": {
        "80/tcp": vec![json!({}); MAX_BINDINGS_PER_PORT]}}}, "inventory": inventory, "routes": {}}));
    let bound = out["container"]["HostConfig"]["PortBindings"]["80/tcp"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["HostPort"].as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let expected: Vec<String> = (20000..20000 + MAX_BINDINGS_PER_PORT as u32)
        .map(|p| p.to_string())
        .collect();
    assert_eq!(bound, expected);
}

#[test]
fn a_volume_name_docker_refuses_is_invalid_request() {
    for (bind, ok) in [
        ("a/b:/d", false),
        ("./data:/d", false),
        ("~/x:/d", false),
        ("v:/d", false),
        ("_v:/d", false),
        ("my-vol.1_x:/d", true),
        ("/abs/path:/d", true),
    ] {
        let out = decide(&with_cluster(json!({"name": "x.1",
            "container": {"HostConfig": {"Binds": [bind]}}})));
        match ok {
            true => assert!(out["server"].is_object(), "{bind}: {out}"),
            false => {
                assert_eq!(out["error"]["kind"], "invalid_request", "{bind}");
                let message = out["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with("container.HostConfig.Binds[0]: "),
                    "{message}"
                );
            }
        }
    }
    let out = decide(&with_cluster(json!({"container": {"HostConfig": {
        "Mounts": [{"Type": "volume", "Source": "a/b", "Target": "/d"}]}}})));
    let message = out["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("container.HostConfig.Mounts[0].Source: "),
        "{message}"
    );
}
