//! create, start, run, state, kill, delete and list: flags as runc spells them.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wrun::container::{self, CreateOptions, StartMode};

use super::Cli;

#[derive(Args, Debug)]
pub struct IdArg {
    pub id: String,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub id: String,
    /// The bundle directory (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// A unix socket that receives the pty master when process.terminal is true.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra fds (from 3 on) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Use chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not give the container its own session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container runs instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    pub id: String,
    /// Signal name or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process in the container.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub id: String,
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Print only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

fn options(cli: &Cli, a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        root: cli.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
    }
}

pub fn create(cli: &Cli, a: &CreateArgs) -> anyhow::Result<()> {
    container::create(&options(cli, a), StartMode::Fifo)?;
    Ok(())
}

pub fn start(cli: &Cli, a: &IdArg) -> anyhow::Result<()> {
    Ok(container::start(&cli.root, &a.id)?)
}

pub fn run(cli: &Cli, a: &RunArgs) -> anyhow::Result<i32> {
    Ok(container::run(&options(cli, &a.create), a.detach)?)
}

pub fn state(cli: &Cli, a: &IdArg) -> anyhow::Result<()> {
    let c = container::load(&cli.root, &a.id)?;
    println!("{}", serde_json::to_string_pretty(&c.state_json())?);
    Ok(())
}

pub fn kill(cli: &Cli, a: &KillArgs) -> anyhow::Result<()> {
    let sig = wrun_sys::signal::parse(&a.signal)?;
    Ok(container::kill(&cli.root, &a.id, sig, a.all)?)
}

pub fn delete(cli: &Cli, a: &DeleteArgs) -> anyhow::Result<()> {
    Ok(container::delete(&cli.root, &a.id, a.force)?)
}

pub fn list(cli: &Cli, a: &ListArgs) -> anyhow::Result<()> {
    let all = container::list(&cli.root)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for c in &all {
            writeln!(out, "{}", c.dir.id)?;
        }
        return Ok(());
    }
    match a.format {
        ListFormat::Json => {
            let v: Vec<_> = all.iter().filter_map(|c| c.oci_state()).collect();
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        }
        ListFormat::Table => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .filter_map(|c| c.oci_state())
                .map(|s| {
                    [
                        s.id.into(),
                        s.pid.to_string(),
                        s.status.into(),
                        s.bundle.display().to_string(),
                        s.created.into(),
                        s.owner.into(),
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut w = [0usize; 6];
            for r in std::iter::once(&head).chain(&rows) {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.len());
                }
            }
            for r in std::iter::once(&head).chain(&rows) {
                let cells: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<width$}", width = w[i]))
                    .collect();
                writeln!(out, "{}", cells.join("   ").trim_end())?;
            }
        }
    }
    Ok(())
}
