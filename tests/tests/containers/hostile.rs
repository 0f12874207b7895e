//! What a hostile image can say to the front end, and what it gets: nothing of the host.

use super::*;

impl Front {
    /// The tests' busybox rootfs as a layer tar, with `extra` files (path, contents) in it.
    pub(super) fn busybox_layer(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        let b = Bundle::busybox();
        let rootfs = b.rootfs();
        for (p, text) in extra {
            let f = rootfs.join(p.trim_start_matches('/'));
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, text).unwrap();
        }
        let o = run_cmd(
            Command::new("tar").args(["-C", rootfs.to_str().unwrap(), "-cf", "-", "."]),
            None,
        );
        assert_ok(&o, "tar the busybox rootfs");
        o.stdout
    }

    /// Import an image of `layer` with image config `config` (the `config` object) as `name`.
    pub(super) fn import_config(&self, name: &str, layer: Vec<u8>, config: Value) {
        let f = self.work.join(format!("{}.tar", name.replace(['/', ':'], "_")));
        fs::write(&f, image_archive(&[layer], serde_json::json!({"config": config}), name)).unwrap();
        assert_ok(&self.image(&["import", f.to_str().unwrap()]), "import the image");
    }
}

#[test]
fn a_bare_env_name_in_the_image_never_takes_the_hosts_value() {
    let Some(f) = Front::new() else { return };
    let layer = f.busybox_layer(&[]);
    f.import_config(
        "hostile/env:1",
        layer,
        serde_json::json!({"Env": ["WRUN_TEST_HOST_SECRET", "PATH=/bin"], "Cmd": ["env"]}),
    );
    let mut c = f.rt.command(&[
        "container",
        "--data-root",
        f.data_root(),
        "run",
        "--rm",
        "hostile/env:1",
    ]);
    c.env("WRUN_TEST_HOST_SECRET", "s3cret-of-the-host");
    let o = run_cmd(&mut c, None);
    assert_ok(&o, "run");
    assert!(!stdout(&o).contains("s3cret-of-the-host"), "{}", stdout(&o));
    // Asked for by the user with -e NAME, it is passed, as docker's.
    let mut c = f.rt.command(&[
        "container",
        "--data-root",
        f.data_root(),
        "run",
        "--rm",
        "-e",
        "WRUN_TEST_HOST_SECRET",
        "hostile/env:1",
    ]);
    c.env("WRUN_TEST_HOST_SECRET", "given-by-the-user");
    assert!(stdout(&run_cmd(&mut c, None)).contains("WRUN_TEST_HOST_SECRET=given-by-the-user"));
    f.assert_nothing_left();
}

#[test]
fn a_uid_of_minus_one_in_the_images_passwd_never_leaves_the_process_root() {
    let Some(f) = Front::new() else { return };
    let layer = f.busybox_layer(&[(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:4294967295:4294967295::/:/bin/sh\n",
    )]);
    f.import_config(
        "hostile/uid:1",
        layer,
        serde_json::json!({"Cmd": ["id", "-u"], "User": "nobody"}),
    );
    f.refused(&["hostile/uid:1"], "nobody");
    f.refused(&["-u", "4294967295", "hostile/uid:1"], "4294967295");
    f.refused(&["-u", "0:4294967295", "hostile/uid:1"], "4294967295");
}

#[test]
fn a_bad_stop_signal_a_deep_tree_and_an_escape_sequence_cannot_jam_management() {
    let Some(f) = Front::new() else { return };
    let layer = f.busybox_layer(&[]);
    f.import_config(
        "hostile/mgmt:1",
        layer,
        serde_json::json!({"StopSignal": "SIGBOGUS", "Cmd": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}),
    );
    // The bad StopSignal: a warning, and stop falls back to SIGTERM.
    let o = f.container(&["run", "-d", "--name", "jam", "hostile/mgmt:1"]);
    assert_ok(&o, "run -d");
    assert!(stderr(&o).contains("StopSignal"), "{}", stderr(&o));
    assert_ok(&f.container(&["stop", "-t", "5", "jam"]), "stop");
    assert_eq!(inspect(&f, "jam")["exit_code"], 0, "SIGTERM, trapped");
    // 1500 nested directories in its writes (past the fd limit of a removal that holds one
    // per level), and a command with a terminal escape in it.
    let o = f.container(&[
        "run",
        "--name",
        "deep",
        "hostile/mgmt:1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 1500 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo \u{1b}[31mred\u{7}",
    ]);
    assert_ok(&o, "make the deep tree");
    let ls = stdout(&f.container(&["ls", "-a"]));
    assert!(
        !ls.contains('\u{1b}') && !ls.contains('\u{7}'),
        "control characters reached the terminal: {ls:?}"
    );
    assert_ok(&f.container(&["rm", "deep", "jam"]), "rm the deep tree");
    f.assert_nothing_left();
    assert_ok(&f.image(&["rm", "hostile/mgmt:1"]), "the image is free again");
}

#[test]
fn seccomp_refuses_new_user_namespaces_and_keyrings_by_default() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:sec", &["CMD [\"sh\"]"]);
    let probe =
        "grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null && echo userns-made || echo userns-refused";
    let out = f.run_ok(&["bb:sec", "sh", "-c", probe]);
    assert!(out.contains("Seccomp:\t2") && out.contains("userns-refused"), "{out}");
    let out = f.run_ok(&["--security-opt", "seccomp=unconfined", "bb:sec", "sh", "-c", probe]);
    assert!(out.contains("Seccomp:\t0") && out.contains("userns-made"), "{out}");
    // Ordinary forks and threads still work under the clone rules.
    let out = f.run_ok(&["bb:sec", "sh", "-c", "(echo child-ran) & wait"]);
    assert_eq!(out.trim(), "child-ran");
    let out = f.run_ok(&["--privileged", "bb:sec", "grep", "Seccomp:", "/proc/self/status"]);
    assert!(out.contains("Seccomp:\t0"), "--privileged runs unfiltered: {out}");
    f.assert_nothing_left();
}

#[test]
fn a_symlinked_data_root_leaves_nothing_mounted() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:link", &["CMD [\"sh\"]"]);
    let link = f.work.join("root-link");
    std::os::unix::fs::symlink(f.data.path(), &link).unwrap();
    let l = link.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut full = vec!["container", "--data-root", l];
        full.extend_from_slice(args);
        f.rt.exec(&full)
    };
    assert_ok(
        &run(&["run", "-d", "--name", "via-link", "bb:link", "sleep", "100"]),
        "run -d via a symlink",
    );
    assert_ok(&run(&["stop", "-t", "1", "via-link"]), "stop");
    assert_ok(&run(&["start", "via-link"]), "start again");
    assert_ok(&run(&["rm", "-f", "via-link"]), "rm -f");
    f.assert_nothing_left();
}

#[test]
fn an_images_volumes_and_workdir_cannot_reach_outside_the_container() {
    let Some(f) = Front::new() else { return };
    let layer = f.busybox_layer(&[]);
    // A VOLUME that climbs out is not mounted; one that stays in is an anonymous volume of the
    // container's own directory. A relative WorkingDir is refused in one line.
    f.import_config(
        "hostile/vol:1",
        layer.clone(),
        serde_json::json!({"Volumes": {"/../../../../wrun-escape": {}, "/data": {}}, "Cmd": ["sh", "-c", "echo x > /data/f && echo ok"]}),
    );
    assert_eq!(f.run_ok(&["hostile/vol:1"]).trim(), "ok");
    assert!(
        !std::path::Path::new("/wrun-escape").exists(),
        "a directory was made on the host"
    );
    f.import_config(
        "hostile/wd:1",
        layer,
        serde_json::json!({"WorkingDir": "relative/dir", "Cmd": ["true"]}),
    );
    f.refused(&["hostile/wd:1"], "working directory");
    f.assert_nothing_left();
}
