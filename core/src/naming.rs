//! SPEC 3, Naming: Docker's name rule and the `<job>.<pid>` reading of a name.

use crate::error::DecisionError;

/// A valid container name, read as `<service>.<pid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerName {
    /// The name without its leading `/`: `appserver.3453`.
    pub id: String,
    /// Everything before the last dot: `appserver`.
    pub service: String,
    /// The digits after the last dot, when they are all digits: `3453`.
    pub pid: Option<String>,
}

impl ContainerName {
    /// Applies Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+` after dropping one
    /// leading `/`.
    pub fn parse(raw: &str) -> Result<ContainerName, DecisionError> {
        let id = raw.strip_prefix('/').unwrap_or(raw);
        let invalid = |reason: &str| DecisionError::InvalidName {
            name: raw.to_string(),
            reason: reason.to_string(),
        };
        let mut bytes = id.bytes();
        match bytes.next() {
            None => return Err(invalid("it is empty")),
            Some(b) if !b.is_ascii_alphanumeric() => {
                return Err(invalid("it must start with a letter or digit"))
            }
            Some(_) => {}
        }
        if id.len() < 2 {
            return Err(invalid(
                "Docker names match [a-zA-Z0-9][a-zA-Z0-9_.-]+, at least two characters",
            ));
        }
        if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return Err(invalid(
                "only letters, digits, '_', '.' and '-' may follow the first character",
            ));
        }
        let (service, pid) = ContainerName::split(id);
        Ok(ContainerName {
            id: id.to_string(),
            service: service.to_string(),
            pid: pid.map(str::to_string),
        })
    }

    /// Splits at the last dot: `(service, numeric pid)`. A name without a dot
    /// is its own service.
    pub fn split(name: &str) -> (&str, Option<&str>) {
        match name.rsplit_once('.') {
            Some((service, pid)) if !service.is_empty() => {
                let numeric = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
                (service, numeric.then_some(pid))
            }
            _ => (name, None),
        }
    }

    /// `pid % len` computed digit by digit, so any length of pid works; a
    /// name without a numeric pid counts as pid 0.
    pub fn pid_mod(&self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        let len = len as u64;
        self.pid
            .as_deref()
            .unwrap_or("0")
            .bytes()
            .fold(0u64, |acc, b| (acc * 10 + u64::from(b - b'0')) % len) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_splits_at_the_last_dot() {
        let n = ContainerName::parse("appserver.3453").unwrap();
        assert_eq!(
            (n.id.as_str(), n.service.as_str()),
            ("appserver.3453", "appserver")
        );
        assert_eq!(n.pid.as_deref(), Some("3453"));
        let n = ContainerName::parse("/a.b.7").unwrap();
        assert_eq!(
            (n.id.as_str(), n.service.as_str(), n.pid.as_deref()),
            ("a.b.7", "a.b", Some("7"))
        );
    }

    #[test]
    fn naming_without_a_dot_is_its_own_service() {
        let n = ContainerName::parse("redis").unwrap();
        assert_eq!((n.service.as_str(), n.pid.as_deref()), ("redis", None));
        let n = ContainerName::parse("web.blue").unwrap();
        assert_eq!((n.service.as_str(), n.pid.as_deref()), ("web", None));
    }

    #[test]
    fn naming_rejects_what_docker_rejects() {
        for bad in [
            "", "/", "a", "-x", ".x", "_x", "my app", "é1", "a/b", "//ab",
        ] {
            let e = ContainerName::parse(bad).unwrap_err();
            assert_eq!(e.kind(), "invalid_name", "{bad:?}");
        }
        for good in ["ab", "0x", "a_b-c.d", "/web"] {
            assert!(ContainerName::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn naming_pid_modulo_works_for_any_length() {
        let n = ContainerName::parse("myapp.1").unwrap();
        assert_eq!(n.pid_mod(2), 1);
        let n = ContainerName::parse("myapp.123456789012345678901234567890").unwrap();
        assert_eq!(
            n.pid_mod(7),
            (123456789012345678901234567890u128 % 7) as usize
        );
        let n = ContainerName::parse("myapp").unwrap();
        assert_eq!(n.pid_mod(3), 0);
    }
}
