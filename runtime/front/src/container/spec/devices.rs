//! Host files a container is given: `--device` nodes with their device cgroup rules, and the
//! `--init` binary.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Error, Result};

/// Where `--init`'s binary is bound in the container: /dev is the container's own tmpfs, so
/// nothing is made in its root filesystem.
pub(super) const INIT_PATH: &str = "/dev/init";

/// Whether the ELF file at `p` is statically linked (has no PT_INTERP program header).
fn is_static_elf(p: &Path) -> bool {
    let Ok(b) = std::fs::read(p) else { return false };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap_or_default()) as usize;
    let (size, num) = (u16_at(0x36), u16_at(0x38));
    (0..num).all(|i| {
        let o = phoff + i * size;
        b.get(o..o + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) != 3)
    })
}

/// The init `--init` binds in: `$WRUN_INIT_PATH`, else Debian's tini-static or catatonit. It
/// must be static: the image may have no libc, or one of its own.
pub(super) fn init_binary() -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("WRUN_INIT_PATH") {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => [
            "/usr/bin/tini-static",
            "/usr/bin/catatonit",
            "/usr/libexec/podman/catatonit",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
    };
    candidates.iter().find(|p| is_static_elf(p)).cloned().ok_or_else(|| {
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        Error::Invalid(format!(
            "--init: no statically linked init at {} (install tini, whose tini-static wrun uses, or catatonit; or set WRUN_INIT_PATH)",
            tried.join(", ")
        ))
    })
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`: the node the container gets (its type and numbers
/// from the host's device) and the device cgroup rule that lets it use it.
pub fn device(spec: &str) -> Result<(Value, Value)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let bad = |why: String| Error::Invalid(format!("--device {spec:?}: {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_ok(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(bad("not HOST[:CONTAINER][:PERMISSIONS]".into())),
    };
    if !perms_ok(perms) {
        return Err(bad(format!(
            "permissions {perms:?} are not a combination of r, w and m"
        )));
    }
    for p in [host, ctr] {
        if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(bad(format!("{p:?} is not an absolute path")));
        }
    }
    let m = std::fs::metadata(host).map_err(|e| bad(format!("{host}: {e}")))?;
    let ty = if m.file_type().is_char_device() {
        "c"
    } else if m.file_type().is_block_device() {
        "b"
    } else {
        return Err(bad(format!("{host} is not a device")));
    };
    let (major, minor) = (libc::major(m.rdev()), libc::minor(m.rdev()));
    Ok((
        json!({"path": ctr, "type": ty, "major": major, "minor": minor, "fileMode": m.mode() & 0o777, "uid": 0, "gid": 0}),
        json!({"allow": true, "type": ty, "major": major, "minor": minor, "access": perms}),
    ))
}
