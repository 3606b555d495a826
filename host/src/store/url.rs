//! `--store` URLs.
//!
//! - `etcd://[USER@]HOST:PORT[,HOST:PORT...][/PREFIX][?cacert=FILE&cert=FILE&key=FILE]`:
//!   an etcd cluster; the keys of SPEC section 5 live under `/PREFIX` (none
//!   when omitted). `etcds://` is the same over TLS, and so is `etcd://`
//!   with any of the query keys: `cacert` is the CA that signed the
//!   members' certificates (the system's CA bundle when omitted), `cert`
//!   and `key` (both or neither) the client certificate that etcd's
//!   `--client-cert-auth` asks for. Query values are file paths, taken as
//!   written (no percent-decoding). `USER@` authenticates as USER with the
//!   password in [`PASSWORD_ENV`]; a password in the URL is refused, so
//!   that it never sits in a command line, a shell history or a unit file.
//! - `file:PATH` (also `file://PATH`, so `file:///var/lib/flocker.redb`):
//!   the embedded redb store in one file, created when missing.
//!
//! When `--store` is not given, the `FLOCKER_STORE` environment variable is
//! read as one of these URLs, and when that is unset too the embedded store
//! is `./flocker.redb` ([`DEFAULT_STORE`]).
//!
//! No error, `Display` or `Debug` of anything here holds a password: a URL
//! that carries one is only ever shown with it replaced by `***`.

use std::fmt;
use std::path::PathBuf;

use super::StoreError;

/// The store used when neither `--store` nor `FLOCKER_STORE` is given.
pub const DEFAULT_STORE: &str = "file:flocker.redb";

/// The environment variable read when `--store` is not given.
pub const STORE_ENV: &str = "FLOCKER_STORE";

/// The environment variable that holds the password of an etcd URL's USER.
pub const PASSWORD_ENV: &str = "FLOCKER_ETCD_PASSWORD";

/// A parsed `--store` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `etcd://...` or `etcds://...`
    Etcd(EtcdUrl),
    /// `file:PATH`
    File(PathBuf),
}

/// Where an etcd cluster is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    /// `HOST:PORT` strings as given, in order; at least one.
    pub endpoints: Vec<String>,
    /// The key prefix: `""` (none) or `/name[/name...]`, starting with
    /// `/` and without a trailing `/`. Keys are `{prefix}/inventory/...`.
    pub prefix: String,
    /// TLS to every member, when the scheme is `etcds` or a query key is given.
    pub tls: Option<EtcdTls>,
    /// The etcd user to authenticate as; its password is in [`PASSWORD_ENV`].
    pub user: Option<String>,
}

/// The files of a TLS connection to etcd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdTls {
    /// PEM CA certificates the members' certificates must chain to; the
    /// system's CA bundle when None.
    pub cacert: Option<PathBuf>,
    /// A PEM client certificate and its PEM private key.
    pub identity: Option<ClientCert>,
}

/// A client certificate file and its key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A password that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }
    /// The password itself, for the one call that sends it to etcd.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl EtcdUrl {
    /// The user and its password from [`PASSWORD_ENV`], or None without a
    /// user. A user whose password is not set (or empty) is an error: etcd
    /// would refuse it anyway, less clearly.
    pub fn credentials(&self) -> Result<Option<(String, Password)>, StoreError> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        match std::env::var(PASSWORD_ENV) {
            Ok(p) if !p.is_empty() => Ok(Some((user.clone(), Password(p)))),
            _ => Err(StoreError::BadUrl {
                url: self.to_string(),
                reason: format!(
                    "user {user} needs its password in the environment variable \
                     {PASSWORD_ENV}, which is not set"
                ),
            }),
        }
    }
}

/// `url` with any password in it replaced by `***`: everything from the
/// `:` after the user up to the last `@` (a password may hold `@`, `/`
/// or `?`; taking the last `@` errs on hiding too much).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (Some(first_at), Some(last_at)) = (rest.find('@'), rest.rfind('@')) else {
        return url.to_string();
    };
    match rest[..first_at].find(':') {
        Some(colon) => format!("{scheme}://{}:***{}", &rest[..colon], &rest[last_at..]),
        None => url.to_string(),
    }
}

impl StoreUrl {
    /// Parses a `--store` value.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: redact(url),
            reason: reason.to_string(),
        };
        for (scheme, tls) in [("etcd://", false), ("etcds://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                return parse_etcd(rest, tls)
                    .map(StoreUrl::Etcd)
                    .map_err(|r| bad(&r));
            }
        }
        if let Some(rest) = url.strip_prefix("file:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("expected a path after file:"));
            }
            return Ok(StoreUrl::File(PathBuf::from(path)));
        }
        Err(bad(
            "expected etcd://HOST:PORT[,HOST:PORT...][/PREFIX], etcds://... or file:PATH",
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

/// What follows `etcd://` or `etcds://`; the reason when it is not valid.
/// Reasons never quote the text before an `@` beyond the user name.
fn parse_etcd(rest: &str, tls_scheme: bool) -> Result<EtcdUrl, String> {
    // Any `@` ends the user: a path holding `@` cannot be told apart from
    // a password holding `/` or `?`, and the password must not be echoed.
    let (user, rest) = match rest.find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            if let Some((name, _)) = userinfo.split_once(':') {
                return Err(format!(
                    "a password in the URL ({name}:PASSWORD@) is refused: give {name}@ and put \
                     the password in the environment variable {PASSWORD_ENV}"
                ));
            }
            if rest[at + 1..].contains('@') {
                return Err("more than one @ (only USER@ may hold one)".into());
            }
            if userinfo.is_empty() || userinfo.contains(['/', '?', ',']) {
                return Err("expected USER@HOST:PORT (an etcd user name before @)".into());
            }
            (Some(userinfo.to_string()), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (hosts, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let prefix = prefix.trim_end_matches('/');
    if prefix.contains("//") {
        return Err("the prefix must not contain an empty segment (`//`)".into());
    }
    let mut endpoints = Vec::new();
    for ep in hosts.split(',') {
        let ep = ep.trim();
        if ep.is_empty() {
            return Err("expected HOST:PORT[,HOST:PORT...] after etcd://".into());
        }
        let Some((host, port)) = ep.rsplit_once(':') else {
            return Err(format!("endpoint {ep:?} has no :PORT"));
        };
        if host.is_empty() || host == "[]" {
            return Err(format!("endpoint {ep:?} has no host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err(format!(
                    "endpoint {ep:?}: port {port:?} is not a number from 1 to 65535"
                ))
            }
        }
        endpoints.push(ep.to_string());
    }
    let (mut cacert, mut cert, mut key) = (None, None, None);
    let mut any_query = false;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "cacert" => &mut cacert,
            "cert" => &mut cert,
            "key" => &mut key,
            other => {
                return Err(format!(
                    "unknown query key {other:?} (expected cacert, cert or key)"
                ))
            }
        };
        if v.is_empty() {
            return Err(format!("{k}= needs a file path"));
        }
        if slot.is_some() {
            return Err(format!("{k}= is given twice"));
        }
        *slot = Some(PathBuf::from(v));
        any_query = true;
    }
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err("cert= needs key= too (the client certificate's private key)".into())
        }
        (None, Some(_)) => return Err("key= needs cert= too (the client certificate)".into()),
    };
    let tls = (tls_scheme || any_query).then_some(EtcdTls { cacert, identity });
    Ok(EtcdUrl {
        endpoints,
        prefix: prefix.to_string(),
        tls,
        user,
    })
}

impl fmt::Display for EtcdUrl {
    /// The canonical form: `etcds://` whenever TLS is on. Holds no password
    /// (an `EtcdUrl` never has one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls.is_some() { "etcds" } else { "etcd" };
        write!(f, "{scheme}://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}{}", self.endpoints.join(","), self.prefix)?;
        if let Some(tls) = &self.tls {
            let mut sep = '?';
            let mut files = Vec::new();
            if let Some(ca) = &tls.cacert {
                files.push(("cacert", ca));
            }
            if let Some(id) = &tls.identity {
                files.push(("cert", &id.cert));
                files.push(("key", &id.key));
            }
            for (k, v) in files {
                write!(f, "{sep}{k}={}", v.display())?;
                sep = '&';
            }
        }
        Ok(())
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Etcd(e) => e.fmt(f),
            StoreUrl::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etcd(url: &str) -> EtcdUrl {
        match StoreUrl::parse(url) {
            Ok(StoreUrl::Etcd(e)) => e,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn etcd_urls_with_several_endpoints_and_a_prefix() {
        assert_eq!(
            etcd("etcd://127.0.0.1:2379"),
            EtcdUrl {
                endpoints: vec!["127.0.0.1:2379".into()],
                prefix: String::new(),
                tls: None,
                user: None,
            }
        );
        let e = etcd("etcd://a:1,b:2/flocker/prod/");
        assert_eq!(e.endpoints, vec!["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(e.prefix, "/flocker/prod");
        assert_eq!(e.tls, None);
        assert_eq!(
            StoreUrl::parse("etcd://[::1]:2379/x").unwrap().to_string(),
            "etcd://[::1]:2379/x"
        );
    }

    #[test]
    fn etcds_and_query_keys_mean_tls() {
        let e = etcd(
            "etcds://flocker@a:1,b:2/flocker?cacert=/c/ca.pem&cert=/c/cert.pem&key=/c/key.pem",
        );
        assert_eq!(e.user.as_deref(), Some("flocker"));
        assert_eq!(e.prefix, "/flocker");
        assert_eq!(
            e.tls,
            Some(EtcdTls {
                cacert: Some("/c/ca.pem".into()),
                identity: Some(ClientCert {
                    cert: "/c/cert.pem".into(),
                    key: "/c/key.pem".into()
                }),
            })
        );
        assert_eq!(
            e.to_string(),
            "etcds://flocker@a:1,b:2/flocker?cacert=/c/ca.pem&cert=/c/cert.pem&key=/c/key.pem"
        );
        // etcd:// with a query key is TLS too, and prints as etcds://.
        let e = etcd("etcd://a:1?cacert=ca.pem");
        assert_eq!(
            e.tls.as_ref().and_then(|t| t.cacert.clone()),
            Some("ca.pem".into())
        );
        assert_eq!(e.to_string(), "etcds://a:1?cacert=ca.pem");
        // etcds:// alone: TLS with the system's CAs, no client certificate.
        let e = etcd("etcds://a:1/p");
        assert_eq!(e.tls, Some(EtcdTls::default()));
        assert_eq!(e.to_string(), "etcds://a:1/p");
        // A user without TLS is allowed (etcd's password auth over plain).
        assert_eq!(etcd("etcd://u@a:1").user.as_deref(), Some("u"));
        for s in ["etcds://u@a:1/p?cacert=x&key=k&cert=c", "etcd://a:1"] {
            assert_eq!(
                StoreUrl::parse(&StoreUrl::parse(s).unwrap().to_string()).unwrap(),
                StoreUrl::parse(s).unwrap()
            );
        }
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
            ("etcds://a:1?cert=c.pem", "cert= needs key="),
            ("etcds://a:1?key=k.pem", "key= needs cert="),
            (
                "etcds://a:1?cacert=a&verify=no",
                "unknown query key \"verify\"",
            ),
            ("etcds://a:1?cacert=", "needs a file path"),
            ("etcds://a:1?cacert=a&cacert=b", "twice"),
            ("etcds://@a:1", "user name before @"),
            ("etcds://u@v@a:1", "more than one @"),
        ] {
            let e = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_shown() {
        for (url, secret) in [
            ("etcds://flocker:hunter2@a:1/p", "hunter2"),
            ("etcd://flocker:s3cr/et?x@y@a:1", "s3cr/et?x@y"),
            (
                "etcds://flocker:pw-in-query@a:1?cacert=x&bogus=1",
                "pw-in-query",
            ),
        ] {
            let err = StoreUrl::parse(url).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(!shown.contains(secret), "{shown}");
                assert!(shown.contains(PASSWORD_ENV), "{shown}");
                assert!(shown.contains("flocker:PASSWORD@"), "{shown}");
            }
        }
        assert_eq!(redact("etcds://u:p@ss@a:1/x"), "etcds://u:***@a:1/x");
        assert_eq!(redact("etcds://u@a:1/x"), "etcds://u@a:1/x");
        assert_eq!(redact("file:/a:b@c"), "file:/a:b@c");
    }

    #[test]
    fn a_user_needs_the_password_variable() {
        // One test touches PASSWORD_ENV, so tests in parallel do not race on it.
        let e = etcd("etcds://flocker@a:1");
        std::env::remove_var(PASSWORD_ENV);
        let err = e.credentials().unwrap_err().to_string();
        assert!(
            err.contains("user flocker") && err.contains(PASSWORD_ENV),
            "{err}"
        );
        std::env::set_var(PASSWORD_ENV, "hunter2");
        let creds = e.credentials();
        std::env::remove_var(PASSWORD_ENV);
        let Ok(Some((user, password))) = creds else {
            panic!("{creds:?}");
        };
        assert_eq!((user.as_str(), password.reveal()), ("flocker", "hunter2"));
        assert!(!format!("{password:?}").contains("hunter2"));
        assert_eq!(etcd("etcds://a:1").credentials().ok(), Some(None));
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
