//! `wrun exec`: runc's flags over the container's own process settings, or a whole process
//! from `--process FILE`.

use std::path::PathBuf;

use clap::Args;
use oci_spec::runtime::Process;
use wrun::container::{self, ExecOptions};

use super::Cli;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The container to run the process in.
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A JSON file with the whole process (OCI `process` object).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Give the process a terminal (a new pty; with --console-socket its master goes there).
    #[arg(short, long)]
    pub tty: bool,
    /// An AF_UNIX socket that receives the pty master (SCM_RIGHTS), as runc's.
    #[arg(long, value_name = "SOCKET")]
    pub console_socket: Option<PathBuf>,
    /// KEY=VALUE, added to (or replacing in) the container's environment.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// The working directory of the process, inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    /// An additional group id of the process (repeatable).
    #[arg(short = 'g', long, value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (e.g. CAP_NET_ADMIN) to the bounding, effective and permitted sets.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process (=false: clear what the container's config sets).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub no_new_privs: Option<bool>,
    /// Return once the process runs, without waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's host pid to this file.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Pass N more fds (3 to 3+N-1) to the process.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    /// The AppArmor profile of the process (refused where the host has no AppArmor).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// The SELinux label of the process (refused where the host has no SELinux).
    #[arg(long)]
    pub process_label: Option<String>,
    /// Exec into a paused container too: the process runs (and exec returns) once the
    /// container is resumed.
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container: PATH, or CONTROLLER:PATH
    /// for one v1 controller's hierarchy (repeatable).
    #[arg(long, value_name = "[CONTROLLER:]PATH")]
    pub cgroup: Vec<String>,
    /// An AF_UNIX socket that receives a pidfd of the process (SCM_RIGHTS) once it runs.
    #[arg(long, value_name = "SOCKET")]
    pub pidfd_socket: Option<PathBuf>,
}

fn from_flags(base: Process, a: &ExecArgs) -> anyhow::Result<Process> {
    let mut v = serde_json::to_value(base)?;
    if a.command.is_empty() {
        anyhow::bail!("exec: no command given (pass it after the container id, or use --process)");
    }
    v["args"] = serde_json::json!(a.command);
    v["terminal"] = a.tty.into();
    let mut env: Vec<String> = serde_json::from_value(v["env"].clone()).unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    v["env"] = serde_json::json!(env);
    if let Some(c) = &a.cwd {
        v["cwd"] = serde_json::json!(c);
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--user {u:?}: want UID[:GID] as numbers"))
        };
        v["user"]["uid"] = num(uid)?.into();
        v["user"]["gid"] = num(gid)?.into();
    }
    if !a.additional_gids.is_empty() {
        v["user"]["additionalGids"] = serde_json::json!(a.additional_gids);
    }
    if let Some(p) = &a.apparmor {
        v["apparmorProfile"] = p.as_str().into();
    }
    if let Some(l) = &a.process_label {
        v["selinuxLabel"] = l.as_str().into();
    }
    for cap in &a.cap {
        let name = if cap.starts_with("CAP_") {
            cap.clone()
        } else {
            format!("CAP_{cap}")
        };
        if !wrun::linux::capabilities::known(&name) {
            anyhow::bail!("exec --cap {cap}: no such capability");
        }
        // As runc: a process that already inherits capabilities gets the new one as ambient too.
        let inherits = v["capabilities"]["inheritable"]
            .as_array()
            .is_some_and(|l| !l.is_empty());
        let sets: &[&str] = if inherits {
            &["bounding", "effective", "permitted", "ambient"]
        } else {
            &["bounding", "effective", "permitted"]
        };
        for set in sets.iter().copied() {
            let list = v["capabilities"][set].as_array_mut();
            match list {
                Some(l) if !l.iter().any(|x| x == name.as_str()) => l.push(name.clone().into()),
                Some(_) => {}
                None => v["capabilities"][set] = serde_json::json!([name]),
            }
        }
    }
    if let Some(n) = a.no_new_privs {
        v["noNewPrivileges"] = n.into();
    }
    serde_json::from_value(v).map_err(|e| anyhow::anyhow!("exec: {e}"))
}

pub fn exec(cli: &Cli, a: &ExecArgs) -> anyhow::Result<i32> {
    let process = match &a.process {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--process {}: {e}", p.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("--process {}: malformed JSON: {e}", p.display()))?
        }
        None => {
            let c = container::load(&cli.root, &a.id)?;
            let bundle = c
                .rec
                .as_ref()
                .map(|r| r.bundle.clone())
                .ok_or_else(|| anyhow::anyhow!("container {} is still being created", a.id))?;
            let spec = wrun::spec::Bundle::load(&bundle)?.spec;
            from_flags(spec.process().clone().unwrap_or_default(), a)?
        }
    };
    let opts = ExecOptions {
        root: cli.root.clone(),
        id: a.id.clone(),
        process,
        console_socket: a.console_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        cgroup: a.cgroup.clone(),
        pidfd_socket: a.pidfd_socket.clone(),
    };
    Ok(container::exec(&opts)?)
}
