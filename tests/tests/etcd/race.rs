//! The race: 4 host processes (`flocker place --store etcd://...`, the real
//! binary) place 400 containers concurrently against one etcd, and 20 more
//! names that every host tries to take.
//!
//! Afterwards no name is routed twice, no host port is claimed twice on a
//! server, every route is present, and every save that lost was retried.
//!
//! The binary is `$FLOCKER_BIN`, else `target/debug/flocker`; build it first
//! (`cargo build -p flocker-host --bin flocker`; `scripts/test-etcd.sh` does).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flocker_tests::etcd::{audit, run_flocker, Etcd, Run};
use serde_json::{json, Value};

const HOSTS: usize = 4;
const PER_HOST: usize = 100;
const CONTESTED: usize = 20;

fn flocker(args: &[&str], stdin: &str) -> Run {
    run_flocker(args, stdin, &[])
}

/// The `--report` line of a place.
fn report(r: &Run) -> Value {
    r.stderr
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("place").is_some())
        })
        .map(|v| v["place"].clone())
        .unwrap_or(Value::Null)
}

#[derive(Default)]
struct HostTally {
    saved: Vec<String>,
    contested_won: Vec<String>,
    contested_lost: usize,
    retries: u64,
    retried_places: usize,
}

#[test]
fn four_hosts_place_400_containers_concurrently_on_one_etcd() {
    let etcd = Etcd::start();
    let url = etcd.store_url("/race");
    let inventory = json!([
        {"hostname": "n1", "address": "10.9.0.1", "port_range": [20000, 20199]},
        {"hostname": "n2", "address": "10.9.0.2", "port_range": [20000, 20199]},
        {"hostname": "n3", "address": "10.9.0.3", "port_range": [20000, 20199]}
    ]);
    let r = flocker(
        &["inventory", "add", "--store", &url],
        &inventory.to_string(),
    );
    assert_eq!(r.code, 0, "inventory add: {}", r.stderr);

    let start = Instant::now();
    let hosts: Vec<_> = (0..HOSTS)
        .map(|h| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut t = HostTally::default();
                for i in 0..PER_HOST {
                    // Every fifth place is a name all hosts want.
                    let contested = i % (PER_HOST / CONTESTED) == 0;
                    let names = if contested {
                        vec![
                            format!("c{h}.{i}"),
                            format!("shared.{}", i / (PER_HOST / CONTESTED)),
                        ]
                    } else {
                        vec![format!("c{h}.{i}")]
                    };
                    for name in names {
                        // Each host asks for a shared name differently, so
                        // that even `place --retry` could not take the
                        // winner's answer for its own.
                        let req = json!({"name": name, "container": {"Image": "web",
                            "Env": [format!("FROM_HOST={h}")],
                            "ExposedPorts": {"80/tcp": {}}}});
                        let r = flocker(
                            &["place", "--report", "--retries", "100", "--store", &url],
                            &req.to_string(),
                        );
                        let rep = report(&r);
                        let retries = rep["retries"].as_u64().unwrap_or(0);
                        t.retries += retries;
                        if retries > 0 {
                            t.retried_places += 1;
                        }
                        if name.starts_with("shared.") {
                            match r.code {
                                0 => {
                                    assert_eq!(rep["saved"], true, "{name}: {}", r.stderr);
                                    t.contested_won.push(name);
                                }
                                1 => {
                                    let out: Value = serde_json::from_str(&r.stdout)
                                        .unwrap_or_else(|e| panic!("{name}: {e}: {}", r.stdout));
                                    assert_eq!(
                                        out["error"]["kind"], "name_in_use",
                                        "{name}: {out}"
                                    );
                                    t.contested_lost += 1;
                                }
                                c => panic!("{name}: exit {c}: {}", r.stderr),
                            }
                        } else {
                            assert_eq!(r.code, 0, "{name}: {} {}", r.stdout, r.stderr);
                            assert_eq!(rep["saved"], true, "{name}: {}", r.stderr);
                            t.saved.push(name);
                        }
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(600),
                        "race took too long"
                    );
                }
                t
            })
        })
        .collect();
    let tallies: Vec<HostTally> = hosts.into_iter().map(|h| h.join().expect("host")).collect();
    let elapsed = start.elapsed();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let au = rt.block_on(async {
        let raw = etcd.client().await;
        audit(&raw, "/race").await
    });
    // No host port claimed twice on a server, every claim matching its route.
    assert!(au.problems.is_empty(), "{:?}", au.problems);
    // Every route present.
    let saved: Vec<&String> = tallies.iter().flat_map(|t| &t.saved).collect();
    assert_eq!(saved.len(), HOSTS * PER_HOST);
    for name in &saved {
        let (_, state, ports) = &au.routes[*name];
        assert_eq!(state, "live", "{name}");
        assert_eq!(ports.len(), 1, "{name}");
    }
    // No name routed twice: each contested name was won by exactly one host
    // and refused as name_in_use to every other.
    let mut winners: BTreeMap<&String, usize> = BTreeMap::new();
    for t in &tallies {
        for n in &t.contested_won {
            *winners.entry(n).or_default() += 1;
        }
    }
    assert_eq!(winners.len(), CONTESTED, "{winners:?}");
    assert!(winners.values().all(|c| *c == 1), "{winners:?}");
    let lost: usize = tallies.iter().map(|t| t.contested_lost).sum();
    assert_eq!(lost, CONTESTED * (HOSTS - 1));
    assert_eq!(au.routes.len(), HOSTS * PER_HOST + CONTESTED);
    // The listing agrees.
    let ls = flocker(&["routes", "ls", "--json", "--store", &url], "");
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    let listed: Value = serde_json::from_str(&ls.stdout).expect("routes ls --json");
    let listed_n = listed["containers"]
        .as_object()
        .map(|m| m.len())
        .or_else(|| listed.as_array().map(Vec::len))
        .unwrap_or(0);
    assert_eq!(listed_n, HOSTS * PER_HOST + CONTESTED);
    // Losers retried: the hosts raced for the same lowest ports, saves lost,
    // and each lost save was re-decided until it was saved (asserted above:
    // every place exited 0 with saved=true, or name_in_use for a contested name).
    let retries: u64 = tallies.iter().map(|t| t.retries).sum();
    let retried: usize = tallies.iter().map(|t| t.retried_places).sum();
    eprintln!(
        "{} places by {HOSTS} processes in {elapsed:?}; {retried} places retried, {retries} retries in all",
        HOSTS * PER_HOST + CONTESTED * HOSTS
    );
    assert!(retries > 0, "no save ever lost: the hosts did not race");
}

#[test]
fn flocker_place_with_every_member_down_fails_clearly_and_fast() {
    let mut etcd = Etcd::start_cluster(3);
    let url = etcd.store_url("/down");
    let inv = json!([{"hostname": "n1", "address": "10.9.0.1"}]);
    assert_eq!(
        flocker(&["inventory", "add", "--store", &url], &inv.to_string()).code,
        0
    );
    let req = |n: &str| {
        json!({"name": n, "container": {"Image": "web", "ExposedPorts": {"80/tcp": {}}}})
            .to_string()
    };
    let r = flocker(&["place", "--store", &url], &req("web.1"));
    assert_eq!(r.code, 0, "{}", r.stderr);

    etcd.stop_all();
    let start = Instant::now();
    let r = flocker(&["place", "--store", &url], &req("web.2"));
    let took = start.elapsed();
    assert_eq!(r.code, 3, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("store unavailable"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(took < Duration::from_secs(10), "{took:?}");
    eprintln!(
        "every member down: exit 3 after {took:?}: {}",
        r.stderr.trim()
    );

    for i in 0..3 {
        etcd.restart(i);
    }
    for i in 0..3 {
        etcd.wait_member_healthy(i);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let au = rt.block_on(async { audit(&etcd.client().await, "/down").await });
    assert!(au.problems.is_empty(), "{:?}", au.problems);
    assert_eq!(au.routes.keys().collect::<Vec<_>>(), ["web.1"]);
    let r = flocker(&["place", "--store", &url], &req("web.2"));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn flocker_place_processes_ride_through_the_loss_of_the_leader() {
    let mut etcd = Etcd::start_cluster(3);
    let url = etcd.store_url("/failover");
    let inv = json!([{"hostname": "n1", "address": "10.9.0.1"}, {"hostname": "n2", "address": "10.9.0.2"}]);
    assert_eq!(
        flocker(&["inventory", "add", "--store", &url], &inv.to_string()).code,
        0
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (url, done) = (url.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..40 {
                    let req = json!({"name": format!("f{w}.{i}"), "container": {"Image": "web",
                        "ExposedPorts": {"80/tcp": {}}}});
                    let r = flocker(
                        &["place", "--retries", "100", "--store", &url],
                        &req.to_string(),
                    );
                    assert_eq!(r.code, 0, "f{w}.{i}: {} {}", r.stdout, r.stderr);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    let start = Instant::now();
    while done.load(std::sync::atomic::Ordering::SeqCst) < 30
        && start.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lead = rt.block_on(etcd.leader());
    etcd.stop(lead);
    let at_kill = done.load(std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    assert!(at_kill < 120, "the leader died mid-run");
    let au = rt.block_on(async { audit(&etcd.client().await, "/failover").await });
    assert!(au.problems.is_empty(), "{:?}", au.problems);
    assert_eq!(au.routes.len(), 120);
    eprintln!("leader m{lead} killed after {at_kill} of 120 places; every place exited 0");
}
