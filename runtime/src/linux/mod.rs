//! Linux mechanics of a container: namespaces, the rootfs, process attributes, the console
//! and cgroups. Each file owns one kernel concern; `init` runs them in order.

pub mod capabilities;
pub mod cgroups;
pub mod console;
pub mod devices;
pub mod exeseal;
pub mod idmap;
pub mod init;
pub mod inroot;
pub mod mountopts;
pub mod namespaces;
pub mod netdev;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod securepath;
pub mod sync;
pub mod sys;
