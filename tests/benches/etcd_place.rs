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
//! Then **steady** rows (issue 12): `H` hosts (stores), each placing one
//! container every `1/RATE` s through the host's own `place` (native
//! engine, the save with its replay answer, re-decide on a lost save), for
//! `--steady-count` places per host, at `--rate` places/s per host
//! (default 50). The latency of each place runs from its call to its
//! answer; p50, p99 and max per row. Rows: 1 host alone; 4 hosts with their
//! ticks spread evenly over the period (hosts that are not synchronised);
//! 4 hosts ticking at the same instants (the worst case: every tick, all
//! four decide on the same state).
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

/// `hosts` stores (each its own connection and cache, like separate
/// processes) on `prefix`, the inventory seeded and seen by all.
async fn stores(etcd: &Etcd, prefix: &str, hosts: usize, servers_n: usize) -> Vec<Arc<EtcdStore>> {
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
    stores
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
    let stores = stores(etcd, prefix, hosts, servers_n).await;
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

/// One steady row: latencies in ms, sorted, and the retries.
struct Steady {
    hosts: usize,
    phases: &'static str,
    latencies: Vec<f64>,
    retries: u64,
}

impl Steady {
    fn pct(&self, p: f64) -> f64 {
        let n = self.latencies.len();
        if n == 0 {
            return 0.0;
        }
        let i = ((p / 100.0) * n as f64).ceil() as usize;
        self.latencies[i.clamp(1, n) - 1]
    }
}

/// `hosts` stores, each placing `per_host` containers at `rate` per second;
/// `spread` offsets host h's ticks by h/hosts of the period.
async fn steady(
    etcd: &Etcd,
    prefix: &str,
    hosts: usize,
    rate: f64,
    per_host: usize,
    spread: bool,
    servers_n: usize,
) -> Steady {
    use flocker_host::engine::{Engine, Native};
    use flocker_host::place::Repeat;
    let stores = stores(etcd, prefix, hosts, servers_n).await;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for (h, store) in stores.into_iter().enumerate() {
        let offset = if spread {
            period.mul_f64(h as f64 / hosts as f64)
        } else {
            Duration::ZERO
        };
        tasks.push(tokio::spawn(async move {
            let engine: Arc<dyn Engine> = Arc::new(Native);
            let mut tick = tokio::time::interval_at(start + offset, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut latencies, mut retries) = (Vec::with_capacity(per_host), 0u64);
            for i in 0..per_host {
                tick.tick().await;
                let req = json!({"name": format!("steady-{h}.{i}"),
                    "container": {"Image": "nginx", "ExposedPorts": {"80/tcp": {}}}});
                let t = Instant::now();
                let p = flocker_host::place::place(&*store, &engine, &req, 1000, Repeat::default())
                    .await
                    .expect("place");
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                assert!(p.saved, "a steady place saves");
                retries += u64::from(p.retries);
            }
            (latencies, retries)
        }));
    }
    let (mut latencies, mut retries) = (Vec::new(), 0);
    for t in tasks {
        let (l, r) = t.await.expect("steady task");
        latencies.extend(l);
        retries += r;
    }
    latencies.sort_by(f64::total_cmp);
    Steady {
        hosts,
        phases: if hosts == 1 {
            "-"
        } else if spread {
            "spread"
        } else {
            "aligned"
        },
        latencies,
        retries,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = arg(&args, "--count", 2000);
    let servers_n = arg(&args, "--servers", 10);
    let rate = arg(&args, "--rate", 50) as f64;
    let per_host = arg(&args, "--steady-count", 500);
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
        let mut rows = Vec::new();
        for (hosts, spread) in [(1usize, true), (4, true), (4, false)] {
            let prefix = format!("/steady{hosts}{spread}");
            rows.push(steady(&etcd, &prefix, hosts, rate, per_host, spread, servers_n).await);
        }
        (runs, rows)
    });
    let (runs, rows) = runs;
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
    println!();
    println!("| hosts | phases | places/s per host | places | p50 ms | p99 ms | max ms | p99 / p99 of 1 host | retries |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let alone = rows.first().map_or(1.0, |r| r.pct(99.0));
    for r in &rows {
        println!(
            "| {} | {} | {rate:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.hosts,
            r.phases,
            r.latencies.len(),
            r.pct(50.0),
            r.pct(99.0),
            r.pct(100.0),
            r.pct(99.0) / alone,
            r.retries
        );
    }
    for r in &rows {
        println!(
            "{}",
            json!({"what": "steady", "hosts": r.hosts, "phases": r.phases, "rate": rate,
                   "places": r.latencies.len(), "p50_ms": r.pct(50.0), "p99_ms": r.pct(99.0),
                   "max_ms": r.pct(100.0), "retries": r.retries})
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
