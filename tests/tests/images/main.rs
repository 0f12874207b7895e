//! `wrun image`: the local store, import and save, the archives other tools write, safe
//! unpacking of hostile layers, and what bad input leaves behind (nothing). Each test has a
//! data root of its own; the store's own files are checked after every failure: no `tmp/`
//! entry, no blob, layer or index entry of a refused import. wrun-specific (skipped for other
//! runtimes, which have no image store). Needs root.

mod archives;
mod badinput;
mod formats;
mod hostile;
mod provenance;
mod registry;
mod trust;
mod unpack;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use wrun_tests::*;

/// One test's image store, driven through `wrun image --data-root`.
struct Images {
    rt: Runtime,
    data: TempDir,
    work: TempDir,
}

impl Images {
    /// None (with the skip line printed) when the runtime under test has no image store.
    fn new() -> Option<Images> {
        let rt = Runtime::new();
        if rt.kind() != RuntimeKind::Wrun {
            skip("`image` is wrun's own command");
            return None;
        }
        Some(Images {
            rt,
            data: TempDir::new("images"),
            work: TempDir::new("image-work"),
        })
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut full = vec!["image", "--data-root", self.data.path().to_str().unwrap()];
        full.extend_from_slice(args);
        self.rt.exec(&full)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert_ok(&o, &format!("wrun image {}", args.join(" ")));
        stdout(&o)
    }

    /// The one-line error of a command that must fail.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert_fails(&o, &format!("wrun image {}", args.join(" ")));
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        e
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.work.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn import(&self, file: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect prints JSON");
        v[0].clone()
    }

    fn index(&self) -> Value {
        serde_json::from_slice(&fs::read(self.data.join("images/index.json")).unwrap()).unwrap()
    }

    fn blobs(&self) -> Vec<String> {
        names(&self.data.join("images/blobs/sha256"))
    }

    fn layers(&self) -> Vec<String> {
        names(&self.data.join("layers/sha256"))
    }

    /// The unpacked directory of the image's only layer.
    fn only_layer(&self, name: &str) -> PathBuf {
        let v = self.inspect(name);
        let layers = v["RootFS"]["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{v}");
        let hex = layers[0].as_str().unwrap().trim_start_matches("sha256:");
        self.data.join("layers/sha256").join(hex)
    }

    /// Nothing of a failed or removed import is left: no staging entry, and the store holds
    /// exactly `images` index entries and nothing else when that is 0.
    #[track_caller]
    fn assert_clean(&self, images: usize) {
        assert_eq!(
            names(&self.data.join("tmp")),
            Vec::<String>::new(),
            "staging left behind"
        );
        let idx = self.index();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), images, "{idx}");
        if images == 0 {
            assert_eq!(self.blobs(), Vec::<String>::new(), "blobs left");
            assert_eq!(self.layers(), Vec::<String>::new(), "layers left");
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The busybox rootfs of the tests' bundles as an uncompressed tar.
fn busybox_tar(dir: &Path) -> PathBuf {
    let b = Bundle::busybox();
    let out = dir.join("busybox.tar");
    let o = run_cmd(
        Command::new("tar").args(["-C", b.rootfs().to_str().unwrap(), "-cf", out.to_str().unwrap(), "."]),
        None,
    );
    assert_ok(&o, "tar the busybox rootfs");
    out
}

#[test]
fn a_root_filesystem_tar_becomes_a_one_layer_image_that_runs_through_an_overlay() {
    let Some(im) = Images::new() else { return };
    let tar = busybox_tar(im.work.path());
    let out = stdout(&im.import(
        &tar,
        &["--name", "wrun.test/bb:1", "--change", "CMD [\"sh\"]", "-c", "ENV A=1"],
    ));
    assert_eq!(out.trim(), "Loaded image: wrun.test/bb:1");
    let ls = im.ok(&["ls"]);
    let row = ls
        .lines()
        .find(|l| l.starts_with("wrun.test/bb "))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(row.split_whitespace().nth(1) == Some("1"), "{ls}");
    let v = im.inspect("wrun.test/bb:1");
    assert_eq!(v["Config"]["Cmd"], json!(["sh"]));
    assert_eq!(v["Config"]["Env"], json!(["A=1"]));
    assert_eq!(v["RepoTags"], json!(["wrun.test/bb:1"]));
    // The image id is the config's digest, and every short form of it names the image.
    let id = v["Id"].as_str().unwrap().to_string();
    assert_eq!(im.inspect(&id["sha256:".len().."sha256:".len() + 12])["Id"], id);
    // The layer is the tree, file by file.
    let layer = im.only_layer("wrun.test/bb:1");
    let o = run_cmd(
        Command::new("diff").args([
            "-r",
            "--no-dereference",
            Bundle::busybox().rootfs().to_str().unwrap(),
            layer.to_str().unwrap(),
        ]),
        None,
    );
    assert_ok(&o, "the unpacked layer equals the tree that was tarred");
    let hist = im.ok(&["history", "wrun.test/bb:1"]);
    assert!(hist.contains("wrun image import"), "{hist}");

    // Mounted as an overlay, it is a container's root filesystem; its writes go to the upper
    // dir, never to the shared layer, and the image cannot be removed while it is mounted.
    let dir = im.work.join("c1");
    let rootfs = im.ok(&["mount", "wrun.test/bb:1", dir.to_str().unwrap()]);
    assert_eq!(PathBuf::from(rootfs.trim()), dir.join("rootfs"));
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the image's setuid files are not the host users' to run");
    let mut b = Bundle::busybox();
    b.sh("echo written > /new-file && cat /bin/../new-file");
    b.with_config(|c| c["root"] = json!({"path": dir.join("rootfs"), "readonly": false}));
    let id_c = im.rt.id("from-image");
    let o = im.rt.run(&id_c, &b);
    assert_ok(&o, "run a container on the image's root filesystem");
    assert_eq!(stdout(&o).trim(), "written");
    assert!(dir.join("upper/new-file").exists(), "the write is in the upper dir");
    assert!(!layer.join("new-file").exists(), "the layer is untouched");
    let e = im.fails(&["rm", "wrun.test/bb:1"]);
    assert!(e.contains("in use by the root filesystem mounted at"), "{e}");
    im.ok(&["unmount", dir.to_str().unwrap()]);
    assert!(!mount_points().iter().any(|m| m.starts_with(&dir)), "unmounted");
    assert!(!dir.join("upper").exists(), "its writes are removed");

    let rm = im.ok(&["rm", "wrun.test/bb:1"]);
    assert!(
        rm.contains("Untagged: wrun.test/bb:1") && rm.contains(&format!("Deleted: {id}")),
        "{rm}"
    );
    im.assert_clean(0);
}

#[test]
fn tags_untag_retag_prune_and_collect_what_nothing_uses() {
    let Some(im) = Images::new() else { return };
    let tar = busybox_tar(im.work.path());
    assert_ok(
        &im.import(&tar, &["--name", "app:1", "-c", "CMD [\"one\"]"]),
        "import app:1",
    );
    let first = im.inspect("app:1")["Id"].as_str().unwrap().to_string();
    im.ok(&["tag", "app:1", "localhost:5000/app:v1"]);
    assert_eq!(im.inspect("localhost:5000/app:v1")["Id"], first.as_str());
    // The same name again: the new image takes the tag; the old one keeps its other tag.
    assert_ok(
        &im.import(&tar, &["--name", "app:1", "-c", "CMD [\"two\"]"]),
        "import app:1 again",
    );
    let second = im.inspect("app:1")["Id"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    // An image with two tags is not removed by id without --force; a tag only untags.
    im.ok(&["tag", "app:1", "app:2"]);
    let e = im.fails(&["rm", &second]);
    assert!(e.contains("2 tags"), "{e}");
    assert!(im.ok(&["rm", "app:2"]).trim() == "Untagged: app:2");
    // Removing the old image's last tag removes it; the shared layer stays for the other.
    let layers_before = im.layers();
    im.ok(&["rm", "localhost:5000/app:v1"]);
    assert_eq!(im.layers(), layers_before, "a layer another image uses stays");
    // Re-tagging leaves a dangling image; prune removes it and its config, not the layer.
    assert_ok(
        &im.import(&tar, &["--name", "app:1", "-c", "CMD [\"three\"]"]),
        "import app:1 a third time",
    );
    let ls = im.ok(&["ls"]);
    assert!(ls.lines().any(|l| l.starts_with("<none>")), "{ls}");
    let blobs = im.blobs().len();
    let p = im.ok(&["prune"]);
    assert!(p.contains(&format!("deleted: {second}")), "{p}");
    assert_eq!(im.blobs().len(), blobs - 2, "its config and manifest are collected");
    assert!(!im.ok(&["ls"]).contains("<none>"));
    let df = im.ok(&["df"]);
    assert!(
        df.lines()
            .any(|l| l.starts_with("Images") && l.split_whitespace().nth(1) == Some("1")),
        "{df}"
    );
    // prune --all removes the rest.
    im.ok(&["prune", "--all"]);
    im.assert_clean(0);
}

/// PIDs of the processes whose command line names `needle`.
fn pids_naming(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

#[test]
fn where_the_kernel_refuses_the_overlay_fuse_overlayfs_mounts_the_image_for_every_uid() {
    let Some(im) = Images::new() else { return };
    if !Path::new("/usr/bin/fuse-overlayfs").exists() || !Path::new("/dev/fuse").exists() {
        skip("fuse-overlayfs or /dev/fuse is missing (apt-get install fuse-overlayfs)");
        return;
    }
    let tar = busybox_tar(im.work.path());
    assert_ok(&im.import(&tar, &["--name", "bb:fuse"]), "import");
    // The mount directory on an overlay: the kernel refuses an upper directory there.
    let ov = im.work.join("ov");
    for d in ["l", "u", "w", "m"] {
        fs::create_dir_all(ov.join(d)).unwrap();
    }
    let opts = format!("lowerdir={0}/l,upperdir={0}/u,workdir={0}/w", ov.display());
    let o = run_cmd(
        Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts, ov.join("m").to_str().unwrap()]),
        None,
    );
    assert_ok(&o, "mount the outer overlay");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _outer = Unmount(ov.join("m"));
    let dir = ov.join("m/c");
    let data = im.data.path().to_str().unwrap().to_string();
    let mount_cmd = |env: Option<&str>| {
        let mut c = im
            .rt
            .command(&["image", "--data-root", &data, "mount", "bb:fuse", dir.to_str().unwrap()]);
        if let Some(v) = env {
            c.env("WRUN_MOUNT_PROGRAM", v);
        }
        run_cmd(&mut c, None)
    };
    // The kernel's refusal, when only the kernel may mount: one line, nothing left.
    let o = mount_cmd(Some("kernel"));
    assert_fails(&o, "a kernel-only mount on an overlay");
    let e = stderr(&o);
    assert!(
        e.trim().lines().count() == 1 && e.contains(dir.to_str().unwrap()) && e.contains("EINVAL"),
        "{e}"
    );
    assert!(!mount_points().iter().any(|m| m.starts_with(&dir)));
    assert_eq!(names(&im.data.join("mounts")), Vec::<String>::new(), "no mount record");
    // By default fuse-overlayfs takes over.
    assert_ok(&mount_cmd(None), "mount through fuse-overlayfs");
    let rootfs = dir.join("rootfs");
    let fstype = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()))
        .map(|l| {
            l.split(" - ")
                .nth(1)
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string()
        });
    assert_eq!(fstype.as_deref(), Some("fuse.fuse-overlayfs"));
    let daemons = pids_naming(rootfs.to_str().unwrap());
    assert!(!daemons.is_empty(), "a fuse-overlayfs process serves the mount");
    // A container on it, as a uid other than root: fuse serves only its mounter unless the
    // mount allows others.
    let mut b = Bundle::busybox();
    b.sh("id -u && echo hi > /tmp-file 2>&1; cat /bin/busybox > /dev/null && echo readable");
    b.with_config(|c| {
        c["root"] = json!({"path": &rootfs, "readonly": false});
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let o = im.rt.run(&im.rt.id("on-fuse"), &b);
    assert_ok(&o, "run as uid 1000 on the fuse-overlayfs root");
    assert!(
        stdout(&o).contains("1000") && stdout(&o).contains("readable"),
        "{}",
        stdout(&o)
    );
    let e = im.fails(&["rm", "bb:fuse"]);
    assert!(e.contains("in use by the root filesystem mounted at"), "{e}");
    im.ok(&["unmount", dir.to_str().unwrap()]);
    assert!(!mount_points().iter().any(|m| m.starts_with(&dir)), "unmounted");
    assert!(!dir.join("upper").exists(), "its writes are removed");
    let t = std::time::Instant::now();
    while !pids_naming(rootfs.to_str().unwrap()).is_empty() {
        assert!(t.elapsed().as_secs() < 5, "fuse-overlayfs outlived its mount");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    im.ok(&["rm", "bb:fuse"]);
    im.assert_clean(0);
}
