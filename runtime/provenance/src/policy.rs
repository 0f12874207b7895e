//! containers' trust policy (`policy.json`, containers-policy.json(5)): the file podman,
//! skopeo and CRI-O read, with its semantics.
//!
//! For an image of the `docker` transport the most specific scope wins: the reference itself
//! (`host/ns/repo:tag`), its repository, each enclosing namespace, the host, wildcard hosts
//! (`*.example.com`), then the transport's `""` and the global `default`. Every requirement of
//! the scope must be met: `insecureAcceptAnything`, `reject`, `signedBy` (GPG simple signing)
//! and `sigstoreSigned` (cosign key-based signatures); the signed identity must match
//! (`signedIdentity`, default `matchRepoDigestOrExact`).
//!
//! The file is parsed whole; a malformed one is an error naming the file and the field
//! (`transports.docker["127.0.0.1:5000"][0].type`). Key files are read when a requirement
//! that names them is checked, so a broken key of an unrelated scope breaks nothing.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;
use wrun_image::Reference;

use crate::{Error, Result};

/// The default policy file, as containers/image reads it.
pub const DEFAULT_POLICY: &str = "/etc/containers/policy.json";

/// Which signatures' identities are accepted for the pulled reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    ExactReference(String),
    ExactRepository(String),
    RemapIdentity { prefix: String, signed_prefix: String },
}

impl Identity {
    /// The `signedIdentity` type as policy.json names it.
    pub fn name(&self) -> &'static str {
        match self {
            Identity::MatchExact => "matchExact",
            Identity::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            Identity::MatchRepository => "matchRepository",
            Identity::ExactReference(_) => "exactReference",
            Identity::ExactRepository(_) => "exactRepository",
            Identity::RemapIdentity { .. } => "remapIdentity",
        }
    }
}

/// Where a requirement's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    Paths(Vec<PathBuf>),
    Data(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Accept,
    Reject,
    SignedBy { keys: Keys, identity: Identity },
    SigstoreSigned { keys: Keys, identity: Identity },
}

impl Requirement {
    pub fn name(&self) -> &'static str {
        match self {
            Requirement::Accept => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SignedBy { .. } => "signedBy",
            Requirement::SigstoreSigned { .. } => "sigstoreSigned",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub file: PathBuf,
    default: Vec<Requirement>,
    /// transport -> its scopes
    transports: Vec<(String, Vec<Scope>)>,
}

/// A scope of a transport and its requirements.
type Scope = (String, Vec<Requirement>);

/// The requirements for one image, and the scope they came from (for messages).
#[derive(Debug)]
pub struct Rules<'a> {
    pub scope: String,
    pub requirements: &'a [Requirement],
}

fn bad(file: &Path, at: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("policy {}: {at}: {msg}", file.display()))
}

impl Policy {
    /// The policy in `file`; with none given, the default file, or accept-anything when
    /// there is no default file (wrun's behaviour before policies).
    pub fn load(file: Option<&Path>) -> Result<Policy> {
        let (path, required) = match file {
            Some(f) => (f.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_POLICY), false),
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Policy {
                    file: path,
                    default: vec![Requirement::Accept],
                    transports: Vec::new(),
                })
            }
            Err(e) => return Err(Error::io(format!("policy {}", path.display()), e)),
        };
        Policy::parse(&path, &bytes)
    }

    pub fn parse(file: &Path, bytes: &[u8]) -> Result<Policy> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("policy {}: {e}", file.display())))?;
        let obj = v.as_object().ok_or_else(|| bad(file, "(top)", "not a JSON object"))?;
        for k in obj.keys() {
            if k != "default" && k != "transports" {
                return Err(bad(
                    file,
                    k,
                    "unknown field (default and transports are the fields of a policy)",
                ));
            }
        }
        let default = requirements(
            file,
            "default",
            obj.get("default").ok_or_else(|| bad(file, "default", "missing"))?,
        )?;
        let mut transports = Vec::new();
        if let Some(t) = obj.get("transports") {
            let t = t.as_object().ok_or_else(|| bad(file, "transports", "not an object"))?;
            for (name, scopes) in t {
                let scopes = scopes
                    .as_object()
                    .ok_or_else(|| bad(file, &format!("transports.{name}"), "not an object"))?;
                let mut list = Vec::new();
                for (scope, reqs) in scopes {
                    list.push((
                        scope.clone(),
                        requirements(file, &format!("transports.{name}[{scope:?}]"), reqs)?,
                    ));
                }
                transports.push((name.clone(), list));
            }
        }
        Ok(Policy {
            file: file.to_path_buf(),
            default,
            transports,
        })
    }

    /// The requirements for `r` pulled from a registry (the `docker` transport).
    pub fn for_docker(&self, r: &Reference) -> Rules<'_> {
        let scopes = self
            .transports
            .iter()
            .find(|(t, _)| t == "docker")
            .map(|(_, s)| s.as_slice())
            .unwrap_or_default();
        for candidate in docker_scopes(r) {
            if let Some((s, reqs)) = scopes.iter().find(|(s, _)| *s == candidate) {
                return Rules {
                    scope: format!("transports.docker[{s:?}]"),
                    requirements: reqs,
                };
            }
        }
        Rules {
            scope: "default".into(),
            requirements: &self.default,
        }
    }
}

/// The scopes of the docker transport that may hold `r`'s rules, most specific first.
pub fn docker_scopes(r: &Reference) -> Vec<String> {
    let repo = format!("{}/{}", r.domain, r.path);
    let mut out = Vec::new();
    match (&r.digest, &r.tag) {
        (Some(d), _) => out.push(format!("{repo}@{d}")),
        (None, Some(t)) => out.push(format!("{repo}:{t}")),
        (None, None) => out.push(format!("{repo}:latest")),
    }
    let mut ns = repo.as_str();
    loop {
        out.push(ns.to_string());
        match ns.rsplit_once('/') {
            Some((parent, _)) => ns = parent,
            None => break,
        }
    }
    // Wildcards on the host: a.b.example.com gives *.b.example.com, *.example.com, *.com.
    let host = r.domain.split(':').next().unwrap_or(&r.domain);
    let mut rest = host;
    while let Some((_, parent)) = rest.split_once('.') {
        out.push(format!("*.{parent}"));
        rest = parent;
    }
    out.push(String::new());
    out
}

fn requirements(file: &Path, at: &str, v: &Value) -> Result<Vec<Requirement>> {
    let arr = v
        .as_array()
        .ok_or_else(|| bad(file, at, "not a list of requirements"))?;
    if arr.is_empty() {
        return Err(bad(
            file,
            at,
            "an empty list of requirements (say insecureAcceptAnything or reject)",
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, r)| requirement(file, &format!("{at}[{i}]"), r))
        .collect()
}

fn requirement(file: &Path, at: &str, v: &Value) -> Result<Requirement> {
    let o = v.as_object().ok_or_else(|| bad(file, at, "not an object"))?;
    let ty = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(file, &format!("{at}.type"), "missing"))?;
    let allowed: &[&str] = match ty {
        "insecureAcceptAnything" | "reject" => &["type"],
        "signedBy" => &["type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"],
        "sigstoreSigned" => &[
            "type",
            "keyPath",
            "keyPaths",
            "keyData",
            "signedIdentity",
            "fulcio",
            "rekorPublicKeyPath",
            "rekorPublicKeyData",
        ],
        other => {
            return Err(bad(
                file,
                &format!("{at}.type"),
                format!("unknown type {other:?} (insecureAcceptAnything, reject, signedBy, sigstoreSigned)"),
            ))
        }
    };
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(file, &format!("{at}.{k}"), format!("not a field of {ty}")));
        }
    }
    match ty {
        "insecureAcceptAnything" => return Ok(Requirement::Accept),
        "reject" => return Ok(Requirement::Reject),
        _ => {}
    }
    if ty == "signedBy" {
        match o.get("keyType").and_then(Value::as_str) {
            Some("GPGKeys") => {}
            Some(k) => {
                return Err(bad(
                    file,
                    &format!("{at}.keyType"),
                    format!("{k:?}: only GPGKeys is defined"),
                ))
            }
            None => return Err(bad(file, &format!("{at}.keyType"), "missing (GPGKeys)")),
        }
    }
    if o.contains_key("fulcio") {
        return Err(bad(
            file,
            &format!("{at}.fulcio"),
            "keyless (Fulcio) signatures are not supported by wrun: use a public key (keyPath or keyData)",
        ));
    }
    let given: Vec<&str> = ["keyPath", "keyPaths", "keyData"]
        .into_iter()
        .filter(|k| o.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err(bad(
            file,
            at,
            format!(
                "{ty} needs exactly one of keyPath, keyPaths, keyData (has {})",
                given.len()
            ),
        ));
    }
    let keys = match given[0] {
        "keyPath" => Keys::Paths(vec![PathBuf::from(
            o["keyPath"]
                .as_str()
                .ok_or_else(|| bad(file, &format!("{at}.keyPath"), "not a string"))?,
        )]),
        "keyPaths" => Keys::Paths(
            o["keyPaths"]
                .as_array()
                .ok_or_else(|| bad(file, &format!("{at}.keyPaths"), "not a list"))?
                .iter()
                .map(|p| p.as_str().map(PathBuf::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(file, &format!("{at}.keyPaths"), "not a list of strings"))?,
        ),
        _ => Keys::Data(
            o["keyData"]
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or_else(|| bad(file, &format!("{at}.keyData"), "not base64"))?,
        ),
    };
    let identity = match o.get("signedIdentity") {
        None => Identity::MatchRepoDigestOrExact,
        Some(id) => identity(file, &format!("{at}.signedIdentity"), id)?,
    };
    Ok(if ty == "signedBy" {
        Requirement::SignedBy { keys, identity }
    } else {
        Requirement::SigstoreSigned { keys, identity }
    })
}

fn identity(file: &Path, at: &str, v: &Value) -> Result<Identity> {
    let s = |k: &str| -> Result<String> {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(file, &format!("{at}.{k}"), "missing"))
    };
    Ok(match v.get("type").and_then(Value::as_str) {
        Some("matchExact") => Identity::MatchExact,
        Some("matchRepoDigestOrExact") => Identity::MatchRepoDigestOrExact,
        Some("matchRepository") => Identity::MatchRepository,
        Some("exactReference") => Identity::ExactReference(s("dockerReference")?),
        Some("exactRepository") => Identity::ExactRepository(s("dockerRepository")?),
        Some("remapIdentity") => Identity::RemapIdentity {
            prefix: s("prefix")?,
            signed_prefix: s("signedPrefix")?,
        },
        Some(t) => {
            return Err(bad(
                file,
                &format!("{at}.type"),
                format!("unknown signedIdentity type {t:?}"),
            ))
        }
        None => return Err(bad(file, &format!("{at}.type"), "missing")),
    })
}

/// The repository of a reference string (`host/repo:tag` → `host/repo`).
fn repository(s: &str) -> &str {
    let s = s.split('@').next().unwrap_or(s);
    match s.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => s,
    }
}

/// Whether a reference string names a tag (`:` in its last path component).
fn has_tag(s: &str) -> bool {
    let name = s.split('@').next().unwrap_or(s);
    name.rsplit('/').next().unwrap_or("").contains(':')
}

/// Whether a signature claiming `signed` (its docker-reference) is accepted for `pulled`.
pub fn identity_matches(id: &Identity, pulled: &Reference, signed: &str) -> bool {
    let pulled_s = pulled.to_string();
    let pulled_repo = format!("{}/{}", pulled.domain, pulled.path);
    // The signed reference normalised as the pulled one is (busybox → docker.io/library/...),
    // without the `:latest` that parsing adds to a name alone (cosign signs repositories).
    let signed_has_tag = has_tag(signed);
    let signed_n = match Reference::parse(signed) {
        Ok(r) if signed_has_tag || r.digest.is_some() => r.to_string(),
        Ok(r) => format!("{}/{}", r.domain, r.path),
        Err(_) => signed.to_string(),
    };
    match id {
        Identity::MatchExact => pulled.digest.is_none() && signed_has_tag && signed_n == pulled_s,
        Identity::MatchRepoDigestOrExact => {
            if pulled.digest.is_some() {
                repository(&signed_n) == pulled_repo
            } else {
                signed_has_tag && signed_n == pulled_s
            }
        }
        Identity::MatchRepository => repository(&signed_n) == pulled_repo,
        Identity::ExactReference(r) => signed_n == Reference::parse(r).map(|r| r.to_string()).unwrap_or(r.clone()),
        Identity::ExactRepository(r) => repository(&signed_n) == repository(r),
        Identity::RemapIdentity { prefix, signed_prefix } => {
            let remapped = match pulled_s.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with(['/', ':', '@']) || prefix.ends_with('/') => {
                    match Reference::parse(&format!("{signed_prefix}{rest}")) {
                        Ok(r) => r,
                        Err(_) => return false,
                    }
                }
                _ => pulled.clone(),
            };
            identity_matches(&Identity::MatchRepoDigestOrExact, &remapped, signed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(json: &str) -> Result<Policy> {
        Policy::parse(Path::new("policy.json"), json.as_bytes())
    }

    #[test]
    fn the_most_specific_scope_wins() {
        let pol = p(r#"{"default": [{"type": "reject"}], "transports": {"docker": {
            "": [{"type": "insecureAcceptAnything"}],
            "127.0.0.1:5000": [{"type": "reject"}],
            "127.0.0.1:5000/team": [{"type": "insecureAcceptAnything"}],
            "127.0.0.1:5000/team/app:2": [{"type": "reject"}],
            "*.example.com": [{"type": "reject"}]}}}"#)
        .unwrap();
        let scope = |r: &str| pol.for_docker(&Reference::parse(r).unwrap()).scope;
        assert_eq!(
            scope("127.0.0.1:5000/team/app:1"),
            r#"transports.docker["127.0.0.1:5000/team"]"#
        );
        assert_eq!(
            scope("127.0.0.1:5000/team/app:2"),
            r#"transports.docker["127.0.0.1:5000/team/app:2"]"#
        );
        assert_eq!(
            scope("127.0.0.1:5000/other:1"),
            r#"transports.docker["127.0.0.1:5000"]"#
        );
        assert_eq!(scope("reg.example.com/x:1"), r#"transports.docker["*.example.com"]"#);
        assert_eq!(scope("busybox"), r#"transports.docker[""]"#);
    }

    #[test]
    fn malformed_policies_name_the_field() {
        let e = p(r#"{"default": [{"type": "acceptEverything"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("default[0].type") && e.contains("acceptEverything"), "{e}");
        let e = p(r#"{"default": [{"type": "reject"}], "transports": {"docker": {"x": [{"type": "signedBy", "keyPath": "/k"}]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"transports.docker["x"][0].keyType"#), "{e}");
        let e = p("{\"default\": [\n{\"type\": \"reject\"},\n]}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(p(r#"{"default": []}"#).unwrap_err().to_string().contains("empty list"));
    }

    #[test]
    fn signed_identities_match_as_containers_image_matches_them() {
        let r = |s: &str| Reference::parse(s).unwrap();
        let d = "sha256:0123456789012345678901234567890123456789012345678901234567890123";
        let by_digest = r(&format!("127.0.0.1:5000/app@{d}"));
        use Identity::*;
        assert!(identity_matches(
            &MatchRepoDigestOrExact,
            &r("127.0.0.1:5000/app:1"),
            "127.0.0.1:5000/app:1"
        ));
        assert!(!identity_matches(
            &MatchRepoDigestOrExact,
            &r("127.0.0.1:5000/app:1"),
            "127.0.0.1:5000/app:2"
        ));
        assert!(!identity_matches(
            &MatchRepoDigestOrExact,
            &r("127.0.0.1:5000/app:1"),
            "127.0.0.1:5000/app"
        ));
        assert!(identity_matches(
            &MatchRepoDigestOrExact,
            &by_digest,
            "127.0.0.1:5000/app:7"
        ));
        assert!(identity_matches(
            &MatchRepository,
            &r("127.0.0.1:5000/app:1"),
            "127.0.0.1:5000/app"
        ));
        assert!(!identity_matches(
            &MatchRepository,
            &r("127.0.0.1:5000/app:1"),
            "127.0.0.1:5000/other:1"
        ));
        assert!(identity_matches(
            &ExactRepository("127.0.0.1:5000/signed".into()),
            &r("127.0.0.1:5000/app:1"),
            "127.0.0.1:5000/signed:3"
        ));
        let remap = RemapIdentity {
            prefix: "mirror.local/x".into(),
            signed_prefix: "127.0.0.1:5000/y".into(),
        };
        assert!(identity_matches(
            &remap,
            &r("mirror.local/x/app:1"),
            "127.0.0.1:5000/y/app:1"
        ));
        assert!(identity_matches(
            &MatchRepoDigestOrExact,
            &r("busybox:1"),
            "docker.io/library/busybox:1"
        ));
    }
}
