//! Per-save latency while readers hold the cluster (issue 11, F19): the
//! embedded store with 10^3 and 10^5 live routes, 8 tasks placing at once
//! through the batching placer (what `flocker serve` runs) and a `/healthz`
//! loop beside them that takes the cached cluster and counts its routes.
//! Before the cache was a [`flocker_host::store::Twin`], each save made
//! while the loop held the cluster copied all of it. Numbers go in
//! docs/PERFORMANCE.md, "Saves while readers hold the cluster".
//!
//!     cargo bench -p flocker-tests --bench saves
//!
//! Eight untimed places first make the cache's second copy, a one-time
//! cost the last column shows. `FLOCKER_BENCH_MIN` / `FLOCKER_BENCH_MAX` bound the route counts run;
//! `FLOCKER_BENCH_PLACES` sets the places per task (default 50). Prints
//! one line per route count; nothing is asserted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flocker_core::fixtures::{route, servers};
use flocker_host::engine::Native;
use flocker_host::place::Placer;
use flocker_host::store::any::AnyStore;
use flocker_host::store::file::FileStore;
use flocker_host::store::Store;
use serde_json::json;

const TASKS: usize = 8;
const SERVERS: usize = 100;
const SEED_BATCH: usize = 10_000;

fn seed(store: &FileStore, n: usize) {
    let mut next = 0usize;
    while next < n {
        let mut items: Vec<usize> = (next..(next + SEED_BATCH).min(n)).collect();
        next += items.len();
        store
            .write_batch(&mut items, |i, _| {
                let server = format!("n{}", *i % SERVERS + 1);
                let port = 20000 + (*i / SERVERS) as u16;
                Some((route(&format!("old-{i}.1"), &server, &[port], &[]), None))
            })
            .expect("seed write");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let (min, max) = flocker_tests::bench_route_bounds(100_000);
    let places: usize = std::env::var("FLOCKER_BENCH_PLACES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    println!("| routes | places | mean | p50 | p99 | max | /healthz rounds | warm-up (8 places, one by one) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [1_000usize, 100_000] {
        if n < min || n > max {
            continue;
        }
        let dir = tempfile::tempdir().expect("scratch dir");
        let store = FileStore::open(dir.path().join("saves.redb")).expect("store");
        rt.block_on(store.put_servers(&servers(SERVERS)))
            .expect("servers");
        seed(&store, n);
        let any = Arc::new(AnyStore::File(store.clone()));
        let placer = Placer::new(any, Arc::new(Native), 8, 64).expect("placer");

        // The /healthz loop: take the cluster, count its routes, again.
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let health = {
            let (store, stop, rounds) = (store.clone(), stop.clone(), rounds.clone());
            rt.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let cluster = store.cluster().await.expect("cluster");
                    let count = tokio::task::spawn_blocking(move || cluster.routes().count())
                        .await
                        .expect("count");
                    assert!(count >= n);
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            })
        };

        // Warm-up, untimed: the first save while the loop holds the cluster
        // makes the cache's second copy (once per process).
        let warm = Instant::now();
        rt.block_on(async {
            for t in 0..TASKS {
                let request = json!({"name": format!("warm-{t}.1"), "container": {"Image": "web"}});
                placer.place(request).await.expect("warm-up place");
            }
        });
        let warm = warm.elapsed();

        let started = Instant::now();
        let mut latencies: Vec<Duration> = rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let placer = placer.clone();
                    tokio::spawn(async move {
                        let mut took = Vec::with_capacity(places);
                        for i in 0..places {
                            let request = json!({"name": format!("new-{t}-{i}.1"),
                                "container": {"Image": "web"},
                                "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}});
                            let t0 = Instant::now();
                            let placed = placer.place(request).await.expect("place");
                            assert!(placed.saved, "{}", placed.decided.output);
                            took.push(t0.elapsed());
                        }
                        took
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("task"));
            }
            all
        });
        let wall = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        rt.block_on(health).expect("healthz loop");
        latencies.sort();
        let mean = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
        println!(
            "| {n} | {} | {:.2?} | {:.2?} | {:.2?} | {:.2?} | {} in {:.1?} | {:.1?} |",
            latencies.len(),
            mean,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default(),
            rounds.load(Ordering::Relaxed),
            wall,
            warm
        );
    }
}
