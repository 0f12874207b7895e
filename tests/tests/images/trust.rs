//! Trust: containers' policy.json enforced on pulls (reject, scope precedence, GPG simple
//! signing from a registries.d lookaside, cosign key-based signatures), `wrun image
//! sign/verify/keygen` interoperating with an independent cosign-format implementation
//! (tests/tools/cosign_compat.py, Python's `cryptography`), against a real registry. A refused
//! pull stores and tags nothing.

use super::*;

fn tool(name: &str, pkg: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(&format!("{name} is not installed (apt-get install {pkg})"));
    }
    ok
}

fn python_cryptography() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("Python's cryptography is not installed (apt-get install python3-cryptography)");
    }
    ok
}

fn compat(args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/cosign_compat.py");
    run_cmd(Command::new("python3").arg(script).args(args), None)
}

/// The registry with busybox pushed as `repo:1` for each of `repos`.
fn registry_with(im: &Images, repos: &[&str]) -> Option<Registry> {
    let reg = Registry::start(None)?;
    let tar = busybox_tar(im.work.path());
    im.ok(&["import", tar.to_str().unwrap(), "--name", "src/bb:1"]);
    for r in repos {
        im.ok(&["push", "-q", "src/bb:1", &format!("{}/{r}:1", reg.addr)]);
    }
    im.ok(&["rm", "src/bb:1"]);
    Some(reg)
}

fn write_policy(im: &Images, name: &str, docker: Value) -> PathBuf {
    im.write(
        name,
        serde_json::to_string_pretty(&json!({"default": [{"type": "reject"}], "transports": {"docker": docker}}))
            .unwrap()
            .as_bytes(),
    )
}

/// A pull that the policy must refuse: one line naming the image and `why`, nothing stored.
#[track_caller]
fn refused(im: &Images, policy: &Path, image: &str, extra: &[&str], why: &str) {
    let mut args = vec!["pull", "-q", "--signature-policy", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(image);
    let e = im.fails(&args);
    assert!(
        e.contains(&format!("image {image} refused by policy")) && e.contains(why),
        "{e}"
    );
    im.assert_clean(0);
}

#[test]
fn reject_and_the_most_specific_scope_decide_a_pull_and_a_refusal_stores_nothing() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = registry_with(&im, &["team/app", "team/other", "solo"]) else {
        return;
    };
    let a = &reg.addr;
    let pol = write_policy(
        &im,
        "scopes.json",
        json!({
            a.clone(): [{"type": "reject"}],
            format!("{a}/team"): [{"type": "insecureAcceptAnything"}],
            format!("{a}/team/other:1"): [{"type": "reject"}],
        }),
    );
    refused(
        &im,
        &pol,
        &format!("{a}/solo:1"),
        &[],
        &format!("transports.docker[\"{a}\"]: reject"),
    );
    refused(
        &im,
        &pol,
        &format!("{a}/team/other:1"),
        &[],
        &format!("[\"{a}/team/other:1\"]: reject"),
    );
    im.ok(&[
        "pull",
        "-q",
        "--signature-policy",
        pol.to_str().unwrap(),
        &format!("{a}/team/app:1"),
    ]);
    // The same policy refuses `container run` and `build` when they pull.
    let run = im.rt.exec(&[
        "container",
        "--data-root",
        im.data.path().to_str().unwrap(),
        "run",
        "--rm",
        "--signature-policy",
        pol.to_str().unwrap(),
        &format!("{a}/solo:1"),
        "true",
    ]);
    assert_fails(&run, "run of a refused image");
    assert!(stderr(&run).contains("refused by policy"), "{}", stderr(&run));
    let ctx = im.work.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), format!("FROM {a}/solo:1\nLABEL x=y\n")).unwrap();
    let b = im.rt.exec(&[
        "build",
        "--data-root",
        im.data.path().to_str().unwrap(),
        "--signature-policy",
        pol.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert_fails(&b, "build FROM a refused image");
    assert!(stderr(&b).contains("refused by policy"), "{}", stderr(&b));
    assert_eq!(
        im.index()["manifests"].as_array().unwrap().len(),
        1,
        "only team/app is stored"
    );
}

#[test]
fn cosign_signatures_made_by_wrun_and_by_an_independent_implementation_verify_both_ways() {
    let Some(im) = Images::new() else { return };
    if !python_cryptography() {
        return;
    }
    let Some(reg) = registry_with(&im, &["by-wrun", "by-python", "unsigned", "tampered"]) else {
        return;
    };
    let a = &reg.addr;
    let k = im.work.join("wrun");
    let out = im.ok(&["keygen", "--output-key-prefix", k.to_str().unwrap()]);
    assert!(out.contains("wrun.key") && out.contains("wrun.pub"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(im.work.join("wrun.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let e = im.fails(&["keygen", "--output-key-prefix", k.to_str().unwrap()]);
    assert!(e.contains("exists"), "{e}");
    let (key, public) = (im.work.join("wrun.key"), im.work.join("wrun.pub"));
    let (key, public) = (key.to_str().unwrap(), public.to_str().unwrap());
    // wrun signs; Python verifies (and wrun too).
    let img = format!("{a}/by-wrun:1");
    let out = im.ok(&["sign", "--key", key, &img]);
    assert!(out.contains(".sig"), "{out}");
    assert_ok(&compat(&["verify", public, &img]), "Python verifies wrun's signature");
    assert!(im.ok(&["verify", "--key", public, &img]).contains("Verified"));
    // Python signs with its own key; wrun verifies with that public key.
    let py = im.work.join("py");
    assert_ok(&compat(&["keygen", py.to_str().unwrap()]), "python keygen");
    let (py_key, py_pub) = (format!("{}.key", py.display()), format!("{}.pub", py.display()));
    let pimg = format!("{a}/by-python:1");
    assert_ok(&compat(&["sign", &py_key, &pimg]), "python sign");
    assert!(im.ok(&["verify", "--key", &py_pub, &pimg]).contains("Verified"));
    // The wrong key, no signature, a tampered signature: refused.
    let e = im.fails(&["verify", "--key", public, &pimg]);
    assert!(e.contains("no signature verifies with this key"), "{e}");
    let e = im.fails(&["verify", "--key", public, &format!("{a}/unsigned:1")]);
    assert!(e.contains("no signature"), "{e}");
    // A signature whose payload is another image's: it verifies, but is not for this digest.
    let timg = format!("{a}/tampered:1");
    let digest = |r: &str| -> String {
        let o = run_cmd(
            Command::new("skopeo").args([
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                &format!("docker://{r}"),
            ]),
            None,
        );
        assert_ok(&o, "skopeo inspect");
        stdout(&o).trim().to_string()
    };
    let (wd, td) = (digest(&img), digest(&timg));
    assert_eq!(wd, td, "the same image pushed twice has one digest");
    // Re-sign by-wrun under its digest, then move the signature of by-wrun onto a new tag of
    // a different image: the signed digest no longer names it.
    let tar = busybox_tar(im.work.path());
    im.ok(&[
        "import",
        tar.to_str().unwrap(),
        "--name",
        "src/other:1",
        "-c",
        "ENV X=1",
    ]);
    im.ok(&["push", "-q", "src/other:1", &timg]);
    let new = digest(&timg);
    assert_ne!(new, wd);
    let sig_src = format!("docker://{a}/by-wrun:{}.sig", wd.replace(':', "-"));
    let sig_dst = format!("docker://{a}/tampered:{}.sig", new.replace(':', "-"));
    let o = run_cmd(
        Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--preserve-digests",
            &sig_src,
            &sig_dst,
        ]),
        None,
    );
    assert_ok(&o, "copy the signature manifest to the other image's tag");
    let e = im.fails(&["verify", "--key", public, &timg]);
    assert!(e.contains("signature is for"), "{e}");

    // The policy: sigstoreSigned with each key; Python's signature names the repository, so
    // its scope accepts matchRepository.
    let pol = write_policy(
        &im,
        "cosign.json",
        json!({
            format!("{a}/by-wrun"): [{"type": "sigstoreSigned", "keyPath": public}],
            format!("{a}/by-python"): [{"type": "sigstoreSigned", "keyPath": py_pub, "signedIdentity": {"type": "matchRepository"}}],
            format!("{a}/unsigned"): [{"type": "sigstoreSigned", "keyPath": public}],
            format!("{a}/tampered"): [{"type": "sigstoreSigned", "keyPath": public}],
        }),
    );
    im.ok(&["rm", "src/other:1"]);
    refused(&im, &pol, &timg, &[], "signature is for");
    refused(&im, &pol, &format!("{a}/unsigned:1"), &[], "no signature");
    let p = pol.to_str().unwrap();
    im.ok(&["pull", "-q", "--signature-policy", p, &img]);
    im.ok(&["pull", "-q", "--signature-policy", p, &pimg]);
    // Python's repository-only identity is refused by the default signedIdentity.
    let strict = write_policy(
        &im,
        "strict.json",
        json!({format!("{a}/by-python"): [{"type": "sigstoreSigned", "keyPath": py_pub}]}),
    );
    let e = im.fails(&["pull", "-q", "--signature-policy", strict.to_str().unwrap(), &pimg]);
    assert!(e.contains("use signedIdentity matchRepository"), "{e}");
}

#[test]
fn gpg_simple_signing_from_a_lookaside_is_verified_by_signed_by() {
    let Some(im) = Images::new() else { return };
    if !tool("gpg", "gnupg") || !tool("gpgv", "gpgv") {
        return;
    }
    let Some(reg) = registry_with(&im, &["src"]) else {
        return;
    };
    let a = &reg.addr;
    // A throwaway GnuPG home and key, signing with skopeo into a file lookaside.
    let home = im.work.join("gnupg");
    fs::create_dir_all(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let o = run_cmd(
            Command::new("gpg")
                .env("GNUPGHOME", &home)
                .args(["--batch", "--passphrase", ""])
                .args(args),
            None,
        );
        assert_ok(&o, &format!("gpg {}", args.join(" ")));
        o
    };
    gpg(&[
        "--quick-gen-key",
        "wrun test <test@wrun.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    gpg(&[
        "--quick-gen-key",
        "other <other@wrun.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    let fprs: Vec<String> = stdout(&gpg(&["--list-keys", "--with-colons"]))
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .map(|l| l.split(':').nth(9).unwrap().to_string())
        .collect();
    let key = im.work.join("signer.gpg");
    fs::write(&key, gpg(&["--export", &fprs[0]]).stdout).unwrap();
    let wrong = im.work.join("other.asc");
    fs::write(&wrong, gpg(&["--armor", "--export", &fprs[1]]).stdout).unwrap();
    let sigs = im.work.join("sigstore");
    let regd = im.work.join("registries.d");
    fs::create_dir_all(&regd).unwrap();
    fs::write(
        regd.join("test.yaml"),
        format!(
            "docker:\n  {a}:\n    lookaside: file://{0}\n    lookaside-staging: file://{0}\n",
            sigs.display()
        ),
    )
    .unwrap();
    let o = run_cmd(
        Command::new("skopeo").env("GNUPGHOME", &home).args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--registries.d",
            regd.to_str().unwrap(),
            "--sign-by",
            &fprs[0],
            &format!("docker://{a}/src:1"),
            &format!("docker://{a}/signed:1"),
        ]),
        None,
    );
    assert_ok(&o, "skopeo copy --sign-by");
    let d = regd.to_str().unwrap();
    let signed = format!("{a}/signed:1");
    let pol = |name: &str, k: &Path| {
        write_policy(
            &im,
            name,
            json!({format!("{a}/signed"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": k}],
                   format!("{a}/src"): [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": k}]}),
        )
    };
    let good = pol("gpg.json", &key);
    // No signature for the unsigned image; the wrong key (armoured) for the signed one.
    refused(
        &im,
        &good,
        &format!("{a}/src:1"),
        &["--registries.d", d],
        "no signature at file://",
    );
    refused(
        &im,
        &pol("wrong.json", &wrong),
        &signed,
        &["--registries.d", d],
        "gpgv:",
    );
    // No lookaside configured for the registry.
    let empty = im.work.join("empty.d");
    fs::create_dir_all(&empty).unwrap();
    refused(
        &im,
        &good,
        &signed,
        &["--registries.d", empty.to_str().unwrap()],
        "no lookaside storage",
    );
    // A tampered signature file.
    let sig = walk_files(&sigs).into_iter().next().expect("skopeo wrote a signature");
    let orig = fs::read(&sig).unwrap();
    let mut bad = orig.clone();
    let n = bad.len();
    bad[n / 2] ^= 0x20;
    fs::write(&sig, &bad).unwrap();
    refused(&im, &good, &signed, &["--registries.d", d], "gpgv:");
    fs::write(&sig, &orig).unwrap();
    im.ok(&[
        "pull",
        "-q",
        "--signature-policy",
        good.to_str().unwrap(),
        "--registries.d",
        d,
        &signed,
    ]);
    // keyData: the key inline, base64.
    use std::io::Write as _;
    let b64 = {
        let mut c = Command::new("base64")
            .args(["-w0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&fs::read(&key).unwrap()).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
    };
    let inline = write_policy(
        &im,
        "inline.json",
        json!({format!("{a}/signed"): [{"type": "signedBy", "keyType": "GPGKeys", "keyData": b64}]}),
    );
    im.ok(&["rm", &signed]);
    im.ok(&[
        "pull",
        "-q",
        "--signature-policy",
        inline.to_str().unwrap(),
        "--registries.d",
        d,
        &signed,
    ]);
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn bad_policies_and_keys_are_one_line_errors_and_pull_nothing() {
    let Some(im) = Images::new() else { return };
    let Some(reg) = registry_with(&im, &["app"]) else {
        return;
    };
    let img = format!("{}/app:1", reg.addr);
    let try_policy = |name: &str, text: &str, want: &str| {
        let f = im.write(name, text.as_bytes());
        let e = im.fails(&["pull", "-q", "--signature-policy", f.to_str().unwrap(), &img]);
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
        im.assert_clean(0);
    };
    try_policy(
        "syntax.json",
        "{\"default\": [\n  {\"type\": \"reject\"},\n]}",
        "line 3",
    );
    try_policy(
        "unknown.json",
        r#"{"default": [{"type": "trustMe"}]}"#,
        r#"default[0].type: unknown type "trustMe""#,
    );
    try_policy(
        "field.json",
        r#"{"default": [{"type": "reject", "keyPath": "/k"}]}"#,
        "default[0].keyPath: not a field of reject",
    );
    try_policy(
        "fulcio.json",
        r#"{"default": [{"type": "sigstoreSigned", "fulcio": {}, "keyPath": "/k"}]}"#,
        "keyless (Fulcio) signatures are not supported",
    );
    let missing = im.work.join("no-such.pub");
    let f = write_policy(
        &im,
        "missing-key.json",
        json!({reg.addr.clone(): [{"type": "sigstoreSigned", "keyPath": missing}]}),
    );
    let e = im.fails(&["pull", "-q", "--signature-policy", f.to_str().unwrap(), &img]);
    assert!(e.contains("no-such.pub") && e.contains("No such file"), "{e}");
    im.assert_clean(0);
    let e = im.fails(&[
        "pull",
        "-q",
        "--signature-policy",
        im.work.join("absent.json").to_str().unwrap(),
        &img,
    ]);
    assert!(e.contains("absent.json"), "{e}");
    let e = im.fails(&["sign", "--key", missing.to_str().unwrap(), &img]);
    assert!(e.contains("--key") && e.contains("no-such.pub"), "{e}");
    let notkey = im.write("not-a-key.pem", b"hello\n");
    let e = im.fails(&["sign", "--key", notkey.to_str().unwrap(), &img]);
    assert!(e.contains("no PEM \"PRIVATE KEY\" block"), "{e}");
}
