//! wrun: an OCI runtime for native Linux and WebAssembly containers.
//! The library behind the `wrun` CLI: spec loading, container state, the lifecycle verbs and
//! the Linux setup they drive.

pub mod atomicfile;
pub mod container;
pub mod dockerflags;
pub mod error;
pub mod linux;
pub mod logging;
pub mod spec;
pub mod state;
pub mod timefmt;
pub mod workload;

pub use error::{Error, Kind as ErrorKind, Result};
