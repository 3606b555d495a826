//! The error kinds of SPEC section 4, one variant each.
//!
//! Every variant carries what a person needs to fix the input: the JSON path
//! of the offending field, the name or server involved, or the explanation of
//! why no server was left.

use serde_json::{json, Map, Value};

use crate::explain::Explain;

/// One pin: a rule that sends the container to a server (SPEC 3, Mapping 2-5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// What pinned it, in words: `volume pgdata`, `volumes_from data`, ...
    pub by: String,
    /// The hostname it pins to.
    pub server: String,
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.by, self.server)
    }
}

/// Why a decision could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecisionError {
    /// The input is not what SPEC section 2 describes; `path` is the JSON path
    /// of the offending field, such as `container.HostConfig.Links[1]`.
    #[error("{path}: {reason}")]
    InvalidRequest {
        /// The JSON path of the field, `""` for the input as a whole.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The container name breaks Docker's naming rule.
    #[error("name: {name:?} is not a valid container name: {reason}")]
    InvalidName {
        /// The name as given, a leading `/` included.
        name: String,
        /// Which part of the rule it breaks.
        reason: String,
    },

    /// A live route already holds this name.
    #[error("name: {name:?} is already in use by a live container on {server}")]
    NameInUse {
        /// The container name, without a leading `/`.
        name: String,
        /// The hostname the live route is on.
        server: String,
    },

    /// `VIKING_SERVER` names a server that is not in the inventory.
    #[error("{path}: VIKING_SERVER names {hostname:?}, which is not in the inventory")]
    UnknownServer {
        /// The JSON path of the `VIKING_SERVER` entry, such as
        /// `container.Env[1]`.
        path: String,
        /// The hostname it names.
        hostname: String,
    },

    /// A `volumes_from` source or network container has no live route.
    #[error("{path}: container {name:?} has no live route")]
    UnknownContainer {
        /// The JSON path of the `VolumesFrom` entry or of `NetworkMode`.
        path: String,
        /// The container name it refers to.
        name: String,
    },

    /// A link names neither a live container nor a service with live members.
    #[error(
        "{path}: link target {name:?} is neither a live container nor a service with live members"
    )]
    UnknownLink {
        /// The JSON path of the `HostConfig.Links` entry.
        path: String,
        /// The link's target name (not its alias).
        name: String,
    },

    /// The pins name more than one server.
    #[error("pins name more than one server: {}", join_pins(.pins))]
    ConflictingPins {
        /// Every pin, `VIKING_SERVER` first when set, each with its server.
        pins: Vec<Pin>,
    },

    /// A pin sends the container to a server that is not in the inventory,
    /// or (`down`) whose Docker daemon does not answer.
    #[error(
        "{pin}, but {} {}; the data is there, so the container cannot move",
        .pin.server,
        if *.down { "is down" } else { "is not in the inventory" }
    )]
    PinnedServerUnavailable {
        /// The pin that cannot be followed.
        pin: Pin,
        /// True when the server is in the inventory but down; false when
        /// it is not in the inventory.
        down: bool,
    },

    /// Every server was removed by a routing rule.
    #[error("no eligible server: {}", .explain.summary)]
    NoEligibleServer {
        /// Each server's rejection reason and the summary.
        explain: Explain,
    },
}

fn join_pins(pins: &[Pin]) -> String {
    pins.iter()
        .map(Pin::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl DecisionError {
    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        DecisionError::InvalidRequest {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Every [`DecisionError::kind`], in SPEC order: a closed set that
    /// hosts label their metrics with.
    pub const KINDS: &'static [&'static str] = &[
        "invalid_request",
        "invalid_name",
        "name_in_use",
        "unknown_server",
        "unknown_container",
        "unknown_link",
        "conflicting_pins",
        "pinned_server_unavailable",
        "no_eligible_server",
    ];

    /// The SPEC `kind` string of this error.
    pub fn kind(&self) -> &'static str {
        match self {
            DecisionError::InvalidRequest { .. } => "invalid_request",
            DecisionError::InvalidName { .. } => "invalid_name",
            DecisionError::NameInUse { .. } => "name_in_use",
            DecisionError::UnknownServer { .. } => "unknown_server",
            DecisionError::UnknownContainer { .. } => "unknown_container",
            DecisionError::UnknownLink { .. } => "unknown_link",
            DecisionError::ConflictingPins { .. } => "conflicting_pins",
            DecisionError::PinnedServerUnavailable { .. } => "pinned_server_unavailable",
            DecisionError::NoEligibleServer { .. } => "no_eligible_server",
        }
    }

    /// The routing explanation, when routing got far enough to have one.
    pub fn explain(&self) -> Option<&Explain> {
        match self {
            DecisionError::NoEligibleServer { explain } => Some(explain),
            _ => None,
        }
    }

    /// `{"error": {"kind", "message", "explain"?, "pins"?}}` as SPEC section 4 shows.
    pub fn to_value(&self) -> Value {
        let mut error = Map::new();
        error.insert("kind".into(), json!(self.kind()));
        error.insert("message".into(), json!(self.to_string()));
        if let Some(explain) = self.explain() {
            error.insert("explain".into(), explain.to_value());
        }
        match self {
            DecisionError::ConflictingPins { pins } => {
                error.insert("pins".into(), pins_value(pins));
            }
            DecisionError::PinnedServerUnavailable { pin, .. } => {
                error.insert("pins".into(), pins_value(std::slice::from_ref(pin)));
            }
            _ => {}
        }
        json!({ "error": Value::Object(error) })
    }
}

fn pins_value(pins: &[Pin]) -> Value {
    Value::Array(
        pins.iter()
            .map(|p| json!({ "pin": p.by, "server": p.server }))
            .collect(),
    )
}

#[cfg(test)]
mod kinds {
    use super::*;

    /// `KINDS` is the set `kind()` answers: one of each variant, in order.
    #[test]
    fn kinds_lists_every_variant_in_order() {
        let s = String::new;
        let pin = || Pin {
            by: s(),
            server: s(),
        };
        let every = [
            DecisionError::InvalidRequest {
                path: s(),
                reason: s(),
            },
            DecisionError::InvalidName {
                name: s(),
                reason: s(),
            },
            DecisionError::NameInUse {
                name: s(),
                server: s(),
            },
            DecisionError::UnknownServer {
                path: s(),
                hostname: s(),
            },
            DecisionError::UnknownContainer {
                path: s(),
                name: s(),
            },
            DecisionError::UnknownLink {
                path: s(),
                name: s(),
            },
            DecisionError::ConflictingPins { pins: vec![pin()] },
            DecisionError::PinnedServerUnavailable {
                pin: pin(),
                down: true,
            },
            DecisionError::NoEligibleServer {
                explain: Explain::new(0, Vec::new()),
            },
        ];
        let kinds: Vec<&str> = every.iter().map(DecisionError::kind).collect();
        assert_eq!(kinds, DecisionError::KINDS);
    }
}
