//! The decision service's counters, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Inner {
    /// (endpoint, outcome) -> count; outcome is `decision` or `error`.
    decisions: BTreeMap<(String, String), u64>,
    /// (endpoint, kind) -> count, for engine errors and host failures.
    errors: BTreeMap<(String, String), u64>,
    /// endpoint -> (bucket counts, sum, count)
    latency: BTreeMap<String, (Vec<u64>, f64, u64)>,
    place_retries: u64,
    place_saved: u64,
    swaps: u64,
    swap_failures: u64,
    /// The active module: (digest, name, version), or None for the native engine.
    policy: Option<(String, String, String)>,
}

/// Counters of one `flocker serve`.
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Error kinds counted under their own label; anything else (a custom
    /// policy module may answer any kind) is counted as `other`, so a
    /// module cannot grow the label set without bound.
    known: Vec<&'static str>,
}

impl Metrics {
    /// Counters that label errors of the `known` kinds by name.
    pub fn new(known: impl IntoIterator<Item = &'static str>) -> Metrics {
        Metrics {
            inner: Mutex::default(),
            known: known.into_iter().collect(),
        }
    }

    /// `kind` when it is one of the known kinds, else `other`.
    pub fn label<'a>(&self, kind: &'a str) -> &'a str {
        if self.known.contains(&kind) {
            kind
        } else {
            "other"
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// One answered request: `kind` is None for a decision, else the error kind.
    pub fn observe(&self, endpoint: &str, kind: Option<&str>, took: Duration) {
        self.with(|m| {
            let outcome = if kind.is_some() { "error" } else { "decision" };
            *m.decisions
                .entry((endpoint.to_string(), outcome.to_string()))
                .or_insert(0) += 1;
            if let Some(k) = kind {
                let k = if self.known.contains(&k) { k } else { "other" };
                *m.errors
                    .entry((endpoint.to_string(), k.to_string()))
                    .or_insert(0) += 1;
            }
            let secs = took.as_secs_f64();
            let h = m
                .latency
                .entry(endpoint.to_string())
                .or_insert_with(|| (vec![0; BUCKETS.len()], 0.0, 0));
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.0[i] += 1;
                }
            }
            h.1 += secs;
            h.2 += 1;
        })
    }

    pub fn placed(&self, saved: bool, retries: u32) {
        self.with(|m| {
            m.place_retries += u64::from(retries);
            if saved {
                m.place_saved += 1;
            }
        })
    }

    pub fn swapped(&self, ok: bool) {
        self.with(|m| {
            if ok {
                m.swaps += 1
            } else {
                m.swap_failures += 1
            }
        })
    }

    pub fn set_policy(&self, policy: Option<(String, String, String)>) {
        self.with(|m| m.policy = policy)
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut out = String::new();
            let _ = writeln!(out, "# HELP flocker_decisions_total Requests answered, by endpoint and outcome (decision or error).");
            let _ = writeln!(out, "# TYPE flocker_decisions_total counter");
            for ((e, o), n) in &m.decisions {
                let _ = writeln!(out, "flocker_decisions_total{{endpoint=\"{e}\",outcome=\"{o}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP flocker_decision_errors_total Error answers by kind: the engine's kinds (SPEC section 4) and the host's (store_unavailable, save_conflict, policy_failed, invalid_body).");
            let _ = writeln!(out, "# TYPE flocker_decision_errors_total counter");
            for ((e, k), n) in &m.errors {
                let _ = writeln!(out, "flocker_decision_errors_total{{endpoint=\"{e}\",kind=\"{k}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP flocker_decision_seconds Time to answer a request, by endpoint.");
            let _ = writeln!(out, "# TYPE flocker_decision_seconds histogram");
            for (e, (buckets, sum, count)) in &m.latency {
                for (b, n) in BUCKETS.iter().zip(buckets) {
                    let _ = writeln!(out, "flocker_decision_seconds_bucket{{endpoint=\"{e}\",le=\"{b}\"}} {n}");
                }
                let _ = writeln!(out, "flocker_decision_seconds_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {count}");
                let _ = writeln!(out, "flocker_decision_seconds_sum{{endpoint=\"{e}\"}} {sum}");
                let _ = writeln!(out, "flocker_decision_seconds_count{{endpoint=\"{e}\"}} {count}");
            }
            let _ = writeln!(out, "# HELP flocker_place_saved_total Routes saved by /v1/place.");
            let _ = writeln!(out, "# TYPE flocker_place_saved_total counter");
            let _ = writeln!(out, "flocker_place_saved_total {}", m.place_saved);
            let _ = writeln!(out, "# HELP flocker_place_retries_total Saves that lost to another writer and were re-decided.");
            let _ = writeln!(out, "# TYPE flocker_place_retries_total counter");
            let _ = writeln!(out, "flocker_place_retries_total {}", m.place_retries);
            let _ = writeln!(out, "# HELP flocker_policy_swaps_total Policy modules swapped in; failures kept the old module.");
            let _ = writeln!(out, "# TYPE flocker_policy_swaps_total counter");
            let _ = writeln!(out, "flocker_policy_swaps_total{{result=\"ok\"}} {}", m.swaps);
            let _ = writeln!(out, "flocker_policy_swaps_total{{result=\"failed\"}} {}", m.swap_failures);
            let _ = writeln!(out, "# HELP flocker_policy_info The active policy module (1); digest \"native\" for the built-in engine.");
            let _ = writeln!(out, "# TYPE flocker_policy_info gauge");
            match &m.policy {
                Some((d, n, v)) => {
                    let _ = writeln!(out, "flocker_policy_info{{digest=\"{d}\",name=\"{}\",version=\"{}\"}} 1", escape(n), escape(v));
                }
                None => {
                    let _ = writeln!(out, "flocker_policy_info{{digest=\"native\",name=\"native\",version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
                }
            }
            out
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new(["name_in_use"]);
        m.observe("place", None, Duration::from_micros(700));
        m.observe("place", Some("name_in_use"), Duration::from_millis(30));
        m.observe("place", Some("made\"up\nkind"), Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("flocker_decision_seconds_bucket{endpoint=\"place\",le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("flocker_decision_seconds_bucket{endpoint=\"place\",le=\"0.05\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "flocker_decision_errors_total{endpoint=\"place\",kind=\"name_in_use\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("flocker_decisions_total{endpoint=\"place\",outcome=\"decision\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("flocker_decision_errors_total{endpoint=\"place\",kind=\"other\"} 1"),
            "{text}"
        );
    }
}
