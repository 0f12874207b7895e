//! `wrun container ...`: docker's container verbs (run, ls/ps, rm, inspect) over the front
//! end (crate wrun-front), with docker's flag names. The runtime's own verbs (`wrun run`,
//! `wrun ps`, ...) stay runc's.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

mod list;
mod manage;

use list::ls;
use manage::{each, logs, start, stop, wait_stopped};
use wrun_front::container::run as life;
use wrun_front::container::spec::RunOptions;
use wrun_front::container::Containers;
use wrun_front::dockerflags::ResourceFlags;
use wrun_image::registry::{self, Progress, RegistryOptions};
use wrun_image::store::{self, Store};
use wrun_image::Reference;

#[derive(Args, Debug)]
pub struct ContainerArgs {
    /// The data root of images and containers [default: $WRUN_DATA_ROOT, else /var/lib/wrun].
    #[arg(long, global = true)]
    pub data_root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ContainerCommand,
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and run a container from an image, in the foreground.
    Run(Box<RunArgs>),
    /// List containers (running ones; -a for all).
    #[command(alias = "ps", alias = "list")]
    Ls(LsArgs),
    /// Remove containers (-f: kill a running one first).
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Print containers' records and configs as JSON.
    Inspect(InspectArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Start created or stopped containers (in the background, under a monitor).
    Start(NamesArgs),
    /// Stop running containers: the stop signal, then SIGKILL after the timeout.
    Stop(StopArgs),
    /// Stop and start containers again.
    Restart(StopArgs),
    /// Send a signal to running containers (default SIGKILL).
    Kill(KillArgs),
    /// Wait for containers to stop; print their exit codes.
    Wait(NamesArgs),
    /// Print a container's output (detached containers).
    Logs(LogsArgs),
    /// List a container's published ports (or where one container port is published).
    Port(PortArgs),
    /// The per-container monitor (started by run -d and start; not for users).
    #[command(hide = true)]
    Monitor(MonitorArgs),
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// user[:group] or uid[:gid], resolved in the container.
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Every capability for this process.
    #[arg(long)]
    pub privileged: bool,
    #[arg(value_name = "CONTAINER")]
    pub name: String,
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL [default: the container's
    /// --stop-timeout, else 10].
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub time: Option<u32>,
    /// The signal to stop with [default: the container's stop signal, else SIGTERM].
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[arg(short = 's', long, default_value = "SIGKILL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing what the container writes until it stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines ("all" for every line).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Prefix each line with its time.
    #[arg(short, long)]
    pub timestamps: bool,
    #[arg(value_name = "CONTAINER")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[arg(long)]
    pub ready_fd: Option<i32>,
    pub id: String,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
}

/// docker's resource flags.
#[derive(Args, Debug, Default)]
pub struct ResourceArgs {
    /// Number of CPUs (e.g. 1.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// Memory limit (e.g. 512m).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap (-1: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swappiness: Option<i64>,
    /// Accepted and ignored with a warning: the kernel has no kernel memory limit any more.
    #[arg(long)]
    pub kernel_memory: Option<String>,
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Maximum number of processes (0 or -1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long, value_name = "PATH:RATE")]
    pub device_read_bps: Vec<String>,
    #[arg(long, value_name = "PATH:RATE")]
    pub device_write_bps: Vec<String>,
    #[arg(long, value_name = "PATH:IOPS")]
    pub device_read_iops: Vec<String>,
    #[arg(long, value_name = "PATH:IOPS")]
    pub device_write_iops: Vec<String>,
}

impl ResourceArgs {
    fn flags(&self) -> ResourceFlags {
        ResourceFlags {
            cpus: self.cpus.clone(),
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_rt_period: self.cpu_rt_period,
            cpu_rt_runtime: self.cpu_rt_runtime,
            memory: self.memory.clone(),
            memory_reservation: self.memory_reservation.clone(),
            memory_swap: self.memory_swap.clone(),
            memory_swappiness: self.memory_swappiness,
            oom_kill_disable: self.oom_kill_disable,
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight,
            device_read_bps: self.device_read_bps.clone(),
            device_write_bps: self.device_write_bps.clone(),
            device_read_iops: self.device_read_iops.clone(),
            device_write_iops: self.device_write_iops.clone(),
        }
    }
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background under a monitor; print the container's id.
    #[arg(short, long)]
    pub detach: bool,
    /// Restart policy: no, on-failure[:N], always, unless-stopped (needs -d).
    #[arg(long)]
    pub restart: Option<String>,
    /// json-file log options: max-size=SIZE, max-file=N.
    #[arg(long)]
    pub log_opt: Vec<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to take the host's value).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// user[:group] or uid[:gid], resolved in the image.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Bind a host path or a named volume: SRC:DST[:ro] (or DST for an anonymous volume).
    #[arg(short, long = "volume", value_name = "SRC:DST[:OPTS]")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs: DST[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it).
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Give the container a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Keep stdin open (without it the container's stdin is /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Write the container id to this file (which must not exist).
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds between the stop signal and SIGKILL (kept for `container stop`).
    #[arg(long)]
    pub stop_timeout: Option<u32>,
    /// Pull the image: always, missing (default), never.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullPolicy,
    /// The platform to pull (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Every capability, every device, no masked paths, /sys writable.
    #[arg(long)]
    pub privileged: bool,
    /// no-new-privileges, seccomp=unconfined, apparmor=unconfined, label=disable.
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// NAME=SOFT[:HARD], e.g. nofile=1024:2048.
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// KEY=VALUE of a namespaced sysctl.
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Network: bridge (the default), a network made by `wrun network create`, none
    /// (loopback only) or host.
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Publish a container port: [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO].
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// A nameserver for /etc/resolv.conf (replaces the host's).
    #[arg(long)]
    pub dns: Vec<String>,
    #[arg(long)]
    pub dns_search: Vec<String>,
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// NAME:IP for /etc/hosts (IP may be host-gateway: the network's gateway).
    #[arg(long)]
    pub add_host: Vec<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// More groups (names resolved in the image, or gids).
    #[arg(long)]
    pub group_add: Vec<String>,
    /// User namespace: only "" or host (the default) for now.
    #[arg(long)]
    pub userns: Option<String>,
    #[arg(long)]
    pub ipc: Option<String>,
    #[arg(long)]
    pub pid: Option<String>,
    #[arg(long)]
    pub uts: Option<String>,
    /// Size of /dev/shm (default 64m).
    #[arg(long)]
    pub shm_size: Option<String>,
    #[arg(long)]
    pub storage_opt: Vec<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Every container, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only the ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// `json`: a JSON object per line.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not cut ids and commands short.
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Kill and remove a running container.
    #[arg(short, long)]
    pub force: bool,
    /// Accepted: a container's anonymous volumes always go with it.
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub name: String,
    /// PORT[/PROTO]: only where this container port is published.
    #[arg(value_name = "PRIVATE_PORT")]
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            name: self.name.clone(),
            env: self.env.clone(),
            env_file: self.env_file.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            entrypoint: self.entrypoint.clone(),
            command: self.command.clone(),
            hostname: self.hostname.clone(),
            tty: self.tty,
            interactive: self.interactive,
            read_only: self.read_only,
            volumes: self.volume.clone(),
            tmpfs: self.tmpfs.clone(),
            mounts: self.mount.clone(),
            labels: self.label.clone(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            security_opt: self.security_opt.clone(),
            ulimits: self.ulimit.clone(),
            sysctls: self.sysctl.clone(),
            network: self.network.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_option: self.dns_option.clone(),
            add_host: self.add_host.clone(),
            resources: self.resources.flags(),
            kernel_memory: self.resources.kernel_memory.clone(),
            oom_score_adj: self.oom_score_adj,
            cgroup_parent: self.cgroup_parent.clone(),
            group_add: self.group_add.clone(),
            ipc: self.ipc.clone(),
            pid: self.pid.clone(),
            uts: self.uts.clone(),
            shm_size: self.shm_size.clone(),
            stop_signal: self.stop_signal.clone(),
            storage_opt: self.storage_opt.clone(),
            rm: self.rm,
            stop_timeout: self.stop_timeout,
            restart: self.restart.clone(),
            log_opts: self.log_opt.clone(),
        }
    }
}

pub fn run(a: &ContainerArgs) -> anyhow::Result<i32> {
    let root = a.data_root.clone().unwrap_or_else(store::default_data_root);
    // The real path: mounts are found in mountinfo by the path the kernel shows, which a
    // symlink or a relative data root would not match.
    std::fs::create_dir_all(&root).map_err(|e| anyhow::anyhow!("data root {}: {e}", root.display()))?;
    let root = std::fs::canonicalize(&root).map_err(|e| anyhow::anyhow!("data root {}: {e}", root.display()))?;
    match &a.command {
        ContainerCommand::Run(r) => run_container(&root, r),
        ContainerCommand::Ls(l) => ls(&root, l).map(|()| 0),
        ContainerCommand::Rm(r) => {
            let (st, cs) = (Store::open(&root)?, Containers::open(&root)?);
            each(&r.names, |n| {
                life::remove(&st, &cs, n, r.force).map(|_| ()).map_err(Into::into)
            })
        }
        ContainerCommand::Exec(e) => {
            let cs = Containers::open(&root)?;
            if !e.interactive {
                life::stdin_from_dev_null()?;
            }
            let req = wrun_front::container::exec::ExecRequest {
                command: e.command.clone(),
                env: e.env.clone(),
                env_file: e.env_file.clone(),
                user: e.user.clone(),
                workdir: e.workdir.clone(),
                tty: e.tty,
                detach: e.detach,
                privileged: e.privileged,
            };
            match wrun_front::container::exec::exec(&cs, &e.name, &req) {
                Ok(code) => Ok(code),
                // docker's codes for a command that is not there or cannot run.
                Err(err @ wrun_front::container::Error::Runtime(_)) if life::exit_code_of(&err) != 125 => {
                    eprintln!("wrun: {err}");
                    Ok(life::exit_code_of(&err))
                }
                Err(err) => Err(err.into()),
            }
        }
        ContainerCommand::Start(n) => each(&n.names, |name| start(&root, &Containers::open(&root)?, name)),
        ContainerCommand::Stop(a) => each(&a.names, |name| {
            let cs = Containers::open(&root)?;
            stop(&cs, name, a.time, a.signal.as_deref())
        }),
        ContainerCommand::Restart(a) => each(&a.names, |name| {
            let cs = Containers::open(&root)?;
            stop(&cs, name, a.time, a.signal.as_deref())?;
            start(&root, &cs, name)
        }),
        ContainerCommand::Kill(a) => {
            let sig = wrun_sys::signal::parse(&a.signal)?;
            each(&a.names, |name| {
                let cs = Containers::open(&root)?;
                let rec = cs.find(name)?;
                if cs.runtime_status(&rec.id).is_none_or(|s| s == "stopped") {
                    anyhow::bail!("container {name} is not running");
                }
                cs.update(&rec.id, |r| r.stop_requested = true)?;
                wrun::container::kill(cs.runtime_root(), &rec.id, sig, false)?;
                Ok(())
            })
        }
        ContainerCommand::Wait(n) => {
            let cs = Containers::open(&root)?;
            for name in &n.names {
                let rec = cs.find(name)?;
                let rec = wait_stopped(&cs, &rec.id, None);
                println!("{}", rec.exit_code.unwrap_or(-1));
            }
            Ok(0)
        }
        ContainerCommand::Logs(l) => logs(&root, l).map(|()| 0),
        ContainerCommand::Monitor(m) => Ok(wrun_front::container::monitor::main(&root, &m.id, m.ready_fd)),
        ContainerCommand::Port(p) => port(&Containers::open(&root)?, p),
        ContainerCommand::Inspect(i) => {
            let cs = Containers::open(&root)?;
            let mut out = Vec::new();
            for n in &i.names {
                let rec = cs.find(n)?;
                let config: serde_json::Value = std::fs::read(cs.dir_of(&rec.id).join("config.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                let mut v = serde_json::to_value(&rec)?;
                v["config"] = config;
                v["network_settings"] = network_settings(&cs, &rec);
                out.push(v);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
    }
}

/// docker's NetworkSettings, from the container's CNI attachment while it has one.
fn network_settings(cs: &Containers, rec: &wrun_front::container::Record) -> serde_json::Value {
    let a = wrun_front::network::cni::attachment(&cs.dir_of(&rec.id));
    let (ip, prefix, gw) = a.as_ref().and_then(|a| a.address()).unwrap_or_default();
    serde_json::json!({
        "network": rec.network,
        "bridge": a.as_ref().map(|a| a.bridge.clone()).unwrap_or_default(),
        "ip_address": ip,
        "ip_prefix_len": prefix,
        "gateway": gw,
        "mac_address": a.as_ref().and_then(|a| a.mac()).unwrap_or_default(),
        "ports": a.as_ref().map(|a| a.ports.iter().map(|p| p.show()).collect::<Vec<_>>()).unwrap_or_default(),
    })
}

/// `container port NAME [PORT[/PROTO]]`, docker's lines: `80/tcp -> 127.0.0.1:8080`.
fn port(cs: &Containers, p: &PortArgs) -> anyhow::Result<i32> {
    let rec = cs.find(&p.name)?;
    let a = wrun_front::network::cni::attachment(&cs.dir_of(&rec.id));
    let ports = a.map(|a| a.ports).unwrap_or_default();
    let want = p.port.as_deref().map(|w| match w.split_once('/') {
        Some((n, proto)) => (n.to_string(), proto.to_ascii_lowercase()),
        None => (w.to_string(), "tcp".to_string()),
    });
    let mut shown = 0;
    for m in &ports {
        if let Some((n, proto)) = &want {
            if m.container_port.to_string() != *n || m.protocol != *proto {
                continue;
            }
        }
        let ip = if m.host_ip.is_empty() { "0.0.0.0" } else { &m.host_ip };
        if want.is_some() {
            println!("{ip}:{}", m.host_port);
        } else {
            println!("{}/{} -> {ip}:{}", m.container_port, m.protocol, m.host_port);
        }
        shown += 1;
    }
    if let Some((n, proto)) = want.filter(|_| shown == 0) {
        anyhow::bail!("container {}: no public port {n}/{proto} published", rec.name);
    }
    Ok(0)
}

fn run_container(root: &std::path::Path, a: &RunArgs) -> anyhow::Result<i32> {
    if a.restart.as_deref().is_some_and(|r| r != "no") && !a.detach {
        anyhow::bail!("--restart: a restart policy needs a detached container (-d) and its monitor");
    }
    if a.detach && a.tty && a.interactive {
        anyhow::bail!("-d with -it: attaching to a detached container is not available yet; drop -i");
    }
    if let Some(u) = a.userns.as_deref().filter(|u| !u.is_empty() && *u != "host") {
        anyhow::bail!("--userns {u:?}: only the host's user namespace (\"host\") for now");
    }
    if let Some(f) = &a.cidfile {
        if f.exists() {
            anyhow::bail!("--cidfile {}: the file exists; remove it first", f.display());
        }
    }
    let opts = a.options();
    // Flags are checked before the image is looked for or pulled.
    wrun_front::container::spec::check_flags(&opts)?;
    let st = Store::open(root)?;
    let cs = Containers::open(root)?;
    let img = match (a.pull, st.resolve(&a.image)) {
        (PullPolicy::Always, _) | (PullPolicy::Missing, Err(wrun_image::Error::NotFound(_))) => {
            let r = Reference::parse(&a.image)?;
            let platform = a.platform.as_deref().map(super::image::parse_platform).transpose()?;
            // The pull's progress goes to stderr's place: stdout is the container's.
            registry::pull(&st, &r, platform.as_ref(), &RegistryOptions::default(), Progress::Quiet)?
        }
        (PullPolicy::Never, Err(wrun_image::Error::NotFound(_))) => {
            anyhow::bail!("image {}: not in the store, and --pull never", a.image)
        }
        (_, r) => r?,
    };
    let rec = life::create(&st, &cs, &img, &a.image, &opts)?;
    if let Some(f) = &a.cidfile {
        if let Err(e) = std::fs::File::create_new(f).and_then(|mut fh| fh.write_all(rec.id.as_bytes())) {
            let _ = life::remove(&st, &cs, &rec.id, true);
            anyhow::bail!("--cidfile {}: {e}", f.display());
        }
    }
    if a.detach {
        return Ok(match wrun_front::container::monitor::spawn(root, &rec) {
            Ok(()) => {
                println!("{}", rec.id);
                0
            }
            Err((code, msg)) => {
                tracing::error!(kind = "start", "{msg}");
                eprintln!("wrun: {msg}");
                code
            }
        });
    }
    if !a.interactive {
        // docker's container has no stdin without -i.
        life::stdin_from_dev_null()?;
    }
    match life::run_foreground(&st, &cs, rec) {
        Ok(code) => Ok(code),
        Err(e) => {
            // The container exists; its process did not run: docker's 125/126/127.
            let code = life::exit_code_of(&e);
            tracing::error!(kind = "start", "{e}");
            eprintln!("wrun: {e}");
            Ok(code)
        }
    }
}
