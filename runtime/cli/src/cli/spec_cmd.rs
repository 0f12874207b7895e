//! `wrun spec`: write a default config.json for a bundle, like `runc spec`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// The bundle directory to write config.json into.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A config for running without root: a user namespace mapping you to root inside, no
    /// network namespace, the host's /sys bound read-only, no cgroup limits.
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(a: &SpecArgs) -> anyhow::Result<()> {
    let path = a.bundle.join("config.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| {
            format!(
                "{}: cannot write a new config.json (remove the existing one first)",
                path.display()
            )
        })?;
    let config = if a.rootless {
        // SAFETY: geteuid and getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        wrun::spec::rootless_config(uid, gid)
    } else {
        wrun::spec::default_config()
    };
    let text = serde_json::to_string_pretty(&config)?;
    writeln!(f, "{text}").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
