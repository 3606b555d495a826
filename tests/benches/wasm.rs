//! Native engine vs the policy module in wasmtime, on 1,000 servers with
//! route tables of 10^3 to 10^6 routes and a typical request (2 links, 1
//! named volume, 2 exposed ports). Numbers go in docs/PERFORMANCE.md, "WASM".
//!
//! - `resident_*`: a decision against state loaded once (warm instance).
//! - `one_shot_*`: the SPEC entry point, the whole cluster parsed per call
//!   (a fresh instance per call in wasm, as `Policy::decide` does).
//! - `load_*`: loading the snapshot; `apply_*`: applying one change.
//!
//! Loading the module's state is timed once, outside criterion, as is the
//! native load at 10^6 routes; one-shot at 10^6 routes is not possible (the
//! input is 177 MiB, over the engine's 64 MiB input limit).
//! `FLOCKER_BENCH_MIN` / `FLOCKER_BENCH_MAX` bound the route counts run.
//!
//!     cargo bench -p flocker-tests --bench wasm

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use flocker_core::fixtures::{
    bench_cluster as cluster, bench_request as request, bench_route as route, mixed_cluster,
    tag_request,
};
use flocker_core::{Change, Cluster};
use flocker_host::policy::{Limits, Policy, Resident, Runtime, DEFAULT_MODULE};
use serde_json::Value;

fn full_input(c: &Cluster) -> Vec<u8> {
    let mut input = request();
    let snap = c.to_snapshot();
    input["inventory"] = snap["inventory"].clone();
    input["routes"] = snap["routes"].clone();
    serde_json::to_vec(&input).expect("input JSON")
}

fn policy() -> Policy {
    let limits = Limits {
        deadline: Duration::from_secs(30),
        memory_bytes: 4 << 30,
        resident_memory_bytes: 4 << 30,
        load_deadline: Duration::from_secs(60),
    };
    // FLOCKER_BENCH_MODULE=path.wasm measures another build of the module.
    let module = match std::env::var_os("FLOCKER_BENCH_MODULE") {
        Some(path) => std::fs::read(path).expect("FLOCKER_BENCH_MODULE is readable"),
        None => DEFAULT_MODULE.to_vec(),
    };
    Runtime::new(limits)
        .and_then(|r| r.load(&module))
        .expect("policy module")
}

/// Mean of `n` timed runs of `f`, printed as a line criterion does not make.
fn timed<T>(label: &str, n: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    let mean = start.elapsed() / n;
    println!("{label:<44} time: {mean:.3?} (mean of {n} runs, outside criterion)");
    mean
}

fn bench(c: &mut Criterion) {
    let (min, max) = flocker_tests::bench_route_bounds(1_000_000);
    let policy = policy();
    let req = serde_json::to_vec(&request()).expect("request JSON");
    let mut group = c.benchmark_group("wasm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        if n > max {
            break;
        }
        if n < min {
            continue;
        }
        let mut native = cluster(n);
        let t = Instant::now();
        let mut resident = Resident::load(&policy, &native).expect("resident load");
        let load_wasm = t.elapsed();
        println!(
            "wasm/load_wasm/{n:<34} time: {load_wasm:.3?} (one run; module memory {} MiB)",
            resident.memory_size() >> 20
        );
        let native_out = native.decide_json(&req);
        assert!(
            native_out.starts_with("{\"server\""),
            "the request must decide: {native_out}"
        );
        assert_eq!(resident.decide(&req).expect("wasm decides"), native_out);

        group.bench_with_input(BenchmarkId::new("resident_native", n), &req, |b, req| {
            b.iter(|| native.decide_json(req))
        });
        group.bench_with_input(BenchmarkId::new("resident_wasm", n), &req, |b, req| {
            b.iter(|| resident.decide(req).expect("wasm decides"))
        });

        // One change, alternating so that the state does not grow: save a
        // new live route, then delete it.
        let extra = route(n + 7);
        let save = Change::SaveRoute(extra.clone());
        let delete = Change::DeleteRoute {
            name: extra.name.clone(),
        };
        let mut k = 0u64;
        group.bench_function(BenchmarkId::new("apply_native", n), |b| {
            b.iter(|| {
                k += 1;
                native.apply_change(if k % 2 == 1 {
                    save.clone()
                } else {
                    delete.clone()
                })
            })
        });
        native.apply_change(delete.clone());
        group.bench_function(BenchmarkId::new("apply_wasm", n), |b| {
            b.iter(|| {
                k += 1;
                let c = if k % 2 == 1 { &save } else { &delete };
                resident
                    .apply(std::slice::from_ref(c))
                    .expect("wasm applies")
            })
        });
        resident
            .apply(std::slice::from_ref(&delete))
            .expect("wasm applies");

        if n == 1_000 {
            // Issue 12's tag request on its mixed inventory of 1,000
            // servers, two in three ruled out.
            let mixed = mixed_cluster(1000);
            let tag = serde_json::to_vec(&tag_request()).expect("request JSON");
            let mut mixed_wasm = Resident::load(&policy, &mixed).expect("resident load");
            let out = mixed.decide_json(&tag);
            assert!(
                out.starts_with("{\"server\""),
                "the tag request must decide: {out:.300}"
            );
            assert_eq!(mixed_wasm.decide(&tag).expect("wasm decides"), out);
            group.bench_with_input("resident_native_tag_request", &tag, |b, req| {
                b.iter(|| mixed.decide_json(req))
            });
            group.bench_with_input("resident_wasm_tag_request", &tag, |b, req| {
                b.iter(|| mixed_wasm.decide(req).expect("wasm decides"))
            });

            // The fixed cost of a call: a request the engine refuses at once.
            let tiny = br#"{"container": 1}"#;
            group.bench_function("call_overhead_native", |b| {
                b.iter(|| native.decide_json(tiny))
            });
            group.bench_function("call_overhead_wasm", |b| {
                b.iter(|| resident.decide(tiny).expect("wasm answers"))
            });
        }

        let input = full_input(&native);
        let snapshot = serde_json::to_vec(&native.to_snapshot()).expect("snapshot JSON");
        if input.len() > flocker_core::MAX_INPUT_BYTES {
            println!(
                "wasm/one_shot/{n:<36} not measured: the input is {} MiB, over the engine's {} MiB input limit",
                input.len() >> 20,
                flocker_core::MAX_INPUT_BYTES >> 20
            );
            // A native host builds its state from records, not from one JSON
            // document; this reads the same snapshot without the limit.
            timed(&format!("wasm/load_native/{n}"), 2, || {
                serde_json::from_slice::<Value>(&snapshot)
                    .ok()
                    .map(|v| Cluster::from_snapshot(&v))
            });
        } else {
            assert_eq!(
                flocker_core::decide_json(&input),
                native_out,
                "one-shot and resident agree"
            );
            group.bench_with_input(
                BenchmarkId::new("one_shot_native", n),
                &input,
                |b, input| b.iter(|| flocker_core::decide_json(input)),
            );
            group.bench_with_input(BenchmarkId::new("one_shot_wasm", n), &input, |b, input| {
                b.iter(|| policy.decide(input).expect("wasm decides"))
            });
            group.bench_with_input(BenchmarkId::new("load_native", n), &snapshot, |b, s| {
                b.iter(|| {
                    flocker_core::parse(s)
                        .and_then(|v| Cluster::from_snapshot(&v))
                        .expect("loads")
                })
            });
        }
        println!(
            "wasm/input_bytes/{n:<33} one-shot input {} MiB, snapshot {} MiB",
            input.len() >> 20,
            snapshot.len() >> 20
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
