//! OOM kills in the memory cgroups of every container the shim serves, watched by one thread:
//! on cgroup v1 an eventfd registered for `memory.oom_control` (cgroup.event_control), on v2
//! inotify on `memory.events`. Either way the `oom_kill` counter decides, because the eventfd
//! also fires when the cgroup is removed and `memory.events` changes for other reasons.
//!
//! This replaced a `wrun events ID` process per container: a pod of N containers cost N extra
//! processes (~1.3 MB PSS each) where it now costs a few file descriptors. The runtime's own
//! watcher (`runtime/src/linux/cgroups`, behind `wrun events`) reads the same files; the shim
//! does not link the runtime crate, whose wasmtime would multiply the shim's resident size.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerd_shim::{debug, warn};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// The epoll token of the inotify descriptor; watches count from 1.
const INOTIFY: u64 = 0;

/// What the watcher calls, with the container id, for each OOM kill.
pub type OnOom = Box<dyn Fn(&str) + Send + Sync>;

pub struct OomWatcher {
    epoll: Epoll,
    inotify: Inotify,
    watches: Mutex<Watches>,
    on_oom: OnOom,
}

#[derive(Default)]
struct Watches {
    next: u64,
    by_token: HashMap<u64, Watch>,
    by_wd: HashMap<WatchDescriptor, u64>,
}

impl Watches {
    fn tokens_of(&self, id: &str) -> Vec<u64> {
        self.by_token
            .iter()
            .filter(|(_, w)| w.id == id)
            .map(|(t, _)| *t)
            .collect()
    }
}

struct Watch {
    id: String,
    /// The file with the `oom_kill` line: memory.oom_control (v1) or memory.events (v2).
    counter: PathBuf,
    seen: u64,
    kind: Kind,
}

enum Kind {
    /// The eventfd, and memory.oom_control kept open while it is registered.
    V1(EventFd, #[allow(dead_code)] File),
    V2(WatchDescriptor),
}

/// The `oom_kill N` count of a memory.oom_control / memory.events file; None when it cannot
/// be read (the cgroup is gone).
pub fn oom_kills(counter: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(counter).ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// The memory cgroup directory of process `pid`: its v1 memory hierarchy's, else (pure v2)
/// its cgroup2 one. None when the host has no memory controller.
pub fn memory_cgroup(pid: u32) -> Option<(PathBuf, bool)> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount_of = |v1_controller: Option<&str>| -> Option<PathBuf> {
        mountinfo.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split(' ');
            let (fstype, _, options) = (post.next()?, post.next()?, post.next().unwrap_or(""));
            let mountpoint = pre.split(' ').nth(4)?;
            let hit = match v1_controller {
                Some(c) => fstype == "cgroup" && options.split(',').any(|o| o == c),
                None => fstype == "cgroup2",
            };
            hit.then(|| PathBuf::from(mountpoint))
        })
    };
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            let dir = mount_of(Some("memory"))?.join(path.trim_start_matches('/'));
            return Some((dir, true));
        }
    }
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = mount_of(None)?.join(path.trim_start_matches('/'));
    dir.join("memory.events").exists().then_some((dir, false))
}

impl OomWatcher {
    /// Creates the watcher and its thread.
    pub fn start(on_oom: OnOom) -> std::io::Result<Arc<OomWatcher>> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        epoll.add(inotify.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY))?;
        let w = Arc::new(OomWatcher {
            epoll,
            inotify,
            watches: Mutex::new(Watches {
                next: INOTIFY + 1,
                ..Default::default()
            }),
            on_oom,
        });
        let me = w.clone();
        std::thread::Builder::new()
            .name("oom-watch".into())
            .spawn(move || me.run())?;
        Ok(w)
    }

    /// Watches container `id`'s memory cgroup `dir` (v1 or v2).
    pub fn watch(&self, id: &str, dir: &Path, v1: bool) -> std::io::Result<()> {
        let mut ws = self.watches.lock().unwrap();
        let token = ws.next;
        ws.next += 1;
        let (counter, kind) = if v1 {
            let counter = dir.join("memory.oom_control");
            let control = File::open(&counter)?;
            let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
            let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.event_control"))?
                .write_all(line.as_bytes())?;
            self.epoll
                .add(efd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))?;
            (counter, Kind::V1(efd, control))
        } else {
            let counter = dir.join("memory.events");
            let wd = self.inotify.add_watch(&counter, AddWatchFlags::IN_MODIFY)?;
            ws.by_wd.insert(wd, token);
            (counter, Kind::V2(wd))
        };
        let seen = oom_kills(&counter).unwrap_or(0);
        ws.by_token.insert(
            token,
            Watch {
                id: id.to_string(),
                counter,
                seen,
                kind,
            },
        );
        debug!("watching {id} for OOM kills");
        Ok(())
    }

    /// Stops watching container `id` (deleted). A no-op for an unknown id.
    pub fn forget(&self, id: &str) {
        let mut ws = self.watches.lock().unwrap();
        for t in ws.tokens_of(id) {
            self.remove(&mut ws, t);
        }
    }

    fn remove(&self, ws: &mut Watches, token: u64) {
        if let Some(w) = ws.by_token.remove(&token) {
            match w.kind {
                Kind::V1(efd, _) => {
                    let _ = self.epoll.delete(efd.as_fd());
                }
                Kind::V2(wd) => {
                    ws.by_wd.remove(&wd);
                    // Fails harmlessly when the kernel already dropped it with the cgroup.
                    let _ = self.inotify.rm_watch(wd);
                }
            }
        }
    }

    fn run(&self) {
        let mut events = [EpollEvent::empty(); 16];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    warn!("OOM watcher stopped: {e}");
                    return;
                }
            };
            for ev in &events[..n] {
                if ev.data() == INOTIFY {
                    self.inotify_ready();
                } else {
                    self.eventfd_ready(ev.data());
                }
            }
        }
    }

    fn inotify_ready(&self) {
        let Ok(events) = self.inotify.read_events() else { return };
        let mut tokens = Vec::new();
        {
            let mut ws = self.watches.lock().unwrap();
            for e in events {
                let Some(&token) = ws.by_wd.get(&e.wd) else { continue };
                if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The file went with its cgroup: the kernel dropped the watch.
                    ws.by_wd.remove(&e.wd);
                    ws.by_token.remove(&token);
                    continue;
                }
                tokens.push(token);
            }
        }
        for token in tokens {
            self.check(token, Duration::ZERO);
        }
    }

    fn eventfd_ready(&self, token: u64) {
        if let Some(Watch {
            kind: Kind::V1(efd, _), ..
        }) = self.watches.lock().unwrap().by_token.get(&token)
        {
            let _ = efd.read();
        }
        // v1 signals when the cgroup enters OOM, a moment before the kill is counted (the
        // kernel may print its OOM report first, which takes a while on a slow console).
        self.check(token, Duration::from_millis(500));
    }

    /// Checks container `id`'s counter now. Called when its init has exited and before anyone
    /// is told: the kernel counts an OOM kill before it sends SIGKILL, so a kill is seen here
    /// for certain, and its TaskOOM goes out before the exit is known (and the cgroup, with
    /// its counter, deleted).
    pub fn check_now(&self, id: &str) {
        let tokens = self.watches.lock().unwrap().tokens_of(id);
        for token in tokens {
            self.check(token, Duration::ZERO);
        }
    }

    /// Publishes an OOM for `token` if its counter grew, waiting up to `grace` for that; drops
    /// the watch when the cgroup is gone. The lock is not held while waiting or publishing:
    /// check_now (at an exit) and watch() must not wait for a grace period.
    fn check(&self, token: u64, grace: Duration) {
        let Some((counter, id)) = self
            .watches
            .lock()
            .unwrap()
            .by_token
            .get(&token)
            .map(|w| (w.counter.clone(), w.id.clone()))
        else {
            return;
        };
        let deadline = Instant::now() + grace;
        loop {
            let now = oom_kills(&counter);
            let mut ws = self.watches.lock().unwrap();
            let Some(w) = ws.by_token.get_mut(&token) else { return };
            match now {
                None => {
                    self.remove(&mut ws, token);
                    return;
                }
                Some(n) if n > w.seen => {
                    w.seen = n;
                    drop(ws);
                    (self.on_oom)(&id);
                    return;
                }
                Some(_) if Instant::now() >= deadline => return,
                Some(_) => {}
            }
            drop(ws);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn oom_kill_counts_are_read_from_both_file_formats() {
        let dir = std::env::temp_dir().join(format!("wrun-shim-oom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v1 = dir.join("memory.oom_control");
        std::fs::write(&v1, "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n").unwrap();
        assert_eq!(oom_kills(&v1), Some(4));
        let v2 = dir.join("memory.events");
        std::fs::write(&v2, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n").unwrap();
        assert_eq!(oom_kills(&v2), Some(2));
        assert_eq!(oom_kills(&dir.join("gone")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The v2 path on a plain file: a grown counter is one OOM, other changes are none, and a
    /// removed file ends the watch.
    #[test]
    fn a_grown_oom_kill_counter_in_memory_events_is_reported_once() {
        let dir = std::env::temp_dir().join(format!("wrun-shim-oom-v2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let events = dir.join("memory.events");
        std::fs::write(&events, "oom 0\noom_kill 0\n").unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let w = OomWatcher::start(Box::new(move |id| tx.lock().unwrap().send(id.to_string()).unwrap())).unwrap();
        w.watch("c1", &dir, false).unwrap();
        std::fs::write(&events, "oom 1\noom_kill 0\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "no kill yet");
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "c1");
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "reported once");
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            w.watches.lock().unwrap().by_token.is_empty()
        });
        assert!(gone, "the watch ends with its file");
    }
}
