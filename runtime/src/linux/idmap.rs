//! User namespaces that carry the id mapping of an idmapped mount. The kernel takes the
//! mapping from a user namespace fd, so a short-lived child is made with the mapping, its
//! namespace file is opened, and the child is gone again before the container starts.

use std::os::fd::OwnedFd;

use crate::error::Context;
use crate::Result;

/// A user namespace fd with `uid_map` / `gid_map` (the /proc text form).
pub fn userns_with(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "idmap: pipe".into())?;
    // SAFETY: single-threaded caller; the child only blocks on a read and _exits.
    let pid = unsafe { super::sys::clone_fork(libc::CLONE_NEWUSER as libc::c_ulong) }
        .ctx(|| "idmap: clone user namespace".into())?;
    if pid == 0 {
        drop(w);
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r), &mut b);
        // SAFETY: the helper child's only exit.
        unsafe { libc::_exit(0) }
    }
    drop(r);
    let result = super::namespaces::write_id_maps(pid, uid_map, gid_map).and_then(|()| {
        std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .map(OwnedFd::from)
            .ctx(|| "idmap: open the user namespace".into())
    });
    drop(w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    result
}
