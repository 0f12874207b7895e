//! The seccomp filter a front-end container gets by default (`--security-opt
//! seccomp=unconfined` drops it, `seccomp=FILE` replaces it). An allowlist, as docker's default
//! profile is: the system calls of the kernel's tables (`syscalls.txt`, generated from Debian's
//! kernel headers by `gen-syscalls.sh`: the provenance is in its header) are allowed, anything
//! else (a system call newer than the tables) is refused with EPERM. Written for wrun, on the
//! lines of docker's profile, from capabilities(7): out of the list are the syscalls that reach
//! kernel state a container does not own, refused with EPERM unless the container holds the
//! capability that would make them legitimate:
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

use super::{Error, Result};

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

/// The system calls of the kernel's tables (`syscalls.txt`).
fn known_syscalls() -> impl Iterator<Item = &'static str> {
    include_str!("syscalls.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The default filter for a container with capabilities `caps`, as an OCI `linux.seccomp`.
pub fn default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let refused: Vec<&str> = REFUSED
        .iter()
        .filter(|(_, cap)| cap.is_none_or(|c| !has(c)))
        .flat_map(|(calls, _)| calls.iter().copied())
        .collect();
    // clone and clone3 have rules of their own.
    let allowed: Vec<&str> = known_syscalls()
        .filter(|n| !refused.contains(n) && *n != "clone" && *n != "clone3")
        .collect();
    let mut rules = vec![
        json!({"names": allowed, "action": "SCMP_ACT_ALLOW"}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
    ];
    if has("CAP_SYS_ADMIN") {
        rules.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW"}));
    } else {
        // clone only without any CLONE_NEW* flag: (flags & all of them) == 0.
        let mask: u64 = CLONE_NEW.iter().fold(0, |m, b| m | b);
        rules.push(json!({
            "names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": mask, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

/// This machine's architecture in libseccomp's words.
fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "x86" => "SCMP_ARCH_X86",
        "arm" => "SCMP_ARCH_ARM",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        "powerpc64" => "SCMP_ARCH_PPC64LE",
        other => other,
    }
}

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let r = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut it = r.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Whether an entry's `includes` (all must hold) and `excludes` (none may) let it apply.
fn applies(cond: &Value, excludes: bool, caps: &[String], arch: &str, kernel: (u32, u32)) -> bool {
    let list = |k: &str| -> Vec<String> {
        cond[k]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (c, a) = (list("caps"), list("arches"));
    let min_kernel = cond["minKernel"].as_str().and_then(|k| {
        let mut it = k.split('.').filter_map(|x| x.parse::<u32>().ok());
        Some((it.next()?, it.next().unwrap_or(0)))
    });
    if excludes {
        !(c.iter().any(|x| caps.contains(x)) || a.iter().any(|x| x == arch))
    } else {
        c.iter().all(|x| caps.contains(x))
            && (a.is_empty() || a.iter().any(|x| x == arch))
            && min_kernel.is_none_or(|m| kernel >= m)
    }
}

/// A profile in docker's format (`--security-opt seccomp=FILE`): `defaultAction`,
/// `defaultErrnoRet`, `archMap` (or `architectures`), `syscalls` with `names` (or `name`),
/// `action`, `args`, `errnoRet` and docker's `includes`/`excludes` on capabilities, arches and
/// `minKernel`, resolved for this machine and the container's capabilities `caps` into an OCI
/// `linux.seccomp`. An OCI `linux.seccomp` is a profile of this format already.
pub fn profile_file(path: &str, caps: &[String]) -> Result<Value> {
    let bad = |why: String| Error::Invalid(format!("--security-opt seccomp={path}: {why}"));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > 4 << 20 {
        return Err(bad("larger than 4 MiB; not a seccomp profile".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let p: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let default = p["defaultAction"]
        .as_str()
        .filter(|a| a.starts_with("SCMP_ACT_"))
        .ok_or_else(|| bad("no defaultAction (SCMP_ACT_...)".into()))?;
    let arch = native_arch();
    let kernel = kernel_version();
    let mut out = json!({"defaultAction": default});
    if let Some(e) = p.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        out["defaultErrnoRet"] = e.clone();
    }
    let arches: Vec<Value> = match p["archMap"].as_array() {
        Some(m) => m
            .iter()
            .filter(|e| e["architecture"] == arch)
            .flat_map(|e| {
                std::iter::once(e["architecture"].clone())
                    .chain(e["subArchitectures"].as_array().cloned().unwrap_or_default())
            })
            .collect(),
        None => p["architectures"].as_array().cloned().unwrap_or_default(),
    };
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    for k in ["flags", "listenerPath", "listenerMetadata"] {
        if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    let mut rules = Vec::new();
    for (i, e) in p["syscalls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !applies(&e["includes"], false, caps, arch, kernel) || !applies(&e["excludes"], true, caps, arch, kernel) {
            continue;
        }
        let names: Vec<Value> = match (e["names"].as_array(), e["name"].as_str()) {
            (Some(n), _) => n.clone(),
            (None, Some(n)) => vec![json!(n)],
            _ => return Err(bad(format!("syscalls[{i}] names no syscall"))),
        };
        let action = e["action"]
            .as_str()
            .filter(|a| a.starts_with("SCMP_ACT_"))
            .ok_or_else(|| bad(format!("syscalls[{i}]: no action (SCMP_ACT_...)")))?;
        let mut r = json!({"names": names, "action": action});
        for k in ["args", "errnoRet"] {
            if let Some(v) = e.get(k).filter(|v| !v.is_null()) {
                r[k] = v.clone();
            }
        }
        rules.push(r);
    }
    out["syscalls"] = json!(rules);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_profile_is_resolved_for_this_machine_and_the_capabilities() {
        let arch = native_arch();
        let p = json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "archMap": [{"architecture": arch, "subArchitectures": ["SUB"]}, {"architecture": "SCMP_ARCH_OTHER"}],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"name": "chmod", "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_FOWNER"]}},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "999.0"}},
                {"names": ["elsewhere"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["SCMP_ARCH_OTHER"]}},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        });
        let f = std::env::temp_dir().join(format!("wrun-seccomp-unit-{}.json", std::process::id()));
        std::fs::write(&f, p.to_string()).unwrap();
        let path = f.to_str().unwrap();
        let names = |v: &Value| -> Vec<String> {
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    r["names"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|n| n.as_str().unwrap().to_string())
                })
                .collect()
        };
        let plain = profile_file(path, &[]).unwrap();
        assert_eq!(names(&plain), ["read", "write", "chmod", "personality"]);
        assert_eq!(plain["architectures"], json!([arch, "SUB"]));
        assert_eq!(plain["defaultErrnoRet"], 1);
        assert_eq!(plain["syscalls"][2]["args"][0]["value"], 8);
        let admin = profile_file(path, &["CAP_SYS_ADMIN".into(), "CAP_FOWNER".into()]).unwrap();
        assert_eq!(names(&admin), ["read", "write", "mount", "personality"]);
        std::fs::write(&f, r#"{"syscalls": []}"#).unwrap();
        assert!(profile_file(path, &[])
            .unwrap_err()
            .to_string()
            .contains("defaultAction"));
        std::fs::write(&f, "{not json").unwrap();
        assert!(profile_file(path, &[]).unwrap_err().to_string().contains("not JSON"));
        std::fs::remove_file(&f).unwrap();
        assert!(profile_file("/no/such.json", &[])
            .unwrap_err()
            .to_string()
            .contains("/no/such.json"));
    }

    #[test]
    fn an_allowlist_of_the_kernels_calls_less_what_the_capabilities_do_not_make_legitimate() {
        let allowed = |p: &Value| -> Vec<String> {
            p["syscalls"][0]["names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let none = default_profile(&[]);
        assert_eq!(none["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(none["defaultErrnoRet"], libc::EPERM);
        let a = allowed(&none);
        for s in [
            "read",
            "execve",
            "mmap",
            "socket",
            "socketcall",
            "mmap2",
            "memfd_create",
        ] {
            assert!(a.contains(&s.to_string()), "{s} allowed");
        }
        for s in [
            "keyctl",
            "unshare",
            "mount",
            "bpf",
            "open_by_handle_at",
            "userfaultfd",
            "init_module",
            "clone",
            "clone3",
        ] {
            assert!(!a.contains(&s.to_string()), "{s} not in the allowlist");
        }
        assert!(a.len() > 380, "{}", a.len());
        // clone: allowed only without CLONE_NEW* flags.
        let clone = &none["syscalls"][2];
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["valueTwo"], 0);
        let admin = default_profile(&["CAP_SYS_ADMIN".into()]);
        let a = allowed(&admin);
        assert!(a.contains(&"mount".to_string()) && !a.contains(&"keyctl".to_string()));
        assert!(
            admin["syscalls"][2]["args"].is_null(),
            "clone unfiltered with CAP_SYS_ADMIN"
        );
    }
}
