//! The container's init process, from its birth in the new namespaces to `execve`: the order
//! of setup reads top to bottom in `container_init`, one named step per line.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::namespaces::NsPlan;
use super::process::{self, ProcessPlan};
use super::rootfs::{self, RootfsPlan};
use super::sync::{Msg, SyncSocket};
use crate::error::Context;
use crate::state::EXEC_FIFO;
use crate::workload;
use crate::{Error, Result};

/// How the init learns that it may exec.
#[derive(Debug)]
pub enum Gate {
    /// `create` + `start`: block opening `exec.fifo` in the state dir (held as an O_PATH fd so
    /// it stays reachable after pivot_root) until `start` opens it for reading.
    Fifo(OwnedFd),
    /// `run`: the parent sends `Start` on the setup socket.
    Socket,
}

/// Everything the init needs, computed and validated by the parent before the clone.
#[derive(Debug)]
pub struct InitPlan {
    pub id: String,
    pub ns: NsPlan,
    pub rootfs: RootfsPlan,
    pub process: ProcessPlan,
    /// For each mount, its detached idmapped tree, if it has an id mapping.
    pub idmapped_trees: Vec<Option<OwnedFd>>,
    pub console_socket: Option<OwnedFd>,
    pub gate: Gate,
    pub new_keyring: bool,
    pub preserve_fds: i32,
    /// Native, or a wasm guest prepared by the parent.
    pub workload: workload::Plan,
}

/// Run in the cloned child. Returns only with an error, which the caller reports.
pub fn container_init(plan: &InitPlan, sock: &SyncSocket) -> Result<Infallible> {
    sock.expect(Msg::Go)?;
    become_root_in_user_ns(&plan.ns)?;
    enter_cgroup_ns(&plan.ns)?;
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    join_session_keyring(plan);
    process::apply_oom_score_adj(&plan.process)?;
    rootfs::prepare(&plan.rootfs, &plan.idmapped_trees)?;
    rootfs::pivot(&plan.rootfs)?;
    setup_console(plan)?;
    process::apply_identity(&plan.process)?;
    rootfs::finalize(&plan.rootfs)?;
    process::apply_scheduling(&plan.process)?;
    process::apply_rlimits(&plan.process)?;
    process::enter_cwd(&plan.process)?;
    process::switch_user(&plan.process, true)?;
    let workload = plan.workload.resolve(&plan.process)?;
    mark_fds_cloexec(plan.preserve_fds)?;
    reset_signals();
    process::set_no_new_privs(&plan.process)?;
    // Capabilities and seccomp are applied here, last before the wait (issue #4).
    sock.send(&Msg::Ready)?;
    wait_for_start(&plan.gate, sock)?;
    apply_final_affinity(&plan.process)?;
    workload.run(&plan.process)
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
        let name = CString::new(format!("_ses.{}", plan.id)).unwrap_or_default();
        // Like runc, a kernel without keyrings (ENOSYS) or a denied request is not fatal.
        let _ = super::sys::join_session_keyring(&name);
    }
}

fn setup_console(plan: &InitPlan) -> Result<()> {
    match (&plan.console_socket, plan.process.terminal) {
        (Some(sock), true) => super::console::setup(sock.as_raw_fd(), plan.process.console_size),
        (None, true) => Err(Error::Invalid(
            "process.terminal is true but no --console-socket was given".into(),
        )),
        _ => Ok(()),
    }
}

/// Keep fds 0-2 and the `--preserve-fds` ones open across exec; close the rest.
fn mark_fds_cloexec(preserve: i32) -> Result<()> {
    let first = 3 + preserve.max(0) as u32;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        return Err(Error::io("mark fds close-on-exec", std::io::Error::last_os_error()));
    }
    for fd in 3..first as i32 {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()));
    }
    Ok(())
}

/// The container starts with default signal handling and nothing blocked (Rust ignores
/// SIGPIPE in our process, which exec would otherwise pass on).
fn reset_signals() {
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

fn wait_for_start(gate: &Gate, sock: &SyncSocket) -> Result<()> {
    match gate {
        Gate::Socket => sock.expect(Msg::Start),
        Gate::Fifo(dir) => {
            let fd = nix::fcntl::openat(
                Some(dir.as_raw_fd()),
                EXEC_FIFO,
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| "open exec fifo".into())?;
            let r = nix::unistd::write(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, b"0");
            let _ = nix::unistd::close(fd);
            r.ctx(|| "write exec fifo".into()).map(drop)
        }
    }
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
