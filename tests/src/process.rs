//! Host processes (alive, children, signal dispositions, rooted in a bundle) and commands run
//! with a timeout, killed by their PID when they hang.

use super::*;

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
        self.wait_timeout(timeout())
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

/// Runs a command to completion (bounded by [`timeout`]).
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
