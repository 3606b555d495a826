//! What a save may hold, the same on both stores: a request one store
//! cannot hold is `invalid_request` on both, never `store_unavailable` on
//! one and a decision on the other.
//!
//! The limits are etcd's (the stricter store): a key segment cannot hold
//! `/`, one transaction holds at most [`super::etcd::MAX_TXN_OPS`]
//! operations (etcd's `--max-txn-ops` default), and one request at most
//! 1.5 MiB (etcd's `--max-request-bytes` default), of which
//! [`MAX_SAVE_BYTES`] is left for the route and its answer.

use flocker_core::Route;

use super::{named_volumes, Answer, StoreError};

/// Operations in one save, at most: etcd's default `--max-txn-ops`
/// ([`super::etcd::MAX_TXN_OPS`]), which the file store keeps too.
pub const MAX_SAVE_OPS: usize = 128;

/// The route record and the answer saved with it, in bytes, at most: the
/// rest of etcd's 1.5 MiB request limit is keys, compares and framing.
pub const MAX_SAVE_BYTES: usize = 1024 * 1024;

/// Why a save cannot be stored: the request path it comes from and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstorable {
    pub path: String,
    pub reason: String,
}

impl From<Unstorable> for StoreError {
    fn from(u: Unstorable) -> StoreError {
        StoreError::Unstorable {
            path: u.path,
            reason: u.reason,
        }
    }
}

fn segment(path: &str, what: &str, value: &str) -> Result<(), Unstorable> {
    if value.is_empty() || value.contains('/') {
        return Err(Unstorable {
            path: path.into(),
            reason: format!(
                "{what} {value:?} cannot be stored: it must be non-empty and hold no '/'"
            ),
        });
    }
    Ok(())
}

/// Checks that `route` (and `answer`) fit one save of a store that allows
/// `max_ops` operations per transaction.
pub fn check(route: &Route, answer: Option<&Answer>, max_ops: usize) -> Result<(), Unstorable> {
    segment("name", "the container name", &route.name)?;
    segment("route.server", "the server hostname", &route.server)?;
    let volumes = named_volumes(route);
    for v in &volumes {
        segment("container.HostConfig.Binds", "the volume name", v)?;
    }
    let mut ports = route.host_ports.clone();
    ports.sort_unstable();
    ports.dedup();
    // The name, each volume and each port claim, the answer.
    let ops = 2 + volumes.len() + ports.len();
    if ops > max_ops {
        return Err(Unstorable {
            path: "container".into(),
            reason: format!(
                "{} host ports and {} named volumes need {ops} operations in one save; \
                 the store allows {max_ops} (etcd's --max-txn-ops)",
                ports.len(),
                volumes.len()
            ),
        });
    }
    let bytes = route.to_value().to_string().len() + answer.map_or(0, |a| a.to_text().len());
    if bytes > MAX_SAVE_BYTES {
        return Err(Unstorable {
            path: "container".into(),
            reason: format!(
                "the route and its answer take {bytes} bytes; one save holds at most {MAX_SAVE_BYTES}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flocker_core::fixtures::route;

    #[test]
    fn slashes_too_many_claims_and_too_many_bytes_are_unstorable() {
        assert!(check(&route("a.1", "n1", &[20000], &["pg"]), None, 128).is_ok());
        let e = check(&route("a.1", "n1", &[], &["a/b:/d"]), None, 128).unwrap_err();
        assert_eq!(e.path, "container.HostConfig.Binds");
        let ports: Vec<u16> = (20000..20127).collect();
        let e = check(&route("a.1", "n1", &ports, &[]), None, 128).unwrap_err();
        assert!(e.reason.contains("129 operations"), "{e:?}");
        let mut big = route("a.1", "n1", &[], &[]);
        big.env = vec![format!("X={}", "x".repeat(MAX_SAVE_BYTES))];
        assert!(check(&big, None, 128).unwrap_err().reason.contains("bytes"));
    }
}
