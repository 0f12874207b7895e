//! Namespaces, rootfs and process setup, observed from inside the container.

use serde_json::json;
use std::fs;
use std::path::Path;
use std::time::Duration;
use wrun_tests::*;

#[test]
fn container_sees_itself_as_pid_1() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "echo $$").trim(), "1");
}

#[test]
fn proc_shows_only_the_containers_processes() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "ls /proc | grep -c '^[0-9]'");
    let n: u32 = out.trim().parse().expect("a count");
    assert!(n <= 5, "container sees {n} processes in /proc");
}

#[test]
fn container_has_the_configured_hostname() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "hostname").trim(), "wrun-test");
}

// runc 1.1 lacks `domainname` (added in runc 1.2): fails against runc 1.1.
#[test]
fn container_has_the_configured_domainname() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["domainname"] = json!("wrun.example"));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "cat /proc/sys/kernel/domainname");
    assert_eq!(out.trim(), "wrun.example");
}

#[test]
fn read_only_root_refuses_writes() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "touch /x 2>/dev/null && echo wrote || echo refused");
    assert_eq!(out.trim(), "refused");
    assert!(!b.rootfs().join("x").exists());
}

#[test]
fn writable_root_accepts_writes() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["root"]["readonly"] = json!(false));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "touch /x && echo wrote || echo refused");
    assert_eq!(out.trim(), "wrote");
    assert!(b.rootfs().join("x").exists());
}

#[test]
fn masked_files_read_empty() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    for f in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
        if !Path::new(f).exists() {
            continue;
        }
        let out = rt.run_sh(
            &mut b,
            &format!("if n=$(wc -c < {f} 2>/dev/null); then echo n=$n; else echo unreadable; fi"),
        );
        let out = out.trim();
        assert!(out == "n=0" || out == "unreadable", "{f}: {out}");
    }
}

#[test]
fn masked_directories_are_empty() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let dirs: Vec<&str> = ["/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware"]
        .into_iter()
        .filter(|d| Path::new(d).is_dir())
        .collect();
    assert!(!dirs.is_empty(), "no maskable directory exists on this host");
    for d in dirs {
        let out = rt.run_sh(&mut b, &format!("ls -A {d} 2>/dev/null | wc -l"));
        assert_eq!(out.trim(), "0", "{d} is not empty in the container");
    }
}

#[test]
fn readonly_paths_refuse_writes() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    // domainname is per UTS namespace, so even a successful write is
    // harmless to the host.
    let out = rt.run_sh(
        &mut b,
        "echo x 2>/dev/null > /proc/sys/kernel/domainname && echo wrote || echo refused",
    );
    assert_eq!(out.trim(), "refused");
}

#[test]
fn no_host_mounts_are_visible() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "cat /proc/self/mountinfo");
    let bundle = b.path_str().to_string();
    let points: Vec<&str> = out.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    for p in &points {
        assert!(
            !p.contains(&bundle) && !p.starts_with("/work") && !p.starts_with("/mnt/"),
            "host mount point {p} visible in the container:\n{out}"
        );
    }
    assert!(points.contains(&"/"), "no root mount:\n{out}");
    assert!(points.len() < 30, "too many mounts ({}):\n{out}", points.len());
}

#[test]
fn new_network_namespace_has_only_loopback() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "cat /proc/net/dev");
    let ifaces: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    assert_eq!(ifaces, vec!["lo"], "{out}");
}

#[test]
fn dev_has_the_standard_character_devices() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(
        &mut b,
        "for d in null zero full random urandom tty; do stat -c '%n %F %t %T' /dev/$d; done",
    );
    for (dev, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let want = format!("/dev/{dev} character special file {maj:x} {min:x}");
        assert!(out.lines().any(|l| l == want), "want `{want}` in:\n{out}");
    }
}

#[test]
fn dev_has_the_standard_symlinks() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(
        &mut b,
        "for l in fd stdin stdout stderr ptmx; do [ -L /dev/$l ] && echo \"$l $(readlink /dev/$l)\"; done; true",
    );
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let want = format!("{name} {target}");
        assert!(out.lines().any(|l| l == want), "want `{want}` in:\n{out}");
    }
    assert!(
        out.lines().any(|l| l == "ptmx pts/ptmx" || l == "ptmx /dev/pts/ptmx"),
        "/dev/ptmx is not a symlink to pts/ptmx:\n{out}"
    );
}

#[test]
fn dev_pts_is_a_devpts_mount() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "[ -d /dev/pts ] && grep ' /dev/pts ' /proc/self/mounts");
    assert!(out.contains("devpts"), "{out}");
}

#[test]
fn writing_to_dev_null_works() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "echo x > /dev/null && echo ok");
    assert_eq!(out.trim(), "ok");
}

#[test]
fn configured_device_appears_with_its_numbers() {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
            "fileMode": 438, "uid": 0, "gid": 0
        }])
    });
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "stat -c '%F %t %T %a %u %g' /dev/fuse");
    assert_eq!(out.trim(), "character special file a e5 666 0 0");
}

#[test]
fn bind_mount_is_writable_and_shared_with_the_host() {
    let host_dir = TempDir::new("bind");
    fs::write(host_dir.join("from-host"), "host data\n").unwrap();
    let mut b = Bundle::busybox();
    b.bind(host_dir.path(), "/data", &["rw"]);
    let rt = Runtime::new();
    let out = rt.run_sh(
        &mut b,
        "cat /data/from-host; echo container data > /data/from-container",
    );
    assert_eq!(out, "host data\n");
    assert_eq!(
        fs::read_to_string(host_dir.join("from-container")).unwrap(),
        "container data\n"
    );
}

#[test]
fn read_only_bind_mount_refuses_writes() {
    let host_dir = TempDir::new("bind");
    fs::write(host_dir.join("from-host"), "host data\n").unwrap();
    let mut b = Bundle::busybox();
    b.bind(host_dir.path(), "/data", &["ro"]);
    let rt = Runtime::new();
    let out = rt.run_sh(
        &mut b,
        "cat /data/from-host; touch /data/new 2>/dev/null && echo wrote || echo refused",
    );
    assert_eq!(out, "host data\nrefused\n");
    assert!(!host_dir.join("new").exists());
}

#[test]
fn tmpfs_mount_gets_its_size_mode_and_flags() {
    let mut b = Bundle::busybox();
    b.add_mount(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"]
    }));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "stat -c %a /scratch; grep ' /scratch ' /proc/self/mounts");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1770"), "{out}");
    let m = lines.next().unwrap_or_default();
    let opts: Vec<&str> = m.split(' ').nth(3).unwrap_or_default().split(',').collect();
    for o in ["nosuid", "nodev", "noexec", "size=1024k"] {
        assert!(opts.contains(&o), "{o} missing from {m}");
    }
}

#[test]
fn process_cwd_is_honoured() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["cwd"] = json!("/tmp"));
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "pwd").trim(), "/tmp");
}

#[test]
fn process_env_is_honoured() {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("WRUN_GREETING=hello there"))
    });
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "echo \"$WRUN_GREETING\"").trim(), "hello there");
}

#[test]
fn process_user_sets_uid_gid_and_additional_groups() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]}));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "id -u; id -g; id -G");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "{out}");
    assert_eq!(lines.get(1), Some(&"1000"), "{out}");
    let groups: Vec<&str> = lines.get(2).unwrap_or(&"").split_whitespace().collect();
    assert!(groups.contains(&"10") && groups.contains(&"20"), "{out}");
    assert!(!groups.contains(&"0"), "root group kept: {out}");
}

#[test]
fn process_umask_is_honoured() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["user"]["umask"] = json!(23));
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "umask").trim(), "0027");
}

#[test]
fn process_rlimits_are_honoured() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "ulimit -Sn; ulimit -Hn");
    assert_eq!(out, "512\n1024\n");
}

#[test]
fn no_new_privileges_is_set() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "grep NoNewPrivs /proc/self/status");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["NoNewPrivs:", "1"]);
}

#[test]
fn capabilities_are_limited_to_the_configured_set() {
    let mut b = Bundle::busybox();
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "grep -E '^Cap(Eff|Bnd|Prm):' /proc/self/status");
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
    let want = (1u64 << 5) | (1 << 10) | (1 << 29);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in lines {
        let hex = l.split_whitespace().nth(1).unwrap();
        assert_eq!(u64::from_str_radix(hex, 16).unwrap(), want, "{l}");
    }
}

#[test]
fn oom_score_adj_is_honoured() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["oomScoreAdj"] = json!(500));
    let rt = Runtime::new();
    assert_eq!(rt.run_sh(&mut b, "cat /proc/self/oom_score_adj").trim(), "500");
}

#[test]
fn sysctl_is_applied_inside_the_network_namespace() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    let rt = Runtime::new();
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(rt.run_sh(&mut b, "cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before,
        "the host's sysctl changed"
    );
}

#[test]
fn user_namespace_maps_root_to_the_configured_host_ids() {
    let mut b = Bundle::busybox();
    b.set_namespace(json!({"type": "user"})).with_config(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "cat /proc/self/uid_map; cat /proc/self/gid_map; id -u");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[2], ["0"], "{out}");
}

#[test]
fn network_namespace_can_be_joined_by_path() {
    let netns = NetNs::new();
    let mut b = Bundle::busybox();
    b.set_namespace(json!({"type": "network", "path": netns.path().to_str().unwrap()}));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "stat -L -c %i /proc/self/ns/net");
    assert_eq!(out.trim(), netns.inode().to_string());
}

#[test]
fn no_pivot_still_gives_a_working_container() {
    let out_dir = TempDir::new("out");
    let mut b = Bundle::busybox();
    b.bind(out_dir.path(), "/out", &[])
        .sh("{ echo $$; hostname; cat /proc/self/mountinfo; } > /out/report; touch /out/done");
    let rt = Runtime::new();
    let id = rt.id("nopivot");
    assert_ok(&rt.create_with(&id, &b, &["--no-pivot"]), "create --no-pivot");
    assert_ok(&rt.start(&id), "start");
    assert!(
        wait_until(Duration::from_secs(10), || out_dir.join("done").exists()),
        "the container never finished"
    );
    let report = fs::read_to_string(out_dir.join("report")).unwrap();
    let mut lines = report.lines();
    assert_eq!(lines.next(), Some("1"), "{report}");
    assert_eq!(lines.next(), Some("wrun-test"), "{report}");
    for l in lines {
        let p = l.split(' ').nth(4).unwrap_or_default();
        assert!(!p.starts_with("/work"), "host mount {p} visible:\n{report}");
    }
}

#[test]
fn a_container_without_namespaces_shares_the_hosts_and_leaves_no_mount() {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    b.with_config(|c| {
        c["linux"]["namespaces"] = json!([]);
        c["hostname"] = serde_json::Value::Null;
    });
    let rt = Runtime::new();
    let id = rt.id("nons");
    rt.create_ok(&id, &b);
    let pid = rt.pid(&id);
    for ns in ["mnt", "net", "pid", "uts", "ipc"] {
        let mine = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(mine, theirs, "{ns} namespace differs");
    }
    // Its root is the bundle's rootfs, and its mounts live under it in our namespace.
    assert_eq!(fs::read_link(format!("/proc/{pid}/root")).unwrap(), b.rootfs());
    assert_ok(&rt.delete_force(&id), "delete");
    assert_clean(rt.root(), &id, b.path());
}
