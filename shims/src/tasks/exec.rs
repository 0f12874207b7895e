//! The exec'd processes of a container (containerd's Exec, then Start and Delete with an exec
//! id): registered, started through `wrun exec`, and removed. The container's own init is the
//! parent module's.

use std::sync::atomic::Ordering;

use containerd_shim::api::{DeleteResponse, ExecProcessRequest};
use containerd_shim::protos::events::task::{TaskExecAdded, TaskExecStarted};
use containerd_shim::protos::topics;

use super::{read_pid, Tasks, FILE_SEQ};
use crate::error::{Error, Result};
use crate::process::Proc;

impl Tasks {
    pub fn exec(&self, req: &ExecProcessRequest) -> Result<()> {
        let bundle = self.bundle(&req.id)?;
        if self.table().process(&req.id, &req.exec_id).is_ok() {
            return Err(Error::AlreadyExists(format!("exec {} already exists", req.exec_id)));
        }
        let spec = bundle.join(format!("exec-{}.json", FILE_SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&spec, &req.spec.value).map_err(|e| Error::io(format!("write {}", spec.display()), e))?;
        let p = Proc {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
            spec: Some(spec),
            ..Default::default()
        };
        self.table()
            .container_mut(&req.id)?
            .execs
            .insert(req.exec_id.clone(), p);
        self.publisher.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(())
    }

    /// Start exec `exec_id` of container `id`.
    pub(super) fn start_exec(&self, id: &str, exec_id: &str) -> Result<u32> {
        let (bundle, spec, terminal, stdin, stdout, stderr) = {
            let t = self.table();
            let c = t.container(id)?;
            if c.init.exit.is_some() {
                return Err(Error::Precondition(format!("container {id} has stopped")));
            }
            let p = t.process(id, exec_id)?;
            if p.started {
                return Err(Error::Precondition(format!("exec {exec_id} was already started")));
            }
            (
                c.bundle.clone(),
                p.spec.clone().unwrap_or_default(),
                p.terminal,
                p.stdin.clone(),
                p.stdout.clone(),
                p.stderr.clone(),
            )
        };
        let (io, sock) = self.stdio_for(terminal, &stdin, &stdout, &stderr)?;
        let pid_file = bundle.join(format!("exec-{}.pid", FILE_SEQ.fetch_add(1, Ordering::Relaxed)));
        let _order = self.order.lock().unwrap();
        let done = self
            .wrun
            .exec(id, &spec, &pid_file, sock.as_ref().map(|s| s.path()), io);
        let pid = done.and_then(|()| read_pid(&pid_file));
        let _ = std::fs::remove_file(&pid_file);
        let pid = pid?;
        let console = Self::attach_console(sock, &stdin, &stdout)?;
        {
            let mut t = self.table();
            let p = t.process_mut(id, exec_id)?;
            p.pid = pid;
            p.started = true;
            p.console = console;
        }
        self.register(pid as i32, id, exec_id);
        self.publisher.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid,
                ..Default::default()
            },
        );
        Ok(pid)
    }

    /// Delete exec `exec_id` of container `id` once it has exited (or never started).
    pub(super) fn delete_exec(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        let mut t = self.table();
        let p = t.process(id, exec_id)?;
        if p.started && p.exit.is_none() {
            return Err(Error::Precondition(format!("exec {exec_id} is still running")));
        }
        let p = t.container_mut(id)?.execs.remove(exec_id).expect("looked up above");
        if let Some(s) = &p.spec {
            let _ = std::fs::remove_file(s);
        }
        Ok(DeleteResponse {
            pid: p.pid,
            exit_status: p.exit_status(),
            exited_at: p.exited_at(),
            ..Default::default()
        })
    }
}
