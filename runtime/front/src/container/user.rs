//! `-u/--user` and the image's `User`, resolved in the image as docker does: `name`, `uid`,
//! `name:group`, `uid:gid` (names from the image's `/etc/passwd` and `/etc/group`), with the
//! supplementary groups `/etc/group` gives the user. The files are read through the rootfs as
//! the container will see it (RESOLVE_IN_ROOT): an image whose `/etc/passwd` is a symlink to a
//! host file reads nothing of the host.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{Error, Result};

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The home directory, when /etc/passwd gives one.
    pub home: Option<String>,
}

/// The text of `/etc/<name>` inside `rootfs`, or "" when it has none.
fn etc_file(rootfs: &Path, name: &str) -> String {
    let Ok(root) = wrun_sys::inroot::Root::open(rootfs) else {
        return String::new();
    };
    let Ok(t) = root.resolve(&Path::new("/etc").join(name)) else {
        return String::new();
    };
    // A regular file only: a FIFO or a device as /etc/passwd would hang or flood the read.
    let regular = nix::sys::stat::fstat(t.fd.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
    let Some(f) = regular.then(|| std::fs::File::open(t.proc_path()).ok()).flatten() else {
        return String::new();
    };
    let mut s = String::new();
    // At most 4 MiB: a hostile image's huge /etc/passwd is not read whole.
    let _ = f.take(4 << 20).read_to_string(&mut s);
    s
}

/// The fields of the line of `text` whose field `key_at` is `key`.
fn line<'a>(text: &'a str, key_at: usize, key: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.get(key_at) == Some(&key))
}

/// A uid or gid: at most 2^31-1, as docker's. A larger one (4294967295 is -1) would reach
/// setresuid(2) as "leave it unchanged", and the process would stay root.
fn number(s: &str) -> Option<u32> {
    s.parse().ok().filter(|n| *n <= i32::MAX as u32)
}

/// Resolve `spec` (`user[:group]`; empty means root) in `rootfs`.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = etc_file(rootfs, "passwd");
    let group = etc_file(rootfs, "group");
    let (uid, mut gid, name, home) = if u.is_empty() {
        (0, 0, Some("root".to_string()), None)
    } else if let Some(uid) = number(u) {
        // A uid the image does not list is fine (gid 0, as docker's); a listed one gets its
        // primary group.
        match line(&passwd, 2, u) {
            Some(f) => (
                uid,
                f.get(3).and_then(|s| number(s)).unwrap_or(0),
                f.first().map(|s| s.to_string()),
                f.get(5).map(|s| s.to_string()),
            ),
            None => (uid, 0, None, None),
        }
    } else if u.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid(format!("user {u:?}: a uid must be at most 2147483647")));
    } else {
        let f = line(&passwd, 0, u)
            .ok_or_else(|| Error::Invalid(format!("user {u:?}: no such user in the image's /etc/passwd")))?;
        let uid = f
            .get(2)
            .and_then(|s| number(s))
            .ok_or_else(|| Error::Invalid(format!("user {u:?}: a malformed line in the image's /etc/passwd")))?;
        (
            uid,
            f.get(3).and_then(|s| number(s)).unwrap_or(0),
            Some(u.to_string()),
            f.get(5).map(|s| s.to_string()),
        )
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = resolve_group(&group, g)?;
    }
    // Supplementary groups: every group that lists the user as a member (as docker's).
    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        for l in group.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m == name) {
                if let Some(id) = f.get(2).and_then(|s| number(s)) {
                    if id != gid && !additional_gids.contains(&id) {
                        additional_gids.push(id);
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: home.filter(|h| h.starts_with('/')),
    })
}

/// A group name or gid, resolved in the image's /etc/group text.
pub fn resolve_group(group: &str, g: &str) -> Result<u32> {
    if let Some(id) = number(g) {
        return Ok(id);
    }
    if g.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid(format!("group {g:?}: a gid must be at most 2147483647")));
    }
    line(group, 0, g)
        .and_then(|f| f.get(2).and_then(|s| number(s)))
        .ok_or_else(|| Error::Invalid(format!("group {g:?}: no such group in the image's /etc/group")))
}

/// `--group-add` values (names or gids) resolved in `rootfs`.
pub fn resolve_groups(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>> {
    let text = etc_file(rootfs, "group");
    groups.iter().map(|g| resolve_group(&text, g)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempdir::Dir {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("etc")).unwrap();
        std::fs::write(
            d.0.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.0.join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\n",
        )
        .unwrap();
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "wrun-front-user-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn names_uids_groups_and_supplementary_groups_resolve_as_docker_does() {
        let d = rootfs();
        let r = |s: &str| resolve(&d.0, s);
        let app = r("app").unwrap();
        assert_eq!((app.uid, app.gid, app.home.as_deref()), (1000, 1000, Some("/home/app")));
        assert_eq!(app.additional_gids, vec![10, 29]);
        assert_eq!(r("1000").unwrap().gid, 1000, "a listed uid gets its group");
        assert_eq!(
            (r("4242").unwrap().uid, r("4242").unwrap().gid),
            (4242, 0),
            "an unlisted uid: gid 0"
        );
        assert_eq!(r("app:wheel").unwrap().gid, 10);
        assert_eq!(r("app:77").unwrap().gid, 77);
        assert_eq!(
            r("").unwrap(),
            User {
                home: None,
                ..Default::default()
            }
        );
        let e = r("nobody").unwrap_err().to_string();
        assert!(e.contains("nobody") && e.contains("/etc/passwd"), "{e}");
        let e = r("app:staff").unwrap_err().to_string();
        assert!(e.contains("staff") && e.contains("/etc/group"), "{e}");
        assert_eq!(
            resolve_groups(&d.0, &["audio".into(), "5".into()]).unwrap(),
            vec![29, 5]
        );
    }

    #[test]
    fn ids_past_2_31_are_refused_wherever_they_come_from() {
        let d = rootfs();
        std::fs::write(
            d.0.join("etc/passwd"),
            "nobody:x:4294967295:4294967295::/:/bin/sh\nbig:x:1000:4294967295::/:/bin/sh\n",
        )
        .unwrap();
        assert!(resolve(&d.0, "nobody").is_err(), "uid -1 from the image's passwd");
        assert!(resolve(&d.0, "4294967295").is_err(), "uid -1 from the flag");
        assert_eq!(resolve(&d.0, "big").unwrap().gid, 0, "an out-of-range gid is not taken");
        assert!(resolve(&d.0, "1000:4294967295").is_err(), "gid -1 from the flag");
    }

    #[test]
    fn a_passwd_symlinked_to_the_host_reads_nothing_of_the_host() {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("etc")).unwrap();
        let host = d.0.with_extension("host-passwd");
        std::fs::write(&host, "evil:x:0:0::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&host, d.0.join("etc/passwd")).unwrap();
        let e = resolve(&d.0, "evil");
        let _ = std::fs::remove_file(&host);
        assert!(e.is_err(), "the host's file was read through the image's symlink");
        // A FIFO as /etc/passwd is not opened (it would block the run forever).
        std::fs::remove_file(d.0.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&d.0.join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert!(resolve(&d.0, "app").is_err());
        assert_eq!(resolve(&d.0, "1000").unwrap().gid, 0);
    }
}
