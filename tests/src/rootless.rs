//! A throwaway unprivileged user for the rootless tests: made with `useradd` (with a
//! subordinate id range), given a private `XDG_RUNTIME_DIR`, and on drop its processes (every
//! one of them was started by the test) killed by PID and the user removed with `userdel -r`.

use super::*;

/// `useradd`/`userdel` lock /etc/passwd and fail rather than wait when another holds it.
static ACCOUNTS: Mutex<()> = Mutex::new(());

pub struct RootlessUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// The user's `XDG_RUNTIME_DIR` (0700, owned by the user): the default state root is
    /// `<this>/<runtime name>`.
    pub runtime_dir: PathBuf,
    /// The first id of the user's range in /etc/subuid and /etc/subgid (65536 ids).
    pub sub_start: u32,
}

/// Why rootless tests cannot run on this host, if they cannot.
pub fn rootless_unsupported() -> Option<String> {
    for tool in ["useradd", "userdel", "usermod", "setpriv"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        if !found {
            return Some(format!("{tool} is not installed (passwd, util-linux)"));
        }
    }
    for (file, bad) in [
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
    ] {
        if fs::read_to_string(file).is_ok_and(|v| v.trim() == bad) {
            return Some(format!("{file} is {bad}: unprivileged user namespaces are disabled"));
        }
    }
    None
}

/// A throwaway user, or None with the skip reason printed.
pub fn rootless_user() -> Option<RootlessUser> {
    if let Some(why) = rootless_unsupported() {
        skip(&why);
        return None;
    }
    Some(RootlessUser::create())
}

/// Whether Debian's uidmap (newuidmap, newgidmap) is installed.
pub fn newuidmap_installed() -> bool {
    Path::new("/usr/bin/newuidmap").exists() && Path::new("/usr/bin/newgidmap").exists()
}

fn account_cmd(args: &[&str]) -> Output {
    let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = run_cmd(Command::new(args[0]).args(&args[1..]), None);
        // Another tool (outside this process) may hold the lock: wait for it.
        if o.status.success() || !stderr(&o).contains("lock") || Instant::now() > deadline {
            return o;
        }
        sleep(Duration::from_millis(200));
    }
}

impl RootlessUser {
    /// A new user with a subordinate range of its own (a free one past every range in
    /// /etc/subuid and /etc/subgid).
    pub fn create() -> RootlessUser {
        let name = format!(
            "wrt{}x{}",
            std::process::id() % 100000,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let sub_start = {
            let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
            let mut top = 200_000u32;
            for f in ["/etc/subuid", "/etc/subgid"] {
                for l in fs::read_to_string(f).unwrap_or_default().lines() {
                    let v: Vec<&str> = l.split(':').collect();
                    if let (Some(s), Some(n)) = (v.get(1), v.get(2)) {
                        if let (Ok(s), Ok(n)) = (s.parse::<u32>(), n.parse::<u32>()) {
                            top = top.max(s.saturating_add(n));
                        }
                    }
                }
            }
            // Leave room for other users made concurrently by this process.
            top + 65536 * (COUNTER.fetch_add(1, Ordering::SeqCst) as u32 % 64)
        };
        let range = format!("{}-{}", sub_start, sub_start + 65535);
        let o = account_cmd(&["useradd", "--create-home", "--shell", "/bin/sh", &name]);
        assert_ok(&o, &format!("useradd {name}"));
        // Exactly the range this test expects, whatever useradd gave by default.
        let _ = account_cmd(&[
            "usermod",
            "--del-subuids",
            "1-4294967294",
            "--del-subgids",
            "1-4294967294",
            &name,
        ]);
        let o = account_cmd(&["usermod", "--add-subuids", &range, "--add-subgids", &range, &name]);
        assert_ok(&o, &format!("usermod --add-subuids {range} {name}"));
        let id = |flag: &str| -> u32 {
            stdout(&run_cmd(Command::new("id").args([flag, &name]), None))
                .trim()
                .parse()
                .expect("id of the new user")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let home = PathBuf::from(format!("/home/{name}"));
        let runtime_dir = std::env::temp_dir().join(format!("wrun-test-xdg-{name}"));
        fs::create_dir(&runtime_dir).expect("mkdir XDG_RUNTIME_DIR");
        fs::set_permissions(&runtime_dir, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&runtime_dir, Some(uid), Some(gid)).unwrap();
        RootlessUser {
            name,
            uid,
            gid,
            home,
            runtime_dir,
            sub_start,
        }
    }

    /// `program args...` as this user (setpriv: its uid and gid, no supplementary groups),
    /// with a clean environment: HOME, PATH and XDG_RUNTIME_DIR only.
    pub fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(program)
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .current_dir("/");
        c
    }

    /// `runtime --root <XDG_RUNTIME_DIR>/state args...` as this user.
    pub fn runtime(&self, rt: &Runtime, args: &[&str]) -> Command {
        let root = self.runtime_dir.join("state");
        let mut all = vec!["--root", root.to_str().unwrap()];
        all.extend_from_slice(args);
        self.command(rt.bin(), &all)
    }

    pub fn run(&self, rt: &Runtime, args: &[&str]) -> Output {
        run_cmd(&mut self.runtime(rt, args), None)
    }

    /// Takes the user's subordinate ranges away (/etc/subuid and /etc/subgid).
    pub fn drop_ranges(&self) {
        let r = format!("{}-{}", self.sub_start, self.sub_start + 65535);
        let o = account_cmd(&["usermod", "--del-subuids", &r, "--del-subgids", &r, &self.name]);
        assert_ok(&o, "usermod --del-subuids");
    }

    /// Makes `path` (recursively) the user's.
    pub fn give(&self, path: &Path) {
        let o = run_cmd(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", self.uid, self.gid))
                .arg(path),
            None,
        );
        assert_ok(&o, "chown");
    }

    /// The PIDs of every live process running as this user (a zombie is dead: its exit
    /// status waits for whoever it was reparented to).
    pub fn processes(&self) -> Vec<i32> {
        fs::read_dir("/proc")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|p| fs::metadata(format!("/proc/{p}")).is_ok_and(|m| m.uid() == self.uid))
                    .filter(|p| pid_alive(*p as i64))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for RootlessUser {
    fn drop(&mut self) {
        // Every process of this user was started by the test that made it.
        for _ in 0..50 {
            let left = self.processes();
            if left.is_empty() {
                break;
            }
            for p in left {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            sleep(Duration::from_millis(20));
        }
        detach_mounts_under(&self.runtime_dir);
        let _ = fs::remove_dir_all(&self.runtime_dir);
        let o = account_cmd(&["userdel", "--remove", &self.name]);
        if !o.status.success() {
            eprintln!("warning: userdel {}: {}", self.name, stderr(&o).trim());
        }
    }
}

/// Turns a bundle's config into a rootless one, as `runc spec --rootless` makes it: a user
/// namespace mapping `uid`/`gid` to root, no network namespace, the host's /sys bound, no
/// uid=/gid= mount options, no resources.
pub fn make_rootless(b: &mut Bundle, uid: u32, gid: u32) {
    b.with_config(|c| {
        let l = &mut c["linux"];
        let mut ns: Vec<Value> = l["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n["type"] != "network" && n["type"] != "user")
            .collect();
        ns.push(json!({"type": "user"}));
        l["namespaces"] = Value::Array(ns);
        l["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        l["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        if let Some(o) = l.as_object_mut() {
            o.remove("resources");
        }
        let mounts: Vec<Value> = c["mounts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut m| {
                if m["destination"] == "/sys" {
                    return json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                }
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|o| {
                        !o.as_str()
                            .is_some_and(|o| o.starts_with("uid=") || o.starts_with("gid="))
                    });
                }
                m
            })
            .collect();
        c["mounts"] = Value::Array(mounts);
    });
}
