//! `container cp`: files between a container and the host, as docker's cp copies them, without
//! ever letting the container's tree choose a host path (the CVE-2018-15664 class: a symlink
//! swapped in while docker resolved a path as a string; CVE-2019-14271: a helper that ran code
//! from the container). Here nothing runs in the container and nothing is resolved as a string:
//!
//! - the container side is reached from an fd on its root: `/proc/PID/root` of a running
//!   container (so its volumes and tmpfs mounts are seen as it sees them), or its root
//!   filesystem, mounted for the copy, of a stopped one. The path asked is resolved by the
//!   kernel with `openat2(RESOLVE_IN_ROOT)`: symlinks and `..` stay inside that root;
//! - below it, every entry is opened relative to its parent's fd with `O_NOFOLLOW`: a symlink
//!   is copied as a symlink, never followed, and a directory swapped for a symlink mid-copy
//!   fails the open instead of leading elsewhere;
//! - on the host, entries are made the same way below the destination the user named.
//!
//! Only directories, regular files and symlinks are copied (device nodes, FIFOs and sockets
//! are skipped, with a count). Files copied to the host lose their setuid, setgid and sticky
//! bits: a container must not be able to hand the host a setuid-root program. Files copied in
//! belong to root in the container (`-a`: the host file's owner, as docker's `--archive`).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::{Containers, Error, Result};
use wrun_image::store::Store;

/// How deep a copied tree may go: a container's tree may be built to exhaust the stack.
const MAX_DEPTH: usize = 256;

/// One side of a copy: `CONTAINER:PATH` or a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    Container { name: String, path: String },
    Host(PathBuf),
}

impl Side {
    /// docker's rule: `NAME:PATH` is a container's path unless it starts with `/` or `.` (a
    /// host path that contains a colon).
    pub fn parse(s: &str) -> Side {
        if !s.starts_with('/') && !s.starts_with('.') {
            if let Some((n, p)) = s.split_once(':') {
                if !n.is_empty() {
                    return Side::Container {
                        name: n.to_string(),
                        path: p.to_string(),
                    };
                }
            }
        }
        Side::Host(PathBuf::from(s))
    }
}

/// What a copy did.
#[derive(Debug, Default)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
    /// Device nodes, FIFOs and sockets left out.
    pub skipped: u64,
}

pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> Error {
    let what = what.into();
    move |e| Error::Io {
        what,
        source: io::Error::from_raw_os_error(e as i32),
    }
}

pub(crate) fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: a new fd from a successful open.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub(crate) fn open_at(dir: RawFd, name: &CStr, flags: OFlag, mode: u32) -> std::result::Result<OwnedFd, Errno> {
    nix::fcntl::openat(
        Some(dir),
        name,
        flags | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map(own)
}

pub(crate) fn stat_at(dir: RawFd, name: &CStr) -> std::result::Result<FileStat, Errno> {
    nix::sys::stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Who owns what a copy makes.
#[derive(Clone, Copy)]
pub(crate) struct Rules<'a> {
    /// Some: every entry gets this owner; None: the source's.
    pub owner: Option<(u32, u32)>,
    /// The permission bits kept (0o777 drops setuid, setgid and sticky).
    pub mode_mask: u32,
    /// Some: every entry gets these permission bits instead (`COPY --chmod`).
    pub mode: Option<u32>,
    /// Entries below the top for which this says true are left out (`.dockerignore`); it is
    /// given the entry's path as `shown` names it.
    pub skip: Option<&'a dyn Fn(&Path) -> bool>,
}

fn set_owner_mode(fd: &OwnedFd, st: &FileStat, r: Rules<'_>, what: &Path) -> Result<()> {
    let (uid, gid) = r.owner.unwrap_or((st.st_uid, st.st_gid));
    nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), Some(gid.into()))
        .map_err(sys(format!("chown {}", what.display())))?;
    let mode = r.mode.unwrap_or(st.st_mode & r.mode_mask);
    nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
        .map_err(sys(format!("chmod {}", what.display())))
}

/// Copy the entry `sname` of directory `sdir` to `dname` in directory `ddir` (replacing a file
/// of that name, merging into a directory of that name); `shown` names it for messages.
fn copy_entry(
    sdir: RawFd,
    sname: &CStr,
    ddir: RawFd,
    dname: &CStr,
    shown: &Path,
    (r, depth): (Rules<'_>, usize),
    out: &mut Copied,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Invalid(format!(
            "{}: more than {MAX_DEPTH} directories deep; not copied",
            shown.display()
        )));
    }
    let st = stat_at(sdir, sname).map_err(sys(format!("stat {}", shown.display())))?;
    let existing = stat_at(ddir, dname).ok();
    match kind(&st) {
        SFlag::S_IFDIR => {
            match existing.map(|e| kind(&e)) {
                None => nix::sys::stat::mkdirat(Some(ddir), dname, Mode::from_bits_truncate(0o700))
                    .map_err(sys(format!("create directory {}", shown.display())))?,
                Some(SFlag::S_IFDIR) => {}
                Some(_) => {
                    return Err(Error::Conflict(format!(
                        "{}: cannot copy a directory over something that is not one",
                        shown.display()
                    )))
                }
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let s = open_at(sdir, sname, flags, 0).map_err(sys(format!("open {}", shown.display())))?;
            let d = open_at(ddir, dname, flags, 0).map_err(sys(format!("open the copy of {}", shown.display())))?;
            for n in names_in(&s, shown)? {
                let child = shown.join(OsStr::from_bytes(n.as_bytes()));
                if r.skip.is_some_and(|f| f(&child)) {
                    continue;
                }
                copy_entry(s.as_raw_fd(), &n, d.as_raw_fd(), &n, &child, (r, depth + 1), out)?;
            }
            set_owner_mode(&d, &st, r, shown)?;
        }
        SFlag::S_IFREG => {
            if existing.is_some_and(|e| kind(&e) == SFlag::S_IFDIR) {
                return Err(Error::Conflict(format!(
                    "{}: cannot copy a file over a directory",
                    shown.display()
                )));
            }
            if existing.is_some_and(|e| kind(&e) == SFlag::S_IFLNK) {
                // Replaced, never written through.
                nix::unistd::unlinkat(Some(ddir), dname, nix::unistd::UnlinkatFlags::NoRemoveDir)
                    .map_err(sys(format!("replace {}", shown.display())))?;
            }
            let s = open_at(sdir, sname, OFlag::O_RDONLY | OFlag::O_NOFOLLOW, 0)
                .map_err(sys(format!("open {}", shown.display())))?;
            let d = open_at(
                ddir,
                dname,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW,
                0o600,
            )
            .map_err(sys(format!("write {}", shown.display())))?;
            let n = io::copy(
                &mut std::fs::File::from(s),
                &mut std::fs::File::from(d.try_clone().map_err(|e| Error::Io {
                    what: format!("write {}", shown.display()),
                    source: e,
                })?),
            )
            .map_err(|e| Error::Io {
                what: format!("copy {}", shown.display()),
                source: e,
            })?;
            set_owner_mode(&d, &st, r, shown)?;
            out.files += 1;
            out.bytes += n;
        }
        SFlag::S_IFLNK => {
            let target =
                nix::fcntl::readlinkat(Some(sdir), sname).map_err(sys(format!("read link {}", shown.display())))?;
            if let Some(e) = existing {
                if kind(&e) == SFlag::S_IFDIR {
                    return Err(Error::Conflict(format!(
                        "{}: cannot copy a symlink over a directory",
                        shown.display()
                    )));
                }
                nix::unistd::unlinkat(Some(ddir), dname, nix::unistd::UnlinkatFlags::NoRemoveDir)
                    .map_err(sys(format!("replace {}", shown.display())))?;
            }
            nix::unistd::symlinkat(target.as_os_str(), Some(ddir), dname)
                .map_err(sys(format!("create symlink {}", shown.display())))?;
            let (uid, gid) = r.owner.unwrap_or((st.st_uid, st.st_gid));
            nix::unistd::fchownat(
                Some(ddir),
                dname,
                Some(uid.into()),
                Some(gid.into()),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(sys(format!("chown {}", shown.display())))?;
            out.files += 1;
        }
        _ => out.skipped += 1,
    }
    Ok(())
}

/// The names in directory `fd` (without `.` and `..`).
fn names_in(fd: &OwnedFd, shown: &Path) -> Result<Vec<CString>> {
    let dup = fd.try_clone().map_err(|e| Error::Io {
        what: format!("read {}", shown.display()),
        source: e,
    })?;
    let mut dir = nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(dup))
        .map_err(sys(format!("read {}", shown.display())))?;
    Ok(dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect())
}

/// The parent directory and last name of `path`, as docker reads a cp path: `dir/.` (or `/`)
/// means the directory's contents.
pub(crate) fn split(path: &str) -> (PathBuf, Option<CString>) {
    let p = Path::new(path);
    let contents = path.ends_with("/.") || path == "." || p.components().all(|c| matches!(c, Component::RootDir));
    if contents {
        return (p.to_path_buf(), None);
    }
    let name = p.file_name().map(|n| n.to_os_string());
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let parent = if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent
    };
    (parent, name.and_then(|n| CString::new(n.as_bytes()).ok()))
}

/// The container's root, open: `/proc/PID/root` while it runs, else its root filesystem
/// mounted for the copy (and unmounted after, by the returned guard).
struct ContainerRoot<'a> {
    /// Always Some until dropped.
    fd: Option<OwnedFd>,
    unmount: Option<(&'a Store, PathBuf)>,
}

impl ContainerRoot<'_> {
    fn fd(&self) -> &OwnedFd {
        self.fd.as_ref().expect("open until dropped")
    }
}

impl Drop for ContainerRoot<'_> {
    fn drop(&mut self) {
        // The fd goes first: a mount it holds open would not unmount.
        drop(self.fd.take());
        if let Some((st, dir)) = self.unmount.take() {
            let _ = st.unmount_keeping_writes(&dir);
        }
    }
}

fn open_root<'a>(st: &'a Store, cs: &Containers, name: &str) -> Result<(ContainerRoot<'a>, String)> {
    let rec = cs.find(name)?;
    if let Some(pid) = cs.init_pid(&rec.id) {
        let fd = nix::fcntl::open(
            format!("/proc/{pid}/root").as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(own);
        // Still its init after the open: the pid was not reused in between.
        if let Ok(fd) = fd {
            if cs.init_pid(&rec.id) == Some(pid) {
                return Ok((
                    ContainerRoot {
                        fd: Some(fd),
                        unmount: None,
                    },
                    rec.name,
                ));
            }
        }
    }
    let dir = cs.dir_of(&rec.id);
    let rootfs = wrun_image::store::mount::rootfs_of(&dir);
    let mut unmount = None;
    if !super::run::is_mounted(&rootfs) {
        let img = st.resolve(&rec.image_id)?;
        st.mount(&img, &dir)?;
        unmount = Some((st, dir.clone()));
    }
    match nix::fcntl::open(
        &rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok((
            ContainerRoot {
                fd: Some(own(fd)),
                unmount,
            },
            rec.name,
        )),
        Err(e) => {
            if let Some((st, dir)) = unmount {
                let _ = st.unmount_keeping_writes(&dir);
            }
            Err(sys(format!("open {}", rootfs.display()))(e))
        }
    }
}

/// Resolve `path` inside the root `root` to a directory fd (following symlinks, inside it).
fn dir_in_root(root: &OwnedFd, path: &Path, shown: &str) -> Result<OwnedFd> {
    let rel: PathBuf = path.components().filter(|c| !matches!(c, Component::RootDir)).collect();
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    wrun_sys::inroot::openat2_in_root(root.as_raw_fd(), &rel, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| Error::Invalid(format!("{shown}: {}", io::Error::from_raw_os_error(e as i32))))
}

pub(crate) fn host_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(own)
    .map_err(|e| {
        Error::Invalid(format!(
            "{}: {}",
            path.display(),
            io::Error::from_raw_os_error(e as i32)
        ))
    })
}

/// Where a copy lands: the directory fd and the name to make there (None: the source's
/// contents merge into that directory). `as_dir` opens DEST itself as a directory (following
/// symlinks the way its side does: inside the container's root there); when it is one, a named
/// source goes in it under its own name, as docker's cp does.
fn destination(
    as_dir: impl Fn() -> Option<OwnedFd>,
    parent: impl FnOnce() -> Result<OwnedFd>,
    dst_name: Option<CString>,
    src_name: Option<&CStr>,
) -> Result<(OwnedFd, Option<CString>)> {
    if let Some(d) = as_dir() {
        return Ok((d, src_name.map(CStr::to_owned)));
    }
    Ok((parent()?, dst_name.or_else(|| src_name.map(CStr::to_owned))))
}

/// Copy between `from` and `to` (exactly one of them a container's); `archive`: keep owners.
pub fn copy(st: &Store, cs: &Containers, from: &Side, to: &Side, archive: bool) -> Result<Copied> {
    let mut out = Copied::default();
    match (from, to) {
        (Side::Container { name, path }, Side::Host(dst)) => {
            let (root, cname) = open_root(st, cs, name)?;
            let shown = format!("{cname}:{path}");
            let (sparent, sname) = split(if path.is_empty() { "/" } else { path });
            let sdir = dir_in_root(root.fd(), &sparent, &shown)?;
            if let Some(n) = &sname {
                stat_at(sdir.as_raw_fd(), n)
                    .map_err(|e| Error::Invalid(format!("{shown}: {}", io::Error::from_raw_os_error(e as i32))))?;
            }
            let (dparent, dname) = split(dst.to_str().unwrap_or_default());
            let (ddir, dname) = destination(|| host_dir(dst).ok(), || host_dir(&dparent), dname, sname.as_deref())?;
            // No setuid program from a container reaches the host; owners are the copier's
            // unless -a keeps the container's.
            let me = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
            let r = Rules {
                owner: (!archive).then_some(me),
                mode_mask: 0o777,
                mode: None,
                skip: None,
            };
            copy_top(
                &sdir,
                sname.as_deref(),
                &ddir,
                dname.as_deref(),
                Path::new(&shown),
                r,
                &mut out,
            )?;
        }
        (Side::Host(src), Side::Container { name, path }) => {
            let (root, cname) = open_root(st, cs, name)?;
            let shown = format!("{cname}:{path}");
            let (sparent, sname) = split(src.to_str().unwrap_or_default());
            let sdir = host_dir(&sparent)?;
            if let Some(n) = &sname {
                stat_at(sdir.as_raw_fd(), n).map_err(|e| {
                    Error::Invalid(format!("{}: {}", src.display(), io::Error::from_raw_os_error(e as i32)))
                })?;
            }
            let dpath = if path.is_empty() { "/" } else { path.as_str() };
            let (dparent, dname) = split(dpath);
            let (ddir, dname) = destination(
                || dir_in_root(root.fd(), Path::new(dpath), &shown).ok(),
                || dir_in_root(root.fd(), &dparent, &shown),
                dname,
                sname.as_deref(),
            )?;
            let r = Rules {
                owner: (!archive).then_some((0, 0)),
                mode_mask: 0o7777,
                mode: None,
                skip: None,
            };
            copy_top(&sdir, sname.as_deref(), &ddir, dname.as_deref(), src, r, &mut out)?;
        }
        _ => {
            return Err(Error::Invalid(
                "cp: one side must be CONTAINER:PATH and the other a host path".into(),
            ))
        }
    }
    Ok(out)
}

/// The top of a copy: an entry into a directory, or a directory's contents into one.
pub(crate) fn copy_top(
    sdir: &OwnedFd,
    sname: Option<&CStr>,
    ddir: &OwnedFd,
    dname: Option<&CStr>,
    shown: &Path,
    r: Rules<'_>,
    out: &mut Copied,
) -> Result<()> {
    match (sname, dname) {
        (Some(s), Some(d)) => copy_entry(sdir.as_raw_fd(), s, ddir.as_raw_fd(), d, shown, (r, 0), out),
        // A directory's contents (SRC/. or /), into DEST (a directory) or a new one.
        (None, d) => {
            let target = match d {
                Some(d) => {
                    if stat_at(ddir.as_raw_fd(), d).is_err() {
                        nix::sys::stat::mkdirat(Some(ddir.as_raw_fd()), d, Mode::from_bits_truncate(0o755))
                            .map_err(sys(format!("create {}", shown.display())))?;
                    }
                    open_at(
                        ddir.as_raw_fd(),
                        d,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                        0,
                    )
                    .map_err(sys(format!("open the copy of {}", shown.display())))?
                }
                None => ddir.try_clone().map_err(|e| Error::Io {
                    what: "dup".into(),
                    source: e,
                })?,
            };
            for n in names_in(sdir, shown)? {
                let child = shown.join(OsStr::from_bytes(n.as_bytes()));
                if r.skip.is_some_and(|f| f(&child)) {
                    continue;
                }
                copy_entry(
                    sdir.as_raw_fd(),
                    &n,
                    target.as_fd().as_raw_fd(),
                    &n,
                    &child,
                    (r, 1),
                    out,
                )?;
            }
            Ok(())
        }
        (Some(_), None) => Err(Error::Invalid(format!("{}: no destination name", shown.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_parse_as_dockers() {
        assert_eq!(
            Side::parse("web:/etc/hosts"),
            Side::Container {
                name: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(Side::parse("./a:b"), Side::Host("./a:b".into()));
        assert_eq!(Side::parse("/tmp/x:y"), Side::Host("/tmp/x:y".into()));
        assert_eq!(Side::parse("plain"), Side::Host("plain".into()));
        assert_eq!(split("/a/b"), (PathBuf::from("/a"), Some(CString::new("b").unwrap())));
        assert_eq!(split("/a/."), (PathBuf::from("/a/."), None));
        assert_eq!(split("/"), (PathBuf::from("/"), None));
        assert_eq!(split("b"), (PathBuf::from("."), Some(CString::new("b").unwrap())));
    }
}
