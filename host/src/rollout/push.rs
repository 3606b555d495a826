//! [`push`]: a module is validated before the store takes it.

use super::check;
use crate::policy::{PolicyError, PolicyInfo, Runtime};
use crate::store::{PolicyRecord, Store, StoreError};

/// Why a push changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The module failed validation (ABI, policy info, the sample inputs).
    #[error(transparent)]
    Refused(PolicyError),
    /// The store did not take it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The validation task did not finish.
    #[error("the validation task failed: {0}")]
    Task(String),
}

/// A module that passed validation, ready to be stored.
pub struct Validated {
    bytes: Vec<u8>,
    info: PolicyInfo,
}

/// Validates `bytes` on `runtime`, then holds the module to the contract's
/// hard rules on [`check::PUSH_CASES`] generated inputs, on a blocking
/// thread: compiling a module takes milliseconds to seconds. There is no
/// way around the check: the rules are what every module must keep (a
/// module may refuse more, or prefer other servers, and still pass).
pub async fn validate(runtime: &Runtime, bytes: Vec<u8>) -> Result<Validated, PushError> {
    let rt = runtime.clone();
    tokio::task::spawn_blocking(move || {
        let (policy, info) = crate::policy::load_validated(&rt, &bytes)?;
        check::check(&policy, check::PUSH_CASES).map_err(|e| {
            PolicyError::Validation(format!("it breaks the contract on a generated input: {e}"))
        })?;
        Ok(Validated { bytes, info })
    })
    .await
    .map_err(|e| PushError::Task(e.to_string()))?
    .map_err(PushError::Refused)
}

impl Validated {
    /// What the module says it is.
    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// Stores the module as the active one, with a history record stamped
    /// with the host's clock.
    pub async fn push_to<S: Store>(self, store: &S) -> Result<PolicyInfo, StoreError> {
        let record = PolicyRecord {
            digest: self.info.digest.clone(),
            pushed_at: now(),
            info: self.info.raw.clone(),
        };
        store.policy_push(&self.bytes, record).await?;
        Ok(self.info)
    }
}

/// [`validate`], then [`Validated::push_to`].
pub async fn push<S: Store>(
    store: &S,
    runtime: &Runtime,
    bytes: Vec<u8>,
) -> Result<PolicyInfo, PushError> {
    Ok(validate(runtime, bytes).await?.push_to(store).await?)
}

/// Seconds since the epoch: the push time in the history. The only clock
/// the host reads for records.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
