//! What a bridge needs beyond the CNI plugins, against its own containers:
//!
//! - **No way to the host's loopback services.** The portmap plugin sets `route_localnet` on
//!   the bridge so that `-p 127.0.0.1:…` works; that also lets a container send packets to
//!   127.0.0.1 through the bridge and reach whatever the host serves on localhost only
//!   (CVE-2020-8558, kube-proxy's case). As kube-proxy closed it: a filter INPUT rule drops
//!   packets from the bridge to 127.0.0.0/8 unless conntrack knows them as the DNAT of a
//!   published port or its replies.
//! - **No router advertisements taken from containers** (CVE-2020-13401): the bridge's
//!   `accept_ra` is 0, so a container cannot give the host an IPv6 route.

use std::process::Command;

use super::Network;
use crate::container::{Error, Result};

fn rule(n: &Network) -> Vec<String> {
    [
        "INPUT",
        "-i",
        &n.bridge,
        "-d",
        "127.0.0.0/8",
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "RELATED,ESTABLISHED,DNAT",
        "-m",
        "comment",
        "--comment",
        &format!("wrun: no host loopback from {}", n.bridge),
        "-j",
        "DROP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn iptables(op: &str, n: &Network) -> std::io::Result<std::process::Output> {
    Command::new("iptables")
        .env("PATH", super::tools_path())
        .args(["-w", "-t", "filter", op])
        .args(rule(n))
        .output()
}

/// After the bridge plugin made (or found) `n`'s bridge.
pub fn bridge_up(n: &Network) -> Result<()> {
    let ra = format!("/proc/sys/net/ipv6/conf/{}/accept_ra", n.bridge);
    if std::path::Path::new(&ra).exists() {
        std::fs::write(&ra, "0").map_err(|e| Error::Invalid(format!("network {}: set {ra} to 0: {e}", n.name)))?;
    }
    let present = iptables("-C", n).map(|o| o.status.success()).unwrap_or(false);
    if !present {
        let o = iptables("-I", n).map_err(|e| Error::Invalid(format!("network {}: run iptables: {e}", n.name)))?;
        if !o.status.success() {
            return Err(Error::Invalid(format!(
                "network {}: iptables refused the loopback guard of {}: {}",
                n.name,
                n.bridge,
                String::from_utf8_lossy(&o.stderr).trim().replace('\n', " ")
            )));
        }
    }
    Ok(())
}

/// When `n` is removed: its guard goes (every copy, should two runs have raced to add it).
pub fn bridge_gone(n: &Network) -> Result<()> {
    for _ in 0..8 {
        match iptables("-D", n) {
            Ok(o) if o.status.success() => continue,
            _ => break,
        }
    }
    Ok(())
}
