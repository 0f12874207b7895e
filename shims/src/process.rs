//! What the shim knows of each container and each exec'd process: pids, stdio, exit status,
//! and the task status derived from them.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::types::task::Status;

use crate::error::{Error, Result};
use crate::reaper::Exit;

/// One process of a task: the container's init or an exec.
#[derive(Default)]
pub struct Proc {
    pub pid: u32,
    pub started: bool,
    pub exit: Option<Exit>,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    /// The pty master, when the process has a terminal (for ResizePty).
    pub console: Option<Arc<File>>,
    /// For an exec: the OCI process JSON written at Exec, used at Start.
    pub spec: Option<PathBuf>,
}

impl Proc {
    pub fn status(&self, paused: bool) -> Status {
        match (&self.exit, self.started, paused) {
            (Some(_), _, _) => Status::STOPPED,
            (None, _, true) => Status::PAUSED,
            (None, true, false) => Status::RUNNING,
            (None, false, false) => Status::CREATED,
        }
    }

    /// Exit status as containerd reports it (0 until the process has exited).
    pub fn exit_status(&self) -> u32 {
        self.exit.map_or(0, |e| e.code as u32)
    }

    pub fn exited_at(&self) -> MessageField<Timestamp> {
        match self.exit {
            Some(e) => MessageField::some(timestamp(e.at)),
            None => MessageField::none(),
        }
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

/// A container served by this shim.
pub struct Container {
    pub bundle: PathBuf,
    /// True when the shim mounted `<bundle>/rootfs` and must unmount it at Delete.
    pub rootfs_mounted: bool,
    pub paused: bool,
    pub init: Proc,
    pub execs: HashMap<String, Proc>,
}

/// Every container of this shim (one, or all containers of a pod) and which pid is which
/// process, for the exits the reaper reports.
#[derive(Default)]
pub struct Table {
    pub containers: HashMap<String, Container>,
    pub pids: HashMap<i32, (String, String)>,
}

impl Table {
    pub fn container(&self, id: &str) -> Result<&Container> {
        self.containers
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("container {id} not found in this shim")))
    }

    pub fn container_mut(&mut self, id: &str) -> Result<&mut Container> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("container {id} not found in this shim")))
    }

    /// The init (`exec_id` empty) or an exec of container `id`.
    pub fn process(&self, id: &str, exec_id: &str) -> Result<&Proc> {
        let c = self.container(id)?;
        if exec_id.is_empty() {
            return Ok(&c.init);
        }
        c.execs
            .get(exec_id)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} of container {id} not found")))
    }

    pub fn process_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc> {
        let c = self.container_mut(id)?;
        if exec_id.is_empty() {
            return Ok(&mut c.init);
        }
        c.execs
            .get_mut(exec_id)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} of container {id} not found")))
    }

    /// Records the exit of `pid` if it is one of ours; returns whose it was.
    pub fn exited(&mut self, pid: i32, exit: Exit) -> Option<(String, String)> {
        let (id, exec_id) = self.pids.remove(&pid)?;
        if let Ok(p) = self.process_mut(&id, &exec_id) {
            p.exit = Some(exit);
        }
        Some((id, exec_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_start_pause_and_exit() {
        let mut p = Proc::default();
        assert_eq!(p.status(false), Status::CREATED);
        p.started = true;
        assert_eq!(p.status(false), Status::RUNNING);
        assert_eq!(p.status(true), Status::PAUSED);
        p.exit = Some(Exit {
            code: 137,
            at: SystemTime::now(),
        });
        assert_eq!(p.status(true), Status::STOPPED);
        assert_eq!(p.exit_status(), 137);
        assert!(p.exited_at().is_some());
    }

    #[test]
    fn an_exit_is_recorded_on_the_process_that_owns_the_pid() {
        let mut t = Table::default();
        let mut c = Container {
            bundle: PathBuf::from("/b"),
            rootfs_mounted: false,
            paused: false,
            init: Proc::default(),
            execs: HashMap::new(),
        };
        c.execs.insert("e1".into(), Proc::default());
        t.containers.insert("c".into(), c);
        t.pids.insert(10, ("c".into(), String::new()));
        t.pids.insert(11, ("c".into(), "e1".into()));
        let exit = Exit {
            code: 3,
            at: SystemTime::now(),
        };
        assert_eq!(t.exited(11, exit), Some(("c".into(), "e1".into())));
        assert_eq!(t.process("c", "e1").unwrap().exit_status(), 3);
        assert!(t.process("c", "").unwrap().exit.is_none());
        assert_eq!(t.exited(99, exit), None);
        assert!(t.process("c", "nope").is_err());
    }
}
