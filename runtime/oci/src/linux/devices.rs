//! Device nodes in the container's /dev: the default set every container gets, the config's
//! `linux.devices`, and the standard symlinks. In a user namespace mknod is not allowed, so
//! the host's node is bind-mounted instead, as runc does.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{Linux, LinuxDeviceType};

use crate::error::Context;
use crate::Result;
use wrun_sys::inroot::Root;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path in the container, e.g. /dev/null.
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices as the cgroup device rules name them: (type, major, minor).
pub fn cgroup_nodes(devices: &[Device]) -> Vec<(oci_spec::runtime::LinuxDeviceType, i64, i64)> {
    use oci_spec::runtime::LinuxDeviceType::{B, C};
    devices
        .iter()
        .map(|d| {
            (
                if d.kind == SFlag::S_IFBLK { B } else { C },
                d.major as i64,
                d.minor as i64,
            )
        })
        .collect()
}

fn dev(path: &str, major: u64, minor: u64) -> Device {
    Device {
        path: path.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

/// The devices every container gets (runtime-spec "Default Devices").
pub fn defaults() -> Vec<Device> {
    vec![
        dev("/dev/null", 1, 3),
        dev("/dev/zero", 1, 5),
        dev("/dev/full", 1, 7),
        dev("/dev/random", 1, 8),
        dev("/dev/urandom", 1, 9),
        dev("/dev/tty", 5, 0),
    ]
}

/// Defaults plus `linux.devices`; a configured device replaces a default with the same path.
pub fn plan(linux: &Linux) -> Vec<Device> {
    let mut out = defaults();
    for d in linux.devices().as_deref().unwrap_or_default() {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        let nd = Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        out.retain(|o| o.path != nd.path);
        out.push(nd);
    }
    out
}

/// Create `devices` under `rootfs` (host-side path of the container's /). `bind` is set in a
/// user namespace, where nodes are bind-mounted from the host.
pub fn create(root: &Root, devices: &[Device], bind: bool) -> Result<()> {
    let old = nix::sys::stat::umask(Mode::empty());
    let r = devices.iter().try_for_each(|d| create_one(root, d, bind));
    nix::sys::stat::umask(old);
    r
}

/// One node, made by fd in its directory as resolved in the root: a symlink swapped in on the
/// way or at the name is never followed to the host.
fn create_one(root: &Root, d: &Device, bind: bool) -> Result<()> {
    let err = |what: &str, e: Errno| crate::Error::sys(format!("linux.devices: {what} {}", d.path.display()), e);
    let (dir, name) = match (d.path.parent(), d.path.file_name()) {
        (Some(dir), Some(name)) => (
            dir,
            CString::new(name.as_bytes()).map_err(|_| err("name", Errno::EINVAL))?,
        ),
        _ => {
            return Err(crate::Error::Invalid(format!(
                "linux.devices: {}: not a file path",
                d.path.display()
            )))
        }
    };
    let dir = root.make(dir, false)?;
    let dirfd = dir.fd.as_raw_fd();
    // SAFETY: a valid dirfd and C string; unlinkat removes a symlink itself, never its target.
    unsafe { libc::unlinkat(dirfd, name.as_ptr(), 0) };
    if bind {
        // SAFETY: as above; O_EXCL | O_NOFOLLOW never opens through a link.
        let fd = Errno::result(unsafe {
            libc::openat(
                dirfd,
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            )
        })
        .map_err(|e| err("create", e))?;
        // SAFETY: the fd we just opened, on the empty file we made.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        let target = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        return nix::mount::mount(Some(&d.path), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .ctx(|| format!("bind device {} from the host", d.path.display()));
    }
    let devno = nix::sys::stat::makedev(d.major, d.minor);
    // SAFETY: a valid dirfd and C string. The umask is 0 (see `create`), so the node carries
    // exactly `fileMode`.
    Errno::result(unsafe { libc::mknodat(dirfd, name.as_ptr(), d.kind.bits() | d.mode, devno) })
        .map_err(|e| err("mknod", e))?;
    // SAFETY: as above; AT_SYMLINK_NOFOLLOW changes a swapped-in link, never its target.
    Errno::result(unsafe { libc::fchownat(dirfd, name.as_ptr(), d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW) })
        .map_err(|e| err("chown", e))
        .map(drop)
}

/// The /dev symlinks of the runtime spec, and /dev/ptmx pointing into the devpts instance.
pub fn create_symlinks(root: &Root) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    let dev = root.make(Path::new("/dev"), false)?;
    for (target, name) in links {
        let (t, n) = (
            CString::new(target).unwrap_or_default(),
            CString::new(name).unwrap_or_default(),
        );
        if name == "ptmx" {
            // SAFETY: a valid dirfd and C string.
            unsafe { libc::unlinkat(dev.fd.as_raw_fd(), n.as_ptr(), 0) };
        }
        // SAFETY: valid C strings and dirfd.
        match Errno::result(unsafe { libc::symlinkat(t.as_ptr(), dev.fd.as_raw_fd(), n.as_ptr()) }) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(crate::Error::sys(format!("symlink /dev/{name}"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_devices_are_added_and_replace_defaults_by_path() {
        let linux: Linux = serde_json::from_str(
            r#"{"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0},
                           {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384}]}"#,
        )
        .unwrap();
        let d = plan(&linux);
        assert_eq!(d.len(), 7);
        let fuse = d.iter().find(|d| d.path == Path::new("/dev/fuse")).unwrap();
        assert_eq!((fuse.major, fuse.minor, fuse.mode), (10, 229, 0o666));
        let null: Vec<_> = d.iter().filter(|d| d.path == Path::new("/dev/null")).collect();
        assert_eq!(null.len(), 1);
        assert_eq!(null[0].mode, 0o600);
    }
}
