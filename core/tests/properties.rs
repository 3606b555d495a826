//! Property tests: the engine against a brute-force model of SPEC section 3
//! written apart from it (`flocker_core::conformance`, which shares no code
//! with the engine), plus the output invariants of issue 2.

use std::collections::BTreeSet;

use flocker_core::conformance::{check, check_decision, outcome, Model};
use flocker_core::testgen::{decision_input, request_of, snapshot_of};
use flocker_core::Cluster;
use proptest::prelude::*;
use serde_json::Value;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_brute_force_model(input in decision_input(50)) {
        let bytes = serde_json::to_vec(&input).unwrap();
        let out: Value = serde_json::from_str(&flocker_core::decide_json(&bytes)).unwrap();
        let (expected, pin) = Model::new(&input).expected();
        prop_assert_eq!(outcome(&out), expected, "output: {}", out);
        if out.get("error").is_none() {
            check_decision(&input, &out, pin.as_deref()).map_err(TestCaseError::fail)?;
        }
        // What `flocker policy check` holds a module to, the engine keeps.
        check(&input, &out).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn decide_with_down_is_deciding_with_down_records(input in decision_input(20), seed in any::<u64>()) {
        let Ok(cluster) = Cluster::from_snapshot(&snapshot_of(&input)) else {
            return Ok(());
        };
        let mut marked = input.clone();
        let mut down: BTreeSet<String> = BTreeSet::from(["not-in-inventory".to_string()]);
        for (i, s) in marked["inventory"].as_array_mut().into_iter().flatten().enumerate() {
            if seed >> (i % 64) & 1 == 1 {
                down.insert(s["hostname"].as_str().unwrap_or("").to_string());
                s["down"] = Value::Bool(true);
            }
        }
        let with = flocker_core::render(&cluster.decide_with_down(&request_of(&input), &down));
        let recorded = flocker_core::decide_json(&serde_json::to_vec(&marked).unwrap());
        prop_assert_eq!(with, recorded);
    }

    /// `decide_json` writes its output directly, not through serde; every
    /// entry point writes the bytes serde writes for the owned `Decision`.
    #[test]
    fn every_entry_point_writes_the_same_bytes(input in decision_input(20)) {
        let one_shot = flocker_core::decide_json(&serde_json::to_vec(&input).unwrap());
        prop_assert_eq!(&one_shot, &flocker_core::render(&flocker_core::decide(&input)));
        if let Ok(cluster) = Cluster::from_snapshot(&snapshot_of(&input)) {
            let req = request_of(&input);
            prop_assert_eq!(&one_shot, &cluster.decide_json(&serde_json::to_vec(&req).unwrap()));
            prop_assert_eq!(&one_shot, &flocker_core::render(&cluster.decide(&req)));
        }
    }

    #[test]
    fn the_same_input_gives_byte_identical_output(input in decision_input(20)) {
        let bytes = serde_json::to_vec(&input).unwrap();
        let first = flocker_core::decide_json(&bytes);
        prop_assert_eq!(&first, &flocker_core::decide_json(&bytes));
        let pretty = serde_json::to_vec_pretty(&input).unwrap();
        prop_assert_eq!(&first, &flocker_core::decide_json(&pretty));
    }

    #[test]
    fn any_bytes_give_a_decision_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let out: Value = serde_json::from_str(&flocker_core::decide_json(&bytes)).unwrap();
        prop_assert!(out.get("error").is_some() || out.get("server").is_some());
    }

    #[test]
    fn any_json_value_gives_a_decision_or_an_error(v in arb_json()) {
        let out: Value = serde_json::from_str(&flocker_core::decide_json(v.to_string().as_bytes())).unwrap();
        prop_assert!(out.get("error").is_some() || out.get("server").is_some());
    }

    #[test]
    fn mutated_inputs_never_panic(input in decision_input(6), path_seed in any::<u64>(), v in arb_json()) {
        let mut input = input;
        replace_somewhere(&mut input, path_seed, v);
        let out: Value = serde_json::from_str(&flocker_core::decide_json(input.to_string().as_bytes())).unwrap();
        prop_assert!(out.get("error").is_some() || out.get("server").is_some());
    }
}

/// Replaces one value somewhere inside `v`, chosen by `seed`.
fn replace_somewhere(v: &mut Value, mut seed: u64, with: Value) {
    let mut cur = v;
    loop {
        let len = match cur {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len == 0 || seed.is_multiple_of(4) {
            *cur = with;
            return;
        }
        let i = (seed as usize / 4) % len;
        seed /= 7;
        cur = match cur {
            Value::Object(m) => match m.values_mut().nth(i) {
                Some(x) => x,
                None => return,
            },
            Value::Array(a) => &mut a[i],
            _ => return,
        };
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9:/._!-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("container".to_string()),
                    Just("inventory".to_string()),
                    Just("routes".to_string()),
                    Just("HostConfig".to_string()),
                    Just("Env".to_string()),
                    "[A-Za-z]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
