//! Linux mechanics of a container: namespaces, the rootfs, process attributes, the console
//! and cgroups. Each file owns one kernel concern; `init` runs them in order.

pub mod capabilities;
pub mod console;
pub mod devices;
pub mod exeseal;
pub mod init;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod sync;
