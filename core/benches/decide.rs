//! `decide` on 10, 100 and 1,000 servers, each inventory with 10,000 routes,
//! and a typical request: 2 links (a group and a single container), 1 named
//! volume, 2 exposed ports. Numbers are in docs/PERFORMANCE.md.
//!
//! `one_shot` is the SPEC entry point (bytes in, JSON out, the whole route
//! table parsed each call); `resident` decides against a `Cluster` parsed once.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
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

criterion_group!(benches, bench);
criterion_main!(benches);
