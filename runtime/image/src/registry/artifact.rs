//! Small artifacts beside images in a registry: the signatures that `wrun image sign` and
//! cosign store as a manifest under a tag derived from the image's digest
//! (`sha256-HEX.sig`), their blobs, and the lookaside files of GPG signatures.

use futures_util::StreamExt;

use super::{oci_ref, registry_error, runtime, RegistryOptions};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::oci::Descriptor;
use crate::{Error, Result};

/// The manifest `r` names and its digest; None when the registry has no such tag.
pub fn manifest_of(r: &Reference, opts: &RegistryOptions) -> Result<Option<(Vec<u8>, Digest)>> {
    let client = opts.client(&r.domain);
    let auth = opts.auth(&r.domain)?;
    let oref = oci_ref(r);
    let rt = runtime()?;
    match rt.block_on(opts.manifest(&client, r, &oref, &auth)) {
        Ok((b, _)) => {
            let d = Digest::of(&b);
            if let Some(want) = &r.digest {
                want.verify(&d, "manifest")?;
            }
            Ok(Some((b, d)))
        }
        Err(Error::NotInRegistry(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The blob `d` of `r`'s repository, at most `cap` bytes, checked against its digest.
pub fn blob(r: &Reference, d: &Descriptor, cap: u64, opts: &RegistryOptions) -> Result<Vec<u8>> {
    if d.size > cap {
        return Err(Error::invalid(format!(
            "blob {}: {} bytes, more than {cap}",
            d.digest, d.size
        )));
    }
    let client = opts.client(&r.domain);
    let auth = opts.auth(&r.domain)?;
    let oref = oci_ref(r);
    let rt = runtime()?;
    rt.block_on(async {
        client
            .auth(&oref, &auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(|e| registry_error(r, e))?;
        let desc = oci_client::manifest::OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.to_string(),
            size: d.size as i64,
            ..Default::default()
        };
        let mut s = client
            .pull_blob_stream(&oref, &desc)
            .await
            .map_err(|e| registry_error(r, e))?;
        let mut out = Vec::new();
        while let Some(chunk) = s.stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| Error::invalid(format!("blob {}: {e}", d.digest)))?);
            if out.len() as u64 > d.size {
                return Err(Error::invalid(format!(
                    "blob {}: more than its {} bytes",
                    d.digest, d.size
                )));
            }
        }
        d.digest.verify(&Digest::of(&out), format!("blob {}", d.digest))?;
        Ok(out)
    })
}

/// Push `blobs` and then `manifest` (of `media_type`) as `r` (a tag); its digest.
pub fn put(
    r: &Reference,
    manifest: &[u8],
    media_type: &str,
    blobs: &[(Digest, Vec<u8>)],
    opts: &RegistryOptions,
) -> Result<Digest> {
    let descs: Vec<Descriptor> = blobs
        .iter()
        .map(|(d, b)| Descriptor::new("application/octet-stream", d.clone(), b.len() as u64))
        .collect();
    let refs: Vec<&Descriptor> = descs.iter().collect();
    let read = |d: &Digest| -> Result<Vec<u8>> {
        blobs
            .iter()
            .find(|(x, _)| x == d)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| Error::invalid(format!("blob {d}: not given")))
    };
    super::push::upload(
        r,
        opts,
        &refs,
        &read,
        manifest.to_vec(),
        media_type,
        super::Progress::Quiet,
    )
}

/// GET `url` (http or https), at most `cap` bytes; None on 404.
pub fn http_get(url: &str, cap: u64, opts: &RegistryOptions) -> Result<Option<Vec<u8>>> {
    let http = opts.http()?;
    let rt = runtime()?;
    rt.block_on(async {
        let res = http
            .get(url)
            .send()
            .await
            .map_err(|e| Error::invalid(format!("{url}: {e}")))?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !res.status().is_success() {
            return Err(Error::invalid(format!("{url}: HTTP {}", res.status())));
        }
        let mut s = res.bytes_stream();
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.map_err(|e| Error::invalid(format!("{url}: {e}")))?);
            if out.len() as u64 > cap {
                return Err(Error::invalid(format!("{url}: more than {cap} bytes")));
            }
        }
        Ok(Some(out))
    })
}
