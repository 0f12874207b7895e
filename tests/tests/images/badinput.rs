//! Bad input: one line naming the thing and the cause, a non-zero exit, and nothing left in
//! the store; concurrent imports and a killed import never corrupt it.

use std::time::{Duration, Instant};

use super::*;

#[test]
fn bad_names_and_missing_things_are_one_line_errors() {
    let Some(im) = Images::new() else { return };
    let e = im.fails(&["inspect", "no-such-image"]);
    assert!(e.contains("no-such-image") && e.contains("not in the store"), "{e}");
    let e = im.fails(&["rm", "Bad:Name"]);
    assert!(e.contains("\"Bad:Name\""), "{e}");
    let e = im.fails(&["import", "/no/such/file.tar"]);
    assert!(e.contains("/no/such/file.tar"), "{e}");
    let tar = busybox_tar(im.work.path());
    assert_ok(&im.import(&tar, &["--name", "x:1"]), "import");
    for bad in ["x:", "Upper:1", "x@sha256:1234"] {
        let e = im.fails(&["tag", "x:1", bad]);
        assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
    }
    let e = im.fails(&["import", tar.to_str().unwrap(), "--change", "RUN rm -rf /"]);
    assert!(e.contains("RUN is not one of"), "{e}");
    let e = im.fails(&["mount", "x:1", "/proc/no/such/dir"]);
    assert!(e.contains("/proc/no/such/dir"), "{e}");
    im.assert_clean(1);
}

#[test]
fn a_full_disk_fails_the_import_and_leaves_nothing() {
    let Some(im) = Images::new() else { return };
    let root = im.data.path();
    let o = run_cmd(
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "wrun-test-full", root.to_str().unwrap()]),
        None,
    );
    assert_ok(&o, "mount a 1 MiB tmpfs as the data root");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(root);
    let tar = busybox_tar(im.work.path());
    let e = im.fails(&["import", tar.to_str().unwrap(), "--name", "full:1"]);
    assert!(e.contains("No space left on device"), "{e}");
    im.assert_clean(0);
}

#[test]
fn concurrent_imports_and_a_killed_import_leave_a_consistent_store() {
    let Some(im) = Images::new() else { return };
    let tar = busybox_tar(im.work.path());
    let kids: Vec<_> = (0..4)
        .map(|i| {
            let mut c = im
                .rt
                .command(&["image", "--data-root", im.data.path().to_str().unwrap(), "import"]);
            c.arg(&tar).args(["--name", &format!("same:{i}")]);
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "a concurrent import failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let ids: std::collections::BTreeSet<String> = (0..4)
        .map(|i| im.inspect(&format!("same:{i}"))["RootFS"]["Layers"][0].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one layer for all four");
    assert_eq!(
        im.layers().len(),
        2,
        "one unpacked layer and its size file: {:?}",
        im.layers()
    );

    // A big import killed part way: nothing of it is taken as an image, and the next
    // commit removes its staging.
    let mut big = Tarball::new();
    for i in 0..40 {
        big.file(&format!("f{i}"), &vec![i as u8; 1 << 20]);
    }
    let f = im.write("big.tar", &big.finish());
    let mut child = im
        .rt
        .command(&["image", "--data-root", im.data.path().to_str().unwrap(), "import"])
        .arg(&f)
        .args(["--name", "killed:1"])
        .spawn()
        .unwrap();
    let t = Instant::now();
    while names(&im.data.join("tmp")).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        im.cmd(&["inspect", "killed:1"]).status.code() != Some(0),
        "no image from a killed import"
    );
    assert_ok(&im.import(&tar, &["--name", "after:1"]), "the next import");
    assert_eq!(
        names(&im.data.join("tmp")),
        Vec::<String>::new(),
        "the killed import's staging is removed"
    );
    im.ok(&["prune", "--all"]);
    im.assert_clean(0);
}
