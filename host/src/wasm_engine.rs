//! The policy module as a [`crate::place::Engine`]: decisions on the
//! resident state of the active module of a hot-swappable [`PolicyHost`].

use std::sync::Arc;

use flocker_core::Cluster;
use serde_json::Value;

use crate::place::{Decided, Engine, PlaceError};
use crate::policy::{Limits, PolicyHost, Runtime, DEFAULT_MODULE};
use crate::store::Store;

/// Decides with the active module of a [`PolicyHost`].
#[derive(Clone)]
pub struct Wasm {
    pub host: Arc<PolicyHost>,
}

impl Engine for Wasm {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, PlaceError> {
        let bytes = serde_json::to_vec(request)
            .map_err(|e| PlaceError::Engine(format!("cannot encode the request: {e}")))?;
        let out = self
            .host
            .decide_resident(cluster, &bytes)
            .map_err(|e| PlaceError::Engine(e.to_string()))?;
        Decided::from_output(&out)
    }

    fn describe(&self) -> String {
        format!("wasm {}", self.host.info().digest)
    }
}

/// A policy host running `module`, or the embedded default module.
pub fn policy_host(module: Option<&[u8]>) -> Result<PolicyHost, String> {
    policy_host_with(module, Limits::default())
}

/// [`policy_host`] with limits other than the defaults.
pub fn policy_host_with(module: Option<&[u8]>, limits: Limits) -> Result<PolicyHost, String> {
    let runtime = Runtime::new(limits).map_err(|e| e.to_string())?;
    PolicyHost::new(runtime, module.unwrap_or(DEFAULT_MODULE)).map_err(|e| e.to_string())
}

/// A policy host running the store's active module, or the embedded
/// default when none was pushed. The store's module was validated when it
/// was pushed; it is validated again here, and a failure is an error.
pub async fn policy_host_for<S: Store>(store: &S) -> Result<PolicyHost, String> {
    match store.policy_active().await.map_err(|e| e.to_string())? {
        Some((digest, bytes)) => {
            policy_host(Some(&bytes)).map_err(|e| format!("active policy {digest}: {e}"))
        }
        None => policy_host(None),
    }
}
