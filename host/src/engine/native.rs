//! [`Native`]: the engine compiled into the binary.

use std::sync::Arc;

use flocker_core::Cluster;
use serde_json::Value;

use super::{Decided, Engine, EngineError};

/// The engine compiled into the binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

impl Engine for Native {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, EngineError> {
        Ok(Decided::from_result(&cluster.decide(request)))
    }

    fn describe(&self) -> String {
        "native".into()
    }
}
