//! Bad bundles and ids: each must fail with one clear line on stderr naming
//! the culprit, and leave nothing behind (no state dir, process or mount).

use serde_json::json;
use std::fs;
use std::path::Path;
use wrun_tests::*;

/// create must fail naming one of `names`, and leave nothing behind.
#[track_caller]
fn create_fails_cleanly(b: &Bundle, names: &[&str]) {
    let rt = Runtime::new();
    let id = rt.id("bad");
    let o = rt.create(&id, b);
    assert_one_line_error(&o, names);
    assert_fails(&rt.state_raw(&id), "state after a failed create");
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn missing_config_json_is_rejected() {
    let b = Bundle::busybox();
    fs::remove_file(b.config_path()).unwrap();
    create_fails_cleanly(&b, &["config.json"]);
}

// runc 1.1 fails but does not name the file ("unexpected EOF"): fails
// against runc 1.1.
#[test]
fn malformed_config_json_is_rejected() {
    let b = Bundle::busybox();
    fs::write(b.config_path(), "{\"ociVersion\": \"1.0.2\", \"process\": ").unwrap();
    create_fails_cleanly(&b, &["config.json", "json"]);
}

#[test]
fn a_field_of_the_wrong_type_is_named_by_its_path() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["user"]["uid"] = json!("zero"));
    create_fails_cleanly(&b, &["process.user.uid: invalid type"]);
}

#[test]
fn a_config_without_oci_version_says_it_is_missing() {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        c.as_object_mut().unwrap().remove("ociVersion");
    });
    create_fails_cleanly(&b, &["ociVersion: missing"]);
}

// runc 1.1 does not check ociVersion: fails against runc 1.1.
#[test]
fn unsupported_oci_version_is_rejected() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["ociVersion"] = json!("2.0.0"));
    create_fails_cleanly(&b, &["ociVersion", "2.0.0"]);
}

#[test]
fn missing_rootfs_is_rejected() {
    let b = Bundle::busybox();
    fs::remove_dir_all(b.rootfs()).unwrap();
    create_fails_cleanly(&b, &["rootfs"]);
}

#[test]
fn missing_bundle_directory_is_rejected() {
    let b = Bundle::busybox();
    let rt = Runtime::new();
    let id = rt.id("nobundle");
    let missing = b.path().join("not-here");
    let o = rt.exec(&["create", &id, "--bundle", missing.to_str().unwrap()]);
    assert_one_line_error(&o, &["not-here", "config.json", "bundle"]);
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn nonexistent_process_binary_fails_at_create() {
    let mut b = Bundle::busybox();
    b.args(&["/nonexistent-binary"]);
    create_fails_cleanly(&b, &["/nonexistent-binary"]);
}

#[test]
fn duplicate_id_is_rejected_and_the_first_container_is_unaffected() {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    let b2 = Bundle::busybox();
    let rt = Runtime::new();
    let id = rt.id("dup");
    rt.create_ok(&id, &b);
    let pid = rt.pid(&id);
    let o = rt.create(&id, &b2);
    assert_one_line_error(&o, &[&id, "exists"]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid), "{st}");
    assert!(pid_alive(pid));
    assert_eq!(
        fs::canonicalize(st["bundle"].as_str().unwrap()).unwrap(),
        fs::canonicalize(b.path()).unwrap()
    );
    assert!(processes_rooted_in(b2.path()).is_empty());
}

/// The root dir holds no entry at all.
#[track_caller]
fn root_is_empty(root: &Path) {
    let entries: Vec<_> = fs::read_dir(root)
        .expect("root dir still exists")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(entries.is_empty(), "left in the state root: {entries:?}");
}

#[test]
fn id_with_a_slash_is_rejected() {
    let b = Bundle::busybox();
    let rt = Runtime::new();
    let id = format!("{}/x", unique("slash"));
    let o = rt.create(&id, &b);
    assert_one_line_error(&o, &[&id, "id"]);
    root_is_empty(rt.root());
    assert_clean(rt.root(), &id, b.path());
}

#[test]
fn dot_dot_id_is_rejected() {
    let b = Bundle::busybox();
    let rt = Runtime::new();
    let o = rt.create("..", &b);
    assert_one_line_error(&o, &["..", "id"]);
    root_is_empty(rt.root());
    let parent = rt.root().parent().unwrap();
    assert!(!parent.join("state.json").exists(), "state written outside the root");
    assert!(processes_rooted_in(b.path()).is_empty());
}

/// A bundle whose rootfs has `escape -> ../../../../../../../../tmp` and a
/// tmpfs mount at `/escape/<name>`; returns (bundle, host path the naive
/// resolution would hit).
fn escaping_bundle() -> (Bundle, std::path::PathBuf) {
    let mut b = Bundle::busybox();
    std::os::unix::fs::symlink("../../../../../../../../tmp", b.rootfs().join("escape")).unwrap();
    let name = unique("wrun-escape");
    b.add_mount(json!({
        "destination": format!("/escape/{name}"),
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["size=1m"]
    }))
    .args(&["true"]);
    (b, Path::new("/tmp").join(name))
}

// runc 1.1 confines the destination to the rootfs (mounts on
// rootfs/tmp/<name>) instead of failing: fails against runc 1.1.
#[test]
fn mount_destination_escaping_the_rootfs_through_a_symlink_is_rejected() {
    let (b, host_target) = escaping_bundle();
    let rt = Runtime::new();
    let id = rt.id("escape");
    let o = rt.create(&id, &b);
    let created_on_host = host_target.exists();
    let _ = fs::remove_dir(&host_target);
    assert!(!created_on_host, "{} was created on the host", host_target.display());
    assert_one_line_error(&o, &["/escape", "escape", "symlink"]);
    assert!(!mount_points().contains(&host_target));
    assert_clean(rt.root(), &id, b.path());
}

/// Whatever the runtime does with an escaping destination (reject it or
/// confine it to the rootfs), nothing may appear on the host.
#[test]
fn mount_destination_escaping_through_a_symlink_never_touches_the_host() {
    let (b, host_target) = escaping_bundle();
    let rt = Runtime::new();
    let id = rt.id("escape");
    let o = rt.run(&id, &b);
    let created_on_host = host_target.exists();
    let mounted_on_host = mount_points().contains(&host_target);
    let _ = fs::remove_dir(&host_target);
    assert!(
        !created_on_host,
        "{} was created on the host\n{}",
        host_target.display(),
        show(&o)
    );
    assert!(!mounted_on_host, "{} mounted on the host", host_target.display());
    assert_clean(rt.root(), &id, b.path());
}

// runc 1.1 says "no such file or directory" for the program, which exists: fails against runc.
#[test]
fn a_dynamic_program_without_its_loader_names_the_missing_interpreter() {
    let mut b = Bundle::busybox();
    // The host's `true` is dynamically linked; the busybox rootfs has no ld.so.
    b.put_file(Path::new("/usr/bin/true"), "/bin/host-true");
    b.args(&["/bin/host-true"]);
    let rt = Runtime::new();
    let id = rt.id("noloader");
    let o = rt.run(&id, &b);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    let err = stderr(&o);
    assert!(
        err.contains("/bin/host-true") && err.contains("ELF interpreter /lib64/ld-linux-x86-64.so.2 not found"),
        "stderr does not name the missing loader: {err}"
    );
}

// runc 1.1 cleans `..` away and accepts "/" (its delete then leaves the root alone): fails
// against runc.
#[test]
fn a_cgroups_path_climbing_with_dotdot_is_refused() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!("../../escape"));
    create_fails_cleanly(&b, &["linux.cgroupsPath", ".."]);
}

#[test]
fn a_cgroups_path_naming_the_hierarchy_root_is_refused() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["linux"]["cgroupsPath"] = json!("/"));
    create_fails_cleanly(&b, &["linux.cgroupsPath", "root"]);
}

// runc 1.1 has no memoryPolicy: fails against runc.
#[test]
fn a_huge_memory_policy_node_is_refused() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "99999999999"}));
    create_fails_cleanly(&b, &["linux.memoryPolicy.nodes"]);
}

// runc 1.1 tries to pass two billion fds (a minute-long loop): fails against runc.
#[test]
fn preserve_fds_beyond_the_open_file_limit_is_refused() {
    let b = Bundle::busybox();
    let rt = Runtime::new();
    let id = rt.id("fds");
    let o = rt.create_with(&id, &b, &["--preserve-fds", "2147483647"]);
    assert_one_line_error(&o, &["--preserve-fds", "2147483647"]);
    assert_clean(rt.root(), &id, b.path());
}

// runc 1.1 creates the container, whose init then dies at start: fails against runc.
#[test]
fn create_without_a_proc_mount_is_refused_naming_proc() {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/proc");
        c["linux"].as_object_mut().unwrap().remove("maskedPaths");
        c["linux"].as_object_mut().unwrap().remove("readonlyPaths");
    });
    create_fails_cleanly(&b, &["/proc"]);
}

#[test]
fn a_bind_over_a_kernel_knob_in_proc_is_refused() {
    let mut b = Bundle::busybox();
    let src = b.path().join("knob");
    fs::write(&src, "|/tmp/x").unwrap();
    b.bind(&src, "/proc/sys/kernel/core_pattern", &[]);
    create_fails_cleanly(&b, &["/proc/sys/kernel/core_pattern", "/proc"]);
}

#[test]
fn a_destination_that_leads_into_proc_through_a_symlink_is_refused() {
    let mut b = Bundle::busybox();
    std::os::unix::fs::symlink("/proc/sys", b.rootfs().join("knobs")).unwrap();
    let src = b.path().join("knob");
    fs::write(&src, "x").unwrap();
    b.bind(&src, "/knobs/kernel/core_pattern", &[]);
    create_fails_cleanly(&b, &["/proc/sys/kernel/core_pattern"]);
}

#[test]
fn a_tmpfs_over_proc_is_refused() {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/proc");
        mounts.push(json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}));
    });
    create_fails_cleanly(&b, &["/proc", "proc filesystem"]);
}
