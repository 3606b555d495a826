//! Shared helpers for the cross-crate tests in `tests/tests/` and the
//! benches in `tests/benches/`.

pub mod etcd;

/// The route counts a bench runs, from `FLOCKER_BENCH_MIN` (default 0) and
/// `FLOCKER_BENCH_MAX` (default `max`): a count outside them is skipped.
pub fn bench_route_bounds(max: usize) -> (usize, usize) {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    (env("FLOCKER_BENCH_MIN", 0), env("FLOCKER_BENCH_MAX", max))
}
