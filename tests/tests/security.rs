//! Confinement seen from inside the container: capabilities (and, as they land, seccomp and
//! hooks). Each test checks what a process in the container can and cannot do.

use serde_json::json;
use wrun_tests::*;

fn with_caps(b: &mut Bundle, caps: &[&str]) {
    b.with_config(|c| {
        c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    });
}

#[test]
fn chown_fails_without_cap_chown_and_works_with_it() {
    let script = "touch /tmp/f && chown 65534 /tmp/f && echo chowned || echo refused";
    let rt = Runtime::new();
    let mut without = Bundle::busybox();
    without.with_config(|c| c["root"]["readonly"] = json!(false));
    with_caps(&mut without, &["CAP_KILL"]);
    assert_eq!(rt.run_sh(&mut without, script).trim(), "refused");
    let mut with = Bundle::busybox();
    with.with_config(|c| c["root"]["readonly"] = json!(false));
    with_caps(&mut with, &["CAP_CHOWN"]);
    assert_eq!(rt.run_sh(&mut with, script).trim(), "chowned");
}

#[test]
fn raw_sockets_fail_without_cap_net_raw() {
    // In a fresh network namespace ping has no ICMP datagram sockets (ping_group_range is
    // empty), so it needs a raw socket. Loopback is down there, so even with the socket the
    // ping fails, but with "unreachable" rather than "permission denied".
    let script =
        "ping -c 1 -W 1 127.0.0.1 2>&1 | grep -qiE 'permission denied|not permitted' && echo refused || echo pinged";
    let rt = Runtime::new();
    let mut without = Bundle::busybox();
    with_caps(&mut without, &["CAP_KILL"]);
    assert_eq!(rt.run_sh(&mut without, script).trim(), "refused");
    let mut with = Bundle::busybox();
    with_caps(&mut with, &["CAP_NET_RAW"]);
    assert_eq!(rt.run_sh(&mut with, script).trim(), "pinged");
}

#[test]
fn a_non_root_user_keeps_exactly_its_ambient_capabilities() {
    let mut b = Bundle::busybox();
    b.with_config(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let caps = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
    });
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "grep -E '^Cap(Eff|Amb):' /proc/self/status");
    for l in out.lines() {
        let hex = l.split_whitespace().nth(1).unwrap();
        assert_eq!(u64::from_str_radix(hex, 16).unwrap(), 1 << 10, "{l}");
    }
}

#[test]
fn a_non_root_user_without_ambient_capabilities_has_none() {
    let mut b = Bundle::busybox();
    b.with_config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let rt = Runtime::new();
    let out = rt.run_sh(&mut b, "grep -E '^CapEff:' /proc/self/status");
    assert!(out.contains("0000000000000000"), "{out}");
}

#[test]
fn a_non_root_user_cannot_read_a_root_only_file() {
    let mut b = Bundle::busybox();
    std::fs::write(b.rootfs().join("etc/secret"), "s3cret").unwrap();
    std::fs::set_permissions(
        b.rootfs().join("etc/secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    b.with_config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let rt = Runtime::new();
    assert_eq!(
        rt.run_sh(&mut b, "cat /etc/secret 2>/dev/null || echo denied").trim(),
        "denied"
    );
}
