//! Reading and writing cgroup files with errors that name the file, the value and the cause.

use std::path::Path;

use crate::{Error, Result};

/// Write `value` to `dir/file`.
pub fn write(dir: &Path, file: &str, value: impl AsRef<str>) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value.as_ref())
        .map_err(|e| Error::io(format!("cgroup {}: write {:?}", p.display(), value.as_ref()), e))
}

/// Read `dir/file`, trimmed; `None` when it does not exist.
pub fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Read `dir/file` as a number ("max" reads as `u64::MAX`).
pub fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    let s = read(dir, file)?;
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, ...) as pairs.
pub fn read_kv(dir: &Path, file: &str) -> Vec<(String, u64)> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// One value from a `key value` file.
pub fn kv(dir: &Path, file: &str, key: &str) -> Option<u64> {
    read_kv(dir, file).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}
