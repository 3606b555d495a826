//! The most a request may ask for (docs/CONTRACT.md, "Request limits").
//!
//! Every step of a decision is linear (or n log n) in the request and the
//! inventory, but a request still costs what it asks for, and a saved
//! decision becomes one store transaction. These bounds keep both small: a
//! request over one is `invalid_request` whose message names the constant
//! and whose path points at the first entry past it. Each is far above
//! what real `docker run`/compose use sends (a few ports, volumes, links).

use crate::error::DecisionError;

/// Host ports one decision may publish (`route.host_ports`, counted per
/// binding, before duplicates are merged): each is one port claim in the
/// save's transaction, and etcd's default `--max-txn-ops` is 128. With
/// [`MAX_NAMED_VOLUMES`] claims, the route and one spare op, a save is at
/// most 100 + 20 + 2 = 122 operations.
pub const MAX_HOST_PORTS: usize = 100;

/// Distinct named volumes one request may use: each new one is a volume
/// claim in the save's transaction (see [`MAX_HOST_PORTS`]).
pub const MAX_NAMED_VOLUMES: usize = 20;

/// Bindings of one container port in `HostConfig.PortBindings` (`-p 80
/// -p 127.0.0.1::80` is two); more than a few is never needed.
pub const MAX_BINDINGS_PER_PORT: usize = 100;

/// Distinct container ports, the union of the container's and image's
/// `ExposedPorts` and the keys of `PortBindings`. Every one is published
/// unless the network is `container:<name>`, so above [`MAX_HOST_PORTS`]
/// only such a container can be decided; this bounds what is read for it.
pub const MAX_EXPOSED_PORTS: usize = 1024;

/// Entries of `HostConfig.Binds`, and separately of `HostConfig.Mounts`.
pub const MAX_MOUNTS: usize = 256;

/// Entries of `HostConfig.Links`: each copies its target's variables.
pub const MAX_LINKS: usize = 64;

/// Entries of `HostConfig.VolumesFrom`: each is a pin.
pub const MAX_VOLUMES_FROM: usize = 64;

/// Entries of the container's `Env`, and separately of the image's.
pub const MAX_ENV_ENTRIES: usize = 4096;

/// Tag rules in `VIKING_TAGS`: each is checked against every server.
pub const MAX_TAG_RULES: usize = 64;

/// `invalid_request` at `path` for a list with more than `limit` entries.
pub(crate) fn exceeded(
    path: impl Into<String>,
    what: &str,
    limit: usize,
    name: &str,
) -> DecisionError {
    DecisionError::invalid(
        path,
        format!("more than {limit} {what}: the limit is {name} = {limit}"),
    )
}

/// [`exceeded`] when `count` is over `limit`.
pub(crate) fn check(
    count: usize,
    limit: usize,
    path: &str,
    what: &str,
    name: &str,
) -> Result<(), DecisionError> {
    if count > limit {
        return Err(exceeded(path, what, limit, name));
    }
    Ok(())
}
