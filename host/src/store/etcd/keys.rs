//! The key layout under one prefix (the table in the folder's doc).

#[allow(unused_imports)]
use super::*;

/// The etcd key layout under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
}

/// What a watched key is.
#[derive(Debug, PartialEq)]
pub(super) enum Kind<'a> {
    Server(&'a str),
    Route(&'a str),
    Volume(&'a str),
    /// `P/ports/<hostname>/<port>`: hostname and port.
    Port(&'a str, u16),
    PolicyActive,
    Other,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Keys { prefix }
    }
    pub(super) fn root(&self) -> String {
        format!("{}/", self.prefix)
    }
    pub(super) fn servers(&self) -> String {
        format!("{}/inventory/", self.prefix)
    }
    pub(super) fn server(&self, hostname: &str) -> String {
        format!("{}/inventory/{hostname}", self.prefix)
    }
    pub(super) fn staged(&self) -> String {
        format!("{}/inventory-staged/", self.prefix)
    }
    pub(super) fn staged_marker(&self, id: &str) -> String {
        format!("{}/inventory-staged/{id}", self.prefix)
    }
    pub(super) fn staged_chunk(&self, id: &str, index: usize) -> String {
        format!("{}/inventory-staged/{id}/{index:05}", self.prefix)
    }
    pub(super) fn routes(&self) -> String {
        format!("{}/routes/containers/", self.prefix)
    }
    pub(super) fn route(&self, name: &str) -> String {
        format!("{}/routes/containers/{name}", self.prefix)
    }
    pub(super) fn answer(&self, name: &str) -> String {
        format!("{}/routes/answers/{name}", self.prefix)
    }
    pub(super) fn volumes(&self) -> String {
        format!("{}/routes/volumes/", self.prefix)
    }
    pub(super) fn volume(&self, volume: &str) -> String {
        format!("{}/routes/volumes/{volume}", self.prefix)
    }
    pub(super) fn ports(&self) -> String {
        format!("{}/ports/", self.prefix)
    }
    pub(super) fn port(&self, server: &str, port: u16) -> String {
        format!("{}/ports/{server}/{port}", self.prefix)
    }
    pub(super) fn module(&self, digest: &str) -> String {
        format!("{}/policy/modules/{digest}", self.prefix)
    }
    pub(super) fn module_chunk(&self, digest: &str, index: usize) -> String {
        format!("{}/policy/modules/{digest}/{index:05}", self.prefix)
    }
    pub(super) fn history(&self) -> String {
        format!("{}/policy/history/", self.prefix)
    }
    pub(super) fn history_entry(&self, seq: u64) -> String {
        format!("{}/policy/history/{seq:020}", self.prefix)
    }
    pub(super) fn active(&self) -> String {
        format!("{}/policy/active", self.prefix)
    }

    pub(super) fn kind<'a>(&self, key: &'a str) -> Kind<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return Kind::Other;
        };
        let named = |n: &'a str| !n.is_empty() && !n.contains('/');
        if let Some(h) = rest.strip_prefix("/inventory/").filter(|n| named(n)) {
            Kind::Server(h)
        } else if let Some(n) = rest
            .strip_prefix("/routes/containers/")
            .filter(|n| named(n))
        {
            Kind::Route(n)
        } else if let Some(v) = rest.strip_prefix("/routes/volumes/").filter(|n| named(n)) {
            Kind::Volume(v)
        } else if let Some((h, p)) = rest.strip_prefix("/ports/").and_then(parse_port_key) {
            Kind::Port(h, p)
        } else if rest == "/policy/active" {
            Kind::PolicyActive
        } else {
            Kind::Other
        }
    }
}
