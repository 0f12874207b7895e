//! cgroup v2: one unified hierarchy. Writers with the v2 file names and unit conversions,
//! controller delegation down the tree, the freezer, OOM counts from `memory.events`, and
//! statistics. Pure file I/O, so it is unit-tested against a fake tree.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};

use super::fs::{self, write};
use super::stats::{self, Stats};
use crate::{Error, Result};

/// runc's conversion of v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// v1 blkio weight (10..1000) to v2 io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10) * 9999) / 990
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Enable every controller the parent offers, from `root` down to `dir`'s parent, so `dir`
/// gets its own files. A cgroup that holds processes cannot delegate (EBUSY): skipped, and a
/// limit that then lacks its controller fails clearly when written.
pub fn enable_controllers(root: &Path, dir: &Path) {
    let Ok(rel) = dir.strip_prefix(root) else { return };
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        if let Some(avail) = fs::read(&cur, "cgroup.controllers") {
            let want: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
            if !want.is_empty() {
                let _ = write(&cur, "cgroup.subtree_control", want.join(" "));
            }
        }
        cur.push(c);
    }
}

/// Fail clearly when `dir` lacks the controller that `field` needs.
fn need(dir: &Path, controller: &str, field: &str) -> Result<()> {
    let ok = fs::read(dir, "cgroup.controllers").is_some_and(|c| c.split_whitespace().any(|x| x == controller));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "linux.resources.{field}: the {controller} controller is not enabled in {}",
            dir.display()
        )))
    }
}

pub fn memory(dir: &Path, m: &LinuxMemory, update: bool) -> Result<()> {
    need(dir, "memory", "memory")?;
    if let Some(r) = m.reservation() {
        write(dir, "memory.low", max_or(r))?;
    }
    if update && m.check_before_update() == Some(true) {
        if let (Some(l), Some(cur)) = (m.limit(), fs::read_u64(dir, "memory.current")) {
            if l >= 0 && (l as u64) < cur {
                return Err(Error::Invalid(format!(
                    "linux.resources.memory.limit {l}: below the current usage {cur} (checkBeforeUpdate)"
                )));
            }
        }
    }
    if let Some(l) = m.limit() {
        write(dir, "memory.max", max_or(l))
            .map_err(|e| e.within(format_args!("linux.resources.memory.limit {l}: the kernel refused it")))?;
    }
    // OCI's swap is memory+swap; v2's memory.swap.max is the swap alone.
    if let Some(s) = m.swap() {
        let v = match (s, m.limit()) {
            (-1, _) => "max".to_string(),
            (s, Some(l)) if l >= 0 => {
                if s < l {
                    return Err(Error::Invalid(format!(
                        "linux.resources.memory.swap {s}: below the memory limit {l} (swap is memory+swap)"
                    )));
                }
                (s - l).to_string()
            }
            (s, _) => s.to_string(),
        };
        if fs::exists(dir, "memory.swap.max") {
            write(dir, "memory.swap.max", v)?;
        } else if s != -1 {
            return Err(Error::Invalid(
                "linux.resources.memory.swap: swap is not accounted on this host".into(),
            ));
        }
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(Error::Invalid(
            "linux.resources.memory.disableOOMKiller: not supported on cgroup v2".into(),
        ));
    }
    if let Some(sw) = m.swappiness() {
        if sw != 60 {
            tracing::warn!("linux.resources.memory.swappiness {sw}: ignored on cgroup v2 (no per-cgroup swappiness)");
        }
    }
    Ok(())
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    let wants_cpu = c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some();
    if wants_cpu {
        need(dir, "cpu", "cpu")?;
    }
    if c.realtime_period().is_some() || c.realtime_runtime().is_some() {
        return Err(Error::Invalid(
            "linux.resources.cpu.realtimeRuntime/realtimePeriod: not supported on cgroup v2".into(),
        ));
    }
    if let Some(s) = c.shares() {
        write(dir, "cpu.weight", shares_to_weight(s).to_string())?;
    }
    if c.quota().is_some() || c.period().is_some() {
        let cur = fs::read(dir, "cpu.max").unwrap_or_else(|| "max 100000".into());
        let mut parts = cur.split_whitespace();
        let (cq, cp) = (
            parts.next().unwrap_or("max").to_string(),
            parts.next().unwrap_or("100000").to_string(),
        );
        let q = c
            .quota()
            .map(|q| if q <= 0 { "max".to_string() } else { q.to_string() })
            .unwrap_or(cq);
        let p = c.period().map(|p| p.to_string()).unwrap_or(cp);
        write(dir, "cpu.max", format!("{q} {p}"))?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.max.burst", b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", i.to_string())?;
    }
    Ok(())
}

/// `cpu.cpus` / `cpu.mems` (`field`) to cpuset.cpus / cpuset.mems.
pub fn cpuset(dir: &Path, field: &str, value: &str) -> Result<()> {
    need(dir, "cpuset", &format!("cpu.{field}"))?;
    write(dir, &format!("cpuset.{field}"), value)
}

/// pids.max: a number or "max".
pub fn pids(dir: &Path, limit: &str) -> Result<()> {
    need(dir, "pids", "pids")?;
    write(dir, "pids.max", limit)
}

pub fn io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    need(dir, "io", "blockIO")?;
    let weight_file = ["io.bfq.weight", "io.weight"]
        .into_iter()
        .find(|f| fs::exists(dir, f))
        .unwrap_or("io.weight");
    let conv = |w: u16| {
        if weight_file == "io.bfq.weight" {
            u64::from(w)
        } else {
            blkio_to_io_weight(w)
        }
    };
    if let Some(w) = b.weight() {
        write(dir, weight_file, format!("default {}", conv(w)))?;
    }
    for d in b.weight_device().as_deref().unwrap_or_default() {
        if let Some(w) = d.weight() {
            write(dir, weight_file, format!("{}:{} {}", d.major(), d.minor(), conv(w)))?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.as_deref().unwrap_or_default() {
            write(dir, "io.max", format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()))?;
        }
    }
    Ok(())
}

pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    if !limits.is_empty() {
        need(dir, "hugetlb", "hugepageLimits")?;
    }
    for l in limits {
        write(dir, &format!("hugetlb.{}.max", l.page_size()), l.limit().to_string())?;
    }
    Ok(())
}

/// `unified`: raw v2 keys. The key must name a file of an enabled controller.
pub fn unified(dir: &Path, kv: &std::collections::HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = kv.keys().collect();
    keys.sort();
    for k in keys {
        if k.contains('/') || k.starts_with('.') || !k.contains('.') {
            return Err(Error::Invalid(format!(
                "linux.resources.unified: {k:?} is not a cgroup v2 file name"
            )));
        }
        let controller = k.split('.').next().unwrap_or_default();
        if controller != "cgroup" {
            need(dir, controller, &format!("unified[{k}]"))?;
        }
        if !fs::exists(dir, k) {
            return Err(Error::Invalid(format!(
                "linux.resources.unified: {k}: no such file in {}",
                dir.display()
            )));
        }
        write(dir, k, &kv[k])?;
    }
    Ok(())
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    for _ in 0..1000 {
        if fs::read(dir, "cgroup.events").is_none_or(|e| e.lines().any(|l| l == want)) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(Error::Invalid(format!(
        "cgroup {}: did not reach {want}",
        dir.display()
    )))
}

/// How many OOM kills `memory.events` reports.
pub fn oom_kills(dir: &Path) -> u64 {
    super::oom_kills_in(dir, false).unwrap_or(0)
}

pub fn stats(s: &mut Stats, dir: &Path) {
    let usec = |k: &str| fs::kv(dir, "cpu.stat", k).unwrap_or(0) * 1000;
    s.cpu.usage.total = usec("usage_usec");
    s.cpu.usage.user = usec("user_usec");
    s.cpu.usage.kernel = usec("system_usec");
    s.cpu.throttling.periods = fs::kv(dir, "cpu.stat", "nr_periods").unwrap_or(0);
    s.cpu.throttling.throttled_periods = fs::kv(dir, "cpu.stat", "nr_throttled").unwrap_or(0);
    s.cpu.throttling.throttled_time = usec("throttled_usec");
    s.memory.usage = stats::MemoryEntry {
        limit: fs::read_u64(dir, "memory.max").unwrap_or(0),
        usage: fs::read_u64(dir, "memory.current").unwrap_or(0),
        max: fs::read_u64(dir, "memory.peak").unwrap_or(0),
        failcnt: fs::kv(dir, "memory.events", "max").unwrap_or(0),
    };
    s.memory.swap = stats::MemoryEntry {
        limit: fs::read_u64(dir, "memory.swap.max").unwrap_or(0),
        usage: fs::read_u64(dir, "memory.swap.current").unwrap_or(0),
        max: fs::read_u64(dir, "memory.swap.peak").unwrap_or(0),
        failcnt: fs::kv(dir, "memory.swap.events", "max").unwrap_or(0),
    };
    s.memory.raw = fs::read_kv(dir, "memory.stat").into_iter().collect();
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    s.pids.current = fs::read_u64(dir, "pids.current").unwrap_or(0);
    s.pids.limit = fs::read_u64(dir, "pids.max").filter(|v| *v != u64::MAX).unwrap_or(0);
    for line in fs::read(dir, "io.stat").unwrap_or_default().lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(stats::BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(size) = name.strip_prefix("hugetlb.").and_then(|n| n.strip_suffix(".current")) {
                s.hugetlb.insert(
                    size.to_string(),
                    stats::Hugetlb {
                        usage: fs::read_u64(dir, &name).unwrap_or(0),
                        max: fs::read_u64(dir, &format!("hugetlb.{size}.max"))
                            .filter(|v| *v != u64::MAX)
                            .unwrap_or(0),
                        failcnt: fs::kv(dir, &format!("hugetlb.{size}.events"), "max").unwrap_or(0),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fake v2 cgroup directory with the given controllers and empty files.
    fn fake(name: &str, controllers: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wrun-fake-v2-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cgroup.controllers"), controllers).unwrap();
        for (f, v) in files {
            std::fs::write(d.join(f), v).unwrap();
        }
        d
    }

    fn get(d: &Path, f: &str) -> String {
        std::fs::read_to_string(d.join(f)).unwrap()
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn memory_limits_use_v2_names_and_swap_is_the_difference() {
        let d = fake(
            "mem",
            "cpu memory pids",
            &[("memory.max", "max"), ("memory.low", "0"), ("memory.swap.max", "max")],
        );
        let m: LinuxMemory =
            serde_json::from_str(r#"{"limit":67108864,"reservation":33554432,"swap":100663296}"#).unwrap();
        memory(&d, &m, false).unwrap();
        assert_eq!(get(&d, "memory.max"), "67108864");
        assert_eq!(get(&d, "memory.low"), "33554432");
        assert_eq!(get(&d, "memory.swap.max"), "33554432");
        let unlimited: LinuxMemory = serde_json::from_str(r#"{"limit":-1,"swap":-1}"#).unwrap();
        memory(&d, &unlimited, false).unwrap();
        assert_eq!(
            (get(&d, "memory.max"), get(&d, "memory.swap.max")),
            ("max".into(), "max".into())
        );
        let bad: LinuxMemory = serde_json::from_str(r#"{"limit":100,"swap":50}"#).unwrap();
        assert!(memory(&d, &bad, false).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn cpu_quota_and_period_share_cpu_max_and_keep_the_other_half() {
        let d = fake("cpu", "cpu memory", &[("cpu.max", "max 100000"), ("cpu.weight", "100")]);
        let c: LinuxCpu = serde_json::from_str(r#"{"quota":20000,"shares":1024}"#).unwrap();
        cpu(&d, &c).unwrap();
        assert_eq!(get(&d, "cpu.max"), "20000 100000");
        assert_eq!(get(&d, "cpu.weight"), "39");
        let p: LinuxCpu = serde_json::from_str(r#"{"period":50000}"#).unwrap();
        std::fs::write(d.join("cpu.max"), "20000 100000\n").unwrap();
        cpu(&d, &p).unwrap();
        assert_eq!(get(&d, "cpu.max"), "20000 50000");
        let rt: LinuxCpu = serde_json::from_str(r#"{"realtimeRuntime":1000}"#).unwrap();
        assert!(cpu(&d, &rt).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_controller_is_a_clear_error() {
        let d = fake("noio", "cpu memory", &[]);
        let b: LinuxBlockIo = serde_json::from_str(r#"{"weight":500}"#).unwrap();
        let e = io(&d, &b).unwrap_err().to_string();
        assert!(e.contains("io controller is not enabled"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn pids_and_cpuset_need_their_controllers() {
        let d = fake("pids", "cpu memory", &[]);
        let e = pids(&d, "16").unwrap_err().to_string();
        assert!(
            e.contains("linux.resources.pids: the pids controller is not enabled"),
            "{e}"
        );
        let e = cpuset(&d, "cpus", "0").unwrap_err().to_string();
        assert!(
            e.contains("linux.resources.cpu.cpus: the cpuset controller is not enabled"),
            "{e}"
        );
        std::fs::write(d.join("cgroup.controllers"), "cpuset pids").unwrap();
        pids(&d, "16").unwrap();
        cpuset(&d, "mems", "0").unwrap();
        assert_eq!((get(&d, "pids.max"), get(&d, "cpuset.mems")), ("16".into(), "0".into()));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn io_throttles_go_to_io_max() {
        let d = fake("io", "io", &[("io.max", ""), ("io.weight", "default 100")]);
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":1000,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":100}]}"#,
        )
        .unwrap();
        io(&d, &b).unwrap();
        // A real io.max merges the lines; a plain file keeps the last write.
        assert_eq!(get(&d, "io.max"), "8:0 wiops=100");
        assert_eq!(get(&d, "io.weight"), "default 10000");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unified_keys_must_name_files_of_enabled_controllers() {
        let d = fake("unified", "memory pids", &[("memory.high", "max"), ("pids.max", "max")]);
        let ok = [("memory.high".to_string(), "1000000".to_string())]
            .into_iter()
            .collect();
        unified(&d, &ok).unwrap();
        assert_eq!(get(&d, "memory.high"), "1000000");
        for bad in ["foo.bar", "cpu.max", "memory.nonexistent", "../x", "nodot"] {
            let kv = [(bad.to_string(), "1".to_string())].into_iter().collect();
            assert!(unified(&d, &kv).is_err(), "{bad}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn freeze_waits_for_cgroup_events() {
        let d = fake(
            "freeze",
            "",
            &[("cgroup.freeze", "0"), ("cgroup.events", "populated 1\nfrozen 1\n")],
        );
        freeze(&d, true).unwrap();
        assert_eq!(get(&d, "cgroup.freeze"), "1");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stats_read_v2_files() {
        let d = fake(
            "stats",
            "cpu memory pids io",
            &[
                ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 20\n"),
                ("memory.current", "4096\n"),
                ("memory.max", "max\n"),
                ("pids.current", "3\n"),
                ("pids.max", "16\n"),
                ("io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"),
                ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            ],
        );
        let mut s = Stats::default();
        stats(&mut s, &d);
        assert_eq!(s.cpu.usage.total, 1_500_000);
        assert_eq!(s.cpu.throttling.throttled_periods, 4);
        assert_eq!((s.memory.usage.usage, s.memory.usage.failcnt), (4096, 2));
        assert_eq!((s.pids.current, s.pids.limit), (3, 16));
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(oom_kills(&d), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
