//! Paths inside a container's rootfs, resolved by the kernel and used by fd (the
//! CVE-2021-30465 class). A string resolved once and used later can be redirected by a symlink
//! swapped in between (a process of another container sharing the volume, or the image itself
//! racing us): mount, mkdir or mknod would then act on the host. Here every lookup is an
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from an fd on the rootfs, so symlinks are
//! followed as the container will see them and can never leave the rootfs, and every action
//! takes the resulting fd (`/proc/self/fd/N` as a mount target, `mkdirat`, `openat`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

use crate::{Error, Result};

/// A rootfs directory, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// A resolved path inside the root: its fd, and its path for messages.
#[derive(Debug)]
pub struct Target {
    pub fd: OwnedFd,
    /// The path as the container names it, for messages.
    pub inside: PathBuf,
}

impl Target {
    /// `/proc/self/fd/N`: a path the kernel resolves to exactly this file (the host's /proc,
    /// before pivot_root), for the syscalls that take a path (mount, mount_setattr).
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Where the kernel says this fd is, for messages and checks.
    pub fn real_path(&self) -> PathBuf {
        std::fs::read_link(self.proc_path()).unwrap_or_else(|_| self.inside.clone())
    }
}

/// Dangling symlinks followed while making one path, as the kernel's limit for a lookup.
const MAX_LINKS: usize = 40;

enum Made {
    Done(Target),
    Via(PathBuf),
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open rootfs {}", path.display()), e))?;
        // SAFETY: a new fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Root { fd, path: path.into() })
    }

    /// `inside` (as the container names it) resolved in the root, or the errno (ENOENT when a
    /// component is missing).
    pub fn resolve(&self, inside: &Path) -> std::result::Result<Target, Errno> {
        let fd = openat2_in_root(self.fd.as_raw_fd(), &relative(inside), libc::O_PATH)?;
        Ok(Target {
            fd,
            inside: inside.into(),
        })
    }

    /// What `inside` is, its last component not followed (the ones before it resolved in the
    /// root): a symlink there is seen as one.
    pub fn lstat(&self, inside: &Path) -> std::result::Result<nix::sys::stat::FileStat, Errno> {
        let fd = openat2_in_root(self.fd.as_raw_fd(), &relative(inside), libc::O_PATH | libc::O_NOFOLLOW)?;
        nix::sys::stat::fstat(fd.as_raw_fd())
    }

    /// `inside` resolved in the root and opened for reading.
    pub fn open_file(&self, inside: &Path) -> std::result::Result<OwnedFd, Errno> {
        openat2_in_root(self.fd.as_raw_fd(), &relative(inside), libc::O_RDONLY)
    }

    /// `inside` resolved in the root, creating missing directories (0755) on the way, each by
    /// `mkdirat` on the fd of its resolved parent. With `file`, the last component is made an
    /// empty file (a bind mount target for a file) when missing. A dangling symlink on the way
    /// (an image's `/etc/resolv.conf -> ../run/...`) is followed in the root and its target made.
    pub fn make(&self, inside: &Path, file: bool) -> Result<Target> {
        // `..` that would climb out is refused when the config is planned; here it is clamped
        // at the root, as the kernel does for RESOLVE_IN_ROOT.
        let mut path = clean(inside);
        for _ in 0..MAX_LINKS {
            match self.make_once(&path, file)? {
                Made::Done(mut t) => {
                    t.inside = inside.into();
                    self.check_inside(&t)?;
                    return Ok(t);
                }
                Made::Via(next) => path = next,
            }
        }
        Err(Error::sys(
            format!("create {} in the container", inside.display()),
            Errno::ELOOP,
        ))
    }

    /// One walk down `path` (clean, absolute); `Via` when a dangling symlink was met: the walk
    /// to redo with it substituted.
    fn make_once(&self, path: &Path, file: bool) -> Result<Made> {
        let err = |what: &str, e: Errno| Error::sys(format!("{what} {} in the container", path.display()), e);
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut parent = self.resolve(Path::new("/")).map_err(|e| err("open", e))?;
        for (i, name) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let prefix: PathBuf = Path::new("/").join(parts[..=i].iter().collect::<PathBuf>());
            let next = match self.resolve(&prefix) {
                Ok(t) => t,
                Err(Errno::ENOENT) => {
                    let c = CString::new(name.as_bytes()).map_err(|_| err("name", Errno::EINVAL))?;
                    let r = if last && file {
                        create_file_at(parent.fd.as_raw_fd(), &c)
                    } else {
                        // SAFETY: a valid dirfd and C string.
                        Errno::result(unsafe { libc::mkdirat(parent.fd.as_raw_fd(), c.as_ptr(), 0o755) }).map(drop)
                    };
                    match r {
                        Ok(()) => {}
                        Err(Errno::EEXIST) => {
                            // A dangling symlink (or a racing creator): follow the link, in the root.
                            if let Ok(target) = nix::fcntl::readlinkat(Some(parent.fd.as_raw_fd()), c.as_c_str()) {
                                let base = prefix.parent().unwrap_or(Path::new("/"));
                                let rest: PathBuf = parts[i + 1..].iter().collect();
                                return Ok(Made::Via(clean(&base.join(Path::new(&target)).join(rest))));
                            }
                        }
                        Err(e) => return Err(err("create", e)),
                    }
                    self.resolve(&prefix).map_err(|e| err("resolve", e))?
                }
                Err(e) => return Err(err("resolve", e)),
            };
            parent = next;
        }
        Ok(Made::Done(parent))
    }

    /// Defence in depth: the kernel's own name for the target lies under the rootfs.
    fn check_inside(&self, t: &Target) -> Result<()> {
        let real = t.real_path();
        if real.starts_with(&self.path) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{} resolves to {}, outside the rootfs {}",
                t.inside.display(),
                real.display(),
                self.path.display()
            )))
        }
    }
}

/// An empty file `name` in `dir`, never through a symlink (O_NOFOLLOW | O_EXCL).
fn create_file_at(dir: RawFd, name: &CString) -> std::result::Result<(), Errno> {
    // SAFETY: a valid dirfd and C string; the fd is closed at once.
    let fd = Errno::result(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    })?;
    // SAFETY: the fd we just opened.
    unsafe { libc::close(fd) };
    Ok(())
}

/// `p` made absolute and lexically clean, `..` clamped at the root (as RESOLVE_IN_ROOT does).
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `p` relative to the root ("." for the root itself).
fn relative(p: &Path) -> PathBuf {
    let r: PathBuf = p.components().filter(|c| !matches!(c, Component::RootDir)).collect();
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    }
}

/// struct open_how of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(dirfd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS).
pub fn openat2_in_root(dirfd: RawFd, path: &Path, flags: i32) -> std::result::Result<OwnedFd, Errno> {
    openat2(dirfd, path, flags, libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS)
}

/// openat2(dirfd, path, flags | O_NOFOLLOW | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS):
/// `path` as it is written, beneath `dirfd`, with no symlink followed anywhere on the way (a
/// caller that resolves an overlay's symlinks itself reads layers this way).
pub fn openat2_literal(dirfd: RawFd, path: &Path, flags: i32) -> std::result::Result<OwnedFd, Errno> {
    openat2(
        dirfd,
        path,
        flags | libc::O_NOFOLLOW,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    )
}

fn openat2(dirfd: RawFd, path: &Path, flags: i32, resolve: u64) -> std::result::Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    loop {
        // SAFETY: a valid dirfd, C string and open_how of the size we pass.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match Errno::result(r) {
            // The kernel asks for a retry when a rename raced the lookup.
            Err(Errno::EAGAIN) => continue,
            // SAFETY: a new fd we own.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wrun-inroot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_absolute_symlink_is_followed_inside_the_root_and_dirs_are_made_there() {
        let root = tmp("abs");
        let outside = tmp("abs-outside");
        std::fs::create_dir_all(root.join("rootfs")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("rootfs/link")).unwrap();
        let r = Root::open(&root.join("rootfs")).unwrap();
        let t = r.make(Path::new("/link/sub"), false).unwrap();
        assert!(t.real_path().starts_with(root.join("rootfs")), "{:?}", t.real_path());
        assert!(!outside.join("sub").exists(), "a directory was made outside the root");
        let inner = root.join("rootfs").join(outside.strip_prefix("/").unwrap()).join("sub");
        assert!(inner.is_dir(), "{inner:?}");
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_relative_symlink_climbing_out_stays_in_the_root() {
        let root = tmp("rel");
        std::fs::create_dir_all(root.join("rootfs/a")).unwrap();
        std::os::unix::fs::symlink("../../../../../../tmp", root.join("rootfs/a/up")).unwrap();
        let r = Root::open(&root.join("rootfs")).unwrap();
        let t = r.make(Path::new("/a/up/x"), false).unwrap();
        assert_eq!(t.real_path(), root.join("rootfs/tmp/x"));
        let t = r.make(Path::new("/a/../../../b"), false).unwrap();
        assert_eq!(t.real_path(), root.join("rootfs/b"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_dangling_relative_link_gets_its_target_made_in_the_root() {
        let root = tmp("dangling");
        std::fs::create_dir_all(root.join("rootfs/etc")).unwrap();
        std::os::unix::fs::symlink("../run/resolve/stub.conf", root.join("rootfs/etc/resolv.conf")).unwrap();
        let r = Root::open(&root.join("rootfs")).unwrap();
        let t = r.make(Path::new("/etc/resolv.conf"), true).unwrap();
        assert_eq!(t.real_path(), root.join("rootfs/run/resolve/stub.conf"));
        assert!(root.join("rootfs/run/resolve/stub.conf").is_file());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_file_target_is_made_empty_and_never_through_a_dangling_link_outside() {
        let root = tmp("file");
        std::fs::create_dir_all(root.join("rootfs/etc")).unwrap();
        let host = tmp("file-host").join("victim");
        std::os::unix::fs::symlink(&host, root.join("rootfs/etc/hosts")).unwrap();
        let r = Root::open(&root.join("rootfs")).unwrap();
        let t = r.make(Path::new("/etc/hosts"), true).unwrap();
        assert!(!host.exists(), "the dangling link made a file outside the root");
        assert!(t.real_path().starts_with(root.join("rootfs")));
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(host.parent().unwrap()).unwrap();
    }
}
