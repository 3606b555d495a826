//! The policy runtime: runs `flocker_policy.wasm` modules in wasmtime.
//!
//! A module is the flocker engine behind the zero-import ABI of
//! `docs/ABI.md` (implemented in `wasm/src/lib.rs`). This module compiles it
//! once, instantiates it cheaply for each call, bounds every call, checks a
//! new module before it takes traffic and swaps modules without dropping a
//! request.
//!
//! - [`Runtime`]: one wasmtime engine with its [`Limits`]: a deadline (epoch
//!   interruption, default 100 ms) and a memory cap (default 64 MiB) applied
//!   to every call. A module that loops, traps or grows past the cap fails
//!   that call with a [`PolicyError`] naming which; the runtime keeps serving.
//! - [`Policy`]: one compiled module. [`Policy::decide`] runs a one-shot
//!   decision on a fresh instance (from an `InstancePre`, so nothing carries
//!   over from one call to the next, not even a trap).
//! - [`Resident`]: one warm instance holding the cluster state (a snapshot
//!   handle), kept current with [`flocker_core::Change`]s and deciding
//!   requests of only `{name, container, image}`.
//! - [`validate`]: ABI version, policy info and the built-in sample inputs
//!   ([`samples`]), before a module takes traffic.
//! - [`PolicyHost`]: the hot-swappable holder the `flocker` command and the
//!   decision service use.
//! - [`DEFAULT_MODULE`]: the module built from this workspace and embedded
//!   in the binary by `host/build.rs`.
//!
//! ```no_run
//! use flocker_host::policy::{Limits, PolicyHost, Runtime, DEFAULT_MODULE};
//! # fn main() -> Result<(), flocker_host::policy::PolicyError> {
//! let runtime = Runtime::new(Limits::default())?;
//! let host = PolicyHost::new(runtime, DEFAULT_MODULE)?;
//! let output = host.decide(br#"{"name":"web.1","container":{"Image":"nginx"},"inventory":[{"hostname":"n1","address":"10.0.0.1"}]}"#)?;
//! println!("{output}");
//! # Ok(()) }
//! ```

mod error;
mod exports;
pub mod guard;
mod host;
mod instance;
mod limiter;
mod resident;
pub mod samples;
mod spare;
#[cfg(test)]
mod spare_tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstancePre, Linker, Module};

pub use error::PolicyError;
pub use host::{PolicyHost, ResidentStats, Swapped};
pub use resident::Resident;

use instance::Instance;
use limiter::Ctx;

/// The default policy module: `flocker-wasm` built for wasm32 with the
/// `wasm-release` profile by `host/build.rs`.
pub const DEFAULT_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flocker_policy.wasm"));

/// The ABI versions this host can run (see `docs/ABI.md`, "Versioning").
pub const SUPPORTED_ABI: &[i32] = &[1];

/// Bounds on every call into a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Budget of one call, enforced by epoch interruption: when it has
    /// passed, the call is stopped as soon as it has used this much CPU time
    /// on its thread (checked every tick, a tenth of the deadline and at
    /// most 10 ms), or ten times this much wall-clock time whatever its CPU
    /// use. Counting CPU time keeps a busy machine from failing fast calls;
    /// the wall-clock bound keeps a starved call from hanging. Default 100 ms:
    /// a resident decision takes tens of µs, but a one-shot decision parses
    /// the whole cluster and takes about 70 ms at 10^4 routes.
    pub deadline: Duration,
    /// Most linear memory a one-shot call's instance may have. Default 64 MiB.
    /// A one-shot decision needs about 13 times its input in memory (the
    /// input, its parsed `Value`, the indexed cluster): 26 MiB for a 1.8 MiB
    /// input (1,000 servers, 10^4 routes), 240 MiB for 19 MiB (10^5 routes).
    /// So the default takes inputs up to about 5 MiB; larger clusters want
    /// [`Resident`] state, or a larger cap.
    pub memory_bytes: usize,
    /// Most linear memory a [`Resident`] instance may have: it holds the
    /// whole cluster: about 500 bytes per route (486 MiB at 10^6 routes on
    /// 1,000 servers, see docs/PERFORMANCE.md). Default 1 GiB.
    pub resident_memory_bytes: usize,
    /// Budget of one call that loads state into a [`Resident`] (a batch of
    /// at most [`Resident::BATCH`] routes). Default 1 s.
    pub load_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            resident_memory_bytes: 1 << 30,
            load_deadline: Duration::from_secs(1),
        }
    }
}

/// What a module says about itself (`flocker_info`), as checked by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
    /// The ABI version from `flocker_abi_version` (info must agree).
    pub abi: i32,
    /// sha256 of the module bytes, lowercase hex.
    pub digest: String,
    /// The info JSON exactly as the module returned it.
    pub raw: String,
}

/// Stops the epoch ticker when the last clone of a [`Runtime`] goes.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One wasmtime engine, its limits and the thread that advances its epoch.
/// Cheap to clone; every [`Policy`] keeps its runtime alive.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    limits: Limits,
    tick: Duration,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Runtime {
    /// A runtime whose calls are bounded by `limits`.
    pub fn new(limits: Limits) -> Result<Runtime, PolicyError> {
        if limits.deadline.is_zero() || limits.load_deadline.is_zero() {
            return Err(PolicyError::Config("deadlines must be above zero".into()));
        }
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| PolicyError::Config(format!("{e:#}")))?;
        // A tenth of the shortest deadline, between 1 and 10 ms: a call is
        // stopped between its deadline and deadline + one tick.
        let shortest = limits.deadline.min(limits.load_deadline);
        let tick = (shortest / 10).clamp(Duration::from_millis(1), Duration::from_millis(10));
        let stop = Arc::new(AtomicBool::new(false));
        let (weak_engine, flag) = (engine.weak(), stop.clone());
        std::thread::Builder::new()
            .name("flocker-policy-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PolicyError::Config(format!("cannot start the epoch thread: {e}")))?;
        Ok(Runtime {
            engine,
            limits,
            tick,
            _ticker: Arc::new(Ticker { stop }),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Epoch ticks that make up `d` (at least 1).
    fn ticks(&self, d: Duration) -> u64 {
        (d.as_micros().div_ceil(self.tick.as_micros().max(1)) as u64).max(1)
    }

    /// Compiles a module and checks that it has the ABI's exports with the
    /// right signatures and imports nothing. It is not run: see
    /// [`validate`] / [`Policy::validate`] before giving it traffic.
    pub fn load(&self, bytes: &[u8]) -> Result<Policy, PolicyError> {
        let module =
            Module::new(&self.engine, bytes).map_err(|e| PolicyError::Compile(format!("{e:#}")))?;
        if let Some(import) = module.imports().next() {
            return Err(PolicyError::Abi(format!(
                "the module imports {}::{}; a policy module must import nothing",
                import.module(),
                import.name()
            )));
        }
        exports::check_exports(&module)?;
        let linker: Linker<Ctx> = Linker::new(&self.engine);
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| PolicyError::Abi(format!("{e:#}")))?;
        let digest = digest(bytes);
        Ok(Policy {
            inner: Arc::new(PolicyInner {
                runtime: self.clone(),
                pre,
                digest,
                size: bytes.len(),
            }),
        })
    }
}

struct PolicyInner {
    runtime: Runtime,
    pre: InstancePre<Ctx>,
    digest: String,
    size: usize,
}

/// One compiled module. Cheap to clone; calls on clones may run in parallel,
/// each on its own instance.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<PolicyInner>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("digest", &self.inner.digest)
            .field("size", &self.inner.size)
            .finish()
    }
}

impl Policy {
    /// sha256 of the module bytes, lowercase hex.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Size of the module in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// A fresh instance with the one-shot memory cap and call deadline.
    fn instance(&self) -> Result<Instance, PolicyError> {
        let r = &self.inner.runtime;
        let mut i = Instance::new(&r.engine, &self.inner.pre, r.limits.memory_bytes)?;
        i.set_budget(r.ticks(r.limits.deadline), r.limits.deadline);
        Ok(i)
    }

    /// A fresh instance with the resident memory cap.
    fn resident_instance(&self) -> Result<Instance, PolicyError> {
        let r = &self.inner.runtime;
        Instance::new(&r.engine, &self.inner.pre, r.limits.resident_memory_bytes)
    }

    /// `(ticks, deadline)` of a decision call and of a state-loading call.
    fn budgets(&self) -> ((u64, Duration), (u64, Duration)) {
        let r = &self.inner.runtime;
        (
            (r.ticks(r.limits.deadline), r.limits.deadline),
            (r.ticks(r.limits.load_deadline), r.limits.load_deadline),
        )
    }

    /// Decides SPEC input bytes and returns the module's SPEC output JSON
    /// (a decision or `{"error": ...}`; both are `Ok`). `Err` means the
    /// module itself failed: it trapped, ran past the deadline, hit the
    /// memory cap or returned something that is not a result.
    pub fn decide(&self, input: &[u8]) -> Result<String, PolicyError> {
        self.instance()?.decide(input)
    }

    /// `flocker_abi_version`.
    pub fn abi_version(&self) -> Result<i32, PolicyError> {
        self.instance()?.abi_version()
    }

    /// `flocker_info`, parsed and checked against `flocker_abi_version`.
    pub fn info(&self) -> Result<PolicyInfo, PolicyError> {
        let mut instance = self.instance()?;
        let abi = instance.abi_version()?;
        if !SUPPORTED_ABI.contains(&abi) {
            return Err(PolicyError::Abi(format!(
                "the module speaks ABI version {abi}; this host runs {SUPPORTED_ABI:?}"
            )));
        }
        let raw = instance.info()?;
        let v: serde_json::Value = serde_json::from_str(&raw)
            .map_err(|e| PolicyError::Abi(format!("flocker_info is not JSON: {e}")))?;
        let text = |k: &str| -> Result<String, PolicyError> {
            v.get(k)
                .and_then(|s| s.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| PolicyError::Abi(format!("flocker_info has no {k:?} string: {raw}")))
        };
        let (name, version) = (text("name")?, text("version")?);
        if v.get("abi").and_then(|a| a.as_i64()) != Some(i64::from(abi)) {
            return Err(PolicyError::Abi(format!(
                "flocker_info says abi {}, flocker_abi_version says {abi}",
                v.get("abi")
                    .map_or("nothing".to_string(), |a| a.to_string())
            )));
        }
        Ok(PolicyInfo {
            name,
            version,
            abi,
            digest: self.inner.digest.clone(),
            raw,
        })
    }

    /// Runs [`validate`]'s checks on this compiled module.
    pub fn validate(&self) -> Result<PolicyInfo, PolicyError> {
        let info = self.info()?;
        samples::check(self)?;
        Ok(info)
    }
}

/// Compiles `bytes` and checks them before they take traffic: no imports,
/// the ABI's exports, a supported ABI version, well-formed policy info, and
/// every built-in sample input ([`samples::SAMPLES`]) decided without error,
/// one-shot and resident-state giving the same bytes.
pub fn validate(runtime: &Runtime, bytes: &[u8]) -> Result<PolicyInfo, PolicyError> {
    runtime.load(bytes)?.validate()
}

/// The digest modules are known by: sha256 of their bytes, lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Checks that `bytes` read from a store are the module stored as
/// `stored`: a module is known, listed and rolled back by its digest, so
/// bytes that hash to another would run under a name that is not theirs
/// (and a follower comparing digests would swap them in on every poll).
pub fn check_digest(stored: &str, bytes: &[u8]) -> Result<(), PolicyError> {
    let actual = digest(bytes);
    if actual == stored {
        Ok(())
    } else {
        Err(PolicyError::Digest {
            stored: stored.to_string(),
            actual,
        })
    }
}

/// [`validate`], returning the compiled module with its info.
pub fn load_validated(
    runtime: &Runtime,
    bytes: &[u8],
) -> Result<(Policy, PolicyInfo), PolicyError> {
    let policy = runtime.load(bytes)?;
    let info = policy.validate()?;
    Ok((policy, info))
}

#[cfg(test)]
mod digest_tests {
    #[test]
    fn a_digest_is_the_sha256_sha256sum_prints() {
        assert_eq!(
            super::digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(super::check_digest(&super::digest(b"x"), b"y").is_err());
    }
}
