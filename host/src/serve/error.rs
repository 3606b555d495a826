//! [`HostError`]: a failure of the host, rendered as SPEC-shaped JSON with
//! its status, once for every handler.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::timing::Outcome;
use crate::app::{INVALID_BODY, INVALID_QUERY, OVERLOADED};
use crate::net::BodyError;
use crate::place::PlaceError;

/// What the service answers when it cannot decide.
#[derive(Debug, thiserror::Error)]
pub(super) enum HostError {
    /// The body is not JSON (400).
    #[error("{0}")]
    InvalidBody(flocker_core::DecisionError),
    /// A query parameter the service does not take (400).
    #[error("{0}")]
    InvalidQuery(String),
    /// The body was too large (413), too slow (408) or broken (400).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Every decision slot is taken (503, with `Retry-After`).
    #[error("too many decisions are running; try again")]
    Overloaded,
    /// The store, the engine or the save failed (503, 500, 409).
    #[error(transparent)]
    Place(#[from] PlaceError),
}

impl HostError {
    fn kind(&self) -> &'static str {
        match self {
            HostError::InvalidBody(_) | HostError::Body(_) => INVALID_BODY,
            HostError::InvalidQuery(_) => INVALID_QUERY,
            HostError::Overloaded => OVERLOADED,
            HostError::Place(e) => e.kind(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            HostError::InvalidBody(_)
            | HostError::InvalidQuery(_)
            | HostError::Body(BodyError::Broken(_)) => StatusCode::BAD_REQUEST,
            HostError::Body(BodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            HostError::Body(BodyError::TimedOut { .. }) => StatusCode::REQUEST_TIMEOUT,
            HostError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            HostError::Place(PlaceError::Store(_)) => StatusCode::SERVICE_UNAVAILABLE,
            HostError::Place(PlaceError::Contention { .. }) => StatusCode::CONFLICT,
            HostError::Place(PlaceError::Engine(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for HostError {
    fn into_response(self) -> Response {
        let message = match &self {
            HostError::Place(e) => {
                eprintln!("flocker serve: {}: {e}", e.kind());
                e.public_message()
            }
            other => other.to_string(),
        };
        let body = json!({"error": {"kind": self.kind(), "message": message}});
        let mut resp = json_response(self.status(), body.to_string());
        resp.extensions_mut()
            .insert(Outcome::Error(self.kind().into()));
        if matches!(self, HostError::Overloaded) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
