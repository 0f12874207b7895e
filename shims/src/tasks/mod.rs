//! The lifecycle of the shim's containers and exec'd processes: what each task request does
//! with `wrun`, the bookkeeping, and the events containerd expects.
//!
//! Locking: `table` is held only for quick reads and updates, never while a `wrun` command
//! runs (the reaper thread needs it to record exits, and a command's end is learnt through
//! the reaper). `order` is held across "start + publish TaskStart/ExecStarted" and by the
//! thread that publishes exits, so containerd never sees a process exit before it started.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use containerd_shim::api::{CreateTaskRequest, DeleteResponse, KillRequest, StateResponse, UpdateTaskRequest};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExit, TaskIO, TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::topics;
use containerd_shim::{info, warn, ExitSignal};

use crate::error::{Error, Result};
use crate::events::Publisher;
use crate::oom::OomWatcher;
use crate::process::{timestamp, Container, Proc, Table};
use crate::reaper::{Exit, Reaper};
use crate::rootfs;
use crate::stdio::{self, ConsoleSocket};
use crate::wrun::{ProcStdio, Wrun, STATE_BASE};

mod exec;

static FILE_SEQ: AtomicU64 = AtomicU64::new(0);

/// An exit to publish: container id, exec id ("" for the init), pid, status.
type ExitNote = (String, String, u32, Exit);

/// Every container and exec of this shim, and how their exits reach containerd.
pub struct Tasks {
    pub wrun: Wrun,
    publisher: Publisher,
    pub shutdown: Arc<ExitSignal>,
    table: Mutex<Table>,
    /// Notified whenever a process exits (for Wait).
    exited: Condvar,
    order: Mutex<()>,
    exits: Mutex<Sender<ExitNote>>,
    pub v2: bool,
    /// Started with the first container that has a memory cgroup.
    oom: OnceLock<Option<Arc<OomWatcher>>>,
}

impl Tasks {
    /// The shim's tasks, told of exits by the reaper, with the thread that publishes them.
    pub fn new(wrun: Wrun, publisher: Publisher, shutdown: Arc<ExitSignal>) -> Arc<Tasks> {
        let (tx, rx) = channel::<ExitNote>();
        let inner = Arc::new(Tasks {
            wrun,
            publisher,
            shutdown,
            table: Mutex::new(Table::default()),
            exited: Condvar::new(),
            order: Mutex::new(()),
            exits: Mutex::new(tx),
            v2: wrun_sys::cgroups::host_is_v2(),
            oom: OnceLock::new(),
        });
        let hook_inner = inner.clone();
        Reaper::get().set_hook(move |pid, exit| hook_inner.on_exit(pid, exit));
        let pub_inner = inner.clone();
        std::thread::Builder::new()
            .name("exit-events".into())
            .spawn(move || {
                while let Ok((id, exec_id, pid, exit)) = rx.recv() {
                    let _order = pub_inner.order.lock().unwrap();
                    pub_inner.publisher.publish(
                        topics::TASK_EXIT_EVENT_TOPIC,
                        TaskExit {
                            container_id: id.clone(),
                            id: if exec_id.is_empty() { id } else { exec_id },
                            pid,
                            exit_status: exit.code as u32,
                            exited_at: MessageField::some(timestamp(exit.at)),
                            ..Default::default()
                        },
                    );
                }
            })
            .expect("spawn the exit event thread");
        inner
    }

    pub fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap()
    }

    /// Called by the reaper for every child that ends.
    fn on_exit(&self, pid: i32, exit: Exit) -> bool {
        // An init the OOM killer ended: its TaskOOM first, before a Wait returns and the
        // container (with its cgroup's kill counter) can be deleted.
        let init_of = self
            .table()
            .pids
            .get(&pid)
            .filter(|(_, e)| e.is_empty())
            .map(|(id, _)| id.clone());
        if let (Some(id), Some(Some(w))) = (init_of, self.oom.get()) {
            w.check_now(&id);
        }
        let mut t = self.table();
        let Some((id, exec_id)) = t.exited(pid, exit) else {
            return false;
        };
        drop(t);
        self.exited.notify_all();
        let _ = self.exits.lock().unwrap().send((id, exec_id, pid as u32, exit));
        true
    }

    /// Makes `pid` known as process (`id`, `exec_id`), catching an exit the reaper saw first.
    fn register(&self, pid: i32, id: &str, exec_id: &str) {
        self.table().pids.insert(pid, (id.to_string(), exec_id.to_string()));
        if let Some(exit) = Reaper::get().take(pid) {
            self.on_exit(pid, exit);
        }
    }

    fn bundle(&self, id: &str) -> Result<PathBuf> {
        Ok(self.table().container(id)?.bundle.clone())
    }

    /// Stdio for a process about to be created: the fifos themselves, or a console socket
    /// when it has a terminal.
    fn stdio_for(
        &self,
        terminal: bool,
        stdin: &str,
        stdout: &str,
        stderr: &str,
    ) -> Result<(ProcStdio, Option<ConsoleSocket>)> {
        if terminal {
            Ok((ProcStdio::null(), Some(ConsoleSocket::new(Path::new(STATE_BASE))?)))
        } else {
            Ok((stdio::direct(stdin, stdout, stderr)?, None))
        }
    }

    /// After a successful create/exec with a terminal: takes the pty master and starts
    /// copying it to and from the fifos.
    fn attach_console(sock: Option<ConsoleSocket>, stdin: &str, stdout: &str) -> Result<Option<Arc<std::fs::File>>> {
        let Some(sock) = sock else { return Ok(None) };
        let master = Arc::new(sock.receive()?);
        stdio::copy_terminal(master.clone(), stdin, stdout)?;
        Ok(Some(master))
    }

    /// Watches the container's memory cgroup for OOM kills (one thread for all of them) and
    /// publishes TaskOOM for each.
    fn watch_oom(self: &Arc<Self>, id: &str, pid: u32) {
        let Some((dir, v1)) = wrun_sys::cgroups::memory_cgroup_of(pid as i32) else {
            warn!("container {id}: no memory cgroup found for pid {pid}: no OOM events");
            return;
        };
        let watcher = self.oom.get_or_init(|| {
            let tasks = Arc::downgrade(self);
            let on_oom = move |id: &str| {
                if let Some(t) = tasks.upgrade() {
                    let ev = TaskOOM {
                        container_id: id.to_string(),
                        ..Default::default()
                    };
                    t.publisher.publish(topics::TASK_OOM_EVENT_TOPIC, ev);
                }
            };
            OomWatcher::start(Box::new(on_oom))
                .map_err(|e| warn!("no OOM events: {e}"))
                .ok()
        });
        if let Some(w) = watcher {
            if let Err(e) = w.watch(id, &dir, v1) {
                warn!("container {id}: no OOM events from {}: {e}", dir.display());
            }
        }
    }

    pub fn create(self: &Arc<Self>, req: &CreateTaskRequest) -> Result<u32> {
        let id = req.id.as_str();
        if self.table().containers.contains_key(id) {
            return Err(Error::AlreadyExists(format!("container {id} already exists")));
        }
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented(
                "checkpoint/restore is not supported by wrun".into(),
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        rootfs::mount_all(&req.rootfs, &rootfs)?;
        let undo = |e: Error| {
            let _ = self.wrun.delete_force(id);
            rootfs::unmount_all(&rootfs);
            e
        };
        let (io, sock) = self
            .stdio_for(req.terminal, &req.stdin, &req.stdout, &req.stderr)
            .map_err(undo)?;
        let pid_file = bundle.join("init.pid");
        self.wrun
            .create(id, &bundle, &pid_file, sock.as_ref().map(|s| s.path()), io)
            .map_err(undo)?;
        let pid = read_pid(&pid_file).map_err(undo)?;
        let console = Self::attach_console(sock, &req.stdin, &req.stdout).map_err(undo)?;
        let container = Container {
            bundle: bundle.clone(),
            rootfs_mounted: !req.rootfs.is_empty(),
            paused: false,
            init: Proc {
                pid,
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                console,
                ..Default::default()
            },
            execs: HashMap::new(),
        };
        let _order = self.order.lock().unwrap();
        self.table().containers.insert(id.to_string(), container);
        self.register(pid as i32, id, "");
        self.publisher.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: id.to_string(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                pid,
                ..Default::default()
            },
        );
        drop(_order);
        self.watch_oom(id, pid);
        info!("created container {id}, init pid {pid}");
        Ok(pid)
    }

    pub fn start(&self, id: &str, exec_id: &str) -> Result<u32> {
        if exec_id.is_empty() {
            let pid = {
                let t = self.table();
                let p = &t.container(id)?.init;
                if p.started || p.exit.is_some() {
                    return Err(Error::Precondition(format!("container {id} was already started")));
                }
                p.pid
            };
            let _order = self.order.lock().unwrap();
            self.wrun.start(id)?;
            self.table().container_mut(id)?.init.started = true;
            self.publisher.publish(
                topics::TASK_START_EVENT_TOPIC,
                TaskStart {
                    container_id: id.to_string(),
                    pid,
                    ..Default::default()
                },
            );
            return Ok(pid);
        }
        self.start_exec(id, exec_id)
    }

    pub fn delete(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        if !exec_id.is_empty() {
            return self.delete_exec(id, exec_id);
        }
        let (bundle, mounted) = {
            let t = self.table();
            let c = t.container(id)?;
            (c.bundle.clone(), c.rootfs_mounted)
        };
        // --force: a container created but never started still has its init waiting.
        if let Err(e) = self.wrun.delete_force(id) {
            if !e.is_not_found() {
                return Err(e);
            }
        }
        if mounted {
            rootfs::unmount_all(&bundle.join("rootfs"));
        }
        if let Some(Some(w)) = self.oom.get() {
            w.forget(id);
        }
        let c = {
            let mut t = self.table();
            let c = t.containers.remove(id).expect("looked up above");
            t.pids.retain(|_, (cid, _)| cid != id);
            c
        };
        for p in c.execs.values() {
            if let Some(s) = &p.spec {
                let _ = std::fs::remove_file(s);
            }
        }
        let _ = std::fs::remove_file(bundle.join("init.pid"));
        self.exited.notify_all();
        let resp = DeleteResponse {
            pid: c.init.pid,
            exit_status: c.init.exit_status(),
            exited_at: c.init.exited_at(),
            ..Default::default()
        };
        self.publisher.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: id.to_string(),
                id: id.to_string(),
                pid: resp.pid,
                exit_status: resp.exit_status,
                exited_at: resp.exited_at.clone(),
                ..Default::default()
            },
        );
        info!("deleted container {id}");
        Ok(resp)
    }

    pub fn kill(&self, req: &KillRequest) -> Result<()> {
        let (pid, exited) = {
            let t = self.table();
            let p = t.process(&req.id, &req.exec_id)?;
            (p.pid, p.exit.is_some())
        };
        if req.exec_id.is_empty() {
            // As runc.v2 answers: containerd takes NotFound as "nothing left to signal".
            if exited {
                return Err(Error::NotFound(format!(
                    "container {}: process already finished",
                    req.id
                )));
            }
            return self.wrun.kill(&req.id, req.signal, req.all);
        }
        if exited || pid == 0 {
            return Err(Error::NotFound(format!(
                "exec {}: process already finished",
                req.exec_id
            )));
        }
        // SAFETY: kill(2) on a pid the shim reaps itself: it cannot have been reused while
        // its exit is not recorded.
        if unsafe { libc::kill(pid as i32, req.signal as i32) } != 0 {
            return Err(Error::io(
                format!("kill exec {}", req.exec_id),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    pub fn wait(&self, id: &str, exec_id: &str) -> Result<Exit> {
        let mut t = self.table();
        loop {
            if let Some(e) = t.process(id, exec_id)?.exit {
                return Ok(e);
            }
            t = self.exited.wait(t).unwrap();
        }
    }

    pub fn pause(&self, id: &str, pause: bool) -> Result<()> {
        self.table().container(id)?;
        if pause {
            self.wrun.pause(id)?;
        } else {
            self.wrun.resume(id)?;
        }
        self.table().container_mut(id)?.paused = pause;
        if pause {
            self.publisher.publish(
                topics::TASK_PAUSED_EVENT_TOPIC,
                TaskPaused {
                    container_id: id.to_string(),
                    ..Default::default()
                },
            );
        } else {
            self.publisher.publish(
                topics::TASK_RESUMED_EVENT_TOPIC,
                TaskResumed {
                    container_id: id.to_string(),
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    pub fn update(&self, req: &UpdateTaskRequest) -> Result<()> {
        let bundle = self.bundle(&req.id)?;
        let file = bundle.join(format!("update-{}.json", FILE_SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&file, &req.resources.value).map_err(|e| Error::io(format!("write {}", file.display()), e))?;
        let r = self.wrun.update(&req.id, &file);
        let _ = std::fs::remove_file(&file);
        r
    }

    pub fn state(&self, id: &str, exec_id: &str) -> Result<StateResponse> {
        let t = self.table();
        let c = t.container(id)?;
        let p = t.process(id, exec_id)?;
        Ok(StateResponse {
            id: if exec_id.is_empty() {
                id.to_string()
            } else {
                exec_id.to_string()
            },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid,
            status: p.status(c.paused).into(),
            stdin: p.stdin.clone(),
            stdout: p.stdout.clone(),
            stderr: p.stderr.clone(),
            terminal: p.terminal,
            exit_status: p.exit_status(),
            exited_at: p.exited_at(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        })
    }
}

fn read_pid(file: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(format!("pid file {}", file.display()), e))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Invalid(format!("pid file {}: {text:?} is not a pid", file.display())))
}
