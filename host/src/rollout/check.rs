//! [`check`]: a module held to the contract's hard rules
//! ([`flocker_core::conformance::check`]) on generated clusters and
//! requests ([`flocker_core::testgen`]), before a push and on demand
//! (`flocker policy check`). Validation runs a few fixed samples; this
//! runs hundreds of inputs made to collide (names in use, pins, ports
//! running out), and on a failure proptest shrinks the input to the
//! smallest it finds that still fails.

use std::cell::Cell;

use flocker_core::conformance;
use flocker_core::testgen::decision_input;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::Value;

use crate::policy::Policy;

/// Cases `flocker policy check` runs by default.
pub const DEFAULT_CASES: u32 = 500;
/// Cases a push runs before it accepts a module.
pub const PUSH_CASES: u32 = 50;
/// The most servers a generated inventory has: small clusters collide
/// more and shrink faster.
const MAX_SERVERS: usize = 8;

/// What a passing check saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub cases: u32,
    /// Inputs the module decided on a server.
    pub decisions: u32,
    /// Inputs it answered with an error.
    pub errors: u32,
}

/// An input on which the module broke the contract, shrunk.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{why}\ninput (shrunk): {input}\nthe module answered: {output}")]
pub struct Counterexample {
    /// Which rule it broke.
    pub why: String,
    /// The smallest failing input found: a whole SPEC input.
    pub input: Value,
    /// The module's answer to it (or why it gave none).
    pub output: String,
}

/// Runs `cases` generated inputs through `policy` one-shot, each twice
/// (the same input must give the same bytes), and checks every answer
/// against the hard rules. The inputs are the same on every run (a fixed
/// seed), so a failure is reproducible.
pub fn check(policy: &Policy, cases: u32) -> Result<Checked, Counterexample> {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let (decisions, errors) = (Cell::new(0u32), Cell::new(0u32));
    let result = runner.run(&decision_input(MAX_SERVERS), |input| {
        let out = answer(policy, &input).map_err(|(why, _)| TestCaseError::fail(why))?;
        let counter = if out.get("error").is_some() {
            &errors
        } else {
            &decisions
        };
        counter.set(counter.get() + 1);
        conformance::check(&input, &out).map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(Checked {
            cases,
            decisions: decisions.get(),
            errors: errors.get(),
        }),
        Err(TestError::Fail(why, input)) => {
            let output = match answer(policy, &input) {
                Ok(out) => out.to_string(),
                Err((_, text)) => text,
            };
            Err(Counterexample {
                why: why.message().to_string(),
                input,
                output,
            })
        }
        Err(TestError::Abort(why)) => Err(Counterexample {
            why: format!("the check stopped: {}", why.message()),
            input: Value::Null,
            output: String::new(),
        }),
    }
}

/// The module's answer to `input`, decided twice; `Err` says why there is
/// none to check (and what the module said, if anything).
fn answer(policy: &Policy, input: &Value) -> Result<Value, (String, String)> {
    let bytes = input.to_string();
    let decide = || {
        policy.decide(bytes.as_bytes()).map_err(|e| {
            let text = e.to_string();
            (format!("the module failed: {text}"), text)
        })
    };
    let first = decide()?;
    let again = decide()?;
    if first != again {
        return Err((
            format!("the same input gave different bytes the second time: {again}"),
            first,
        ));
    }
    serde_json::from_str(&first)
        .map_err(|e| (format!("the answer is not JSON: {e}"), first.clone()))
}
