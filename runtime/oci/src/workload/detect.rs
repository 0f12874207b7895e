//! Which workload a bundle is, decided in the parent before any side effect: the annotations
//! that ask for wasm (crun's and youki's conventions), else the `\0asm` magic of the program
//! file found in the rootfs the way execvp would find it (runwasi's rule).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use wrun_sys::inroot;

/// crun's handler annotation: `wasm` or `wasm-smart`.
pub const HANDLER: &str = "run.oci.handler";
/// The image annotation of crun/youki: `compat` or `compat-smart`.
pub const VARIANT: &str = "module.wasm.image/variant";

/// The first four bytes of every binary module and component.
pub const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// What the annotations ask for: `Ok(true)` = wasm, `Ok(false)` = they do not decide (look
/// at the file). "smart" values ask for wasm only when args[0] names a `.wasm`/`.wat` file.
/// An unknown `run.oci.handler` is an error: silently running native what was meant for
/// another handler would be worse.
pub fn annotations_ask_for_wasm(ann: &HashMap<String, String>, arg0: &str) -> Result<bool, String> {
    if let Some(h) = ann.get(HANDLER) {
        return match h.as_str() {
            "wasm" => Ok(true),
            "wasm-smart" => Ok(has_wasm_name(arg0)),
            other => Err(format!(
                "annotation {HANDLER}={other:?}: unknown handler (wrun knows \"wasm\" and \"wasm-smart\")"
            )),
        };
    }
    Ok(match ann.get(VARIANT).map(String::as_str) {
        Some("compat") => true,
        Some("compat-smart") => has_wasm_name(arg0),
        _ => false,
    })
}

/// Does the name end in `.wasm` or `.wat`?
pub fn has_wasm_name(arg0: &str) -> bool {
    let ext = Path::new(arg0).extension().and_then(|e| e.to_str());
    matches!(ext, Some("wasm") | Some("wat"))
}

/// A program file found in the rootfs, held open: `host()` names this very file (through our
/// fd) for as long as it lives, whatever is renamed or swapped in the rootfs meanwhile.
#[derive(Debug)]
pub struct Found {
    /// Its path in the container.
    pub inside: PathBuf,
    file: File,
}

impl Found {
    /// A path on this side that opens exactly the file found: `/proc/self/fd/N`.
    pub fn host(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// The program file args[0] names, found as execvp would: relative to `cwd` when it contains
/// a `/`, else in each `PATH` directory. Resolved and opened by the kernel inside the rootfs
/// (symlinks cannot leave it); `None` if no regular file is found.
pub fn find_in_rootfs(rootfs: &Path, arg0: &str, cwd: &Path, path_env: &str) -> Option<Found> {
    let candidates: Vec<PathBuf> = if arg0.contains('/') {
        vec![cwd.join(arg0)]
    } else {
        path_env
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(arg0))
            .collect()
    };
    let root = inroot::Root::open(rootfs).ok()?;
    candidates.into_iter().find_map(|c| {
        let file = File::from(root.open_file(&c).ok()?);
        file.metadata().ok()?.is_file().then_some(Found { inside: c, file })
    })
}

/// Does the file start with the wasm binary magic?
pub fn has_wasm_magic(host_path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(host_path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == WASM_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_handler_annotation_decides_first() {
        assert_eq!(
            annotations_ask_for_wasm(&ann(&[(HANDLER, "wasm")]), "/bin/sh"),
            Ok(true)
        );
        // The handler wins over the variant.
        let both = ann(&[(HANDLER, "wasm-smart"), (VARIANT, "compat")]);
        assert_eq!(annotations_ask_for_wasm(&both, "/bin/sh"), Ok(false));
        assert_eq!(annotations_ask_for_wasm(&both, "/app.wasm"), Ok(true));
        assert!(annotations_ask_for_wasm(&ann(&[(HANDLER, "krun")]), "/x").is_err());
    }

    #[test]
    fn the_variant_annotation_is_smart_only_when_asked() {
        assert_eq!(
            annotations_ask_for_wasm(&ann(&[(VARIANT, "compat")]), "/bin/sh"),
            Ok(true)
        );
        assert_eq!(
            annotations_ask_for_wasm(&ann(&[(VARIANT, "compat-smart")]), "/bin/sh"),
            Ok(false)
        );
        assert_eq!(
            annotations_ask_for_wasm(&ann(&[(VARIANT, "compat-smart")]), "m.wat"),
            Ok(true)
        );
        assert_eq!(
            annotations_ask_for_wasm(&ann(&[(VARIANT, "other")]), "m.wasm"),
            Ok(false)
        );
        assert_eq!(annotations_ask_for_wasm(&ann(&[]), "m.wasm"), Ok(false));
    }

    #[test]
    fn programs_are_found_like_execvp_and_by_magic() {
        let root = std::env::temp_dir().join(format!("wrun-detect-{}", std::process::id()));
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("app/m.wasm"), b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(root.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        let _ = std::os::unix::fs::symlink("/app/m.wasm", root.join("bin/m"));

        let found = find_in_rootfs(&root, "m", Path::new("/"), "/usr/bin:/bin").unwrap();
        assert_eq!(found.inside, Path::new("/bin/m"));
        assert!(has_wasm_magic(&found.host()));
        let found = find_in_rootfs(&root, "app/m.wasm", Path::new("/"), "").unwrap();
        assert_eq!(found.inside, Path::new("/app/m.wasm"));
        let found = find_in_rootfs(&root, "tool", Path::new("/"), "/bin").unwrap();
        assert!(!has_wasm_magic(&found.host()));
        assert!(find_in_rootfs(&root, "missing", Path::new("/"), "/bin").is_none());
        assert!(
            find_in_rootfs(&root, "app", Path::new("/"), "/").is_none(),
            "a directory is no program"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
