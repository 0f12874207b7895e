//! The per-container monitor of a detached container (`run -d`, `start`), as conmon is for
//! podman: `wrun-monitor`, a small binary of its own (installed beside `wrun`) that outlives
//! the CLI in a session of its own. It holds the container's output pipes (or its terminal)
//! and writes them to the json-file log, is the subreaper that reaps the container's init,
//! times the health checks and watches for OOM kills. Everything that knows the record, the
//! image store, the network or the runtime's state is done by short-lived `wrun container step`
//! processes it starts from the (sealed) wrun binary: `begin` makes what a run needs and starts
//! the container, `health` runs one check, `event` records an event, and `end` takes a run
//! down and applies the restart policy. So what stays resident per container is the small
//! binary alone, not the 30 MB runtime.
//!
//! The CLI learns through a pipe (`--ready-fd`) whether the container started: "ok", or
//! "err CODE MESSAGE" (docker's 125/126/127) when its process could not run.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wrun_image::store::Store;

use super::{logs, run, Containers, Record, Result, Status};

/// The monitor's program name, in its command line and beside `wrun`.
pub const BINARY: &str = "wrun-monitor";

/// `step health`'s exit status when the container is to run again whatever its restart
/// policy says (`--health-on-failure restart`).
pub const HEALTH_RESTART: i32 = 3;

/// Whether `pid` is the monitor of container `id` (and not a process that reused the pid).
pub fn alive(pid: i32, id: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let c = String::from_utf8_lossy(&c);
            c.starts_with(BINARY) && c.split('\0').any(|a| a == id)
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

/// `fd` duplicated to 10 or above (close-on-exec): the child's dup2 onto 3 and 4 cannot
/// clobber it.
fn high(fd: RawFd) -> std::result::Result<OwnedFd, (i32, String)> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we own.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err((125, format!("dup: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Whether the container's config gives its process a terminal.
fn wants_terminal(dir: &Path) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["process"]["terminal"] == true)
}

/// Start the monitor of created container `rec`, and wait until it says the container runs.
/// Returns the exit code docker gives a failed start with the message, if it failed.
pub fn spawn(data_root: &Path, rec: &Record) -> std::result::Result<(), (i32, String)> {
    let fail = |what: &str, e: &dyn std::fmt::Display| (125, format!("start the monitor: {what}: {e}"));
    let wrun = wrun::linux::exeseal::original_exe().map_err(|e| fail("readlink /proc/self/exe", &e))?;
    let bin = wrun.with_file_name(BINARY);
    if !bin.is_file() {
        return Err((
            125,
            format!("{}: not found; wrun-monitor is installed beside wrun", bin.display()),
        ));
    }
    // The monitor runs from a view of its binary that cannot be written through, as wrun does.
    let view = wrun::linux::exeseal::sealed_view(&bin).map_err(|e| fail(&bin.display().to_string(), &e))?;
    let view = high(view.as_raw_fd())?;
    // The steps run from the same (sealed) wrun as this process.
    let me = File::open("/proc/self/exe").map_err(|e| fail("open /proc/self/exe", &e))?;
    let me = high(me.as_raw_fd())?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail("pipe", &e))?;
    let w = high(w.as_raw_fd())?;
    // Absolute: the monitor does not stay in the directory the CLI ran in.
    let data_root = &std::path::absolute(data_root).map_err(|e| fail("the data root", &e))?;
    let dir = Containers::open(data_root)
        .map_err(|e| (125, e.to_string()))?
        .dir_of(&rec.id);
    let mut cmd = std::process::Command::new(format!("/proc/self/fd/{}", view.as_raw_fd()));
    cmd.arg0(BINARY)
        .arg("--data-root")
        .arg(data_root)
        .arg("--lock")
        .arg(dir.join("monitor.lock"))
        .arg("--log")
        .arg(logs::path(&dir, &rec.id))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(n) = rec.log_opts.max_size {
        cmd.arg("--log-max-size").arg(n.to_string());
    }
    if let Some(n) = rec.log_opts.max_file {
        cmd.arg("--log-max-file").arg(n.to_string());
    }
    if let Some(h) = &rec.health {
        cmd.arg("--health-ms").arg(h.interval_ms.to_string());
    }
    if rec.open_stdin {
        cmd.arg("--stdin");
    }
    if wants_terminal(&dir) {
        cmd.arg("--tty");
    }
    cmd.arg(&rec.id);
    let (wfd, mefd) = (w.as_raw_fd(), me.as_raw_fd());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::dup2(wfd, 3) < 0 || libc::dup2(mefd, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| fail(&bin.display().to_string(), &e));
    drop((w, me, view));
    // Not waited for: it outlives us, and init reaps it.
    std::mem::forget(child?);
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

/// The monitor that started this step: its parent.
fn monitor_pid() -> i32 {
    nix::unistd::getppid().as_raw()
}

/// The monitor is done with container `id`: its pid leaves the record (only its own: a
/// monitor `start` made after it keeps its), and `--rm` removes the container.
fn finish(st: &Store, cs: &Containers, id: &str) -> Result<()> {
    let me = monitor_pid();
    let rec = cs.update(id, |r| {
        if r.monitor_pid == Some(me) {
            r.monitor_pid = None;
        }
    })?;
    if rec.auto_remove && !rec.remove_requested {
        run::remove_made(st, cs, &rec)?;
        super::events::emit(cs.data_root(), &rec, "destroy", &[]);
    }
    Ok(())
}

/// `step begin`: make what a run of container `id` needs and start it (its output goes
/// where this process's goes). Returns the line for the monitor: "pid N" (the init, which
/// the monitor reaps once this process has exited), "stop" (stopped before it ran), or
/// "err CODE MESSAGE" (it could not start; the record says so).
pub fn begin(data_root: &Path, id: &str, console: Option<PathBuf>) -> String {
    let r = (|| -> Result<Option<i32>> {
        let st = Store::open(data_root)?;
        let cs = Containers::open(data_root)?;
        let rec = cs.update(id, |r| r.monitor_pid = Some(monitor_pid()))?;
        if rec.stop_requested || rec.remove_requested {
            // Stopped between two runs of a restart policy.
            if rec.status == Status::Restarting {
                cs.update(id, |r| r.status = Status::Exited)?;
            }
            finish(&st, &cs, id)?;
            return Ok(None);
        }
        // Its root filesystem and network namespace, made again for a restart.
        run::prepare_to_run(&st, &cs, &rec)?;
        // Checked again under the lock that `stop` and `rm -f` write through: a stop that came
        // after the check above is not lost.
        let rec = cs.update(id, |r| {
            if !(r.stop_requested || r.remove_requested) {
                r.status = Status::Running;
                r.started_at = Some(wrun_sys::timefmt::now());
                r.exit_code = None;
                if r.health.is_some() {
                    let h = r.health_state.get_or_insert_with(Default::default);
                    h.status = "starting".into();
                    h.failing_streak = 0;
                }
            } else if r.status == Status::Restarting {
                r.status = Status::Exited;
            }
        })?;
        if rec.stop_requested || rec.remove_requested {
            run::after_run(&st, &cs, &rec);
            finish(&st, &cs, id)?;
            return Ok(None);
        }
        super::events::emit(data_root, &rec, "start", &[]);
        match run::start_detached(&cs, &rec, console) {
            Ok(pid) => Ok(Some(pid)),
            Err(e) => {
                let code = run::exit_code_of(&e);
                // As docker: a container whose process could not start stays created.
                let rec = cs.update(id, |r| {
                    r.status = Status::Created;
                    r.exit_code = Some(code);
                    r.finished_at = Some(wrun_sys::timefmt::now());
                })?;
                run::after_run(&st, &cs, &rec);
                let _ = finish(&st, &cs, id);
                Err(e)
            }
        }
    })();
    match r {
        Ok(Some(pid)) => format!("pid {pid}"),
        Ok(None) => "stop".into(),
        Err(e) => format!("err {} {}", run::exit_code_of(&e), e.to_string().replace('\n', " ")),
    }
}

/// `step health`: one health check of container `id`, whose run started `since` ago; returns
/// the step's exit status (`HEALTH_RESTART` when the container is to run again).
pub fn health(data_root: &Path, id: &str, since: Duration) -> Result<i32> {
    let cs = Containers::open(data_root)?;
    let rec = cs.load(id)?;
    let Some(cfg) = rec.health else { return Ok(0) };
    Ok(if super::health::check(data_root, &cs, id, &cfg, since) {
        HEALTH_RESTART
    } else {
        0
    })
}

/// `step event`: record `action` (an `oom`) for container `id`.
pub fn event(data_root: &Path, id: &str, action: &str) -> Result<()> {
    let cs = Containers::open(data_root)?;
    super::events::emit(data_root, &cs.load(id)?, action, &[]);
    Ok(())
}

/// `step end`: the run of container `id` ended with `code` (128+N for signal N): take it down,
/// record it, and apply the restart policy. Returns "again" (after the back-off) or "done".
pub fn end(data_root: &Path, id: &str, code: i32, health_restart: bool) -> Result<&'static str> {
    let st = Store::open(data_root)?;
    let cs = Containers::open(data_root)?;
    if cs.runtime_status(id).is_some() {
        if let Err(e) = wrun::container::delete(cs.runtime_root(), id, true) {
            eprintln!("wrun: container {id}: {e}");
        }
    }
    let rec = cs.update(id, |r| {
        r.status = Status::Exited;
        r.exit_code = Some(code);
        r.finished_at = Some(wrun_sys::timefmt::now());
    })?;
    run::after_run(&st, &cs, &rec);
    super::events::emit(data_root, &rec, "die", &[("exitCode", code.to_string())]);
    let stopped = rec.stop_requested || rec.remove_requested;
    if !(health_restart && !stopped || rec.restart.restarts(code, rec.restart_count, stopped)) {
        finish(&st, &cs, id)?;
        return Ok("done");
    }
    // docker's back-off: 100 ms, doubling, at most a minute.
    let delay = Duration::from_millis(100u64 << rec.restart_count.min(10)).min(Duration::from_secs(60));
    cs.update(id, |r| {
        r.status = Status::Restarting;
        r.restart_count += 1;
    })?;
    // Slept in steps: a stop during the back-off ends it at once (`begin` then finds it).
    let t = Instant::now();
    while t.elapsed() < delay && !cs.load(id).is_ok_and(|r| r.stop_requested || r.remove_requested) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok("again")
}

/// Write `line` to the monitor's result pipe (fd 3 of `step begin`).
pub fn answer(fd: RawFd, line: &str) {
    // SAFETY: the fd the monitor handed over, ours alone.
    let mut f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let _ = writeln!(f, "{line}");
}
