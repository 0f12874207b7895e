//! Resource limits: each limit read back from the host's cgroup files and observed from
//! inside the container; update, pause/resume, ps, events; bad resource values. The limits
//! are stated in v1 terms and read back from the v2 files on a pure cgroup v2 host
//! (tests/v2/run.sh runs this file on one).

use std::time::Duration;

use serde_json::{json, Value};
use wrun_tests::*;

fn with_resources(b: &mut Bundle, r: Value) {
    b.with_config(|c| c["linux"]["resources"] = r);
}

fn sleeper(resources: Value) -> Bundle {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "1000"]);
    with_resources(&mut b, resources);
    b
}

#[test]
fn memory_limit_is_written_to_the_cgroup() {
    let b = sleeper(json!({"memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 10}}));
    let rt = Runtime::new();
    let id = rt.id("mem");
    rt.create_ok(&id, &b);
    assert_limit(&id, "memory.limit_in_bytes", "67108864");
    assert_limit(&id, "memory.soft_limit_in_bytes", "33554432");
    // cgroup v2 has no per-cgroup swappiness: the runtime warns and ignores it there.
    if !is_cgroup_v2() {
        assert_limit(&id, "memory.swappiness", "10");
    }
}

#[test]
fn a_memory_hog_over_the_limit_is_oom_killed_and_run_exits_137() {
    let mut b = Bundle::busybox();
    // dd's 128 MiB buffer is touched by read(2): more than the 64 MiB limit.
    b.args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]);
    with_resources(&mut b, json!({"memory": {"limit": 67108864}}));
    let rt = Runtime::new();
    let o = rt.run(&rt.id("oom"), &b);
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
}

#[test]
fn events_reports_an_oom_kill() {
    let mut b = Bundle::busybox();
    b.sh("sleep 0.5; dd if=/dev/zero of=/dev/null bs=128M count=1; sleep 0.5");
    with_resources(&mut b, json!({"memory": {"limit": 67108864}}));
    let rt = Runtime::new();
    let id = rt.id("oomev");
    rt.create_ok(&id, &b);
    let events = rt.spawn(&["events", "--interval", "100ms", &id]);
    assert_ok(&rt.start(&id), "start");
    let out = events.wait_timeout(Duration::from_secs(15));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|e| e["type"] == "oom" && e["id"] == id.as_str()),
        "no oom event: {}",
        show(&out)
    );
    assert!(
        lines.iter().any(|e| e["type"] == "stats"),
        "no stats event: {}",
        show(&out)
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let mut b = Bundle::busybox();
    // The bomb runs in a child shell that dies at the first refused fork; the count is read
    // with builtins, since the parent cannot fork either once the limit is reached.
    b.sh(&format!(
        "sh -c 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done' 2>/dev/null; read n < {}; echo $n",
        container_cgroup_file("pids", "pids.current")
    ));
    with_resources(&mut b, json!({"pids": {"limit": 16}}));
    let rt = Runtime::new();
    let o = rt.run(&rt.id("pids"), &b);
    assert_ok(&o, "run");
    let current: u32 = stdout(&o).trim().parse().unwrap_or_else(|_| panic!("{}", show(&o)));
    assert!((10..=16).contains(&current), "pids.current {current}: {}", show(&o));
}

#[test]
fn pids_limit_is_written_to_the_cgroup() {
    let b = sleeper(json!({"pids": {"limit": 16}}));
    let rt = Runtime::new();
    let id = rt.id("pidsmax");
    rt.create_ok(&id, &b);
    assert_limit(&id, "pids.max", "16");
}

#[test]
fn cpu_quota_throttles_a_busy_loop_to_a_fifth_of_a_core() {
    let mut b = Bundle::busybox();
    // Prints cpu.stat-style lines: nr_throttled, and the usage as usage_ns (v1's
    // cpuacct.usage) or usage_usec (v2's cpu.stat).
    let stats = if is_cgroup_v2() {
        "cat /sys/fs/cgroup/cpu.stat"
    } else {
        "echo usage_ns $(cat /sys/fs/cgroup/cpuacct/cpuacct.usage); cat /sys/fs/cgroup/cpu/cpu.stat"
    };
    b.sh(&format!("timeout 1 sh -c 'while :; do :; done'; {stats}"));
    with_resources(
        &mut b,
        json!({"cpu": {"quota": 20000, "period": 100000, "shares": 512}}),
    );
    let rt = Runtime::new();
    let o = rt.run(&rt.id("cpu"), &b);
    assert_ok(&o, "run");
    let out = stdout(&o);
    let stat = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse::<u64>().ok())
    };
    let usage_ns = stat("usage_ns")
        .or(stat("usage_usec").map(|us| us * 1000))
        .unwrap_or_else(|| panic!("no CPU usage: {}", show(&o)));
    let throttled = stat("nr_throttled").unwrap_or_else(|| panic!("no nr_throttled: {}", show(&o)));
    assert!(throttled > 0, "never throttled: {out}");
    // Unlimited, one second of spinning uses ~1e9 ns; at 20% it is ~2e8.
    assert!(
        usage_ns < 500_000_000,
        "used {usage_ns} ns of CPU in one second under a 20% quota"
    );
}

#[test]
fn cpu_limits_are_written_to_the_cgroup() {
    let b = sleeper(json!({"cpu": {"quota": 20000, "period": 50000, "shares": 512}}));
    let rt = Runtime::new();
    let id = rt.id("cpuw");
    rt.create_ok(&id, &b);
    assert_limit(&id, "cpu.cfs_quota_us", "20000");
    assert_limit(&id, "cpu.cfs_period_us", "50000");
    assert_limit(&id, "cpu.shares", "512");
}

#[test]
fn cpuset_is_written_to_the_cgroup() {
    if !require_controller("cpuset") {
        return;
    }
    let b = sleeper(json!({"cpu": {"cpus": "0", "mems": "0"}}));
    let rt = Runtime::new();
    let id = rt.id("cpuset");
    rt.create_ok(&id, &b);
    assert_limit(&id, "cpuset.cpus", "0");
    assert_limit(&id, "cpuset.mems", "0");
}

#[test]
fn update_changes_a_running_containers_limits() {
    let b = sleeper(json!({"memory": {"limit": 67108864}, "pids": {"limit": 16}}));
    let rt = Runtime::new();
    let id = rt.id("update");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let o = rt.exec(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        "--cpu-quota",
        "30000",
        &id,
    ]);
    assert_ok(&o, "update");
    assert_limit(&id, "memory.limit_in_bytes", "134217728");
    assert_limit(&id, "pids.max", "50");
    assert_limit(&id, "cpu.cfs_quota_us", "30000");
    let o = rt.exec_stdin(
        &["update", "-r", "-", &id],
        br#"{"pids": {"limit": 20}, "memory": {"limit": -1}}"#,
    );
    assert_ok(&o, "update -r -");
    assert_limit(&id, "pids.max", "20");
    assert_limit(&id, "memory.limit_in_bytes", "9223372036854771712");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn pause_stops_a_counter_and_resume_restarts_it() {
    let out = TempDir::new("counter");
    let mut b = Bundle::busybox();
    b.bind(out.path(), "/out", &[])
        .sh("i=0; while :; do i=$((i+1)); echo $i > /out/c; sleep 0.05; done");
    let rt = Runtime::new();
    let id = rt.id("pause");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let count = || {
        std::fs::read_to_string(out.join("c"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(wait_until(Duration::from_secs(5), || count() > 2), "counter never ran");
    assert_ok(&rt.exec(&["pause", &id]), "pause");
    assert_eq!(rt.status(&id).as_deref(), Some("paused"));
    let frozen = count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(), frozen, "the counter advanced while paused");
    assert_ok(&rt.exec(&["resume", &id]), "resume");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    assert!(
        wait_until(Duration::from_secs(5), || count() > frozen),
        "the counter did not restart after resume"
    );
}

#[test]
fn ps_lists_every_process_of_the_container() {
    let mut b = Bundle::busybox();
    b.sh("sleep 1000 & sleep 1000 & wait");
    let rt = Runtime::new();
    let id = rt.id("ps");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let init = rt.pid(&id);
    assert!(wait_until(Duration::from_secs(5), || {
        let o = rt.exec(&["ps", "--format", "json", &id]);
        let pids: Vec<i64> = serde_json::from_str(stdout(&o).trim()).unwrap_or_default();
        pids.len() == 3 && pids.contains(&init)
    }));
    let table = stdout(&rt.exec(&["ps", &id]));
    assert!(table.contains("PID") && table.contains("sleep 1000"), "{table}");
}

#[test]
fn events_stats_prints_one_runc_shaped_object() {
    let b = sleeper(json!({"memory": {"limit": 67108864}, "pids": {"limit": 16}}));
    let rt = Runtime::new();
    let id = rt.id("stats");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let o = rt.exec(&["events", "--stats", &id]);
    assert_ok(&o, "events --stats");
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    let d = &v["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 67108864);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["pids"]["limit"], 16);
    assert!(d["pids"]["current"].as_u64().unwrap() >= 1, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().is_some(), "{d}");
}

#[test]
fn device_rules_deny_what_is_not_allowed_and_keep_the_defaults() {
    // /dev/kmsg (c 1:11) opens for writing without any capability, so only the devices
    // cgroup (v1) or the eBPF device filter (v2) can refuse it. The default rules let the
    // container make the node (CAP_MKNOD) and use /dev/null.
    let run = |rules: Value| {
        let mut b = Bundle::busybox();
        b.sh("echo x > /dev/null && echo null-ok; mknod /tmp/kmsg c 1 11 && echo mknod-ok; : > /tmp/kmsg && echo kmsg-opened");
        with_resources(&mut b, json!({ "devices": rules }));
        b.with_config(|c| {
            c["root"]["readonly"] = json!(false);
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_MKNOD"));
            }
        });
        let rt = Runtime::new();
        let o = rt.run(&rt.id("dev"), &b);
        format!("{}{}", stdout(&o), stderr(&o))
    };
    let denied = run(json!([{"allow": false, "access": "rwm"}]));
    assert!(denied.contains("null-ok") && denied.contains("mknod-ok"), "{denied}");
    assert!(
        !denied.contains("kmsg-opened") && denied.contains("Operation not permitted"),
        "{denied}"
    );
    let allowed = run(json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
    ]));
    assert!(allowed.contains("kmsg-opened"), "{allowed}");
}

/// A node of `linux.devices` that the config also gives a rule of its own keeps exactly that
/// rule's access: docker's `--device /dev/x:/dev/x:r` must stay read-only (runc honours it; wrun
/// once widened every listed node to rwm).
#[test]
fn a_listed_device_with_a_read_only_rule_cannot_be_opened_for_writing() {
    let mut b = Bundle::busybox();
    b.sh("(: > /dev/kmsg) 2>/dev/null && echo opened-for-writing || echo refused; echo x > /dev/null && echo null-ok");
    with_resources(
        &mut b,
        json!({ "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}
        ]}),
    );
    b.with_config(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                                         "fileMode": 438, "uid": 0, "gid": 0}]);
    });
    let rt = Runtime::new();
    let o = rt.run(&rt.id("devro"), &b);
    let out = stdout(&o);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["refused", "null-ok"], "{}", show(&o));
}

// runc 1.1 rebuilds the rules from the update alone: fails against runc.
#[test]
fn update_with_device_rules_keeps_the_configs_devices_usable() {
    let mut b = sleeper(json!({}));
    b.with_config(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11,
                                         "fileMode": 438, "uid": 0, "gid": 0}]);
    });
    let rt = Runtime::new();
    let id = rt.id("updev");
    rt.create_ok(&id, &b);
    assert_ok(&rt.start(&id), "start");
    let o = rt.exec_stdin(
        &["update", "-r", "-", &id],
        br#"{"devices": [{"allow": false, "access": "rwm"}]}"#,
    );
    assert_ok(&o, "update with a deny-all device rule");
    let o = rt.exec(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo x > /dev/null && : > /dev/kmsg && echo both-ok",
    ]);
    assert!(
        stdout(&o).contains("both-ok"),
        "after update, the config's /dev/kmsg or the default /dev/null is refused: {}",
        show(&o)
    );
}

/// Bad resource values: one line naming the field, non-zero exit, nothing left behind.
fn assert_refused(resources: Value, names: &[&str]) {
    let b = sleeper(resources);
    let rt = Runtime::new();
    let id = rt.id("badres");
    let o = rt.create(&id, &b);
    assert_fails(&o, "create");
    assert_one_line_error(&o, names);
    assert_clean(rt.root(), &id, b.path());
    for c in ["memory", "pids", "cpu"] {
        let dir = container_cgroup(c, &id);
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
}

#[test]
fn a_cpuset_naming_a_missing_cpu_is_refused() {
    assert_refused(json!({"cpu": {"cpus": "0-99"}}), &["cpu.cpus", "99"]);
}

#[test]
fn an_unknown_unified_key_is_refused() {
    assert_refused(json!({"unified": {"foo.bar": "1"}}), &["unified"]);
}

#[test]
fn a_negative_memory_limit_other_than_minus_one_is_refused() {
    assert_refused(json!({"memory": {"limit": -5}}), &["memory.limit"]);
}

#[test]
fn a_memory_limit_too_small_to_start_is_refused() {
    assert_refused(json!({"memory": {"limit": 4096}}), &["memory.limit"]);
}

#[test]
fn update_of_a_missing_container_fails() {
    let rt = Runtime::new();
    let o = rt.exec(&["update", "--memory", "64m", "nope"]);
    assert_fails(&o, "update");
    assert_one_line_error(&o, &["nope"]);
    let o = rt.exec(&["update", "--memory", "12x", "nope"]);
    assert_fails(&o, "update with a bad size");
}
