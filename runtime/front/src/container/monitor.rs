//! The per-container monitor of a detached container (`run -d`, `start`), as conmon is for
//! podman: a small process of its own session that outlives the CLI, runs the container
//! through the lifecycle library, writes its output to the json-file log, records its exit
//! status, and applies its restart policy. Nothing else is long-lived: the CLI only reads
//! records and signals.
//!
//! The CLI learns through a pipe (`--ready-fd`) whether the container started: "ok", or
//! "err CODE MESSAGE" (docker's 125/126/127) when its process could not run.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wrun_image::store::Store;

use super::{logs, run, Containers, Record, Result, Status};

/// Whether `pid` is the monitor of container `id` (and not a process that reused the pid).
pub fn alive(pid: i32, id: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("\0monitor\0") && c.contains(id)
        })
        .unwrap_or(false)
}

/// Wait until the monitor `pid` of `id` has exited, up to `timeout`; false if it has not.
pub fn wait_gone(pid: i32, id: &str, timeout: Duration) -> bool {
    let t = Instant::now();
    while alive(pid, id) {
        if t.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Start the monitor of created container `rec` from this (sealed) binary, and wait until
/// it says the container runs. Returns the exit code docker gives a failed start with the
/// message, if it failed.
pub fn spawn(data_root: &Path, rec: &Record) -> std::result::Result<(), (i32, String)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| (125, format!("pipe: {e}")))?;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg("container")
        .arg("--data-root")
        .arg(data_root)
        .arg("monitor")
        .arg("--ready-fd")
        .arg("3")
        .arg(&rec.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let wfd = w.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::setsid() < 0 || libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| (125, format!("start the monitor: {e}")));
    drop(w);
    let child = child?;
    // Not waited for: it outlives us, and init reaps it.
    std::mem::forget(child);
    // The first line: the monitor's pipe may stay open after it (in the container's runs).
    let mut answer = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(File::from(r)), &mut answer);
    let answer = answer.trim_end();
    if answer == "ok" {
        return Ok(());
    }
    if let Some(rest) = answer.strip_prefix("err ") {
        let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        return Err((code.parse().unwrap_or(125), msg.to_string()));
    }
    Err((125, "the monitor ended before the container started".into()))
}

/// Tells the CLI once, from whichever thread knows first.
struct Ready(Mutex<Option<File>>);

impl Ready {
    fn say(&self, what: &str) {
        if let Some(mut f) = self.0.lock().ok().and_then(|mut g| g.take()) {
            let _ = writeln!(f, "{what}");
        }
    }
}

/// The monitor's main: run container `id` until its policy is done with it.
pub fn main(data_root: &Path, id: &str, ready_fd: Option<i32>) -> i32 {
    if let Some(fd) = ready_fd {
        // SAFETY: fcntl on the fd the CLI handed over.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: the fd the CLI handed over, ours alone.
    let ready = Arc::new(Ready(Mutex::new(
        ready_fd.map(|fd| File::from(unsafe { OwnedFd::from_raw_fd(fd) })),
    )));
    match monitor(data_root, id, &ready) {
        Ok(()) => 0,
        Err(e) => {
            ready.say(&format!("err {} {e}", run::exit_code_of(&e)));
            1
        }
    }
}

/// `containers/<id>/monitor.lock`: held by a container's monitor for its whole life.
fn lock_file(cs: &Containers, id: &str) -> Result<File> {
    let p = cs.dir_of(id).join("monitor.lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&p)
        .map_err(super::io(format!("open {}", p.display())))
}

fn try_lock(f: &File) -> bool {
    // SAFETY: flock on a valid fd.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Wait, up to `timeout`, until no monitor of `id` is left (one that is finishing a run it
/// was stopped in); false if one still holds its lock.
pub fn wait_no_monitor(cs: &Containers, id: &str, timeout: Duration) -> Result<bool> {
    let f = lock_file(cs, id)?;
    let t = Instant::now();
    while !try_lock(&f) {
        if t.elapsed() > timeout {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(true)
}

fn monitor(data_root: &Path, id: &str, ready: &Arc<Ready>) -> Result<()> {
    let st = Store::open(data_root)?;
    let cs = Containers::open(data_root)?;
    // One monitor per container: a second `start` racing the first finds it here.
    let lock = lock_file(&cs, id)?;
    if !try_lock(&lock) {
        return Err(super::Error::Conflict(format!(
            "container {id}: already running under a monitor"
        )));
    }
    let me = std::process::id() as i32;
    let rec = cs.update(id, |r| r.monitor_pid = Some(me))?;
    let dir = cs.dir_of(id);
    let log = logs::Writer::open(&logs::path(&dir, id), rec.log_opts.clone())?;
    let mut first = true;
    loop {
        let rec = cs.load(id)?;
        if rec.stop_requested || rec.remove_requested {
            // Stopped between two runs of a restart policy.
            if rec.status == Status::Restarting {
                cs.update(id, |r| r.status = Status::Exited)?;
            }
            break;
        }
        // Its root filesystem and network namespace, made again for a restart.
        run::prepare_to_run(&st, &cs, &rec)?;
        let (out_r, out_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| super::io("pipe")(e.into()))?;
        let (err_r, err_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| super::io("pipe")(e.into()))?;
        let (res_r, res_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| super::io("pipe")(e.into()))?;
        // Checked again under the lock that `stop` and `rm -f` write through: a stop that came
        // after the check above is not lost.
        let rec = cs.update(id, |r| {
            if !(r.stop_requested || r.remove_requested) {
                r.status = Status::Running;
                r.started_at = Some(wrun_sys::timefmt::now());
                r.exit_code = None;
            } else if r.status == Status::Restarting {
                r.status = Status::Exited;
            }
        })?;
        if rec.stop_requested || rec.remove_requested {
            run::after_run(&st, &cs, &rec);
            break;
        }
        // The lifecycle library clones the container's init only from a single-threaded
        // process: the run is a child forked while this process has no other thread; it
        // writes its result ("N", or "err CODE MESSAGE") to `res`.
        // `-i`: a stdin that stays open for as long as this run (nothing is ever written).
        let stdin = if rec.open_stdin {
            Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| super::io("pipe")(e.into()))?)
        } else {
            None
        };
        // SAFETY: no other thread exists here (the last run's threads were joined).
        let child = match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // The CLI's pipe is the monitor's to answer, not the run's to hold open.
                drop(ready.0.lock().ok().and_then(|mut g| g.take()));
                let _ = nix::unistd::dup2(out_w.as_raw_fd(), 1);
                let _ = nix::unistd::dup2(err_w.as_raw_fd(), 2);
                if let Some((r, _)) = &stdin {
                    let _ = nix::unistd::dup2(r.as_raw_fd(), 0);
                }
                drop(stdin);
                drop((out_r, err_r, res_r, out_w, err_w));
                let msg = match run::run_once(&cs, &rec) {
                    Ok(code) => code.to_string(),
                    Err(e) => format!("err {} {}", run::exit_code_of(&e), e.to_string().replace('\n', " ")),
                };
                let _ = File::from(res_w).write_all(msg.as_bytes());
                std::process::exit(0);
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => child,
            Err(e) => return Err(super::io("fork the run")(e.into())),
        };
        drop((out_w, err_w, res_w));
        // The read end is the run's; the write end is held until the run ends.
        let _stdin_held = stdin.map(|(_, w)| w);
        let pumps = [(out_r, "stdout"), (err_r, "stderr")].map(|(fd, name)| {
            let w = log.clone();
            std::thread::spawn(move || logs::pump(File::from(fd), name, w))
        });
        // The CLI hears "ok" once the runtime says the container runs (or ran and ended);
        // the watcher gives up once the run is over (then the result tells).
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = first.then(|| {
            let (cs, id, ready, done) = (cs.clone(), id.to_string(), ready.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if matches!(cs.runtime_status(&id), Some("running" | "stopped" | "paused")) {
                        ready.say("ok");
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        super::events::emit(data_root, &rec, "start", &[]);
        let oom = {
            let (cs, rec, done, root) = (cs.clone(), rec.clone(), done.clone(), data_root.to_path_buf());
            std::thread::spawn(move || super::events::watch_oom(&root, &cs, &rec, &done))
        };
        // Its health check, beside the run (the fork above is done: threads are fine now).
        let health_restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checker = rec.health.clone().map(|cfg| {
            let (cs, id, done, again) = (cs.clone(), id.to_string(), done.clone(), health_restart.clone());
            let root = data_root.to_path_buf();
            std::thread::spawn(move || super::health::watch(&root, &cs, &id, &cfg, &done, &again))
        });
        let mut result = String::new();
        let _ = std::io::Read::read_to_string(&mut File::from(res_r), &mut result);
        let _ = nix::sys::wait::waitpid(child, None);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for p in pumps {
            let _ = p.join();
        }
        if let Some(c) = checker {
            let _ = c.join();
        }
        let _ = oom.join();
        let health_restart = health_restart.load(std::sync::atomic::Ordering::Relaxed);
        let r: std::result::Result<i32, (i32, String)> = match result.trim().strip_prefix("err ") {
            Some(rest) => {
                let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
                Err((code.parse().unwrap_or(125), msg.to_string()))
            }
            None => result
                .trim()
                .parse()
                .map_err(|_| (125, "the run ended without a result".to_string())),
        };
        let failed_start = r.as_ref().err().cloned();
        let code = match &r {
            Ok(c) => *c,
            Err((c, _)) => *c,
        };
        let rec = cs.update(id, |rec| {
            rec.status = if failed_start.is_some() {
                Status::Created
            } else {
                Status::Exited
            };
            rec.exit_code = Some(code);
            rec.finished_at = Some(wrun_sys::timefmt::now());
        })?;
        run::after_run(&st, &cs, &rec);
        if failed_start.is_none() {
            super::events::emit(data_root, &rec, "die", &[("exitCode", code.to_string())]);
        }
        // Told after the record says how it went: the CLI may read it at once. A run too
        // short for the watcher to see still started.
        if first {
            match &failed_start {
                Some((code, msg)) => ready.say(&format!("err {code} {msg}")),
                None => ready.say("ok"),
            }
        }
        if let Some(w) = watcher {
            let _ = w.join();
        }
        first = false;
        let stopped = rec.stop_requested || rec.remove_requested;
        if failed_start.is_some()
            || !(health_restart && !stopped || rec.restart.restarts(code, rec.restart_count, stopped))
        {
            break;
        }
        // docker's back-off: 100 ms, doubling, at most a minute.
        let delay = Duration::from_millis(100u64 << rec.restart_count.min(10)).min(Duration::from_secs(60));
        cs.update(id, |r| {
            r.status = Status::Restarting;
            r.restart_count += 1;
        })?;
        // Slept in steps: a stop during the back-off ends it at once.
        let t = Instant::now();
        while t.elapsed() < delay && !cs.load(id).is_ok_and(|r| r.stop_requested || r.remove_requested) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Only our own pid is cleared: a monitor `start` made after us keeps its.
    let rec = cs.update(id, |r| {
        if r.monitor_pid == Some(me) {
            r.monitor_pid = None;
        }
    })?;
    if rec.auto_remove && !rec.remove_requested {
        run::remove_made(&st, &cs, &rec)?;
        super::events::emit(data_root, &rec, "destroy", &[]);
    }
    Ok(())
}
