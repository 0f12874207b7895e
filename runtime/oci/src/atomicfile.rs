//! Files replaced whole: written under a temporary name beside the destination, then renamed
//! over it, so a reader sees the old content or the new one, never half of either.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write the concatenation of `parts` to `dst` atomically, created with `mode` (less the
/// umask). The temporary file is removed when anything fails.
pub fn write(dst: &Path, mode: u32, parts: &[&[u8]]) -> std::io::Result<()> {
    let name = dst.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dst.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        std::fs::rename(&tmp, dst)
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_destination_gets_every_part_and_the_mode_and_no_temporary_file_stays() {
        let dir = std::env::temp_dir().join(format!("wrun-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dst = dir.join("state.json");
        std::fs::write(&dst, "old").unwrap();
        write(&dst, 0o600, &[b"new ", b"content"]).unwrap();
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), "new content");
        assert_eq!(std::fs::metadata(&dst).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write(&dir.join("missing/x"), 0o600, &[b"x"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
