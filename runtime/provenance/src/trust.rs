//! A pull's trust check: the policy's requirements for the reference, each met or the pull
//! refused with one line naming the image, the scope, the requirement and the reason.

use std::path::PathBuf;

use wrun_image::digest::Digest;
use wrun_image::registry::RegistryOptions;
use wrun_image::Reference;

use crate::policy::{identity_matches, Identity, Keys, Policy, Requirement};
use crate::sigstore::{self, PublicKey};
use crate::simplesign::{self, RegistriesD};
use crate::{Error, Result};

/// What a trust check reads: the policy file and the registries.d directory (None: the
/// defaults), and how to reach registries for signatures.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub policy: Option<PathBuf>,
    pub registries_d: Option<PathBuf>,
    pub registry: RegistryOptions,
}

fn read_keys(keys: &Keys) -> Result<Vec<(String, Vec<u8>)>> {
    match keys {
        Keys::Data(d) => Ok(vec![("keyData".into(), d.clone())]),
        Keys::Paths(ps) => ps
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .map(|b| (p.display().to_string(), b))
                    .map_err(|e| Error::io(format!("key {}", p.display()), e))
            })
            .collect(),
    }
}

impl Trust {
    /// Whether `r`, resolved to the manifest `digest`, may be pulled.
    pub fn check(&self, r: &Reference, digest: &Digest) -> Result<()> {
        let policy = Policy::load(self.policy.as_deref())?;
        let rules = policy.for_docker(r);
        for req in rules.requirements {
            let refused = |why: String| {
                Error::Refused(format!(
                    "image {r} refused by policy {} ({}: {}): {why}",
                    policy.file.display(),
                    rules.scope,
                    req.name()
                ))
            };
            match req {
                Requirement::Accept => {}
                Requirement::Reject => return Err(refused("the policy rejects every image of this scope".into())),
                Requirement::SigstoreSigned { keys, identity } => {
                    let keys: Vec<PublicKey> = read_keys(keys)?
                        .iter()
                        .map(|(what, b)| PublicKey::from_pem(what, b))
                        .collect::<Result<_>>()?;
                    let sigs = sigstore::fetch(r, digest, &self.registry)?;
                    if sigs.is_empty() {
                        return Err(refused(format!(
                            "no signature (no {} in the registry)",
                            sigstore::signature_tag(r, digest)
                        )));
                    }
                    let mut why = String::new();
                    let ok = sigs.iter().any(|(payload, sig)| {
                        if !keys.iter().any(|k| k.verifies(payload, sig)) {
                            why = "no signature verifies with the policy's keys".into();
                            return false;
                        }
                        accepted(payload, digest, sigstore::PAYLOAD_TYPE, identity, r, &mut why)
                    });
                    if !ok {
                        return Err(refused(why));
                    }
                }
                Requirement::SignedBy { keys, identity } => {
                    let mut keyring = Vec::new();
                    for (_, k) in read_keys(keys)? {
                        keyring.extend(simplesign::dearmor(&k)?);
                    }
                    let dir = self
                        .registries_d
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(simplesign::DEFAULT_REGISTRIES_D));
                    let conf = RegistriesD::load(&dir)?;
                    let Some(base) = conf.lookaside(r) else {
                        return Err(refused(format!(
                            "no lookaside storage for it in {} (registries.d names where signatures are)",
                            dir.display()
                        )));
                    };
                    let sigs = simplesign::fetch(base, r, digest, &self.registry)?;
                    if sigs.is_empty() {
                        return Err(refused(format!(
                            "no signature at {}",
                            simplesign::signature_url(base, r, digest, 1)
                        )));
                    }
                    let mut why = String::new();
                    let ok = sigs.iter().any(|sig| match simplesign::gpgv(&keyring, sig) {
                        Ok(payload) => accepted(&payload, digest, simplesign::PAYLOAD_TYPE, identity, r, &mut why),
                        Err(e) => {
                            why = e;
                            false
                        }
                    });
                    if !ok {
                        return Err(refused(why));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a verified payload is for `digest` and names an identity the policy accepts for
/// `r`; `why` says what was wrong.
fn accepted(payload: &[u8], digest: &Digest, ty: &str, identity: &Identity, r: &Reference, why: &mut String) -> bool {
    match simplesign::check_payload(payload, digest, ty) {
        Ok(signed) if identity_matches(identity, r, &signed) => true,
        Ok(signed) => {
            let hint = if matches!(identity, Identity::MatchRepoDigestOrExact)
                && !signed.contains(['@'])
                && signed.rsplit('/').next().is_some_and(|l| !l.contains(':'))
            {
                " (cosign signs the repository: use signedIdentity matchRepository)"
            } else {
                ""
            };
            *why = format!(
                "the signature is for {signed:?}, which signedIdentity {} does not accept for {r}{hint}",
                identity.name()
            );
            false
        }
        Err(e) => {
            *why = e;
            false
        }
    }
}
