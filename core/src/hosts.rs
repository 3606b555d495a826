//! The hostnames a cluster knows and what runs on each.
//!
//! Routing walks every inventory server on every decision, so the
//! inventory is one array in hostname order ([`Listed`]), each entry
//! starting with the few words routing reads of it ([`Hot`]): the walk
//! reads the array from front to back, a few instructions per server,
//! where a walk down a B-tree cost tens (docs/PERFORMANCE.md, "Issue 12,
//! third part"). Hostnames that only routes or port claims name are kept
//! apart in an ordered map, since routing never walks them.
//!
//! A new server is put in its place in the array, which moves the servers
//! after it: a store loads its inventory in hostname order, which only ever
//! appends, and a snapshot's whole inventory is sorted once
//! ([`Hosts::set_inventory`]).

use std::collections::BTreeMap;

use crate::fnv::FnvMap;
use crate::port_set::PortSet;
use crate::route::Route;
use crate::server::{Server, DEFAULT_PORT_RANGE};

/// What live routes use of one server (which need not be in the inventory).
#[derive(Debug, Clone)]
pub(crate) struct Usage {
    pub live: u64,
    /// Every host port of every live route here (`Route::host_ports`).
    pub ports: PortSet,
}

impl Usage {
    /// What a live route on this server holds: a place and its host ports.
    pub fn add(&mut self, route: &Route) {
        self.live += 1;
        for p in &route.host_ports {
            self.ports.insert(*p);
        }
    }
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            live: 0,
            ports: PortSet::new(DEFAULT_PORT_RANGE),
        }
    }
}

/// What routing reads of an inventory server on every decision, kept
/// current by [`Hosts`] after every change to the server or its usage.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hot {
    /// `containers`, else the live routes here.
    pub load: u64,
    /// The server's tags as bits of the cluster's tag dictionary.
    pub tags: u64,
    /// Free ports left in the server's `port_range`.
    pub free_in_range: u32,
    /// The server's record says `down`.
    pub down: bool,
    /// `full`, or a load at `max_containers`.
    pub full: bool,
    pub reserved: bool,
}

/// An inventory server: what routing reads of it first, then the rest,
/// boxed so that an entry of the array is a few words.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub hot: Hot,
    pub hostname: Box<str>,
    held: Box<Held>,
}

#[derive(Debug, Clone)]
struct Held {
    server: Server,
    usage: Usage,
    /// The hostname as a JSON string, as an explanation writes it.
    quoted: Box<str>,
}

impl Listed {
    fn new(server: Server, usage: Usage, tags: u64) -> Listed {
        let mut listed = Listed {
            hot: Hot {
                tags,
                ..Hot::default()
            },
            hostname: server.hostname.as_str().into(),
            held: Box::new(Held {
                quoted: crate::json_out::quoted(&server.hostname).into(),
                server,
                usage,
            }),
        };
        listed
            .held
            .usage
            .ports
            .set_range(listed.held.server.port_range);
        listed.refresh();
        listed
    }

    pub fn server(&self) -> &Server {
        &self.held.server
    }

    pub fn usage(&self) -> &Usage {
        &self.held.usage
    }

    /// The hostname as a JSON string.
    pub fn quoted(&self) -> &str {
        &self.held.quoted
    }

    /// Recomputes [`Hot`] from the record and the usage; `tags` is kept.
    fn refresh(&mut self) {
        let Held { server, usage, .. } = &*self.held;
        let load = load(server, usage.live);
        self.hot = Hot {
            load,
            tags: self.hot.tags,
            free_in_range: usage.ports.free_in_range(),
            down: server.down,
            full: server.full || server.max_containers.is_some_and(|max| load >= max),
            reserved: server.reserved,
        };
    }
}

/// A server's load with `live` routes on it: its stated `containers`, else
/// those routes.
pub(crate) fn load(server: &Server, live: u64) -> u64 {
    server.containers.unwrap_or(live)
}

/// Every hostname the cluster knows: the inventory in one array, and the
/// usage of hostnames only routes or claims name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hosts {
    listed: Vec<Listed>,
    unlisted: BTreeMap<String, Usage>,
}

impl Hosts {
    /// The inventory servers in hostname order.
    pub fn listed(&self) -> &[Listed] {
        &self.listed
    }

    fn find(&self, hostname: &str) -> Result<usize, usize> {
        self.listed
            .binary_search_by(|l| (*l.hostname).cmp(hostname))
    }

    pub fn server(&self, hostname: &str) -> Option<&Server> {
        let i = self.find(hostname).ok()?;
        Some(self.listed[i].server())
    }

    pub fn usage(&self, hostname: &str) -> Option<&Usage> {
        match self.find(hostname) {
            Ok(i) => Some(self.listed[i].usage()),
            Err(_) => self.unlisted.get(hostname),
        }
    }

    /// Changes what runs on `hostname`, which the cluster starts to know
    /// if it did not.
    pub fn change_usage(&mut self, hostname: &str, f: impl FnOnce(&mut Usage)) {
        if let Some(f) = self.change_known(hostname, f) {
            f(self.unlisted.entry(hostname.to_string()).or_default());
        }
    }

    /// Changes what runs on a hostname the cluster already knows; `f` back,
    /// not called, when it does not.
    pub fn change_known<F: FnOnce(&mut Usage)>(&mut self, hostname: &str, f: F) -> Option<F> {
        match self.find(hostname) {
            Ok(i) => {
                let listed = &mut self.listed[i];
                f(&mut listed.held.usage);
                listed.refresh();
                None
            }
            Err(_) => match self.unlisted.get_mut(hostname) {
                Some(u) => {
                    f(u);
                    None
                }
                None => Some(f),
            },
        }
    }

    /// Adds or replaces an inventory server; `tags` are its tag bits.
    pub fn upsert(&mut self, server: Server, tags: u64) {
        match self.find(&server.hostname) {
            Ok(i) => {
                let listed = &mut self.listed[i];
                listed.hot.tags = tags;
                listed.held.usage.ports.set_range(server.port_range);
                listed.held.server = server;
                listed.refresh();
            }
            Err(i) => {
                let usage = self.unlisted.remove(&server.hostname).unwrap_or_default();
                self.listed.insert(i, Listed::new(server, usage, tags));
            }
        }
    }

    /// Takes a server out of the inventory; what runs there stays known
    /// while live routes run there or, when `claimed`, a claim holds a
    /// port there. `false` when it was not in the inventory.
    pub fn remove(&mut self, hostname: &str, claimed: bool) -> bool {
        let Ok(i) = self.find(hostname) else {
            return false;
        };
        let usage = self.listed.remove(i).held.usage;
        if usage.live > 0 || claimed {
            self.unlisted.insert(hostname.to_string(), usage);
        }
        true
    }

    /// Forgets a hostname outside the inventory that nothing runs on,
    /// unless `claimed`.
    pub fn forget_if_idle(&mut self, hostname: &str, claimed: bool) {
        if claimed {
            return;
        }
        if self.unlisted.get(hostname).is_some_and(|u| u.live == 0) {
            self.unlisted.remove(hostname);
        }
    }

    /// A whole inventory at once into a cluster that has none yet, each
    /// server with its tag bits, in the order [`hostname_order`] gave for
    /// them and with no hostname twice ([`first_repeat`]): placed once,
    /// where inserting each in its place would move the array once per
    /// server.
    pub fn set_inventory(&mut self, servers: Vec<(Server, u64)>, order: &[usize]) {
        debug_assert!(self.listed.is_empty());
        let mut slots: Vec<Option<(Server, u64)>> = servers.into_iter().map(Some).collect();
        self.listed = order
            .iter()
            .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
            .map(|(server, tags)| {
                let usage = self.unlisted.remove(&server.hostname).unwrap_or_default();
                Listed::new(server, usage, tags)
            })
            .collect();
    }

    /// What the live ones of many routes use, at once: each inventory
    /// server is found through a hash table instead of a binary search,
    /// and each server's summary is recomputed once at the end.
    pub fn add_live(&mut self, routes: &[Route]) {
        // Where each live route goes, found first: the table borrows the
        // hostnames the second pass would change the entries of.
        let mut index: FnvMap<&str, u32> = FnvMap::default();
        for (i, l) in self.listed.iter().enumerate() {
            // The inventory is held in memory: fewer than 2^32 servers.
            index.insert(&l.hostname, i as u32);
        }
        let at: Vec<Option<u32>> = routes
            .iter()
            .map(|r| match r.is_live() {
                true => Some(index.get(r.server.as_str()).copied().unwrap_or(u32::MAX)),
                false => None,
            })
            .collect();
        drop(index);
        for (route, at) in routes.iter().zip(at) {
            match at {
                None => {}
                Some(u32::MAX) => self.change_usage(&route.server, |u| u.add(route)),
                Some(i) => self.listed[i as usize].held.usage.add(route),
            }
        }
        self.listed.iter_mut().for_each(Listed::refresh);
    }
}

/// The places of `servers` sorted by hostname, equal hostnames in their
/// order in `servers`.
pub(crate) fn hostname_order(servers: &[Server]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..servers.len()).collect();
    order.sort_by(|a, b| servers[*a].hostname.cmp(&servers[*b].hostname));
    order
}

/// Of the servers whose hostname an earlier one has, the first in
/// `servers`: the one adding them one by one would stop at. `order` is
/// [`hostname_order`]'s.
pub(crate) fn first_repeat(servers: &[Server], order: &[usize]) -> Option<usize> {
    order
        .windows(2)
        .filter(|w| servers[w[0]].hostname == servers[w[1]].hostname)
        .map(|w| w[1])
        .min()
}
