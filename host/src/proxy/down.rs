//! Deciding with the servers that stopped answering as `down` (SPEC section
//! 3, Routing 3), without touching their stored records: an [`Engine`]
//! layer over the app's engine that passes the proxy's current down set to
//! the native engine ([`flocker_core::Cluster::decide_with_down`]) or to
//! the policy module's resident state
//! ([`crate::policy::PolicyHost::decide_resident_with_down`]).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use flocker_core::Cluster;
use serde_json::Value;

use crate::place::{Decided, Engine, PlaceError};
use crate::policy::PolicyHost;

/// The hostnames decided on as down now.
#[derive(Default)]
pub struct DownSet(RwLock<Arc<BTreeSet<String>>>);

impl DownSet {
    pub fn get(&self) -> Arc<BTreeSet<String>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, down: BTreeSet<String>) {
        let mut g = self.0.write().unwrap_or_else(|p| p.into_inner());
        if **g != down {
            *g = Arc::new(down);
        }
    }
}

/// The app's engine, deciding with the down set.
pub struct DownAware {
    inner: Arc<dyn Engine>,
    policy: Option<Arc<PolicyHost>>,
    down: Arc<DownSet>,
}

impl DownAware {
    pub fn new(inner: Arc<dyn Engine>, policy: Option<Arc<PolicyHost>>, down: Arc<DownSet>) -> Self {
        DownAware {
            inner,
            policy,
            down,
        }
    }
}

impl Engine for DownAware {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, PlaceError> {
        let down = self.down.get();
        match &self.policy {
            // The module's resident state holds the overlay it was last
            // given, so it is called with the set even when it is empty.
            Some(host) => {
                let bytes = serde_json::to_vec(request)
                    .map_err(|e| PlaceError::Engine(format!("cannot encode the request: {e}")))?;
                let out = host
                    .decide_resident_with_down(cluster, &bytes, &down)
                    .map_err(|e| PlaceError::Engine(e.to_string()))?;
                Decided::from_output(&out)
            }
            None if down.is_empty() => self.inner.decide(cluster, request),
            // TODO(merge core-down-hostports): cluster.decide_with_down(request, &down)
            None => Ok(Decided::from_result(&cluster.decide(request))),
        }
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
