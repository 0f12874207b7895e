//! `--console-socket`: the listener the runtime sends the pty master to, and reading a pty.

use super::*;

// ---------------------------------------------------------------------------
// Console socket
// ---------------------------------------------------------------------------

/// A unix socket listening for the pty master a runtime sends with
/// `--console-socket`.
pub struct ConsoleSocket {
    dir: TempDir,
    listener: UnixListener,
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleSocket {
    pub fn new() -> ConsoleSocket {
        let dir = TempDir::new("console");
        let listener = UnixListener::bind(dir.join("c.sock")).expect("bind console socket");
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { dir, listener }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("c.sock")
    }

    /// Accepts one connection and receives one fd via SCM_RIGHTS.
    pub fn recv_master(&self, timeout: Duration) -> OwnedFd {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "nobody connected to the console socket");
                    sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept on console socket: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        wrun_sys::fdpass::recv_fd(stream.as_raw_fd(), "the pty master")
            .unwrap_or_else(|e| panic!("console socket: {e}"))
    }
}

/// Reads from a pty master until EOF/EIO, until the output contains
/// `until` (if given), or until `timeout`.
pub fn read_pty(fd: &OwnedFd, timeout: Duration, until: Option<&str>) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            break;
        }
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
        if let Some(u) = until {
            if String::from_utf8_lossy(&out).contains(u) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
