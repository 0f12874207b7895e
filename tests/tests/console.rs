//! `process.terminal` with `--console-socket`: the runtime sends the pty
//! master over the socket (SCM_RIGHTS) and the container's stdio is the pty.

use serde_json::json;
use std::os::fd::AsRawFd;
use std::time::Duration;
use wrun_tests::*;

fn terminal_bundle(script: &str) -> Bundle {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["terminal"] = json!(true)).sh(script);
    b
}

#[test]
fn container_output_comes_through_the_console_socket() {
    let b = terminal_bundle("tty; [ -t 0 ] && echo stdin-is-a-tty; [ -t 1 ] && echo stdout-is-a-tty; echo the-end");
    let sock = ConsoleSocket::new();
    let rt = Runtime::new();
    let id = rt.id("console");
    let sock_path = sock.path();
    assert_ok(
        &rt.create_with(&id, &b, &["--console-socket", sock_path.to_str().unwrap()]),
        "create --console-socket",
    );
    let master = sock.recv_master(timeout());
    assert_ok(&rt.start(&id), "start");
    let out = read_pty(&master, Duration::from_secs(10), Some("the-end"));
    assert!(
        out.contains("/dev/pts/0") || out.contains("/dev/console"),
        "tty did not name a terminal:\n{out}"
    );
    assert!(out.contains("stdin-is-a-tty"), "{out}");
    assert!(out.contains("stdout-is-a-tty"), "{out}");
    assert!(out.contains("the-end"), "{out}");
}

#[test]
fn input_written_to_the_master_reaches_the_container() {
    let b = terminal_bundle("read line; echo got:$line:done");
    let sock = ConsoleSocket::new();
    let rt = Runtime::new();
    let id = rt.id("console-in");
    let sock_path = sock.path();
    assert_ok(
        &rt.create_with(&id, &b, &["--console-socket", sock_path.to_str().unwrap()]),
        "create --console-socket",
    );
    let master = sock.recv_master(timeout());
    assert_ok(&rt.start(&id), "start");
    let line = b"typed-text\n";
    let n = unsafe { libc::write(master.as_raw_fd(), line.as_ptr() as *const libc::c_void, line.len()) };
    assert_eq!(n, line.len() as isize);
    let out = read_pty(&master, Duration::from_secs(10), Some(":done"));
    assert!(out.contains("got:typed-text:done"), "{out}");
}

#[test]
fn run_detach_sends_the_master_to_the_console_socket() {
    let b = terminal_bundle("echo detached-hello; sleep 1000");
    let sock = ConsoleSocket::new();
    let rt = Runtime::new();
    let id = rt.id("console-run");
    let sock_path = sock.path();
    assert_ok(
        &rt.run_with(&id, &b, &["--detach", "--console-socket", sock_path.to_str().unwrap()]),
        "run --detach --console-socket",
    );
    let master = sock.recv_master(timeout());
    let out = read_pty(&master, Duration::from_secs(10), Some("detached-hello"));
    assert!(out.contains("detached-hello"), "{out}");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn terminal_without_a_console_socket_is_rejected_by_create() {
    let b = terminal_bundle("true");
    let rt = Runtime::new();
    let id = rt.id("console-none");
    let o = rt.create(&id, &b);
    assert_fails(&o, "create with terminal but no --console-socket");
    assert_clean(rt.root(), &id, b.path());
}
