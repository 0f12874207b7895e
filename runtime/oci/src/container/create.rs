//! `create`: validate everything, then make the state dir, the cgroup and the init (one
//! clone), wait for the init to report ready, and record the state. Any failure after the
//! first side effect undoes all of them through one guard.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::hooks::{self, Kind};
use super::init::{self, Gate, InitPlan};
use crate::error::Context;
use crate::linux::sync::{self, Msg, SyncSocket};
use crate::linux::{namespaces, process::ProcessPlan, rootfs};
use crate::spec::{self, Bundle};
use crate::state::{self, Record, StateDir, Status};
use crate::{Error, Result};
use wrun_sys::{cgroups, idmap, netdev};

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// How the created container will be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// By a later `wrun start`, through the exec fifo.
    Fifo,
    /// By this process (`run`), through the setup socket.
    Socket,
}

/// A container that is set up and waiting to be started.
pub struct Created {
    pub dir: StateDir,
    pub rec: Record,
    /// The parent's end of the setup socket (used by `run` to start the init).
    pub sock: SyncSocket,
}

impl Created {
    /// `run`: let the init exec.
    pub fn start(&self) -> Result<()> {
        self.sock.send(&Msg::Start)
    }
}

/// Undoes the side effects of a failed create.
struct Undo<'a> {
    dir: Option<&'a StateDir>,
    cgroups: &'a [PathBuf],
    pid: Option<i32>,
    host_rootfs_mount: Option<PathBuf>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            namespaces::kill_and_reap(pid);
        }
        let _ = cgroups::remove(self.cgroups);
        if let Some(r) = &self.host_rootfs_mount {
            rootfs::detach_rootfs(r);
        }
        if let Some(dir) = self.dir {
            let _ = dir.remove();
        }
    }
}

pub fn create(opts: &CreateOptions, mode: StartMode) -> Result<Created> {
    // 1. Validate and plan: no side effects yet.
    spec::validate_id(&opts.id)?;
    init::check_preserve_fds(opts.preserve_fds)?;
    let bundle = Bundle::load(&opts.bundle)?;
    let spec = &bundle.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Invalid("linux: missing".into()))?;
    let ns = namespaces::plan(linux);
    let mut rootfs = rootfs::plan(spec, &bundle.dir, &bundle.rootfs)?;
    rootfs.no_pivot = opts.no_pivot;
    let process = ProcessPlan::new(spec, &bundle.rootfs, &ns)?;
    let workload = crate::workload::plan(spec, &bundle.rootfs, &process)?;
    let net_devices = plan_net_devices(linux)?;
    let (cgroup_dirs, limits_apply) =
        rootless_cgroups(cgroups::plan(linux.cgroups_path().as_deref(), &opts.id)?, linux);
    rootfs.cgroup_v2_only = cgroup_dirs.len() == 1 && cgroup_dirs[0].starts_with("/sys/fs/cgroup") && is_v2_root();
    rootfs.cgroup_dirs = cgroup_names(&cgroup_dirs);
    // An existing cgroup is joined only when it is empty; the ones made here are the only
    // ones delete (or a failed create) removes.
    let cgroup_owned = cgroups::unused_or_new(&cgroup_dirs)?;
    if let Some(h) = spec.hooks() {
        hooks::validate(h)?;
    }
    // The record is known but for the pid; the init reads it for its hooks' state.
    let mut rec = Record {
        oci_version: spec.version().clone(),
        id: opts.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::timefmt::rfc3339(SystemTime::now()),
        owner: owner(),
        annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        cgroup_dirs: cgroup_dirs.clone(),
        cgroup_owned: Some(cgroup_owned.clone()),
        host_rootfs_mount: None,
        hooks: spec.hooks().clone(),
    };
    let runtime_hooks = rec
        .hooks
        .as_ref()
        .is_some_and(|h| !Kind::Prestart.of(h).is_empty() || !Kind::CreateRuntime.of(h).is_empty());
    let seccomp = linux.seccomp().as_ref().map(crate::linux::seccomp::build).transpose()?;
    let seccomp_listener = seccomp.as_ref().and_then(|f| f.listener().cloned());
    let join_fds = namespaces::open_join_fds(&ns)?;
    if process.terminal && opts.console_socket.is_none() {
        return Err(Error::Invalid(
            "process.terminal is true: --console-socket is required".into(),
        ));
    }
    let console_socket = opts.console_socket.as_deref().map(connect_console).transpose()?;
    let idmapped_trees = rootfs
        .mounts
        .iter()
        .map(|m| {
            let recursive = m.opts.flags.contains(nix::mount::MsFlags::MS_REC);
            let src = m.source.as_deref().unwrap_or(Path::new(""));
            m.idmap
                .as_ref()
                .map(|(u, g)| idmap::idmapped_tree(src, recursive, u, g))
                .transpose()
        })
        .collect::<wrun_sys::Result<Vec<_>>>()?;

    // 2. Side effects, each undone by `undo` if a later step fails.
    let dir = StateDir::create(&opts.root, &opts.id)?;
    let mut undo = Undo {
        dir: Some(&dir),
        cgroups: &[],
        pid: None,
        host_rootfs_mount: None,
    };
    // Before any cgroup exists: what this create will make, for `delete --force` should we be
    // killed half way (updated below with the mount and the init's pid).
    dir.note_setup(&rec)?;
    let cgroup = cgroups::Cgroup::new(&cgroup_dirs);
    cgroup.create()?;
    undo.cgroups = &cgroup_owned;
    // Limits go on while the cgroup is still empty: the init is born limited.
    if let Some(r) = linux.resources().as_ref().filter(|_| limits_apply) {
        let devices = r.devices().as_deref().filter(|d| !d.is_empty());
        let rules = devices
            .map(|d| cgroups::device_rules(d, &crate::linux::devices::cgroup_nodes(&rootfs.devices)))
            .unwrap_or_default();
        cgroup.apply(r, &rules, false)?;
    }
    let gate = match mode {
        StartMode::Fifo => Gate::fifo(&dir.fifo())?,
        StartMode::Socket => Gate::Socket,
    };
    let plan = InitPlan {
        ns,
        rootfs,
        process,
        idmapped_trees,
        console_socket,
        gate,
        new_keyring: !opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        record: rec.clone(),
        runtime_hooks,
        seccomp,
        workload,
    };
    if plan.rootfs.host_mount_ns {
        rootfs::bind_rootfs_private(&bundle.rootfs)?;
        undo.host_rootfs_mount = Some(bundle.rootfs.clone());
        rec.host_rootfs_mount = undo.host_rootfs_mount.clone();
        dir.note_setup(&rec)?;
    }
    let (parent, child) = sync::pair()?;
    let pid = namespaces::spawn(&plan.ns, &join_fds, &parent, &child, |s| init::container_init(&plan, s))?;
    undo.pid = Some(pid);
    drop(child);
    drop(plan);
    // Until this is written, a killed create leaves an init that finds the setup socket
    // closed and exits by itself; from here on `delete --force` knows which process is ours.
    rec.pid = pid;
    rec.pid_start_time = state::proc_stat(pid).map(|(_, t)| t).unwrap_or(0);
    dir.note_setup(&rec)?;

    // 3. Parent-side setup of the init, then let it run up to the start gate.
    cgroups::join(&cgroup_dirs, pid)?;
    for (name, new_name) in &net_devices {
        netdev::move_to(name, pid, new_name.as_deref())?;
    }
    // Under a tiny memory limit the init can be OOM-killed as soon as it joins (seen on a
    // real cgroup v2 kernel): the Go then meets a closed socket, which is explained the same.
    parent
        .send(&Msg::Go)
        .map_err(|e| explain_setup_failure(e, linux, &cgroup_dirs))?;
    loop {
        // An init killed during setup can leave the socket reset rather than closed.
        match parent.recv().unwrap_or(None) {
            Some(Msg::Ready) => break,
            Some(Msg::RunHooks) => {
                // prestart predates the creating state: runc (and the OCI suite) give it
                // "created"; createRuntime runs while the container is still creating.
                hooks::run(Kind::Prestart, rec.hooks.as_ref(), &rec.oci_state(Status::Created))?;
                hooks::run(
                    Kind::CreateRuntime,
                    rec.hooks.as_ref(),
                    &rec.oci_state(Status::Creating),
                )?;
                parent.send(&Msg::Go)?;
            }
            Some(Msg::SeccompFd) => {
                let fd = parent.recv_seccomp_fd()?;
                let listener = seccomp_listener
                    .as_ref()
                    .ok_or_else(|| Error::init("a seccomp fd from an init whose filter has no listener"))?;
                let state = serde_json::to_value(rec.oci_state(Status::Creating)).unwrap_or_default();
                crate::linux::seccomp::send_to_listener(listener, &fd, pid, state)?;
                drop(fd);
                parent.send(&Msg::Go)?;
            }
            Some(Msg::Failed(f)) => return Err(explain_setup_failure(f.into(), linux, &cgroup_dirs)),
            Some(m) => return Err(Error::init(format!("unexpected {m:?} during setup"))),
            None => {
                let e = Error::init("the init exited during setup");
                return Err(explain_setup_failure(e, linux, &cgroup_dirs));
            }
        }
    }

    rec.pid_start_time = state::proc_stat(pid)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::init("the init exited during setup"))?;
    dir.commit_setup(&rec)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    std::mem::forget(undo);
    Ok(Created { dir, rec, sock: parent })
}

/// An init that vanished during setup because the memory limit was too small to set a
/// container up says so, instead of "the setup socket went away".
fn explain_setup_failure(e: Error, linux: &oci_spec::runtime::Linux, dirs: &[PathBuf]) -> Error {
    if cgroups::oom_kill_count(dirs) > 0 {
        let limit = linux
            .resources()
            .as_ref()
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .unwrap_or(-1);
        return Error::Invalid(format!(
            "linux.resources.memory.limit {limit}: too small: the container's init was killed by the OOM killer during setup"
        ));
    }
    e
}

fn plan_net_devices(linux: &oci_spec::runtime::Linux) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for (name, d) in linux.net_devices().clone().unwrap_or_default() {
        let new_name = d.name().clone().filter(|n| !n.is_empty());
        for n in std::iter::once(&name).chain(new_name.as_ref()) {
            if !netdev::valid_name(n) {
                return Err(Error::Invalid(format!(
                    "linux.netDevices: {n:?} is not a valid interface name"
                )));
            }
        }
        if !Path::new("/sys/class/net").join(&name).exists() {
            return Err(Error::Invalid(format!(
                "linux.netDevices: host interface {name} does not exist"
            )));
        }
        out.push((name, new_name));
    }
    out.sort();
    Ok(out)
}

/// Without root only a cgroup delegated to the caller can be made (on cgroup v2, a subtree it
/// owns). Where none is, the container stays in the caller's cgroups, unlimited, with a
/// warning, as runc does: rootless containers run on hosts that delegate nothing. Whether
/// the limits are applied is the second value.
fn rootless_cgroups(dirs: Vec<PathBuf>, linux: &oci_spec::runtime::Linux) -> (Vec<PathBuf>, bool) {
    if !wrun_sys::userns::rootless() {
        return (dirs, true);
    }
    let (kept, dropped) = cgroups::delegated(dirs);
    if dropped.is_empty() {
        return (kept, true);
    }
    let which = if kept.is_empty() {
        "in any hierarchy".to_string()
    } else {
        let names: Vec<String> = cgroup_names(&dropped).into_iter().map(|(n, _)| n).collect();
        format!("in {}", names.join(" "))
    };
    let msg = format!(
        "rootless: no cgroup is delegated to uid {} {which} (cgroup v1 needs root; on cgroup v2 \
         chown a subtree to the user): the container stays in the caller's cgroups",
        wrun_sys::userns::unprivileged_user().unwrap_or(0),
    );
    // Said to the user only when it costs them something: limits asked for and not applied.
    if asks_limits(linux.resources().as_ref()) {
        crate::logging::warn_user(&format!("{msg}, and linux.resources is not applied"));
    } else {
        tracing::debug!("{msg}");
    }
    (kept, false)
}

/// Whether `r` asks for a limit. Device rules alone do not count: without a device cgroup a
/// rootless container still cannot make device nodes (the user namespace refuses mknod) and
/// gets only those bound in, as runc ignores them rootless.
fn asks_limits(r: Option<&oci_spec::runtime::LinuxResources>) -> bool {
    let Some(r) = r else { return false };
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("devices");
        o.retain(|_, x| !x.is_null());
        return !o.is_empty();
    }
    false
}

fn is_v2_root() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Names under the container's /sys/fs/cgroup for each hierarchy dir: the controllers
/// (`cpu,cpuacct`), `systemd` for the named hierarchy, `unified` for a hybrid's cgroup2.
fn cgroup_names(dirs: &[PathBuf]) -> Vec<(String, PathBuf)> {
    dirs.iter()
        .filter_map(|d| {
            let rest = d.strip_prefix("/sys/fs/cgroup").ok()?;
            let first = rest.components().next()?.as_os_str().to_string_lossy().into_owned();
            Some((first.trim_start_matches("name=").to_string(), d.clone()))
        })
        .collect()
}

fn connect_console(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).ctx(|| format!("console socket {}", path.display()))?;
    Ok(s.into())
}

fn owner() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| crate::linux::process::passwd_field(&s, uid, 0))
        .unwrap_or_default()
}

/// Write the pid file atomically, as runc does (no trailing newline).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    crate::atomicfile::write(&path, 0o644, &[pid.to_string().as_bytes()]).ctx(|| format!("pid file {}", path.display()))
}
