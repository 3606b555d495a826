//! The embedded store killed with SIGKILL mid-write reopens consistent:
//! every live route's port claims are present, no claim is orphaned, every
//! named volume is claimed for its route's server, and nothing committed is
//! lost.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

fn live_routes(store: &str) -> usize {
    let routes = ok(&["routes", "ls", "--store", store, "--json"], None, 0).json();
    routes["containers"]
        .as_object()
        .map_or(0, |m| m.values().filter(|r| r["state"] == "live").count())
}

#[test]
fn sigkill_mid_write_reopens_consistent() {
    let s = Scratch::new("crash");
    let store = seed(
        &s,
        &json!([
            {"hostname": "k1", "address": "10.5.0.1", "port_range": [10000, 60000]},
            {"hostname": "k2", "address": "10.5.0.2", "port_range": [10000, 60000]}
        ]),
    );
    let mut before = 0;
    for round in 0..8u64 {
        // A writer placing as fast as it can, 8 at a time (so its
        // transactions carry batches of routes). Another process reads the
        // same file while it writes (redb's multi-process mode) until it has
        // seen the writer commit; then the writer is killed a little later,
        // at a different point each round.
        let mut writer = flocker()
            .args([
                "bench",
                "--store",
                &store,
                "--count",
                "1000000",
                "--servers",
                "2",
                "--place-only",
                "--concurrency",
                "8",
                // This store holds servers and routes of its own.
                "--force",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let start = Instant::now();
        let seen = loop {
            let now = live_routes(&store);
            if now > before {
                break now;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "round {round}: the writer never committed"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(round * 7));
        writer.kill().expect("SIGKILL the writer");
        writer.wait().expect("reap the writer");

        let check = run(&["store", "check", "--store", &store], None);
        assert_eq!(check.code, 0, "round {round}: {check:?}");
        let after = live_routes(&store);
        assert!(
            after >= seen,
            "round {round}: {seen} live routes seen committed, {after} after the kill"
        );
        before = after;
    }

    // Several `flocker place` processes at once, killed at staggered times,
    // and `routes rm` in between.
    for round in 0..4u64 {
        let children: Vec<_> = (0..6)
            .map(|i| {
                let req = json!({"name": format!("p{round}.{i}"), "container": {"Image": "p",
                                 "HostConfig": {"Binds": [format!("vol{round}{i}:/d")]}},
                                 "image": {"Config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}}});
                let path = s.write(&format!("req{round}{i}.json"), &req);
                flocker()
                    .args(["place", "--store", &store, path.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn place")
            })
            .collect();
        for (i, mut c) in children.into_iter().enumerate() {
            std::thread::sleep(Duration::from_millis(3 * i as u64 + round));
            let _ = c.kill();
            let _ = c.wait();
        }
        if round % 2 == 1 {
            ok(
                &[
                    "routes",
                    "rm",
                    "--store",
                    &store,
                    &format!("bench-{}.0", std::process::id()),
                ],
                None,
                1,
            );
        }
        let check = run(&["store", "check", "--store", &store], None);
        assert_eq!(check.code, 0, "place round {round}: {check:?}");
    }

    // Still a working store.
    let last = place(
        &store,
        &json!({"name": "after.1", "container": {"Image": "a"},
        "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}}),
        0,
    );
    assert_eq!(last["route"]["state"], "live");
    let check = ok(&["store", "check", "--store", &store], None, 0);
    assert!(check.stdout.starts_with("consistent:"), "{check:?}");
}
