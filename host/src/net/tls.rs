//! TLS the way Docker does it: a listener with `--tlscert`/`--tlskey` speaks
//! TLS, and with `--tlsverify --tlscacert` lets in only clients whose
//! certificate chains to that CA; a dial to a daemon trusts the CA in its
//! certificate directory (`ca.pem`) and shows `cert.pem`/`key.pem`, the
//! layout of `DOCKER_CERT_PATH`.
//!
//! rustls with ring does the protocol (ring is the provider etcd-client's
//! tonic builds too, so the binary carries one crypto library), and
//! rustls-pki-types reads the PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, server::WebPkiClientVerifier, ClientConfig, RootCertStore};
use tokio_rustls::rustls::{crypto::CryptoProvider, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why a TLS setting cannot be used; each names the file or flag.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} needs {needs}")]
    Missing {
        flag: &'static str,
        needs: &'static str,
    },
    #[error("cannot read {what} {}: {cause}", file.display())]
    Read {
        what: &'static str,
        file: PathBuf,
        cause: String,
    },
    #[error("{} holds no certificate", file.display())]
    NoCertificate { file: PathBuf },
    #[error("{what}: {cause}")]
    Config { what: String, cause: rustls::Error },
    #[error("the CA in {}: {cause}", file.display())]
    Verifier { file: PathBuf, cause: String },
    #[error("{host:?} is not a name or address a certificate can be checked against")]
    ServerName { host: String },
}

/// A listener's TLS flags, as Docker names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenTls {
    /// `--tlsverify`: only clients with a certificate from `ca` get in.
    pub verify: bool,
    /// `--tlscacert`
    pub ca: Option<PathBuf>,
    /// `--tlscert`
    pub cert: Option<PathBuf>,
    /// `--tlskey`
    pub key: Option<PathBuf>,
}

impl ListenTls {
    /// True when the listener speaks TLS at all.
    pub fn enabled(&self) -> bool {
        self.verify || self.cert.is_some() || self.key.is_some()
    }

    /// The acceptor for these flags, or `None` for plain HTTP.
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, TlsError> {
        if !self.enabled() {
            return Ok(None);
        }
        let flag = if self.verify {
            "--tlsverify"
        } else {
            "--tlscert/--tlskey"
        };
        let cert = self.cert.as_deref().ok_or(TlsError::Missing {
            flag,
            needs: "--tlscert",
        })?;
        let key = self.key.as_deref().ok_or(TlsError::Missing {
            flag,
            needs: "--tlskey",
        })?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|cause| TlsError::Config {
                what: "the TLS versions".into(),
                cause,
            })?;
        let builder = if self.verify {
            let ca = self.ca.as_deref().ok_or(TlsError::Missing {
                flag: "--tlsverify",
                needs: "--tlscacert",
            })?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| TlsError::Verifier {
                        file: ca.to_path_buf(),
                        cause: e.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(certs(cert)?, private_key(key)?)
            .map_err(|cause| TlsError::Config {
                what: format!("{} and {}", cert.display(), key.display()),
                cause,
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }
}

/// A client's certificate directory in Docker's layout: `ca.pem` to trust,
/// `cert.pem` and `key.pem` to show (both or neither).
pub fn connector(dir: &Path) -> Result<TlsConnector, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|cause| TlsError::Config {
            what: "the TLS versions".into(),
            cause,
        })?
        .with_root_certificates(roots(&dir.join("ca.pem"))?);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let config = if cert.exists() || key.exists() {
        builder
            .with_client_auth_cert(certs(&cert)?, private_key(&key)?)
            .map_err(|cause| TlsError::Config {
                what: format!("{} and {}", cert.display(), key.display()),
                cause,
            })?
    } else {
        builder.with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name a dialed server's certificate must carry: its URL's host (a
/// DNS name, or an IP address in the certificate's IP SANs).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::ServerName {
        host: host.to_string(),
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |cause: String| TlsError::Read {
        what: "certificate",
        file: file.to_path_buf(),
        cause,
    };
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            file: file.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(file).map_err(|e| TlsError::Read {
        what: "private key",
        file: file.to_path_buf(),
        cause: e.to_string(),
    })
}

fn roots(file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(file)? {
        roots.add(cert).map_err(|cause| TlsError::Config {
            what: format!("the CA in {}", file.display()),
            cause,
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_unless_asked() {
        assert!(ListenTls::default().acceptor().unwrap().is_none());
    }

    #[test]
    fn verify_needs_every_file() {
        let t = ListenTls {
            verify: true,
            cert: Some("/nonexistent/c.pem".into()),
            key: Some("/nonexistent/k.pem".into()),
            ca: None,
        };
        let e = t.acceptor().err().unwrap().to_string();
        assert_eq!(e, "--tlsverify needs --tlscacert");
        let t = ListenTls {
            verify: false,
            cert: Some("/nonexistent/c.pem".into()),
            key: None,
            ca: None,
        };
        assert_eq!(
            t.acceptor().err().unwrap().to_string(),
            "--tlscert/--tlskey needs --tlskey"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let t = ListenTls {
            verify: false,
            cert: Some("/nonexistent/c.pem".into()),
            key: Some("/nonexistent/k.pem".into()),
            ca: None,
        };
        let e = t.acceptor().err().unwrap().to_string();
        assert!(e.contains("/nonexistent/c.pem"), "{e}");
    }

    #[test]
    fn a_file_without_pem_is_no_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a certificate\n").unwrap();
        let e = connector(dir.path()).err().unwrap();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    }

    #[test]
    fn server_names() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("docker-1.example").is_ok());
        assert!(server_name("bad name").is_err());
    }
}
