//! The runc-compatible command line: global flags and one subcommand per lifecycle verb.

mod build;
mod container;
mod docs;
mod exec;
mod features;
mod image;
mod lifecycle;
mod network;
mod provenance;
mod resources;
mod spec_cmd;
mod system;
mod trust;
mod unshare;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use wrun::logging::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "wrun",
    version,
    about = "An OCI runtime for native Linux and WebAssembly containers"
)]
pub struct Cli {
    /// Directory for container state (root: /run/wrun; others: $XDG_RUNTIME_DIR/wrun, else
    /// /tmp/wrun-UID).
    #[arg(long, global = true, default_value_os_t = wrun::state::default_root())]
    pub root: PathBuf,
    /// Write log lines to this file (containerd reads it).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (refused: this runtime manages cgroupfs directly).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a default config.json into the bundle.
    Spec(spec_cmd::SpecArgs),
    /// Create a container, set up and waiting to be started.
    Create(lifecycle::CreateArgs),
    /// Start a created container.
    Start(lifecycle::IdArg),
    /// Create, start, wait for and delete a container.
    Run(lifecycle::RunArgs),
    /// Print a container's state as JSON.
    State(lifecycle::IdArg),
    /// Send a signal to a container's init (or, with --all, every process).
    Kill(lifecycle::KillArgs),
    /// Delete a container.
    Delete(lifecycle::DeleteArgs),
    /// List containers.
    #[command(alias = "ls")]
    List(lifecycle::ListArgs),
    /// Print the features this runtime supports, as OCI features JSON.
    Features,
    /// Run another process in a live container.
    Exec(exec::ExecArgs),
    /// Change a live container's resource limits.
    Update(resources::UpdateArgs),
    /// Freeze every process of a container.
    Pause(lifecycle::IdArg),
    /// Thaw a paused container.
    Resume(lifecycle::IdArg),
    /// List a container's processes.
    Ps(resources::PsArgs),
    /// Stream OOM events and statistics (or print statistics once with --stats).
    Events(resources::EventsArgs),
    /// Run and manage containers from images, as docker does: run, ls, rm, inspect.
    Container(container::ContainerArgs),
    /// Manage images: pull, push, import, save, ls, inspect, rm, tag, prune, history, df.
    Image(image::ImageArgs),
    /// Build an image from a Dockerfile.
    Build(Box<build::BuildArgs>),
    /// Manage the bridge networks of containers: create, ls, inspect, rm, prune.
    Network(network::NetworkArgs),
    /// Housekeeping of the data root: prune, df, events.
    System(system::SystemArgs),
    /// Store a registry's credentials (checked against the registry first).
    Login(image::LoginArgs),
    /// Remove a registry's credentials.
    Logout(image::LogoutArgs),
    /// Run a command in your rootless session (uid 0 in your user namespace), as podman unshare.
    Unshare(unshare::UnshareArgs),
    /// Print the shell completion script for SHELL.
    Completion(docs::CompletionArgs),
    /// Write the man pages into DIR (what `make install` installs).
    #[command(hide = true)]
    Man(docs::ManArgs),
}

/// `--version` (or `-v`, `-V`) before any subcommand, after global options.
fn asks_version(args: &[std::ffi::OsString]) -> bool {
    let mut i = 0;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        match a {
            "--version" | "-v" | "-V" => return true,
            "--root" | "--log" | "--log-format" => i += 2,
            _ if a.starts_with('-') => i += 1,
            _ => return false,
        }
    }
    false
}

/// `wrun --version`, as `runc --version` prints it: the version, the commit, the spec versions,
/// and what the binary carries (wasmtime, libseccomp).
pub fn long_version() -> String {
    let wasm = if cfg!(feature = "wasm") {
        format!("wasmtime {} (wasm workloads built in)", env!("WRUN_WASMTIME_VERSION"))
    } else {
        "none (built without the wasm feature: native workloads only)".to_string()
    };
    format!(
        "wrun version {}\ncommit: {}\nspec: {} to {}\nwasm: {wasm}\nlibseccomp: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("WRUN_GIT_COMMIT"),
        wrun::spec::OCI_VERSION_MIN,
        wrun::spec::OCI_VERSION_MAX,
        wrun::linux::seccomp::library_version(),
    )
}

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    // The verbs that make processes a container can see run from a binary the container
    // cannot write (see exeseal). Decided from argv before anything else, because the
    // re-exec repeats all the work done before it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if asks_version(&args) {
        print!("{}", long_version());
        return 0;
    }
    if wrun::linux::exeseal::needs_sealing(&args) {
        wrun::linux::exeseal::ensure();
    }
    let mut line = args.clone();
    container::run_args::command_after_image(&mut line);
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let cli = match Cli::try_parse_from(std::iter::once(argv0).chain(line)) {
        Ok(c) => c,
        Err(e) => return parse_error(e, &args),
    };
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!(
            "wrun: --log {}: {e}",
            cli.log.as_deref().unwrap_or(std::path::Path::new("")).display()
        );
        return 1;
    }
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = one_line(&e);
            // The kind of the library's error, for machines (the shim); "other" for the
            // command line's own refusals. A syscall's refusal also names its errno ("EPERM").
            let lib = e.downcast_ref::<wrun::Error>();
            let kind = lib.map_or_else(|| image_error_kind(&e), |e| e.kind().as_str());
            match lib.and_then(wrun::Error::errno) {
                Some(errno) => tracing::error!(kind, errno = ?errno, "{msg}"),
                None => tracing::error!(kind, "{msg}"),
            }
            eprintln!("wrun: error: {msg}");
            // docker's code for a `run` that failed before the container's process ran.
            if matches!(&cli.command, Command::Container(c) if matches!(c.command, container::ContainerCommand::Run(_)))
            {
                125
            } else {
                1
            }
        }
    }
}

/// A command line clap refuses. The runtime's verbs keep clap's report (and exit 2), as
/// runc's users and tests know it; `wrun container ...` says it in one line and exits 125,
/// docker's code for a bad `docker run`.
fn parse_error(e: clap::Error, args: &[std::ffi::OsString]) -> i32 {
    use clap::error::ErrorKind;
    let front = args.iter().any(|a| a == "container");
    if !front
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        e.exit();
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
    eprintln!("wrun: error: {first}");
    125
}

/// The kind of an image store error, in the words of the library's kinds.
fn image_error_kind(e: &anyhow::Error) -> &'static str {
    if let Some(f) = e.downcast_ref::<wrun_front::container::Error>() {
        use wrun_front::container::Error as F;
        return match f {
            F::NotFound(_) | F::NoSuchNetwork(_) => "not_found",
            F::Conflict(_) => "conflict",
            F::Invalid(_) => "invalid_config",
            F::Image(_) => "image",
            F::Runtime(r) => r.kind().as_str(),
            F::Io { .. } => "os",
        };
    }
    match e.downcast_ref::<wrun_image::Error>() {
        Some(wrun_image::Error::NotFound(_) | wrun_image::Error::NotInRegistry(_)) => "not_found",
        Some(wrun_image::Error::Reference(..)) => "invalid_config",
        Some(wrun_image::Error::Kernel(_)) => "os",
        Some(_) => "image",
        None => "other",
    }
}

/// The error and its causes on one line; a cause the message already quotes is not repeated
/// (the library's errors carry their cause in their own text).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg = format!("{msg}: {c}");
        }
    }
    msg.replace('\n', " ")
}

/// The front end (image store, containers from images, builds, networks) run by a user
/// without root works as podman's does: inside the user's rootless session (`wrun unshare`),
/// as uid 0 of the user namespace that maps the user and its subordinate ids, with its mount
/// namespace, so that layers unpack with their owners shifted into the user's range and the
/// mounts one command makes are there for the next. The store is the user's
/// (`$XDG_DATA_HOME/wrun`). Entered before anything else runs: joining a user namespace
/// needs a single-threaded process.
fn enter_session_for(c: &Command) -> anyhow::Result<()> {
    if !matches!(
        c,
        Command::Container(_) | Command::Image(_) | Command::Build(_) | Command::Network(_) | Command::System(_)
    ) {
        return Ok(());
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let s = wrun_sys::userns::enter(&wrun::state::default_root())?;
    if let Some(w) = s.warning {
        wrun::logging::warn_user(&w);
    }
    Ok(())
}

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    if cli.systemd_cgroup {
        anyhow::bail!("--systemd-cgroup: systemd cgroup management is not supported (no systemd on this host); use the default cgroupfs driver");
    }
    enter_session_for(&cli.command)?;
    match &cli.command {
        Command::Spec(a) => spec_cmd::run(a).map(|()| 0),
        Command::Create(a) => lifecycle::create(cli, a).map(|()| 0),
        Command::Start(a) => lifecycle::start(cli, a).map(|()| 0),
        Command::Run(a) => lifecycle::run(cli, a),
        Command::State(a) => lifecycle::state(cli, a).map(|()| 0),
        Command::Kill(a) => lifecycle::kill(cli, a).map(|()| 0),
        Command::Delete(a) => lifecycle::delete(cli, a).map(|()| 0),
        Command::List(a) => lifecycle::list(cli, a).map(|()| 0),
        Command::Features => features::run().map(|()| 0),
        Command::Exec(a) => exec::exec(cli, a),
        Command::Update(a) => resources::update(cli, a).map(|()| 0),
        Command::Pause(a) => resources::pause(cli, &a.id, true).map(|()| 0),
        Command::Resume(a) => resources::pause(cli, &a.id, false).map(|()| 0),
        Command::Ps(a) => resources::ps(cli, a).map(|()| 0),
        Command::Events(a) => resources::events(cli, a).map(|()| 0),
        Command::Container(a) => container::run(a),
        Command::Image(a) => image::run(a),
        Command::Build(a) => build::run(a),
        Command::Network(a) => network::run(a),
        Command::System(a) => system::run(a),
        Command::Login(a) => image::login(a),
        Command::Logout(a) => image::logout(a),
        Command::Unshare(a) => unshare::run(a),
        Command::Completion(a) => docs::completion(a),
        Command::Man(a) => docs::man(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_global_flag_with_a_value_is_known_to_the_argv_scan() {
        let cmd = <Cli as clap::CommandFactory>::command();
        for a in cmd
            .get_arguments()
            .filter(|a| a.is_global_set() && a.get_action().takes_values())
        {
            let long = format!("--{}", a.get_long().unwrap());
            assert!(["--root", "--log", "--log-format"].contains(&long.as_str()), "{long}");
        }
    }
}
