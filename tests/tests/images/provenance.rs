//! `wrun image sbom` and `wrun image scan`: the packages an image holds (checked against
//! what dpkg-query counts inside it), where each came from, and matching them against an
//! OSV database the tests write themselves; hostile package databases and bad databases.

use super::*;

/// An image of `layers` (uncompressed tars, bottom first) named `name`.
fn image(im: &Images, layers: &[Vec<u8>], name: &str) {
    let cfg = json!({"architecture": "amd64", "os": "linux", "config": {}});
    let f = im.write(
        &format!("{}.tar", name.replace(['/', ':'], "_")),
        &image_archive(layers, cfg, name),
    );
    im.ok(&["import", f.to_str().unwrap()]);
}

/// A layer with `files` (path, content) and `links` (path, target).
fn layer(files: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut t = Tarball::new();
    for (p, c) in files {
        t.file(p, c.as_bytes());
    }
    for (p, target) in links {
        t.symlink(p, target);
    }
    t.finish()
}

fn dpkg_record(name: &str, version: &str, source: Option<&str>) -> String {
    let mut s = format!("Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n");
    if let Some(src) = source {
        s.push_str(&format!("Source: {src}\n"));
    }
    s.push_str("Description: a test package\n more text\n\n");
    s
}

/// The host's dpkg-query with its libraries, status and os-release, as one layer: an image
/// where dpkg-query runs and reads a real database.
fn dpkg_query_layer(dir: &Path) -> Option<Vec<u8>> {
    let ldd = Command::new("ldd").arg("/usr/bin/dpkg-query").output().ok()?;
    if !ldd.status.success() || !Path::new("/var/lib/dpkg/status").exists() {
        return None;
    }
    let mut paths = vec![
        "usr/bin/dpkg-query".to_string(),
        "var/lib/dpkg/status".into(),
        "etc/os-release".into(),
    ];
    for w in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if w.starts_with('/') {
            paths.push(w.trim_start_matches('/').to_string());
        }
    }
    let out = dir.join("dpkg-query-layer.tar");
    let o = run_cmd(
        Command::new("tar")
            .args(["-C", "/", "-chf", out.to_str().unwrap()])
            .args(&paths),
        None,
    );
    assert_ok(&o, "tar dpkg-query and its database");
    Some(fs::read(out).unwrap())
}

fn sbom_json(im: &Images, name: &str, format: &str) -> Value {
    serde_json::from_str(&im.ok(&["sbom", name, "--format", format])).expect("the SBOM is JSON")
}

fn count_installed_inside(im: &Images, name: &str) -> usize {
    let o = im.rt.exec(&[
        "container",
        "--data-root",
        im.data.path().to_str().unwrap(),
        "run",
        "--rm",
        "--network",
        "none",
        name,
        "/usr/bin/dpkg-query",
        "-W",
        "-f",
        "${db:Status-Status}\\n",
    ]);
    assert_ok(&o, "dpkg-query inside the image");
    stdout(&o).lines().filter(|l| *l == "installed").count()
}

#[test]
fn an_sbom_lists_what_dpkg_query_counts_inside_the_image_each_package_with_its_layer() {
    let Some(im) = Images::new() else { return };
    let Some(base) = dpkg_query_layer(im.work.path()) else {
        skip("no dpkg-query or dpkg database on this host");
        return;
    };
    // A second layer installs one more package, with a machine-readable copyright.
    let mut status = fs::read_to_string("/var/lib/dpkg/status").unwrap();
    status.push_str(&format!("\n{}", dpkg_record("wrun-test-added", "1.0-1", None)));
    let added = layer(
        &[
            ("var/lib/dpkg/status", &status),
            (
                "usr/share/doc/wrun-test-added/copyright",
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n",
            ),
        ],
        &[],
    );
    image(&im, &[base, added], "wrun.test/dq:1");
    let inside = count_installed_inside(&im, "wrun.test/dq:1");
    assert!(inside > 10, "dpkg-query counted {inside}");

    let table = im.ok(&["sbom", "wrun.test/dq:1"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), inside, "one row per package dpkg-query counts:\n{table}");
    let row = |n: &str| rows.iter().find(|r| r.split_whitespace().next() == Some(n)).copied();
    let added_row = row("wrun-test-added").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(added_row.split_whitespace().nth(3), Some("2"), "{added_row}");
    let dpkg_row = row("dpkg").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(dpkg_row.split_whitespace().nth(3), Some("1"), "{dpkg_row}");

    let layers = im.inspect("wrun.test/dq:1")["RootFS"]["Layers"].clone();
    let spdx = sbom_json(&im, "wrun.test/dq:1", "spdx-json");
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let pkgs = spdx["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), inside + 1, "the packages and the image");
    assert_eq!(spdx["relationships"].as_array().unwrap().len(), inside + 1);
    let defined: Vec<&str> = spdx["hasExtractedLicensingInfos"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l["licenseId"].as_str()).collect())
        .unwrap_or_default();
    for p in &pkgs[1..] {
        let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        assert!(purl.starts_with("pkg:deb/debian/"), "{purl}");
        let lic = p["licenseDeclared"].as_str().unwrap();
        for word in lic.split([' ', '(', ')']).filter(|w| w.starts_with("LicenseRef-")) {
            assert!(defined.contains(&word), "{word} is used but not defined");
        }
    }
    let a = pkgs.iter().find(|p| p["name"] == "wrun-test-added").unwrap();
    assert_eq!(a["licenseDeclared"], "GPL-2.0-or-later");
    assert!(
        a["sourceInfo"].as_str().unwrap().contains(layers[1].as_str().unwrap()),
        "{a}"
    );

    let cdx = sbom_json(&im, "wrun.test/dq:1", "cyclonedx-json");
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    let comps = cdx["components"].as_array().unwrap();
    assert_eq!(comps.len(), inside);
    let c = comps.iter().find(|c| c["name"] == "wrun-test-added").unwrap();
    let prop = |k: &str| {
        c["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == k)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(prop("wrun:layer"), layers[1]);
    assert_eq!(c["licenses"][0]["license"]["id"], "GPL-2.0-or-later");

    // -o writes the document to a file.
    let f = im.work.join("sbom.json");
    im.ok(&[
        "sbom",
        "wrun.test/dq:1",
        "--format",
        "spdx-json",
        "-o",
        f.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
    assert_eq!(v["packages"].as_array().unwrap().len(), inside + 1);
}

/// A root filesystem whose rpm database (`var/lib/rpm/rpmdb.sqlite`) Debian's rpm made: `n`
/// packages built by rpmbuild from one spec (one with a 40 KB description, so its header
/// spills into overflow pages; enough of them for the table to need interior pages), installed
/// with `--justdb`. None when rpm or rpmbuild is missing.
fn rpm_root(dir: &Path, n: usize) -> Option<PathBuf> {
    if !Path::new("/usr/bin/rpmbuild").exists() || !Path::new("/usr/bin/rpm").exists() {
        return None;
    }
    let top = dir.join("rpmtop");
    fs::create_dir_all(top.join("SPECS")).unwrap();
    let mut spec = String::from(
        "Name: wrun-test-rpm\nVersion: 1.0\nRelease: 1\nSummary: t\nLicense: MIT\nBuildArch: noarch\n\
         %description\nt\n%files\n",
    );
    for i in 0..n {
        let desc = if i == 0 { "long ".repeat(8192) } else { "short".into() };
        spec.push_str(&format!(
            "%package -n wrun-test-p{i}\nSummary: p{i}\nVersion: 2.{i}\nRelease: 3\nEpoch: {e}\nLicense: GPL-2.0-or-later\n\
             %description -n wrun-test-p{i}\n{desc}\n%files -n wrun-test-p{i}\n",
            e = i % 2
        ));
    }
    fs::write(top.join("SPECS/t.spec"), spec).unwrap();
    let o = run_cmd(
        Command::new("rpmbuild")
            .arg("--quiet")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["-bb", top.join("SPECS/t.spec").to_str().unwrap()]),
        None,
    );
    assert_ok(&o, "rpmbuild");
    let root = dir.join("rpmroot");
    fs::create_dir_all(&root).unwrap();
    let rpms: Vec<String> = fs::read_dir(top.join("RPMS/noarch"))
        .unwrap()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect();
    let rpm = |args: &[&str]| {
        let mut c = Command::new("rpm");
        c.args(["--root", root.to_str().unwrap(), "--dbpath", "/var/lib/rpm"])
            .args(args);
        run_cmd(&mut c, None)
    };
    assert_ok(&rpm(&["--initdb"]), "rpm --initdb");
    let mut args = vec!["-i", "--justdb", "--nodeps"];
    args.extend(rpms.iter().map(String::as_str));
    assert_ok(&rpm(&args), "rpm -i --justdb");
    Some(root)
}

#[test]
fn an_sbom_reads_an_rpm_database_as_rpm_itself_lists_it() {
    let Some(im) = Images::new() else { return };
    let Some(root) = rpm_root(im.work.path(), 60) else {
        skip("rpm and rpmbuild are not installed (apt-get install rpm)");
        return;
    };
    // What rpm itself says is installed: NAME EPOCH:VERSION-RELEASE ARCH LICENSE.
    let o = run_cmd(
        Command::new("rpm")
            .args([
                "--root",
                root.to_str().unwrap(),
                "--dbpath",
                "/var/lib/rpm",
                "-qa",
                "--qf",
            ])
            .arg("%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{ARCH} %{LICENSE}\\n"),
        None,
    );
    assert_ok(&o, "rpm -qa");
    let mut want: Vec<String> = stdout(&o).lines().map(|l| l.replacen(" 0:", " ", 1)).collect();
    want.sort();
    assert_eq!(want.len(), 61, "{want:?}");
    // The root as one layer tar.
    let tar_of = |what: &str| -> Vec<u8> {
        let o = run_cmd(
            Command::new("tar").args(["-C", root.to_str().unwrap(), "-cf", "-", "."]),
            None,
        );
        assert_ok(&o, &format!("tar the {what}"));
        o.stdout
    };
    image(
        &im,
        &[
            layer(&[("etc/os-release", "ID=rocky\nVERSION_ID=\"9.3\"\n")], &[]),
            tar_of("rpm root"),
        ],
        "wrun.test/rpm:1",
    );
    let v = sbom_json(&im, "wrun.test/rpm:1", "cyclonedx-json");
    let mut got: Vec<String> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["purl"].as_str().is_some_and(|p| p.starts_with("pkg:rpm/rocky/")))
        .map(|c| {
            let purl = c["purl"].as_str().unwrap();
            let arch = purl.split("arch=").nth(1).unwrap_or("").split('&').next().unwrap_or("");
            let lic = c["licenses"][0]["license"]["id"]
                .as_str()
                .or(c["licenses"][0]["license"]["name"].as_str())
                .or(c["licenses"][0]["expression"].as_str())
                .unwrap_or("");
            format!(
                "{} {} {arch} {lic}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "the SBOM against rpm -qa");
    // Each from the layer that holds the database (the second).
    let table = im.ok(&["sbom", "wrun.test/rpm:1"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("wrun-test-p1 ") && l.contains("1:2.1-3") && l.contains(" 2 ")),
        "{table}"
    );
    // Scanned in OSV's "Rocky Linux:9" with rpm's version order.
    let osv = im.work.join("osv-rpm");
    fs::create_dir_all(&osv).unwrap();
    let adv = |id: &str, eco: &str, name: &str, fixed: &str| {
        let v = json!({"id": id, "modified": "2099-01-01T00:00:00Z", "summary": "t",
            "affected": [{"package": {"ecosystem": eco, "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]});
        fs::write(osv.join(format!("{id}.json")), serde_json::to_vec(&v).unwrap()).unwrap();
    };
    adv("RLSA-T1", "Rocky Linux:9", "wrun-test-p1", "1:2.1-4"); // 1:2.1-3 is below: a match
    adv("RLSA-T2", "Rocky Linux:9", "wrun-test-p3", "1:2.3-3"); // fixed in this very version
    adv("RLSA-T3", "Rocky Linux:9", "wrun-test-p2", "2.2~rc1-1"); // ~ sorts before 2.2: no match
    adv("RLSA-T4", "Rocky Linux:9", "wrun-test-p4", "1:2.4-1"); // epoch 1 is above p4's 0: a match
    adv("RLSA-T5", "Rocky Linux:8", "wrun-test-p1", "9:9-9"); // another release: no match
    adv("RLSA-T6", "Rocky Linux:9", "wrun-test-p10", "2.9-3"); // 2.10 is above 2.9 as numbers
    let found: Vec<(String, String)> = matches(&im, "wrun.test/rpm:1", &osv)
        .into_iter()
        .map(|(p, v, _)| (p, v))
        .collect();
    assert_eq!(
        found,
        [
            ("wrun-test-p1".to_string(), "RLSA-T1".to_string()),
            ("wrun-test-p4".into(), "RLSA-T4".into())
        ]
    );
    // A truncated database is one line naming it, never a panic.
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    let bytes = fs::read(&db).unwrap();
    fs::write(&db, &bytes[..bytes.len() / 3]).unwrap();
    image(&im, &[tar_of("truncated root")], "wrun.test/rpmbad:1");
    let o = im.rt.exec(&[
        "image",
        "--data-root",
        im.data.path().to_str().unwrap(),
        "sbom",
        "wrun.test/rpmbad:1",
    ]);
    assert!(!o.status.success(), "{}", show(&o));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("rpmdb.sqlite"), "{e}");
}

/// Distroless images keep one dpkg record per package in `/var/lib/dpkg/status.d/` (and
/// md5sums beside them), with no `status` file.
#[test]
fn an_sbom_reads_distroless_status_d_records() {
    let Some(im) = Images::new() else { return };
    let libc = dpkg_record("libc6", "2.36-9+deb12u4", Some("glibc"));
    let tz = dpkg_record("tzdata", "2024a-0+deb12u1", None);
    image(
        &im,
        &[layer(
            &[
                ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
                ("var/lib/dpkg/status.d/libc6", &libc),
                ("var/lib/dpkg/status.d/libc6.md5sums", "0123456789abcdef  lib/x\n"),
                ("var/lib/dpkg/status.d/tzdata", &tz),
            ],
            &[],
        )],
        "wrun.test/distroless:1",
    );
    let table = im.ok(&["sbom", "wrun.test/distroless:1"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("libc6 ") && rows[0].contains("2.36-9+deb12u4") && rows[0].contains("deb"),
        "{table}"
    );
    assert!(
        rows[1].starts_with("tzdata ") && rows[1].contains("2024a-0+deb12u1"),
        "{table}"
    );
    let v = sbom_json(&im, "wrun.test/distroless:1", "spdx-json");
    let purls: Vec<String> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str().map(str::to_string))
        .collect();
    assert!(
        purls
            .iter()
            .any(|p| p.starts_with("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4")),
        "{purls:?}"
    );
}

/// The size report: `image history` gives each layer's size, so a layer that adds what a later
/// one deletes shows up (the deletion layer is tiny, the bytes stay in the image).
#[test]
fn history_shows_each_layers_size() {
    let Some(im) = Images::new() else { return };
    let big = "x".repeat(300_000);
    let small = "y".repeat(5_000);
    let mut gone = Tarball::new();
    gone.file("big/.wh.blob", b"");
    image(
        &im,
        &[
            layer(&[("big/blob", &big)], &[]),
            layer(&[("small/file", &small)], &[]),
            gone.finish(),
        ],
        "wrun.test/sizes:1",
    );
    let hist = im.ok(&["history", "wrun.test/sizes:1"]);
    // Newest first, as docker: the whiteout layer, the 5 kB one, the 300 kB one.
    let sizes: Vec<&str> = hist
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().rev().find(|w| w.ends_with('B')).unwrap_or(""))
        .collect();
    assert_eq!(sizes, ["0B", "5kB", "300kB"], "{hist}");
}

#[test]
fn a_debian_minbase_images_sbom_counts_what_dpkg_query_counts_in_it() {
    let Some(im) = Images::new() else { return };
    let tar = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/wrun/debian-bookworm-minbase.tar");
    if !tar.exists() {
        skip(&format!(
            "no {} (examples/myrand/run.sh makes it with mmdebstrap)",
            tar.display()
        ));
        return;
    }
    im.ok(&["import", tar.to_str().unwrap(), "--name", "wrun.test/minbase:1"]);
    let inside = count_installed_inside(&im, "wrun.test/minbase:1");
    let table = im.ok(&["sbom", "wrun.test/minbase:1"]);
    assert_eq!(table.lines().skip(1).count(), inside, "{table}");
}

#[test]
fn an_sbom_finds_busybox_by_its_banner_and_a_wasm_module_by_its_own_metadata() {
    let Some(im) = Images::new() else { return };
    let tar = busybox_tar(im.work.path());
    im.ok(&["import", tar.to_str().unwrap(), "--name", "wrun.test/bb:1"]);
    // The bundles' rootfs holds the host's static busybox.
    let banner = stdout(&run_cmd(Command::new("/usr/bin/busybox").arg("--help"), None));
    let want = banner
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches('v')
        .to_string();
    let table = im.ok(&["sbom", "wrun.test/bb:1"]);
    let row = table.lines().nth(1).unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..3], &["busybox", want.as_str(), "binary"], "{table}");

    let module = fs::read(wasm_app("hello")).expect("make wasm-apps builds hello.wasm");
    let f = im.write("wasm.tar", &wasm_artifact(&module, "wrun.test/hello-wasm:1"));
    im.ok(&["import", f.to_str().unwrap()]);
    let cdx = sbom_json(&im, "wrun.test/hello-wasm:1", "cyclonedx-json");
    let c = &cdx["components"][0];
    assert_eq!(c["name"], "hello", "{cdx}");
    assert_eq!(c["type"], "application");
    let props = c["properties"].as_array().unwrap();
    assert!(
        props
            .iter()
            .any(|p| p["name"] == "wrun:producers.language" && p["value"] == "Rust"),
        "rustc's producers section is read: {c}"
    );
    assert!(props
        .iter()
        .any(|p| p["name"] == "wrun:producers.processed-by" && p["value"].as_str().unwrap().starts_with("rustc ")));
}

#[test]
fn hostile_package_databases_cannot_reach_the_host_and_fail_in_one_line() {
    let Some(im) = Images::new() else { return };
    // A database symlinked to a host directory: resolved inside the image, where it is not.
    let host = im.work.join("host-dpkg");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("status"), dpkg_record("host-secret", "1", None)).unwrap();
    let etc = "ID=debian\nVERSION_ID=12\n";
    image(
        &im,
        &[layer(
            &[("etc/os-release", etc)],
            &[("var/lib/dpkg", host.to_str().unwrap())],
        )],
        "wrun.test/link-out:1",
    );
    let out = im.ok(&["sbom", "wrun.test/link-out:1"]);
    assert!(!out.contains("host-secret"), "the host's file was read: {out}");
    // The same path relative, climbing out: clamped at the image's root.
    image(
        &im,
        &[layer(
            &[],
            &[("var/lib/dpkg", "../../../../../../../../..".to_string().as_str())],
        )],
        "wrun.test/climb:1",
    );
    assert!(!im.ok(&["sbom", "wrun.test/climb:1"]).contains("host-secret"));

    // A status that is a directory, a loop of links, a record without a name.
    let mut t = Tarball::new();
    t.dir("var/lib/dpkg/status");
    image(&im, &[t.finish()], "wrun.test/dir-status:1");
    let e = im.fails(&["sbom", "wrun.test/dir-status:1"]);
    assert!(
        e.contains("/var/lib/dpkg/status") && e.contains("not a regular file"),
        "{e}"
    );
    image(
        &im,
        &[layer(
            &[],
            &[("var/lib/dpkg/status", "status2"), ("var/lib/dpkg/status2", "status")],
        )],
        "wrun.test/loop:1",
    );
    let e = im.fails(&["sbom", "wrun.test/loop:1"]);
    assert!(e.contains("too many levels of symbolic links"), "{e}");
    image(
        &im,
        &[layer(
            &[("var/lib/dpkg/status", "Version: 1\nStatus: install ok installed\n")],
            &[],
        )],
        "wrun.test/noname:1",
    );
    let e = im.fails(&["sbom", "wrun.test/noname:1"]);
    assert!(
        e.contains("/var/lib/dpkg/status (layer 1)") && e.contains("no Package"),
        "{e}"
    );

    // A later layer deleting the database: no packages are left.
    let base = layer(&[("var/lib/dpkg/status", &dpkg_record("gone", "1", None))], &[]);
    let wh = layer(&[("var/lib/dpkg/.wh.status", "")], &[]);
    image(&im, &[base, wh], "wrun.test/whiteout:1");
    let out = im.ok(&["sbom", "wrun.test/whiteout:1"]);
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
}

/// The images and the OSV database of the scan tests: a Debian 12 image, an Alpine 3.19
/// image, and advisories that must match and others that must not.
fn scan_fixture(im: &Images) -> PathBuf {
    let status = [
        dpkg_record("libssl3", "3.0.11-1~deb12u2", Some("openssl")),
        dpkg_record("zlib1g", "1:1.2.13.dfsg-1", Some("zlib")),
        dpkg_record("bash", "5.2.15-2+b2", Some("bash (5.2.15-2)")),
    ]
    .concat();
    image(
        im,
        &[layer(
            &[
                ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
                ("var/lib/dpkg/status", &status),
            ],
            &[],
        )],
        "wrun.test/deb:12",
    );
    let apk = "P:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\n";
    image(
        im,
        &[layer(
            &[
                ("etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n"),
                ("lib/apk/db/installed", apk),
            ],
            &[],
        )],
        "wrun.test/alpine:3",
    );
    let db = im.work.join("osv");
    fs::create_dir_all(db.join("debian")).unwrap();
    fs::create_dir_all(db.join("alpine")).unwrap();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let now = String::from_utf8(date.stdout).unwrap().trim().to_string();
    let adv = |dir: &str, id: &str, eco: &str, name: &str, events: Value, extra: Value| {
        let mut v = json!({"id": id, "modified": now, "summary": format!("{name}: test advisory"),
            "affected": [{"package": {"ecosystem": eco, "name": name}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}]});
        for (k, x) in extra.as_object().unwrap() {
            if k == "ecosystem_specific" {
                v["affected"][0][k] = x.clone();
            } else {
                v[k] = x.clone();
            }
        }
        fs::write(
            db.join(dir).join(format!("{id}.json")),
            serde_json::to_vec_pretty(&v).unwrap(),
        )
        .unwrap();
    };
    let critical = json!({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]});
    // Matches through the source name (libssl3 is built from openssl).
    adv(
        "debian",
        "DSA-T1",
        "Debian:12",
        "openssl",
        json!([{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]),
        critical.clone(),
    );
    // Fixed before the installed version: no match.
    adv(
        "debian",
        "DSA-T2",
        "Debian:12",
        "openssl",
        json!([{"introduced": "0"}, {"fixed": "3.0.9-1"}]),
        critical.clone(),
    );
    // The epoch makes 1:1.2.13 newer than 1.3: no match (a string comparison would say one).
    adv(
        "debian",
        "DSA-T3",
        "Debian:12",
        "zlib",
        json!([{"introduced": "0"}, {"fixed": "1.3-1"}]),
        json!({}),
    );
    adv(
        "debian",
        "DSA-T4",
        "Debian:12",
        "zlib",
        json!([{"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-1+deb12u1"}]),
        json!({"ecosystem_specific": {"urgency": "low"}}),
    );
    // Another release of Debian: no match.
    adv(
        "debian",
        "DSA-T5",
        "Debian:11",
        "bash",
        json!([{"introduced": "0"}, {"fixed": "9"}]),
        critical,
    );
    // Alpine: -r15 is below -r16 and above -r2, as numbers.
    adv(
        "alpine",
        "ALPINE-T1",
        "Alpine:v3.19",
        "busybox",
        json!([{"introduced": "0"}, {"fixed": "1.36.1-r16"}]),
        json!({"database_specific": {"severity": "HIGH"}}),
    );
    adv(
        "alpine",
        "ALPINE-T2",
        "Alpine:v3.19",
        "busybox",
        json!([{"introduced": "0"}, {"fixed": "1.36.1-r2"}]),
        json!({}),
    );
    adv(
        "alpine",
        "ALPINE-T3",
        "Alpine:v3.19",
        "musl",
        json!([{"introduced": "0"}, {"fixed": "1.2.4-r10"}]),
        json!({}),
    );
    db
}

fn matches(im: &Images, name: &str, db: &Path) -> Vec<(String, String, String)> {
    let v: Value =
        serde_json::from_str(&im.ok(&["scan", name, "--db", db.to_str().unwrap(), "--format", "json"])).unwrap();
    let mut m: Vec<(String, String, String)> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["package"].as_str().unwrap().to_string(),
                m["vulnerability"].as_str().unwrap().to_string(),
                m["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    m.sort();
    m
}

#[test]
fn a_scan_matches_an_osv_database_with_each_ecosystems_version_order() {
    let Some(im) = Images::new() else { return };
    let db = scan_fixture(&im);
    let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        matches(&im, "wrun.test/deb:12", &db),
        vec![t("libssl3", "DSA-T1", "critical"), t("zlib1g", "DSA-T4", "low")]
    );
    assert_eq!(
        matches(&im, "wrun.test/alpine:3", &db),
        vec![t("busybox", "ALPINE-T1", "high"), t("musl", "ALPINE-T3", "unknown")]
    );
    let d = db.to_str().unwrap();
    let table = im.ok(&["scan", "wrun.test/deb:12", "--db", d]);
    assert!(table.starts_with("PACKAGE"), "{table}");
    assert!(
        table.contains("3.0.13-1~deb12u1"),
        "the fixed version is shown: {table}"
    );
    assert!(
        table.contains("2 vulnerabilities (1 critical, 0 high, 0 medium, 1 low, 0 unknown)"),
        "{table}"
    );
    // --fail-on: exit 1 at or above the threshold, with one line naming the findings.
    let o = im.cmd(&["scan", "wrun.test/deb:12", "--db", d, "--fail-on", "critical"]);
    assert_fails(&o, "a critical finding fails --fail-on critical");
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("DSA-T1 in libssl3"), "{e}");
    im.ok(&["scan", "wrun.test/alpine:3", "--db", d, "--fail-on", "critical"]);
    let o = im.cmd(&["scan", "wrun.test/alpine:3", "--db", d, "--fail-on", "high"]);
    assert_fails(&o, "a high finding fails --fail-on high");
}

#[test]
fn bad_vulnerability_databases_are_one_line_errors() {
    let Some(im) = Images::new() else { return };
    let db = scan_fixture(&im);
    let missing = im.work.join("no-such-db");
    let e = im.fails(&["scan", "wrun.test/deb:12", "--db", missing.to_str().unwrap()]);
    assert!(
        e.contains(missing.to_str().unwrap()) && e.contains("fetches nothing"),
        "{e}"
    );
    let empty = im.work.join("empty-db");
    fs::create_dir_all(&empty).unwrap();
    let e = im.fails(&["scan", "wrun.test/deb:12", "--db", empty.to_str().unwrap()]);
    assert!(e.contains("no OSV advisories"), "{e}");
    let e = im.fails(&["scan", "wrun.test/deb:12"]);
    assert!(e.contains("--db"), "{e}");
    // A file that does not parse: named, with its line.
    fs::write(db.join("debian/broken.json"), "{\"id\": \"X\",\n \"affected\": [}\n").unwrap();
    let e = im.fails(&["scan", "wrun.test/deb:12", "--db", db.to_str().unwrap()]);
    assert!(e.contains("broken.json") && e.contains("line 2"), "{e}");
    fs::remove_file(db.join("debian/broken.json")).unwrap();
    // An old database still scans, and says it is old.
    let old = im.work.join("old-db");
    fs::create_dir_all(&old).unwrap();
    fs::write(
        old.join("a.json"),
        r#"{"id": "OLD-1", "modified": "2020-01-01T00:00:00Z", "affected": []}"#,
    )
    .unwrap();
    let o = im.cmd(&["scan", "wrun.test/deb:12", "--db", old.to_str().unwrap()]);
    assert_ok(&o, "a stale database still scans");
    assert!(
        stderr(&o).contains("days old (newest advisory modified 2020-01-01)"),
        "{}",
        stderr(&o)
    );
}
