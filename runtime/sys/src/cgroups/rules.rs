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
/// container needs (mknod anything; the default devices; ptys), then the nodes of
/// `linux.devices` that no rule of the config names by type and numbers; the last matching
/// rule wins. A node the config has a rule of its own for keeps exactly that rule's access
/// (docker's `--device /dev/x:/dev/x:r` is read-only, as with runc); one it only lists stays
/// usable, so that a deny-all rule (of `create` or of a later `update`) does not take away a
/// device the container was given. runc allows such a node nothing; wrun keeps it usable.
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
        let named = spec_rules
            .iter()
            .any(|s| s.typ() == Some(typ) && s.major() == Some(major) && s.minor() == Some(minor));
        let r = rule(true, typ, Some(major), Some(minor), "rwm");
        if !named && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_with_a_rule_of_its_own_keeps_that_rules_access() {
        use LinuxDeviceType::C;
        let deny = rule(false, LinuxDeviceType::A, None, None, "rwm");
        let read_only = rule(true, C, Some(10), Some(229), "r");
        let rules = device_rules(&[deny.clone(), read_only.clone()], &[(C, 10, 229), (C, 1, 11)]);
        // /dev/fuse keeps its "r"; /dev/kmsg, listed only, stays usable.
        assert!(!rules.contains(&rule(true, C, Some(10), Some(229), "rwm")), "{rules:?}");
        assert!(rules.contains(&read_only));
        assert!(rules.contains(&rule(true, C, Some(1), Some(11), "rwm")), "{rules:?}");
        assert_eq!(rules[0], deny);
    }
}
