//! start, run, kill, delete, state and list over an existing state directory.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::create::{create, CreateOptions, Created, StartMode};
use super::hooks::{self, Kind};
use super::startgate::{self, Reply};
use crate::error::Context;
use crate::linux::sync::Msg;
use crate::state::{self, OciState, Record, StateDir, Status};
use crate::{Error, Result};
use wrun_sys::{cgroups, pidfd};

/// A container's directory, record and current status.
pub struct Loaded {
    pub dir: StateDir,
    pub rec: Option<Record>,
    pub status: Status,
}

impl Loaded {
    pub fn oci_state(&self) -> Option<OciState<'_>> {
        self.rec.as_ref().map(|r| r.oci_state(self.status))
    }

    /// The state JSON, also while the container is still being created (status `creating`,
    /// from the record the create noted so far, or with only its id and no pid yet).
    pub fn state_json(&self) -> serde_json::Value {
        if let Some(s) = self.oci_state() {
            return serde_json::to_value(s).unwrap_or_default();
        }
        match self.dir.read_setup() {
            Some(r) => serde_json::to_value(r.oci_state(Status::Creating)).unwrap_or_default(),
            None => serde_json::json!({
                "ociVersion": crate::spec::OCI_VERSION_MAX,
                "id": self.dir.id,
                "pid": 0,
                "status": Status::Creating.as_str(),
                "bundle": "",
            }),
        }
    }

    pub(super) fn wrong(&self, why: &'static str) -> Error {
        Error::WrongStatus {
            id: self.dir.id.clone(),
            status: self.status.to_string(),
            why,
        }
    }

    pub(super) fn record(&self) -> Result<&Record> {
        self.rec.as_ref().ok_or_else(|| self.wrong("it is still being created"))
    }
}

pub fn load(root: &Path, id: &str) -> Result<Loaded> {
    let dir = StateDir::open(root, id)?;
    let rec = dir.read()?;
    let status = state::status(&dir, rec.as_ref());
    Ok(Loaded { dir, rec, status })
}

/// A pidfd on the container's init, checked against the start time in its record: from here
/// on it names that process and no other, whatever pid reuse happens.
pub(super) fn init_pidfd(c: &Loaded) -> Result<OwnedFd> {
    let rec = c.record()?;
    let pfd = pidfd::open(rec.pid).ok_or_else(|| c.wrong("its init process is gone"))?;
    if !state::process_alive(rec.pid, rec.pid_start_time) {
        return Err(c.wrong("its init process is gone"));
    }
    Ok(pfd)
}

/// `start`: open the exec fifo, which releases the init, and remove it once the init has
/// written to it. Fails cleanly if the init died while waiting.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let c = load(root, id)?;
    if c.status != Status::Created {
        return Err(c.wrong("only a created container can be started"));
    }
    let rec = c.record()?;
    // The pidfd first: opening the fifo releases the init, which may run to its end and be
    // reaped (by a subreaper such as a containerd shim) before a pidfd could be opened.
    let pfd = pidfd::open(rec.pid).ok_or_else(|| c.wrong("its init process is gone"))?;
    match startgate::release(&c.dir.fifo(), &pfd)? {
        Reply::Started => {
            hooks::run_warn(Kind::Poststart, rec.hooks.as_ref(), &rec.oci_state(Status::Running));
            Ok(())
        }
        Reply::HookFailed(e) => Err(Error::init(e)),
        Reply::InitGone => Err(Error::init(format!(
            "container {id}: the init exited before it could be started"
        ))),
    }
}

/// `kill`: signal the init, or with `all` every process in the container's cgroup.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let c = load(root, id)?;
    if !matches!(c.status, Status::Created | Status::Running | Status::Paused) {
        return Err(c.wrong("only a created, running or paused container can be signalled"));
    }
    let rec = c.record()?;
    if all && !cgroups::pids(&rec.cgroup_dirs).is_empty() {
        return Ok(cgroups::signal_all(&rec.cgroup_dirs, sig)?);
    }
    if all && rec.cgroup_dirs.is_empty() {
        // No cgroup (rootless, none delegated): the container's pid namespace, the init last
        // so the others are signalled before it can take them down.
        for p in super::resources::pid_ns_members(rec.pid)
            .into_iter()
            .filter(|p| *p != rec.pid)
        {
            // SAFETY: kill with a pid and a signal number (real-time ones included).
            unsafe { libc::kill(p, sig) };
        }
    }
    // Through a pidfd, checked to be the init after it was opened: a pid that was reused since
    // the record was written is never signalled. By number, so real-time signals (RTMIN+3, as
    // systemd images use) arrive as given.
    let pfd = init_pidfd(&c)?;
    pidfd::send_signal(&pfd, sig).ctx(|| format!("signal {sig} to container {id} (pid {})", rec.pid))
}

/// Wait up to `timeout` for `pid` to exit (it need not be our child).
pub fn wait_for_exit(pid: i32, timeout: Duration) -> bool {
    let Some(pfd) = pidfd::open(pid) else { return true };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(pfd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            _ if left.is_zero() => return false,
            _ => {}
        }
    }
}

/// `delete`: remove a stopped (or created) container; `force` kills a running one first.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let c = match load(root, id) {
        Err(Error::NotFound(_)) if force => return Ok(()),
        r => r?,
    };
    match (c.status, force) {
        (Status::Stopped, _) => {}
        (Status::Creating, true) => return destroy_unfinished(&c),
        (Status::Creating, false) => return Err(c.wrong("it is still being created; use --force")),
        (Status::Created, _) | (Status::Running | Status::Paused, true) => {
            let rec = c.record()?;
            if c.status == Status::Paused {
                thaw(&rec.cgroup_dirs);
            }
            let _ = cgroups::signal_all(&rec.cgroup_dirs, libc::SIGKILL);
            let _ = nix::sys::signal::kill(Pid::from_raw(rec.pid), nix::sys::signal::Signal::SIGKILL);
            if !wait_for_exit(rec.pid, Duration::from_secs(10)) {
                return Err(Error::Invalid(format!(
                    "container {id}: init pid {} did not die after SIGKILL",
                    rec.pid
                )));
            }
        }
        (Status::Running | Status::Paused, false) => {
            return Err(c.wrong("cannot delete a container that is not stopped; use --force"))
        }
    }
    destroy(&c)
}

fn thaw(dirs: &[std::path::PathBuf]) {
    for d in dirs {
        let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        let _ = std::fs::write(d.join("cgroup.freeze"), "0");
    }
}

/// `delete --force` of a container whose create has not finished (killed, or still running):
/// kill what its setup record names (the init by pidfd, checked against its start time, and
/// whatever is in its cgroup), then remove the cgroups, the mount and the state dir.
fn destroy_unfinished(c: &Loaded) -> Result<()> {
    if let Some(setup) = c.dir.read_setup() {
        let _ = cgroups::signal_all(&setup.cgroup_dirs, libc::SIGKILL);
        if setup.pid > 0 {
            if let Some(pfd) = pidfd::open(setup.pid) {
                if state::process_alive(setup.pid, setup.pid_start_time) {
                    let _ = pidfd::send_signal(&pfd, libc::SIGKILL);
                    wait_for_exit(setup.pid, Duration::from_secs(10));
                }
            }
        }
        cgroups::remove(setup.owned_cgroups())?;
        if let Some(r) = &setup.host_rootfs_mount {
            crate::linux::rootfs::detach_rootfs(r);
        }
    }
    c.dir.remove()
}

fn destroy(c: &Loaded) -> Result<()> {
    if let Some(rec) = &c.rec {
        cgroups::remove(rec.owned_cgroups())?;
        if let Some(r) = &rec.host_rootfs_mount {
            crate::linux::rootfs::detach_rootfs(r);
        }
    }
    c.dir.remove()?;
    if let Some(rec) = &c.rec {
        hooks::run_warn(Kind::Poststop, rec.hooks.as_ref(), &rec.oci_state(Status::Stopped));
    }
    Ok(())
}

/// States of every container under `root`.
pub fn list(root: &Path) -> Result<Vec<Loaded>> {
    Ok(state::list_ids(root)?
        .into_iter()
        .filter_map(|id| load(root, &id).ok())
        .collect())
}

/// `run`: create, start, wait with signals forwarded to the init, delete. Returns the exit
/// code (128+N after signal N). With `detach`, returns 0 once the container runs.
pub fn run(opts: &CreateOptions, detach: bool) -> Result<i32> {
    // A terminal in the foreground without --console-socket: be the console socket ourselves.
    let terminal = !detach && opts.console_socket.is_none() && wants_terminal(&opts.bundle);
    let console = if terminal { Some(ConsoleListener::bind()?) } else { None };
    let mut opts = opts.clone();
    if let Some(l) = &console {
        opts.console_socket = Some(l.path.clone());
    }
    // Block signals before the init exists so none is lost; the init unblocks its own.
    let _mask = if detach { None } else { Some(BlockedSignals::all()?) };
    let created = create(&opts, StartMode::Socket)?;
    // The container exists from here: a failure removes it again.
    let result = run_created(&created, console.as_ref(), &opts, detach);
    if result.is_err() {
        let _ = delete(&opts.root, &opts.id, true);
    }
    result
}

fn run_created(
    created: &Created,
    console: Option<&ConsoleListener>,
    opts: &CreateOptions,
    detach: bool,
) -> Result<i32> {
    let proxy = console.map(|l| l.accept_master()).transpose()?;
    created.start()?;
    // The init runs the startContainer hooks, says so, then execs (closing its end).
    created.sock.expect(Msg::Started)?;
    while created.sock.recv()?.is_some() {}
    hooks::run_warn(
        Kind::Poststart,
        created.rec.hooks.as_ref(),
        &created.rec.oci_state(Status::Running),
    );
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding_signals(Pid::from_raw(created.rec.pid), proxy.as_ref())?;
    if let Some(p) = proxy {
        p.finish();
    }
    destroy(&load(&opts.root, &opts.id)?)?;
    Ok(code)
}

/// Wait for our child `pid`, passing every signal we get on to it (SIGWINCH resizes the
/// pty instead when we proxy a terminal).
pub(super) fn wait_forwarding_signals(pid: Pid, proxy: Option<&super::ptyproxy::Proxy>) -> Result<i32> {
    let all = SigSet::all();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => {}
            Err(e) => return Err(Error::sys(format!("wait for pid {pid}"), e)),
        }
        // sigwait(3) by number: nix's Signal has no real-time signals, which must be
        // forwarded too.
        let mut sig = 0;
        // SAFETY: a valid, filled signal set (all blocked by our caller) and an out int.
        if unsafe { libc::sigwait(all.as_ref(), &mut sig) } != 0 {
            continue;
        }
        match (sig, proxy) {
            (libc::SIGCHLD, _) => {}
            (libc::SIGWINCH, Some(p)) => super::ptyproxy::resize_from_stdin(&p.master),
            (sig, _) => {
                // SAFETY: plain kill(2) of our own unreaped child.
                unsafe { libc::kill(pid.as_raw(), sig) };
            }
        }
    }
}

/// Every signal blocked until dropped (then the previous mask is back).
pub(super) struct BlockedSignals(SigSet);

impl BlockedSignals {
    pub(super) fn all() -> Result<BlockedSignals> {
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut old))
            .ctx(|| "block signals".into())?;
        Ok(BlockedSignals(old))
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

fn wants_terminal(bundle: &Path) -> bool {
    crate::spec::Bundle::load(bundle)
        .ok()
        .and_then(|b| b.spec.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false)
}

/// A private listening socket that stands in for `--console-socket`; its file is removed
/// as soon as it is dropped.
pub(super) struct ConsoleListener {
    pub(super) path: std::path::PathBuf,
    listener: std::os::unix::net::UnixListener,
}

impl ConsoleListener {
    pub(super) fn bind() -> Result<ConsoleListener> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!("wrun-console-{}-{nanos}.sock", std::process::id()));
        let listener =
            std::os::unix::net::UnixListener::bind(&path).ctx(|| format!("console socket {}", path.display()))?;
        Ok(ConsoleListener { path, listener })
    }

    pub(super) fn accept_master(&self) -> Result<super::ptyproxy::Proxy> {
        let (conn, _) = self.listener.accept().ctx(|| "accept the console connection".into())?;
        let master = wrun_sys::fdpass::recv_fd(conn.as_raw_fd(), "the pty master")?;
        Ok(super::ptyproxy::Proxy::start(master))
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
