//! Where a container's cgroups go: the mounted hierarchies (from mountinfo), the caller's own
//! cgroup in each (from /proc/self/cgroup), and the container's directory in each, as runc
//! places them. Pure text in, paths out, so it is unit-tested with sample files.

use std::path::{Path, PathBuf};

use crate::error::Context;
use crate::{Error, Result};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The cgroup path that the mount shows as its root (not "/" inside a cgroup namespace).
    pub root: String,
    /// v1 controllers (e.g. ["cpu", "cpuacct"], or ["name=systemd"]); empty for cgroup2.
    pub controllers: Vec<String>,
}

impl Hierarchy {
    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// Parse /proc/self/mountinfo text into the cgroup hierarchies, first mount of each wins.
pub fn hierarchies_from(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in crate::mountinfo::parse(mountinfo) {
        let controllers = match m.fstype.as_str() {
            "cgroup2" => vec![],
            "cgroup" => m
                .super_options
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro" | "nosuid" | "nodev" | "noexec" | "relatime" | "clone_children" | "xattr"
                    ) && !o.starts_with("release_agent=")
                })
                .map(String::from)
                .collect(),
            _ => continue,
        };
        let h = Hierarchy {
            mountpoint: m.mountpoint.into(),
            root: m.root,
            controllers,
        };
        if !out.iter().any(|o| o.controllers == h.controllers) {
            out.push(h);
        }
    }
    out
}

/// The caller's cgroup in the hierarchy with `controllers`, from /proc/self/cgroup text.
pub fn own_path(proc_cgroup: &str, controllers: &[String]) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        let mine: Vec<&str> = if ctrl.is_empty() {
            vec![]
        } else {
            ctrl.split(',').collect()
        };
        let mut want: Vec<&str> = controllers.iter().map(String::as_str).collect();
        let mut have = mine.clone();
        want.sort_unstable();
        have.sort_unstable();
        (want == have).then(|| path.to_string())
    })
}

/// The directory for cgroup path `cg` (absolute, as in /proc/self/cgroup) in `h`.
pub fn dir_in(h: &Hierarchy, cg: &str) -> PathBuf {
    let rel = cg.strip_prefix(h.root.trim_end_matches('/')).unwrap_or(cg);
    h.mountpoint.join(rel.trim_start_matches('/'))
}

/// Where the container's cgroup goes in each hierarchy. Absolute `cgroups_path` is used as
/// given; relative (or none: `wrun/<id>`) goes under the caller's own cgroup, as runc does, or
/// on a pure v2 host under that cgroup's parent, as runc's fs2 driver does: the caller's own
/// cgroup holds the caller, and a non-root v2 cgroup with processes cannot enable controllers
/// for its children, so a container below it would get no memory, cpu or pids files.
pub fn plan_dirs(hs: &[Hierarchy], proc_cgroup: &str, cgroups_path: Option<&Path>, id: &str) -> Vec<PathBuf> {
    let default = PathBuf::from(format!("wrun/{id}"));
    let p = cgroups_path.unwrap_or(&default);
    let pure_v2 = hs.iter().all(Hierarchy::is_v2);
    hs.iter()
        .map(|h| {
            if p.is_absolute() {
                dir_in(h, &p.to_string_lossy())
            } else {
                let own = own_path(proc_cgroup, &h.controllers).unwrap_or_else(|| "/".into());
                let base = if pure_v2 {
                    Path::new(&own)
                        .parent()
                        .unwrap_or(Path::new("/"))
                        .to_string_lossy()
                        .into_owned()
                } else {
                    own
                };
                dir_in(h, &base).join(p)
            }
        })
        .collect()
}

/// A container's cgroup must be its own, below a hierarchy's root: `..` could climb out of
/// the caller's cgroup or out of the cgroup filesystem (a `cgroup.procs` written under /tmp),
/// and the root itself holds every process of the host, which delete would kill.
pub fn check_cgroups_path(p: &Path) -> Result<()> {
    use std::path::Component;
    let bad = |why: &str| Error::Invalid(format!("linux.cgroupsPath {:?}: {why}", p.display().to_string()));
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(bad(
            "\"..\" is not allowed: a container's cgroup stays below its hierarchy's root",
        ));
    }
    if p.components()
        .all(|c| matches!(c, Component::RootDir | Component::CurDir))
    {
        return Err(bad(
            "names a hierarchy's root, which holds the host's processes; give the container a cgroup of its own",
        ));
    }
    Ok(())
}

/// Plan this host's directories for a container.
pub fn plan(cgroups_path: Option<&Path>, id: &str) -> Result<Vec<PathBuf>> {
    // An empty cgroupsPath is no cgroupsPath, as for runc.
    let cgroups_path = cgroups_path.filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = cgroups_path {
        check_cgroups_path(p)?;
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo".into())?;
    let pc = std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup".into())?;
    let hs = hierarchies_from(&mi);
    if hs.is_empty() {
        return Err(Error::Invalid("cgroups: no cgroup hierarchy is mounted".into()));
    }
    Ok(plan_dirs(&hs, &pc, cgroups_path, id))
}

/// The planned cgroup dirs a caller without root can use, and the ones it cannot: a cgroup
/// is usable when the caller may write the nearest of its ancestors that exists (on cgroup
/// v2 a subtree delegated to the user: the directory and its `cgroup.procs`,
/// `cgroup.subtree_control` owned by it; on v1 only where an administrator chowned one).
pub fn delegated(dirs: Vec<PathBuf>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    use nix::unistd::{access, AccessFlags};
    dirs.into_iter().partition(|d| {
        let Some(base) = d.ancestors().find(|a| a.is_dir()) else {
            return false;
        };
        access(base, AccessFlags::W_OK).is_ok()
            && (!base.join("cgroup.procs").exists() || access(&base.join("cgroup.procs"), AccessFlags::W_OK).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 24 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
31 24 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
32 24 0:28 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu
33 24 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
40 24 0:22 / /proc rw - proc proc rw";
    const PROC_CGROUP: &str = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn cgroups_paths_climbing_out_or_naming_the_root_are_refused() {
        for p in ["../../x", "/../../x", "a/../../b", "/", ".", "/./"] {
            let e = check_cgroups_path(Path::new(p)).unwrap_err().to_string();
            assert!(e.contains("linux.cgroupsPath"), "{p}: {e}");
        }
        for p in ["/mine/c1", "wrun/c1", "c1"] {
            assert!(check_cgroups_path(Path::new(p)).is_ok(), "{p}");
        }
    }

    #[test]
    fn hybrid_mountinfo_yields_v1_and_unified_hierarchies() {
        let hs = hierarchies_from(HYBRID);
        assert_eq!(hs.len(), 4);
        assert!(hs[0].is_v2());
        assert_eq!(hs[1].controllers, vec!["memory"]);
        assert_eq!(hs[3].controllers, vec!["name=systemd"]);
    }

    #[test]
    fn relative_paths_go_under_the_callers_cgroup_and_absolute_ones_are_used_as_given() {
        let hs = hierarchies_from(HYBRID);
        let dirs = plan_dirs(&hs, PROC_CGROUP, None, "c1");
        assert_eq!(dirs[0], PathBuf::from("/sys/fs/cgroup/unified/wrun/c1"));
        assert_eq!(dirs[1], PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/wrun/c1"));
        assert_eq!(dirs[2], PathBuf::from("/sys/fs/cgroup/cpu/wrun/c1"));
        let abs = plan_dirs(&hs, PROC_CGROUP, Some(Path::new("/mine/c1")), "c1");
        assert_eq!(abs[1], PathBuf::from("/sys/fs/cgroup/memory/mine/c1"));
    }

    #[test]
    fn on_pure_v2_relative_paths_go_under_the_parent_of_the_callers_cgroup() {
        let hs = hierarchies_from(
            "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate",
        );
        let svc = "0::/system.slice/ci.service\n";
        let dirs = plan_dirs(&hs, svc, None, "c1");
        assert_eq!(dirs, vec![PathBuf::from("/sys/fs/cgroup/system.slice/wrun/c1")]);
        let root = plan_dirs(&hs, "0::/\n", Some(Path::new("mine/c1")), "c1");
        assert_eq!(root, vec![PathBuf::from("/sys/fs/cgroup/mine/c1")]);
        let abs = plan_dirs(&hs, svc, Some(Path::new("/mine/c1")), "c1");
        assert_eq!(abs, vec![PathBuf::from("/sys/fs/cgroup/mine/c1")]);
    }

    #[test]
    fn a_hierarchy_mounted_below_its_root_maps_paths_relative_to_that_root() {
        let h = Hierarchy {
            mountpoint: "/sys/fs/cgroup".into(),
            root: "/ctr".into(),
            controllers: vec![],
        };
        assert_eq!(dir_in(&h, "/ctr/sub"), PathBuf::from("/sys/fs/cgroup/sub"));
    }
}
