//! Space an image carries for nothing: files one layer adds and a later layer deletes. The
//! deletion (a whiteout) hides them, but the earlier layer still holds them, so every pull
//! and every disk still pays for them: docker's "chain your RUN commands" lesson, computed.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use wrun_image::store::{Image, Store};
use wrun_sys::inroot::openat2_literal;

use crate::{Error, Result};

/// Files visited in one layer, at most (a hostile layer cannot make the walk endless).
const MAX_VISITS: usize = 1_000_000;
/// Directory levels walked, at most: a RUN step can nest directories thousands deep, and each
/// level is a frame of these recursive walks (what lies deeper is not counted).
const MAX_DEPTH: usize = 128;

/// `bytes` in `files` files that layer `added_in` holds and layer `deleted_in` deletes
/// (indices from 0, bottom first); `paths` are the deleted paths, a few of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waste {
    pub added_in: usize,
    pub deleted_in: usize,
    pub bytes: u64,
    pub files: u64,
    pub paths: Vec<PathBuf>,
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        p,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {}", p.display()), e))?;
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The whiteouts of a layer: (path, opaque?) — a 0/0 device deletes one path, an opaque
/// directory everything below it that lower layers had.
fn whiteouts(dir: &OwnedFd, at: &Path, out: &mut Vec<(PathBuf, bool)>, visits: &mut usize) -> Result<()> {
    if at.components().count() >= MAX_DEPTH {
        return Ok(());
    }
    let dup = nix::unistd::dup(dir.as_raw_fd()).map_err(|e| Error::sys("dup", e))?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| Error::sys(format!("list {}", at.display()), e))?;
    let mut subdirs = Vec::new();
    for e in d.iter() {
        let e = e.map_err(|e| Error::sys(format!("list {}", at.display()), e))?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        *visits += 1;
        if *visits > MAX_VISITS {
            return Ok(());
        }
        let st = match fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(_) => continue,
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFCHR if st.st_rdev == 0 => out.push((at.join(name), false)),
            libc::S_IFDIR => subdirs.push(name.to_owned()),
            _ => {}
        }
    }
    for name in subdirs {
        let Ok(fd) = openat2_literal(dir.as_raw_fd(), Path::new(&name), libc::O_RDONLY | libc::O_DIRECTORY) else {
            continue;
        };
        if super::layers::is_opaque(&fd) {
            out.push((at.join(&name), true));
        }
        whiteouts(&fd, &at.join(&name), out, visits)?;
    }
    Ok(())
}

/// Regular files' bytes and count under `fd` (a file or a directory of a layer).
fn size_of(fd: OwnedFd, visits: &mut usize) -> (u64, u64) {
    size_at(fd, visits, 0)
}

fn size_at(fd: OwnedFd, visits: &mut usize, depth: usize) -> (u64, u64) {
    let Ok(st) = nix::sys::stat::fstat(fd.as_raw_fd()) else {
        return (0, 0);
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => (st.st_size as u64, 1),
        libc::S_IFDIR => {
            let raw = fd.into_raw_fd();
            let Ok(mut d) = nix::dir::Dir::from_fd(raw) else {
                return (0, 0);
            };
            let dfd = d.as_raw_fd();
            let names: Vec<std::ffi::OsString> = d
                .iter()
                .flatten()
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
                .filter(|n| n != "." && n != "..")
                .collect();
            let (mut b, mut n) = (0, 0);
            for name in names {
                *visits += 1;
                if *visits > MAX_VISITS {
                    break;
                }
                if let Ok(c) = openat2_literal(dfd, Path::new(&name), libc::O_PATH) {
                    let c = match nix::sys::stat::fstat(c.as_raw_fd()) {
                        Ok(s) if s.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                            match openat2_literal(dfd, Path::new(&name), libc::O_RDONLY | libc::O_DIRECTORY) {
                                Ok(fd) => fd,
                                Err(_) => continue,
                            }
                        }
                        _ => c,
                    };
                    if depth + 1 >= MAX_DEPTH {
                        continue;
                    }
                    let (x, y) = size_at(c, visits, depth + 1);
                    b += x;
                    n += y;
                }
            }
            (b, n)
        }
        _ => (0, 0),
    }
}

/// For every layer from `from` on that deletes what an earlier layer from `from` on added:
/// how much is deleted. Pairs with nothing are left out.
pub fn deleted_later(store: &Store, img: &Image, from: usize) -> Result<Vec<Waste>> {
    let dirs: Vec<PathBuf> = img.layer_keys()?.iter().map(|k| store.layer_dir(k)).collect();
    let mut out = Vec::new();
    for j in from.max(1)..dirs.len() {
        let top = open_dir(&dirs[j])?;
        let mut wh = Vec::new();
        let mut visits = 0;
        whiteouts(&top, Path::new(""), &mut wh, &mut visits)?;
        if wh.is_empty() {
            continue;
        }
        for (i, lower) in dirs.iter().enumerate().take(j).skip(from) {
            let ldir = open_dir(lower)?;
            let mut w = Waste {
                added_in: i,
                deleted_in: j,
                bytes: 0,
                files: 0,
                paths: Vec::new(),
            };
            for (p, opaque) in &wh {
                let rel = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p.as_path()
                };
                let flags = if *opaque {
                    libc::O_RDONLY | libc::O_DIRECTORY
                } else {
                    libc::O_PATH
                };
                let Ok(fd) = openat2_literal(ldir.as_raw_fd(), rel, flags) else {
                    continue;
                };
                let fd = match nix::sys::stat::fstat(fd.as_raw_fd()) {
                    Ok(s) if s.st_mode & libc::S_IFMT == libc::S_IFDIR && !*opaque => {
                        match openat2_literal(ldir.as_raw_fd(), rel, libc::O_RDONLY | libc::O_DIRECTORY) {
                            Ok(fd) => fd,
                            Err(_) => continue,
                        }
                    }
                    _ => fd,
                };
                let (b, n) = size_of(fd, &mut visits);
                if n > 0 {
                    w.bytes += b;
                    w.files += n;
                    if w.paths.len() < 3 {
                        w.paths.push(Path::new("/").join(p));
                    }
                }
            }
            if w.files > 0 {
                out.push(w);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_nested_past_the_depth_limit_is_walked_only_to_it() {
        let d = std::env::temp_dir().join(format!("wrun-waste-deep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut p = d.clone();
        for _ in 0..(MAX_DEPTH + 20) {
            p.push("a");
        }
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(d.join("a/top"), b"12345").unwrap();
        std::fs::write(p.join("deep"), b"1234567890").unwrap();
        let (mut wh, mut visits) = (Vec::new(), 0);
        whiteouts(&open_dir(&d).unwrap(), Path::new(""), &mut wh, &mut visits).unwrap();
        // The shallow file counts; the one past the limit does not.
        assert_eq!(size_of(open_dir(&d).unwrap(), &mut 0), (5, 1));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
