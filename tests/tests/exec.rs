//! `exec`: another process in a live container, in its namespaces and cgroup.

use wrun_tests::*;

fn running(rt: &Runtime, name: &str) -> (Bundle, String) {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    let id = rt.id(name);
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    (b, id)
}

#[test]
fn exec_sees_the_containers_pid_namespace_and_hostname() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-ns");
    let o = rt.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    assert_ok(&o, "exec");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "wrun-test", "{out}");
    assert_eq!(lines[1].trim(), "sleep 1000", "PID 1 is the container's init: {out}");
    assert!(lines[2].parse::<u32>().unwrap() > 1, "{out}");
}

#[test]
fn exec_returns_the_exit_code_of_its_process() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-code");
    let o = rt.exec(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
}

#[test]
fn exec_joins_the_containers_cgroup() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-cg");
    let o = rt.exec(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_ok(&o, "exec");
    let mine = stdout(&o);
    let init = std::fs::read_to_string(format!("/proc/{}/cgroup", rt.pid(&id))).unwrap();
    assert_eq!(mine, init);
}

#[test]
fn exec_flags_set_env_cwd_and_user() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-flags");
    let o = rt.exec(&[
        "exec",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u):$(id -g)",
    ]);
    assert_ok(&o, "exec");
    assert_eq!(stdout(&o).trim(), "bar /tmp 1000:1000");
}

#[test]
fn a_failed_exec_is_one_line_and_leaves_the_container_running() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-fail");
    let o = rt.exec(&["exec", &id, "/no/such/program"]);
    assert_fails(&o, "exec of a missing program");
    assert_one_line_error(&o, &["/no/such/program"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let o = rt.exec(&["exec", &id, "true"]);
    assert_ok(&o, "exec after a failed exec");
}

#[test]
fn exec_into_a_stopped_or_missing_container_fails() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-stopped");
    assert_ok(&rt.kill(&id, "KILL"), "kill");
    rt.wait_status(&id, "stopped");
    let o = rt.exec(&["exec", &id, "true"]);
    assert_fails(&o, "exec into a stopped container");
    assert_one_line_error(&o, &[&id, "stopped"]);
    let o = rt.exec(&["exec", "no-such-container", "true"]);
    assert_fails(&o, "exec into a missing container");
    assert_one_line_error(&o, &["no-such-container"]);
}

#[test]
fn exec_with_a_malformed_process_file_fails() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-process");
    let dir = TempDir::new("process");
    let p = dir.join("process.json");
    std::fs::write(&p, "{not json").unwrap();
    let o = rt.exec(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_fails(&o, "exec --process");
    assert_one_line_error(&o, &["process.json"]);
    std::fs::write(
        &p,
        r#"{"args":["sh","-c","echo from-file"],"cwd":"/","user":{"uid":0,"gid":0}}"#,
    )
    .unwrap();
    let o = rt.exec(&["exec", "--process", p.to_str().unwrap(), &id]);
    assert_ok(&o, "exec --process");
    assert_eq!(stdout(&o).trim(), "from-file");
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused_and_runs_on_resume() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-paused");
    assert_ok(&rt.exec(&["pause", &id]), "pause");
    let o = rt.exec(&["exec", &id, "true"]);
    assert_fails(&o, "exec into a paused container without --ignore-paused");
    assert!(stderr(&o).contains("--ignore-paused"), "{}", show(&o));
    let mut spawned = rt.spawn(&["exec", "--ignore-paused", &id, "sh", "-c", "echo ran"]);
    // While the container is paused the process does not run, so exec does not return.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!spawned.exited(), "exec returned while the container was paused");
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    assert_ok(&rt.exec(&["resume", &id]), "resume");
    let o = spawned.wait();
    assert_ok(&o, "exec --ignore-paused after resume");
    assert_eq!(stdout(&o), "ran\n");
}

#[test]
fn exec_cgroup_runs_the_process_in_a_sub_cgroup_of_the_container() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-subcg");
    // The container's cgroup as its init's /proc says (each runtime places it its own way).
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", rt.pid(&id))).unwrap();
    let sub = if is_cgroup_v2() {
        let p = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        std::path::Path::new("/sys/fs/cgroup")
            .join(p.trim_start_matches('/'))
            .join("sub")
    } else {
        let p = own
            .lines()
            .find_map(|l| l.split_once(":pids:").map(|(_, p)| p))
            .unwrap();
        std::path::Path::new("/sys/fs/cgroup/pids")
            .join(p.trim_start_matches('/'))
            .join("sub")
    };
    std::fs::create_dir(&sub).unwrap();
    let flag = if is_cgroup_v2() {
        "sub".to_string()
    } else {
        "pids:sub".to_string()
    };
    let o = rt.exec(&["exec", "--cgroup", &flag, &id, "cat", "/proc/self/cgroup"]);
    assert_ok(&o, "exec --cgroup");
    let mine = stdout(&o);
    let line = mine
        .lines()
        .find(|l| {
            if is_cgroup_v2() {
                l.starts_with("0::")
            } else {
                l.contains(":pids:")
            }
        })
        .unwrap_or_else(|| panic!("{mine}"));
    assert!(line.ends_with("/sub"), "the pids hierarchy is the sub-cgroup: {mine}");
    // A path that climbs out, and one that does not exist: one-line errors.
    let o = rt.exec(&["exec", "--cgroup", "../..", &id, "true"]);
    assert_fails(&o, "--cgroup ../..");
    let wrun = rt.kind() == RuntimeKind::Wrun;
    assert!(!wrun || stderr(&o).contains("without `..`"), "{}", show(&o));
    let o = rt.exec(&["exec", "--cgroup", "nope", &id, "true"]);
    assert_fails(&o, "--cgroup of a missing sub-cgroup");
    assert!(!wrun || stderr(&o).contains("does not exist"), "{}", show(&o));
    // A process left in the sub-cgroup does not stop delete: it is killed and the
    // sub-cgroup removed with the container's.
    assert_ok(
        &rt.exec(&["exec", "-d", "--cgroup", &flag, &id, "sleep", "1000"]),
        "exec -d into the sub-cgroup",
    );
    assert_ok(&rt.delete_force(&id), "delete --force");
    assert!(!sub.exists(), "the sub-cgroup is removed with the container");
}

#[test]
fn exec_pidfd_socket_receives_a_pidfd_of_the_process() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-pidfd");
    let dir = TempDir::new("pidfd");
    let (sock, pid_file) = (dir.join("pidfd.sock"), dir.join("pid"));
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let o = rt.exec(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--pidfd-socket",
        sock.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    assert_ok(&o, "exec --pidfd-socket");
    let (conn, _) = listener.accept().unwrap();
    use std::os::fd::AsRawFd;
    let fd = wrun_sys::fdpass::recv_fd(conn.as_raw_fd(), "the pidfd").unwrap();
    // The fd is a pidfd of the process the pid file names.
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(info.lines().any(|l| l == format!("Pid:\t{}", pid.trim())), "{info}");
    // A socket nobody listens on: one line, and nothing runs.
    let o = rt.exec(&[
        "exec",
        "--pidfd-socket",
        dir.join("none.sock").to_str().unwrap(),
        &id,
        "true",
    ]);
    assert_fails(&o, "exec with a dead --pidfd-socket");
    assert!(stderr(&o).contains("--pidfd-socket"), "{}", show(&o));
}

/// /proc/self/status fields of `exec ARGS... cat /proc/self/status` in container `id`.
fn status_of_exec(rt: &Runtime, id: &str, flags: &[&str]) -> String {
    let mut a = vec!["exec"];
    a.extend_from_slice(flags);
    a.extend_from_slice(&[id, "cat", "/proc/self/status"]);
    let o = rt.exec(&a);
    assert_ok(&o, &format!("exec {}", flags.join(" ")));
    stdout(&o)
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[test]
fn exec_flags_add_groups_a_capability_and_set_or_clear_no_new_privs() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-flags2");
    // The bundle's config: noNewPrivileges true, no CAP_NET_ADMIN (bit 12).
    let plain = status_of_exec(&rt, &id, &[]);
    let has_net_admin = |s: &str| u64::from_str_radix(field(s, "CapEff"), 16).unwrap() & (1 << 12) != 0;
    assert!(!has_net_admin(&plain), "{plain}");
    assert_eq!(field(&plain, "NoNewPrivs"), "1", "{plain}");
    let s = status_of_exec(
        &rt,
        &id,
        &["-u", "1000:1000", "-g", "44", "-g", "55", "--no-new-privs=false"],
    );
    assert_eq!(field(&s, "Groups"), "44 55", "{s}");
    assert_eq!(field(&s, "NoNewPrivs"), "0", "{s}");
    let s = status_of_exec(&rt, &id, &["--cap", "CAP_NET_ADMIN", "--no-new-privs"]);
    assert!(has_net_admin(&s), "{s}");
    assert!(
        u64::from_str_radix(field(&s, "CapBnd"), 16).unwrap() & (1 << 12) != 0,
        "{s}"
    );
    assert_eq!(field(&s, "NoNewPrivs"), "1", "{s}");
    assert_ok(&rt.delete_force(&id), "delete");
}

#[test]
fn exec_preserve_fds_passes_the_callers_fd_3() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "exec-fds");
    let dir = TempDir::new("exec-fds");
    std::fs::write(dir.join("given"), "handed-over\n").unwrap();
    let f = std::fs::File::open(dir.join("given")).unwrap();
    let fd = f.as_raw_fd();
    let mut c = rt.command(&["exec", "--preserve-fds", "1", &id, "cat", "/proc/self/fd/3"]);
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        c.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it either way.
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = run_cmd(&mut c, None);
    assert_ok(&o, "exec --preserve-fds 1");
    assert_eq!(stdout(&o), "handed-over\n");
    assert_ok(&rt.delete_force(&id), "delete");
}

/// A profile or label the host cannot apply is refused (runc fails closed too): the process
/// never runs unconfined.
#[test]
fn an_apparmor_profile_or_selinux_label_the_host_cannot_apply_is_refused() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.starts_with('Y'));
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    let rt = Runtime::new();
    let (b, id) = running(&rt, "exec-lsm");
    let marker = "/tmp/ran-unconfined";
    for (flag, enabled) in [("--apparmor", apparmor), ("--process-label", selinux)] {
        if enabled {
            skip(&format!(
                "{flag}: this host has the security module, the refusal is for hosts without it"
            ));
            continue;
        }
        let o = rt.exec(&["exec", flag, "wrun-test-profile", &id, "touch", marker]);
        assert_fails(&o, flag);
        assert!(!b.rootfs().join(&marker[1..]).exists(), "{flag}: the process ran");
        let o = rt.exec(&["exec", &id, "true"]);
        assert_ok(&o, "the container still runs");
    }
    assert_ok(&rt.delete_force(&id), "delete");
    // The same in the config, at create: refused, nothing left.
    if !apparmor {
        let mut b = Bundle::busybox();
        b.args(&["touch", marker]);
        b.with_config(|c| c["process"]["apparmorProfile"] = "wrun-test-profile".into());
        let id = rt.id("lsm-create");
        let o = rt.create(&id, &b);
        assert_fails(&o, "create with an apparmorProfile");
        if rt.kind() == RuntimeKind::Wrun {
            assert!(stderr(&o).contains("AppArmor is not enabled"), "{}", show(&o));
            assert_clean(rt.root(), &id, b.path());
        } else {
            let _ = rt.delete_force(&id);
        }
        assert!(!b.rootfs().join(&marker[1..]).exists(), "the process ran");
    }
}
