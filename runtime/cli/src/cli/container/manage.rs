//! The verbs that act on existing containers: start, stop, restart, kill, wait, logs, top,
//! rename.

use std::io::Write;

use wrun_front::container::{Containers, Record, Status};

use super::{LogsArgs, RenameArgs, TopArgs};

/// `f` for each name; its name printed on success, the errors on stderr (docker goes on with
/// the others and fails at the end).
pub(super) fn each(names: &[String], f: impl Fn(&str) -> anyhow::Result<()>) -> anyhow::Result<i32> {
    let mut failed = None;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) if names.len() == 1 => return Err(e),
            Err(e) => {
                eprintln!("wrun: error: {e:#}");
                failed = Some(e);
            }
        }
    }
    Ok(if failed.is_some() { 1 } else { 0 })
}

pub(super) fn running(cs: &Containers, id: &str) -> bool {
    cs.runtime_status(id).is_some_and(|s| s != "stopped")
}

/// Wait until container `id` is neither running nor restarting (and its monitor has recorded
/// it), up to `timeout`; returns its record.
pub(super) fn wait_stopped(cs: &Containers, id: &str, timeout: Option<std::time::Duration>) -> Record {
    let t = std::time::Instant::now();
    loop {
        let rec = cs.find(id).ok();
        let settled = rec
            .as_ref()
            .is_none_or(|r| !matches!(r.status, Status::Running | Status::Restarting));
        if settled {
            if let Some(r) = rec {
                return r;
            }
        }
        if timeout.is_some_and(|d| t.elapsed() > d) {
            if let Some(r) = rec {
                return r;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// docker's stop: the stop signal, up to `time` seconds, then SIGKILL; no restart policy
/// brings it back.
pub(crate) fn stop(cs: &Containers, name: &str, time: Option<u32>, signal: Option<&str>) -> anyhow::Result<()> {
    let rec = cs.find(name)?;
    let rec = cs.update(&rec.id, |r| r.stop_requested = true)?;
    if !running(cs, &rec.id) {
        return Ok(());
    }
    let sig = signal.or(rec.stop_signal.as_deref()).unwrap_or("SIGTERM");
    let sig = wrun_sys::signal::parse(sig)?;
    let _ = wrun::container::kill(cs.runtime_root(), &rec.id, sig, false);
    let grace = std::time::Duration::from_secs(time.or(rec.stop_timeout).unwrap_or(10) as u64);
    let t = std::time::Instant::now();
    while running(cs, &rec.id) && t.elapsed() < grace {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if running(cs, &rec.id) {
        let _ = wrun::container::kill(cs.runtime_root(), &rec.id, wrun_sys::signal::parse("SIGKILL")?, true);
    }
    wait_stopped(cs, &rec.id, Some(std::time::Duration::from_secs(10)));
    // Its monitor then takes down what the run held (the network, a published port): stop
    // returns once the port is free again, as docker's.
    let _ = wrun_front::container::monitor::wait_no_monitor(cs, &rec.id, std::time::Duration::from_secs(10));
    Ok(())
}

/// Start a created or stopped container under a monitor (a running one is left alone).
pub(super) fn start(root: &std::path::Path, cs: &Containers, name: &str) -> anyhow::Result<()> {
    let rec = cs.find(name)?;
    if matches!(rec.status, Status::Running | Status::Restarting) {
        return Ok(());
    }
    // A monitor still finishing the run it was stopped in is waited for: two would share
    // the root filesystem and the record.
    if !wrun_front::container::monitor::wait_no_monitor(cs, &rec.id, std::time::Duration::from_secs(10))? {
        anyhow::bail!("container {name}: its monitor is still finishing the last run; try again");
    }
    let rec = cs.update(&rec.id, |r| {
        r.stop_requested = false;
        r.restart_count = 0;
        r.auto_remove = r.auto_remove && r.restart == wrun_front::container::RestartPolicy::No;
    })?;
    wrun_front::container::monitor::spawn(root, &rec).map_err(|(_, msg)| anyhow::anyhow!("{msg}"))
}

pub(super) fn logs(root: &std::path::Path, a: &LogsArgs) -> anyhow::Result<()> {
    use wrun_front::container::logs as l;
    let cs = Containers::open(root)?;
    let rec = cs.find(&a.name)?;
    let path = l::path(&cs.dir_of(&rec.id), &rec.id);
    let tail: Option<usize> = match a.tail.as_str() {
        "all" => None,
        t => Some(
            t.parse()
                .map_err(|_| anyhow::anyhow!("--tail {t:?}: a number or \"all\""))?,
        ),
    };
    let show = |e: &l::Entry| {
        let line = if a.timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        if e.stream == "stderr" {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(line.as_bytes());
            let _ = o.flush();
        }
    };
    // Streamed: only the last N entries are held for --tail N, never the whole log.
    let mut last = std::collections::VecDeque::new();
    let mut off = l::for_each(&path, rec.log_opts.max_file.unwrap_or(1), |e| match tail {
        None => show(&e),
        Some(0) => {}
        Some(n) => {
            if last.len() == n {
                last.pop_front();
            }
            last.push_back(e);
        }
    });
    last.iter().for_each(show);
    if !a.follow {
        return Ok(());
    }
    loop {
        let live = cs
            .find(&rec.id)
            .is_ok_and(|r| matches!(r.status, Status::Running | Status::Restarting));
        // Everything there is now, 1 MiB at a time.
        loop {
            let (new, next) = l::read_from(&path, off);
            new.iter().for_each(show);
            let more = next != off;
            off = next;
            if !more {
                break;
            }
        }
        if !live {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// docker's top: `ps` (options as given, default `-ef`) cut to the container's processes,
/// found by the PID column of ps's header.
pub(super) fn top(cs: &Containers, a: &TopArgs) -> anyhow::Result<()> {
    let rec = cs.find(&a.name)?;
    if !running(cs, &rec.id) {
        anyhow::bail!("container {} is not running", rec.name);
    }
    let pids = wrun::container::pids(cs.runtime_root(), &rec.id)?;
    let opts: Vec<String> = if a.ps_options.is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_options.clone()
    };
    let o = std::process::Command::new("ps")
        .args(&opts)
        .output()
        .map_err(|e| anyhow::anyhow!("top: run ps: {e}"))?;
    if !o.status.success() {
        let e = String::from_utf8_lossy(&o.stderr);
        anyhow::bail!("top: ps {}: {}", opts.join(" "), e.lines().next().unwrap_or("failed"));
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("top: ps {}: its output has no PID column", opts.join(" ")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(out, "{l}")?;
        }
    }
    Ok(())
}

/// `container rename OLD NEW`: the name checked and taken under the containers lock.
pub(super) fn rename(cs: &Containers, a: &RenameArgs) -> anyhow::Result<()> {
    cs.rename(&a.name, &a.new_name)?;
    Ok(())
}
