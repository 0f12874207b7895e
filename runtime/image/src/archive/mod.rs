//! `wrun image import` and `wrun image save`.
//!
//! Import takes what docker and the OCI tools write, told apart by what the archive holds:
//! an OCI archive (`oci-layout` + `index.json` + `blobs/`, as `skopeo copy oci-archive:` or
//! `docker save` of docker 25+ write), a `docker save` archive (`manifest.json` naming a
//! config and layer tars), or anything else as a root filesystem tar for a one-layer image
//! (`docker import`: `mmdebstrap` output, `tar -C rootfs -c .`), compressed or not. The
//! archive itself is unpacked with the same safe unpacker as a layer, so a hostile archive
//! cannot write outside the staging directory either. Every blob is checked against the digest
//! its manifest names, every layer against its diffID, before anything is committed.
//!
//! Save writes one archive that both `docker load` and the OCI tools read: an OCI image layout
//! plus docker's `manifest.json`, byte-identical blobs, so image ids survive a round trip.

mod change;
mod save;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use wrun_sys::inroot::openat2_in_root;

pub use change::apply_change;
pub use save::save;
use serde_json::{json, Value};

use crate::digest::Digest;
use crate::error::Context;
use crate::reference::Reference;
use crate::store::oci::{self, Descriptor, Index, Manifest, Platform, REF_NAME};
use crate::store::{wasm_layer_key, Image, Staged, Store};
use crate::unpack::{self, Compression};
use crate::{Error, Result};

/// Options of `wrun image import`.
#[derive(Debug, Default, Clone)]
pub struct ImportOptions {
    /// The name to give the image(s): required meaning for a root filesystem tar, an override
    /// of the archive's own names otherwise.
    pub name: Option<Reference>,
    /// Dockerfile instructions applied to a root filesystem tar's config (`CMD ["sh"]`,
    /// `ENV A=b`, ...), as `docker import --change`.
    pub changes: Vec<String>,
    /// The platform to take from a multi-platform index (default: linux/amd64, else wasm).
    pub platform: Option<Platform>,
}

/// What an archive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Oci,
    DockerSave,
    RootfsTar,
}

/// An image an import added, and the tags the import gave it.
#[derive(Debug, Clone)]
pub struct Imported {
    pub image: Image,
    pub tags: Vec<Reference>,
}

/// Import `file`; returns the images it added.
pub fn import(store: &Store, file: &Path, opts: &ImportOptions) -> Result<Vec<Imported>> {
    let what = format!("import {}", file.display());
    import_inner(store, file, opts).map_err(|e| e.within(what))
}

fn import_inner(store: &Store, file: &Path, opts: &ImportOptions) -> Result<Vec<Imported>> {
    let kind = sniff_archive(file)?;
    let mut staged = store.stage()?;
    if kind == ArchiveKind::RootfsTar {
        let image = import_rootfs(store, staged, file, opts)?;
        let tags = opts.name.iter().cloned().collect();
        return Ok(vec![Imported { image, tags }]);
    }
    let dir = staged.path().join("archive");
    fs::create_dir(&dir).ctx(|| format!("create {}", dir.display()))?;
    let f = File::open(file).ctx(|| format!("open {}", file.display()))?;
    unpack::unpack_archive(f, &dir)?;
    let a = ArchiveDir::open(&dir)?;
    let images = match kind {
        ArchiveKind::Oci => oci_images(&a, opts)?,
        _ => docker_images(&a, opts)?,
    };
    if images.is_empty() {
        return Err(Error::invalid("the archive holds no image"));
    }
    let mut out = Vec::new();
    let mut planned = Vec::new();
    for found in images {
        let digest = stage_image(store, &mut staged, &a, &found)?;
        planned.push((digest, found.tags));
    }
    // One commit per image; the staged blobs go with the first, later ones find them stored.
    for (digest, tags) in planned {
        let s = std::mem::replace(&mut staged, store.stage()?);
        let image = store.commit(s, &digest, &tags)?;
        out.push(Imported { image, tags });
    }
    Ok(out)
}

/// The archive's kind, from the names of its entries.
pub fn sniff_archive(file: &Path) -> Result<ArchiveKind> {
    let f = File::open(file).ctx(|| format!("open {}", file.display()))?;
    let mut a = tar::Archive::new(unpack::HeaderGuard::new(unpack::decompressed(f)?));
    let (mut layout, mut index, mut manifest) = (false, false, false);
    let entries = a
        .entries()
        .map_err(|e| Error::invalid(format!("not a tar archive: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| Error::invalid(format!("not a tar archive, or a corrupt one: {e}")))?;
        let p = unpack::clean_entry_path(&e.path_bytes())?;
        if p.len() == 1 {
            match p[0].to_str() {
                Some("oci-layout") => layout = true,
                Some("index.json") => index = true,
                Some("manifest.json") => manifest = true,
                _ => {}
            }
        }
    }
    Ok(match (layout && index, manifest) {
        (true, _) => ArchiveKind::Oci,
        (false, true) => ArchiveKind::DockerSave,
        _ => ArchiveKind::RootfsTar,
    })
}

/// JSON documents of an archive (indexes, manifests, configs) are small: a bigger one is
/// refused rather than read into memory.
pub const MAX_JSON: u64 = 4 << 20;

/// The unpacked archive, read only through fds the kernel resolved inside it. Nothing is
/// ever written into it: it is the attacker's tree (a symlink `blobs/sha256 -> /etc` in it
/// must not turn a write into a host file).
struct ArchiveDir {
    root: OwnedFd,
}

impl ArchiveDir {
    fn open(dir: &Path) -> Result<ArchiveDir> {
        let fd = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open {}", dir.display()), e))?;
        // SAFETY: a new fd we own.
        Ok(ArchiveDir {
            root: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The regular file `rel` names, resolved inside the archive. Anything else (a FIFO, a
    /// device node, a directory) is refused before it is opened for reading, so opening it
    /// can neither block nor act on a device.
    fn file(&self, rel: &str) -> Result<File> {
        let what = || format!("archive entry {rel:?}");
        let parts = unpack::clean_entry_path(rel.as_bytes())?;
        if parts.is_empty() {
            return Err(Error::invalid(format!("{}: not a file", what())));
        }
        let p: PathBuf = parts.iter().collect();
        let fd = openat2_in_root(self.root.as_raw_fd(), &p, libc::O_PATH).map_err(|e| Error::sys(what(), e))?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid fd and out pointer.
        Errno::result(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) }).map_err(|e| Error::sys(what(), e))?;
        // SAFETY: initialised by the successful fstat.
        let st = unsafe { st.assume_init() };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::invalid(format!("{} is not a regular file", what())));
        }
        File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).ctx(what)
    }

    /// The bytes of `rel`, at most `cap`.
    fn bytes(&self, rel: &str, cap: u64) -> Result<Vec<u8>> {
        let mut b = Vec::new();
        self.file(rel)?
            .take(cap + 1)
            .read_to_end(&mut b)
            .ctx(|| format!("read archive entry {rel:?}"))?;
        if b.len() as u64 > cap {
            return Err(Error::invalid(format!(
                "archive entry {rel:?} is larger than {cap} bytes"
            )));
        }
        Ok(b)
    }

    fn json(&self, rel: &str) -> Result<Value> {
        let b = self.bytes(rel, MAX_JSON)?;
        serde_json::from_slice(&b).map_err(|e| Error::invalid(format!("archive entry {rel:?}: {e}")))
    }
}

fn blob_rel(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// An image found in an archive, before anything of it is staged.
struct Found {
    manifest: Vec<u8>,
    /// The digest the archive names the manifest by (None: made here from docker's list).
    expected: Option<Digest>,
    /// Where a blob is in the archive when not at `blobs/sha256/<hex>`.
    paths: BTreeMap<Digest, String>,
    tags: Vec<Reference>,
}

/// For an OCI archive: each image its index names.
fn oci_images(a: &ArchiveDir, opts: &ImportOptions) -> Result<Vec<Found>> {
    let idx: Index =
        serde_json::from_value(a.json("index.json")?).map_err(|e| Error::invalid(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for m in &idx.manifests {
        let mut desc = m.clone();
        if oci::is_index(&m.media_type) {
            let b = a.bytes(&blob_rel(&m.digest), MAX_JSON)?;
            m.digest.verify(&Digest::of(&b), format!("index {}", m.digest))?;
            let inner: Index =
                serde_json::from_slice(&b).map_err(|e| Error::invalid(format!("index {}: {e}", m.digest)))?;
            desc = select_platform(&inner, opts.platform.as_ref())?.clone();
        }
        let tags = match &opts.name {
            Some(n) => vec![n.clone()],
            None => ["io.containerd.image.name", REF_NAME]
                .iter()
                .filter_map(|k| m.annotations.get(*k))
                .find_map(|r| ref_name(r))
                .into_iter()
                .collect(),
        };
        out.push(Found {
            manifest: a.bytes(&blob_rel(&desc.digest), MAX_JSON)?,
            expected: Some(desc.digest.clone()),
            paths: BTreeMap::new(),
            tags,
        });
    }
    Ok(out)
}

/// A ref.name annotation as a reference; a bare tag ("latest"), which names no repository,
/// gives none.
fn ref_name(r: &str) -> Option<Reference> {
    if !r.contains(['/', ':', '@']) {
        return None;
    }
    Reference::parse(r).ok()
}

/// The manifest of `idx` for `want`, else linux/amd64, else a wasm one; an error lists what
/// the index offers.
/// Refuse an image whose config is of another platform than `want`.
pub fn check_platform(cfg: &serde_json::Value, want: Option<&Platform>) -> Result<()> {
    let Some(p) = want else { return Ok(()) };
    let (os, arch) = (
        cfg["os"].as_str().unwrap_or(""),
        cfg["architecture"].as_str().unwrap_or(""),
    );
    let variant_ok = p.variant.is_none() || cfg["variant"].as_str() == p.variant.as_deref();
    if os == p.os && arch == p.architecture && variant_ok {
        return Ok(());
    }
    let asked = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    Err(Error::invalid(format!(
        "the image is {os}/{arch}, not the platform asked ({asked})"
    )))
}

pub fn select_platform<'a>(idx: &'a Index, want: Option<&Platform>) -> Result<&'a Descriptor> {
    let matches = |d: &Descriptor, p: &Platform| {
        d.platform.as_ref().is_some_and(|dp| {
            dp.os == p.os && dp.architecture == p.architecture && (p.variant.is_none() || dp.variant == p.variant)
        })
    };
    let found = match want {
        Some(p) => idx.manifests.iter().find(|d| matches(d, p)),
        None => idx
            .manifests
            .iter()
            .find(|d| {
                matches(
                    d,
                    &Platform {
                        architecture: "amd64".into(),
                        os: "linux".into(),
                        variant: None,
                    },
                )
            })
            .or_else(|| {
                idx.manifests.iter().find(|d| {
                    d.platform.as_ref().is_some_and(|p| {
                        p.architecture == "wasm" || p.os == "wasi" || p.os == "wasip1" || p.os == "wasip2"
                    })
                })
            }),
    };
    found.ok_or_else(|| {
        let offered: Vec<String> = idx
            .manifests
            .iter()
            .map(|d| match &d.platform {
                Some(p) => format!(
                    "{}/{}{}",
                    p.os,
                    p.architecture,
                    p.variant.as_ref().map(|v| format!("/{v}")).unwrap_or_default()
                ),
                None => "(no platform)".into(),
            })
            .collect();
        let want = want.map_or("linux/amd64 or wasm".to_string(), |p| {
            format!("{}/{}", p.os, p.architecture)
        });
        Error::NotFound(format!(
            "a manifest for {want} (the index offers {})",
            offered.join(", ")
        ))
    })
}

/// For a docker save archive: an OCI manifest made for each image of its `manifest.json`.
fn docker_images(a: &ArchiveDir, opts: &ImportOptions) -> Result<Vec<Found>> {
    let list = a.json("manifest.json")?;
    let list = list
        .as_array()
        .ok_or_else(|| Error::invalid("manifest.json: not a list"))?;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let field = |k: &str| {
            item.get(k)
                .and_then(|v| {
                    if k == "Layers" {
                        v.is_array().then_some(v)
                    } else {
                        v.is_string().then_some(v)
                    }
                })
                .ok_or_else(|| Error::invalid(format!("manifest.json[{i}]: no {k}")))
        };
        let config_rel = field("Config")?.as_str().unwrap_or_default().to_string();
        let config_bytes = a.bytes(&config_rel, MAX_JSON)?;
        let config_digest = Digest::of(&config_bytes);
        let mut paths = BTreeMap::new();
        paths.insert(config_digest.clone(), config_rel);
        let mut layers = Vec::new();
        for l in field("Layers")?.as_array().into_iter().flatten() {
            let rel = l.as_str().unwrap_or_default().to_string();
            let mut f = a.file(&rel)?;
            let mut head = [0u8; 4];
            let n = f.read(&mut head).ctx(|| format!("read archive entry {rel:?}"))?;
            let media_type = match Compression::sniff(&head[..n]) {
                Compression::None => oci::OCI_LAYER,
                Compression::Gzip => oci::OCI_LAYER_GZIP,
                Compression::Zstd => oci::OCI_LAYER_ZSTD,
            };
            let (digest, size) = crate::digest::HashingReader::new(a.file(&rel)?)
                .finish()
                .ctx(|| format!("read archive entry {rel:?}"))?;
            paths.insert(digest.clone(), rel);
            layers.push(Descriptor::new(media_type, digest, size));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(oci::OCI_CONFIG, config_digest, config_bytes.len() as u64),
            layers,
            annotations: BTreeMap::new(),
        };
        let tags = match &opts.name {
            Some(n) => vec![n.clone()],
            None => item["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().and_then(|t| Reference::parse(t).ok()))
                .collect(),
        };
        out.push(Found {
            manifest: serde_json::to_vec(&manifest).map_err(|e| Error::invalid(e.to_string()))?,
            expected: None,
            paths,
            tags,
        });
    }
    Ok(out)
}

/// Stage an image found in the archive: its manifest, config and layer blobs, each checked
/// against its digest, and its layers unpacked and checked against their diffIDs. Returns
/// the manifest's digest.
fn stage_image(store: &Store, staged: &mut Staged, a: &ArchiveDir, found: &Found) -> Result<Digest> {
    let mb = &found.manifest;
    let md = Digest::of(mb);
    if let Some(want) = &found.expected {
        want.verify(&md, format!("manifest {want}"))?;
    }
    let rel = |d: &Digest| found.paths.get(d).cloned().unwrap_or_else(|| blob_rel(d));
    let manifest: Manifest = serde_json::from_slice(mb).map_err(|e| Error::invalid(format!("manifest {md}: {e}")))?;
    if !store.has_blob(&md) {
        staged.add_bytes(mb, "manifest")?;
    }
    let cb = a.bytes(&rel(&manifest.config.digest), MAX_JSON)?;
    manifest
        .config
        .digest
        .verify(&Digest::of(&cb), format!("config {}", manifest.config.digest))?;
    if !store.has_blob(&manifest.config.digest) {
        staged.add_bytes(&cb, "config")?;
    }
    let config: Value =
        serde_json::from_slice(&cb).map_err(|e| Error::invalid(format!("config {}: {e}", manifest.config.digest)))?;
    let plans = crate::store::layer_diff_ids(&manifest, &config)?;
    for (l, diff_id) in manifest.layers.iter().zip(plans) {
        let what = format!("layer {}", l.digest);
        let stored = store.has_blob(&l.digest);
        let blob = if stored {
            store.blob_path(&l.digest)
        } else if let Some(p) = staged.path_of(&l.digest) {
            p
        } else {
            let f = a.file(&rel(&l.digest))?;
            staged.add_blob(f, Some(&l.digest), &what)?.2
        };
        let Some(want) = diff_id else {
            let key = wasm_layer_key(&l.digest);
            if !store.has_layer(&key) {
                staged.wasm_layer(&blob, &key, &wasm_file_name(l))?;
            }
            continue;
        };
        if !store.has_layer(&want) {
            // A stored blob is checked as it is unpacked; a staged one was as it was copied.
            let check = stored.then_some(&l.digest);
            staged.unpack_layer(&blob, check, Some(&want), &what)?;
        }
    }
    Ok(md)
}

/// The file a wasm layer becomes: its title annotation if it is a plain name, else
/// `module.wasm` (`component.wasm` for a component layer).
pub fn wasm_file_name(l: &Descriptor) -> String {
    let title = l.annotations.get("org.opencontainers.image.title");
    match title {
        Some(t) if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => t.clone(),
        _ if l.media_type.contains("component") => "component.wasm".into(),
        _ => "module.wasm".into(),
    }
}

fn import_rootfs(store: &Store, mut staged: Staged, file: &Path, opts: &ImportOptions) -> Result<Image> {
    let name = opts.name.clone();
    let f = File::open(file).ctx(|| format!("open {}", file.display()))?;
    let mut head = [0u8; 4];
    let n = File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .ctx(|| format!("read {}", file.display()))?;
    let media_type = match Compression::sniff(&head[..n]) {
        Compression::None => oci::OCI_LAYER,
        Compression::Gzip => oci::OCI_LAYER_GZIP,
        Compression::Zstd => oci::OCI_LAYER_ZSTD,
    };
    let (ld, lsize, lpath) = staged.add_blob(f, None, "the root filesystem tar")?;
    let u = staged.unpack_layer(&lpath, None, None, "the root filesystem tar")?;
    let now = wrun_sys::timefmt::now();
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": now,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [u.diff_id.as_str()]},
        "history": [{"created": now, "created_by": format!("wrun image import {}", file.display()), "comment": "Imported from a root filesystem tar"}],
    });
    for c in &opts.changes {
        apply_change(&mut config["config"], c)?;
    }
    let cb = serde_json::to_vec(&config).map_err(|e| Error::invalid(e.to_string()))?;
    let cd = staged.add_bytes(&cb, "config")?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(oci::OCI_CONFIG, cd, cb.len() as u64),
        layers: vec![Descriptor::new(media_type, ld, lsize)],
        annotations: BTreeMap::new(),
    };
    let mb = serde_json::to_vec(&manifest).map_err(|e| Error::invalid(e.to_string()))?;
    let md = staged.add_bytes(&mb, "manifest")?;
    store.commit(staged, &md, &name.into_iter().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_selection_prefers_the_request_then_linux_amd64_then_wasm() {
        let d = |os: &str, arch: &str, n: u8| {
            let mut d = Descriptor::new(oci::OCI_MANIFEST, Digest::of(&[n]), 1);
            d.platform = Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            });
            d
        };
        let idx = Index {
            manifests: vec![d("linux", "arm64", 1), d("wasip1", "wasm", 2), d("linux", "amd64", 3)],
            ..Default::default()
        };
        assert_eq!(select_platform(&idx, None).unwrap().digest, Digest::of(&[3]));
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        };
        assert_eq!(select_platform(&idx, Some(&arm)).unwrap().digest, Digest::of(&[1]));
        let wasm_only = Index {
            manifests: vec![d("linux", "arm64", 1), d("wasip1", "wasm", 2)],
            ..Default::default()
        };
        assert_eq!(select_platform(&wasm_only, None).unwrap().digest, Digest::of(&[2]));
        let s390 = Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        };
        let e = select_platform(&idx, Some(&s390)).unwrap_err().to_string();
        assert!(e.contains("linux/arm64, wasip1/wasm, linux/amd64"), "{e}");
    }
}
