//! Idmapped mounts. The kernel takes the mapping from a user namespace fd, so a short-lived
//! child is made with the mapping, its namespace file is opened, and the child is gone again.
//! The mount itself is cloned and idmapped here in the parent, because only the owner of the
//! source filesystem's user namespace (the host) may idmap it; the init attaches the
//! detached tree with move_mount, as runc does.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::error::Context;
use crate::Result;

/// Write uid_map and gid_map of `pid`.
pub fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<()> {
    for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, map).ctx(|| format!("write {path} ({:?})", map.trim_end()))?;
    }
    Ok(())
}

/// A user namespace fd with `uid_map` / `gid_map` (the /proc text form).
pub fn userns_with(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "idmap: pipe".into())?;
    // SAFETY: single-threaded caller; the child only blocks on a read and _exits.
    let pid = unsafe { crate::syscall::clone_fork(libc::CLONE_NEWUSER as libc::c_ulong) }
        .ctx(|| "idmap: clone user namespace".into())?;
    if pid == 0 {
        drop(w);
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r), &mut b);
        // SAFETY: the helper child's only exit.
        unsafe { libc::_exit(0) }
    }
    drop(r);
    let result = write_id_maps(pid, uid_map, gid_map).and_then(|()| {
        std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .map(OwnedFd::from)
            .ctx(|| "idmap: open the user namespace".into())
    });
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    result
}

/// A detached clone of `src` (recursive with `recursive`), idmapped with the given maps.
pub fn idmapped_tree(src: &Path, recursive: bool, uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let userns = userns_with(uid_map, gid_map)?;
    let c = CString::new(src.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let tree = crate::syscall::open_tree_clone(&c, recursive)
        .ctx(|| format!("idmapped mount: open_tree {}", src.display()))?;
    let flags = (libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 }) as u32;
    crate::syscall::mount_setattr(
        tree.as_raw_fd(),
        c"",
        flags,
        crate::syscall::MOUNT_ATTR_IDMAP,
        0,
        Some(userns.as_raw_fd()),
    )
    .ctx(|| format!("idmapped mount: mount_setattr {}", src.display()))?;
    Ok(tree)
}
