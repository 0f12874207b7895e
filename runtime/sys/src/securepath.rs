//! Resolving a container path inside the rootfs the way the container will see it: symlinks
//! are followed relative to the rootfs, and one that would climb out of it is an error, so a
//! mount can never land on the host.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("{path} escapes the rootfs through the symlink {via}")]
    EscapesViaSymlink { path: PathBuf, via: PathBuf },
    #[error("{path} escapes the rootfs")]
    Escapes { path: PathBuf },
    #[error("{path}: too many levels of symbolic links")]
    Loop { path: PathBuf },
}

/// Resolve `path` (absolute, as seen in the container) under `root`. Components that do not
/// exist yet are kept as they are.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, PathError> {
    let mut pending: VecDeque<OsString> = components(path);
    let mut done: Vec<OsString> = Vec::new();
    let mut via: Option<PathBuf> = None;
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            if done.pop().is_none() {
                return Err(match via {
                    Some(via) => PathError::EscapesViaSymlink { path: path.into(), via },
                    None => PathError::Escapes { path: path.into() },
                });
            }
            continue;
        }
        let candidate = join(root, &done).join(&c);
        match std::fs::read_link(&candidate) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return Err(PathError::Loop { path: path.into() });
                }
                via = Some(join(Path::new("/"), &done).join(&c));
                if target.is_absolute() {
                    done.clear();
                }
                for t in components(&target).into_iter().rev() {
                    pending.push_front(t);
                }
            }
            Err(_) => done.push(c),
        }
    }
    Ok(join(root, &done))
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn join(base: &Path, parts: &[OsString]) -> PathBuf {
    let mut p = base.to_path_buf();
    p.extend(parts);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "wrun-securepath-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("etc")).unwrap();
        d
    }

    #[test]
    fn plain_and_missing_paths_stay_under_the_root() {
        let r = tmp();
        assert_eq!(resolve_in_root(&r, Path::new("/etc/x/y")).unwrap(), r.join("etc/x/y"));
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn absolute_symlinks_are_rooted_in_the_rootfs() {
        let r = tmp();
        symlink("/etc", r.join("link")).unwrap();
        assert_eq!(
            resolve_in_root(&r, Path::new("/link/hosts")).unwrap(),
            r.join("etc/hosts")
        );
        symlink("../etc", r.join("etc/rel")).unwrap();
        assert_eq!(resolve_in_root(&r, Path::new("/etc/rel/x")).unwrap(), r.join("etc/x"));
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn a_symlink_climbing_out_of_the_rootfs_is_an_error_naming_it() {
        let r = tmp();
        symlink("../../../../../../tmp", r.join("escape")).unwrap();
        let e = resolve_in_root(&r, Path::new("/escape/x")).unwrap_err();
        assert_eq!(
            e,
            PathError::EscapesViaSymlink {
                path: "/escape/x".into(),
                via: "/escape".into()
            }
        );
        assert!(matches!(
            resolve_in_root(&r, Path::new("/../x")),
            Err(PathError::Escapes { .. })
        ));
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn symlink_loops_end() {
        let r = tmp();
        symlink("/a", r.join("b")).unwrap();
        symlink("/b", r.join("a")).unwrap();
        assert!(matches!(
            resolve_in_root(&r, Path::new("/a")),
            Err(PathError::Loop { .. })
        ));
        std::fs::remove_dir_all(&r).unwrap();
    }
}
