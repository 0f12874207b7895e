//! An image's root filesystem as an overlay mount: its unpacked layers as read-only lowers
//! (the top layer first), a per-mount upper and work directory for the writes. The layers are
//! given one `fsconfig(lowerdir+)` each (kernel 6.8+), so no option string limits the number
//! or length of the paths; an older kernel gets the classic `lowerdir=` string where it fits
//! in a page. A record under `mounts/` keeps the image from being removed or pruned while
//! the mount exists.
//!
//! Where the kernel refuses the overlay (an upper directory on a filesystem overlayfs cannot
//! write to, such as another overlay; a kernel without overlayfs; a lowerdir string past the
//! page), the same layers are mounted by `fuse-overlayfs` (Debian's), as containers-storage
//! does with its `mount_program`. `$WRUN_MOUNT_PROGRAM` names that program and makes it the
//! only way (`kernel` forbids it).

use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde_json::json;
use wrun_sys::syscall;

use super::{Image, Store};
use crate::digest::Digest;
use crate::error::Context;
use crate::{Error, Result};

/// The layout of a mount directory: `rootfs` (the overlay), `upper`, `work`.
pub fn rootfs_of(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{}: a NUL byte in the path", p.display())))
}

fn record_path(store: &Store, dir: &Path) -> PathBuf {
    let key = Digest::of(dir.as_os_str().as_bytes());
    store.root().join("mounts").join(format!("{}.json", key.hex()))
}

impl Store {
    /// Mount `img` at `dir/rootfs` (writes go to `dir/upper`); returns the rootfs path.
    pub fn mount(&self, img: &Image, dir: &Path) -> Result<PathBuf> {
        let what = format!("mount image {} at {}", img.id.short(), dir.display());
        self.mount_inner(img, dir).map_err(|e| e.within(what))
    }

    fn mount_inner(&self, img: &Image, dir: &Path) -> Result<PathBuf> {
        let _l = self.lock(true)?;
        let mut lowers = Vec::new();
        for k in img.layer_keys()?.iter().rev() {
            if !self.has_layer(k) {
                return Err(Error::NotFound(format!("layer {k}")));
            }
            lowers.push(self.layer_dir(k));
        }
        if lowers.is_empty() {
            return Err(Error::invalid("the image has no layers"));
        }
        let dir = std::path::absolute(dir).ctx(|| format!("resolve {}", dir.display()))?;
        // DIR is made 0700, as docker's and containerd's state directories are: the image's
        // setuid binaries and device nodes in DIR/rootfs are for the container, not for the
        // host's users (the CVE-2021-41091 class).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .ctx(|| format!("create {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).ctx(|| format!("chmod {}", dir.display()))?;
        let (rootfs, upper, work) = (rootfs_of(&dir), dir.join("upper"), dir.join("work"));
        for d in [&rootfs, &upper, &work] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(d)
                .ctx(|| format!("create {}", d.display()))?;
        }
        // The merged root takes the upper directory's owner and mode: a root filesystem's.
        let _ = fs::set_permissions(&upper, fs::Permissions::from_mode(0o755));
        let mounts_dir = self.root().join("mounts");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&mounts_dir)
            .ctx(|| format!("create {}", mounts_dir.display()))?;
        let record = record_path(self, &dir);
        // Not fsync'd: a record only matters while its mount exists, and no mount outlives a
        // crash (an fsync here was half of a mount's 4 ms).
        let tmp = record.with_extension("tmp");
        fs::write(&tmp, json!({"image": img.digest, "dir": dir}).to_string())
            .and_then(|()| fs::rename(&tmp, &record))
            .ctx(|| format!("write {}", record.display()))?;
        let r = match mount_program() {
            MountProgram::Kernel => overlay(&lowers, &upper, &work, &rootfs),
            MountProgram::Forced(p) => fuse_overlay(&p, &lowers, &upper, &work, &rootfs),
            MountProgram::Fallback => match overlay(&lowers, &upper, &work, &rootfs) {
                Err(e) if kernel_refused(&e) => match wrun_sys::which("fuse-overlayfs") {
                    Some(p) => fuse_overlay(&p, &lowers, &upper, &work, &rootfs).map_err(|f| {
                        Error::invalid(format!("{e}; and by fuse-overlayfs: {f}"))
                    }),
                    None => Err(Error::invalid(format!(
                        "{e} (fuse-overlayfs, which would mount it instead, is not installed: apt-get install fuse-overlayfs)"
                    ))),
                },
                r => r,
            },
        };
        if r.is_err() {
            let _ = fs::remove_file(&record);
        }
        r.map(|()| rootfs)
    }

    /// Unmount what `mount` mounted at `dir`, keeping its writes (`upper`) for a later
    /// `mount` at the same `dir` (a stopped container keeps its changes).
    pub fn unmount_keeping_writes(&self, dir: &Path) -> Result<()> {
        let dir = std::path::absolute(dir).ctx(|| format!("resolve {}", dir.display()))?;
        let rootfs = rootfs_of(&dir);
        match nix::mount::umount2(&rootfs, nix::mount::MntFlags::empty()) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("unmount {}", rootfs.display()), e)),
        }
        let _l = self.lock(true)?;
        let _ = fs::remove_file(record_path(self, &dir));
        Ok(())
    }

    /// Unmount what `mount` mounted at `dir` and remove its writes.
    pub fn unmount(&self, dir: &Path) -> Result<()> {
        let dir = std::path::absolute(dir).ctx(|| format!("resolve {}", dir.display()))?;
        let record = record_path(self, &dir);
        if !record.exists() {
            return Err(Error::NotFound(format!("an image mount at {}", dir.display())));
        }
        let rootfs = rootfs_of(&dir);
        match nix::mount::umount2(&rootfs, nix::mount::MntFlags::empty()) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("unmount {}", rootfs.display()), e)),
        }
        for d in [dir.join("upper"), dir.join("work")] {
            if d.exists() {
                fs::remove_dir_all(&d).ctx(|| format!("remove {}", d.display()))?;
            }
        }
        let _ = fs::remove_dir(&rootfs);
        let _l = self.lock(true)?;
        let _ = fs::remove_file(&record);
        Ok(())
    }

    /// Record that `who` (e.g. "container web (0123abcd)") uses `img` for as long as `path`
    /// exists: the image cannot be removed or pruned until `release(key)`. A hold whose path
    /// is gone (a crash between the two) is dropped when next read.
    pub fn hold(&self, img: &Image, key: &str, who: &str, path: &Path) -> Result<()> {
        let dir = self.root().join("holds");
        super::mkdir_private(&dir)?;
        let _l = self.lock(true)?;
        let f = hold_path(self, key)?;
        super::write_atomic(
            &f,
            json!({"image": img.digest, "who": who, "path": path})
                .to_string()
                .as_bytes(),
        )
    }

    /// Drop the hold `key` (nothing if there is none).
    pub fn release(&self, key: &str) -> Result<()> {
        let f = hold_path(self, key)?;
        let _l = self.lock(true)?;
        match fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("remove {}", f.display()), e)),
            _ => Ok(()),
        }
    }

    /// The images in use now, each with who uses it: a root filesystem mounted by `mount`
    /// ("the root filesystem mounted at DIR (unmount it first)") or a hold ("container web
    /// (0123abcd) (remove it first)"). Records whose mount or path is gone are dropped.
    pub fn images_in_use(&self) -> Vec<(Digest, String)> {
        let mut out = Vec::new();
        for (sub, is_hold) in [("mounts", false), ("holds", true)] {
            for e in fs::read_dir(self.root().join(sub)).into_iter().flatten().flatten() {
                if e.path().extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let Ok(b) = fs::read(e.path()) else { continue };
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
                    continue;
                };
                let Some(d) = v["image"].as_str().and_then(|s| Digest::parse(s).ok()) else {
                    continue;
                };
                let (live, who) = if is_hold {
                    let p = v["path"].as_str().map(PathBuf::from);
                    let who = v["who"].as_str().unwrap_or("a container");
                    (p.is_some_and(|p| p.exists()), format!("{who} (remove it first)"))
                } else {
                    let dir = v["dir"].as_str().map(PathBuf::from).unwrap_or_default();
                    (
                        is_mount_point(&rootfs_of(&dir)),
                        format!("the root filesystem mounted at {} (unmount it first)", dir.display()),
                    )
                };
                if live {
                    out.push((d, who));
                } else {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        out
    }
}

/// A hold's file: `holds/<key>.json`; the key must be a plain name.
fn hold_path(store: &Store, key: &str) -> Result<PathBuf> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Error::invalid(format!("hold key {key:?}: not a plain name")));
    }
    Ok(store.root().join("holds").join(format!("{key}.json")))
}

fn is_mount_point(p: &Path) -> bool {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    wrun_sys::mountinfo::parse(&text)
        .iter()
        .any(|m| Path::new(&m.mountpoint) == p)
}

/// Which way `mount` mounts a root filesystem (`$WRUN_MOUNT_PROGRAM`).
enum MountProgram {
    /// The kernel's overlay, and fuse-overlayfs where the kernel refuses it (the default).
    Fallback,
    /// The kernel's overlay only (`kernel`).
    Kernel,
    /// This program only (a path, or a name looked up in `$PATH`).
    Forced(PathBuf),
}

fn mount_program() -> MountProgram {
    match std::env::var_os("WRUN_MOUNT_PROGRAM") {
        None => MountProgram::Fallback,
        Some(v) if v.is_empty() => MountProgram::Fallback,
        Some(v) if v == "kernel" => MountProgram::Kernel,
        Some(v) => {
            let p = PathBuf::from(&v);
            MountProgram::Forced(if p.components().count() > 1 {
                p
            } else {
                wrun_sys::which(&p.to_string_lossy()).unwrap_or(p)
            })
        }
    }
}

/// An overlay the kernel will not make, as opposed to a failure of ours (a missing layer).
fn kernel_refused(e: &Error) -> bool {
    match e.errno() {
        Some(Errno::EINVAL | Errno::EPERM | Errno::ENODEV | Errno::EOPNOTSUPP) => true,
        Some(_) => false,
        // The lowerdir string past the page on a kernel without lowerdir+.
        None => matches!(e, Error::Invalid(m) if m.contains("page limit")),
    }
}

/// Mount the overlay of `lowers` (top first) with `upper`/`work` at `target` by `program`,
/// a fuse-overlayfs: it parses its own options, so there is no page limit, but ':' and ','
/// separate them and a path holding either is refused.
fn fuse_overlay(program: &Path, lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let mut paths = Vec::new();
    for p in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = p.to_str().filter(|s| !s.contains([':', ',', '\\']));
        let Some(s) = s else {
            return Err(Error::invalid(format!(
                "{}: a path fuse-overlayfs cannot be given (':', ',' or '\\' in it)",
                p.display()
            )));
        };
        paths.push(s.to_string());
    }
    let work = paths.pop().unwrap_or_default();
    let upper = paths.pop().unwrap_or_default();
    let mut opts = format!("lowerdir={},upperdir={upper},workdir={work}", paths.join(":"));
    // Root's mount serves every uid of the container, not root alone (fuse's default for
    // other mounters; fuse-overlayfs adds it for root too, and saying it does not depend on that).
    if nix::unistd::geteuid().is_root() {
        opts.push_str(",allow_other");
    }
    let out = std::process::Command::new(program)
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("run {}", program.display()), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // Its notices about options it ignores come first; the cause is the first other line.
        let line = err
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("unknown argument ignored"))
            .unwrap_or("");
        return Err(Error::invalid(format!(
            "{} failed ({}): {line}",
            program.display(),
            out.status
        )));
    }
    // It daemonizes once the mount is made; make sure it is there.
    if !is_mount_point(target) {
        return Err(Error::invalid(format!(
            "{} exited without mounting {}",
            program.display(),
            target.display()
        )));
    }
    Ok(())
}

/// Mount an overlay of `lowers` (top first) with `upper`/`work` at `target`.
fn overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let fs_fd = syscall::fsopen(c"overlay").map_err(|e| Error::sys("fsopen overlay", e))?;
    let set = |k: &std::ffi::CStr, v: &Path| -> Result<()> {
        syscall::fsconfig_set(fs_fd.as_raw_fd(), k, &cstring(v)?)
            .map_err(|e| Error::sys(format!("overlay {}={}", k.to_string_lossy(), v.display()), e))
    };
    let mut first = true;
    for l in lowers {
        match set(c"lowerdir+", l) {
            Ok(()) => first = false,
            Err(e) if first && e.errno() == Some(Errno::EINVAL) => {
                // A kernel before 6.8: one lowerdir= string, ':' separated, ':' and ','
                // escaped, which must fit in a page.
                let joined: Vec<String> = lowers
                    .iter()
                    .map(|p| {
                        p.to_string_lossy()
                            .replace('\\', "\\\\")
                            .replace(':', "\\:")
                            .replace(',', "\\,")
                    })
                    .collect();
                let s = joined.join(":");
                if s.len() >= 4000 {
                    return Err(Error::invalid(format!(
                        "{} layers: their paths pass the page limit of the lowerdir option on this kernel (no lowerdir+)",
                        lowers.len()
                    )));
                }
                set(c"lowerdir", Path::new(&s))?;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    set(c"upperdir", upper)?;
    set(c"workdir", work)?;
    // In a user namespace overlayfs reads its metadata from `user.overlay.*` (the layers were
    // unpacked so), and turns off redirect_dir and metacopy, which users could forge.
    if wrun_sys::userns::rootless() {
        syscall::fsconfig_set_flag(fs_fd.as_raw_fd(), c"userxattr").map_err(|e| Error::sys("overlay userxattr", e))?;
    }
    let mnt = syscall::fsmount(fs_fd.as_raw_fd(), 0).map_err(|e| Error::sys("create the overlay", e))?;
    let t = nix::fcntl::open(
        target,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {}", target.display()), e))?;
    // SAFETY: a new fd we own.
    let t = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(t) };
    syscall::move_mount_to_fd(mnt.as_raw_fd(), t.as_raw_fd())
        .map_err(|e| Error::sys(format!("mount the overlay on {}", target.display()), e))
}
