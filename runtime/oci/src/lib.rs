//! wrun: an OCI runtime for native Linux and WebAssembly containers.
//! The library behind the `wrun` binary (crate wrun-cli, `runtime/cli`): spec loading, container
//! state, the lifecycle verbs, the init and the setup it drives in the container, and the
//! native/wasm seam. Kernel mechanics usable from any process are in wrun-sys (`runtime/sys`).

pub mod atomicfile;
pub mod container;
pub mod error;
pub mod linux;
pub mod logging;
pub mod spec;
pub mod state;
pub mod workload;

pub use error::{Error, Kind as ErrorKind, Result};
/// RFC 3339 timestamps (kept at this path for the crate's users; the code is in wrun-sys).
pub use wrun_sys::timefmt;
