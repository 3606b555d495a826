//! `place` decisions per second on etcd, beside the raw etcd transaction
//! rate measured in the same run against the same etcd.
//!
//! ```text
//! cargo bench -p flocker-tests --bench etcd_place -- [--count N] [--servers S]
//! ```
//!
//! One etcd member (Debian's etcd 3.4, default settings: fsync on) on
//! loopback, started by the test harness on a temporary data directory.
//! For 1 task, 4 tasks sharing one store (one host serving 4 requests at
//! once), and 4 tasks on 4 stores (4 hosts, each its own connection and
//! cache, racing for the same ports), it runs, in this order:
//!
//! 1. **raw**: `N` etcd transactions shaped like a save: compare the name
//!    key and one port key absent, put the route record (a real route's
//!    JSON) and the port claim, read both back on failure. No decision, no
//!    cache.
//! 2. **place**: `N` places through [`EtcdStore`]: take the cached
//!    cluster, decide with the native engine, save in one transaction, wait
//!    for the watch to bring the write back into the cache, re-decide on
//!    conflict.
//! 3. **raw** again, so that drift in the machine's speed shows.
//!
//! The raw runs use as many concurrent transactions as the place run has tasks.
//!
//! Prints a Markdown table (for docs/PERFORMANCE.md) and one JSON line per
//! row. Not a test: nothing is asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use flocker_host::store::etcd::EtcdStore;
use flocker_host::store::Store;
use flocker_tests::etcd::{config, place, Etcd};
use serde_json::json;

struct Run {
    what: &'static str,
    hosts: usize,
    concurrency: usize,
    count: usize,
    secs: f64,
    retries: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn servers(n: usize) -> Vec<flocker_core::Server> {
    (0..n)
        .map(|i| {
            flocker_core::Server::from_value(
                &json!({"hostname": format!("bench-n{i}"), "address": format!("10.1.0.{i}"),
                        "port_range": [20000, 65000]}),
                "inventory",
            )
            .expect("server")
        })
        .collect()
}

async fn raw(etcd: &Etcd, prefix: &str, count: usize, concurrency: usize, servers: usize) -> Run {
    let client = etcd.client().await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let client = client.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut kv = client.kv_client();
            for i in (t..count).step_by(concurrency) {
                let name = format!("raw.{i}");
                let server = format!("bench-n{}", i % servers);
                let port = 20000 + (i / servers) as u16;
                let route = json!({"name": name, "service": "raw", "server": server,
                    "address": "10.1.0.1", "ports": {"80/tcp": port},
                    "env": ["SERVICE_ID=raw.1", "SERVICE_NAME=raw"], "volumes": [], "state": "live"});
                let rk = format!("{prefix}/routes/containers/{name}");
                let pk = format!("{prefix}/ports/{server}/{port}");
                let txn = Txn::new()
                    .when(vec![
                        Compare::version(rk.clone(), CompareOp::Equal, 0),
                        Compare::version(pk.clone(), CompareOp::Equal, 0),
                    ])
                    .and_then(vec![
                        TxnOp::put(pk.clone(), name.as_str(), None),
                        TxnOp::put(rk.clone(), route.to_string(), None),
                    ])
                    .or_else(vec![TxnOp::get(rk, None), TxnOp::get(pk, None)]);
                let resp = kv.txn(txn).await.expect("raw txn");
                assert!(resp.succeeded());
            }
        }));
    }
    for t in tasks {
        t.await.expect("raw task");
    }
    Run {
        what: "raw etcd txn",
        hosts: 1,
        concurrency,
        count,
        secs: start.elapsed().as_secs_f64(),
        retries: 0,
    }
}

/// `concurrency` tasks placing `count` containers; `hosts` stores (each
/// its own connection and cache, like separate processes) share the tasks.
async fn places(
    etcd: &Etcd,
    prefix: &str,
    count: usize,
    concurrency: usize,
    hosts: usize,
    servers_n: usize,
) -> Run {
    let mut stores = Vec::new();
    for _ in 0..hosts {
        let mut cfg = config(etcd.endpoints(), prefix);
        cfg.request_timeout = Duration::from_secs(10);
        stores.push(Arc::new(EtcdStore::connect(cfg).await.expect("connect")));
    }
    stores[0]
        .put_servers(&servers(servers_n))
        .await
        .expect("seed");
    for s in &stores {
        s.wait_for_revision(stores[0].revision()).await;
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let store = stores[t % hosts].clone();
        tasks.push(tokio::spawn(async move {
            let mut retries = 0u64;
            for i in (t..count).step_by(concurrency) {
                let req = json!({"name": format!("bench.{i}"),
                    "container": {"Image": "nginx", "ExposedPorts": {"80/tcp": {}}}});
                let p = place(&*store, &req, 1000).await.expect("place");
                p.decision.expect("decision");
                retries += u64::from(p.retries);
            }
            retries
        }));
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.expect("place task");
    }
    Run {
        what: if hosts == 1 {
            "place (decide + save + cache)"
        } else {
            "place, one task per host"
        },
        hosts,
        concurrency,
        count,
        secs: start.elapsed().as_secs_f64(),
        retries,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = arg(&args, "--count", 2000);
    let servers_n = arg(&args, "--servers", 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let etcd = Etcd::start();
    let runs = rt.block_on(async {
        let mut runs = Vec::new();
        for (c, hosts) in [(1usize, 1usize), (4, 1), (4, 4)] {
            let tag = format!("{c}x{hosts}");
            let r1 = raw(&etcd, &format!("/raw{tag}a"), count, c, servers_n).await;
            let p = places(&etcd, &format!("/place{tag}"), count, c, hosts, servers_n).await;
            let r2 = raw(&etcd, &format!("/raw{tag}b"), count, c, servers_n).await;
            runs.push((r1, p, r2));
        }
        runs
    });
    println!("| concurrency | hosts | raw txn/s (before) | place/s | raw txn/s (after) | place / raw | place retries |");
    println!("|---|---|---|---|---|---|---|");
    for (r1, p, r2) in &runs {
        let raw_mean = (r1.rate() + r2.rate()) / 2.0;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0}% | {} |",
            p.concurrency,
            p.hosts,
            r1.rate(),
            p.rate(),
            r2.rate(),
            100.0 * p.rate() / raw_mean,
            p.retries
        );
    }
    for (r1, p, r2) in &runs {
        for r in [r1, p, r2] {
            println!(
                "{}",
                json!({"what": r.what, "concurrency": r.concurrency, "hosts": r.hosts, "count": r.count,
                       "seconds": r.secs, "per_second": r.rate(), "retries": r.retries})
            );
        }
    }
}
