//! Detached containers (`run -d`) and their monitor: logs, stop, kill, start, wait, restart
//! policies, and `rm -f` of a running one leaving nothing.

use std::time::{Duration, Instant};

use super::*;

/// `run -d ARGS`: the full id it prints.
pub(super) fn detach(f: &Front, args: &[&str]) -> String {
    let mut full = vec!["run", "-d"];
    full.extend_from_slice(args);
    let o = f.container(&full);
    assert_ok(&o, &format!("wrun container {}", full.join(" ")));
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the id: {id:?}");
    id
}

fn logs(f: &Front, name: &str) -> String {
    let o = f.container(&["logs", name]);
    assert_ok(&o, "logs");
    stdout(&o) + &stderr(&o)
}

#[track_caller]
pub(super) fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn status(f: &Front, name: &str) -> String {
    inspect(f, name)["status"].as_str().unwrap_or("").to_string()
}

/// Container `id`'s cgroup directories, found by name under /sys/fs/cgroup.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let o = run_cmd(
        Command::new("find").args(["/sys/fs/cgroup", "-maxdepth", "7", "-type", "d", "-name", id]),
        None,
    );
    stdout(&o).lines().map(PathBuf::from).collect()
}

#[test]
fn a_detached_container_logs_follows_stops_starts_and_waits() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:d", &["CMD [\"sh\"]"]);
    // Counts its runs in its own root filesystem (kept between runs), then ticks until TERM,
    // which it answers by exiting 0 (a shell as pid 1 ignores TERM unless it traps it).
    let script = "n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; echo run $n; echo to-stderr >&2; \
                  trap 'echo got-term; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done";
    let id = detach(&f, &["--name", "ticker", "bb:d", "sh", "-c", script]);
    let ls = stdout(&f.container(&["ls"]));
    assert!(
        ls.lines().any(|l| l.starts_with(&id[..12]) && l.contains("Up ")),
        "{ls}"
    );
    // The monitor: its own session, outliving the CLI that started it.
    let mon = inspect(&f, "ticker")["monitor_pid"].as_i64().expect("a monitor pid") as i32;
    let sid = fs::read_to_string(format!("/proc/{mon}/stat")).unwrap();
    assert_eq!(
        sid.split_whitespace().nth(5),
        Some(mon.to_string().as_str()),
        "the monitor leads its session"
    );
    // logs -f follows the live container until it stops.
    let follow =
        f.rt.spawn(&["container", "--data-root", f.data_root(), "logs", "-f", "ticker"]);
    wait_until("ticks in the log", Duration::from_secs(10), || {
        logs(&f, "ticker").contains("tick 3")
    });
    let o = f.container(&["logs", "--tail", "1", "ticker"]);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    assert!(
        stderr(&f.container(&["logs", "ticker"])).contains("to-stderr"),
        "stderr is its own stream"
    );
    let t = stdout(&f.container(&["logs", "-t", "--tail", "1", "ticker"]));
    assert!(t.starts_with("20") && t.contains("Z tick"), "{t}");
    // stop: TERM, answered at once.
    let t0 = Instant::now();
    assert_ok(&f.container(&["stop", "-t", "10", "ticker"]), "stop");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "TERM was enough: {:?}",
        t0.elapsed()
    );
    assert_eq!(status(&f, "ticker"), "exited");
    assert_eq!(inspect(&f, "ticker")["exit_code"], 0);
    let followed = follow.wait_timeout(Duration::from_secs(10));
    assert!(
        stdout(&followed).contains("got-term"),
        "logs -f saw the end: {}",
        stdout(&followed)
    );
    assert_eq!(stdout(&f.container(&["wait", "ticker"])).trim(), "0");
    // start: again, with the writes of the first run.
    assert_ok(&f.container(&["start", "ticker"]), "start");
    wait_until("the second run", Duration::from_secs(10), || {
        logs(&f, "ticker").contains("run 2")
    });
    assert_eq!(status(&f, "ticker"), "running");
    // kill: the signal the user names.
    assert_ok(&f.container(&["kill", "-s", "TERM", "ticker"]), "kill");
    assert_eq!(stdout(&f.container(&["wait", "ticker"])).trim(), "0");
    assert_ok(&f.container(&["rm", "ticker"]), "rm");
    assert!(cgroup_dirs(&id).is_empty(), "cgroups left: {:?}", cgroup_dirs(&id));
    f.assert_nothing_left();
}

#[test]
fn stop_sends_the_stop_signal_then_sigkill_after_the_timeout() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:stop", &["CMD [\"sh\"]"]);
    // A pid 1 shell without a trap ignores TERM: only the SIGKILL after -t ends it (137).
    detach(
        &f,
        &[
            "--name",
            "stubborn",
            "bb:stop",
            "sh",
            "-c",
            "while true; do sleep 0.1; done",
        ],
    );
    let t0 = Instant::now();
    assert_ok(&f.container(&["stop", "-t", "1", "stubborn"]), "stop");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "SIGKILL came before the timeout: {took:?}"
    );
    assert_eq!(inspect(&f, "stubborn")["exit_code"], 137);
    // --stop-signal: the one the container asked for.
    detach(
        &f,
        &[
            "--name",
            "usr1",
            "--stop-signal",
            "SIGUSR1",
            "bb:stop",
            "sh",
            "-c",
            "trap 'exit 42' USR1; while true; do sleep 0.1; done",
        ],
    );
    assert_ok(&f.container(&["stop", "usr1"]), "stop with the container's stop signal");
    assert_eq!(inspect(&f, "usr1")["exit_code"], 42);
    assert_ok(&f.container(&["rm", "stubborn", "usr1"]), "rm both");
    f.assert_nothing_left();
}

#[test]
fn restart_policies_restart_as_docker_and_stop_ends_them() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:restart", &["CMD [\"sh\"]"]);
    detach(
        &f,
        &[
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            "bb:restart",
            "sh",
            "-c",
            "echo run; exit 3",
        ],
    );
    wait_until("on-failure:2 to give up", Duration::from_secs(20), || {
        let v = inspect(&f, "flaky");
        v["status"] == "exited" && v["restart_count"] == 2
    });
    assert_eq!(
        logs(&f, "flaky").matches("run\n").count(),
        3,
        "the first run and two restarts"
    );
    detach(&f, &["--name", "fine", "--restart", "on-failure", "bb:restart", "true"]);
    wait_until("a clean exit", Duration::from_secs(10), || {
        status(&f, "fine") == "exited"
    });
    assert_eq!(inspect(&f, "fine")["restart_count"], 0, "exit 0 is not a failure");
    detach(
        &f,
        &[
            "--name",
            "forever",
            "--restart",
            "always",
            "bb:restart",
            "sh",
            "-c",
            "echo up; sleep 0.2",
        ],
    );
    wait_until("always to restart", Duration::from_secs(20), || {
        inspect(&f, "forever")["restart_count"].as_u64().unwrap_or(0) >= 2
    });
    assert_ok(&f.container(&["stop", "-t", "1", "forever"]), "stop");
    let count = inspect(&f, "forever")["restart_count"].clone();
    std::thread::sleep(Duration::from_millis(800));
    let v = inspect(&f, "forever");
    assert_eq!(v["restart_count"], count, "stopped: no more restarts");
    assert_eq!(v["status"], "exited");
    f.refused_keeping(
        &["--rm", "-d", "--restart", "always", "bb:restart", "true"],
        "conflicting",
    );
    f.refused_keeping(&["--restart", "sometimes", "-d", "bb:restart", "true"], "--restart");
    f.refused_keeping(&["--log-opt", "max-size=0", "-d", "bb:restart", "true"], "max-size");
    assert_ok(&f.container(&["rm", "flaky", "fine", "forever"]), "rm");
    f.assert_nothing_left();
}

#[test]
fn rm_f_of_a_running_container_leaves_nothing_and_rm_d_removes_itself() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:rmf", &["CMD [\"sh\"]"]);
    let id = detach(&f, &["--name", "busy", "bb:rmf", "sleep", "1000"]);
    let mon = inspect(&f, "busy")["monitor_pid"].as_i64().unwrap() as i32;
    assert!(!cgroup_dirs(&id).is_empty(), "a running container has its cgroup");
    let o = f.container(&["rm", "busy"]);
    assert!(!o.status.success() && stderr(&o).contains("running"), "{}", stderr(&o));
    assert_ok(&f.container(&["rm", "-f", "busy"]), "rm -f");
    // Gone, or a zombie of whatever reaper it was handed to once its CLI exited.
    let state = fs::read_to_string(format!("/proc/{mon}/stat")).unwrap_or_default();
    let state = state
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    assert!(
        state.is_empty() || state == "Z",
        "the monitor {mon} still runs ({state})"
    );
    assert!(cgroup_dirs(&id).is_empty(), "cgroups left: {:?}", cgroup_dirs(&id));
    f.assert_nothing_left();
    // --rm -d: the monitor removes the container when it ends.
    detach(&f, &["--rm", "--name", "brief", "bb:rmf", "true"]);
    wait_until("the --rm container to go", Duration::from_secs(10), || {
        !stdout(&f.container(&["ls", "-a"])).contains("brief")
    });
    f.assert_nothing_left();
    // A detached start failure: docker's 127 from run -d, the container left created.
    let o = f.container(&["run", "-d", "--name", "nocmd", "bb:rmf", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert_eq!(status(&f, "nocmd"), "created");
    assert_ok(&f.container(&["rm", "nocmd"]), "rm");
    f.assert_nothing_left();
}

#[test]
fn exec_runs_in_the_running_container_with_its_settings_and_docker_flags() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:exec", &["CMD [\"sh\"]", "ENV FROM_IMAGE=yes"]);
    detach(
        &f,
        &["--name", "target", "-e", "FROM_RUN=1", "bb:exec", "sleep", "1000"],
    );
    let ex = |args: &[&str]| {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        f.container(&full)
    };
    // The container's namespaces and env; -e adds; -w; -u resolved in the container.
    let o = ex(&[
        "-e",
        "EXTRA=2",
        "-w",
        "/tmp",
        "target",
        "sh",
        "-c",
        "echo $FROM_IMAGE $FROM_RUN $EXTRA; pwd; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_ok(&o, "exec");
    let out = stdout(&o);
    assert_eq!(out.lines().next(), Some("yes 1 2"), "{out}");
    assert_eq!(out.lines().nth(1), Some("/tmp"));
    assert!(
        out.lines().nth(2).unwrap_or("").starts_with("sleep 1000"),
        "pid 1 is the container's: {out}"
    );
    let o = ex(&["-u", "app", "target", "id"]);
    assert!(stdout(&o).starts_with("uid=1000(app) gid=1000(app)"), "{}", stdout(&o));
    // The container's seccomp filter and capabilities apply to the exec too.
    let o = ex(&["target", "grep", "-E", "Seccomp:|CapBnd", "/proc/self/status"]);
    assert!(
        stdout(&o).contains("Seccomp:\t2") && stdout(&o).contains("a80425fb"),
        "{}",
        stdout(&o)
    );
    // Its exit code; 127 for a command that is not there; a stopped container refuses.
    assert_eq!(ex(&["target", "sh", "-c", "exit 5"]).status.code(), Some(5));
    assert_eq!(ex(&["target", "no-such-command"]).status.code(), Some(127));
    // stdin only with -i.
    let o = f.container_stdin(&["exec", "-i", "target", "cat"], b"fed\n");
    assert_eq!(stdout(&o), "fed\n");
    assert_ok(&f.container(&["stop", "-t", "1", "target"]), "stop");
    let o = ex(&["target", "true"]);
    assert!(
        !o.status.success() && stderr(&o).contains("not running"),
        "{}",
        stderr(&o)
    );
    assert_ok(&f.container(&["rm", "target"]), "rm");
    f.assert_nothing_left();
}

#[test]
fn top_lists_only_the_containers_processes_and_rename_takes_a_free_name() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:top", &[]);
    detach(
        &f,
        &[
            "--name",
            "topper",
            "--network",
            "none",
            "bb:top",
            "sh",
            "-c",
            "sleep 61 & sleep 62; true",
        ],
    );
    let mut out = String::new();
    wait_until("both sleeps in top", Duration::from_secs(10), || {
        out = stdout(&f.container(&["top", "topper"]));
        out.contains("sleep 61") && out.contains("sleep 62")
    });
    let l: Vec<&str> = out.lines().collect();
    assert!(l[0].contains("PID") && l[0].contains("CMD"), "ps -ef's header: {out}");
    assert_eq!(l.len(), 4, "the header, sh and two sleeps: {out}");
    assert!(!out.contains("monitor"), "the monitor is not the container's: {out}");
    // ps options are passed on.
    let o = f.container(&["top", "topper", "-o", "pid,comm"]);
    assert_ok(&o, "top with ps options");
    assert_eq!(
        stdout(&o).lines().filter(|l| l.ends_with("sleep")).count(),
        2,
        "{}",
        show(&o)
    );
    // rename: the new name finds it, the old one no more; a taken or bad name is refused.
    assert_ok(&f.container(&["rename", "topper", "renamed"]), "rename");
    assert_eq!(inspect(&f, "renamed")["name"], "renamed");
    assert_fails(&f.container(&["inspect", "topper"]), "the old name");
    assert_ok(
        &f.container(&["run", "--name", "other", "--network", "none", "bb:top", "true"]),
        "run other",
    );
    let o = f.container(&["rename", "renamed", "other"]);
    assert_fails(&o, "rename to a taken name");
    assert!(stderr(&o).contains("already in use"), "{}", show(&o));
    let o = f.container(&["rename", "renamed", "bad name"]);
    assert_fails(&o, "rename to a bad name");
    assert!(stderr(&o).contains("container name"), "{}", show(&o));
    let o = f.container(&["top", "other"]);
    assert_fails(&o, "top of a stopped container");
    assert!(stderr(&o).contains("not running"), "{}", show(&o));
    assert_ok(&f.container(&["rm", "-f", "renamed", "other"]), "rm -f");
    f.assert_nothing_left();
}

#[test]
fn stats_shows_cpu_memory_against_the_limit_and_pids() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:stats", &[]);
    // A busy loop, 20 MiB in tmpfs (charged to the container's memory), and a sleep.
    detach(
        &f,
        &[
            "--name",
            "busy",
            "--network",
            "none",
            "-m",
            "64m",
            "bb:stats",
            "sh",
            "-c",
            "(while :; do :; done) & head -c 20971520 /dev/zero > /dev/shm/x; exec sleep 60",
        ],
    );
    let mut v = Value::Null;
    wait_until(
        "20 MiB charged and two processes (the loop, the sleep)",
        Duration::from_secs(15),
        || {
            let o = f.container(&["stats", "--no-stream", "--format", "json", "busy"]);
            v = serde_json::from_str(stdout(&o).trim()).unwrap_or(Value::Null);
            v["memory_usage"].as_u64().unwrap_or(0) >= 20 << 20 && v["pids"].as_u64() == Some(2)
        },
    );
    assert_eq!(v["memory_limit"], 64u64 << 20, "{v}");
    assert!(v["cpu_percent"].as_f64().unwrap() > 5.0, "the busy loop shows: {v}");
    let pct = v["memory_percent"].as_f64().unwrap();
    assert!((31.0..=100.0).contains(&pct), "{v}");
    // The table: docker's columns, one row per running container.
    let o = f.container(&["stats", "--no-stream"]);
    assert_ok(&o, "stats --no-stream");
    let out = stdout(&o);
    let l: Vec<&str> = out.lines().collect();
    assert!(
        l[0].starts_with("CONTAINER ID") && l[0].contains("MEM USAGE / LIMIT") && l[0].ends_with("PIDS"),
        "{out}"
    );
    assert_eq!(l.len(), 2, "{out}");
    assert!(l[1].contains("busy") && l[1].contains("/ 64.00MiB"), "{out}");
    assert_ok(&f.container(&["rm", "-f", "busy"]), "rm -f busy");
    f.assert_nothing_left();
}

#[test]
fn dit_keeps_a_detached_shell_waiting_on_its_terminal() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:dit", &[]);
    // -dit: a terminal and an open stdin: the shell waits (its banner in the log); -d alone:
    // stdin is /dev/null and the shell ends at once.
    detach(&f, &["-it", "--name", "waits", "--network", "none", "bb:dit", "sh"]);
    detach(&f, &["--name", "ends", "--network", "none", "bb:dit", "sh"]);
    wait_until("the plain -d shell to end", Duration::from_secs(10), || {
        status(&f, "ends") == "exited"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&f, "waits"), "running");
    wait_until("the banner in the log", Duration::from_secs(10), || {
        logs(&f, "waits").contains("BusyBox")
    });
    let o = f.container(&["exec", "waits", "sh", "-c", "ls -l /proc/1/fd/0"]);
    assert!(
        stdout(&o).contains("/dev/pts/"),
        "its stdin is a terminal: {}",
        show(&o)
    );
    assert_ok(&f.container(&["rm", "-f", "waits", "ends"]), "rm -f");
    f.assert_nothing_left();
}
