//! Deciding: the [`Engine`] trait every caller decides through, its answer
//! [`Decided`], and the two engines: [`Native`] (compiled in) and [`Wasm`]
//! (the active policy module, hot-swapped). [`open`] builds the one a
//! command or a service asked for, so that choice is made in one place.
//!
//! The engine knows the store only to read the active module when it
//! starts; saving is [`crate::place`]'s.

mod blocking;
mod decided;
mod error;
mod native;
mod open;
mod wasm;

pub use blocking::decide_blocking;
pub use decided::Decided;
pub use error::EngineError;
pub use native::Native;
pub use open::{open, EngineChoice, Opened, StoredModule};
pub use wasm::{policy_host, policy_host_with, Wasm};

use std::sync::Arc;

use flocker_core::Cluster;
use serde_json::Value;

/// Decides requests against a cluster.
pub trait Engine: Send + Sync {
    /// Decides `request` (`{name, container, image}`) against `cluster`.
    /// `Err` is a failure of the engine itself, not a decision error.
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, EngineError>;

    /// What runs the decisions: `native`, or the module digest.
    fn describe(&self) -> String;
}

impl<E: Engine + ?Sized> Engine for Arc<E> {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, EngineError> {
        (**self).decide(cluster, request)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}
