//! Passing file descriptors over unix sockets (SCM_RIGHTS): the pty master from a container's
//! init to the `--console-socket` listener (wrun, the shim, the tests), as runc does.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::Context;
use crate::{Error, Result};

/// Send `fd` over `sock` with `payload` as the message's data (runc sends the pty's path).
pub fn send_fd(sock: RawFd, fd: RawFd, payload: &[u8]) -> Result<()> {
    let fds = [fd];
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(sock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .ctx(|| "send a file descriptor (SCM_RIGHTS)".into())?;
    Ok(())
}

/// Receive one fd sent with SCM_RIGHTS on `sock` (close-on-exec). `what` names the fd in
/// errors ("the pty master"). Any further fds in the same message are closed.
pub fn recv_fd(sock: RawFd, what: &str) -> Result<OwnedFd> {
    recv_fd_with_data(sock, what).map(|(fd, _)| fd)
}

/// `recv_fd`, and the message's data (up to 64 KiB).
pub fn recv_fd_with_data(sock: RawFd, what: &str) -> Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 64 << 10];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .ctx(|| format!("receive {what}"))?;
    let n = msg.bytes;
    let mut got = None;
    for c in msg.cmsgs().ctx(|| format!("receive {what}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed these fds in our table for us; each is owned once.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(fd);
                }
            }
        }
    }
    let fd = got.ok_or_else(|| Error::Invalid(format!("receive {what}: the message carried no file descriptor")))?;
    buf.truncate(n);
    Ok((fd, buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn an_fd_sent_arrives_as_the_same_open_file() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, mut w) = UnixStream::pair().unwrap();
        send_fd(a.as_raw_fd(), w.as_raw_fd(), b"pty").unwrap();
        let got = recv_fd(b.as_raw_fd(), "test fd").unwrap();
        let mut w2 = std::fs::File::from(got);
        w2.write_all(b"x").unwrap();
        w.write_all(b"y").unwrap();
        let mut buf = [0u8; 2];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xy");
    }

    /// A container's init is not trusted: extra fds in the message must not pile up in the
    /// receiver (wrun, the shim).
    #[test]
    fn extra_fds_in_one_message_are_closed() {
        // Two copies of a pipe's write end in one message: once ours and the returned one are
        // closed, the reader sees EOF only if the extra copy was closed too.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let fds = [w.as_raw_fd(), w.as_raw_fd()];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(b"two")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(w);
        drop(recv_fd(b.as_raw_fd(), "test fd").unwrap());
        // Another test's fork may hold a copy for the moment before its exec: retry a while
        // (a leaked copy never goes away).
        let eof = (0..100).any(|_| {
            let eof = nix::unistd::read(r.as_raw_fd(), &mut [0u8; 1]) == Ok(0);
            if !eof {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            eof
        });
        assert!(eof, "a copy of the write end leaked");
    }

    #[test]
    fn a_message_without_fd_is_an_error_naming_what_was_expected() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"no fd here").unwrap();
        let e = recv_fd(b.as_raw_fd(), "the pty master").unwrap_err().to_string();
        assert!(e.contains("the pty master") && e.contains("no file descriptor"), "{e}");
    }
}
