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

mod cgroups;
mod fds;
mod paths;
mod state;
