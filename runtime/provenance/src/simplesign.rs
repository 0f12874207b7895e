//! GPG "simple signing" (containers-signature(5)): what `skopeo copy --sign-by` writes and
//! policy.json's `signedBy` accepts. The signatures live in lookaside storage that
//! `registries.d` names (containers-registries.d(5)); each is an OpenPGP signed message whose
//! content is a JSON payload naming the manifest digest and the docker reference.
//!
//! The OpenPGP work is Debian's `gpgv`, given only the requirement's keys (a keyring of
//! our own in a private temporary directory, never the user's GnuPG home); wrun believes a
//! payload only when gpgv reports a valid signature by one of them.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;
use wrun_image::digest::Digest;
use wrun_image::registry::{artifact, RegistryOptions};
use wrun_image::Reference;

use crate::{Error, Result};

pub const DEFAULT_REGISTRIES_D: &str = "/etc/containers/registries.d";
pub const PAYLOAD_TYPE: &str = "atomic container signature";
/// Signatures read per image, and a signature's size limit.
const MAX_SIGNATURES: usize = 16;
const SIGNATURE_CAP: u64 = 4 << 20;

/// A `registries.d` configuration: `default-docker` and per-scope `docker` entries.
#[derive(Debug, Default)]
pub struct RegistriesD {
    default: Option<String>,
    scopes: Vec<(String, String)>,
}

/// The value of a YAML scalar as written (quotes removed).
fn scalar(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(s)
        .to_string()
}

/// `key: value` of one YAML line (keys may hold colons: `127.0.0.1:5000:`).
fn key_value(line: &str) -> Option<(String, String)> {
    if let Some(k) = line.strip_suffix(':') {
        return Some((scalar(k), String::new()));
    }
    let (k, v) = line.rsplit_once(": ")?;
    Some((scalar(k), scalar(v)))
}

impl RegistriesD {
    /// Every `*.yaml` in `dir` (none: an empty configuration). Only the block-mapping YAML
    /// these files are written in is read; anything else is an error naming file and line.
    pub fn load(dir: &Path) -> Result<RegistriesD> {
        let mut out = RegistriesD::default();
        let Ok(rd) = std::fs::read_dir(dir) else { return Ok(out) };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        for f in files {
            let text =
                std::fs::read_to_string(&f).map_err(|e| Error::io(format!("registries.d {}", f.display()), e))?;
            out.parse(&f, &text)?;
        }
        Ok(out)
    }

    fn parse(&mut self, f: &Path, text: &str) -> Result<()> {
        // (indent, key) of the open mappings.
        let mut path: Vec<(usize, String)> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = match raw.find(" #") {
                Some(i) => &raw[..i],
                None => raw,
            };
            if line.trim().is_empty() || line.trim_start().starts_with('#') || line.trim() == "---" {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let (k, v) = key_value(line.trim()).ok_or_else(|| {
                Error::invalid(format!(
                    "registries.d {}: line {}: not a `key: value` line",
                    f.display(),
                    n + 1
                ))
            })?;
            while path.last().is_some_and(|(i, _)| *i >= indent) {
                path.pop();
            }
            let keys: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
            if v.is_empty() {
                path.push((indent, k));
                continue;
            }
            if k != "lookaside" && k != "sigstore" {
                continue;
            }
            match keys.as_slice() {
                ["default-docker"] => self.default = Some(v),
                ["docker", scope] => self.scopes.push((scope.to_string(), v)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The lookaside base URL for `r`: the most specific `docker` scope, else the default.
    pub fn lookaside(&self, r: &Reference) -> Option<&str> {
        let repo = format!("{}/{}", r.domain, r.path);
        let mut ns = repo.as_str();
        loop {
            if let Some((_, u)) = self.scopes.iter().find(|(s, _)| s == ns) {
                return Some(u);
            }
            match ns.rsplit_once('/') {
                Some((parent, _)) => ns = parent,
                None => break,
            }
        }
        self.default.as_deref()
    }
}

/// The lookaside URL of signature `n` (from 1) of `digest`.
pub fn signature_url(base: &str, r: &Reference, digest: &Digest, n: usize) -> String {
    format!(
        "{}/{}@sha256={}/signature-{n}",
        base.trim_end_matches('/'),
        r.path,
        digest.hex()
    )
}

/// The signatures in lookaside storage for `digest`, in order, until the first missing one.
pub fn fetch(base: &str, r: &Reference, digest: &Digest, opts: &RegistryOptions) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for n in 1..=MAX_SIGNATURES {
        let url = signature_url(base, r, digest, n);
        let got = if let Some(p) = url.strip_prefix("file://") {
            match std::fs::metadata(p) {
                Ok(m) if m.len() > SIGNATURE_CAP => {
                    return Err(Error::invalid(format!(
                        "signature {url}: larger than {SIGNATURE_CAP} bytes"
                    )))
                }
                Ok(_) => Some(std::fs::read(p).map_err(|e| Error::io(format!("signature {url}"), e))?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io(format!("signature {url}"), e)),
            }
        } else if url.starts_with("http://") || url.starts_with("https://") {
            artifact::http_get(&url, SIGNATURE_CAP, opts)?
        } else {
            return Err(Error::invalid(format!(
                "lookaside {base}: not a file://, http:// or https:// URL"
            )));
        };
        match got {
            Some(b) => out.push(b),
            None => break,
        }
    }
    Ok(out)
}

/// OpenPGP keys as a binary keyring (ASCII-armoured blocks decoded).
pub fn dearmor(bytes: &[u8]) -> Result<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(bytes.to_vec());
    };
    if !text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() != "-----BEGIN PGP PUBLIC KEY BLOCK-----" {
            continue;
        }
        // Armour headers end at the first empty line.
        for h in lines.by_ref() {
            if h.trim().is_empty() {
                break;
            }
        }
        let mut body = String::new();
        for b in lines.by_ref() {
            let b = b.trim();
            if b.starts_with('=') || b.starts_with("-----END") {
                break;
            }
            body.push_str(b);
        }
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| Error::invalid(format!("an armoured OpenPGP key that is not base64: {e}")))?,
        );
    }
    Ok(out)
}

/// The content of `sig` if gpgv finds a valid signature on it by a key of `keyring`.
pub fn gpgv(keyring: &[u8], sig: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let dir = std::env::temp_dir().join(format!(
        "wrun-gpgv-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(dir.clone());
    let (kr, sf) = (dir.join("keyring.gpg"), dir.join("signature"));
    std::fs::write(&kr, keyring).map_err(|e| format!("write {}: {e}", kr.display()))?;
    std::fs::write(&sf, sig).map_err(|e| format!("write {}: {e}", sf.display()))?;
    let out = Command::new("gpgv")
        .arg("--homedir")
        .arg(&dir)
        .arg("--keyring")
        .arg(&kr)
        .args(["--status-fd", "2", "--output", "-"])
        .arg(&sf)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "signedBy needs gpgv to check OpenPGP signatures (apt-get install gpgv)".to_string()
            } else {
                format!("run gpgv: {e}")
            }
        })?;
    let status = String::from_utf8_lossy(&out.stderr);
    let valid = status.lines().any(|l| l.starts_with("[GNUPG:] VALIDSIG "));
    if out.status.success() && valid {
        return Ok(out.stdout);
    }
    let why = status
        .lines()
        .find_map(|l| {
            l.strip_prefix("[GNUPG:] ").filter(|s| {
                s.starts_with("NO_PUBKEY")
                    || s.starts_with("BADSIG")
                    || s.starts_with("ERRSIG")
                    || s.starts_with("NODATA")
            })
        })
        .unwrap_or("no valid signature");
    Err(format!("gpgv: {why}"))
}

/// Why a payload (simple signing's, or cosign's: `ty` tells) is not a signature of
/// `digest`, or the docker-reference it claims.
pub fn check_payload(payload: &[u8], digest: &Digest, ty: &str) -> std::result::Result<String, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let c = &v["critical"];
    if c["type"].as_str() != Some(ty) {
        return Err(format!("payload type {} is not {ty:?}", c["type"]));
    }
    let signed = c["image"]["docker-manifest-digest"].as_str().unwrap_or("");
    if signed != digest.as_str() {
        return Err(format!("signature is for {signed}, not {digest}"));
    }
    c["identity"]["docker-reference"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "payload has no docker-reference".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_d_scopes_pick_the_most_specific_lookaside() {
        let mut d = RegistriesD::default();
        d.parse(
            Path::new("x.yaml"),
            "# comment\ndefault-docker:\n  lookaside: file:///default\ndocker:\n  127.0.0.1:5000:\n    lookaside: \"file:///host\"\n  127.0.0.1:5000/team:\n    sigstore: file:///team # old name\n",
        )
        .unwrap();
        let r = |s: &str| Reference::parse(s).unwrap();
        assert_eq!(d.lookaside(&r("127.0.0.1:5000/team/app:1")), Some("file:///team"));
        assert_eq!(d.lookaside(&r("127.0.0.1:5000/app:1")), Some("file:///host"));
        assert_eq!(d.lookaside(&r("busybox")), Some("file:///default"));
        let dg = Digest::of(b"m");
        assert_eq!(
            signature_url("file:///s/", &r("127.0.0.1:5000/team/app:1"), &dg, 1),
            format!("file:///s/team/app@sha256={}/signature-1", dg.hex())
        );
        assert!(d.parse(Path::new("y.yaml"), "docker:\n  - not a mapping\n").is_err());
    }
}
