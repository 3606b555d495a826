//! `KEY=value` lists as Docker keeps them in `Env`.

use std::collections::BTreeSet;

/// The key of an entry: what stands before the first `=`, or all of it.
pub(crate) fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// The value of an entry, or None for a bare `KEY`.
pub(crate) fn env_value(entry: &str) -> Option<&str> {
    entry.split_once('=').map(|(_, v)| v)
}

/// The user's env, then each image entry whose key the user did not set
/// (SPEC section 4, `route.env`).
pub(crate) fn merge_image_env(user: &[&str], image: &[&str]) -> Vec<String> {
    let keys: BTreeSet<&str> = user.iter().map(|e| env_key(e)).collect();
    user.iter()
        .copied()
        .chain(image.iter().copied().filter(|e| !keys.contains(env_key(e))))
        .map(str::to_string)
        .collect()
}

/// Entries appended after the user's: the first entry for a key wins, and a
/// key the user set is never overridden.
pub(crate) struct Appender<'a> {
    /// Keys the user set, and keys appended so far.
    taken: BTreeSet<&'a str>,
    appended: BTreeSet<String>,
    pub added: Vec<String>,
}

impl<'a> Appender<'a> {
    pub fn new(user: &[&'a str]) -> Appender<'a> {
        Appender {
            taken: user.iter().map(|e| env_key(e)).collect(),
            appended: BTreeSet::new(),
            added: Vec::new(),
        }
    }

    /// Appends `entry` unless its key is taken; returns whether it was.
    pub fn push(&mut self, entry: String) -> bool {
        let key = env_key(&entry);
        if self.taken.contains(key) || self.appended.contains(key) {
            return false;
        }
        self.appended.insert(key.to_string());
        self.added.push(entry);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_env_is_user_env_then_unset_image_env() {
        assert_eq!(
            merge_image_env(&["A=1", "PATH=/opt"], &["PATH=/bin", "B=2", "A=9"]),
            ["A=1", "PATH=/opt", "B=2"]
        );
    }

    #[test]
    fn appended_env_never_overrides_the_user_or_an_earlier_entry() {
        let mut a = Appender::new(&["SERVICE_NAME=mine", "BARE"]);
        assert!(!a.push("SERVICE_NAME=x".into()));
        assert!(!a.push("BARE=x".into()));
        assert!(a.push("X=1".into()));
        assert!(!a.push("X=2".into()));
        assert_eq!(a.added, ["X=1"]);
    }
}
