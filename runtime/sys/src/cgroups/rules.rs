//! The device rules a container gets (the policy); `ebpf` and `v1` enforce them.

use super::*;

fn rule(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ).access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap_or_default()
}

/// The device rules a container gets: the config's `linux.resources.devices`, then what every
/// container needs (mknod anything; the default devices; ptys), then every `linux.devices`
/// entry, as runc does; the last matching rule wins.
/// `devices` are the nodes of `linux.devices` as (type, major, minor).
pub fn device_rules(
    spec_rules: &[LinuxDeviceCgroup],
    devices: &[(LinuxDeviceType, i64, i64)],
) -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    let mut out = spec_rules.to_vec();
    out.push(rule(true, C, None, None, "m"));
    out.push(rule(true, B, None, None, "m"));
    for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)] {
        out.push(rule(true, C, Some(maj), Some(min), "rwm"));
    }
    out.push(rule(true, C, Some(136), None, "rwm"));
    for &(typ, major, minor) in devices {
        let r = rule(true, typ, Some(major), Some(minor), "rwm");
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}
