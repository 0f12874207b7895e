//! `wrun build`: images from a Dockerfile (instructions, layers with whiteouts, the cache,
//! reproducible builds, multi-stage), and what a hostile Dockerfile, context or base image
//! can do with it.

use super::*;

impl Front {
    /// `wrun build ARGS` in this data root.
    fn build(&self, args: &[&str]) -> Output {
        let mut full = vec!["build", "--data-root", self.data_root()];
        full.extend_from_slice(args);
        self.rt.exec(&full)
    }

    /// A build context under the work directory: `files` (path, content), and the Dockerfile.
    fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.work.join(name);
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("Dockerfile"), dockerfile).unwrap();
        for (p, c) in files {
            let p = d.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
        d
    }

    fn image_config(&self, name: &str) -> Value {
        let o = self.image(&["inspect", name]);
        assert_ok(&o, "image inspect");
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        v[0].clone()
    }
}

fn built_counts(o: &Output) -> String {
    stdout(o)
        .lines()
        .find(|l| l.starts_with("Successfully built"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn build_makes_the_image_the_dockerfile_describes() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:build", &[]);
    let df = "FROM bb:build\n\
              ARG GREETING=hi\n\
              ENV APP=/app\n\
              WORKDIR $APP\n\
              COPY . ./src/\n\
              COPY hello.txt .\n\
              COPY s?b/* /globbed/\n\
              RUN echo \"$GREETING from run\" > made.txt && rm /bin/vi && chown app /app/made.txt\n\
              COPY --chmod=600 --chown=app:wheel hello.txt /etc/hello\n\
              LABEL org.example.k=v\n\
              EXPOSE 8080\n\
              USER app\n\
              ENTRYPOINT [\"cat\"]\n\
              CMD [\"/app/made.txt\"]\n";
    let ctx = f.context(
        "ctx1",
        df,
        &[
            ("hello.txt", "hello\n"),
            ("secret.key", "do not ship\n"),
            ("sub/x", "x\n"),
            (".dockerignore", "*.key\n"),
        ],
    );
    let o = f.build(&["-t", "wrun.test/built:1", ctx.to_str().unwrap()]);
    assert_ok(&o, "build");
    assert!(stdout(&o).contains("Step 14/14 : CMD"), "{}", show(&o));
    // The entrypoint and cmd, the user, the ARG given to RUN.
    let out = f.run_ok(&["--network", "none", "wrun.test/built:1"]);
    assert_eq!(out, "hi from run\n");
    // --build-arg over the ARG's default: a new key, so the RUN runs again.
    let o = f.build(&[
        "--build-arg",
        "GREETING=hello",
        "-t",
        "wrun.test/built:2",
        ctx.to_str().unwrap(),
    ]);
    assert_ok(&o, "build --build-arg");
    assert_eq!(
        f.run_ok(&["--network", "none", "wrun.test/built:2"]),
        "hello from run\n"
    );
    let out = f.run_ok(&[
        "--network",
        "none",
        "-u",
        "0",
        "--entrypoint",
        "",
        "wrun.test/built:1",
        "sh",
        "-c",
        "id -un; pwd; stat -c '%a %U %G' /etc/hello /app/made.txt; ls /app/src; ls /bin/vi 2>&1; echo APP=$APP GREETING=$GREETING; ls /globbed",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "root");
    assert_eq!(lines[1], "/app", "WORKDIR: {out}");
    assert_eq!(lines[2], "600 app wheel", "--chmod and --chown: {out}");
    assert_eq!(lines[3], "644 app root", "RUN's chown: {out}");
    assert!(
        out.contains("Dockerfile") && out.contains("hello.txt") && out.contains("sub"),
        "{out}"
    );
    assert!(!out.contains("secret.key"), ".dockerignore: {out}");
    assert!(
        out.contains("/bin/vi: No such file"),
        "the RUN's deletion is a whiteout: {out}"
    );
    assert!(out.contains("APP=/app GREETING=\n"), "ENV kept, ARG not: {out}");
    assert!(out.ends_with("GREETING=\nx\n"), "COPY with a wildcard: {out}");
    let img = f.image_config("wrun.test/built:1");
    let cfg = &img["Config"];
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["cat"]));
    assert_eq!(cfg["Labels"]["org.example.k"], "v");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    let o = f.image(&["history", "--no-trunc", "wrun.test/built:1"]);
    assert_ok(&o, "image history");
    let history: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert!(history.iter().any(|h| h.contains("RUN echo")), "{history:?}");
    assert!(history.iter().any(|h| h.contains("WORKDIR /app")), "{history:?}");
    // A layer per RUN and COPY (the base has one).
    assert_eq!(img["RootFS"]["Layers"].as_array().map(Vec::len), Some(1 + 5), "{img}");
    // The cache's images are not listed; the built ones are.
    let ls = stdout(&f.image(&["ls"]));
    assert_eq!(ls.lines().count(), 4, "{ls}");
    f.assert_nothing_left();
}

#[test]
fn the_cache_skips_unchanged_steps_and_reruns_from_a_changed_copy() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:cache", &[]);
    let df =
        "FROM bb:cache\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\nCMD [\"cat\", \"/b.txt\"]\n";
    let ctx = f.context("ctx2", df, &[("a.txt", "first\n")]);
    let c = ctx.to_str().unwrap();
    let o = f.build(&["-t", "wrun.test/c:1", c]);
    assert_ok(&o, "first build");
    assert!(
        built_counts(&o).contains("(4 steps run, 0 from the cache)"),
        "{}",
        show(&o)
    );
    let o = f.build(&["-t", "wrun.test/c:1", c]);
    assert!(
        built_counts(&o).contains("(0 steps run, 4 from the cache)"),
        "{}",
        show(&o)
    );
    fs::write(ctx.join("a.txt"), "second\n").unwrap();
    let o = f.build(&["-t", "wrun.test/c:1", c]);
    assert!(
        built_counts(&o).contains("(3 steps run, 1 from the cache)"),
        "{}",
        show(&o)
    );
    assert_eq!(f.run_ok(&["--network", "none", "wrun.test/c:1"]), "second\n");
    let o = f.build(&["--no-cache", "-t", "wrun.test/c:1", c]);
    assert!(
        built_counts(&o).contains("(4 steps run, 0 from the cache)"),
        "{}",
        show(&o)
    );
    // -q: the image id alone, the steps' output (RUN's too) hidden.
    let o = f.build(&["-q", "--no-cache", c]);
    assert_ok(&o, "build -q");
    let out = stdout(&o);
    assert!(out.starts_with("sha256:") && out.lines().count() == 1, "{}", show(&o));
    // --iidfile and --label: the id written, the label on the image (a new image: a new id).
    let iid = f.work.join("iid");
    let o = f.build(&[
        "--iidfile",
        iid.to_str().unwrap(),
        "--label",
        "built.by=wrun",
        "-t",
        "wrun.test/c:2",
        c,
    ]);
    assert_ok(&o, "build --iidfile --label");
    let img = f.image_config("wrun.test/c:2");
    assert_eq!(fs::read_to_string(&iid).unwrap(), img["Id"].as_str().unwrap());
    assert_eq!(img["Config"]["Labels"]["built.by"], "wrun");
    assert_ne!(img["Id"], f.image_config("wrun.test/c:1")["Id"]);
    f.assert_nothing_left();
}

#[test]
fn builds_with_source_date_epoch_are_reproducible() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:repro", &[]);
    let df = "FROM bb:repro\nCOPY a.txt /a.txt\nRUN date > /when && mkdir /d && touch /d/f\n";
    let ctx = f.context("ctx3", df, &[("a.txt", "a\n")]);
    let id = || {
        let o = run_cmd(
            f.rt.command(&[
                "build",
                "--data-root",
                f.data_root(),
                "--no-cache",
                "-q",
                ctx.to_str().unwrap(),
            ])
            .env("SOURCE_DATE_EPOCH", "1700000000"),
            None,
        );
        assert_ok(&o, "build");
        stdout(&o).trim().to_string()
    };
    let (a, b) = (id(), id());
    // `date` differs between the two RUNs by at most a second; the files' times are clamped.
    let same_second = a == b;
    let img = f.image_config(&a);
    assert_eq!(img["Created"], "2023-11-14T22:13:20.000000000Z");
    if !same_second {
        // Only /when's content may differ: the layers but the RUN's are the same.
        let other = f.image_config(&b);
        assert_eq!(
            img["RootFS"]["Layers"][1], other["RootFS"]["Layers"][1],
            "the COPY layer"
        );
    }
    f.assert_nothing_left();
}

#[test]
fn multi_stage_builds_copy_from_a_stage_and_target_stops_there() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:stages", &[]);
    let df = "FROM bb:stages AS build\n\
              RUN mkdir -p /out && echo compiled > /out/prog && ln -s /etc/shadow /out/evil\n\
              FROM scratch\n\
              COPY --from=build /out /app\n\
              COPY --from=build /bin/busybox /bin/busybox\n\
              CMD [\"/bin/busybox\", \"cat\", \"/app/prog\"]\n";
    let ctx = f.context("ctx4", df, &[]);
    let o = f.build(&["-t", "wrun.test/small:1", ctx.to_str().unwrap()]);
    assert_ok(&o, "build");
    assert_eq!(f.run_ok(&["--network", "none", "wrun.test/small:1"]), "compiled\n");
    let out = f.run_ok(&[
        "--network",
        "none",
        "wrun.test/small:1",
        "/bin/busybox",
        "readlink",
        "/app/evil",
    ]);
    assert_eq!(out, "/etc/shadow\n", "a symlink is copied as one");
    assert_eq!(
        f.image_config("wrun.test/small:1")["RootFS"]["Layers"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "only the final stage's layers"
    );
    let o = f.build(&[
        "--target",
        "build",
        "-t",
        "wrun.test/buildstage:1",
        ctx.to_str().unwrap(),
    ]);
    assert_ok(&o, "build --target");
    assert!(
        !stdout(&o).contains("FROM scratch"),
        "stages after the target are not built"
    );
    let o = f.build(&["--target", "nosuch", ctx.to_str().unwrap()]);
    assert_one_line_error(&o, &["--target nosuch"]);
    f.assert_nothing_left();
}

/// A Dockerfile, its context and its base image are the attacker's: none of them may make the
/// build read or write a host path, and a failed build leaves nothing.
#[test]
fn a_hostile_dockerfile_context_or_base_image_cannot_reach_the_host() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:hostile", &[]);
    let host_dir = f.work.join("host-target");
    fs::create_dir_all(&host_dir).unwrap();
    let secret = f.work.join("host-secret");
    fs::write(&secret, "host secret\n").unwrap();
    // A base image whose /app is a symlink to a host directory's absolute path: COPY into it
    // stays in the image.
    let df = format!("FROM bb:hostile\nRUN ln -s {} /app\n", host_dir.display());
    let base = f.context("evilbase", &df, &[]);
    assert_ok(
        &f.build(&["-t", "wrun.test/evilbase:1", base.to_str().unwrap()]),
        "the hostile base",
    );
    let df = "FROM wrun.test/evilbase:1\nCOPY f.txt /app/\nCOPY link /link\nADD evil.tar /x/\n";
    let ctx = f.context("evilctx", df, &[("f.txt", "payload\n")]);
    std::os::unix::fs::symlink(&secret, ctx.join("link")).unwrap();
    // A tar with a symlink to the host's /etc: unpacked in the image, it stays a symlink there.
    let mut t = Tarball::new();
    t.symlink("up", "/etc").file("ok.txt", b"in");
    fs::write(ctx.join("evil.tar"), t.finish()).unwrap();
    let o = f.build(&["-t", "wrun.test/evil:1", ctx.to_str().unwrap()]);
    assert_ok(&o, "build");
    assert_eq!(
        fs::read_dir(&host_dir).unwrap().count(),
        0,
        "nothing written through a symlink"
    );
    let out = f.run_ok(&[
        "--network",
        "none",
        "wrun.test/evil:1",
        "sh",
        "-c",
        "readlink /link; cat /link 2>/dev/null; ls /x; cat /app/f.txt; readlink /x/up",
    ]);
    assert!(out.ends_with("payload\n/etc\n"), "{out}");
    assert!(
        !out.contains("host secret"),
        "the context's symlink was followed: {out}"
    );
    assert!(out.starts_with(&format!("{}\n", secret.display())), "{out}");
    assert!(out.contains("ok.txt") && out.contains("payload"), "{out}");
    let mut t = Tarball::new();
    t.file("../../../../../../escaped.txt", b"out");
    let climbing = t.finish();
    // Sources outside the context, remote ADD, a failing RUN, bad files: one line, nothing left.
    for (df, want) in [
        ("FROM bb:hostile\nCOPY ../host-secret /s\n", "outside the build context"),
        (
            "FROM bb:hostile\nADD http://127.0.0.1:1/x /x\n",
            "remote sources are refused",
        ),
        ("FROM bb:hostile\nRUN echo partial > /p && exit 3\n", "non-zero code: 3"),
        (
            "FROM bb:hostile\nRUN --mount=type=cache,target=/c true\n",
            "RUN --mount",
        ),
        ("FROM bb:hostile\nFROB x\n", "Dockerfile:2"),
        ("FROM scratch\nRUN true\n", "RUN needs a filesystem"),
        ("FROM 127.0.0.1:1/nosuch:1\n", "127.0.0.1:1"),
        ("FROM bb:hostile\nCOPY nosuch /x\n", "nosuch"),
        ("FROM bb:hostile\nADD climb.tar /x/\n", "climbs out"),
        (
            "FROM bb:hostile\nARG DIR\nWORKDIR $DIR/x\n",
            "ARG DIR is used but has no value",
        ),
        ("ARG BASE\nFROM ${BASE}\n", "ARG BASE is used but has no value"),
    ] {
        let ctx = f.context("bad", df, &[]);
        fs::write(ctx.join("climb.tar"), &climbing).unwrap();
        let o = f.build(&[ctx.to_str().unwrap()]);
        assert_one_line_error(&o, &[want]);
        f.assert_nothing_left();
    }
    let o = f.build(&[f.work.join("no-such-context").to_str().unwrap()]);
    assert_one_line_error(&o, &["no-such-context"]);
    // A symlink in the context leads nowhere outside it: `lnk/host-secret`, with `lnk` pointing
    // at the host directory that holds the secret, is the context's own (missing) path.
    for src in ["lnk/host-secret", "lnk/host-*"] {
        let ctx = f.context("lnkctx", &format!("FROM bb:hostile\nCOPY {src} /s\n"), &[]);
        std::os::unix::fs::symlink(f.work.path(), ctx.join("lnk")).unwrap();
        let o = f.build(&[ctx.to_str().unwrap()]);
        assert_one_line_error(&o, &["no such file"]);
        f.assert_nothing_left();
    }
    // The context's Dockerfile is read inside it, and only as a regular file: a symlink to a
    // host file is the context's own (missing) path, a FIFO is refused (not waited on).
    let ctx = f.context("dfctx", "", &[]);
    fs::remove_file(ctx.join("Dockerfile")).unwrap();
    std::os::unix::fs::symlink(&secret, ctx.join("Dockerfile")).unwrap();
    assert_one_line_error(&f.build(&[ctx.to_str().unwrap()]), &["no Dockerfile"]);
    fs::remove_file(ctx.join("Dockerfile")).unwrap();
    let fifo = std::ffi::CString::new(ctx.join("Dockerfile").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    assert_one_line_error(&f.build(&[ctx.to_str().unwrap()]), &["not a regular file"]);
    // COPY --from resolves inside the source image's root: a stage whose /lnk points at the
    // host directory of the secret gives `/lnk/host-secret` only if its own tree has it.
    let df = format!(
        "FROM bb:hostile AS src\nRUN ln -s {} /lnk\nFROM bb:hostile\nCOPY --from=src /lnk/host-secret /s\n",
        f.work.path().display()
    );
    let ctx = f.context("fromctx", &df, &[]);
    assert_one_line_error(&f.build(&[ctx.to_str().unwrap()]), &["host-secret"]);
    f.assert_nothing_left();
    // A FIFO in the context is neither read nor copied: the build does not hang on it.
    let ctx = f.context("fifoctx", "FROM bb:hostile\nCOPY . /ctx/\n", &[("a.txt", "a\n")]);
    let fifo = std::ffi::CString::new(ctx.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let o = f.build(&["-t", "wrun.test/fifo:1", ctx.to_str().unwrap()]);
    assert_ok(&o, "build with a FIFO in the context");
    let out = f.run_ok(&["--network", "none", "wrun.test/fifo:1", "ls", "/ctx"]);
    assert_eq!(out, "Dockerfile\na.txt\n");
}

/// The seed talk's myrand workflow in miniature (examples/myrand builds the real one from a
/// Debian base and gcc, which needs the Debian mirror): a shell-form ENTRYPOINT reads `$VAL`
/// when the container runs, so `-e VAL=5` gives five numbers and the image's ENV one.
#[test]
fn a_shell_form_entrypoint_sees_val_from_the_image_or_run_e() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:myrand", &[]);
    let script = "#!/bin/sh\ni=0\nwhile [ \"$i\" -lt \"${1:-1}\" ]; do echo \"$i\"; i=$((i + 1)); done\n";
    let df = "FROM bb:myrand\nCOPY --chmod=755 myrand /app/myrand\nENV VAL=1\nENTRYPOINT /app/myrand $VAL\n";
    let ctx = f.context("myrand", df, &[("myrand", script)]);
    assert_ok(&f.build(&["-t", "myrand", ctx.to_str().unwrap()]), "build");
    assert_eq!(
        f.run_ok(&["--network", "none", "-e", "VAL=5", "myrand"])
            .lines()
            .count(),
        5
    );
    assert_eq!(f.run_ok(&["--network", "none", "myrand"]).lines().count(), 1);
    f.assert_nothing_left();
}

/// A wasm image from a Dockerfile: `FROM scratch`, the module copied in, run by wasmtime in
/// the same sandbox; `--platform wasi/wasm` marks it so.
#[test]
fn a_wasm_image_builds_from_scratch_and_runs_in_wasmtime() {
    let Some(f) = Front::new() else { return };
    let df = "FROM scratch\nCOPY hello.wasm /\nENTRYPOINT [\"/hello.wasm\"]\nCMD [\"from-a-dockerfile\"]\n";
    let ctx = f.context("wasm", df, &[]);
    fs::copy(wasm_app("hello"), ctx.join("hello.wasm")).unwrap();
    let o = f.build(&[
        "--platform",
        "wasi/wasm",
        "-t",
        "wrun.test/hello-built:1",
        ctx.to_str().unwrap(),
    ]);
    assert_ok(&o, "build");
    let img = f.image_config("wrun.test/hello-built:1");
    assert_eq!(
        (img["Os"].as_str(), img["Architecture"].as_str()),
        (Some("wasi"), Some("wasm")),
        "{img}"
    );
    let out = f.run_ok(&["--network", "none", "--memory", "64m", "wrun.test/hello-built:1"]);
    assert!(out.starts_with("hello from wasm\n"), "{out}");
    assert!(out.contains("argv[1]=from-a-dockerfile"), "{out}");
    f.assert_nothing_left();
}

/// examples/myrand end to end: the Debian base (mmdebstrap), gcc from the Debian mirror, the
/// three Dockerfiles, `-e VAL=5`. It reaches deb.debian.org, which the suite's tests do not do
/// by default: WRUN_TEST_NETWORK=1 runs it.
#[test]
fn the_myrand_example_builds_and_runs_end_to_end() {
    if std::env::var("WRUN_TEST_NETWORK").as_deref() != Ok("1") {
        skip("the myrand example needs the Debian mirror (set WRUN_TEST_NETWORK=1 to run it)");
        return;
    }
    if Command::new("mmdebstrap").arg("--version").output().is_err() {
        skip("mmdebstrap is missing (apt-get install mmdebstrap)");
        return;
    }
    let Some(f) = Front::new() else { return };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/myrand/run.sh");
    // Minutes, not the suite's 20 s per command: mmdebstrap and two apt-get installs.
    let o = Command::new("timeout")
        .arg("900")
        .arg("bash")
        .arg(&script)
        .env("WRUN", f.rt.bin())
        .env("WRUN_DATA_ROOT", f.data_root())
        .output()
        .expect("run timeout(1)");
    assert_ok(&o, "examples/myrand/run.sh");
    let out = stdout(&o);
    let numbers = |after: &str| {
        out.split(after)
            .nth(1)
            .unwrap_or("")
            .lines()
            .take_while(|l| !l.starts_with("=="))
            .filter(|l| l.parse::<u64>().is_ok())
            .count()
    };
    assert_eq!(numbers("run --rm -e VAL=5 myrand\n"), 5, "{out}");
    assert_eq!(numbers("run --rm myrand\n"), 1, "{out}");
    f.assert_nothing_left();
}

#[test]
fn build_scan_keeps_a_vulnerable_image_untagged_and_deleted_files_are_warned_of() {
    let Some(f) = Front::new() else { return };
    f.import_busybox("bb:scan", &[]);
    let status = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.11-1~deb12u2\n";
    let db = f.work.join("osv");
    fs::create_dir_all(&db).unwrap();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let adv = serde_json::json!({"id": "DSA-B1", "modified": String::from_utf8(date.stdout).unwrap().trim(),
        "database_specific": {"severity": "HIGH"},
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}]});
    fs::write(db.join("DSA-B1.json"), adv.to_string()).unwrap();
    let df = "FROM bb:scan\n\
              COPY status /var/lib/dpkg/status\n\
              COPY os-release /etc/os-release\n\
              RUN head -c 200000 /dev/zero > /big\n\
              RUN rm /big\n";
    let ctx = f.context(
        "scan",
        df,
        &[("status", status), ("os-release", "ID=debian\nVERSION_ID=12\n")],
    );
    let d = db.to_str().unwrap();
    let o = f.build(&[
        "-t",
        "wrun.test/vuln:1",
        "--scan",
        "--db",
        d,
        "--fail-on",
        "high",
        ctx.to_str().unwrap(),
    ]);
    assert_fails(&o, "a high finding fails build --scan --fail-on high");
    let e = stderr(&o);
    assert!(
        e.contains("1 vulnerabilities at or above high (DSA-B1 in libssl3)"),
        "{e}"
    );
    assert!(stdout(&o).contains("DSA-B1"), "the report is printed: {}", show(&o));
    // The chained-RUN lesson, computed: the second RUN deletes what the first added.
    assert!(
        e.contains("RUN rm /big deletes 200kB in 1 files (/big) that RUN head -c 200000 /dev/zero > /big added"),
        "{e}"
    );
    let ls = stdout(&f.image(&["ls"]));
    assert!(!ls.contains("wrun.test/vuln"), "a refused build is not tagged: {ls}");

    // Below the threshold the build is named; the steps come from the cache.
    let o = f.build(&[
        "-t",
        "wrun.test/vuln:1",
        "--scan",
        "--db",
        d,
        "--fail-on",
        "critical",
        ctx.to_str().unwrap(),
    ]);
    assert_ok(&o, "build --scan --fail-on critical");
    assert!(built_counts(&o).contains("0 steps run"), "{}", show(&o));
    assert!(
        stdout(&o).contains("1 vulnerabilities (0 critical, 1 high"),
        "{}",
        show(&o)
    );
    assert!(stdout(&f.image(&["ls"])).contains("wrun.test/vuln"));

    // Chained in one RUN, nothing is carried and nothing is said.
    let df = "FROM bb:scan\nRUN head -c 200000 /dev/zero > /big && rm /big\nRUN touch /x\n";
    let ctx = f.context("chained", df, &[]);
    let o = f.build(&["-t", "wrun.test/chained:1", ctx.to_str().unwrap()]);
    assert_ok(&o, "build chained");
    assert!(!stderr(&o).contains("deletes"), "{}", show(&o));
    // --db without --scan is a mistake, said so.
    let o = f.build(&["--db", d, ctx.to_str().unwrap()]);
    assert_fails(&o, "--db without --scan");
    assert!(stderr(&o).contains("--db and --fail-on go with --scan"), "{}", show(&o));
}
