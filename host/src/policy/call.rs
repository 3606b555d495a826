//! The host side of the ABI (`docs/ABI.md`): one instance, its store and
//! limits, and the calls that move bytes in and results out.
//!
//! A call with input: `flocker_alloc(len)` gives a block, the host writes
//! the input into it, the export returns a packed result
//! (`ptr << 32 | len`), the host copies the result out and frees both
//! blocks with `flocker_free`. Every step is bounds-checked against the
//! instance's memory, so a module returning garbage gets a
//! [`PolicyError::BadResult`], never a host panic.

use wasmtime::{
    Engine, Extern, ExternType, InstancePre, Memory, Module, ResourceLimiter, Store, Trap,
    TypedFunc, ValType,
};

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use super::PolicyError;

/// A call is stopped after this many times its deadline of wall-clock
/// time, however little CPU it used (see [`super::Limits::deadline`]).
pub(crate) const WALL_FACTOR: u32 = 10;

/// Per-store data: the memory cap and what tripped it, and the clock of the
/// call in progress.
pub(crate) struct Ctx {
    memory_cap: usize,
    /// The size a grow past the cap asked for, when one did.
    memory_hit: Option<usize>,
    /// The deadline of the call in progress and when it started, in CPU
    /// time of the calling thread and in wall-clock time.
    budget: Duration,
    cpu_start: Duration,
    wall_start: Instant,
}

/// CPU time the calling thread has used. A call runs on one thread from
/// start to end, so the difference of two readings is the call's CPU time,
/// which, unlike wall-clock time, does not grow while the machine is busy
/// with other work.
#[cfg(unix)]
fn thread_cpu() -> Duration {
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
fn thread_cpu() -> Duration {
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

/// The exports and their signatures, as `docs/ABI.md` lists them.
const EXPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("flocker_abi_version", &[], &[ValType::I32]),
    ("flocker_alloc", &[ValType::I32], &[ValType::I32]),
    (
        "flocker_free",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
    ),
    ("flocker_info", &[], &[ValType::I64]),
    (
        "flocker_decide",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    (
        "flocker_snapshot_load",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    (
        "flocker_snapshot_apply",
        &[ValType::I32, ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    (
        "flocker_snapshot_decide",
        &[ValType::I32, ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    ("flocker_snapshot_export", &[ValType::I32], &[ValType::I64]),
    ("flocker_snapshot_drop", &[ValType::I32], &[ValType::I64]),
];

fn same(a: impl ExactSizeIterator<Item = ValType>, b: &[ValType]) -> bool {
    a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
}

/// Checks that `module` exports `memory` and every function of the ABI with
/// its signature.
pub(crate) fn check_exports(module: &Module) -> Result<(), PolicyError> {
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(_) => {
            return Err(PolicyError::Abi(
                "export \"memory\" is not a 32-bit unshared memory".into(),
            ))
        }
        None => return Err(PolicyError::Abi("the module exports no \"memory\"".into())),
    }
    for (name, params, results) in EXPORTS {
        match module.get_export(name) {
            Some(ExternType::Func(f)) if same(f.params(), params) && same(f.results(), results) => {}
            Some(ExternType::Func(f)) => {
                return Err(PolicyError::Abi(format!(
                    "export {name:?} has signature {f}, the ABI says params {params:?} results {results:?}"
                )))
            }
            Some(_) => return Err(PolicyError::Abi(format!("export {name:?} is not a function"))),
            None => return Err(PolicyError::Abi(format!("the module does not export {name:?}"))),
        }
    }
    Ok(())
}

/// Exports by parameter shape: `()`, `(handle)`, `(ptr, len)`, `(handle, ptr, len)`.
type F0 = TypedFunc<(), i64>;
type F1 = TypedFunc<i32, i64>;
type F2 = TypedFunc<(i32, i32), i64>;
type F3 = TypedFunc<(i32, i32, i32), i64>;

/// One instance of a policy module with its own store.
pub(crate) struct Instance {
    store: Store<Ctx>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<(i32, i32), i32>,
    version: TypedFunc<(), i32>,
    funcs0: Vec<(&'static str, F0)>,
    funcs1: Vec<(&'static str, F1)>,
    funcs2: Vec<(&'static str, F2)>,
    funcs3: Vec<(&'static str, F3)>,
    /// Epoch ticks each call may run, and the deadline they stand for.
    ticks: u64,
    deadline: Duration,
}

fn abi(e: wasmtime::Error) -> PolicyError {
    PolicyError::Abi(format!("{e:#}"))
}

impl Instance {
    /// Instantiates with a store capped at `memory_cap` bytes of memory.
    pub(crate) fn new(
        engine: &Engine,
        pre: &InstancePre<Ctx>,
        memory_cap: usize,
    ) -> Result<Instance, PolicyError> {
        let mut store = Store::new(
            engine,
            Ctx {
                memory_cap,
                memory_hit: None,
                budget: Duration::from_secs(10),
                cpu_start: thread_cpu(),
                wall_start: Instant::now(),
            },
        );
        store.limiter(|ctx| ctx);
        // When the epoch deadline passes, the call is stopped if it has used
        // its budget of CPU time (or ten times it of wall-clock time);
        // otherwise it is checked again at the next tick.
        store.epoch_deadline_callback(|ctx| {
            let c = ctx.data();
            let cpu = thread_cpu().saturating_sub(c.cpu_start);
            if cpu >= c.budget || c.wall_start.elapsed() >= c.budget.saturating_mul(WALL_FACTOR) {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        // Start-up code (data segments, a start function) gets a generous
        // fixed budget; each call sets its own deadline.
        store.set_epoch_deadline(1000);
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| match store.data().memory_hit {
                Some(asked) => PolicyError::MemoryLimit {
                    call: "instantiate",
                    asked,
                    cap: memory_cap,
                },
                None => PolicyError::Instantiate(format!("{e:#}")),
            })?;
        let memory = match instance.get_export(&mut store, "memory") {
            Some(Extern::Memory(m)) => m,
            _ => return Err(PolicyError::Abi("the module exports no memory".into())),
        };
        let alloc = instance
            .get_typed_func(&mut store, "flocker_alloc")
            .map_err(abi)?;
        let free = instance
            .get_typed_func(&mut store, "flocker_free")
            .map_err(abi)?;
        let version = instance
            .get_typed_func(&mut store, "flocker_abi_version")
            .map_err(abi)?;
        let mut funcs1 = Vec::new();
        let mut funcs2 = Vec::new();
        let mut funcs3 = Vec::new();
        let funcs0 = vec![(
            "flocker_info",
            instance
                .get_typed_func(&mut store, "flocker_info")
                .map_err(abi)?,
        )];
        for name in ["flocker_snapshot_export", "flocker_snapshot_drop"] {
            funcs1.push((
                name,
                instance.get_typed_func(&mut store, name).map_err(abi)?,
            ));
        }
        for name in ["flocker_decide", "flocker_snapshot_load"] {
            funcs2.push((
                name,
                instance.get_typed_func(&mut store, name).map_err(abi)?,
            ));
        }
        for name in ["flocker_snapshot_apply", "flocker_snapshot_decide"] {
            funcs3.push((
                name,
                instance.get_typed_func(&mut store, name).map_err(abi)?,
            ));
        }
        Ok(Instance {
            store,
            memory,
            alloc,
            free,
            version,
            funcs0,
            funcs1,
            funcs2,
            funcs3,
            ticks: 1,
            deadline: Duration::ZERO,
        })
    }

    /// Bytes of linear memory the instance has now.
    pub(crate) fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Turns a wasmtime error from `call` into the error that says why.
    fn failed(&mut self, call: &'static str, e: wasmtime::Error) -> PolicyError {
        if let Some(asked) = self.store.data_mut().memory_hit.take() {
            return PolicyError::MemoryLimit {
                call,
                asked,
                cap: self.store.data().memory_cap,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PolicyError::Deadline {
                call,
                limit: self.deadline,
            },
            Some(trap) => PolicyError::Trap {
                call,
                message: format!("{trap}: {e:#}"),
            },
            None => PolicyError::Trap {
                call,
                message: format!("{e:#}"),
            },
        }
    }

    /// Starts the clocks of a call.
    fn start_call(&mut self) {
        let deadline = self.deadline;
        let c = self.store.data_mut();
        c.budget = deadline;
        c.cpu_start = thread_cpu();
        c.wall_start = Instant::now();
        self.store.set_epoch_deadline(self.ticks);
    }

    /// Sets the budget of each following call: `ticks` epoch ticks, which
    /// stand for `deadline` in errors.
    pub(crate) fn set_budget(&mut self, ticks: u64, deadline: Duration) {
        self.ticks = ticks;
        self.deadline = deadline;
    }

    pub(crate) fn abi_version(&mut self) -> Result<i32, PolicyError> {
        self.start_call();
        let f = self.version.clone();
        f.call(&mut self.store, ())
            .map_err(|e| self.failed("flocker_abi_version", e))
    }

    /// Copies `input` into a fresh block; returns `(ptr, len)`.
    fn write_input(&mut self, input: &[u8]) -> Result<(i32, i32), PolicyError> {
        if input.is_empty() {
            return Ok((0, 0));
        }
        let len = i32::try_from(input.len())
            .ok()
            .filter(|n| *n < i32::MAX)
            .ok_or_else(|| {
                PolicyError::Input(format!(
                    "input of {} bytes is over the ABI's 2 GiB limit",
                    input.len()
                ))
            })?;
        let alloc = self.alloc.clone();
        let ptr = alloc
            .call(&mut self.store, len)
            .map_err(|e| self.failed("flocker_alloc", e))?;
        if ptr == 0 {
            return Err(PolicyError::MemoryLimit {
                call: "flocker_alloc",
                asked: input.len(),
                cap: self.store.data().memory_cap,
            });
        }
        self.memory
            .write(&mut self.store, ptr as u32 as usize, input)
            .map_err(|_| PolicyError::BadResult {
                call: "flocker_alloc",
                reason: format!("returned block {ptr}+{len} lies beyond memory"),
            })?;
        Ok((ptr, len))
    }

    /// Copies a packed result out and frees its block.
    fn read_result(&mut self, call: &'static str, packed: i64) -> Result<String, PolicyError> {
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        let bytes = self
            .memory
            .data(&self.store)
            .get(ptr..ptr.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| PolicyError::BadResult {
                call,
                reason: format!(
                    "result {ptr}+{len} lies beyond memory ({} bytes)",
                    self.memory_size()
                ),
            })?;
        self.free_block(ptr as i32, len as i32)?;
        String::from_utf8(bytes).map_err(|e| PolicyError::BadResult {
            call,
            reason: format!("result is not UTF-8: {e}"),
        })
    }

    fn free_block(&mut self, ptr: i32, len: i32) -> Result<(), PolicyError> {
        if len == 0 {
            return Ok(());
        }
        let free = self.free.clone();
        free.call(&mut self.store, (ptr, len))
            .map_err(|e| self.failed("flocker_free", e))?;
        Ok(())
    }

    /// Calls a `() -> result` export.
    pub(crate) fn call_none(&mut self, name: &'static str) -> Result<String, PolicyError> {
        let f = export(&self.funcs0, name)?;
        self.start_call();
        let packed = f
            .call(&mut self.store, ())
            .map_err(|e| self.failed(name, e))?;
        self.read_result(name, packed)
    }

    /// Calls a `(handle) -> result` export.
    pub(crate) fn call_handle(
        &mut self,
        name: &'static str,
        handle: i32,
    ) -> Result<String, PolicyError> {
        let f = export(&self.funcs1, name)?;
        self.start_call();
        let packed = f
            .call(&mut self.store, handle)
            .map_err(|e| self.failed(name, e))?;
        self.read_result(name, packed)
    }

    /// Calls a `([handle,] ptr, len) -> result` export with `input`.
    pub(crate) fn call_input(
        &mut self,
        name: &'static str,
        handle: Option<i32>,
        input: &[u8],
    ) -> Result<String, PolicyError> {
        self.start_call();
        let (ptr, len) = self.write_input(input)?;
        let packed = match handle {
            None => {
                let f = export(&self.funcs2, name)?;
                f.call(&mut self.store, (ptr, len))
            }
            Some(h) => {
                let f = export(&self.funcs3, name)?;
                f.call(&mut self.store, (h, ptr, len))
            }
        }
        .map_err(|e| self.failed(name, e))?;
        let out = self.read_result(name, packed)?;
        self.free_block(ptr, len)?;
        Ok(out)
    }
}

/// The typed export `name` among those of one signature.
fn export<F: Clone>(funcs: &[(&'static str, F)], name: &str) -> Result<F, PolicyError> {
    funcs
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f.clone())
        .ok_or_else(|| PolicyError::Abi(format!("no export {name}")))
}
