//! Pull and push against a real registry: Debian's docker-registry on 127.0.0.1 (a free port,
//! its own config and storage, stopped by pid), images put there by skopeo, with and without
//! basic auth; and what a registry that lies, refuses or is down leaves behind (nothing).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::*;

/// The busybox image as an OCI archive (wrun's save of an import), and its image id.
fn busybox_archive(im: &Images) -> (PathBuf, String) {
    let tar = busybox_tar(im.work.path());
    assert_ok(
        &im.import(&tar, &["--name", "src/busybox:1", "-c", "CMD [\"sh\"]"]),
        "import busybox",
    );
    let id = im.inspect("src/busybox:1")["Id"].as_str().unwrap().to_string();
    let out = im.work.join("busybox-oci.tar");
    im.ok(&["save", "-o", out.to_str().unwrap(), "src/busybox:1"]);
    im.ok(&["rm", "src/busybox:1"]);
    im.assert_clean(0);
    (out, id)
}

#[test]
fn a_pulled_image_runs_and_a_second_pull_downloads_no_layer() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = Registry::start(None) else { return };
    let (archive, id) = busybox_archive(&im);
    reg.skopeo_push(&archive, "test/busybox:1", None);
    let r = format!("{}/test/busybox:1", reg.addr);
    let out = im.ok(&["pull", &r]);
    assert!(
        out.contains("downloading") && out.lines().last() == Some(r.as_str()),
        "{out}"
    );
    let v = im.inspect(&r);
    assert_eq!(
        v["Id"],
        id.as_str(),
        "skopeo gzipped the layer; the config, and so the id, is the same"
    );
    assert_eq!(
        v["Manifest"]["Layers"][0]["MediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{v}"
    );
    // Mounted and run by the runtime.
    let dir = im.work.join("c");
    im.ok(&["mount", &r, dir.to_str().unwrap()]);
    let mut b = Bundle::busybox();
    b.sh("echo pulled-and-ran");
    b.with_config(|c| c["root"] = json!({"path": dir.join("rootfs"), "readonly": false}));
    let cid = im.rt.id("pulled");
    let o = im.rt.run(&cid, &b);
    im.ok(&["unmount", dir.to_str().unwrap()]);
    assert_ok(&o, "run the pulled image");
    assert_eq!(stdout(&o).trim(), "pulled-and-ran");
    // Again: nothing is downloaded; by digest too.
    let again = im.ok(&["pull", &r]);
    assert!(
        !again.contains("downloading") && again.contains("already in the store"),
        "{again}"
    );
    let digest = v["Manifest"]["Digest"].as_str().unwrap().to_string();
    let by_digest = format!("{}/test/busybox@{digest}", reg.addr);
    assert!(!im.ok(&["pull", &by_digest]).contains("downloading"));
    assert_eq!(im.inspect(&by_digest)["Id"], id.as_str());
}

#[test]
fn a_pushed_image_is_the_same_image_when_pulled_back() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = Registry::start(None) else { return };
    let tar = busybox_tar(im.work.path());
    assert_ok(&im.import(&tar, &["--name", "local/app:1"]), "import");
    let v = im.inspect("local/app:1");
    let dest = format!("{}/pushed/app:v1", reg.addr);
    let digest = im.ok(&["push", "-q", "local/app:1", &dest]);
    assert_eq!(digest.trim(), v["Manifest"]["Digest"].as_str().unwrap());
    let o = run_cmd(
        Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{dest}")]),
        None,
    );
    assert_ok(&o, "skopeo inspect the pushed image");
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["Digest"], v["Manifest"]["Digest"]);
    // A second push sends no blob.
    let again = im.ok(&["push", "local/app:1", &dest]);
    assert!(
        !again.contains("pushed") && again.contains("already in the registry"),
        "{again}"
    );
    im.ok(&["prune", "--all"]);
    im.ok(&["pull", "-q", &dest]);
    assert_eq!(im.inspect(&dest)["Id"], v["Id"]);
}

#[test]
fn basic_auth_logins_good_and_bad_credentials() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = Registry::start(Some(("wrun", "s3cret"))) else {
        return;
    };
    let (archive, _) = busybox_archive(&im);
    reg.skopeo_push(&archive, "private/bb:1", Some("wrun:s3cret"));
    let r = format!("{}/private/bb:1", reg.addr);
    let authfile = im.work.join("auth.json");
    let af = authfile.to_str().unwrap();
    let e = im.fails(&["pull", "--authfile", af, &r]);
    assert!(
        e.contains(&reg.addr) && (e.contains("authentication") || e.contains("refused")),
        "{e}"
    );
    im.assert_clean(0);
    let login = |pass: &str| {
        im.rt.exec_stdin(
            &["login", "-u", "wrun", "--password-stdin", "--authfile", af, &reg.addr],
            format!("{pass}\n").as_bytes(),
        )
    };
    let o = login("wrong");
    assert_fails(&o, "login with a wrong password");
    assert!(stderr(&o).contains(&reg.addr), "{}", stderr(&o));
    assert!(!authfile.exists(), "no credentials stored for a refused login");
    let o = login("s3cret");
    assert_ok(&o, "login");
    assert!(stdout(&o).contains("Login Succeeded"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&authfile).unwrap().permissions().mode() & 0o777, 0o600);
    im.ok(&["pull", "-q", "--authfile", af, &r]);
    let o = im.rt.exec(&["logout", "--authfile", af, &reg.addr]);
    assert_ok(&o, "logout");
    let left: Value = serde_json::from_slice(&fs::read(&authfile).unwrap()).unwrap();
    assert_eq!(left["auths"], json!({}));
}

#[test]
fn a_corrupt_layer_a_missing_tag_and_a_registry_that_is_down_store_nothing() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = Registry::start(None) else { return };
    let (archive, _) = busybox_archive(&im);
    reg.skopeo_push(&archive, "test/bb:1", None);
    let e = im.fails(&["pull", &format!("{}/test/bb:nope", reg.addr)]);
    assert!(e.contains("test/bb:nope") && e.contains("not in registry"), "{e}");
    let e = im.fails(&["pull", &format!("{}/test/none:1", reg.addr)]);
    assert!(e.contains("not in registry"), "{e}");
    // The registry serves other bytes for the layer than its digest.
    let o = run_cmd(
        Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/test/bb:1", reg.addr),
        ]),
        None,
    );
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let f = reg.blob_file(&layer);
    let mut bytes = fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&f, bytes).unwrap();
    let e = im.fails(&["pull", &format!("{}/test/bb:1", reg.addr)]);
    assert!(e.to_lowercase().contains("digest"), "{e}");
    im.assert_clean(0);
    drop(reg);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = im.fails(&["pull", &format!("127.0.0.1:{port}/test/bb:1")]);
    assert!(e.contains("Connection refused"), "{e}");
    im.assert_clean(0);
}

#[test]
fn two_pulls_at_once_and_a_killed_pull_leave_a_consistent_store() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = Registry::start(None) else { return };
    // An image big enough to kill a pull in the middle: 3 layers of 8 MiB each.
    let layers: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            let data: Vec<u8> = (0..8u32 << 20)
                .map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i)
                .collect();
            Tarball::new().file(&format!("data{i}"), &data).finish()
        })
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let (tar, id) = super::archives::docker_save(&layers, &diff_ids, &["src/big:1"], &["sh"]);
    assert_ok(&im.import(&im.write("big.tar", &tar), &[]), "import");
    let oci = im.work.join("big-oci.tar");
    im.ok(&["save", "-o", oci.to_str().unwrap(), "src/big:1"]);
    im.ok(&["prune", "--all"]);
    reg.skopeo_push(&oci, "test/big:1", None);
    let r = format!("{}/test/big:1", reg.addr);
    let pull = || {
        im.rt
            .command(&[
                "image",
                "--data-root",
                im.data.path().to_str().unwrap(),
                "pull",
                "-q",
                &r,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Killed as soon as it stages anything: no image, and the next commit removes its staging.
    let mut k = pull();
    let t = Instant::now();
    while names(&im.data.join("tmp")).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    k.kill().unwrap();
    k.wait().unwrap();
    assert!(
        !im.cmd(&["inspect", &r]).status.success(),
        "no image from a killed pull"
    );
    // Two at once: both succeed, one copy of each layer.
    let (a, b) = (pull(), pull());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "a concurrent pull failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(im.inspect(&r)["Id"], id.as_str());
    assert_eq!(
        im.layers().len(),
        6,
        "three layers and their size files: {:?}",
        im.layers()
    );
    assert_eq!(names(&im.data.join("tmp")), Vec::<String>::new(), "staging left");
    im.ok(&["prune", "--all"]);
    im.assert_clean(0);
}

/// An OCI archive whose index names two platforms of one image (the same layer, configs for
/// linux/amd64 and linux/arm64), as multi-platform images on public registries are.
fn multi_platform_archive(layer: &[u8], name: &str) -> Vec<u8> {
    let mut blobs: Vec<Vec<u8>> = vec![layer.to_vec()];
    let mut manifests = Vec::new();
    for arch in ["arm64", "amd64"] {
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": layer.len()}],
        }))
        .unwrap();
        manifests.push(
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(&manifest),
                              "size": manifest.len(), "platform": {"architecture": arch, "os": "linux"}}),
        );
        blobs.push(config);
        blobs.push(manifest);
    }
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}),
    )
    .unwrap();
    let top = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(&index), "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": name}}]}))
    .unwrap();
    blobs.push(index);
    let mut t = Tarball::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &top);
    t.dir("blobs").dir("blobs/sha256");
    for b in &blobs {
        t.file(&format!("blobs/sha256/{}", sha256(b).trim_start_matches("sha256:")), b);
    }
    t.finish()
}

#[test]
fn a_multi_platform_index_gives_linux_amd64_or_the_platform_asked_and_a_wasm_artifact_travels() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = Registry::start(None) else { return };
    let layer = Tarball::new().file("etc/os", b"multi\n").finish();
    let archive = im.write("multi.tar", &multi_platform_archive(&layer, "wrun.test/multi:1"));
    // The import takes the platform from the archive's index too.
    assert_ok(&im.import(&archive, &[]), "import a multi-platform archive");
    assert_eq!(im.inspect("wrun.test/multi:1")["Architecture"], "amd64");
    im.ok(&["prune", "--all"]);
    let o = run_cmd(
        Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci-archive:{}", archive.display()),
            &format!("docker://{}/test/multi:1", reg.addr),
        ]),
        None,
    );
    assert_ok(&o, "skopeo copy --all of the index");
    let r = format!("{}/test/multi:1", reg.addr);
    im.ok(&["pull", "-q", &r]);
    assert_eq!(im.inspect(&r)["Architecture"], "amd64", "linux/amd64 by default");
    im.ok(&["pull", "-q", "--platform", "linux/arm64", &r]);
    assert_eq!(im.inspect(&r)["Architecture"], "arm64", "the platform asked for");
    let e = im.fails(&["pull", "--platform", "linux/s390x", &r]);
    assert!(
        e.contains("linux/s390x") && e.contains("linux/arm64") && e.contains("linux/amd64"),
        "{e}"
    );

    // A wasm artifact pushed by wrun and pulled back into an empty store is the same module.
    let module = fs::read(wasm_app("hello")).expect("make wasm-apps builds hello.wasm");
    let f = im.write("wasm.tar", &wasm_artifact(&module, "wrun.test/hello-wasm:1"));
    im.ok(&["import", f.to_str().unwrap()]);
    let dest = format!("{}/wasm/hello:1", reg.addr);
    im.ok(&["push", "-q", "wrun.test/hello-wasm:1", &dest]);
    im.ok(&["prune", "--all"]);
    im.assert_clean(0);
    im.ok(&["pull", "-q", &dest]);
    let dir = im.work.join("w");
    im.ok(&["mount", &dest, dir.to_str().unwrap()]);
    let got = fs::read(dir.join("rootfs/hello.wasm"));
    im.ok(&["unmount", dir.to_str().unwrap()]);
    assert_eq!(got.unwrap(), module);
}

/// `cmd` run on a pseudo-terminal (util-linux `script`): what the terminal showed.
fn on_a_terminal(cmd: &str) -> Option<String> {
    if Command::new("sh")
        .args(["-c", "command -v script"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        skip("script is not installed (apt-get install bsdutils)");
        return None;
    }
    let o = run_cmd(Command::new("script").args(["-qefc", cmd, "/dev/null"]), None);
    assert_ok(&o, &format!("on a terminal: {cmd}"));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn a_pull_on_a_terminal_draws_a_bar_per_layer_and_quiet_draws_none() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = Registry::start(None) else { return };
    let (archive, _) = busybox_archive(&im);
    reg.skopeo_push(&archive, "test/bars:1", None);
    let r = format!("{}/test/bars:1", reg.addr);
    let pull = |extra: &str| {
        let data = TempDir::new("bars");
        let cmd = format!(
            "{} image --data-root {} pull {extra} {r}",
            im.rt.bin().display(),
            data.path().display()
        );
        on_a_terminal(&cmd)
    };
    let Some(shown) = pull("") else { return };
    // indicatif's bar: "<layer>: <bar> <bytes>/<total> done", drawn with cursor movement,
    // and none of the plain lines that stand in for it off a terminal.
    let bar = shown
        .lines()
        .find(|l| l.contains("/") && l.contains("done") && l.contains("B"))
        .unwrap_or_else(|| panic!("no finished bar in {shown:?}"));
    assert!(bar.contains('\u{2588}') || bar.contains('#'), "a drawn bar: {bar:?}");
    assert!(shown.contains("\x1b["), "terminal control sequences: {shown:?}");
    assert!(!shown.contains("downloading"), "{shown:?}");
    assert!(shown.trim_end().ends_with(&r), "{shown:?}");
    let Some(quiet) = pull("-q") else { return };
    assert_eq!(quiet.trim(), r, "-q shows the reference only");
}
