//! Placing a container in cgroups and driving them. This file is the facade: `Cgroup` (make
//! the directories, apply `linux.resources` through the v1 or v2 backend, the only place the
//! two differ, freeze, read statistics). Beside it: where the directories go (`placement`),
//! the device-rule policy (`rules`) and its eBPF enforcement (`ebpf`), the processes in a
//! cgroup (`members`: join, list, signal, remove) and OOM kills (`oom`).

pub mod ebpf;
mod fs;
mod members;
mod oom;
mod placement;
mod rules;
pub mod stats;
pub mod v1;
pub mod v2;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources};

use crate::error::Context;
use crate::{Error, Result};

pub use members::{is_frozen, join, pids, remove, signal_all, unused_or_new};
pub use oom::{host_is_v2, memory_cgroup_of, oom_counter_file, oom_kill_count, oom_kills_in, OomWatch};
pub use placement::{delegated, hierarchies_from, own_path, plan, plan_dirs, Hierarchy};
pub use rules::device_rules;

/// A container's cgroup directories, sorted by backend: the v1 hierarchies with their
/// controllers, and the cgroup2 directory (with its hierarchy's mountpoint) if there is one.
#[derive(Debug, Clone, Default)]
pub struct Cgroup {
    pub dirs: Vec<PathBuf>,
    v1: Vec<(Vec<String>, PathBuf)>,
    v2: Option<(PathBuf, PathBuf)>,
}

impl Cgroup {
    /// Make the directories (and, for a v1 cpuset, give the new cgroup its parent's cpus and
    /// mems, without which no task can join; for v2, delegate the controllers down to it).
    pub fn create(&self) -> Result<()> {
        for d in &self.dirs {
            std::fs::create_dir_all(d).ctx(|| format!("create cgroup {}", d.display()))?;
            if d.join("cpuset.cpus").exists() && !d.join("cgroup.controllers").exists() {
                inherit_cpuset(d)?;
            }
        }
        if let Some((root, dir)) = &self.v2 {
            v2::enable_controllers(root, dir);
        }
        Ok(())
    }

    /// Classify `dirs` by this host's mounted hierarchies.
    pub fn new(dirs: &[PathBuf]) -> Cgroup {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Cgroup::classify(&hierarchies_from(&mi), dirs)
    }

    pub fn classify(hs: &[Hierarchy], dirs: &[PathBuf]) -> Cgroup {
        let mut cg = Cgroup {
            dirs: dirs.to_vec(),
            ..Default::default()
        };
        for d in dirs {
            let Some(h) = hs
                .iter()
                .filter(|h| d.starts_with(&h.mountpoint))
                .max_by_key(|h| h.mountpoint.as_os_str().len())
            else {
                continue;
            };
            if h.is_v2() {
                cg.v2 = Some((h.mountpoint.clone(), d.clone()));
            } else {
                cg.v1.push((h.controllers.clone(), d.clone()));
            }
        }
        cg
    }

    /// The v1 directory of `controller`, if that controller has a v1 hierarchy.
    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, d)| d.as_path())
    }

    fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_ref().map(|(_, d)| d.as_path())
    }

    fn missing(field: &str, controller: &str) -> Error {
        Error::Invalid(format!(
            "linux.resources.{field}: no {controller} controller is mounted on this host"
        ))
    }

    /// Apply `r`. `devices` is the full device rule list (see `device_rules`). `update` turns
    /// on the checks that only make sense for a running container (checkBeforeUpdate).
    pub fn apply(&self, r: &LinuxResources, devices: &[LinuxDeviceCgroup], update: bool) -> Result<()> {
        if let Some(m) = r.memory() {
            check_memory(m)?;
            match (self.v1_dir("memory"), self.v2_dir()) {
                (Some(d), _) => v1::memory(d, m, update)?,
                (None, Some(d)) => v2::memory(d, m, update)?,
                _ => return Err(Self::missing("memory", "memory")),
            }
        }
        if let Some(c) = r.cpu() {
            check_cpuset(c)?;
            match (self.v1_dir("cpu"), self.v2_dir()) {
                (Some(d), _) => v1::cpu(d, c)?,
                (None, Some(d)) => v2::cpu(d, c)?,
                _ => return Err(Self::missing("cpu", "cpu")),
            }
            for (field, file, v) in [("cpus", "cpuset.cpus", c.cpus()), ("mems", "cpuset.mems", c.mems())] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    match (self.v1_dir("cpuset"), self.v2_dir()) {
                        (Some(d), _) => fs::write(d, file, v)?,
                        (None, Some(d)) => v2::cpuset(d, field, v)?,
                        _ => return Err(Self::missing(&format!("cpu.{field}"), "cpuset")),
                    }
                }
            }
        }
        if let Some(p) = r.pids() {
            let limit = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            match (self.v1_dir("pids"), self.v2_dir()) {
                (Some(d), _) => fs::write(d, "pids.max", limit)?,
                (None, Some(d)) => v2::pids(d, &limit)?,
                _ => return Err(Self::missing("pids", "pids")),
            }
        }
        if let Some(b) = r.block_io() {
            match (self.v1_dir("blkio"), self.v2_dir()) {
                (Some(d), _) => v1::blkio(d, b)?,
                (None, Some(d)) => v2::io(d, b)?,
                _ => return Err(Self::missing("blockIO", "blkio")),
            }
        }
        if let Some(h) = r.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
            match (self.v1_dir("hugetlb"), self.v2_dir()) {
                (Some(d), _) => v1::hugetlb(d, h)?,
                (None, Some(d)) => v2::hugetlb(d, h)?,
                _ => return Err(Self::missing("hugepageLimits", "hugetlb")),
            }
        }
        if !devices.is_empty() {
            match (self.v1_dir("devices"), self.v2_dir()) {
                (Some(d), _) => v1::devices(d, devices)?,
                (None, Some(d)) => {
                    let prog =
                        ebpf::device_program(devices).map_err(|e| Error::from(e).within("linux.resources.devices"))?;
                    ebpf::attach(&prog, d).map_err(|e| Error::from(e).within("linux.resources.devices"))?;
                }
                _ => {}
            }
        }
        if let Some(n) = r.network() {
            let d = self.v1_dir("net_cls").or(self.v1_dir("net_prio"));
            let d = d.ok_or_else(|| Self::missing("network", "net_cls/net_prio"))?;
            if let Some(id) = n.class_id() {
                fs::write(d, "net_cls.classid", id.to_string())?;
            }
            for p in n.priorities().as_deref().unwrap_or_default() {
                fs::write(d, "net_prio.ifpriomap", format!("{} {}", p.name(), p.priority()))?;
            }
        }
        if r.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
            let d = self
                .v1_dir("rdma")
                .or(self.v2_dir())
                .ok_or_else(|| Self::missing("rdma", "rdma"))?;
            for (dev, l) in r.rdma().as_ref().into_iter().flatten() {
                let mut v = dev.clone();
                if let Some(h) = l.hca_handles() {
                    v += &format!(" hca_handle={h}");
                }
                if let Some(o) = l.hca_objects() {
                    v += &format!(" hca_object={o}");
                }
                fs::write(d, "rdma.max", v)?;
            }
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            let d = self.v2_dir().ok_or_else(|| {
                Error::Invalid(
                    "linux.resources.unified: needs cgroup v2, and this host has no cgroup2 hierarchy".into(),
                )
            })?;
            v2::unified(d, u)?;
        }
        Ok(())
    }

    /// Freeze (pause) or thaw (resume) every process.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match (self.v1_dir("freezer"), self.v2_dir()) {
            (Some(d), _) => v1::freeze(d, frozen),
            (None, Some(d)) => v2::freeze(d, frozen),
            _ => Err(Error::Invalid("pause: no freezer is available on this host".into())),
        }
    }

    pub fn stats(&self) -> stats::Stats {
        let mut s = stats::Stats::default();
        if self.v1.is_empty() {
            if let Some(d) = self.v2_dir() {
                v2::stats(&mut s, d);
            }
        } else {
            v1::stats(&mut s, &|c| self.v1_dir(c).map(Path::to_path_buf));
        }
        s
    }

    /// Start watching for OOM kills.
    pub fn oom_watch(&self) -> Result<OomWatch> {
        match (self.v1_dir("memory"), self.v2_dir()) {
            (Some(d), _) => Ok(OomWatch::V1 {
                fd: v1::oom_eventfd(d)?,
                dir: d.to_path_buf(),
                seen: v1::oom_kills(d),
            }),
            (None, Some(d)) => Ok(OomWatch::V2 {
                dir: d.to_path_buf(),
                seen: v2::oom_kills(d),
            }),
            _ => Ok(OomWatch::None),
        }
    }
}

/// Sizes are bytes or -1 (unlimited); anything below is a mistake the kernel would misread.
fn check_memory(m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    for (field, v) in [
        ("limit", m.limit()),
        ("reservation", m.reservation()),
        ("swap", m.swap()),
    ] {
        if let Some(v) = v.filter(|v| *v < -1) {
            return Err(Error::Invalid(format!(
                "linux.resources.memory.{field} {v}: must be -1 (unlimited) or a size in bytes"
            )));
        }
    }
    Ok(())
}

/// Refuse CPUs and memory nodes this host does not have, before the kernel's bare EINVAL.
fn check_cpuset(c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
    let checks = [
        ("cpu.cpus", c.cpus(), "/sys/devices/system/cpu/online", "CPU"),
        ("cpu.mems", c.mems(), "/sys/devices/system/node/online", "memory node"),
    ];
    for (field, want, online_file, what) in checks {
        let Some(want) = want.as_deref().filter(|w| !w.is_empty()) else {
            continue;
        };
        let field = format!("linux.resources.{field}");
        let online_text = std::fs::read_to_string(online_file).unwrap_or_else(|_| "0".into());
        let online = crate::cpulist::parse_list(&field, online_text.trim())?;
        for n in crate::cpulist::parse_list(&field, want)? {
            if !online.contains(&n) {
                return Err(Error::Invalid(format!(
                    "{field} {want:?}: {what} {n} does not exist (online: {})",
                    online_text.trim()
                )));
            }
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
