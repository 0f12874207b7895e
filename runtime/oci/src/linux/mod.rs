//! Linux mechanics of a container: namespaces, the rootfs, process attributes, capabilities,
//! seccomp, the console and the setup socket. Each file owns one kernel concern and knows
//! nothing of the lifecycle; `container::init` runs them in order.

pub mod capabilities;
pub mod console;
pub mod devices;
pub mod exeseal;
pub mod lsm;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod sync;
