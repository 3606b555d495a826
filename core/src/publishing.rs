//! SPEC 3, Mapping 1 and Routing 4: which host ports a container needs on a
//! server, whether the server can give them, and which ones it gets.

use std::collections::{BTreeMap, BTreeSet};

use crate::explain::Reason;
use crate::hosts::Listed;
use crate::port::HostPortRequest;
use crate::port_set::PortSet;
use crate::request::{NetworkMode, Request};
use crate::server::Server;

/// The host side of every port the container publishes, in link order (one
/// request per binding, or a single `Any` for a port that is only exposed),
/// with what the eligibility check needs counted once per decision.
pub(crate) struct HostPorts {
    pub requests: Vec<HostPortRequest>,
    /// The exact host ports asked for, each once.
    exact: Vec<u16>,
    /// How many ports the server's range must supply.
    any: u32,
    /// Whether a binding asks for a host-port range, which needs a trial run.
    ranges: bool,
}

impl HostPorts {
    pub fn of(req: &Request) -> HostPorts {
        let requests: Vec<HostPortRequest> = match req.network {
            NetworkMode::Published => req
                .ports
                .iter()
                .flat_map(|p| {
                    let explicit: Vec<HostPortRequest> =
                        p.bindings.iter().map(|b| b.host).collect();
                    if explicit.is_empty() {
                        vec![HostPortRequest::Any]
                    } else {
                        explicit
                    }
                })
                .collect(),
            // Host networking binds each exposed port on the server itself.
            NetworkMode::Host => req
                .ports
                .iter()
                .map(|p| HostPortRequest::Explicit(p.port.num, p.port.num))
                .collect(),
            NetworkMode::Container(_) => Vec::new(),
        };
        let mut exact = Vec::new();
        let mut seen = BTreeSet::new();
        let mut any = 0;
        let mut ranges = false;
        for r in &requests {
            match *r {
                HostPortRequest::Explicit(lo, hi) if lo == hi => {
                    if seen.insert(lo) {
                        exact.push(lo);
                    }
                }
                HostPortRequest::Explicit(..) => ranges = true,
                HostPortRequest::Any => any += 1,
            }
        }
        HostPorts {
            requests,
            exact,
            any,
            ranges,
        }
    }

    /// Why `server` cannot give these ports, or None when it can. Exact
    /// ports are checked one by one; the count of ports to pick is checked
    /// against the free count of the range, and only host-port ranges need a
    /// trial run.
    /// Asked for every server: the common case (no ports, or only ports
    /// from the range) is answered here, inlined into routing's walk.
    #[inline(always)]
    pub fn rejection(&self, c: &Listed) -> Option<Reason<'static>> {
        if self.requests.is_empty() {
            return None;
        }
        if self.exact.is_empty() && !self.ranges {
            // Only ports from the range: the free count routing keeps.
            return (self.any > c.hot.free_in_range).then_some(Reason::NoFreePort);
        }
        self.rejection_of_exact(c)
    }

    /// [`HostPorts::rejection`] when exact ports or host-port ranges are asked for.
    #[inline(never)]
    fn rejection_of_exact(&self, c: &Listed) -> Option<Reason<'static>> {
        let (server, used) = (c.server(), &c.usage().ports);
        if let Some(p) = self.exact.iter().find(|p| used.contains(**p)) {
            return Some(Reason::PortTaken(*p));
        }
        if self.ranges {
            return self.assign(server, used).err();
        }
        let (lo, hi) = server.port_range;
        let reserved_here = self.exact.iter().filter(|p| (lo..=hi).contains(*p)).count() as u32;
        if self.any > used.free_in_range().saturating_sub(reserved_here) {
            return Some(Reason::NoFreePort);
        }
        None
    }

    /// The host port of each request, in order, on the chosen server. Exact
    /// ports come first, so that ports picked from a range step around them;
    /// then each range or `Any` takes the lowest port free both on the server and
    /// earlier in this decision.
    pub fn assign(&self, server: &Server, used: &PortSet) -> Result<Vec<u16>, Reason<'static>> {
        let requests = &self.requests;
        let mut taken = PortSet::default();
        for r in requests {
            if let HostPortRequest::Explicit(lo, hi) = *r {
                if lo == hi {
                    taken.insert(lo);
                }
            }
        }
        // Where the next search of each range starts: every port below it
        // was used or taken when the last one was picked, and still is, so
        // n picks from one range cost one walk over it, not n.
        let mut resume: BTreeMap<(u16, u16), u16> = BTreeMap::new();
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            let (lo, hi, why) = match *r {
                HostPortRequest::Explicit(lo, hi) if lo == hi => {
                    out.push(lo);
                    continue;
                }
                HostPortRequest::Explicit(lo, hi) => (lo, hi, Reason::RangeTaken(lo, hi)),
                HostPortRequest::Any => {
                    let (lo, hi) = server.port_range;
                    (lo, hi, Reason::NoFreePort)
                }
            };
            let from = resume.get(&(lo, hi)).copied().unwrap_or(lo);
            let p = used.first_free(from, hi, &taken).ok_or(why)?;
            taken.insert(p);
            if let Some(next) = p.checked_add(1) {
                resume.insert((lo, hi), next);
            }
            out.push(p);
        }
        Ok(out)
    }
}
