//! An image's layers read as overlayfs merges them, without a mount.
//!
//! A path is resolved one component at a time, top layer first, as overlayfs does: a whiteout
//! (a 0/0 character device) hides what is below it, an opaque directory
//! (`trusted.overlay.opaque`) hides the directories below it, and a symlink is followed by us,
//! in the merged tree, with `..` clamped at its root. The kernel never follows a link: each
//! lookup is `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` of a path made only of real
//! directories, beneath one layer's directory. A hostile layer (`/var/lib/dpkg -> /etc`, a
//! symlink loop, a FIFO named `status`) can make a file unreadable, never reach the host.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{fstat, FileStat, SFlag};
use wrun_image::store::{Image, Store};
use wrun_sys::inroot::openat2_literal;

use crate::{Error, Result};

/// Symlinks followed in one lookup, the kernel's limit.
const MAX_LINKS: usize = 40;
/// Entries listed from one merged directory.
const MAX_ENTRIES: usize = 200_000;

/// The layer directories of an image, bottom first.
pub struct Layers {
    dirs: Vec<(OwnedFd, PathBuf)>,
}

/// The image as it stands after its first `upto` layers.
#[derive(Clone, Copy)]
pub struct View<'a> {
    layers: &'a Layers,
    upto: usize,
}

/// A file found in the merged tree: the layer that holds it and its fd (`O_PATH`).
pub struct Found {
    pub layer: usize,
    pub fd: OwnedFd,
    pub stat: FileStat,
    /// Its path with every symlink resolved, for messages.
    pub path: PathBuf,
}

impl Layers {
    pub fn open(store: &Store, img: &Image) -> Result<Layers> {
        let mut dirs = Vec::new();
        for k in img.layer_keys()? {
            let p = store.layer_dir(&k);
            let fd = nix::fcntl::open(
                &p,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::sys(format!("layer {k}: open {}", p.display()), e))?;
            // SAFETY: a new fd we own.
            dirs.push((unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }, p));
        }
        Ok(Layers { dirs })
    }

    /// Layer directories given directly (bottom first), for tests and tools.
    pub fn from_dirs(paths: &[PathBuf]) -> Result<Layers> {
        let mut dirs = Vec::new();
        for p in paths {
            let fd = nix::fcntl::open(
                p,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::sys(format!("open {}", p.display()), e))?;
            // SAFETY: a new fd we own.
            dirs.push((
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) },
                p.clone(),
            ));
        }
        Ok(Layers { dirs })
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The whole image.
    pub fn top(&self) -> View<'_> {
        self.view(self.dirs.len())
    }

    /// The image after its first `upto` layers.
    pub fn view(&self, upto: usize) -> View<'_> {
        View {
            layers: self,
            upto: upto.min(self.dirs.len()),
        }
    }

    fn lookup(&self, layer: usize, rel: &Path, flags: i32) -> std::result::Result<OwnedFd, Errno> {
        openat2_literal(self.dirs[layer].0.as_raw_fd(), rel, flags)
    }
}

fn is_whiteout(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) == SFlag::S_IFCHR && st.st_rdev == 0
}

fn kind(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// Components of `p`, lexically cleaned with `..` clamped at the root.
fn components(p: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn join(parts: &[OsString]) -> PathBuf {
    if parts.is_empty() {
        return PathBuf::from(".");
    }
    parts.iter().collect()
}

impl View<'_> {
    /// `path` in the merged tree, symlinks followed (the last one too); None when it is not
    /// there (missing, whited out, or under a file).
    pub fn find(&self, path: &Path) -> Result<Option<Found>> {
        let mut todo = components(path);
        let mut links = 0;
        'restart: loop {
            let mut done: Vec<OsString> = Vec::new();
            let mut dir_layers: Vec<usize> = (0..self.upto).rev().collect();
            let mut i = 0;
            while i < todo.len() {
                let mut here = done.clone();
                here.push(todo[i].clone());
                let rel = join(&here);
                let mut hit = None;
                for &l in &dir_layers {
                    match self.layers.lookup(l, &rel, libc::O_PATH) {
                        Ok(fd) => {
                            let st =
                                fstat(fd.as_raw_fd()).map_err(|e| Error::sys(format!("stat {}", rel.display()), e))?;
                            hit = Some((l, fd, st));
                            break;
                        }
                        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => continue,
                        Err(e) => return Err(Error::sys(format!("open /{}", rel.display()), e)),
                    }
                }
                let Some((l, fd, st)) = hit else { return Ok(None) };
                if is_whiteout(&st) {
                    return Ok(None);
                }
                match kind(&st) {
                    libc::S_IFLNK => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(Error::invalid(format!(
                                "/{}: too many levels of symbolic links",
                                join(&todo).display()
                            )));
                        }
                        let target =
                            readlink(&fd).map_err(|e| Error::sys(format!("readlink /{}", rel.display()), e))?;
                        let mut next: Vec<OsString> = if target.as_os_str().as_bytes().starts_with(b"/") {
                            Vec::new()
                        } else {
                            done.clone()
                        };
                        next.push(target.into_os_string());
                        next.extend(todo[i + 1..].iter().cloned());
                        todo = components(&join(&next));
                        continue 'restart;
                    }
                    // The last component, whatever it is (a symlink was followed above).
                    _ if i + 1 == todo.len() => {
                        return Ok(Some(Found {
                            layer: l,
                            fd,
                            stat: st,
                            path: Path::new("/").join(&rel),
                        }))
                    }
                    libc::S_IFDIR => dir_layers = self.merge_dir(&rel, l, &dir_layers)?,
                    // A file where a directory was needed.
                    _ => return Ok(None),
                }
                done = here;
                i += 1;
            }
            // The root itself.
            let fd = self
                .layers
                .lookup(self.upto.saturating_sub(1), Path::new("."), libc::O_PATH)
                .map_err(|e| Error::sys("open the image's root", e))?;
            let st = fstat(fd.as_raw_fd()).map_err(|e| Error::sys("stat the image's root", e))?;
            return Ok(Some(Found {
                layer: self.upto.saturating_sub(1),
                fd,
                stat: st,
                path: PathBuf::from("/"),
            }));
        }
    }

    /// The layers whose directory `rel` is merged, from `top` (where it was found) down: an
    /// opaque directory is the last, a whiteout or a file ends it before.
    fn merge_dir(&self, rel: &Path, top: usize, dir_layers: &[usize]) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for &l in dir_layers.iter().filter(|&&l| l <= top) {
            let fd = match self.layers.lookup(l, rel, libc::O_RDONLY | libc::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => continue,
                // A whiteout, a file or a symlink: the directories below are hidden.
                Err(Errno::ENOTDIR) | Err(Errno::ELOOP) | Err(Errno::ENXIO) | Err(Errno::ENODEV) => break,
                Err(e) => return Err(Error::sys(format!("open /{}", rel.display()), e)),
            };
            out.push(l);
            if is_opaque(&fd) {
                break;
            }
        }
        Ok(out)
    }

    /// The regular file at `path` opened for reading, with its layer, size and resolved path;
    /// None when it is not there, an error naming it when it is not a regular file.
    pub fn open(&self, path: &Path) -> Result<Option<(usize, std::fs::File, u64, PathBuf)>> {
        let Some(f) = self.find(path)? else { return Ok(None) };
        if kind(&f.stat) != libc::S_IFREG {
            return Err(Error::invalid(format!(
                "{} (layer {}): not a regular file",
                f.path.display(),
                f.layer + 1
            )));
        }
        let rel = f.path.strip_prefix("/").unwrap_or(&f.path).to_path_buf();
        let fd = self
            .layers
            .lookup(f.layer, &rel, libc::O_RDONLY | libc::O_NONBLOCK)
            .map_err(|e| Error::sys(format!("open {}", f.path.display()), e))?;
        Ok(Some((f.layer, std::fs::File::from(fd), f.stat.st_size as u64, f.path)))
    }

    /// The regular file at `path` and the layer it is in; None when it is not there. More
    /// than `cap` bytes, or not a regular file, is an error naming it.
    pub fn read(&self, path: &Path, cap: u64) -> Result<Option<(usize, Vec<u8>)>> {
        let Some((layer, file, size, shown)) = self.open(path)? else {
            return Ok(None);
        };
        if size > cap {
            return Err(Error::invalid(format!(
                "{} (layer {}): {size} bytes, more than the {cap} read here",
                shown.display(),
                layer + 1,
            )));
        }
        let mut buf = Vec::new();
        use std::io::Read;
        file.take(cap + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("read {}", shown.display()), e))?;
        if buf.len() as u64 > cap {
            return Err(Error::invalid(format!(
                "{}: grew past {cap} bytes while read",
                shown.display()
            )));
        }
        Ok(Some((layer, buf)))
    }

    /// The names in the merged directory `dir` (whiteouts removed), sorted; empty when it is
    /// not a directory.
    pub fn list(&self, dir: &Path) -> Result<Vec<OsString>> {
        let Some(f) = self.find(dir)? else {
            return Ok(Vec::new());
        };
        if kind(&f.stat) != libc::S_IFDIR {
            return Ok(Vec::new());
        }
        let rel = f.path.strip_prefix("/").unwrap_or(&f.path).to_path_buf();
        let all: Vec<usize> = (0..self.upto).rev().collect();
        let layers = self.merge_dir(&rel, f.layer, &all)?;
        let mut seen = std::collections::BTreeMap::new();
        for l in layers {
            let fd = match self.layers.lookup(l, &rel, libc::O_RDONLY | libc::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(_) => continue,
            };
            let mut d = nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(fd))
                .map_err(|e| Error::sys(format!("list {}", f.path.display()), e))?;
            let dfd = d.as_raw_fd();
            for e in d.iter() {
                let e = e.map_err(|e| Error::sys(format!("list {}", f.path.display()), e))?;
                let name = OsStr::from_bytes(e.file_name().to_bytes()).to_owned();
                if name == "." || name == ".." || seen.contains_key(&name) {
                    continue;
                }
                let st = nix::sys::stat::fstatat(Some(dfd), name.as_os_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| Error::sys(format!("stat {}/{}", f.path.display(), name.to_string_lossy()), e))?;
                seen.insert(name, !is_whiteout(&st));
                if seen.len() > MAX_ENTRIES {
                    return Err(Error::invalid(format!(
                        "{}: more than {MAX_ENTRIES} entries",
                        f.path.display()
                    )));
                }
            }
        }
        Ok(seen.into_iter().filter(|(_, live)| *live).map(|(n, _)| n).collect())
    }
}

/// Whether the directory `fd` is opaque (`trusted.overlay.opaque=y`, or `user.overlay.opaque`
/// in a rootless store).
pub(crate) fn is_opaque(fd: &OwnedFd) -> bool {
    let mut v = [0u8; 2];
    // Asked once per process, not per directory (the answer reads /proc): layers are read
    // only by the front end's commands, which are in their user namespace (or not) from the
    // start of dispatch.
    static NAME: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    let name =
        NAME.get_or_init(|| std::ffi::CString::new(wrun_image::unpack::overlay_xattr("opaque")).unwrap_or_default());
    // SAFETY: a valid fd, a NUL-terminated name and a buffer of the length given.
    let n = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    n == 1 && v[0] == b'y'
}

fn readlink(fd: &OwnedFd) -> std::result::Result<PathBuf, Errno> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: a valid fd (O_PATH of the link itself), an empty path and a buffer of its length.
    let n = unsafe { libc::readlinkat(fd.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = Errno::result(n)? as usize;
    buf.truncate(n);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wrun-layers-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn symlinks_resolve_across_layers_and_never_leave_the_image() {
        let d = tmp("links");
        let (l0, l1) = (d.join("0"), d.join("1"));
        fs::create_dir_all(l0.join("usr/lib")).unwrap();
        fs::write(l0.join("usr/lib/os-release"), "ID=debian\n").unwrap();
        fs::create_dir_all(l1.join("etc")).unwrap();
        symlink("../usr/lib/os-release", l1.join("etc/os-release")).unwrap();
        // Out of the image, absolute and relative: both land inside it, where nothing is.
        symlink("/etc/shadow", l1.join("etc/abs")).unwrap();
        symlink("../../../../../../etc/hostname", l1.join("etc/rel")).unwrap();
        symlink("loop", l1.join("etc/loop")).unwrap();
        let ls = Layers::from_dirs(&[l0, l1]).unwrap();
        let (layer, bytes) = ls.top().read(Path::new("/etc/os-release"), 100).unwrap().unwrap();
        assert_eq!((layer, bytes.as_slice()), (0, &b"ID=debian\n"[..]));
        assert!(ls.top().read(Path::new("/etc/abs"), 100).unwrap().is_none());
        assert!(ls.top().read(Path::new("/etc/rel"), 100).unwrap().is_none());
        assert!(ls.top().read(Path::new("/etc/loop"), 100).is_err());
        // The first layer alone has no /etc.
        assert!(ls.view(1).read(Path::new("/etc/os-release"), 100).unwrap().is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: whiteouts need root (mknod, trusted xattrs)");
            return;
        }
        let d = tmp("whiteouts");
        let (l0, l1) = (d.join("0"), d.join("1"));
        fs::create_dir_all(l0.join("a")).unwrap();
        fs::create_dir_all(l0.join("b")).unwrap();
        fs::write(l0.join("a/x"), "x").unwrap();
        fs::write(l0.join("a/y"), "y").unwrap();
        fs::write(l0.join("b/z"), "z").unwrap();
        fs::create_dir_all(l1.join("a")).unwrap();
        fs::create_dir_all(l1.join("b")).unwrap();
        let c = std::ffi::CString::new(l1.join("a/x").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, 0);
        fs::write(l1.join("b/w"), "w").unwrap();
        let c = std::ffi::CString::new(l1.join("b").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and buffer.
        assert_eq!(
            unsafe {
                libc::setxattr(
                    c.as_ptr(),
                    c"trusted.overlay.opaque".as_ptr(),
                    b"y".as_ptr().cast(),
                    1,
                    0,
                )
            },
            0
        );
        let ls = Layers::from_dirs(&[l0, l1]).unwrap();
        let v = ls.top();
        assert!(v.read(Path::new("/a/x"), 10).unwrap().is_none());
        assert_eq!(v.read(Path::new("/a/y"), 10).unwrap().unwrap().0, 0);
        assert!(v.read(Path::new("/b/z"), 10).unwrap().is_none());
        assert_eq!(v.list(Path::new("/a")).unwrap(), vec![OsString::from("y")]);
        assert_eq!(v.list(Path::new("/b")).unwrap(), vec![OsString::from("w")]);
        assert_eq!(ls.view(1).list(Path::new("/b")).unwrap(), vec![OsString::from("z")]);
        fs::remove_dir_all(&d).unwrap();
    }
}
