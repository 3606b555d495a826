//! How to reach etcd: members, prefix, timeouts, the transaction size limit.

#[allow(unused_imports)]
use super::*;
use crate::store::url::{EtcdTls, EtcdUrl, Password};

/// How to reach etcd and where the records live.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `host:port` or `http://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// Key prefix (`/flocker`), or empty for none.
    pub prefix: String,
    /// Time allowed to open a connection to one member.
    pub connect_timeout: Duration,
    /// Time allowed for one request, and for the cache to recover before
    /// [`Store::cluster`] gives up.
    pub request_timeout: Duration,
    /// The members' `--max-txn-ops`: a save needs one compare per host port
    /// and new volume plus the name, so a route with more claims than this
    /// is refused before it is sent.
    pub max_txn_ops: usize,
    /// TLS to every member (`https://`), with these files.
    pub tls: Option<EtcdTls>,
    /// The etcd user and password every client authenticates with.
    pub user: Option<(String, Password)>,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            prefix: prefix.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_txn_ops: MAX_TXN_OPS,
            tls: None,
            user: None,
        }
    }

    /// The config a `--store` URL names, the password read from
    /// `FLOCKER_ETCD_PASSWORD` when the URL has a user.
    pub fn from_url(url: &EtcdUrl) -> Result<EtcdConfig, StoreError> {
        let mut c = EtcdConfig::new(url.endpoints.clone(), url.prefix.clone());
        c.tls = url.tls.clone();
        c.user = url.credentials()?;
        Ok(c)
    }
}
