//! [`rollback_target`]: the digest a rollback makes active.

use crate::store::PolicyRecord;

/// Why there is nothing to roll back to.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("no pushed module has digest {0}")]
    NoSuchDigest(String),
    #[error("digest prefix {0} is ambiguous")]
    Ambiguous(String),
    #[error("no module was pushed; nothing to roll back")]
    NothingPushed,
    #[error("no module was active before {0}")]
    NoneBefore(String),
}

/// `prefix` names one pushed digest (a unique prefix of it); without one,
/// the module active before the current one: the last different digest
/// before the current one's last push.
pub fn rollback_target(
    history: &[PolicyRecord],
    active: Option<&str>,
    prefix: Option<&str>,
) -> Result<String, RollbackError> {
    if let Some(prefix) = prefix {
        let mut found: Vec<&str> = history
            .iter()
            .map(|r| r.digest.as_str())
            .filter(|d| d.starts_with(prefix))
            .collect();
        found.sort_unstable();
        found.dedup();
        return match found.as_slice() {
            [one] => Ok(one.to_string()),
            [] => Err(RollbackError::NoSuchDigest(prefix.into())),
            _ => Err(RollbackError::Ambiguous(prefix.into())),
        };
    }
    let active = active.ok_or(RollbackError::NothingPushed)?;
    let last = history.iter().rposition(|r| r.digest == active);
    last.and_then(|i| history[..i].iter().rev().find(|r| r.digest != active))
        .map(|r| r.digest.clone())
        .ok_or_else(|| RollbackError::NoneBefore(active.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(digests: &[&str]) -> Vec<PolicyRecord> {
        digests
            .iter()
            .map(|d| PolicyRecord {
                digest: d.to_string(),
                pushed_at: 0,
                info: String::new(),
            })
            .collect()
    }

    #[test]
    fn the_module_before_the_current_one_or_a_named_prefix() {
        let h = history(&["aa1", "bb2", "aa1", "cc3"]);
        assert_eq!(rollback_target(&h, Some("cc3"), None).unwrap(), "aa1");
        // After a rollback to aa1 the one before aa1's last push is bb2.
        assert_eq!(rollback_target(&h, Some("aa1"), None).unwrap(), "bb2");
        assert_eq!(rollback_target(&h, Some("cc3"), Some("bb")).unwrap(), "bb2");
        assert_eq!(
            rollback_target(&h, Some("cc3"), Some("zz")),
            Err(RollbackError::NoSuchDigest("zz".into()))
        );
        let two = history(&["ab1", "ab2"]);
        assert_eq!(
            rollback_target(&two, Some("ab2"), Some("ab")),
            Err(RollbackError::Ambiguous("ab".into()))
        );
        assert_eq!(
            rollback_target(&[], None, None),
            Err(RollbackError::NothingPushed)
        );
        assert_eq!(
            rollback_target(&history(&["aa1"]), Some("aa1"), None),
            Err(RollbackError::NoneBefore("aa1".into()))
        );
    }
}
