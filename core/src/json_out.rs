//! Writing JSON text straight into the output, for the parts of a decision
//! written once per server (the explanation's `rejected` map): a serde
//! serializer call per entry costs more than the entry. Strings are escaped
//! exactly as serde_json escapes them (`"`, `\` and control characters, and
//! nothing else), so the text is the bytes serde_json would write.

use serde::Serialize;

/// Appends `s` as a JSON string.
pub(crate) fn push_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // Rare in hostnames and reasons: serde_json's own escaping, so that
        // there is one rule. Serializing a string cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

/// `s` as a JSON string.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    out
}

/// Appends `v` as serde_json writes it, compact.
pub(crate) fn push_serde(out: &mut String, v: &impl Serialize) -> Result<(), serde_json::Error> {
    out.push_str(&serde_json::to_string(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "node1",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "nul\u{0}",
            "é ü 日本",
            "\u{7f}",
        ] {
            let mut out = String::new();
            push_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
