//! A Kubernetes node without a kubelet: a private containerd with its CRI plugin enabled and
//! a bridge CNI network of its own, plus a CRI v1 client that speaks to it as a kubelet does.
//! Shared by the CRI tests and by `benches/cri-pod.sh` (the `cri-cycle` example).
//!
//! What the config needs on this host (see ENVIRONMENT.md): a local pause image named by
//! `sandbox_image` (no registry is reachable), `restrict_oom_score_adj` (lowering
//! oom_score_adj is refused here even for root), cgroupfs cgroups, netns mounts under the
//! private state dir, and a real CNI network (a loopback-only config fails for pods that do
//! not use the host's network): a bridge with no gateway, no masquerading and no routes, so
//! nothing of a pod reaches past the bridge.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "client.rs"]
mod client;
pub use client::*;

/// The runtime handler names of the node's config.
pub const WRUN: &str = "wrun";
pub const RUNC: &str = "runc";
pub const PAUSE: &str = "wrun.test/pause:1";
pub const BUSYBOX: &str = "wrun.test/busybox:1";
pub const WASM_POD: &str = "wrun.test/wasm-pod:1";
/// containerd's namespace for everything of CRI.
pub const K8S_NS: &str = "k8s.io";

static NODES: AtomicU32 = AtomicU32::new(0);

/// A containerd with CRI, stopped and its network removed on drop.
pub struct Node {
    pub dir: PathBuf,
    /// The bridge the CNI plugin creates for the node's pods.
    pub bridge: String,
    pub cni_name: String,
    daemon: Daemon,
    pub cri: Cri,
}

/// A spawned containerd, owned from the moment it is spawned: dropping it (a failure anywhere
/// after the spawn, before or after the `Node` exists) stops it.
struct Daemon(Option<Child>);

impl Daemon {
    /// SIGTERM, then SIGKILL after 10 s; waits for it.
    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SAFETY: a plain kill(2) of the child we spawned and have not yet waited for.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let gone = wait(Duration::from_secs(10), || matches!(c.try_wait(), Ok(Some(_))));
            if !gone {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The OCI image archives the node imports: the pause image (busybox `sh` waiting for
/// SIGTERM), busybox, and a wasm image whose modules are the project's guests.
pub struct ImageTars {
    pub pause: PathBuf,
    pub busybox: PathBuf,
    pub wasm: PathBuf,
}

impl Node {
    /// Starts containerd in `dir` (which must exist and be empty) with the shim in `shim_dir`
    /// first on its PATH, and imports `images` into the `k8s.io` namespace.
    pub fn start(dir: &Path, shim_dir: &Path, images: &ImageTars) -> Result<Node, String> {
        let n = NODES.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let bridge = format!("wrcri{}x{n}", pid % 100_000);
        let d = dir.display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{RUNC}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{RUNC}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{RUNC}.options]
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{WRUN}]
      runtime_type = "io.containerd.wrun.v1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#
        );
        fs::write(dir.join("config.toml"), config).map_err(|e| e.to_string())?;
        // A private /24 per node; the IPAM state stays in the node's dir.
        let cni = format!(
            r#"{{"cniVersion": "0.4.0", "name": "{bridge}", "plugins": [{{
  "type": "bridge", "bridge": "{bridge}", "isGateway": false, "ipMasq": false,
  "ipam": {{"type": "host-local", "dataDir": "{d}/ipam",
            "ranges": [[{{"subnet": "10.213.{}.0/24"}}]]}}}}]}}"#,
            n % 250
        );
        fs::create_dir_all(dir.join("cni")).map_err(|e| e.to_string())?;
        fs::write(dir.join("cni/10-wrun-test.conflist"), cni).map_err(|e| e.to_string())?;
        let log = fs::File::create(dir.join("containerd.log")).map_err(|e| e.to_string())?;
        let path = format!("{}:{}", shim_dir.display(), std::env::var("PATH").unwrap_or_default());
        let stdout = log.try_clone().map_err(|e| e.to_string())?;
        let daemon = Daemon(Some(
            Command::new("containerd")
                .arg("--config")
                .arg(dir.join("config.toml"))
                .env("PATH", path)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("start containerd (apt-get install containerd): {e}"))?,
        ));
        let sock = dir.join("c.sock");
        let up = Instant::now();
        while !sock.exists() && up.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The socket file exists from bind(2), before containerd listens on it: connecting
        // then is refused ("transport error"), so it is retried for a while. An error here
        // drops `daemon`, which stops containerd.
        let cri = loop {
            match Cri::connect(&sock) {
                Ok(c) => break c,
                Err(e) if up.elapsed() >= Duration::from_secs(20) => {
                    return Err(format!("{e}\n{}", log_tail(dir)));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let mut node = Node {
            dir: dir.to_path_buf(),
            cni_name: bridge.clone(),
            bridge,
            daemon,
            cri,
        };
        for tar in [&images.pause, &images.busybox, &images.wasm] {
            let o = node.ctr(&["images", "import", tar.to_str().unwrap()]);
            if !o.status.success() {
                return Err(format!(
                    "ctr images import {}: {}",
                    tar.display(),
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
        }
        // CRI learns about imported images from containerd's events: wait until it sees them.
        let seen = wait(Duration::from_secs(10), || {
            [PAUSE, BUSYBOX, WASM_POD].iter().all(|i| node.cri.image_present(i))
        });
        if !seen {
            node.stop();
            return Err("CRI never listed the imported images".into());
        }
        Ok(node)
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.join("c.sock"))
            .args(["-n", K8S_NS])
            .args(args)
            .output()
            .expect("run ctr")
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.dir)
    }

    /// Pids of the wrun shims this node's containerd started.
    pub fn shims(&self) -> Vec<i64> {
        self.shims_of("containerd-shim-wrun-v1")
    }

    /// Pids of the shims (of the binary named `binary`) this node's containerd started.
    pub fn shims_of(&self, binary: &str) -> Vec<i64> {
        let needle = format!("-address\0{}\0", self.dir.join("c.sock").display());
        pids_where(|pid| {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains(binary) && cmd.contains(&needle)
        })
    }

    /// The host interfaces enslaved to the node's bridge (one veth per running pod).
    pub fn bridge_ports(&self) -> Vec<String> {
        wrun_tests::bridge_ports(&self.bridge)
    }

    pub fn bridge_exists(&self) -> bool {
        Path::new("/sys/class/net").join(&self.bridge).exists()
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 10 s) and deletes the bridge, which the
    /// CNI plugin creates on the first pod and never removes.
    pub fn stop(&mut self) {
        self.daemon.stop();
        if self.bridge_exists() {
            let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pids in /proc for which `pred` holds.
pub fn pids_where(pred: impl Fn(i64) -> bool) -> Vec<i64> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
        .filter(|pid| pred(*pid))
        .collect()
}

fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Writes the node's image archives into `dir` with `tests/oci-image.sh`: the pause image
/// and busybox from `busybox_rootfs`, and the wasm image from the guests built in
/// `wasm-apps/` (entry point `/tcp-fetch.wasm`; `.wasm` entry points run in wasmtime).
pub fn write_images(dir: &Path, busybox_rootfs: &Path, guests: &[PathBuf]) -> Result<ImageTars, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oci-image.sh");
    let image = |rootfs: &Path, out: &Path, reference: &str, entrypoint: &str| -> Result<(), String> {
        let o = Command::new("bash")
            .arg(&script)
            .arg(rootfs)
            .arg(out)
            .args([reference, entrypoint])
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "oci-image.sh {reference}: {}",
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    };
    let tars = ImageTars {
        pause: dir.join("pause.tar"),
        busybox: dir.join("busybox.tar"),
        wasm: dir.join("wasm-pod.tar"),
    };
    // The pod's first process: waits, reaping, until StopPodSandbox signals it.
    let pause = r#"["sh","-c","trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]"#;
    image(busybox_rootfs, &tars.pause, PAUSE, pause)?;
    image(busybox_rootfs, &tars.busybox, BUSYBOX, r#"["sh"]"#)?;
    let w = dir.join("wasm-rootfs");
    fs::create_dir_all(&w).map_err(|e| e.to_string())?;
    for g in guests {
        fs::copy(g, w.join(g.file_name().unwrap())).map_err(|e| format!("{}: {e}", g.display()))?;
    }
    image(&w, &tars.wasm, WASM_POD, r#"["/tcp-fetch.wasm"]"#)?;
    Ok(tars)
}
