//! The fixture of the containerd tests: a private containerd per test, the image archives,
//! and the checks that a test left nothing behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use wrun_tests::{
    assert_ok, detach_mounts_under, kill_pid, mount_points, pid_alive, show, stdout, unique, wait_until, wasm_app,
    Bundle, Spawned, TempDir,
};

pub const RUNTIME: &str = "io.containerd.wrun.v1";
pub const BUSYBOX: &str = "wrun.test/busybox:1";
pub const WASM: &str = "wrun.test/wasm:1";
pub const CTR_TIMEOUT: Duration = Duration::from_secs(30);

pub fn shim_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-wrun-v1"))
}

/// The image archives, written once per test process.
pub struct Images {
    pub busybox: PathBuf,
    pub wasm: PathBuf,
}

pub fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("shim-images"));
        fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oci-image.sh");
        let bb = Bundle::busybox();
        let busybox = dir.join("busybox.tar");
        let o = run(Command::new("bash")
            .arg(&script)
            .arg(bb.rootfs())
            .arg(&busybox)
            .args([BUSYBOX, r#"["sh"]"#]));
        assert_ok(&o, "write the busybox image");
        let w = dir.join("wasm-rootfs");
        fs::create_dir_all(&w).unwrap();
        for app in ["hello", "exit", "spin"] {
            fs::copy(wasm_app(app), w.join(format!("{app}.wasm"))).unwrap();
        }
        // Wasm magic and version, then garbage: detected as wasm, refused by the compiler.
        fs::write(w.join("corrupt.wasm"), b"\0asm\x01\0\0\0\x01\xffgarbage").unwrap();
        let wasm = dir.join("wasm.tar");
        let o = run(Command::new("bash").arg(&script).arg(&w).arg(&wasm).args([
            WASM,
            r#"["/hello.wasm"]"#,
            "module.wasm.image/variant=compat",
        ]));
        assert_ok(&o, "write the wasm image");
        Images { busybox, wasm }
    })
}

pub fn run(cmd: &mut Command) -> Output {
    Spawned::spawn(cmd, None).wait_timeout(CTR_TIMEOUT)
}

/// A private containerd, stopped (and its namespace cleaned) on drop.
pub struct Containerd {
    pub dir: TempDir,
    pub ns: String,
    child: Option<Child>,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = TempDir::new("containerd");
        let ns = unique("wt");
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n",
            d = dir.path().display()
        );
        fs::write(dir.join("config.toml"), config).unwrap();
        fs::create_dir_all(dir.join("fifo")).unwrap();
        let mut c = Containerd { dir, ns, child: None };
        c.spawn_daemon();
        c
    }

    pub fn spawn_daemon(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let shim_dir = shim_binary().parent().unwrap().to_path_buf();
        let path = format!("{}:{}", shim_dir.display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (apt-get install containerd)");
        self.child = Some(child);
        let ok = wait_until(Duration::from_secs(20), || {
            self.dir.join("c.sock").exists() && self.ctr_quiet(&["version"]).status.success()
        });
        assert!(ok, "containerd did not come up; log:\n{}", self.log());
    }

    pub fn stop_daemon(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_pid(c.id() as i64, libc::SIGTERM);
            let gone = wait_until(Duration::from_secs(10), || matches!(c.try_wait(), Ok(Some(_))));
            if !gone {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop_daemon();
        self.spawn_daemon();
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("c.sock"))
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        c
    }

    pub fn ctr_quiet(&self, args: &[&str]) -> Output {
        run(&mut self.ctr_cmd(args))
    }

    /// `ctr ARGS`, asserting success.
    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> Output {
        let o = self.ctr_quiet(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed\n{}\n--- containerd log tail ---\n{}",
            show(&o),
            self.log_tail()
        );
        o
    }

    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn import(&self, tar: &Path) {
        self.ctr(&["images", "import", tar.to_str().unwrap()]);
    }

    pub fn fifo_dir(&self) -> String {
        self.dir.join("fifo").to_string_lossy().into_owned()
    }

    /// `ctr run --rm --runtime io.containerd.wrun.v1 [extra] IMAGE ID ARGS...` (not asserted).
    pub fn run_rm(&self, extra: &[&str], image: &str, id: &str, args: &[&str]) -> Output {
        let fifo = self.fifo_dir();
        let mut a = vec!["run", "--rm", "--fifo-dir", &fifo, "--runtime", RUNTIME];
        a.extend_from_slice(extra);
        a.push(image);
        a.push(id);
        a.extend_from_slice(args);
        self.ctr_quiet(&a)
    }

    /// `ctr run -d` of a long-running task.
    #[track_caller]
    pub fn run_detached(&self, image: &str, id: &str, args: &[&str]) {
        let fifo = self.fifo_dir();
        let mut a = vec!["run", "-d", "--fifo-dir", &fifo, "--runtime", RUNTIME, image, id];
        a.extend_from_slice(args);
        self.ctr(&a);
    }

    /// The task's status from `ctr task ls`, if it is listed.
    pub fn status(&self, id: &str) -> Option<String> {
        let o = self.ctr_quiet(&["task", "ls"]);
        stdout(&o).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id))
                .then(|| f.get(2).map(|s| s.to_string()))
                .flatten()
        })
    }

    #[track_caller]
    pub fn wait_status(&self, id: &str, want: &str) {
        let ok = wait_until(Duration::from_secs(10), || self.status(id).as_deref() == Some(want));
        assert!(ok, "task {id} never became {want}: {:?}", self.status(id));
    }

    pub fn task_pid(&self, id: &str) -> i64 {
        let o = self.ctr(&["task", "ls"]);
        stdout(&o)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id))
                    .then(|| f.get(1).and_then(|p| p.parse().ok()))
                    .flatten()
            })
            .unwrap_or(0)
    }

    /// `ctr events`, running until [`stop_events`].
    pub fn events(&self) -> Spawned {
        let e = Spawned::spawn(&mut self.ctr_cmd(&["events"]), None);
        std::thread::sleep(Duration::from_millis(300));
        e
    }

    /// Kills and removes a task and its container.
    pub fn remove(&self, id: &str) {
        let _ = self.ctr_quiet(&["task", "kill", "-s", "SIGKILL", id]);
        let _ = wait_until(Duration::from_secs(5), || self.status(id).as_deref() != Some("RUNNING"));
        let _ = self.ctr_quiet(&["task", "rm", "-f", id]);
        let _ = self.ctr_quiet(&["container", "rm", id]);
    }

    /// Pids of the shims serving this test's namespace.
    pub fn shims(&self) -> Vec<i64> {
        let needle = format!("-namespace\0{}\0", self.ns);
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("containerd-shim-wrun-v1") && cmd.contains(&needle) && pid_alive(pid) {
                out.push(pid);
            }
        }
        out
    }

    /// Removes everything of the namespace, stops containerd and asserts nothing is left:
    /// no shim, no mount under the private dirs or the shim's state, no cgroup.
    pub fn finish(mut self) {
        self.clean_namespace();
        let gone = wait_until(Duration::from_secs(10), || self.shims().is_empty());
        assert!(gone, "shims left running: {:?}", self.shims());
        self.stop_daemon();
        let dir = self.dir.path().to_path_buf();
        let mounts: Vec<PathBuf> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&dir) && !m.ends_with("c.sock"))
            .collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        let state = Path::new("/run/containerd/wrun").join(&self.ns);
        let left: Vec<_> = fs::read_dir(&state)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "wrun state left in {}: {left:?}", state.display());
        let _ = fs::remove_dir(&state);
        // ctr puts every container of a namespace under the cgroup /<namespace>: that parent
        // may stay (as with runc), but it must be empty, so rmdir works.
        remove_empty_cgroups(&self.ns);
    }

    pub fn clean_namespace(&self) {
        if self.child.is_none() {
            return;
        }
        let o = self.ctr_quiet(&["container", "ls", "-q"]);
        for id in stdout(&o).lines().map(str::trim).filter(|l| !l.is_empty()) {
            self.remove(id);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Only reached with work left when a test failed: best effort, then the temp dir's own
        // drop detaches what is still mounted below it.
        self.clean_namespace();
        for pid in self.shims() {
            kill_pid(pid, libc::SIGKILL);
        }
        self.stop_daemon();
        detach_mounts_under(self.dir.path());
        let state = Path::new("/run/containerd/wrun").join(&self.ns);
        let wrun = shim_binary().with_file_name("wrun");
        for e in fs::read_dir(&state)
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let _ = Spawned::spawn(
                Command::new(&wrun)
                    .arg("--root")
                    .arg(&state)
                    .args(["delete", "--force"])
                    .arg(e.file_name()),
                None,
            )
            .try_wait_timeout(CTR_TIMEOUT);
        }
        let _ = fs::remove_dir(&state);
        for cg in cgroup_dirs(&self.ns) {
            let _ = fs::remove_dir(cg);
        }
    }
}

/// What `ctr events` printed, after a moment for the last events to arrive.
pub fn stop_events(events: Spawned) -> String {
    std::thread::sleep(Duration::from_millis(300));
    kill_pid(events.pid(), libc::SIGTERM);
    stdout(&events.wait())
}

/// Removes the cgroup `name` (a parent left for its owner, like ctr's `/<namespace>` or a
/// pod's cgroup parent) in every hierarchy, asserting it is empty: rmdir fails otherwise.
#[track_caller]
pub fn remove_empty_cgroups(name: &str) {
    for cg in cgroup_dirs(name) {
        assert!(
            fs::remove_dir(&cg).is_ok(),
            "cgroup {} is not empty: {:?}",
            cg.display(),
            fs::read_dir(&cg).map(|d| d
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
        );
    }
}

pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in fs::read_dir("/sys/fs/cgroup")
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let p = base.path().join(name);
        if p.is_dir() {
            out.push(p);
        }
    }
    let p = Path::new("/sys/fs/cgroup").join(name);
    if p.is_dir() {
        out.push(p);
    }
    out
}

pub fn with_busybox() -> Containerd {
    let c = Containerd::start();
    c.import(&images().busybox);
    c
}

pub fn with_wasm() -> Containerd {
    let c = Containerd::start();
    c.import(&images().wasm);
    c
}
