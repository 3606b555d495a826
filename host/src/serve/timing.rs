//! The one place decision endpoints are counted and timed: handlers mark
//! their response with an [`Outcome`], this middleware observes it.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::App;

/// How a decision endpoint's call came out, for the metrics.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Decision,
    Error(String),
}

/// Times the call and counts its [`Outcome`] under the endpoint's name
/// (`place`, `decide`); other paths pass through uncounted.
pub(super) async fn timing(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let endpoint = match request.uri().path() {
        "/v1/place" => "place",
        "/v1/decide" => "decide",
        _ => return next.run(request).await,
    };
    let start = Instant::now();
    let response = next.run(request).await;
    let kind = match response.extensions().get::<Outcome>() {
        Some(Outcome::Decision) => None,
        Some(Outcome::Error(kind)) => Some(kind.as_str()),
        // A response no handler marked (axum's own 405 or 413).
        None => Some("invalid_body"),
    };
    app.metrics.observe(endpoint, kind, start.elapsed());
    response
}
