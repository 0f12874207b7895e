//! docker's runtime flags, each observed from inside the container.

use super::*;

/// A shell line that prints a cgroup file of either layout: `V1` under the v1 controller's
/// mount, else `V2` of the unified hierarchy.
fn cg(ctrl: &str, v1: &str, v2: &str) -> String {
    format!("cat /sys/fs/cgroup/{ctrl}/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
}

/// Prints the memory limit, pids limit and CPU quota of the container's cgroup, a line each.
fn limits_script() -> String {
    [
        cg("memory", "memory.limit_in_bytes", "memory.max"),
        cg("pids", "pids.max", "pids.max"),
        cg("cpu", "cpu.cfs_quota_us", "cpu.max"),
    ]
    .join("; ")
}

#[test]
fn resource_flags_reach_the_cgroup() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:res", &["CMD [\"sh\"]"]);
    let script = limits_script();
    let out = f.run_ok(&[
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "bb:res",
        "sh",
        "-c",
        &script,
    ]);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "67108864", "{out}");
    assert_eq!(l[1], "20", "{out}");
    assert!(l[2] == "50000" || l[2] == "50000 100000", "{out}");
    // A memory limit is enforced: a process that takes more is killed (docker's 137).
    let o = f.container(&[
        "run",
        "--rm",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "bb:res",
        "sh",
        "-c",
        "head -c 64m /dev/zero | tail > /dev/null",
    ]);
    assert_ne!(o.status.code(), Some(0), "64 MiB through tail under a 16 MiB limit");
    f.assert_nothing_left();
}

#[test]
fn process_flags_are_seen_by_the_process() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:proc", &["CMD [\"sh\"]"]);
    let sh = |flags: &[&str], script: &str| -> String {
        let mut a: Vec<&str> = flags.to_vec();
        a.extend_from_slice(&["bb:proc", "sh", "-c", script]);
        f.run_ok(&a)
    };
    assert_eq!(
        sh(&["--ulimit", "nofile=100:200"], "ulimit -Sn; ulimit -Hn").trim(),
        "100\n200"
    );
    let out = sh(
        &["--cap-drop", "ALL", "--cap-add", "net_admin"],
        "grep CapBnd /proc/self/status",
    );
    assert_eq!(out.trim(), "CapBnd:\t0000000000001000");
    let out = sh(
        &["--privileged"],
        "grep CapBnd /proc/self/status; grep ' /sys ' /proc/mounts",
    );
    let bnd = u64::from_str_radix(out.lines().next().unwrap().trim_start_matches("CapBnd:\t"), 16).unwrap();
    assert!(bnd & (1 << 21) != 0, "CAP_SYS_ADMIN with --privileged: {out}");
    assert!(out.lines().nth(1).unwrap().contains(" rw,"), "/sys writable: {out}");
    assert_eq!(sh(&[], "grep NoNewPrivs /proc/self/status").trim(), "NoNewPrivs:\t0");
    let out = sh(
        &["--security-opt", "no-new-privileges"],
        "grep NoNewPrivs /proc/self/status",
    );
    assert_eq!(out.trim(), "NoNewPrivs:\t1");
    assert_eq!(
        sh(&["--oom-score-adj", "500"], "cat /proc/self/oom_score_adj").trim(),
        "500"
    );
    assert_eq!(sh(&["--hostname", "h1"], "hostname").trim(), "h1");
    assert_eq!(sh(&["--group-add", "wheel", "-u", "1000"], "id -G").trim(), "1000 10");
    let out = sh(
        &["--sysctl", "net.ipv4.ip_forward=1"],
        "cat /proc/sys/net/ipv4/ip_forward",
    );
    assert_eq!(out.trim(), "1");
    assert_eq!(sh(&[], "echo $$").trim(), "1", "its own pid namespace");
    assert_ne!(sh(&["--pid", "host"], "echo $$").trim(), "1", "--pid host");
    // The host's network namespace itself (its interfaces come and go with other tests).
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = sh(&["--network", "host"], "readlink /proc/self/ns/net");
    assert_eq!(
        out.trim(),
        host_ns.to_str().unwrap(),
        "--network host is the host's namespace"
    );
    let out = sh(&["--shm-size", "2m"], "df -k /dev/shm | tail -n1");
    assert_eq!(out.split_whitespace().nth(1), Some("2048"), "{out}");
    let env = f.work.join("env");
    std::fs::write(&env, "# a comment\nFROM_FILE=yes\n").unwrap();
    assert_eq!(
        sh(&["--env-file", env.to_str().unwrap()], "echo $FROM_FILE").trim(),
        "yes"
    );
    // --kernel-memory is accepted with a warning (the kernel has no such limit any more).
    let o = f.container(&["run", "--rm", "--kernel-memory", "50m", "bb:proc", "true"]);
    assert_ok(&o, "--kernel-memory");
    assert!(stderr(&o).contains("warning: --kernel-memory"), "{}", stderr(&o));
    f.assert_nothing_left();
}

#[test]
fn filesystem_flags_read_only_tmpfs_binds_and_volumes() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:fs", &["CMD [\"sh\"]"]);
    let host = f.work.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from-host\n").unwrap();
    let h = host.to_str().unwrap();
    let out = f.run_ok(&[
        "--read-only",
        "--tmpfs",
        "/scratch",
        "bb:fs",
        "sh",
        "-c",
        "(touch /x) 2>/dev/null && echo root-writable; echo ok > /scratch/f && cat /scratch/f; grep ' /scratch ' /proc/mounts",
    ]);
    assert!(!out.contains("root-writable"), "{out}");
    assert!(out.contains("ok\n") && out.contains("noexec"), "{out}");
    // A read-only bind: readable, not writable; a writable one writes to the host.
    let out = f.run_ok(&[
        "-v",
        &format!("{h}:/data:ro"),
        "bb:fs",
        "sh",
        "-c",
        "cat /data/in; (echo x > /data/new) 2>/dev/null && echo wrote; true",
    ]);
    assert_eq!(out, "from-host\n");
    f.run_ok(&[
        "--mount",
        &format!("type=bind,source={h},target=/data"),
        "bb:fs",
        "sh",
        "-c",
        "echo back > /data/out",
    ]);
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "back\n");
    // A named volume outlives the container that wrote it; the next one reads it.
    f.run_ok(&["-v", "vol1:/v", "bb:fs", "sh", "-c", "echo kept > /v/f"]);
    assert_eq!(f.run_ok(&["-v", "vol1:/v", "bb:fs", "cat", "/v/f"]), "kept\n");
    assert!(f.data.join("volumes/vol1/_data/f").exists());
    // A --mount tmpfs with a size.
    let out = f.run_ok(&[
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "bb:fs",
        "sh",
        "-c",
        "df -k /t | tail -n1",
    ]);
    assert_eq!(out.split_whitespace().nth(1), Some("1024"), "{out}");
    f.assert_nothing_left();
}

#[test]
fn update_changes_a_running_containers_limits_and_its_next_start_keeps_them() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:upd", &[]);
    let script = limits_script();
    let o = f.container(&[
        "run",
        "-d",
        "--name",
        "u",
        "--network",
        "none",
        "-m",
        "64m",
        "--pids-limit",
        "50",
        "bb:upd",
        "sleep",
        "60",
    ]);
    assert_ok(&o, "run -d");
    let o = f.container(&[
        "update",
        "-m",
        "128m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "--restart",
        "on-failure:2",
        "u",
    ]);
    assert_ok(&o, "container update");
    let read = |f: &Front| {
        let o = f.container(&["exec", "u", "sh", "-c", &script]);
        assert_ok(&o, "exec cat the cgroup files");
        stdout(&o)
    };
    let out = read(&f);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "134217728", "{out}");
    assert_eq!(l[1], "20", "{out}");
    assert!(l[2] == "50000" || l[2] == "50000 100000", "{out}");
    assert_eq!(
        inspect(&f, "u")["restart"],
        serde_json::json!({"name": "on-failure", "max": 2})
    );
    // A restart keeps them (the config has them); an unset flag keeps the earlier value.
    assert_ok(&f.container(&["restart", "-t", "1", "u"]), "restart");
    let out = read(&f);
    assert!(out.starts_with("134217728\n20\n"), "{out}");
    // Bad input: one line naming the flag; nothing changed.
    let o = f.container(&["update", "-m", "1k", "u"]);
    assert_fails(&o, "update -m 1k");
    assert!(
        stderr(&o).contains("-m") && stderr(&o).trim().lines().count() == 1,
        "{}",
        show(&o)
    );
    let o = f.container(&["update", "--cpus", "1", "nosuch"]);
    assert_fails(&o, "update of a container that does not exist");
    assert!(stderr(&o).contains("nosuch"), "{}", show(&o));
    assert!(read(&f).starts_with("134217728\n20\n"));
    assert_ok(&f.container(&["rm", "-f", "u"]), "rm -f");
    f.assert_nothing_left();
}

#[test]
fn init_is_pid_1_reaps_orphans_and_passes_signals_on() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:init", &[]);
    // An orphan left to PID 1: a PID 1 that never waits (sleep) leaves it a zombie; the init
    // reaps it.
    let script = "(sleep 0.1 &); exec sleep 60";
    // `ps` in the container once the orphan has ended (its own line, as PID 1's command line
    // names it too) and, when `reaped`, is gone rather than a zombie (the zombie of an init that
    // never reaps stays, and the wait times out).
    let ps = |name: &str, reaped: bool| {
        let mut out = String::new();
        wait_until(std::time::Duration::from_secs(10), || {
            out = stdout(&f.container(&["exec", name, "ps", "-o", "pid,stat,args"]));
            let orphan = out.lines().any(|l| l.ends_with(" sleep 0.1"));
            let zombie = out.lines().any(|l| l.contains(" Z "));
            !(orphan || reaped && zombie)
        });
        out
    };
    let o = f.container(&[
        "run",
        "-d",
        "--name",
        "bare",
        "--network",
        "none",
        "bb:init",
        "sh",
        "-c",
        script,
    ]);
    assert_ok(&o, "run -d without --init");
    let bare = ps("bare", false);
    assert!(
        bare.lines().any(|l| l.contains(" Z ")),
        "without --init the orphan stays a zombie: {bare}"
    );
    assert_ok(&f.container(&["rm", "-f", "bare"]), "rm -f bare");
    let o = f.container(&[
        "run",
        "-d",
        "--init",
        "--name",
        "i",
        "--network",
        "none",
        "bb:init",
        "sh",
        "-c",
        script,
    ]);
    if stderr(&o).contains("no statically linked init") {
        skip("no static init (tini-static or catatonit) on this host");
        return;
    }
    assert_ok(&o, "run -d --init");
    let out = ps("i", true);
    assert!(
        !out.lines().any(|l| l.contains(" Z ")),
        "the init reaped the orphan: {out}"
    );
    let pid1 = out
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_default();
    assert!(
        pid1.ends_with("/dev/init -- sh -c (sleep 0.1 &); exec sleep 60"),
        "PID 1 is the init: {out}"
    );
    // The stop signal reaches the command through the init (tini forwards it): a quick stop.
    let t = std::time::Instant::now();
    assert_ok(&f.container(&["stop", "-t", "20", "i"]), "stop");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "SIGTERM ended it, not the SIGKILL 20 s later"
    );
    assert_eq!(inspect(&f, "i")["exit_code"], 143);
    assert_ok(&f.container(&["rm", "i"]), "rm");
    // A wasm module has nothing to reap: refused in one line.
    let module = fs::read(wasm_app("hello")).expect("make wasm-apps builds hello.wasm");
    let art = f.work.join("hello.tar");
    fs::write(&art, wasm_artifact(&module, "wrun.test/hello-init:1")).unwrap();
    assert_ok(&f.image(&["import", art.to_str().unwrap()]), "import the wasm artifact");
    f.refused(&["--init", "wrun.test/hello-init:1"], "--init");
    f.assert_nothing_left();
}

#[test]
fn device_gives_a_host_device_with_the_permissions_asked() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:dev", &[]);
    // A device no container gets by default and that opens without a capability.
    let Some(host_dev) = ["/dev/fuse", "/dev/net/tun", "/dev/loop-control"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists())
    else {
        skip("none of /dev/fuse, /dev/net/tun, /dev/loop-control on this host");
        return;
    };
    let dev_r = format!("{host_dev}:/dev/k:r");
    let out = f.run_ok(&[
        "--network",
        "none",
        "--device",
        &dev_r,
        "--device",
        "/dev/null:/dev/n2",
        "bb:dev",
        "sh",
        "-c",
        // Its only rule is ours (r): opening it to write is refused by the device cgroup.
        "ls -l /dev/k | cut -c1; : < /dev/k && echo read-k; (: > /dev/k) 2>/dev/null && echo wrote-k || echo refused-k; \
         echo x > /dev/n2 && echo wrote-n2",
    ]);
    let l: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(l, ["c", "read-k", "refused-k", "wrote-n2"], "{out}");
    // Without the flag the container has no such node.
    let out = f.run_ok(&[
        "--network",
        "none",
        "bb:dev",
        "sh",
        "-c",
        &format!("ls {host_dev} 2>/dev/null || echo absent"),
    ]);
    assert_eq!(out.trim(), "absent");
    f.refused(&["--device", "/etc/hostname", "bb:dev", "true"], "not a device");
    f.refused(&["--device", "/dev/null:/dev/n:rx", "bb:dev", "true"], "--device");
    f.refused(&["--device", "/dev/null:relative", "bb:dev", "true"], "--device");
    f.refused(&["--device", "/no/such/dev", "bb:dev", "true"], "/no/such/dev");
}

#[test]
fn a_docker_seccomp_profile_file_is_applied_with_its_conditions() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:sc", &[]);
    // Everything allowed but mkdir (EPERM), and chmod (EACCES) unless CAP_FOWNER is held.
    let profile = f.work.join("profile.json");
    fs::write(
        &profile,
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["chmod", "fchmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "excludes": {"caps": ["CAP_FOWNER"]}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let script = "mkdir /d 2>&1 || true; touch /f && chmod 600 /f 2>&1 && echo chmod-ok || true";
    let out = f.run_ok(&["--network", "none", "--security-opt", &opt, "bb:sc", "sh", "-c", script]);
    assert!(
        out.contains("Operation not permitted") && out.contains("chmod-ok"),
        "{out}"
    );
    let out = f.run_ok(&[
        "--network",
        "none",
        "--cap-drop",
        "FOWNER",
        "--security-opt",
        &opt,
        "bb:sc",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        out.contains("Permission denied") && !out.contains("chmod-ok"),
        "without CAP_FOWNER: {out}"
    );
    let bad = f.work.join("bad.json");
    fs::write(&bad, "{\"syscalls\": 5}").unwrap();
    f.refused(
        &["--security-opt", &format!("seccomp={}", bad.display()), "bb:sc", "true"],
        "defaultAction",
    );
    f.refused(
        &["--security-opt", "seccomp=/no/such/profile.json", "bb:sc", "true"],
        "/no/such/profile.json",
    );
}

#[test]
fn uts_ipc_host_cgroup_parent_and_stop_timeout_do_as_docker() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:ns", &[]);
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let host_ipc = fs::read_link("/proc/self/ns/ipc").unwrap();
    let out = f.run_ok(&[
        "--network",
        "none",
        "--uts",
        "host",
        "--ipc",
        "host",
        "bb:ns",
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/ipc",
    ]);
    assert_eq!(out, format!("{host_name}\n{}\n", host_ipc.display()));
    let out = f.run_ok(&["--network", "none", "bb:ns", "sh", "-c", "readlink /proc/self/ns/ipc"]);
    assert_ne!(
        out.trim(),
        host_ipc.to_str().unwrap(),
        "its own ipc namespace by default"
    );
    // --cgroup-parent: the container's cgroup is made under it (and goes with it).
    let parent = unique("wrun-test-parent");
    let o = f.container(&[
        "run",
        "-d",
        "--name",
        "cg",
        "--network",
        "none",
        "--cgroup-parent",
        &parent,
        "--stop-timeout",
        "1",
        "bb:ns",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    assert_ok(&o, "run -d --cgroup-parent");
    let id = stdout(&o).trim().to_string();
    let under: Vec<PathBuf> = find_dirs_named(std::path::Path::new("/sys/fs/cgroup"), &id, 6)
        .into_iter()
        .filter(|d| d.parent().is_some_and(|p| p.ends_with(&parent)))
        .collect();
    assert!(!under.is_empty(), "no cgroup of {id} under {parent}");
    // --stop-timeout 1: stop (no -t) sends SIGKILL a second after the ignored SIGTERM.
    let t = std::time::Instant::now();
    assert_ok(&f.container(&["stop", "cg"]), "stop");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(6),
        "stop waited {:?}, not ~1 s",
        t.elapsed()
    );
    assert_eq!(inspect(&f, "cg")["exit_code"], 137);
    assert_ok(&f.container(&["rm", "cg"]), "rm");
    // The container's own cgroups are gone; the parent stays, as with docker and runc: it is
    // the user's. Empty, the test removes it.
    let left = find_dirs_named(std::path::Path::new("/sys/fs/cgroup"), &id, 7);
    assert!(left.is_empty(), "the container's cgroups left: {left:?}");
    for d in find_dirs_named(std::path::Path::new("/sys/fs/cgroup"), &parent, 6) {
        fs::remove_dir(&d).unwrap_or_else(|e| panic!("{} is not empty: {e}", d.display()));
    }
    f.assert_nothing_left();
}
