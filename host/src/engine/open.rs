//! [`open`]: the engine a command or a service asked for, over a store.

use std::sync::Arc;

use super::{policy_host, Engine, EngineError, Native, Wasm};
use crate::policy::{check_digest, PolicyHost};
use crate::store::Store;

/// Which engine decides.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EngineChoice {
    /// The engine compiled into the binary.
    Native,
    /// The store's active policy module (the embedded default when none
    /// was pushed), followed and hot-swapped by a service.
    Wasm,
}

/// What to do when the store's active module no longer loads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StoredModule {
    /// Fail: a one-off command says so and stops.
    Required,
    /// Serve the embedded default and say so on stderr: a service must
    /// not stay down over a bad push.
    FallBack,
}

/// An engine, and the hot-swappable module behind it when it is one.
pub struct Opened {
    pub engine: Arc<dyn Engine>,
    pub policy: Option<Arc<PolicyHost>>,
}

/// The engine for `choice`: with `Wasm`, the store's active module (it was
/// validated when pushed and is validated again here, after its bytes are
/// checked against the digest they are stored under), or the embedded
/// default when none was pushed. The module's resident state follows the
/// store's changes from here on.
pub async fn open<S: Store>(
    choice: EngineChoice,
    store: &S,
    stored: StoredModule,
) -> Result<Opened, EngineError> {
    if choice == EngineChoice::Native {
        return Ok(Opened {
            engine: Arc::new(Native),
            policy: None,
        });
    }
    let host = match stored_host(store).await {
        Ok(h) => h,
        Err(e) if stored == StoredModule::FallBack => {
            eprintln!("flocker: {e}; serving the embedded default module");
            policy_host(None)?
        }
        Err(e) => return Err(e),
    };
    let host = Arc::new(host);
    host.follow(store.changes());
    Ok(Opened {
        engine: Arc::new(Wasm { host: host.clone() }),
        policy: Some(host),
    })
}

async fn stored_host<S: Store>(store: &S) -> Result<PolicyHost, EngineError> {
    match store.policy_active().await? {
        Some((digest, bytes)) => check_digest(&digest, &bytes)
            .and_then(|()| policy_host(Some(&bytes)))
            .map_err(|source| EngineError::ActiveModule { digest, source }),
        None => Ok(policy_host(None)?),
    }
}
