//! The `wrun` binary, driven through its runc-compatible command line: one process per verb,
//! errors read back from its `--log-format json` log.
//!
//! Why exec and not link the library: the shim is long-lived and multi-threaded (ttrpc
//! workers, the reaper, stdio copiers), and wrun's `create` starts the container's init with a
//! raw `clone` and no re-exec. A child cloned from a multi-threaded process may inherit a lock
//! another thread held (malloc's, the logger's) and deadlock before it can exec. Executing
//! `wrun` gives every create/exec a fresh single-threaded process, which is what containerd's
//! runc.v2 shim does with runc. The cost is one exec of `wrun` per verb (about a millisecond);
//! a helper forked early (a "zygote") would save that but needs a protocol of its own.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::reaper::{Exit, Reaper};

/// Where the shim keeps wrun's state: `<BASE>/<namespace>` is wrun's `--root`.
pub const STATE_BASE: &str = "/run/containerd/wrun";

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);

/// The stdio a container or exec process gets: wrun hands its own stdio to the process.
pub struct ProcStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ProcStdio {
    pub fn null() -> ProcStdio {
        ProcStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// A `wrun` binary and the state root of one containerd namespace.
#[derive(Clone, Debug)]
pub struct Wrun {
    bin: PathBuf,
    root: PathBuf,
    logs: PathBuf,
}

/// `wrun` next to the shim's own binary, else the first one on PATH.
pub fn find_binary() -> Result<PathBuf> {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join("wrun");
        if p.is_file() {
            return Ok(p);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|d| d.join("wrun"))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::NotFound("the wrun binary is neither next to the shim nor on PATH".into()))
}

impl Wrun {
    pub fn new(namespace: &str) -> Result<Wrun> {
        let base = Path::new(STATE_BASE);
        let w = Wrun {
            bin: find_binary()?,
            root: base.join(namespace),
            logs: base.join("log"),
        };
        // 0700, like wrun's own state root: no other local user reads the containers' state
        // or their logs.
        for d in [&w.root, &w.logs] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|e| Error::io(format!("mkdir {}", d.display()), e))?;
        }
        Ok(w)
    }

    fn command(&self, log: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(log)
            .arg("--log-format")
            .arg("json");
        c
    }

    /// Runs `wrun ARGS` to its end with `stdio` (stdout captured when `capture`), through the
    /// reaper. Returns what it printed; on failure, its last error line.
    fn run(&self, args: &[&OsStr], stdio: ProcStdio, capture: bool) -> Result<Vec<u8>> {
        let verb = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = self.logs.join(format!(
            "{}-{}.json",
            std::process::id(),
            LOG_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = self.command(&log);
        cmd.args(args).stdin(stdio.stdin).stderr(stdio.stderr);
        if capture {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(stdio.stdout);
        }
        let reaper = Reaper::get();
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("exec {}", self.bin.display()), e))?;
        // Our copies of the process's stdio close with `cmd`, so a pipe or fifo sees EOF when
        // the container's last holder exits, not when the shim does.
        drop(cmd);
        let mut out = Vec::new();
        if let Some(mut so) = child.stdout.take() {
            let _ = so.read_to_end(&mut out);
        }
        let Exit { code, .. } = reaper.wait(child.id() as i32);
        let last = last_error(&log);
        let _ = std::fs::remove_file(&log);
        if code != 0 {
            let (msg, kind) = match last {
                Some((msg, kind)) => (msg, kind),
                None => (format!("exit status {code}"), None),
            };
            return Err(Error::Runtime { verb, msg, kind });
        }
        Ok(out)
    }

    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ProcStdio,
    ) -> Result<()> {
        let head: [&OsStr; 3] = ["create".as_ref(), "--bundle".as_ref(), bundle.as_os_str()];
        self.run(&with_pid_file(&head, id, pid_file, console_socket), stdio, false)
            .map(drop)
    }

    /// `wrun exec --detach`: the process is reparented to the shim, its pid is in `pid_file`.
    pub fn exec(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ProcStdio,
    ) -> Result<()> {
        let head: [&OsStr; 4] = [
            "exec".as_ref(),
            "--detach".as_ref(),
            "--process".as_ref(),
            process.as_os_str(),
        ];
        self.run(&with_pid_file(&head, id, pid_file, console_socket), stdio, false)
            .map(drop)
    }

    fn simple(&self, args: &[&str]) -> Result<Vec<u8>> {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
        self.run(&args, ProcStdio::null(), true)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.simple(&["start", id]).map(drop)
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        if all {
            self.simple(&["kill", "--all", id, &sig]).map(drop)
        } else {
            self.simple(&["kill", id, &sig]).map(drop)
        }
    }

    pub fn delete_force(&self, id: &str) -> Result<()> {
        self.simple(&["delete", "--force", id]).map(drop)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.simple(&["pause", id]).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.simple(&["resume", id]).map(drop)
    }

    /// `wrun update --resources FILE`: `file` holds OCI `linux.resources` JSON.
    pub fn update(&self, id: &str, file: &Path) -> Result<()> {
        let f = file.to_string_lossy();
        self.simple(&["update", "--resources", &f, id]).map(drop)
    }

    /// The host pids of every process in the container.
    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.simple(&["ps", "--format", "json", id])?;
        serde_json::from_slice(&out).map_err(|e| Error::Runtime {
            verb: "ps".into(),
            msg: format!("unreadable output: {e}"),
            kind: None,
        })
    }

    /// `wrun state ID` as JSON.
    pub fn state(&self, id: &str) -> Result<Value> {
        let out = self.simple(&["state", id])?;
        serde_json::from_slice(&out).map_err(|e| Error::Runtime {
            verb: "state".into(),
            msg: format!("unreadable output: {e}"),
            kind: None,
        })
    }

    /// The `data` of `wrun events --stats ID`: runc's statistics object.
    pub fn stats(&self, id: &str) -> Result<Value> {
        let out = self.simple(&["events", "--stats", id])?;
        let v: Value = serde_json::from_slice(&out).map_err(|e| Error::Runtime {
            verb: "events --stats".into(),
            msg: format!("unreadable output: {e}"),
            kind: None,
        })?;
        Ok(v["data"].clone())
    }
}

/// The message and kind (`"kind":"not_found"`, ...) of the last `"level":"error"` line of a
/// wrun JSON log.
fn last_error(log: &Path) -> Option<(String, Option<String>)> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        if v["level"] != "error" && v["level"] != "fatal" {
            return None;
        }
        let kind = v["kind"].as_str().map(str::to_string);
        Some((v["msg"].as_str()?.to_string(), kind))
    })
}

/// `HEAD --pid-file P [--console-socket S] ID`: the tail that create and exec share.
fn with_pid_file<'a>(head: &[&'a OsStr], id: &'a str, pid_file: &'a Path, console: Option<&'a Path>) -> Vec<&'a OsStr> {
    let mut args = head.to_vec();
    args.extend(["--pid-file".as_ref(), pid_file.as_os_str()]);
    if let Some(s) = console {
        args.extend(["--console-socket".as_ref(), s.as_os_str()]);
    }
    args.push(id.as_ref());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_the_message_of_the_last_error_line() {
        let dir = std::env::temp_dir().join(format!("wrun-shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        std::fs::write(
            &log,
            concat!(
                r#"{"level":"error","msg":"first","time":"t"}"#,
                "\n",
                r#"{"level":"warning","msg":"noise","time":"t"}"#,
                "\n",
                r#"{"level":"error","msg":"process.args[0] /nope: not found","time":"t","kind":"invalid_config"}"#,
                "\n",
                r#"{"level":"info","msg":"after","time":"t"}"#,
                "\n"
            ),
        )
        .unwrap();
        assert_eq!(
            last_error(&log),
            Some(("process.args[0] /nope: not found".into(), Some("invalid_config".into())))
        );
        std::fs::write(&log, "not json\n").unwrap();
        assert_eq!(last_error(&log), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
