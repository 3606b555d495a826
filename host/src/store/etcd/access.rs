//! TLS and authentication: the files a TLS connection presents, and the
//! refusals that retrying will not change (a password, a certificate, a
//! permission), told apart from an etcd that is merely down.

#[allow(unused_imports)]
use super::*;
use crate::store::url::EtcdTls;
use etcd_client::{Certificate, Identity, TlsOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the CA bundle is looked for when the URL gives no `cacert=`:
/// `$SSL_CERT_FILE`, then the usual Debian/Fedora/Alpine paths.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Reads and checks the PEM files of a TLS connection to etcd.
pub(super) fn tls_options(tls: &EtcdTls) -> Result<TlsOptions, StoreError> {
    let ca_path = match &tls.cacert {
        Some(p) => p.clone(),
        None => system_bundle()?,
    };
    let ca = read_pem(&ca_path, "CA certificate (cacert=)", |bytes| {
        let n = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?
            .len();
        if n == 0 {
            return Err("no PEM certificate in it".into());
        }
        Ok(())
    })?;
    let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(id) = &tls.identity {
        let cert = read_pem(&id.cert, "client certificate (cert=)", |bytes| {
            match CertificateDer::pem_slice_iter(bytes).next() {
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("no PEM certificate in it".into()),
            }
        })?;
        let key = read_pem(&id.key, "client key (key=)", |bytes| {
            PrivateKeyDer::from_pem_slice(bytes)
                .map(|_| ())
                .map_err(|e| format!("no PEM private key in it ({e})"))
        })?;
        options = options.identity(Identity::from_pem(cert, key));
    }
    Ok(options)
}

fn system_bundle() -> Result<std::path::PathBuf, StoreError> {
    let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    env.into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| StoreError::Denied {
            what: format!(
                "TLS to etcd needs the CA that signed its certificates: give ?cacert=FILE \
                 (no system CA bundle found at $SSL_CERT_FILE or {})",
                SYSTEM_BUNDLES.join(", ")
            ),
        })
}

/// The bytes of `path`, checked by `check`; an error naming the file and
/// what it was meant to be.
fn read_pem(
    path: &std::path::Path,
    role: &str,
    check: impl Fn(&[u8]) -> Result<(), String>,
) -> Result<Vec<u8>, StoreError> {
    let denied = |why: String| StoreError::Denied {
        what: format!("cannot use the etcd {role} {}: {why}", path.display()),
    };
    let bytes = std::fs::read(path).map_err(|e| denied(e.to_string()))?;
    check(&bytes).map_err(denied)?;
    Ok(bytes)
}

/// The words of an error and of every error under it: tonic wraps the
/// rustls and hyper errors that say what went wrong.
pub(super) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        next = s.source();
    }
    text
}

/// A refusal that retrying will not change, as [`StoreError::Denied`]
/// saying what to fix; None for anything else (down, timed out, busy).
/// `doing` is what was being done.
pub(super) fn denied(
    config: &EtcdConfig,
    doing: &str,
    e: &etcd_client::Error,
) -> Option<StoreError> {
    let text = chain_text(e);
    let at = format!("etcd at {}", config.endpoints.join(","));
    let user = config.user.as_ref().map(|(u, _)| u.as_str());
    let code = match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}", s.code()),
        _ => String::new(),
    };
    let what = if text.contains("authentication failed") {
        match user {
            Some(u) => format!(
                "{at}: authentication failed for user {u}: etcd refused the password \
                 (from FLOCKER_ETCD_PASSWORD)"
            ),
            None => format!("{at}: authentication failed"),
        }
    } else if code == "PermissionDenied" || text.contains("permission denied") {
        let prefix = if config.prefix.is_empty() {
            "/ (no prefix)".to_string()
        } else {
            format!("{}/", config.prefix)
        };
        let who = match user {
            Some(u) => format!("user {u}"),
            None => "this client (the user named by its certificate's CN, if any)".into(),
        };
        format!("{at}: permission denied: {who} may not {doing} under the key prefix {prefix}")
    } else if code == "Unauthenticated" || text.contains("user name is empty") {
        if let Some(u) = user {
            // The client already authenticated again once and was refused.
            return Some(StoreError::Denied {
                what: format!(
                    "{at}: etcd refused the auth token of user {u} ({})",
                    status_message(e)
                ),
            });
        }
        format!(
            "{at}: etcd requires authentication ({}): give USER@ in the URL and its password \
             in FLOCKER_ETCD_PASSWORD, or a client certificate whose CN is an etcd user",
            status_message(e)
        )
    } else if tls_untrusted(&text) {
        format!(
            "{at}: the server certificate was not trusted (is ?cacert= the CA that signed \
             etcd's certificate?): {}",
            tls_detail(&text)
        )
    } else if tls_refused(&text) {
        format!(
            "{at}: the TLS handshake was refused: etcd did not accept our client certificate \
             (give ?cert=FILE&key=FILE signed by a CA etcd trusts): {}",
            tls_detail(&text)
        )
    } else {
        return None;
    };
    Some(StoreError::Denied { what })
}

/// What a connection that went away during or right after the TLS
/// handshake probably means, or None. Alone it proves nothing (a member
/// that dies looks the same), so [`Members::call`] says it only when every
/// member did it for two rounds before any answered: TLS 1.3 lets the
/// server refuse our certificate after the client thinks the handshake is
/// done, and a plain member closes on a ClientHello, a TLS one on a plain
/// HTTP/2 preface. The flag is true for the surest of these (a handshake
/// with no TLS answer at all), which wins over the others when attempts
/// end differently.
pub(super) fn early_close(config: &EtcdConfig, e: &etcd_client::Error) -> Option<(bool, String)> {
    let text = chain_text(e);
    let at = format!("etcd at {}", config.endpoints.join(","));
    let Some(tls) = &config.tls else {
        return closed_early(&text).then(|| {
            (
                false,
                format!(
                    "{at}: etcd closed every connection at once, as a TLS listener does to plain \
                 gRPC: if it serves TLS, use etcds://...?cacert=FILE"
                ),
            )
        });
    };
    if text.contains("tls handshake eof") || text.contains("InvalidContentType") {
        return Some((
            true,
            format!(
                "{at}: the TLS handshake got no answer: etcd does not serve TLS there \
             (use etcd:// without TLS options?)"
            ),
        ));
    }
    closed_early(&text).then(|| {
        let ours = match &tls.identity {
            Some(id) => format!("our client certificate {}", id.cert.display()),
            None => "a connection without a client certificate (give ?cert=FILE&key=FILE)".into(),
        };
        (
            false,
            format!(
                "{at}: the TLS handshake was refused: etcd closed the connection right after it, \
             which is how it refuses {ours} when it has --client-cert-auth"
            ),
        )
    })
}

/// Our side refused theirs.
fn tls_untrusted(text: &str) -> bool {
    text.contains("invalid peer certificate")
}

/// Their side refused ours (an alert from the server).
fn tls_refused(text: &str) -> bool {
    [
        "CertificateRequired",
        "BadCertificate",
        "UnknownCA",
        "received fatal alert",
        "HandshakeFailure",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// The connection went away under a request; how it shows (closed,
/// broken pipe, reset; in words or as a Debug `Kind`) depends on timing.
fn closed_early(text: &str) -> bool {
    let text = text.to_ascii_lowercase().replace(' ', "");
    ["connectionclosed", "brokenpipe", "connectionreset"]
        .iter()
        .any(|w| text.contains(w))
}

/// The rustls part of a transport error, without tonic's wrapping.
fn tls_detail(text: &str) -> &str {
    for w in ["invalid peer certificate", "received fatal alert"] {
        if let Some(i) = text.find(w) {
            let rest = &text[i..];
            let end = rest.find(['"', ',', '(']).unwrap_or(rest.len());
            return rest[..end].trim_end();
        }
    }
    text
}
