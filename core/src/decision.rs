//! The decision (SPEC section 4) and the order in which the rules make it.

use serde_json::{json, Map, Value};

use crate::cluster::Cluster;
use crate::error::DecisionError;
use crate::explain::Explain;
use crate::route::Route;

/// The chosen server, as a proxy needs it to forward the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRef {
    pub hostname: String,
    pub address: String,
    pub docker: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub server: ServerRef,
    /// The rewritten create body.
    pub container: Map<String, Value>,
    pub links_env: Vec<String>,
    /// What the host saves; `None` for an unnamed container.
    pub route: Option<Route>,
    pub explain: Explain,
}

impl Decision {
    pub fn to_value(&self) -> Value {
        json!({
            "server": {
                "hostname": self.server.hostname,
                "address": self.server.address,
                "docker": self.server.docker,
            },
            "container": Value::Object(self.container.clone()),
            "links_env": self.links_env,
            "route": self.route.as_ref().map_or(Value::Null, Route::to_value),
            "explain": self.explain.to_value(),
        })
    }
}

impl Cluster {
    /// Decides `{name, container, image}` against this state.
    pub fn decide(&self, request: &Value) -> Result<Decision, DecisionError> {
        let _ = request;
        Err(DecisionError::invalid("", "not implemented yet"))
    }

    /// [`Cluster::decide`] on bytes, rendered as SPEC output JSON.
    pub fn decide_json(&self, request: &[u8]) -> String {
        crate::render(&crate::parse(request).and_then(|v| self.decide(&v)))
    }
}
