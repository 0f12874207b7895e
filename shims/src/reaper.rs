//! Exit statuses of the shim's children, collected through the containerd-shim crate's pid
//! monitor, because the crate's SIGCHLD handler reaps every child (the shim is a subreaper).
//!
//! `Command::wait` races that handler and can fail with ECHILD, so no code in the shim waits
//! on a child itself: the crate's reaper publishes `(pid, status)` to its monitor, one thread
//! here receives them all and keeps them until someone asks. A status that arrives before
//! anyone knows the pid (a container that exits before `wrun create` has returned its pid
//! file, an exec that ends at once) is kept for a while, so nothing is lost to that race.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim::monitor::{monitor_subscribe, ExitEvent, Subject, Topic};

/// How long an exit status nobody has claimed is kept.
const KEEP_UNCLAIMED: Duration = Duration::from_secs(120);

/// One child's end: its exit code (128+N after signal N) and when it was seen.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub code: i32,
    pub at: SystemTime,
}

type Hook = Box<dyn Fn(i32, Exit) -> bool + Send + Sync>;

#[derive(Default)]
struct Table {
    exited: HashMap<i32, (Exit, Instant)>,
}

/// The process-wide collector of exit statuses.
pub struct Reaper {
    table: Mutex<Table>,
    cond: Condvar,
    hook: OnceLock<Hook>,
}

static REAPER: OnceLock<Arc<Reaper>> = OnceLock::new();

impl Reaper {
    /// The collector, subscribed to the crate's monitor on first use. Call it before the
    /// first child is spawned, so no exit can be published before the subscription exists.
    pub fn get() -> Arc<Reaper> {
        REAPER
            .get_or_init(|| {
                let r = Arc::new(Reaper {
                    table: Mutex::new(Table::default()),
                    cond: Condvar::new(),
                    hook: OnceLock::new(),
                });
                let sub = monitor_subscribe(Topic::Pid).expect("subscribe to the shim's pid monitor");
                let r2 = r.clone();
                std::thread::Builder::new()
                    .name("reaper".into())
                    .spawn(move || {
                        while let Ok(ExitEvent { subject, exit_code }) = sub.rx.recv() {
                            if let Subject::Pid(pid) = subject {
                                r2.record(pid, exit_code);
                            }
                        }
                    })
                    .expect("spawn the reaper thread");
                r
            })
            .clone()
    }

    /// Sets the function told of every exit first; when it returns true (the pid was one
    /// of its processes) the status is not kept for [`Reaper::wait`]. The hook runs with the
    /// reaper's table locked: it must be quick and must not wait for another child.
    pub fn set_hook(&self, hook: impl Fn(i32, Exit) -> bool + Send + Sync + 'static) {
        let _ = self.hook.set(Box::new(hook));
    }

    fn record(&self, pid: i32, code: i32) {
        let exit = Exit {
            code,
            at: SystemTime::now(),
        };
        // The table stays locked across the hook: whoever registers a pid with the hook's
        // owner and then calls `take` sees the status either here or through the hook.
        let mut t = self.table.lock().unwrap();
        if let Some(h) = self.hook.get() {
            if h(pid, exit) {
                return;
            }
        }
        let now = Instant::now();
        t.exited
            .retain(|_, (_, seen)| now.duration_since(*seen) < KEEP_UNCLAIMED);
        t.exited.insert(pid, (exit, now));
        self.cond.notify_all();
    }

    /// Takes the exit status of `pid` if it has already been seen.
    pub fn take(&self, pid: i32) -> Option<Exit> {
        self.table.lock().unwrap().exited.remove(&pid).map(|(e, _)| e)
    }

    /// Blocks until `pid` has exited and returns its status.
    pub fn wait(&self, pid: i32) -> Exit {
        let mut t = self.table.lock().unwrap();
        loop {
            if let Some((e, _)) = t.exited.remove(&pid) {
                return e;
            }
            t = self.cond.wait(t).unwrap();
        }
    }
}
