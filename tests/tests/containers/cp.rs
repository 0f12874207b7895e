//! `container cp`: files in and out of running and stopped containers, and what a hostile
//! container's tree can do to the copy (symlinks to host paths, `..`, a setuid program, a
//! symlink swapped in while copying, the CVE-2018-15664 race): never reach a host path.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::detached::detach;
use super::*;

impl Front {
    fn cp(&self, args: &[&str]) -> Output {
        let mut full = vec!["cp"];
        full.extend_from_slice(args);
        self.container(&full)
    }
}

#[test]
fn cp_copies_files_and_trees_both_ways_as_docker() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:cp", &[]);
    detach(
        &f,
        &[
            "--name", "c", "--network", "none", "bb:cp", "sh", "-c",
            "mkdir -p /data/sub && echo hello > /data/sub/f && ln -s sub/f /data/link && chown 1000:1000 /data/sub/f; exec sleep 60",
        ],
    );
    wrun_tests::wait_until(std::time::Duration::from_secs(10), || {
        f.container(&["exec", "c", "test", "-L", "/data/link"]).status.success()
    });
    // Out: a tree, its symlink as a symlink; owners are the copier's, or the container's with -a.
    let out = f.work.join("out");
    fs::create_dir(&out).unwrap();
    assert_ok(&f.cp(&["c:/data", out.to_str().unwrap()]), "cp c:/data out/");
    assert_eq!(fs::read_to_string(out.join("data/sub/f")).unwrap(), "hello\n");
    assert_eq!(fs::read_link(out.join("data/link")).unwrap(), Path::new("sub/f"));
    assert_eq!(fs::metadata(out.join("data/sub/f")).unwrap().uid(), 0);
    let kept = f.work.join("kept");
    assert_ok(&f.cp(&["-a", "c:/data/sub/f", kept.to_str().unwrap()]), "cp -a");
    assert_eq!(fs::metadata(&kept).unwrap().uid(), 1000);
    // A directory's contents (SRC/.) into a new directory.
    let flat = f.work.join("flat");
    assert_ok(
        &f.cp(&["c:/data/sub/.", flat.to_str().unwrap()]),
        "cp c:/data/sub/. flat",
    );
    assert_eq!(fs::read_to_string(flat.join("f")).unwrap(), "hello\n");
    // In: a file into a directory (owned by root there), a tree under a new name.
    let src = f.work.join("in");
    fs::create_dir_all(src.join("deep")).unwrap();
    fs::write(src.join("deep/g"), "from host\n").unwrap();
    fs::set_permissions(src.join("deep/g"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_ok(&f.cp(&[src.to_str().unwrap(), "c:/copied"]), "cp in c:/copied");
    let o = f.container(&[
        "exec",
        "c",
        "sh",
        "-c",
        "cat /copied/deep/g; stat -c '%u %a' /copied/deep/g",
    ]);
    assert_eq!(stdout(&o), "from host\n0 640\n", "{}", show(&o));
    assert_ok(
        &f.cp(&[src.join("deep/g").to_str().unwrap(), "c:/data/"]),
        "cp a file into c:/data/",
    );
    assert_eq!(stdout(&f.container(&["exec", "c", "cat", "/data/g"])), "from host\n");
    // A stopped container: its root filesystem is mounted for the copy and unmounted after.
    assert_ok(&f.container(&["stop", "-t", "1", "c"]), "stop");
    let again = f.work.join("again");
    assert_ok(
        &f.cp(&["c:/copied/deep/g", again.to_str().unwrap()]),
        "cp out of a stopped container",
    );
    assert_eq!(fs::read_to_string(&again).unwrap(), "from host\n");
    let mounted: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(f.data.path()))
        .collect();
    assert!(mounted.is_empty(), "left mounted: {mounted:?}");
    // Bad input: one line naming the path or the container.
    for (args, want) in [
        (vec!["c:/no/such", out.to_str().unwrap()], "c:/no/such"),
        (vec!["nosuch:/x", out.to_str().unwrap()], "nosuch"),
        (vec![out.to_str().unwrap(), kept.to_str().unwrap()], "CONTAINER:PATH"),
    ] {
        let o = f.cp(&args);
        assert_fails(&o, want);
        assert!(
            stderr(&o).contains(want) && stderr(&o).trim().lines().count() == 1,
            "{}",
            show(&o)
        );
    }
    assert_ok(&f.container(&["rm", "c"]), "rm");
    f.assert_nothing_left();
}

#[test]
fn a_hostile_containers_tree_never_leads_cp_to_a_host_path() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:cpx", &[]);
    // A host directory with a secret, named by absolute path inside the container's symlinks.
    let host = TempDir::new("cp-host");
    fs::write(host.join("secret"), "host secret\n").unwrap();
    let h = host.path().to_str().unwrap().to_string();
    let setup = format!(
        "ln -s {h}/secret /leak; ln -s {h} /leakdir; ln -s {h} /escape; cp /bin/busybox /suid; chmod 4755 /suid; \
         mkdir -p /w; i=0; while [ $i -lt 300 ]; do mkdir d; cd d; i=$((i+1)); done; cd /; \
         while true; do mkdir -p /w/d; mv /w/d /w/real; ln -s {h} /w/d; rm /w/d; mv /w/real /w/d; done"
    );
    detach(&f, &["--name", "x", "--network", "none", "bb:cpx", "sh", "-c", &setup]);
    wrun_tests::wait_until(std::time::Duration::from_secs(10), || {
        f.container(&["exec", "x", "test", "-d", "/w/d"]).status.success()
    });
    let out = f.work.join("out");
    fs::create_dir(&out).unwrap();
    // A symlink to a host file is copied as a symlink: the host file's contents are not read.
    assert_ok(&f.cp(&["x:/leak", out.join("leak").to_str().unwrap()]), "cp x:/leak");
    assert!(fs::symlink_metadata(out.join("leak")).unwrap().file_type().is_symlink());
    // Through a symlinked directory, or climbing with ..: the container's own tree (no secret).
    for p in ["x:/leakdir/secret".to_string(), format!("x:/../../../..{h}/secret")] {
        let o = f.cp(&[&p, out.join("got").to_str().unwrap()]);
        assert_fails(&o, &p);
        assert!(!out.join("got").exists(), "{p} read the host's file");
    }
    // Into a symlinked directory: inside the container's root, never the host directory.
    let planted = f.work.join("planted");
    fs::write(&planted, "planted\n").unwrap();
    let _ = f.cp(&[planted.to_str().unwrap(), "x:/escape/"]);
    assert!(
        !host.join("planted").exists(),
        "cp wrote into the host through a symlink"
    );
    // A setuid program comes out without its setuid bit.
    assert_ok(&f.cp(&["x:/suid", out.join("suid").to_str().unwrap()]), "cp x:/suid");
    assert_eq!(
        fs::metadata(out.join("suid")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    // A tree deeper than cp goes: a one-line refusal, not a crash.
    let o = f.cp(&["x:/d", out.join("deep").to_str().unwrap()]);
    assert_fails(&o, "a 300-deep tree");
    assert!(stderr(&o).contains("deep"), "{}", show(&o));
    // The race: /w/d flips between a directory and a symlink to the host directory while files
    // are copied into it, 40 times.
    for _ in 0..40 {
        let _ = f.cp(&[planted.to_str().unwrap(), "x:/w/d/"]);
    }
    let names: Vec<_> = fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("secret")],
        "the race wrote into the host directory"
    );
    assert_ok(&f.container(&["rm", "-f", "x"]), "rm -f x");
    f.assert_nothing_left();
}
