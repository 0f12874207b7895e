//! Trust: the policy every pull is checked against (`--signature-policy`, `--registries.d`),
//! and `wrun image sign`, `verify` and `keygen` (cosign's key-based format; crate
//! wrun-provenance).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use wrun_image::registry::{RegistryOptions, Verifier};
use wrun_image::Reference;
use wrun_provenance::sigstore;
use wrun_provenance::trust::Trust;

/// The trust policy of pulls (containers' policy.json and registries.d).
#[derive(Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// The trust policy [default: /etc/containers/policy.json; none there: accept anything].
    #[arg(long, value_name = "FILE")]
    pub signature_policy: Option<PathBuf>,
    /// Where GPG signatures' lookaside storage is configured [default:
    /// /etc/containers/registries.d].
    #[arg(long = "registries.d", value_name = "DIR")]
    pub registries_d: Option<PathBuf>,
}

impl TrustArgs {
    /// `plain` with the policy's check on every pull.
    pub fn options(&self, plain: RegistryOptions) -> RegistryOptions {
        let t = Trust {
            policy: self.signature_policy.clone(),
            registries_d: self.registries_d.clone(),
            registry: plain.clone(),
        };
        RegistryOptions {
            verify: Some(Verifier(std::sync::Arc::new(move |r, d| t.check(r, d)))),
            ..plain
        }
    }
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The private key (PKCS#8 PEM, P-256).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// An annotation KEY=VALUE for the signature's payload (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// The image in its registry: NAME[:TAG] or NAME@DIGEST.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub registry: super::image::RegistryArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The public key (PEM; cosign.pub works).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub registry: super::image::RegistryArgs,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "wrun")]
    pub output_key_prefix: PathBuf,
}

fn registry_of(a: &super::image::RegistryArgs) -> RegistryOptions {
    RegistryOptions {
        insecure: a.insecure_registry.clone(),
        auth_file: a.authfile.clone(),
        verify: None,
    }
}

/// The manifest digest `image` names in its registry.
fn remote_digest(image: &str, opts: &RegistryOptions) -> anyhow::Result<(Reference, wrun_image::Digest)> {
    let r = Reference::parse(image)?;
    let (_, d) = wrun_image::registry::artifact::manifest_of(&r, opts)?
        .ok_or_else(|| anyhow::anyhow!("image {image}: not in the registry"))?;
    Ok((r, d))
}

pub fn keygen(a: &KeygenArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let p = a.output_key_prefix.display().to_string();
    let (key, public) = (PathBuf::from(format!("{p}.key")), PathBuf::from(format!("{p}.pub")));
    for f in [&key, &public] {
        if f.exists() {
            anyhow::bail!(
                "keygen: {} exists; remove it or give another --output-key-prefix",
                f.display()
            );
        }
    }
    let (private_pem, public_pem) = sigstore::generate()?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .map_err(|e| anyhow::anyhow!("keygen: {}: {e}", key.display()))?;
    f.write_all(private_pem.as_bytes())?;
    if let Err(e) = std::fs::write(&public, public_pem) {
        let _ = std::fs::remove_file(&key);
        anyhow::bail!("keygen: {}: {e}", public.display());
    }
    writeln!(out, "Private key written to {}", key.display())?;
    writeln!(out, "Public key written to {}", public.display())?;
    Ok(0)
}

pub fn sign(a: &SignArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let text = std::fs::read(&a.key).map_err(|e| anyhow::anyhow!("--key {}: {e}", a.key.display()))?;
    let key = sigstore::SigningKey::from_pem(&format!("--key {}", a.key.display()), &text)?;
    let annotations = a
        .annotations
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--annotation {kv:?}: not KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = registry_of(&a.registry);
    let (r, digest) = remote_digest(&a.image, &opts)?;
    // The identity signed: the reference as given (with its tag), as podman and skopeo sign;
    // by digest, the repository.
    let identity = if r.digest.is_some() {
        format!("{}/{}", r.domain, r.path)
    } else {
        r.to_string()
    };
    let tag = sigstore::sign(&key, &r, &identity, &digest, &annotations, &opts)?;
    writeln!(out, "Signed {identity}@{digest}: pushed {tag}")?;
    Ok(0)
}

pub fn verify(a: &VerifyArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let text = std::fs::read(&a.key).map_err(|e| anyhow::anyhow!("--key {}: {e}", a.key.display()))?;
    let key = sigstore::PublicKey::from_pem(&format!("--key {}", a.key.display()), &text)?;
    let opts = registry_of(&a.registry);
    let (r, digest) = remote_digest(&a.image, &opts)?;
    let sigs = sigstore::fetch(&r, &digest, &opts)?;
    if sigs.is_empty() {
        anyhow::bail!(
            "image {r}: no signature ({} is not in the registry)",
            sigstore::signature_tag(&r, &digest)
        );
    }
    let mut good = Vec::new();
    let mut why = String::from("no signature verifies with this key");
    for (payload, sig) in &sigs {
        if !key.verifies(payload, sig) {
            continue;
        }
        match wrun_provenance::simplesign::check_payload(payload, &digest, sigstore::PAYLOAD_TYPE) {
            Ok(identity) => good.push(identity),
            Err(e) => why = e,
        }
    }
    if good.is_empty() {
        anyhow::bail!("image {r}@{digest}: {why} ({} signatures checked)", sigs.len());
    }
    for g in &good {
        writeln!(out, "Verified {r}@{digest}: signed as {g} by {}", a.key.display())?;
    }
    Ok(0)
}
