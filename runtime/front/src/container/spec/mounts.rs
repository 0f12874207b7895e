//! The mounts a user asks for: `-v`, `--mount`, `--tmpfs`, and the image's VOLUMEs.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::RunOptions;
use crate::container::{Error, Result};
use crate::dockerflags;

/// A destination inside the container: absolute, not `/`, without `..`.
pub(super) fn destination(flag: &str, d: &str) -> Result<String> {
    let p = Path::new(d);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) || p == Path::new("/") {
        return Err(Error::Invalid(format!(
            "{flag} {d:?}: the destination must be an absolute path inside the container, not / and without .."
        )));
    }
    Ok(d.to_string())
}

/// What a volume source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path (must exist).
    Host(PathBuf),
    /// A named volume (`<data-root>/volumes/NAME/_data`, made on first use).
    Named(String),
    /// An anonymous volume of this container (removed with it).
    Anonymous,
}

/// A mount the front end adds, before it becomes an OCI mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserMount {
    Bind { src: Source, dst: String, ro: bool },
    Tmpfs { dst: String, options: Vec<String> },
}

fn volume_name_ok(n: &str) -> bool {
    n.len() >= 2 && crate::container::valid_name(n)
}

/// `-v SRC:DST[:OPTS]` / `-v DST` (anonymous).
pub(super) fn parse_volume(v: &str) -> Result<UserMount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [s, d] => (Some(*s), *d, ""),
        [s, d, o] => (Some(*s), *d, *o),
        _ => return Err(Error::Invalid(format!("-v {v:?}: not SRC:DST[:OPTIONS]"))),
    };
    let dst = destination("-v", dst)?;
    let mut ro = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => ro = true,
            "rw" | "z" | "Z" | "private" | "rprivate" | "nocopy" => {}
            _ => return Err(Error::Invalid(format!("-v {v:?}: unknown option {o:?}"))),
        }
    }
    let src = match src {
        None => Source::Anonymous,
        Some(s) if s.starts_with('/') => Source::Host(PathBuf::from(s)),
        Some(s) if volume_name_ok(s) => Source::Named(s.to_string()),
        Some(s) => {
            return Err(Error::Invalid(format!(
                "-v {v:?}: {s:?} is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
            )))
        }
    };
    Ok(UserMount::Bind { src, dst, ro })
}

/// `--tmpfs DST[:OPTIONS]` (docker's default options: noexec, nosuid, nodev).
pub(super) fn parse_tmpfs(v: &str) -> Result<UserMount> {
    let (d, opts) = v.split_once(':').unwrap_or((v, ""));
    let dst = destination("--tmpfs", d)?;
    let mut options = vec!["noexec".to_string(), "nosuid".into(), "nodev".into()];
    options.extend(opts.split(',').filter(|o| !o.is_empty()).map(str::to_string));
    Ok(UserMount::Tmpfs { dst, options })
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…]`.
pub(super) fn parse_mount(v: &str) -> Result<UserMount> {
    let bad = |why: &str| Error::Invalid(format!("--mount {v:?}: {why}"));
    let mut kv = BTreeMap::new();
    let mut ro = false;
    for f in v.split(',') {
        match f.split_once('=') {
            Some((k, x)) => {
                let k = match k {
                    "src" => "source",
                    "dst" | "destination" => "target",
                    k => k,
                };
                if k == "readonly" || k == "ro" {
                    ro = matches!(x, "true" | "1");
                } else {
                    kv.insert(k.to_string(), x.to_string());
                }
            }
            None if f == "readonly" || f == "ro" => ro = true,
            None => return Err(bad(&format!("{f:?} is not KEY=VALUE"))),
        }
    }
    let target = kv.remove("target").ok_or_else(|| bad("no target"))?;
    let dst = destination("--mount", &target)?;
    let ty = kv.remove("type").unwrap_or_else(|| "volume".into());
    let m = match ty.as_str() {
        "bind" => {
            let s = kv.remove("source").ok_or_else(|| bad("a bind needs a source"))?;
            if !s.starts_with('/') {
                return Err(bad("a bind source must be an absolute host path"));
            }
            kv.remove("bind-propagation");
            UserMount::Bind {
                src: Source::Host(s.into()),
                dst,
                ro,
            }
        }
        "volume" => {
            let src = match kv.remove("source") {
                None => Source::Anonymous,
                Some(s) if volume_name_ok(&s) => Source::Named(s),
                Some(s) => return Err(bad(&format!("{s:?} is not a volume name"))),
            };
            kv.remove("volume-nocopy");
            UserMount::Bind { src, dst, ro }
        }
        "tmpfs" => {
            let mut options = vec!["noexec".to_string(), "nosuid".into(), "nodev".into()];
            if let Some(s) = kv.remove("tmpfs-size") {
                let n = dockerflags::parse_size(&s).map_err(|e| bad(&format!("tmpfs-size {s:?}: {e}")))?;
                options.push(format!("size={n}"));
            }
            if let Some(m) = kv.remove("tmpfs-mode") {
                if u32::from_str_radix(&m, 8).is_err() {
                    return Err(bad(&format!("tmpfs-mode {m:?}: not an octal mode")));
                }
                options.push(format!("mode={m}"));
            }
            if ro {
                options.push("ro".into());
            }
            UserMount::Tmpfs { dst, options }
        }
        t => return Err(bad(&format!("unknown type {t:?} (bind, volume or tmpfs)"))),
    };
    if let Some(k) = kv.keys().next() {
        return Err(bad(&format!("unknown key {k:?}")));
    }
    Ok(m)
}

/// Every user mount of the flags and the image's VOLUMEs (anonymous unless a flag mounts
/// something at the same place), checked; host sources must exist.
pub fn user_mounts(cfg: &Value, o: &RunOptions) -> Result<Vec<UserMount>> {
    let mut out = Vec::new();
    for v in &o.volumes {
        out.push(parse_volume(v)?);
    }
    for v in &o.mounts {
        out.push(parse_mount(v)?);
    }
    for v in &o.tmpfs {
        out.push(parse_tmpfs(v)?);
    }
    for m in &out {
        if let UserMount::Bind {
            src: Source::Host(p), ..
        } = m
        {
            if std::fs::symlink_metadata(p).is_err() {
                return Err(Error::Invalid(format!(
                    "volume source {}: no such file or directory on the host",
                    p.display()
                )));
            }
        }
    }
    let dst_of = |m: &UserMount| match m {
        UserMount::Bind { dst, .. } | UserMount::Tmpfs { dst, .. } => dst.clone(),
    };
    let mut seen: Vec<String> = Vec::new();
    for m in &out {
        let d = dst_of(m);
        if seen.contains(&d) {
            return Err(Error::Invalid(format!("{d}: two mounts at the same destination")));
        }
        seen.push(d);
    }
    if let Some(vols) = cfg["Volumes"].as_object() {
        for d in vols.keys() {
            if !seen.contains(d) {
                if let Ok(dst) = destination("the image's VOLUME", d) {
                    out.push(UserMount::Bind {
                        src: Source::Anonymous,
                        dst,
                        ro: false,
                    });
                }
            }
        }
    }
    Ok(out)
}
