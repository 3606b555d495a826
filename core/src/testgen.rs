//! proptest generators of decision inputs (feature `testgen`), shared by the
//! property tests here and the native-vs-WASM differential tests.
//!
//! Names, tags, ports and volumes come from small pools so that generated
//! requests collide with generated routes often: links resolve, pins
//! conflict, ports run out, names are in use.

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::cluster::Change;
use crate::route::Route;
use crate::server::Server;

/// The server tags generated inventories and `VIKING_TAGS` draw from.
pub const TAGS: [&str; 4] = ["ssd", "eu", "gpu", "big"];
/// The service names generated containers and routes draw from.
pub const SERVICES: [&str; 4] = ["auth", "db", "web", "cache"];
/// The named volumes generated binds, mounts and volume claims draw from.
pub const VOLUMES: [&str; 3] = ["pgdata", "logs", "media"];
/// The container port keys generated requests and routes draw from.
pub const PORTS: [&str; 5] = ["80/tcp", "443/tcp", "8080", "53/udp", "9000/tcp"];

fn hostname(i: usize) -> String {
    format!("node{i:02}")
}

fn server(i: usize) -> impl Strategy<Value = Value> {
    (
        vec(prop::sample::select(TAGS.to_vec()), 0..3),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        // Absent (read as false), false or true: the host marks a server
        // down when its daemon stops answering.
        option::weighted(0.3, prop::bool::weighted(0.5)),
        option::weighted(0.3, 0u64..6),
        option::weighted(0.3, 0u64..8),
        (20000u16..20006, 0u16..6),
    )
        .prop_map(
            move |(tags, reserved, full, down, max, containers, (lo, span))| {
                let mut s = json!({
                    "hostname": hostname(i),
                    "address": format!("10.0.0.{}", i + 1),
                    "tags": tags,
                    "reserved": reserved,
                    "full": full,
                    "port_range": [lo, lo + span],
                });
                if let Some(d) = down {
                    s["down"] = json!(d);
                }
                if let Some(m) = max {
                    s["max_containers"] = json!(m);
                }
                if let Some(c) = containers {
                    s["containers"] = json!(c);
                }
                s
            },
        )
}

/// 0 to `max` servers named `node00`, `node01`, ...
pub fn inventory(max: usize) -> impl Strategy<Value = Vec<Value>> {
    (0..=max).prop_flat_map(|n| (0..n).map(server).collect::<Vec<_>>())
}

fn route_record(servers: usize) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(SERVICES.to_vec()),
        1u32..4,
        0..servers + 1,
        prop::bool::weighted(0.8),
        btree_map(prop::sample::select(PORTS.to_vec()), 20000u16..20012, 0..3),
        // Further bindings' host ports, or a record from before `host_ports`.
        option::weighted(0.5, vec(20000u16..20012, 0..3)),
        vec(prop::sample::select(VOLUMES.to_vec()), 0..2),
        vec("[A-Z]{1,3}=[a-z]{0,3}", 0..3),
    )
        .prop_map(
            move |(service, pid, server, live, ports, extra, volumes, env)| {
                let host_ports = extra.map(|mut extra| {
                    extra.extend(ports.values());
                    extra.sort_unstable();
                    extra.dedup();
                    extra
                });
                let ports: Map<String, Value> = ports
                    .into_iter()
                    .map(|(p, h)| {
                        let key = if p.contains('/') {
                            p.to_string()
                        } else {
                            format!("{p}/tcp")
                        };
                        (key, json!(h))
                    })
                    .collect();
                let mut r = json!({
                    "name": format!("{service}.{pid}"),
                    "service": service,
                    // One past the inventory: a server that has left it.
                    "server": hostname(server),
                    "address": format!("10.0.0.{}", server + 1),
                    "ports": ports,
                    "env": env,
                    "volumes": volumes,
                    "state": if live { "live" } else { "removed" },
                });
                if let Some(h) = host_ports {
                    r["host_ports"] = json!(h);
                }
                r
            },
        )
}

/// The `routes` object for an inventory of `servers` servers.
pub fn routes(servers: usize) -> impl Strategy<Value = Value> {
    (
        vec(route_record(servers), 0..16),
        btree_map(prop::sample::select(VOLUMES.to_vec()), 0..servers + 1, 0..3),
    )
        .prop_map(|(records, claims)| {
            let containers: Map<String, Value> = records
                .into_iter()
                .map(|r| (r["name"].as_str().unwrap_or_default().to_string(), r))
                .collect();
            let volumes: Map<String, Value> = claims
                .into_iter()
                .map(|(v, s)| (v.to_string(), json!(hostname(s))))
                .collect();
            json!({ "containers": containers, "volumes": volumes })
        })
}

fn container_name() -> impl Strategy<Value = Option<String>> {
    option::weighted(
        0.85,
        prop_oneof![
            (prop::sample::select(SERVICES.to_vec()), 1u32..5)
                .prop_map(|(s, p)| format!("{s}.{p}")),
            "[a-z]{2,6}(\\.[0-9]{1,3})?",
        ],
    )
}

/// A create request: env with `VIKING_*`, binds, mounts, volumes_from,
/// links, exposed ports and bindings.
pub fn request(servers: usize) -> impl Strategy<Value = Value> {
    let viking_server = option::weighted(0.15, 0..servers + 2);
    let viking_tags = option::weighted(
        0.3,
        vec(
            (
                prop::bool::weighted(0.3),
                prop::sample::select(TAGS.to_vec()),
            ),
            1..3,
        ),
    );
    let binds = vec(prop::sample::select(VOLUMES.to_vec()), 0..2);
    let mounts = option::weighted(0.15, prop::sample::select(VOLUMES.to_vec()));
    let volumes_from = option::weighted(0.25, (prop::sample::select(SERVICES.to_vec()), 1u32..4))
        .prop_map(|v| v.into_iter().collect::<Vec<_>>());
    let links = vec(
        (
            prop::sample::select(SERVICES.to_vec()),
            option::weighted(0.3, 1u32..4),
            option::of("[a-z]{1,4}"),
        ),
        0..3,
    );
    let exposed = vec(prop::sample::select(PORTS.to_vec()), 0..3);
    // One or two bindings of a port (`-p 80 -p 127.0.0.1::80`), each with
    // no `HostPort`, an empty one or a number.
    let bindings = vec(
        (
            prop::sample::select(PORTS.to_vec()),
            vec(
                option::of(prop_oneof![
                    Just(String::new()),
                    (19998u16..20010).prop_map(|p| p.to_string())
                ]),
                1..3,
            ),
        ),
        0..2,
    );
    let image_ports = vec(prop::sample::select(PORTS.to_vec()), 0..2);
    let network = prop_oneof![8 => Just(None), 1 => Just(Some("host".to_string())), 1 => Just(Some("bridge".to_string()))];
    (
        container_name(),
        (viking_server, viking_tags),
        (binds, mounts, volumes_from),
        links,
        (exposed, bindings, image_ports, network),
        "[a-z]{1,8}",
    )
        .prop_map(
            move |(name, (vs, vt), (binds, mounts, vfrom), links, (exposed, bindings, image_ports, network), extra)| {
                let mut env = vec![json!("A=1")];
                if let Some(s) = vs {
                    env.push(json!(format!("VIKING_SERVER={}", hostname(s))));
                }
                if let Some(tags) = vt {
                    let list: Vec<String> = tags
                        .into_iter()
                        .map(|(neg, t)| if neg { format!("!{t}") } else { t.to_string() })
                        .collect();
                    env.push(json!(format!("VIKING_TAGS={}", list.join(","))));
                }
                let mut hc = Map::new();
                hc.insert(
                    "Binds".into(),
                    json!(binds.iter().map(|v| format!("{v}:/data/{v}")).collect::<Vec<_>>()),
                );
                if let Some(m) = mounts {
                    hc.insert("Mounts".into(), json!([{ "Type": "volume", "Source": m, "Target": "/m" }]));
                }
                hc.insert(
                    "VolumesFrom".into(),
                    json!(vfrom.iter().map(|(s, p)| format!("{s}.{p}:ro")).collect::<Vec<_>>()),
                );
                hc.insert(
                    "Links".into(),
                    json!(links
                        .iter()
                        .map(|(s, pid, alias)| {
                            let target = match pid {
                                Some(p) => format!("{s}.{p}"),
                                None => s.to_string(),
                            };
                            match alias {
                                Some(a) => format!("{target}:{a}"),
                                None => target,
                            }
                        })
                        .collect::<Vec<_>>()),
                );
                let mut pb = Map::new();
                for (port, hosts) in bindings {
                    let list: Vec<Value> = hosts
                        .into_iter()
                        .map(|host| match host {
                            Some(h) => json!({ "HostIp": "", "HostPort": h }),
                            None => json!({ "HostIp": "" }),
                        })
                        .collect();
                    pb.insert(port.to_string(), Value::Array(list));
                }
                hc.insert("PortBindings".into(), Value::Object(pb));
                if let Some(n) = network {
                    hc.insert("NetworkMode".into(), json!(n));
                }
                hc.insert("Unknown".into(), json!({ "kept": extra }));
                let exposed: Map<String, Value> =
                    exposed.into_iter().map(|p| (p.to_string(), json!({}))).collect();
                let image_ports: Map<String, Value> =
                    image_ports.into_iter().map(|p| (p.to_string(), json!({}))).collect();
                let mut req = json!({
                    "container": {
                        "Image": "acme/app",
                        "Env": env,
                        "ExposedPorts": exposed,
                        "HostConfig": hc,
                        "Labels": { "extra": extra },
                    },
                    "image": { "Config": { "ExposedPorts": image_ports, "Env": ["PATH=/bin", "B=2"] } },
                });
                if let Some(n) = name {
                    req["name"] = json!(n);
                }
                req
            },
        )
}

/// A whole decision input: request, inventory of up to `max_servers`, routes.
pub fn decision_input(max_servers: usize) -> impl Strategy<Value = Value> {
    inventory(max_servers).prop_flat_map(|inventory| {
        let n = inventory.len();
        (Just(inventory), routes(n), request(n)).prop_map(|(inventory, routes, mut req)| {
            req["inventory"] = json!(inventory);
            req["routes"] = routes;
            req
        })
    })
}

/// The cluster half of an input: `{"inventory", "routes"}`.
pub fn snapshot_of(input: &Value) -> Value {
    json!({
        "inventory": input.get("inventory").cloned().unwrap_or_else(|| json!([])),
        "routes": input.get("routes").cloned().unwrap_or(Value::Null),
    })
}

/// The request half of an input: `{"name", "container", "image"}`.
pub fn request_of(input: &Value) -> Value {
    let mut r = Map::new();
    for key in ["name", "container", "image"] {
        if let Some(v) = input.get(key) {
            r.insert(key.into(), v.clone());
        }
    }
    Value::Object(r)
}

/// Change records that build `snapshot` from an empty cluster, with detours
/// (a route saved twice, a removed route first saved live, a released claim)
/// so that incremental maintenance is exercised, not just insertion.
pub fn changes_building(snapshot: &Value) -> Result<Vec<Value>, crate::DecisionError> {
    let cluster = crate::Cluster::from_snapshot(snapshot)?;
    let mut out = Vec::new();
    for s in cluster.servers() {
        let mut early = s.clone();
        early.port_range = (1, 1);
        out.push(Change::UpsertServer(early).to_value());
        out.push(Change::UpsertServer(Server::clone(s)).to_value());
    }
    out.push(
        Change::ClaimVolume {
            volume: "scratch".into(),
            server: "nowhere".into(),
        }
        .to_value(),
    );
    out.push(
        Change::ReleaseVolume {
            volume: "scratch".into(),
        }
        .to_value(),
    );
    for r in cluster.routes() {
        let mut live = Route::clone(r);
        live.state = crate::LIVE.into();
        out.push(Change::SaveRoute(live).to_value());
        if !r.is_live() {
            out.push(
                Change::RemoveRoute {
                    name: r.name.clone(),
                }
                .to_value(),
            );
        }
        out.push(Change::SaveRoute(r.clone()).to_value());
    }
    for (v, s) in cluster.volumes() {
        out.push(
            Change::ClaimVolume {
                volume: v.into(),
                server: s.into(),
            }
            .to_value(),
        );
    }
    Ok(out)
}
