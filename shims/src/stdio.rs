//! A process's stdio from containerd's fifos: handed straight to the process when it has no
//! terminal, or copied to and from the pty master `wrun` sends over `--console-socket`.
//!
//! Without a terminal there is no copying at all: the fifos become the process's fds 0-2, the
//! shim keeps no copy, so the client sees EOF on stdout exactly when the process (and any
//! child it left holding the fd) is gone, and the process sees EOF on stdin when the client
//! closes its end.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::wrun::ProcStdio;

/// Opens a stdout/stderr fifo read-write, so the open never blocks on a missing reader.
fn open_output(path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("open fifo {path}"), e))
}

/// Opens the stdin fifo for reading without waiting for a writer, then makes reads block.
fn open_input(path: &str) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(format!("open fifo {path}"), e))?;
    set_nonblocking(&f, false).map_err(|e| Error::io(format!("fcntl fifo {path}"), e))?;
    Ok(f)
}

fn set_nonblocking(f: &impl AsRawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd we own; no memory is passed.
    unsafe {
        let flags = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn stdio_of(path: &str, open: fn(&str) -> Result<File>) -> Result<Stdio> {
    if path.is_empty() {
        Ok(Stdio::null())
    } else {
        open(path).map(Stdio::from)
    }
}

/// The fifos as the process's own stdio (empty paths become /dev/null).
pub fn direct(stdin: &str, stdout: &str, stderr: &str) -> Result<ProcStdio> {
    Ok(ProcStdio {
        stdin: stdio_of(stdin, open_input)?,
        stdout: stdio_of(stdout, open_output)?,
        stderr: stdio_of(stderr, open_output)?,
    })
}

static SOCKET_SEQ: AtomicU64 = AtomicU64::new(0);

/// A listening unix socket for `--console-socket`, removed on drop.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    pub fn new(dir: &Path) -> Result<ConsoleSocket> {
        let path = dir.join(format!(
            "console-{}-{}.sock",
            std::process::id(),
            SOCKET_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(|e| Error::io(format!("console socket {}", path.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("console socket", e))?;
        Ok(ConsoleSocket { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master wrun sent. Call it after `wrun create/exec` returned successfully: by
    /// then the connection and the fd are queued on the socket.
    pub fn receive(&self) -> Result<File> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(Error::io("console socket: no pty master received", e)),
            }
        };
        stream
            .set_nonblocking(false)
            .map_err(|e| Error::io("console socket", e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| Error::io("console socket", e))?;
        wrun_sys::fdpass::recv_fd(stream.as_raw_fd(), "the pty master from the console socket")
            .map(File::from)
            .map_err(|e| Error::Invalid(e.to_string()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sets a pty's window size.
pub fn resize(master: &File, width: u32, height: u32) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(Error::io("resize pty", io::Error::last_os_error()));
    }
    Ok(())
}

/// Copies the pty master to the stdout fifo and the stdin fifo to the master, in one thread,
/// until the process side of the pty is closed; then closes stdout so the client sees EOF.
pub fn copy_terminal(master: Arc<File>, stdin: &str, stdout: &str) -> Result<()> {
    let input = if stdin.is_empty() {
        None
    } else {
        let f = open_input(stdin)?;
        set_nonblocking(&f, true).map_err(|e| Error::io("fcntl stdin fifo", e))?;
        Some(f)
    };
    let output = if stdout.is_empty() {
        None
    } else {
        Some(open_output(stdout)?)
    };
    std::thread::Builder::new()
        .name("pty-copy".into())
        .spawn(move || pump(&master, input, output))
        .map_err(|e| Error::io("spawn pty copier", e))?;
    Ok(())
}

fn pump(master: &File, mut input: Option<File>, mut output: Option<File>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: input.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on an array of two pollfds we own; a negative fd is ignored.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            // EIO once every holder of the pty's other side is gone.
            match (&*master).read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => {
                    if let Some(o) = output.as_mut() {
                        if o.write_all(&buf[..k]).is_err() {
                            output = None;
                        }
                    }
                }
            }
        }
        if fds[1].revents != 0 {
            if let Some(i) = input.as_mut() {
                match i.read(&mut buf) {
                    Ok(0) => input = None,
                    Ok(k) => {
                        let _ = (&*master).write_all(&buf[..k]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => input = None,
                }
            }
        }
    }
}
