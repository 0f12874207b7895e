//! Fields added to the runtime spec after 1.0.2.
//!
//! runc 1.1 lacks most of them: the tests marked "runc 1.1 lacks" are
//! expected to fail against runc 1.1.

use serde_json::json;
use std::fs;
use std::time::Duration;
use wrun_tests::*;

fn host_uptime() -> f64 {
    fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

// runc 1.1 lacks the time namespace.
#[test]
fn time_namespace_offsets_shift_the_containers_clocks() {
    let mut b = Bundle::busybox();
    b.set_namespace(json!({"type": "time"})).with_config(|c| {
        c["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 86400, "nanosecs": 0},
            "boottime": {"secs": 86400, "nanosecs": 0}
        })
    });
    let rt = Runtime::new();
    let before = host_uptime();
    let out = rt.run_sh(&mut b, "cat /proc/uptime");
    let inside: f64 = out
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad /proc/uptime: {out}"));
    assert!(inside >= before + 86000.0, "uptime inside {inside} vs host {before}");
}

// runc 1.1 lacks process.ioPriority.
#[test]
fn io_priority_idle_class_is_applied() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}));
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "ionice -p $$").trim(), "idle");
}

// runc 1.1 lacks process.ioPriority.
#[test]
fn io_priority_best_effort_level_is_applied() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 4}));
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "ionice -p $$").trim(), "best-effort: prio 4");
}

// runc 1.1 lacks process.scheduler.
#[test]
fn scheduler_policy_and_nice_are_applied() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5}));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "cat /proc/self/stat");
    // Fields after "(comm)": field 19 is nice, field 41 the policy.
    let rest = out.rsplit_once(')').expect("stat").1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3.
    assert_eq!(f[19 - 3], "5", "nice: {out}");
    assert_eq!(f[41 - 3], "3", "policy (SCHED_BATCH=3): {out}");
}

// runc 1.1 lacks process.execCPUAffinity.
#[test]
fn exec_cpu_affinity_pins_the_process() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "0"}));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "grep Cpus_allowed_list /proc/self/status");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["Cpus_allowed_list:", "0"]);
}

// runc 1.1 lacks linux.personality.
#[test]
fn personality_linux32_is_applied() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "cat /proc/self/personality; uname -m");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("00000008"), "{out}");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(lines.next(), Some("i686"), "{out}");
    }
}

#[test]
fn recursive_read_only_bind_covers_submounts() {
    let host_dir = TempDir::new("rro");
    let _sub = HostMount::tmpfs(&host_dir.join("sub"), "size=1m");
    let mut b = Bundle::busybox();
    b.add_mount(json!({
        "destination": "/data", "type": "bind",
        "source": host_dir.path().to_str().unwrap(),
        "options": ["rbind", "rro"]
    }));
    let rt = Runtime::new();
    let out = rt.run_sh(
        &mut b,
        "grep -q ' /data/sub ' /proc/self/mounts && echo submount-visible; \
         touch /data/sub/f 2>/dev/null && echo sub-wrote || echo sub-refused; \
         touch /data/f 2>/dev/null && echo top-wrote || echo top-refused",
    );
    assert_eq!(out, "submount-visible\nsub-refused\ntop-refused\n");
    assert!(!host_dir.join("sub/f").exists());
}

fn user_ns(b: &mut Bundle) {
    b.set_namespace(json!({"type": "user"})).with_config(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
}

// runc 1.1 lacks idmapped mounts.
#[test]
fn idmapped_mount_shows_host_owners_through_the_user_namespace() {
    // On-disk owner N appears as host id 100000+N on the idmapped mount,
    // which is N inside the container's user namespace. Without the idmap
    // (the /plain control) root's files appear unmapped (65534).
    let src = TempDir::new("idmap");
    fs::write(src.join("root-file"), "x").unwrap();
    fs::write(src.join("one-file"), "x").unwrap();
    std::os::unix::fs::chown(src.join("one-file"), Some(1), Some(1)).unwrap();
    let mut b = Bundle::busybox();
    // The rootfs belongs to the (unmapped) host root: make the mount points
    // in advance.
    fs::create_dir(b.rootfs().join("idm")).unwrap();
    fs::create_dir(b.rootfs().join("plain")).unwrap();
    user_ns(&mut b);
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.add_mount(json!({
        "destination": "/idm", "type": "bind",
        "source": src.path().to_str().unwrap(),
        "options": ["bind"],
        "uidMappings": map, "gidMappings": map
    }))
    .bind(src.path(), "/plain", &[]);
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "stat -c %u:%g /idm/root-file /idm/one-file /plain/root-file");
    assert_eq!(out, "0:0\n1:1\n65534:65534\n");
}

// runc 1.1 lacks idmapped mounts.
#[test]
fn idmapped_mount_without_a_user_namespace_maps_owners() {
    let src = TempDir::new("idmap");
    fs::write(src.join("root-file"), "x").unwrap();
    let mut b = Bundle::busybox();
    let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    b.add_mount(json!({
        "destination": "/idm", "type": "bind",
        "source": src.path().to_str().unwrap(),
        "options": ["bind"],
        "uidMappings": map, "gidMappings": map
    }));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "stat -c %u:%g /idm/root-file");
    assert_eq!(out.trim(), "1000:1000");
    // The host view is unchanged.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(src.join("root-file")).unwrap().uid(), 0);
}

// runc 1.1 lacks linux.netDevices.
#[test]
fn net_device_is_moved_into_the_container_and_renamed() {
    let link = DummyLink::new();
    let out_dir = TempDir::new("out");
    let mut b = Bundle::busybox();
    b.with_config(|c| c["linux"]["netDevices"] = json!({ link.name.clone(): {"name": "eth9"} }))
        .bind(out_dir.path(), "/out", &[])
        .sh("cat /proc/net/dev > /out/dev; touch /out/done; sleep 1000");
    let rt = Runtime::new();
    let id = rt.id("netdev");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_until(Duration::from_secs(10), || out_dir.join("done").exists()),
        "container did not report"
    );
    let dev = fs::read_to_string(out_dir.join("dev")).unwrap();
    let ifaces: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    assert!(ifaces.contains(&"eth9"), "eth9 missing in the container: {ifaces:?}");
    assert!(
        !link.on_host(),
        "{} is still on the host while the container runs",
        link.name
    );
}

fn runs_with_oci_version(v: &str) {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["ociVersion"] = json!(v)).args(&["true"]);
    let rt = Runtime::new();
    let o = rt.run(&rt.id("ociver"), &b);
    assert_eq!(o.status.code(), Some(0), "ociVersion {v}: {}", show(&o));
}

#[test]
fn oci_version_1_0_0_is_accepted() {
    runs_with_oci_version("1.0.0");
}

#[test]
fn oci_version_1_1_0_is_accepted() {
    runs_with_oci_version("1.1.0");
}

#[test]
fn oci_version_1_2_0_is_accepted() {
    runs_with_oci_version("1.2.0");
}

#[test]
fn oci_version_1_3_0_is_accepted() {
    runs_with_oci_version("1.3.0");
}

/// The atime setting of the mounts at and under `/data` (relatime, noatime or strictatime),
/// as mountinfo's per-mount options show it, for a recursive bind with `opt`.
fn atime_under_data(opt: &str) -> String {
    let host_dir = TempDir::new("ratime");
    // The submount starts at strictatime, the top at the host's default: both must change.
    let _sub = HostMount::tmpfs(&host_dir.join("sub"), "size=1m");
    let sub = host_dir.join("sub");
    assert_ok(
        &run_cmd(
            std::process::Command::new("mount")
                .args(["-o", "remount,strictatime"])
                .arg(&sub),
            None,
        ),
        "remount the submount strictatime",
    );
    let mut b = Bundle::busybox();
    b.add_mount(json!({
        "destination": "/data", "type": "bind",
        "source": host_dir.path().to_str().unwrap(),
        "options": ["rbind", opt]
    }));
    let rt = Runtime::new();
    rt.run_sh(
        &mut b,
        "for m in /data /data/sub; do \
           o=$(awk -v m=$m '$5 == m {print $6}' /proc/self/mountinfo); \
           case ,$o, in *,relatime,*) echo relatime;; *,noatime,*) echo noatime;; *) echo strictatime;; esac; \
         done",
    )
}

#[test]
fn recursive_atime_options_set_the_whole_atime_field() {
    for (opt, want) in [
        ("rrelatime", "relatime"),
        ("rnoatime", "noatime"),
        ("rstrictatime", "strictatime"),
        // The negative forms clear their value as mount(2)'s do: the kernel's relatime.
        ("rnorelatime", "relatime"),
        ("ratime", "relatime"),
        ("rnostrictatime", "relatime"),
    ] {
        assert_eq!(atime_under_data(opt), format!("{want}\n{want}\n"), "{opt}");
    }
}

// runc 1.3 re-adds a moved device's addresses; the kernel drops them on the move.
#[test]
fn a_moved_net_device_keeps_its_addresses() {
    let link = DummyLink::new();
    assert_ok(
        &run_cmd(
            std::process::Command::new("ip").args(["addr", "add", "192.0.2.77/24", "dev", &link.name]),
            None,
        ),
        "ip addr add",
    );
    assert_ok(
        &run_cmd(
            std::process::Command::new("ip").args(["addr", "add", "2001:db8::77/64", "dev", &link.name]),
            None,
        ),
        "ip addr add (v6)",
    );
    let mut b = Bundle::busybox();
    b.with_config(|c| c["linux"]["netDevices"] = json!({ link.name.clone(): {"name": "eth8"} }));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "ip addr show eth8");
    assert!(out.contains("inet 192.0.2.77/24"), "{out}");
    assert!(out.contains("inet6 2001:db8::77/64"), "{out}");
}
