//! `container stats`: docker's table of live containers' CPU %, memory usage / limit, network
//! and block I/O and pids, from the cgroup (the runtime's statistics) and the container's
//! network namespace (`/proc/PID/net/dev`). CPU % is the cgroup's CPU time over the wall time
//! between two samples (100% per busy CPU, as docker counts).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use wrun_front::container::{Containers, Record, Status};

use super::super::image::human_size;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Every container, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// `json`: a JSON object per container and sample.
    #[arg(long)]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub names: Vec<String>,
}

/// One container's sample.
struct Sample {
    at: Instant,
    cpu_ns: u64,
    mem: u64,
    mem_limit: u64,
    net: (u64, u64),
    block: (u64, u64),
    pids: u64,
}

/// docker's memory sizes: binary units (`1.5MiB`).
fn binary_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[i])
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Received and sent bytes of the namespace `pid` is in, loopback left out.
fn net_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

fn sample(cs: &Containers, r: &Record) -> Option<Sample> {
    let s = wrun::container::stats(cs.runtime_root(), &r.id).ok()?;
    let at = Instant::now();
    // docker's usage: what the cgroup charges less the page cache it could drop.
    let inactive = ["inactive_file", "total_inactive_file"]
        .iter()
        .find_map(|k| s.memory.raw.get(*k).copied())
        .unwrap_or(0);
    let mem = s.memory.usage.usage.saturating_sub(inactive);
    let host = host_memory();
    let limit = match s.memory.usage.limit {
        0 => host,
        l if host > 0 && l > host => host,
        l => l,
    };
    let (mut read, mut write) = (0, 0);
    for e in &s.blkio.io_service_bytes_recursive {
        match e.op.to_ascii_lowercase().as_str() {
            "read" => read += e.value,
            "write" => write += e.value,
            _ => {}
        }
    }
    let net = cs.init_pid(&r.id).map_or((0, 0), net_io);
    Some(Sample {
        at,
        cpu_ns: s.cpu.usage.total,
        mem,
        mem_limit: limit,
        net,
        block: (read, write),
        pids: s.pids.current,
    })
}

fn cpu_percent(a: &Sample, b: &Sample) -> f64 {
    let wall = b.at.duration_since(a.at).as_nanos() as f64;
    if wall <= 0.0 {
        return 0.0;
    }
    b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / wall * 100.0
}

pub(super) fn stats(cs: &Containers, a: &StatsArgs) -> anyhow::Result<()> {
    if let Some(f) = a.format.as_deref().filter(|f| *f != "json") {
        anyhow::bail!("--format {f:?}: only \"json\"");
    }
    let pick = || -> anyhow::Result<Vec<Record>> {
        if a.names.is_empty() {
            Ok(cs
                .list()?
                .into_iter()
                .filter(|r| a.all || matches!(r.status, Status::Running))
                .collect())
        } else {
            a.names.iter().map(|n| cs.find(n).map_err(Into::into)).collect()
        }
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut prev: BTreeMap<String, Sample> = BTreeMap::new();
    let step = if a.no_stream {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(1)
    };
    // The first sample is only a base for CPU %: nothing is printed for it.
    let mut first = true;
    loop {
        let list = pick()?;
        let mut rows = Vec::new();
        for r in &list {
            let s = sample(cs, r);
            rows.push((r, s));
        }
        if !first {
            let mut out = std::io::stdout().lock();
            if tty && !a.no_stream && a.format.is_none() {
                write!(out, "\x1b[2J\x1b[H")?;
            }
            if a.format.is_none() {
                writeln!(
                    out,
                    "{:<14}{:<20}{:>8}   {:<22}{:>7}   {:<20}{:<20}PIDS",
                    "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O"
                )?;
            }
            for (r, s) in &rows {
                let (cpu, mem, limit, net, block, pids) = match s {
                    Some(s) => (
                        prev.get(&r.id).map_or(0.0, |p| cpu_percent(p, s)),
                        s.mem,
                        s.mem_limit,
                        s.net,
                        s.block,
                        s.pids,
                    ),
                    None => (0.0, 0, 0, (0, 0), (0, 0), 0),
                };
                let mem_pct = if limit > 0 {
                    mem as f64 / limit as f64 * 100.0
                } else {
                    0.0
                };
                if a.format.is_some() {
                    writeln!(
                        out,
                        "{}",
                        json!({
                            "id": r.id, "name": r.name, "cpu_percent": (cpu * 100.0).round() / 100.0,
                            "memory_usage": mem, "memory_limit": limit,
                            "memory_percent": (mem_pct * 100.0).round() / 100.0,
                            "net_rx": net.0, "net_tx": net.1, "block_read": block.0, "block_write": block.1,
                            "pids": pids,
                        })
                    )?;
                } else {
                    writeln!(
                        out,
                        "{:<14}{:<20}{:>7.2}%   {:<22}{:>6.2}%   {:<20}{:<20}{pids}",
                        r.short_id(),
                        r.name,
                        cpu,
                        format!("{} / {}", binary_size(mem), binary_size(limit)),
                        mem_pct,
                        format!("{} / {}", human_size(net.0), human_size(net.1)),
                        format!("{} / {}", human_size(block.0), human_size(block.1)),
                    )?;
                }
            }
            out.flush()?;
            if a.no_stream {
                return Ok(());
            }
        }
        prev = rows
            .into_iter()
            .filter_map(|(r, s)| s.map(|s| (r.id.clone(), s)))
            .collect();
        first = false;
        std::thread::sleep(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_dockers() {
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(1536), "1.50KiB");
        assert_eq!(binary_size(64 << 20), "64.00MiB");
    }
}
