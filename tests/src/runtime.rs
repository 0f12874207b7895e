//! The runtime under test, driven as an OCI client drives it: each `Runtime` has its own
//! `--root`, and its drop guard deletes every container it created.

use super::*;

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

/// Which runtime is under test, for the few checks that differ by runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Wrun,
    Runc,
    Crun,
    Other,
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

    /// Which runtime this is: by the binary's file name, else by its `--version`.
    pub fn kind(&self) -> RuntimeKind {
        let name = self
            .bin
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_lowercase();
        for (needle, k) in [
            ("wrun", RuntimeKind::Wrun),
            ("crun", RuntimeKind::Crun),
            ("runc", RuntimeKind::Runc),
        ] {
            if name.contains(needle) {
                return k;
            }
        }
        let v = run_cmd(Command::new(&self.bin).arg("--version"), None);
        match stdout(&v)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase()
            .as_str()
        {
            "wrun" => RuntimeKind::Wrun,
            "runc" => RuntimeKind::Runc,
            "crun" => RuntimeKind::Crun,
            _ => RuntimeKind::Other,
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

    /// Runs the runtime with `args`, bounded by [`timeout`].
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

    /// `create --bundle B EXTRA... ID`: options before the id, which every runtime's parser
    /// takes (crun's stops at the first operand).
    pub fn create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        let mut args = vec!["create", "--bundle", bundle.path_str()];
        args.extend_from_slice(extra);
        args.push(id);
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

    /// `run --bundle B ID` with stdio captured (stdin is /dev/null).
    pub fn run(&self, id: &str, bundle: &Bundle) -> Output {
        self.run_with(id, bundle, &[])
    }

    pub fn run_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--bundle", bundle.path_str()];
        args.extend_from_slice(extra);
        args.push(id);
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
                .try_wait_timeout(timeout())
                .ok()
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .and_then(|v| v["pid"].as_i64())
                .unwrap_or(0);
            let r = Spawned::spawn(&mut self.command(&["delete", "--force", &id]), None).try_wait_timeout(timeout());
            let deleted = matches!(r, Ok(ref o) if o.status.success());
            if !deleted && pid_alive(pid) {
                // The container's init, which this test created.
                kill_pid(pid, libc::SIGKILL);
            }
        }
    }
}
