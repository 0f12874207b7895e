//! The socket between `wrun` and the container's init during setup: small tagged messages so
//! the parent can write id maps and join cgroups at the right moment, and the child can report
//! "ready" or the one-line error that `create` prints.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::error::Context;
use crate::{Error, Result};

/// Messages on the setup socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → child: id maps written, cgroup joined, devices moved: carry on.
    Go,
    /// child → parent: a user namespace was unshared; write its id maps now.
    MapIds,
    /// intermediate → parent: the init's pid (in the parent's pid namespace).
    Pid(i32),
    /// child → parent: set up and waiting to be started.
    Ready,
    /// child → parent: setup failed.
    Failed(Failure),
    /// parent → child (`run`): start now, no exec fifo involved.
    Start,
    /// child → parent: the mounts are done; run the prestart and createRuntime hooks now.
    RunHooks,
    /// child → parent (`run`): startContainer hooks done; the user process is next.
    Started,
    /// child → parent: the seccomp notification fd follows (SCM_RIGHTS); pass it to the
    /// agent, then say Go.
    SeccompFd,
}

/// A setup failure as it crosses the socket: the child's one-line message and, when a syscall
/// refused the step, its errno, so the parent's error keeps the cause a machine can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub msg: String,
    pub errno: Option<nix::errno::Errno>,
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        let msg = match e {
            // Already an init's failure (one relayed from a grandchild): not "init: init: ...".
            Error::Init { msg, .. } => msg.clone(),
            e => e.to_string(),
        };
        Failure { msg, errno: e.errno() }
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::Init {
            msg: f.msg,
            errno: f.errno,
        }
    }
}

pub struct SyncSocket(pub OwnedFd);

/// A connected pair: (parent end, child end), both close-on-exec.
pub fn pair() -> Result<(SyncSocket, SyncSocket)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .ctx(|| "setup socket: socketpair".into())?;
    Ok((SyncSocket(a), SyncSocket(b)))
}

impl SyncSocket {
    pub fn send(&self, m: &Msg) -> Result<()> {
        let mut buf = Vec::with_capacity(8);
        match m {
            Msg::Go => buf.push(b'G'),
            Msg::MapIds => buf.push(b'M'),
            Msg::Pid(p) => {
                buf.push(b'P');
                buf.extend_from_slice(&p.to_le_bytes());
            }
            Msg::Ready => buf.push(b'R'),
            Msg::Failed(f) => {
                buf.push(b'E');
                buf.extend_from_slice(&f.errno.map_or(0, |e| e as i32).to_le_bytes());
                buf.extend_from_slice(f.msg.as_bytes());
            }
            Msg::Start => buf.push(b'S'),
            Msg::RunHooks => buf.push(b'H'),
            Msg::Started => buf.push(b'T'),
            Msg::SeccompFd => buf.push(b'F'),
        }
        nix::unistd::write(&self.0, &buf)
            .ctx(|| "setup socket: write".into())
            .map(drop)
    }

    /// Receive one message; `None` when the other side has gone (EOF).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 8192];
        let n = loop {
            match nix::unistd::read(self.0.as_raw_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.ctx(|| "setup socket: read".into())?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let body = &buf[1..n];
        Ok(Some(match buf[0] {
            b'G' => Msg::Go,
            b'M' => Msg::MapIds,
            b'P' if body.len() == 4 => Msg::Pid(i32::from_le_bytes(body.try_into().unwrap_or_default())),
            b'R' => Msg::Ready,
            b'E' if body.len() >= 4 => {
                let (errno, msg) = body.split_at(4);
                let errno = i32::from_le_bytes(errno.try_into().unwrap_or_default());
                Msg::Failed(Failure {
                    msg: String::from_utf8_lossy(msg).into_owned(),
                    errno: (errno != 0).then(|| nix::errno::Errno::from_raw(errno)),
                })
            }
            b'S' => Msg::Start,
            b'H' => Msg::RunHooks,
            b'T' => Msg::Started,
            b'F' => Msg::SeccompFd,
            t => return Err(Error::init(format!("unexpected setup message {t:#x}"))),
        }))
    }

    /// Send the seccomp notification fd (`load`'s) to the parent and wait for its Go: the
    /// agent has it once this returns.
    pub fn send_seccomp_fd(&self, fd: std::os::fd::RawFd) -> Result<()> {
        self.send(&Msg::SeccompFd)?;
        wrun_sys::fdpass::send_fd(self.0.as_raw_fd(), fd, b"seccomp")?;
        self.expect(Msg::Go)
    }

    /// The fd that follows a `SeccompFd` message.
    pub fn recv_seccomp_fd(&self) -> Result<OwnedFd> {
        Ok(wrun_sys::fdpass::recv_fd(
            self.0.as_raw_fd(),
            "the seccomp notification fd",
        )?)
    }

    /// Receive and require a specific message.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Failed(f)) => Err(f.into()),
            Some(m) => Err(Error::init(format!("expected {want:?}, got {m:?}"))),
            None => Err(Error::init("the other side of the setup socket went away")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Go,
            Msg::MapIds,
            Msg::Pid(4242),
            Msg::Ready,
            Msg::Failed(Failure {
                msg: "mount /proc: EPERM: Operation not permitted".into(),
                errno: Some(nix::errno::Errno::EPERM),
            }),
            Msg::Failed(Failure {
                msg: "internal error".into(),
                errno: None,
            }),
            Msg::Start,
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
