//! The policy module, in one binary:
//!
//! - `abi`: the raw ABI called directly through wasmtime.
//! - `differential`: native core vs the module, byte for byte.
//! - `limits`: hostile modules contained per call or refused.
//! - `liars`: modules whose decisions lie are refused before a save.
//! - `modules`: the hostile and lying modules, written in WAT.

mod abi;
mod differential;
mod liars;
mod limits;
mod modules;
