//! [`router`]: the service's routes over an [`App`].

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::guard::{guard, Guard};
use super::handlers::{healthz, metrics, v1_decide, v1_place};
use super::timing::timing;
use crate::app::App;
use crate::net::Limits;

/// The routes, with the timing middleware and the decision guard (body
/// cap and timeout, decisions at once); serve it with
/// [`crate::net::Server`], or call it in-process with
/// `tower::ServiceExt::oneshot`.
pub fn router(app: Arc<App>, limits: &Limits) -> Router {
    routes(app, Guard::new(limits))
}

/// The routes with a given guard (a test holds its gate's passes).
pub(super) fn routes(app: Arc<App>, guarded: Guard) -> Router {
    let decisions = Router::new()
        .route("/v1/place", post(v1_place))
        .route("/v1/decide", post(v1_decide))
        .layer(axum::middleware::from_fn_with_state(guarded, guard))
        // The guard has read the body within its own cap already.
        .layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .merge(decisions)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(app.clone(), timing))
        .with_state(app)
}
