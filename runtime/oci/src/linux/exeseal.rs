//! The runtime's own binary, out of a container's reach (the CVE-2019-5736 class).
//!
//! A container can see a wrun process at three moments: the init before it execs, a `wrun
//! exec` child before it execs, and a wasm guest for its whole life. And when the container's
//! `/bin/sh` is a script starting `#!/proc/self/exe`, the kernel runs *our* binary inside the
//! container at the exec. Each gives `/proc/PID/exe`: a handle on the file we run from. If that
//! is the host's wrun on a writable filesystem, a process in the container that keeps the
//! handle can reopen it for writing once we have exited, and replace the runtime the host runs
//! next.
//!
//! So the verbs that make such processes (`create`, `run`, `exec`, and the front end's
//! `container run|start|restart|exec|create`) first re-exec from a view
//! of the binary that cannot be written through: a read-only overlay of its directory, mounted
//! detached (fsopen + fsmount: it is in no mount table, and goes away with the last process
//! that runs from it). An overlay without an upper layer has no way to write to its lower
//! files, so even a container that clears the mount's read-only flag gains nothing. Where the
//! kernel refuses the overlay, a detached read-only bind of the file (open_tree +
//! mount_setattr), and last a sealed memfd copy (as crun and youki do; it costs a copy of the
//! binary per start). A binary that already runs from a read-only mount or a sealed memfd (an
//! install on a read-only `/usr`, or after the re-exec) is left alone.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use wrun_sys::syscall as sys;

/// Set across the re-exec, so a kernel that reports our new image as writable after all
/// cannot make us re-exec forever.
const SEALED_ENV: &str = "_WRUN_EXE_SEALED";
/// The binary's path on the host, passed across the re-exec: the sealed view's own path names
/// nothing on the host, and the monitor binary is found beside the original.
const PATH_ENV: &str = "_WRUN_EXE_PATH";

static ORIGINAL: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// The host path of the binary we run: the one we were started from, also after the re-exec
/// from a sealed view.
pub fn original_exe() -> std::io::Result<std::path::PathBuf> {
    match ORIGINAL.get() {
        Some(p) => Ok(p.clone()),
        None => std::fs::read_link("/proc/self/exe"),
    }
}

/// Whether a command line (without the program name) names a verb whose processes a
/// container can see: `create`, `run` or `exec`, found past the global flags and their values.
pub fn needs_sealing(args: &[std::ffi::OsString]) -> bool {
    const WITH_VALUE: [&str; 4] = ["--root", "--log", "--log-format", "--data-root"];
    let mut it = args.iter().map(|a| a.to_str().unwrap_or(""));
    let mut front = false;
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(&a) {
            it.next();
        } else if !a.starts_with('-') {
            // The front end's `container` verbs that start containers or processes in them.
            if !front && a == "container" {
                front = true;
                continue;
            }
            return if front {
                matches!(a, "run" | "start" | "restart" | "exec" | "create" | "step")
            } else {
                // `build` runs its RUN steps in containers.
                matches!(a, "create" | "run" | "exec" | "build")
            };
        }
    }
    false
}

/// Re-execs this process from a sealed view of its binary unless it already runs from one.
/// Returns only when no re-exec happened (already sealed, or no way to seal: then with a
/// warning on stderr, as this runs before logging is set up, and the caller goes on
/// unprotected rather than not at all).
pub fn ensure() {
    let again = std::env::var_os(SEALED_ENV).is_some();
    let path = std::env::var_os(PATH_ENV);
    std::env::remove_var(PATH_ENV);
    if again {
        std::env::remove_var(SEALED_ENV);
        if let Some(p) = path {
            let _ = ORIGINAL.set(p.into());
        }
    }
    match is_sealed() {
        Ok(true) => return,
        Ok(false) if again => {
            eprintln!("wrun: warning: the re-executed wrun still runs from a writable image; going on unsealed");
            return;
        }
        Ok(false) => {}
        Err(e) => {
            eprintln!("wrun: warning: cannot inspect /proc/self/exe ({e}); going on unsealed");
            return;
        }
    }
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("wrun: warning: readlink /proc/self/exe: {e}; going on unsealed");
            return;
        }
    };
    std::env::set_var(PATH_ENV, &exe);
    if let Some(errors) = exec_sealed(&exe) {
        std::env::remove_var(PATH_ENV);
        eprintln!(
            "wrun: warning: cannot run {} from a read-only image ({errors}); going on unsealed",
            exe.display()
        );
    }
}

/// Execs `exe` with our arguments from a sealed view of it: the mechanisms in order (only the
/// one `WRUN_EXE_SEAL` names, if set; `off` for none). Returns only when none worked, with
/// what each said (`None` for `off`).
fn exec_sealed(exe: &Path) -> Option<String> {
    // WRUN_EXE_SEAL names one mechanism (or `off`): for the start benchmarks, which compare them
    // in one run, and for a host where one of them misbehaves.
    let only = std::env::var("WRUN_EXE_SEAL").ok();
    if only.as_deref() == Some("off") {
        return None;
    }
    let mut errors = Vec::new();
    for (_, how, open) in VIEWS
        .into_iter()
        .filter(|(name, _, _)| only.as_deref().is_none_or(|o| o == *name))
    {
        match open(exe) {
            Ok(fd) => {
                let e = reexec(&fd);
                errors.push(format!("{how}: execveat: {e}"));
            }
            Err(e) => errors.push(format!("{how}: {e}")),
        }
    }
    Some(errors.join("; "))
}

type View = fn(&Path) -> nix::Result<OwnedFd>;

/// The ways to a view that cannot be written through, best first: name, description, opener.
const VIEWS: [(&str, &str, View); 3] = [
    ("overlay", "read-only overlay", overlay_view),
    ("bind", "read-only bind", bind_view),
    ("memfd", "sealed memfd", memfd_copy),
];

/// A view of `exe` that cannot be written through (the first mechanism that works, as for
/// our own binary), for running a helper binary from; the error says what each mechanism said.
pub fn sealed_view(exe: &Path) -> Result<OwnedFd, String> {
    let mut errors = Vec::new();
    for (_, how, open) in VIEWS {
        match open(exe) {
            Ok(fd) => return Ok(fd),
            Err(e) => errors.push(format!("{how}: {e}")),
        }
    }
    Err(errors.join("; "))
}

/// Whether the file we run from cannot be written through: on a read-only mount, a memfd
/// sealed against writes, or, for a caller without root, a root-owned file it may not write.
/// Such a caller's containers hold only its own uid and ids its user namespace maps from its
/// subordinate ranges, and capabilities held in a user namespace do not reach a file whose
/// owner that namespace does not map: nothing in the container can write the binary, and the
/// copy a memfd would cost on every start buys nothing (a wrun the user owns is still sealed).
pub fn is_sealed() -> nix::Result<bool> {
    let fd = nix::fcntl::open(
        "/proc/self/exe",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::statvfs::fstatvfs(&fd)?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(true);
    }
    let cannot_write = || nix::unistd::access("/proc/self/exe", nix::unistd::AccessFlags::W_OK).is_err();
    if !nix::unistd::geteuid().is_root() && nix::sys::stat::fstat(fd.as_raw_fd())?.st_uid == 0 && cannot_write() {
        return Ok(true);
    }
    // Uid 0 in a user namespace (the rootless session) that cannot write it: its owner is not
    // mapped there (CAP_DAC_OVERRIDE and CAP_FOWNER would reach any mapped owner), so nothing
    // in the session or its containers can write or chmod it either.
    if wrun_sys::userns::in_user_namespace() && nix::unistd::geteuid().is_root() && cannot_write() {
        return Ok(true);
    }
    // SAFETY: F_GET_SEALS takes no argument; EINVAL for files that are not memfds.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    Ok(seals >= 0 && seals & libc::F_SEAL_WRITE != 0)
}

fn cstr(p: &Path) -> nix::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `exe` opened (O_PATH) through a detached, read-only overlay of its directory. The overlay
/// needs a second lower layer when it has no upper: an empty detached tmpfs.
fn overlay_view(exe: &Path) -> nix::Result<OwnedFd> {
    let (dir, name) = split(exe)?;
    let empty_fs = sys::fsopen(c"tmpfs")?;
    let empty = sys::fsmount(empty_fs.as_raw_fd(), sys::MOUNT_ATTR_RDONLY)?;
    let ovl = sys::fsopen(c"overlay")?;
    let lower = format!("{}:/proc/self/fd/{}", dir.display(), empty.as_raw_fd());
    sys::fsconfig_set(
        ovl.as_raw_fd(),
        c"lowerdir",
        &CString::new(lower).map_err(|_| Errno::EINVAL)?,
    )?;
    let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOSUID;
    let mnt = sys::fsmount(ovl.as_raw_fd(), attrs)?;
    open_path(mnt.as_raw_fd(), &name)
}

/// `exe` opened (O_PATH) through a detached, read-only bind mount of the file alone.
fn bind_view(exe: &Path) -> nix::Result<OwnedFd> {
    let tree = sys::open_tree_clone(&cstr(exe)?, false)?;
    sys::mount_setattr(
        tree.as_raw_fd(),
        c"",
        libc::AT_EMPTY_PATH as u32,
        sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOSUID,
        0,
        None,
    )?;
    Ok(tree)
}

/// A copy of `exe` in a memfd sealed against every change.
fn memfd_copy(exe: &Path) -> nix::Result<OwnedFd> {
    let src = std::fs::File::open(exe).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let len = src.metadata().map(|m| m.len()).unwrap_or(0);
    // SAFETY: a valid C string and flags; the returned fd is owned by us.
    let fd =
        Errno::result(unsafe { libc::memfd_create(c"wrun".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })?;
    // SAFETY: a new fd we own.
    let mem = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut left = len;
    while left > 0 {
        // SAFETY: valid fds; a null offset reads from the source's file position.
        let n = Errno::result(unsafe {
            libc::sendfile(mem.as_raw_fd(), src.as_raw_fd(), std::ptr::null_mut(), left as usize)
        })?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        left -= n as u64;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: a valid memfd created with MFD_ALLOW_SEALING.
    Errno::result(unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(mem)
}

fn split(exe: &Path) -> nix::Result<(&Path, CString)> {
    let dir = exe.parent().ok_or(Errno::EINVAL)?;
    let name = exe.file_name().ok_or(Errno::EINVAL)?;
    Ok((dir, CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?))
}

fn open_path(dir: RawFd, name: &CStr) -> nix::Result<OwnedFd> {
    // SAFETY: a valid fd and C string; the returned fd is owned by us.
    let fd = Errno::result(unsafe { libc::openat(dir, name.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// execveat(fd, "", argv, env + SEALED_ENV, AT_EMPTY_PATH): returns only on failure.
fn reexec(fd: &OwnedFd) -> Errno {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            CString::new(kv.as_bytes()).unwrap_or_default()
        })
        .collect();
    env.push(CString::new(format!("{SEALED_ENV}=1")).unwrap_or_default());
    let argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect();
    // SAFETY: argv and envp are null-terminated arrays of valid C strings that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::result(r).err().unwrap_or(Errno::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verbs_to_seal_are_found_past_global_flags_and_their_values() {
        let args = |s: &str| {
            s.split_whitespace()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert!(needs_sealing(&args("--root /r --log-format json run -b x id")));
        assert!(needs_sealing(&args("--root=/r --debug exec id sh")));
        assert!(!needs_sealing(&args("--log run state id")));
        assert!(!needs_sealing(&args("--help")));
        assert!(needs_sealing(&args("container --data-root /d run --rm img")));
        assert!(needs_sealing(&args("--debug container run img")));
        assert!(!needs_sealing(&args("container ls -a")));
        assert!(!needs_sealing(&args("container --data-root run ls")));
    }

    #[test]
    fn a_binary_splits_into_its_directory_and_name() {
        let (dir, name) = split(Path::new("/usr/local/bin/wrun")).unwrap();
        assert_eq!(dir, Path::new("/usr/local/bin"));
        assert_eq!(name.as_c_str(), c"wrun");
    }
}
