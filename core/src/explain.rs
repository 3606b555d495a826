//! Why each server was or was not chosen: one reason per rejected server and
//! a one-line summary such as `1/3 servers eligible: 1 full, 1 missing tag ssd`.
//!
//! Routing records each rejection as a [`Reason`] code beside a borrowed
//! hostname ([`Rejections`]) and turns them into text only when the output is
//! written: ruling a server out costs a comparison and a push, not two
//! allocations and a `format!`.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::hosts::Listed;
use crate::json_out;

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
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, reason) in &rejected {
            *counts.entry(reason.as_str()).or_insert(0) += 1;
        }
        let summary = summary(total, rejected.len(), counts.into_iter());
        Explain { summary, rejected }
    }

    /// `{"summary": ..., "rejected": {hostname: reason, ...}}`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// `<eligible>/<total> servers eligible: <n> <reason>, ...`: each distinct
/// reason with its count, most common first, equal counts in reason order.
fn summary<'t>(
    total: usize,
    rejected: usize,
    counts: impl Iterator<Item = (&'t str, usize)>,
) -> String {
    use fmt::Write;
    let mut groups: Vec<(&str, usize)> = counts.collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let eligible = total.saturating_sub(rejected);
    let mut out = format!("{eligible}/{total} servers eligible");
    for (i, (reason, n)) in groups.iter().enumerate() {
        let sep = if i == 0 { ": " } else { ", " };
        // Writing into a String cannot fail.
        let _ = write!(out, "{sep}{n} {reason}");
    }
    out
}

/// Why routing removed a server (SPEC 3, Routing 3 and 4), as a code and
/// what it names; its text is the `explain.rejected` reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason<'a> {
    /// `VIKING_SERVER` names another server.
    NotVikingServer,
    /// A pin sends the container to another server.
    NotPinned,
    /// The record says `down`, or the host knows the daemon does not answer.
    Down,
    /// A `VIKING_TAGS` tag the server lacks.
    MissingTag(&'a str),
    /// A `!tag` of `VIKING_TAGS` the server has.
    HasTag(&'a str),
    /// `full`, or at `max_containers`.
    Full,
    /// Reserved and not named by `VIKING_SERVER` or a pin.
    Reserved,
    /// An exact host port a live route (or a claim) holds.
    PortTaken(u16),
    /// A host-port range with no port free.
    RangeTaken(u16, u16),
    /// Not enough free ports in the server's `port_range`.
    NoFreePort,
}

impl Reason<'_> {
    /// `==`, answered without comparing text when both name the same
    /// borrowed tag, as the rejections of one rule do.
    #[inline(always)]
    fn same(&self, other: &Reason<'_>) -> bool {
        match (self, other) {
            (Reason::MissingTag(a), Reason::MissingTag(b))
            | (Reason::HasTag(a), Reason::HasTag(b))
                if std::ptr::eq(*a, *b) =>
            {
                true
            }
            _ => self == other,
        }
    }
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotVikingServer => f.write_str("not VIKING_SERVER"),
            Reason::NotPinned => f.write_str("not the pinned server"),
            Reason::Down => f.write_str("down"),
            Reason::MissingTag(t) => write!(f, "missing tag {t}"),
            Reason::HasTag(t) => write!(f, "has tag !{t}"),
            Reason::Full => f.write_str("full"),
            Reason::Reserved => f.write_str("reserved"),
            Reason::PortTaken(p) => write!(f, "port {p} taken"),
            Reason::RangeTaken(lo, hi) => write!(f, "port {lo}-{hi} taken"),
            Reason::NoFreePort => f.write_str("no free port in range"),
        }
    }
}

/// The explanation as routing builds it: of the servers it walked, the
/// ones it removed (by place among them, so in hostname order), each with
/// the index of its reason among the distinct reasons seen, counted as they
/// come. It is written straight into the output, or made an owned
/// [`Explain`].
#[derive(Debug, Clone)]
pub(crate) struct Rejections<'a> {
    servers: &'a [Listed],
    /// The place of the server in `servers`, and its group.
    list: Vec<(u32, u32)>,
    /// Each distinct reason and how many servers it removed.
    groups: Vec<(Reason<'a>, usize)>,
    /// The group of the last push: neighbouring servers mostly share one.
    last: usize,
}

impl<'a> Rejections<'a> {
    pub fn new(servers: &'a [Listed]) -> Self {
        Rejections {
            servers,
            list: Vec::new(),
            groups: Vec::new(),
            last: 0,
        }
    }

    /// The server at `at` in the walked servers is removed for `reason`.
    /// Inlined into routing's walk: most servers share the reason of the
    /// one before, which costs a comparison here.
    #[inline(always)]
    pub fn push(&mut self, at: usize, reason: Reason<'a>) {
        let g = match self.groups.get_mut(self.last) {
            Some((r, n)) if r.same(&reason) => {
                *n += 1;
                self.last
            }
            _ => self.group_of(reason),
        };
        // At most one group per server, and the inventory is held in
        // memory: fewer than 2^32 servers.
        self.list.push((at as u32, g as u32));
    }

    /// [`Rejections::push`] for a reason other than the last one: its
    /// group, counted, and made the last.
    #[inline(never)]
    fn group_of(&mut self, reason: Reason<'a>) -> usize {
        let g = match self.groups.iter().position(|(r, _)| *r == reason) {
            Some(g) => g,
            None => {
                self.groups.push((reason, 0));
                self.groups.len() - 1
            }
        };
        self.groups[g].1 += 1;
        self.last = g;
        if self.list.is_empty() {
            // Room for every server at the first rejection, not before: a
            // request most servers take allocates nothing here.
            self.list.reserve(self.servers.len());
        }
        g
    }

    /// Each group's reason text, in group order.
    fn texts(&self) -> Vec<String> {
        self.groups.iter().map(|(r, _)| r.to_string()).collect()
    }

    fn summary_of(&self, texts: &[String]) -> String {
        summary(
            self.servers.len(),
            self.list.len(),
            self.groups
                .iter()
                .zip(texts)
                .map(|((_, n), t)| (t.as_str(), *n)),
        )
    }

    pub fn summary(&self) -> String {
        self.summary_of(&self.texts())
    }

    pub fn to_explain(&self) -> Explain {
        let texts = self.texts();
        Explain {
            summary: self.summary_of(&texts),
            rejected: self
                .list
                .iter()
                .map(|(at, g)| {
                    let hostname = self.servers[*at as usize].hostname.to_string();
                    (hostname, texts[*g as usize].clone())
                })
                .collect(),
        }
    }

    /// The `explain` object as [`Explain`]'s serde form writes it, written
    /// directly: each distinct reason is escaped once, each entry copied.
    pub fn write_json(&self, out: &mut String) {
        let texts = self.texts();
        // Each reason with the colon before it: one copy per entry less.
        let reasons: Vec<String> = texts
            .iter()
            .map(|t| {
                let mut r = String::from(":");
                json_out::push_str(&mut r, t);
                r
            })
            .collect();
        out.push_str("{\"summary\":");
        json_out::push_str(out, &self.summary_of(&texts));
        out.push_str(",\"rejected\":{");
        for (i, (at, g)) in self.list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(self.servers[*at as usize].quoted());
            out.push_str(&reasons[*g as usize]);
        }
        out.push_str("}}");
    }

    /// A guess at [`Rejections::write_json`]'s length, to reserve it once.
    pub fn json_len_hint(&self) -> usize {
        64 + self
            .list
            .iter()
            .map(|(at, _)| self.servers[*at as usize].quoted().len() + 24)
            .sum::<usize>()
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
