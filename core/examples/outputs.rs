//! Prints the engine's output for a fixed corpus, one line per decision, so
//! that two builds can be compared byte for byte (`scripts/same-output.sh`):
//! every `examples/*.input.json`, `CASES` generated inputs (one-shot, then
//! the same request on the resident state built from its snapshot), and the
//! benchmarks' workloads (the tag request on 10 to 1,000 mixed servers, the
//! typical request on 10^3 and 10^4 routes, one-shot and resident).
//!
//!   cargo run --release -p flocker-core --example outputs -- [CASES] [SEED] > out.txt
//!
//! It uses only the public API and the `fixtures`/`testgen` modules, so the
//! same file builds against an older commit.

use std::io::Write;

use flocker_core::fixtures::{bench_cluster, bench_request, mixed_cluster, tag_request};
use flocker_core::testgen::{decision_input, request_of, snapshot_of};
use flocker_core::Cluster;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cases: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(12);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = |label: &str, text: &str| {
        writeln!(out, "{label}\t{text}").expect("write stdout");
    };

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut examples: Vec<_> = std::fs::read_dir(dir)
        .expect("examples dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".input.json"))
        .collect();
    examples.sort();
    for path in &examples {
        let bytes = std::fs::read(path).expect("example input");
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        line(
            &name.unwrap_or_default(),
            &flocker_core::decide_json(&bytes),
        );
    }

    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = decision_input(40);
    for i in 0..cases {
        let input = strategy.new_tree(&mut runner).expect("generator").current();
        line(
            &format!("one_shot/{i}"),
            &flocker_core::decide_json(input.to_string().as_bytes()),
        );
        if let Ok(cluster) = Cluster::from_snapshot(&snapshot_of(&input)) {
            let request = request_of(&input).to_string();
            line(
                &format!("resident/{i}"),
                &cluster.decide_json(request.as_bytes()),
            );
        }
    }

    let tag = tag_request().to_string();
    for servers in [10, 100, 1000] {
        let cluster = mixed_cluster(servers);
        line(
            &format!("tag/{servers}"),
            &cluster.decide_json(tag.as_bytes()),
        );
    }
    let typical = bench_request();
    for routes in [1000, 10_000] {
        let cluster = bench_cluster(routes);
        let request = typical.to_string();
        line(
            &format!("typical/{routes}"),
            &cluster.decide_json(request.as_bytes()),
        );
        let mut input = typical.clone();
        let snapshot = cluster.to_snapshot();
        input["inventory"] = snapshot["inventory"].clone();
        input["routes"] = snapshot.get("routes").cloned().unwrap_or(Value::Null);
        line(
            &format!("typical_one_shot/{routes}"),
            &flocker_core::decide_json(input.to_string().as_bytes()),
        );
    }
}
