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

pub(super) fn parse_answer(key: &str, kv: &KeyValue) -> Result<Answer, StoreError> {
    let text = kv
        .value_str()
        .map_err(|_| StoreError::corrupt(key, "value is not UTF-8"))?;
    crate::store::records::read_answer(key, text)
}

pub(super) fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.contains('/') {
        return Err(StoreError::corrupt(
            name,
            format_args!("{what} must be non-empty and contain no '/'"),
        ));
    }
    Ok(())
}
