//! The archives other tools write and read: `docker save` archives (written here as docker
//! writes them), OCI archives from and for skopeo, and wrun's own save round-tripping with
//! the image ids unchanged.

use super::*;

/// A docker save archive (docker < 25): `manifest.json`, `<id>.json`, `<n>/layer.tar`, with
/// `diff_ids` as given (the right ones unless a test lies).
pub fn docker_save(layers: &[Vec<u8>], diff_ids: &[String], tags: &[&str], cmd: &[&str]) -> (Vec<u8>, String) {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().enumerate().map(|(i, _)| json!({"created": "2024-01-02T03:04:05Z", "created_by": format!("/bin/sh -c step {i}")})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let id = sha256(&config);
    let hex = id.trim_start_matches("sha256:");
    let mut t = Tarball::new();
    t.file(&format!("{hex}.json"), &config);
    let mut paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let p = format!("layer{i}/layer.tar");
        t.dir(&format!("layer{i}")).file(&p, l);
        paths.push(p);
    }
    let manifest = json!([{"Config": format!("{hex}.json"), "RepoTags": tags, "Layers": paths}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    (t.finish(), id)
}

fn two_layers() -> Vec<Vec<u8>> {
    let mut base = Tarball::new();
    base.dir("bin").file("bin/app", b"v1").file("etc/gone", b"x");
    let mut top = Tarball::new();
    top.file("bin/app", b"v2").file("etc/.wh.gone", b"");
    vec![base.finish(), top.finish()]
}

#[test]
fn a_docker_save_archive_imports_with_its_tags_and_its_image_id() {
    let Some(im) = Images::new() else { return };
    let layers = two_layers();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let (tar, id) = docker_save(
        &layers,
        &diff_ids,
        &["example/app:2.0", "localhost:5000/app:latest"],
        &["/bin/app"],
    );
    let f = im.write("save.tar", &tar);
    let out = stdout(&im.import(&f, &[]));
    assert!(
        out.contains("Loaded image: example/app:2.0") && out.contains("Loaded image: localhost:5000/app:latest"),
        "{out}"
    );
    let v = im.inspect("example/app:2.0");
    assert_eq!(v["Id"], id.as_str(), "the image id is the config's digest, as docker's");
    assert_eq!(v["RootFS"]["Layers"], json!(diff_ids));
    assert_eq!(v["Config"]["Cmd"], json!(["/bin/app"]));
    // Each layer unpacked on its own; the top one holds the whiteout overlayfs will apply.
    let top = im
        .data
        .join("layers/sha256")
        .join(diff_ids[1].trim_start_matches("sha256:"));
    assert_eq!(fs::read(top.join("bin/app")).unwrap(), b"v2");
    assert!(fs::symlink_metadata(top.join("etc/gone"))
        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type())));
    // Through the overlay the whiteout hides the base layer's file.
    let dir = im.work.join("m");
    im.ok(&["mount", "example/app:2.0", dir.to_str().unwrap()]);
    let seen = (
        fs::read(dir.join("rootfs/bin/app")),
        dir.join("rootfs/etc/gone").exists(),
    );
    im.ok(&["unmount", dir.to_str().unwrap()]);
    assert_eq!(seen.0.unwrap(), b"v2");
    assert!(!seen.1, "the whiteout hides etc/gone");
    let hist = im.ok(&["history", "example/app:2.0"]);
    assert!(hist.contains("step 1") && hist.contains("step 0"), "{hist}");
    // A second import of the same archive stores nothing new.
    let (blobs, layers_before) = (im.blobs(), im.layers());
    assert_ok(&im.import(&f, &[]), "import again");
    assert_eq!((im.blobs(), im.layers()), (blobs, layers_before));
}

#[test]
fn a_layer_that_is_not_what_the_config_says_is_refused_and_nothing_is_stored() {
    let Some(im) = Images::new() else { return };
    let layers = two_layers();
    let mut diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    diff_ids[1] = sha256(b"something else");
    let (tar, _) = docker_save(&layers, &diff_ids, &["example/lie:1"], &["sh"]);
    let f = im.write("lie.tar", &tar);
    let e = im.fails(&["import", f.to_str().unwrap()]);
    assert!(e.contains("digest mismatch") && e.contains(&diff_ids[1]), "{e}");
    im.assert_clean(0);
}

fn skopeo() -> bool {
    if Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    skip("skopeo is not installed (apt-get install skopeo)");
    false
}

#[test]
fn saved_archives_round_trip_through_skopeo_with_the_same_image_id() {
    let Some(im) = Images::new() else { return };
    if !skopeo() {
        return;
    }
    let layers = two_layers();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let (tar, id) = docker_save(&layers, &diff_ids, &["example/rt:1"], &["/bin/app"]);
    assert_ok(&im.import(&im.write("in.tar", &tar), &[]), "import");
    let saved = im.work.join("saved.tar");
    im.ok(&["save", "-o", saved.to_str().unwrap(), "example/rt:1"]);
    // skopeo reads wrun's archive and writes its own OCI archive of it.
    let theirs = im.work.join("skopeo.tar");
    let o = run_cmd(
        Command::new("skopeo").args([
            "copy",
            "--quiet",
            &format!("oci-archive:{}", saved.display()),
            &format!("oci-archive:{}:localhost/from-skopeo:1", theirs.display()),
        ]),
        None,
    );
    assert_ok(&o, "skopeo copy wrun's archive");
    im.ok(&["prune", "--all"]);
    im.assert_clean(0);
    let out = stdout(&im.import(&theirs, &[]));
    assert_eq!(out.trim(), "Loaded image: localhost/from-skopeo:1");
    assert_eq!(
        im.inspect("localhost/from-skopeo:1")["Id"],
        id.as_str(),
        "the same config, the same id"
    );
    // And wrun reads its own archive back as it was written.
    im.ok(&["prune", "--all"]);
    assert_ok(&im.import(&saved, &[]), "import wrun's own archive");
    assert_eq!(im.inspect("example/rt:1")["Id"], id.as_str());
}
