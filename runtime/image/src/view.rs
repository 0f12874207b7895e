//! What `wrun image ls`, `inspect`, `history` and `df` show, computed from the store.

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::store::{familiar, Image, Store};
use crate::Result;

/// One row of `wrun image ls`: an image once per tag, or once as `<none>` when untagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub repository: String,
    pub tag: String,
    pub digest: Digest,
    pub id: Digest,
    pub created: Option<String>,
    /// Unpacked size of its layers, as docker shows SIZE.
    pub size: u64,
}

/// The unpacked size of an image's layers.
pub fn image_size(store: &Store, img: &Image) -> u64 {
    img.layer_keys()
        .unwrap_or_default()
        .iter()
        .map(|k| store.layer_size(k))
        .sum()
}

pub fn rows(store: &Store, images: &[Image]) -> Vec<Row> {
    let mut out = Vec::new();
    for img in images {
        let size = image_size(store, img);
        let base = |repository: String, tag: String| Row {
            repository,
            tag,
            digest: img.digest.clone(),
            id: img.id.clone(),
            created: img.created().map(str::to_string),
            size,
        };
        if img.tags.is_empty() {
            out.push(base("<none>".into(), "<none>".into()));
        }
        let mut tags = img.tags.clone();
        tags.sort();
        for t in tags {
            out.push(base(
                t.familiar_name(),
                t.tag.clone().unwrap_or_else(|| "<none>".into()),
            ));
        }
    }
    out
}

/// `docker image inspect`'s object for an image.
pub fn inspect(store: &Store, img: &Image) -> Value {
    let c = &img.config;
    let mut tags: Vec<String> = img.tags.iter().map(familiar).collect();
    tags.sort();
    let mut repo_digests: Vec<String> = img
        .tags
        .iter()
        .map(|t| format!("{}@{}", t.familiar_name(), img.digest))
        .collect();
    repo_digests.sort();
    repo_digests.dedup();
    json!({
        "Id": img.id,
        "RepoTags": tags,
        "RepoDigests": repo_digests,
        "Created": c["created"],
        "Author": c.get("author").cloned().unwrap_or(json!("")),
        "Architecture": c["architecture"],
        "Variant": c.get("variant").cloned().unwrap_or(Value::Null),
        "Os": c["os"],
        "Size": image_size(store, img),
        "Config": c.get("config").cloned().unwrap_or(json!({})),
        "RootFS": {"Type": "layers", "Layers": img.diff_ids()},
        "Manifest": {
            "Digest": img.digest,
            "MediaType": img.manifest.media_type.clone().unwrap_or_default(),
            "ArtifactType": img.manifest.artifact_type,
            "Layers": img.manifest.layers.iter().map(|l| json!({"MediaType": l.media_type, "Digest": l.digest, "Size": l.size})).collect::<Vec<_>>(),
            "Annotations": img.manifest.annotations,
        },
        "Metadata": {"BlobSize": img.blob_size()},
    })
}

/// One row of `wrun image history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The image id on the newest row, `<missing>` below it (as docker shows a pulled image).
    pub image: String,
    pub created: Option<String>,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

pub fn history(store: &Store, img: &Image) -> Vec<HistoryRow> {
    let keys = img.layer_keys().unwrap_or_default();
    let mut layer = 0;
    let mut rows: Vec<HistoryRow> = img.config["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let empty = h["empty_layer"].as_bool().unwrap_or(false);
            let size = if empty {
                0
            } else {
                let s = keys.get(layer).map(|k| store.layer_size(k)).unwrap_or(0);
                layer += 1;
                s
            };
            HistoryRow {
                image: "<missing>".into(),
                created: h["created"].as_str().map(str::to_string),
                created_by: h["created_by"].as_str().unwrap_or_default().to_string(),
                size,
                comment: h["comment"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    if rows.is_empty() {
        // No history in the config: a row per layer.
        rows = keys
            .iter()
            .map(|k| HistoryRow {
                image: "<missing>".into(),
                created: img.created().map(str::to_string),
                created_by: String::new(),
                size: store.layer_size(k),
                comment: String::new(),
            })
            .collect();
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first.image = img.id.short().to_string();
    }
    rows
}

/// `wrun system df`'s image and layer lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub images: usize,
    pub dangling: usize,
    /// Blobs (manifests, configs, compressed layers) on disk.
    pub blob_bytes: u64,
    /// Unpacked layers on disk.
    pub layers: usize,
    pub layer_bytes: u64,
    /// What `image prune` would free: blobs and layers only dangling images use.
    pub reclaimable: u64,
}

pub fn usage(store: &Store) -> Result<Usage> {
    let images = store.images()?;
    let _l = store.lock(false)?;
    let idx = store.index()?;
    let mut u = Usage {
        images: images.len(),
        dangling: images.iter().filter(|i| i.tags.is_empty()).count(),
        ..Default::default()
    };
    for e in std::fs::read_dir(store.layout().join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
    {
        u.blob_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    for e in std::fs::read_dir(store.root().join("layers/sha256"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            continue;
        }
        if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
            u.layers += 1;
            u.layer_bytes += store.layer_size(&d);
        }
    }
    let mut kept = idx.clone();
    kept.manifests
        .retain(|m| m.annotations.contains_key(crate::store::oci::REF_NAME));
    let (blobs, layers) = crate::store::gc_referenced(store, &kept)?;
    for img in &images {
        for l in &img.manifest.layers {
            if !blobs.contains(&l.digest) {
                u.reclaimable += l.size;
            }
        }
        for k in img.layer_keys().unwrap_or_default() {
            if !layers.contains(&k) {
                u.reclaimable += store.layer_size(&k);
            }
        }
    }
    Ok(u)
}

/// docker's sizes: decimal units, three significant digits (`4.26MB`, `12.3kB`, `0B`).
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = if v >= 100.0 || i == 0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes_print_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(123_456_789), "123MB");
    }
}
