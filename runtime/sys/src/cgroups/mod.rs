//! Placing a container in cgroups and driving them: find the hierarchies (v1, hybrid or pure
//! v2), make the container's directory in each, apply `linux.resources` through the v1 or v2
//! backend (the only place the two differ), freeze, read statistics, watch for OOM kills,
//! list and signal processes, and remove the directories on delete.

pub mod ebpf;
mod fs;
mod placement;
pub mod stats;
pub mod v1;
pub mod v2;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources};

use crate::error::Context;
use crate::{Error, Result};

pub use placement::{hierarchies_from, own_path, plan, plan_dirs, Hierarchy};

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
                    let prog = ebpf::device_program(devices)
                        .map_err(|e| Error::Invalid(format!("linux.resources.devices: {e}")))?;
                    ebpf::attach(&prog, d).map_err(|e| Error::Invalid(format!("linux.resources.devices: {e}")))?;
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

/// Reports OOM kills in the container's memory cgroup.
pub enum OomWatch {
    /// The eventfd also fires when the cgroup goes away: the kill counter tells the two apart.
    V1 {
        fd: OwnedFd,
        dir: PathBuf,
        seen: u64,
    },
    V2 {
        dir: PathBuf,
        seen: u64,
    },
    None,
}

impl OomWatch {
    /// Wait up to `timeout`; true if an OOM kill happened.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        match self {
            OomWatch::V1 { fd, dir, seen } => {
                let ms = nix::poll::PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
                    .unwrap_or(nix::poll::PollTimeout::ZERO);
                let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                let fired = nix::poll::poll(&mut fds, ms).unwrap_or(0) > 0;
                if fired {
                    let mut b = [0u8; 8];
                    let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(fd), &mut b);
                }
                // The eventfd fires when the cgroup enters OOM, a moment before the kill is
                // counted; it also fires when the cgroup is removed. The counter decides.
                let deadline = std::time::Instant::now()
                    + if fired {
                        Duration::from_millis(200)
                    } else {
                        Duration::ZERO
                    };
                loop {
                    let now = v1::oom_kills(dir);
                    if now > *seen {
                        *seen = now;
                        return true;
                    }
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            OomWatch::V2 { dir, seen } => {
                let deadline = std::time::Instant::now() + timeout;
                loop {
                    let now = v2::oom_kills(dir);
                    if now > *seen {
                        *seen = now;
                        return true;
                    }
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50).min(timeout));
                }
            }
            OomWatch::None => {
                std::thread::sleep(timeout);
                false
            }
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

/// True when /sys/fs/cgroup is itself a cgroup2 mount (a pure v2 host).
pub fn host_is_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The memory cgroup directory of process `pid`, and whether it is a v1 one (counter in
/// `memory.oom_control`) or v2 (`memory.events`): its v1 memory hierarchy's if the host has
/// one, else its cgroup2 directory if that has the memory controller. None when the process
/// is gone or there is no memory controller.
pub fn memory_cgroup_of(pid: i32) -> Option<(PathBuf, bool)> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let hs = hierarchies_from(&std::fs::read_to_string("/proc/self/mountinfo").ok()?);
    if let Some(h) = hs.iter().find(|h| h.controllers.iter().any(|c| c == "memory")) {
        return Some((placement::dir_in(h, &own_path(&own, &h.controllers)?), true));
    }
    let h = hs.iter().find(|h| h.is_v2())?;
    let dir = placement::dir_in(h, &own_path(&own, &[])?);
    dir.join("memory.events").exists().then_some((dir, false))
}

/// The file whose `oom_kill N` line counts a memory cgroup's OOM kills.
pub fn oom_counter_file(dir: &Path, v1: bool) -> PathBuf {
    dir.join(if v1 { "memory.oom_control" } else { "memory.events" })
}

/// The OOM kills a memory cgroup has seen; None when its counter cannot be read (the cgroup
/// is gone).
pub fn oom_kills_in(dir: &Path, v1: bool) -> Option<u64> {
    let text = std::fs::read_to_string(oom_counter_file(dir, v1)).ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// How many OOM kills the container's memory cgroup has seen (0 without a memory cgroup).
pub fn oom_kill_count(dirs: &[PathBuf]) -> u64 {
    let cg = Cgroup::new(dirs);
    match (cg.v1_dir("memory"), cg.v2_dir()) {
        (Some(d), _) => v1::oom_kills(d),
        (None, Some(d)) => v2::oom_kills(d),
        _ => 0,
    }
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

fn rule(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ).access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap_or_default()
}

/// The device rules a container gets: the config's `linux.resources.devices`, then what every
/// container needs (mknod anything; the default devices; ptys), then every `linux.devices`
/// entry, as runc does; the last matching rule wins.
/// `devices` are the nodes of `linux.devices` as (type, major, minor).
pub fn device_rules(
    spec_rules: &[LinuxDeviceCgroup],
    devices: &[(LinuxDeviceType, i64, i64)],
) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    let mut out = spec_rules.to_vec();
    out.push(rule(true, C, None, None, "m"));
    out.push(rule(true, B, None, None, "m"));
    for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        out.push(rule(true, C, Some(maj), Some(min), "rwm"));
    }
    out.push(rule(true, C, Some(136), None, "rwm"));
    for &(typ, major, minor) in devices {
        let r = rule(true, typ, Some(major), Some(minor), "rwm");
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
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
    // Every hierarchy, not only the first: a process caught half way through joining (a
    // create killed during `join`) is in some directories and not in others.
    let mut all: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<i32>>())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The directories of `dirs` that do not exist yet (the ones a create will make and own), or
/// an error when one that exists holds processes: a container never shares a cgroup with
/// processes that are not its own, which its limits, `kill --all` and delete would hit.
pub fn unused_or_new(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut new = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            new.push(d.clone());
            continue;
        }
        if let Some(pid) = pids(std::slice::from_ref(d)).first() {
            return Err(Error::Invalid(format!(
                "linux.cgroupsPath: cgroup {} already holds processes (pid {pid}); a container needs a cgroup of its own",
                d.display()
            )));
        }
    }
    Ok(new)
}

/// Send `sig` to every process in the cgroup, including children forked while we signal:
/// SIGKILL through v2's `cgroup.kill` (the kernel kills the whole cgroup at once, forks in
/// flight included; on a hybrid host also each process of the v1 directories); otherwise
/// with the cgroup frozen, so a process cannot fork a child we
/// would not see, then thawed (a paused container stays paused, but for SIGKILL).
pub fn signal_all(dirs: &[PathBuf], sig: i32) -> Result<()> {
    let cg = Cgroup::new(dirs);
    if sig == libc::SIGKILL {
        if let Some(d) = cg.v2_dir().filter(|d| d.join("cgroup.kill").exists()) {
            // On a hybrid host the v2 directory is one of several, and a process may be in
            // the v1 ones only (a create killed half way through joining): those are
            // signalled below too.
            if std::fs::write(d.join("cgroup.kill"), "1").is_ok() && dirs.len() == 1 {
                return Ok(());
            }
        }
    }
    let was_frozen = is_frozen(dirs);
    let froze = !was_frozen && cg.freeze(true).is_ok();
    let r = signal_each(dirs, sig);
    if froze || (was_frozen && sig == libc::SIGKILL) {
        let _ = cg.freeze(false);
    }
    r
}

/// kill(2) of each pid in the cgroup now.
fn signal_each(dirs: &[PathBuf], sig: i32) -> Result<()> {
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
    use std::path::Path;

    /// A create killed half way through `join` leaves its init in the v1 directories but not
    /// (yet) in the v2 one of a hybrid host: `cgroup.kill` there reaches nothing, and the
    /// process must still be killed.
    #[test]
    fn sigkill_reaches_a_process_that_is_in_only_some_hierarchies() {
        let (v2root, v1root) = (Path::new("/sys/fs/cgroup/unified"), Path::new("/sys/fs/cgroup/pids"));
        let root = nix::unistd::geteuid().is_root();
        if !root || !v2root.join("cgroup.procs").exists() || !v1root.join("cgroup.procs").exists() {
            // Past libtest's capture, so .ci/run counts it as skipped.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"wrun-tests: skipped sigkill_reaches_a_process_that_is_in_only_some_hierarchies: \
                  needs root and a hybrid host (a v2 hierarchy beside a v1 pids one)\n",
            );
            return;
        }
        let name = format!("wrun-unit-partial-{}", std::process::id());
        let dirs = vec![v2root.join(&name), v1root.join(&name)];
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        std::fs::write(dirs[1].join("cgroup.procs"), child.id().to_string()).unwrap();
        let r = signal_all(&dirs, libc::SIGKILL);
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !gone {
            let _ = child.kill();
        }
        let _ = child.wait();
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        r.unwrap();
        assert!(gone, "a process in the v1 directory only survived signal_all(SIGKILL)");
    }
}
