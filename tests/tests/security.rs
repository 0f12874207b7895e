//! Confinement seen from inside the container: capabilities (and, as they land, seccomp and
//! hooks). Each test checks what a process in the container can and cannot do.

use serde_json::{json, Value};
use wrun_tests::*;

fn with_caps(b: &mut Bundle, caps: &[&str]) {
    b.with_config(|c| {
        c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    });
}

#[test]
fn chown_fails_without_cap_chown_and_works_with_it() {
    let script = "touch /tmp/f && chown 65534 /tmp/f && echo chowned || echo refused";
    let rt = Runtime::new();
    let mut without = Bundle::busybox();
    without.with_config(|c| c["root"]["readonly"] = json!(false));
    with_caps(&mut without, &["CAP_KILL"]);
    assert_eq!(rt.run_sh(&mut without, script).trim(), "refused");
    let mut with = Bundle::busybox();
    with.with_config(|c| c["root"]["readonly"] = json!(false));
    with_caps(&mut with, &["CAP_CHOWN"]);
    assert_eq!(rt.run_sh(&mut with, script).trim(), "chowned");
}

#[test]
fn raw_sockets_fail_without_cap_net_raw() {
    // In a fresh network namespace ping has no ICMP datagram sockets (ping_group_range is
    // empty), so it needs a raw socket. Loopback is down there, so even with the socket the
    // ping fails, but with "unreachable" rather than "permission denied".
    let script =
        "ping -c 1 -W 1 127.0.0.1 2>&1 | grep -qiE 'permission denied|not permitted' && echo refused || echo pinged";
    let rt = Runtime::new();
    let mut without = Bundle::busybox();
    with_caps(&mut without, &["CAP_KILL"]);
    assert_eq!(rt.run_sh(&mut without, script).trim(), "refused");
    let mut with = Bundle::busybox();
    with_caps(&mut with, &["CAP_NET_RAW"]);
    assert_eq!(rt.run_sh(&mut with, script).trim(), "pinged");
}

#[test]
fn a_non_root_user_keeps_exactly_its_ambient_capabilities() {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let caps = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
    });
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "grep -E '^Cap(Eff|Amb):' /proc/self/status");
    for l in out.lines() {
        let hex = l.split_whitespace().nth(1).unwrap();
        assert_eq!(u64::from_str_radix(hex, 16).unwrap(), 1 << 10, "{l}");
    }
}

#[test]
fn a_non_root_user_without_ambient_capabilities_has_none() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "grep -E '^CapEff:' /proc/self/status");
    assert!(out.contains("0000000000000000"), "{out}");
}

#[test]
fn a_non_root_user_cannot_read_a_root_only_file() {
    let mut b = Bundle::busybox();
    std::fs::write(b.rootfs().join("etc/secret"), "s3cret").unwrap();
    std::fs::set_permissions(
        b.rootfs().join("etc/secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    b.with_config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let rt = Runtime::new();
    assert_eq!(
        rt.run_sh(&mut b, "cat /etc/secret 2>/dev/null || echo denied").trim(),
        "denied"
    );
}

/// A hook that appends its name and the status it was given to `log`.
fn logging_hook(name: &str, log: &str) -> serde_json::Value {
    let script = format!("s=$(cat); st=${{s#*\\\"status\\\":\\\"}}; echo \"{name} ${{st%%\\\"*}}\" >> {log}");
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

#[test]
fn every_hook_runs_once_in_order_with_the_right_state() {
    let dir = TempDir::new("hooks");
    let host_log = dir.join("log");
    let host = host_log.to_str().unwrap().to_string();
    let mut b = Bundle::busybox();
    b.bind(dir.path(), "/hooks", &[])
        .sh("sleep 0.3; echo process >> /hooks/log");
    b.with_config(|c| {
        c["hooks"] = json!({
            "prestart": [logging_hook("prestart", &host)],
            "createRuntime": [logging_hook("createRuntime", &host)],
            "createContainer": [logging_hook("createContainer", &host)],
            // Runs inside the container, after pivot_root: the container's paths.
            "startContainer": [logging_hook("startContainer", "/hooks/log")],
            "poststart": [logging_hook("poststart", &host)],
            "poststop": [logging_hook("poststop", &host)],
        });
    });
    let rt = Runtime::new();
    let id = rt.id("hooks");
    rt.create_ok(&id, &b);
    let after_create = std::fs::read_to_string(&host_log).unwrap_or_default();
    assert_eq!(
        after_create,
        "prestart created\ncreateRuntime creating\ncreateContainer creating\n"
    );
    assert_ok(&rt.start(&id), "start");
    assert!(wait_until(std::time::Duration::from_secs(10), || rt
        .status(&id)
        .as_deref()
        == Some("stopped")));
    assert_ok(&rt.delete(&id), "delete");
    let log = std::fs::read_to_string(&host_log).unwrap();
    let want = "prestart created\ncreateRuntime creating\ncreateContainer creating\nstartContainer created\n\
                poststart running\nprocess\npoststop stopped\n";
    assert_eq!(log, want);
}

/// A startContainer hook without an `env` of its own runs with the container process's
/// environment (runc's behaviour, which tools such as nvidia's hook rely on); one with an
/// `env` gets exactly that.
#[test]
fn a_start_container_hook_gets_the_process_env_unless_it_has_its_own() {
    let dir = TempDir::new("hookenv");
    let mut b = Bundle::busybox();
    b.bind(dir.path(), "/hooks", &[]).args(&["true"]);
    b.with_config(|c| {
        c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FROM_PROCESS=yes"]);
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo \"a=$FROM_PROCESS b=$OWN\" >> /hooks/log"]},
            {"path": "/bin/sh", "args": ["sh", "-c", "echo \"a=$FROM_PROCESS b=$OWN\" >> /hooks/log"], "env": ["OWN=mine"]},
        ]});
    });
    let rt = Runtime::new();
    let id = rt.id("hookenv");
    let o = rt.exec(&["run", "--bundle", b.path_str(), &id]);
    assert_ok(&o, "run");
    assert_eq!(
        std::fs::read_to_string(dir.join("log")).unwrap(),
        "a=yes b=\na= b=mine\n"
    );
}

#[test]
fn a_failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    b.with_config(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]});
    });
    let rt = Runtime::new();
    let id = rt.id("badhook");
    let o = rt.create(&id, &b);
    assert_fails(&o, "create");
    assert_one_line_error(&o, &["createRuntime", "nope"]);
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn a_failing_start_container_hook_fails_start_and_the_process_never_runs() {
    let dir = TempDir::new("hookfail");
    let mut b = Bundle::busybox();
    b.bind(dir.path(), "/out", &[]).sh("touch /out/ran");
    b.with_config(|c| {
        c["hooks"] = json!({"startContainer": [{"path": "/bin/false"}]});
    });
    let rt = Runtime::new();
    let id = rt.id("hookstart");
    rt.create_ok(&id, &b);
    let o = rt.start(&id);
    assert_fails(&o, "start");
    assert_one_line_error(&o, &["startContainer"]);
    assert!(
        !dir.join("ran").exists(),
        "the process ran although startContainer failed"
    );
}

#[test]
fn a_failing_poststart_hook_only_warns() {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    b.with_config(|c| c["hooks"] = json!({"poststart": [{"path": "/bin/false"}]}));
    let rt = Runtime::new();
    let o = rt.run(&rt.id("poststart"), &b);
    assert_ok(&o, "run");
    assert!(stderr(&o).contains("poststart"), "{}", show(&o));
}

#[test]
fn a_relative_hook_path_is_refused() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["hooks"] = json!({"prestart": [{"path": "bin/true"}]}));
    let rt = Runtime::new();
    let id = rt.id("relhook");
    let o = rt.create(&id, &b);
    assert_fails(&o, "create");
    assert_one_line_error(&o, &["hooks.prestart[0]", "absolute"]);
    assert_clean(rt.root(), &id, b.path());
}

fn mkdir_filter(nnp: bool) -> Bundle {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        c["process"]["noNewPrivileges"] = json!(nnp);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122},
                {"names": ["a_syscall_that_does_not_exist"], "action": "SCMP_ACT_KILL"}
            ]
        });
    });
    b
}

#[test]
fn a_seccomp_rule_makes_mkdir_fail_with_the_configured_errno() {
    let rt = Runtime::new();
    for nnp in [true, false] {
        let mut b = mkdir_filter(nnp);
        let out = rt.run_sh(&mut b, "mkdir /tmp/d 2>&1; echo ok");
        // errno 122 is EDQUOT.
        assert!(
            out.contains("quota") && out.contains("ok"),
            "noNewPrivileges={nnp}: {out}"
        );
        assert!(out.contains("ok"));
    }
}

#[test]
fn a_notify_rule_without_a_listener_or_agent_is_refused_and_leaves_nothing() {
    let rt = Runtime::new();
    for (name, listener, want) in [
        ("notify-nolistener", None, "listenerPath"),
        (
            "notify-noagent",
            Some("/run/wrun-test-no-agent.sock"),
            "wrun-test-no-agent.sock",
        ),
    ] {
        let mut b = Bundle::busybox();
        b.with_config(|c| {
            c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
            if let Some(l) = listener {
                c["linux"]["seccomp"]["listenerPath"] = json!(l);
            }
        });
        let id = rt.id(name);
        let o = rt.create(&id, &b);
        assert_fails(&o, "create");
        assert_one_line_error(&o, &["seccomp", want]);
        assert_clean(rt.root(), &id, b.path());
    }
}

/// The tests' agent (tests/src/bin/seccomp-agent.rs) listening in a temp dir: (its process,
/// the socket, the log of what it received and answered).
fn seccomp_agent(dir: &TempDir) -> (Spawned, std::path::PathBuf, std::path::PathBuf) {
    let (sock, log) = (dir.join("agent.sock"), dir.join("agent.log"));
    let agent = Spawned::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_seccomp-agent")).args([&sock, &log]),
        None,
    );
    assert!(
        wait_until(std::time::Duration::from_secs(10), || sock.exists()),
        "the agent listens"
    );
    (agent, sock, log)
}

fn notify_mkdir(b: &mut Bundle, sock: &std::path::Path, nnp: bool) {
    b.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
    b.with_config(|c| {
        c["process"]["noNewPrivileges"] = json!(nnp);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock, "listenerMetadata": "wrun-test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
}

/// The containerProcessState messages the agent logged.
fn agent_messages(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The agent's messages once one names container `id` (the agent logs after the runtime has
/// handed the fd over and moved on: the log may lag a moment), up to 5 s.
fn agent_messages_for(log: &std::path::Path, id: &str) -> Vec<Value> {
    let t = std::time::Instant::now();
    loop {
        let msgs = agent_messages(log);
        if msgs.iter().any(|m| m["state"]["id"] == id) || t.elapsed() > std::time::Duration::from_secs(5) {
            return msgs;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn seccomp_notifications_reach_the_agent_which_denies_one_mkdir_and_lets_another_through() {
    let rt = Runtime::new();
    let dir = TempDir::new("notify");
    let (_agent, sock, log) = seccomp_agent(&dir);
    for nnp in [false, true] {
        let mut b = Bundle::busybox();
        b.args(&["sleep", "1000"]);
        notify_mkdir(&mut b, &sock, nnp);
        let id = rt.id(if nnp { "notify-nnp" } else { "notify" });
        rt.create_ok(&id, &b);
        let msgs = agent_messages_for(&log, &id);
        let m = msgs.last().unwrap_or_else(|| {
            panic!(
                "the agent got nothing: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        assert_eq!(m["fds"], json!(["seccompFd"]), "{m}");
        assert_eq!(m["metadata"], "wrun-test-metadata");
        assert_eq!(m["state"]["id"], id.as_str());
        assert_eq!(m["state"]["status"], "creating");
        assert_eq!(m["pid"], rt.pid(&id), "{m}");
        assert_ok(&rt.start(&id), "start");
        let o = rt.exec(&[
            "exec",
            &id,
            "sh",
            "-c",
            "mkdir /tmp/deny-a; echo deny=$?; mkdir /tmp/ok-b; echo ok=$?; ls -d /tmp/ok-b; \
             for f in /proc/1/fd/* /proc/self/fd/*; do readlink $f; done | grep -c seccomp",
        ]);
        let out = stdout(&o);
        assert!(
            out.contains("deny=1\nok=0\n/tmp/ok-b\n0\n"),
            "noNewPrivileges={nnp}: {}",
            show(&o)
        );
        assert!(
            stderr(&o).contains("cross-device"),
            "the agent's errno (EXDEV): {}",
            show(&o)
        );
        // exec's process got its own fd, with its own pid.
        let msgs = agent_messages(&log);
        let e = msgs.last().unwrap();
        assert_ne!(e["pid"], m["pid"], "exec's message: {e}");
        assert_eq!(e["state"]["id"], id.as_str());
        rt.delete_force(&id);
    }
    let answers = std::fs::read_to_string(&log).unwrap();
    assert!(
        answers.contains("mkdir /tmp/deny-a: deny") && answers.contains("mkdir /tmp/ok-b: continue"),
        "{answers}"
    );
}

#[test]
fn a_wasm_guests_mkdir_is_notified_to_the_agent_too() {
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("wasm guests are wrun's own workload");
        return;
    }
    let dir = TempDir::new("notify-wasm");
    let (_agent, sock, log) = seccomp_agent(&dir);
    let mut b = Bundle::wasm("mkdir", &["/tmp/deny-w", "/tmp/ok-w"]);
    notify_mkdir(&mut b, &sock, true);
    let o = rt.run(&rt.id("notify-wasm"), &b);
    assert_ok(&o, "run the wasm guest under a notifying filter");
    let out = stdout(&o);
    // The guest sees the denial as WASI reports it (wasmtime maps EXDEV to EPERM); without the
    // agent's answer the mkdir would succeed, as the other one does.
    assert!(
        !out.contains("/tmp/deny-w: ok") && out.contains("/tmp/deny-w: ") && out.contains("/tmp/ok-w: ok"),
        "{}",
        show(&o)
    );
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("deny-w: deny"),
        "the agent answered the guest's mkdirat (relative to its preopen)"
    );
}

#[test]
fn a_masked_eq_rule_without_value_two_compares_with_zero() {
    // Docker's profile allows clone only when no namespace flag is set:
    // (flags & 0x7E020000) == 0, with valueTwo 0 left out of the JSON. Here the same test
    // denies instead, so a plain fork (no namespace flags) must be refused.
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                          "args": [{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ"}]}]
        });
    });
    b.sh("(true) && echo forked");
    let rt = Runtime::new();
    let o = rt.run(&rt.id("masked"), &b);
    assert!(
        !stdout(&o).contains("forked") && stderr(&o).contains("can't fork"),
        "{}",
        show(&o)
    );
}
