//! Placing a container in cgroups: find the hierarchies (v1, hybrid or pure v2), make the
//! container's directory in each, move the init in, list and signal its processes, and remove
//! the directories on delete. Applying `linux.resources` builds on this (issue #3).

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let controllers = match post[0] {
            "cgroup2" => vec![],
            "cgroup" => post[2]
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
            mountpoint: unescape(pre[4]).into(),
            root: unescape(pre[3]),
            controllers,
        };
        if !out.iter().any(|o| o.controllers == h.controllers) {
            out.push(h);
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
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
fn dir_in(h: &Hierarchy, cg: &str) -> PathBuf {
    let rel = cg.strip_prefix(h.root.trim_end_matches('/')).unwrap_or(cg);
    h.mountpoint.join(rel.trim_start_matches('/'))
}

/// Where the container's cgroup goes in each hierarchy. Absolute `cgroups_path` is used as
/// given; relative (or none: `wrun/<id>`) goes under the caller's own cgroup, as runc does.
pub fn plan_dirs(hs: &[Hierarchy], proc_cgroup: &str, cgroups_path: Option<&Path>, id: &str) -> Vec<PathBuf> {
    let default = PathBuf::from(format!("wrun/{id}"));
    let p = cgroups_path.unwrap_or(&default);
    hs.iter()
        .map(|h| {
            if p.is_absolute() {
                dir_in(h, &p.to_string_lossy())
            } else {
                let own = own_path(proc_cgroup, &h.controllers).unwrap_or_else(|| "/".into());
                dir_in(h, &own).join(p)
            }
        })
        .collect()
}

/// Plan this host's directories for a container.
pub fn plan(cgroups_path: Option<&Path>, id: &str) -> Result<Vec<PathBuf>> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo".into())?;
    let pc = std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup".into())?;
    let hs = hierarchies_from(&mi);
    if hs.is_empty() {
        return Err(Error::Invalid("cgroups: no cgroup hierarchy is mounted".into()));
    }
    Ok(plan_dirs(&hs, &pc, cgroups_path, id))
}

/// Make the directories (and, for a v1 cpuset, give the new cgroup its parent's cpus and
/// mems, without which no task can join).
pub fn create(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        std::fs::create_dir_all(d).ctx(|| format!("create cgroup {}", d.display()))?;
        if d.join("cpuset.cpus").exists() && !d.join("cgroup.controllers").exists() {
            inherit_cpuset(d)?;
        }
    }
    Ok(())
}

fn inherit_cpuset(dir: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        if !cur.trim().is_empty() {
            continue;
        }
        if let Some(parent) = dir.parent() {
            inherit_cpuset(parent)?;
            let v = std::fs::read_to_string(parent.join(f)).ctx(|| format!("read {}", parent.join(f).display()))?;
            std::fs::write(dir.join(f), v.trim()).ctx(|| format!("write {}", dir.join(f).display()))?;
        }
    }
    Ok(())
}

/// Move `pid` into every directory.
pub fn join(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for d in dirs {
        let f = d.join("cgroup.procs");
        std::fs::write(&f, pid.to_string()).ctx(|| format!("join cgroup {}", d.display()))?;
    }
    Ok(())
}

/// The pids in the container's cgroup (read from the first hierarchy that has the directory).
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Send `sig` to every process in the cgroup.
pub fn signal_all(dirs: &[PathBuf], sig: i32) -> Result<()> {
    for pid in pids(dirs) {
        // SAFETY: plain kill(2); ESRCH for a process that just exited is fine.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let e = nix::errno::Errno::last();
            if e != nix::errno::Errno::ESRCH {
                return Err(Error::sys(format!("signal {sig} to pid {pid}"), e));
            }
        }
    }
    Ok(())
}

/// Whether the v1 freezer or v2 cgroup.freeze says the cgroup is frozen.
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| {
        std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    })
}

/// Remove the directories, killing what is left and retrying while the kernel still says
/// busy (a process that was just killed leaves its cgroup a moment later).
pub fn remove(dirs: &[PathBuf]) -> Result<()> {
    if !pids(dirs).is_empty() {
        signal_all(dirs, libc::SIGKILL)?;
    }
    for d in dirs {
        let mut delay = Duration::from_millis(1);
        loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && delay < Duration::from_secs(2) => {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(e) => return Err(Error::io(format!("remove cgroup {}", d.display()), e)),
            }
        }
    }
    Ok(())
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
    fn a_hierarchy_mounted_below_its_root_maps_paths_relative_to_that_root() {
        let h = Hierarchy {
            mountpoint: "/sys/fs/cgroup".into(),
            root: "/ctr".into(),
            controllers: vec![],
        };
        assert_eq!(dir_in(&h, "/ctr/sub"), PathBuf::from("/sys/fs/cgroup/sub"));
    }
}
