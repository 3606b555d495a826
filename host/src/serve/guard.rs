//! The decision endpoints' guard: the body is read whole (within the size
//! cap and the body timeout) before anything parses it, then a decision
//! slot is taken or the call is refused at once.
//!
//! The body comes first so a slow sender holds a connection slot, never a
//! decision slot.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::HostError;
use crate::net::{limits::declared_length, read_body, Gate, Limits};

/// What the guard needs; cloned into the middleware.
#[derive(Debug, Clone)]
pub(super) struct Guard {
    pub limits: Limits,
    pub gate: Gate,
}

impl Guard {
    pub fn new(limits: &Limits) -> Guard {
        Guard {
            limits: limits.clone(),
            gate: Gate::new(limits.max_decisions),
        }
    }
}

pub(super) async fn guard(State(g): State<Guard>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = declared_length(&parts.headers);
    let bytes = match read_body(body, declared, g.limits.max_body, g.limits.body_timeout).await {
        Ok(b) => b,
        Err(e) => return HostError::from(e).into_response(),
    };
    let Some(_pass) = g.gate.try_enter() else {
        return HostError::Overloaded.into_response();
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
