//! The host ports live routes hold on one server, indexed so that "is this
//! port free", "how many ports of the range are free" and "lowest free port"
//! do not grow with the number of routes (issue 3's 10^6-route target).
//!
//! Ports are reference-counted, because two routes may (wrongly, or once per
//! protocol) record the same number; runs of used ports are kept as merged
//! intervals, which stay few when ports are handed out lowest-first.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct PortSet {
    counts: BTreeMap<u16, u32>,
    /// start -> end (inclusive) of each maximal run of used ports.
    runs: BTreeMap<u16, u16>,
    range: (u16, u16),
    used_in_range: u32,
}

impl PortSet {
    pub fn new(range: (u16, u16)) -> PortSet {
        PortSet {
            range,
            ..PortSet::default()
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.counts.contains_key(&port)
    }

    /// Free ports left in the server's `port_range`.
    pub fn free_in_range(&self) -> u32 {
        let (lo, hi) = self.range;
        u32::from(hi - lo) + 1 - self.used_in_range
    }

    fn in_range(&self, port: u16) -> bool {
        (self.range.0..=self.range.1).contains(&port)
    }

    /// Changes the range the free count is kept for.
    pub fn set_range(&mut self, range: (u16, u16)) {
        if range == self.range {
            return;
        }
        self.range = range;
        let (lo, hi) = range;
        let mut used = 0u32;
        // Runs that start before `lo` may still reach into the range.
        let first = self.runs.range(..lo).next_back().map(|(s, e)| (*s, *e));
        let inside = self.runs.range(lo..=hi).map(|(s, e)| (*s, *e));
        for (s, e) in first.into_iter().chain(inside) {
            let (s, e) = (s.max(lo), e.min(hi));
            if s <= e {
                used += u32::from(e - s) + 1;
            }
        }
        self.used_in_range = used;
    }

    pub fn insert(&mut self, port: u16) {
        let count = self.counts.entry(port).or_insert(0);
        *count += 1;
        if *count > 1 {
            return;
        }
        if self.in_range(port) {
            self.used_in_range += 1;
        }
        let mut start = port;
        let mut end = port;
        if let Some((&s, &e)) = self.runs.range(..port).next_back() {
            if e.checked_add(1) == Some(port) {
                start = s;
            }
        }
        if let Some(next) = port.checked_add(1) {
            if let Some(e) = self.runs.remove(&next) {
                end = e;
            }
        }
        self.runs.insert(start, end);
    }

    pub fn remove(&mut self, port: u16) {
        let Some(count) = self.counts.get_mut(&port) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.counts.remove(&port);
        if self.in_range(port) {
            self.used_in_range -= 1;
        }
        let Some((&s, &e)) = self.runs.range(..=port).next_back() else {
            return;
        };
        self.runs.remove(&s);
        if s < port {
            self.runs.insert(s, port - 1);
        }
        if port < e {
            self.runs.insert(port + 1, e);
        }
    }

    /// The lowest port in `from..=to` that is used neither here nor in
    /// `taken`. Each step jumps a whole run of one set or the other.
    pub fn first_free(&self, from: u16, to: u16, taken: &PortSet) -> Option<u16> {
        let mut candidate = from;
        loop {
            if candidate > to {
                return None;
            }
            let past = self.run_end(candidate).or_else(|| taken.run_end(candidate));
            match past {
                Some(end) => candidate = end.checked_add(1)?,
                None => return Some(candidate),
            }
        }
    }

    /// The end of the run of used ports that holds `port`, if one does.
    fn run_end(&self, port: u16) -> Option<u16> {
        let (_, &end) = self.runs.range(..=port).next_back()?;
        (end >= port).then_some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(ports: &[u16]) -> PortSet {
        let mut t = PortSet::default();
        for p in ports {
            t.insert(*p);
        }
        t
    }

    #[test]
    fn runs_merge_and_split() {
        let mut s = PortSet::new((10, 20));
        for p in [10, 12, 11, 13] {
            s.insert(p);
        }
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.free_in_range(), 7);
        assert_eq!(s.first_free(10, 20, &PortSet::default()), Some(14));
        s.remove(11);
        assert_eq!(s.runs.len(), 2);
        assert_eq!(s.first_free(10, 20, &PortSet::default()), Some(11));
        assert_eq!(s.first_free(10, 20, &taken(&[11])), Some(14));
        assert_eq!(s.free_in_range(), 8);
    }

    #[test]
    fn shared_ports_stay_used_until_the_last_holder_goes() {
        let mut s = PortSet::new((1, 5));
        s.insert(3);
        s.insert(3);
        s.remove(3);
        assert!(s.contains(3));
        s.remove(3);
        assert!(!s.contains(3));
        assert_eq!(s.free_in_range(), 5);
    }

    #[test]
    fn range_change_recounts_runs_that_straddle_it() {
        let mut s = PortSet::new((1, 100));
        for p in 5..=15 {
            s.insert(p);
        }
        s.set_range((10, 12));
        assert_eq!(s.free_in_range(), 0);
        assert_eq!(s.first_free(10, 12, &PortSet::default()), None);
        s.set_range((14, 20));
        assert_eq!(s.free_in_range(), 5);
        assert_eq!(s.first_free(14, 20, &PortSet::default()), Some(16));
    }

    #[test]
    fn the_top_port_does_not_overflow() {
        let mut s = PortSet::new((65534, 65535));
        s.insert(65535);
        s.insert(65534);
        assert_eq!(s.first_free(65534, 65535, &PortSet::default()), None);
        s.remove(65535);
        assert_eq!(s.first_free(65534, 65535, &PortSet::default()), Some(65535));
    }
}
