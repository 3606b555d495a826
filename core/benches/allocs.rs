//! Heap allocations per decision, counted by a global allocator that wraps
//! the system one: the resident tag and typical requests of the `decide`
//! bench's `resident` group, and one-shot on 1,000 servers and 10^4 routes.
//! Numbers go in docs/PERFORMANCE.md.
//!
//!     cargo bench -p flocker-core --bench allocs [-- LABEL]
//!
//! With a LABEL (such as `resident/tag_request/1000`) only that workload
//! runs, which is how `scripts/bench-instructions.sh` counts its
//! instructions under callgrind: wall-clock time on a shared virtual
//! machine moves by ±20% between runs, instruction counts do not.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use flocker_core::fixtures::{bench_cluster, bench_request, mixed_cluster, tag_request};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// A global allocator can only be written as an `unsafe impl`: this one
// forwards every call to `System` unchanged and only counts.
#[expect(
    unsafe_code,
    reason = "GlobalAlloc is an unsafe trait; this forwards to System"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes of one call of `f`, after a warm-up call; nothing
/// when another workload was asked for.
fn count(label: &str, mut f: impl FnMut() -> String) {
    if std::env::args()
        .nth(1)
        .is_some_and(|only| only != label && only != "--bench")
    {
        return;
    }
    let out = f();
    assert!(
        out.starts_with("{\"server\""),
        "{label} must decide: {out:.300}"
    );
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    let out = std::hint::black_box(f());
    let (a1, b1) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    drop(out);
    println!(
        "allocs/{label:<40} {:>8} allocations {:>10} bytes per decision",
        a1 - a0,
        b1 - b0
    );
}

fn main() {
    let tag = serde_json::to_vec(&tag_request()).unwrap_or_default();
    for servers in [10usize, 100, 1000] {
        let c = mixed_cluster(servers);
        count(&format!("resident/tag_request/{servers}"), || {
            c.decide_json(&tag)
        });
    }
    let c = bench_cluster(10_000);
    let typical = serde_json::to_vec(&bench_request()).unwrap_or_default();
    count("resident/typical_10k_routes/1000", || {
        c.decide_json(&typical)
    });
    let mut input = bench_request();
    let snap = c.to_snapshot();
    input["inventory"] = snap["inventory"].clone();
    input["routes"] = snap["routes"].clone();
    let input = serde_json::to_vec(&input).unwrap_or_default();
    count("one_shot/typical_10k_routes/1000", || {
        flocker_core::decide_json(&input)
    });
}
