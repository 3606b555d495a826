//! `--store` URLs.
//!
//! - `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`: an etcd cluster; the keys
//!   of SPEC section 5 live under `/PREFIX` (none when omitted).
//! - `file:PATH` (also `file://PATH`, so `file:///var/lib/flocker.redb`):
//!   the embedded redb store in one file, created when missing.
//!
//! When `--store` is not given, the `FLOCKER_STORE` environment variable is
//! read as one of these URLs, and when that is unset too the embedded store
//! is `./flocker.redb` ([`DEFAULT_STORE`]).

use std::fmt;
use std::path::PathBuf;

use super::StoreError;

/// The store used when neither `--store` nor `FLOCKER_STORE` is given.
pub const DEFAULT_STORE: &str = "file:flocker.redb";

/// The environment variable read when `--store` is not given.
pub const STORE_ENV: &str = "FLOCKER_STORE";

/// A parsed `--store` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `etcd://...`
    Etcd {
        /// `HOST:PORT` strings as given, in order; at least one.
        endpoints: Vec<String>,
        /// The key prefix: `""` (none) or `/name[/name...]`, starting with
        /// `/` and without a trailing `/`. Keys are `{prefix}/inventory/...`.
        prefix: String,
    },
    /// `file:PATH`
    File(PathBuf),
}

impl StoreUrl {
    /// Parses a `--store` value.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = url.strip_prefix("etcd://") {
            let (hosts, prefix) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let prefix = prefix.trim_end_matches('/');
            if prefix.contains("//") {
                return Err(bad("the prefix must not contain an empty segment (`//`)"));
            }
            let mut endpoints = Vec::new();
            for ep in hosts.split(',') {
                let ep = ep.trim();
                if ep.is_empty() {
                    return Err(bad("expected HOST:PORT[,HOST:PORT...] after etcd://"));
                }
                let Some((host, port)) = ep.rsplit_once(':') else {
                    return Err(bad(&format!("endpoint {ep:?} has no :PORT")));
                };
                if host.is_empty() || host == "[]" {
                    return Err(bad(&format!("endpoint {ep:?} has no host")));
                }
                match port.parse::<u16>() {
                    Ok(p) if p > 0 => {}
                    _ => {
                        return Err(bad(&format!(
                            "endpoint {ep:?}: port {port:?} is not a number from 1 to 65535"
                        )))
                    }
                }
                endpoints.push(ep.to_string());
            }
            return Ok(StoreUrl::Etcd {
                endpoints,
                prefix: prefix.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("file:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("expected a path after file:"));
            }
            return Ok(StoreUrl::File(PathBuf::from(path)));
        }
        Err(bad(
            "expected etcd://HOST:PORT[,HOST:PORT...][/PREFIX] or file:PATH",
        ))
    }

    /// The URL given on the command line, else `FLOCKER_STORE`, else
    /// [`DEFAULT_STORE`].
    pub fn from_arg_or_env(arg: Option<&str>) -> Result<StoreUrl, StoreError> {
        match arg {
            Some(a) => StoreUrl::parse(a),
            None => match std::env::var(STORE_ENV) {
                Ok(v) if !v.is_empty() => StoreUrl::parse(&v),
                _ => StoreUrl::parse(DEFAULT_STORE),
            },
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Etcd { endpoints, prefix } => {
                write!(f, "etcd://{}{}", endpoints.join(","), prefix)
            }
            StoreUrl::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_urls_with_several_endpoints_and_a_prefix() {
        assert_eq!(
            StoreUrl::parse("etcd://127.0.0.1:2379").unwrap(),
            StoreUrl::Etcd {
                endpoints: vec!["127.0.0.1:2379".into()],
                prefix: String::new()
            }
        );
        assert_eq!(
            StoreUrl::parse("etcd://a:1,b:2/flocker/prod/").unwrap(),
            StoreUrl::Etcd {
                endpoints: vec!["a:1".into(), "b:2".into()],
                prefix: "/flocker/prod".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("etcd://[::1]:2379/x").unwrap().to_string(),
            "etcd://[::1]:2379/x"
        );
    }

    #[test]
    fn bad_etcd_urls_say_why() {
        for (url, why) in [
            ("etcd://", "HOST:PORT"),
            ("etcd://host", "no :PORT"),
            ("etcd://host:x", "not a number"),
            ("etcd://host:0", "not a number"),
            ("etcd://:2379", "no host"),
            ("etcd://a:1,,b:2", "HOST:PORT"),
            ("etcd://a:1/x//y", "empty segment"),
            ("http://a:1", "expected etcd://"),
            ("file:", "path"),
        ] {
            let e = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            StoreUrl::parse("file:x.redb").unwrap(),
            StoreUrl::File("x.redb".into())
        );
        assert_eq!(
            StoreUrl::parse("file:///tmp/x.redb").unwrap(),
            StoreUrl::File("/tmp/x.redb".into())
        );
        assert_eq!(
            StoreUrl::parse(DEFAULT_STORE).unwrap(),
            StoreUrl::File("flocker.redb".into())
        );
    }
}
