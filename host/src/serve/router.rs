//! [`router`]: the service's routes over an [`App`].

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::handlers::{healthz, metrics, v1_decide, v1_place};
use super::timing::timing;
use crate::app::App;

/// The routes, with the timing middleware and the body limit; serve it
/// with `axum::serve`, or call it in-process with `tower::ServiceExt::oneshot`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/place", post(v1_place))
        .route("/v1/decide", post(v1_decide))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(app.clone(), timing))
        // Full decision inputs carry the whole cluster: accept what the
        // engine accepts rather than axum's 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::max(
            flocker_core::MAX_INPUT_BYTES,
        ))
        .with_state(app)
}
