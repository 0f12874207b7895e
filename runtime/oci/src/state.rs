//! The container state directory under `--root`: `state.json` (written atomically once the
//! container is set up) and `exec.fifo`. Status is derived from the init process in /proc,
//! so it stays right after the `wrun` process that made the container has exited.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Context;
use crate::{Error, Result};

const STATE_FILE: &str = "state.json";
/// What a `create` in progress has made or is about to make (the record before its pid is
/// final): written before the first cgroup exists, so a create killed at any moment leaves a
/// note that `delete --force` follows to remove everything.
const SETUP_FILE: &str = "setup.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// What `wrun` remembers about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// The init's start time (clock ticks since boot, /proc/PID/stat field 22): tells our
    /// init from an unrelated process that reused its pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Cgroup directories the container was placed in, one per hierarchy.
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    /// Those of `cgroup_dirs` that wrun created (and so removes); the others existed, empty,
    /// and are only joined. `None` in records of older wrun: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_owned: Option<Vec<PathBuf>>,
    /// Without a mount namespace: the rootfs bind in the host's namespace that delete detaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rootfs_mount: Option<PathBuf>,
    /// The config's hooks, for poststart (at start) and poststop (at delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Record {
    /// The OCI state with `status`, for hooks and `wrun state`.
    /// The cgroup directories wrun made for this container: the ones delete removes.
    pub fn owned_cgroups(&self) -> &[PathBuf] {
        self.cgroup_owned.as_deref().unwrap_or(&self.cgroup_dirs)
    }

    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped { 0 } else { self.pid },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

/// The state JSON of the OCI runtime spec, as `wrun state` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    pub owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

/// One container's directory under the state root.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
}

/// The state root when `--root` is not given: `/run/wrun` for root; for anyone else, as runc
/// and crun do, `$XDG_RUNTIME_DIR/wrun` (the user's own tmpfs), else `/tmp/wrun-UID`.
pub fn default_root() -> PathBuf {
    // Inside a rootless session the process is uid 0, but the state is still the user's.
    let Some(uid) = wrun_sys::userns::unprivileged_user() else {
        return PathBuf::from("/run/wrun");
    };
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("wrun"),
        None => PathBuf::from(format!("/tmp/wrun-{uid}")),
    }
}

impl StateDir {
    /// Make the directory for a new container; an existing one means a duplicate id.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        let uid = nix::unistd::geteuid();
        let fix = "set XDG_RUNTIME_DIR to a directory of yours, or pass --root DIR";
        match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(root) {
            Err(e) if !uid.is_root() && e.kind() == ErrorKind::PermissionDenied => {
                return Err(Error::io(
                    format!("state root {} is not writable by uid {uid} ({fix})", root.display()),
                    e,
                ));
            }
            r => r.ctx(|| format!("state root {}", root.display()))?,
        }
        // Without root, a state root someone else made (a /tmp/wrun-UID planted by another
        // user, or a symlink to one) would hand them the containers' state: refused.
        if !uid.is_root() {
            let md = std::fs::symlink_metadata(root).ctx(|| format!("state root {}", root.display()))?;
            if md.uid() != uid.as_raw() || !md.is_dir() {
                return Err(Error::Invalid(format!(
                    "state root {} is not a directory of uid {uid} (owned by uid {}): refused ({fix})",
                    root.display(),
                    md.uid()
                )));
            }
        }
        let path = root.join(id);
        // 0700: no other local user reads a container's state or reaches its exec fifo (the
        // init reopens the fifo through its own fd, so it needs no path into this dir).
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => Ok(StateDir { id: id.into(), path }),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Error::AlreadyExists(id.into())),
            Err(e) => Err(Error::io(format!("state dir {}", path.display()), e)),
        }
    }

    /// Open the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        crate::spec::validate_id(id)?;
        let path = root.join(id);
        if path.is_dir() {
            Ok(StateDir { id: id.into(), path })
        } else {
            Err(Error::NotFound(id.into()))
        }
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// The record, or `None` while the container is still being created.
    pub fn read(&self) -> Result<Option<Record>> {
        let path = self.path.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(last_line(&b))
                .map(Some)
                .map_err(|source| Error::StateFile { path, source }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("state file {}", path.display()), e)),
        }
    }

    /// The newest record a `create` in progress wrote (see `SETUP_FILE`), if any.
    pub fn read_setup(&self) -> Option<Record> {
        let b = std::fs::read(self.path.join(SETUP_FILE)).ok()?;
        // A create killed mid-write leaves a torn last line: the one before it still holds.
        b.split(|c| *c == b'\n')
            .rev()
            .find_map(|line| serde_json::from_slice(line).ok())
    }

    /// Append the setup record as one JSON line (0600). Appending, not a temp file and a
    /// rename, because it is written up to three times per create and every new inode costs
    /// start time; a torn line from a killed create is skipped by `read_setup`.
    pub fn note_setup(&self, rec: &Record) -> Result<()> {
        let path = self.path.join(SETUP_FILE);
        let mut line = serde_json::to_vec(rec).map_err(|source| Error::StateFile {
            path: path.clone(),
            source,
        })?;
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &line))
            .ctx(|| format!("write {}", path.display()))
    }

    /// The end of a create: the final record is appended to the setup file as its last line,
    /// and the file is renamed to `state.json` (`read` takes its last line). Never truncated or
    /// rewritten in place: a create killed between a truncation and the write left an empty
    /// setup file, and `delete --force` then knew no cgroup and no init, and left both (seen
    /// once in 300 killed creates). One file per create, no temp file: each new inode costs
    /// start time.
    pub fn commit_setup(&self, rec: &Record) -> Result<()> {
        self.note_setup(rec)?;
        let (setup, dst) = (self.path.join(SETUP_FILE), self.path.join(STATE_FILE));
        std::fs::rename(&setup, &dst).ctx(|| format!("rename {} to {}", setup.display(), dst.display()))
    }

    /// Write the record atomically (temp file + rename), so a reader never sees half of it.
    pub fn write(&self, rec: &Record) -> Result<()> {
        let dst = self.path.join(STATE_FILE);
        let bytes = serde_json::to_vec(rec).map_err(|source| Error::StateFile {
            path: dst.clone(),
            source,
        })?;
        crate::atomicfile::write(&dst, 0o600, &[&bytes]).ctx(|| format!("write {}", dst.display()))
    }

    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io(format!("remove {}", self.path.display()), e)),
            _ => Ok(()),
        }
    }
}

/// The last non-empty line of a state file: `state.json` is either one record (`write`) or the
/// setup file renamed, whose last line is the final record (`commit_setup`).
fn last_line(b: &[u8]) -> &[u8] {
    b.split(|c| *c == b'\n')
        .rev()
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .unwrap_or(b)
}

/// Derive the status the way runc does: no record yet → creating; init alive and the exec
/// fifo still there → created; alive and fifo gone → running (or paused); else stopped.
pub fn status(dir: &StateDir, rec: Option<&Record>) -> Status {
    let Some(rec) = rec else { return Status::Creating };
    if !process_alive(rec.pid, rec.pid_start_time) {
        return Status::Stopped;
    }
    if dir.fifo().exists() {
        return Status::Created;
    }
    if wrun_sys::cgroups::is_frozen(&rec.cgroup_dirs) {
        return Status::Paused;
    }
    Status::Running
}

pub use wrun_sys::pidfd::proc_stat;

/// The parent pid from /proc/PID/stat.
pub fn proc_ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Is `pid` our live process (not a zombie, not a reused pid)?
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(proc_stat(pid), Some((s, t)) if t == start_time && s != 'Z' && s != 'X')
}

/// Ids of the containers under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(format!("state root {}", root.display()), e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id() as i32;
        let (state, start) = proc_stat(pid).unwrap();
        assert_ne!(state, 'Z');
        assert!(process_alive(pid, start));
        assert!(!process_alive(pid, start + 1));
        assert!(!process_alive(0, 0));
    }

    #[test]
    fn the_newest_whole_setup_line_wins_over_a_torn_one() {
        let root = std::env::temp_dir().join(format!("wrun-setup-{}", std::process::id()));
        let dir = StateDir::create(&root, "c1").unwrap();
        assert!(dir.read_setup().is_none());
        let mut rec = Record {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            pid: 0,
            pid_start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: BTreeMap::new(),
            cgroup_dirs: vec!["/sys/fs/cgroup/pids/wrun/c1".into()],
            cgroup_owned: None,
            host_rootfs_mount: None,
            hooks: None,
        };
        dir.note_setup(&rec).unwrap();
        rec.pid = 42;
        dir.note_setup(&rec).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path.join(SETUP_FILE))
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"ociVersion\":\"1.0.2\",\"id\":\"c1\",\"pi").unwrap();
        assert_eq!(dir.read_setup().unwrap().pid, 42);
        // Committing keeps every earlier line until the rename: the setup record is never
        // empty, and state.json reads as the final record.
        std::fs::write(dir.path.join(SETUP_FILE), b"").unwrap();
        dir.note_setup(&rec).unwrap();
        rec.pid = 43;
        dir.commit_setup(&rec).unwrap();
        assert!(dir.read_setup().is_none(), "setup file renamed away");
        assert_eq!(dir.read().unwrap().unwrap().pid, 43);
        rec.pid = 44;
        dir.write(&rec).unwrap();
        assert_eq!(dir.read().unwrap().unwrap().pid, 44);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
