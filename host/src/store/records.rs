//! The records of SPEC section 5 read from their stored text, one reader
//! per kind for both stores: a record reads the same from redb and from
//! etcd, and one that does not is the same [`StoreError::Corrupt`] naming
//! its key (`flocker store check` lists it; the cluster leaves it out).
//! `key` is only what an error names; the readers never look at it.

use flocker_core::{Change, Route, Server};
use serde_json::{json, Value};

use super::{Answer, PolicyRecord, StoreError};

use StoreError as E;

/// A record's text as JSON.
pub fn read_json(key: &str, text: &str) -> Result<Value, StoreError> {
    read_json_bytes(key, text.as_bytes())
}

/// [`read_json`] of bytes, as etcd and redb hand them over.
fn read_json_bytes(key: &str, text: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(text).map_err(|e| E::corrupt(key, format_args!("not JSON: {e}")))
}

/// The answer saved beside a route (`/answers/<name>`): `{"digest",
/// "output"}`, the output an object.
pub fn read_answer(key: &str, text: &str) -> Result<Answer, StoreError> {
    let v = read_json(key, text)?;
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| E::corrupt(key, "digest is missing"))?;
    let output = v
        .get("output")
        .filter(|o| o.is_object())
        .ok_or_else(|| E::corrupt(key, "output is missing"))?;
    Ok(Answer {
        digest: digest.to_string(),
        output: output.clone(),
    })
}

/// A server record (`/inventory/<hostname>`): it must name the hostname
/// its key does, or two keys could hold one server.
pub fn read_server(key: &str, hostname: &str, text: &str) -> Result<Server, StoreError> {
    let server = Server::from_value(&read_json(key, text)?, key).map_err(|e| E::corrupt(key, e))?;
    if server.hostname != hostname {
        return Err(E::corrupt(
            key,
            format_args!("record names hostname {:?}", server.hostname),
        ));
    }
    Ok(server)
}

/// A route record (`/routes/containers/<name>`): the key's name is what
/// the route goes by, whatever the record says.
pub fn read_route(key: &str, name: &str, text: &str) -> Result<Route, StoreError> {
    let mut route = Route::from_value(&read_json(key, text)?, Some(name), key)
        .map_err(|e| E::corrupt(key, e))?;
    route.name = name.to_string();
    Ok(route)
}

/// A volume claim (`/routes/volumes/<volume>`): the hostname that holds it.
pub fn read_volume_claim(key: &str, text: &str) -> Result<String, StoreError> {
    match text {
        "" => Err(E::corrupt(key, "empty hostname")),
        hostname => Ok(hostname.to_string()),
    }
}

/// A change the file store's changelog kept for handles that fell behind.
pub fn read_change(key: &str, text: &str) -> Result<Change, StoreError> {
    Change::from_value(&read_json(key, text)?, key).map_err(|e| E::corrupt(key, e))
}

impl PolicyRecord {
    /// The stored record: `{"digest", "pushed_at", "info"}`.
    pub fn to_text(&self) -> String {
        json!({"digest": self.digest, "pushed_at": self.pushed_at, "info": self.info}).to_string()
    }

    /// Reads a stored record; a missing `info` reads as empty (records
    /// written before modules reported one).
    pub fn from_text(key: &str, text: &[u8]) -> Result<PolicyRecord, StoreError> {
        let v = read_json_bytes(key, text)?;
        let digest = v
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| E::corrupt(key, "digest is missing"))?;
        let pushed_at = v
            .get("pushed_at")
            .and_then(Value::as_u64)
            .ok_or_else(|| E::corrupt(key, "pushed_at is missing"))?;
        let info = match v.get("info") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s,
            Some(_) => return Err(E::corrupt(key, "info must be a string")),
        };
        Ok(PolicyRecord {
            digest: digest.to_string(),
            pushed_at,
            info: info.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(e: StoreError) -> String {
        match e {
            StoreError::Corrupt { key, reason } => format!("{key}: {reason}"),
            other => panic!("not Corrupt: {other}"),
        }
    }

    #[test]
    fn a_server_record_must_name_its_key() {
        let text = r#"{"hostname":"a","address":"127.0.0.1"}"#;
        assert_eq!(
            read_server("/inventory/a", "a", text).unwrap().hostname,
            "a"
        );
        let e = reason(read_server("/inventory/b", "b", text).unwrap_err());
        assert_eq!(e, "/inventory/b: record names hostname \"a\"");
        assert!(reason(read_server("k", "a", "{").unwrap_err()).starts_with("k: not JSON"));
    }

    #[test]
    fn a_route_goes_by_its_key() {
        let route = r#"{"name":"other","service":"web","server":"a","address":"127.0.0.1",
            "ports":{},"env":[],"volumes":[],"state":"live"}"#;
        assert_eq!(read_route("k", "web.1", route).unwrap().name, "web.1");
        assert!(read_route("k", "web.1", "[]").is_err());
    }

    #[test]
    fn policy_records_round_trip_and_say_what_is_missing() {
        let record = PolicyRecord {
            digest: "ab".into(),
            pushed_at: 7,
            info: "{}".into(),
        };
        let text = record.to_text();
        assert_eq!(
            PolicyRecord::from_text("k", text.as_bytes()).unwrap(),
            record
        );
        let old = PolicyRecord::from_text("k", br#"{"digest":"ab","pushed_at":7}"#).unwrap();
        assert_eq!(old.info, "");
        let e = reason(PolicyRecord::from_text("k", br#"{"digest":"ab"}"#).unwrap_err());
        assert_eq!(e, "k: pushed_at is missing");
        assert!(
            PolicyRecord::from_text("k", br#"{"digest":"ab","pushed_at":1,"info":3}"#).is_err()
        );
        assert_eq!(
            reason(read_volume_claim("v", "").unwrap_err()),
            "v: empty hostname"
        );
    }
}
