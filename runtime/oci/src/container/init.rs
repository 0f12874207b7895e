//! The container's init process, from its birth in the new namespaces to `execve`: the order
//! of setup reads top to bottom in `container_init`, one named step per line.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;

use super::hooks::Kind;
pub use super::startgate::Gate;
use crate::error::Context;
use crate::linux::namespaces::NsPlan;
use crate::linux::process::{self, ProcessPlan};
use crate::linux::rootfs::{self, RootfsPlan};
use crate::linux::sync::{Msg, SyncSocket};
use crate::state::Status;
use crate::workload;
use crate::{Error, Result};

/// Everything the init needs, computed and validated by the parent before the clone.
#[derive(Debug)]
pub struct InitPlan {
    pub ns: NsPlan,
    pub rootfs: RootfsPlan,
    pub process: ProcessPlan,
    /// For each mount, its detached idmapped tree, if it has an id mapping.
    pub idmapped_trees: Vec<Option<OwnedFd>>,
    pub console_socket: Option<OwnedFd>,
    pub gate: Gate,
    pub new_keyring: bool,
    pub preserve_fds: i32,
    /// The container's record (pid not yet known), for the state its hooks are given.
    pub record: crate::state::Record,
    /// The parent has prestart/createRuntime hooks to run before pivot_root.
    pub runtime_hooks: bool,
    pub seccomp: Option<crate::linux::seccomp::Filter>,
    /// Native, or a wasm guest the init prepares once it is in the container's cgroup.
    pub workload: workload::Plan,
}

/// Run the init's hooks of `kind` with the container's state as `status`, under our host pid.
fn run_hooks(plan: &InitPlan, kind: Kind, host_pid: i32, status: Status) -> Result<()> {
    let mut state = plan.record.oci_state(status);
    state.pid = host_pid;
    // A startContainer hook runs as the container's process would: without an env of its own,
    // it gets the process's (runc's behaviour).
    let env: Vec<String> = match kind {
        Kind::StartContainer => plan
            .process
            .env
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect(),
        _ => Vec::new(),
    };
    let default_env = (kind == Kind::StartContainer).then_some(env.as_slice());
    super::hooks::run_with_env(kind, plan.record.hooks.as_ref(), &state, default_env)
}

/// Run in the cloned child. Returns only with an error, which the caller reports.
pub fn container_init(plan: &InitPlan, sock: &SyncSocket) -> Result<Infallible> {
    sock.expect(Msg::Go)?;
    // The id maps are written by now (a rootless init was left dumpable for them).
    crate::linux::namespaces::no_dump();
    let prepared = plan.workload.prepare()?;
    become_root_in_user_ns(&plan.ns)?;
    enter_cgroup_ns(&plan.ns)?;
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    join_session_keyring(plan);
    process::apply_oom_score_adj(&plan.process)?;
    let host_pid = host_pid()?;
    rootfs::prepare(&plan.rootfs, &plan.idmapped_trees)?;
    run_create_hooks(plan, sock, host_pid)?;
    rootfs::pivot(&plan.rootfs)?;
    setup_console(plan)?;
    process::apply_identity(&plan.process)?;
    rootfs::finalize(&plan.rootfs)?;
    process::apply_scheduling(&plan.process)?;
    process::apply_rlimits(&plan.process)?;
    close_host_fds(plan.preserve_fds, &[sock.0.as_raw_fd(), plan.gate.raw_fd()])?;
    process::enter_cwd(&plan.process)?;
    mark_fds_cloexec(plan.preserve_fds)?;
    // A filter that notifies an agent is loaded before Ready either way: the fd must reach
    // the agent through the parent, which is gone by the time a started init would load it.
    let notifies = plan.seccomp.as_ref().is_some_and(|f| f.listener().is_some());
    if !plan.process.no_new_privs {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: before it is dropped.
        load_seccomp(plan, sock)?;
    }
    let workload = prepared.resolve(&plan.process)?;
    plan.process
        .lsm
        .apply(!matches!(workload, workload::Workload::Wasm { .. }))?;
    process::switch_user_with_capabilities(&plan.process)?;
    reset_signals();
    process::set_no_new_privs(&plan.process)?;
    if plan.process.no_new_privs && notifies {
        load_seccomp(plan, sock)?;
    }
    plan.gate.check()?;
    sock.send(&Msg::Ready)?;
    let ack = plan.gate.wait(sock)?;
    let started = run_hooks(plan, Kind::StartContainer, host_pid, Status::Created);
    ack.report(sock, &started)?;
    started?;
    apply_final_affinity(&plan.process)?;
    if plan.process.no_new_privs && !notifies {
        load_seccomp(plan, sock)?;
    }
    // Whoever waits for our end of the setup socket or the exec fifo to close (`run` and
    // `start`, before poststart) must not wait for a workload that runs in this process
    // instead of exec'ing: a wasm guest lets go of both now, a native program at its exec.
    // SAFETY: the socket is not used after this point; close-on-exec would close it anyway.
    unsafe { libc::close(sock.0.as_raw_fd()) };
    if matches!(workload, workload::Workload::Wasm { .. }) {
        // The guest runs in this process for its whole life: it holds no fd of ours.
        drop(ack);
        plan.gate.close_for_guest();
    }
    workload.run(&plan.process)
}

/// Our pid as the host sees it: /proc is still the host's here, and its `self` link names
/// us in the host's pid namespace.
fn host_pid() -> Result<i32> {
    let link = std::fs::read_link("/proc/self").ctx(|| "readlink /proc/self".into())?;
    link.to_string_lossy()
        .parse()
        .map_err(|_| Error::init(format!("/proc/self is {}", link.display())))
}

/// Between the mounts and pivot_root: the parent runs prestart and createRuntime in the
/// runtime's namespaces, then we run createContainer in the container's.
fn run_create_hooks(plan: &InitPlan, sock: &SyncSocket, host_pid: i32) -> Result<()> {
    if plan.runtime_hooks {
        sock.send(&Msg::RunHooks)?;
        sock.expect(Msg::Go)?;
    }
    run_hooks(plan, Kind::CreateContainer, host_pid, Status::Creating)
}

/// Load the filter; a notification fd goes to the parent, for the agent.
fn load_seccomp(plan: &InitPlan, sock: &SyncSocket) -> Result<()> {
    match plan.seccomp.as_ref().map(|f| f.load()).transpose()?.flatten() {
        Some(fd) => sock.send_seccomp_fd(fd),
        None => Ok(()),
    }
}

fn become_root_in_user_ns(ns: &NsPlan) -> Result<()> {
    if ns.new_user() {
        let (u, g) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
        nix::unistd::setresgid(g, g, g).ctx(|| "user namespace: setgid 0".into())?;
        nix::unistd::setresuid(u, u, u).ctx(|| "user namespace: setuid 0".into())?;
    }
    Ok(())
}

/// Unshared only now, so the namespace's root is the cgroup the parent just put us in.
fn enter_cgroup_ns(ns: &NsPlan) -> Result<()> {
    if ns.new_cgroup {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace".into())?;
    }
    Ok(())
}

fn join_session_keyring(plan: &InitPlan) {
    if plan.new_keyring {
        let name = CString::new(format!("_ses.{}", plan.record.id)).unwrap_or_default();
        // Like runc, a kernel without keyrings (ENOSYS) or a denied request is not fatal.
        let _ = wrun_sys::syscall::join_session_keyring(&name);
    }
}

fn setup_console(plan: &InitPlan) -> Result<()> {
    match (&plan.console_socket, plan.process.terminal) {
        (Some(sock), true) => crate::linux::console::setup(sock.as_raw_fd(), plan.process.console_size, true),
        (None, true) => Err(Error::Invalid(
            "process.terminal is true but no --console-socket was given".into(),
        )),
        _ => Ok(()),
    }
}

/// `--preserve-fds N` must name fds this process can have: at most the open-file limit.
pub fn check_preserve_fds(n: i32) -> Result<()> {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    if n < 0 || 3 + n as u64 > limit {
        return Err(Error::Invalid(format!(
            "--preserve-fds {n}: must be between 0 and {} (the open-file limit less stdio)",
            limit.saturating_sub(3)
        )));
    }
    Ok(())
}

/// Close every fd but stdio, the `--preserve-fds` ones and `keep` (what setup still needs):
/// before the init enters `process.cwd` or runs a workload, nothing the runtime opened on the
/// host may be reachable through `/proc/self/fd` (CVE-2024-21626). Closing, not only marking
/// close-on-exec: a wasm guest never execs. The log file is among them, so logging stops.
pub fn close_host_fds(preserve: i32, keep: &[RawFd]) -> Result<()> {
    crate::logging::silence();
    let first = 3 + preserve.max(0) as u32;
    let mut kept: Vec<u32> = keep
        .iter()
        .filter(|fd| **fd >= first as RawFd)
        .map(|fd| *fd as u32)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    let mut from = first;
    for k in kept {
        if k > from {
            close_range(from, k - 1)?;
        }
        from = k + 1;
    }
    close_range(from, u32::MAX)?;
    Ok(())
}

/// close_range(2), or one close at a time where it is missing (or a profile refuses it).
fn close_range(from: u32, to: u32) -> Result<()> {
    // SAFETY: closing fds we do not use again; no flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from, to, 0) };
    if r != 0 {
        let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft.min(1 << 20))
            .unwrap_or(1024) as u32;
        for fd in from..=to.min(max) {
            // SAFETY: as above; EBADF for fds that were not open.
            unsafe { libc::close(fd as RawFd) };
        }
    }
    Ok(())
}

/// Keep fds 0-2 and the `--preserve-fds` ones open across exec; close the rest.
pub fn mark_fds_cloexec(preserve: i32) -> Result<()> {
    let first = 3 + preserve.max(0) as u32;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        // An old kernel, or a seccomp profile without close_range: one fd at a time.
        let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft.min(1 << 20))
            .unwrap_or(1024);
        for fd in first..max as u32 {
            let _ = nix::fcntl::fcntl(fd as i32, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
        }
    }
    for fd in 3..first as i32 {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
    }
    Ok(())
}

/// The container starts with default signal handling and nothing blocked (Rust ignores
/// SIGPIPE in our process, which exec would otherwise pass on).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition to SIG_DFL is always valid.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

fn apply_final_affinity(p: &ProcessPlan) -> Result<()> {
    if let Some(set) = &p.affinity_final {
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)
            .ctx(|| "process.execCPUAffinity.final".into())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_without_namespaces_to_join_needs_no_root_switch() {
        let ns = NsPlan::default();
        assert!(become_root_in_user_ns(&ns).is_ok());
        assert!(enter_cgroup_ns(&ns).is_ok());
    }
}
