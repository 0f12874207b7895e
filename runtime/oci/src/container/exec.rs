//! `exec`: run another process in a live container. It joins every namespace of the init and
//! its cgroup, and gets its own capabilities, rlimits, user, no_new_privs and the container's
//! seccomp filter, set up the same way as the init's. A failed exec never touches the
//! container.

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::create::write_pid_file;
use super::init;
use super::ops::{load, wait_forwarding_signals, BlockedSignals, ConsoleListener};
use crate::error::Context;
use crate::linux::sync::{self, Msg, SyncSocket};
use crate::linux::{namespaces, process::ProcessPlan, seccomp};
use crate::spec::Bundle;
use crate::state::Status;
use crate::workload::Workload;
use crate::{Error, Result};
use wrun_sys::cgroups;

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    /// The process to run (from `--process` or built from the flags over the container's own).
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
}

/// Run the process; returns its exit code (128+N after signal N), or 0 with `detach`.
pub fn exec(opts: &ExecOptions) -> Result<i32> {
    // 1. Validate everything first: a bad exec must not disturb the container.
    init::check_preserve_fds(opts.preserve_fds)?;
    let c = load(&opts.root, &opts.id)?;
    if !matches!(c.status, Status::Created | Status::Running) {
        return Err(Error::WrongStatus {
            id: opts.id.clone(),
            status: c.status.to_string(),
            why: "exec needs a created or running container",
        });
    }
    let rec = c.rec.clone().ok_or_else(|| Error::NotFound(opts.id.clone()))?;
    let bundle = Bundle::load(&rec.bundle)?;
    let mut spec = bundle.spec.clone();
    let linux = spec
        .linux()
        .clone()
        .ok_or_else(|| Error::Invalid("linux: missing".into()))?;
    let ns_plan = namespaces::plan(&linux);
    spec.set_process(Some(opts.process.clone()));
    let process = ProcessPlan::new(&spec, &bundle.rootfs, &ns_plan)?;
    if process.args.is_empty() {
        return Err(Error::Invalid("exec: no command given".into()));
    }
    let filter = linux.seccomp().as_ref().map(seccomp::build).transpose()?;
    // The init's namespaces, opened now through /proc/PID, between a pidfd checked against
    // the init's start time and a check that it is still alive: so they are the init's, not
    // those of a process that reused its pid. pid joins via our own pid_for_children.
    let init = super::ops::init_pidfd(&c)?;
    let mut join = Vec::new();
    let mut pid_ns = None;
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        let path = format!("/proc/{}/ns/{}", rec.pid, namespaces::proc_file(ns.typ()));
        let f = File::open(&path).ctx(|| format!("exec: open {path}"))?;
        match ns.typ() {
            LinuxNamespaceType::Pid => pid_ns = Some(f),
            LinuxNamespaceType::User => join.insert(0, (ns.typ(), f)),
            t => join.push((t, f)),
        }
    }
    if wrun_sys::pidfd::has_exited(&init) {
        return Err(c.wrong("its init process exited while exec was joining it"));
    }
    let console = match (process.terminal, &opts.console_socket, opts.detach) {
        (true, Some(p), _) => {
            Some(std::os::unix::net::UnixStream::connect(p).ctx(|| format!("console socket {}", p.display()))?)
        }
        (true, None, true) => return Err(Error::Invalid("exec --tty --detach needs --console-socket".into())),
        _ => None,
    };
    let listener = if process.terminal && console.is_none() {
        Some(ConsoleListener::bind()?)
    } else {
        None
    };
    let console = match &listener {
        Some(l) => Some(std::os::unix::net::UnixStream::connect(&l.path).ctx(|| "console socket".into())?),
        None => console,
    };
    let _mask = if opts.detach {
        None
    } else {
        Some(BlockedSignals::all()?)
    };

    // 2. Enter the pid namespace for our children, fork the process, and come back (a thread
    // cannot be made while our children's pid namespace differs from ours).
    let own_pid_ns = File::open("/proc/self/ns/pid").ctx(|| "exec: open /proc/self/ns/pid".into())?;
    if let Some(f) = &pid_ns {
        nix::sched::setns(f.as_fd(), CloneFlags::CLONE_NEWPID).ctx(|| "exec: join the pid namespace".into())?;
    }
    namespaces::single_threaded()?;
    let (parent, child) = sync::pair()?;
    // SAFETY: wrun is single-threaded here; the child leaves through exec or _exit.
    let pid = unsafe { wrun_sys::syscall::clone_fork(0) }.ctx(|| "exec: fork".into())?;
    if pid != 0 && pid_ns.is_some() {
        nix::sched::setns(own_pid_ns.as_fd(), CloneFlags::CLONE_NEWPID)
            .ctx(|| "exec: leave the pid namespace".into())?;
    }
    if pid == 0 {
        // SAFETY: our copy of the parent's end, closed so a dead parent reads as EOF.
        unsafe { libc::close(parent.0.as_raw_fd()) };
        let console = console.as_ref().map(|c| c.as_raw_fd());
        namespaces::child_main(
            &child,
            Box::new(|sock| exec_child(&join, sock, &process, filter.as_ref(), console, opts)),
        )
    }
    drop(child);
    drop(console);
    let started = (|| {
        cgroups::join(&rec.cgroup_dirs, pid)?;
        parent.send(&Msg::Go)?;
        parent.expect(Msg::Ready)
    })();
    if let Err(e) = started {
        namespaces::kill_and_reap(pid);
        return Err(match e {
            Error::Init { msg, errno } => Error::Init {
                msg: format!("exec in container {}: {msg}", opts.id),
                errno,
            },
            e => e,
        });
    }
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    let proxy = listener.as_ref().map(|l| l.accept_master()).transpose()?;
    let code = wait_forwarding_signals(nix::unistd::Pid::from_raw(pid), proxy.as_ref())?;
    if let Some(p) = proxy {
        p.finish();
    }
    Ok(code)
}

/// In the forked child: join the namespaces, wait for the cgroup, set the process up, exec.
fn exec_child(
    join: &[(LinuxNamespaceType, File)],
    sock: &SyncSocket,
    p: &ProcessPlan,
    filter: Option<&seccomp::Filter>,
    console: Option<std::os::fd::RawFd>,
    opts: &ExecOptions,
) -> Result<Infallible> {
    for (t, f) in join {
        nix::sched::setns(f.as_fd(), namespaces::setns_flag(*t)).ctx(|| format!("exec: join the {t} namespace"))?;
    }
    sock.expect(Msg::Go)?;
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    if let Some(fd) = console {
        crate::linux::console::setup(fd, p.console_size, false)?;
    }
    crate::linux::process::apply_scheduling(p)?;
    crate::linux::process::apply_rlimits(p)?;
    init::close_host_fds(opts.preserve_fds, &[sock.0.as_raw_fd()])?;
    crate::linux::process::enter_cwd(p)?;
    init::mark_fds_cloexec(opts.preserve_fds)?;
    if !p.no_new_privs {
        filter.map_or(Ok(()), |f| f.load())?;
    }
    crate::linux::process::switch_user_with_capabilities(p)?;
    let workload = Workload::Native {
        program: crate::linux::process::find_program(p)?,
    };
    init::mark_fds_cloexec(opts.preserve_fds)?;
    init::reset_signals();
    crate::linux::process::set_no_new_privs(p)?;
    if p.no_new_privs {
        filter.map_or(Ok(()), |f| f.load())?;
    }
    sock.send(&Msg::Ready)?;
    workload.run(p)
}
