//! cgroup v1: one hierarchy per controller. Writers for each `linux.resources` field, the
//! freezer, OOM notification through `cgroup.event_control`, and statistics.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory};

use super::fs::{self, write};
use super::stats::{self, Stats};
use crate::{Error, Result};

fn unlimited(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

pub fn memory(dir: &Path, m: &LinuxMemory, update: bool) -> Result<()> {
    if let Some(r) = m.reservation() {
        write(dir, "memory.soft_limit_in_bytes", unlimited(r))?;
    }
    if update && m.check_before_update() == Some(true) {
        if let (Some(limit), Some(usage)) = (m.limit(), fs::read_u64(dir, "memory.usage_in_bytes")) {
            if limit >= 0 && (limit as u64) < usage {
                return Err(Error::Invalid(format!(
                    "linux.resources.memory.limit {limit}: below the current usage {usage} (checkBeforeUpdate)"
                )));
            }
        }
    }
    let has_memsw = fs::exists(dir, "memory.memsw.limit_in_bytes");
    if m.swap().is_some_and(|s| s != -1) && !has_memsw {
        return Err(Error::Invalid(
            "linux.resources.memory.swap: swap accounting is not enabled on this host".into(),
        ));
    }
    // memsw must stay >= limit at every step: raise memsw first when the limit grows past it.
    let cur_memsw = if has_memsw {
        fs::read(dir, "memory.memsw.limit_in_bytes").and_then(|s| s.parse::<i64>().ok())
    } else {
        None
    };
    let grows = match (m.limit(), cur_memsw) {
        (Some(l), Some(cur)) => l == -1 || (cur >= 0 && l > cur),
        _ => false,
    };
    let swap = m.swap().filter(|_| has_memsw);
    let swap = swap.or_else(|| {
        if m.limit() == Some(-1) && has_memsw {
            Some(-1)
        } else {
            None
        }
    });
    if grows {
        if let Some(s) = swap {
            write(dir, "memory.memsw.limit_in_bytes", unlimited(s))?;
        }
    }
    if let Some(l) = m.limit() {
        write(dir, "memory.limit_in_bytes", unlimited(l)).map_err(|e| memory_refused(l, e))?;
    }
    if !grows {
        if let Some(s) = swap {
            write(dir, "memory.memsw.limit_in_bytes", unlimited(s))?;
        }
    }
    if let Some(sw) = m.swappiness() {
        if sw > 100 {
            return Err(Error::Invalid(format!(
                "linux.resources.memory.swappiness {sw}: must be 0 to 100"
            )));
        }
        write(dir, "memory.swappiness", sw.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer() {
        write(dir, "memory.oom_control", if d { "1" } else { "0" })?;
    }
    if let Some(t) = m.kernel_tcp() {
        write(dir, "memory.kmem.tcp.limit_in_bytes", unlimited(t))?;
    }
    if let Some(k) = m.kernel() {
        // Deprecated: kernels since 5.16 refuse a kmem limit (runc ignores it too).
        if let Err(e) = write(dir, "memory.kmem.limit_in_bytes", unlimited(k)) {
            tracing::warn!("linux.resources.memory.kernel: not applied: {e}");
        }
    }
    Ok(())
}

fn memory_refused(limit: i64, e: Error) -> Error {
    Error::Invalid(format!(
        "linux.resources.memory.limit {limit}: the kernel refused it ({e})"
    ))
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares() {
        write(dir, "cpu.shares", s.to_string())?;
    }
    if let Some(p) = c.period() {
        write(dir, "cpu.cfs_period_us", p.to_string())?;
    }
    if let Some(q) = c.quota() {
        write(
            dir,
            "cpu.cfs_quota_us",
            if q <= 0 { "-1".to_string() } else { q.to_string() },
        )?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.cfs_burst_us", b.to_string())?;
    }
    if let Some(p) = c.realtime_period() {
        write(dir, "cpu.rt_period_us", p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime() {
        write(dir, "cpu.rt_runtime_us", r.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", i.to_string())?;
    }
    Ok(())
}

pub fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| fs::exists(dir, f));
    let need_weight = b.weight().is_some() || b.weight_device().as_ref().is_some_and(|d| !d.is_empty());
    if need_weight && weight_file.is_none() {
        return Err(Error::Invalid(
            "linux.resources.blockIO.weight: this kernel's blkio controller has no weight (no CFQ/BFQ scheduler)"
                .into(),
        ));
    }
    if let (Some(w), Some(f)) = (b.weight(), weight_file) {
        write(dir, f, w.to_string())?;
    }
    let needs_leaf = b.leaf_weight().is_some()
        || b.weight_device()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|d| d.leaf_weight().is_some());
    if needs_leaf && !fs::exists(dir, "blkio.leaf_weight") {
        return Err(Error::Invalid(
            "linux.resources.blockIO.leafWeight: this kernel's blkio controller has no leaf weight (CFQ only)".into(),
        ));
    }
    if let Some(w) = b.leaf_weight() {
        write(dir, "blkio.leaf_weight", w.to_string())?;
    }
    for d in b.weight_device().as_deref().unwrap_or_default() {
        if let (Some(w), Some(f)) = (d.weight(), weight_file) {
            write(dir, &format!("{f}_device"), format!("{}:{} {w}", d.major(), d.minor()))?;
        }
        if let Some(w) = d.leaf_weight() {
            write(
                dir,
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    let throttles = [
        ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
        ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
        ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
        ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
    ];
    for (file, list) in throttles {
        for t in list.as_deref().unwrap_or_default() {
            write(dir, file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
        }
    }
    Ok(())
}

pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        write(
            dir,
            &format!("hugetlb.{}.limit_in_bytes", l.page_size()),
            l.limit().to_string(),
        )?;
    }
    Ok(())
}

/// A v1 devices rule line: `c 1:3 rwm`.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        _ => "a",
    };
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
    let access = d.access().clone().unwrap_or_else(|| "rwm".into());
    format!("{t} {}:{} {access}", n(d.major()), n(d.minor()))
}

/// Apply device rules in order (the v1 devices controller is stateful: later rules add to or
/// remove from what earlier ones left).
pub fn devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    for r in rules {
        let file = if r.allow() { "devices.allow" } else { "devices.deny" };
        write(dir, file, device_rule(r))?;
    }
    Ok(())
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    for _ in 0..1000 {
        write(dir, "freezer.state", want)?;
        if fs::read(dir, "freezer.state").as_deref() == Some(want) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(Error::Invalid(format!(
        "cgroup {}: freezer did not reach {want}",
        dir.display()
    )))
}

/// An eventfd that becomes readable on each OOM in the memory cgroup `dir` (and when the
/// cgroup is removed).
pub fn oom_eventfd(dir: &Path) -> Result<OwnedFd> {
    let oc = std::fs::File::open(dir.join("memory.oom_control"))
        .map_err(|e| Error::io(format!("cgroup {}: open memory.oom_control", dir.display()), e))?;
    // SAFETY: eventfd(2) returns a new fd we own.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(Error::io("eventfd", std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd we own.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    write(
        dir,
        "cgroup.event_control",
        format!("{} {}", efd.as_raw_fd(), oc.as_raw_fd()),
    )?;
    Ok(efd)
}

/// The `oom_kill` counter of memory.oom_control.
pub fn oom_kills(dir: &Path) -> u64 {
    super::oom_kills_in(dir, true).unwrap_or(0)
}

fn blkio_entries(dir: &Path, file: &str) -> Vec<stats::BlkioEntry> {
    fs::read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            Some(stats::BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f.get(1)?.to_string(),
                value: f.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// Fill `s` from the v1 directories that exist (`dir_of(controller)`).
pub fn stats(s: &mut Stats, dir_of: &dyn Fn(&str) -> Option<std::path::PathBuf>) {
    // SAFETY: sysconf is always safe.
    let tick_ns = 1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    if let Some(d) = dir_of("cpuacct") {
        s.cpu.usage.total = fs::read_u64(&d, "cpuacct.usage").unwrap_or(0);
        s.cpu.usage.percpu = fs::read(&d, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        s.cpu.usage.user = fs::kv(&d, "cpuacct.stat", "user").unwrap_or(0) * tick_ns;
        s.cpu.usage.kernel = fs::kv(&d, "cpuacct.stat", "system").unwrap_or(0) * tick_ns;
    }
    if let Some(d) = dir_of("cpu") {
        s.cpu.throttling.periods = fs::kv(&d, "cpu.stat", "nr_periods").unwrap_or(0);
        s.cpu.throttling.throttled_periods = fs::kv(&d, "cpu.stat", "nr_throttled").unwrap_or(0);
        s.cpu.throttling.throttled_time = fs::kv(&d, "cpu.stat", "throttled_time").unwrap_or(0);
    }
    if let Some(d) = dir_of("memory") {
        let entry = |prefix: &str| stats::MemoryEntry {
            limit: fs::read_u64(&d, &format!("{prefix}.limit_in_bytes")).unwrap_or(0),
            usage: fs::read_u64(&d, &format!("{prefix}.usage_in_bytes")).unwrap_or(0),
            max: fs::read_u64(&d, &format!("{prefix}.max_usage_in_bytes")).unwrap_or(0),
            failcnt: fs::read_u64(&d, &format!("{prefix}.failcnt")).unwrap_or(0),
        };
        s.memory.usage = entry("memory");
        s.memory.swap = entry("memory.memsw");
        s.memory.raw = fs::read_kv(&d, "memory.stat").into_iter().collect();
        s.memory.cache = s
            .memory
            .raw
            .get("total_cache")
            .or(s.memory.raw.get("cache"))
            .copied()
            .unwrap_or(0);
    }
    if let Some(d) = dir_of("pids") {
        s.pids.current = fs::read_u64(&d, "pids.current").unwrap_or(0);
        s.pids.limit = fs::read_u64(&d, "pids.max").filter(|v| *v != u64::MAX).unwrap_or(0);
    }
    if let Some(d) = dir_of("blkio") {
        s.blkio.io_service_bytes_recursive = blkio_entries(&d, "blkio.throttle.io_service_bytes_recursive");
        s.blkio.io_serviced_recursive = blkio_entries(&d, "blkio.throttle.io_serviced_recursive");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_render_wildcards_and_types() {
        let r: LinuxDeviceCgroup = serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap();
        assert_eq!(device_rule(&r), "a *:* rwm");
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":136,"access":"rwm"}"#).unwrap();
        assert_eq!(device_rule(&r), "c 136:* rwm");
    }
}
