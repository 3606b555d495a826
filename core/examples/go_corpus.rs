//! Writes the corpus the Go binding's differential test reads
//! (bindings/go, TestCorpusMatchesNative): generated decision inputs with
//! the native engine's output, plus the resident-state halves of each.
//!
//!   cargo run -p flocker-core --example go_corpus -- DIR [CASES] [SEED]
//!
//! DIR/corpus.jsonl: one JSON object a line, every field a JSON string so
//! the Go side gets the exact bytes: `input` (a SPEC input), `output`
//! (`flocker_core::decide_json` of it, what `flocker decide --engine
//! native` prints), `snapshot` and `request` (its two halves) and
//! `changes` (a change array building the snapshot from an empty state,
//! or "" when the engine refuses the snapshot).
//! DIR/bench-snapshot.json, DIR/bench-request.json: the state and request
//! of the WASM benchmark at 10^3 routes (tests/benches/wasm.rs; the same
//! records, rebuilt here so no wasmtime is needed).
//! DIR/mixed-snapshot.json, DIR/tag-request.json: issue 12's mixed inventory
//! of 1,000 servers and its tag request (`scripts/bench-wasm-fuel.py`).
//!
//! Native only: it builds without wasmtime or the host.

use std::io::Write;

use flocker_core::fixtures::{bench_cluster, bench_request, mixed_cluster, tag_request};
use flocker_core::testgen::{changes_building, decision_input, request_of, snapshot_of};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: go_corpus DIR [CASES] [SEED]");
        std::process::exit(2);
    };
    let cases: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    std::fs::create_dir_all(dir).expect("corpus dir");

    // A fixed seed: a failure in Go names a line that the same command
    // regenerates.
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = decision_input(6);
    let path = format!("{dir}/corpus.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("corpus file"));
    let (mut decisions, mut errors) = (0, 0);
    for _ in 0..cases {
        let input = strategy.new_tree(&mut runner).expect("generator").current();
        let bytes = input.to_string();
        let output = flocker_core::decide_json(bytes.as_bytes());
        if output.starts_with("{\"error\"") {
            errors += 1;
        } else {
            decisions += 1;
        }
        let snapshot = snapshot_of(&input);
        let changes = match changes_building(&snapshot) {
            Ok(c) => Value::Array(c).to_string(),
            Err(_) => String::new(),
        };
        let line = json!({
            "input": bytes, "output": output,
            "snapshot": snapshot.to_string(), "request": request_of(&input).to_string(),
            "changes": changes,
        });
        writeln!(out, "{line}").expect("write corpus");
    }
    out.flush().expect("write corpus");

    let c = bench_cluster(1000);
    std::fs::write(
        format!("{dir}/bench-snapshot.json"),
        c.to_snapshot().to_string(),
    )
    .expect("bench snapshot");
    std::fs::write(
        format!("{dir}/bench-request.json"),
        bench_request().to_string(),
    )
    .expect("bench request");
    std::fs::write(
        format!("{dir}/mixed-snapshot.json"),
        mixed_cluster(1000).to_snapshot().to_string(),
    )
    .expect("mixed snapshot");
    std::fs::write(format!("{dir}/tag-request.json"), tag_request().to_string())
        .expect("tag request");
    eprintln!(
        "go_corpus: {path}: {cases} inputs ({decisions} decisions, {errors} errors), seed {seed}"
    );
}
