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

    /// `decide_json` reads most inputs without a `Value` tree and leaves
    /// the rest to the `Value` reader; either way its answer is the one
    /// the `Value` reader gives, on inputs with a value changed somewhere
    /// and keys repeated (which a `Value` cannot hold, so they are written
    /// into the text).
    #[test]
    fn the_one_shot_reader_answers_as_the_value_reader(
        input in decision_input(8), path_seed in any::<u64>(), v in arb_json(),
        mutate in any::<bool>(), repeat_seed in any::<u64>(),
    ) {
        let mut input = input;
        if mutate {
            replace_somewhere(&mut input, path_seed, v.clone());
        }
        let mut text = String::new();
        write_repeating(&input, &mut repeat_seed.clone(), &v, &mut text);
        let by_value = match flocker_core::parse(text.as_bytes()) {
            Ok(parsed) => flocker_core::render(&flocker_core::decide(&parsed)),
            Err(e) => flocker_core::render(&Err(e)),
        };
        prop_assert_eq!(flocker_core::decide_json(text.as_bytes()), by_value, "{}", text);
        // Loading a resident state reads the same way.
        let loaded = flocker_core::ffi::load_snapshot(text.as_bytes()).map(|c| c.to_snapshot());
        let by_value = flocker_core::parse(text.as_bytes())
            .and_then(|v| Cluster::from_snapshot(&v))
            .map(|c| c.to_snapshot());
        prop_assert_eq!(format!("{loaded:?}"), format!("{by_value:?}"), "{}", text);
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

/// `v` as JSON text in which, now and then (by `seed`), an object key is
/// written twice: first with a value [`near`] its own, then with its own.
fn write_repeating(v: &Value, seed: &mut u64, other: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = Value::String(k.clone()).to_string();
                *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                if *seed >> 60 == 0 {
                    out.push_str(&format!("{key}:{},", near(x, other)));
                }
                out.push_str(&key);
                out.push(':');
                write_repeating(x, seed, other, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_repeating(x, seed, other, out);
            }
            out.push(']');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

/// A value of the same kind as `x` but not equal to it, so that reading
/// the first of a repeated key instead of the last shows; `other` for
/// arrays and objects.
fn near(x: &Value, other: &Value) -> Value {
    match x {
        Value::Number(n) => n.as_u64().map_or(Value::from(1), |n| Value::from(n ^ 1)),
        Value::String(t) => Value::String(format!("{t}1")),
        Value::Bool(b) => Value::Bool(!b),
        _ => other.clone(),
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
