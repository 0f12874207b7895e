//! `wrun container run IMAGE` and its management verbs, end to end: images imported into a
//! per-test data root, containers run in the foreground, and every flag observed from inside
//! the container (`/proc/self/status`, cgroup files, `ulimit`, `id`, mounts). Bad input must be
//! one line, docker's exit code 125, and leave nothing: no container record, mount, network
//! namespace, cgroup or image hold.

mod build;
mod cp;
mod detached;
mod flags;
mod health;
mod hostile;
mod network;
mod pull;
mod system;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use wrun_tests::*;

/// One test's data root (images and containers), driven through `wrun ... --data-root`.
struct Front {
    rt: Runtime,
    data: TempDir,
    work: TempDir,
}

impl Front {
    /// None (with the skip line) when the runtime under test has no front end.
    fn new() -> Option<Front> {
        let rt = Runtime::new();
        if rt.kind() != RuntimeKind::Wrun {
            skip("`container` is wrun's own command");
            return None;
        }
        Some(Front {
            rt,
            data: TempDir::new("front"),
            work: TempDir::new("front-work"),
        })
    }

    fn data_root(&self) -> &str {
        self.data.path().to_str().unwrap()
    }

    fn image(&self, args: &[&str]) -> Output {
        let mut full = vec!["image", "--data-root", self.data_root()];
        full.extend_from_slice(args);
        self.rt.exec(&full)
    }

    fn container(&self, args: &[&str]) -> Output {
        let mut full = vec!["container", "--data-root", self.data_root()];
        full.extend_from_slice(args);
        self.rt.exec(&full)
    }

    fn network(&self, args: &[&str]) -> Output {
        let mut full = vec!["network", "--data-root", self.data_root()];
        full.extend_from_slice(args);
        self.rt.exec(&full)
    }

    /// `wrun container ARGS` with `input` on its stdin.
    fn container_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut full = vec!["container", "--data-root", self.data_root()];
        full.extend_from_slice(args);
        self.rt.exec_stdin(&full, input)
    }

    /// `container run --rm ARGS`: its stdout; it must exit 0.
    fn run_ok(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        let o = self.container(&full);
        assert_ok(&o, &format!("wrun container run {}", full.join(" ")));
        stdout(&o)
    }

    /// A `container run` that must fail before its process runs: exit 125, one line naming
    /// `want`, and nothing left of it.
    #[track_caller]
    fn refused(&self, args: &[&str], want: &str) -> String {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        let o = self.container(&full);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "wrun container run {}: {e}", full.join(" "));
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        assert!(e.contains(want), "{want:?} not in {e}");
        self.assert_nothing_left();
        e
    }

    /// `rm -f` every container of the data root (what a failed test left running).
    fn remove_all_containers(&self) {
        let o = self.container(&["ls", "-aq", "--no-trunc"]);
        for id in stdout(&o).split_whitespace() {
            let _ = self.container(&["rm", "-f", id]);
        }
    }

    /// No container, hold, mount or network namespace is left under the data root.
    #[track_caller]
    fn assert_nothing_left(&self) {
        let dirs: Vec<String> = fs::read_dir(self.data.join("containers"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(dirs, Vec::<String>::new(), "container directories left");
        let holds: Vec<_> = fs::read_dir(self.data.join("holds"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(holds.is_empty(), "image holds left: {holds:?}");
        let mounts: Vec<PathBuf> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(self.data.path()))
            .collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        let live: Vec<_> = fs::read_dir(self.data.join("runtime"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(live.is_empty(), "runtime state left: {live:?}");
        let builds: Vec<_> = fs::read_dir(self.data.join("build"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(builds.is_empty(), "build directories left: {builds:?}");
    }

    /// Import the tests' busybox rootfs, with a user `app` (uid 1000, in group `wheel`), as
    /// `name`, with `changes` (`--change` lines).
    fn import_busybox(&self, name: &str, changes: &[&str]) {
        let mut b = Bundle::busybox();
        let rootfs = b.rootfs();
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\nwheel:x:10:app\n").unwrap();
        fs::create_dir_all(rootfs.join("home/app")).unwrap();
        b.sh("true");
        let tar = self.work.join(format!("{}.tar", name.replace(['/', ':'], "_")));
        let o = run_cmd(
            Command::new("tar").args(["-C", rootfs.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."]),
            None,
        );
        assert_ok(&o, "tar the busybox rootfs");
        let mut args = vec!["import", tar.to_str().unwrap(), "--name", name];
        for c in changes {
            args.extend_from_slice(&["--change", c]);
        }
        assert_ok(&self.image(&args), "import busybox");
    }
}

impl Drop for Front {
    /// A test that failed half-way must not leave its containers running, or their networks'
    /// addresses and rules on the host, once its data root is gone.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.remove_all_containers();
        }
    }
}

/// The record of container `name` (`container inspect`).
fn inspect(f: &Front, name: &str) -> Value {
    let o = f.container(&["inspect", name]);
    assert_ok(&o, "container inspect");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v[0].clone()
}

#[test]
fn the_config_comes_from_the_image_and_the_flags_as_dockers_does() {
    let Some(f) = Front::new() else { return };
    f.import_busybox(
        "wrun.test/app:1",
        &[
            "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
            "CMD [\"echo from-cmd $GREETING\"]",
            "ENV GREETING=hello",
            "ENV KEEP=image",
            "WORKDIR /home",
        ],
    );
    // The image's ENTRYPOINT + CMD, ENV and WORKDIR.
    assert_eq!(f.run_ok(&["wrun.test/app:1"]).trim(), "from-cmd hello");
    // COMMAND replaces CMD; -e replaces and adds; -w; HOSTNAME is the short id and the
    // hostname; /etc/hosts names it.
    let out = f.run_ok(&[
        "-e",
        "GREETING=flag",
        "-e",
        "EXTRA=1",
        "-w",
        "/tmp",
        "wrun.test/app:1",
        "echo $GREETING $KEEP $EXTRA; pwd; hostname; echo $HOSTNAME; tail -n1 /etc/hosts",
    ]);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "flag image 1", "{out}");
    assert_eq!(l[1], "/tmp");
    assert_eq!(l[2].len(), 12, "the hostname is the short id: {out}");
    assert_eq!(l[2], l[3]);
    assert!(l[4].ends_with(l[2]), "{out}");
    // --entrypoint drops the image's CMD.
    assert_eq!(
        f.run_ok(&["--entrypoint", "echo", "wrun.test/app:1", "plain"]).trim(),
        "plain"
    );
    // -u by name: uid, primary and supplementary groups from the image; HOME from passwd.
    let out = f.run_ok(&["-u", "app", "wrun.test/app:1", "id; echo $HOME"]);
    assert_eq!(
        out.lines().next().unwrap(),
        "uid=1000(app) gid=1000(app) groups=10(wheel)",
        "{out}"
    );
    assert_eq!(out.lines().nth(1).unwrap(), "/home/app");
    assert_eq!(
        f.run_ok(&["-u", "4242:77", "wrun.test/app:1", "id -u; id -g"]).trim(),
        "4242\n77"
    );
    // docker's default capability set (bounding a80425fb); with --network none, loopback up
    // and no other interface.
    let out = f.run_ok(&[
        "--network",
        "none",
        "wrun.test/app:1",
        "grep CapBnd /proc/self/status; ip -o link | wc -l; ip -o link",
    ]);
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(
        out.lines().nth(1) == Some("1") && out.contains("lo:") && out.contains("UP"),
        "{out}"
    );
    // docker's default network: the bridge (wrun0, 10.90.0.0/16), an address and a route out.
    let out = f.run_ok(&["wrun.test/app:1", "ip -o -4 addr show eth0; ip route"]);
    assert!(
        out.contains("inet 10.90.") && out.contains("default via 10.90.0.1"),
        "{out}"
    );
    // The exit code is the container's.
    let o = f.container(&["run", "--rm", "wrun.test/app:1", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    // No -i: stdin is /dev/null; -i: it is ours.
    let o = f.container_stdin(&["run", "--rm", "wrun.test/app:1", "cat"], b"typed\n");
    assert_eq!(stdout(&o), "");
    let o = f.container_stdin(&["run", "--rm", "-i", "wrun.test/app:1", "cat"], b"typed\n");
    assert_eq!(stdout(&o), "typed\n");
    f.assert_nothing_left();
}

#[test]
fn a_kept_container_is_listed_inspected_holds_its_image_and_is_removed() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:kept", &["CMD [\"sh\"]"]);
    let cid = f.work.join("cid");
    let o = f.container(&[
        "run",
        "--name",
        "keeper",
        "--label",
        "team=core",
        "--cidfile",
        cid.to_str().unwrap(),
        "bb:kept",
        "sh",
        "-c",
        "echo changed > /etc/motd; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let id = fs::read_to_string(&cid).unwrap();
    assert_eq!(id.len(), 64);
    // Listed with -a only (it is not running), with docker's columns and status.
    let ls = stdout(&f.container(&["ls"]));
    assert!(!ls.contains("keeper"), "{ls}");
    let ls = stdout(&f.container(&["ls", "-a"]));
    let row = ls
        .lines()
        .find(|l| l.ends_with("keeper"))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(
        row.starts_with(&id[..12]) && row.contains("bb:kept") && row.contains("Exited (3)"),
        "{ls}"
    );
    assert!(ls.starts_with("CONTAINER ID"), "{ls}");
    assert_eq!(stdout(&f.container(&["ls", "-aq"])).trim(), &id[..12]);
    let v = inspect(&f, "keeper");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["labels"]["team"], "core");
    assert_eq!(v["config"]["process"]["args"][2], "echo changed > /etc/motd; exit 3");
    assert_eq!(inspect(&f, &id[..8])["name"], "keeper", "an id prefix names it");
    // Its writes are kept, unmounted.
    let upper = f.data.join("containers").join(&id).join("upper/etc/motd");
    assert_eq!(fs::read_to_string(&upper).unwrap(), "changed\n");
    assert!(
        !mount_points().iter().any(|m| m.starts_with(f.data.path())),
        "unmounted once it exited"
    );
    // The name is taken; the image is held.
    let e = f.refused_keeping(&["--name", "keeper", "bb:kept", "true"], "already in use");
    assert!(e.contains(&id[..12]), "{e}");
    let o = f.image(&["rm", "bb:kept"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("in use by container keeper"), "{}", stderr(&o));
    // rm removes it all; then the image goes.
    let o = f.container(&["rm", "keeper"]);
    assert_ok(&o, "container rm");
    assert_eq!(stdout(&o).trim(), "keeper");
    f.assert_nothing_left();
    let o = f.container(&["rm", "keeper"]);
    assert!(
        !o.status.success() && stderr(&o).contains("no such container"),
        "{}",
        stderr(&o)
    );
    assert_ok(&f.image(&["rm", "bb:kept"]), "image rm once the container is gone");
}

impl Front {
    /// A refusal while other containers exist: exit 125, one line, and the containers that
    /// were there are all that is there.
    #[track_caller]
    fn refused_keeping(&self, args: &[&str], want: &str) -> String {
        let before = fs::read_dir(self.data.join("containers")).unwrap().count();
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        let o = self.container(&full);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{e}");
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        assert!(e.contains(want), "{want:?} not in {e}");
        assert_eq!(fs::read_dir(self.data.join("containers")).unwrap().count(), before);
        e
    }
}

#[test]
fn bad_input_is_one_line_exit_125_and_leaves_nothing() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:bad", &["CMD [\"sh\"]"]);
    f.refused(&["--pull", "never", "wrun.test/absent:1"], "not in the store");
    f.refused(&["--pull", "never", "Bad:Ref"], "Bad:Ref");
    f.refused(&["-u", "nobody-here", "bb:bad", "true"], "nobody-here");
    f.refused(&["-u", "app:nogroup", "bb:bad", "true"], "nogroup");
    f.refused(&["-v", "/no/such/host/dir:/d", "bb:bad", "true"], "/no/such/host/dir");
    f.refused(&["-v", "/tmp:relative", "bb:bad", "true"], "-v");
    f.refused(
        &["--network", "no-such-net", "bb:bad", "true"],
        "network no-such-net: no such network",
    );
    f.refused(&["--ulimit", "nofile=10:5", "bb:bad", "true"], "--ulimit");
    f.refused(&["--cap-add", "WIZARDRY", "bb:bad", "true"], "--cap-add");
    f.refused(&["-m", "1k", "bb:bad", "true"], "-m");
    f.refused(&["--storage-opt", "size=1G", "bb:bad", "true"], "--storage-opt");
    f.refused(&["--security-opt", "seccomp=/x.json", "bb:bad", "true"], "seccomp");
    f.refused(&["--name=-x", "bb:bad", "true"], "--name");
    f.refused(&["--no-such-flag", "bb:bad", "true"], "--no-such-flag");
    f.refused(&["-w", "relative", "bb:bad", "true"], "-w");
    f.refused(&["--entrypoint", "", "bb:bad"], "no command");
    f.refused(&["--restart", "always", "bb:bad", "true"], "needs a detached container");
    // A command that is not there: docker's 127, and the container stays (created), as
    // docker's does.
    let o = f.container(&["run", "--rm", "bb:bad", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-command"));
    f.assert_nothing_left();
}

#[test]
fn a_wasm_image_runs_through_the_same_command() {
    let Some(f) = Front::new() else { return };
    let module = fs::read(wasm_app("hello")).expect("make wasm-apps builds hello.wasm");
    let art = f.work.join("wasm.tar");
    fs::write(&art, wasm_artifact(&module, "wrun.test/hello-wasm:1")).unwrap();
    assert_ok(&f.image(&["import", art.to_str().unwrap()]), "import the wasm artifact");
    // No Cmd: the module is the command; arguments follow it.
    let out = f.run_ok(&["-e", "GREETING=front", "--pids-limit", "10", "wrun.test/hello-wasm:1"]);
    assert!(out.lines().any(|l| l == "hello from wasm"), "{out}");
    assert!(out.lines().any(|l| l == "GREETING=front"), "{out}");
    let out = f.run_ok(&["wrun.test/hello-wasm:1", "/hello.wasm", "an-arg"]);
    assert!(out.lines().any(|l| l == "argv[1]=an-arg"), "{out}");
    f.assert_nothing_left();
}

/// CVE-2019-5736 through the front end: a container that sees `wrun container run` (here
/// with the host's pid namespace and CAP_SYS_PTRACE, the most a user can give it) reaches
/// only a sealed, read-only view of the runtime's binary, never the host's file.
#[test]
fn container_run_runs_from_a_sealed_binary_the_container_cannot_write() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:seal", &["CMD [\"sh\"]"]);
    let bin = fs::canonicalize(f.rt.bin()).unwrap();
    let md = fs::metadata(&bin).unwrap();
    use std::os::unix::fs::MetadataExt;
    let host = format!("{}:{}", md.dev(), md.ino());
    let out = f.run_ok(&[
        "--pid",
        "host",
        "--cap-add",
        "SYS_PTRACE",
        "bb:seal",
        "sh",
        "-c",
        "stat -L -c %d:%i /proc/$PPID/exe; (exec 3>>/proc/$PPID/exe) 2>/dev/null && echo WRITABLE; true",
    ]);
    let seen = out.lines().next().unwrap_or("");
    assert!(
        !seen.is_empty() && seen != host,
        "the container reached the host binary {} ({host}): {out}",
        bin.display()
    );
    assert!(!out.contains("WRITABLE"), "{out}");
}

/// The same for a detached container: its parent, once the steps that started it have
/// exited, is its monitor, and what the container reaches through `/proc/PPID/exe` is a sealed
/// view of `wrun-monitor`, never the host's file.
#[test]
fn a_detached_containers_monitor_runs_from_a_sealed_binary_too() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:seal", &["CMD [\"sh\"]"]);
    let bin = fs::canonicalize(f.rt.bin()).unwrap().with_file_name("wrun-monitor");
    let md = fs::metadata(&bin).unwrap();
    use std::os::unix::fs::MetadataExt;
    let host = format!("{}:{}", md.dev(), md.ino());
    let script = "sleep 1; p=$(awk '/^PPid/ {print $2}' /proc/$$/status); cat /proc/$p/comm; \
                  stat -L -c %d:%i /proc/$p/exe; (exec 3>>/proc/$p/exe) 2>/dev/null && echo WRITABLE; true";
    let o = f.container(&[
        "run",
        "-d",
        "--name",
        "sealmon",
        "--pid",
        "host",
        "--cap-add",
        "SYS_PTRACE",
        "bb:seal",
        "sh",
        "-c",
        script,
    ]);
    assert_ok(&o, "run -d");
    assert_ok(&f.container(&["wait", "sealmon"]), "wait");
    let out = stdout(&f.container(&["logs", "sealmon"]));
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("wrun-monitor"),
        "the container's parent is its monitor: {out}"
    );
    let seen = lines.next().unwrap_or("");
    assert!(
        !seen.is_empty() && seen != host,
        "the container reached the host's {} ({host}): {out}",
        bin.display()
    );
    assert!(!out.contains("WRITABLE"), "{out}");
    assert_ok(&f.container(&["rm", "sealmon"]), "rm");
}
