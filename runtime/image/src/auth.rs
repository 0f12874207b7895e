//! Registry credentials in docker's `config.json` format (`{"auths": {"HOST": {"auth":
//! base64("user:password")}}}`), the file docker, podman (`auth.json`) and skopeo read: from
//! `--authfile`, else `$REGISTRY_AUTH_FILE`, else `~/.docker/config.json`.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::Context;
use crate::{Error, Result};

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.user)
    }
}

/// The credentials file: `explicit`, else `$REGISTRY_AUTH_FILE`, else `$HOME/.docker/config.json`.
pub fn auth_file(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker/config.json")
}

/// The key a registry has in the file (docker hub's is its v1 URL).
fn key(registry: &str) -> String {
    if registry == "docker.io" || registry == "index.docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

fn read(file: &Path) -> Result<Value> {
    match fs::read(file) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::invalid(format!("{}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(Error::io(format!("read {}", file.display()), e)),
    }
}

/// The credentials stored for `registry`, if any.
pub fn lookup(file: &Path, registry: &str) -> Result<Option<Credentials>> {
    let v = read(file)?;
    let k = key(registry);
    let entry = v["auths"]
        .get(&k)
        .or_else(|| v["auths"].get(format!("https://{k}")))
        .or_else(|| v["auths"].get(format!("http://{k}")));
    let Some(auth) = entry.and_then(|e| e["auth"].as_str()) else {
        return Ok(None);
    };
    let raw = base64_decode(auth)
        .ok_or_else(|| Error::invalid(format!("{}: auths.{k}.auth is not base64", file.display())))?;
    let s = String::from_utf8(raw)
        .map_err(|_| Error::invalid(format!("{}: auths.{k}.auth is not UTF-8", file.display())))?;
    let (user, password) = s
        .split_once(':')
        .ok_or_else(|| Error::invalid(format!("{}: auths.{k}.auth is not user:password", file.display())))?;
    Ok(Some(Credentials {
        user: user.into(),
        password: password.into(),
    }))
}

/// Store (or with None remove) the credentials of `registry`; the file is made 0600.
pub fn store(file: &Path, registry: &str, creds: Option<&Credentials>) -> Result<bool> {
    let mut v = read(file)?;
    if !v.is_object() {
        v = json!({});
    }
    if !v["auths"].is_object() {
        v["auths"] = json!({});
    }
    let k = key(registry);
    let auths = v["auths"].as_object_mut().expect("made an object above");
    let had = auths.remove(&k).is_some();
    if let Some(c) = creds {
        auths.insert(
            k,
            json!({"auth": base64_encode(format!("{}:{}", c.user, c.password).as_bytes())}),
        );
    }
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let body = serde_json::to_vec_pretty(&v).map_err(|e| Error::invalid(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, file)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("write {}", file.display()), e)
    })?;
    Ok(had)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for ch in s.bytes() {
        let v = B64.iter().position(|&c| c == ch)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pass", "wrun:s3cret/+="] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert!(base64_decode("!!").is_none());
    }

    #[test]
    fn credentials_are_stored_looked_up_and_removed() {
        let dir = std::env::temp_dir().join(format!("wrun-auth-test-{}", std::process::id()));
        let f = dir.join("config.json");
        let c = Credentials {
            user: "u".into(),
            password: "p:w".into(),
        };
        assert!(!store(&f, "127.0.0.1:5000", Some(&c)).unwrap());
        assert_eq!(lookup(&f, "127.0.0.1:5000").unwrap(), Some(c));
        assert_eq!(lookup(&f, "other:1").unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(store(&f, "127.0.0.1:5000", None).unwrap());
        assert_eq!(lookup(&f, "127.0.0.1:5000").unwrap(), None);
        let _ = fs::remove_dir_all(dir);
    }
}
