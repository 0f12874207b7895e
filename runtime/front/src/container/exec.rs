//! `wrun container exec`: another process in a running container, on the container's own
//! process settings (capabilities, seccomp, rlimits, env), with docker's exec flags over them.

use std::fs;

use super::{spec, user, Containers, Error, Result};

/// What `container exec` was asked.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub env_file: Vec<std::path::PathBuf>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub detach: bool,
    pub privileged: bool,
}

/// Run `req` in container `name`; its exit status (0 with `detach`).
pub fn exec(cs: &Containers, name: &str, req: &ExecRequest) -> Result<i32> {
    let rec = cs.find(name)?;
    if cs.runtime_status(&rec.id) != Some("running") {
        return Err(Error::Conflict(format!("container {} is not running", rec.name)));
    }
    if req.command.is_empty() {
        return Err(Error::Invalid("exec: no command given".into()));
    }
    if req.tty && req.detach {
        return Err(Error::Invalid(
            "exec -t -d: a detached exec has no terminal to give".into(),
        ));
    }
    let dir = cs.dir_of(&rec.id);
    let p = dir.join("config.json");
    let config: serde_json::Value = fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Error::Invalid(format!("{}: unreadable", p.display())))?;
    let mut process = config["process"].clone();
    process["args"] = serde_json::json!(req.command);
    process["terminal"] = req.tty.into();
    // The container's env, then --env-file, then -e (a bare -e NAME takes the host's value).
    let base: Vec<String> = serde_json::from_value(process["env"].clone()).unwrap_or_default();
    let o = spec::RunOptions {
        env: req.env.clone(),
        env_file: req.env_file.clone(),
        tty: req.tty,
        ..Default::default()
    };
    let host = config["hostname"].as_str().unwrap_or("");
    process["env"] = serde_json::json!(spec::exec_environment(&base, &o, host)?);
    if let Some(u) = &req.user {
        // Resolved in the container's root filesystem, as it is now.
        let u = user::resolve(&dir.join("rootfs"), u)?;
        process["user"] = serde_json::json!({"uid": u.uid, "gid": u.gid});
        if !u.additional_gids.is_empty() {
            process["user"]["additionalGids"] = serde_json::json!(u.additional_gids);
        }
    }
    if let Some(w) = &req.workdir {
        if !w.starts_with('/') {
            return Err(Error::Invalid(format!(
                "-w {w:?}: the working directory must be absolute"
            )));
        }
        process["cwd"] = w.clone().into();
    }
    if req.privileged {
        let all = spec::all_caps();
        process["capabilities"] = serde_json::json!({"bounding": all, "effective": all, "permitted": all});
    }
    let process = serde_json::from_value(process).map_err(|e| Error::Invalid(format!("exec: {e}")))?;
    let opts = wrun::container::ExecOptions {
        root: cs.runtime_root().to_path_buf(),
        id: rec.id.clone(),
        process,
        console_socket: None,
        detach: req.detach,
        pid_file: None,
        preserve_fds: 0,
        ignore_paused: false,
        cgroup: Vec::new(),
        pidfd_socket: None,
    };
    Ok(wrun::container::exec(&opts)?)
}
