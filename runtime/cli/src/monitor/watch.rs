//! One run, watched: the output logged, the init reaped, health checks timed, OOM kills seen.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{log, status_code, step, Args, Children, Run, DRAIN, HEALTH_RESTART};

/// The container's memory cgroup, watched for OOM kills: an eventfd on cgroup v1, inotify on
/// v2's `memory.events`; the `oom_kill` counter tells a kill from other wake-ups.
struct Oom {
    fd: OwnedFd,
    dir: PathBuf,
    v1: bool,
    seen: u64,
}

impl Oom {
    fn of(pid: i32) -> Option<Oom> {
        let (dir, v1) = wrun_sys::cgroups::memory_cgroup_of(pid)?;
        let seen = wrun_sys::cgroups::oom_kills_in(&dir, v1)?;
        let fd = if v1 {
            wrun_sys::cgroups::v1::oom_eventfd(&dir).ok()?
        } else {
            // SAFETY: inotify_init1 returns a new fd we own.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if fd < 0 {
                return None;
            }
            // SAFETY: a new fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let file = wrun_sys::cgroups::oom_counter_file(&dir, false);
            let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).ok()?;
            // SAFETY: a valid inotify fd and C string.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
                return None;
            }
            fd
        };
        Some(Oom { fd, dir, v1, seen })
    }

    /// The fd fired: whether an OOM kill was counted since the last one seen. v1's eventfd
    /// fires a moment before the kill is counted, so the counter is given up to 200 ms.
    fn fired(&mut self) -> bool {
        let mut b = [0u8; 4096];
        // SAFETY: draining our non-blocking fd into our buffer.
        while unsafe { libc::read(self.fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) } > 0 {}
        let deadline = Instant::now()
            + if self.v1 {
                Duration::from_millis(200)
            } else {
                Duration::ZERO
            };
        loop {
            let now = wrun_sys::cgroups::oom_kills_in(&self.dir, self.v1).unwrap_or(self.seen);
            if now > self.seen {
                self.seen = now;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Run {
    /// Until the init has exited and its output is logged: returns its exit status (128+N
    /// for signal N) and whether a health check asked for a restart.
    pub(super) fn watch(mut self, a: &Args, children: &Children, w: &mut log::Writer) -> (i32, bool) {
        let started = Instant::now();
        let mut oom = Oom::of(self.init);
        // The init is reaped here as our descendant; its pidfd says it ended even if it was
        // not (then its status is unknown: 255).
        let mut pidfd = wrun_sys::pidfd::open(self.init);
        let mut next_check = a.health.map(|i| started + i);
        let mut checking: Option<u32> = None;
        let (mut oom_pending, mut reporting): (bool, Option<u32>) = (false, None);
        let mut health_restart = false;
        let mut exited: Option<(i32, Instant)> = None;
        loop {
            if let Some((code, at)) = exited {
                if self.streams.is_empty() || at.elapsed() > DRAIN {
                    // What outlived the init may keep writing; it is no longer read.
                    for (_, lines) in &mut self.streams {
                        lines.finish(w);
                    }
                    self.streams.clear();
                    // The last check and OOM report first: the end's "die" comes after them.
                    if checking.is_none() && reporting.is_none() && !oom_pending {
                        return (code, health_restart);
                    }
                }
            }
            let mut fds: Vec<libc::pollfd> = self
                .streams
                .iter()
                .map(|(fd, _)| fd.as_raw_fd())
                .chain([children.0.as_raw_fd()])
                .chain(oom.as_ref().map(|o| o.fd.as_raw_fd()))
                .chain(pidfd.as_ref().map(|p| p.as_raw_fd()))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let now = Instant::now();
            let mut wait = next_check.map(|t| t.saturating_duration_since(now));
            if let Some((_, at)) = exited.filter(|_| !self.streams.is_empty()) {
                let left = (at + DRAIN).saturating_duration_since(now);
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            let ms = wait.map_or(-1, |d| d.as_millis().min(60_000) as i32 + 1);
            // SAFETY: poll on our fds.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) } < 0 {
                continue;
            }
            let n = self.streams.len();
            // Output first, so what a process wrote before it ended is logged before its end.
            let mut closed = Vec::new();
            for (i, (fd, lines)) in self.streams.iter_mut().enumerate() {
                if fds[i].revents == 0 {
                    continue;
                }
                let mut b = [0u8; 16 << 10];
                // SAFETY: reading our fd into our buffer.
                let got = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
                if got > 0 {
                    lines.feed(&b[..got as usize], w);
                } else if got == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    // The end of a pipe, or EIO from a terminal whose last user closed it.
                    lines.finish(w);
                    closed.push(i);
                }
            }
            for i in closed.into_iter().rev() {
                self.streams.remove(i);
            }
            if fds[n].revents != 0 {
                for (pid, code) in children.reap() {
                    if pid == self.init {
                        exited = Some((code, Instant::now()));
                        next_check = None;
                    } else if Some(pid as u32) == reporting {
                        reporting = None;
                    } else if Some(pid as u32) == checking {
                        checking = None;
                        health_restart |= code == HEALTH_RESTART;
                    }
                }
            }
            let oom_at = n + 1;
            if let Some(o) = oom.as_mut().filter(|_| fds[oom_at].revents != 0) {
                oom_pending |= o.fired();
            }
            // One event step at a time: a container that is OOM-killed in a loop must not make
            // the host start a process per kill. Kills during a step are told by the next one.
            if oom_pending && reporting.is_none() {
                oom_pending = false;
                reporting = step(a, "event").arg(&a.id).arg("oom").spawn().ok().map(|c| c.id());
            }
            let pid_at = oom_at + usize::from(oom.is_some());
            if pidfd.is_some() && fds[pid_at].revents != 0 {
                pidfd = None;
                let mut st = 0;
                // SAFETY: waitpid for the init, not blocking.
                let r = unsafe { libc::waitpid(self.init, &mut st, libc::WNOHANG) };
                if exited.is_none() && r == self.init {
                    exited = Some((status_code(st), Instant::now()));
                } else if exited.is_none() && r < 0 {
                    exited = Some((255, Instant::now()));
                }
                if exited.is_some() {
                    next_check = None;
                }
            }
            if let (Some(t), Some(i)) = (next_check, a.health) {
                if Instant::now() >= t {
                    next_check = Some(Instant::now() + i);
                    // One check at a time: a check slower than the interval skips a turn.
                    if checking.is_none() {
                        let since = started.elapsed().as_millis().to_string();
                        checking = step(a, "health")
                            .arg("--since-ms")
                            .arg(since)
                            .arg(&a.id)
                            .stdout(Stdio::null())
                            .spawn()
                            .ok()
                            .map(|c| c.id());
                    }
                }
            }
        }
    }
}
