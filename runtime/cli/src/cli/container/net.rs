//! Networking views of a container: `container port` and inspect's network settings, read
//! from the container's CNI attachment.

use super::PortArgs;
use wrun_front::container::{Containers, Record};

/// docker's NetworkSettings, from the container's CNI attachment while it has one.
pub(super) fn network_settings(cs: &Containers, rec: &Record) -> serde_json::Value {
    let a = wrun_front::network::cni::attachment(&cs.dir_of(&rec.id));
    let (ip, prefix, gw) = a.as_ref().and_then(|a| a.address()).unwrap_or_default();
    serde_json::json!({
        "network": rec.network,
        "bridge": a.as_ref().map(|a| a.bridge.clone()).unwrap_or_default(),
        "ip_address": ip,
        "ip_prefix_len": prefix,
        "gateway": gw,
        "mac_address": a.as_ref().and_then(|a| a.mac()).unwrap_or_default(),
        "ports": a
            .as_ref()
            .map(|a| a.ports.clone())
            .or_else(|| wrun_front::network::pasta::attachment(&cs.dir_of(&rec.id)).map(|p| p.ports))
            .unwrap_or_default()
            .iter()
            .map(|p| p.show())
            .collect::<Vec<_>>(),
    })
}

/// `container port NAME [PORT[/PROTO]]`, docker's lines: `80/tcp -> 127.0.0.1:8080`.
pub(super) fn port(cs: &Containers, p: &PortArgs) -> anyhow::Result<i32> {
    let rec = cs.find(&p.name)?;
    let dir = cs.dir_of(&rec.id);
    let ports = match wrun_front::network::pasta::attachment(&dir) {
        Some(p) => p.ports,
        None => wrun_front::network::cni::attachment(&dir)
            .map(|a| a.ports)
            .unwrap_or_default(),
    };
    let want = p.port.as_deref().map(|w| match w.split_once('/') {
        Some((n, proto)) => (n.to_string(), proto.to_ascii_lowercase()),
        None => (w.to_string(), "tcp".to_string()),
    });
    let mut shown = 0;
    for m in &ports {
        if let Some((n, proto)) = &want {
            if m.container_port.to_string() != *n || m.protocol != *proto {
                continue;
            }
        }
        let ip = if m.host_ip.is_empty() { "0.0.0.0" } else { &m.host_ip };
        if want.is_some() {
            println!("{ip}:{}", m.host_port);
        } else {
            println!("{}/{} -> {ip}:{}", m.container_port, m.protocol, m.host_port);
        }
        shown += 1;
    }
    if let Some((n, proto)) = want.filter(|_| shown == 0) {
        anyhow::bail!("container {}: no public port {n}/{proto} published", rec.name);
    }
    Ok(0)
}
