//! [`Wasm`]: decisions on the resident state of the active module of a
//! hot-swappable [`PolicyHost`].

use std::sync::Arc;

use flocker_core::Cluster;
use serde_json::Value;

use super::{Decided, Engine, EngineError};
use crate::policy::{Limits, PolicyError, PolicyHost, Runtime, DEFAULT_MODULE};

/// Decides with the active module of a [`PolicyHost`].
#[derive(Clone)]
pub struct Wasm {
    pub host: Arc<PolicyHost>,
}

impl Engine for Wasm {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, EngineError> {
        let bytes = serde_json::to_vec(request).map_err(EngineError::Encode)?;
        let out = self.host.decide_resident(cluster, &bytes)?;
        Decided::from_output(&out)
    }

    fn describe(&self) -> String {
        format!("wasm {}", self.host.info().digest)
    }
}

/// A policy host running `module`, or the embedded default module.
pub fn policy_host(module: Option<&[u8]>) -> Result<PolicyHost, PolicyError> {
    policy_host_with(module, Limits::default())
}

/// [`policy_host`] with limits other than the defaults.
pub fn policy_host_with(module: Option<&[u8]>, limits: Limits) -> Result<PolicyHost, PolicyError> {
    PolicyHost::new(Runtime::new(limits)?, module.unwrap_or(DEFAULT_MODULE))
}
