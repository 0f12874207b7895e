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
    /// Exec into a paused container too (the process runs once it is resumed).
    pub ignore_paused: bool,
    /// `[CONTROLLER:]PATH`: run in this existing sub-cgroup of the container's cgroup (in
    /// every hierarchy, or in CONTROLLER's), as runc's `exec --cgroup`.
    pub cgroup: Vec<String>,
    /// An AF_UNIX socket that gets a pidfd of the process once it runs (runc 1.2's
    /// `--pidfd-socket`).
    pub pidfd_socket: Option<PathBuf>,
}

/// The cgroup directories an exec joins: the container's, each replaced by its sub-cgroup
/// where `--cgroup` names one. A path must be relative, stay beneath the container's cgroup
/// (no `..`) and exist.
fn exec_cgroups(dirs: &[PathBuf], specs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = dirs.to_vec();
    for spec in specs {
        let (controller, sub) = match spec.split_once(':') {
            Some((c, p)) => (Some(c), p),
            None => (None, spec.as_str()),
        };
        let rel = std::path::Path::new(sub.trim_start_matches('/'));
        if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(Error::Invalid(format!(
                "--cgroup {spec:?}: a path beneath the container's cgroup, without `..`"
            )));
        }
        let mut hit = false;
        for (i, d) in dirs.iter().enumerate() {
            // The hierarchy's controllers, from its mount's directory name ("cpu,cpuacct").
            let hierarchy = d
                .strip_prefix("/sys/fs/cgroup")
                .ok()
                .and_then(|r| r.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            let takes = match controller {
                None => true,
                Some(c) => hierarchy.split(',').any(|h| h == c) || (hierarchy == "unified" && c.is_empty()),
            };
            if !takes {
                continue;
            }
            let target = d.join(rel);
            if !target.is_dir() {
                return Err(Error::Invalid(format!(
                    "--cgroup {spec:?}: {} does not exist (exec joins an existing sub-cgroup)",
                    target.display()
                )));
            }
            out[i] = target;
            hit = true;
        }
        if !hit {
            return Err(Error::Invalid(format!(
                "--cgroup {spec:?}: the container has no cgroup of controller {:?}",
                controller.unwrap_or("")
            )));
        }
    }
    Ok(out)
}

/// Run the process; returns its exit code (128+N after signal N), or 0 with `detach`.
pub fn exec(opts: &ExecOptions) -> Result<i32> {
    // 1. Validate everything first: a bad exec must not disturb the container.
    init::check_preserve_fds(opts.preserve_fds)?;
    let c = load(&opts.root, &opts.id)?;
    if c.status == Status::Paused && !opts.ignore_paused {
        return Err(Error::WrongStatus {
            id: opts.id.clone(),
            status: c.status.to_string(),
            why: "exec into a paused container needs --ignore-paused (the process then runs when it is resumed)",
        });
    }
    if !matches!(c.status, Status::Created | Status::Running | Status::Paused) {
        return Err(Error::WrongStatus {
            id: opts.id.clone(),
            status: c.status.to_string(),
            why: "exec needs a created or running container",
        });
    }
    let rec = c.rec.clone().ok_or_else(|| Error::NotFound(opts.id.clone()))?;
    let cgroup_dirs = exec_cgroups(&rec.cgroup_dirs, &opts.cgroup)?;
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
    // Connected before anything is started, so a bad socket changes nothing.
    let pidfd_sock = opts
        .pidfd_socket
        .as_ref()
        .map(|p| std::os::unix::net::UnixStream::connect(p).ctx(|| format!("--pidfd-socket {}", p.display())))
        .transpose()?;
    let _mask = if opts.detach {
        None
    } else {
        Some(BlockedSignals::all()?)
    };

    // 2. Enter the pid namespace for our children, fork the process, and come back (a thread
    // cannot be made while our children's pid namespace differs from ours). Without root the
    // container's pid namespace belongs to its user namespace, which this process could enter
    // but never leave: an intermediate joins both and forks the process as our child.
    // The same inside a user namespace (a rootless session, where the container shares the
    // session's): its pid namespaces can be entered, not the host's re-entered.
    let user_first = matches!(join.first(), Some((LinuxNamespaceType::User, _)));
    let through_userns = (!nix::unistd::geteuid().is_root() && user_first)
        || (pid_ns.is_some() && wrun_sys::userns::in_user_namespace());
    let console_fd = console.as_ref().map(|c| c.as_raw_fd());
    let run = |sock: &SyncSocket, join: &[(LinuxNamespaceType, File)]| -> ! {
        namespaces::child_main(
            sock,
            Box::new(|sock| exec_child(join, sock, &process, filter.as_ref(), console_fd, opts)),
            false,
        )
    };
    let (parent, child) = sync::pair()?;
    let pid = if through_userns {
        namespaces::single_threaded()?;
        // SAFETY: wrun is single-threaded here; the intermediate leaves through _exit.
        let mid = unsafe { wrun_sys::syscall::clone_fork(0) }.ctx(|| "exec: fork".into())?;
        if mid == 0 {
            // SAFETY: our copy of the parent's end, closed so a dead parent reads as EOF.
            unsafe { libc::close(parent.0.as_raw_fd()) };
            namespaces::child_main(
                &child,
                Box::new(|sock| {
                    if user_first {
                        let (_, user) = &join[0];
                        nix::sched::setns(user.as_fd(), CloneFlags::CLONE_NEWUSER)
                            .ctx(|| "exec: join the user namespace".into())?;
                    }
                    if let Some(f) = &pid_ns {
                        nix::sched::setns(f.as_fd(), CloneFlags::CLONE_NEWPID)
                            .ctx(|| "exec: join the pid namespace".into())?;
                    }
                    // SAFETY: the intermediate is single-threaded; the process is made our
                    // parent's child and leaves through exec or _exit.
                    let pid = unsafe { wrun_sys::syscall::clone_fork(libc::CLONE_PARENT as libc::c_ulong) }
                        .ctx(|| "exec: fork".into())?;
                    if pid == 0 {
                        run(sock, &join[usize::from(user_first)..]);
                    }
                    sock.send(&Msg::Pid(pid))?;
                    // SAFETY: the intermediate's job is done.
                    unsafe { libc::_exit(0) }
                }),
                false,
            )
        }
        let got = match parent.recv() {
            Ok(Some(Msg::Pid(p))) => Ok(p),
            Ok(Some(Msg::Failed(f))) => Err(f.into()),
            Ok(Some(m)) => Err(Error::init(format!("unexpected {m:?} from the exec intermediate"))),
            _ => Err(Error::init("exec: the intermediate process died")),
        };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(mid), None);
        got?
    } else {
        let own_pid_ns = File::open("/proc/self/ns/pid").ctx(|| "exec: open /proc/self/ns/pid".into())?;
        if let Some(f) = &pid_ns {
            nix::sched::setns(f.as_fd(), CloneFlags::CLONE_NEWPID).ctx(|| "exec: join the pid namespace".into())?;
        }
        namespaces::single_threaded()?;
        // SAFETY: wrun is single-threaded here; the child leaves through exec or _exit.
        let pid = unsafe { wrun_sys::syscall::clone_fork(0) }.ctx(|| "exec: fork".into())?;
        if pid != 0 && pid_ns.is_some() {
            nix::sched::setns(own_pid_ns.as_fd(), CloneFlags::CLONE_NEWPID)
                .ctx(|| "exec: leave the pid namespace".into())?;
        }
        if pid == 0 {
            // SAFETY: our copy of the parent's end, closed so a dead parent reads as EOF.
            unsafe { libc::close(parent.0.as_raw_fd()) };
            run(&child, &join);
        }
        pid
    };
    drop(child);
    drop(console);
    let started = (|| {
        cgroups::join(&cgroup_dirs, pid)?;
        parent.send(&Msg::Go)?;
        loop {
            match parent.recv()? {
                Some(Msg::Ready) => return Ok(()),
                Some(Msg::SeccompFd) => {
                    // The agent gets the exec'd process's fd, with the container's state and
                    // this process's pid (runc's containerProcessState for exec).
                    let fd = parent.recv_seccomp_fd()?;
                    let listener = filter
                        .as_ref()
                        .and_then(|f| f.listener())
                        .ok_or_else(|| Error::init("a seccomp fd from a filter without a listener"))?;
                    let state = serde_json::to_value(rec.oci_state(c.status)).unwrap_or_default();
                    seccomp::send_to_listener(listener, &fd, pid, state)?;
                    parent.send(&Msg::Go)?;
                }
                Some(Msg::Failed(f)) => return Err(f.into()),
                Some(m) => return Err(Error::init(format!("unexpected {m:?} during exec setup"))),
                None => return Err(Error::init("the other side of the setup socket went away")),
            }
        }
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
    if let Some(s) = &pidfd_sock {
        // Our child, not yet waited for: the pid cannot have been reused.
        let pfd = wrun_sys::pidfd::open(pid).ok_or_else(|| Error::init("--pidfd-socket: the process is gone"))?;
        wrun_sys::fdpass::send_fd(s.as_raw_fd(), pfd.as_raw_fd(), b"pidfd")?;
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
/// Load the filter; a notification fd goes to the parent, for the agent.
fn load_filter(filter: Option<&seccomp::Filter>, sock: &SyncSocket) -> Result<()> {
    match filter.map(|f| f.load()).transpose()?.flatten() {
        Some(fd) => sock.send_seccomp_fd(fd),
        None => Ok(()),
    }
}

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
        load_filter(filter, sock)?;
    }
    p.lsm.apply(true)?;
    crate::linux::process::switch_user_with_capabilities(p)?;
    let workload = Workload::Native {
        program: crate::linux::process::find_program(p)?,
    };
    init::mark_fds_cloexec(opts.preserve_fds)?;
    init::reset_signals();
    crate::linux::process::set_no_new_privs(p)?;
    if p.no_new_privs {
        load_filter(filter, sock)?;
    }
    sock.send(&Msg::Ready)?;
    workload.run(p)
}
