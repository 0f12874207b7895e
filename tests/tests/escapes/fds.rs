//! Escapes through file descriptors and the runtime's binary: a cwd in /proc/self/fd, a wasm
//! guest's /proc entries, a #!/proc/self/exe shebang.

use super::*;

// ---------------------------------------------------------------------------
// 1. process.cwd = /proc/self/fd/N (CVE-2024-21626)
// ---------------------------------------------------------------------------

#[test]
fn cwd_through_proc_self_fd_never_reaches_the_host() {
    // A leaked fd on a host directory turns `cwd: /proc/self/fd/N` into a cwd outside the
    // container's root, from where `..` walks up the host's tree. getcwd(2) says
    // "(unreachable)/..." for a cwd outside the process's root.
    let rt = Runtime::new();
    let marker = HostPath::new("cwd");
    let out = TempDir::new("cwd-out");
    let mut outside = Vec::new();
    for n in 3..32 {
        let mut b = Bundle::busybox();
        b.bind(out.path(), "/out", &[]);
        b.with_config(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        b.sh(&format!(
            "touch {}{} 2>/dev/null; /bin/pwd -P > /out/pwd-{n}",
            dots(16),
            marker.rel()
        ));
        let id = rt.id("cwdfd");
        if !create(&rt, &id, &b).status.success() {
            // Refused: fine, as long as it left nothing.
            assert_clean(rt.root(), &id, b.path());
            continue;
        }
        if rt.start(&id).status.success() {
            wait_for_file(&out.join(format!("pwd-{n}")), Duration::from_secs(5));
            let pwd = fs::read_to_string(out.join(format!("pwd-{n}"))).unwrap_or_default();
            if pwd.contains("unreachable") {
                outside.push(format!("fd {n}: cwd {}", pwd.trim()));
            }
        }
        let _ = rt.delete_force(&id);
        assert!(
            !marker.exists(),
            "cwd /proc/self/fd/{n}: the container created {} on the host",
            marker.0.display()
        );
    }
    assert!(outside.is_empty(), "the init's cwd lies outside its root: {outside:?}");
}

#[test]
fn exec_cwd_through_proc_self_fd_never_reaches_the_host() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    let id = rt.id("execcwd");
    create_ok(&rt, &id, &b);
    assert_ok(&rt.start(&id), "start");
    let marker = HostPath::new("execcwd");
    // getcwd(2) prints "(unreachable)/..." for a cwd outside the process's root.
    let script = format!("touch {}{} 2>/dev/null; /bin/pwd -P", dots(16), marker.rel());
    let mut outside = Vec::new();
    for n in 3..32 {
        let cwd = format!("/proc/self/fd/{n}");
        let o = rt.exec(&["exec", "--cwd", &cwd, &id, "sh", "-c", &script]);
        assert!(
            !marker.exists(),
            "exec --cwd {cwd}: the process created {} on the host\n{}",
            marker.0.display(),
            show(&o)
        );
        if o.status.success() && stdout(&o).contains("unreachable") {
            outside.push(format!("{cwd}: {}", stdout(&o).trim()));
        }
    }
    assert!(
        outside.is_empty(),
        "exec'd processes got a cwd outside the root: {outside:?}"
    );
}

#[test]
fn wasm_cwd_through_proc_self_fd_is_no_host_directory() {
    // The guest runs inside the runtime's own process, whose cwd a native process beside it
    // can follow through /proc/1/cwd.
    let rt = Runtime::new();
    if !has_wasm(&rt) {
        return;
    }
    let marker = HostPath::new("wasmcwd");
    let mut outside = Vec::new();
    for n in 3..32 {
        let mut b = Bundle::wasm("sleep", &["30"]);
        b.with_config(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        let id = rt.id("wasmcwd");
        if !create(&rt, &id, &b).status.success() {
            assert_clean(rt.root(), &id, b.path());
            continue;
        }
        if rt.start(&id).status.success() {
            // A native process beside the guest follows its cwd: getcwd(2) there says
            // "(unreachable)/..." if it lies outside the root.
            let script = format!(
                "touch /proc/1/cwd/{}{} 2>/dev/null; cd /proc/1/cwd 2>/dev/null && /bin/pwd -P",
                dots(16),
                marker.rel()
            );
            let o = rt.exec(&["exec", &id, "sh", "-c", &script]);
            if stdout(&o).contains("unreachable") {
                outside.push(format!("fd {n}: cwd {}", stdout(&o).trim()));
            }
        }
        let _ = rt.delete_force(&id);
        assert!(
            !marker.exists(),
            "wasm cwd /proc/self/fd/{n}: a process in the container created {} on the host",
            marker.0.display()
        );
    }
    assert!(
        outside.is_empty(),
        "the wasm guest's cwd lies outside its rootfs: {outside:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. A wasm guest's /proc/1/fd and /proc/1/exe seen from a native process beside it
// ---------------------------------------------------------------------------

#[test]
fn a_native_process_cannot_reach_the_host_through_a_wasm_guests_proc_entries() {
    let rt = Runtime::new();
    if !has_wasm(&rt) {
        return;
    }
    let b = Bundle::wasm("sleep", &["60"]);
    let id = rt.id("wasmproc");
    create_ok(&rt, &id, &b);
    assert_ok(&rt.start(&id), "start");
    let marker = HostPath::new("wasmfd");
    let script = format!(
        "ls -l /proc/1/fd/ 2>&1; readlink /proc/1/exe 2>&1; readlink /proc/1/cwd 2>&1; \
         echo head=$(head -c4 /proc/1/exe 2>/dev/null | od -An -c | tr -d ' '); \
         for n in $(seq 0 31); do touch /proc/1/fd/$n/{d}{m} 2>/dev/null; done; true",
        d = dots(16),
        m = marker.rel()
    );
    let o = rt.exec(&["exec", &id, "sh", "-c", &script]);
    let out = stdout(&o);
    assert!(
        !marker.exists(),
        "a native process created {} on the host through the guest's /proc/1/fd\n{out}",
        marker.0.display()
    );
    assert!(
        !out.contains("head=177ELF"),
        "the guest's /proc/1/exe reads the runtime's binary\n{out}"
    );
    let leaked: Vec<String> = host_paths(&rt, &b)
        .into_iter()
        .filter(|p| out.contains(p.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "host paths visible through /proc/1: {leaked:?}\n{out}"
    );
}

// ---------------------------------------------------------------------------
// 3. #!/proc/self/exe at /bin/sh and `exec` (CVE-2019-5736)
// ---------------------------------------------------------------------------

/// Exec attempts per run; each takes some tens of ms.
const HIJACK_TRIES: usize = 40;

#[test]
fn a_proc_self_exe_shebang_never_yields_a_handle_on_the_runtime_binary() {
    let rt = Runtime::new();
    let host_bin = real_binary(&rt);
    let md = fs::metadata(&host_bin).unwrap();
    let target = format!("{}:{}", md.dev(), md.ino());
    let out = TempDir::new("hijack");
    let mut b = Bundle::busybox();
    b.bind(out.path(), "/out", &[]);
    // The image carries the runtime binary's loader and libraries (a real distribution image
    // does), so that a hijacked exec really runs the runtime's binary inside the container.
    for lib in shared_libraries(&host_bin) {
        b.put_file(&lib, lib.to_str().unwrap());
    }
    // The image's /bin/sh re-executes whatever binary execs it: the runtime's, for `exec ID /bin/sh`.
    let sh = b.rootfs().join("bin/sh");
    fs::remove_file(&sh).unwrap();
    fs::write(&sh, "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(&sh, fs::Permissions::from_mode(0o755)).unwrap();
    // The init scans /proc for a process whose exe is not busybox, keeps a read handle on it,
    // and once the runtime is done tries to reopen that handle for writing (O_APPEND: nothing
    // is ever written).
    let scanner = format!(
        r#"exec 2>/dev/null; t={target}; held=; echo > /out/ready
while [ ! -e /out/go ] && [ -z "$held" ]; do
  for p in /proc/[0-9]*; do
    case $p in /proc/1|/proc/$$) continue;; esac
    command exec 3<$p/exe || continue
    l=$(readlink /proc/self/fd/3)
    case "$l" in /bin/busybox) exec 3<&-; continue;; esac
    d=$(stat -L -c %d:%i /proc/self/fd/3)
    echo "seen $p $l $d" >> /out/log
    if [ "$d" = "$t" ]; then held=1; echo > /out/hit; break; fi
    exec 3<&-
  done
done
while [ ! -e /out/go ]; do sleep 0.02; done
if [ -n "$held" ]; then
  if ( exec 4>>/proc/self/fd/3 ) 2>>/out/log; then echo "writable $d" >> /out/log; else echo "not-writable" >> /out/log; fi
fi
echo > /out/done"#
    );
    b.args(&["/bin/busybox", "sh", "-c", &scanner]);
    let id = rt.id("hijack");
    create_ok(&rt, &id, &b);
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_for_file(&out.join("ready"), Duration::from_secs(5)),
        "the scanner never started"
    );
    let mut tries = 0;
    while tries < HIJACK_TRIES && !out.join("hit").exists() {
        tries += 1;
        let _ = rt.exec(&["exec", &id, "/bin/sh"]);
    }
    fs::write(out.join("go"), "").unwrap();
    assert!(
        wait_for_file(&out.join("done"), Duration::from_secs(5)),
        "the scanner never finished"
    );
    let log = fs::read_to_string(out.join("log")).unwrap_or_default();
    let seen = log.lines().filter(|l| l.starts_with("seen ")).count();
    // Printed past the harness's capture: the hit rate is part of the report.
    report(&format!(
        "{tries} exec(s), {seen} foreign process image(s) seen in the container (host binary {} = {target})\n{log}",
        host_bin.display()
    ));
    assert!(
        !log.lines().any(|l| l.starts_with("writable")),
        "a process in the container reopened the runtime's host binary {} for writing\n{log}",
        host_bin.display()
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("seen ") && l.ends_with(&format!(" {target}"))),
        "a process in the container held the runtime's host binary {} ({target}) through /proc/PID/exe\n{log}",
        host_bin.display()
    );
}
