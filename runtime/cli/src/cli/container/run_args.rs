//! `container run`'s flags, docker's names, and their translation into the front end's
//! RunOptions.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use wrun_front::container::spec::RunOptions;
use wrun_front::dockerflags::ResourceFlags;

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
    pub(super) fn flags(&self) -> ResourceFlags {
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
    #[command(flatten)]
    pub trust: super::super::trust::TrustArgs,
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
    /// The health check, run by the shell in the container (detached containers).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between checks (default 30s).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Time a check may take (default 30s).
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make it unhealthy (default 3).
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Time after the start when failures do not count (default 0s).
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// A host device for the container: HOST[:CONTAINER][:PERMISSIONS] (rwm).
    #[arg(long)]
    pub device: Vec<String>,
    /// Run a small reaper (tini or catatonit) as PID 1 with the command as its child.
    #[arg(long)]
    pub init: bool,
    /// No health check, not even the image's.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// On turning unhealthy: none (default), kill, restart or stop.
    #[arg(long)]
    pub health_on_failure: Option<String>,
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

impl RunArgs {
    pub(super) fn options(&self) -> RunOptions {
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
            init: self.init,
            devices: self.device.clone(),
            health: wrun_front::container::health::HealthFlags {
                cmd: self.health_cmd.clone(),
                interval: self.health_interval.clone(),
                timeout: self.health_timeout.clone(),
                start_period: self.health_start_period.clone(),
                retries: self.health_retries,
                none: self.no_healthcheck,
                on_failure: self.health_on_failure.clone(),
            },
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

/// docker's rule for `container run`: everything after IMAGE is the command, flags included
/// (`--entrypoint sh IMAGE -c CMD`). clap would take a `-c` there for one of run's own flags
/// (`--cpu-shares`), so a `--` is put after IMAGE before clap reads the line.
pub fn command_after_image(args: &mut Vec<std::ffi::OsString>) {
    // Building clap's command costs a millisecond or two: only for a line that may be one.
    if !(args.iter().any(|a| a == "container") && args.iter().any(|a| a == "run")) {
        return;
    }
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    cmd.build();
    let takes = |c: &clap::Command, long: Option<&str>, short: Option<char>| {
        c.get_arguments()
            .find(|a| long.is_some_and(|l| a.get_long() == Some(l)) || short.is_some_and(|s| a.get_short() == Some(s)))
            .map(|a| a.get_action().takes_values())
    };
    let s = |a: &std::ffi::OsString| a.to_str().unwrap_or("").to_string();
    // The verbs' positions: past the global flags and their values.
    let mut i = 0;
    let mut level = &cmd;
    for verb in ["container", "run"] {
        while i < args.len() && s(&args[i]).starts_with('-') {
            let a = s(&args[i]);
            let long = a.strip_prefix("--").filter(|l| !l.contains('='));
            i += 1 + usize::from(long.is_some_and(|l| takes(level, Some(l), None) == Some(true)));
        }
        if i >= args.len() || s(&args[i]) != verb {
            return;
        }
        let Some(next) = level.find_subcommand(verb) else {
            return;
        };
        level = next;
        i += 1;
    }
    // run's own flags, then IMAGE.
    while i < args.len() {
        let a = s(&args[i]);
        if a == "--" || !a.starts_with('-') || a == "-" {
            if a != "--" && i + 1 < args.len() && s(&args[i + 1]) != "--" {
                args.insert(i + 1, "--".into());
            }
            return;
        }
        i += 1;
        if let Some(l) = a.strip_prefix("--") {
            if !l.contains('=') && takes(level, Some(l), None) == Some(true) {
                i += 1;
            }
        } else {
            // -dit, -e K=V, -eK=V: a value-taking short flag takes the rest or the next token.
            for (k, c) in a.char_indices().skip(1) {
                if takes(level, None, Some(c)) == Some(true) {
                    if k + c.len_utf8() == a.len() {
                        i += 1;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(line: &str) -> String {
        let mut v: Vec<std::ffi::OsString> = line.split(' ').map(Into::into).collect();
        command_after_image(&mut v);
        v.iter().map(|a| a.to_str().unwrap()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_command_after_the_image_keeps_its_flags() {
        assert_eq!(
            after("container --data-root /d run --rm -e A=1 --entrypoint sh -dit img -c true"),
            "container --data-root /d run --rm -e A=1 --entrypoint sh -dit img -- -c true"
        );
        assert_eq!(after("--root /r container run img"), "--root /r container run img");
        assert_eq!(after("container run img -- -c"), "container run img -- -c");
        assert_eq!(
            after("container run --name=x -eA=1 img ls -l"),
            "container run --name=x -eA=1 img -- ls -l"
        );
        assert_eq!(after("container ls -a"), "container ls -a");
        assert_eq!(after("run --bundle b id"), "run --bundle b id");
    }
}
