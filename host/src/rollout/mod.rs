//! Putting policy modules into service, above the policy runtime and the
//! store (which know nothing of each other):
//!
//! - [`push`]: validate a module, then store it as the active one with its
//!   history record (`flocker policy push`, a watched `--policy-file`).
//! - [`follow`]: keep a running [`PolicyHost`](crate::policy::PolicyHost)
//!   on the store's active module, swapping it in when it changes
//!   (`flocker serve`, `flocker proxy`).
//! - [`rollback_target`]: which digest `flocker policy rollback` means.
//! - [`read_module`]: a module file, bounded before it is read.
//! - [`check`]: a module held to the contract's hard rules on generated
//!   inputs (`flocker policy check`, and a short run in every push).

pub mod check;
mod file;
mod follow;
mod push;
mod rollback;

pub use file::{read_module, ModuleFileError, MAX_MODULE_BYTES};
pub use follow::{follow, Follow, FollowEvents};
pub use push::{push, validate, PushError, Validated};
pub use rollback::{rollback_target, RollbackError};
