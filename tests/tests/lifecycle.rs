//! create / start / state / kill / delete / run: the container lifecycle.

use serde_json::json;
use std::time::Duration;
use wrun_tests::*;

fn sleeper() -> Bundle {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    b
}

#[test]
fn create_leaves_a_created_container_with_a_live_init() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("created");
    let o = rt.create(&id, &b);
    assert_ok(&o, "create");
    // The create command has exited (we waited for it); the init lives on.
    let st = rt.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0, "{st}");
    assert!(pid_alive(pid), "init {pid} is not alive after create");
}

#[test]
fn start_makes_the_container_running() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("start");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    rt.wait_status(&id, "running");
    assert!(pid_alive(rt.pid(&id)));
}

#[test]
fn the_process_runs_only_after_start() {
    let out = TempDir::new("out");
    let mut b = Bundle::busybox();
    b.bind(out.path(), "/out", &[]).sh("touch /out/marker; sleep 1000");
    let rt = Runtime::new();
    let id = rt.id("marker");
    rt.create_ok(&id, &b);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!out.join("marker").exists(), "the user process ran before start");
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_until(Duration::from_secs(10), || out.join("marker").exists()),
        "the user process did not run after start"
    );
}

#[test]
fn start_of_a_running_container_fails() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("start2");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    assert_fails(&rt.start(&id), "second start");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn kill_with_sigkill_stops_a_running_container() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("kill9");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let pid = rt.pid(&id);
    assert_ok(&rt.kill(&id, "KILL"), "kill KILL");
    rt.wait_status(&id, "stopped");
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
}

#[test]
fn delete_of_a_stopped_container_removes_it() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("del");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    assert_ok(&rt.kill(&id, "KILL"), "kill");
    rt.wait_status(&id, "stopped");
    assert_ok(&rt.delete(&id), "delete");
    assert_fails(&rt.state_raw(&id), "state after delete");
    assert_clean(rt.root(), &id, b.path());
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let date_time = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &r[n..];
    }
    let zone = rest == "Z"
        || rest == "z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':'
            && rest[1..3].bytes().all(|c| c.is_ascii_digit())
            && rest[4..6].bytes().all(|c| c.is_ascii_digit()));
    date_time && zone
}

#[test]
fn state_has_the_standard_fields() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("fields");
    rt.create_ok(&id, &b);
    let st = rt.state(&id);
    assert!(st["ociVersion"].is_string(), "ociVersion: {st}");
    assert_eq!(st["id"], id.as_str(), "{st}");
    assert!(st["pid"].as_i64().unwrap_or(0) > 0, "pid: {st}");
    assert_eq!(st["status"], "created", "{st}");
    let bundle = st["bundle"].as_str().expect("bundle");
    assert!(bundle.starts_with('/'), "bundle not absolute: {st}");
    assert_eq!(
        std::fs::canonicalize(bundle).unwrap(),
        std::fs::canonicalize(b.path()).unwrap()
    );
    let created = st["created"].as_str().expect("created");
    assert!(is_rfc3339(created), "created is not RFC 3339: {created}");
    if let Some(owner) = st.get("owner") {
        assert!(owner.is_string(), "owner: {st}");
    }
}

#[test]
fn state_reports_the_configs_annotations() {
    let mut b = sleeper();
    b.with_config(|c| c["annotations"] = serde_json::json!({"org.example.test": "yes", "second": "2"}));
    let rt = Runtime::new();
    let id = rt.id("annot");
    rt.create_ok(&id, &b);
    let st = rt.state(&id);
    assert_eq!(st["annotations"]["org.example.test"], "yes", "{st}");
    assert_eq!(st["annotations"]["second"], "2", "{st}");
}

#[test]
fn state_reports_an_absolute_bundle_for_a_relative_bundle_argument() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("relbundle");
    let name = b.path().file_name().unwrap().to_str().unwrap().to_string();
    let mut cmd = rt.command(&["create", &id, "--bundle", &name]);
    cmd.current_dir(b.path().parent().unwrap());
    assert_ok(&run_cmd(&mut cmd, None), "create with relative bundle");
    let st = rt.state(&id);
    let bundle = st["bundle"].as_str().expect("bundle");
    assert!(bundle.starts_with('/'), "bundle not absolute: {st}");
    assert_eq!(
        std::fs::canonicalize(bundle).unwrap(),
        std::fs::canonicalize(b.path()).unwrap()
    );
}

#[test]
fn run_exits_with_the_containers_exit_code() {
    let mut b = Bundle::busybox();
    b.sh("exit 3");
    let rt = Runtime::new();
    let o = rt.run(&rt.id("exit3"), &b);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
}

#[test]
fn run_exits_with_zero_when_the_container_succeeds() {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    let rt = Runtime::new();
    let o = rt.run(&rt.id("true"), &b);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn run_exits_with_128_plus_n_when_the_process_dies_of_signal_n() {
    // Without a PID namespace the shell is not an init, so SIGKILL to itself
    // works.
    let mut b = Bundle::busybox();
    b.remove_namespace("pid").sh("kill -9 $$");
    let rt = Runtime::new();
    let o = rt.run(&rt.id("sig9"), &b);
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
}

#[test]
fn run_exits_with_137_when_the_container_is_killed_from_outside() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("outkill");
    let run = rt.spawn(&["run", &id, "--bundle", b.path_str()]);
    rt.wait_status(&id, "running");
    assert_ok(&rt.kill(&id, "KILL"), "kill KILL");
    let o = run.wait();
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
}

#[test]
fn run_deletes_the_container_afterwards() {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    let rt = Runtime::new();
    let id = rt.id("rundel");
    assert_ok(&rt.run(&id, &b), "run");
    assert_fails(&rt.state_raw(&id), "state after run");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn run_detach_returns_at_once_with_the_container_running() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("detach");
    let started = std::time::Instant::now();
    let o = rt.run_with(&id, &b, &["--detach"]);
    assert_ok(&o, "run --detach");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(pid_alive(rt.pid(&id)));
}

/// Runs a container whose shell traps TERM and exits 42, sends it `sig`
/// with `kill`, and returns the exit code of `run`.
fn trap_term_and_kill_with(sig: &str) {
    let mut b = Bundle::busybox();
    b.sh("trap 'exit 42' TERM; while :; do sleep 0.1; done");
    let rt = Runtime::new();
    let id = rt.id("trap");
    let run = rt.spawn(&["run", &id, "--bundle", b.path_str()]);
    rt.wait_status(&id, "running");
    let pid = rt.pid(&id);
    assert!(
        wait_until(Duration::from_secs(10), || catches_signal(pid, libc::SIGTERM)),
        "the shell never installed its TERM trap"
    );
    assert_ok(&rt.kill(&id, sig), &format!("kill {sig}"));
    let o = run.wait();
    assert_eq!(o.status.code(), Some(42), "kill {sig}: {}", show(&o));
}

#[test]
fn kill_accepts_a_signal_name() {
    trap_term_and_kill_with("TERM");
}

#[test]
fn kill_accepts_a_signal_number() {
    trap_term_and_kill_with("15");
}

#[test]
fn kill_accepts_a_sig_prefixed_signal_name() {
    trap_term_and_kill_with("SIGTERM");
}

#[test]
fn kill_with_an_unknown_signal_fails_clearly() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("badsig");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let o = rt.kill(&id, "SIGNOPE");
    assert_fails(&o, "kill SIGNOPE");
    let err = stderr(&o).to_lowercase();
    assert!(
        err.contains("signal") || err.contains("nope"),
        "error should say what is wrong with the signal\n{}",
        show(&o)
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn kill_all_reaches_child_processes() {
    // The init shell ignores TERM (no handler, PID 1), so only --all makes
    // the sleeps die, after which `wait` returns and the container stops.
    let mut b = Bundle::busybox();
    b.sh("sleep 1000 & sleep 1000 & wait");
    let rt = Runtime::new();
    let id = rt.id("killall");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let init = rt.pid(&id);
    let mut kids = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            kids = children_of(init);
            kids.len() == 2
        }),
        "expected two sleeps, children: {kids:?}"
    );
    assert_ok(&rt.exec(&["kill", "--all", &id, "TERM"]), "kill --all");
    assert!(
        wait_until(Duration::from_secs(10), || kids.iter().all(|&k| !pid_alive(k))),
        "children {kids:?} survived kill --all"
    );
    rt.wait_status(&id, "stopped");
}

#[test]
fn delete_of_a_running_container_without_force_fails_and_it_keeps_running() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("delrun");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let pid = rt.pid(&id);
    assert_fails(&rt.delete(&id), "delete of a running container");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(pid_alive(pid));
}

#[test]
fn delete_force_kills_and_removes_a_running_container() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("delforce");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let pid = rt.pid(&id);
    assert_ok(&rt.delete_force(&id), "delete --force");
    assert!(wait_until(Duration::from_secs(5), || !pid_alive(pid)));
    assert_fails(&rt.state_raw(&id), "state after delete --force");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = rt.id("delcreated");
    rt.create_ok(&id, &b);
    let pid = rt.pid(&id);
    assert_ok(&rt.delete(&id), "delete of a created container");
    assert!(
        wait_until(Duration::from_secs(5), || !pid_alive(pid)),
        "init {pid} survived delete"
    );
    assert_fails(&rt.state_raw(&id), "state after delete");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn create_and_start_work_for_a_non_root_user_and_in_a_user_namespace() {
    let rt = Runtime::new();
    let out = TempDir::new("nonroot");
    std::fs::set_permissions(out.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    for (name, userns) in [("user1000", false), ("userns", true)] {
        let mut b = Bundle::busybox();
        // A user namespace's root cannot create directories in a rootfs owned by host root.
        std::fs::create_dir_all(b.rootfs().join("out")).unwrap();
        b.bind(out.path(), "/out", &[]).sh(&format!("id -u > /out/{name}"));
        b.with_config(|c| {
            if userns {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({"type": "user"}));
                c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                c["linux"]["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            } else {
                c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
            }
        });
        let id = rt.id(name);
        rt.create_ok(&id, &b);
        assert_eq!(rt.status(&id).as_deref(), Some("created"), "{name}");
        assert_ok(&rt.start(&id), "start");
        // The shell creates the file before `id` writes to it: wait for the content, not the
        // file (an empty read here once failed CI).
        let written = || {
            std::fs::read_to_string(out.join(name))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        assert!(
            wait_until(Duration::from_secs(10), || !written().is_empty()),
            "{name}: the process never ran"
        );
        let want = if userns { "0" } else { "1000" };
        assert_eq!(written(), want);
    }
}

#[test]
fn state_of_a_container_still_being_created_says_creating() {
    let rt = Runtime::new();
    let id = rt.id("creating");
    let mark = TempDir::new("creating-mark");
    let (started, release) = (mark.join("started"), mark.join("release"));
    let mut b = sleeper();
    // A createRuntime hook holds the create until the test has looked.
    b.with_config(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("touch {0}; i=0; while [ ! -e {1} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done",
                started.display(), release.display())]}]});
    });
    let create = rt.spawn(&["create", "--bundle", b.path_str(), &id]);
    rt.track(&id);
    assert!(wait_until(Duration::from_secs(10), || started.exists()), "the hook ran");
    let st = rt.state(&id);
    assert_eq!(st["status"], "creating", "{st}");
    assert_eq!(st["id"], id.as_str());
    std::fs::write(&release, "").unwrap();
    assert_ok(&create.wait(), "create");
    assert_eq!(rt.state(&id)["status"], "created");
    assert_ok(&rt.delete_force(&id), "delete");
}
