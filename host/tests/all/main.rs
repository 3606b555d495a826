//! The host's integration tests in one binary (one link, one process
//! start; wasmtime's `tests/all` layout). Each module is one area:
//!
//! - `cli`: the `flocker` commands and their exit codes.
//! - `bad_input`: hostile and malformed inputs get clear errors.
//! - `crash`: a SIGKILL never leaves a half-written save.
//! - `place_store`: places over the embedded store, by several processes.
//! - `serve`: the real `flocker serve` binary over HTTP.
//! - `proxy_protocol`: `flocker proxy` in process against a fake daemon.
//! - `demo`: the store demo script end to end.
//! - `policy_trust`: modules that lie, corrupt stored modules, rollback races.
//! - `growth`: pruning removed routes, releasing volume claims, bench's guard.
//! - `bad_day`: an unreadable record in the file store.

mod common;

mod bad_day;
mod bad_input;
mod cli;
mod crash;
mod demo;
mod growth;
mod place_store;
mod policy_trust;
mod proxy_protocol;
mod serve;
mod transport;
