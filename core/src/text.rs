//! Strings built from pieces, without `format!`: a link gives a dozen
//! variables per decision, and formatting each through `fmt::write` cost
//! more than everything else a link does (docs/PERFORMANCE.md, "Issue 12,
//! third part").

use std::borrow::Cow;

/// `parts` one after another, allocated once at their length.
pub(crate) fn joined(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// A `u16` in decimal, written on the stack.
pub(crate) struct Decimal {
    digits: [u8; 5],
    start: usize,
}

impl Decimal {
    pub fn new(mut n: u16) -> Decimal {
        let mut digits = [b'0'; 5];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or_default()
    }
}

/// A protocol name upper-cased, as Docker's link variables write it.
pub(crate) fn upper(proto: &str) -> Cow<'static, str> {
    match proto {
        "tcp" => Cow::Borrowed("TCP"),
        "udp" => Cow::Borrowed("UDP"),
        "sctp" => Cow::Borrowed("SCTP"),
        other => Cow::Owned(other.to_ascii_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_every_u16_as_display_does() {
        for n in (0..=u16::MAX)
            .step_by(7)
            .chain([0, 9, 10, 99, 100, u16::MAX])
        {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn upper_is_ascii_uppercase() {
        for p in ["tcp", "udp", "sctp", "Other"] {
            assert_eq!(upper(p), p.to_ascii_uppercase());
        }
        assert_eq!(joined(&["a", "", "bc"]), "abc");
    }
}
