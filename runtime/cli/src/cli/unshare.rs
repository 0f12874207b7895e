//! `wrun unshare [COMMAND...]`: a command in the rootless session, as `podman unshare`: uid 0
//! in the user namespace that maps the user's own id and its subordinate ranges, and in the
//! mount namespace that goes with it; both made by the first command that needs them and kept
//! for the later ones (see `wrun_sys::userns`). For root, the command just runs.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use clap::Args;

#[derive(Args, Debug)]
pub struct UnshareArgs {
    /// The command and its arguments (default: $SHELL, else /bin/sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

pub fn run(a: &UnshareArgs) -> anyhow::Result<i32> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && std::env::var_os(wrun_sys::userns::INSIDE_ENV).is_none() {
        let s = wrun_sys::userns::enter(&wrun::state::default_root())?;
        if let Some(w) = s.warning {
            wrun::logging::warn_user(&w);
        }
    }
    let mut argv = a.command.clone();
    if argv.is_empty() {
        argv.push(std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()));
    }
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    anyhow::bail!("unshare: {}: {err}", argv[0].to_string_lossy())
}
