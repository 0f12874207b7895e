//! The lifecycle verbs over the state directory: create, start, run, state, kill, delete,
//! list. Each checks the container's status first, as runc does, so a verb applied at the
//! wrong moment is a clear error rather than a half-done action.

mod create;
mod exec;
pub mod hooks;
pub mod init;
mod ops;
mod ptyproxy;
mod resources;
pub mod startgate;

pub use create::{create, CreateOptions, Created, StartMode};
pub use exec::{exec, ExecOptions};
pub use ops::{delete, kill, list, load, run, start, wait_for_exit, Loaded};
pub use resources::{events, pause, pids, stats, stats_event, update};
