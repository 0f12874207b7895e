//! Support code for wrun's end-to-end tests.
//!
//! The tests drive a runc-compatible runtime binary as an OCI client would:
//! `$WRUN_TEST_RUNTIME` if set, else `<workspace>/target/debug/wrun`. They
//! must run as root. Every test gets its own private `--root` state
//! directory, its own bundle(s) under /tmp and unique container ids, so the
//! tests can run in parallel. Drop guards delete every container a test
//! created and remove every directory and mount it made, even when it fails.
//! Every spawned command is bounded by [`timeout`]; a command that hangs is
//! killed by its PID and the test fails.

mod bundle;
mod cgroup;
mod console;
mod fixtures;
mod process;
mod registry;
mod rootless;
mod runtime;
mod tarball;

pub use bundle::*;
pub use cgroup::*;
pub use console::*;
pub use fixtures::*;
pub use process::*;
pub use registry::Registry;
pub use rootless::*;
pub use runtime::*;
pub use tarball::*;

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

/// Upper bound for any single command the tests spawn: 20 s, or `$WRUN_TEST_TIMEOUT` seconds
/// (the cgroup-v2 set runs in a user-mode-linux guest, several times slower than the host).
pub fn timeout() -> Duration {
    static T: OnceLock<Duration> = OnceLock::new();
    *T.get_or_init(|| {
        let secs = std::env::var("WRUN_TEST_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        Duration::from_secs(secs)
    })
}

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
