//! `wrun container ...`: docker's container verbs (run, ls/ps, rm, inspect) over the front
//! end (crate wrun-front), with docker's flag names. The runtime's own verbs (`wrun run`,
//! `wrun ps`, ...) stay runc's.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

mod list;
mod manage;

mod net;
pub(super) mod run_args;
mod stats;

pub use run_args::{PullPolicy, RunArgs};

use list::ls;
pub(crate) use manage::stop;
use manage::{each, logs, rename, start, top, wait_stopped};
use net::{network_settings, port};
use wrun_front::container::run as life;
use wrun_front::container::Containers;
use wrun_image::registry::{self, Progress, RegistryOptions};
use wrun_image::store::Store;
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
    /// List a container's processes (`ps -ef`, or the ps options given).
    Top(TopArgs),
    /// Give a container another name.
    Rename(RenameArgs),
    /// Live resource use: CPU %, memory, network and block I/O, pids.
    Stats(stats::StatsArgs),
    /// Remove every stopped container.
    Prune(PruneArgs),
    /// Change containers' resource limits (at once when they run) or restart policy.
    Update(Box<UpdateArgs>),
    /// Copy files between a container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST.
    Cp(CpArgs),
    /// A step of a detached run, for the container's monitor (not for users).
    #[command(hide = true, subcommand)]
    Step(Step),
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

/// The steps of a run that the monitor (`wrun-monitor`) has wrun do: each a short process.
#[derive(Subcommand, Debug)]
pub enum Step {
    /// Make what a run needs and start the container; the result line goes to `--result-fd`.
    Begin {
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        result_fd: i32,
        id: String,
    },
    /// Run one health check of a run that started `--since-ms` ago.
    Health {
        #[arg(long)]
        since_ms: u64,
        id: String,
    },
    /// Record an event (an OOM kill).
    Event { id: String, action: String },
    /// Take a run that ended down and apply the restart policy; prints "again" or "done".
    End {
        #[arg(long, allow_hyphen_values = true)]
        code: i32,
        #[arg(long)]
        health_restart: bool,
        id: String,
    },
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
pub struct CpArgs {
    /// Keep the files' owners (uid/gid).
    #[arg(short, long)]
    pub archive: bool,
    #[arg(value_name = "SRC")]
    pub src: String,
    #[arg(value_name = "DEST")]
    pub dst: String,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// no, on-failure[:N], always, unless-stopped.
    #[arg(long)]
    pub restart: Option<String>,
    #[command(flatten)]
    pub resources: run_args::ResourceArgs,
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask (accepted: wrun never asks).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub name: String,
    /// Options for ps (default -ef).
    #[arg(value_name = "PS_OPTIONS", trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub name: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

pub fn run(a: &ContainerArgs) -> anyhow::Result<i32> {
    let root = super::system::data_root(&a.data_root)?;
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
                    eprintln!("wrun: error: {err}");
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
        ContainerCommand::Step(s) => step(&root, s),
        ContainerCommand::Port(p) => port(&Containers::open(&root)?, p),
        ContainerCommand::Top(t) => top(&Containers::open(&root)?, t).map(|()| 0),
        ContainerCommand::Rename(r) => rename(&Containers::open(&root)?, r).map(|()| 0),
        ContainerCommand::Stats(a) => stats::stats(&Containers::open(&root)?, a).map(|()| 0),
        ContainerCommand::Update(u) => {
            let cs = Containers::open(&root)?;
            if let Some(k) = &u.resources.kernel_memory {
                eprintln!("wrun: warning: --kernel-memory {k}: ignored, the kernel refuses kernel memory limits");
            }
            let flags = u.resources.flags();
            each(&u.names, |n| {
                wrun_front::container::update::update(&cs, n, &flags, u.restart.as_deref())
                    .map(|_| ())
                    .map_err(Into::into)
            })
        }
        ContainerCommand::Cp(c) => {
            use wrun_front::container::cp::{copy, Side};
            let (st, cs) = (Store::open(&root)?, Containers::open(&root)?);
            let done = copy(&st, &cs, &Side::parse(&c.src), &Side::parse(&c.dst), c.archive)?;
            if done.skipped > 0 {
                eprintln!(
                    "wrun: warning: {} device nodes, FIFOs or sockets were not copied",
                    done.skipped
                );
            }
            eprintln!(
                "Successfully copied {} ({} files) to {}",
                super::image::human_size(done.bytes),
                done.files,
                c.dst
            );
            Ok(0)
        }
        ContainerCommand::Prune(_) => {
            let (ids, bytes) = super::system::prune_containers(&Store::open(&root)?, &Containers::open(&root)?)?;
            if !ids.is_empty() {
                println!("Deleted Containers:");
                for id in &ids {
                    println!("{id}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", super::image::human_size(bytes));
            Ok(0)
        }
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

fn run_container(root: &std::path::Path, a: &RunArgs) -> anyhow::Result<i32> {
    if a.restart.as_deref().is_some_and(|r| r != "no") && !a.detach {
        anyhow::bail!("--restart: a restart policy needs a detached container (-d) and its monitor");
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
    let platform = a.platform.as_deref().map(super::image::parse_platform).transpose()?;
    let st = Store::open(root)?;
    let cs = Containers::open(root)?;
    // A stored image of another platform than the one asked counts as missing (docker's rule).
    let local = st.resolve(&a.image).and_then(|img| match &platform {
        Some(p)
            if img.config["os"].as_str() != Some(p.os.as_str())
                || img.config["architecture"].as_str() != Some(p.architecture.as_str()) =>
        {
            Err(wrun_image::Error::NotFound(format!(
                "{} for {}/{}",
                a.image, p.os, p.architecture
            )))
        }
        _ => Ok(img),
    });
    let img = match (a.pull, local) {
        (PullPolicy::Always, _) | (PullPolicy::Missing, Err(wrun_image::Error::NotFound(_))) => {
            let r = Reference::parse(&a.image)?;
            // The pull's progress goes to stderr's place: stdout is the container's.
            let opts = a.trust.options(RegistryOptions::default());
            registry::pull(&st, &r, platform.as_ref(), &opts, Progress::Quiet)?
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
                eprintln!("wrun: error: {msg}");
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
            eprintln!("wrun: error: {e}");
            Ok(code)
        }
    }
}

/// A step of a detached run (see `wrun_front::container::monitor`).
fn step(root: &std::path::Path, s: &Step) -> anyhow::Result<i32> {
    use wrun_front::container::monitor;
    match s {
        Step::Begin {
            console_socket,
            result_fd,
            id,
        } => {
            let line = monitor::begin(root, id, console_socket.clone());
            monitor::answer(*result_fd, &line);
            Ok(0)
        }
        Step::Health { since_ms, id } => Ok(monitor::health(root, id, std::time::Duration::from_millis(*since_ms))?),
        Step::Event { id, action } => monitor::event(root, id, action).map(|()| 0).map_err(Into::into),
        Step::End {
            code,
            health_restart,
            id,
        } => {
            println!("{}", monitor::end(root, id, *code, *health_restart)?);
            Ok(0)
        }
    }
}
