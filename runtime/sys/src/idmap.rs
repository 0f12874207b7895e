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
///
/// As root the maps are written directly. Without root the kernel takes only one line mapping
/// the caller's own id (and, for gid_map, only once setgroups is denied in the namespace);
/// anything else goes through the setuid helpers of Debian's `uidmap` package, `newuidmap` and
/// `newgidmap`, which check it against `/etc/subuid` and `/etc/subgid`, as runc and podman do.
pub fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<()> {
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    if uid == 0 {
        for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
            write_map(pid, file, map)?;
        }
        return Ok(());
    }
    if own_id_only(uid_map, uid) {
        write_map(pid, "uid_map", uid_map)?;
    } else {
        map_with_helper(pid, "newuidmap", "uid", uid_map)?;
    }
    if own_id_only(gid_map, gid) {
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny").ctx(|| format!("write {path} (deny)"))?;
        write_map(pid, "gid_map", gid_map)?;
    } else {
        map_with_helper(pid, "newgidmap", "gid", gid_map)?;
    }
    Ok(())
}

fn write_map(pid: i32, file: &str, map: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, map).ctx(|| format!("write {path} ({:?})", map.trim_end()))
}

/// Whether `map` is the one line an unprivileged caller may write itself: its own id, once.
pub fn own_id_only(map: &str, id: u32) -> bool {
    let lines: Vec<Vec<&str>> = map.lines().map(|l| l.split_whitespace().collect()).collect();
    lines.len() == 1 && lines[0].len() == 3 && lines[0][1] == id.to_string() && lines[0][2] == "1"
}

/// `newuidmap PID INSIDE OUTSIDE COUNT...` (or newgidmap), its refusal as one line with the fix.
fn map_with_helper(pid: i32, helper: &str, kind: &str, map: &str) -> Result<()> {
    let user = user_name();
    let file = if kind == "uid" { "/etc/subuid" } else { "/etc/subgid" };
    let Some(path) = crate::which(helper) else {
        return Err(crate::Error::Invalid(format!(
            "{kind} mappings {:?} map more than your own {kind}: that needs {helper}, which is \
             not installed (apt-get install uidmap) and {file} to give {user} a range",
            map.trim_end().replace('\n', ", ")
        )));
    };
    let mut cmd = std::process::Command::new(&path);
    cmd.arg(pid.to_string());
    cmd.args(map.split_whitespace());
    let out = cmd.output().ctx(|| format!("run {}", path.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_string();
    Err(crate::Error::Invalid(format!(
        "{kind} mappings {:?}: {helper} refused them ({first}): {file} must give {user} the \
         host {kind}s they use",
        map.trim_end().replace('\n', ", ")
    )))
}

/// The caller's login name (what /etc/subuid lists), else its uid.
fn user_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_line_of_the_callers_own_id_is_written_without_a_helper() {
        assert!(own_id_only("0 1000 1\n", 1000));
        assert!(own_id_only("1000 1000 1", 1000));
        assert!(!own_id_only("0 1000 2\n", 1000));
        assert!(!own_id_only("0 1001 1\n", 1000));
        assert!(!own_id_only("0 1000 1\n1 100000 65536\n", 1000));
        assert!(!own_id_only("", 1000));
    }
}
