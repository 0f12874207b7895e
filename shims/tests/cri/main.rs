//! Pods through containerd's CRI plugin with `runtime_handler = "wrun"`, driven kubelet-style
//! over the CRI v1 gRPC API (no kubelet here; the kubelet's side of the conversation is this
//! API). Each test starts its own containerd with CRI enabled (`node.rs`), imports a pause,
//! a busybox and a wasm image into `k8s.io`, runs pods with a cgroup parent of its own, and at
//! the end checks that nothing of it is left: no shim, mount, cgroup, network namespace,
//! bridge port, CNI result or wrun state; then it deletes its bridge. Needs root.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
mod node;
mod testnode;

use testnode::*;

use std::fs;
use std::time::Duration;

use k8s_cri::v1::{ContainerState, NamespaceMode};
use node::{container_config, info_pid, read_cri_log, wait, BUSYBOX, WASM_POD};

const EXIT: Duration = Duration::from_secs(30);

#[test]
fn a_mixed_pod_runs_a_native_sidecar_and_a_wasm_app_in_one_shim_sharing_the_network() {
    let t = TestNode::start();
    let cri = &t.node.cri;
    let v = t.ok(cri.version());
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("containerd", "v1")
    );

    let (pod_cfg, pod, logs) = t.run_pod("mixed");
    let (status, info) = t.ok(cri.pod_status(&pod));
    let ip = status.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default();
    assert!(
        ip.starts_with("10.213."),
        "the pod has an address of the node's bridge network: {ip:?}"
    );
    let pause_pid = info_pid(&info).expect("sandbox pid in the verbose status");

    // The wasm app fetches a line from 127.0.0.1:8080, retrying until something listens; the
    // native sidecar, started second, serves it on the pod's loopback.
    let app = container_config("app", WASM_POD, &["/tcp-fetch.wasm", "8080", "20"]);
    let app = t.create(&pod, app, &pod_cfg);
    t.ok(cri.start_container(&app));
    let sidecar = container_config(
        "sidecar",
        BUSYBOX,
        &[
            "sh",
            "-c",
            "echo sidecar up; echo to stderr >&2; while :; do echo hello from the sidecar | nc -l -p 8080; done",
        ],
    );
    let sidecar = t.create(&pod, sidecar, &pod_cfg);
    // Both containers run in the pod's namespaces and under its cgroup parent: checked on the
    // wasm app while it waits for the sidecar, then on the sidecar.
    let (s, info) = t.ok(cri.container_status(&app));
    assert_eq!(
        s.state,
        ContainerState::ContainerRunning as i32,
        "the wasm app waits for the sidecar"
    );
    check_in_pod(info_pid(&info).expect("app pid"), pause_pid, &app, &t.cgroup_parent);
    t.ok(cri.start_container(&sidecar));

    // One shim serves the sandbox and both containers.
    assert_eq!(t.node.shims().len(), 1, "shims of the pod: {:?}", t.node.shims());
    let (s, info) = t.ok(cri.container_status(&sidecar));
    assert_eq!(s.state, ContainerState::ContainerRunning as i32);
    check_in_pod(
        info_pid(&info).expect("sidecar pid"),
        pause_pid,
        &sidecar,
        &t.cgroup_parent,
    );

    let s = t.ok(cri.wait_exited(&app, EXIT));
    let app_log = read_cri_log(&logs.join("app.log")).unwrap();
    assert_eq!(s.exit_code, 0, "the wasm app exited 0: {app_log:?}");
    assert_eq!(
        texts(&app_log, "stdout"),
        ["received: hello from the sidecar"],
        "{app_log:?}"
    );
    assert!(app_log.iter().all(|l| l.tag == "F"), "{app_log:?}");

    // ExecSync into the native sidecar: output, exit code, and the pod's hostname (UTS shared).
    let r = t.ok(cri.exec_sync(&sidecar, &["sh", "-c", "hostname; echo oops >&2; exit 3"], 10));
    assert_eq!(
        (
            String::from_utf8_lossy(&r.stdout).as_ref(),
            String::from_utf8_lossy(&r.stderr).as_ref(),
            r.exit_code
        ),
        ("mixed\n", "oops\n", 3)
    );
    let side_log = read_cri_log(&logs.join("sidecar.log")).unwrap();
    assert_eq!(texts(&side_log, "stdout"), ["sidecar up"], "{side_log:?}");
    assert_eq!(texts(&side_log, "stderr"), ["to stderr"], "{side_log:?}");

    // StopPodSandbox ends the sidecar (and the pause); its status says so.
    t.ok(cri.stop_pod(&pod));
    let (s, _) = t.ok(cri.container_status(&sidecar));
    assert_eq!(s.state, ContainerState::ContainerExited as i32, "after StopPodSandbox");
    t.ok(cri.remove_pod(&pod));
    assert!(t.ok(cri.list_containers()).is_empty());
    t.finish();
}

#[test]
fn exit_codes_logs_restarts_and_stops_of_native_and_wasm_containers_in_a_shared_pid_namespace() {
    let t = TestNode::start();
    let cri = &t.node.cri;
    // shareProcessNamespace: every container joins the pod's PID namespace.
    let (pod_cfg, pod, logs) = t.run_pod_with("codes", share_pid);
    let pause_pid = info_pid(&t.ok(cri.pod_status(&pod)).1).unwrap();
    let run = |name: &str, image: &str, command: &[&str]| {
        let mut c = container_config(name, image, command);
        join_pod_pid(&mut c);
        let id = t.create(&pod, c, &pod_cfg);
        t.ok(cri.start_container(&id));
        id
    };
    let native = run("native", BUSYBOX, &["sh", "-c", "echo native says hi; exit 3"]);
    let wasm_exit = run("wasm-exit", WASM_POD, &["/exit.wasm", "7"]);
    let hello = run("wasm-hello", WASM_POD, &["/hello.wasm", "from-cri"]);
    let sleeper = run("sleeper", BUSYBOX, &["sleep", "300"]);
    let waiter = run("wasm-waiter", WASM_POD, &["/tcp-fetch.wasm", "9", "300"]);

    assert_eq!(t.ok(cri.wait_exited(&native, EXIT)).exit_code, 3);
    let s = t.ok(cri.wait_exited(&wasm_exit, EXIT));
    assert_eq!((s.exit_code, s.reason.as_str()), (7, "Error"));
    let s = t.ok(cri.wait_exited(&hello, EXIT));
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"));
    let native_log = read_cri_log(&logs.join("native.log")).unwrap();
    assert_eq!(texts(&native_log, "stdout"), ["native says hi"]);
    let hello_log = read_cri_log(&logs.join("wasm-hello.log")).unwrap();
    let out = texts(&hello_log, "stdout");
    assert!(out.iter().any(|l| l.contains("hello from wasm")), "{hello_log:?}");
    assert!(out.iter().any(|l| l == "argv[1]=from-cri"), "{hello_log:?}");

    // The kubelet restarts a failed container: RemoveContainer, then attempt 1 in the same pod.
    t.ok(cri.remove_container(&native));
    assert!(t.ok(cri.list_containers()).iter().all(|c| c.id != native));
    let mut again = container_config("native", BUSYBOX, &["sh", "-c", "echo attempt 1"]);
    again.metadata.as_mut().unwrap().attempt = 1;
    again.log_path = "native-1.log".into();
    join_pod_pid(&mut again);
    let again = t.create(&pod, again, &pod_cfg);
    t.ok(cri.start_container(&again));
    assert_eq!(t.ok(cri.wait_exited(&again, EXIT)).exit_code, 0);
    assert_eq!(
        texts(&read_cri_log(&logs.join("native-1.log")).unwrap(), "stdout"),
        ["attempt 1"]
    );

    // A wasm guest is wrun's own process for its whole life: a native sibling in the pod's PID
    // namespace can see it (and the numbers of its fds), but not open its /proc/PID/exe (the
    // host's wrun binary) or follow any of its fds.
    let (_, info) = t.ok(cri.container_status(&waiter));
    let waiter_host_pid = info_pid(&info).unwrap();
    let nspid = std::fs::read_to_string(format!("/proc/{waiter_host_pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("NSpid:")
                .map(|v| v.split_whitespace().last().unwrap().to_string())
        })
        .unwrap();
    let probe = format!(
        "ls /proc/{nspid} >/dev/null && echo visible; head -c4 /proc/{nspid}/exe && echo exe-read; \
         readlink /proc/{nspid}/exe && echo exe-link; for f in /proc/{nspid}/fd/*; do \
         readlink $f && echo fd-link; done; true"
    );
    let r = t.ok(cri.exec_sync(&sleeper, &["sh", "-c", &probe], 10));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(
        out.contains("visible"),
        "the wasm guest is not in the pod's PID namespace: {r:?}"
    );
    assert!(
        !out.contains("exe-read") && !out.contains("exe-link") && !out.contains("fd-link") && !out.contains("ELF"),
        "a sibling reached the wasm guest's /proc/{nspid}/exe or fd: {r:?}"
    );

    // StopContainer on a wasm guest: SIGTERM ends it (143) within the grace period, where
    // SIGKILL at its end would give 137.
    t.ok(cri.stop_container(&waiter, 20));
    let (s, _) = t.ok(cri.container_status(&waiter));
    assert_eq!(
        (s.state, s.exit_code),
        (ContainerState::ContainerExited as i32, 143),
        "{s:?}"
    );

    // The sleeper shares the pod's PID namespace: the pause process is its PID 1.
    let (_, info) = t.ok(cri.container_status(&sleeper));
    let sleeper_pid = info_pid(&info).unwrap();
    assert_eq!(ns(sleeper_pid, "pid"), ns(pause_pid, "pid"));
    let r = t.ok(cri.exec_sync(&sleeper, &["cat", "/proc/1/cmdline"], 10));
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("trap"),
        "PID 1 is the pause: {r:?}"
    );
    // The kubelet's stats path: the shim's cgroup metrics through CRI.
    let st = t.ok(cri.container_stats(&sleeper));
    let mem = st
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(mem > 0, "memory working set of the sleeper: {mem}");
    // In-place resize: the kubelet's UpdateContainerResources reaches the container's cgroup.
    let limit = 96 * 1024 * 1024;
    let res = k8s_cri::v1::LinuxContainerResources {
        memory_limit_in_bytes: limit,
        cpu_quota: 20_000,
        cpu_period: 100_000,
        ..Default::default()
    };
    t.ok(cri.update_resources(&sleeper, res));
    let v2 = wrun_tests::is_cgroup_v2();
    let (mem_file, cpu_file, cpu_want) = if v2 {
        ("memory.max", "cpu.max", "20000 100000")
    } else {
        ("memory.limit_in_bytes", "cpu.cfs_quota_us", "20000")
    };
    assert_eq!(process_cgroup_file(sleeper_pid, "memory", mem_file), limit.to_string());
    assert_eq!(process_cgroup_file(sleeper_pid, "cpu", cpu_file), cpu_want);
    t.finish();
}

#[test]
fn a_container_whose_command_is_missing_fails_in_one_line_and_leaves_nothing() {
    let t = TestNode::start();
    let cri = &t.node.cri;
    let (pod_cfg, pod, _) = t.run_pod("bad");
    let c = t.create(&pod, container_config("bad", BUSYBOX, &["/no/such/binary"]), &pod_cfg);
    let e = cri
        .start_container(&c)
        .expect_err("starting a missing binary must fail");
    assert!(e.contains("/no/such/binary"), "the error names the binary: {e}");
    assert!(!e.trim().contains('\n'), "one line: {e}");
    // The pod is still there and still works.
    let ok = t.create(&pod, container_config("ok", BUSYBOX, &["true"]), &pod_cfg);
    t.ok(cri.start_container(&ok));
    assert_eq!(t.ok(cri.wait_exited(&ok, EXIT)).exit_code, 0);
    t.finish();
}

#[test]
fn a_container_over_its_memory_limit_is_reported_oom_killed() {
    let t = TestNode::start();
    let cri = &t.node.cri;
    let (pod_cfg, pod, _) = t.run_pod("oom");
    let mut hog = container_config("hog", BUSYBOX, &["sh", "-c", "x=a; while true; do x=$x$x$x$x; done"]);
    hog.linux.as_mut().unwrap().resources = Some(k8s_cri::v1::LinuxContainerResources {
        memory_limit_in_bytes: 32 * 1024 * 1024,
        ..Default::default()
    });
    let hog = t.create(&pod, hog, &pod_cfg);
    t.ok(cri.start_container(&hog));
    let s = t.ok(cri.wait_exited(&hog, EXIT));
    assert_eq!(s.exit_code, 137, "{s:?}");
    // containerd says OOMKilled only once it has handled the TaskOOM the shim publishes. CRI
    // learns of the exit from the task's Wait and of the OOM from the event stream, so the
    // reason may trail the exit by a moment (with runc.v2 too); the kubelet polls, and so do we.
    let reason = || t.ok(cri.container_status(&hog)).0.reason;
    let oom = wait(Duration::from_secs(5), || reason() == "OOMKilled");
    assert!(
        oom,
        "reason {:?} 5 s after the exit: no TaskOOM reached containerd",
        reason()
    );
    t.finish();
}

/// What a restricted pod security standard asks of a container: a non-root user, no
/// capabilities, no new privileges, the runtime's default seccomp profile, a read-only root.
fn restrict(c: &mut k8s_cri::v1::ContainerConfig) {
    use k8s_cri::v1::{security_profile::ProfileType, Capability, Int64Value, SecurityProfile};
    let sc = c.linux.as_mut().and_then(|l| l.security_context.as_mut()).unwrap();
    sc.run_as_user = Some(Int64Value { value: 1000 });
    sc.run_as_group = Some(Int64Value { value: 1000 });
    sc.readonly_rootfs = true;
    sc.no_new_privs = true;
    sc.capabilities = Some(Capability {
        drop_capabilities: vec!["ALL".into()],
        ..Default::default()
    });
    sc.seccomp = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        ..Default::default()
    });
}

/// The `Key:\tvalue` lines of /proc/PID/status that the security checks compare.
fn security_status(pid: i64) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let keys = ["Uid:", "Gid:", "CapEff:", "NoNewPrivs:", "Seccomp:"];
    status
        .lines()
        .filter(|l| keys.iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn a_restricted_security_context_and_pod_sysctls_apply_to_native_and_wasm_containers() {
    let t = TestNode::start();
    let cri = &t.node.cri;
    let sysctl = "net.ipv4.ip_unprivileged_port_start";
    let (pod_cfg, pod, logs) = t.run_pod_with("restricted", |c| {
        c.linux.as_mut().unwrap().sysctls.insert(sysctl.into(), "0".into());
    });
    let want = [
        "Uid: 1000",
        "Gid: 1000",
        "CapEff: 0000000000000000",
        "NoNewPrivs: 1",
        "Seccomp: 2",
    ];

    let mut native = container_config("native", BUSYBOX, &["sleep", "300"]);
    restrict(&mut native);
    let native = t.create(&pod, native, &pod_cfg);
    t.ok(cri.start_container(&native));
    let mut waiter = container_config("wasm", WASM_POD, &["/tcp-fetch.wasm", "9", "300"]);
    restrict(&mut waiter);
    let waiter = t.create(&pod, waiter, &pod_cfg);
    t.ok(cri.start_container(&waiter));
    for id in [&native, &waiter] {
        let pid = info_pid(&t.ok(cri.container_status(id)).1).unwrap();
        assert_eq!(security_status(pid), want, "{id}");
    }
    // Inside the native one: the pod's sysctl (set in the pod's network namespace) and the
    // read-only root.
    let r = t.ok(cri.exec_sync(
        &native,
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; touch /x 2>/dev/null || echo ro",
        ],
        10,
    ));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "0\nro\n", "{r:?}");
    // wasmtime runs to completion under the same restrictions (containerd's default seccomp
    // profile allows what it needs).
    let mut hello = container_config("hello", WASM_POD, &["/hello.wasm"]);
    restrict(&mut hello);
    let hello = t.create(&pod, hello, &pod_cfg);
    t.ok(cri.start_container(&hello));
    let s = t.ok(cri.wait_exited(&hello, EXIT));
    let out = texts(&read_cri_log(&logs.join("hello.log")).unwrap(), "stdout");
    assert_eq!(s.exit_code, 0, "{out:?}");
    assert!(out.iter().any(|l| l.contains("hello from wasm")), "{out:?}");
    t.finish();
}

#[test]
fn a_host_network_pod_shares_the_hosts_network_namespace() {
    let t = TestNode::start();
    let cri = &t.node.cri;
    let mut host_net = node::namespaces(NamespaceMode::Container);
    host_net.network = NamespaceMode::Node as i32;
    let (pod_cfg, pod, _) = t.run_pod_with("hostnet", |c| {
        // As the kubelet does: a host-network pod has the node's hostname, so none is sent.
        c.hostname.clear();
        let sc = c.linux.as_mut().and_then(|l| l.security_context.as_mut()).unwrap();
        sc.namespace_options = Some(host_net.clone());
    });
    let (status, info) = t.ok(cri.pod_status(&pod));
    assert_eq!(
        status.network.map(|n| n.ip).unwrap_or_default(),
        "",
        "no CNI address for a host-network pod"
    );
    let mut c = container_config("c", BUSYBOX, &["sleep", "300"]);
    c.linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .unwrap()
        .namespace_options = Some(host_net);
    let c = t.create(&pod, c, &pod_cfg);
    t.ok(cri.start_container(&c));
    let pid = info_pid(&t.ok(cri.container_status(&c)).1).unwrap();
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(ns(pid, "net"), host, "the container is in the host's network namespace");
    assert_eq!(ns(info_pid(&info).unwrap(), "net"), host, "so is the pause");
    assert!(t.node.bridge_ports().is_empty(), "no veth for a host-network pod");
    t.finish();
}
