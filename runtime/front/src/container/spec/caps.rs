//! The capability set of a container: docker's default, all (`--privileged`, `ALL`), plus
//! `--cap-add`, minus `--cap-drop`.

use super::RunOptions;
use crate::container::{Error, Result};

/// The capabilities docker gives a container by default.
pub const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability by number (capabilities(7)).
const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities in this process's bounding set: what "ALL" can give (a host without
/// CAP_SYS_RESOURCE cannot hand it to a container).
pub(super) fn own_caps() -> Vec<&'static str> {
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bnd & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// `NET_ADMIN`, `cap_net_admin` or `CAP_NET_ADMIN` as `CAP_NET_ADMIN`; `ALL` as itself.
pub(super) fn cap_name(flag: &str, v: &str) -> Result<String> {
    let up = v.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::Invalid(format!("{flag} {v:?}: no such capability")))
    }
}

/// The capability set: docker's default (or all with --privileged), plus --cap-add, minus
/// --cap-drop (docker's order: a drop of ALL first empties, then adds apply).
pub(super) fn capabilities(o: &RunOptions) -> Result<Vec<String>> {
    let add: Vec<String> = o
        .cap_add
        .iter()
        .map(|c| cap_name("--cap-add", c))
        .collect::<Result<_>>()?;
    let drop: Vec<String> = o
        .cap_drop
        .iter()
        .map(|c| cap_name("--cap-drop", c))
        .collect::<Result<_>>()?;
    let own = own_caps();
    let mut set: Vec<String> = if o.privileged {
        own.iter().map(|c| c.to_string()).collect()
    } else {
        DOCKER_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    }
    set.retain(|c| !drop.contains(c));
    for c in &add {
        if c == "ALL" {
            set = own.iter().map(|c| c.to_string()).collect();
        } else if !set.contains(c) {
            set.push(c.clone());
        }
    }
    Ok(set)
}
