//! `wrun-monitor`: the per-container monitor of a detached front-end container, as conmon is
//! for podman. It is small on purpose (a single thread, std and libc): it is the only process
//! that stays resident beside a detached container. What it does itself:
//!
//! - holds the container's output pipes (or its terminal) and writes the json-file log;
//! - is the container's subreaper: the init, started by a `wrun container step begin` that
//!   exits once it runs, becomes its child, and its exit status is read here;
//! - times the health checks and watches the memory cgroup for OOM kills;
//! - keeps `containers/<id>/monitor.lock` for its whole life (one monitor per container).
//!
//! Everything that needs the record, the store, the network or the runtime is a short
//! `wrun container step …` process, run from the (sealed) wrun the CLI handed over as fd 4.
//! The CLI hears on fd 3 "ok" once the container runs, or "err CODE MESSAGE".
//!
//! `wrun-monitor --data-root R --lock F --log F [--log-max-size N] [--log-max-file N]
//! [--health-ms N] [--stdin] [--tty] ID` (started by wrun, not by users).

mod log;

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long output is still read after the init exited, from processes of the container that
/// outlived it (only possible without a pid namespace of its own).
const DRAIN: Duration = Duration::from_secs(2);
/// The exit status of `step health` that asks for a restart (`--health-on-failure restart`):
/// `wrun_front::container::monitor::HEALTH_RESTART`, restated because naming anything of
/// wrun_front links the whole runtime into this binary (26 MB to 312 MB in a debug build).
const HEALTH_RESTART: i32 = 3;
const READY_FD: RawFd = 3;
const WRUN_FD: RawFd = 4;

#[derive(Default)]
struct Args {
    data_root: PathBuf,
    lock: PathBuf,
    log: PathBuf,
    max_size: Option<u64>,
    max_file: Option<u32>,
    health: Option<Duration>,
    stdin: bool,
    tty: bool,
    id: String,
}

fn parse(mut it: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = || it.next().ok_or_else(|| format!("{flag}: a value is needed"));
        let num = |v: OsString| v.to_string_lossy().parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--data-root" => a.data_root = value()?.into(),
            "--lock" => a.lock = value()?.into(),
            "--log" => a.log = value()?.into(),
            "--log-max-size" => a.max_size = Some(num(value()?)?),
            "--log-max-file" => a.max_file = Some(num(value()?)? as u32),
            "--health-ms" => a.health = Some(Duration::from_millis(num(value()?)?.max(1))),
            "--stdin" => a.stdin = true,
            "--tty" => a.tty = true,
            f if f.starts_with('-') => return Err(format!("{f}: unknown flag")),
            id => a.id = id.to_string(),
        }
    }
    if a.id.is_empty() || a.data_root.as_os_str().is_empty() || a.lock.as_os_str().is_empty() {
        return Err("usage: wrun-monitor --data-root R --lock F --log F [...] ID (started by wrun)".into());
    }
    Ok(a)
}

/// The CLI's pipe: told once.
struct Ready(Option<File>);

impl Ready {
    fn say(&mut self, what: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = writeln!(f, "{what}");
            // Fd 3 stays taken (by /dev/null), so no later pipe lands on it.
            if let Ok(null) = File::open("/dev/null") {
                // SAFETY: dup2 of valid fds onto our own fd 3, then close-on-exec for it.
                unsafe {
                    libc::dup2(null.as_raw_fd(), READY_FD);
                    libc::fcntl(READY_FD, libc::F_SETFD, libc::FD_CLOEXEC);
                }
                std::mem::forget(f);
            }
        }
    }
}

fn main() {
    // SAFETY: close_range above our fds, prctl with a valid C string (its name in `ps`, as it
    // runs from /proc/self/fd/N), and fcntl on the fds the CLI handed over (close-on-exec: no
    // step inherits them).
    // Whatever else the CLI's caller left open is not ours to keep open for the container's
    // life (a pipe a script reads the CLI's output from would never end): closed first.
    unsafe {
        libc::syscall(libc::SYS_close_range, WRUN_FD + 1, u32::MAX, 0);
        libc::prctl(libc::PR_SET_NAME, c"wrun-monitor".as_ptr(), 0, 0, 0);
        libc::fcntl(READY_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(WRUN_FD, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: the fd the CLI handed over, ours alone.
    let mut ready = Ready(Some(File::from(unsafe { OwnedFd::from_raw_fd(READY_FD) })));
    let code = match parse(std::env::args_os().skip(1)).and_then(|a| monitor(&a, &mut ready)) {
        Ok(()) => 0,
        Err(e) => {
            ready.say(&format!("err 125 {e}"));
            1
        }
    };
    std::process::exit(code);
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn monitor(a: &Args, ready: &mut Ready) -> Result<(), String> {
    // Not pinning the directory the CLI ran in (the paths we were given are absolute).
    let _ = std::env::set_current_dir("/");
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(os_err("prctl(PR_SET_CHILD_SUBREAPER)"));
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&a.lock)
        .map_err(|e| format!("open {}: {e}", a.lock.display()))?;
    // SAFETY: flock on a valid fd.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!("container {}: already running under a monitor", a.id));
    }
    let children = Children::new()?;
    let mut log =
        log::Writer::open(&a.log, a.max_size, a.max_file).map_err(|e| format!("open {}: {e}", a.log.display()))?;
    let mut first = true;
    loop {
        let run = match begin(a, &children)? {
            Began::Pid(run) => run,
            Began::Stop => break,
            Began::Failed(line) => {
                if first {
                    ready.say(&line);
                }
                break;
            }
        };
        if first {
            ready.say("ok");
            first = false;
        }
        let (code, health_restart) = run.watch(a, &children, &mut log);
        let mut end = step(a, "end");
        end.arg("--code").arg(code.to_string());
        if health_restart {
            end.arg("--health-restart");
        }
        let out = end.arg(&a.id).stdout(Stdio::piped()).output().map(|o| o.stdout);
        if !out.is_ok_and(|o| o.trim_ascii() == b"again") {
            break;
        }
    }
    drop(lock);
    Ok(())
}

/// A `wrun container step WHAT` command: run from the wrun the CLI handed over.
fn step(a: &Args, what: &str) -> Command {
    let mut c = Command::new(format!("/proc/self/fd/{WRUN_FD}"));
    c.arg0("wrun")
        .arg("container")
        .arg("--data-root")
        .arg(&a.data_root)
        .arg("step")
        .arg(what)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err("pipe"));
    }
    // SAFETY: new fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// SIGCHLD as a readable fd (blocked for the whole process; std's spawn unblocks it in the
/// children it makes), and the reaping of any child.
struct Children(OwnedFd);

impl Children {
    fn new() -> Result<Children, String> {
        // SAFETY: a signal set we fill, then sigprocmask and signalfd with it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(os_err("block SIGCHLD"));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(os_err("signalfd"));
            }
            Ok(Children(OwnedFd::from_raw_fd(fd)))
        }
    }

    /// Every child that has ended: (pid, `status_code`).
    fn reap(&self) -> Vec<(i32, i32)> {
        let mut buf = [0u8; 128 * 8];
        // SAFETY: reading pending signal records into our buffer (non-blocking).
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        let mut out = Vec::new();
        loop {
            let mut st = 0;
            // SAFETY: waitpid for any child, not blocking.
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if pid <= 0 {
                return out;
            }
            out.push((pid, status_code(st)));
        }
    }
}

/// A wait status as a shell gives it: the exit code, or 128+N for signal N.
fn status_code(st: i32) -> i32 {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        128 + libc::WTERMSIG(st)
    }
}

enum Began {
    Pid(Run),
    Stop,
    Failed(String),
}

/// A started run: its init, and the ends of its stdio the monitor keeps.
struct Run {
    init: i32,
    /// Output streams still open: stdout and stderr, or the terminal alone.
    streams: Vec<(OwnedFd, log::Lines)>,
    /// The write end of `-i`'s stdin: held (never written) for as long as the run.
    _stdin: Option<OwnedFd>,
}

/// Start a run through `step begin`.
fn begin(a: &Args, children: &Children) -> Result<Began, String> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (res_r, res_w) = pipe()?;
    let (stdin, stdin_child) = if a.stdin {
        let (r, w) = pipe()?;
        (Some(w), Stdio::from(r))
    } else {
        (None, Stdio::null())
    };
    let console = if a.tty { Some(Console::bind()?) } else { None };
    let mut cmd = step(a, "begin");
    if let Some(c) = &console {
        cmd.arg("--console-socket").arg(&c.path);
    }
    cmd.arg("--result-fd").arg("3").arg(&a.id);
    cmd.stdin(stdin_child)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let rfd = res_w.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if rfd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(rfd, 3)
            };
            if ok < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("run wrun container step begin: {e}"))?;
    // Our copies of the child's ends go now: the pipes end when the container's do.
    drop(cmd);
    drop(res_w);
    let mut master = None;
    let line = read_result(res_r, console.as_ref(), &mut master);
    // The step is reaped with the run's children; when it started nothing, here.
    let began = if let Some(pid) = line.strip_prefix("pid ").and_then(|p| p.trim().parse().ok()) {
        Began::Pid(Run {
            init: pid,
            streams: match master {
                Some(m) => vec![(m, log::Lines::new("stdout"))],
                None => vec![(out_r, log::Lines::new("stdout")), (err_r, log::Lines::new("stderr"))],
            },
            _stdin: stdin,
        })
    } else if line.trim() == "stop" {
        Began::Stop
    } else if line.starts_with("err ") {
        Began::Failed(line.trim_end().to_string())
    } else {
        Began::Failed("err 125 the run ended without a result".into())
    };
    if !matches!(began, Began::Pid(_)) {
        let mut st = 0;
        // SAFETY: waitpid for the step we started.
        unsafe { libc::waitpid(child.id() as i32, &mut st, 0) };
        let _ = children.reap();
    }
    Ok(began)
}

/// The result line of `step begin` (empty if it ended without one), accepting the terminal's
/// master from the runtime meanwhile when there is a console socket.
fn read_result(res: OwnedFd, console: Option<&Console>, master: &mut Option<OwnedFd>) -> String {
    let mut res = File::from(res);
    let mut line = Vec::new();
    loop {
        let mut fds = vec![libc::pollfd {
            fd: res.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(c) = console.filter(|_| master.is_none()) {
            fds.push(libc::pollfd {
                fd: c.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: poll on our fds.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        if fds.len() > 1 && fds[1].revents != 0 {
            if let Some(c) = console {
                *master = c.accept();
            }
        }
        if fds[0].revents != 0 {
            let mut b = [0u8; 512];
            match res.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    line.extend_from_slice(&b[..n]);
                    if line.contains(&b'\n') {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// The socket the runtime sends a terminal's master to (`--console-socket`).
struct Console {
    path: PathBuf,
    listener: std::os::unix::net::UnixListener,
}

impl Console {
    fn bind() -> Result<Console, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!("wrun-monitor-{}-{nanos}.sock", std::process::id()));
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| format!("console socket {}: {e}", path.display()))?;
        Ok(Console { path, listener })
    }

    fn accept(&self) -> Option<OwnedFd> {
        let (conn, _) = self.listener.accept().ok()?;
        wrun_sys::fdpass::recv_fd(conn.as_raw_fd(), "the pty master").ok()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

mod watch;
