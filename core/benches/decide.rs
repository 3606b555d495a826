//! `decide` on 10, 100 and 1,000 servers, each inventory with 10,000 routes,
//! and a typical request: 2 links (a group and a single container), 1 named
//! volume, 2 exposed ports. Numbers are in docs/PERFORMANCE.md.
//!
//! `one_shot` is the SPEC entry point (bytes in, JSON out, the whole route
//! table parsed each call); `resident` decides against a `Cluster` parsed once.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use serde_json::{json, Map, Value};
use std::time::Duration;

fn cluster(servers: usize, routes: usize) -> Value {
    let inventory: Vec<Value> = (0..servers)
        .map(|i| json!({"hostname": format!("s{i:04}"), "address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256), "max_containers": 100_000}))
        .collect();
    let mut next_port = vec![20000u32; servers];
    let mut containers = Map::new();
    for r in 0..routes {
        let s = r % servers;
        let service = match r {
            0..=2 => "auth".to_string(),
            3 => "db".to_string(),
            _ => format!("svc{}", r % 500),
        };
        let name = format!("{service}.{r}");
        let port = next_port[s];
        next_port[s] += 1;
        containers.insert(
            name.clone(),
            json!({"name": name, "service": service, "server": format!("s{s:04}"),
                   "address": "10.0.0.1", "ports": {"80/tcp": port}, "env": ["PASSWORD=x", "PATH=/bin"],
                   "volumes": [], "state": if r % 10 == 9 { "removed" } else { "live" }}),
        );
    }
    json!({"inventory": inventory, "routes": {"containers": containers, "volumes": {"other": "s0000"}}})
}

fn request() -> Value {
    json!({
        "name": "myapp.7",
        "container": {"Image": "acme/myapp", "Env": ["A=1"],
            "ExposedPorts": {"8080/tcp": {}},
            "HostConfig": {"Links": ["auth", "db.3:db"], "Binds": ["appdata:/data"],
                           "PortBindings": {"9090/tcp": [{"HostIp": "", "HostPort": ""}]}}},
        "image": {"Config": {"Env": ["PATH=/bin"], "ExposedPorts": {"8080/tcp": {}}}}
    })
}

/// A group of `samples` samples, each measured for 3 s after 0.5 s of warm-up.
fn group<'c>(c: &'c mut Criterion, name: &str, samples: usize) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group
}

fn bench(c: &mut Criterion) {
    let mut group = group(c, "decide", 20);
    for servers in [10usize, 100, 1000] {
        let snapshot = cluster(servers, 10_000);
        let mut input = request();
        input["inventory"] = snapshot["inventory"].clone();
        input["routes"] = snapshot["routes"].clone();
        let bytes = serde_json::to_vec(&input).unwrap_or_default();
        let out: Value =
            serde_json::from_str(&flocker_core::decide_json(&bytes)).unwrap_or_default();
        assert!(
            out.get("server").is_some(),
            "the benchmark request must decide: {out}"
        );
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("one_shot_10k_routes", servers),
            &bytes,
            |b, bytes| b.iter(|| flocker_core::decide_json(bytes)),
        );
        let resident = flocker_core::Cluster::from_snapshot(&snapshot).unwrap_or_default();
        let req = serde_json::to_vec(&request()).unwrap_or_default();
        group.bench_with_input(
            BenchmarkId::new("resident_10k_routes", servers),
            &req,
            |b, req| b.iter(|| resident.decide_json(req)),
        );
    }
    group.finish();
}

/// The request limits' two sides (F3 of the reliability audit): the
/// largest request they allow, decided, and the audit's hostile request
/// (9,000 `{}` bindings of one port, 37 KB), which before the limits was
/// decided in time cubic in the bindings and now is refused.
fn limits(c: &mut Criterion) {
    use flocker_core::limits::*;
    let mut group = group(c, "limits", 10);
    let inventory = json!([{"hostname": "node1", "address": "10.0.0.1", "port_range": [20000, 29999]},
                           {"hostname": "node2", "address": "10.0.0.2"}]);
    let db = json!({"name": "db.1", "service": "db", "server": "node1", "address": "10.0.0.1",
                    "ports": {"5432/tcp": 20000}, "env": ["PASSWORD=x"], "volumes": [], "state": "live"});
    let routes = json!({"containers": {"db.1": db}, "volumes": {}});
    let tags: Vec<String> = (0..MAX_TAG_RULES).map(|i| format!("!t{i}")).collect();
    let mut env: Vec<String> = (1..MAX_ENV_ENTRIES).map(|i| format!("E{i}=v")).collect();
    env.push(format!("VIKING_TAGS={}", tags.join(",")));
    let binds: Vec<String> = (0..MAX_MOUNTS)
        .map(|i| match i < MAX_NAMED_VOLUMES {
            true => format!("vol{i}:/v{i}"),
            false => format!("/srv/{i}:/s{i}"),
        })
        .collect();
    let largest = json!({"name": "app.1", "container": {"Image": "app", "Env": env,
        "HostConfig": {"Binds": binds, "Links": vec!["db.1"; MAX_LINKS],
            "VolumesFrom": vec!["db.1"; MAX_VOLUMES_FROM],
            "PortBindings": {"80/tcp": vec![json!({}); MAX_BINDINGS_PER_PORT]}}},
        "image": {"Config": {"Env": (0..MAX_ENV_ENTRIES).map(|i| format!("I{i}=v")).collect::<Vec<_>>()}},
        "inventory": inventory, "routes": routes});
    let hostile = json!({"container": {"HostConfig": {"PortBindings": {"80/tcp": vec![json!({}); 9_000]}}},
        "inventory": inventory, "routes": routes});
    for (id, input, decides) in [
        ("largest_allowed", largest, true),
        ("hostile_9000_bindings", hostile, false),
    ] {
        let bytes = serde_json::to_vec(&input).unwrap_or_default();
        let out: Value =
            serde_json::from_str(&flocker_core::decide_json(&bytes)).unwrap_or_default();
        assert_eq!(out.get("server").is_some(), decides, "{id}: {out:.300}");
        group.bench_with_input(BenchmarkId::new("one_shot", id), &bytes, |b, bytes| {
            b.iter(|| flocker_core::decide_json(bytes))
        });
    }
    group.finish();
}

/// Issue 12's resident workloads at 10, 100 and 1,000 servers: the tag
/// request on the mixed inventory (two servers in three ruled out, for
/// several reasons), and the typical request on the WASM benchmark's state
/// (1,000 servers, 10^4 routes).
fn resident(c: &mut Criterion) {
    use flocker_core::fixtures::{bench_cluster, bench_request, mixed_cluster, tag_request};
    let mut group = group(c, "resident", 20);
    let tag = serde_json::to_vec(&tag_request()).unwrap_or_default();
    for servers in [10usize, 100, 1000] {
        let cluster = mixed_cluster(servers);
        let out = cluster.decide_json(&tag);
        assert!(
            out.starts_with("{\"server\""),
            "the tag request must decide: {out:.300}"
        );
        group.bench_with_input(BenchmarkId::new("tag_request", servers), &tag, |b, req| {
            b.iter(|| cluster.decide_json(req))
        });
    }
    let cluster = bench_cluster(10_000);
    let typical = serde_json::to_vec(&bench_request()).unwrap_or_default();
    let out = cluster.decide_json(&typical);
    assert!(
        out.starts_with("{\"server\""),
        "the typical request must decide: {out:.300}"
    );
    group.bench_with_input(
        BenchmarkId::new("typical_10k_routes", 1000),
        &typical,
        |b, req| b.iter(|| cluster.decide_json(req)),
    );
    group.finish();
}

criterion_group!(benches, bench, limits, resident);
criterion_main!(benches);
