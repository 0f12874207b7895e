//! Layer tars unpacked into a directory of their own, safely: an image's layers are
//! attacker-controlled. Every path is resolved by the kernel inside the layer directory
//! (`openat2(RESOLVE_IN_ROOT)` from an fd on it) and every object is made with an `*at` call on
//! the fd of its resolved parent, so a `..` entry, an absolute path, a symlink pointing out
//! (even one the layer itself made a moment earlier) or a hardlink to a host file can never
//! reach outside: the kernel clamps each lookup at the layer's root. A name that exists is
//! replaced, never written through (`O_EXCL | O_NOFOLLOW`).
//!
//! Whiteouts become overlayfs's: `.wh.NAME` a 0:0 character device `NAME`, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on its directory, so a layer directory is an overlay
//! lower as it is. Owners, modes (setuid and setgid included), device nodes, xattrs (not
//! `trusted.overlay.*`, which only the whiteouts set) and modification times are kept, as
//! docker and containerd keep them for root.
//!
//! Without real root (the rootless session: uid 0 of a user namespace mapping the user and its
//! subordinate ids), as containers-storage does: owners are set as the tar says and the kernel
//! shifts them into the user's range; an owner the namespace does not map is an error naming
//! /etc/subuid; device nodes are skipped (no device number can be made there, and a container
//! gets its devices bound by the runtime); the opaque xattr is `user.overlay.opaque`, which
//! overlayfs reads when mounted with `userxattr`.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use wrun_sys::inroot::openat2_in_root;

use crate::digest::{Digest, HashingReader};
pub use crate::targuard::HeaderGuard;
use crate::{Error, Result};

/// What an unpack found: the digest of the uncompressed tar (the layer's diffID) and the
/// bytes of file content it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub diff_id: Digest,
    pub size: u64,
}

/// A layer's compression, by its first bytes (media types lie; the bytes do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// `r` decompressed as its first bytes say.
pub fn decompressed<'a, R: Read + 'a>(r: R) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let head = r.fill_buf().map_err(|e| Error::io("read the layer", e))?;
    Ok(match Compression::sniff(head) {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(r)
                .map_err(|e| Error::invalid(format!("not a zstd stream: {e}")))?,
        ),
    })
}

/// Unpack the layer tar `blob` (compressed or not) into the empty directory `dest`.
pub fn unpack_layer(blob: impl Read, dest: &Path) -> Result<Unpacked> {
    unpack(blob, dest, false)
}

/// Unpack an image archive (docker save, OCI archive) to read it: regular files, directories
/// and links only, root-owned, no setuid bits, xattrs, device nodes or FIFOs (a FIFO or a
/// device named as a manifest would block or act on the host when opened), and no whiteouts.
pub fn unpack_archive(blob: impl Read, dest: &Path) -> Result<Unpacked> {
    unpack(blob, dest, true)
}

fn unpack(blob: impl Read, dest: &Path, archive_mode: bool) -> Result<Unpacked> {
    let hashed = HashingReader::new(decompressed(blob)?);
    let mut archive = tar::Archive::new(HeaderGuard::new(hashed));
    let mut u = Unpacker::new(dest)?;
    u.archive = archive_mode;
    let entries = archive
        .entries()
        .map_err(|e| Error::invalid(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::invalid(format!("a truncated or corrupt tar: {e}")))?;
        u.entry(entry)?;
    }
    u.finish()?;
    let (diff_id, _) = archive
        .into_inner()
        .into_inner()
        .finish()
        .map_err(|e| Error::invalid(format!("a truncated or corrupt layer: {e}")))?;
    Ok(Unpacked { diff_id, size: u.size })
}

/// An entry's path as components inside the layer: a leading `/` and `.` are dropped, `..`
/// is applied lexically and refused if it climbs above the root (docker's "breakout").
pub fn clean_entry_path(raw: &[u8]) -> Result<Vec<OsString>> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(Error::invalid(format!(
                        "layer entry {:?}: climbs out of the layer with '..'",
                        String::from_utf8_lossy(raw)
                    )));
                }
            }
            Component::Normal(n) => out.push(n.to_os_string()),
        }
    }
    Ok(out)
}

struct Unpacker {
    root: OwnedFd,
    /// Directories and their mtimes, set once their contents are written.
    dirs: Vec<(PathBuf, u64)>,
    size: u64,
    /// Reading an image archive, not making a layer (see `unpack_archive`).
    archive: bool,
    /// Without real root (see the module's comment).
    rootless: bool,
}

/// The xattr overlayfs reads for `name` (`opaque`): `trusted.overlay.*` for real root,
/// `user.overlay.*` without it (overlayfs mounted with `userxattr` in a user namespace; users
/// cannot set `trusted.*`). One store is always written by the same kind of caller.
pub fn overlay_xattr(name: &str) -> String {
    overlay_xattr_for(wrun_sys::userns::rootless(), name)
}

/// `overlay_xattr` for a caller that already knows whether it is rootless (asked once per
/// walk, not per directory: the answer reads /proc).
pub fn overlay_xattr_for(rootless: bool, name: &str) -> String {
    let ns = if rootless { "user" } else { "trusted" };
    format!("{ns}.overlay.{name}")
}

/// A chown the user namespace cannot do (EINVAL: the id is not mapped) as the one-line error
/// that says which file, which ids, and the fix.
fn chown_error(uid: libc::uid_t, gid: libc::gid_t) -> impl FnOnce(Errno) -> Error {
    move |e| {
        if e == Errno::EINVAL && wrun_sys::userns::rootless() {
            let user = wrun_sys::userns::unprivileged_user()
                .and_then(|u| nix::unistd::User::from_uid(u.into()).ok().flatten())
                .map_or_else(|| "the user".to_string(), |u| u.name);
            Error::invalid(format!(
                "owned by {uid}:{gid}, which the rootless session does not map: /etc/subuid and \
                 /etc/subgid must give {user} more than {} ids (usermod --add-subuids and \
                 --add-subgids), then end the session (wrun system migrate) so the next command \
                 maps the new range",
                uid.max(gid)
            ))
        } else {
            Error::sys("chown", e)
        }
    }
}

fn cstr(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| Error::invalid(format!("layer entry name {name:?} has a NUL byte")))
}

/// The components as a relative path; "." for none (the layer's root).
fn joined(parts: &[OsString]) -> PathBuf {
    if parts.is_empty() {
        return PathBuf::from(".");
    }
    parts.iter().collect()
}

impl Unpacker {
    fn new(dest: &Path) -> Result<Unpacker> {
        let fd = nix::fcntl::open(
            dest,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open layer directory {}", dest.display()), e))?;
        // SAFETY: a new fd we own.
        let root = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Unpacker {
            root,
            dirs: Vec::new(),
            size: 0,
            archive: false,
            rootless: wrun_sys::userns::rootless(),
        })
    }

    /// The directory `parts` resolved in the layer, made (0755, root) where missing.
    fn dir(&self, parts: &[OsString]) -> Result<OwnedFd> {
        let path = joined(parts);
        match openat2_in_root(self.root.as_raw_fd(), &path, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("layer directory {}", path.display()), e)),
        }
        let mut cur = openat2_in_root(self.root.as_raw_fd(), Path::new("."), libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| Error::sys("open the layer root", e))?;
        for i in 0..parts.len() {
            let prefix = joined(&parts[..=i]);
            cur = match openat2_in_root(self.root.as_raw_fd(), &prefix, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    let c = cstr(&parts[i])?;
                    // SAFETY: a valid dirfd and C string.
                    Errno::result(unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), 0o755) })
                        .map_err(|e| Error::sys(format!("layer directory {}", prefix.display()), e))?;
                    openat2_in_root(self.root.as_raw_fd(), &prefix, libc::O_PATH | libc::O_DIRECTORY)
                        .map_err(|e| Error::sys(format!("layer directory {}", prefix.display()), e))?
                }
                Err(e) => return Err(Error::sys(format!("layer directory {}", prefix.display()), e)),
            };
        }
        Ok(cur)
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        self.entry_inner(&mut e, &raw)
            .map_err(|err| err.within(format!("layer entry {shown:?}")))
    }

    fn entry_inner<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<()> {
        let parts = clean_entry_path(raw)?;
        let kind = e.header().entry_type();
        let Some((name, parent)) = parts.split_last() else {
            // The layer's root itself ("./"): nothing to make.
            return Ok(());
        };
        let name_bytes = name.as_bytes();
        if self.archive {
            if !matches!(
                kind,
                tar::EntryType::Directory
                    | tar::EntryType::Regular
                    | tar::EntryType::Continuous
                    | tar::EntryType::Symlink
                    | tar::EntryType::Link
            ) {
                tracing::debug!("archive entry of type {kind:?} skipped");
                return Ok(());
            }
        } else if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            return self.whiteout(parent, hidden);
        }
        let xattrs = if self.archive { Vec::new() } else { xattrs_of(e)? };
        let h = e.header();
        let mode = h.mode().map_err(|e| Error::invalid(format!("mode: {e}")))? & 0o7777;
        let uid = h.uid().map_err(|e| Error::invalid(format!("uid: {e}")))? as libc::uid_t;
        let gid = h.gid().map_err(|e| Error::invalid(format!("gid: {e}")))? as libc::gid_t;
        let (mode, uid, gid) = if self.archive {
            (mode & 0o755, 0, 0)
        } else {
            (mode, uid, gid)
        };
        let mtime = h.mtime().unwrap_or(0);
        let pfd = self.dir(parent)?;
        let c = cstr(name)?;
        let at = pfd.as_raw_fd();
        match kind {
            tar::EntryType::Directory => {
                match fstatat_nofollow(at, &c) {
                    Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                    Some(_) => {
                        remove_at(at, &c, 0)?;
                        mkdirat(at, &c)?;
                    }
                    None => mkdirat(at, &c)?,
                }
                let fd = openat(at, &c, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW)?;
                set_owner_mode(&fd, uid, gid, mode)?;
                set_xattrs(&fd, &xattrs)?;
                self.dirs.push((joined(&parts), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(at, &c)?;
                let fd = openat_mode(
                    at,
                    &c,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )?;
                let mut f = File::from(fd);
                let n = std::io::copy(e, &mut f).map_err(|err| match err.raw_os_error() {
                    Some(_) => Error::io("write", err),
                    None => Error::invalid(format!("a truncated or corrupt tar: {err}")),
                })?;
                self.size += n;
                let fd = OwnedFd::from(f);
                set_owner_mode(&fd, uid, gid, mode)?;
                set_xattrs(&fd, &xattrs)?;
                set_times_fd(&fd, mtime)?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| Error::invalid("a symlink without a target"))?
                    .into_owned();
                remove_existing(at, &c)?;
                let t = CString::new(target).map_err(|_| Error::invalid("a symlink target with a NUL byte"))?;
                // SAFETY: valid C strings and dirfd. The target is stored, never followed here.
                Errno::result(unsafe { libc::symlinkat(t.as_ptr(), at, c.as_ptr()) })
                    .map_err(|e| Error::sys("symlink", e))?;
                // SAFETY: as above; AT_SYMLINK_NOFOLLOW acts on the link itself.
                Errno::result(unsafe { libc::fchownat(at, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
                    .map_err(chown_error(uid, gid))?;
                set_times_at(at, &c, mtime, true)?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| Error::invalid("a hardlink without a target"))?
                    .into_owned();
                let tparts = clean_entry_path(&target)?;
                let Some((tname, tparent)) = tparts.split_last() else {
                    return Err(Error::invalid("a hardlink to the layer's root"));
                };
                // The target's directory is resolved inside the layer like any other path,
                // so a link can only name a file of this layer.
                let tfd = openat2_in_root(
                    self.root.as_raw_fd(),
                    &joined(tparent),
                    libc::O_PATH | libc::O_DIRECTORY,
                )
                .map_err(|e| Error::sys(format!("hardlink target {:?}", String::from_utf8_lossy(&target)), e))?;
                let tc = cstr(tname)?;
                remove_existing(at, &c)?;
                // SAFETY: valid dirfds and C strings; no AT_SYMLINK_FOLLOW: a link to a
                // symlink links the symlink, never what it points to.
                Errno::result(unsafe { libc::linkat(tfd.as_raw_fd(), tc.as_ptr(), at, c.as_ptr(), 0) })
                    .map_err(|e| Error::sys(format!("hardlink to {:?}", String::from_utf8_lossy(&target)), e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ftype = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if self.rootless && ftype != libc::S_IFIFO {
                    tracing::debug!("device node skipped: no device can be made without root");
                    return Ok(());
                }
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                remove_existing(at, &c)?;
                // SAFETY: valid dirfd and C string.
                Errno::result(unsafe { libc::mknodat(at, c.as_ptr(), ftype | 0o600, libc::makedev(major, minor)) })
                    .map_err(|e| Error::sys("mknod", e))?;
                let fd = openat(at, &c, libc::O_PATH | libc::O_NOFOLLOW)?;
                set_owner_mode(&fd, uid, gid, mode)?;
                set_times_at(at, &c, mtime, true)?;
            }
            // pax and GNU headers are read by the tar crate for the entry they describe.
            other => tracing::debug!("layer entry of type {other:?} skipped"),
        }
        Ok(())
    }

    fn whiteout(&mut self, parent: &[OsString], hidden: &[u8]) -> Result<()> {
        let pfd = self.dir(parent)?;
        if hidden == b".wh..opq" {
            let dir = openat(pfd.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY)?;
            return fsetxattr(&dir, &overlay_xattr_for(self.rootless, "opaque"), b"y");
        }
        if hidden.starts_with(b".wh.") {
            // aufs's own metadata (.wh..wh.plnk, .wh..wh.aufs): nothing for overlayfs.
            return Ok(());
        }
        if hidden.is_empty() || hidden.contains(&b'/') || hidden == b"." || hidden == b".." {
            return Err(Error::invalid("a whiteout without a name"));
        }
        let c = cstr(OsStr::from_bytes(hidden))?;
        remove_existing(pfd.as_raw_fd(), &c)?;
        // SAFETY: valid dirfd and C string.
        Errno::result(unsafe { libc::mknodat(pfd.as_raw_fd(), c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) })
            .map(drop)
            .map_err(|e| Error::sys("whiteout", e))
    }

    fn finish(&mut self) -> Result<()> {
        // Deepest first, so setting a directory's time is not undone by its children.
        self.dirs
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (p, mtime) in std::mem::take(&mut self.dirs) {
            if let Ok(fd) = openat2_in_root(
                self.root.as_raw_fd(),
                &p,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            ) {
                set_times_fd(&fd, mtime)?;
            }
        }
        Ok(())
    }
}

/// The xattrs a layer may set: file capabilities and the user namespace. Not `trusted.*`
/// (`trusted.overlay.*` would steer overlayfs; only whiteouts set those), `security.selinux`
/// (the host's policy labels files) or `system.*` (ACLs).
fn xattr_allowed(name: &str) -> bool {
    name == "security.capability" || (name.starts_with("user.") && !name.starts_with("user.overlay."))
}

/// `SCHILY.xattr.*` pax records, those `xattr_allowed` takes.
fn xattrs_of<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = e
        .pax_extensions()
        .map_err(|err| Error::invalid(format!("pax header: {err}")))?
    {
        for ext in exts {
            let ext = ext.map_err(|err| Error::invalid(format!("pax header: {err}")))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if !xattr_allowed(name) {
                    tracing::debug!("xattr {name} of a layer entry dropped");
                    continue;
                }
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

fn fstatat_nofollow(at: RawFd, name: &CString) -> Option<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid dirfd, C string and out pointer.
    let r = unsafe { libc::fstatat(at, name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    // SAFETY: initialised when fstatat succeeded.
    (r == 0).then(|| unsafe { st.assume_init() })
}

fn mkdirat(at: RawFd, name: &CString) -> Result<()> {
    // SAFETY: valid dirfd and C string.
    Errno::result(unsafe { libc::mkdirat(at, name.as_ptr(), 0o700) })
        .map(drop)
        .map_err(|e| Error::sys("mkdir", e))
}

fn openat(at: RawFd, name: &std::ffi::CStr, flags: i32) -> Result<OwnedFd> {
    openat_mode(at, name, flags, 0)
}

fn openat_mode(at: RawFd, name: &std::ffi::CStr, flags: i32, mode: libc::mode_t) -> Result<OwnedFd> {
    // SAFETY: valid dirfd and C string.
    let fd = Errno::result(unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC, mode) })
        .map_err(|e| Error::sys("open", e))?;
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Remove what is at `name`, if anything (a directory with its contents).
fn remove_existing(at: RawFd, name: &CString) -> Result<()> {
    match fstatat_nofollow(at, name) {
        None => Ok(()),
        Some(_) => remove_at(at, name, 0),
    }
}

/// How deep a tree `remove_at` descends (an fd and a stack frame per level).
const MAX_REMOVE_DEPTH: usize = 512;

fn remove_at(at: RawFd, name: &CString, depth: usize) -> Result<()> {
    if depth > MAX_REMOVE_DEPTH {
        return Err(Error::invalid(format!(
            "a directory tree deeper than {MAX_REMOVE_DEPTH} levels replaced"
        )));
    }
    // SAFETY: valid dirfd and C string.
    match Errno::result(unsafe { libc::unlinkat(at, name.as_ptr(), 0) }) {
        Ok(_) => Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {
            let dir = openat(at, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW)?;
            let names: Vec<CString> = nix::dir::Dir::from_fd(std::os::fd::IntoRawFd::into_raw_fd(
                dir.try_clone().map_err(|e| Error::io("dup", e))?,
            ))
            .map_err(|e| Error::sys("read directory", e))?
            .iter()
            .filter_map(|d| d.ok())
            .map(|d| d.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
            for n in names {
                remove_at(dir.as_raw_fd(), &n, depth + 1)?;
            }
            // SAFETY: valid dirfd and C string.
            Errno::result(unsafe { libc::unlinkat(at, name.as_ptr(), libc::AT_REMOVEDIR) })
                .map(drop)
                .map_err(|e| Error::sys("remove directory", e))
        }
        Err(e) => Err(Error::sys("remove", e)),
    }
}

/// Owner, then mode: chown clears setuid/setgid, so the mode comes second. Through
/// `/proc/self/fd` for an O_PATH fd (a device node), which fchmod does not take.
fn set_owner_mode(fd: &OwnedFd, uid: libc::uid_t, gid: libc::gid_t, mode: u32) -> Result<()> {
    // SAFETY: a valid fd and an empty path with AT_EMPTY_PATH.
    Errno::result(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) })
        .map_err(chown_error(uid, gid))?;
    let p = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default();
    // SAFETY: a valid C string; the magic link names exactly this file.
    Errno::result(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) })
        .map(drop)
        .map_err(|e| Error::sys("chmod", e))
}

fn set_xattrs(fd: &OwnedFd, xattrs: &[(String, Vec<u8>)]) -> Result<()> {
    for (k, v) in xattrs {
        fsetxattr(fd, k, v)?;
    }
    Ok(())
}

fn fsetxattr(fd: &OwnedFd, name: &str, value: &[u8]) -> Result<()> {
    let n = CString::new(name).map_err(|_| Error::invalid("an xattr name with a NUL byte"))?;
    // SAFETY: valid fd, C string and buffer.
    Errno::result(unsafe { libc::fsetxattr(fd.as_raw_fd(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
        .map(drop)
        .map_err(|e| Error::sys(format!("set xattr {name}"), e))
}

fn timespecs(mtime: u64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: mtime.min(i64::MAX as u64) as libc::time_t,
        tv_nsec: 0,
    };
    [t, t]
}

fn set_times_fd(fd: &OwnedFd, mtime: u64) -> Result<()> {
    let ts = timespecs(mtime);
    // SAFETY: a valid fd and two timespecs.
    Errno::result(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })
        .map(drop)
        .map_err(|e| Error::sys("set times", e))
}

fn set_times_at(at: RawFd, name: &CString, mtime: u64, nofollow: bool) -> Result<()> {
    let ts = timespecs(mtime);
    let flags = if nofollow { libc::AT_SYMLINK_NOFOLLOW } else { 0 };
    // SAFETY: valid dirfd, C string and timespecs.
    Errno::result(unsafe { libc::utimensat(at, name.as_ptr(), ts.as_ptr(), flags) })
        .map(drop)
        .map_err(|e| Error::sys("set times", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_cleaned_and_climbing_out_is_refused() {
        let p = |s: &str| clean_entry_path(s.as_bytes()).map(|v| joined(&v));
        assert_eq!(p("./etc/passwd").unwrap(), PathBuf::from("etc/passwd"));
        assert_eq!(p("/etc//passwd").unwrap(), PathBuf::from("etc/passwd"));
        assert_eq!(p("a/../b").unwrap(), PathBuf::from("b"));
        assert_eq!(p("./").unwrap(), PathBuf::from("."));
        for bad in ["../x", "a/../../x", "/../etc"] {
            assert!(p(bad).unwrap_err().to_string().contains("climbs out"), "{bad}");
        }
    }

    #[test]
    fn compression_is_sniffed_from_the_bytes() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(Compression::sniff(b"etc/\0"), Compression::None);
    }
}
