//! The seccomp filter a front-end container gets by default (`--security-opt
//! seccomp=unconfined` drops it). Written for wrun from the kernel's syscall table and
//! capabilities(7), on the lines of docker's default profile: everything is allowed except the
//! syscalls that reach kernel state a container does not own, each refused with EPERM unless
//! the container holds the capability that would make it legitimate:
//!
//! - keyrings (`add_key`, `keyctl`, `request_key`): not namespaced, so root in a container
//!   would reach the host's root keyring;
//! - new namespaces (`unshare`, `setns`, and `clone` with a CLONE_NEW* flag), and mounts of
//!   every API: a user namespace is how most kernel exploits gain the capabilities they need;
//! - `bpf`, `perf_event_open`, `userfaultfd`: large attack surfaces, and the last a tool for
//!   winning kernel races;
//! - modules, kexec, reboot, swap, clocks, the kernel log, quotas, `acct`, `iopl`/`ioperm`,
//!   handles by file handle (`open_by_handle_at`: the "shocker" escape), `ptrace`-like access
//!   to other processes' memory (`process_vm_*`, `kcmp`), and obsolete calls (`uselib`,
//!   `nfsservctl`, `vm86`).
//!
//! `clone3` answers ENOSYS, as docker's does: its flags live in memory a filter cannot read, and
//! libc falls back to `clone`, whose flags it can.

use serde_json::{json, Value};

/// The syscalls refused unless the container holds `cap` (None: always refused).
const REFUSED: &[(&[&str], Option<&str>)] = &[
    (&["add_key", "keyctl", "request_key"], None),
    (
        &[
            "uselib",
            "nfsservctl",
            "vm86",
            "vm86old",
            "create_module",
            "get_kernel_syms",
            "query_module",
        ],
        None,
    ),
    (&["userfaultfd"], Some("CAP_SYS_PTRACE")),
    (
        &["process_vm_readv", "process_vm_writev", "kcmp"],
        Some("CAP_SYS_PTRACE"),
    ),
    (
        &[
            "unshare",
            "setns",
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "swapon",
            "swapoff",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "sethostname",
            "setdomainname",
        ],
        Some("CAP_SYS_ADMIN"),
    ),
    (&["bpf"], Some("CAP_SYS_ADMIN")),
    (&["perf_event_open"], Some("CAP_SYS_ADMIN")),
    (
        &["init_module", "finit_module", "delete_module"],
        Some("CAP_SYS_MODULE"),
    ),
    (&["kexec_load", "kexec_file_load", "reboot"], Some("CAP_SYS_BOOT")),
    (
        &["settimeofday", "stime", "clock_settime", "clock_adjtime"],
        Some("CAP_SYS_TIME"),
    ),
    (&["syslog"], Some("CAP_SYSLOG")),
    (&["acct"], Some("CAP_SYS_PACCT")),
    (&["iopl", "ioperm"], Some("CAP_SYS_RAWIO")),
    (&["open_by_handle_at", "name_to_handle_at"], Some("CAP_DAC_READ_SEARCH")),
];

/// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (and NEWTIME).
const CLONE_NEW: [u64; 8] = [
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
    0x0000_0080,
];

/// The default filter for a container with capabilities `caps`, as an OCI `linux.seccomp`.
pub fn default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut names: Vec<&str> = Vec::new();
    for (calls, cap) in REFUSED {
        if cap.is_none_or(|c| !has(c)) {
            names.extend_from_slice(calls);
        }
    }
    let mut rules = vec![
        json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
    ];
    if !has("CAP_SYS_ADMIN") {
        // One rule per flag: the rules of a syscall are or-ed, so any CLONE_NEW* refuses it.
        for bit in CLONE_NEW {
            rules.push(json!({
                "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM,
                "args": [{"index": 0, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}]
            }));
        }
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_lift_the_refusals_they_make_legitimate() {
        let none = default_profile(&[]);
        let refused = |p: &Value| -> Vec<String> {
            p["syscalls"][0]["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let r = refused(&none);
        for s in [
            "keyctl",
            "unshare",
            "mount",
            "bpf",
            "open_by_handle_at",
            "userfaultfd",
            "init_module",
        ] {
            assert!(r.contains(&s.to_string()), "{s}");
        }
        assert_eq!(none["syscalls"].as_array().unwrap().len(), 2 + CLONE_NEW.len());
        let admin = default_profile(&["CAP_SYS_ADMIN".into()]);
        let r = refused(&admin);
        assert!(!r.contains(&"mount".to_string()) && r.contains(&"keyctl".to_string()));
        assert_eq!(
            admin["syscalls"].as_array().unwrap().len(),
            2,
            "clone unfiltered with CAP_SYS_ADMIN"
        );
    }
}
