//! Garbage collection: blobs and unpacked layers that no image of the index references are
//! removed, with what a dead process left in `tmp/`. Runs under the exclusive lock.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::oci::Index;
use super::Store;
use crate::digest::Digest;
use crate::Result;

/// What a collection freed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

/// The blobs and layer keys the images of `idx` need.
pub fn referenced(store: &Store, idx: &Index) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>)> {
    let mut blobs = BTreeSet::new();
    let mut layers = BTreeSet::new();
    let manifests: BTreeSet<&Digest> = idx.manifests.iter().map(|m| &m.digest).collect();
    for d in manifests {
        blobs.insert(d.clone());
        // An image whose manifest or config cannot be read keeps what it names, when known:
        // collection never removes more than it can prove unused.
        let img = store.image_of(d, idx)?;
        blobs.insert(img.manifest.config.digest.clone());
        blobs.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
        layers.extend(img.layer_keys()?);
    }
    Ok((blobs, layers))
}

pub fn collect(store: &Store, idx: &Index) -> Result<Collected> {
    let (blobs, layers) = referenced(store, idx)?;
    let mut c = Collected::default();
    let blob_dir = store.layout().join("blobs/sha256");
    for e in fs::read_dir(&blob_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let keep = Digest::parse(&format!("sha256:{name}")).is_ok_and(|d| blobs.contains(&d));
        if !keep {
            c.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(e.path()).is_ok() {
                c.blobs += 1;
            }
        }
    }
    let layer_dir = store.root().join("layers/sha256");
    for e in fs::read_dir(&layer_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let hex = name.strip_suffix(".json").unwrap_or(&name);
        let keep = Digest::parse(&format!("sha256:{hex}")).is_ok_and(|d| layers.contains(&d));
        if keep {
            continue;
        }
        if name.ends_with(".json") {
            let _ = fs::remove_file(e.path());
        } else {
            let d = Digest::parse(&format!("sha256:{hex}")).ok();
            c.bytes += d.map(|d| store.layer_size(&d)).unwrap_or(0);
            // The size file goes first: a layer without one is never taken as complete.
            let _ = fs::remove_file(layer_dir.join(format!("{name}.json")));
            if fs::remove_dir_all(e.path()).is_ok() {
                c.layers += 1;
            }
        }
    }
    remove_stale_tmp(store);
    Ok(c)
}

/// `tmp/<pid>-...` entries of processes that are gone (a killed pull or import).
pub fn remove_stale_tmp(store: &Store) {
    for e in fs::read_dir(store.root().join("tmp")).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}
