//! `wrun image push`, and the upload both it and the signature artifacts use: each blob the
//! registry lacks (read only when it is sent), then the manifest.

use std::sync::Arc;

use super::{oci_ref, registry_error, runtime, Progress, RegistryOptions};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::oci::{self, Descriptor};
use crate::store::Store;
use crate::{Error, Result};

/// Push the image `name` to `dest` (default: `name` as a reference); returns the manifest
/// digest. Blobs the registry has are not sent again.
pub fn push(
    store: &Store,
    name: &str,
    dest: Option<&Reference>,
    opts: &RegistryOptions,
    progress: Progress,
) -> Result<Digest> {
    let img = store.resolve(name)?;
    let r = match dest {
        Some(d) => d.clone(),
        None => Reference::parse(name)?,
    };
    if r.tag.is_none() {
        return Err(Error::Reference(r.to_string(), "a push needs a tag"));
    }
    let mut blobs: Vec<&Descriptor> = img.manifest.layers.iter().collect();
    blobs.push(&img.manifest.config);
    let media_type = img
        .manifest
        .media_type
        .clone()
        .unwrap_or_else(|| oci::OCI_MANIFEST.into());
    let manifest = store.read_blob(&img.digest)?;
    upload(
        &r,
        opts,
        &blobs,
        &|d| store.read_blob(d),
        manifest,
        &media_type,
        progress,
    )
    .map_err(|e| e.within(format!("push {r}")))
}

/// Upload `blobs` the registry lacks (their bytes from `read`, one at a time), then
/// `manifest` (of `media_type`) as `r`; returns the manifest's digest.
pub(super) fn upload(
    r: &Reference,
    opts: &RegistryOptions,
    blobs: &[&Descriptor],
    read: &dyn Fn(&Digest) -> Result<Vec<u8>>,
    manifest: Vec<u8>,
    media_type: &str,
    progress: Progress,
) -> Result<Digest> {
    let client = Arc::new(opts.client(&r.domain));
    let auth = opts.auth(&r.domain)?;
    let oref = oci_ref(r);
    let rt = runtime()?;
    rt.block_on(async {
        client
            .auth(&oref, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| registry_error(r, e))?;
        for b in blobs {
            if client
                .blob_exists(&oref, b.digest.as_str())
                .await
                .map_err(|e| registry_error(r, e))?
            {
                if progress == Progress::Lines {
                    println!("{}: already in the registry", b.digest.short());
                }
                continue;
            }
            client
                .push_blob(&oref, read(&b.digest)?, b.digest.as_str())
                .await
                .map_err(|e| registry_error(r, e))?;
            if progress != Progress::Quiet {
                println!("{}: pushed {} bytes", b.digest.short(), b.size);
            }
        }
        let digest = Digest::of(&manifest);
        let ct = http::HeaderValue::from_str(media_type)
            .map_err(|e| Error::invalid(format!("media type {media_type:?}: {e}")))?;
        client
            .push_manifest_raw(&oref, manifest, ct)
            .await
            .map_err(|e| registry_error(r, e))?;
        Ok(digest)
    })
}
