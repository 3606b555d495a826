//! The spare resident state replaces a poisoned one without a rebuild.

use std::sync::Arc;

use flocker_core::{fixtures, Change, Cluster, Route};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::{Limits, PolicyError, PolicyHost};

fn web(name: &str) -> Vec<u8> {
    json!({"name": name, "container": {"Image": "web", "ExposedPorts": {"80/tcp": {}}}})
        .to_string()
        .into_bytes()
}

fn port_of(out: &str) -> Option<u64> {
    serde_json::from_str::<Value>(out).ok()?["route"]["ports"]["80/tcp"].as_u64()
}

#[test]
fn a_poisoning_call_is_followed_by_the_warm_spare_not_a_rebuild() {
    let limits = Limits {
        resident_memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let host = PolicyHost::with_default(limits).unwrap();
    let (feed, rx) = broadcast::channel(64);
    host.follow(rx);
    host.keep_spare();
    let mut cluster = Cluster::new();
    cluster.apply_change(Change::UpsertServer(fixtures::server("n1")));
    let cluster = Arc::new(cluster);
    let first = host.decide_resident(&cluster, &web("a.1")).unwrap();
    assert_eq!(port_of(&first), Some(20000), "{first}");
    assert_eq!(host.resident_stats().built_inline, 1);
    // The spare is built on its own thread.
    for _ in 0..2000 {
        if host.resident_stats().spare_ready {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(host.resident_stats().spare_ready);

    // a.1 is saved; the store shows it, then sends it.
    let route = Route::from_value(
        &json!({"name": "a.1", "server": "n1", "ports": {"80/tcp": 20000}}),
        None,
        "route",
    )
    .unwrap();
    let mut saved = (*cluster).clone();
    saved.apply_change(Change::SaveRoute(route.clone()));
    let saved = Arc::new(saved);
    feed.send(Change::SaveRoute(route)).unwrap();

    // A request bigger than the instance may hold poisons the state.
    let huge = json!({"name": "big.1", "container": {"Image": "web",
        "Env": [format!("X={}", "x".repeat(40 << 20))]}})
    .to_string();
    let e = host.decide_resident(&saved, huge.as_bytes()).unwrap_err();
    assert!(matches!(e, PolicyError::MemoryLimit { .. }), "{e}");

    // The next decision runs on the spare: no build of the cluster, and
    // the spare took a.1 while it waited.
    let next = host.decide_resident(&saved, &web("b.1")).unwrap();
    assert_eq!(port_of(&next), Some(20001), "{next}");
    let stats = host.resident_stats();
    assert_eq!((stats.built_inline, stats.spares_used), (1, 1), "{stats:?}");
}
