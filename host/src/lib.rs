//! The flocker host: loads the policy module into wasmtime, keeps cluster
//! state in a store (embedded file or etcd), saves decisions atomically and
//! serves them to proxies.
//!
//! Layers, each using only the ones above it in this list (checked by
//! `scripts/check-layers.py`):
//!
//! - [`metrics`], [`net`], [`store`], [`policy`]: counters; TLS, transport
//!   limits and the accept loop; the `Store` trait with the embedded redb
//!   store and etcd; the wasmtime runtime. The store knows no engine, the
//!   policy runtime no store.
//! - [`engine`]: the `Engine` trait, native or the policy module.
//! - [`rollout`]: push, follow and roll back policy modules.
//! - [`place`]: decide, save atomically, re-decide on conflict.
//! - [`app`]: store + engine + placer + follower + metrics.
//! - [`serve`], [`proxy`], [`mod@bench`]: the decision service, the Docker
//!   API proxy, the place benchmark.
//!
//! The `flocker` command line sits on top, in the binary (`src/main.rs`).

pub mod metrics;
pub mod net;
pub mod policy;
pub mod store;

pub mod engine;
pub mod rollout;

pub mod place;

pub mod app;

pub mod bench;
pub mod proxy;
pub mod serve;
