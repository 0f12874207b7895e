//! containerd-shim-wrun-v1 driven by a real containerd (Debian's, 1.6) through `ctr`.
//!
//! Each test starts its own containerd with a private config (root, state and sockets in a
//! temp dir, CRI disabled) and the shim's directory first on its PATH, imports the images it
//! needs into a namespace of its own, and stops containerd at the end. Then it checks that
//! nothing of it is left: no shim process of its namespace, no mount under its dirs, no
//! cgroup. The images are OCI archives written by `tests/oci-image.sh` from the project's
//! busybox rootfs and wasm guests. Needs root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use wrun_tests::{
    assert_ok, detach_mounts_under, kill_pid, mount_points, pid_alive, show, stdout, unique, wait_until, wasm_app,
    Bundle, Spawned, TempDir,
};

const RUNTIME: &str = "io.containerd.wrun.v1";
const BUSYBOX: &str = "wrun.test/busybox:1";
const WASM: &str = "wrun.test/wasm:1";
const CTR_TIMEOUT: Duration = Duration::from_secs(30);

fn shim_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-wrun-v1"))
}

/// The image archives, written once per test process.
struct Images {
    busybox: PathBuf,
    wasm: PathBuf,
}

fn images() -> &'static Images {
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

fn run(cmd: &mut Command) -> Output {
    Spawned::spawn(cmd, None).wait_timeout(CTR_TIMEOUT)
}

/// A private containerd, stopped (and its namespace cleaned) on drop.
struct Containerd {
    dir: TempDir,
    ns: String,
    child: Option<Child>,
}

impl Containerd {
    fn start() -> Containerd {
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

    fn spawn_daemon(&mut self) {
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

    fn stop_daemon(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_pid(c.id() as i64, libc::SIGTERM);
            let gone = wait_until(Duration::from_secs(10), || matches!(c.try_wait(), Ok(Some(_))));
            if !gone {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.stop_daemon();
        self.spawn_daemon();
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.join("c.sock"))
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        c
    }

    fn ctr_quiet(&self, args: &[&str]) -> Output {
        run(&mut self.ctr_cmd(args))
    }

    /// `ctr ARGS`, asserting success.
    #[track_caller]
    fn ctr(&self, args: &[&str]) -> Output {
        let o = self.ctr_quiet(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed\n{}\n--- containerd log tail ---\n{}",
            show(&o),
            self.log_tail()
        );
        o
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn import(&self, tar: &Path) {
        self.ctr(&["images", "import", tar.to_str().unwrap()]);
    }

    fn fifo_dir(&self) -> String {
        self.dir.join("fifo").to_string_lossy().into_owned()
    }

    /// `ctr run --rm --runtime io.containerd.wrun.v1 [extra] IMAGE ID ARGS...` (not asserted).
    fn run_rm(&self, extra: &[&str], image: &str, id: &str, args: &[&str]) -> Output {
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
    fn run_detached(&self, image: &str, id: &str, args: &[&str]) {
        let fifo = self.fifo_dir();
        let mut a = vec!["run", "-d", "--fifo-dir", &fifo, "--runtime", RUNTIME, image, id];
        a.extend_from_slice(args);
        self.ctr(&a);
    }

    /// The task's status from `ctr task ls`, if it is listed.
    fn status(&self, id: &str) -> Option<String> {
        let o = self.ctr_quiet(&["task", "ls"]);
        stdout(&o).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id))
                .then(|| f.get(2).map(|s| s.to_string()))
                .flatten()
        })
    }

    #[track_caller]
    fn wait_status(&self, id: &str, want: &str) {
        let ok = wait_until(Duration::from_secs(10), || self.status(id).as_deref() == Some(want));
        assert!(ok, "task {id} never became {want}: {:?}", self.status(id));
    }

    fn task_pid(&self, id: &str) -> i64 {
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
    fn events(&self) -> Spawned {
        let e = Spawned::spawn(&mut self.ctr_cmd(&["events"]), None);
        std::thread::sleep(Duration::from_millis(300));
        e
    }

    /// Kills and removes a task and its container.
    fn remove(&self, id: &str) {
        let _ = self.ctr_quiet(&["task", "kill", "-s", "SIGKILL", id]);
        let _ = wait_until(Duration::from_secs(5), || self.status(id).as_deref() != Some("RUNNING"));
        let _ = self.ctr_quiet(&["task", "rm", "-f", id]);
        let _ = self.ctr_quiet(&["container", "rm", id]);
    }

    /// Pids of the shims serving this test's namespace.
    fn shims(&self) -> Vec<i64> {
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
    fn finish(mut self) {
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
        for cg in cgroup_dirs(&self.ns) {
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

    fn clean_namespace(&self) {
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
    }
}

/// What `ctr events` printed, after a moment for the last events to arrive.
fn stop_events(events: Spawned) -> String {
    std::thread::sleep(Duration::from_millis(300));
    kill_pid(events.pid(), libc::SIGTERM);
    stdout(&events.wait())
}

fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
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

fn with_busybox() -> Containerd {
    let c = Containerd::start();
    c.import(&images().busybox);
    c
}

fn with_wasm() -> Containerd {
    let c = Containerd::start();
    c.import(&images().wasm);
    c
}

#[test]
fn ctr_run_prints_the_output_of_a_native_busybox_container() {
    let c = with_busybox();
    let o = c.run_rm(
        &[],
        BUSYBOX,
        "hello",
        &["sh", "-c", "echo hello from pid $$; cat /etc/passwd | head -1"],
    );
    assert_ok(&o, "ctr run");
    assert_eq!(stdout(&o), "hello from pid 1\nroot:x:0:0:root:/root:/bin/sh\n");
    c.finish();
}

#[test]
fn ctr_run_prints_the_output_of_a_wasm_compat_image_run_in_wasmtime() {
    let c = with_wasm();
    let o = c.run_rm(&["--env", "GREETING=hi"], WASM, "wasm-hello", &["/hello.wasm", "one"]);
    assert_ok(&o, "ctr run");
    let out = stdout(&o);
    assert!(out.contains("hello from wasm"), "{}", show(&o));
    assert!(out.contains("argv[1]=one"), "{}", show(&o));
    assert!(out.contains("GREETING=hi"), "{}", show(&o));
    c.finish();
}

#[test]
fn exit_codes_come_back_from_native_and_wasm_tasks() {
    let c = with_busybox();
    c.import(&images().wasm);
    let o = c.run_rm(&[], BUSYBOX, "exit-native", &["sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let o = c.run_rm(&[], WASM, "exit-wasm", &["/exit.wasm", "7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    c.finish();
}

#[test]
fn task_kill_stops_a_native_sleep_and_a_wasm_spin_loop() {
    let c = with_busybox();
    c.import(&images().wasm);
    c.run_detached(BUSYBOX, "sleeper", &["sleep", "1000"]);
    c.run_detached(WASM, "spinner", &["/spin.wasm"]);
    c.wait_status("sleeper", "RUNNING");
    c.wait_status("spinner", "RUNNING");
    // `sleep` as PID 1 has no SIGTERM handler, so the kernel drops TERM: KILL it.
    c.ctr(&["task", "kill", "-s", "SIGKILL", "sleeper"]);
    // The wasm host ends the guest on TERM with 128+15.
    c.ctr(&["task", "kill", "spinner"]);
    c.wait_status("sleeper", "STOPPED");
    c.wait_status("spinner", "STOPPED");
    let o = c.ctr(&["task", "rm", "spinner"]);
    assert!(stdout(&o).is_empty() || !stdout(&o).contains("error"), "{}", show(&o));
    c.finish();
}

#[test]
fn task_exec_runs_a_process_in_a_native_container() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "execd", &["sleep", "1000"]);
    c.wait_status("execd", "RUNNING");
    let events = c.events();
    let fifo = c.fifo_dir();
    let o = c.ctr_quiet(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo,
        "--exec-id",
        "e1",
        "execd",
        "sh",
        "-c",
        "echo exec sees pid1=$(cat /proc/1/comm); exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), "exec sees pid1=sleep");
    let o = c.ctr(&["task", "ps", "execd"]);
    assert!(stdout(&o).lines().count() >= 2, "{}", show(&o));
    let ev = stop_events(events);
    for topic in ["/tasks/exec-added", "/tasks/exec-started"] {
        assert!(
            ev.lines().any(|l| l.contains(topic) && l.contains("e1")),
            "no {topic} in\n{ev}"
        );
    }
    assert!(
        ev.lines()
            .any(|l| l.contains("/tasks/exit") && l.contains(r#""id":"e1""#) && l.contains(r#""exit_status":4"#)),
        "no TaskExit of the exec in\n{ev}"
    );
    c.finish();
}

#[test]
fn pause_and_resume_freeze_and_thaw_the_task() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "pausy", &["sleep", "1000"]);
    c.wait_status("pausy", "RUNNING");
    let pid = c.task_pid("pausy");
    let events = c.events();
    c.ctr(&["task", "pause", "pausy"]);
    assert_eq!(c.status("pausy").as_deref(), Some("PAUSED"));
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let st = state.rsplit_once(')').unwrap().1.trim_start().chars().next();
    assert_eq!(
        st,
        Some('D'),
        "a frozen task sleeps uninterruptibly in the freezer: {state}"
    );
    c.ctr(&["task", "resume", "pausy"]);
    assert_eq!(c.status("pausy").as_deref(), Some("RUNNING"));
    let ev = stop_events(events);
    for topic in ["/tasks/paused", "/tasks/resumed"] {
        assert!(
            ev.lines().any(|l| l.contains(topic) && l.contains("pausy")),
            "no {topic} in\n{ev}"
        );
    }
    c.finish();
}

#[test]
fn task_metrics_returns_cgroup_numbers() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "metered", &["sleep", "1000"]);
    c.wait_status("metered", "RUNNING");
    let o = c.ctr(&["task", "metrics", "metered"]);
    let out = stdout(&o);
    let value = |key: &str| -> Option<u64> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let usage = value("memory.usage_in_bytes").or_else(|| value("memory.usage"));
    assert!(usage.is_some_and(|u| u > 0), "no memory usage in\n{out}");
    assert_eq!(value("pids.current"), Some(1), "{out}");
    c.finish();
}

#[test]
fn a_memory_hog_produces_a_task_oom_event() {
    let c = with_busybox();
    let events = c.events();
    let o = c.run_rm(
        &["--memory-limit", "33554432"],
        BUSYBOX,
        "hog",
        &["sh", "-c", "x=a; while true; do x=$x$x$x$x; done"],
    );
    assert_eq!(o.status.code(), Some(137), "the hog is OOM-killed\n{}", show(&o));
    let ev = stop_events(events);
    assert!(
        ev.lines().any(|l| l.contains("/tasks/oom") && l.contains("hog")),
        "no TaskOOM in\n{ev}"
    );
    assert!(
        ev.lines().any(|l| l.contains("/tasks/exit") && l.contains("137")),
        "no TaskExit in\n{ev}"
    );
    c.finish();
}

#[test]
fn sigkill_of_the_shim_then_delete_cleans_up_and_reports_the_exit() {
    let c = with_busybox();
    c.run_detached(BUSYBOX, "orphan", &["sleep", "1000"]);
    c.wait_status("orphan", "RUNNING");
    let pid = c.task_pid("orphan");
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "one shim per container: {shims:?}");
    let bundle = c
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(&c.ns)
        .join("orphan");
    let address = fs::read_to_string(bundle.join("address")).expect("the shim wrote <bundle>/address");
    let socket = PathBuf::from(address.trim().trim_start_matches("unix://"));
    assert!(socket.exists(), "{} is not there", socket.display());
    let events = c.events();
    kill_pid(shims[0], libc::SIGKILL);
    // containerd sees the shim go, runs `containerd-shim-wrun-v1 delete`, which kills and
    // deletes the container and unmounts its rootfs.
    assert!(
        wait_until(Duration::from_secs(10), || !pid_alive(pid)),
        "the container's init {pid} survived"
    );
    assert!(
        wait_until(Duration::from_secs(10), || c.status("orphan").as_deref()
            != Some("RUNNING")),
        "task still listed as running"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !socket.exists()),
        "the dead shim's socket {} is left",
        socket.display()
    );
    let ev = stop_events(events);
    assert!(
        ev.lines()
            .any(|l| l.contains("/tasks/exit") && l.contains("orphan") && l.contains("137")),
        "no TaskExit with status 137 in\n{ev}"
    );
    c.finish();
}

#[test]
fn after_a_containerd_restart_the_task_is_listed_and_can_be_killed() {
    let mut c = with_busybox();
    c.run_detached(BUSYBOX, "survivor", &["sleep", "1000"]);
    c.wait_status("survivor", "RUNNING");
    c.restart();
    assert_eq!(c.status("survivor").as_deref(), Some("RUNNING"));
    c.ctr(&["task", "kill", "-s", "SIGKILL", "survivor"]);
    c.wait_status("survivor", "STOPPED");
    c.ctr(&["task", "rm", "survivor"]);
    c.finish();
}

#[test]
fn a_missing_entry_point_fails_ctr_run_with_the_cause() {
    let c = with_busybox();
    let o = c.run_rm(&[], BUSYBOX, "noexec", &["/no/such/program"]);
    assert!(!o.status.success(), "{}", show(&o));
    let err = wrun_tests::stderr(&o);
    assert!(
        err.contains("/no/such/program"),
        "the error names the entry point\n{}",
        show(&o)
    );
    assert!(c.status("noexec").is_none(), "no task is left");
    c.finish();
}

#[test]
fn a_corrupt_wasm_module_fails_ctr_run_with_the_cause() {
    let c = with_wasm();
    let o = c.run_rm(&[], WASM, "corrupt", &["/corrupt.wasm"]);
    assert!(!o.status.success(), "{}", show(&o));
    let err = wrun_tests::stderr(&o);
    assert!(
        err.contains("/corrupt.wasm") && err.contains("WebAssembly"),
        "the error names the module and the cause\n{}",
        show(&o)
    );
    assert!(c.status("corrupt").is_none(), "no task is left");
    c.finish();
}

#[test]
fn containers_of_one_pod_share_one_shim_which_goes_with_the_last() {
    let c = with_busybox();
    let fifo = c.fifo_dir();
    let pod = "io.kubernetes.cri.sandbox-id=pod-1";
    for id in ["pod-a", "pod-b"] {
        c.ctr(&[
            "run",
            "-d",
            "--fifo-dir",
            &fifo,
            "--runtime",
            RUNTIME,
            "--annotation",
            pod,
            BUSYBOX,
            id,
            "sleep",
            "1000",
        ]);
        c.wait_status(id, "RUNNING");
    }
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "one shim for the pod: {shims:?}");
    c.remove("pod-a");
    assert_eq!(c.status("pod-b").as_deref(), Some("RUNNING"));
    assert!(pid_alive(shims[0]), "the shim stays while the pod has a container");
    c.remove("pod-b");
    assert!(
        wait_until(Duration::from_secs(10), || !pid_alive(shims[0])),
        "the shim exits with the pod's last container"
    );
    c.finish();
}

/// `ctr` 1.6 has no `task update`: this calls the shim's Update over its own ttrpc socket,
/// as containerd would for CRI's UpdateContainerResources.
#[test]
fn update_changes_the_limits_of_a_running_task() {
    use containerd_shim::protos::protobuf::well_known_types::any::Any;
    use containerd_shim::protos::protobuf::MessageField;
    use containerd_shim::protos::shim::shim::UpdateTaskRequest;
    use containerd_shim::protos::shim_sync::{Client, TaskClient};
    use containerd_shim::protos::ttrpc::context::Context;

    let c = with_busybox();
    c.run_detached(BUSYBOX, "updated", &["sleep", "1000"]);
    c.wait_status("updated", "RUNNING");
    let bundle = c
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(&c.ns)
        .join("updated");
    let address = fs::read_to_string(bundle.join("address")).unwrap();
    let client = TaskClient::new(Client::connect(address.trim()).expect("connect to the shim"));
    let req = UpdateTaskRequest {
        id: "updated".into(),
        resources: MessageField::some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
            value: br#"{"memory":{"limit":67108864},"pids":{"limit":32}}"#.to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .update(Context::default(), &req)
        .expect("Update through the shim");
    let o = c.ctr(&["task", "metrics", "updated"]);
    let out = stdout(&o);
    let value = |k: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    };
    let limit = value("memory.limit_in_bytes").or_else(|| value("memory.usage_limit"));
    assert_eq!(limit.as_deref(), Some("67108864"), "{out}");
    assert_eq!(value("pids.limit").as_deref(), Some("32"), "{out}");
    drop(client);
    c.finish();
}

/// `ctr -t` wants a terminal of its own: `script` (util-linux) gives it one.
fn in_a_terminal(c: &Containerd, ctr_args: &str) -> Output {
    let cmd = format!(
        "stty cols 91 rows 33; ctr --address {} -n {} {ctr_args}",
        c.dir.join("c.sock").display(),
        c.ns
    );
    run(Command::new("script").args(["-qec", &cmd, "/dev/null"]))
}

#[test]
fn a_terminal_task_and_a_terminal_exec_get_a_pty_of_the_clients_size() {
    let c = with_busybox();
    let fifo = c.fifo_dir();
    // The size arrives by ResizePty right after start: give it a moment.
    let o = in_a_terminal(
        &c,
        &format!(
            "run --rm -t --fifo-dir {fifo} --runtime {RUNTIME} {BUSYBOX} tty-run sh -c 'sleep 0.3; tty; stty size'"
        ),
    );
    assert_ok(&o, "ctr run -t");
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/0"), "{}", show(&o));
    assert!(out.contains("33 91"), "{}", show(&o));
    c.run_detached(BUSYBOX, "tty-host", &["sleep", "1000"]);
    c.wait_status("tty-host", "RUNNING");
    let o = in_a_terminal(
        &c,
        &format!("task exec -t --fifo-dir {fifo} --exec-id t1 tty-host sh -c 'sleep 0.3; tty; stty size; exit 6'"),
    );
    assert_eq!(o.status.code(), Some(6), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/"), "{}", show(&o));
    assert!(out.contains("33 91"), "{}", show(&o));
    c.finish();
}
