//! The host side of a terminal for `run` without `--console-socket` (what runc does): the
//! pty master the init sent, our own terminal in raw mode, and a copy both ways until the
//! container is gone. The container side (making the pty, handing over the master) is
//! `linux/console.rs`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// The foreground side of `run` with a terminal and no `--console-socket` (what runc does):
/// receive the pty master, put our own terminal in raw mode, and copy both ways until the
/// container is gone. Dropping the returned value restores the terminal.
pub struct Proxy {
    saved: Option<nix::sys::termios::Termios>,
    out: Option<std::thread::JoinHandle<()>>,
    pub master: std::sync::Arc<OwnedFd>,
}

impl Proxy {
    pub fn start(master: OwnedFd) -> Proxy {
        use nix::sys::termios;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
        }
        let master = std::sync::Arc::new(master);
        resize_from_stdin(&master);
        let m_in = master.clone();
        // Detached: it ends with the process, blocked on our stdin or not.
        std::thread::spawn(move || copy(0, m_in.as_raw_fd()));
        let m_out = master.clone();
        let out = Some(std::thread::spawn(move || copy(m_out.as_raw_fd(), 1)));
        Proxy { saved, out, master }
    }

    /// Wait for the container's output to drain (the pty reports EIO once every holder of the
    /// slave has exited).
    pub fn finish(mut self) {
        if let Some(h) = self.out.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

/// Copy the size of our terminal to the pty (at start and on SIGWINCH).
pub fn resize_from_stdin(master: &OwnedFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn copy(from: RawFd, to: RawFd) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match nix::unistd::read(from, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut off = 0;
        while off < n {
            // SAFETY: `to` stays open for the life of the proxy.
            match nix::unistd::write(unsafe { std::os::fd::BorrowedFd::borrow_raw(to) }, &buf[off..n]) {
                Ok(w) => off += w,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}
