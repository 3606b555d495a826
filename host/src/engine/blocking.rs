//! [`decide_blocking`]: a decision off the async runtime's workers.
//!
//! A decision is CPU work (the native rules, or a module call bounded only
//! by its deadline) and may wait on the resident state's mutex behind
//! another caller's decision or rebuild. On a tokio worker either one
//! stalls every task that worker runs: the accept loop, `/healthz`, the
//! etcd watch. So the services run each decision on tokio's blocking pool.
//! How many run at once is bounded by the callers, not here: `serve`'s and
//! the proxy's decision slots (`--max-decisions`, [`crate::net::Gate`]),
//! each holding at most one decision at a time.

use std::sync::Arc;

use flocker_core::Cluster;
use serde_json::Value;

use super::{Decided, Engine, EngineError};

/// `engine.decide(cluster, request)` on tokio's blocking pool. A decision
/// that panicked is [`EngineError::Task`], not a dead worker.
pub async fn decide_blocking<E: Engine + ?Sized + 'static>(
    engine: &Arc<E>,
    cluster: &Arc<Cluster>,
    request: &Value,
) -> Result<Decided, EngineError> {
    let (engine, cluster, request) = (engine.clone(), cluster.clone(), request.clone());
    tokio::task::spawn_blocking(move || engine.decide(&cluster, &request))
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
}
