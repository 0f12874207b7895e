//! Layer and image formats beyond the plain tar: zstd and gzip layers, and a wasm OCI
//! artifact (the module itself as the layer, `application/wasm`) that runs through the same
//! path as a native image.

use super::*;

fn compressed(im: &Images, tool: &str, tar: &[u8]) -> Option<PathBuf> {
    if Command::new(tool)
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        skip(&format!("{tool} is not installed"));
        return None;
    }
    let f = im.write(&format!("layer-{tool}.tar"), tar);
    let o = run_cmd(Command::new(tool).args(["-q", "-f", f.to_str().unwrap()]), None);
    assert_ok(&o, tool);
    let ext = if tool == "zstd" { "zst" } else { "gz" };
    Some(im.work.join(format!("layer-{tool}.tar.{ext}")))
}

#[test]
fn zstd_and_gzip_layers_unpack_to_the_same_tree() {
    let Some(im) = Images::new() else { return };
    let mut t = Tarball::new();
    t.dir("etc")
        .file("etc/motd", b"compressed\n")
        .symlink("motd", "etc/motd");
    let tar = t.finish();
    for tool in ["zstd", "gzip"] {
        let Some(f) = compressed(&im, tool, &tar) else { continue };
        let name = format!("fmt/{tool}:1");
        let o = im.import(&f, &["--name", &name]);
        assert_ok(&o, &format!("import a {tool} layer"));
        let v = im.inspect(&name);
        let want = if tool == "zstd" {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        } else {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        };
        assert_eq!(v["Manifest"]["Layers"][0]["MediaType"], want, "{v}");
        assert_eq!(
            v["RootFS"]["Layers"][0],
            sha256(&tar).as_str(),
            "the diffID is the uncompressed tar's"
        );
        let layer = im.only_layer(&name);
        assert_eq!(fs::read(layer.join("motd")).unwrap(), b"compressed\n");
    }
}

#[test]
fn a_wasm_oci_artifact_imports_mounts_and_runs_as_a_wasm_container() {
    let Some(im) = Images::new() else { return };
    let module = fs::read(wasm_app("hello")).expect("make wasm-apps builds hello.wasm");
    let f = im.write("wasm-artifact.tar", &wasm_artifact(&module, "wrun.test/hello-wasm:1"));
    let out = im.ok(&["import", f.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: wrun.test/hello-wasm:1");
    let v = im.inspect("wrun.test/hello-wasm:1");
    assert_eq!(v["Architecture"], "wasm");
    assert_eq!(v["Manifest"]["Layers"][0]["MediaType"], "application/wasm");
    let dir = im.work.join("w");
    im.ok(&["mount", "wrun.test/hello-wasm:1", dir.to_str().unwrap()]);
    assert_eq!(
        fs::read(dir.join("rootfs/hello.wasm")).unwrap(),
        module,
        "the module is the layer's one file"
    );
    let mut b = Bundle::busybox();
    b.args(&["/hello.wasm", "from-an-image"]);
    b.with_config(|c| {
        c["root"] = json!({"path": dir.join("rootfs"), "readonly": true});
        // The artifact's rootfs has no /proc or /dev: the runtime makes them in the upper dir.
    });
    let cid = im.rt.id("wasm-image");
    let o = im.rt.run(&cid, &b);
    im.ok(&["unmount", dir.to_str().unwrap()]);
    assert_ok(&o, "run the wasm image");
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l == "hello from wasm") && out.lines().any(|l| l == "argv[1]=from-an-image"),
        "{out}"
    );
}

#[test]
fn an_image_of_a_hundred_layers_mounts_past_the_option_page_limit() {
    let Some(im) = Images::new() else { return };
    // 100 layers: their paths make ~11 KiB of lowerdir text, past the page mount(2) takes;
    // each layer is given to the kernel alone (fsconfig lowerdir+).
    let layers: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            Tarball::new()
                .file(&format!("l/{i:03}"), format!("{i}").as_bytes())
                .finish()
        })
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let (tar, _) = super::archives::docker_save(&layers, &diff_ids, &["many/layers:1"], &["sh"]);
    assert_ok(&im.import(&im.write("many.tar", &tar), &[]), "import 100 layers");
    let dir = im.work.join("m");
    let o = im.cmd(&["mount", "many/layers:1", dir.to_str().unwrap()]);
    if !o.status.success() && stderr(&o).contains("page limit") {
        skip("this kernel has no fsconfig lowerdir+ (Linux 6.8+)");
        return;
    }
    assert_ok(&o, "mount 100 layers");
    let seen: Vec<String> = names(&dir.join("rootfs/l"));
    let first_and_last = (
        fs::read_to_string(dir.join("rootfs/l/000")),
        fs::read_to_string(dir.join("rootfs/l/099")),
    );
    im.ok(&["unmount", dir.to_str().unwrap()]);
    assert_eq!(seen.len(), 100, "every layer's file is visible");
    assert_eq!(
        (first_and_last.0.unwrap(), first_and_last.1.unwrap()),
        ("0".to_string(), "99".to_string())
    );
}

#[test]
fn a_wasm_layer_cannot_take_the_place_of_a_tar_layer() {
    let Some(im) = Images::new() else { return };
    // The wasm layer's bytes are exactly another image's uncompressed layer tar: its digest is
    // that layer's diffID. The tar image imported after it must still get its real tree.
    let tar = Tarball::new().file("etc/real", b"tree").finish();
    let f = im.write("collide.tar", &wasm_artifact(&tar, "wrun.test/collide:1"));
    im.ok(&["import", f.to_str().unwrap()]);
    let root = im.write("root.tar", &tar);
    im.ok(&["import", root.to_str().unwrap(), "--name", "victim:1"]);
    let layer = im.only_layer("victim:1");
    assert_eq!(
        fs::read(layer.join("etc/real")).unwrap(),
        b"tree",
        "the tar layer is its tree"
    );
}
