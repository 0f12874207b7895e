//! A layer from a build step: the upper directory of the overlay the step ran on (what it
//! added, changed and deleted) written as an OCI layer tar. Overlayfs marks a deletion with a
//! character device 0:0 and a directory that replaces a lower one with the xattr
//! `trusted.overlay.opaque=y`; the tar says the same with OCI's whiteouts, `.wh.NAME` and
//! `.wh..wh..opq`.
//!
//! The tar is reproducible: entries in byte order of their paths, numeric owners without
//! names, no access or change times, and with `SOURCE_DATE_EPOCH` every modification time
//! clamped to it (the reproducible-builds convention, as BuildKit's `rewrite-timestamp`).
//! Hard links inside the layer stay hard links. Of the xattrs only `security.capability`
//! (file capabilities, which programs such as `ping` need) is kept.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::Context;
use crate::{Error, Result};

/// How deep a step's tree may go before it is refused (a RUN may build any tree).
const MAX_DEPTH: usize = 512;

/// Write the layer of the overlay upper directory `upper` to `out`. `skip` names paths
/// (relative, without a leading `/`) left out: mount points the runtime made for the step.
pub fn diff_tar(upper: &Path, out: impl Write, epoch: Option<u64>, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut w = Walk {
        upper,
        epoch,
        skip,
        links: BTreeMap::new(),
        opaque: crate::unpack::overlay_xattr("opaque"),
    };
    w.dir(&mut b, Path::new(""), 0)?;
    b.into_inner()
        .and_then(|mut o| o.flush())
        .ctx(|| "write the layer".to_string())?;
    Ok(())
}

struct Walk<'a> {
    upper: &'a Path,
    epoch: Option<u64>,
    skip: &'a dyn Fn(&Path) -> bool,
    /// (dev, inode) of multiply linked files already written, and their path in the tar.
    links: BTreeMap<(u64, u64), PathBuf>,
    /// The opaque directory xattr of this store (trusted or user namespace).
    opaque: String,
}

fn io_err(what: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(format!("layer: {}", what.display()), e)
}

impl Walk<'_> {
    fn header(&self, md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid().into());
        h.set_gid(md.gid().into());
        let mtime = md.mtime().max(0) as u64;
        h.set_mtime(self.epoch.map_or(mtime, |e| mtime.min(e)));
        h.set_size(0);
        h
    }

    /// The entries of directory `rel` (relative to upper), in byte order.
    fn dir(&mut self, b: &mut tar::Builder<impl Write>, rel: &Path, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::invalid(format!(
                "layer: {} is more than {MAX_DEPTH} directories deep",
                rel.display()
            )));
        }
        let abs = self.upper.join(rel);
        let mut names: Vec<_> = fs::read_dir(&abs)
            .map_err(io_err(&abs))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io_err(&abs))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let r = rel.join(&name);
            if (self.skip)(&r) {
                continue;
            }
            self.entry(b, &r, &name, depth)?;
        }
        Ok(())
    }

    fn entry(&mut self, b: &mut tar::Builder<impl Write>, rel: &Path, name: &OsStr, depth: usize) -> Result<()> {
        let abs = self.upper.join(rel);
        let md = fs::symlink_metadata(&abs).map_err(io_err(&abs))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            // Deleted: `.wh.NAME` beside where it was.
            let mut wh = OsStr::new(".wh.").to_os_string();
            wh.push(name);
            let p = rel.with_file_name(wh);
            let mut h = self.header(&md, tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            b.append_data(&mut h, &p, std::io::empty()).map_err(io_err(&p))?;
            return Ok(());
        }
        if ft.is_dir() {
            let mut h = self.header(&md, tar::EntryType::Directory);
            self.xattrs(b, &abs)?;
            b.append_data(&mut h, rel, std::io::empty()).map_err(io_err(rel))?;
            let opaque = xattr(&abs, &self.opaque).is_some_and(|v| v == b"y");
            if opaque {
                // Replaces whatever the lower layers had there.
                let p = rel.join(".wh..wh..opq");
                let mut h = self.header(&md, tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                b.append_data(&mut h, &p, std::io::empty()).map_err(io_err(&p))?;
            }
            return self.dir(b, rel, depth + 1);
        }
        if ft.is_symlink() {
            let target = fs::read_link(&abs).map_err(io_err(&abs))?;
            let mut h = self.header(&md, tar::EntryType::Symlink);
            b.append_link(&mut h, rel, &target).map_err(io_err(rel))?;
            return Ok(());
        }
        if md.nlink() > 1 && !ft.is_dir() {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                let mut h = self.header(&md, tar::EntryType::Link);
                let first = first.clone();
                b.append_link(&mut h, rel, &first).map_err(io_err(rel))?;
                return Ok(());
            }
            self.links.insert((md.dev(), md.ino()), rel.to_path_buf());
        }
        if ft.is_file() {
            let mut h = self.header(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            self.xattrs(b, &abs)?;
            // Opened without following a symlink swapped in since the stat (nothing should run
            // in the step's root by now, but the file is the step's to shape).
            let f = fs::File::options()
                .read(true)
                .custom_flags_nofollow()
                .open(&abs)
                .map_err(io_err(&abs))?;
            b.append_data(&mut h, rel, std::io::Read::take(f, md.len()))
                .map_err(io_err(rel))?;
            return Ok(());
        }
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            // A socket has no place in a layer.
            return Ok(());
        };
        let mut h = self.header(&md, kind);
        let rdev = md.rdev();
        h.set_device_major(libc::major(rdev)).map_err(io_err(rel))?;
        h.set_device_minor(libc::minor(rdev)).map_err(io_err(rel))?;
        b.append_data(&mut h, rel, std::io::empty()).map_err(io_err(rel))?;
        Ok(())
    }

    /// The entry's `security.capability`, as a PAX record before it.
    fn xattrs(&self, b: &mut tar::Builder<impl Write>, abs: &Path) -> Result<()> {
        if let Some(v) = xattr(abs, "security.capability") {
            b.append_pax_extensions([("SCHILY.xattr.security.capability", v.as_slice())])
                .map_err(io_err(abs))?;
        }
        Ok(())
    }
}

/// The value of xattr `name` of `p` (not following a symlink), if it has it.
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given size.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NOFOLLOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u64)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn deletions_become_whiteouts_entries_are_sorted_and_times_clamped() {
        let d = std::env::temp_dir().join(format!("wrun-layer-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("etc/sub")).unwrap();
        fs::write(d.join("etc/b"), "b").unwrap();
        fs::write(d.join("etc/a"), "a").unwrap();
        fs::hard_link(d.join("etc/a"), d.join("etc/a2")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", d.join("link")).unwrap();
        // An overlay whiteout: a character device 0:0 (mknod needs root, as the builder has).
        let gone = std::ffi::CString::new(d.join("etc/gone").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        let made = unsafe { libc::mknod(gone.as_ptr(), libc::S_IFCHR | 0o600, 0) } == 0;
        fs::create_dir(d.join("mnt")).unwrap();
        let mut out = Vec::new();
        diff_tar(&d, &mut out, Some(1000), &|p| p == Path::new("mnt")).unwrap();
        let e = entries(&out);
        let names: Vec<&str> = e.iter().map(|(n, _, _)| n.as_str()).collect();
        // In the byte order of the upper directory's names (the whiteout where `gone` was).
        let mut want = vec!["etc", "etc/a", "etc/a2", "etc/b", "etc/.wh.gone", "etc/sub", "link"];
        if !made {
            want.retain(|n| *n != "etc/.wh.gone");
        }
        assert_eq!(names, want);
        assert!(e.iter().all(|(_, _, m)| *m <= 1000), "{e:?}");
        let kind = |n: &str| e.iter().find(|x| x.0 == n).unwrap().1;
        assert_eq!(kind("etc/a2"), tar::EntryType::Link);
        assert_eq!(kind("link"), tar::EntryType::Symlink);
        // The same tree gives the same bytes.
        let mut again = Vec::new();
        diff_tar(&d, &mut again, Some(1000), &|p| p == Path::new("mnt")).unwrap();
        assert_eq!(out, again);
        let _ = fs::remove_dir_all(&d);
    }
}
