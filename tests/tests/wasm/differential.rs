//! Native core vs the policy module in wasmtime: byte-identical output on
//! generated inputs, and the same between one-shot and resident-state
//! decisions, and between a state built by changes and one loaded fresh.

use std::cell::Cell;
use std::sync::OnceLock;

use flocker_core::testgen::{changes_building, decision_input, request_of, snapshot_of};
use flocker_host::policy::{Limits, Policy, Resident, Runtime, DEFAULT_MODULE};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

/// Cases per property; the issue asks for at least 1,000 per CI run.
const CASES: u32 = 1000;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let runtime = Runtime::new(Limits::default()).expect("runtime");
        runtime.load(DEFAULT_MODULE).expect("default module loads")
    })
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn module_matches_native_core_byte_for_byte() {
    let policy = policy();
    let (decisions, errors) = (Cell::new(0u32), Cell::new(0u32));
    runner()
        .run(&decision_input(6), |input| {
            let bytes = input.to_string().into_bytes();
            let native = flocker_core::decide_json(&bytes);
            let wasm = policy
                .decide(&bytes)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&wasm, &native, "input: {}", input);
            if native.starts_with("{\"error\"") {
                errors.set(errors.get() + 1);
            } else {
                decisions.set(decisions.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The generators must reach both kinds of answer, or the test proves little.
    let (decisions, errors) = (decisions.get(), errors.get());
    assert!(
        decisions >= CASES / 10 && errors >= CASES / 10,
        "{decisions} decisions, {errors} errors"
    );
}

#[test]
fn resident_state_matches_one_shot_and_incremental_matches_fresh() {
    let policy = policy();
    runner()
        .run(&decision_input(6), |input| {
            let one_shot = policy
                .decide(input.to_string().as_bytes())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let snapshot = snapshot_of(&input);
            let request = request_of(&input).to_string();

            let fresh = Resident::from_json(policy, snapshot.to_string().as_bytes());
            let Ok(mut fresh) = fresh else {
                // A snapshot the engine refuses must be refused one-shot too.
                prop_assert!(
                    one_shot.starts_with("{\"error\""),
                    "snapshot refused but one-shot decided: {one_shot}"
                );
                return Ok(());
            };
            let resident = fresh
                .decide(request.as_bytes())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&resident, &one_shot, "input: {}", input);

            let changes =
                changes_building(&snapshot).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut built = Resident::from_json(policy, br#"{"inventory":[]}"#)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Half one record per call, half one batch, to use both shapes.
            let (singles, batch) = changes.split_at(changes.len() / 2);
            for c in singles {
                built
                    .apply_json(c.to_string().as_bytes())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            built
                .apply_json(Value::Array(batch.to_vec()).to_string().as_bytes())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let built_export = built
                .export()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let fresh_export = fresh
                .export()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&built_export, &fresh_export);
            let incremental = built
                .decide(request.as_bytes())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&incremental, &one_shot, "input: {}", input);
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_example_decides_the_same_natively_and_in_the_module() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if !path.to_string_lossy().ends_with(".input.json") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable example");
        let native = flocker_core::decide_json(&bytes);
        let wasm = policy().decide(&bytes).expect("module decides");
        assert_eq!(wasm, native, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} examples in {dir}");
}
