//! Any bytes into the one-shot entry point: a decision or an error, valid
//! JSON, never a panic, and the same answer twice.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = flocker_core::decide_json(data);
    let v: serde_json::Value = serde_json::from_str(&out).expect("output is JSON");
    assert!(v.get("server").is_some() || v.get("error").is_some());
    assert_eq!(out, flocker_core::decide_json(data));
});
