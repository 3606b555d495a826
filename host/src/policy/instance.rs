//! One instance of a policy module: its store and limits, and the calls
//! that move bytes in and results out.
//!
//! A call with input: `flocker_alloc(len)` gives a block, the host writes
//! the input into it, the export returns a packed result
//! (`ptr << 32 | len`), the host copies the result out and frees both
//! blocks with `flocker_free`. Every step is bounds-checked against the
//! instance's memory, so a module returning garbage gets a
//! [`PolicyError::BadResult`], never a host panic.

use std::time::{Duration, Instant};

use wasmtime::{Engine, Extern, InstancePre, Memory, Store, Trap, UpdateDeadline};

use super::exports::Exports;
use super::limiter::{thread_cpu, Ctx, WALL_FACTOR};
use super::PolicyError;

/// One instance of a policy module with its own store.
pub(crate) struct Instance {
    store: Store<Ctx>,
    memory: Memory,
    exports: Exports,
    /// Epoch ticks each call may run, and the deadline they stand for.
    ticks: u64,
    deadline: Duration,
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
        let exports = Exports::of(&instance, &mut store)?;
        Ok(Instance {
            store,
            memory,
            exports,
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
        let f = self.exports.abi_version.clone();
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
        let alloc = self.exports.alloc.clone();
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
        let free = self.exports.free.clone();
        free.call(&mut self.store, (ptr, len))
            .map_err(|e| self.failed("flocker_free", e))?;
        Ok(())
    }

    /// `flocker_info`: the policy info JSON.
    pub(crate) fn info(&mut self) -> Result<String, PolicyError> {
        let f = self.exports.info.clone();
        self.start_call();
        let packed = f
            .call(&mut self.store, ())
            .map_err(|e| self.failed("flocker_info", e))?;
        self.read_result("flocker_info", packed)
    }

    /// `flocker_snapshot_export`: the resident state as snapshot JSON.
    pub(crate) fn snapshot_export(&mut self, handle: i32) -> Result<String, PolicyError> {
        let f = self.exports.snapshot_export.clone();
        self.start_call();
        let packed = f
            .call(&mut self.store, handle)
            .map_err(|e| self.failed("flocker_snapshot_export", e))?;
        self.read_result("flocker_snapshot_export", packed)
    }

    /// `flocker_decide`: a one-shot decision on a full input.
    pub(crate) fn decide(&mut self, input: &[u8]) -> Result<String, PolicyError> {
        let f = self.exports.decide.clone();
        self.call_input("flocker_decide", input, |store, ptr, len| {
            f.call(store, (ptr, len))
        })
    }

    /// `flocker_snapshot_load`: a new resident state; answers its handle.
    pub(crate) fn snapshot_load(&mut self, snapshot: &[u8]) -> Result<String, PolicyError> {
        let f = self.exports.snapshot_load.clone();
        self.call_input("flocker_snapshot_load", snapshot, |store, ptr, len| {
            f.call(store, (ptr, len))
        })
    }

    /// `flocker_snapshot_apply`: changes applied to a resident state.
    pub(crate) fn snapshot_apply(
        &mut self,
        handle: i32,
        changes: &[u8],
    ) -> Result<String, PolicyError> {
        let f = self.exports.snapshot_apply.clone();
        self.call_input("flocker_snapshot_apply", changes, |store, ptr, len| {
            f.call(store, (handle, ptr, len))
        })
    }

    /// `flocker_snapshot_decide`: a request decided on a resident state.
    pub(crate) fn snapshot_decide(
        &mut self,
        handle: i32,
        request: &[u8],
    ) -> Result<String, PolicyError> {
        let f = self.exports.snapshot_decide.clone();
        self.call_input("flocker_snapshot_decide", request, |store, ptr, len| {
            f.call(store, (handle, ptr, len))
        })
    }

    /// Calls an export that takes `input` as `(ptr, len)` (and maybe a
    /// handle before them), and reads its result.
    fn call_input(
        &mut self,
        name: &'static str,
        input: &[u8],
        call: impl FnOnce(&mut Store<Ctx>, i32, i32) -> wasmtime::Result<i64>,
    ) -> Result<String, PolicyError> {
        self.start_call();
        let (ptr, len) = self.write_input(input)?;
        let packed = call(&mut self.store, ptr, len).map_err(|e| self.failed(name, e))?;
        let out = self.read_result(name, packed)?;
        self.free_block(ptr, len)?;
        Ok(out)
    }
}
