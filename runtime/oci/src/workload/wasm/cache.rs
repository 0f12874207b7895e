//! The compiled-module cache: native code that wasmtime produced for a module or component,
//! kept under `<data dir>/wasm-cache/` so a second start deserializes instead of compiling.
//!
//! Key: sha256 over a format tag, the module's bytes, the kind (module or component) and
//! wasmtime's compatibility hash of the engine (its version, target, compiler flags and
//! tunables), so a change of any of them is a miss, never a wrong hit. Each entry is
//! `MAGIC ‖ sha256(payload) ‖ payload`, written to a temp file and renamed into place (two
//! starts of one module race harmlessly: both write the same bytes). An entry whose checksum
//! does not match, or that wasmtime refuses to load, is removed and rebuilt: deserializing
//! trusts its input, so nothing unverified is ever loaded. A cache directory writable by
//! anyone but its owner is not used at all, for the same reason.

use std::hash::Hasher;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use crate::workload::{DATA_DIR_ENV, DEFAULT_DATA_DIR};

const MAGIC: &[u8; 8] = b"WRUNCW1\n";
const SUM: usize = 32;

/// Feeds `std::hash::Hash` output (wasmtime's engine hash) into sha256.
struct ShaHasher<'a>(&'a mut Sha256);

impl Hasher for ShaHasher<'_> {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache key of `bytes` compiled as `kind` by `engine`, as 64 hex digits.
pub fn key(bytes: &[u8], kind: &str, engine: &wasmtime::Engine) -> String {
    let mut h = Sha256::new();
    h.update(b"wrun compiled-module cache 1\0");
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(Sha256::digest(bytes));
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut ShaHasher(&mut h));
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Why a lookup found nothing usable.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No entry.
    Absent,
    /// An entry whose checksum or header is wrong (it has been removed).
    Corrupt,
    /// The directory is unusable (not ours, or writable by others).
    Unusable(String),
}

/// A cache directory, checked once.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Open (creating it, mode 0700) the cache dir; refuse one that others could write into.
    pub fn open(dir: &Path) -> Result<Cache, Miss> {
        if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            return Err(Miss::Unusable(format!("{}: {e}", dir.display())));
        }
        let m = std::fs::metadata(dir).map_err(|e| Miss::Unusable(format!("{}: {e}", dir.display())))?;
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if m.uid() != me || m.mode() & 0o022 != 0 {
            return Err(Miss::Unusable(format!(
                "{}: owned by uid {} with mode {:o}; must be ours and not group/other-writable",
                dir.display(),
                m.uid(),
                m.mode() & 0o7777
            )));
        }
        Ok(Cache { dir: dir.to_path_buf() })
    }

    pub fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The verified payload of the entry for `key`. A corrupt entry is removed.
    pub fn get(&self, key: &str) -> Result<Vec<u8>, Miss> {
        let path = self.entry(key);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(_) => return Err(Miss::Absent),
        };
        match verify(&data) {
            Some(payload) => Ok(payload.to_vec()),
            None => {
                self.remove(key);
                Err(Miss::Corrupt)
            }
        }
    }

    /// Drop an entry (corrupt, or refused by wasmtime as stale).
    pub fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.entry(key));
    }

    /// Store `payload` for `key` atomically: temp file, fsync-free write, rename.
    pub fn put(&self, key: &str, payload: &[u8]) -> std::io::Result<()> {
        let digest = Sha256::digest(payload);
        crate::atomicfile::write(&self.entry(key), 0o600, &[MAGIC.as_slice(), digest.as_slice(), payload])
    }
}

/// The payload of an entry if its header and checksum are right.
fn verify(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < SUM {
        return None;
    }
    let (sum, payload) = rest.split_at(SUM);
    (Sha256::digest(payload).as_slice() == sum).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("wrun-cache-{tag}-{}", std::process::id()))
    }

    #[test]
    fn entries_round_trip_and_a_flipped_bit_is_a_corrupt_miss() {
        let dir = temp("rt");
        let c = Cache::open(&dir).unwrap();
        assert_eq!(c.get("k"), Err(Miss::Absent));
        c.put("k", b"native code").unwrap();
        assert_eq!(c.get("k").unwrap(), b"native code");
        let mut raw = std::fs::read(c.entry("k")).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(c.entry("k"), &raw).unwrap();
        assert_eq!(c.get("k"), Err(Miss::Corrupt));
        assert!(!c.entry("k").exists(), "a corrupt entry is removed");
        std::fs::write(c.entry("k"), b"short").unwrap();
        assert_eq!(c.get("k"), Err(Miss::Corrupt));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("perm");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(Cache::open(&dir), Err(Miss::Unusable(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_key_changes_with_the_bytes_the_kind_and_the_engine() {
        let e1 = wasmtime::Engine::default();
        let mut cfg = wasmtime::Config::new();
        cfg.memory_guard_size(0);
        let e2 = wasmtime::Engine::new(&cfg).unwrap();
        let k = key(b"a", "module", &e1);
        assert_eq!(k, key(b"a", "module", &e1));
        assert_eq!(k.len(), 64);
        assert_ne!(k, key(b"b", "module", &e1));
        assert_ne!(k, key(b"a", "component", &e1));
        assert_ne!(k, key(b"a", "module", &e2));
    }
}
