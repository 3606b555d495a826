//! [`EngineError`]: the engine failed, as opposed to deciding an error.

use crate::policy::PolicyError;
use crate::store::StoreError;

/// Why an engine gave no decision at all. A decision that is an
/// `{"error": ...}` is not one of these: it is a [`super::Decided`].
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The policy module trapped, ran out of time or memory, or was refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The store's active module does not load.
    #[error("active policy {digest}: {source}")]
    ActiveModule {
        digest: String,
        #[source]
        source: PolicyError,
    },
    /// The active module could not be read from the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The module answered, but not with SPEC output.
    #[error("the policy returned {what}")]
    BadOutput { what: String },
    /// The request could not be written for the module.
    #[error("cannot encode the request: {0}")]
    Encode(#[source] serde_json::Error),
    /// The thread deciding stopped without an answer (it panicked).
    #[error("the decision task failed: {0}")]
    Task(String),
}
