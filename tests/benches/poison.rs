//! A decision right after one that poisoned the module's resident state
//! (here: a request bigger than the instance may hold, the memory cap; a
//! deadline poisons the same way), at 10^4 and 10^5 routes on 1,000
//! servers. With the spare (what `flocker serve` and the proxy run) the
//! next decision runs on the warm spare; without it (the behaviour before
//! issue 11) it first rebuilds the whole cluster under the lock every
//! decision waits on. Numbers go in docs/PERFORMANCE.md, "A poisoned
//! resident state".
//!
//!     cargo bench -p flocker-tests --bench poison
//!
//! `FLOCKER_BENCH_MIN` / `FLOCKER_BENCH_MAX` bound the route counts run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flocker_core::fixtures::{bench_cluster, bench_request};
use flocker_host::policy::{Limits, PolicyHost};
use tokio::sync::broadcast;

const ROUNDS: usize = 5;

fn make_host(
    spare: bool,
    cluster: &Arc<flocker_core::Cluster>,
) -> (PolicyHost, broadcast::Sender<flocker_core::Change>) {
    let limits = Limits {
        // Room for 10^5 routes (about 500 bytes each), not for `huge`.
        resident_memory_bytes: 192 << 20,
        load_deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let host = PolicyHost::with_default(limits).expect("policy host");
    let (feed, rx) = broadcast::channel(4096);
    host.follow(rx);
    if spare {
        host.keep_spare();
    }
    let req = serde_json::to_vec(&bench_request()).expect("request");
    host.decide_resident(cluster, &req).expect("first decision");
    (host, feed)
}

fn wait_spare(host: &PolicyHost) {
    while !host.resident_stats().spare_ready {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let (min, max) = flocker_tests::bench_route_bounds(100_000);
    let req = serde_json::to_vec(&bench_request()).expect("request");
    let huge = format!(
        r#"{{"name":"big.1","container":{{"Image":"web","Env":["X={}"]}}}}"#,
        "x".repeat(200 << 20)
    );
    for n in [10_000usize, 100_000] {
        if n > max {
            break;
        }
        if n < min {
            continue;
        }
        let cluster = Arc::new(bench_cluster(n));
        for spare in [false, true] {
            let (host, _feed) = make_host(spare, &cluster);
            let mut after = Vec::new();
            let mut normal = Vec::new();
            for _ in 0..ROUNDS {
                if spare {
                    wait_spare(&host);
                }
                let t = Instant::now();
                host.decide_resident(&cluster, &req)
                    .expect("a normal decision");
                normal.push(t.elapsed());
                let poisoned = host.decide_resident(&cluster, huge.as_bytes());
                assert!(poisoned.is_err(), "the huge request must poison");
                let t = Instant::now();
                host.decide_resident(&cluster, &req)
                    .expect("the decision after");
                after.push(t.elapsed());
            }
            let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
            let worst = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
            println!(
                "poison/{n}/{:<8} normal mean {:>10.3?}  after a poisoning call: mean {:>10.3?} max {:>10.3?}  ({:?})",
                if spare { "spare" } else { "rebuild" },
                mean(&normal),
                mean(&after),
                worst(&after),
                host.resident_stats(),
            );
        }
    }
}
