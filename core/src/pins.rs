//! SPEC 3, Mapping 2-5: the rules that send a container to one server
//! (named volumes, previous location, volumes_from, a network container)
//! and how they, with `VIKING_SERVER`, must agree.

use std::collections::BTreeSet;

use crate::cluster::Cluster;
use crate::error::{DecisionError, Pin};
use crate::request::{NetworkMode, Request};

/// The `by` of the pin `VIKING_SERVER` makes.
const VIKING_SERVER: &str = "VIKING_SERVER";

/// Where the container must go, if anywhere, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Restriction {
    Anywhere,
    /// `VIKING_SERVER` names this server (pins, if any, agree).
    VikingServer(String),
    /// Pins send it to this server.
    Pinned(String),
}

impl Restriction {
    pub fn server(&self) -> Option<&str> {
        match self {
            Restriction::Anywhere => None,
            Restriction::VikingServer(s) | Restriction::Pinned(s) => Some(s),
        }
    }
}

/// Collects the pins and checks them against each other and the inventory.
/// `down` names servers to treat as down beside those whose record says so.
pub(crate) fn restriction(
    cluster: &Cluster,
    req: &Request,
    down: &BTreeSet<String>,
) -> Result<Restriction, DecisionError> {
    let mut pins: Vec<Pin> = Vec::new();
    let viking = req
        .viking_server
        .as_ref()
        .map(|(host, path)| (host.to_string(), path));
    if let Some((host, path)) = &viking {
        if cluster.server(host).is_none() {
            return Err(DecisionError::UnknownServer {
                path: path.to_string(),
                hostname: host.clone(),
            });
        }
        pins.push(Pin {
            by: VIKING_SERVER.into(),
            server: host.clone(),
        });
    }
    let mut seen_volumes: BTreeSet<&str> = BTreeSet::new();
    for (volume, _) in &req.named_volumes {
        if !seen_volumes.insert(volume) {
            continue;
        }
        if let Some(server) = cluster.volume_server(volume) {
            pins.push(Pin {
                by: format!("volume {volume}"),
                server: server.to_string(),
            });
        }
    }
    if let Some(name) = &req.name {
        if req.has_volume {
            if let Some(previous) = cluster.route(&name.id) {
                pins.push(Pin {
                    by: format!("previous location of {}", name.id),
                    server: previous.server.clone(),
                });
            }
        }
    }
    for (source, path) in &req.volumes_from {
        let route = live_source(cluster, source, path)?;
        pins.push(Pin {
            by: format!("volumes_from {source}"),
            server: route.to_string(),
        });
    }
    if let NetworkMode::Container(other) = &req.network {
        let server = live_source(cluster, other, "container.HostConfig.NetworkMode")?;
        pins.push(Pin {
            by: format!("network container:{other}"),
            server: server.to_string(),
        });
    }

    let Some(first) = pins.first() else {
        return Ok(Restriction::Anywhere);
    };
    if pins.iter().any(|p| p.server != first.server) {
        return Err(DecisionError::ConflictingPins { pins });
    }
    let Some(server) = cluster.server(&first.server) else {
        return Err(DecisionError::PinnedServerUnavailable {
            pin: first.clone(),
            down: false,
        });
    };
    if server.down || down.contains(&server.hostname) {
        // A pin means what the container needs (its data, its network) is
        // on that server, so no other will do. `VIKING_SERVER`, always the
        // first pin when set, is only a choice: alone, routing rejects the
        // server as `down` and the answer is `no_eligible_server`.
        if let Some(pin) = pins.get(usize::from(viking.is_some())) {
            return Err(DecisionError::PinnedServerUnavailable {
                pin: pin.clone(),
                down: true,
            });
        }
    }
    Ok(match viking {
        Some((host, _)) => Restriction::VikingServer(host),
        None => Restriction::Pinned(first.server.clone()),
    })
}

fn live_source<'c>(cluster: &'c Cluster, name: &str, path: &str) -> Result<&'c str, DecisionError> {
    cluster
        .live_route(name)
        .map(|r| r.server.as_str())
        .ok_or_else(|| DecisionError::UnknownContainer {
            path: path.to_string(),
            name: name.to_string(),
        })
}
