//! wrun-sys: the kernel mechanics of wrun, usable from any process. No OCI lifecycle and no
//! wasmtime live here, so the containerd shim links this crate and stays small.
//!
//! What it owns:
//! - `cgroups`: finding the hierarchies (v1, hybrid, pure v2), a container's directories,
//!   applying `linux.resources` (v1 files, v2 files, eBPF device programs), statistics,
//!   freezing, killing, OOM counters, and the memory cgroup of any process;
//! - `inroot` and `securepath`: resolving container paths inside a root by the kernel
//!   (`openat2` with `RESOLVE_IN_ROOT`) or by a checked walk;
//! - `mountopts`, `idmap`, `syscall`: mount options and flags, idmapped mounts, and the
//!   syscalls libc and nix do not wrap (the new mount API, `clone`, `pivot_root`, ...);
//! - `mountinfo`: `/proc/*/mountinfo` lines;
//! - `fdpass`, `pidfd`, `signal`: SCM_RIGHTS, process handles immune to pid reuse, and
//!   signal names as `kill` takes them;
//! - `netdev`, `cpulist`: moving network devices, CPU and node lists;
//! - `userns`: the rootless session, a user and mount namespace made once and joined later.
//!
//! Errors are this crate's own `Error`: each names what was being done and keeps the errno.

pub mod cgroups;
pub mod cpulist;
pub mod error;
pub mod fdpass;
pub mod idmap;
pub mod inroot;
pub mod mountinfo;
pub mod mountopts;
pub mod netdev;
pub mod pidfd;
pub mod securepath;
pub mod signal;
pub mod syscall;
pub mod timefmt;
pub mod userns;

pub use error::{Context, Error, Result};

/// The executable `name` in `$PATH`, then in the usual bin directories (a caller's PATH may
/// be empty or minimal: a helper such as newuidmap or pasta is still found).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/bin"].map(std::path::PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}
