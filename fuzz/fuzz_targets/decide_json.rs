//! Any bytes into the one-shot entry point: a decision or an error, valid
//! JSON, never a panic, the same answer twice, and the answer of the
//! `Value` reader that `decide_json`'s faster reader stands in for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = flocker_core::decide_json(data);
    let v: serde_json::Value = serde_json::from_str(&out).expect("output is JSON");
    assert!(v.get("server").is_some() || v.get("error").is_some());
    assert_eq!(out, flocker_core::decide_json(data));
    let by_value = match flocker_core::parse(data) {
        Ok(input) => flocker_core::render(&flocker_core::decide(&input)),
        Err(e) => flocker_core::render(&Err(e)),
    };
    assert_eq!(out, by_value);
});
