//! `wrun features`: the OCI features document, listing only what this build really applies.

use serde_json::json;

pub fn features() -> serde_json::Value {
    json!({
        "ociVersionMin": wrun::spec::OCI_VERSION_MIN,
        "ociVersionMax": wrun::spec::OCI_VERSION_MAX,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": wrun_sys::mountopts::known_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": capabilities(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]
            },
            "apparmor": {"enabled": wrun::linux::lsm::apparmor_enabled()},
            "selinux": {"enabled": wrun::linux::lsm::selinux_enabled()},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            }
        },
        "annotations": {
            "io.github.wrun.version": env!("CARGO_PKG_VERSION"),
            "run.oci.handler": "native",
            "io.github.wrun.rootless": "true",
            "io.github.wrun.rootless.cgroups": rootless_cgroups(),
            "io.github.wrun.rootless.multiIdMappings": multi_id_mappings(),
            "io.github.wrun.rootless.frontEnd": "image, container, build and system commands in the user's session (wrun unshare); store $XDG_DATA_HOME/wrun with owners shifted into the user's range; overlay with userxattr, fuse-overlayfs where the kernel refuses",
            "io.github.wrun.rootless.network": rootless_network()
        }
    })
}

/// What a caller without root gets of cgroups on this host's layout.
fn rootless_cgroups() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "delegated: cgroup v2, limits apply in a subtree the user owns; elsewhere none, with a warning"
    } else {
        "none: cgroup v1 or hybrid, limits are not applied without root (a warning says so)"
    }
}

/// What a container run without root gets for a network here.
fn rootless_network() -> String {
    let pasta = wrun_sys::which("pasta").is_some();
    let tun = std::fs::metadata("/dev/net/tun").is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o006 == 0o006
    });
    match (pasta, tun) {
        (true, true) => "pasta (default; -p on the host's addresses), none, host; bridge networks need root".into(),
        (false, _) => "none, host; pasta is not installed (apt-get install passt); bridge networks need root".into(),
        (true, false) => {
            "none, host; pasta needs /dev/net/tun usable by users (mode 0666); bridge networks need root".into()
        }
    }
}

/// Whether mappings beyond the caller's own uid and gid can be written here.
fn multi_id_mappings() -> &'static str {
    if std::path::Path::new("/usr/bin/newuidmap").exists() && std::path::Path::new("/usr/bin/newgidmap").exists() {
        "newuidmap/newgidmap, ranges from /etc/subuid and /etc/subgid"
    } else {
        "unavailable: newuidmap is not installed (apt-get install uidmap); one id each only"
    }
}

/// Every capability this runtime can name (the kernel's own list decides what is applied).
fn capabilities() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

pub fn run() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&features())?);
    Ok(())
}
