//! Staging: what an import or a pull writes under `tmp/` before the store commits it, and
//! layer unpacking that any thread may run.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{mkdir_private, Store};
use crate::digest::{Digest, HashingWriter};
use crate::error::Context;
use crate::unpack::{self, Unpacked};
use crate::{Error, Result};

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A directory under `tmp/`, removed on drop unless committed.
#[derive(Debug)]
pub struct TmpDir(PathBuf);

impl TmpDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Blobs and unpacked layers written to `tmp/`, to be committed under the lock.
#[derive(Debug)]
pub struct Staged {
    pub(super) tmp: TmpDir,
    pub(super) blobs: Vec<(Digest, PathBuf)>,
    pub(super) layers: Vec<(Digest, PathBuf, u64)>,
    seq: u64,
}

/// Unpack the layer blob at `blob` into the empty directory `dir` and check its diffID
/// against `expected_diff_id`, and, given `blob_digest`, the blob itself in the same pass (a
/// stored blob that feeds a container is checked as it is read). Any thread may run it.
pub fn unpack_into(
    blob: &Path,
    dir: &Path,
    blob_digest: Option<&Digest>,
    expected_diff_id: Option<&Digest>,
    what: &str,
) -> Result<Unpacked> {
    let f = File::open(blob).ctx(|| format!("open {}", blob.display()))?;
    let mut hashed = crate::digest::HashingReader::new(f);
    let u = unpack_reader(&mut hashed, dir, expected_diff_id, what)?;
    if let Some(want) = blob_digest {
        let (got, _) = hashed.finish().ctx(|| format!("read {}", blob.display()))?;
        want.verify(&got, what.to_string())?;
    }
    Ok(u)
}

/// `unpack_into` from a stream (a download as it arrives).
pub fn unpack_reader(r: impl Read, dir: &Path, expected_diff_id: Option<&Digest>, what: &str) -> Result<Unpacked> {
    let u = unpack::unpack_layer(r, dir).map_err(|e| e.within(what))?;
    if let Some(want) = expected_diff_id {
        want.verify(&u.diff_id, format!("{what}: diffID"))?;
    }
    // The layer root is the container's `/` where no upper layer says otherwise.
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    Ok(u)
}

impl Staged {
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn next(&mut self, what: &str) -> PathBuf {
        self.seq += 1;
        self.tmp.path().join(format!("{what}-{}", self.seq))
    }

    /// Stage the bytes read from `r`, checked against `expected` when given. Returns its
    /// digest, size and staged path.
    pub fn add_blob(&mut self, r: impl Read, expected: Option<&Digest>, what: &str) -> Result<(Digest, u64, PathBuf)> {
        let p = self.next("blob");
        let f = File::create(&p).ctx(|| format!("create {}", p.display()))?;
        let mut w = HashingWriter::new(std::io::BufWriter::with_capacity(256 * 1024, f));
        let mut r = r;
        std::io::copy(&mut r, &mut w).map_err(|e| match e.raw_os_error() {
            Some(_) => Error::io(format!("store {what}"), e),
            None => Error::invalid(format!("{what}: {e}")),
        })?;
        let (buf, digest, size) = w.finish();
        buf.into_inner()
            .map_err(|e| Error::io(format!("store {what}"), e.into_error()))?
            .sync_all()
            .ctx(|| format!("store {what}"))?;
        if let Some(want) = expected {
            want.verify(&digest, what.to_string())?;
        }
        self.blobs.push((digest.clone(), p.clone()));
        Ok((digest, size, p))
    }

    /// A fresh path in the staging directory for a blob written by someone else (a
    /// download); hand it back with `adopt` once written.
    pub fn reserve(&mut self) -> PathBuf {
        self.next("blob")
    }

    /// Take the file at `path` (from `reserve`) as the blob `expected`, after checking its
    /// digest. Returns its size.
    pub fn adopt(&mut self, path: &Path, expected: &Digest, what: &str) -> Result<u64> {
        let f = File::open(path).ctx(|| format!("open {}", path.display()))?;
        let (d, n) = crate::digest::HashingReader::new(f)
            .finish()
            .ctx(|| format!("read {}", path.display()))?;
        expected.verify(&d, what.to_string())?;
        self.blobs.push((d, path.to_path_buf()));
        Ok(n)
    }

    pub fn add_bytes(&mut self, bytes: &[u8], what: &str) -> Result<Digest> {
        self.add_blob(bytes, None, what).map(|(d, _, _)| d)
    }

    /// Unpack the layer blob at `blob` (staged or stored) into a staged layer directory.
    /// `expected_diff_id` (from the config) must match what the tar turns out to be.
    pub fn unpack_layer(
        &mut self,
        blob: &Path,
        blob_digest: Option<&Digest>,
        expected_diff_id: Option<&Digest>,
        what: &str,
    ) -> Result<Unpacked> {
        let dir = self.reserve_layer_dir()?;
        let u = unpack_into(blob, &dir, blob_digest, expected_diff_id, what)?;
        self.adopt_layer(dir, &u);
        Ok(u)
    }

    /// A fresh, empty layer directory in the staging area, for `unpack_into` on another
    /// thread; hand it back with `adopt_layer`.
    pub fn reserve_layer_dir(&mut self) -> Result<PathBuf> {
        let dir = self.next("layer");
        mkdir_private(&dir)?;
        Ok(dir)
    }

    /// Take `dir`, unpacked (and checked) by `unpack_into`, as the layer `u.diff_id`.
    pub fn adopt_layer(&mut self, dir: PathBuf, u: &Unpacked) {
        self.layers.push((u.diff_id.clone(), dir, u.size));
    }

    /// The staged file of blob `d`, if one was staged.
    pub fn path_of(&self, d: &Digest) -> Option<PathBuf> {
        self.blobs.iter().find(|(b, _)| b == d).map(|(_, p)| p.clone())
    }

    /// Take the file at `path` (from `reserve`) as the blob `digest`, which the caller
    /// computed from the bytes as it wrote them and checked.
    pub fn adopt_written(&mut self, path: &Path, digest: &Digest) {
        self.blobs.push((digest.clone(), path.to_path_buf()));
    }

    /// A wasm layer (a module, not a tar) as a layer directory holding `name`.
    pub fn wasm_layer(&mut self, blob: &Path, key: &Digest, name: &str) -> Result<()> {
        let dir = self.next("layer");
        mkdir_private(&dir)?;
        let dst = dir.join(name);
        let size = fs::copy(blob, &dst).ctx(|| format!("copy the wasm layer to {}", dst.display()))?;
        let _ = fs::set_permissions(&dst, fs::Permissions::from_mode(0o644));
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        self.layers.push((key.clone(), dir, size));
        Ok(())
    }
}

impl Store {
    /// A new staging area for an import or a pull.
    pub fn stage(&self) -> Result<Staged> {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let p = self
            .root
            .join("tmp")
            .join(format!("{}-{n}-{nanos}", std::process::id()));
        mkdir_private(&p)?;
        Ok(Staged {
            tmp: TmpDir(p),
            blobs: Vec::new(),
            layers: Vec::new(),
            seq: 0,
        })
    }
}
