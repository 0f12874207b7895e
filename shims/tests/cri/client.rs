//! The kubelet's end of the CRI v1 API: a blocking client over containerd's socket, and the
//! pod and container configs, namespaces and log format a kubelet uses. Part of `node.rs`.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The kubelet's end of the CRI: blocking calls over containerd's socket.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    rs: RuntimeServiceClient<Channel>,
    is: ImageServiceClient<Channel>,
}

pub type CriResult<T> = Result<T, String>;

impl Cri {
    pub fn connect(sock: &Path) -> CriResult<Cri> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let path = sock.to_path_buf();
        let channel = rt
            .block_on(async move {
                // The URI is not used: every connection goes to the unix socket.
                Endpoint::from_static("http://cri.invalid")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
                    }))
                    .await
            })
            .map_err(|e| format!("connect to {}: {e}", sock.display()))?;
        Ok(Cri {
            rt,
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
        })
    }

    fn call<T>(&self, what: &str, f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> CriResult<T> {
        match self.rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, f).await }) {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(format!("{what}: {}", s.message())),
            Err(_) => Err(format!("{what}: no answer in {CALL_TIMEOUT:?}")),
        }
    }

    pub fn version(&self) -> CriResult<VersionResponse> {
        self.call("Version", self.rs.clone().version(VersionRequest::default()))
    }

    pub fn image_present(&self, image: &str) -> bool {
        let req = ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            verbose: false,
        };
        self.call("ImageStatus", self.is.clone().image_status(req))
            .is_ok_and(|r| r.image.is_some())
    }

    pub fn run_pod(&self, config: &PodSandboxConfig, handler: &str) -> CriResult<String> {
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.to_string(),
        };
        Ok(self
            .call("RunPodSandbox", self.rs.clone().run_pod_sandbox(req))?
            .pod_sandbox_id)
    }

    /// The pod's status and its verbose `info` (containerd's JSON, which has the pid).
    pub fn pod_status(&self, id: &str) -> CriResult<(PodSandboxStatus, HashMap<String, String>)> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        let r = self.call("PodSandboxStatus", self.rs.clone().pod_sandbox_status(req))?;
        Ok((r.status.unwrap_or_default(), r.info))
    }

    pub fn stop_pod(&self, id: &str) -> CriResult<()> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call("StopPodSandbox", self.rs.clone().stop_pod_sandbox(req))
            .map(drop)
    }

    pub fn remove_pod(&self, id: &str) -> CriResult<()> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call("RemovePodSandbox", self.rs.clone().remove_pod_sandbox(req))
            .map(drop)
    }

    pub fn list_pods(&self) -> CriResult<Vec<PodSandbox>> {
        let r = self.call(
            "ListPodSandbox",
            self.rs.clone().list_pod_sandbox(ListPodSandboxRequest::default()),
        )?;
        Ok(r.items)
    }

    pub fn create_container(
        &self,
        pod: &str,
        config: ContainerConfig,
        pod_config: &PodSandboxConfig,
    ) -> CriResult<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        Ok(self
            .call("CreateContainer", self.rs.clone().create_container(req))?
            .container_id)
    }

    pub fn start_container(&self, id: &str) -> CriResult<()> {
        let req = StartContainerRequest {
            container_id: id.to_string(),
        };
        self.call("StartContainer", self.rs.clone().start_container(req))
            .map(drop)
    }

    /// StopContainer: SIGTERM, then SIGKILL after `timeout_s` seconds (the grace period).
    pub fn stop_container(&self, id: &str, timeout_s: i64) -> CriResult<()> {
        let req = StopContainerRequest {
            container_id: id.to_string(),
            timeout: timeout_s,
        };
        self.call("StopContainer", self.rs.clone().stop_container(req))
            .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> CriResult<()> {
        let req = RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.call("RemoveContainer", self.rs.clone().remove_container(req))
            .map(drop)
    }

    pub fn container_status(&self, id: &str) -> CriResult<(ContainerStatus, HashMap<String, String>)> {
        let req = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        let r = self.call("ContainerStatus", self.rs.clone().container_status(req))?;
        Ok((r.status.unwrap_or_default(), r.info))
    }

    /// Polls ContainerStatus until the container has exited, as the kubelet's PLEG does.
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> CriResult<ContainerStatus> {
        let t = Instant::now();
        loop {
            let (s, _) = self.container_status(id)?;
            if s.state == ContainerState::ContainerExited as i32 {
                return Ok(s);
            }
            if t.elapsed() > timeout {
                return Err(format!("container {id} still in state {} after {timeout:?}", s.state));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn exec_sync(&self, id: &str, cmd: &[&str], timeout_s: i64) -> CriResult<ExecSyncResponse> {
        let req = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_s,
        };
        self.call("ExecSync", self.rs.clone().exec_sync(req))
    }

    pub fn update_resources(&self, id: &str, linux: LinuxContainerResources) -> CriResult<()> {
        let req = UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux),
            ..Default::default()
        };
        self.call(
            "UpdateContainerResources",
            self.rs.clone().update_container_resources(req),
        )
        .map(drop)
    }

    pub fn container_stats(&self, id: &str) -> CriResult<ContainerStats> {
        let req = ContainerStatsRequest {
            container_id: id.to_string(),
        };
        Ok(self
            .call("ContainerStats", self.rs.clone().container_stats(req))?
            .stats
            .unwrap_or_default())
    }

    pub fn list_containers(&self) -> CriResult<Vec<Container>> {
        let r = self.call(
            "ListContainers",
            self.rs.clone().list_containers(ListContainersRequest::default()),
        )?;
        Ok(r.containers)
    }
}

/// The pid containerd reports in a verbose status's `info` JSON.
pub fn info_pid(info: &HashMap<String, String>) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    v["pid"].as_i64().filter(|p| *p > 0)
}

/// The kubelet's namespace options: network and IPC of the pod, PID as `pid` says
/// (CONTAINER by default, POD for `shareProcessNamespace`).
pub fn namespaces(pid: NamespaceMode) -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: pid as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A pod as the kubelet describes it: its own network, IPC and UTS namespaces shared by its
/// containers, a PID namespace per container (the Kubernetes default), logs under
/// `log_dir`, cgroups under `cgroup_parent`.
pub fn pod_config(name: &str, log_dir: &Path, cgroup_parent: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: "default".to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces(NamespaceMode::Container)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container of `image` running `command`, its log at `<pod log dir>/<name>.log`.
pub fn container_config(name: &str, image: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces(NamespaceMode::Container)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One line of a CRI log file: `<RFC 3339 time> <stdout|stderr> <F|P> <text>`.
#[derive(Debug, PartialEq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    pub tag: String,
    pub text: String,
}

/// Parses a CRI log file; a line that is not in the format is an error naming it.
pub fn read_cri_log(path: &Path) -> Result<Vec<LogLine>, String> {
    let s = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    s.lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let (time, stream, tag) = (f.next(), f.next(), f.next());
            match (time, stream, tag) {
                (Some(t), Some(s @ ("stdout" | "stderr")), Some(g @ ("F" | "P")))
                    if t.len() > 20 && t.as_bytes()[10] == b'T' =>
                {
                    Ok(LogLine {
                        time: t.to_string(),
                        stream: s.to_string(),
                        tag: g.to_string(),
                        text: f.next().unwrap_or("").to_string(),
                    })
                }
                _ => Err(format!("{}: not a CRI log line: {l:?}", path.display())),
            }
        })
        .collect()
}
