//! update, pause, resume, ps and events: the commands that act on a container's cgroup.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use wrun::container;

use super::Cli;

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// A JSON file with the new resources (`-` for stdin), in the OCI `linux.resources` form.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (e.g. 128m; -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (0 or -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
}

fn size(flag: &str, v: &str) -> anyhow::Result<i64> {
    if v == "-1" {
        return Ok(-1);
    }
    wrun_front::dockerflags::parse_size(v).map_err(|e| anyhow::anyhow!("--{flag} {v:?}: {e}"))
}

/// The flags as a partial `linux.resources` JSON object; only what was given is set.
fn flags_to_json(a: &UpdateArgs) -> anyhow::Result<Value> {
    let mut memory = Map::new();
    if let Some(v) = &a.memory {
        memory.insert("limit".into(), size("memory", v)?.into());
    }
    if let Some(v) = &a.memory_reservation {
        memory.insert("reservation".into(), size("memory-reservation", v)?.into());
    }
    if let Some(v) = &a.memory_swap {
        memory.insert("swap".into(), size("memory-swap", v)?.into());
    }
    let mut cpu = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            cpu.insert(k.into(), v);
        }
    };
    put("shares", a.cpu_shares.map(Into::into));
    put("quota", a.cpu_quota.map(Into::into));
    put("period", a.cpu_period.map(Into::into));
    put("realtimePeriod", a.cpu_rt_period.map(Into::into));
    put("realtimeRuntime", a.cpu_rt_runtime.map(Into::into));
    put("cpus", a.cpuset_cpus.clone().map(Into::into));
    put("mems", a.cpuset_mems.clone().map(Into::into));
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".into(), memory.into());
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), cpu.into());
    }
    if let Some(p) = a.pids_limit {
        r.insert("pids".into(), json!({ "limit": p }));
    }
    if let Some(w) = a.blkio_weight {
        r.insert("blockIO".into(), json!({ "weight": w }));
    }
    Ok(r.into())
}

pub fn update(cli: &Cli, a: &UpdateArgs) -> anyhow::Result<()> {
    let r: LinuxResources = match &a.resources {
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--resources {}: {e}", p.display()))?
            };
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("--resources {}: malformed JSON: {e}", p.display()))?
        }
        None => serde_json::from_value(flags_to_json(a)?)?,
    };
    Ok(container::update(&cli.root, &a.id, &r)?)
}

pub fn pause(cli: &Cli, id: &str, paused: bool) -> anyhow::Result<()> {
    Ok(container::pause(&cli.root, id, paused)?)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    pub id: String,
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: PsFormat,
}

pub fn ps(cli: &Cli, a: &PsArgs) -> anyhow::Result<()> {
    let pids = container::pids(&cli.root, &a.id)?;
    match a.format {
        PsFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        PsFormat::Table => {
            println!("{:>8} {:>8}  CMD", "PID", "PPID");
            for p in pids {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let cmd: Vec<String> = cmd
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
                let ppid = wrun::state::proc_ppid(p).unwrap_or(0);
                println!("{p:>8} {ppid:>8}  {}", cmd.join(" "));
            }
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    pub id: String,
    /// Print the statistics once and exit.
    #[arg(long)]
    pub stats: bool,
    /// Seconds between statistics lines.
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 5s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    if secs <= 0.0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn events(cli: &Cli, a: &EventsArgs) -> anyhow::Result<()> {
    if a.stats {
        let s = container::stats(&cli.root, &a.id)?;
        println!("{}", container::stats_event(&a.id, &s));
        return Ok(());
    }
    Ok(container::events(
        &cli.root,
        &a.id,
        a.interval,
        &mut std::io::stdout().lock(),
    )?)
}
