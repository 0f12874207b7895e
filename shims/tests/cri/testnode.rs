//! One CRI test's node (a private containerd with CRI, its own cgroup parent for pods, and
//! the check on drop that nothing of the test is left), the images it imports, and the
//! checks the tests share.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_cri::v1::NamespaceMode;
use wrun_tests::{mount_points, unique, wasm_app, Bundle, TempDir};

use super::common;
use super::node::{self, pod_config, wait, write_images, ImageTars, Node, WRUN};

pub fn images() -> &'static ImageTars {
    static IMAGES: OnceLock<ImageTars> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("cri-images"));
        fs::create_dir_all(&dir).unwrap();
        let bb = Bundle::busybox();
        let guests: Vec<PathBuf> = ["tcp-fetch", "exit", "hello"].iter().map(|g| wasm_app(g)).collect();
        write_images(&dir, &bb.rootfs(), &guests).expect("write the CRI test images")
    })
}

/// A node of its own for one test, with a cgroup parent of its own for its pods.
pub struct TestNode {
    pub node: Node,
    pub cgroup_parent: String,
    /// Every pod and container id the test made: none may leave wrun state behind.
    pub ids: RefCell<Vec<String>>,
    pub dir: TempDir,
}

impl TestNode {
    pub fn start() -> TestNode {
        let dir = TempDir::new("cri");
        let shim_dir = common::shim_binary().parent().unwrap().to_path_buf();
        let node = Node::start(dir.path(), &shim_dir, images()).unwrap_or_else(|e| panic!("{e}"));
        TestNode {
            node,
            cgroup_parent: format!("/{}", unique("wrun-cri")),
            ids: RefCell::default(),
            dir,
        }
    }

    pub fn logs(&self, pod: &str) -> PathBuf {
        let d = self.dir.join("logs").join(pod);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// RunPodSandbox of a pod `name` with the default namespaces: (its config, id, log dir).
    #[track_caller]
    pub fn run_pod(&self, name: &str) -> (k8s_cri::v1::PodSandboxConfig, String, PathBuf) {
        self.run_pod_with(name, |_| {})
    }

    /// The same, with the pod's config changed by `adjust` first.
    #[track_caller]
    pub fn run_pod_with(
        &self,
        name: &str,
        adjust: impl FnOnce(&mut k8s_cri::v1::PodSandboxConfig),
    ) -> (k8s_cri::v1::PodSandboxConfig, String, PathBuf) {
        let logs = self.logs(name);
        let mut cfg = pod_config(name, &logs, &self.cgroup_parent);
        adjust(&mut cfg);
        let pod = self.ok(self.node.cri.run_pod(&cfg, WRUN));
        self.ids.borrow_mut().push(pod.clone());
        (cfg, pod, logs)
    }

    /// CreateContainer, the id kept for the final checks.
    #[track_caller]
    pub fn create(
        &self,
        pod: &str,
        c: k8s_cri::v1::ContainerConfig,
        pod_cfg: &k8s_cri::v1::PodSandboxConfig,
    ) -> String {
        let id = self.ok(self.node.cri.create_container(pod, c, pod_cfg));
        self.ids.borrow_mut().push(id.clone());
        id
    }

    #[track_caller]
    pub fn ok<T>(&self, r: Result<T, String>) -> T {
        r.unwrap_or_else(|e| panic!("{e}\n--- containerd log tail ---\n{}", self.node.log_tail()))
    }

    /// Removes every pod, stops containerd and asserts that nothing of the test is left.
    pub fn finish(mut self) {
        let cri = &self.node.cri;
        for p in self.ok(cri.list_pods()) {
            self.ok(cri.stop_pod(&p.id));
            self.ok(cri.remove_pod(&p.id));
        }
        let gone = wait(Duration::from_secs(10), || self.node.shims().is_empty());
        assert!(gone, "shims left: {:?}", self.node.shims());
        assert!(
            self.node.bridge_ports().is_empty(),
            "veths left on the bridge: {:?}",
            self.node.bridge_ports()
        );
        self.node.stop();
        assert!(!self.node.bridge_exists(), "bridge {} left", self.node.bridge);
        let mounts: Vec<PathBuf> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(self.dir.path()))
            .collect();
        assert!(mounts.is_empty(), "mounts left (rootfs or netns): {mounts:?}");
        for id in self.ids.borrow().iter() {
            let state = Path::new("/run/containerd/wrun").join(node::K8S_NS).join(id);
            assert!(!state.exists(), "wrun state left: {}", state.display());
        }
        let results: Vec<_> = fs::read_dir("/var/lib/cni/results")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{}-", self.node.cni_name)))
                    .collect()
            })
            .unwrap_or_default();
        assert!(results.is_empty(), "CNI results left: {results:?}");
        // The pods' cgroups are gone; the parent (the kubelet's to manage) must be empty.
        common::remove_empty_cgroups(self.cgroup_parent.trim_start_matches('/'));
        self.cgroup_parent.clear();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // Only with work left when a test failed: best effort, so the next tests start clean.
        if let Ok(pods) = self.node.cri.list_pods() {
            for p in pods {
                let _ = self.node.cri.stop_pod(&p.id);
                let _ = self.node.cri.remove_pod(&p.id);
            }
        }
        for pid in self.node.shims() {
            wrun_tests::kill_pid(pid, libc::SIGKILL);
        }
        self.node.stop();
        if !self.cgroup_parent.is_empty() {
            for cg in common::cgroup_dirs(self.cgroup_parent.trim_start_matches('/')) {
                for sub in fs::read_dir(&cg).into_iter().flatten().flatten() {
                    let _ = fs::remove_dir(sub.path());
                }
                let _ = fs::remove_dir(cg);
            }
        }
    }
}

pub fn ns(pid: i64, kind: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap_or_else(|e| panic!("/proc/{pid}/ns/{kind}: {e}"))
}

/// Asserts that container `id`'s process shares the pod's network, IPC and UTS namespaces,
/// has a PID namespace of its own, and sits in `<cgroup parent>/<id>`.
#[track_caller]
pub fn check_in_pod(pid: i64, pause_pid: i64, id: &str, cgroup_parent: &str) {
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns(pid, kind),
            ns(pause_pid, kind),
            "{id} joins the pod's {kind} namespace"
        );
    }
    assert_ne!(
        ns(pid, "pid"),
        ns(pause_pid, "pid"),
        "{id}: a PID namespace per container (CONTAINER mode)"
    );
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.lines().any(|l| l.ends_with(&format!("{cgroup_parent}/{id}"))),
        "{id}'s cgroup is under the pod's cgroup parent {cgroup_parent}: {cgroup}"
    );
}

/// `file` of the cgroup of `pid` that holds `controller` (the cgroup2 one on a pure v2 host).
pub fn process_cgroup_file(pid: i64, controller: &str, file: &str) -> String {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = wrun_tests::is_cgroup_v2();
    let (dir, path) = own
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.splitn(3, ':').collect();
            match v2 {
                true => f[1].is_empty().then(|| (String::new(), f[2])),
                false => f[1]
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| (controller.to_string(), f[2])),
            }
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup for {pid}: {own}"));
    let p = Path::new("/sys/fs/cgroup")
        .join(dir)
        .join(path.trim_start_matches('/'))
        .join(file);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// shareProcessNamespace: PID mode POD in the pod's namespace options...
pub fn share_pid(pod: &mut k8s_cri::v1::PodSandboxConfig) {
    let sc = pod.linux.as_mut().and_then(|l| l.security_context.as_mut()).unwrap();
    sc.namespace_options = Some(node::namespaces(NamespaceMode::Pod));
}

/// ...and in each container's.
pub fn join_pod_pid(c: &mut k8s_cri::v1::ContainerConfig) {
    let sc = c.linux.as_mut().and_then(|l| l.security_context.as_mut()).unwrap();
    sc.namespace_options = Some(node::namespaces(NamespaceMode::Pod));
}

pub fn texts(lines: &[node::LogLine], stream: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.text.clone())
        .collect()
}
