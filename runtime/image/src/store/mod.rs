//! The image store on disk, under the data root (default `/var/lib/wrun`, `--data-root`,
//! `$WRUN_DATA_ROOT`):
//!
//! ```text
//! images/            an OCI image layout: oci-layout, index.json (one entry per tag, with the
//!                    org.opencontainers.image.ref.name annotation, and one per untagged image),
//!                    blobs/sha256/<hex> (manifests, configs, layers as pulled)
//! layers/sha256/<k>  each layer unpacked once, an overlayfs lower as it is; <k> is the
//!                    layer's diffID (a wasm layer's own digest); <k>.json its size
//! tmp/<pid>-<n>      what an import or pull writes before it commits
//! images.lock        flock: shared to read, exclusive to commit, remove or collect
//! ```
//!
//! Content is verified as it is written (a blob is renamed into `blobs/` only with the digest
//! it is named by) and as it is read: `read_blob` checks the digest of what it returns, and a
//! layer is unpacked through a reader that checks its digest and its diffID before the layer
//! directory is renamed into place. A kill at any moment leaves at most a `tmp/` entry of a
//! dead process, which the next commit removes; a commit takes the exclusive lock only for
//! renames and the index write (atomic: write, fsync, rename).

pub mod cache;
mod gc;
pub mod mount;
pub mod oci;
mod staged;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use gc::{referenced as gc_referenced, Collected};
use oci::{Descriptor, Index, Manifest, REF_NAME};
pub use staged::{unpack_into, unpack_reader, Staged, TmpDir};

use crate::digest::Digest;
use crate::error::Context;
use crate::reference::Reference;
use crate::{Error, Result};

pub const DATA_ROOT_ENV: &str = "WRUN_DATA_ROOT";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/wrun";

/// The data root: `$WRUN_DATA_ROOT`, else `/var/lib/wrun` for root and the user's data dir
/// (`wrun_sys::userns::user_data_dir`) for a user without root, in the session too.
pub fn default_data_root() -> PathBuf {
    std::env::var_os(DATA_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(wrun_sys::userns::user_data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT))
}

/// For each layer of `manifest`, the diffID its tar must have (from `config`'s
/// `rootfs.diff_ids`, in order over the tar layers), or None for a wasm layer (a module, not a
/// tar).
pub fn layer_diff_ids(manifest: &Manifest, config: &serde_json::Value) -> Result<Vec<Option<Digest>>> {
    let mut diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| Digest::parse(v.as_str().unwrap_or_default()));
    manifest
        .layers
        .iter()
        .map(|l| {
            if oci::is_wasm_layer(&l.media_type) {
                return Ok(None);
            }
            let d = diff_ids.next().ok_or_else(|| {
                Error::invalid(format!(
                    "config {}: fewer diff_ids than tar layers",
                    manifest.config.digest
                ))
            })??;
            Ok(Some(d))
        })
        .collect()
}

/// The key of a wasm layer's directory: derived from its digest, so it can never be a tar
/// layer's diffID (an image whose wasm layer is byte for byte another image's uncompressed
/// layer tar would otherwise take that layer's directory, and the other image would find its
/// layer already "unpacked", as one file).
pub fn wasm_layer_key(d: &Digest) -> Digest {
    Digest::of(format!("wrun wasm layer {d}").as_bytes())
}

/// The image store of one data root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A held flock on `images.lock`, released on drop (and by the kernel if we die).
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

/// An image in the store: its manifest and config, and the tags that name it.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: Digest,
    pub manifest: Manifest,
    /// The config's digest: the image id.
    pub id: Digest,
    pub config: serde_json::Value,
    pub tags: Vec<Reference>,
}

impl Image {
    /// The diffIDs of its layers (`rootfs.diff_ids` of the config).
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().and_then(|s| Digest::parse(s).ok()))
            .collect()
    }

    /// For each layer, the key of its unpacked directory: its diffID for a tar layer, its own
    /// digest for a wasm layer.
    pub fn layer_keys(&self) -> Result<Vec<Digest>> {
        let plan = layer_diff_ids(&self.manifest, &self.config)?;
        Ok(self
            .manifest
            .layers
            .iter()
            .zip(plan)
            .map(|(l, d)| d.unwrap_or_else(|| wasm_layer_key(&l.digest)))
            .collect())
    }

    /// The size of its blobs (manifest, config, layers as stored).
    pub fn blob_size(&self) -> u64 {
        self.manifest.config.size + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }

    /// `created` of the config, if any.
    pub fn created(&self) -> Option<&str> {
        self.config["created"].as_str()
    }
}

pub(crate) fn mkdir_private(p: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .ctx(|| format!("create {}", p.display()))
}

impl Store {
    /// The store under `data_root`, made (0700) where missing.
    pub fn open(data_root: &Path) -> Result<Store> {
        let s = Store {
            root: data_root.to_path_buf(),
        };
        for d in [
            s.layout().join("blobs/sha256"),
            s.root.join("layers/sha256"),
            s.root.join("tmp"),
        ] {
            mkdir_private(&d)?;
        }
        let _ = fs::set_permissions(&s.root, fs::Permissions::from_mode(0o700));
        let layout = s.layout().join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !s.layout().join("index.json").exists() {
            let _l = s.lock(true)?;
            if !s.layout().join("index.json").exists() {
                s.write_index(&Index::default())?;
            }
        }
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The OCI image layout directory.
    pub fn layout(&self) -> PathBuf {
        self.root.join("images")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.layout().join("blobs/sha256").join(d.hex())
    }

    /// The unpacked directory of the layer with key `k` (see `Image::layer_keys`).
    pub fn layer_dir(&self, k: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(k.hex())
    }

    fn layer_meta(&self, k: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(format!("{}.json", k.hex()))
    }

    /// The bytes of file content of an unpacked layer (0 if unknown).
    pub fn layer_size(&self, k: &Digest) -> u64 {
        fs::read(self.layer_meta(k))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["size"].as_u64())
            .unwrap_or(0)
    }

    pub fn has_layer(&self, k: &Digest) -> bool {
        self.layer_meta(k).exists() && self.layer_dir(k).is_dir()
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Take the store's lock: shared to read, exclusive to change.
    pub fn lock(&self, exclusive: bool) -> Result<Lock> {
        let p = self.root.join("images.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(|| format!("open {}", p.display()))?;
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        loop {
            // SAFETY: flock on a valid fd.
            match nix::errno::Errno::result(unsafe { libc::flock(f.as_raw_fd(), op) }) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => r.ctx(|| format!("lock {}", p.display()))?,
            };
            return Ok(Lock(f));
        }
    }

    /// A blob's bytes, checked against its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let b = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("blob {d}")));
            }
            Err(e) => return Err(Error::io(format!("read {}", p.display()), e)),
        };
        d.verify(&Digest::of(&b), format!("blob {}", p.display()))?;
        Ok(b)
    }

    pub fn index(&self) -> Result<Index> {
        let p = self.layout().join("index.json");
        let b = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&b).map_err(|e| Error::invalid(format!("{}: {e}", p.display())))
    }

    fn write_index(&self, idx: &Index) -> Result<()> {
        let b = serde_json::to_vec(idx).map_err(|e| Error::invalid(format!("index.json: {e}")))?;
        write_atomic(&self.layout().join("index.json"), &b)
    }

    /// The image of a manifest digest, with its tags from `idx`.
    pub fn image_of(&self, digest: &Digest, idx: &Index) -> Result<Image> {
        let mb = self
            .read_blob(digest)
            .map_err(|e| e.within(format!("image {digest}: manifest")))?;
        let manifest: Manifest =
            serde_json::from_slice(&mb).map_err(|e| Error::invalid(format!("image {digest}: manifest: {e}")))?;
        let cb = self
            .read_blob(&manifest.config.digest)
            .map_err(|e| e.within(format!("image {digest}: config")))?;
        let config: serde_json::Value =
            serde_json::from_slice(&cb).map_err(|e| Error::invalid(format!("image {digest}: config: {e}")))?;
        let tags = idx
            .manifests
            .iter()
            .filter(|m| &m.digest == digest)
            .filter_map(|m| m.annotations.get(REF_NAME))
            .filter_map(|r| Reference::parse(r).ok())
            .collect();
        Ok(Image {
            digest: digest.clone(),
            id: manifest.config.digest.clone(),
            manifest,
            config,
            tags,
        })
    }

    /// Every image, newest first.
    pub fn images(&self) -> Result<Vec<Image>> {
        let _l = self.lock(false)?;
        let idx = self.index()?;
        // Build-cache entries are not images of their own (as docker hides its builder's
        // intermediate images); a built image they also name is listed by its own entry.
        let digests: BTreeSet<Digest> = idx
            .manifests
            .iter()
            .filter(|m| !cache::is_cache_entry(m))
            .map(|m| m.digest.clone())
            .collect();
        let mut out = digests
            .iter()
            .map(|d| self.image_of(d, &idx))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| b.created().cmp(&a.created()).then(a.digest.cmp(&b.digest)));
        Ok(out)
    }

    /// The image `name` names: a reference (`busybox`, `repo:tag`, `repo@sha256:...`), a
    /// manifest digest or image id (`sha256:...`), or an unambiguous prefix of an image id.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        let _l = self.lock(false)?;
        let idx = self.index()?;
        self.resolve_unlocked(name, &idx)
    }

    /// `resolve` with the lock already held and the index read.
    pub fn resolve_unlocked(&self, name: &str, idx: &Index) -> Result<Image> {
        let not_found = || Error::NotFound(name.to_string());
        let by_digest = |want: &dyn Fn(&Image) -> bool| -> Result<Option<Image>> {
            let digests: BTreeSet<&Digest> = idx.manifests.iter().map(|m| &m.digest).collect();
            let mut hits = Vec::new();
            for d in digests {
                let img = self.image_of(d, idx)?;
                if want(&img) {
                    hits.push(img);
                }
            }
            match hits.len() {
                0 => Ok(None),
                1 => Ok(hits.pop()),
                n => Err(Error::Refused(format!(
                    "image {name}: {n} images match; give more of the id"
                ))),
            }
        };
        if let Ok(d) = Digest::parse(name) {
            return by_digest(&|i| i.digest == d || i.id == d)?.ok_or_else(not_found);
        }
        let hexlike =
            name.len() >= 4 && name.len() <= 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hexlike {
            if let Some(img) = by_digest(&|i| i.id.hex().starts_with(name))? {
                return Ok(img);
            }
        }
        let r = Reference::parse(name)?;
        if let Some(d) = &r.digest {
            return by_digest(&|i| &i.digest == d)?.ok_or_else(not_found);
        }
        let want = r.to_string();
        let entry = idx
            .manifests
            .iter()
            .find(|m| m.annotations.get(REF_NAME) == Some(&want))
            .ok_or_else(not_found)?;
        self.image_of(&entry.digest, idx)
    }

    /// Commit what `staged` holds, and make `manifest` the image each of `tags` names (the
    /// image a tag named before keeps an untagged entry, as docker's dangling images). Every
    /// blob and layer the image needs must be staged or present.
    pub fn commit(&self, staged: Staged, manifest: &Digest, tags: &[Reference]) -> Result<Image> {
        self.commit_as(staged, manifest, tags, None)
    }

    /// `commit`, and with `cache_key` an index entry that makes the image the build cache's
    /// answer for that key (see `cache`).
    fn commit_as(
        &self,
        staged: Staged,
        manifest: &Digest,
        tags: &[Reference],
        cache_key: Option<&str>,
    ) -> Result<Image> {
        let _l = self.lock(true)?;
        gc::remove_stale_tmp(self);
        for (d, p) in &staged.blobs {
            let dst = self.blob_path(d);
            if !dst.exists() {
                fs::rename(p, &dst).ctx(|| format!("store blob {d}"))?;
            }
        }
        for (k, dir, size) in &staged.layers {
            if !self.has_layer(k) {
                let dst = self.layer_dir(k);
                if dst.exists() {
                    // A layer directory without its size file: a commit that died half way.
                    let _ = fs::remove_dir_all(&dst);
                }
                fs::rename(dir, &dst).ctx(|| format!("store layer {k}"))?;
                write_atomic(&self.layer_meta(k), format!("{{\"size\":{size}}}").as_bytes())?;
            }
        }
        drop(staged);
        let mut idx = self.index()?;
        let image = self.image_of(manifest, &idx)?;
        for k in image.layer_keys()? {
            if !self.has_layer(&k) {
                return Err(Error::Refused(format!(
                    "image {manifest}: layer {k} is missing from the store (removed by a concurrent prune?); pull or import again"
                )));
            }
        }
        let mb = self.read_blob(manifest)?;
        let media_type = image
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| oci::OCI_MANIFEST.to_string());
        let desc = |tag: Option<&Reference>| {
            let mut d = Descriptor::new(&media_type, manifest.clone(), mb.len() as u64);
            if let Some(t) = tag {
                d.annotations.insert(REF_NAME.to_string(), t.to_string());
            }
            d
        };
        for t in tags {
            set_tag(&mut idx, &t.to_string(), desc(Some(t)));
        }
        if let Some(key) = cache_key {
            cache::set(&mut idx, key, desc(None));
        }
        if !idx.manifests.iter().any(|m| &m.digest == manifest) {
            idx.manifests.push(desc(None));
        }
        self.write_index(&idx)?;
        self.image_of(manifest, &idx)
    }

    /// `tag` names the image `source` names.
    pub fn tag(&self, source: &str, tag: &Reference) -> Result<Image> {
        if tag.digest.is_some() {
            return Err(Error::Reference(tag.to_string(), "a tag cannot contain a digest"));
        }
        let _l = self.lock(true)?;
        let mut idx = self.index()?;
        let img = self.resolve_unlocked(source, &idx)?;
        let entry = idx
            .manifests
            .iter()
            .find(|m| m.digest == img.digest)
            .cloned()
            .ok_or_else(|| Error::NotFound(source.to_string()))?;
        let mut d = entry;
        // The entry found may be the build cache's: a name is not.
        d.annotations.remove(cache::CACHE_KEY);
        d.annotations.insert(REF_NAME.to_string(), tag.to_string());
        set_tag(&mut idx, &tag.to_string(), d);
        self.write_index(&idx)?;
        self.image_of(&img.digest, &idx)
    }

    /// Remove `name`: a tag only untags (the image goes when its last tag does, unless
    /// another tag names it); an id or digest removes the image, which must then have at most
    /// one tag unless `force`. Returns docker's lines ("Untagged: ...", "Deleted: ...").
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<String>> {
        let _l = self.lock(true)?;
        let mut idx = self.index()?;
        let img = self.resolve_unlocked(name, &idx)?;
        let mut lines = Vec::new();
        let by_tag = Reference::parse(name)
            .ok()
            .filter(|r| r.digest.is_none() && img.tags.contains(r));
        let last_name = by_tag.is_none() || img.tags.len() <= 1;
        if let Some((_, who)) = self
            .images_in_use()
            .into_iter()
            .find(|(d, _)| *d == img.digest)
            .filter(|_| last_name)
        {
            // As docker: an image a container uses cannot be removed, not even with --force.
            return Err(Error::Refused(format!("image {name}: in use by {who}")));
        }
        match by_tag {
            Some(r) if img.tags.len() > 1 => {
                let want = r.to_string();
                idx.manifests.retain(|m| m.annotations.get(REF_NAME) != Some(&want));
                lines.push(format!("Untagged: {}", familiar(&r)));
            }
            _ => {
                if img.tags.len() > 1 && !force {
                    return Err(Error::Refused(format!(
                        "image {name}: it has {} tags ({}); remove them one by one or use --force",
                        img.tags.len(),
                        img.tags.iter().map(familiar).collect::<Vec<_>>().join(", ")
                    )));
                }
                for t in &img.tags {
                    lines.push(format!("Untagged: {}", familiar(t)));
                }
                idx.manifests.retain(|m| m.digest != img.digest);
                lines.push(format!("Deleted: {}", img.id));
            }
        }
        self.write_index(&idx)?;
        gc::collect(self, &idx)?;
        Ok(lines)
    }

    /// Remove dangling images (no tag), or with `all` every image; then collect the blobs and
    /// layers nothing references. Returns the removed images' ids and what was freed.
    pub fn prune(&self, all: bool) -> Result<(Vec<Digest>, Collected)> {
        let _l = self.lock(true)?;
        let mut idx = self.index()?;
        let tagged: BTreeSet<Digest> = idx
            .manifests
            .iter()
            .filter(|m| m.annotations.contains_key(REF_NAME))
            .map(|m| m.digest.clone())
            .collect();
        let mut removed = Vec::new();
        let in_use: BTreeSet<Digest> = self.images_in_use().into_iter().map(|(d, _)| d).collect();
        let doomed: BTreeSet<Digest> = idx
            .manifests
            .iter()
            .filter(|m| !in_use.contains(&m.digest))
            .filter(|m| all || !tagged.contains(&m.digest))
            .map(|m| m.digest.clone())
            .collect();
        for d in &doomed {
            if let Ok(img) = self.image_of(d, &idx) {
                removed.push(img.id);
            }
        }
        idx.manifests.retain(|m| !doomed.contains(&m.digest));
        self.write_index(&idx)?;
        let c = gc::collect(self, &idx)?;
        Ok((removed, c))
    }
}

/// `tag` names `d` in `idx`; an image it named before keeps an untagged entry if nothing
/// else names it.
fn set_tag(idx: &mut Index, tag: &str, d: Descriptor) {
    let old: Vec<Descriptor> = idx
        .manifests
        .iter()
        .filter(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
        .cloned()
        .collect();
    idx.manifests
        .retain(|m| m.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
    for mut o in old {
        if o.digest != d.digest && !idx.manifests.iter().any(|m| m.digest == o.digest) {
            o.annotations.remove(REF_NAME);
            idx.manifests.push(o);
        }
    }
    // An untagged entry of the same image is replaced by the tagged one (a build-cache entry
    // stays: it is the cache's, not a name).
    idx.manifests
        .retain(|m| m.digest != d.digest || m.annotations.contains_key(REF_NAME) || cache::is_cache_entry(m));
    idx.manifests.push(d);
}

/// A tag as docker prints it (`busybox:latest`).
pub fn familiar(r: &Reference) -> String {
    let mut s = r.familiar_name();
    if let Some(t) = &r.tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &r.digest {
        s.push('@');
        s.push_str(d.as_str());
    }
    s
}

/// Write `path` atomically: a temp file beside it, fsync'd, renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}
