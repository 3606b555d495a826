//! What the proxy answers when it cannot pass a call on, in Docker's error
//! shape (`{"message": "..."}`, which the CLI prints as "Error response
//! from daemon: ..."). Each variant maps to one status, here and nowhere
//! else.
//!
//! No decision error is ever a 404: the CLI answers a 404 on create by
//! pulling the image and trying again, so only a missing image may say it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::net::BodyError;
use crate::place::PlaceError;

/// Why the proxy answered a call itself with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client's request is malformed (a create body that is not a JSON
    /// object, a field of the wrong type); the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// A body over its endpoint's cap.
    #[error("request body over the {cap}-byte limit for this endpoint")]
    TooLarge { cap: usize },
    /// The client did not send the body it announced in time.
    #[error("the request body was not sent within {} s", .0.as_secs_f64())]
    BodyTimedOut(std::time::Duration),
    /// Every decision slot is taken (`--max-decisions`); try again.
    #[error("flocker: too many containers are being placed at once; try again")]
    Overloaded,
    /// The engine refused the create: `kind` is the decision error's kind.
    #[error("flocker: {kind}: {message}")]
    Decision { kind: String, message: String },
    /// No server has the image (the CLI then pulls it).
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// No server has the container.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// No server has the exec instance.
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// A name or id prefix matches containers on several servers.
    #[error("{what} matches containers on several servers: {servers}")]
    Ambiguous { what: String, servers: String },
    /// A route names a server that is not in the inventory.
    #[error("server {0} is not in the inventory")]
    UnknownServer(String),
    /// The server's daemon did not accept the connection.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The daemon did not answer in time.
    #[error("the server's daemon did not answer in time")]
    BackendTimeout,
    /// The daemon's answer broke off or was not what the API says.
    #[error("bad answer from the server's daemon: {0}")]
    Backend(String),
    /// Deciding or saving failed in the host (store, module, contention).
    #[error("flocker: {0}")]
    Place(#[from] PlaceError),
    /// The call is outside what the proxy does.
    #[error("{0} is not supported by flocker proxy")]
    NotSupported(String),
}

impl ProxyError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Decision { kind, .. } => decision_status(kind),
            ProxyError::NoSuchImage(_)
            | ProxyError::NoSuchContainer(_)
            | ProxyError::NoSuchExec(_) => StatusCode::NOT_FOUND,
            ProxyError::Ambiguous { .. } => StatusCode::CONFLICT,
            ProxyError::UnknownServer(_) | ProxyError::Unreachable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Backend(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Place(PlaceError::Engine(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Place(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// The status for a decision error kind (SPEC section 4). Unknown kinds (a
/// custom module may answer any) are 400: never 404, which would make the
/// CLI pull.
pub fn decision_status(kind: &str) -> StatusCode {
    match kind {
        "name_in_use" | "conflicting_pins" => StatusCode::CONFLICT,
        "no_eligible_server" | "pinned_server_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<BodyError> for ProxyError {
    fn from(e: BodyError) -> ProxyError {
        match e {
            BodyError::TooLarge { cap } => ProxyError::TooLarge { cap },
            BodyError::TimedOut { timeout } => ProxyError::BodyTimedOut(timeout),
            BodyError::Broken(why) => {
                ProxyError::BadRequest(format!("cannot read the body: {why}"))
            }
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ProxyError::Place(e) => format!("flocker: {}", e.public_message()),
            other => other.to_string(),
        };
        let body = json!({ "message": message }).to_string();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// A `--listen` address or a server's `docker` URL that is not one this
/// proxy can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?}: expected {expected}")]
pub struct BadAddress {
    pub url: String,
    pub expected: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_decision_error_is_a_404() {
        let kinds = flocker_core::DecisionError::KINDS.iter().copied();
        for kind in kinds.chain(["made_up_by_a_module"]) {
            assert_ne!(decision_status(kind), StatusCode::NOT_FOUND, "{kind}");
        }
        assert_eq!(decision_status("unknown_link"), StatusCode::BAD_REQUEST);
        assert_eq!(decision_status("name_in_use"), StatusCode::CONFLICT);
        assert_eq!(
            decision_status("pinned_server_unavailable"),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn refusals_say_not_supported() {
        // docker/cli's untyped inspect skips errors that say "not supported".
        let e = ProxyError::NotSupported("POST /build".into());
        assert_eq!(e.status(), StatusCode::NOT_IMPLEMENTED);
        assert!(e.to_string().contains("not supported by flocker proxy"));
    }
}
