//! The flocker host: loads the policy module into wasmtime, keeps cluster
//! state in a store (embedded file or etcd), saves decisions atomically and
//! serves them to proxies.
//!
//! - [`store`]: the `Store` trait, the embedded redb store, etcd, `--store` URLs.
//! - [`place`]: decide, save atomically, re-decide on conflict.
//! - [`policy`]: the wasmtime runtime, validation and hot swap.
//! - [`cli`], [`serve`], [`mod@bench`], [`metrics`]: the `flocker` command.

pub mod app;
pub mod bench;
pub mod cli;
pub mod metrics;
pub mod place;
pub mod policy;
pub mod proxy;
pub mod serve;
pub mod store;
pub mod wasm_engine;
