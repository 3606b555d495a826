//! The proxy's counters, in the Prometheus text format beside the decision
//! service's (served on `--metrics-listen`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts {
    /// outcome -> creates: `created`, a decision error kind, `server_error`,
    /// `host_error`, `no_such_image`.
    creates: BTreeMap<String, u64>,
    /// endpoint kind -> calls passed to a server.
    routed: BTreeMap<String, u64>,
    /// hostname -> answering its pings.
    up: BTreeMap<String, bool>,
}

/// Counters of one `flocker proxy`.
#[derive(Default)]
pub struct ProxyMetrics {
    counts: Mutex<Counts>,
    streams: Arc<AtomicI64>,
}

/// Counts one open stream until dropped.
pub struct StreamGuard(Arc<AtomicI64>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProxyMetrics {
    fn with<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn created(&self, outcome: &str) {
        // A custom module may answer any kind: bound the label set.
        let known = flocker_core::DecisionError::KINDS.contains(&outcome)
            || crate::place::PlaceError::KINDS.contains(&outcome)
            || matches!(
                outcome,
                "created" | "server_error" | "host_error" | "no_such_image"
            );
        let label = if known { outcome } else { "other" };
        self.with(|c| *c.creates.entry(label.to_string()).or_insert(0) += 1);
    }

    pub fn routed(&self, kind: &'static str) {
        self.with(|c| *c.routed.entry(kind.to_string()).or_insert(0) += 1);
    }

    pub fn set_up(&self, hostname: &str, up: bool) {
        self.with(|c| {
            c.up.insert(hostname.to_string(), up);
        });
    }

    /// Counts a stream as open until the guard is dropped.
    pub fn stream(&self) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.streams.clone())
    }

    pub fn open_streams(&self) -> i64 {
        self.streams.load(Ordering::Relaxed)
    }

    pub fn render(&self) -> String {
        let streams = self.open_streams();
        self.with(|c| {
            let mut out = String::new();
            let _ = writeln!(out, "# HELP flocker_proxy_creates_total Container creates through the proxy, by outcome.");
            let _ = writeln!(out, "# TYPE flocker_proxy_creates_total counter");
            for (o, n) in &c.creates {
                let _ = writeln!(out, "flocker_proxy_creates_total{{outcome=\"{o}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP flocker_proxy_routed_total Calls passed to the server that holds their object, by kind.");
            let _ = writeln!(out, "# TYPE flocker_proxy_routed_total counter");
            for (k, n) in &c.routed {
                let _ = writeln!(out, "flocker_proxy_routed_total{{kind=\"{k}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP flocker_proxy_streams_open Streams (logs, events, wait, attach, pulls) open now.");
            let _ = writeln!(out, "# TYPE flocker_proxy_streams_open gauge");
            let _ = writeln!(out, "flocker_proxy_streams_open {streams}");
            let _ = writeln!(out, "# HELP flocker_proxy_server_up Whether the server's daemon answers its pings (1) or is decided on as down (0).");
            let _ = writeln!(out, "# TYPE flocker_proxy_server_up gauge");
            for (h, up) in &c.up {
                let _ = writeln!(out, "flocker_proxy_server_up{{server=\"{h}\"}} {}", u8::from(*up));
            }
            out
        })
    }
}
