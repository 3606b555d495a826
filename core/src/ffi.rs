//! What every foreign-language front end of the engine does the same way.
//!
//! The engine ships behind two front ends: the raw pointer+length ABI module
//! (`wasm/`, `flocker_policy.wasm`) and the wasm-bindgen npm package
//! (`bindings/js/`). Both load a resident snapshot from bytes, apply change
//! records and report how many were applied, and describe themselves with a
//! policy-info object. Those rules live here, once, so the two cannot drift:
//! a host that switches from one front end to the other sees the same counts,
//! the same errors and the same info layout.
//!
//! Everything here is pure (no I/O, no global state) and never panics on
//! any input bytes; failures are [`DecisionError`]s, which a front end
//! renders with [`DecisionError::to_value`].

use serde_json::{json, Value};

use crate::{parse, Cluster, DecisionError};

/// The engine's name and version as front ends report it in their policy
/// info (`"engine"`), e.g. `flocker-core 0.1.0`. It names this crate's
/// version, not the front end's: the two can differ once released apart.
pub const ENGINE: &str = concat!("flocker-core ", env!("CARGO_PKG_VERSION"));

/// How many change records `changes` holds: the length of an array, or 1 for
/// a single record. This is the count `{"applied": n}` (raw ABI) and
/// `Snapshot.apply()` (JavaScript) report after a successful apply; an empty
/// array counts 0.
pub fn change_count(changes: &Value) -> usize {
    match changes {
        Value::Array(items) => items.len(),
        _ => 1,
    }
}

/// Parses `input` as a snapshot `{"inventory": [...], "routes": {...}}` and
/// builds the resident state from it. Bytes that are not JSON, or a snapshot
/// of the wrong shape, are `invalid_request` errors.
pub fn load_snapshot(input: &[u8]) -> Result<Cluster, DecisionError> {
    // As in `decide_json`: the typed reader when it can, the `Value` one
    // for the rest and for every error.
    if let Some((_, cluster)) = crate::one_shot::read(input) {
        return Ok(cluster);
    }
    parse(input).and_then(|v| Cluster::from_snapshot(&v))
}

/// Parses `input` as one change record or an array of them and applies it to
/// `cluster`, all or nothing (see [`Cluster::apply`]); returns how many
/// records were applied ([`change_count`]). On an error nothing is applied.
pub fn apply_changes(cluster: &mut Cluster, input: &[u8]) -> Result<usize, DecisionError> {
    let changes = parse(input)?;
    cluster.apply(&changes)?;
    Ok(change_count(&changes))
}

/// The policy-info JSON a front end reports about itself, compact, keys in
/// this order: `name`, `version`, `abi` (only when `abi` is given: the raw
/// module has an ABI version, the wasm-bindgen package does not), `engine`
/// ([`ENGINE`]).
///
/// `name` is the front end's own (`flocker-policy`, `flocker-js`) and
/// `version` its package version; hosts check both (the flocker host
/// refuses a module whose info lacks them).
pub fn policy_info(name: &str, version: &str, abi: Option<i32>) -> String {
    // serde_json's `preserve_order` (on for this crate) keeps the keys in
    // insertion order, which the shipped module's bytes depend on.
    let mut info = json!({ "name": name, "version": version });
    if let (Some(abi), Some(o)) = (abi, info.as_object_mut()) {
        o.insert("abi".to_string(), json!(abi));
    }
    if let Some(o) = info.as_object_mut() {
        o.insert("engine".to_string(), json!(ENGINE));
    }
    info.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAP: &[u8] = br#"{"inventory":[{"hostname":"n1","address":"10.0.0.1"}]}"#;

    #[test]
    fn counts_records_not_bytes() {
        assert_eq!(change_count(&json!([])), 0);
        assert_eq!(change_count(&json!([{}, {}, {}])), 3);
        assert_eq!(change_count(&json!({"op": "remove_server"})), 1);
    }

    #[test]
    fn apply_reports_the_count_and_refuses_all_or_nothing() {
        let mut c = load_snapshot(SNAP).unwrap();
        let before = c.to_snapshot();
        let bad = br#"[{"op":"claim_volume","volume":"pg","server":"n1"},{"op":"claim_volume"}]"#;
        let e = apply_changes(&mut c, bad).unwrap_err();
        assert_eq!(e.to_value()["error"]["kind"], "invalid_request");
        assert_eq!(c.to_snapshot(), before);
        let two = br#"[{"op":"claim_volume","volume":"pg","server":"n1"},{"op":"remove_server","hostname":"x"}]"#;
        assert_eq!(apply_changes(&mut c, two).unwrap(), 2);
        assert_eq!(c.to_snapshot()["routes"]["volumes"]["pg"], "n1");
        assert_eq!(apply_changes(&mut c, b"[]").unwrap(), 0);
        assert!(apply_changes(&mut c, b"\xff").is_err());
    }

    #[test]
    fn load_refuses_bytes_that_are_not_a_snapshot() {
        for bad in [
            &b""[..],
            b"[]",
            b"{\"inventory\": 7}",
            b"\xfe",
            b"{\"inventory\": [",
        ] {
            let e = load_snapshot(bad).map(|_| ()).unwrap_err();
            assert_eq!(e.to_value()["error"]["kind"], "invalid_request");
        }
    }

    #[test]
    fn info_keys_keep_their_order() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(
            policy_info("flocker-policy", "0.1.0", Some(1)),
            format!(
                r#"{{"name":"flocker-policy","version":"0.1.0","abi":1,"engine":"flocker-core {v}"}}"#
            )
        );
        assert_eq!(
            policy_info("flocker-js", "0.1.0", None),
            format!(r#"{{"name":"flocker-js","version":"0.1.0","engine":"flocker-core {v}"}}"#)
        );
    }
}
