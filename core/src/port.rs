//! Container port keys (`80/tcp`) and Docker's link order over them.

use std::cmp::Ordering;
use std::fmt;

use crate::error::DecisionError;

/// The protocols the Docker Engine accepts for a port.
const PROTOCOLS: [&str; 3] = ["tcp", "udp", "sctp"];

/// A container port key such as `80/tcp`; its `Ord` is Docker's link
/// order (TCP first by number, then the other protocols by name and number).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Port {
    /// The port number, 1 to 65535.
    pub num: u16,
    /// `tcp`, `udp` or `sctp`, lower-cased; `tcp` when the key has none.
    pub proto: &'static str,
}

impl Port {
    /// Parses `80`, `80/tcp`, `53/udp`; `path` names the field in errors.
    pub fn parse(spec: &str, path: &str) -> Result<Port, DecisionError> {
        let (num, proto) = match spec.split_once('/') {
            Some((n, p)) => (n, p),
            None => (spec, "tcp"),
        };
        let num = parse_port_number(num).ok_or_else(|| {
            DecisionError::invalid(
                path,
                format!("{spec:?} is not a port: the number must be 1 to 65535"),
            )
        })?;
        let proto = PROTOCOLS
            .iter()
            .find(|p| p.eq_ignore_ascii_case(proto))
            .copied()
            .ok_or_else(|| {
                DecisionError::invalid(
                    path,
                    format!("{spec:?} is not a port: the protocol must be tcp, udp or sctp"),
                )
            })?;
        Ok(Port { num, proto })
    }
}

/// A port number in decimal, 1 to 65535, digits only.
pub(crate) fn parse_port_number(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|n| *n > 0)
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.proto)
    }
}

/// Docker's link order: TCP first by number, then the other protocols by
/// name and number.
impl Ord for Port {
    fn cmp(&self, other: &Self) -> Ordering {
        let tcp_rank = |p: &Port| u8::from(p.proto != "tcp");
        tcp_rank(self)
            .cmp(&tcp_rank(other))
            .then_with(|| self.proto.cmp(other.proto))
            .then_with(|| self.num.cmp(&other.num))
    }
}

impl PartialOrd for Port {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a port binding asks of the host side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPortRequest {
    /// No `HostPort`, an empty one or `0`: the engine picks from the server's range.
    Any,
    /// `HostPort` `"8080"` or a range `"8000-8010"`, inclusive.
    Explicit(u16, u16),
}

impl HostPortRequest {
    pub fn parse(s: &str, path: &str) -> Result<HostPortRequest, DecisionError> {
        let s = s.trim();
        // Docker reads an empty host port, and port 0, as "any free port".
        if s.is_empty() || s == "0" {
            return Ok(HostPortRequest::Any);
        }
        let bad = || {
            DecisionError::invalid(
                path,
                format!("{s:?} is not a host port: expected a number from 1 to 65535 or a range such as 8000-8010"),
            )
        };
        let (lo, hi) = match s.split_once('-') {
            Some((a, b)) => (
                parse_port_number(a).ok_or_else(bad)?,
                parse_port_number(b).ok_or_else(bad)?,
            ),
            None => {
                let n = parse_port_number(s).ok_or_else(bad)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        Ok(HostPortRequest::Explicit(lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Port {
        Port::parse(s, "p").unwrap()
    }

    #[test]
    fn bare_port_means_tcp() {
        assert_eq!(p("80"), p("80/tcp"));
        assert_eq!(p("53/UDP").to_string(), "53/udp");
    }

    #[test]
    fn ports_reject_names_and_out_of_range_numbers() {
        for bad in [
            "http/tcp",
            "70000/tcp",
            "0/tcp",
            "80/icmp",
            "",
            "/tcp",
            "8000-8010/tcp",
            "+80",
        ] {
            let e = Port::parse(bad, "container.ExposedPorts").unwrap_err();
            assert_eq!(e.kind(), "invalid_request", "{bad}");
            assert!(e.to_string().starts_with("container.ExposedPorts"), "{e}");
        }
    }

    #[test]
    fn link_order_puts_tcp_first_then_protocol_name_then_number() {
        let mut ports = [
            p("53/udp"),
            p("9/sctp"),
            p("8080/tcp"),
            p("80/tcp"),
            p("7/udp"),
        ];
        ports.sort();
        let got: Vec<String> = ports.iter().map(Port::to_string).collect();
        assert_eq!(got, ["80/tcp", "8080/tcp", "9/sctp", "7/udp", "53/udp"]);
    }

    #[test]
    fn host_port_requests() {
        assert_eq!(
            HostPortRequest::parse("", "x").unwrap(),
            HostPortRequest::Any
        );
        assert_eq!(
            HostPortRequest::parse("8080", "x").unwrap(),
            HostPortRequest::Explicit(8080, 8080)
        );
        assert_eq!(
            HostPortRequest::parse("8000-8010", "x").unwrap(),
            HostPortRequest::Explicit(8000, 8010)
        );
        assert!(HostPortRequest::parse("99999", "x").is_err());
        assert!(HostPortRequest::parse("9-1", "x").is_err());
    }
}
