//! Why each server was or was not chosen: one reason per rejected server and
//! a one-line summary such as `1/3 servers eligible: 1 full, 1 missing tag ssd`.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// The `explain` object of a decision or an error (SPEC section 4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Explain {
    /// `<eligible>/<total> servers eligible`, then the count of each
    /// rejection reason, most common first: `1/3 servers eligible: 1 full`.
    pub summary: String,
    /// hostname -> reason, in hostname order.
    pub rejected: Vec<(String, String)>,
}

impl Explain {
    /// `total` servers were considered and `rejected` of them removed.
    pub fn new(total: usize, rejected: Vec<(String, String)>) -> Explain {
        let eligible = total.saturating_sub(rejected.len());
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, reason) in &rejected {
            *counts.entry(reason.as_str()).or_insert(0) += 1;
        }
        // Most common reason first; equal counts in reason order.
        let mut groups: Vec<(&str, usize)> = counts.into_iter().collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut summary = format!("{eligible}/{total} servers eligible");
        if !groups.is_empty() {
            let parts: Vec<String> = groups.iter().map(|(r, n)| format!("{n} {r}")).collect();
            summary.push_str(": ");
            summary.push_str(&parts.join(", "));
        }
        Explain { summary, rejected }
    }

    /// `{"summary": ..., "rejected": {hostname: reason, ...}}`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for Explain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("summary", &self.summary)?;
        m.serialize_entry("rejected", &Rejected(&self.rejected))?;
        m.end()
    }
}

/// `{"node1": "full", ...}` in hostname order.
struct Rejected<'a>(&'a [(String, String)]);

impl Serialize for Rejected<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (host, reason) in self.0 {
            m.serialize_entry(host, reason)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_reasons_most_common_first() {
        let e = Explain::new(
            4,
            vec![
                ("a".into(), "missing tag ssd".into()),
                ("b".into(), "full".into()),
                ("c".into(), "full".into()),
            ],
        );
        assert_eq!(e.summary, "1/4 servers eligible: 2 full, 1 missing tag ssd");
        assert_eq!(Explain::new(3, vec![]).summary, "3/3 servers eligible");
        assert_eq!(
            Explain::new(
                3,
                vec![
                    ("a".into(), "missing tag ssd".into()),
                    ("b".into(), "full".into())
                ]
            )
            .summary,
            "1/3 servers eligible: 1 full, 1 missing tag ssd"
        );
    }
}
