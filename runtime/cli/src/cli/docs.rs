//! What an installed tool carries besides its binary: shell completions (`wrun completion
//! SHELL`) and man pages (`wrun man DIR`, which `make install` runs), both generated from the
//! same clap definitions the command line is parsed with, so they cannot drift from it.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write wrun.8 and one page per command (wrun-create.8, wrun-image.8, ...) here.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn completion(a: &CompletionArgs) -> anyhow::Result<i32> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "wrun", &mut out);
    out.flush()?;
    Ok(0)
}

pub fn man(a: &ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&a.dir).map_err(|e| anyhow::anyhow!("man {}: {e}", a.dir.display()))?;
    let cmd = super::Cli::command().version(env!("CARGO_PKG_VERSION"));
    let write = |name: &str, c: clap::Command| -> anyhow::Result<()> {
        let path = a.dir.join(format!("{name}.8"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).section("8").render(&mut buf)?;
        std::fs::write(&path, buf).map_err(|e| anyhow::anyhow!("man {}: {e}", path.display()))
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names commands with static strings; this runs once per page, then exits.
        let name: &'static str = Box::leak(format!("wrun-{}", sub.get_name()).into_boxed_str());
        write(name, sub.clone().name(name).version(env!("CARGO_PKG_VERSION")))?;
    }
    write("wrun", cmd)?;
    Ok(0)
}
