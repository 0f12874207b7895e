//! The wasm workload end to end, as root: guests from `wasm-apps/` run in wasmtime inside
//! the same sandbox a native process gets, through create/start/run/kill/delete.
//! (wrun-specific: these fail against runc, which has no wasm handler.)

use serde_json::json;
use std::fs;
use std::time::Duration;
use wrun_tests::*;

const TRAP_EXIT_CODE: i32 = 134;

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn hello_prints_its_args_and_env_and_exits_zero() {
    let mut b = Bundle::wasm("hello", &["one", "two words"]);
    b.with_config(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("GREETING=hi there"))
    });
    let rt = Runtime::new();
    let id = rt.id("hello");
    let o = rt.run(&id, &b);
    assert_ok(&o, "run hello.wasm");
    let out = stdout(&o);
    for line in [
        "hello from wasm",
        "argv[0]=/app/hello.wasm",
        "argv[1]=one",
        "argv[2]=two words",
        "GREETING=hi there",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?}\n{}", show(&o));
    }
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn the_guests_exit_code_is_the_containers() {
    let b = Bundle::wasm("exit", &["42"]);
    let rt = Runtime::new();
    let id = rt.id("exit");
    let o = rt.run(&id, &b);
    assert_eq!(code(&o), Some(42), "{}", show(&o));
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn a_module_found_through_path_runs_by_its_magic() {
    let mut b = Bundle::busybox();
    b.put_file(&wasm_app("exit"), "/usr/local/bin/leave")
        .args(&["leave", "7"]);
    let rt = Runtime::new();
    let id = rt.id("magic");
    let o = rt.run(&id, &b);
    assert_eq!(code(&o), Some(7), "{}", show(&o));
}

#[test]
fn a_wat_module_runs_when_an_annotation_asks_for_wasm() {
    let mut b = Bundle::busybox();
    b.write_file(
        "/app/seven.wat",
        br#"(module
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (func (export "_start") (call $exit (i32.const 7))))"#,
    )
    .args(&["/app/seven.wat"])
    .annotate("module.wasm.image/variant", "compat-smart");
    let rt = Runtime::new();
    let id = rt.id("wat");
    let o = rt.run(&id, &b);
    assert_eq!(code(&o), Some(7), "{}", show(&o));
}

#[test]
fn a_smart_annotation_leaves_a_native_program_native() {
    let mut b = Bundle::busybox();
    b.sh("echo native").annotate("run.oci.handler", "wasm-smart");
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "echo native").trim(), "native");
}

#[test]
fn create_and_start_run_a_guest_and_kill_9_stops_a_spin_loop_within_a_second() {
    let b = Bundle::wasm("spin", &[]);
    let rt = Runtime::new();
    let id = rt.id("spin");
    rt.create_ok(&id, &b);
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
    assert_ok(&rt.start(&id), "start");
    rt.wait_status(&id, "running");
    let pid = rt.pid(&id);
    // Let it spin a little first.
    std::thread::sleep(Duration::from_millis(200));
    assert!(pid_alive(pid), "the spinning guest died on its own");
    assert_ok(&rt.kill(&id, "KILL"), "kill KILL");
    let stopped = wait_until(Duration::from_secs(1), || !pid_alive(pid));
    assert!(stopped, "a spinning guest outlived kill -9 by more than a second");
    rt.wait_status(&id, "stopped");
    assert_ok(&rt.delete(&id), "delete");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn kill_term_stops_a_spinning_guest_through_the_hosts_handler() {
    let b = Bundle::wasm("spin", &[]);
    let rt = Runtime::new();
    let id = rt.id("term");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    rt.wait_status(&id, "running");
    let pid = rt.pid(&id);
    // PID 1 of a pid namespace ignores signals it has no handler for: the host has one.
    assert!(
        wait_until(Duration::from_secs(2), || catches_signal(pid, libc::SIGTERM)),
        "no SIGTERM handler in the wasm host"
    );
    assert_ok(&rt.kill(&id, "TERM"), "kill TERM");
    assert!(
        wait_until(Duration::from_secs(2), || !pid_alive(pid)),
        "SIGTERM did not stop the guest"
    );
    assert_ok(&rt.delete(&id), "delete");
}

#[test]
fn run_reports_128_plus_n_when_sigterm_ends_the_guest() {
    let b = Bundle::wasm("spin", &[]);
    let rt = Runtime::new();
    let id = rt.id("runterm");
    let run = rt.spawn(&["run", &id, "--bundle", b.path_str()]);
    assert!(
        wait_until(Duration::from_secs(10), || rt.status(&id).as_deref() == Some("running")),
        "never running"
    );
    let pid = rt.pid(&id);
    assert!(wait_until(Duration::from_secs(2), || catches_signal(
        pid,
        libc::SIGTERM
    )));
    assert_ok(&rt.kill(&id, "TERM"), "kill TERM");
    let o = run.wait();
    assert_eq!(code(&o), Some(128 + libc::SIGTERM), "{}", show(&o));
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn delete_force_stops_a_spinning_guest() {
    let b = Bundle::wasm("spin", &[]);
    let rt = Runtime::new();
    let id = rt.id("force");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    rt.wait_status(&id, "running");
    assert_ok(&rt.delete_force(&id), "delete --force");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn a_guests_stdio_goes_through_the_console_socket() {
    let mut b = Bundle::wasm("hello", &["on-a-tty"]);
    b.with_config(|c| c["process"]["terminal"] = json!(true));
    let sock = ConsoleSocket::new();
    let rt = Runtime::new();
    let id = rt.id("wasmtty");
    let sock_path = sock.path();
    assert_ok(
        &rt.create_with(&id, &b, &["--console-socket", sock_path.to_str().unwrap()]),
        "create --console-socket",
    );
    let master = sock.recv_master(timeout());
    assert_ok(&rt.start(&id), "start");
    let out = read_pty(&master, Duration::from_secs(10), Some("cwd="));
    assert!(out.contains("argv[1]=on-a-tty"), "{out}");
    rt.wait_status(&id, "stopped");
    assert_ok(&rt.delete(&id), "delete");
}

#[test]
fn membomb_under_a_64_mib_limit_ends_with_a_clean_out_of_memory_trap() {
    let mut b = Bundle::wasm("membomb", &[]);
    b.with_config(|c| c["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}}));
    let rt = Runtime::new();
    let id = rt.id("membomb");
    let o = rt.run(&id, &b);
    assert_eq!(code(&o), Some(TRAP_EXIT_CODE), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("/app/membomb.wasm") && l.contains("out of memory")),
        "{}",
        show(&o)
    );
    assert!(err.contains("wasm backtrace"), "{}", show(&o));
    assert!(
        stdout(&o).contains("membomb: 32 MiB"),
        "it grew before the trap\n{}",
        show(&o)
    );
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn a_trap_prints_the_wasm_backtrace_and_exits_134() {
    let mut b = Bundle::busybox();
    b.write_file(
        "/app/boom.wat",
        br#"(module
              (func $boom unreachable)
              (func (export "_start") (call $boom)))"#,
    )
    .args(&["/app/boom.wat"])
    .annotate("run.oci.handler", "wasm");
    let rt = Runtime::new();
    let id = rt.id("boom");
    let o = rt.run(&id, &b);
    assert_eq!(code(&o), Some(TRAP_EXIT_CODE), "{}", show(&o));
    let err = stderr(&o);
    assert!(err.contains("wasm trap") && err.contains("unreachable"), "{}", show(&o));
    assert!(err.contains("wasm backtrace") && err.contains("boom"), "{}", show(&o));
}

#[test]
fn every_escape_from_the_preopens_fails() {
    let mut b = Bundle::wasm("fs", &["secret.txt"]);
    b.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    // Outside the rootfs, next to it: what an escape would reach.
    fs::write(b.path().join("secret.txt"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink("../..", b.rootfs().join("host-up")).unwrap();
    std::os::unix::fs::symlink("/", b.rootfs().join("host-abs")).unwrap();
    let rt = Runtime::new();
    let id = rt.id("fs");
    let o = rt.run(&id, &b);
    let out = stdout(&o);
    assert!(!out.contains("ESCAPED") && !out.contains("TOP-SECRET"), "{}", show(&o));
    assert!(
        out.contains("inside: write+read /tmp/fs-inside.txt: ok"),
        "{}",
        show(&o)
    );
    assert!(out.contains("fs: 13 of 13 escapes blocked"), "{}", show(&o));
    assert_ok(&o, "fs.wasm");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn a_read_only_root_refuses_a_guest_write_and_a_writable_one_accepts_it() {
    // fs.wasm writes /tmp/fs-inside.txt first; here /tmp is no mount, only the root.
    let mut b = Bundle::wasm("fs", &["secret.txt"]);
    let rt = Runtime::new();
    let o = rt.run(&rt.id("ro"), &b);
    let out = stdout(&o);
    assert!(
        out.contains("inside: write+read /tmp/fs-inside.txt: ") && !out.contains("fs-inside.txt: ok"),
        "{}",
        show(&o)
    );
    assert!(!fs::exists(b.rootfs().join("tmp/fs-inside.txt")).unwrap());
    b.with_config(|c| c["root"]["readonly"] = json!(false));
    let o = rt.run(&rt.id("rw"), &b);
    assert!(stdout(&o).contains("fs-inside.txt: ok"), "{}", show(&o));
}

#[test]
fn a_read_only_bind_mount_stays_read_only_to_the_guest() {
    let mut b = Bundle::wasm("fs", &["secret.txt"]);
    let host = TempDir::new("robind");
    b.with_config(|c| c["root"]["readonly"] = json!(false));
    b.bind(host.path(), "/tmp", &["ro"]);
    let rt = Runtime::new();
    let o = rt.run(&rt.id("robind"), &b);
    assert!(!stdout(&o).contains("fs-inside.txt: ok"), "{}", show(&o));
    assert!(!fs::exists(host.join("fs-inside.txt")).unwrap());
}

#[test]
fn the_second_start_of_a_module_hits_the_compiled_module_cache() {
    let b = Bundle::wasm("hello", &[]);
    let rt = Runtime::new();
    let first = rt.exec(&["--debug", "run", &rt.id("c1"), "--bundle", b.path_str()]);
    assert_ok(&first, "first run");
    assert!(
        stderr(&first).contains("compiled-module cache miss"),
        "{}",
        show(&first)
    );
    let second = rt.exec(&["--debug", "run", &rt.id("c2"), "--bundle", b.path_str()]);
    assert_ok(&second, "second run");
    assert!(
        stderr(&second).contains("compiled-module cache hit"),
        "{}",
        show(&second)
    );
    assert_eq!(stdout(&first), stdout(&second));
}

#[test]
fn a_corrupt_cache_entry_is_rebuilt_and_never_run() {
    let b = Bundle::wasm("hello", &[]);
    let rt = Runtime::new();
    assert_ok(&rt.run(&rt.id("c1"), &b), "first run");
    let entries: Vec<_> = fs::read_dir(rt.data_dir().join("wasm-cache"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    // Flip bits in the middle of the native code.
    let mut raw = fs::read(&entries[0]).unwrap();
    let mid = raw.len() / 2;
    for x in &mut raw[mid..mid + 64] {
        *x ^= 0xff;
    }
    fs::write(&entries[0], &raw).unwrap();
    let o = rt.exec(&["--debug", "run", &rt.id("c2"), "--bundle", b.path_str()]);
    assert_ok(&o, "run over a corrupt entry");
    assert!(stderr(&o).contains("corrupt entry removed"), "{}", show(&o));
    assert!(stdout(&o).contains("hello from wasm"), "{}", show(&o));
    let third = rt.exec(&["--debug", "run", &rt.id("c3"), "--bundle", b.path_str()]);
    assert!(
        stderr(&third).contains("cache hit"),
        "rebuilt entry is used\n{}",
        show(&third)
    );
}

#[test]
fn a_wasip2_component_runs_and_may_use_sockets() {
    let mut b = Bundle::wasm("hello-p2", &["arg"]);
    b.with_config(|c| c["process"]["env"].as_array_mut().unwrap().push(json!("GREETING=p2")));
    // The host's network namespace (loopback is up there): wasi:sockets is allowed.
    b.remove_namespace("network");
    let rt = Runtime::new();
    let id = rt.id("p2");
    let o = rt.run(&id, &b);
    assert_ok(&o, "run hello-p2.wasm");
    let out = stdout(&o);
    for line in [
        "hello from a wasi:cli/command component",
        "argv[0]=/app/hello-p2.wasm",
        "argv[1]=arg",
        "GREETING=p2",
        "sockets: listening on 127.0.0.1",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?}\n{}", show(&o));
    }
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn an_address_space_limit_is_met_by_sizing_wasmtimes_reservations() {
    let mut b = Bundle::wasm("hello", &[]);
    b.with_config(|c| {
        c["process"]["rlimits"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "RLIMIT_AS", "soft": 1u64 << 30, "hard": 1u64 << 30}))
    });
    let rt = Runtime::new();
    let o = rt.run(&rt.id("as"), &b);
    assert_ok(&o, "hello under RLIMIT_AS 1 GiB");
    assert!(stdout(&o).contains("hello from wasm"), "{}", show(&o));
}

// ---------------------------------------------------------------------------
// Bad input: create fails with one line naming the file; nothing left behind.
// ---------------------------------------------------------------------------

#[track_caller]
fn create_fails_cleanly(b: &Bundle, names: &[&str]) -> String {
    let rt = Runtime::new();
    let id = rt.id("badwasm");
    let o = rt.create(&id, b);
    assert_one_line_error(&o, names);
    assert_clean(rt.root(), &id, b.path());
    stderr(&o)
}

fn wat_bundle(text: &str) -> Bundle {
    let mut b = Bundle::busybox();
    b.write_file("/app/bad.wat", text.as_bytes())
        .args(&["/app/bad.wat"])
        .annotate("run.oci.handler", "wasm");
    b
}

#[test]
fn a_truncated_module_fails_create() {
    let mut b = Bundle::busybox();
    let bytes = fs::read(wasm_app("hello")).unwrap();
    b.write_file("/app/cut.wasm", &bytes[..bytes.len() / 3])
        .args(&["/app/cut.wasm"]);
    let err = create_fails_cleanly(&b, &["/app/cut.wasm"]);
    assert!(err.contains("process.args[0]"), "{err}");
}

#[test]
fn a_module_without_start_fails_create() {
    let b = wat_bundle(r#"(module (func (export "main")))"#);
    let err = create_fails_cleanly(&b, &["/app/bad.wat"]);
    assert!(err.contains("_start"), "{err}");
}

#[test]
fn a_module_importing_what_wasi_lacks_fails_create() {
    let b = wat_bundle(r#"(module (import "env" "nope" (func)) (func (export "_start")))"#);
    let err = create_fails_cleanly(&b, &["/app/bad.wat"]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn a_wat_syntax_error_fails_create() {
    let b = wat_bundle("(module (func");
    let err = create_fails_cleanly(&b, &["/app/bad.wat"]);
    assert!(err.contains("WebAssembly text"), "{err}");
}

#[test]
fn a_wasm_file_holding_text_is_not_reported_as_a_text_syntax_error() {
    let mut b = Bundle::busybox();
    b.write_file("/app/notes.wasm", b"hello, this is not a module\n")
        .args(&["/app/notes.wasm"])
        .annotate("run.oci.handler", "wasm");
    let err = create_fails_cleanly(&b, &["/app/notes.wasm"]);
    assert!(
        err.contains("not a WebAssembly binary") && !err.contains("WebAssembly text"),
        "{err}"
    );
}

#[test]
fn a_component_of_another_world_fails_create() {
    let b = wat_bundle("(component)");
    let err = create_fails_cleanly(&b, &["/app/bad.wat"]);
    assert!(err.contains("world"), "{err}");
}

#[test]
fn an_annotation_naming_a_missing_module_fails_create() {
    let mut b = Bundle::busybox();
    b.args(&["/app/none.wasm"]).annotate("run.oci.handler", "wasm");
    create_fails_cleanly(&b, &["/app/none.wasm"]);
}

#[test]
fn an_unknown_handler_fails_create() {
    let mut b = Bundle::busybox();
    b.sh("true").annotate("run.oci.handler", "krun");
    create_fails_cleanly(&b, &["run.oci.handler"]);
}

/// The container's anonymous memory charge in kB (v1 memory.stat `rss`, v2 `anon`).
fn anon_charge_kb(id: &str) -> u64 {
    let stat = fs::read_to_string(container_cgroup("memory", id).join("memory.stat")).unwrap();
    let key = if is_cgroup_v2() { "anon" } else { "rss" };
    stat.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {key} in memory.stat:\n{stat}"))
        / 1024
}

#[test]
fn a_guests_engine_and_module_are_charged_to_its_own_cgroup() {
    // The init prepares the guest once it is in the container's cgroup: wasmtime's engine,
    // the module and the instance are the container's memory, not the caller's. A native
    // sleep beside it shows what the container's processes charge without them.
    let rt = Runtime::new();
    let wasm = Bundle::wasm("sleep", &["60"]);
    let mut native = Bundle::busybox();
    native.args(&["sleep", "60"]);
    let (w, n) = (rt.id("wcharge"), rt.id("ncharge"));
    for (id, b) in [(&w, &wasm), (&n, &native)] {
        rt.create_ok(id, b);
        assert_ok(&rt.start(id), "start");
    }
    std::thread::sleep(Duration::from_millis(300));
    let (wk, nk) = (anon_charge_kb(&w), anon_charge_kb(&n));
    assert!(
        wk >= nk + 128,
        "the wasm container's cgroup holds {wk} kB of anonymous memory, the native one {nk} kB: \
         the guest's engine and module are charged elsewhere"
    );
}
