//! The manifest request, made here rather than by oci-client: oci-client reads a manifest
//! response whole into memory, so a hostile registry could answer with gigabytes. This reads
//! at most `MAX_MANIFEST` bytes (distribution's own limit, 4 MiB) and refuses a larger one as
//! soon as its `Content-Length`, or its bytes, pass that. Authentication is still oci-client's:
//! it fetches (and caches for the blob requests that follow) the bearer token, or says that
//! basic credentials are to be sent as they are.

use futures_util::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use crate::reference::Reference;
use crate::Error;

/// The largest manifest or index a pull reads (the distribution registry's own limit).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// What the registry answered for a manifest.
pub(super) enum Fetched {
    /// The manifest's bytes and the registry's `Docker-Content-Digest`, if any.
    Manifest(Vec<u8>, Option<String>),
    /// A failure that oci-client describes (auth): mapped by the caller.
    Client(OciDistributionError),
    /// Any other failure, already one line.
    Failed(Error),
}

/// GET `oref`'s manifest (of one of `accept`'s types) from `r`'s registry, at most
/// `MAX_MANIFEST` bytes of it.
pub(super) async fn fetch(
    client: &Client,
    http: &reqwest::Client,
    plain_http: bool,
    r: &Reference,
    oref: &oci_client::Reference,
    auth: &RegistryAuth,
    accept: &[&str],
) -> Fetched {
    let token = match client.auth(oref, auth, RegistryOperation::Pull).await {
        Ok(t) => t,
        Err(e) => return Fetched::Client(e),
    };
    let registry = oref.resolve_registry();
    let url = format!(
        "{}://{registry}/v2/{}/manifests/{}",
        if plain_http { "http" } else { "https" },
        oref.repository(),
        oref.digest().or(oref.tag()).unwrap_or("latest"),
    );
    let mut req = http.get(&url).header(reqwest::header::ACCEPT, accept.join(", "));
    req = match (&token, auth) {
        (Some(t), _) => req.bearer_auth(t),
        (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
        _ => req,
    };
    let what = format!("registry {}", r.domain);
    let res = match req.send().await {
        Ok(res) => res,
        Err(e) => return Fetched::Failed(Error::Invalid(format!("{what}: {}", chain(&e)))),
    };
    let status = res.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Fetched::Failed(Error::NotInRegistry(format!("{r}: not in {what} (manifest unknown)")));
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Fetched::Failed(Error::Refused(format!(
            "{what}: access to {} refused ({status})",
            r.name()
        )));
    }
    if !status.is_success() {
        return Fetched::Failed(Error::Invalid(format!("{what}: manifest of {r}: {status}")));
    }
    let too_big = |n: u64| {
        Fetched::Failed(Error::Invalid(format!(
            "{what}: manifest of {r}: {n} bytes or more, larger than a manifest may be ({MAX_MANIFEST})"
        )))
    };
    if let Some(n) = res.content_length().filter(|&n| n > MAX_MANIFEST) {
        return too_big(n);
    }
    let digest = res
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => body.extend_from_slice(&c),
            Err(e) => return Fetched::Failed(Error::Invalid(format!("{what}: manifest of {r}: {}", chain(&e)))),
        }
        if body.len() as u64 > MAX_MANIFEST {
            return too_big(body.len() as u64);
        }
    }
    Fetched::Manifest(body, digest)
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg = format!("{msg}: {t}");
        }
        src = s.source();
    }
    msg
}
