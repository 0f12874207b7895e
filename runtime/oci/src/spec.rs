//! Loading and validating a bundle's `config.json` before any side effect, and the rules for
//! container ids. A bad config fails here, so `create` leaves nothing behind.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The oldest and newest runtime-spec versions this runtime implements.
pub const OCI_VERSION_MIN: &str = "1.0.0";
pub const OCI_VERSION_MAX: &str = "1.3.0";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {0}: config.json not found")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: malformed JSON: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    /// Well-formed JSON with a field of the wrong type: named by its path.
    #[error("{path}: {field}: {source}")]
    Type {
        path: PathBuf,
        field: String,
        source: serde_json::Error,
    },
    #[error("{path}: ociVersion {version:?} is not supported (this runtime implements {OCI_VERSION_MIN} to {OCI_VERSION_MAX}.x)")]
    Version { path: PathBuf, version: String },
    #[error("{path}: {field}: {why}")]
    Field { path: PathBuf, field: String, why: String },
    #[error("rootfs {0}: no such directory")]
    NoRootfs(PathBuf),
    #[error("container id {id:?} is invalid: {why}")]
    InvalidId { id: String, why: &'static str },
}

/// A validated spec with the bundle it came from and its absolute rootfs.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Read `config.json` from `dir` and check everything that can be checked without side
    /// effects.
    pub fn load(dir: &Path) -> Result<Bundle, SpecError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SpecError::Missing(dir.clone()),
            _ => SpecError::Read {
                path: path.clone(),
                source,
            },
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let source = e.into_inner();
            if source.is_data() && field != "." {
                SpecError::Type {
                    path: path.clone(),
                    field,
                    source,
                }
            } else {
                SpecError::Parse {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let rootfs = validate(&spec, &dir, &path)?;
        Ok(Bundle { dir, rootfs, spec })
    }
}

fn field(path: &Path, field: &str, why: impl Into<String>) -> SpecError {
    SpecError::Field {
        path: path.to_path_buf(),
        field: field.into(),
        why: why.into(),
    }
}

/// Check a parsed spec; returns the absolute rootfs path.
fn validate(spec: &Spec, dir: &Path, path: &Path) -> Result<PathBuf, SpecError> {
    if spec.version().is_empty() {
        return Err(field(
            path,
            "ociVersion",
            format!("missing (this runtime implements {OCI_VERSION_MIN} to {OCI_VERSION_MAX}.x)"),
        ));
    }
    if !version_supported(spec.version()) {
        return Err(SpecError::Version {
            path: path.into(),
            version: spec.version().clone(),
        });
    }
    let root = spec.root().as_ref().ok_or_else(|| field(path, "root", "missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    if !rootfs.is_dir() {
        return Err(SpecError::NoRootfs(rootfs));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| field(path, "process", "missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(field(path, "process.args", "must name the program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(field(
            path,
            "process.cwd",
            format!("{} is not an absolute path", process.cwd().display()),
        ));
    }
    let linux = spec.linux().as_ref().ok_or_else(|| field(path, "linux", "missing"))?;
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    for (i, ns) in namespaces.iter().enumerate() {
        if namespaces[..i].iter().any(|o| o.typ() == ns.typ()) {
            return Err(field(path, "linux.namespaces", format!("{} is listed twice", ns.typ())));
        }
        if let Some(p) = ns.path() {
            if !p.exists() {
                return Err(field(
                    path,
                    "linux.namespaces",
                    format!("{} path {}: no such file", ns.typ(), p.display()),
                ));
            }
        }
    }
    let user_ns = namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    match user_ns {
        Some(ns) if ns.path().is_none() && !maps => {
            return Err(field(
                path,
                "linux.uidMappings",
                "a new user namespace needs uid and gid mappings",
            ))
        }
        None if maps => return Err(field(path, "linux.uidMappings", "mappings need a user namespace")),
        _ => {}
    }
    if (spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_ref().is_some_and(|h| !h.is_empty()))
        && !has(LinuxNamespaceType::Uts)
    {
        return Err(field(path, "hostname", "setting a hostname needs a uts namespace"));
    }
    if linux.time_offsets().is_some()
        && !namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none())
    {
        return Err(field(path, "linux.timeOffsets", "needs a new time namespace"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty())
        && !namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Network)
    {
        return Err(field(path, "linux.netDevices", "needs a network namespace"));
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if !m.destination().is_absolute() {
            return Err(field(
                path,
                "mounts",
                format!("destination {} is not absolute", m.destination().display()),
            ));
        }
    }
    Ok(rootfs)
}

/// Accept every released 1.0.x to 1.3.x version, with or without a pre-release suffix
/// (runc writes `1.0.2-dev`).
pub fn version_supported(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3 && parts.iter().all(|p| num(p)) && parts[0] == "1" && matches!(parts[1], "0" | "1" | "2" | "3")
}

/// runc's rule: letters, digits, `_`, `+`, `-`, `.`; not `.` or `..`; so an id can never
/// name a path outside the state root.
pub fn validate_id(id: &str) -> Result<(), SpecError> {
    let why = if id.is_empty() {
        Some("it is empty")
    } else if id == "." || id == ".." {
        Some("it is a relative path component")
    } else if id.len() > 1024 {
        Some("it is longer than 1024 bytes")
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b)) {
        Some("only letters, digits, '_', '+', '-' and '.' are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(SpecError::InvalidId {
            id: id.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// The default configuration: a shell on a terminal in a read-only busybox-like rootfs, with
/// the namespaces, mounts, masked paths and capabilities runc starts from.
pub fn default_config() -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    serde_json::json!({
        "ociVersion": OCI_VERSION_MAX,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "wrun",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// `default_config` for a caller without root, as `runc spec --rootless` makes it: a user
/// namespace mapping the caller's uid and gid to root inside (one id each, which needs no
/// helper), no network namespace (an unprivileged caller cannot connect a new one to
/// anything; sysfs cannot be mounted without one, so the host's /sys is bound read-only), no
/// uid=/gid= mount options (ids the namespace does not map), and no resources (cgroups are
/// the user's only where delegated).
pub fn rootless_config(uid: u32, gid: u32) -> serde_json::Value {
    let mut c = default_config();
    let linux = &mut c["linux"];
    let mut ns: Vec<serde_json::Value> = linux["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n["type"] != "network" && n["type"] != "user")
        .collect();
    ns.push(serde_json::json!({"type": "user"}));
    linux["namespaces"] = serde_json::Value::Array(ns);
    linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(l) = linux.as_object_mut() {
        l.remove("resources");
    }
    let mounts: Vec<serde_json::Value> = c["mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut m| {
            if m["destination"] == "/sys" {
                return serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|o| {
                    !o.as_str()
                        .is_some_and(|o| o.starts_with("uid=") || o.starts_with("gid="))
                });
            }
            m
        })
        .collect();
    c["mounts"] = serde_json::Value::Array(mounts);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootless_config_maps_the_caller_and_asks_for_nothing_only_root_may_do() {
        let v = rootless_config(1000, 1001);
        let spec: Spec = serde_json::from_value(v.clone()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let maps = linux.uid_mappings().as_ref().unwrap();
        assert_eq!(
            (maps[0].container_id(), maps[0].host_id(), maps[0].size()),
            (0, 1000, 1)
        );
        assert_eq!(linux.gid_mappings().as_ref().unwrap()[0].host_id(), 1001);
        let types: Vec<String> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ().to_string())
            .collect();
        assert!(
            types.contains(&"user".to_string()) && !types.contains(&"network".to_string()),
            "{types:?}"
        );
        assert!(linux.resources().is_none());
        let text = v["mounts"].to_string();
        assert!(!text.contains("gid=") && !text.contains("\"sysfs\""), "{text}");
    }

    #[test]
    fn the_default_config_parses_as_a_runtime_spec() {
        let spec: Spec = serde_json::from_value(default_config()).unwrap();
        assert!(version_supported(spec.version()));
        assert_eq!(spec.process().as_ref().unwrap().args().as_ref().unwrap()[0], "sh");
    }

    #[test]
    fn accepts_released_1_x_versions_and_rejects_others() {
        for v in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.2.0-rc.1"] {
            assert!(version_supported(v), "{v}");
        }
        for v in ["", "2.0.0", "1.4.0", "1.0", "0.9.0", "1.x.0", "v1.0.0"] {
            assert!(!version_supported(v), "{v}");
        }
    }

    #[test]
    fn ids_that_could_name_a_path_are_refused() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "x\0"] {
            assert!(validate_id(id).is_err(), "{id:?}");
        }
        for id in ["abc", "a-b_c.d+e", "0123"] {
            assert!(validate_id(id).is_ok(), "{id}");
        }
    }
}
