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
//!
//! And, not a guard but the bridge's too: its containers' traffic out is masqueraded by one
//! rule for the whole subnet (`-s SUBNET ! -o BRIDGE -j MASQUERADE`, as docker's), not by the
//! bridge plugin's chain per container. That keeps iptables out of each container's start and
//! end, and lets a container's network namespace go before the plugin's DEL (the kernel then
//! deletes its veth in the background), which is most of the time a `run --rm` spent on its
//! network.

use std::process::Command;

use super::Network;
use crate::container::{Error, Result};

/// The rules of `n`: (table, chain and match...) for `iptables -t TABLE -C|-I|-D`.
fn rules(n: &Network) -> Vec<(&'static str, Vec<String>)> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut r = vec![(
        "filter",
        owned(&[
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
        ]),
    )];
    if !n.internal {
        r.push((
            "nat",
            owned(&[
                "POSTROUTING",
                "-s",
                &n.subnet,
                "!",
                "-o",
                &n.bridge,
                "-m",
                "comment",
                "--comment",
                &format!("wrun: masquerade {}", n.bridge),
                "-j",
                "MASQUERADE",
            ]),
        ));
    }
    r
}

fn iptables(op: &str, table: &str, rule: &[String]) -> std::io::Result<std::process::Output> {
    Command::new("iptables")
        .env("PATH", super::tools_path())
        .args(["-w", "-t", table, op])
        .args(rule)
        .output()
}

/// After the bridge plugin made (or found) `n`'s bridge.
pub fn bridge_up(n: &Network) -> Result<()> {
    let ra = format!("/proc/sys/net/ipv6/conf/{}/accept_ra", n.bridge);
    if std::path::Path::new(&ra).exists() {
        std::fs::write(&ra, "0").map_err(|e| Error::Invalid(format!("network {}: set {ra} to 0: {e}", n.name)))?;
    }
    for (table, rule) in rules(n) {
        if iptables("-C", table, &rule).is_ok_and(|o| o.status.success()) {
            continue;
        }
        let o = iptables("-I", table, &rule)
            .map_err(|e| Error::Invalid(format!("network {}: run iptables: {e}", n.name)))?;
        if !o.status.success() {
            return Err(Error::Invalid(format!(
                "network {}: iptables refused a rule of {} ({}): {}",
                n.name,
                n.bridge,
                rule.join(" "),
                String::from_utf8_lossy(&o.stderr).trim().replace('\n', " ")
            )));
        }
    }
    Ok(())
}

/// When `n` is removed: its rules go (every copy, should two runs have raced to add one).
pub fn bridge_gone(n: &Network) -> Result<()> {
    for (table, rule) in rules(n) {
        for _ in 0..8 {
            match iptables("-D", table, &rule) {
                Ok(o) if o.status.success() => continue,
                _ => break,
            }
        }
    }
    Ok(())
}
