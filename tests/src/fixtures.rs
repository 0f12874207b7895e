//! Host fixtures a test makes and its drop guard removes: temp dirs, mounts, network
//! namespaces, dummy links; and the check that a container left nothing behind.

use super::*;

// ---------------------------------------------------------------------------
// Temp dirs and mounts
// ---------------------------------------------------------------------------

/// Mount points of this process's mount namespace.
pub fn mount_points() -> Vec<PathBuf> {
    wrun_sys::mountinfo::read_own()
        .unwrap_or_default()
        .into_iter()
        .map(|m| PathBuf::from(m.mountpoint))
        .collect()
}

/// Lazily unmounts everything mounted at or below `dir`, deepest first.
pub fn detach_mounts_under(dir: &Path) {
    for _ in 0..8 {
        let mut under: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(dir)).collect();
        if under.is_empty() {
            return;
        }
        under.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for m in under {
            if let Ok(c) = CString::new(m.as_os_str().as_bytes()) {
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
}

/// A directory under /tmp removed (after detaching any mounts below it) on
/// drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(&format!("wrun-test-{tag}")));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        detach_mounts_under(&self.path);
        // Never follow anything still mounted: refuse to remove if a mount
        // is left below us.
        if mount_points().iter().any(|m| m.starts_with(&self.path)) {
            eprintln!("warning: not removing {}: mounts remain", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A mount made on the host by the test (e.g. a tmpfs), detached on drop.
pub struct HostMount {
    target: PathBuf,
}

impl HostMount {
    pub fn tmpfs(target: &Path, options: &str) -> HostMount {
        fs::create_dir_all(target).expect("mkdir mount target");
        let src = CString::new("tmpfs").unwrap();
        let tgt = CString::new(target.as_os_str().as_bytes()).unwrap();
        let data = CString::new(options).unwrap();
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                src.as_ptr(),
                0,
                data.as_ptr() as *const libc::c_void,
            )
        };
        assert_eq!(
            rc,
            0,
            "mount tmpfs on {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        );
        HostMount {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        if let Ok(c) = CString::new(self.target.as_os_str().as_bytes()) {
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new() -> NetNs {
        let name = unique("wrun-test");
        host(&["ip", "netns", "add", &name]);
        NetNs { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    pub fn inode(&self) -> u64 {
        fs::metadata(self.path()).expect("stat netns").ino()
    }
}

impl Default for NetNs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Spawned::spawn(Command::new("ip").args(["netns", "del", &self.name]), None).try_wait_timeout(timeout());
    }
}

/// A single virtual network interface on the host (type `dummy`, or `ifb`
/// where the kernel lacks dummy), deleted on drop if it is (back) on the
/// host.
pub struct DummyLink {
    pub name: String,
}

impl DummyLink {
    pub fn new() -> DummyLink {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // IFNAMSIZ: at most 15 characters.
        let name = format!("wrt{}x{n}", std::process::id() % 1_000_000);
        let dummy = run_cmd(Command::new("ip").args(["link", "add", &name, "type", "dummy"]), None);
        if !dummy.status.success() {
            host(&["ip", "link", "add", &name, "type", "ifb"]);
        }
        DummyLink { name }
    }

    pub fn on_host(&self) -> bool {
        Path::new("/sys/class/net").join(&self.name).exists()
    }
}

impl Default for DummyLink {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DummyLink {
    fn drop(&mut self) {
        if self.on_host() {
            let _ =
                Spawned::spawn(Command::new("ip").args(["link", "del", &self.name]), None).try_wait_timeout(timeout());
        }
    }
}

// ---------------------------------------------------------------------------
// Assertions about leftovers
// ---------------------------------------------------------------------------

/// Asserts nothing of container `id` is left: no state dir `<root>/<id>`, no
/// mount referencing the bundle path, no process rooted in the bundle.
#[track_caller]
pub fn assert_clean(root: &Path, id: &str, bundle: &Path) {
    let state_dir = root.join(id);
    assert!(!state_dir.exists(), "state dir {} left behind", state_dir.display());
    let b = bundle.to_str().unwrap();
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mi.lines().filter(|l| l.contains(b)).collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
    let gone = wait_until(Duration::from_secs(3), || processes_rooted_in(bundle).is_empty());
    assert!(
        gone,
        "processes left running in {}: {:?}",
        bundle.display(),
        processes_rooted_in(bundle)
    );
}

/// The interfaces enslaved to host bridge `bridge` (the host ends of its containers' veths).
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
