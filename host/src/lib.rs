//! The flocker host: loads the policy module into wasmtime, keeps cluster
//! state in a store (embedded file or etcd), saves decisions atomically and
//! serves them to proxies.

pub mod policy;
pub mod store;
