//! cosign's key-based signatures, in its format, so that any cosign-compatible verifier
//! checks what wrun signs and wrun checks what they sign.
//!
//! - The signed payload is "simple signing" JSON: `critical.identity.docker-reference`,
//!   `critical.image.docker-manifest-digest`, `critical.type = "cosign container image
//!   signature"`, and `optional` annotations.
//! - The signature is ECDSA P-256 over SHA-256 of the payload bytes, ASN.1 DER, base64.
//! - Both travel in the image's repository as an OCI manifest under the tag
//!   `sha256-HEX.sig`: one layer per signature (media type
//!   `application/vnd.dev.cosign.simplesigning.v1+json`, the payload as its blob, the
//!   signature in the annotation `dev.cosignproject.cosign/signature`).
//! - Keys: a PKCS#8 PEM private key (`wrun image keygen` writes one, mode 0600; `openssl
//!   genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` too) and an SPKI PEM public key
//!   (cosign's `cosign.pub`).
//!
//! Everything fetched is untrusted: blob sizes are capped and checked against their digests,
//! and a payload is believed only after its signature verifies.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{json, Value};
use wrun_image::digest::Digest;
use wrun_image::registry::{artifact, RegistryOptions};
use wrun_image::store::oci::{Descriptor, Manifest};
use wrun_image::Reference;

use crate::{Error, Result};

pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// A payload's size limit: they are a few hundred bytes.
const PAYLOAD_CAP: u64 = 1 << 20;

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The DER inside a PEM block of `label` (the first such block).
pub fn pem_block(text: &[u8], label: &str) -> Option<Vec<u8>> {
    let t = std::str::from_utf8(text).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = t.find(&begin)? + begin.len();
    let stop = start + t[start..].find(&end)?;
    let body: String = t[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    b64().decode(body).ok()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = b64().encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A new key pair: (private key PEM, public key PEM).
pub fn generate() -> Result<(String, String)> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| Error::invalid("generate a P-256 key: the system's random source failed"))?;
    let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng)
        .map_err(|e| Error::invalid(format!("generated key: {e}")))?;
    Ok((pem("PRIVATE KEY", doc.as_ref()), public_pem(kp.public_key().as_ref())))
}

fn public_pem(point: &[u8]) -> String {
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    pem("PUBLIC KEY", &der)
}

/// A signing key from a PKCS#8 PEM file's bytes.
pub struct SigningKey(EcdsaKeyPair);

impl SigningKey {
    pub fn from_pem(what: &str, text: &[u8]) -> Result<SigningKey> {
        if pem_block(text, "ENCRYPTED SIGSTORE PRIVATE KEY").is_some()
            || pem_block(text, "ENCRYPTED COSIGN PRIVATE KEY").is_some()
        {
            return Err(Error::invalid(format!(
                "{what}: an encrypted cosign key; give wrun an unencrypted PKCS#8 P-256 key (wrun image keygen makes one)"
            )));
        }
        let der = pem_block(text, "PRIVATE KEY")
            .ok_or_else(|| Error::invalid(format!("{what}: no PEM \"PRIVATE KEY\" block (a PKCS#8 P-256 key)")))?;
        let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &SystemRandom::new())
            .map_err(|e| Error::invalid(format!("{what}: not a PKCS#8 ECDSA P-256 key ({e})")))?;
        Ok(SigningKey(kp))
    }

    pub fn public_pem(&self) -> String {
        public_pem(self.0.public_key().as_ref())
    }

    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>> {
        self.0
            .sign(&SystemRandom::new(), payload)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::invalid("sign: the system's random source failed"))
    }
}

/// A verification key: the 65-byte point of a P-256 public key.
#[derive(Debug, Clone)]
pub struct PublicKey(Vec<u8>);

impl PublicKey {
    pub fn from_pem(what: &str, text: &[u8]) -> Result<PublicKey> {
        let der = pem_block(text, "PUBLIC KEY")
            .ok_or_else(|| Error::invalid(format!("{what}: no PEM \"PUBLIC KEY\" block")))?;
        if der.len() != P256_SPKI_PREFIX.len() + 65 || der[..P256_SPKI_PREFIX.len()] != P256_SPKI_PREFIX {
            return Err(Error::invalid(format!(
                "{what}: not an ECDSA P-256 public key (cosign's default; other key types are not supported)"
            )));
        }
        Ok(PublicKey(der[P256_SPKI_PREFIX.len()..].to_vec()))
    }

    pub fn verifies(&self, payload: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.0)
            .verify(payload, sig)
            .is_ok()
    }
}

/// The payload that says `reference` is the image `digest`.
pub fn payload(reference: &str, digest: &Digest, annotations: &[(String, String)]) -> Vec<u8> {
    let optional = if annotations.is_empty() {
        Value::Null
    } else {
        Value::Object(annotations.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    };
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": PAYLOAD_TYPE,
        },
        "optional": optional,
    }))
    .unwrap_or_default()
}

/// The reference of the signature manifest of `digest` in `r`'s repository.
pub fn signature_tag(r: &Reference, digest: &Digest) -> Reference {
    Reference {
        domain: r.domain.clone(),
        path: r.path.clone(),
        tag: Some(format!("sha256-{}.sig", digest.hex())),
        digest: None,
    }
}

/// The signatures stored for `digest`: (payload, signature) pairs, each payload checked
/// against its layer's digest. Empty when there are none.
pub fn fetch(r: &Reference, digest: &Digest, opts: &RegistryOptions) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let tag = signature_tag(r, digest);
    let Some((bytes, _)) = artifact::manifest_of(&tag, opts)? else {
        return Ok(Vec::new());
    };
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("signature manifest {tag}: {e}")))?;
    let mut out = Vec::new();
    for l in m.layers.iter().filter(|l| l.media_type == SIMPLESIGNING).take(64) {
        let Some(sig) = l.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        let Ok(sig) = b64().decode(sig.trim()) else { continue };
        let payload = artifact::blob(r, l, PAYLOAD_CAP, opts)?;
        out.push((payload, sig));
    }
    Ok(out)
}

/// Sign the image `digest` as `reference` in `r`'s repository and push the signature
/// (added to the signatures already there, as cosign adds them). Returns the signature tag.
pub fn sign(
    key: &SigningKey,
    r: &Reference,
    reference: &str,
    digest: &Digest,
    annotations: &[(String, String)],
    opts: &RegistryOptions,
) -> Result<Reference> {
    let tag = signature_tag(r, digest);
    let p = payload(reference, digest, annotations);
    let sig = key.sign(&p)?;
    let pd = Digest::of(&p);
    let mut layers: Vec<Value> = Vec::new();
    let mut blobs = vec![(pd.clone(), p.clone())];
    if let Some((bytes, _)) = artifact::manifest_of(&tag, opts)? {
        if let Ok(m) = serde_json::from_slice::<Value>(&bytes) {
            for l in m["layers"].as_array().into_iter().flatten() {
                if l["digest"].as_str() == Some(pd.as_str()) {
                    continue;
                }
                if let Ok(d) = serde_json::from_value::<Descriptor>(l.clone()) {
                    blobs.push((d.digest.clone(), artifact::blob(r, &d, PAYLOAD_CAP, opts)?));
                    layers.push(l.clone());
                }
            }
        }
    }
    layers.push(json!({
        "mediaType": SIMPLESIGNING,
        "size": p.len(),
        "digest": pd.to_string(),
        "annotations": {SIGNATURE_ANNOTATION: b64().encode(&sig)},
    }));
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "", "os": "", "created": "0001-01-01T00:00:00Z",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap_or_default();
    let cd = Digest::of(&config);
    blobs.push((cd.clone(), config.clone()));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": cd.to_string()},
        "layers": layers,
    }))
    .unwrap_or_default();
    artifact::put(
        &tag,
        &manifest,
        "application/vnd.oci.image.manifest.v1+json",
        &blobs,
        opts,
    )?;
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_what_its_public_key_verifies_and_nothing_else() {
        let (private, public) = generate().unwrap();
        let k = SigningKey::from_pem("k", private.as_bytes()).unwrap();
        let pk = PublicKey::from_pem("p", public.as_bytes()).unwrap();
        assert_eq!(k.public_pem(), public);
        let d = Digest::of(b"manifest");
        let p = payload("127.0.0.1:5000/app:1", &d, &[]);
        let sig = k.sign(&p).unwrap();
        assert!(pk.verifies(&p, &sig));
        let mut tampered = p.clone();
        tampered[10] ^= 1;
        assert!(!pk.verifies(&tampered, &sig));
        assert_eq!(
            crate::simplesign::check_payload(&p, &d, PAYLOAD_TYPE).unwrap(),
            "127.0.0.1:5000/app:1"
        );
        assert!(
            crate::simplesign::check_payload(&p, &Digest::of(b"other"), PAYLOAD_TYPE)
                .unwrap_err()
                .contains("signature is for")
        );
        let (_, other) = generate().unwrap();
        assert!(!PublicKey::from_pem("o", other.as_bytes()).unwrap().verifies(&p, &sig));
        assert!(PublicKey::from_pem("x", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    }
}
