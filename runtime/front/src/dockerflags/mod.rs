//! Docker's resource flags (`docker run --cpus 1.5 -m 512m ...`) translated into the OCI
//! `linux.resources` of a container, with docker's units, defaults and checks: what docker
//! refuses is refused here with a one-line error naming the flag and its value.
//!
//! Docker's conventions kept: a zero value means "not set" (`--cpus 0`, `-m 0`,
//! `--cpu-shares 0`, `--blkio-weight 0`, ...), `--memory-swappiness -1` is "not set",
//! `--pids-limit` 0 or negative is "unlimited" (-1), and `-m` without `--memory-swap` limits
//! swap to as much again as the memory (memory+swap = 2 × memory).

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, LinuxThrottleDevice, LinuxThrottleDeviceBuilder,
};

/// The resource flags of `docker run`, as given on the command line.
#[derive(Debug, Default, Clone)]
pub struct ResourceFlags {
    /// `--cpus`: number of CPUs, decimal (e.g. "1.5").
    pub cpus: Option<String>,
    /// `-c/--cpu-shares`: relative weight.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`: CPUs allowed, e.g. "0-3,5".
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: memory nodes allowed, e.g. "0,1".
    pub cpuset_mems: Option<String>,
    /// `--cpu-period`: CFS period in µs.
    pub cpu_period: Option<u64>,
    /// `--cpu-quota`: CFS quota in µs, -1 = unlimited.
    pub cpu_quota: Option<i64>,
    /// `--cpu-rt-period`: real-time period in µs.
    pub cpu_rt_period: Option<u64>,
    /// `--cpu-rt-runtime`: real-time runtime in µs.
    pub cpu_rt_runtime: Option<i64>,
    /// `-m/--memory`: a size (e.g. "512m").
    pub memory: Option<String>,
    /// `--memory-reservation`: a size, the soft limit.
    pub memory_reservation: Option<String>,
    /// `--memory-swap`: a size, memory plus swap; "-1" = unlimited swap.
    pub memory_swap: Option<String>,
    /// `--memory-swappiness`: 0..=100, -1 = not set.
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--pids-limit`: 0 or negative = unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`: 10..=1000, 0 = not set.
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps PATH:SIZE`, repeated.
    pub device_read_bps: Vec<String>,
    /// `--device-write-bps PATH:SIZE`, repeated.
    pub device_write_bps: Vec<String>,
    /// `--device-read-iops PATH:NUMBER`, repeated.
    pub device_read_iops: Vec<String>,
    /// `--device-write-iops PATH:NUMBER`, repeated.
    pub device_write_iops: Vec<String>,
}

/// A flag value that is malformed, out of range, or conflicts with another flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// From [`parse_size`], which does not know the flag: the message is only the reason
    /// (e.g. `invalid size: unknown unit "x"`), for the caller to prefix with flag and value.
    #[error("{reason}")]
    Size { value: String, reason: String },
    /// A flag's value cannot be used.
    #[error("{flag} {value:?}: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
}

fn invalid(flag: &'static str, value: impl ToString, reason: impl Into<String>) -> FlagError {
    FlagError::Invalid {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The least memory limit (and reservation) docker accepts: 6 MiB.
const MIN_MEMORY: i64 = 6 << 20;
/// The CFS period docker uses with `--cpus`.
const CPUS_PERIOD: u64 = 100_000;
/// Cgroup v1 cpu.shares bounds; docker clamps into them.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

/// Parse a size the way docker's `units.RAMInBytes` does: a non-negative decimal number
/// (`512`, `1.5`, `.5`), an optional space, and an optional case-insensitive unit `b`, or `k`,
/// `m`, `g`, `t`, `p` (powers of 1024) optionally followed by `b` or `ib`. Fractions of a byte
/// are dropped: `1.5k` = 1536, `0.1k` = 102.
pub fn parse_size(s: &str) -> Result<i64, FlagError> {
    let err = |reason: &str| FlagError::Size {
        value: s.to_string(),
        reason: reason.to_string(),
    };
    if s.starts_with('-') {
        return Err(err("invalid size: negative"));
    }
    let num_end = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    let unit = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(err("invalid size"));
    }
    let shift = match unit.as_str() {
        "" | "b" => 0,
        u => {
            let mut chars = u.chars();
            let exp = match chars.next() {
                Some('k') => 10,
                Some('m') => 20,
                Some('g') => 30,
                Some('t') => 40,
                Some('p') => 50,
                _ => return Err(err(&format!("invalid size: unknown unit {u:?}"))),
            };
            if !matches!(chars.as_str(), "" | "b" | "ib") {
                return Err(err(&format!("invalid size: unknown unit {u:?}")));
            }
            exp
        }
    };
    let too_large = || err("invalid size: too large");
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_large())?
    };
    // Exact: int * 2^shift + floor(frac * 2^shift / 10^digits), fraction cut at 20 digits.
    let frac = &frac[..frac.len().min(20)];
    let frac_part = if frac.is_empty() {
        0
    } else {
        let f: u128 = frac.parse().map_err(|_| err("invalid size"))?;
        (f << shift) / 10u128.pow(frac.len() as u32)
    };
    let bytes = int
        .checked_mul(1u128 << shift)
        .and_then(|b| b.checked_add(frac_part))
        .ok_or_else(too_large)?;
    i64::try_from(bytes).map_err(|_| too_large())
}

/// Parse `--cpus` into billionths of a CPU, as docker's `NanoCPUs` (at most 9 decimals).
fn parse_nano_cpus(s: &str) -> Result<i64, String> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err("invalid number of CPUs".into());
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err("value is too precise (at most 9 decimals)".into());
    }
    let too_large = || "too many CPUs".to_string();
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_large())?
    };
    let frac: i64 = format!("{frac_trimmed:0<9}")
        .parse()
        .map_err(|_| "invalid number of CPUs".to_string())?;
    let nano = int
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(too_large)?;
    Ok(if neg { -nano } else { nano })
}

/// A cpuset list: "0-3,5,7-8" (ranges ascending, numbers decimal).
fn valid_cpuset(s: &str) -> bool {
    let num = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    s.split(',').all(|part| match part.split_once('-') {
        Some((a, b)) => matches!((num(a), num(b)), (Some(a), Some(b)) if a <= b),
        None => num(part).is_some(),
    })
}

/// The CPUs this process may run on (what docker compares `--cpus` with).
fn host_cpus() -> usize {
    if let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        let n = (0..nix::sched::CpuSet::count())
            .filter(|i| set.is_set(*i).unwrap_or(false))
            .count();
        if n > 0 {
            return n;
        }
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Translate the flags into OCI `linux.resources`; sections no flag sets stay `None`.
pub fn to_resources(f: &ResourceFlags) -> Result<LinuxResources, FlagError> {
    to_resources_with_cpus(f, host_cpus())
}

fn to_resources_with_cpus(f: &ResourceFlags, host_cpus: usize) -> Result<LinuxResources, FlagError> {
    let mut res = LinuxResources::default();
    res.set_cpu(cpu(f, host_cpus)?);
    res.set_memory(memory(f)?);
    res.set_pids(f.pids_limit.map(|n| {
        let mut p = LinuxPids::default();
        p.set_limit(if n <= 0 { -1 } else { n });
        p
    }));
    res.set_block_io(block_io(f)?);
    Ok(res)
}

fn cpu(f: &ResourceFlags, host_cpus: usize) -> Result<Option<LinuxCpu>, FlagError> {
    let mut cpu = LinuxCpu::default();
    let mut set = false;
    let period = f.cpu_period.filter(|p| *p != 0);
    let quota = f.cpu_quota.filter(|q| *q != 0);
    if let Some(p) = period {
        if !(1_000..=1_000_000).contains(&p) {
            return Err(invalid(
                "--cpu-period",
                p,
                "must be between 1000 and 1000000 µs (1ms to 1s)",
            ));
        }
        cpu.set_period(Some(p));
        set = true;
    }
    if let Some(q) = quota {
        if q < -1 || (0..1_000).contains(&q) {
            return Err(invalid(
                "--cpu-quota",
                q,
                "must be at least 1000 µs (1ms), or -1 for unlimited",
            ));
        }
        cpu.set_quota(Some(q));
        set = true;
    }
    if let Some(s) = &f.cpus {
        let nano = parse_nano_cpus(s).map_err(|r| invalid("--cpus", s, r))?;
        if nano != 0 {
            if let Some(p) = period {
                return Err(invalid(
                    "--cpus",
                    s,
                    format!("conflicts with --cpu-period {p}: set one or the other"),
                ));
            }
            if let Some(q) = quota {
                return Err(invalid(
                    "--cpus",
                    s,
                    format!("conflicts with --cpu-quota {q}: set one or the other"),
                ));
            }
            let max = host_cpus as i64 * 1_000_000_000;
            if !(10_000_000..=max).contains(&nano) {
                return Err(invalid(
                    "--cpus",
                    s,
                    format!(
                        "range of CPUs is from 0.01 to {host_cpus}.00, as there are only {host_cpus} CPUs available"
                    ),
                ));
            }
            cpu.set_period(Some(CPUS_PERIOD));
            cpu.set_quota(Some(nano * CPUS_PERIOD as i64 / 1_000_000_000));
            set = true;
        }
    }
    if let Some(s) = f.cpu_shares.filter(|s| *s != 0) {
        cpu.set_shares(Some(s.clamp(MIN_SHARES, MAX_SHARES)));
        set = true;
    }
    for (flag, value, field) in [
        ("--cpuset-cpus", &f.cpuset_cpus, 0),
        ("--cpuset-mems", &f.cpuset_mems, 1),
    ] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if !valid_cpuset(v) {
            return Err(invalid(flag, v, "invalid list (want numbers and ranges, e.g. 0-3,5)"));
        }
        if field == 0 {
            cpu.set_cpus(Some(v.to_string()));
        } else {
            cpu.set_mems(Some(v.to_string()));
        }
        set = true;
    }
    let rt_period = f.cpu_rt_period.filter(|p| *p != 0);
    if let Some(p) = rt_period {
        cpu.set_realtime_period(Some(p));
        set = true;
    }
    if let Some(r) = f.cpu_rt_runtime.filter(|r| *r != 0) {
        if r < -1 {
            return Err(invalid("--cpu-rt-runtime", r, "must be positive, or -1 for unlimited"));
        }
        if let Some(p) = rt_period.filter(|p| r > 0 && r as u64 > *p) {
            return Err(invalid(
                "--cpu-rt-runtime",
                r,
                format!("cannot be higher than --cpu-rt-period {p}"),
            ));
        }
        cpu.set_realtime_runtime(Some(r));
        set = true;
    }
    Ok(set.then_some(cpu))
}

/// A size flag: 0 = not set.
fn size_flag(flag: &'static str, value: &Option<String>) -> Result<Option<i64>, FlagError> {
    let Some(v) = value else { return Ok(None) };
    match parse_size(v) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(FlagError::Size { reason, .. }) => Err(invalid(flag, v, reason)),
        Err(e) => Err(e),
    }
}

fn memory(f: &ResourceFlags) -> Result<Option<LinuxMemory>, FlagError> {
    let mut mem = LinuxMemory::default();
    let mut set = false;
    let limit = size_flag("--memory", &f.memory)?;
    if let Some(m) = limit {
        if m < MIN_MEMORY {
            return Err(invalid(
                "--memory",
                f.memory.as_deref().unwrap_or(""),
                "minimum memory limit allowed is 6MB",
            ));
        }
        mem.set_limit(Some(m));
        set = true;
    }
    let swap_value = f.memory_swap.as_deref().unwrap_or("");
    let swap = match f.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        _ => size_flag("--memory-swap", &f.memory_swap)?,
    };
    match (swap, limit) {
        (Some(-1), _) => {
            mem.set_swap(Some(-1));
        }
        (Some(_), None) => return Err(invalid("--memory-swap", swap_value, "requires --memory to be set")),
        (Some(s), Some(m)) if s < m => {
            return Err(invalid(
                "--memory-swap",
                swap_value,
                format!(
                    "must be at least --memory {} (it is memory plus swap)",
                    f.memory.as_deref().unwrap_or("")
                ),
            ))
        }
        (Some(s), Some(_)) => {
            mem.set_swap(Some(s));
        }
        // Docker's default: as much swap as memory.
        (None, Some(m)) => {
            mem.set_swap(Some(m.saturating_mul(2)));
        }
        (None, None) => {}
    }
    set |= mem.swap().is_some();
    if let Some(r) = size_flag("--memory-reservation", &f.memory_reservation)? {
        let value = f.memory_reservation.as_deref().unwrap_or("");
        if r < MIN_MEMORY {
            return Err(invalid(
                "--memory-reservation",
                value,
                "minimum memory reservation allowed is 6MB",
            ));
        }
        if let Some(m) = limit.filter(|m| r > *m) {
            return Err(invalid(
                "--memory-reservation",
                value,
                format!(
                    "must not be more than --memory {} ({m} bytes)",
                    f.memory.as_deref().unwrap_or("")
                ),
            ));
        }
        mem.set_reservation(Some(r));
        set = true;
    }
    if let Some(s) = f.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(invalid(
                "--memory-swappiness",
                s,
                "must be between 0 and 100 (or -1 for the default)",
            ));
        }
        mem.set_swappiness(Some(s as u64));
        set = true;
    }
    if f.oom_kill_disable {
        mem.set_disable_oom_killer(Some(true));
        set = true;
    }
    Ok(set.then_some(mem))
}

/// `PATH:RATE` of a throttle flag, the device resolved by stat to its major:minor.
fn throttle_device(flag: &'static str, value: &str, iops: bool) -> Result<LinuxThrottleDevice, FlagError> {
    let Some((path, rate)) = value.split_once(':') else {
        return Err(invalid(
            flag,
            value,
            "bad format (want DEVICE-PATH:RATE, e.g. /dev/sda:1mb)",
        ));
    };
    if !path.starts_with("/dev/") {
        return Err(invalid(
            flag,
            value,
            format!("bad device path {path:?}: must be under /dev/"),
        ));
    }
    let rate = if iops {
        rate.parse::<u64>()
            .map_err(|_| invalid(flag, value, "invalid rate: must be a non-negative integer"))?
    } else {
        match parse_size(rate) {
            Ok(n) => n as u64,
            Err(FlagError::Size { reason, .. }) => return Err(invalid(flag, value, format!("invalid rate: {reason}"))),
            Err(e) => return Err(e),
        }
    };
    let meta = std::fs::metadata(path).map_err(|e| invalid(flag, value, format!("stat {path}: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(invalid(flag, value, format!("{path} is not a block device")));
    }
    LinuxThrottleDeviceBuilder::default()
        .major(nix::sys::stat::major(meta.rdev()) as i64)
        .minor(nix::sys::stat::minor(meta.rdev()) as i64)
        .rate(rate)
        .build()
        .map_err(|e| invalid(flag, value, e.to_string()))
}

fn block_io(f: &ResourceFlags) -> Result<Option<LinuxBlockIo>, FlagError> {
    let mut bio = LinuxBlockIo::default();
    let mut set = false;
    if let Some(w) = f.blkio_weight.filter(|w| *w != 0) {
        if !(10..=1000).contains(&w) {
            return Err(invalid("--blkio-weight", w, "must be between 10 and 1000"));
        }
        bio.set_weight(Some(w));
        set = true;
    }
    let lists = [
        ("--device-read-bps", &f.device_read_bps, false),
        ("--device-write-bps", &f.device_write_bps, false),
        ("--device-read-iops", &f.device_read_iops, true),
        ("--device-write-iops", &f.device_write_iops, true),
    ];
    for (flag, values, iops) in lists {
        if values.is_empty() {
            continue;
        }
        let devs = values
            .iter()
            .map(|v| throttle_device(flag, v, iops))
            .collect::<Result<Vec<_>, _>>()?;
        match flag {
            "--device-read-bps" => bio.set_throttle_read_bps_device(Some(devs)),
            "--device-write-bps" => bio.set_throttle_write_bps_device(Some(devs)),
            "--device-read-iops" => bio.set_throttle_read_iops_device(Some(devs)),
            _ => bio.set_throttle_write_iops_device(Some(devs)),
        };
        set = true;
    }
    Ok(set.then_some(bio))
}

#[cfg(test)]
mod tests;
