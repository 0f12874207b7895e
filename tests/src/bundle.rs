//! Bundles: a busybox rootfs (symlinked applets), the default config.json, the wasm guests
//! of wasm-apps/, and the `Bundle` builder the tests edit configs with.

use super::*;

// ---------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        // The rootfs holds busybox alone: Debian's dynamically linked `busybox` package would
        // make every exec fail for want of its ELF interpreter.
        let ldd = Command::new("ldd").arg("/usr/bin/busybox").env("LC_ALL", "C").output();
        let ldd = ldd.map(|o| show(&o)).unwrap_or_default();
        assert!(
            ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
            "/usr/bin/busybox is dynamically linked: apt-get install busybox-static (ldd says: {ldd})"
        );
        let o = Command::new("/usr/bin/busybox")
            .arg("--list")
            .output()
            .expect("/usr/bin/busybox --list (is busybox-static installed?)");
        assert!(o.status.success(), "busybox --list failed");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .collect()
    })
}

/// The built guest `name` from `wasm-apps/` (`hello-p2` is the wasip2 component); built by
/// `make wasm-apps` (which `make test` runs).
pub fn wasm_app(name: &str) -> PathBuf {
    // Modules are built for wasip1, components (hello-p2, tcp-fetch) for wasip2.
    let target = if name.ends_with("-p2") || name == "tcp-fetch" {
        "wasm32-wasip2"
    } else {
        "wasm32-wasip1"
    };
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wasm-apps/target")
        .join(target)
        .join("release")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: build the guests first (make wasm-apps, or bash wasm-apps/build.sh)",
        p.display()
    );
    p
}

/// The default config: what `runc spec` writes, but with no terminal, a
/// fixed hostname, no `linux.resources` and ociVersion 1.0.2.
pub fn default_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "wrun-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in a fresh temp dir: a busybox rootfs plus config.json.
pub struct Bundle {
    dir: TempDir,
    config: Value,
}

impl Bundle {
    /// A bundle with a busybox rootfs and the [`default_config`].
    pub fn busybox() -> Bundle {
        let dir = TempDir::new("bundle");
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
        }
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))
            .expect("copy /usr/bin/busybox (is busybox-static installed?)");
        for applet in busybox_applets() {
            if applet == "busybox" {
                continue;
            }
            // Like `busybox --install -s /bin` run inside the rootfs.
            let _ = std::os::unix::fs::symlink("/bin/busybox", rootfs.join("bin").join(applet));
        }
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
        )
        .unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        let b = Bundle {
            dir,
            config: default_config(),
        };
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Edit the in-memory config; call [`Bundle::save`] afterwards.
    pub fn config_mut(&mut self) -> &mut Value {
        &mut self.config
    }

    /// Writes the in-memory config to config.json.
    pub fn save(&self) {
        fs::write(self.config_path(), serde_json::to_vec_pretty(&self.config).unwrap()).expect("write config.json");
    }

    /// Edits the config and saves it.
    pub fn with_config(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.save();
        self
    }

    /// Copies a host file into the rootfs at `inside` (absolute, as the container sees it).
    pub fn put_file(&mut self, host: &Path, inside: &str) -> &mut Self {
        let dst = self.rootfs().join(inside.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).expect("mkdir in rootfs");
        fs::copy(host, &dst).unwrap_or_else(|e| panic!("copy {} into the rootfs: {e}", host.display()));
        self
    }

    /// Writes `bytes` into the rootfs at `inside`.
    pub fn write_file(&mut self, inside: &str, bytes: &[u8]) -> &mut Self {
        let dst = self.rootfs().join(inside.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).expect("mkdir in rootfs");
        fs::write(&dst, bytes).expect("write into the rootfs");
        self
    }

    /// A busybox bundle that runs the wasm guest `app` (see [`wasm_app`]) from
    /// `/app/<app>.wasm` with `args` after the program name.
    pub fn wasm(app: &str, args: &[&str]) -> Bundle {
        let mut b = Bundle::busybox();
        let inside = format!("/app/{app}.wasm");
        b.put_file(&wasm_app(app), &inside);
        let mut all = vec![inside.as_str()];
        all.extend_from_slice(args);
        b.args(&all);
        b
    }

    /// Sets an annotation and saves.
    pub fn annotate(&mut self, key: &str, value: &str) -> &mut Self {
        self.with_config(|c| {
            if !c["annotations"].is_object() {
                c["annotations"] = json!({});
            }
            c["annotations"][key] = json!(value);
        })
    }

    /// Sets process.args and saves.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.with_config(|c| c["process"]["args"] = json!(args))
    }

    /// Sets process.args to `sh -c SCRIPT` and saves.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Appends a mount and saves.
    pub fn add_mount(&mut self, mount: Value) -> &mut Self {
        self.with_config(|c| c["mounts"].as_array_mut().unwrap().push(mount))
    }

    /// Appends a bind mount of `src` at `dst` with extra options.
    pub fn bind(&mut self, src: &Path, dst: &str, extra: &[&str]) -> &mut Self {
        let mut opts = vec!["rbind"];
        opts.extend_from_slice(extra);
        self.add_mount(json!({
            "destination": dst,
            "type": "bind",
            "source": src.to_str().unwrap(),
            "options": opts,
        }))
    }

    /// Removes the namespace of that type from linux.namespaces and saves.
    pub fn remove_namespace(&mut self, ty: &str) -> &mut Self {
        self.with_config(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != ty)
        })
    }

    /// Sets (or adds) the namespace entry of that type and saves.
    pub fn set_namespace(&mut self, ns: Value) -> &mut Self {
        let ty = ns["type"].clone();
        self.with_config(|c| {
            let list = c["linux"]["namespaces"].as_array_mut().unwrap();
            list.retain(|n| n["type"] != ty);
            list.push(ns);
        })
    }
}
