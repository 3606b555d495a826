//! Reading etcd's answers: transaction results, server, route and policy records.

#[allow(unused_imports)]
use super::*;

pub(super) fn header_revision(resp: &TxnResponse) -> i64 {
    resp.header().map_or(0, |h| h.revision())
}

/// The key-values a transaction's `get` operations returned, in order.
pub(super) fn txn_gets(resp: &TxnResponse) -> Vec<Vec<KeyValue>> {
    resp.op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(mut g) => Some(g.take_kvs()),
            _ => None,
        })
        .collect()
}

pub(super) fn utf8(kv: &KeyValue) -> Result<(&str, &str), (String, String)> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let k = kv
        .key_str()
        .map_err(|_| (key.clone(), "key is not UTF-8".to_string()))?;
    let v = kv
        .value_str()
        .map_err(|_| (key, "value is not UTF-8".to_string()))?;
    Ok((k, v))
}

pub(super) fn parse_json(key: &str, text: &str) -> Result<Value, (String, String)> {
    serde_json::from_str(text).map_err(|e| (key.to_string(), format!("not JSON: {e}")))
}

pub(super) fn parse_server(
    key: &str,
    hostname: &str,
    text: &str,
) -> Result<Server, (String, String)> {
    let v = parse_json(key, text)?;
    let server = Server::from_value(&v, key).map_err(|e| (key.to_string(), e.to_string()))?;
    if server.hostname != hostname {
        return Err((
            key.to_string(),
            format!("record names hostname {:?}", server.hostname),
        ));
    }
    Ok(server)
}

pub(super) fn parse_route(key: &str, name: &str, text: &str) -> Result<Route, (String, String)> {
    let v = parse_json(key, text)?;
    let mut route =
        Route::from_value(&v, Some(name), key).map_err(|e| (key.to_string(), e.to_string()))?;
    // The key is what names and compares go by.
    route.name = name.to_string();
    Ok(route)
}

pub(super) fn policy_record_value(record: &PolicyRecord) -> String {
    json!({"digest": record.digest, "pushed_at": record.pushed_at, "info": record.info}).to_string()
}

pub(super) fn parse_policy_record(kv: &KeyValue) -> Result<PolicyRecord, StoreError> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    let v: Value =
        serde_json::from_slice(kv.value()).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("digest is missing".into()))?;
    let pushed_at = v
        .get("pushed_at")
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("pushed_at is missing".into()))?;
    let info = v.get("info").and_then(Value::as_str).unwrap_or_default();
    Ok(PolicyRecord {
        digest: digest.to_string(),
        pushed_at,
        info: info.to_string(),
    })
}

pub(super) fn parse_answer(key: &str, kv: &KeyValue) -> Result<Answer, StoreError> {
    let text = kv.value_str().map_err(|_| StoreError::Corrupt {
        key: key.to_string(),
        reason: "value is not UTF-8".into(),
    })?;
    Answer::from_text(key, text)
}

pub(super) fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.contains('/') {
        return Err(StoreError::Corrupt {
            key: name.to_string(),
            reason: format!("{what} must be non-empty and contain no '/'"),
        });
    }
    Ok(())
}
