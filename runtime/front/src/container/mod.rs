//! Front-end containers (`wrun container ...`): docker's containers, kept apart from the
//! runtime's bundle containers. Each has an id (64 hex digits, shown as 12) and a unique name,
//! a directory `containers/<id>/` under the data root holding its record (`container.json`),
//! its OCI bundle (`config.json`, the image's root filesystem mounted at `rootfs/` with its
//! writes in `upper/`) and the files it gets bound (`hostname`, `hosts`, `resolv.conf`). The
//! runtime's state of a live one is under `runtime/` of the data root, so `wrun list` of the
//! default root never shows them and their ids never collide with a bundle's.
//!
//! A container holds its image in the store (`Store::hold`) from its creation to its removal,
//! so `wrun image rm` refuses an image a container, running or exited, was made from.

pub mod cp;
pub mod events;
pub mod exec;
pub mod health;
pub mod logs;
pub mod monitor;
mod names;
pub mod netns;
pub mod run;
pub mod spec;
pub mod update;
pub mod user;

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A front-end failure: one line naming the thing and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container by that name or id.
    #[error("container {0}: no such container")]
    NotFound(String),
    /// No network by that name or id.
    #[error("network {0}: no such network")]
    NoSuchNetwork(String),
    /// A request that cannot be met as asked (a name in use, a running container to rm).
    #[error("{0}")]
    Conflict(String),
    /// A flag or image setting that cannot be used.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Image(#[from] wrun_image::Error),
    #[error(transparent)]
    Runtime(#[from] wrun::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Where a container is in its life, as docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, its process not started yet.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended (`exit_code`).
    Exited,
    /// Between two runs of a restart policy.
    Restarting,
    /// Its record says running but nothing runs it any more (the CLI that ran it was killed).
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Restarting => "restarting",
            Status::Dead => "dead",
        }
    }
}

/// What `containers/<id>/container.json` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image id (config digest) and manifest digest.
    pub image_id: String,
    pub image_digest: String,
    /// The process's argv.
    pub command: Vec<String>,
    pub created: String,
    pub status: Status,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// `--rm`: removed when its process ends.
    #[serde(default)]
    pub auto_remove: bool,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The stop signal (`--stop-signal`, else the image's StopSignal, else SIGTERM).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits after the stop signal before SIGKILL (`--stop-timeout`, else 10).
    #[serde(default)]
    pub stop_timeout: Option<u32>,
    /// `--restart`.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How many times the policy restarted it.
    #[serde(default)]
    pub restart_count: u32,
    /// `--log-opt` of its json-file log (detached containers).
    #[serde(default)]
    pub log_opts: logs::LogOpts,
    /// The pid of the monitor of a detached container (None in the foreground).
    #[serde(default)]
    pub monitor_pid: Option<i32>,
    /// `stop`/`kill` asked for it to end: no restart policy brings it back.
    #[serde(default)]
    pub stop_requested: bool,
    /// `rm -f` is removing it: the monitor leaves the cleanup to rm.
    #[serde(default)]
    pub remove_requested: bool,
    /// `--network`: none, host, or a network's name (None: a record from before networks,
    /// loopback only).
    #[serde(default)]
    pub network: Option<String>,
    /// The ports it publishes, as asked (a host port of 0 is chosen at each start).
    #[serde(default)]
    pub ports: Vec<crate::network::ports::PortMapping>,
    /// `--add-host` entries: (name, address or "host-gateway").
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// Its health check (the image's HEALTHCHECK and `--health-*`), run by its monitor.
    #[serde(default)]
    pub health: Option<health::HealthConfig>,
    /// The check's status and last results while it is checked.
    #[serde(default)]
    pub health_state: Option<health::HealthState>,
    /// `-i` of a detached container: its stdin stays open (a pipe its monitor holds and never
    /// writes), so a shell waits instead of ending at once, as with `docker run -dit`.
    #[serde(default)]
    pub open_stdin: bool,
}

/// docker's `--restart` policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure {
        /// At most this many restarts (None: no limit).
        max: Option<u32>,
    },
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let bad = |why: &str| Error::Invalid(format!("--restart {s:?}: {why}"));
        Ok(match s.split_once(':') {
            None if s == "no" => RestartPolicy::No,
            None if s == "always" => RestartPolicy::Always,
            None if s == "unless-stopped" => RestartPolicy::UnlessStopped,
            None if s == "on-failure" => RestartPolicy::OnFailure { max: None },
            Some(("on-failure", n)) => RestartPolicy::OnFailure {
                max: Some(n.parse().map_err(|_| bad("the count must be a number"))?),
            },
            Some((_, _)) => return Err(bad("only on-failure takes a count")),
            None => return Err(bad("no, on-failure[:N], always or unless-stopped")),
        })
    }

    /// Whether a run that ended with `code` is run again, after `count` restarts and
    /// `stopped` (a `stop` or `kill` by a user).
    pub fn restarts(self, code: i32, count: u32, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => code != 0 && max.is_none_or(|m| count < m),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

impl Record {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// The front end's containers under a data root.
#[derive(Debug, Clone)]
pub struct Containers {
    dir: PathBuf,
    runtime_root: PathBuf,
}

/// An exclusive flock on `containers.lock`, held while names are checked and taken.
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    /// Wait for an exclusive flock on the file `p` (made if missing).
    pub fn take(p: &Path) -> Result<Lock> {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .map_err(io(format!("open {}", p.display())))?;
        loop {
            // SAFETY: flock on a valid fd.
            match nix::errno::Errno::result(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io(format!("lock {}", p.display()))(e.into())),
                Ok(_) => return Ok(Lock(f)),
            }
        }
    }
}

impl Containers {
    /// The containers of the data root `data_root` (created on first use).
    pub fn open(data_root: &Path) -> Result<Containers> {
        let dir = data_root.join("containers");
        let runtime_root = data_root.join("runtime");
        for d in [&dir, &runtime_root] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(io(format!("create {}", d.display())))?;
        }
        Ok(Containers { dir, runtime_root })
    }

    /// The data root these containers are under.
    pub fn data_root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// The runtime state root of the live containers (the lifecycle library's `--root`).
    pub fn runtime_root(&self) -> &Path {
        &self.runtime_root
    }

    /// The directory (and bundle) of container `id`.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn lock(&self) -> Result<Lock> {
        Lock::take(&self.dir.join("containers.lock"))
    }

    /// Every container's record, with the status of the live ones brought up to date.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io(format!("read {}", self.dir.display())))? {
            let Ok(e) = e else { continue };
            let p = e.path().join("container.json");
            let Ok(b) = fs::read(&p) else { continue };
            if let Ok(r) = serde_json::from_slice::<Record>(&b) {
                out.push(self.refresh(r));
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// The container named `name`, or whose id starts with `name` (unambiguously).
    pub fn find(&self, name: &str) -> Result<Record> {
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.name == name || r.id == name) {
            return Ok(r.clone());
        }
        let hits: Vec<&Record> = all
            .iter()
            .filter(|r| !name.is_empty() && r.id.starts_with(name))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(name.to_string())),
            many => Err(Error::Conflict(format!(
                "container {name}: the id prefix names {} containers; give more of it",
                many.len()
            ))),
        }
    }

    /// The record of container `id` (a full id), as it is on disk.
    pub fn load(&self, id: &str) -> Result<Record> {
        // A full id only: 64 hex digits, never a path.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NotFound(id.to_string()));
        }
        let p = self.dir_of(id).join("container.json");
        let b = fs::read(&p).map_err(|_| Error::NotFound(id.to_string()))?;
        serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
    }

    /// Change the record of `id` under the lock (the monitor and the CLI both write it).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Record)) -> Result<Record> {
        let _l = self.lock()?;
        let mut r = self.load(id)?;
        f(&mut r);
        self.save(&r)?;
        Ok(r)
    }

    /// Write `r` (atomically).
    pub fn save(&self, r: &Record) -> Result<()> {
        let p = self.dir_of(&r.id).join("container.json");
        let tmp = p.with_extension(format!("json.{}.tmp", std::process::id()));
        let text = serde_json::to_vec_pretty(r).map_err(|e| Error::Invalid(format!("encode {}: {e}", p.display())))?;
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &p))
            .map_err(io(format!("write {}", p.display())))
    }

    /// The status of the runtime's container `id` ("running", "paused", ...), if it exists.
    pub fn runtime_status(&self, id: &str) -> Option<&'static str> {
        wrun::container::load(&self.runtime_root, id)
            .ok()
            .and_then(|c| c.oci_state().map(|s| s.status))
    }

    /// The pid of the container's init while it runs.
    pub fn init_pid(&self, id: &str) -> Option<i32> {
        wrun::container::load(&self.runtime_root, id)
            .ok()
            .and_then(|c| c.oci_state().map(|s| s.pid))
            .filter(|p| *p > 0)
    }

    /// A running or restarting record is checked against what runs: with no runtime
    /// container and no monitor left, it is dead (the CLI or monitor that ran it was killed).
    fn refresh(&self, mut r: Record) -> Record {
        if matches!(r.status, Status::Running | Status::Restarting) {
            let live = self.runtime_status(&r.id).is_some_and(|s| s != "stopped");
            let monitor = r.monitor_pid.is_some_and(|p| monitor::alive(p, &r.id));
            if !live && !monitor {
                r.status = Status::Dead;
            }
        }
        r
    }

    /// Give container `name` the name `new` (checked, and taken under the lock).
    pub fn rename(&self, name: &str, new: &str) -> Result<Record> {
        if !valid_name(new) {
            return Err(Error::Invalid(format!(
                "container name {new:?}: a name is [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 characters)"
            )));
        }
        let _l = self.lock()?;
        let all = self.list()?;
        let rec = self.find(name)?;
        if rec.name == new {
            return Err(Error::Conflict(format!(
                "container {name}: it is already named {new:?}"
            )));
        }
        if let Some(other) = all.iter().find(|r| r.name == new) {
            return Err(Error::Conflict(format!(
                "container name {new:?} is already in use by container {}",
                other.short_id()
            )));
        }
        let mut r = self.load(&rec.id)?;
        r.name = new.to_string();
        self.save(&r)?;
        events::emit(self.data_root(), &r, "rename", &[("oldName", rec.name.clone())]);
        Ok(r)
    }

    /// A name for a container that was given none, unused among `taken`.
    pub fn generate_name(&self, taken: &[Record]) -> String {
        names::generate(|n| taken.iter().any(|r| r.name == n))
    }
}

/// A new container id: 32 random bytes in hex.
pub fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .map_err(io("read /dev/urandom"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A name docker would take: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        && n.len() <= 128
}

use std::os::unix::fs::DirBuilderExt;
