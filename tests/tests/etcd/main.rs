//! The etcd store against real etcd members on loopback, in one binary:
//!
//! - `store`: SPEC section 5 keys, atomic saves, the watch-fed cache, its
//!   resync, route removal and policy modules.
//! - `faults`: members lost mid-run.
//! - `inventory`: an `inventory add` over one transaction is whole or absent.
//! - `prune`: `routes prune`, `volumes rm` and the compaction after a prune.
//! - `race`: four real `flocker place` processes racing on one etcd.
//! - `serve`: a burst of places through one `flocker serve` with the
//!   default engine.
//! - `auth`: TLS and users: the store and the CLI with the right
//!   certificate and password, and each refusal.

mod auth;
mod faults;
mod inventory;
mod prune;
mod race;
mod serve;
mod store;
