//! `wrun features`: the OCI features document, listing only what this build really applies.

use serde_json::json;

pub fn features() -> serde_json::Value {
    json!({
        "ociVersionMin": wrun::spec::OCI_VERSION_MIN,
        "ociVersionMax": wrun::spec::OCI_VERSION_MAX,
        // Hooks are issue #4: none are run yet, so none are claimed.
        "hooks": [],
        "mountOptions": wrun::linux::mountopts::known_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            // Capabilities are issue #4: not applied yet, so none are claimed.
            "capabilities": [],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
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
            "run.oci.handler": "native"
        }
    })
}

pub fn run() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&features())?);
    Ok(())
}
