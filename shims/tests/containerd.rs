//! containerd-shim-wrun-v1 driven by a real containerd (Debian's, 1.6) through `ctr`.
//!
//! Each test starts its own containerd with a private config (root, state and sockets in a
//! temp dir, CRI disabled) and the shim's directory first on its PATH, imports the images it
//! needs into a namespace of its own, and stops containerd at the end. Then it checks that
//! nothing of it is left: no shim process of its namespace, no mount under its dirs, no
//! cgroup. The images are OCI archives written by `tests/oci-image.sh` from the project's
//! busybox rootfs and wasm guests. Needs root.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::{images, run, stop_events, with_busybox, with_wasm, Containerd, BUSYBOX, RUNTIME, WASM};
use wrun_tests::{assert_ok, kill_pid, pid_alive, show, stdout, wait_until};

#[test]
fn ctr_run_prints_the_output_of_a_native_busybox_container() {
    let c = with_busybox();
    let o = c.run_rm(
        &[],
        BUSYBOX,
        "hello",
        &["sh", "-c", "echo hello from pid $$; cat /etc/passwd | head -1"],
    );
    assert_ok(&o, "ctr run");
    assert_eq!(stdout(&o), "hello from pid 1\nroot:x:0:0:root:/root:/bin/sh\n");
    c.finish();
}

#[test]
fn ctr_run_prints_the_output_of_a_wasm_compat_image_run_in_wasmtime() {
    let c = with_wasm();
    let o = c.run_rm(&["--env", "GREETING=hi"], WASM, "wasm-hello", &["/hello.wasm", "one"]);
    assert_ok(&o, "ctr run");
    let out = stdout(&o);
    assert!(out.contains("hello from wasm"), "{}", show(&o));
    assert!(out.contains("argv[1]=one"), "{}", show(&o));
    assert!(out.contains("GREETING=hi"), "{}", show(&o));
    c.finish();
}

#[test]
fn exit_codes_come_back_from_native_and_wasm_tasks() {
    let c = with_busybox();
    c.import(&images().wasm);
    let o = c.run_rm(&[], BUSYBOX, "exit-native", &["sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let o = c.run_rm(&[], WASM, "exit-wasm", &["/exit.wasm", "7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    c.finish();
}

#[test]
fn task_kill_stops_a_native_sleep_and_a_wasm_spin_loop() {
    let c = with_busybox();
    c.import(&images().wasm);
    c.run_detached(BUSYBOX, "sleeper", &["sleep", "1000"]);
    c.run_detached(WASM, "spinner", &["/spin.wasm"]);
    c.wait_status("sleeper", "RUNNING");
    c.wait_status("spinner", "RUNNING");
    // `sleep` as PID 1 has no SIGTERM handler, so the kernel drops TERM: KILL it.
    c.ctr(&["task", "kill", "-s", "SIGKILL", "sleeper"]);
    // The wasm host ends the guest on TERM with 128+15.
    c.ctr(&["task", "kill", "spinner"]);
    c.wait_status("sleeper", "STOPPED");
    c.wait_status("spinner", "STOPPED");
    let o = c.ctr(&["task", "rm", "spinner"]);
    assert!(stdout(&o).is_empty() || !stdout(&o).contains("error"), "{}", show(&o));
    c.finish();
}

#[test]
fn task_exec_runs_a_process_in_a_native_container() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "execd", &["sleep", "1000"]);
    c.wait_status("execd", "RUNNING");
    let events = c.events();
    let fifo = c.fifo_dir();
    let o = c.ctr_quiet(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo,
        "--exec-id",
        "e1",
        "execd",
        "sh",
        "-c",
        "echo exec sees pid1=$(cat /proc/1/comm); exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), "exec sees pid1=sleep");
    let o = c.ctr(&["task", "ps", "execd"]);
    assert!(stdout(&o).lines().count() >= 2, "{}", show(&o));
    let ev = stop_events(events);
    for topic in ["/tasks/exec-added", "/tasks/exec-started"] {
        assert!(
            ev.lines().any(|l| l.contains(topic) && l.contains("e1")),
            "no {topic} in\n{ev}"
        );
    }
    assert!(
        ev.lines()
            .any(|l| l.contains("/tasks/exit") && l.contains(r#""id":"e1""#) && l.contains(r#""exit_status":4"#)),
        "no TaskExit of the exec in\n{ev}"
    );
    c.finish();
}

#[test]
fn pause_and_resume_freeze_and_thaw_the_task() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "pausy", &["sleep", "1000"]);
    c.wait_status("pausy", "RUNNING");
    let pid = c.task_pid("pausy");
    let events = c.events();
    c.ctr(&["task", "pause", "pausy"]);
    assert_eq!(c.status("pausy").as_deref(), Some("PAUSED"));
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let st = state.rsplit_once(')').unwrap().1.trim_start().chars().next();
    assert_eq!(
        st,
        Some('D'),
        "a frozen task sleeps uninterruptibly in the freezer: {state}"
    );
    c.ctr(&["task", "resume", "pausy"]);
    assert_eq!(c.status("pausy").as_deref(), Some("RUNNING"));
    let ev = stop_events(events);
    for topic in ["/tasks/paused", "/tasks/resumed"] {
        assert!(
            ev.lines().any(|l| l.contains(topic) && l.contains("pausy")),
            "no {topic} in\n{ev}"
        );
    }
    c.finish();
}

#[test]
fn task_metrics_returns_cgroup_numbers() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "metered", &["sleep", "1000"]);
    c.wait_status("metered", "RUNNING");
    let o = c.ctr(&["task", "metrics", "metered"]);
    let out = stdout(&o);
    let value = |key: &str| -> Option<u64> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let usage = value("memory.usage_in_bytes").or_else(|| value("memory.usage"));
    assert!(usage.is_some_and(|u| u > 0), "no memory usage in\n{out}");
    assert_eq!(value("pids.current"), Some(1), "{out}");
    c.finish();
}

#[test]
fn a_memory_hog_produces_a_task_oom_event() {
    let c = with_busybox();
    let events = c.events();
    let o = c.run_rm(
        &["--memory-limit", "33554432"],
        BUSYBOX,
        "hog",
        &["sh", "-c", "x=a; while true; do x=$x$x$x$x; done"],
    );
    assert_eq!(o.status.code(), Some(137), "the hog is OOM-killed\n{}", show(&o));
    let ev = stop_events(events);
    assert!(
        ev.lines().any(|l| l.contains("/tasks/oom") && l.contains("hog")),
        "no TaskOOM in\n{ev}"
    );
    assert!(
        ev.lines().any(|l| l.contains("/tasks/exit") && l.contains("137")),
        "no TaskExit in\n{ev}"
    );
    c.finish();
}

#[test]
fn sigkill_of_the_shim_then_delete_cleans_up_and_reports_the_exit() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "orphan", &["sleep", "1000"]);
    c.wait_status("orphan", "RUNNING");
    let pid = c.task_pid("orphan");
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "one shim per container: {shims:?}");
    let bundle = c
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(&c.ns)
        .join("orphan");
    let address = fs::read_to_string(bundle.join("address")).expect("the shim wrote <bundle>/address");
    let socket = PathBuf::from(address.trim().trim_start_matches("unix://"));
    assert!(socket.exists(), "{} is not there", socket.display());
    let events = c.events();
    kill_pid(shims[0], libc::SIGKILL);
    // containerd sees the shim go, runs `containerd-shim-wrun-v1 delete`, which kills and
    // deletes the container and unmounts its rootfs.
    assert!(
        wait_until(Duration::from_secs(10), || !pid_alive(pid)),
        "the container's init {pid} survived"
    );
    assert!(
        wait_until(Duration::from_secs(10), || c.status("orphan").as_deref()
            != Some("RUNNING")),
        "task still listed as running"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !socket.exists()),
        "the dead shim's socket {} is left",
        socket.display()
    );
    let ev = stop_events(events);
    assert!(
        ev.lines()
            .any(|l| l.contains("/tasks/exit") && l.contains("orphan") && l.contains("137")),
        "no TaskExit with status 137 in\n{ev}"
    );
    c.finish();
}

#[test]
fn after_a_containerd_restart_the_task_is_listed_and_can_be_killed() {
    let mut c = with_busybox();
    c.run_detached(BUSYBOX, "survivor", &["sleep", "1000"]);
    c.wait_status("survivor", "RUNNING");
    c.restart();
    assert_eq!(c.status("survivor").as_deref(), Some("RUNNING"));
    c.ctr(&["task", "kill", "-s", "SIGKILL", "survivor"]);
    c.wait_status("survivor", "STOPPED");
    c.ctr(&["task", "rm", "survivor"]);
    c.finish();
}

#[test]
fn a_missing_entry_point_fails_ctr_run_with_the_cause() {
    let c = with_busybox();
    let o = c.run_rm(&[], BUSYBOX, "noexec", &["/no/such/program"]);
    assert!(!o.status.success(), "{}", show(&o));
    let err = wrun_tests::stderr(&o);
    assert!(
        err.contains("/no/such/program"),
        "the error names the entry point\n{}",
        show(&o)
    );
    assert!(c.status("noexec").is_none(), "no task is left");
    c.finish();
}

#[test]
fn a_corrupt_wasm_module_fails_ctr_run_with_the_cause() {
    let c = with_wasm();
    let o = c.run_rm(&[], WASM, "corrupt", &["/corrupt.wasm"]);
    assert!(!o.status.success(), "{}", show(&o));
    let err = wrun_tests::stderr(&o);
    assert!(
        err.contains("/corrupt.wasm") && err.contains("WebAssembly"),
        "the error names the module and the cause\n{}",
        show(&o)
    );
    assert!(c.status("corrupt").is_none(), "no task is left");
    c.finish();
}

#[test]
fn containers_of_one_pod_share_one_shim_which_goes_with_the_last() {
    let c = with_busybox();
    let fifo = c.fifo_dir();
    let pod = "io.kubernetes.cri.sandbox-id=pod-1";
    for id in ["pod-a", "pod-b"] {
        c.ctr(&[
            "run",
            "-d",
            "--fifo-dir",
            &fifo,
            "--runtime",
            RUNTIME,
            "--annotation",
            pod,
            BUSYBOX,
            id,
            "sleep",
            "1000",
        ]);
        c.wait_status(id, "RUNNING");
    }
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "one shim for the pod: {shims:?}");
    c.remove("pod-a");
    assert_eq!(c.status("pod-b").as_deref(), Some("RUNNING"));
    assert!(pid_alive(shims[0]), "the shim stays while the pod has a container");
    c.remove("pod-b");
    assert!(
        wait_until(Duration::from_secs(10), || !pid_alive(shims[0])),
        "the shim exits with the pod's last container"
    );
    c.finish();
}

/// `ctr` 1.6 has no `task update`: this calls the shim's Update over its own ttrpc socket,
/// as containerd would for CRI's UpdateContainerResources.
#[test]
fn update_changes_the_limits_of_a_running_task() {
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::protobuf::MessageField;
    use containerd_shim::protos::shim::shim::UpdateTaskRequest;
    use containerd_shim::protos::shim_sync::{Client, TaskClient};
    use containerd_shim::protos::ttrpc::context::Context;

    let c = with_busybox();
    c.run_detached(BUSYBOX, "updated", &["sleep", "1000"]);
    c.wait_status("updated", "RUNNING");
    let bundle = c
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(&c.ns)
        .join("updated");
    let address = fs::read_to_string(bundle.join("address")).unwrap();
    let client = TaskClient::new(Client::connect(address.trim()).expect("connect to the shim"));
    let req = UpdateTaskRequest {
        id: "updated".into(),
        resources: MessageField::some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: br#"{"memory":{"limit":67108864},"pids":{"limit":32}}"#.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .update(Context::default(), &req)
        .expect("Update through the shim");
    let o = c.ctr(&["task", "metrics", "updated"]);
    let out = stdout(&o);
    let value = |k: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    };
    let limit = value("memory.limit_in_bytes").or_else(|| value("memory.usage_limit"));
    assert_eq!(limit.as_deref(), Some("67108864"), "{out}");
    assert_eq!(value("pids.limit").as_deref(), Some("32"), "{out}");
    drop(client);
    c.finish();
}

/// `ctr -t` wants a terminal of its own: `script` (util-linux) gives it one.
fn in_a_terminal(c: &Containerd, ctr_args: &str) -> Output {
    let cmd = format!(
        "stty cols 91 rows 33; ctr --address {} -n {} {ctr_args}",
        c.dir.join("c.sock").display(),
        c.ns
    );
    run(Command::new("script").args(["-qec", &cmd, "/dev/null"]))
}

#[test]
fn a_terminal_task_and_a_terminal_exec_get_a_pty_of_the_clients_size() {
    let c = with_busybox();
    let fifo = c.fifo_dir();
    // The size arrives by ResizePty right after start: give it a moment.
    let o = in_a_terminal(
        &c,
        &format!(
            "run --rm -t --fifo-dir {fifo} --runtime {RUNTIME} {BUSYBOX} tty-run sh -c 'sleep 0.3; tty; stty size'"
        ),
    );
    assert_ok(&o, "ctr run -t");
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/0"), "{}", show(&o));
    assert!(out.contains("33 91"), "{}", show(&o));
    c.run_detached(BUSYBOX, "tty-host", &["sleep", "1000"]);
    c.wait_status("tty-host", "RUNNING");
    let o = in_a_terminal(
        &c,
        &format!("task exec -t --fifo-dir {fifo} --exec-id t1 tty-host sh -c 'sleep 0.3; tty; stty size; exit 6'"),
    );
    assert_eq!(o.status.code(), Some(6), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/"), "{}", show(&o));
    assert!(out.contains("33 91"), "{}", show(&o));
    c.finish();
}
