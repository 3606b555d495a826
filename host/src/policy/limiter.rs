//! The bounds of one instance: its memory cap (a [`ResourceLimiter`]) and
//! the clock of the call in progress, in the calling thread's CPU time.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;

/// A call is stopped after this many times its deadline of wall-clock
/// time, however little CPU it used (see [`super::Limits::deadline`]).
pub(crate) const WALL_FACTOR: u32 = 10;

/// Per-store data: the memory cap and what tripped it, and the clock of the
/// call in progress.
pub(crate) struct Ctx {
    pub(super) memory_cap: usize,
    /// The size a grow past the cap asked for, when one did.
    pub(super) memory_hit: Option<usize>,
    /// The deadline of the call in progress and when it started, in CPU
    /// time of the calling thread and in wall-clock time.
    pub(super) budget: Duration,
    pub(super) cpu_start: Duration,
    pub(super) wall_start: Instant,
}

/// CPU time the calling thread has used. A call runs on one thread from
/// start to end, so the difference of two readings is the call's CPU time,
/// which, unlike wall-clock time, does not grow while the machine is busy
/// with other work.
#[cfg(unix)]
#[expect(
    unsafe_code,
    reason = "clock_gettime writes only the timespec it is given, which lives on this stack"
)]
pub(super) fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; clock_gettime writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Without a per-thread CPU clock the deadline is wall-clock time.
#[cfg(not(unix))]
pub(super) fn thread_cpu() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

impl ResourceLimiter for Ctx {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_hit = Some(desired);
            // An error (rather than `Ok(false)`) traps at the grow itself, so
            // a module that ignores a failed grow cannot carry on.
            return Err(wasmtime::format_err!(
                "memory limit: the module asked for {desired} bytes of linear memory, over the cap of {} bytes",
                self.memory_cap
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}
