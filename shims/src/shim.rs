//! The shim binary's actions: `start` (spawn the serving process, write `<bundle>/address`),
//! `delete` (clean up after a shim that is gone) and serving the task service.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::write_address;
use containerd_shim::{socket_address, spawn, warn, Config, Error as ShimError, ExitSignal, Flags, StartOpts};

use crate::error::Error;
use crate::events::Publisher;
use crate::process::timestamp;
use crate::rootfs;
use crate::service::Service;
use crate::wrun::Wrun;

/// The annotation CRI puts on every container of a pod: they share one shim.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

pub struct WrunShim {
    id: String,
    namespace: String,
    bundle: PathBuf,
    exit: Arc<ExitSignal>,
}

fn shim_error(e: Error) -> ShimError {
    ShimError::Other(e.to_string())
}

/// The shim a container joins: its pod's when CRI created it, else its own.
fn grouping(bundle: &Path, id: &str) -> String {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["annotations"][SANDBOX_ID].as_str().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| id.to_string())
}

/// Whether a shim listens on `address` (`unix:///run/containerd/s/<hash>`).
fn serving(address: &str) -> bool {
    UnixStream::connect(address.strip_prefix("unix://").unwrap_or(address)).is_ok()
}

/// Removes the socket named in `<bundle>/address` when no shim listens on it any more (a
/// killed shim cannot remove its own). A live one, shared by a pod, is left alone.
fn remove_dead_socket(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = address.trim();
    let path = Path::new(path.strip_prefix("unix://").unwrap_or(path));
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && !serving(address.trim()) {
        let _ = std::fs::remove_file(path);
    }
}

impl containerd_shim::Shim for WrunShim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        WrunShim {
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            bundle,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let group = grouping(&self.bundle, &opts.id);
        if group != opts.id {
            // A container of a pod whose shim already serves: hand containerd that shim's
            // address instead of starting a process that would only find the socket taken.
            let address = socket_address(&opts.address, &opts.namespace, &group);
            if serving(&address) {
                write_address(&address)?;
                return Ok(address);
            }
        }
        let (_, address) = spawn(opts, &group, Vec::new())?;
        // containerd reads it to reconnect after a restart; the serving process reads it at
        // exit to remove its socket.
        write_address(&address)?;
        Ok(address)
    }

    /// Called by containerd after every exit of the serving process, clean or not, and maybe
    /// twice: everything here tolerates "already gone".
    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let wrun = Wrun::new(&self.namespace).map_err(shim_error)?;
        let pid = wrun.state(&self.id).ok().and_then(|v| v["pid"].as_u64()).unwrap_or(0);
        if let Err(e) = wrun.delete_force(&self.id) {
            if !e.is_not_found() {
                warn!("delete {}: {e}", self.id);
            }
        }
        rootfs::unmount_all(&self.bundle.join("rootfs"));
        remove_dead_socket(&self.bundle);
        Ok(DeleteResponse {
            pid: pid as u32,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: MessageField::some(timestamp(SystemTime::now())),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let wrun = match Wrun::new(&self.namespace) {
            Ok(w) => w,
            Err(e) => {
                // Nothing can be served without wrun: say why in containerd's log and stop.
                containerd_shim::error!("{e}");
                std::process::exit(1);
            }
        };
        let publisher = Publisher::new(&address, &self.namespace, Some(publisher));
        Service::new(wrun, publisher, self.exit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_container_joins_its_sandbox_shim_and_others_get_their_own() {
        let dir = std::env::temp_dir().join(format!("wrun-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(grouping(&dir, "c1"), "c1", "no config.json");
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod9"}}"#,
        )
        .unwrap();
        assert_eq!(grouping(&dir, "c1"), "pod9");
        std::fs::write(dir.join("config.json"), r#"{"annotations":{}}"#).unwrap();
        assert_eq!(grouping(&dir, "c1"), "c1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
