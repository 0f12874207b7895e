//! OOM kills: a container's watch (eventfd on v1, the counter on v2), the `oom_kill`
//! counters, and the memory cgroup of any process (what the shim watches).

use super::*;

/// Reports OOM kills in the container's memory cgroup.
pub enum OomWatch {
    /// The eventfd also fires when the cgroup goes away: the kill counter tells the two apart.
    V1 {
        fd: OwnedFd,
        dir: PathBuf,
        seen: u64,
    },
    V2 {
        dir: PathBuf,
        seen: u64,
    },
    None,
}

impl OomWatch {
    /// Wait up to `timeout`; true if an OOM kill happened.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        match self {
            OomWatch::V1 { fd, dir, seen } => {
                let ms = nix::poll::PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
                    .unwrap_or(nix::poll::PollTimeout::ZERO);
                let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                let fired = nix::poll::poll(&mut fds, ms).unwrap_or(0) > 0;
                if fired {
                    let mut b = [0u8; 8];
                    let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(fd), &mut b);
                }
                // The eventfd fires when the cgroup enters OOM, a moment before the kill is
                // counted; it also fires when the cgroup is removed. The counter decides.
                let deadline = std::time::Instant::now()
                    + if fired {
                        Duration::from_millis(200)
                    } else {
                        Duration::ZERO
                    };
                loop {
                    let now = v1::oom_kills(dir);
                    if now > *seen {
                        *seen = now;
                        return true;
                    }
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            OomWatch::V2 { dir, seen } => {
                let deadline = std::time::Instant::now() + timeout;
                loop {
                    let now = v2::oom_kills(dir);
                    if now > *seen {
                        *seen = now;
                        return true;
                    }
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50).min(timeout));
                }
            }
            OomWatch::None => {
                std::thread::sleep(timeout);
                false
            }
        }
    }
}

/// True when /sys/fs/cgroup is itself a cgroup2 mount (a pure v2 host).
pub fn host_is_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The memory cgroup directory of process `pid`, and whether it is a v1 one (counter in
/// `memory.oom_control`) or v2 (`memory.events`): its v1 memory hierarchy's if the host has
/// one, else its cgroup2 directory if that has the memory controller. None when the process
/// is gone or there is no memory controller.
pub fn memory_cgroup_of(pid: i32) -> Option<(PathBuf, bool)> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let hs = hierarchies_from(&std::fs::read_to_string("/proc/self/mountinfo").ok()?);
    if let Some(h) = hs.iter().find(|h| h.controllers.iter().any(|c| c == "memory")) {
        return Some((placement::dir_in(h, &own_path(&own, &h.controllers)?), true));
    }
    let h = hs.iter().find(|h| h.is_v2())?;
    let dir = placement::dir_in(h, &own_path(&own, &[])?);
    dir.join("memory.events").exists().then_some((dir, false))
}

/// The file whose `oom_kill N` line counts a memory cgroup's OOM kills.
pub fn oom_counter_file(dir: &Path, v1: bool) -> PathBuf {
    dir.join(if v1 { "memory.oom_control" } else { "memory.events" })
}

/// The OOM kills a memory cgroup has seen; None when its counter cannot be read (the cgroup
/// is gone).
pub fn oom_kills_in(dir: &Path, v1: bool) -> Option<u64> {
    let text = std::fs::read_to_string(oom_counter_file(dir, v1)).ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// How many OOM kills the container's memory cgroup has seen (0 without a memory cgroup).
pub fn oom_kill_count(dirs: &[PathBuf]) -> u64 {
    let cg = Cgroup::new(dirs);
    match (cg.v1_dir("memory"), cg.v2_dir()) {
        (Some(d), _) => v1::oom_kills(d),
        (None, Some(d)) => v2::oom_kills(d),
        _ => 0,
    }
}
