//! SPEC 3, Routing: which servers may take the container, and which one does.

use std::cmp::Ordering;
use std::collections::{btree_set, BTreeMap, BTreeSet};
use std::iter::Peekable;

use crate::cluster::{Cluster, TagTest};
use crate::explain::{Reason, Rejections};
use crate::hosts::Listed;
use crate::pins::Restriction;
use crate::publishing::HostPorts;
use crate::request::{Request, TagRule};
use crate::server::Server;

/// The first routing rule that removes `server`, as a code the explanation
/// renders when it is written. `down` comes right after the restriction, so
/// that a named server that is down reads `down` while the others read
/// `not VIKING_SERVER`, and before tags, load and ports: it is what an
/// operator has to fix first.
#[inline(always)]
fn rejection<'a>(
    c: &Listed,
    down: bool,
    tags: &[(TagRule<'a>, TagTest<'_>)],
    restriction: &Restriction,
    ports: &HostPorts,
) -> Option<Reason<'a>> {
    match restriction {
        Restriction::VikingServer(h) if h.as_str() != &*c.hostname => {
            return Some(Reason::NotVikingServer)
        }
        Restriction::Pinned(h) if h.as_str() != &*c.hostname => return Some(Reason::NotPinned),
        _ => {}
    }
    if down {
        return Some(Reason::Down);
    }
    for (rule, test) in tags {
        match *rule {
            TagRule::Has(t) if !c.has(*test) => return Some(Reason::MissingTag(t)),
            TagRule::HasNot(t) if c.has(*test) => return Some(Reason::HasTag(t)),
            _ => {}
        }
    }
    if c.hot.full {
        return Some(Reason::Full);
    }
    // A reserved server takes only what is sent to it by name or by a pin;
    // past the check above, a restriction always names this server.
    if c.hot.reserved && restriction.server().is_none() {
        return Some(Reason::Reserved);
    }
    ports.rejection(c)
}

/// The sort key of an eligible server: its load, then its live members of
/// the request's service. Which key wins is the [`Preference`]'s choice;
/// hostname breaks ties.
pub(crate) type SortKey = (u64, u64);

/// How routing chooses among the servers that pass every rule (SPEC 3).
/// It changes only the order of the eligible servers: which servers are
/// eligible, and everything else in a decision, is the same for each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Preference {
    /// The SPEC's rule and the default: the fewest containers, then the
    /// fewest live members of the request's service, then the smallest
    /// hostname.
    #[default]
    Spread,
    /// Fills servers before starting on the next: the most containers
    /// (among servers that are not full), then the fewest live members of
    /// the request's service, then the smallest hostname. Without
    /// `max_containers` or `full` every container lands on one server.
    Pack,
}

impl Preference {
    /// Whether a server with `key` is preferred to the best so far, `best`.
    /// Equal keys are not preferred, so the smallest hostname stays.
    fn better(self, key: SortKey, best: SortKey) -> bool {
        match self {
            Preference::Spread => key < best,
            Preference::Pack => {
                (std::cmp::Reverse(key.0), key.1) < (std::cmp::Reverse(best.0), best.1)
            }
        }
    }
}

/// Picks the server by `preference` (by default the fewest containers, then
/// the fewest live members of the same service, then the smallest hostname).
/// `down` names servers to treat as down beside those whose record says so.
/// `seen` is told each server's outcome in hostname order (its sort key, or
/// why it was removed); deciding passes a no-op, which compiles away.
/// With no server left, the error is the explanation of why.
pub(crate) fn choose<'a>(
    cluster: &'a Cluster,
    req: &Request<'a>,
    restriction: &Restriction,
    ports: &HostPorts,
    down: &BTreeSet<String>,
    preference: Preference,
    mut seen: impl FnMut(&'a Server, Result<SortKey, Reason<'a>>),
) -> Result<(&'a Listed, Rejections<'a>), Rejections<'a>> {
    let service = req.name.as_ref().map(|n| n.service.as_str());
    let servers = cluster.listed();
    let mut rejected = Rejections::new(servers);
    let mut best: Option<(SortKey, &'a Listed)> = None;
    let mut spread = Spread::new(servers, service.and_then(|s| cluster.spread(s)));
    // Mostly none is down by the caller's word: then no walk at all.
    let mut down_walk = (!down.is_empty()).then(|| down.iter().peekable());
    let tags: Vec<(TagRule<'a>, TagTest<'_>)> = req
        .tags
        .iter()
        .map(|rule| match *rule {
            TagRule::Has(t) | TagRule::HasNot(t) => (*rule, cluster.tag_test(t)),
        })
        .collect();
    for (at, c) in servers.iter().enumerate() {
        let is_down = c.hot.down
            || down_walk
                .as_mut()
                .is_some_and(|names| advance_to(names, &c.hostname));
        if let Some(reason) = rejection(c, is_down, &tags, restriction, ports) {
            seen(c.server(), Err(reason));
            rejected.push(at, reason);
            continue;
        }
        let same_service = spread.count(at);
        let key = (c.hot.load, same_service);
        seen(c.server(), Ok(key));
        // Servers come in hostname order, so a strict preference keeps the
        // smallest hostname among equal keys.
        if best
            .as_ref()
            .is_none_or(|(k, _)| preference.better(key, *k))
        {
            best = Some((key, c));
        }
    }
    match best {
        Some((_, c)) => Ok((c, rejected)),
        None => Err(rejected),
    }
}

/// Whether the ascending `names` hold `hostname`, consuming the names before
/// it: asked for each server in hostname order, the walk costs a comparison
/// or two per server however many names there are.
fn advance_to<'d>(names: &mut Peekable<btree_set::Iter<'d, String>>, hostname: &str) -> bool {
    while let Some(name) = names.peek() {
        match name.as_str().cmp(hostname) {
            Ordering::Less => {
                names.next();
            }
            Ordering::Equal => return true,
            Ordering::Greater => return false,
        }
    }
    false
}

/// Live members of the service on each server, by the server's index in
/// the (hostname-ordered) inventory. The service's map is in the same order,
/// so each of its entries is found by a galloping search forward from the
/// last one: a service on k of n servers costs about k·log(n/k) hostname
/// comparisons, and the walk over the servers compares indexes only.
struct Spread<'c> {
    listed: &'c [Listed],
    hosts: Option<std::collections::btree_map::Iter<'c, String, u64>>,
    /// The next entry's server index and count; `usize::MAX` when none is left.
    next: (usize, u64),
}

impl<'c> Spread<'c> {
    fn new(listed: &'c [Listed], map: Option<&'c BTreeMap<String, u64>>) -> Self {
        let mut spread = Spread {
            listed,
            hosts: map.map(|m| m.iter()),
            next: (0, 0),
        };
        spread.advance(0);
        spread
    }

    /// Finds the next entry whose hostname is listed, searching from `from`.
    /// Entries for servers no longer listed (routes left on a removed
    /// server) are passed over.
    fn advance(&mut self, mut from: usize) {
        self.next = (usize::MAX, 0);
        let Some(hosts) = self.hosts.as_mut() else {
            return;
        };
        for (hostname, n) in hosts.by_ref() {
            from = gallop(self.listed, from, hostname);
            match self.listed.get(from) {
                Some(c) if *c.hostname == **hostname => {
                    self.next = (from, *n);
                    return;
                }
                Some(_) => {}
                None => return,
            }
        }
    }

    /// The count for the server at `at`; indexes must be asked in ascending order.
    #[inline(always)]
    fn count(&mut self, at: usize) -> u64 {
        if at < self.next.0 {
            return 0;
        }
        // Servers the rules removed are not asked about: entries may lie
        // between the last one asked and `at`.
        if at > self.next.0 {
            self.advance(at);
            if at != self.next.0 {
                return 0;
            }
        }
        let n = self.next.1;
        self.advance(at + 1);
        n
    }
}

/// The first index at or after `from` whose hostname is not below
/// `hostname`: steps of 1, 2, 4, ... then a binary search in the last step.
fn gallop(listed: &[Listed], from: usize, hostname: &str) -> usize {
    let below = |c: &Listed| &*c.hostname < hostname;
    if !listed.get(from).is_some_and(below) {
        return from;
    }
    // `lo` is below; the answer lies in lo + 1 ..= hi.
    let (mut lo, mut step) = (from, 1usize);
    let hi = loop {
        let probe = lo.saturating_add(step);
        if !listed.get(probe).is_some_and(below) {
            break probe.min(listed.len());
        }
        lo = probe;
        step = step.saturating_mul(2);
    };
    lo + 1 + listed[lo + 1..hi].partition_point(below)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::json;

    use super::Preference;
    use crate::Cluster;

    fn chosen(cluster: &Cluster, request: &serde_json::Value, p: Preference) -> String {
        match cluster.decide_with(request, &BTreeSet::new(), p) {
            Ok(d) => d.server.hostname,
            Err(e) => format!("error: {e:?}"),
        }
    }

    #[test]
    fn pack_takes_the_most_loaded_eligible_server_and_keeps_the_rules() {
        let cluster = Cluster::from_snapshot(&json!({"inventory": [
            {"hostname": "a", "address": "10.0.0.1", "containers": 2},
            {"hostname": "b", "address": "10.0.0.2", "containers": 4},
            {"hostname": "c", "address": "10.0.0.3", "containers": 4},
            {"hostname": "d", "address": "10.0.0.4", "containers": 7, "tags": ["hdd"]},
            {"hostname": "e", "address": "10.0.0.5", "containers": 9, "max_containers": 9},
            {"hostname": "f", "address": "10.0.0.6", "containers": 8, "reserved": true},
        ]}))
        .expect("snapshot");
        let plain = json!({"name": "w.1", "container": {"Image": "w"}});
        let no_hdd =
            json!({"name": "w.1", "container": {"Image": "w", "Env": ["VIKING_TAGS=!hdd"]}});
        // e is full and f reserved under either preference.
        assert_eq!(chosen(&cluster, &plain, Preference::Pack), "d");
        // Without d, b and c tie on load: the smaller hostname.
        assert_eq!(chosen(&cluster, &no_hdd, Preference::Pack), "b");
        assert_eq!(chosen(&cluster, &plain, Preference::Spread), "a");
        // The default is the SPEC's choice, and decide's.
        assert_eq!(Preference::default(), Preference::Spread);
        let d = cluster.decide(&plain).expect("decides");
        assert_eq!(d.server.hostname, "a");
    }

    /// Tags are tested by bit for the first 64 distinct ones and by name
    /// past them; either way a rule means what `Server::has_tag` says.
    #[test]
    fn tag_rules_hold_past_the_64_tag_dictionary() {
        let inventory: Vec<serde_json::Value> = (0..70)
            .map(|i| json!({"hostname": format!("h{i:02}"), "address": "a", "tags": [format!("t{i}"), "all"]}))
            .collect();
        let cluster = Cluster::from_snapshot(&json!({ "inventory": inventory })).expect("snapshot");
        let with = |tags: &str| json!({"name": "w.1", "container": {"Image": "w", "Env": [format!("VIKING_TAGS={tags}")]}});
        for (tags, want) in [
            ("t69", "h69"),
            ("t3", "h03"),
            ("all,t66", "h66"),
            ("!t0,all", "h01"),
        ] {
            assert_eq!(
                chosen(&cluster, &with(tags), Preference::Spread),
                want,
                "{tags}"
            );
        }
        let none = cluster.decide(&with("t70")).expect_err("nobody has t70");
        assert!(none.to_string().contains("70 missing tag t70"), "{none}");
        let ranking = cluster.rank(&with("!t68")).expect("ranks");
        let removed: Vec<&str> = ranking
            .servers
            .iter()
            .filter(|r| matches!(r.verdict, crate::Verdict::Removed(_)))
            .map(|r| r.hostname.as_str())
            .collect();
        assert_eq!(removed, ["h68"]);
    }

    /// The indexed spread answers as a lookup by hostname would, for
    /// services on few or most servers, with hostnames no longer listed in
    /// the map, and with servers the rules removed left unasked.
    #[test]
    fn spread_by_index_is_the_lookup_by_hostname() {
        let inventory: Vec<serde_json::Value> = (0..200)
            .map(|i| json!({"hostname": format!("h{:03}", i * 2), "address": "a"}))
            .collect();
        let cluster = Cluster::from_snapshot(&json!({ "inventory": inventory })).expect("snapshot");
        let listed = cluster.listed();
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for trial in 0..300 {
            // From one member in a hundred servers to every one, odd
            // hostnames being servers that are not listed.
            let density = 1 + trial % 100;
            let mut map = BTreeMap::new();
            for h in 0..400 {
                if next(100) < density {
                    map.insert(format!("h{h:03}"), 1 + next(5));
                }
            }
            let asked: Vec<usize> = (0..listed.len()).filter(|_| next(4) != 0).collect();
            let mut spread = super::Spread::new(listed, Some(&map));
            for at in asked {
                let want = map.get(&*listed[at].hostname).copied().unwrap_or(0);
                assert_eq!(spread.count(at), want, "trial {trial}, server {at}");
            }
        }
        let mut none = super::Spread::new(listed, None);
        assert_eq!(none.count(0), 0);
    }
}
