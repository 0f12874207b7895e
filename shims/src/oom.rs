//! OOM kills in the memory cgroups of every container the shim serves, watched by one thread:
//! on cgroup v1 an eventfd registered for `memory.oom_control` (cgroup.event_control), on v2
//! inotify on `memory.events`. Either way the `oom_kill` counter decides, because the eventfd
//! also fires when the cgroup is removed and `memory.events` changes for other reasons.
//!
//! This replaced a `wrun events ID` process per container: a pod of N containers cost N extra
//! processes (~1.3 MB PSS each) where it now costs a few file descriptors. Finding the memory
//! cgroup, registering the v1 eventfd and reading the counter are wrun-sys's (the same code
//! behind `wrun events`); only the one-thread multiplexing of many containers is the shim's.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerd_shim::{debug, warn};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use wrun_sys::cgroups;

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
    /// The memory cgroup, and whether it is v1's.
    dir: PathBuf,
    v1: bool,
    seen: u64,
    kind: Kind,
}

enum Kind {
    /// The eventfd registered in cgroup.event_control.
    V1(OwnedFd),
    V2(WatchDescriptor),
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
        let kind = if v1 {
            let efd = cgroups::v1::oom_eventfd(dir).map_err(std::io::Error::other)?;
            self.epoll
                .add(efd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))?;
            Kind::V1(efd)
        } else {
            let wd = self
                .inotify
                .add_watch(&cgroups::oom_counter_file(dir, false), AddWatchFlags::IN_MODIFY)?;
            ws.by_wd.insert(wd, token);
            Kind::V2(wd)
        };
        let seen = cgroups::oom_kills_in(dir, v1).unwrap_or(0);
        ws.by_token.insert(
            token,
            Watch {
                id: id.to_string(),
                dir: dir.to_path_buf(),
                v1,
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
                Kind::V1(efd) => {
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
            kind: Kind::V1(efd), ..
        }) = self.watches.lock().unwrap().by_token.get(&token)
        {
            let _ = nix::unistd::read(efd.as_raw_fd(), &mut [0u8; 8]);
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
        let Some((dir, v1, id)) = self
            .watches
            .lock()
            .unwrap()
            .by_token
            .get(&token)
            .map(|w| (w.dir.clone(), w.v1, w.id.clone()))
        else {
            return;
        };
        let deadline = Instant::now() + grace;
        loop {
            let now = cgroups::oom_kills_in(&dir, v1);
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
        std::fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n",
        )
        .unwrap();
        assert_eq!(cgroups::oom_kills_in(&dir, true), Some(4));
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(cgroups::oom_kills_in(&dir, false), Some(2));
        assert_eq!(cgroups::oom_kills_in(&dir.join("gone"), false), None);
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
