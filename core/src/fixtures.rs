//! Hand-built records for tests (feature `testgen`): the one place the
//! host's, the stores' and the cross-crate tests get a server, a route or
//! a cluster from, instead of each writing its own builder.

use serde_json::{json, Value};

use crate::cluster::{Change, Cluster};
use crate::port::Port;
use crate::route::Route;
use crate::server::Server;

/// A server record with only the required fields: `hostname`, and the
/// address `10.0.0.<length of the hostname>`.
pub fn server(hostname: &str) -> Server {
    let address = format!("10.0.0.{}", hostname.len());
    Server::from_value(
        &json!({"hostname": hostname, "address": address}),
        "fixture",
    )
    .unwrap_or_else(|e| panic!("fixture server {hostname:?}: {e}"))
}

/// Servers `n1..=nN`, on 10.0.0.i.
pub fn servers(n: usize) -> Vec<Server> {
    (1..=n)
        .map(|i| {
            Server::from_value(
                &json!({"hostname": format!("n{i}"), "address": format!("10.0.0.{i}")}),
                "fixture",
            )
            .unwrap_or_else(|e| panic!("fixture server n{i}: {e}"))
        })
        .collect()
}

/// A live route of `name` on `server`: container port `80+i/tcp` published
/// on `host_ports[i]` (each claimed), and `volumes` as given.
pub fn route(name: &str, server: &str, host_ports: &[u16], volumes: &[&str]) -> Route {
    let mut r = Route::from_value(
        &json!({"name": name, "server": server, "volumes": volumes}),
        None,
        "fixture",
    )
    .unwrap_or_else(|e| panic!("fixture route {name:?}: {e}"));
    for (i, p) in host_ports.iter().enumerate() {
        let port = Port::parse(&format!("{}/tcp", 80 + i), "fixture")
            .unwrap_or_else(|e| panic!("fixture port: {e}"));
        r.ports.push((port, *p));
        r.host_ports.push(*p);
    }
    r.host_ports.sort_unstable();
    r.host_ports.dedup();
    r
}

/// A cluster of [`server`]s named `hostnames`, with no routes.
pub fn cluster(hostnames: &[&str]) -> Cluster {
    let mut c = Cluster::new();
    for h in hostnames {
        c.apply_change(Change::UpsertServer(server(h)));
    }
    c
}

/// Servers in the benchmarks' state ([`bench_cluster`]).
pub const BENCH_SERVERS: usize = 1000;

/// Server `i` of the benchmarks' state: `s0000`.., room for 100,000
/// containers each.
pub fn bench_server(i: usize) -> Server {
    let v = json!({"hostname": format!("s{i:04}"), "address": format!("10.0.{}.{}", i / 256, i % 256),
                   "max_containers": 100_000});
    Server::from_value(&v, "bench").unwrap_or_else(|e| panic!("bench server {i}: {e}"))
}

/// Route `r` of the benchmarks' state: spread over the servers, one host
/// port each, services of about 2,000 members (plus the `auth` group and
/// the `db.3` container [`bench_request`] links to), one in ten removed.
pub fn bench_route(r: usize) -> Route {
    let s = r % BENCH_SERVERS;
    let service = match r {
        0..=2 => "auth".to_string(),
        3 => "db".to_string(),
        _ => format!("svc{}", r % 500),
    };
    let v = json!({"name": format!("{service}.{r}"), "service": service, "server": format!("s{s:04}"),
                   "address": format!("10.0.{}.{}", s / 256, s % 256),
                   "ports": {"80/tcp": 20000 + r / BENCH_SERVERS}, "env": ["PASSWORD=x", "PATH=/bin"],
                   "volumes": [], "state": if r % 10 == 9 { "removed" } else { "live" }});
    Route::from_value(&v, None, "bench").unwrap_or_else(|e| panic!("bench route {r}: {e}"))
}

/// The benchmarks' state: [`BENCH_SERVERS`] servers, `routes` routes, and
/// the volume `other` claimed on `s0000`. The WASM benchmark
/// (`tests/benches/wasm.rs`) and the Go package's (`core/examples/go_corpus.rs`)
/// decide against the same one.
pub fn bench_cluster(routes: usize) -> Cluster {
    let mut c = Cluster::new();
    for i in 0..BENCH_SERVERS {
        c.apply_change(Change::UpsertServer(bench_server(i)));
    }
    for r in 0..routes {
        c.apply_change(Change::SaveRoute(bench_route(r)));
    }
    c.apply_change(Change::ClaimVolume {
        volume: "other".into(),
        server: "s0000".into(),
    });
    c
}

/// The typical request the benchmarks decide: 2 links (the group `auth`
/// and the container `db.3`), 1 named volume, 2 exposed ports (one from
/// the image, one from `-p`).
pub fn bench_request() -> Value {
    json!({
        "name": "myapp.7",
        "container": {"Image": "acme/myapp", "Env": ["A=1"], "ExposedPorts": {"8080/tcp": {}},
            "HostConfig": {"Links": ["auth", "db.3:db"], "Binds": ["appdata:/data"],
                           "PortBindings": {"9090/tcp": [{"HostIp": "", "HostPort": ""}]}}},
        "image": {"Config": {"Env": ["PATH=/bin"], "ExposedPorts": {"8080/tcp": {}}}}
    })
}

/// Server `i` of issue 12's mixed inventory: `node00000`.., tags `ssd, eu`
/// on every third server (else `hdd`), `reserved` on every 17th, `full` on
/// every 23rd, `max_containers` 100 and a stated load of
/// `(i * 7919) % 97`, so that a tag request rules out most servers for
/// several reasons.
pub fn mixed_server(i: usize) -> Server {
    let tags: &[&str] = if i.is_multiple_of(3) {
        &["ssd", "eu"]
    } else {
        &["hdd"]
    };
    let v = json!({"hostname": format!("node{i:05}"),
                   "address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                   "tags": tags, "reserved": i.is_multiple_of(17), "full": i.is_multiple_of(23),
                   "max_containers": 100, "containers": (i * 7919) % 97});
    Server::from_value(&v, "bench").unwrap_or_else(|e| panic!("mixed server {i}: {e}"))
}

/// `servers` [`mixed_server`]s and no routes.
pub fn mixed_cluster(servers: usize) -> Cluster {
    let mut c = Cluster::new();
    for i in 0..servers {
        c.apply_change(Change::UpsertServer(mixed_server(i)));
    }
    c
}

/// The request issue 12 measures on [`mixed_cluster`]: a named container
/// asking for the tags `ssd` and `eu`, which rules out two servers in three.
pub fn tag_request() -> Value {
    json!({"name": "myapp.1",
           "container": {"Image": "acme/app", "Env": ["A=1", "VIKING_TAGS=ssd, eu"]}})
}
