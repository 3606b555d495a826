//! Reading untyped JSON with the JSON path of every value at hand, so that a
//! bad field is reported as `container.HostConfig.Links[1]` rather than as a
//! byte offset. Docker clients send `null` for empty fields, so `null` reads
//! as "absent" everywhere.

use serde_json::{Map, Value};

use crate::error::DecisionError;

type Result<T> = std::result::Result<T, DecisionError>;

/// `parent.key`, or `parent["key"]` when the key is not a plain identifier.
pub(crate) fn field(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        // Every field a request reads is named by a path, whether or not
        // an error uses it: joined, not formatted.
        (false, true) => crate::text::joined(&[parent, ".", key]),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_string())),
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(path: &str, expected: &str, found: &Value) -> DecisionError {
    DecisionError::invalid(
        path,
        format!("expected {expected}, found {}", type_name(found)),
    )
}

/// Treats JSON `null` as a missing field.
pub(crate) fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

pub(crate) fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| wrong(path, "an object", v))
}

pub(crate) fn opt_object<'a>(
    parent: &'a Map<String, Value>,
    parent_path: &str,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>> {
    match present(parent.get(key)) {
        None => Ok(None),
        Some(v) => v
            .as_object()
            .map(Some)
            .ok_or_else(|| wrong(&field(parent_path, key), "an object", v)),
    }
}

pub(crate) fn opt_array<'a>(
    parent: &'a Map<String, Value>,
    parent_path: &str,
    key: &str,
) -> Result<Option<&'a Vec<Value>>> {
    match present(parent.get(key)) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .map(Some)
            .ok_or_else(|| wrong(&field(parent_path, key), "an array", v)),
    }
}

pub(crate) fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str> {
    v.as_str().ok_or_else(|| wrong(path, "a string", v))
}

pub(crate) fn opt_string<'a>(
    parent: &'a Map<String, Value>,
    parent_path: &str,
    key: &str,
) -> Result<Option<&'a str>> {
    match present(parent.get(key)) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| wrong(&field(parent_path, key), "a string", v)),
    }
}

pub(crate) fn required_string<'a>(
    parent: &'a Map<String, Value>,
    parent_path: &str,
    key: &str,
) -> Result<&'a str> {
    opt_string(parent, parent_path, key)?
        .ok_or_else(|| DecisionError::invalid(field(parent_path, key), "is required but missing"))
}

pub(crate) fn opt_bool(
    parent: &Map<String, Value>,
    parent_path: &str,
    key: &str,
) -> Result<Option<bool>> {
    match present(parent.get(key)) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| wrong(&field(parent_path, key), "a boolean", v)),
    }
}

pub(crate) fn opt_u64(
    parent: &Map<String, Value>,
    parent_path: &str,
    key: &str,
) -> Result<Option<u64>> {
    match present(parent.get(key)) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| wrong(&field(parent_path, key), "a non-negative integer", v)),
    }
}

/// An optional array of strings, such as `Env` or `Binds`.
pub(crate) fn opt_strings<'a>(
    parent: &'a Map<String, Value>,
    parent_path: &str,
    key: &str,
) -> Result<Vec<&'a str>> {
    let Some(items) = opt_array(parent, parent_path, key)? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .ok_or_else(|| wrong(&index(&field(parent_path, key), i), "a string", v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(field("", "container"), "container");
        assert_eq!(field("container", "HostConfig"), "container.HostConfig");
        assert_eq!(
            field("container.HostConfig.PortBindings", "80/tcp"),
            "container.HostConfig.PortBindings[\"80/tcp\"]"
        );
        assert_eq!(
            index("container.HostConfig.Links", 1),
            "container.HostConfig.Links[1]"
        );
    }
}
