//! The runtime as an unprivileged user: each test makes a throwaway user with a subordinate
//! id range, runs the runtime as that user (setpriv) and removes the user again. The
//! lifecycle tests are runtime-agnostic (`WRUN_TEST_RUNTIME=/usr/sbin/runc` runs them against
//! runc's rootless mode); state roots, warnings and messages are wrun's.

use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use wrun_tests::*;

#[test]
fn an_unprivileged_user_creates_starts_execs_into_and_deletes_a_container() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "100"]);
    make_rootless(&mut b, u.uid, u.gid);
    let id = unique("rl-life");
    let o = u.run(&rt, &["create", "--bundle", b.path_str(), &id]);
    assert_ok(&o, "rootless create");
    let state = |u: &RootlessUser| -> Value {
        let o = u.run(&rt, &["state", &id]);
        assert_ok(&o, "state");
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(state(&u)["status"], "created");
    // Its maps written, the created init is no longer dumpable: its /proc files are closed to
    // the user (and so to anything running as the user) until it execs.
    let init = state(&u)["pid"].as_i64().unwrap();
    let o = run_cmd(
        &mut u.command(Path::new("/bin/cat"), &[&format!("/proc/{init}/environ")]),
        None,
    );
    assert_fails(&o, "reading the created init's environ as the user");
    assert_ok(&u.run(&rt, &["start", &id]), "start");
    assert_eq!(state(&u)["status"], "running");
    let pid = state(&u)["pid"].as_i64().unwrap() as i32;
    // The init runs as the user on the host, as root in its own user namespace.
    let host_uid = fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_eq!(host_uid, u.uid, "the init's uid on the host");
    let o = u.run(
        &rt,
        &["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map; ps -o pid,comm"],
    );
    assert_ok(&o, "rootless exec");
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(map, ["0", &u.uid.to_string(), "1"], "{out}");
    assert!(
        out.contains("sleep"),
        "the exec'd process sees the container's processes: {out}"
    );
    // ps lists the container's processes, even without a cgroup of its own.
    let o = u.run(&rt, &["ps", &id]);
    assert_ok(&o, "ps");
    assert!(stdout(&o).contains(&pid.to_string()), "{}", show(&o));
    assert_ok(&u.run(&rt, &["kill", &id, "KILL"]), "kill");
    assert!(
        wait_until(Duration::from_secs(10), || state(&u)["status"] == "stopped"),
        "not stopped"
    );
    assert_ok(&u.run(&rt, &["delete", &id]), "delete");
    let o = u.run(&rt, &["state", &id]);
    assert_fails(&o, "state after delete");
    assert!(
        u.processes().is_empty(),
        "the user's processes remain: {:?}",
        u.processes()
    );
    let left = fs::read_dir(u.runtime_dir.join("state"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "state left");
}

#[test]
fn spec_rootless_writes_a_config_an_unprivileged_user_can_run() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    let b = Bundle::busybox();
    fs::remove_file(b.config_path()).unwrap();
    let dir = b.path().to_path_buf();
    u.give(&dir);
    let o = run_cmd(u.command(rt.bin(), &["spec", "--rootless"]).current_dir(&dir), None);
    assert_ok(&o, "spec --rootless");
    let mut c: Value = serde_json::from_str(&fs::read_to_string(b.config_path()).unwrap()).unwrap();
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], u.uid, "{c}");
    assert_eq!(c["linux"]["gidMappings"][0]["hostID"], u.gid, "{c}");
    c["process"]["terminal"] = false.into();
    c["process"]["args"] = serde_json::json!(["sh", "-c", "echo rootless; id -u"]);
    fs::write(b.config_path(), c.to_string()).unwrap();
    let id = unique("rl-spec");
    let o = u.run(&rt, &["run", "--bundle", b.path_str(), &id]);
    assert_ok(&o, "run of spec --rootless's config");
    assert_eq!(stdout(&o), "rootless\n0\n", "{}", show(&o));
}

#[test]
fn a_wasm_guest_runs_rootless_with_the_users_own_module_cache() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("wasm guests are wrun's");
        return;
    }
    let mut b = Bundle::wasm("hello", &["rootless"]);
    make_rootless(&mut b, u.uid, u.gid);
    for n in 0..2 {
        let id = unique("rl-wasm");
        let o = u.run(&rt, &["run", "--bundle", b.path_str(), &id]);
        assert_ok(&o, &format!("rootless wasm run {n}"));
        assert!(stdout(&o).contains("hello from wasm"), "{}", show(&o));
        assert!(stdout(&o).contains("argv[1]=rootless"), "{}", show(&o));
    }
    // The compiled module was cached under the user's data dir, owned by the user.
    let cache = u.home.join(".local/share/wrun/wasm-cache");
    let entries: Vec<_> = fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].metadata().unwrap().uid(), u.uid);
}

#[test]
fn without_root_the_state_root_is_the_users_runtime_dir_else_a_private_dir_in_tmp() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("the default state root is each runtime's own");
        return;
    }
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    make_rootless(&mut b, u.uid, u.gid);
    let id = unique("rl-root");
    // No --root: $XDG_RUNTIME_DIR/wrun.
    let mut c = u.command(rt.bin(), &["create", "--bundle", b.path_str(), &id]);
    assert_ok(&run_cmd(&mut c, None), "create without --root");
    assert!(
        u.runtime_dir.join("wrun").join(&id).is_dir(),
        "no state under XDG_RUNTIME_DIR/wrun"
    );
    assert_ok(
        &run_cmd(&mut u.command(rt.bin(), &["delete", "--force", &id]), None),
        "delete",
    );
    // Without XDG_RUNTIME_DIR: /tmp/wrun-UID, 0700 and the user's.
    let tmp_root = std::path::PathBuf::from(format!("/tmp/wrun-{}", u.uid));
    let _ = fs::remove_dir_all(&tmp_root);
    let mut c = u.command(rt.bin(), &["create", "--bundle", b.path_str(), &id]);
    c.env_remove("XDG_RUNTIME_DIR");
    let o = run_cmd(&mut c, None);
    let md = fs::metadata(&tmp_root);
    let mut d = u.command(rt.bin(), &["delete", "--force", &id]);
    d.env_remove("XDG_RUNTIME_DIR");
    let _ = run_cmd(&mut d, None);
    let _ = fs::remove_dir_all(&tmp_root);
    assert_ok(&o, "create without XDG_RUNTIME_DIR");
    let md = md.expect("/tmp/wrun-UID made");
    assert_eq!((md.uid(), md.mode() & 0o777), (u.uid, 0o700));
    // A symlink planted there, to a directory of the user's, is refused too.
    let elsewhere = u.runtime_dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::chown(&elsewhere, Some(u.uid), Some(u.gid)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &tmp_root).unwrap();
    let mut c = u.command(rt.bin(), &["create", "--bundle", b.path_str(), &id]);
    c.env_remove("XDG_RUNTIME_DIR");
    let o = run_cmd(&mut c, None);
    let _ = fs::remove_file(&tmp_root);
    assert_fails(&o, "create with a symlinked state root");
    assert!(stderr(&o).contains("not a directory of uid"), "{}", show(&o));
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    // One that another user made first is refused, and nothing is left in it.
    fs::create_dir(&tmp_root).unwrap();
    fs::set_permissions(&tmp_root, fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = u.command(rt.bin(), &["create", "--bundle", b.path_str(), &id]);
    c.env_remove("XDG_RUNTIME_DIR");
    let o = run_cmd(&mut c, None);
    let entries = fs::read_dir(&tmp_root).map(|d| d.count()).unwrap_or(0);
    let _ = fs::remove_dir_all(&tmp_root);
    assert_fails(&o, "create with a state root owned by root");
    let err = stderr(&o);
    assert!(
        err.contains("not a directory of uid") && err.contains("XDG_RUNTIME_DIR"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(entries, 0, "something was made in the planted state root");
}

#[test]
fn limits_without_a_delegated_cgroup_are_a_warning_not_a_failure() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("the warning's wording is wrun's");
        return;
    }
    let mut b = Bundle::busybox();
    b.args(&["sh", "-c", "echo ran"]);
    make_rootless(&mut b, u.uid, u.gid);
    b.with_config(|c| c["linux"]["resources"] = serde_json::json!({"memory": {"limit": 67108864}}));
    let id = unique("rl-limit");
    let o = u.run(&rt, &["run", "--bundle", b.path_str(), &id]);
    assert_ok(&o, "rootless run with a memory limit and no delegated cgroup");
    assert_eq!(stdout(&o), "ran\n");
    let err = stderr(&o);
    assert!(
        err.contains("warning") && err.contains("no cgroup is delegated") && err.contains("not applied"),
        "{err}"
    );
    // Pausing needs a cgroup: one line that says so.
    let mut b = Bundle::busybox();
    b.args(&["sleep", "100"]);
    make_rootless(&mut b, u.uid, u.gid);
    let id = unique("rl-pause");
    assert_ok(&u.run(&rt, &["create", "--bundle", b.path_str(), &id]), "create");
    let o = u.run(&rt, &["pause", &id]);
    let _ = u.run(&rt, &["delete", "--force", &id]);
    assert_fails(&o, "pause without a cgroup");
    assert!(stderr(&o).contains("has no cgroup"), "{}", show(&o));
}

#[test]
fn an_unwritable_state_root_is_one_line_naming_the_fix() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("the message is wrun's");
        return;
    }
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    make_rootless(&mut b, u.uid, u.gid);
    let root = TempDir::new("rl-ro-root");
    let id = unique("rl-ro");
    let state = root.join("state");
    let o = run_cmd(
        &mut u.command(
            rt.bin(),
            &[
                "--root",
                state.to_str().unwrap(),
                "create",
                "--bundle",
                b.path_str(),
                &id,
            ],
        ),
        None,
    );
    assert_fails(&o, "create with a state root the user cannot write");
    let err = stderr(&o);
    assert!(err.contains("not writable by uid") && err.contains("--root"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!state.exists());
    assert!(u.processes().is_empty());
}

#[test]
fn a_multi_id_mapping_goes_through_newuidmap_and_the_users_subordinate_range() {
    let Some(u) = rootless_user() else { return };
    if !newuidmap_installed() {
        skip("newuidmap/newgidmap are not installed (apt-get install uidmap)");
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    make_rootless(&mut b, u.uid, u.gid);
    let sub = u.sub_start;
    b.with_config(|c| {
        let maps = serde_json::json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": sub, "size": 65536}
        ]);
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = serde_json::json!([
            {"containerID": 0, "hostID": u.gid, "size": 1},
            {"containerID": 1, "hostID": sub, "size": 65536}
        ]);
        c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [1001]});
    });
    b.sh("id -u; id -g; id -G; cat /proc/self/uid_map");
    let id = unique("rl-multi");
    let o = u.run(&rt, &["run", "--bundle", b.path_str(), &id]);
    assert_ok(&o, "rootless run with a subordinate range");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["1000", "1000", "1000 1001"], "{out}");
    assert_eq!(lines.len(), 5, "two map lines: {out}");
    assert!(
        lines[4].split_whitespace().eq(["1", &sub.to_string(), "65536"]),
        "{out}"
    );
}

#[test]
fn mappings_the_user_may_not_have_are_refused_in_one_line_naming_the_fix() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("the messages are wrun's");
        return;
    }
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    make_rootless(&mut b, u.uid, u.gid);
    // A range outside the user's /etc/subuid entry (root's own ids).
    b.with_config(|c| {
        c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 0, "size": 1000}]);
    });
    let check = |o: &Output, want: &[&str], what: &str| {
        assert_fails(o, what);
        let err = stderr(o);
        for w in want {
            assert!(err.contains(w), "{what}: {w:?} not in {err}");
        }
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(u.processes().is_empty());
        assert_eq!(
            fs::read_dir(u.runtime_dir.join("state"))
                .map(|d| d.count())
                .unwrap_or(0),
            0,
            "state left"
        );
    };
    if newuidmap_installed() {
        let id = unique("rl-bad");
        let o = u.run(&rt, &["run", "--bundle", b.path_str(), &id]);
        check(
            &o,
            &["newuidmap refused", "/etc/subuid", &u.name],
            "a range not in /etc/subuid",
        );
    }
    // newuidmap missing: hidden in a private mount namespace of the test.
    let id = unique("rl-nohelper");
    let script =
        "for f in /usr/bin/newuidmap /usr/bin/newgidmap; do [ -e $f ] && mount --bind /dev/null $f; done; exec \"$@\"";
    let mut c = as_root_first(
        &["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"],
        u.runtime(&rt, &["run", "--bundle", b.path_str(), &id]),
    );
    let o = run_cmd(&mut c, None);
    check(&o, &["newuidmap", "apt-get install uidmap"], "newuidmap missing");
}

/// A cgroup-v2 subtree delegated to a user as systemd delegates one (the directory and its
/// `cgroup.procs`, `cgroup.subtree_control` and `cgroup.threads` chowned to the user), with
/// a leaf the user's shell is put in; removed on drop.
struct Delegated {
    dir: std::path::PathBuf,
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Deepest first; every process in it was the test's and is gone by now.
        let mut dirs: Vec<std::path::PathBuf> = walk_dirs(&self.dir);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = fs::remove_dir(&d);
        }
    }
}

fn walk_dirs(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![d.to_path_buf()];
    for e in fs::read_dir(d).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_dirs(&e.path()));
        }
    }
    out
}

/// `inner` (a command as the user, through setpriv), run by `prefix` (argv, as root), which
/// does what only root may and then execs it; `inner`'s environment is kept.
fn as_root_first(prefix: &[&str], inner: std::process::Command) -> std::process::Command {
    let mut c = std::process::Command::new(prefix[0]);
    c.args(&prefix[1..])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

/// `inner`, started by a root shell that first moves itself into `cgroup`: a user may move
/// processes only between cgroups below one it owns.
fn in_cgroup(inner: std::process::Command, cgroup: &Path) -> std::process::Command {
    let script = "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"";
    as_root_first(&["sh", "-c", script, cgroup.to_str().unwrap()], inner)
}

#[test]
fn a_memory_limit_applies_in_a_cgroup_v2_subtree_delegated_to_the_user() {
    let controllers = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        skip("needs a cgroup v2 host with the memory controller (tests/v2 runs it in a UML guest)");
        return;
    }
    let dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/{}", unique("wrun-test-deleg")));
    fs::create_dir(&dir).unwrap();
    let deleg = Delegated { dir: dir.clone() };
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    fs::write(deleg.dir.join("cgroup.subtree_control"), "+memory +pids").unwrap();
    let shell = deleg.dir.join("shell");
    fs::create_dir(&shell).unwrap();
    for p in [
        deleg.dir.clone(),
        deleg.dir.join("cgroup.procs"),
        deleg.dir.join("cgroup.subtree_control"),
        deleg.dir.join("cgroup.threads"),
        shell.clone(),
        shell.join("cgroup.procs"),
    ] {
        std::os::unix::fs::chown(&p, Some(u.uid), Some(u.gid)).unwrap();
    }
    let mut b = Bundle::busybox();
    make_rootless(&mut b, u.uid, u.gid);
    b.with_config(|c| c["linux"]["resources"] = serde_json::json!({"memory": {"limit": 67108864}}));
    // The limit, read back inside (the container's cgroup is bound at /sys/fs/cgroup).
    b.sh("cat /sys/fs/cgroup/memory.max");
    let id = unique("rl-v2");
    let o = run_cmd(
        &mut in_cgroup(u.runtime(&rt, &["run", "--bundle", b.path_str(), &id]), &shell),
        None,
    );
    assert_ok(&o, "rootless run in a delegated subtree");
    assert_eq!(stdout(&o).trim(), "67108864", "{}", show(&o));
    assert!(!stderr(&o).contains("warning"), "{}", show(&o));
    // Past it, the kernel kills the container: 137.
    b.args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]);
    let id = unique("rl-v2-oom");
    let o = run_cmd(
        &mut in_cgroup(u.runtime(&rt, &["run", "--bundle", b.path_str(), &id]), &shell),
        None,
    );
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
    // The containers' cgroups went with them; only the placement directory stays.
    let left: Vec<_> = walk_dirs(&deleg.dir)
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rl-v2")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn features_say_what_works_without_root_on_this_hosts_cgroup_layout() {
    let Some(u) = rootless_user() else { return };
    let rt = Runtime::new();
    if rt.kind() != RuntimeKind::Wrun {
        skip("the annotations are wrun's");
        return;
    }
    let o = u.run(&rt, &["features"]);
    assert_ok(&o, "features as a user");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = &v["annotations"];
    assert_eq!(a["io.github.wrun.rootless"], "true", "{a}");
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cg = a["io.github.wrun.rootless.cgroups"].as_str().unwrap_or_default();
    assert!(cg.starts_with(if v2 { "delegated" } else { "none" }), "{cg}");
    let maps = a["io.github.wrun.rootless.multiIdMappings"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(maps.starts_with("newuidmap"), newuidmap_installed(), "{maps}");
    let net = a["io.github.wrun.rootless.network"].as_str().unwrap_or_default();
    let pasta = Path::new("/usr/bin/pasta").exists()
        && fs::metadata("/dev/net/tun").is_ok_and(|m| m.permissions().mode() & 0o006 == 0o006);
    assert_eq!(net.starts_with("pasta"), pasta, "{net}");
    assert!(net.contains("bridge networks need root"), "{net}");
    assert!(
        a["io.github.wrun.rootless.frontEnd"]
            .as_str()
            .is_some_and(|f| f.contains("userxattr")),
        "{a}"
    );
}
