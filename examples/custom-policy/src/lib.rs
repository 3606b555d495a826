//! `flocker_pack_policy.wasm`: a policy module a user might write. It is
//! flocker's engine with every hard rule of the contract (pins, links,
//! tags, full servers, ports, ...), and one change: among the servers a
//! container may go to, it prefers the most loaded one, so servers fill up
//! one after another (set `max_containers` on them) and idle ones can be
//! turned off. The default module spreads instead.
//!
//! The ABI (docs/ABI.md) comes from `flocker_policy::export_policy!`, the
//! same exports the default module has; on a host target the invocation
//! expands to nothing, so the workspace still builds and lints natively.

flocker_policy::export_policy!(
    name = "flocker-pack",
    preference = flocker_core::Preference::Pack,
);
