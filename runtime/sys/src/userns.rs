//! The rootless session: one user namespace (the caller as 0, its `/etc/subuid` range as
//! 1..N) and a mount namespace owned by it, made once, kept alive by a pause process and
//! joined by every later command, user namespace first and then the mount namespace (as
//! podman does). What one command mounts there, the next one still sees, and the store's
//! owners keep one meaning: container uid X is host uid `subuid + X - 1`.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::Context;
use crate::{Error, Result};

/// Set in the pause process's environment: `main` turns such a process into the pause loop,
/// and a pid file is trusted only if its process carries it.
pub const PAUSE_ENV: &str = "_WRUN_PAUSE";
/// Set for the commands that run inside: `UID:GID` of the user on the host.
pub const INSIDE_ENV: &str = "_WRUN_ROOTLESS";

/// Whether this process is in a user namespace other than the initial one: its uid_map is
/// not the identity over every id (runc's `RunningInUserNS`). Read each time: `enter` moves
/// the process.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|t| {
        let f: Vec<&str> = t.split_whitespace().collect();
        f != ["0", "0", "4294967295"]
    })
}

/// Without real root: a uid other than 0, or uid 0 in a user namespace (a rootless session, a
/// container). What the initial namespace owns (cgroups, device numbers, root's files,
/// `trusted.*` xattrs) is out of reach either way.
pub fn rootless() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// The host uid and gid of the user whose rootless session this process runs in (`enter`
/// set them; believed only for uid 0 in a user namespace, since outside one root is root).
pub fn session_user() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() || !in_user_namespace() {
        return None;
    }
    let v = std::env::var(INSIDE_ENV).ok()?;
    let (u, g) = v.split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

/// The user whose files and directories are the caller's: the session's user inside a
/// rootless session, else the effective uid (None for real root).
pub fn unprivileged_user() -> Option<u32> {
    let uid = nix::unistd::geteuid().as_raw();
    if uid != 0 {
        return Some(uid);
    }
    session_user().map(|(u, _)| u)
}

/// Where a user without root keeps wrun's data, as podman keeps a user's storage:
/// `$XDG_DATA_HOME/wrun`, else `~/.local/share/wrun`; None for real root.
pub fn user_data_dir() -> Option<PathBuf> {
    unprivileged_user()?;
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("XDG_DATA_HOME")
        .map(|d| d.join("wrun"))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/wrun")))
}

/// The pause process's whole life: nothing but waiting to be killed. Called first in `main`.
pub fn pause_if_asked() {
    if std::env::var_os(PAUSE_ENV).is_some_and(|v| v == "1") {
        loop {
            // SAFETY: pause takes no arguments.
            unsafe { libc::pause() };
        }
    }
}

/// The ranges of `/etc/subuid` (or subgid) text for the user `name` with id `id`.
pub fn sub_ranges(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?);
            (who == name || who == id.to_string()).then_some((start, count))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The map text: the caller's own id as 0, then its ranges from 1 on.
pub fn session_map(own: u32, ranges: &[(u32, u32)]) -> String {
    let mut out = format!("0 {own} 1\n");
    let mut next = 1u64;
    for (start, count) in ranges {
        out += &format!("{next} {start} {count}\n");
        next += u64::from(*count);
    }
    out
}

/// Where the session stands after `enter`.
pub struct Session {
    /// The pause process holding the namespaces.
    pub pause_pid: i32,
    /// Whether this call made it (false: joined an existing one).
    pub made: bool,
    /// A warning for the user (a single-id map: images owned by other ids will not unpack).
    pub warning: Option<String>,
}

/// Enter the session of the user running this (single-threaded) process: join the one whose
/// pause pid is in `dir/pause.pid`, or make one. Afterwards the process is uid 0 and gid 0 in
/// the session's user namespace, in its mount namespace, with `INSIDE_ENV` set.
pub fn enter(dir: &Path) -> Result<Session> {
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(|| format!("rootless session: {}", dir.display()))?;
    // A directory someone else made (a planted /tmp/wrun-UID) would hold our pid file.
    let md = std::fs::symlink_metadata(dir).ctx(|| format!("rootless session: {}", dir.display()))?;
    if md.uid() != uid || !md.is_dir() {
        return Err(Error::Invalid(format!(
            "rootless session: {} is not a directory of uid {uid} (owned by uid {}): refused; set \
             XDG_RUNTIME_DIR to a directory of yours",
            dir.display(),
            md.uid()
        )));
    }
    let pid_file = dir.join("pause.pid");
    let mut warning = None;
    let (pid, made) = match existing_pause(&pid_file, uid) {
        Some(p) => (p, false),
        None => {
            let name = nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default();
            let read = |f: &str| std::fs::read_to_string(f).unwrap_or_default();
            let (ur, gr) = (
                sub_ranges(&read("/etc/subuid"), &name, uid),
                sub_ranges(&read("/etc/subgid"), &name, gid),
            );
            if ur.is_empty() || gr.is_empty() {
                warning = Some(format!(
                    "no range for {name} in /etc/subuid and /etc/subgid: the session maps your own id \
                     only, and images whose files belong to other ids will not unpack \
                     (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name})"
                ));
            }
            let (um, gm) = if warning.is_some() {
                (session_map(uid, &[]), session_map(gid, &[]))
            } else {
                (session_map(uid, &ur), session_map(gid, &gr))
            };
            let pid = spawn_pause(&um, &gm)?;
            match publish(&pid_file, pid, uid) {
                Ok(winner) if winner == pid => (pid, true),
                Ok(winner) => {
                    // Another command made one at the same time and published first: ours goes.
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                    warning = None;
                    (winner, false)
                }
                Err(e) => {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                    return Err(e);
                }
            }
        }
    };
    join(pid)?;
    std::env::set_var(INSIDE_ENV, format!("{uid}:{gid}"));
    Ok(Session {
        pause_pid: pid,
        made,
        warning,
    })
}

/// End the session whose pause pid is in `dir/pause.pid` (from inside it or from the host):
/// its pause process is killed, so the namespaces go once the commands still in them end.
/// Whether there was one.
pub fn end(dir: &Path) -> Result<bool> {
    let pid_file = dir.join("pause.pid");
    // The user's processes are uid 0 as seen from inside the session, its own uid outside.
    let Some(pid) = existing_pause(&pid_file, nix::unistd::geteuid().as_raw()) else {
        return Ok(false);
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
        .ctx(|| format!("rootless session: end the pause process {pid}"))?;
    let _ = std::fs::remove_file(&pid_file);
    Ok(true)
}

/// The pid in `pid_file` if it is still the pause process that was published: the same pid
/// *and start time* (a pid reused since, even by a process of this user that carries
/// `PAUSE_ENV` in its environment, as a container's process may, is never joined: joining
/// would put the next command, and the user's terminal, in that process's namespaces), owned
/// by this user, with the marker in its environment.
fn existing_pause(pid_file: &Path, uid: u32) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let mut f = text.split_whitespace();
    let (pid, start): (i32, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    let live = crate::pidfd::proc_stat(pid).is_some_and(|(state, t)| t == start && state != 'Z');
    (live && is_pause(pid, uid)).then_some(pid)
}

fn is_pause(pid: i32, uid: u32) -> bool {
    let owned = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid);
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    owned
        && env
            .split(|b| *b == 0)
            .any(|kv| kv == format!("{PAUSE_ENV}=1").as_bytes())
}

/// Make the user and mount namespaces with a child that becomes the pause process.
fn spawn_pause(uid_map: &str, gid_map: &str) -> Result<i32> {
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "rootless session: pipe".into())?;
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "rootless session: pipe".into())?;
    let exe = CString::new("/proc/self/exe").unwrap_or_default();
    let argv0 = CString::new("wrun-pause").unwrap_or_default();
    let env = CString::new(format!("{PAUSE_ENV}=1")).unwrap_or_default();
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as libc::c_ulong;
    // SAFETY: the caller is single-threaded; the child only makes syscalls and execs or _exits.
    let pid = unsafe { crate::syscall::clone_fork(flags) }.ctx(|| "rootless session: clone a user namespace".into())?;
    if pid == 0 {
        drop(go_w);
        drop(ready_r);
        let mut b = [0u8; 1];
        let root_gid = nix::unistd::Gid::from_raw(0);
        let root_uid = nix::unistd::Uid::from_raw(0);
        // SAFETY: reading one byte from our pipe end.
        let ok = unsafe { libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) } == 1
            && nix::unistd::setresgid(root_gid, root_gid, root_gid).is_ok()
            && nix::unistd::setresuid(root_uid, root_uid, root_uid).is_ok()
            // Host mounts still reach the session; its own stay in it.
            && nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
                None::<&str>,
            )
            .is_ok()
            && nix::unistd::chdir("/").is_ok();
        if ok {
            // Forked again, so the pause process is nobody's child: the command run next in
            // the session (a shell that waits for every child, say) never waits for it.
            // SAFETY: this child is single-threaded.
            match unsafe { libc::fork() } {
                0 => {
                    let _ = nix::unistd::setsid();
                    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                        for fd in 0..3 {
                            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
                        }
                    }
                    // SAFETY: exec with NULL-terminated arrays of valid C strings.
                    unsafe {
                        let argv = [argv0.as_ptr(), std::ptr::null()];
                        let envp = [env.as_ptr(), std::ptr::null()];
                        libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
                        libc::_exit(1);
                    }
                }
                pause if pause > 0 => {
                    // SAFETY: four bytes to our pipe end.
                    unsafe { libc::write(ready_w.as_raw_fd(), pause.to_ne_bytes().as_ptr().cast(), 4) };
                }
                _ => {}
            }
        }
        // SAFETY: the child's only exit.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) }
    }
    drop(go_r);
    drop(ready_w);
    let fail = |e: Error| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        e
    };
    crate::idmap::write_id_maps(pid, uid_map, gid_map).map_err(|e| fail(e.within("rootless session")))?;
    nix::unistd::write(go_w.as_fd(), b"1").map_err(|e| fail(Error::sys("rootless session: start", e)))?;
    let mut b = [0u8; 4];
    let mut ready = std::fs::File::from(ready_r);
    let got = ready.read_exact(&mut b);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    if got.is_err() {
        return Err(Error::Invalid(
            "rootless session: the namespace holder failed to set up (setresuid, mount propagation)".into(),
        ));
    }
    Ok(i32::from_ne_bytes(b))
}

/// Write `pid` and its start time to `pid_file` unless a live pause process is published there already; the
/// published one's pid is returned (ours when we won).
fn publish(pid_file: &Path, pid: i32, uid: u32) -> Result<i32> {
    let tmp = pid_file.with_extension(format!("{pid}.tmp"));
    let start = crate::pidfd::proc_stat(pid)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::Invalid("rootless session: the pause process is gone".into()))?;
    std::fs::write(&tmp, format!("{pid} {start}\n")).ctx(|| format!("rootless session: {}", tmp.display()))?;
    loop {
        match std::fs::hard_link(&tmp, pid_file) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(other) = existing_pause(pid_file, uid) {
                    let _ = std::fs::remove_file(&tmp);
                    return Ok(other);
                }
                // A stale file (its process is gone, or is not a pause process): replaced.
                let _ = std::fs::remove_file(pid_file);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(format!("rootless session: {}", pid_file.display()), e));
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(pid)
}

/// setns into `pid`'s user namespace, then its mount namespace, and become 0:0 there.
fn join(pid: i32) -> Result<()> {
    let open = |ns: &str| -> Result<OwnedFd> {
        let p = PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
        std::fs::File::open(&p)
            .map(OwnedFd::from)
            .ctx(|| format!("rootless session: open {}", p.display()))
    };
    let (user, mnt) = (open("user")?, open("mnt")?);
    nix::sched::setns(user.as_fd(), nix::sched::CloneFlags::CLONE_NEWUSER)
        .ctx(|| "rootless session: join the user namespace (is this process multi-threaded?)".into())?;
    nix::sched::setns(mnt.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
        .ctx(|| "rootless session: join the mount namespace".into())?;
    nix::unistd::setresgid(0.into(), 0.into(), 0.into()).ctx(|| "rootless session: setgid 0".into())?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into()).ctx(|| "rootless session: setuid 0".into())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_ranges_are_found_by_name_or_id_and_mapped_from_one() {
        let text = "alice:100000:65536\nbob:165536:65536\n1000:300000:10\nalice:400000:0\n";
        let r = sub_ranges(text, "alice", 1000);
        assert_eq!(r, vec![(100000, 65536), (300000, 10)]);
        assert_eq!(session_map(1000, &r), "0 1000 1\n1 100000 65536\n65537 300000 10\n");
        assert_eq!(session_map(1000, &[]), "0 1000 1\n");
        assert!(sub_ranges(text, "carol", 1002).is_empty());
    }
}
