//! flocker's placement engine.
//!
//! One decision: which server a `docker run` lands on, and how its create
//! request must change to work there (SPEC sections 2 to 4). The engine is
//! pure: no I/O, clock, randomness, threads or global state, so the same
//! input gives byte-identical output natively and inside the WASM module.
//!
//! Entry points:
//! - [`decide_json`]: SPEC input bytes in, SPEC output JSON out; never panics.
//! - [`decide`]: the same on a parsed value, with a typed result.
//! - [`Cluster`]: the cluster parsed once and kept current with [`Change`]s,
//!   deciding requests of only `{name, container, image}`.
//! - [`ffi`]: what the WASM front ends (raw ABI, wasm-bindgen) share: loading
//!   a snapshot, counting applied changes, the policy-info object.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cluster;
mod decision;
mod env;
mod error;
mod explain;
pub mod ffi;
#[cfg(feature = "testgen")]
pub mod fixtures;
mod fnv;
mod hosts;
mod json_out;
mod json_path;
pub mod limits;
mod links;
mod naming;
mod one_shot;
mod pins;
mod port;
mod port_set;
mod publishing;
mod request;
mod route;
mod routing;
mod server;
#[cfg(feature = "testgen")]
pub mod testgen;
mod text;
// Beside the generators: the rules as a check of answers, for the same
// tests and for `flocker policy check`.
#[cfg(feature = "testgen")]
pub mod conformance;

pub use cluster::{Change, Cluster};
pub use decision::{Decision, Ranked, Ranking, ServerRef, Verdict};
pub use error::{DecisionError, Pin};
pub use explain::Explain;
pub use naming::ContainerName;
pub use port::Port;
pub use route::{Route, LIVE, REMOVED};
pub use routing::Preference;
pub use server::{Server, DEFAULT_PORT_RANGE};

use serde_json::Value;

/// The largest input accepted, in bytes; larger is `invalid_request`.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// Decides a full SPEC input (`name`, `container`, `image`, `inventory`, `routes`).
pub fn decide(input: &Value) -> Result<Decision, DecisionError> {
    let o = json_path::object(input, "")?;
    let cluster = Cluster::from_parts(o)?;
    cluster.decide(input)
}

/// Decides SPEC input bytes and renders the SPEC output: a decision, or
/// `{"error": {...}}`. Any bytes give one or the other, never a panic.
pub fn decide_json(input: &[u8]) -> String {
    decide_json_with(input, Preference::Spread)
}

/// [`decide_json`], choosing among the eligible servers by `preference`
/// instead of the SPEC's default ([`Preference::Spread`]).
pub fn decide_json_with(input: &[u8], preference: Preference) -> String {
    let none = std::collections::BTreeSet::new();
    // The fast reader takes what it can read exactly; anything else, and
    // every error, is read into a `Value`, which names where it went wrong.
    if let Some((request, cluster)) = one_shot::read(input) {
        return render_ref(&cluster.decide_ref(&request, &none, preference));
    }
    let v = match parse(input) {
        Ok(v) => v,
        Err(e) => return render(&Err(e)),
    };
    let cluster = match json_path::object(&v, "").and_then(Cluster::from_parts) {
        Ok(c) => c,
        Err(e) => return render(&Err(e)),
    };
    render_ref(&cluster.decide_ref(&v, &none, preference))
}

/// Parses input bytes as JSON, naming what is wrong with them.
pub fn parse(input: &[u8]) -> Result<Value, DecisionError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(DecisionError::invalid(
            "",
            format!(
                "input is {} bytes, over the {MAX_INPUT_BYTES}-byte limit",
                input.len()
            ),
        ));
    }
    serde_json::from_slice(input)
        .map_err(|e| DecisionError::invalid("", format!("input is not valid JSON: {e}")))
}

/// The SPEC output for a result, as compact JSON.
pub fn render(result: &Result<Decision, DecisionError>) -> String {
    match result {
        Ok(d) => serde_json::to_string(d).unwrap_or_else(|e| unwritable(&e)),
        Err(e) => e.to_value().to_string(),
    }
}

/// [`render`] of the engine's borrowed decision: the same bytes.
fn render_ref(result: &Result<decision::DecisionRef<'_>, DecisionError>) -> String {
    match result {
        Ok(d) => d.to_json().unwrap_or_else(|e| unwritable(&e)),
        Err(e) => e.to_value().to_string(),
    }
}

fn unwritable(e: &serde_json::Error) -> String {
    DecisionError::invalid("", format!("the decision could not be written: {e}"))
        .to_value()
        .to_string()
}
