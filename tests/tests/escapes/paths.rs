//! Escapes through paths the runtime resolves: a symlink swapped under a mount destination,
//! masked paths through symlinks, a fake /dev/null, files the runtime reads from the image.

use super::*;

// ---------------------------------------------------------------------------
// 4. A symlink swapped under a mount destination (CVE-2021-30465)
// ---------------------------------------------------------------------------

/// Most create/delete rounds while the symlink flips.
const SWAP_TRIES: usize = 80;

#[test]
fn a_symlink_swapped_under_a_mount_destination_never_redirects_it_to_the_host() {
    let rt = Runtime::new();
    let host_dir = TempDir::new("swap-host");
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    b.add_mount(json!({"destination": "/race/sub", "type": "tmpfs", "source": "tmpfs"}));
    let race = b.rootfs().join("race");
    let alt = b.rootfs().join("race.alt");
    fs::create_dir(&race).unwrap();
    std::os::unix::fs::symlink(host_dir.path(), &alt).unwrap();
    // A thread swaps rootfs/race between the real directory and a symlink to the host dir.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, a, b) = (stop.clone(), cstr(&race), cstr(&alt));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 on two NUL-terminated paths.
                unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    );
                }
                std::thread::yield_now();
            }
        })
    };
    let (mut created, mut refused) = (0, 0);
    let mut escaped = None;
    let deadline = Instant::now() + Duration::from_secs(25);
    for i in 0..SWAP_TRIES {
        if Instant::now() > deadline {
            break;
        }
        let id = rt.id("swap");
        let o = create(&rt, &id, &b);
        if o.status.success() {
            created += 1;
        } else {
            refused += 1;
        }
        let _ = rt.delete_force(&id);
        let written: Vec<_> = fs::read_dir(host_dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let mounted = host_mounts_under(host_dir.path());
        if !written.is_empty() || !mounted.is_empty() {
            escaped = Some(format!(
                "round {i}: written on the host: {written:?}; mounted: {mounted:?}\n{}",
                show(&o)
            ));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    report(&format!(
        "{created} create(s) succeeded, {refused} refused while the symlink flipped"
    ));
    if let Some(e) = escaped {
        panic!(
            "a mount destination was redirected to the host dir {}: {e}",
            host_dir.path().display()
        );
    }
}

// ---------------------------------------------------------------------------
// 5. maskedPaths through a symlink; 6. a fake /dev/null
// ---------------------------------------------------------------------------

#[test]
fn a_masked_path_that_is_a_symlink_masks_the_in_root_target_or_fails() {
    let rt = Runtime::new();
    let host_dir = TempDir::new("mask-host");
    let host_file = host_dir.join("secret");
    fs::write(&host_file, "host-secret").unwrap();
    let mut b = Bundle::busybox();
    // The absolute target names a host file; inside the root the same path holds other data.
    let in_root = b.rootfs().join(host_file.strip_prefix("/").unwrap());
    fs::create_dir_all(in_root.parent().unwrap()).unwrap();
    fs::write(&in_root, "in-root").unwrap();
    std::os::unix::fs::symlink(&host_file, b.rootfs().join("etc/secret")).unwrap();
    b.with_config(|c| {
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/etc/secret"))
    });
    b.sh("echo \"[$(cat /etc/secret 2>&1)]\"");
    let id = rt.id("masksym");
    let o = run(&rt, &id, &b);
    assert!(
        host_mounts_under(&host_file).is_empty(),
        "a mount landed on the host file {}",
        host_file.display()
    );
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "host-secret");
    if o.status.success() {
        let out = stdout(&o);
        assert!(
            !out.contains("in-root") && !out.contains("host-secret"),
            "/etc/secret -> {} was not masked\n{}",
            host_file.display(),
            show(&o)
        );
    }
    assert_clean(rt.root(), &id, b.path());
}

/// A busybox bundle with no /dev mounts (the runtime populates the rootfs's own /dev), and a
/// masked file /etc/masked holding "SECRET".
fn bundle_without_dev_tmpfs(out: &TempDir) -> Bundle {
    let mut b = Bundle::busybox();
    b.bind(out.path(), "/out", &[]);
    b.with_config(|c| {
        c["mounts"].as_array_mut().unwrap().retain(|m| {
            !m["destination"]
                .as_str()
                .is_some_and(|d| d == "/dev" || d.starts_with("/dev/"))
        });
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/etc/masked"));
    });
    b.write_file("/etc/masked", b"SECRET");
    // A read-only root is beside the point here (and runc cannot remount it without a /dev tmpfs).
    b.with_config(|c| c["root"]["readonly"] = json!(false));
    // Into a file, not stdout: with a fake /dev/null, crun's container prints nothing.
    b.sh("{ echo \"[$(cat /etc/masked 2>&1)]\"; stat -c '%F %t:%T' /etc/masked; } > /out/result 2>&1");
    b
}

/// Either the run failed closed naming /dev/null, or /etc/masked is the real null device.
#[track_caller]
fn assert_masked_by_real_null(o: &std::process::Output, out: &TempDir, fake: &str) {
    if !o.status.success() {
        assert!(
            stderr(o).contains("/dev/null"),
            "the run failed, but not on the fake /dev/null\n{}",
            show(o)
        );
        return;
    }
    let res = fs::read_to_string(out.join("result")).unwrap_or_default();
    assert!(
        !res.contains("SECRET") && !res.contains(fake),
        "the masked /etc/masked shows data (not the real /dev/null):\n{res}\n{}",
        show(o)
    );
    assert!(
        res.contains("character special file 1:3"),
        "the masked /etc/masked is not the 1:3 null device:\n{res}\n{}",
        show(o)
    );
}

#[test]
fn a_regular_file_at_dev_null_never_becomes_a_masked_path() {
    let rt = Runtime::new();
    let out = TempDir::new("null-out");
    let mut b = bundle_without_dev_tmpfs(&out);
    b.write_file("/dev/null", b"FAKE-NULL");
    let id = rt.id("fakenull");
    let o = run(&rt, &id, &b);
    assert_masked_by_real_null(&o, &out, "FAKE-NULL");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn a_dev_null_symlink_to_a_host_file_never_becomes_a_masked_path() {
    let rt = Runtime::new();
    let host_dir = TempDir::new("null-host");
    let host_file = host_dir.join("null");
    fs::write(&host_file, "HOST-DATA").unwrap();
    let out = TempDir::new("null-out");
    let b = bundle_without_dev_tmpfs(&out);
    std::os::unix::fs::symlink(&host_file, b.rootfs().join("dev/null")).unwrap();
    let id = rt.id("symnull");
    let o = run(&rt, &id, &b);
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "HOST-DATA");
    assert!(
        host_mounts_under(&host_file).is_empty(),
        "a mount landed on the host file"
    );
    assert_masked_by_real_null(&o, &out, "HOST-DATA");
    assert_clean(rt.root(), &id, b.path());
}

// ---------------------------------------------------------------------------
// 6b. Files the runtime reads from the image: /etc/passwd (for HOME), the wasm module
// ---------------------------------------------------------------------------

#[test]
fn an_etc_passwd_symlinked_to_a_host_file_does_not_leak_it_into_home() {
    let rt = Runtime::new();
    let host = HostPath::new("passwd");
    fs::write(&host.0, "root:x:0:0:root:/HOST-SECRET-HOME:/bin/sh\n").unwrap();
    let mut b = Bundle::busybox();
    let passwd = b.rootfs().join("etc/passwd");
    fs::remove_file(&passwd).unwrap();
    std::os::unix::fs::symlink(&host.0, &passwd).unwrap();
    b.args(&["sh", "-c", "echo home=$HOME"]);
    let id = rt.id("passwd");
    let o = run(&rt, &id, &b);
    assert!(
        !stdout(&o).contains("HOST-SECRET-HOME"),
        "the host file behind the image's /etc/passwd symlink reached the container: {}",
        show(&o)
    );
}

#[test]
fn a_wasm_module_symlinked_to_a_host_file_is_not_run() {
    let rt = Runtime::new();
    if !has_wasm(&rt) {
        return;
    }
    // A real guest on the host, outside the rootfs; the image's module is an absolute
    // symlink to that host path, which inside the container leads nowhere.
    let host = HostPath::new("module");
    fs::copy(wasm_app("hello"), &host.0).unwrap();
    let mut b = Bundle::busybox();
    std::os::unix::fs::symlink(&host.0, b.rootfs().join("app.wasm")).unwrap();
    b.args(&["/app.wasm", "leaked"]);
    b.annotate("run.oci.handler", "wasm");
    let id = rt.id("module");
    let o = run(&rt, &id, &b);
    assert!(
        !o.status.success(),
        "the host module behind the image's symlink ran: {}",
        show(&o)
    );
    assert!(
        stderr(&o).contains("/app.wasm"),
        "the error does not name the module: {}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------
// /proc and /sys that are symlinks in the rootfs (runc: "must be mounted on ordinary directory")
// ---------------------------------------------------------------------------

/// A rootfs whose /proc or /sys is a symlink is refused, as runc refuses it, rather than the
/// symlink being followed and proc or sysfs mounted where the image chose; nothing is left.
#[test]
fn a_rootfs_whose_proc_or_sys_is_a_symlink_is_refused() {
    let rt = Runtime::new();
    for dir in ["proc", "sys"] {
        let mut b = Bundle::busybox();
        b.args(&["true"]);
        let p = b.rootfs().join(dir);
        let _ = fs::remove_dir_all(&p);
        let _ = fs::remove_file(&p);
        fs::create_dir_all(b.rootfs().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", &p).unwrap();
        let id = unique("proclink");
        let o = run(&rt, &id, &b);
        assert_fails(&o, &format!("run with /{dir} a symlink"));
        assert!(
            stderr(&o).contains(&format!("/{dir}")),
            "the error names /{dir}: {}",
            show(&o)
        );
        assert_eq!(
            fs::read_dir(b.rootfs().join("elsewhere")).unwrap().count(),
            0,
            "nothing was mounted at the symlink's target"
        );
        assert_clean(rt.root(), &id, b.path());
    }
}
