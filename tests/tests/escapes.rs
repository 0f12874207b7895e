//! Adversarial tests for the container-escape classes of issue 14: an image and a config that
//! try to reach the host through leaked fds, the runtime's own binary, symlinks swapped under
//! the runtime's feet, `/dev/null` and masked paths, cgroup paths, signals, state files and a
//! killed `create`. Each test asserts that nothing appears on the host and no host path is
//! reachable. They are runtime-agnostic: run them against runc and crun with
//! `WRUN_TEST_RUNTIME=/usr/sbin/runc` or `WRUN_TEST_RUNTIME=tests/crun-hybrid.sh` (crun 1.8
//! needs the cgroup2 mount hidden on a hybrid host); the wasm cases skip there.

use serde_json::json;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};
use wrun_tests::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Only wrun has a wasm workload: prints the skip line for any other runtime.
fn has_wasm(rt: &Runtime) -> bool {
    let name = match rt.kind() {
        RuntimeKind::Wrun => return true,
        RuntimeKind::Runc => "runc".to_string(),
        RuntimeKind::Crun => "crun".to_string(),
        RuntimeKind::Other => rt.bin().file_name().unwrap_or_default().to_string_lossy().into_owned(),
    };
    skip(&format!("{name} has no wasm workload"));
    false
}

// Options before the ID: crun's parser takes no option after the positional arguments.

fn create(rt: &Runtime, id: &str, b: &Bundle) -> std::process::Output {
    rt.exec(&["create", "--bundle", b.path_str(), id])
}

#[track_caller]
fn create_ok(rt: &Runtime, id: &str, b: &Bundle) {
    assert_ok(&create(rt, id, b), "create");
}

/// `run` (create + start + wait + delete), stdio captured.
fn run(rt: &Runtime, id: &str, b: &Bundle) -> std::process::Output {
    rt.exec(&["run", "--bundle", b.path_str(), id])
}

/// The binary the runtime really executes: the file itself, or for a wrapper script (such as
/// tests/crun-hybrid.sh) the runtime it names, found in PATH.
fn real_binary(rt: &Runtime) -> PathBuf {
    let bin = fs::canonicalize(rt.bin()).unwrap_or_else(|_| rt.bin().to_path_buf());
    let head = fs::read(&bin).map(|b| b.starts_with(b"#!")).unwrap_or(false);
    if !head {
        return bin;
    }
    let name = match rt.kind() {
        RuntimeKind::Crun => "crun",
        RuntimeKind::Runc => "runc",
        _ => "wrun",
    };
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .and_then(|p| fs::canonicalize(p).ok())
        .unwrap_or(bin)
}

/// The ELF loader and the shared libraries `bin` needs, as `ldd` lists them (none for a
/// static binary).
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let o = std::process::Command::new("ldd").arg(bin).output().expect("run ldd");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// `../` `n` times: from any directory, enough of them reach `/`.
fn dots(n: usize) -> String {
    "../".repeat(n)
}

/// A path on the host, under /tmp, that must never be created; removed on drop if it was.
struct HostPath(PathBuf);

impl HostPath {
    fn new(tag: &str) -> HostPath {
        HostPath(std::env::temp_dir().join(unique(&format!("wrun-esc-{tag}"))))
    }

    /// The path without its leading `/` (to put after a run of `../`).
    fn rel(&self) -> String {
        self.0.to_str().unwrap().trim_start_matches('/').to_string()
    }

    fn exists(&self) -> bool {
        fs::symlink_metadata(&self.0).is_ok()
    }
}

impl Drop for HostPath {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        let _ = fs::remove_file(&self.0);
    }
}

/// Mount points of the host (this test's mount namespace) at or below `dir`.
fn host_mounts_under(dir: &Path) -> Vec<PathBuf> {
    mount_points().into_iter().filter(|m| m.starts_with(dir)).collect()
}

/// PIDs whose root or cwd lies inside `dir` (as the host sees them).
fn processes_in(dir: &Path) -> Vec<i64> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        let inside = ["root", "cwd"].iter().any(|l| {
            fs::read_link(format!("/proc/{pid}/{l}"))
                .map(|p| p.starts_with(dir))
                .unwrap_or(false)
        });
        if inside && pid_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The roots of every cgroup hierarchy mounted on this host (v1 ones and the cgroup2 one).
fn hierarchy_roots() -> Vec<PathBuf> {
    wrun_sys::mountinfo::read_own()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.mountpoint))
        .collect()
}

/// Cgroup directories, in any hierarchy, named exactly `name`.
fn cgroups_named(name: &str) -> Vec<PathBuf> {
    hierarchy_roots()
        .iter()
        .flat_map(|r| find_dirs_named(r, name, 5))
        .filter(|d| d.file_name().is_some_and(|f| f == name))
        .collect()
}

/// Removes cgroup directories (deepest first; for up to 2 s while they are busy); they must
/// hold no live process.
fn rmdir_all(mut dirs: Vec<PathBuf>) {
    dirs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for d in dirs {
        wait_until(Duration::from_secs(2), || fs::remove_dir(&d).is_ok() || !d.exists());
    }
}

/// Prints `wrun-tests: <test>: <what>` straight to stderr, past the harness's capture: the
/// measured rates (race hits, leftovers, modes) are part of what these tests report.
fn report(what: &str) {
    use std::io::Write;
    let name = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "wrun-tests: {name}: {what}");
}

/// Polls for `path` to exist.
fn wait_for_file(path: &Path, timeout: Duration) -> bool {
    wait_until(timeout, || path.exists())
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A cheap pseudo-random number (no rand crate here): xorshift seeded from the clock.
fn random_below(n: u64) -> u64 {
    static STATE: AtomicUsize = AtomicUsize::new(0);
    let mut x = STATE.load(Ordering::Relaxed) as u64;
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x as usize, Ordering::Relaxed);
    x % n
}

/// The live processes in the cgroup of `pid` (its pids controller on v1, its cgroup2 one on v2):
/// a container's processes whatever the host's view of their root (runc's shows "/").
fn cgroup_mates(cgroup_procs: &Path) -> Vec<i64> {
    fs::read_to_string(cgroup_procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p| pid_alive(*p))
        .collect()
}

/// The cgroup.procs file of `pid`'s cgroup: the pids hierarchy on v1, cgroup2 otherwise.
fn cgroup_procs_of(pid: i64) -> PathBuf {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v1 = cg.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, c, p) = (f.next()?, f.next()?, f.next()?);
        c.split(',')
            .any(|c| c == "pids")
            .then(|| Path::new("/sys/fs/cgroup/pids").join(p.trim_start_matches('/')))
    });
    match (v1, cgroup_layout()) {
        (Some(d), CgroupLayout::V1) => d.join("cgroup.procs"),
        (_, layout) => {
            let mount = match layout {
                CgroupLayout::V2(m) => m.clone(),
                CgroupLayout::V1 => PathBuf::from("/sys/fs/cgroup/unified"),
            };
            let p = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
            mount.join(p.trim_start_matches('/')).join("cgroup.procs")
        }
    }
}

/// Strings that would show a host path leaking into the container's view.
fn host_paths(rt: &Runtime, b: &Bundle) -> Vec<String> {
    let mut v = vec![
        rt.root().display().to_string(),
        rt.data_dir().display().to_string(),
        b.path().display().to_string(),
        rt.bin().display().to_string(),
        real_binary(rt).display().to_string(),
    ];
    v.dedup();
    v
}

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

// ---------------------------------------------------------------------------
// 4. A symlink swapped under a mount destination (CVE-2021-30465)
// ---------------------------------------------------------------------------

/// Most create/delete rounds while the symlink flips.
const SWAP_TRIES: usize = 80;

#[test]
fn a_symlink_swapped_under_a_mount_destination_never_redirects_it_to_the_host() {
    let rt = Runtime::new();
    let host_dir = TempDir::new("swap-host");
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    b.add_mount(json!({"destination": "/race/sub", "type": "tmpfs", "source": "tmpfs"}));
    let race = b.rootfs().join("race");
    let alt = b.rootfs().join("race.alt");
    fs::create_dir(&race).unwrap();
    std::os::unix::fs::symlink(host_dir.path(), &alt).unwrap();
    // A thread swaps rootfs/race between the real directory and a symlink to the host dir.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, a, b) = (stop.clone(), cstr(&race), cstr(&alt));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 on two NUL-terminated paths.
                unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    );
                }
                std::thread::yield_now();
            }
        })
    };
    let (mut created, mut refused) = (0, 0);
    let mut escaped = None;
    let deadline = Instant::now() + Duration::from_secs(25);
    for i in 0..SWAP_TRIES {
        if Instant::now() > deadline {
            break;
        }
        let id = rt.id("swap");
        let o = create(&rt, &id, &b);
        if o.status.success() {
            created += 1;
        } else {
            refused += 1;
        }
        let _ = rt.delete_force(&id);
        let written: Vec<_> = fs::read_dir(host_dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let mounted = host_mounts_under(host_dir.path());
        if !written.is_empty() || !mounted.is_empty() {
            escaped = Some(format!(
                "round {i}: written on the host: {written:?}; mounted: {mounted:?}\n{}",
                show(&o)
            ));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    report(&format!(
        "{created} create(s) succeeded, {refused} refused while the symlink flipped"
    ));
    if let Some(e) = escaped {
        panic!(
            "a mount destination was redirected to the host dir {}: {e}",
            host_dir.path().display()
        );
    }
}

// ---------------------------------------------------------------------------
// 5. maskedPaths through a symlink; 6. a fake /dev/null
// ---------------------------------------------------------------------------

#[test]
fn a_masked_path_that_is_a_symlink_masks_the_in_root_target_or_fails() {
    let rt = Runtime::new();
    let host_dir = TempDir::new("mask-host");
    let host_file = host_dir.join("secret");
    fs::write(&host_file, "host-secret").unwrap();
    let mut b = Bundle::busybox();
    // The absolute target names a host file; inside the root the same path holds other data.
    let in_root = b.rootfs().join(host_file.strip_prefix("/").unwrap());
    fs::create_dir_all(in_root.parent().unwrap()).unwrap();
    fs::write(&in_root, "in-root").unwrap();
    std::os::unix::fs::symlink(&host_file, b.rootfs().join("etc/secret")).unwrap();
    b.with_config(|c| {
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/etc/secret"))
    });
    b.sh("echo \"[$(cat /etc/secret 2>&1)]\"");
    let id = rt.id("masksym");
    let o = run(&rt, &id, &b);
    assert!(
        host_mounts_under(&host_file).is_empty(),
        "a mount landed on the host file {}",
        host_file.display()
    );
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "host-secret");
    if o.status.success() {
        let out = stdout(&o);
        assert!(
            !out.contains("in-root") && !out.contains("host-secret"),
            "/etc/secret -> {} was not masked\n{}",
            host_file.display(),
            show(&o)
        );
    }
    assert_clean(rt.root(), &id, b.path());
}

/// A busybox bundle with no /dev mounts (the runtime populates the rootfs's own /dev), and a
/// masked file /etc/masked holding "SECRET".
fn bundle_without_dev_tmpfs(out: &TempDir) -> Bundle {
    let mut b = Bundle::busybox();
    b.bind(out.path(), "/out", &[]);
    b.with_config(|c| {
        c["mounts"].as_array_mut().unwrap().retain(|m| {
            !m["destination"]
                .as_str()
                .is_some_and(|d| d == "/dev" || d.starts_with("/dev/"))
        });
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/etc/masked"));
    });
    b.write_file("/etc/masked", b"SECRET");
    // A read-only root is beside the point here (and runc cannot remount it without a /dev tmpfs).
    b.with_config(|c| c["root"]["readonly"] = json!(false));
    // Into a file, not stdout: with a fake /dev/null, crun's container prints nothing.
    b.sh("{ echo \"[$(cat /etc/masked 2>&1)]\"; stat -c '%F %t:%T' /etc/masked; } > /out/result 2>&1");
    b
}

/// Either the run failed closed naming /dev/null, or /etc/masked is the real null device.
#[track_caller]
fn assert_masked_by_real_null(o: &std::process::Output, out: &TempDir, fake: &str) {
    if !o.status.success() {
        assert!(
            stderr(o).contains("/dev/null"),
            "the run failed, but not on the fake /dev/null\n{}",
            show(o)
        );
        return;
    }
    let res = fs::read_to_string(out.join("result")).unwrap_or_default();
    assert!(
        !res.contains("SECRET") && !res.contains(fake),
        "the masked /etc/masked shows data (not the real /dev/null):\n{res}\n{}",
        show(o)
    );
    assert!(
        res.contains("character special file 1:3"),
        "the masked /etc/masked is not the 1:3 null device:\n{res}\n{}",
        show(o)
    );
}

#[test]
fn a_regular_file_at_dev_null_never_becomes_a_masked_path() {
    let rt = Runtime::new();
    let out = TempDir::new("null-out");
    let mut b = bundle_without_dev_tmpfs(&out);
    b.write_file("/dev/null", b"FAKE-NULL");
    let id = rt.id("fakenull");
    let o = run(&rt, &id, &b);
    assert_masked_by_real_null(&o, &out, "FAKE-NULL");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn a_dev_null_symlink_to_a_host_file_never_becomes_a_masked_path() {
    let rt = Runtime::new();
    let host_dir = TempDir::new("null-host");
    let host_file = host_dir.join("null");
    fs::write(&host_file, "HOST-DATA").unwrap();
    let out = TempDir::new("null-out");
    let b = bundle_without_dev_tmpfs(&out);
    std::os::unix::fs::symlink(&host_file, b.rootfs().join("dev/null")).unwrap();
    let id = rt.id("symnull");
    let o = run(&rt, &id, &b);
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "HOST-DATA");
    assert!(
        host_mounts_under(&host_file).is_empty(),
        "a mount landed on the host file"
    );
    assert_masked_by_real_null(&o, &out, "HOST-DATA");
    assert_clean(rt.root(), &id, b.path());
}

// ---------------------------------------------------------------------------
// 6b. Files the runtime reads from the image: /etc/passwd (for HOME), the wasm module
// ---------------------------------------------------------------------------

#[test]
fn an_etc_passwd_symlinked_to_a_host_file_does_not_leak_it_into_home() {
    let rt = Runtime::new();
    let host = HostPath::new("passwd");
    fs::write(&host.0, "root:x:0:0:root:/HOST-SECRET-HOME:/bin/sh\n").unwrap();
    let mut b = Bundle::busybox();
    let passwd = b.rootfs().join("etc/passwd");
    fs::remove_file(&passwd).unwrap();
    std::os::unix::fs::symlink(&host.0, &passwd).unwrap();
    b.args(&["sh", "-c", "echo home=$HOME"]);
    let id = rt.id("passwd");
    let o = run(&rt, &id, &b);
    assert!(
        !stdout(&o).contains("HOST-SECRET-HOME"),
        "the host file behind the image's /etc/passwd symlink reached the container: {}",
        show(&o)
    );
}

#[test]
fn a_wasm_module_symlinked_to_a_host_file_is_not_run() {
    let rt = Runtime::new();
    if !has_wasm(&rt) {
        return;
    }
    // A real guest on the host, outside the rootfs; the image's module is an absolute
    // symlink to that host path, which inside the container leads nowhere.
    let host = HostPath::new("module");
    fs::copy(wasm_app("hello"), &host.0).unwrap();
    let mut b = Bundle::busybox();
    std::os::unix::fs::symlink(&host.0, b.rootfs().join("app.wasm")).unwrap();
    b.args(&["/app.wasm", "leaked"]);
    b.annotate("run.oci.handler", "wasm");
    let id = rt.id("module");
    let o = run(&rt, &id, &b);
    assert!(
        !o.status.success(),
        "the host module behind the image's symlink ran: {}",
        show(&o)
    );
    assert!(
        stderr(&o).contains("/app.wasm"),
        "the error does not name the module: {}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------
// 7. cgroupsPath climbing out, or naming a hierarchy root
// ---------------------------------------------------------------------------

/// What a sandboxed create + delete --force did: the lines of the script below.
struct Sandboxed {
    created: bool,
    found: Vec<PathBuf>,
    sentinel_alive: bool,
    transcript: String,
}

/// Runs `create` and `delete --force` of a bundle whose cgroupsPath may name cgroups the test
/// does not own, inside a private PID namespace: a runtime that signals every process of the
/// cgroup it was given (e.g. the root cgroup, where every process of this host lives) can then
/// only reach the sandbox's own processes, among them a sentinel `sleep` standing for the
/// host's. Directories it makes are looked for (by the unique `needle`) while it exists.
fn sandboxed_create_delete(rt: &Runtime, b: &Bundle, needle: &str) -> Sandboxed {
    // Not registered with rt.id: Runtime's drop must never `delete --force` it outside the sandbox.
    let id = unique("cgpath");
    let rtcmd = format!("{} --root {}", rt.bin().display(), rt.root().display());
    let script = format!(
        r#"sleep 30 & s=$!
echo sentinel=$s
{rtcmd} create --bundle {bundle} {id} 2>&1; echo create=$?
find /sys/fs /tmp -maxdepth 7 -type d -name '{needle}' 2>/dev/null | sed 's/^/found /'
{rtcmd} delete --force {id} 2>&1; echo delete=$?
if kill -0 $s 2>/dev/null; then echo sentinel=alive; else echo sentinel=dead; fi
kill $s"#,
        bundle = b.path_str()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", &script])
        .env("WRUN_DATA_DIR", rt.data_dir());
    let o = run_cmd(&mut cmd, None);
    let t = stdout(&o) + &stderr(&o);
    // Whatever is left of the container dies with the sandbox; drop its state.
    let _ = fs::remove_dir_all(rt.root().join(&id));
    Sandboxed {
        created: t.lines().any(|l| l == "create=0"),
        found: t
            .lines()
            .filter_map(|l| l.strip_prefix("found "))
            .map(PathBuf::from)
            .collect(),
        sentinel_alive: t.lines().any(|l| l == "sentinel=alive"),
        transcript: t,
    }
}

/// Runs the sandboxed create/delete with `cgroupsPath` = `path` (`X` replaced by a unique
/// name) and asserts that every directory it made lies strictly inside one of `allowed`, that
/// none is left afterwards and that no process outside the container was killed.
fn check_cgroups_path(path: &str, relative: bool) {
    let rt = Runtime::new();
    let needle = unique("wrun-esc-cg");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let cgpath = path.replace('X', &needle);
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!(cgpath));
    let before: Vec<PathBuf> = hierarchy_roots().iter().filter(|r| r.is_dir()).cloned().collect();
    let r = sandboxed_create_delete(&rt, &b, &needle);
    // Clean up before asserting (only our uniquely named, now empty, directories).
    let mut left: Vec<PathBuf> = cgroups_named(&needle);
    rmdir_all(left.clone());
    // Outside any hierarchy, a runtime writing "cgroup files" leaves a plain directory.
    for extra in ["/sys/fs/cgroup", "/sys/fs", "/tmp"] {
        let p = Path::new(extra).join(&needle);
        if p.exists() {
            let _ = fs::remove_dir_all(&p);
            left.push(p);
        }
    }
    let allowed: Vec<PathBuf> = if relative { own_cgroup_dirs() } else { hierarchy_roots() };
    let outside: Vec<&PathBuf> = r
        .found
        .iter()
        .filter(|f| !allowed.iter().any(|a| f.starts_with(a) && *f != a))
        .collect();
    report(&format!(
        "cgroupsPath {cgpath:?}: create {}",
        if r.created { "accepted" } else { "refused" }
    ));
    assert!(
        r.sentinel_alive,
        "cgroupsPath {cgpath:?}: a process outside the container (in the cgroup it named) was killed\n{}",
        r.transcript
    );
    assert!(
        outside.is_empty(),
        "cgroupsPath {cgpath:?}: directories made outside {allowed:?}: {outside:?}\n{}",
        r.transcript
    );
    assert!(
        left.is_empty(),
        "cgroupsPath {cgpath:?}: directories left after delete --force: {left:?}\n{}",
        r.transcript
    );
    for root in before {
        assert!(root.is_dir(), "hierarchy {} is gone", root.display());
    }
}

#[test]
fn a_relative_cgroups_path_climbing_with_dotdot_stays_below_the_callers_cgroup() {
    check_cgroups_path("../../X", true);
}

#[test]
fn an_absolute_cgroups_path_climbing_with_dotdot_stays_in_the_hierarchy() {
    check_cgroups_path("/../../X", false);
}

#[test]
fn a_cgroups_path_climbing_out_of_the_cgroup_filesystem_creates_nothing_on_the_host() {
    check_cgroups_path("../../../../../../../../../tmp/X", true);
}

#[test]
fn a_cgroups_path_naming_the_hierarchy_root_is_refused_or_kills_nothing_there() {
    check_cgroups_path("/", false);
}

// ---------------------------------------------------------------------------
// 8. An existing cgroup that holds a process
// ---------------------------------------------------------------------------

/// A new directory in the v1 pids hierarchy (its name and path), made by the test; None, with
/// a skip line, on a host without one.
fn new_v1_pids_cgroup(prefix: &str) -> Option<(String, PathBuf)> {
    if is_cgroup_v2() {
        skip("written for the v1 pids hierarchy of a v1 or hybrid host");
        return None;
    }
    if !require_controller("pids") {
        return None;
    }
    let name = unique(prefix);
    let dir = Path::new("/sys/fs/cgroup/pids").join(&name);
    fs::create_dir(&dir).unwrap();
    Some((name, dir))
}

#[test]
fn an_existing_busy_cgroup_survives_create_and_delete_with_its_process() {
    let Some((name, dir)) = new_v1_pids_cgroup("wrun-esc-busy") else {
        return;
    };
    let rt = Runtime::new();
    let mut sleeper = Spawned::spawn(Command::new("sleep").arg("60"), None);
    let pid = sleeper.pid();
    fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let id = rt.id("busycg");
    let created = create(&rt, &id, &b);
    let deleted = rt.delete_force(&id);
    let alive = pid_alive(pid) && !sleeper.exited();
    let exists = dir.is_dir();
    // Clean up: our sleep, then every directory of that name the runtime may have made.
    kill_pid(pid, libc::SIGKILL);
    let _ = sleeper.try_wait_timeout(TIMEOUT);
    let ours = cgroups_named(&name);
    rmdir_all(ours);
    assert!(
        alive,
        "the process already in cgroup {} was killed\ncreate: {}\ndelete: {}",
        dir.display(),
        show(&created),
        show(&deleted)
    );
    assert!(exists, "the pre-existing cgroup {} was removed", dir.display());
}

#[test]
fn an_existing_empty_cgroup_is_joined_and_left_in_place_by_delete() {
    let Some((name, dir)) = new_v1_pids_cgroup("wrun-esc-empty") else {
        return;
    };
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sh", "-c", "cat /proc/self/cgroup"]);
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let id = rt.id("emptycg");
    let o = run(&rt, &id, &b);
    let exists = dir.is_dir();
    let others: Vec<PathBuf> = cgroups_named(&name).into_iter().filter(|d| d != &dir).collect();
    rmdir_all(cgroups_named(&name));
    assert_ok(&o, "run in an existing empty cgroup");
    assert!(
        stdout(&o).contains(&format!("pids:/{name}")),
        "the container is not in the existing cgroup: {}",
        show(&o)
    );
    assert!(exists, "delete removed the cgroup {} it did not create", dir.display());
    assert!(others.is_empty(), "delete left the cgroups it made: {others:?}");
}

// ---------------------------------------------------------------------------
// 9. kill --all against a forking process
// ---------------------------------------------------------------------------

#[test]
fn kill_all_leaves_no_process_of_a_forking_container() {
    // No PID namespace: the init's death does not take the others along, only kill --all can.
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.remove_namespace("pid");
    // Forks ~300 a second for as long as it lives; the pids limit bounds it (busybox sh exits
    // when a fork fails, so the init stays alive only while under the limit).
    b.with_config(|c| c["linux"]["resources"] = json!({"pids": {"limit": 2000}}));
    b.sh("exec 2>/dev/null; while :; do sleep 100 & usleep 3000; done");
    let id = rt.id("forker");
    create_ok(&rt, &id, &b);
    let procs = cgroup_procs_of(rt.pid(&id));
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_until(Duration::from_secs(10), || cgroup_mates(&procs).len() >= 40),
        "the container never forked: {:?}",
        cgroup_mates(&procs)
    );
    let o = rt.exec(&["kill", "--all", &id, "KILL"]);
    let gone = wait_until(Duration::from_secs(5), || cgroup_mates(&procs).is_empty());
    let left = cgroup_mates(&procs);
    // Clean up whatever escaped: processes of this container's cgroup, killed by their PIDs.
    for _ in 0..50 {
        let l = cgroup_mates(&procs);
        if l.is_empty() {
            break;
        }
        for p in l {
            kill_pid(p, libc::SIGKILL);
        }
        sleep(Duration::from_millis(20));
    }
    assert!(
        gone,
        "kill --all left {} process(es): {left:?}\n{}",
        left.len(),
        show(&o)
    );
}

// ---------------------------------------------------------------------------
// 10. State files' modes
// ---------------------------------------------------------------------------

/// The container's state directory and everything in it, with their modes.
fn state_entries(rt: &Runtime, id: &str) -> Vec<(PathBuf, fs::Metadata)> {
    let dir = rt.root().join(id);
    let mut out = vec![(
        dir.clone(),
        fs::symlink_metadata(&dir).expect("no state dir <root>/<id>"),
    )];
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), md));
        }
    }
    report(
        &out.iter()
            .map(|(p, m)| {
                format!(
                    "{} {:o}",
                    p.strip_prefix(rt.root()).unwrap().display(),
                    m.mode() & 0o7777
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    out
}

fn created_container(rt: &Runtime, name: &str) -> (Bundle, String) {
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    let id = rt.id(name);
    create_ok(rt, &id, &b);
    (b, id)
}

#[test]
fn state_files_are_readable_only_by_root() {
    let rt = Runtime::new();
    let (_b, id) = created_container(&rt, "modes");
    let entries = state_entries(&rt, &id);
    let (dir, dmd) = &entries[0];
    assert_eq!(
        dmd.mode() & 0o066,
        0,
        "the state dir {} is mode {:o}: other users can list or write it",
        dir.display(),
        dmd.mode() & 0o7777
    );
    let open: Vec<String> = entries
        .iter()
        .filter(|(_, m)| m.is_file() && m.mode() & 0o077 != 0)
        .map(|(p, m)| format!("{} {:o}", p.display(), m.mode() & 0o7777))
        .collect();
    assert!(open.is_empty(), "state files open to other users: {open:?}");
}

#[test]
fn the_exec_fifo_is_unreachable_by_other_users() {
    let rt = Runtime::new();
    let (_b, id) = created_container(&rt, "fifo");
    let entries = state_entries(&rt, &id);
    let traversable = entries[0].1.mode() & 0o011 != 0;
    let open: Vec<String> = entries
        .iter()
        .filter(|(_, m)| {
            let t = m.file_type();
            (t.is_fifo() || t.is_socket()) && m.mode() & 0o066 != 0 && traversable
        })
        .map(|(p, m)| format!("{} {:o}", p.display(), m.mode() & 0o7777))
        .collect();
    assert!(
        open.is_empty(),
        "fifos/sockets other users can open (state dir mode {:o}): {open:?}",
        entries[0].1.mode() & 0o7777
    );
}

// ---------------------------------------------------------------------------
// 11. Real-time signals
// ---------------------------------------------------------------------------

/// `kill ID <signal>` must run a `trap … 37` handler in the container.
fn check_rt_signal(signal: &str) {
    let rt = Runtime::new();
    let out = TempDir::new("rtsig");
    let mut b = Bundle::busybox();
    b.bind(out.path(), "/out", &[])
        .sh("trap 'echo got >> /out/sig' 37; echo > /out/ready; while :; do sleep 0.05; done");
    let id = rt.id("rtsig");
    create_ok(&rt, &id, &b);
    let pid = rt.pid(&id);
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_until(Duration::from_secs(5), || catches_signal(pid, 37)),
        "the container never installed its trap"
    );
    let o = rt.kill(&id, signal);
    let got = wait_for_file(&out.join("sig"), Duration::from_secs(3));
    assert!(
        got,
        "`kill {id} {signal}` did not reach the container's trap on signal 37\n{}",
        show(&o)
    );
}

#[test]
fn kill_with_signal_number_37_reaches_a_trap() {
    check_rt_signal("37");
}

#[test]
fn kill_rtmin_plus_3_by_name_reaches_a_trap_on_37() {
    check_rt_signal("RTMIN+3");
}

#[test]
fn kill_sigrtmin_plus_3_by_name_reaches_a_trap_on_37() {
    check_rt_signal("SIGRTMIN+3");
}

// ---------------------------------------------------------------------------
// 12. SIGKILL of create at a random moment, then delete --force
// ---------------------------------------------------------------------------

/// Rounds of killed creates.
const KILLED_CREATES: usize = 300;

#[test]
fn a_create_killed_at_any_moment_leaves_nothing_after_delete_force() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let mut leftovers: Vec<String> = Vec::new();
    let mut dirty_rounds = 0;
    let started = Instant::now();
    let mut rounds = 0;
    for _ in 0..KILLED_CREATES {
        if started.elapsed() > Duration::from_secs(40) {
            break;
        }
        rounds += 1;
        let id = rt.id("killed");
        let mut c = rt.spawn(&["create", "--bundle", b.path_str(), &id]);
        sleep(Duration::from_micros(random_below(30_000)));
        kill_pid(c.pid(), libc::SIGKILL);
        let _ = c.exited();
        drop(c);
        let _ = rt.delete_force(&id);
        let mut left = Vec::new();
        if rt.root().join(&id).exists() {
            left.push("state dir".to_string());
        }
        let cgs = cgroups_named(&id);
        if !cgs.is_empty() {
            left.push(format!("{} cgroup dir(s) e.g. {}", cgs.len(), cgs[0].display()));
        }
        let mounts = host_mounts_under(b.path());
        if !mounts.is_empty() {
            left.push(format!("mounts {mounts:?}"));
        }
        let mut procs = processes_in(b.path());
        for d in &cgs {
            procs.extend(cgroup_mates(&d.join("cgroup.procs")));
        }
        procs.sort();
        procs.dedup();
        if !procs.is_empty() {
            left.push(format!("processes {procs:?}"));
        }
        if !left.is_empty() {
            dirty_rounds += 1;
            leftovers.push(format!("{id}: {}", left.join(", ")));
            // Clean up this round: our container's processes by PID, then its cgroups.
            for p in &procs {
                kill_pid(*p, libc::SIGKILL);
            }
            wait_until(Duration::from_secs(2), || processes_in(b.path()).is_empty());
            rmdir_all(cgs);
            detach_mounts_under(&b.rootfs());
        }
    }
    report(&format!(
        "{dirty_rounds} of {rounds} killed creates left something after delete --force"
    ));
    assert!(
        leftovers.is_empty(),
        "{dirty_rounds} of {rounds} killed creates left something after delete --force:\n{}",
        leftovers.join("\n")
    );
}
