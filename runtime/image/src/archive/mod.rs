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
use std::path::{Path, PathBuf};

pub use change::apply_change;
pub use save::save;
use serde_json::{json, Value};

use crate::digest::Digest;
use crate::error::Context;
use crate::reference::Reference;
use crate::store::oci::{self, Descriptor, Index, Manifest, Platform, REF_NAME};
use crate::store::{Image, Staged, Store};
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
    unpack::unpack_layer(f, &dir)?;
    let images = match kind {
        ArchiveKind::Oci => oci_images(&dir, opts)?,
        _ => docker_images(&dir, opts)?,
    };
    if images.is_empty() {
        return Err(Error::invalid("the archive holds no image"));
    }
    let mut out = Vec::new();
    let mut planned = Vec::new();
    for (manifest_path, tags) in images {
        let digest = stage_image(store, &mut staged, &dir, &manifest_path)?;
        planned.push((digest, tags));
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
    let mut a = tar::Archive::new(unpack::decompressed(f)?);
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

/// A file of the unpacked archive, by a path the archive gave (resolved in the archive dir).
fn archive_file(dir: &Path, rel: &str) -> Result<PathBuf> {
    let parts = unpack::clean_entry_path(rel.as_bytes())?;
    let p: PathBuf = parts.iter().collect();
    let dir = &fs::canonicalize(dir).ctx(|| format!("resolve {}", dir.display()))?;
    let root = wrun_sys::inroot::Root::open(dir)?;
    let fd = root
        .open_file(&p)
        .map_err(|e| Error::sys(format!("archive entry {rel:?}"), e))?;
    // The fd is the file the kernel resolved inside the archive; read it through its magic link.
    let f = File::from(fd);
    let real = fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f)))
        .ctx(|| format!("archive entry {rel:?}"))?;
    if !real.starts_with(dir) {
        return Err(Error::invalid(format!("archive entry {rel:?} is outside the archive")));
    }
    Ok(real)
}

fn read_json(p: &Path) -> Result<Value> {
    let b = fs::read(p).ctx(|| format!("read {}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| Error::invalid(format!("{}: {e}", p.display())))
}

fn blob_in(dir: &Path, d: &Digest) -> Result<PathBuf> {
    archive_file(dir, &format!("blobs/sha256/{}", d.hex()))
}

/// For an OCI archive: (path of each image manifest, its tags).
fn oci_images(dir: &Path, opts: &ImportOptions) -> Result<Vec<(PathBuf, Vec<Reference>)>> {
    let idx: Index = serde_json::from_value(read_json(&archive_file(dir, "index.json")?)?)
        .map_err(|e| Error::invalid(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for m in &idx.manifests {
        let mut desc = m.clone();
        if oci::is_index(&m.media_type) {
            let p = blob_in(dir, &m.digest)?;
            let b = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
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
        out.push((blob_in(dir, &desc.digest)?, tags));
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

/// For a docker save archive: (path of a manifest written for each image, its tags).
fn docker_images(dir: &Path, opts: &ImportOptions) -> Result<Vec<(PathBuf, Vec<Reference>)>> {
    let list = read_json(&archive_file(dir, "manifest.json")?)?;
    let list = list
        .as_array()
        .ok_or_else(|| Error::invalid("manifest.json: not a list"))?;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let field = |k: &str| {
            item.get(k)
                .ok_or_else(|| Error::invalid(format!("manifest.json[{i}]: no {k}")))
        };
        let config_path = archive_file(dir, field("Config")?.as_str().unwrap_or_default())?;
        let config_bytes = fs::read(&config_path).ctx(|| format!("read {}", config_path.display()))?;
        let config_digest = Digest::of(&config_bytes);
        let mut layers = Vec::new();
        for l in field("Layers")?.as_array().into_iter().flatten() {
            let p = archive_file(dir, l.as_str().unwrap_or_default())?;
            let mut head = [0u8; 4];
            let n = File::open(&p)
                .and_then(|mut f| f.read(&mut head))
                .ctx(|| format!("read {}", p.display()))?;
            let media_type = match Compression::sniff(&head[..n]) {
                Compression::None => oci::OCI_LAYER,
                Compression::Gzip => oci::OCI_LAYER_GZIP,
                Compression::Zstd => oci::OCI_LAYER_ZSTD,
            };
            let digest = file_digest(&p)?;
            let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            layers.push(Descriptor::new(media_type, digest, size));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(oci::OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64),
            layers,
            annotations: BTreeMap::new(),
        };
        // Put the config and the manifest where an OCI layout would have them, so one path
        // stages both kinds of archive.
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).ctx(|| format!("create {}", blobs.display()))?;
        for l in &manifest.layers {
            let dst = blobs.join(l.digest.hex());
            if !dst.exists() {
                let src = archive_file(dir, &layer_path_of(item, &manifest, l).unwrap_or_default())?;
                fs::rename(&src, &dst)
                    .or_else(|_| fs::copy(&src, &dst).map(drop))
                    .ctx(|| format!("stage layer {}", l.digest))?;
            }
        }
        fs::write(blobs.join(config_digest.hex()), &config_bytes).ctx(|| "stage the config".into())?;
        let mb = serde_json::to_vec(&manifest).map_err(|e| Error::invalid(e.to_string()))?;
        let md = Digest::of(&mb);
        let mp = blobs.join(md.hex());
        fs::write(&mp, &mb).ctx(|| "stage the manifest".into())?;
        let tags = match &opts.name {
            Some(n) => vec![n.clone()],
            None => item["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().and_then(|t| Reference::parse(t).ok()))
                .collect(),
        };
        out.push((mp, tags));
    }
    Ok(out)
}

/// The archive path of layer `l` of a docker manifest item (by position).
fn layer_path_of(item: &Value, m: &Manifest, l: &Descriptor) -> Option<String> {
    let i = m.layers.iter().position(|x| x.digest == l.digest)?;
    item["Layers"].get(i)?.as_str().map(str::to_string)
}

fn file_digest(p: &Path) -> Result<Digest> {
    let f = File::open(p).ctx(|| format!("open {}", p.display()))?;
    crate::digest::HashingReader::new(f)
        .finish()
        .map(|(d, _)| d)
        .ctx(|| format!("read {}", p.display()))
}

/// Stage the image whose manifest is at `manifest_path` (inside the unpacked archive `dir`):
/// its manifest, config and layer blobs, each checked against its digest, and its layers
/// unpacked and checked against their diffIDs. Returns the manifest's digest.
fn stage_image(store: &Store, staged: &mut Staged, dir: &Path, manifest_path: &Path) -> Result<Digest> {
    let mb = fs::read(manifest_path).ctx(|| format!("read {}", manifest_path.display()))?;
    let md = Digest::of(&mb);
    if let Some(named) = manifest_path.file_name().and_then(|n| n.to_str()) {
        Digest::parse(&format!("sha256:{named}"))?.verify(&md, format!("manifest {named}"))?;
    }
    let manifest: Manifest = serde_json::from_slice(&mb).map_err(|e| Error::invalid(format!("manifest {md}: {e}")))?;
    if !store.has_blob(&md) {
        staged.add_bytes(&mb, "manifest")?;
    }
    let cp = blob_in(dir, &manifest.config.digest)?;
    let cb = fs::read(&cp).ctx(|| format!("read {}", cp.display()))?;
    manifest
        .config
        .digest
        .verify(&Digest::of(&cb), format!("config {}", manifest.config.digest))?;
    if !store.has_blob(&manifest.config.digest) {
        staged.add_bytes(&cb, "config")?;
    }
    let config: Value =
        serde_json::from_slice(&cb).map_err(|e| Error::invalid(format!("config {}: {e}", manifest.config.digest)))?;
    let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| Digest::parse(v.as_str().unwrap_or_default()))
        .collect::<Result<_>>()?;
    let mut tar_i = 0;
    for l in &manifest.layers {
        let what = format!("layer {}", l.digest);
        let stored = store.has_blob(&l.digest);
        let blob = if stored {
            store.blob_path(&l.digest)
        } else {
            let src = blob_in(dir, &l.digest)?;
            let f = File::open(&src).ctx(|| format!("open {}", src.display()))?;
            staged.add_blob(f, Some(&l.digest), &what)?.2
        };
        if oci::is_wasm_layer(&l.media_type) {
            if !store.has_layer(&l.digest) {
                staged.wasm_layer(&blob, &l.digest, &wasm_file_name(l))?;
            }
            continue;
        }
        let want = diff_ids.get(tar_i).ok_or_else(|| {
            Error::invalid(format!(
                "config {}: fewer diff_ids than tar layers",
                manifest.config.digest
            ))
        })?;
        tar_i += 1;
        if !store.has_layer(want) {
            // A stored blob is checked as it is unpacked; a staged one was as it was copied.
            let check = stored.then_some(&l.digest);
            staged.unpack_layer(&blob, check, Some(want), &what)?;
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
