//! [`follow`]: a running policy host kept on the store's active module.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::push;
use crate::policy::{check_digest, digest, PolicyHost};
use crate::store::Store;

/// What to follow besides the store.
#[derive(Debug, Clone)]
pub struct Follow {
    /// A module file to watch: when its content changes it is validated,
    /// pushed (history kept) and so swapped in.
    pub file: Option<PathBuf>,
    /// How often to look.
    pub every: Duration,
}

/// Told of each swap the follower tries.
pub trait FollowEvents: Send + Sync + 'static {
    /// A module was swapped in (`true`), or refused and the old one kept.
    fn swapped(&self, host: &PolicyHost, ok: bool);
}

/// Every `follow.every`, pushes the watched file when it changed, then
/// compares the store's active digest with the running one and swaps a new
/// one in (its bytes checked against that digest and validated first;
/// in-flight decisions finish on the old module, and a module whose bytes
/// do not match or that fails validation leaves the old one serving and is
/// not fetched again until the active digest changes). Runs until the task
/// is dropped.
pub async fn follow<S: Store + 'static>(
    store: Arc<S>,
    host: Arc<PolicyHost>,
    follow: Follow,
    events: impl FollowEvents,
) {
    let mut failed_digest: Option<String> = None;
    let mut file_digest: Option<String> = None;
    // (modified time, length) of the watched file when last read: the file
    // is read and hashed only when one of them changes.
    let mut file_stamp = None;
    loop {
        tokio::time::sleep(follow.every).await;
        if let Some(path) = &follow.file {
            let stamp = std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().ok(), m.len()));
            let changed = stamp.is_some() && stamp != file_stamp;
            file_stamp = stamp;
            let read = changed.then(|| {
                // Said once per change of the file, so a bad file is not
                // a log line every poll.
                super::read_module(path)
                    .map_err(|e| eprintln!("flocker: --policy-file: {e}"))
                    .ok()
            });
            if let Some(bytes) = read.flatten() {
                let d = digest(&bytes);
                if file_digest.as_deref() != Some(d.as_str()) && d != host.info().digest {
                    file_digest = Some(d);
                    match push(&*store, host.runtime(), bytes).await {
                        Ok(_) => {}
                        Err(super::PushError::Refused(e)) => {
                            events.swapped(&host, false);
                            eprintln!(
                                "flocker: {} refused, keeping {}: {e}",
                                path.display(),
                                host.info().digest
                            );
                        }
                        Err(e) => eprintln!("flocker: cannot push {}: {e}", path.display()),
                    }
                } else {
                    file_digest = Some(d);
                }
            }
        }
        match store.policy_active_digest().await {
            Ok(Some(d))
                if d != host.info().digest && failed_digest.as_deref() != Some(d.as_str()) => {}
            Ok(_) => continue,
            Err(e) => {
                eprintln!("flocker: cannot read the active policy: {e}");
                continue;
            }
        }
        let (digest, bytes) = match store.policy_active().await {
            Ok(Some(active)) => active,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("flocker: cannot read the active policy: {e}");
                continue;
            }
        };
        if let Err(e) = check_digest(&digest, &bytes) {
            // Reported once: the digest is not fetched again until the
            // store's active digest changes.
            events.swapped(&host, false);
            eprintln!(
                "flocker: policy refused, keeping {}: {e}",
                host.info().digest
            );
            failed_digest = Some(digest);
            continue;
        }
        let h = host.clone();
        let swapped = tokio::task::spawn_blocking(move || h.swap(&bytes)).await;
        match swapped {
            Ok(Ok(s)) => {
                failed_digest = None;
                events.swapped(&host, true);
                eprintln!(
                    "flocker: policy {} swapped in (was {})",
                    s.current.digest, s.previous.digest
                );
            }
            Ok(Err(e)) => {
                events.swapped(&host, false);
                failed_digest = Some(digest.clone());
                eprintln!(
                    "flocker: policy {digest} refused, keeping {}: {e}",
                    host.info().digest
                );
            }
            Err(e) => eprintln!("flocker: swap task failed: {e}"),
        }
    }
}
