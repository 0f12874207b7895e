//! The command line: spec, list, features, --pid-file, --log, stdio.

use serde_json::Value;
use std::fs;
use wrun_tests::*;

#[test]
fn spec_writes_a_valid_config() {
    let dir = TempDir::new("spec");
    let rt = Runtime::new();
    assert_ok(&rt.spec(dir.path()), "spec");
    let text = fs::read_to_string(dir.join("config.json")).expect("config.json written");
    let v: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert!(v["ociVersion"].is_string(), "{v}");
    let args = v["process"]["args"].as_array().expect("process.args");
    assert!(!args.is_empty(), "{v}");
    assert_eq!(v["root"]["path"], "rootfs", "{v}");
}

#[test]
fn spec_refuses_to_overwrite_an_existing_config() {
    let dir = TempDir::new("spec");
    fs::write(dir.join("config.json"), "{\"mine\": true}").unwrap();
    let rt = Runtime::new();
    let o = rt.spec(dir.path());
    assert_fails(&o, "spec over an existing config.json");
    assert!(
        stderr(&o).contains("config.json"),
        "error should name config.json\n{}",
        show(&o)
    );
    assert_eq!(fs::read_to_string(dir.join("config.json")).unwrap(), "{\"mine\": true}");
}

#[test]
fn spec_output_runs_after_making_it_non_interactive() {
    // A config made by `spec` is usable as it is, once terminal is off.
    let mut b = Bundle::busybox();
    fs::remove_file(b.config_path()).unwrap();
    let rt = Runtime::new();
    assert_ok(&rt.spec(b.path()), "spec");
    let mut v: Value = serde_json::from_str(&fs::read_to_string(b.config_path()).unwrap()).unwrap();
    v["process"]["terminal"] = false.into();
    v["process"]["args"] = serde_json::json!(["sh", "-c", "echo from-spec"]);
    *b.config_mut() = v;
    b.save();
    let o = rt.run(&rt.id("fromspec"), &b);
    assert_ok(&o, "run of spec's config");
    assert_eq!(stdout(&o).trim(), "from-spec");
}

#[test]
fn run_passes_the_containers_stdout_through() {
    let mut b = Bundle::busybox();
    b.args(&["echo", "hello"]);
    let rt = Runtime::new();
    let o = rt.run(&rt.id("stdout"), &b);
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "hello\n");
}

#[test]
fn run_passes_the_containers_stderr_through() {
    let mut b = Bundle::busybox();
    b.sh("echo oops >&2");
    let rt = Runtime::new();
    let o = rt.run(&rt.id("stderr"), &b);
    assert_ok(&o, "run");
    assert!(stderr(&o).contains("oops"), "{}", show(&o));
    assert!(!stdout(&o).contains("oops"), "{}", show(&o));
}

#[test]
fn run_passes_stdin_to_the_container() {
    let mut b = Bundle::busybox();
    b.args(&["cat"]);
    let rt = Runtime::new();
    let id = rt.id("stdin");
    let o = rt.exec_stdin(&["run", &id, "--bundle", b.path_str()], b"piped in\nsecond line\n");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "piped in\nsecond line\n");
}

fn sleeper() -> Bundle {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    b
}

fn create_listed(rt: &Runtime, b: &Bundle) -> String {
    let id = rt.id("list");
    rt.create_ok(&id, b);
    id
}

#[test]
fn list_shows_the_container_in_a_table() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = create_listed(&rt, &b);
    let o = rt.list(&[]);
    assert_ok(&o, "list");
    let out = stdout(&o);
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.split_whitespace().next() == Some("ID"), "{out}");
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("no row for {id}:\n{out}"));
    assert!(row.contains("created"), "{row}");
}

#[test]
fn list_quiet_prints_only_ids() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = create_listed(&rt, &b);
    let o = rt.list(&["--quiet"]);
    assert_ok(&o, "list --quiet");
    assert_eq!(stdout(&o).trim(), id);
}

#[test]
fn list_json_is_an_array_of_containers() {
    let b = sleeper();
    let rt = Runtime::new();
    let id = create_listed(&rt, &b);
    let o = rt.list(&["--format", "json"]);
    assert_ok(&o, "list --format json");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let arr = v.as_array().expect("an array");
    let entry = arr
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} missing from {v}"));
    assert_eq!(entry["status"], "created", "{entry}");
}

#[test]
fn list_of_an_empty_root_shows_no_container() {
    let rt = Runtime::new();
    let o = rt.list(&["--quiet"]);
    assert_ok(&o, "list");
    assert_eq!(stdout(&o).trim(), "");
}

#[test]
fn create_pid_file_holds_the_init_host_pid() {
    let dir = TempDir::new("pidfile");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = rt.id("pidfile");
    let pf = dir.join("init.pid");
    assert_ok(
        &rt.create_with(&id, &b, &["--pid-file", pf.to_str().unwrap()]),
        "create --pid-file",
    );
    let written: i64 = fs::read_to_string(&pf)
        .expect("pid file written")
        .trim()
        .parse()
        .expect("pid file holds a number");
    assert_eq!(written, rt.pid(&id));
}

#[test]
fn run_detach_pid_file_holds_the_init_host_pid() {
    let dir = TempDir::new("pidfile");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    let rt = Runtime::new();
    let id = rt.id("pidfile");
    let pf = dir.join("init.pid");
    assert_ok(
        &rt.run_with(&id, &b, &["--detach", "--pid-file", pf.to_str().unwrap()]),
        "run --detach --pid-file",
    );
    let written: i64 = fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    assert_eq!(written, rt.pid(&id));
    assert!(pid_alive(written));
}

#[test]
fn features_prints_json_with_versions_and_namespaces() {
    let rt = Runtime::new();
    let o = rt.features();
    assert_ok(&o, "features");
    let v: Value = serde_json::from_slice(&o.stdout).expect("features prints JSON");
    assert!(v["ociVersionMin"].is_string(), "{v}");
    assert!(v["ociVersionMax"].is_string(), "{v}");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["pid", "network", "mount", "uts", "ipc", "user"] {
        assert!(ns.contains(&want), "{want} missing from {ns:?}");
    }
    // Seccomp user notification, where the runtime says it has it, is listed as an action.
    if rt.kind() == RuntimeKind::Wrun {
        let actions = v["linux"]["seccomp"]["actions"].as_array().cloned().unwrap_or_default();
        assert!(actions.iter().any(|a| a == "SCMP_ACT_NOTIFY"), "{actions:?}");
    }
}

#[test]
fn log_json_gets_a_json_line_for_a_failing_command() {
    let dir = TempDir::new("log");
    let log = dir.join("log.json");
    let rt = Runtime::new();
    let o = rt.exec(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "no-such-container",
    ]);
    assert_fails(&o, "state of a missing container");
    let text = fs::read_to_string(&log).expect("log file written");
    let found = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v.get("msg").is_some() || v.get("level").is_some());
    assert!(found, "no JSON line with msg/level in the log:\n{text}");
}

#[test]
fn state_of_an_unknown_container_fails() {
    let rt = Runtime::new();
    let o = rt.state_raw("no-such-container");
    assert_fails(&o, "state of an unknown container");
    assert!(!stderr(&o).trim().is_empty(), "no error message");
}

#[test]
fn an_unknown_command_fails() {
    let rt = Runtime::new();
    assert_fails(&rt.exec(&["frobnicate"]), "unknown command");
}

#[test]
fn debug_flag_is_accepted() {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    let rt = Runtime::new();
    let id = rt.id("debug");
    let o = rt.exec(&["--debug", "run", &id, "--bundle", b.path_str()]);
    assert_ok(&o, "--debug run");
}

/// The last JSON line of a `--log-format json` log.
fn last_json_line(log: &std::path::Path) -> Value {
    let text = fs::read_to_string(log).expect("log file written");
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("no JSON line in the log:\n{text}"))
}

/// wrun's error line carries a kind a machine can read (the shim maps it to a gRPC code) and,
/// when a syscall refused a step, its errno: also for a step that failed in the container's
/// init, whose error crosses the setup socket.
#[test]
fn a_failing_command_logs_its_error_kind_and_errno() {
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("the error kind and errno fields are wrun's own log format");
        return;
    }
    let dir = TempDir::new("log");
    let log = dir.join("log.json");
    let log_s = log.to_str().unwrap();
    let o = rt.exec(&["--log", log_s, "--log-format", "json", "state", "no-such-container"]);
    assert_fails(&o, "state of a missing container");
    let v = last_json_line(&log);
    assert_eq!(v["kind"], "not_found", "{v}");
    assert!(v.get("errno").is_none(), "{v}");

    // A mount of a file system type the kernel does not have: mount(2) says ENODEV, in the init.
    let mut b = Bundle::busybox();
    b.add_mount(serde_json::json!({"destination": "/mnt", "type": "wrunnosuchfs", "source": "none"}));
    let id = rt.id("errno");
    let o = rt.exec(&[
        "--log",
        log_s,
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    assert_fails(&o, "create with a mount of an unknown file system type");
    let v = last_json_line(&log);
    assert_eq!(v["kind"], "init", "{v}");
    assert_eq!(v["errno"], "ENODEV", "{v}");
    assert!(stderr(&o).contains("mount /mnt"), "{}", stderr(&o));
    assert_eq!(rt.status(&id), None, "a failed create leaves no container");
}

#[test]
fn version_names_the_commit_the_spec_and_libseccomp_as_runc_does() {
    let rt = Runtime::new();
    let o = rt.exec(&["--version"]);
    assert_ok(&o, "--version");
    let out = stdout(&o);
    for want in ["version ", "commit: ", "spec: ", "libseccomp: "] {
        assert!(out.lines().any(|l| l.contains(want)), "no {want:?} line: {out}");
    }
    if rt.kind() == RuntimeKind::Wrun {
        assert!(out.lines().any(|l| l.starts_with("wasm: ")), "{out}");
    }
}
