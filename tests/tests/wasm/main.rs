//! The policy module, in one binary:
//!
//! - `abi`: the raw ABI called directly through wasmtime.
//! - `differential`: native core vs the module, byte for byte.
//! - `limits`: hostile modules contained per call or refused.

mod abi;
mod differential;
mod limits;
