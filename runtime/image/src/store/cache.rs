//! The build cache: `wrun build` commits the image of every step, and an index entry
//! annotated `io.wrun.build.cache=KEY` names it as the answer for the step's key (its parent,
//! instruction, build arguments and the content of what it copies). The entries are not
//! listed as images; `image prune` removes them with the dangling images, and `image rm` of
//! an image removes its entries too.

use super::oci::{Descriptor, Index};
use super::{Image, Staged, Store};
use crate::digest::Digest;
use crate::Result;

/// The annotation of a build-cache entry.
pub const CACHE_KEY: &str = "io.wrun.build.cache";

/// Whether an index entry is the build cache's.
pub fn is_cache_entry(d: &Descriptor) -> bool {
    d.annotations.contains_key(CACHE_KEY)
}

/// `d` (an image's entry without annotations) becomes the cache's answer for `key`.
pub(super) fn set(idx: &mut Index, key: &str, mut d: Descriptor) {
    idx.manifests
        .retain(|m| m.annotations.get(CACHE_KEY).map(String::as_str) != Some(key));
    d.annotations.insert(CACHE_KEY.to_string(), key.to_string());
    idx.manifests.push(d);
}

impl Store {
    /// Commit a build step's image as the cache's answer for `key`.
    pub fn commit_cached(&self, staged: Staged, manifest: &Digest, key: &str) -> Result<Image> {
        self.commit_as(staged, manifest, &[], Some(key))
    }

    /// The image the cache has for `key`, if it has one (and its blobs and layers are all
    /// still there).
    pub fn cached(&self, key: &str) -> Option<Image> {
        let _l = self.lock(false).ok()?;
        let idx = self.index().ok()?;
        let d = idx
            .manifests
            .iter()
            .find(|m| m.annotations.get(CACHE_KEY).map(String::as_str) == Some(key))?;
        let img = self.image_of(&d.digest, &idx).ok()?;
        let keys = img.layer_keys().ok()?;
        keys.iter().all(|k| self.has_layer(k)).then_some(img)
    }
}

impl Store {
    /// Give `img` an index entry of its own if only the cache names it: an untagged build
    /// result is an image (listed as `<none>`, as docker lists it), not only a cache answer.
    pub fn keep(&self, img: &Image) -> Result<()> {
        let _l = self.lock(true)?;
        let mut idx = self.index()?;
        if idx
            .manifests
            .iter()
            .any(|m| m.digest == img.digest && !is_cache_entry(m))
        {
            return Ok(());
        }
        if let Some(d) = idx.manifests.iter().find(|m| m.digest == img.digest).cloned() {
            let mut d = d;
            d.annotations.remove(CACHE_KEY);
            idx.manifests.push(d);
            self.write_index(&idx)?;
        }
        Ok(())
    }
}
