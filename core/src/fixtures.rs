//! Hand-built records for tests (feature `testgen`): the one place the
//! host's, the stores' and the cross-crate tests get a server, a route or
//! a cluster from, instead of each writing its own builder.

use serde_json::json;

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
