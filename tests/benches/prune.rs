//! Bounded growth (issue 11, F12): a file store with millions of removed
//! routes, the policy module's resident state over it, `routes prune`, and
//! the state after. Numbers go in docs/PERFORMANCE.md, "Pruning".
//!
//! Writes `FLOCKER_BENCH_ROUTES` (default 2,500,000) removed routes through
//! the store's batch write path (10,000 per transaction) into a scratch
//! file, loads the module's resident state with the host's default limits
//! (a 1 GiB cap), prunes, and loads and decides again.
//!
//!     cargo bench -p flocker-tests --bench prune

use std::sync::Arc;
use std::time::Instant;

use flocker_core::fixtures::{route, servers};
use flocker_host::policy::{Limits, Resident, Runtime, DEFAULT_MODULE};
use flocker_host::store::file::FileStore;
use flocker_host::store::{Prune, Store};

const BATCH: u64 = 10_000;

/// The bench request without its links: every route here is removed, so
/// a link would be `unknown_link`, not a placement.
fn request() -> serde_json::Value {
    let mut r = flocker_core::fixtures::bench_request();
    if let Some(hc) = r["container"]["HostConfig"].as_object_mut() {
        hc.remove("Links");
    }
    r
}

fn main() {
    let n: u64 = std::env::var("FLOCKER_BENCH_ROUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_500_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("scratch dir");
    let store = FileStore::open(dir.path().join("prune.redb")).expect("store");
    rt.block_on(store.put_servers(&servers(10)))
        .expect("servers");

    let t = Instant::now();
    let mut next = 0u64;
    while next < n {
        let mut items: Vec<u64> = (next..(next + BATCH).min(n)).collect();
        next += items.len() as u64;
        store
            .write_batch(&mut items, |i, _| {
                let mut r = route(
                    &format!("gone-{i}.1"),
                    &format!("n{}", *i % 10 + 1),
                    &[],
                    &[],
                );
                r.state = flocker_core::REMOVED.to_string();
                Some((r, None))
            })
            .expect("bulk write");
    }
    println!("write {n} removed routes: {:.1?}", t.elapsed());
    let file = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    println!("store file: {} MiB", file >> 20);

    let policy = Runtime::new(Limits::default())
        .and_then(|r| r.load(DEFAULT_MODULE))
        .expect("policy module");
    let req = serde_json::to_vec(&request()).expect("request JSON");
    let cluster: Arc<_> = rt.block_on(store.cluster()).expect("cluster");
    println!("cluster: {} routes", cluster.routes().count());
    let t = Instant::now();
    match Resident::load(&policy, &cluster) {
        Ok(mut r) => {
            let mib = r.memory_size() >> 20;
            let ok = r.decide(&req).map(|d| {
                if d.starts_with("{\"server\"") {
                    "a placement"
                } else {
                    "an error"
                }
            });
            println!(
                "resident load before prune: {:.1?}, module memory {mib} MiB ({} B/route), decides: {ok:?}",
                t.elapsed(),
                r.memory_size() as u64 / n.max(1)
            );
        }
        Err(e) => println!(
            "resident load before prune: {:.1?}, failed: {e}",
            t.elapsed()
        ),
    }
    drop(cluster);

    let t = Instant::now();
    let pruned = rt
        .block_on(store.prune_routes(&Prune::default()))
        .expect("prune");
    println!("prune {pruned} removed routes: {:.1?}", t.elapsed());
    assert_eq!(pruned, n);

    let cluster = rt.block_on(store.cluster()).expect("cluster");
    let t = Instant::now();
    let mut resident = Resident::load(&policy, &cluster).expect("resident load after prune");
    let out = resident.decide(&req).expect("decides after prune");
    assert!(out.starts_with("{\"server\""), "{out}");
    println!(
        "after prune: {} routes, resident load {:.1?}, module memory {} MiB, decides",
        cluster.routes().count(),
        t.elapsed(),
        resident.memory_size() >> 20
    );
}
