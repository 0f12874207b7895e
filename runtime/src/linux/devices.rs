//! Device nodes in the container's /dev: the default set every container gets, the config's
//! `linux.devices`, and the standard symlinks. In a user namespace mknod is not allowed, so
//! the host's node is bind-mounted instead, as runc does.

use std::ffi::CString;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{Linux, LinuxDeviceType};

use crate::error::Context;
use crate::Result;

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
pub fn create(rootfs: &Path, devices: &[Device], bind: bool) -> Result<()> {
    let old = nix::sys::stat::umask(Mode::empty());
    let r = devices.iter().try_for_each(|d| create_one(rootfs, d, bind));
    nix::sys::stat::umask(old);
    r
}

fn create_one(rootfs: &Path, d: &Device, bind: bool) -> Result<()> {
    let dest = super::securepath::resolve_in_root(rootfs, &d.path)
        .map_err(|e| crate::Error::Invalid(format!("linux.devices: {e}")))?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
    }
    let _ = std::fs::remove_file(&dest);
    if bind {
        std::fs::File::create(&dest).ctx(|| format!("create {}", dest.display()))?;
        nix::mount::mount(Some(&d.path), &dest, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .ctx(|| format!("bind device {} from the host", d.path.display()))?;
        return Ok(());
    }
    let devno = nix::sys::stat::makedev(d.major, d.minor);
    nix::sys::stat::mknod(&dest, d.kind, Mode::from_bits_truncate(d.mode), devno)
        .ctx(|| format!("mknod {}", d.path.display()))?;
    let c = CString::new(dest.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: valid C string; chmod is needed because mknod's mode is filtered by the umask
    // only when one is set, and the node must carry exactly `fileMode`.
    if unsafe { libc::chmod(c.as_ptr(), d.mode) } != 0 {
        return Err(crate::Error::io(
            format!("chmod {}", d.path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    std::os::unix::fs::chown(&dest, Some(d.uid), Some(d.gid)).ctx(|| format!("chown {}", d.path.display()))
}

/// The /dev symlinks of the runtime spec, and /dev/ptmx pointing into the devpts instance.
pub fn create_symlinks(rootfs: &Path) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
        ("pts/ptmx", "dev/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "dev/core"));
    }
    for (target, name) in links {
        let p = rootfs.join(name);
        if name == "dev/ptmx" {
            let _ = std::fs::remove_file(&p);
        }
        match symlink(target, &p) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(crate::Error::io(format!("symlink /{name}"), e));
            }
            _ => {}
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
