//! The start gate: how a created container's init waits to be started, and how it answers.
//! Both ends of the protocol live here; the init calls the `Gate` half, `start` the `release`
//! half.
//!
//! `create` + `start` (runc's exec fifo): `create` makes `exec.fifo` in the state dir and
//! hands the init an O_PATH fd on it: a handle on the fifo, never on a host directory that a
//! `process.cwd` of `/proc/self/fd/N` could enter (CVE-2024-21626). The init reopens it for
//! writing through its own `/proc/self/fd` after pivot_root, which blocks until `start` opens
//! it for reading. The init then runs the startContainer hooks and writes `0`, or `1` and the
//! error, and keeps its end open until it execs (close-on-exec) or, for a wasm guest, until
//! just before the guest runs: `start` reads until that end closes, so it returns (and
//! poststart runs) only once the user process runs, as with runc.
//!
//! `run`: the same over the setup socket: `Start`, then `Started` or `Failed`.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::error::Context;
use crate::linux::sync::{Msg, SyncSocket};
use crate::{Error, Result};

/// How the init learns that it may exec.
#[derive(Debug)]
pub enum Gate {
    /// `create` + `start`: an O_PATH fd on the state dir's `exec.fifo`.
    Fifo(OwnedFd),
    /// `run`: the parent sends `Start` on the setup socket.
    Socket,
}

impl Gate {
    /// Make the fifo at `path` (mode 0622 whatever the umask: the init may run as any user,
    /// or in a user namespace, and must be able to open it for writing) and the gate on it.
    pub fn fifo(path: &Path) -> Result<Gate> {
        nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o622)).ctx(|| format!("mkfifo {}", path.display()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o622))
            .ctx(|| format!("chmod {}", path.display()))?;
        let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| format!("open {}", path.display()))?;
        // SAFETY: a new fd we own.
        Ok(Gate::Fifo(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The fd the init must keep open until it waits (-1 for the socket gate).
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Gate::Fifo(fd) => fd.as_raw_fd(),
            Gate::Socket => -1,
        }
    }

    /// In the init, as the container's user: fail `create` now rather than `start` later if
    /// the fifo cannot be reopened for writing.
    pub fn check(&self) -> Result<()> {
        let Gate::Fifo(fifo) = self else { return Ok(()) };
        // Only a real "no" counts: a seccomp profile may refuse faccessat itself.
        match nix::unistd::access(reopen_path(fifo).as_str(), nix::unistd::AccessFlags::W_OK) {
            Err(nix::errno::Errno::EACCES) => Err(Error::sys(
                "exec fifo: not writable by the container's user",
                nix::errno::Errno::EACCES,
            )),
            // The fifo is reopened through our fd in the container's /proc, as runc does.
            Err(nix::errno::Errno::ENOENT) => Err(Error::Invalid(
                "mounts: no proc filesystem at /proc in the container; create + start needs /proc/self/fd to wait for start"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// In the init: block until started. The returned `Ack` is the line back to the starter.
    pub fn wait(&self, sock: &SyncSocket) -> Result<Ack> {
        match self {
            Gate::Socket => sock.expect(Msg::Start).map(|()| Ack::Socket),
            Gate::Fifo(fifo) => {
                let fd = nix::fcntl::open(
                    reopen_path(fifo).as_str(),
                    OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| "open exec fifo (the container's /proc is needed to reopen it)".into())?;
                // SAFETY: openat returned a new fd that we own.
                Ok(Ack::Fifo(unsafe { OwnedFd::from_raw_fd(fd) }))
            }
        }
    }

    /// In the init of a wasm guest, which never execs: let go of the O_PATH fd now.
    pub fn close_for_guest(&self) {
        if let Gate::Fifo(fd) = self {
            // SAFETY: the gate is not used after this point (the plan is never dropped in the
            // init, so the OwnedFd will not close it again).
            unsafe { libc::close(fd.as_raw_fd()) };
        }
    }
}

/// The O_PATH fifo as a path the kernel reopens: our own fd in the container's /proc.
fn reopen_path(fifo: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fifo.as_raw_fd())
}

/// The open line back to whoever started the init.
pub enum Ack {
    /// The exec fifo's write end (close-on-exec: `start` sees EOF once the init execs).
    Fifo(OwnedFd),
    Socket,
}

impl Ack {
    /// Say whether the startContainer hooks passed. The fifo stays open: the starter returns
    /// when it closes.
    pub fn report(&self, sock: &SyncSocket, r: &Result<()>) -> Result<()> {
        match (self, r) {
            (Ack::Fifo(fd), r) => {
                let msg = match r {
                    Ok(()) => "0".to_string(),
                    Err(e) => format!("1{e}"),
                };
                nix::unistd::write(fd, msg.as_bytes())
                    .ctx(|| "write exec fifo".into())
                    .map(drop)
            }
            (Ack::Socket, Ok(())) => sock.send(&Msg::Started),
            (Ack::Socket, Err(e)) => sock.send(&Msg::Failed(e.into())),
        }
    }
}

/// What `start` learned from the init.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The hooks passed and the user process runs.
    Started,
    /// A startContainer hook failed: its error.
    HookFailed(String),
    /// The init died without answering.
    InitGone,
}

/// `start`'s half: open the fifo at `path` for reading, which releases the init, and read its
/// answer until its end closes; `init` is a pidfd on the init, so a death is noticed. The
/// fifo is removed afterwards (the status is "running" from then on).
pub fn release(path: &Path, init: &OwnedFd) -> Result<Reply> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", path.display()))?;
    // SAFETY: new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let reply = read_reply(&fd, init);
    std::fs::remove_file(path).ctx(|| format!("remove {}", path.display()))?;
    Ok(match reply {
        Some(r) if r.first() == Some(&b'0') => Reply::Started,
        Some(r) if !r.is_empty() => Reply::HookFailed(String::from_utf8_lossy(&r[1..]).into_owned()),
        _ => Reply::InitGone,
    })
}

/// What the init wrote, once its end is closed, or `None` if it died without writing.
fn read_reply(fifo: &OwnedFd, init: &OwnedFd) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        let mut fds = [
            PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
            PollFd::new(init.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(_) => {}
        }
        let fifo_ev = fds[0].revents().unwrap_or(PollFlags::empty());
        if fifo_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            let mut b = [0u8; 4096];
            match nix::unistd::read(fifo.as_raw_fd(), &mut b) {
                Ok(0) => return Some(got),
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(nix::errno::Errno::EAGAIN) => {}
                Err(_) => return Some(got),
            }
        } else if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            // The init is gone; whatever it wrote is in the fifo already.
            let mut b = [0u8; 4096];
            if let Ok(n) = nix::unistd::read(fifo.as_raw_fd(), &mut b) {
                got.extend_from_slice(&b[..n]);
            }
            return (!got.is_empty()).then_some(got);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both halves over a real fifo, the init played by a thread: the answer arrives, and
    /// `release` returns only once the init's end is closed.
    #[test]
    fn an_answer_written_by_the_init_is_what_start_reads() {
        for (hooks, want) in [
            (Ok(()), Reply::Started),
            (
                Err(Error::init("hook x failed")),
                Reply::HookFailed("container init: hook x failed".into()),
            ),
        ] {
            let dir = std::env::temp_dir().join(format!("wrun-gate-{}-{}", std::process::id(), want != Reply::Started));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("exec.fifo");
            let Gate::Fifo(opath) = Gate::fifo(&path).unwrap() else {
                unreachable!()
            };
            let (sock, _other) = crate::linux::sync::pair().unwrap();
            let me = pidfd_of_self();
            let init = std::thread::spawn(move || {
                // What the init does, minus the /proc reopen (the same file, opened by path).
                let _keep = opath;
                let fd = nix::fcntl::open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
                let ack = Ack::Fifo(unsafe { OwnedFd::from_raw_fd(fd) });
                ack.report(&sock, &hooks).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                drop(ack);
            });
            let t0 = std::time::Instant::now();
            assert_eq!(release(&dir.join("exec.fifo"), &me).unwrap(), want);
            assert!(
                t0.elapsed() >= std::time::Duration::from_millis(40),
                "returned before the end closed"
            );
            assert!(!dir.join("exec.fifo").exists());
            init.join().unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    fn pidfd_of_self() -> OwnedFd {
        wrun_sys::pidfd::open(std::process::id() as i32).unwrap()
    }
}
