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

use crate::engine::{Decided, Engine, EngineError};
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
    pub fn new(
        inner: Arc<dyn Engine>,
        policy: Option<Arc<PolicyHost>>,
        down: Arc<DownSet>,
    ) -> Self {
        DownAware {
            inner,
            policy,
            down,
        }
    }
}

impl Engine for DownAware {
    fn decide(&self, cluster: &Arc<Cluster>, request: &Value) -> Result<Decided, EngineError> {
        let down = self.down.get();
        match &self.policy {
            // The module's resident state holds the overlay it was last
            // given, so it is called with the set even when it is empty.
            Some(host) => {
                let bytes = serde_json::to_vec(request).map_err(EngineError::Encode)?;
                let out = host.decide_resident_with_down(cluster, &bytes, &down)?;
                Decided::from_output(&out)
            }
            None if down.is_empty() => self.inner.decide(cluster, request),
            None => Ok(Decided::from_result(
                &cluster.decide_with_down(request, &down),
            )),
        }
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::{policy_host, Native, Wasm};

    fn cluster() -> Arc<Cluster> {
        Arc::new(flocker_core::fixtures::cluster(&["s1", "s2"]))
    }

    fn chosen(e: &DownAware, c: &Arc<Cluster>) -> String {
        let d = e
            .decide(c, &json!({"name": "web.1", "container": {"Image": "w"}}))
            .unwrap();
        d.output["server"]["hostname"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn a_down_server_is_passed_over_and_taken_again_when_it_is_back() {
        let host = Arc::new(policy_host(None).unwrap());
        type Pair = (Arc<dyn Engine>, Option<Arc<PolicyHost>>);
        let engines: Vec<Pair> = vec![
            (Arc::new(Native), None),
            (Arc::new(Wasm { host: host.clone() }), Some(host)),
        ];
        let c = cluster();
        for (inner, policy) in engines {
            let down = Arc::new(DownSet::default());
            let e = DownAware::new(inner, policy, down.clone());
            assert_eq!(chosen(&e, &c), "s1");
            down.set(BTreeSet::from(["s1".to_string()]));
            assert_eq!(chosen(&e, &c), "s2");
            down.set(BTreeSet::new());
            assert_eq!(chosen(&e, &c), "s1", "the overlay is taken back");
            down.set(BTreeSet::from(["s1".to_string(), "s2".to_string()]));
            let d = e
                .decide(&c, &json!({"name": "web.1", "container": {"Image": "w"}}))
                .unwrap();
            assert_eq!(d.error_kind.as_deref(), Some("no_eligible_server"));
        }
    }
}
