//! The task service containerd calls over ttrpc: each request is checked and handed to
//! [`Tasks`], its answer turned into the response message.

use std::sync::Arc;

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest, PidsRequest, PidsResponse, ResizePtyRequest,
    ResumeRequest, ShutdownRequest, StartRequest, StartResponse, StateRequest, StateResponse, StatsRequest,
    StatsResponse, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::{ExitSignal, Task, TtrpcContext, TtrpcResult};

use crate::events::Publisher;
use crate::metrics;
use crate::process::timestamp;
use crate::stdio;
use crate::tasks::Tasks;
use crate::wrun::Wrun;

pub struct Service {
    tasks: Arc<Tasks>,
}

impl Service {
    pub fn new(wrun: Wrun, publisher: Publisher, shutdown: Arc<ExitSignal>) -> Service {
        Service {
            tasks: Tasks::new(wrun, publisher, shutdown),
        }
    }
}

impl Task for Service {
    fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        let pid = self.tasks.create(&req)?;
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        let pid = self.tasks.start(&req.id, &req.exec_id)?;
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        Ok(self.tasks.state(&req.id, &req.exec_id)?)
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        Ok(self.tasks.delete(&req.id, &req.exec_id)?)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        self.tasks.table().container(&req.id)?;
        let pids = self.tasks.wrun.ps(&req.id)?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        self.tasks.pause(&req.id, true)?;
        Ok(Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.tasks.pause(&req.id, false)?;
        Ok(Empty::new())
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.tasks.kill(&req)?;
        Ok(Empty::new())
    }

    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        self.tasks.exec(&req)?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let console = self.tasks.table().process(&req.id, &req.exec_id)?.console.clone();
        if let Some(m) = console {
            stdio::resize(&m, req.width, req.height)?;
        }
        Ok(Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        // The process reads the stdin fifo itself (or the pty copier does): it sees EOF when
        // the client closes its end, so there is nothing for the shim to close.
        self.tasks.table().process(&req.id, &req.exec_id)?;
        Ok(Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        self.tasks.update(&req)?;
        Ok(Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let e = self.tasks.wait(&req.id, &req.exec_id)?;
        Ok(WaitResponse {
            exit_status: e.code as u32,
            exited_at: MessageField::some(timestamp(e.at)),
            ..Default::default()
        })
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        self.tasks.table().container(&req.id)?;
        let s = self.tasks.wrun.stats(&req.id)?;
        Ok(StatsResponse {
            stats: MessageField::some(metrics::to_any(&s, self.tasks.v2)?),
            ..Default::default()
        })
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let task_pid = self.tasks.table().container(&req.id).map(|c| c.init.pid).unwrap_or(0);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        // One shim may serve every container of a pod: it goes only with the last one.
        if self.tasks.table().containers.is_empty() {
            self.tasks.shutdown.signal();
        }
        Ok(Empty::new())
    }
}
