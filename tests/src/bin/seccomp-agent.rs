//! The tests' seccomp agent (a listener of `linux.seccomp.listenerPath`), independent of any
//! runtime: `seccomp-agent SOCKET LOG`.
//!
//! Each connection brings one `containerProcessState` message with the notification fd
//! (SCM_RIGHTS); its JSON is appended to LOG as a line. Then, on a thread per fd, every
//! notified `mkdir`/`mkdirat` is answered: a path whose last component starts with `deny` gets
//! EXDEV (an errno no mkdir of a plain directory gives by itself), any other is let through
//! with SECCOMP_USER_NOTIF_FLAG_CONTINUE. Each answer is logged as `mkdir PATH: deny|continue`.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct Resp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp).
const NOTIF_RECV: u64 = 0xc050_2100;
const NOTIF_SEND: u64 = 0xc018_2101;
const FLAG_CONTINUE: u32 = 1;

/// The NUL-terminated string at `addr` in `pid`'s memory.
fn read_path(pid: u32, addr: u64) -> String {
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return String::new();
    };
    let mut buf = vec![0u8; 4096];
    let n = f.read_at(&mut buf, addr).unwrap_or(0);
    buf.truncate(n);
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn serve(fd: OwnedFd, log: Arc<Mutex<std::fs::File>>) {
    loop {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, 1000) };
        if r < 0 || p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return;
        }
        if r == 0 {
            continue;
        }
        let mut n = Notif::default();
        // SAFETY: the ioctl fills a struct seccomp_notif of the size it is declared with.
        if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV as _, &mut n as *mut Notif) } != 0 {
            continue;
        }
        let path_arg = match n.data.nr as i64 {
            libc::SYS_mkdir => n.data.args[0],
            libc::SYS_mkdirat => n.data.args[1],
            _ => 0,
        };
        let path = if path_arg != 0 {
            read_path(n.pid, path_arg)
        } else {
            String::new()
        };
        let deny = path.rsplit('/').next().is_some_and(|l| l.starts_with("deny"));
        let resp = if deny {
            Resp {
                id: n.id,
                val: 0,
                error: -libc::EXDEV,
                flags: 0,
            }
        } else {
            Resp {
                id: n.id,
                val: 0,
                error: 0,
                flags: FLAG_CONTINUE,
            }
        };
        let _ = writeln!(
            log.lock().unwrap(),
            "mkdir {path}: {}",
            if deny { "deny" } else { "continue" }
        );
        // SAFETY: the ioctl reads a struct seccomp_notif_resp.
        unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND as _, &resp as *const Resp) };
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (sock, log) = (&args[1], &args[2]);
    let listener = UnixListener::bind(sock).expect("bind the agent's socket");
    let log = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log"),
    ));
    for c in listener.incoming() {
        let Ok(c) = c else { continue };
        let Ok((fd, data)) = wrun_sys::fdpass::recv_fd_with_data(c.as_raw_fd(), "the notification fd") else {
            continue;
        };
        // One line per message, whatever layout the runtime sent its JSON in (crun indents it).
        let line = serde_json::from_slice::<serde_json::Value>(&data)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| String::from_utf8_lossy(&data).replace('\n', " "));
        let _ = writeln!(log.lock().unwrap(), "{line}");
        let log = log.clone();
        std::thread::spawn(move || serve(fd, log));
    }
}
