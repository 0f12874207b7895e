//! The OCI config of a front-end container: the image's config (Entrypoint, Cmd, Env,
//! WorkingDir, User, Volumes, StopSignal) overridden by docker's flags, on docker's defaults
//! (its capability set, its masked and read-only paths, /dev/shm of 64 MiB, a hostname that is
//! the short id, /etc/hostname, /etc/hosts and /etc/resolv.conf of the container's own).
//!
//! Every flag value is checked here, before anything is created: a bad one is a one-line
//! error naming the flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::user;
use super::{Error, Result};
use crate::dockerflags::{self, ResourceFlags};

mod caps;
mod devices;
mod etc;
mod mounts;
mod seccomp;

use caps::capabilities;
pub use caps::DOCKER_CAPS;
pub use devices::device;
use devices::{init_binary, INIT_PATH};
pub use etc::{add_host, hosts_file, resolv_conf};
#[cfg(test)]
use mounts::{parse_mount, parse_volume};
pub use mounts::{user_mounts, Source, UserMount};

/// What `wrun container run` was asked, flag by flag (docker's names).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    pub env: Vec<String>,
    pub env_file: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `--entrypoint` ("" clears the image's).
    pub entrypoint: Option<String>,
    /// COMMAND and ARGs after the image.
    pub command: Vec<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub read_only: bool,
    pub volumes: Vec<String>,
    pub tmpfs: Vec<String>,
    pub mounts: Vec<String>,
    pub labels: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub security_opt: Vec<String>,
    pub ulimits: Vec<String>,
    pub sysctls: Vec<String>,
    /// `none`, `host`, or a network's name (default: `bridge`).
    pub network: Option<String>,
    /// `-p/--publish`.
    pub publish: Vec<String>,
    /// `-P/--publish-all`: every port the image exposes.
    pub publish_all: bool,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_option: Vec<String>,
    /// `--add-host NAME:IP` (IP may be `host-gateway`).
    pub add_host: Vec<String>,
    /// `--health-*`, `--no-healthcheck`, `--health-on-failure`.
    pub health: super::health::HealthFlags,
    /// `--init`: a small reaper (tini or catatonit) as PID 1, the command its child.
    pub init: bool,
    /// `--device HOST[:CONTAINER][:PERMISSIONS]`.
    pub devices: Vec<String>,
    pub resources: ResourceFlags,
    pub kernel_memory: Option<String>,
    pub oom_score_adj: Option<i32>,
    pub cgroup_parent: Option<String>,
    pub group_add: Vec<String>,
    pub ipc: Option<String>,
    pub pid: Option<String>,
    pub uts: Option<String>,
    pub shm_size: Option<String>,
    pub stop_signal: Option<String>,
    pub storage_opt: Vec<String>,
    pub rm: bool,
    pub stop_timeout: Option<u32>,
    /// `--restart` (checked by `check_flags`).
    pub restart: Option<String>,
    /// `--log-opt KEY=VALUE`.
    pub log_opts: Vec<String>,
}

/// `KEY=VALUE` lines of `--env-file` (comments and blank lines skipped; a bare `KEY` takes the
/// host's value, as `-e KEY` does).
fn env_file(p: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(p).map_err(|e| Error::Invalid(format!("--env-file {}: {e}", p.display())))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

const IMAGE_ENV: &str = "the image's Env";

/// The environment of `container exec`: the container's (already resolved, so taken as the
/// image's: no host lookups), then the exec's --env-file and -e.
pub fn exec_environment(container_env: &[String], o: &RunOptions, hostname: &str) -> Result<Vec<String>> {
    environment(container_env, o, hostname)
}

/// Every capability this process can give (`exec --privileged`).
pub fn all_caps() -> Vec<&'static str> {
    caps::own_caps()
}

/// The environment: the image's, then --env-file, then -e (a later KEY replaces an earlier);
/// `KEY` alone in a flag takes the host's value or is left out; in the image it is left out
/// (an image naming `AWS_SECRET_ACCESS_KEY` must not get the host's). PATH, HOSTNAME (and
/// TERM with -t) as docker adds them.
fn environment(image_env: &[String], o: &RunOptions, hostname: &str) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |kv: &str, flag: &str| -> Result<()> {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None if flag == IMAGE_ENV => (kv.to_string(), None),
            None => (kv.to_string(), std::env::var(kv).ok()),
        };
        if k.is_empty() || k.contains('\0') {
            return Err(Error::Invalid(format!("{flag} {kv:?}: no variable name")));
        }
        env.retain(|(x, _)| *x != k);
        if let Some(v) = v {
            env.push((k, v));
        }
        Ok(())
    };
    for kv in image_env {
        set(kv, IMAGE_ENV)?;
    }
    for f in &o.env_file {
        for kv in env_file(f)? {
            set(&kv, &format!("--env-file {}:", f.display()))?;
        }
    }
    for kv in &o.env {
        set(kv, "-e")?;
    }
    let has = |env: &[(String, String)], k: &str| env.iter().any(|(x, _)| x == k);
    if !has(&env, "PATH") {
        env.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    if !has(&env, "HOSTNAME") {
        env.insert(1, ("HOSTNAME".into(), hostname.into()));
    }
    if o.tty && !has(&env, "TERM") {
        env.push(("TERM".into(), "xterm".into()));
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// argv by docker's rules: ENTRYPOINT + CMD, where COMMAND replaces CMD and --entrypoint
/// replaces ENTRYPOINT and drops the image's CMD.
pub fn argv(cfg: &Value, o: &RunOptions, wasm_default: Option<&str>) -> Result<Vec<String>> {
    let (entry, cmd) = match &o.entrypoint {
        Some(e) if e.is_empty() => (vec![], o.command.clone()),
        Some(e) => (vec![e.clone()], o.command.clone()),
        None => (
            strings(&cfg["Entrypoint"]),
            if o.command.is_empty() {
                strings(&cfg["Cmd"])
            } else {
                o.command.clone()
            },
        ),
    };
    let mut args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        if let Some(w) = wasm_default {
            args.push(w.to_string());
        }
    }
    if args.is_empty() {
        return Err(Error::Invalid(
            "no command: the image has no Entrypoint or Cmd; give one after the image".into(),
        ));
    }
    Ok(args)
}

const RLIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit NAME=SOFT[:HARD]` as an OCI rlimit.
fn ulimit(v: &str) -> Result<Value> {
    let bad = |why: &str| Error::Invalid(format!("--ulimit {v:?}: {why}"));
    let (name, vals) = v.split_once('=').ok_or_else(|| bad("not NAME=SOFT[:HARD]"))?;
    if !RLIMITS.contains(&name) {
        return Err(bad(&format!("unknown limit {name:?} ({})", RLIMITS.join(", "))));
    }
    let num = |s: &str| -> Result<u64> {
        if s == "-1" || s == "unlimited" {
            return Ok(u64::MAX);
        }
        s.parse().map_err(|_| bad(&format!("{s:?} is not a number")))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(vals)?, num(vals)?),
    };
    if soft > hard {
        return Err(bad("the soft limit is above the hard limit"));
    }
    Ok(json!({"type": format!("RLIMIT_{}", name.to_ascii_uppercase()), "soft": soft, "hard": hard}))
}

/// The files a container gets bound at /etc/hostname, /etc/hosts, /etc/resolv.conf.
pub struct EtcFiles {
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv: PathBuf,
}

/// What `build` needs besides the flags.
pub struct Inputs<'a> {
    pub id: &'a str,
    /// The image's config (`config` of the image config JSON).
    pub image_config: &'a Value,
    /// The default argv of a wasm artifact with no Cmd (`/module.wasm`).
    pub wasm_default: Option<&'a str>,
    /// Annotations to carry (the wasm variant of an image).
    pub annotations: BTreeMap<String, String>,
    /// The mounted root filesystem (for resolving users and groups).
    pub rootfs: &'a Path,
    pub etc: &'a EtcFiles,
    /// Each user mount with its host source resolved (named and anonymous volumes made).
    pub mounts: &'a [(UserMount, Option<PathBuf>)],
    /// The network namespace the front end made (None: the host's).
    pub netns: Option<&'a Path>,
}

/// The hostname: --hostname, the host's with --network host or --uts host, else the short id.
pub fn hostname(o: &RunOptions, id: &str) -> String {
    if let Some(h) = &o.hostname {
        return h.clone();
    }
    if o.network.as_deref() == Some("host") || o.uts.as_deref() == Some("host") {
        return nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| id[..12].to_string());
    }
    id[..12].to_string()
}

/// Check what `build` will check, without an image: flags that are wrong whatever the image.
pub fn check_flags(o: &RunOptions) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if let Some(n) = &o.name {
        if !super::valid_name(n) {
            return Err(Error::Invalid(format!(
                "--name {n:?}: a name is [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 characters)"
            )));
        }
    }
    if let Some(h) = &o.hostname {
        if h.is_empty() || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err(Error::Invalid(format!("--hostname {h:?}: not a valid hostname")));
        }
    }
    etc::check_flags(o)?;
    super::health::check_flags(&o.health)?;
    for d in &o.devices {
        device(d)?;
    }
    if o.health.on_failure.as_deref() == Some("restart") && o.rm {
        return Err(Error::Invalid(
            "--health-on-failure restart conflicts with --rm (a container that removes itself when it ends)".into(),
        ));
    }
    for (flag, v) in [("--ipc", &o.ipc), ("--pid", &o.pid), ("--uts", &o.uts)] {
        match v.as_deref() {
            None | Some("") | Some("private") | Some("host") => {}
            Some("shareable") if flag == "--ipc" => {}
            Some(x) => return Err(Error::Invalid(format!("{flag} {x:?}: only \"host\" or \"private\""))),
        }
    }
    for s in &o.security_opt {
        match s.as_str() {
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" | "no-new-privileges=false"
            | "no-new-privileges:false" | "seccomp=unconfined" | "seccomp:unconfined" | "apparmor=unconfined"
            | "apparmor:unconfined" | "label=disable" | "label:disable" => {}
            x if x.starts_with("seccomp=") || x.starts_with("seccomp:") => {
                // Read and checked here, before anything is made; resolved against the
                // container's capabilities when the config is built.
                seccomp::profile_file(&x[8..], &[])?;
            }
            x if x.starts_with("apparmor") || x.starts_with("label") => {
                return Err(Error::Invalid(format!(
                    "--security-opt {x:?}: this host has no AppArmor or SELinux policy to apply (only apparmor=unconfined, label=disable)"
                )))
            }
            x => return Err(Error::Invalid(format!("--security-opt {x:?}: unknown option"))),
        }
    }
    if let Some(s) = o.storage_opt.first() {
        if s.starts_with("size=") {
            return Err(Error::Invalid(format!(
                "--storage-opt {s:?}: the container's writes go to an overlay upper directory on a filesystem that cannot enforce a size (docker needs xfs with project quotas for this)"
            )));
        }
        return Err(Error::Invalid(format!("--storage-opt {s:?}: unknown option")));
    }
    if let Some(k) = &o.kernel_memory {
        warnings.push(format!(
            "--kernel-memory {k}: ignored: kernels since 5.16 (and cgroup v2) have no separate kernel memory limit"
        ));
    }
    if let Some(a) = o.oom_score_adj {
        if !(-1000..=1000).contains(&a) {
            return Err(Error::Invalid(format!(
                "--oom-score-adj {a}: must be between -1000 and 1000"
            )));
        }
    }
    if let Some(s) = &o.shm_size {
        let n = dockerflags::parse_size(s).map_err(|e| Error::Invalid(format!("--shm-size {s:?}: {e}")))?;
        if n <= 0 {
            return Err(Error::Invalid(format!("--shm-size {s:?}: must be more than 0")));
        }
    }
    for u in &o.ulimits {
        ulimit(u)?;
    }
    for s in &o.sysctls {
        if !s.contains('=') {
            return Err(Error::Invalid(format!("--sysctl {s:?}: not KEY=VALUE")));
        }
    }
    for l in &o.labels {
        if l.split('=').next().unwrap_or("").is_empty() {
            return Err(Error::Invalid(format!("--label {l:?}: no key")));
        }
    }
    if let Some(sig) = &o.stop_signal {
        wrun_sys::signal::parse(sig).map_err(|e| Error::Invalid(format!("--stop-signal {sig:?}: {e}")))?;
    }
    let restart = o.restart.as_deref().map(super::RestartPolicy::parse).transpose()?;
    if o.rm && restart.is_some_and(|r| r != super::RestartPolicy::No) {
        return Err(Error::Invalid(format!(
            "--rm and --restart {}: conflicting options (a removed container cannot be restarted)",
            o.restart.as_deref().unwrap_or("")
        )));
    }
    super::logs::LogOpts::parse(&o.log_opts)?;
    capabilities(o)?;
    dockerflags::to_resources(&o.resources).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(warnings)
}

/// The OCI config of the container.
pub fn build(o: &RunOptions, i: &Inputs) -> Result<Value> {
    let cfg = i.image_config;
    let host = hostname(o, i.id);
    let mut args = argv(cfg, o, i.wasm_default)?;
    if o.init {
        if args.first().is_some_and(|a| a.ends_with(".wasm")) {
            return Err(Error::Invalid(
                "--init: a wasm module runs in wasmtime as the container's only process; there is nothing for an init to reap".into(),
            ));
        }
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let env = environment(&strings(&cfg["Env"]), o, &host)?;
    let user_spec = o
        .user
        .clone()
        .or_else(|| cfg["User"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut u = user::resolve(i.rootfs, &user_spec)?;
    for g in user::resolve_groups(i.rootfs, &o.group_add)? {
        if !u.additional_gids.contains(&g) {
            u.additional_gids.push(g);
        }
    }
    let cwd = o
        .workdir
        .clone()
        .or_else(|| cfg["WorkingDir"].as_str().filter(|w| !w.is_empty()).map(str::to_string))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::Invalid(format!(
            "-w {cwd:?}: the working directory must be absolute"
        )));
    }
    let caps = capabilities(o)?;
    let no_new_privs = o.security_opt.iter().any(|s| {
        matches!(
            s.as_str(),
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true"
        )
    });
    let rlimits: Vec<Value> = o.ulimits.iter().map(|u| ulimit(u)).collect::<Result<_>>()?;
    let shm = match &o.shm_size {
        Some(s) => dockerflags::parse_size(s).map_err(|e| Error::Invalid(format!("--shm-size {s:?}: {e}")))?,
        None => 64 << 20,
    };
    let mut process = json!({
        "terminal": o.tty,
        "user": {"uid": u.uid, "gid": u.gid},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privs,
    });
    if !u.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(u.additional_gids);
    }
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }
    if let Some(a) = o.oom_score_adj {
        process["oomScoreAdj"] = json!(a);
    }
    let sys_ro = if o.privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_ro]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", sys_ro]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ];
    if o.ipc.as_deref() == Some("host") {
        mounts.push(
            json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate"]}),
        );
    } else {
        mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}));
    }
    for (dst, src) in [
        ("/etc/hostname", &i.etc.hostname),
        ("/etc/hosts", &i.etc.hosts),
        ("/etc/resolv.conf", &i.etc.resolv),
    ] {
        mounts.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    if o.init {
        mounts.push(
            json!({"destination": INIT_PATH, "type": "bind", "source": init_binary()?,
            "options": ["bind", "ro", "nosuid", "nodev"]}),
        );
    }
    for (m, host_src) in i.mounts {
        match m {
            UserMount::Bind { dst, ro, .. } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *ro {
                    opts.push("ro");
                }
                let src = host_src
                    .as_ref()
                    .ok_or_else(|| Error::Invalid(format!("{dst}: a mount without a source")))?;
                mounts.push(json!({"destination": dst, "type": "bind", "source": src, "options": opts}));
            }
            UserMount::Tmpfs { dst, options } => {
                mounts.push(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": options}));
            }
        }
    }
    let mut namespaces = vec![json!({"type": "mount"})];
    if o.pid.as_deref() != Some("host") {
        namespaces.push(json!({"type": "pid"}));
    }
    if o.ipc.as_deref() != Some("host") {
        namespaces.push(json!({"type": "ipc"}));
    }
    if o.uts.as_deref() != Some("host") {
        namespaces.push(json!({"type": "uts"}));
    }
    if let Some(p) = i.netns {
        namespaces.push(json!({"type": "network", "path": p}));
    }
    namespaces.push(json!({"type": "cgroup"}));
    let mut resources =
        serde_json::to_value(dockerflags::to_resources(&o.resources).map_err(|e| Error::Invalid(e.to_string()))?)
            .map_err(|e| Error::Invalid(format!("resources: {e}")))?;
    let mut rules = if o.privileged {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        vec![json!({"allow": false, "access": "rwm"})]
    };
    let mut devices = Vec::new();
    for d in &o.devices {
        let (node, rule) = device(d)?;
        devices.push(node);
        rules.push(rule);
    }
    resources["devices"] = json!(rules);
    let cgroup_parent = o.cgroup_parent.as_deref().unwrap_or("wrun").trim_matches('/');
    let mut linux = json!({
        "resources": resources,
        "cgroupsPath": format!("{cgroup_parent}/{}", i.id),
        "namespaces": namespaces,
    });
    if !devices.is_empty() {
        linux["devices"] = json!(devices);
    }
    if !o.privileged {
        linux["maskedPaths"] = json!([
            "/proc/asound",
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap"
        ]);
        linux["readonlyPaths"] = json!(["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]);
    }
    let unconfined = o
        .security_opt
        .iter()
        .any(|s| s == "seccomp=unconfined" || s == "seccomp:unconfined");
    let custom = o
        .security_opt
        .iter()
        .filter_map(|s| s.strip_prefix("seccomp=").or_else(|| s.strip_prefix("seccomp:")))
        .rfind(|p| *p != "unconfined");
    if let Some(file) = custom {
        // A profile of the user's own applies even to a privileged container, as docker's does.
        linux["seccomp"] = seccomp::profile_file(file, &caps)?;
    } else if !o.privileged && !unconfined {
        linux["seccomp"] = seccomp::default_profile(&caps);
    }
    if !o.sysctls.is_empty() {
        let m: BTreeMap<&str, &str> = o.sysctls.iter().filter_map(|s| s.split_once('=')).collect();
        linux["sysctl"] = json!(m);
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": process,
        "root": {"path": "rootfs", "readonly": o.read_only},
        "mounts": mounts,
        "linux": linux,
    });
    if o.uts.as_deref() != Some("host") {
        spec["hostname"] = json!(host);
    }
    if !i.annotations.is_empty() {
        spec["annotations"] = json!(i.annotations);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests;
