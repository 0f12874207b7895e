//! Support code for wrun's end-to-end tests.
//!
//! The tests drive a runc-compatible runtime binary as an OCI client would:
//! `$WRUN_TEST_RUNTIME` if set, else `<workspace>/target/debug/wrun`. They
//! must run as root. Every test gets its own private `--root` state
//! directory, its own bundle(s) under /tmp and unique container ids, so the
//! tests can run in parallel. Drop guards delete every container a test
//! created and remove every directory and mount it made, even when it fails.
//! Every spawned command is bounded by [`TIMEOUT`]; a command that hangs is
//! killed by its PID and the test fails.

mod cgroup;
pub use cgroup::*;

use serde_json::{json, Value};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Upper bound for any single command the tests spawn.
pub const TIMEOUT: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process: `<prefix>-<pid>-<counter>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The runtime under test.
pub fn runtime_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("WRUN_TEST_RUNTIME") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "WRUN_TEST_RUNTIME={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test-exe> -> target/debug/wrun
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable has no grandparent directory");
    let bin = dir.join("wrun");
    assert!(
        bin.exists(),
        "runtime binary {} does not exist: build it first with cargo build \
         (or set WRUN_TEST_RUNTIME to a runtime binary such as /usr/sbin/runc)",
        bin.display()
    );
    bin
}

// ---------------------------------------------------------------------------
// Output helpers
// ---------------------------------------------------------------------------

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Human readable dump of an Output for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        stdout(o),
        stderr(o)
    )
}

#[track_caller]
pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed\n{}", show(o));
}

#[track_caller]
pub fn assert_fails(o: &Output, what: &str) {
    assert!(!o.status.success(), "{what} unexpectedly succeeded\n{}", show(o));
}

/// Asserts a command failed with exactly one non-empty line on stderr that
/// mentions at least one of `names` (case-insensitive).
#[track_caller]
pub fn assert_one_line_error(o: &Output, names: &[&str]) {
    assert_fails(o, "command");
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line of error on stderr\n{}",
        show(o)
    );
    let lower = lines[0].to_lowercase();
    assert!(
        names.iter().any(|n| lower.contains(&n.to_lowercase())),
        "error line should name one of {names:?}\n{}",
        show(o)
    );
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: i64) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit_once(')').map(|(_, r)| r.trim_start());
            !matches!(state.and_then(|r| r.chars().next()), Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// Sends `sig` to `pid`. Only for processes the test itself started (or a
/// container init the test created).
pub fn kill_pid(pid: i64, sig: i32) {
    if pid > 0 {
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// Host PIDs of the direct children of `pid`.
pub fn children_of(pid: i64) -> Vec<i64> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|s| s.parse::<i64>().ok()));
            }
        }
    }
    out
}

/// True if the process has a handler installed for signal `sig`.
pub fn catches_signal(pid: i64, sig: i32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .map(|mask| mask & (1u64 << (sig - 1)) != 0)
        .unwrap_or(false)
}

/// PIDs of processes whose root directory lies inside `dir`.
pub fn processes_rooted_in(dir: &Path) -> Vec<i64> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if let Ok(root) = fs::read_link(format!("/proc/{pid}/root")) {
            if root.starts_with(dir) && pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Commands with a timeout
// ---------------------------------------------------------------------------

/// An anonymous (already unlinked) file in /tmp, for a child's stdio.
fn anon_file(content: Option<&[u8]>) -> File {
    let path = std::env::temp_dir().join(unique(".wrun-test-io"));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create stdio file");
    let _ = fs::remove_file(&path);
    if let Some(c) = content {
        f.write_all(c).expect("write stdin file");
        f.seek(SeekFrom::Start(0)).expect("seek");
    }
    f
}

fn read_back(mut f: File) -> Vec<u8> {
    let mut v = Vec::new();
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.read_to_end(&mut v).expect("read stdio file");
    v
}

/// A spawned command whose stdout/stderr go to files (so a container that
/// inherits them can never block us on a pipe). Dropping it before `wait`
/// kills the process by its PID.
pub struct Spawned {
    child: Option<Child>,
    out: Option<File>,
    err: Option<File>,
    desc: String,
}

impl Spawned {
    pub fn spawn(cmd: &mut Command, stdin: Option<&[u8]>) -> Spawned {
        let out = anon_file(None);
        let err = anon_file(None);
        let input = match stdin {
            Some(data) => Stdio::from(anon_file(Some(data))),
            None => Stdio::null(),
        };
        cmd.stdin(input)
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"));
        let desc = format!("{cmd:?}");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
        Spawned {
            child: Some(child),
            out: Some(out),
            err: Some(err),
            desc,
        }
    }

    pub fn pid(&self) -> i64 {
        self.child.as_ref().map(|c| c.id() as i64).unwrap_or(0)
    }

    /// Has the process exited yet?
    pub fn exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
    }

    /// Waits for the command for at most `timeout`; on timeout kills it by
    /// PID and returns an error describing it.
    pub fn try_wait_timeout(mut self, timeout: Duration) -> Result<Output, String> {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + timeout;
        let status: ExitStatus = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for {}: {e}", self.desc)),
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let out = String::from_utf8_lossy(&read_back(self.out.take().unwrap())).into_owned();
                let err = String::from_utf8_lossy(&read_back(self.err.take().unwrap())).into_owned();
                return Err(format!(
                    "timed out after {timeout:?}, killed: {}\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                    self.desc
                ));
            }
            sleep(Duration::from_millis(5));
        };
        Ok(Output {
            status,
            stdout: read_back(self.out.take().unwrap()),
            stderr: read_back(self.err.take().unwrap()),
        })
    }

    /// Waits for the command for at most `timeout`; kills it by PID and
    /// panics if it takes longer.
    #[track_caller]
    pub fn wait_timeout(self, timeout: Duration) -> Output {
        match self.try_wait_timeout(timeout) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn wait(self) -> Output {
        self.wait_timeout(TIMEOUT)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Runs a command to completion (bounded by [`TIMEOUT`]).
pub fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    Spawned::spawn(cmd, stdin).wait()
}

/// Runs a host command (e.g. `ip`) and asserts it succeeded.
#[track_caller]
pub fn host(args: &[&str]) -> Output {
    let o = run_cmd(Command::new(args[0]).args(&args[1..]), None);
    assert_ok(&o, &format!("host command {args:?}"));
    o
}

// ---------------------------------------------------------------------------
// Temp dirs and mounts
// ---------------------------------------------------------------------------

/// Mount points of this process's mount namespace.
pub fn mount_points() -> Vec<PathBuf> {
    wrun_sys::mountinfo::read_own()
        .unwrap_or_default()
        .into_iter()
        .map(|m| PathBuf::from(m.mountpoint))
        .collect()
}

/// Lazily unmounts everything mounted at or below `dir`, deepest first.
pub fn detach_mounts_under(dir: &Path) {
    for _ in 0..8 {
        let mut under: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(dir)).collect();
        if under.is_empty() {
            return;
        }
        under.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for m in under {
            if let Ok(c) = CString::new(m.as_os_str().as_bytes()) {
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
}

/// A directory under /tmp removed (after detaching any mounts below it) on
/// drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(&format!("wrun-test-{tag}")));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        detach_mounts_under(&self.path);
        // Never follow anything still mounted: refuse to remove if a mount
        // is left below us.
        if mount_points().iter().any(|m| m.starts_with(&self.path)) {
            eprintln!("warning: not removing {}: mounts remain", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A mount made on the host by the test (e.g. a tmpfs), detached on drop.
pub struct HostMount {
    target: PathBuf,
}

impl HostMount {
    pub fn tmpfs(target: &Path, options: &str) -> HostMount {
        fs::create_dir_all(target).expect("mkdir mount target");
        let src = CString::new("tmpfs").unwrap();
        let tgt = CString::new(target.as_os_str().as_bytes()).unwrap();
        let data = CString::new(options).unwrap();
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                src.as_ptr(),
                0,
                data.as_ptr() as *const libc::c_void,
            )
        };
        assert_eq!(
            rc,
            0,
            "mount tmpfs on {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        );
        HostMount {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(self.target.as_os_str().as_bytes()) {
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> NetNs {
        let name = unique("wrun-test");
        host(&["ip", "netns", "add", &name]);
        NetNs { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    pub fn inode(&self) -> u64 {
        fs::metadata(self.path()).expect("stat netns").ino()
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Spawned::spawn(Command::new("ip").args(["netns", "del", &self.name]), None).try_wait_timeout(TIMEOUT);
    }
}

/// A single virtual network interface on the host (type `dummy`, or `ifb`
/// where the kernel lacks dummy), deleted on drop if it is (back) on the
/// host.
pub struct DummyLink {
    pub name: String,
}

impl DummyLink {
    pub fn new() -> DummyLink {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // IFNAMSIZ: at most 15 characters.
        let name = format!("wrt{}x{n}", std::process::id() % 1_000_000);
        let dummy = run_cmd(Command::new("ip").args(["link", "add", &name, "type", "dummy"]), None);
        if !dummy.status.success() {
            host(&["ip", "link", "add", &name, "type", "ifb"]);
        }
        DummyLink { name }
    }

    pub fn on_host(&self) -> bool {
        Path::new("/sys/class/net").join(&self.name).exists()
    }
}

impl Default for DummyLink {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DummyLink {
    fn drop(&mut self) {
        if self.on_host() {
            let _ =
                Spawned::spawn(Command::new("ip").args(["link", "del", &self.name]), None).try_wait_timeout(TIMEOUT);
        }
    }
}

// ---------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        // The rootfs holds busybox alone: Debian's dynamically linked `busybox` package would
        // make every exec fail for want of its ELF interpreter.
        let ldd = Command::new("ldd").arg("/usr/bin/busybox").env("LC_ALL", "C").output();
        let ldd = ldd.map(|o| show(&o)).unwrap_or_default();
        assert!(
            ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
            "/usr/bin/busybox is dynamically linked: apt-get install busybox-static (ldd says: {ldd})"
        );
        let o = Command::new("/usr/bin/busybox")
            .arg("--list")
            .output()
            .expect("/usr/bin/busybox --list (is busybox-static installed?)");
        assert!(o.status.success(), "busybox --list failed");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .collect()
    })
}

/// The built guest `name` from `wasm-apps/` (`hello-p2` is the wasip2 component); built by
/// `make wasm-apps` (which `make test` runs).
pub fn wasm_app(name: &str) -> PathBuf {
    // Modules are built for wasip1, components (hello-p2, tcp-fetch) for wasip2.
    let target = if name.ends_with("-p2") || name == "tcp-fetch" {
        "wasm32-wasip2"
    } else {
        "wasm32-wasip1"
    };
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wasm-apps/target")
        .join(target)
        .join("release")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: build the guests first (make wasm-apps, or bash wasm-apps/build.sh)",
        p.display()
    );
    p
}

/// The default config: what `runc spec` writes, but with no terminal, a
/// fixed hostname, no `linux.resources` and ociVersion 1.0.2.
pub fn default_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "wrun-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in a fresh temp dir: a busybox rootfs plus config.json.
pub struct Bundle {
    dir: TempDir,
    config: Value,
}

impl Bundle {
    /// A bundle with a busybox rootfs and the [`default_config`].
    pub fn busybox() -> Bundle {
        let dir = TempDir::new("bundle");
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
        }
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))
            .expect("copy /usr/bin/busybox (is busybox-static installed?)");
        for applet in busybox_applets() {
            if applet == "busybox" {
                continue;
            }
            // Like `busybox --install -s /bin` run inside the rootfs.
            let _ = std::os::unix::fs::symlink("/bin/busybox", rootfs.join("bin").join(applet));
        }
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
        )
        .unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        let b = Bundle {
            dir,
            config: default_config(),
        };
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Edit the in-memory config; call [`Bundle::save`] afterwards.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.config
    }

    /// Writes the in-memory config to config.json.
    pub fn save(&self) {
        fs::write(self.config_path(), serde_json::to_vec_pretty(&self.config).unwrap()).expect("write config.json");
    }

    /// Edits the config and saves it.
    pub fn with_config(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.save();
        self
    }

    /// Copies a host file into the rootfs at `inside` (absolute, as the container sees it).
    pub fn put_file(&mut self, host: &Path, inside: &str) -> &mut Self {
        let dst = self.rootfs().join(inside.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).expect("mkdir in rootfs");
        fs::copy(host, &dst).unwrap_or_else(|e| panic!("copy {} into the rootfs: {e}", host.display()));
        self
    }

    /// Writes `bytes` into the rootfs at `inside`.
    pub fn write_file(&mut self, inside: &str, bytes: &[u8]) -> &mut Self {
        let dst = self.rootfs().join(inside.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).expect("mkdir in rootfs");
        fs::write(&dst, bytes).expect("write into the rootfs");
        self
    }

    /// A busybox bundle that runs the wasm guest `app` (see [`wasm_app`]) from
    /// `/app/<app>.wasm` with `args` after the program name.
    pub fn wasm(app: &str, args: &[&str]) -> Bundle {
        let mut b = Bundle::busybox();
        let inside = format!("/app/{app}.wasm");
        b.put_file(&wasm_app(app), &inside);
        let mut all = vec![inside.as_str()];
        all.extend_from_slice(args);
        b.args(&all);
        b
    }

    /// Sets an annotation and saves.
    pub fn annotate(&mut self, key: &str, value: &str) -> &mut Self {
        self.with_config(|c| {
            if !c["annotations"].is_object() {
                c["annotations"] = json!({});
            }
            c["annotations"][key] = json!(value);
        })
    }

    /// Sets process.args and saves.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.with_config(|c| c["process"]["args"] = json!(args))
    }

    /// Sets process.args to `sh -c SCRIPT` and saves.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Appends a mount and saves.
    pub fn add_mount(&mut self, mount: Value) -> &mut Self {
        self.with_config(|c| c["mounts"].as_array_mut().unwrap().push(mount))
    }

    /// Appends a bind mount of `src` at `dst` with extra options.
    pub fn bind(&mut self, src: &Path, dst: &str, extra: &[&str]) -> &mut Self {
        let mut opts = vec!["rbind"];
        opts.extend_from_slice(extra);
        self.add_mount(json!({
            "destination": dst,
            "type": "bind",
            "source": src.to_str().unwrap(),
            "options": opts,
        }))
    }

    /// Removes the namespace of that type from linux.namespaces and saves.
    pub fn remove_namespace(&mut self, ty: &str) -> &mut Self {
        self.with_config(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != ty)
        })
    }

    /// Sets (or adds) the namespace entry of that type and saves.
    pub fn set_namespace(&mut self, ns: Value) -> &mut Self {
        let ty = ns["type"].clone();
        self.with_config(|c| {
            let list = c["linux"]["namespaces"].as_array_mut().unwrap();
            list.retain(|n| n["type"] != ty);
            list.push(ns);
        })
    }
}

// ---------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------

/// The runtime binary with a private `--root` state directory. On drop it
/// `delete --force`s every container registered with [`Runtime::id`] or
/// [`Runtime::track`] and removes its directories.
pub struct Runtime {
    bin: PathBuf,
    root: TempDir,
    /// wrun's data dir (`WRUN_DATA_DIR`: the compiled-module cache), private to this runtime.
    data: TempDir,
    ids: Mutex<Vec<String>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        let bin = runtime_binary();
        let root = TempDir::new("root");
        let data = TempDir::new("data");
        Runtime {
            bin,
            root,
            data,
            ids: Mutex::new(Vec::new()),
        }
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The private state directory (`--root`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The private data directory (`WRUN_DATA_DIR`), where the compiled-module cache lives.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// A unique container id (registered for cleanup).
    pub fn id(&self, name: &str) -> String {
        let id = unique(name);
        self.track(&id);
        id
    }

    /// Registers an id for `delete --force` on drop.
    pub fn track(&self, id: &str) {
        self.ids.lock().unwrap().push(id.to_string());
    }

    /// `<bin> --root <root> ARGS...` (not yet run).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root()).args(args);
        c.env("WRUN_DATA_DIR", self.data_dir());
        c
    }

    /// Runs the runtime with `args`, bounded by [`TIMEOUT`].
    pub fn exec(&self, args: &[&str]) -> Output {
        run_cmd(&mut self.command(args), None)
    }

    pub fn exec_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_cmd(&mut self.command(args), Some(stdin))
    }

    /// Starts the runtime in the background.
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        Spawned::spawn(&mut self.command(args), None)
    }

    pub fn create(&self, id: &str, bundle: &Bundle) -> Output {
        self.create_with(id, bundle, &[])
    }

    pub fn create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        let mut args = vec!["create", id, "--bundle", bundle.path_str()];
        args.extend_from_slice(extra);
        self.exec(&args)
    }

    /// create, asserting success.
    #[track_caller]
    pub fn create_ok(&self, id: &str, bundle: &Bundle) {
        assert_ok(&self.create(id, bundle), "create");
    }

    pub fn start(&self, id: &str) -> Output {
        self.exec(&["start", id])
    }

    pub fn state_raw(&self, id: &str) -> Output {
        self.exec(&["state", id])
    }

    /// `state ID` parsed; panics if it fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let o = self.state_raw(id);
        assert_ok(&o, "state");
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("state output is not JSON: {e}\n{}", show(&o)))
    }

    /// The status from `state`, or None if `state` fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let o = self.state_raw(id);
        if !o.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v["status"].as_str().map(str::to_string)
    }

    /// Host PID of the container's init, from `state`.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i64 {
        self.state(id)["pid"].as_i64().expect("state has a pid")
    }

    /// Waits up to 10 s for `status`; panics with the last state otherwise.
    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str) {
        let ok = wait_until(Duration::from_secs(10), || self.status(id).as_deref() == Some(status));
        assert!(
            ok,
            "container {id} did not reach status {status}; last state: {}",
            show(&self.state_raw(id))
        );
    }

    pub fn kill(&self, id: &str, sig: &str) -> Output {
        self.exec(&["kill", id, sig])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.exec(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.exec(&["delete", "--force", id])
    }

    /// `run ID --bundle B` with stdio captured (stdin is /dev/null).
    pub fn run(&self, id: &str, bundle: &Bundle) -> Output {
        self.run_with(id, bundle, &[])
    }

    pub fn run_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        let mut args = vec!["run", id, "--bundle", bundle.path_str()];
        args.extend_from_slice(extra);
        self.exec(&args)
    }

    /// Sets args to `sh -c SCRIPT`, runs a fresh container and returns its
    /// output, asserting that it succeeded.
    #[track_caller]
    pub fn run_sh(&self, bundle: &mut Bundle, script: &str) -> String {
        bundle.sh(script);
        let id = self.id("sh");
        let o = self.run(&id, bundle);
        assert_ok(&o, &format!("run of `{script}`"));
        stdout(&o)
    }

    pub fn list(&self, extra: &[&str]) -> Output {
        let mut args = vec!["list"];
        args.extend_from_slice(extra);
        self.exec(&args)
    }

    pub fn spec(&self, bundle_dir: &Path) -> Output {
        self.exec(&["spec", "--bundle", bundle_dir.to_str().unwrap()])
    }

    pub fn features(&self) -> Output {
        self.exec(&["features"])
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            if !self.root().join(&id).exists() {
                continue;
            }
            let pid = Spawned::spawn(&mut self.command(&["state", &id]), None)
                .try_wait_timeout(TIMEOUT)
                .ok()
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .and_then(|v| v["pid"].as_i64())
                .unwrap_or(0);
            let r = Spawned::spawn(&mut self.command(&["delete", "--force", &id]), None).try_wait_timeout(TIMEOUT);
            let deleted = matches!(r, Ok(ref o) if o.status.success());
            if !deleted && pid_alive(pid) {
                // The container's init, which this test created.
                kill_pid(pid, libc::SIGKILL);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Assertions about leftovers
// ---------------------------------------------------------------------------

/// Asserts nothing of container `id` is left: no state dir `<root>/<id>`, no
/// mount referencing the bundle path, no process rooted in the bundle.
#[track_caller]
pub fn assert_clean(root: &Path, id: &str, bundle: &Path) {
    let state_dir = root.join(id);
    assert!(!state_dir.exists(), "state dir {} left behind", state_dir.display());
    let b = bundle.to_str().unwrap();
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mi.lines().filter(|l| l.contains(b)).collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
    let gone = wait_until(Duration::from_secs(3), || processes_rooted_in(bundle).is_empty());
    assert!(
        gone,
        "processes left running in {}: {:?}",
        bundle.display(),
        processes_rooted_in(bundle)
    );
}

// ---------------------------------------------------------------------------
// Console socket
// ---------------------------------------------------------------------------

/// A unix socket listening for the pty master a runtime sends with
/// `--console-socket`.
pub struct ConsoleSocket {
    dir: TempDir,
    listener: UnixListener,
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleSocket {
    pub fn new() -> ConsoleSocket {
        let dir = TempDir::new("console");
        let listener = UnixListener::bind(dir.join("c.sock")).expect("bind console socket");
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { dir, listener }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("c.sock")
    }

    /// Accepts one connection and receives one fd via SCM_RIGHTS.
    pub fn recv_master(&self, timeout: Duration) -> OwnedFd {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "nobody connected to the console socket");
                    sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept on console socket: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        wrun_sys::fdpass::recv_fd(stream.as_raw_fd(), "the pty master")
            .unwrap_or_else(|e| panic!("console socket: {e}"))
    }
}

/// Reads from a pty master until EOF/EIO, until the output contains
/// `until` (if given), or until `timeout`.
pub fn read_pty(fd: &OwnedFd, timeout: Duration, until: Option<&str>) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            break;
        }
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
        if let Some(u) = until {
            if String::from_utf8_lossy(&out).contains(u) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
