//! `wrun image save`: images to one archive, an OCI image layout plus docker's manifest.json.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::error::Context;
use crate::reference::Reference;
use crate::store::oci::{self, Descriptor, Index, REF_NAME};
use crate::store::{familiar, Image, Store};
use crate::{Error, Result};

/// Write the images `names` name to `out` as one archive (OCI layout + docker manifest.json).
pub fn save(store: &Store, names: &[String], out: &Path) -> Result<()> {
    let _l = store.lock(false)?;
    let idx = store.index()?;
    let mut images = Vec::new();
    for n in names {
        let img = store
            .resolve_unlocked(n, &idx)
            .map_err(|e| e.within(format!("save {n}")))?;
        let tag = Reference::parse(n)
            .ok()
            .filter(|r| r.digest.is_none() && img.tags.contains(r));
        images.push((img, tag));
    }
    let tmp = out.with_file_name(format!(
        ".{}.{}.tmp",
        out.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let r = write_archive(store, &images, &tmp)
        .and_then(|_| fs::rename(&tmp, out).ctx(|| format!("write {}", out.display())));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// A reproducible header: root-owned, 0644, mtime 0.
fn regular_header(h: &mut tar::Header) {
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
}

fn write_archive(store: &Store, images: &[(Image, Option<Reference>)], path: &Path) -> Result<()> {
    let f = File::create(path).ctx(|| format!("create {}", path.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(f));
    let add = |b: &mut tar::Builder<_>, name: &str, bytes: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        regular_header(&mut h);
        b.append_data(&mut h, name, bytes)
            .ctx(|| format!("write {}", path.display()))
    };
    let mut index = Index::default();
    let mut docker = Vec::new();
    let mut written = std::collections::BTreeSet::new();
    for (img, tag) in images {
        let mb = store.read_blob(&img.digest)?;
        let tags: Vec<&Reference> = match tag {
            Some(t) => vec![t],
            None => img.tags.iter().collect(),
        };
        let mut d = Descriptor::new(
            img.manifest.media_type.as_deref().unwrap_or(oci::OCI_MANIFEST),
            img.digest.clone(),
            mb.len() as u64,
        );
        if let Some(t) = tags.first() {
            d.annotations.insert(REF_NAME.into(), t.to_string());
            d.annotations.insert("io.containerd.image.name".into(), t.to_string());
        }
        index.manifests.push(d);
        docker.push(json!({
            "Config": format!("blobs/sha256/{}", img.id.hex()),
            "RepoTags": tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
            "Layers": img.manifest.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }));
        let mut blobs = vec![img.digest.clone(), img.id.clone()];
        blobs.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
        for d in blobs {
            if !written.insert(d.clone()) {
                continue;
            }
            // Layers are streamed and checked as they are copied; the small blobs are read whole.
            let p = store.blob_path(&d);
            let f = File::open(&p).ctx(|| format!("open {}", p.display()))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            regular_header(&mut h);
            let mut r = crate::digest::HashingReader::new(f);
            b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), &mut r)
                .ctx(|| format!("write {}", path.display()))?;
            let (got, _) = r.finish().ctx(|| format!("read {}", p.display()))?;
            d.verify(&got, format!("blob {}", p.display()))?;
        }
    }
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add(
        &mut b,
        "index.json",
        &serde_json::to_vec(&index).map_err(|e| Error::invalid(e.to_string()))?,
    )?;
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&docker).map_err(|e| Error::invalid(e.to_string()))?,
    )?;
    let w = b.into_inner().ctx(|| format!("write {}", path.display()))?;
    let f = w
        .into_inner()
        .map_err(|e| Error::io(format!("write {}", path.display()), e.into_error()))?;
    f.sync_all().ctx(|| format!("write {}", path.display()))?;
    let _ = Write::flush(&mut &f);
    Ok(())
}
