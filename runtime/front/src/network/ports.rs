//! `-p/--publish [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]` (ranges as `8000-8001:80-81`) and
//! `-P` (every port the image exposes, each on a free host port), checked and given host ports
//! before the container is made. A host port is refused when another of this data root's
//! containers publishes it, or when a host program holds it (a bind of it fails): the portmap
//! plugin's DNAT would otherwise hide that program's port without a word.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::container::{Error, Result};

/// One published port, in the shape of CNI's `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// tcp, udp or sctp.
    pub protocol: String,
    /// The host address it answers on ("" for every one).
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

impl PortMapping {
    /// docker's form: `127.0.0.1:8080->80/tcp`.
    pub fn show(&self) -> String {
        let ip = if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        };
        format!("{ip}:{}->{}/{}", self.host_port, self.container_port, self.protocol)
    }

    fn same_host_port(&self, o: &PortMapping) -> bool {
        self.protocol == o.protocol
            && self.host_port == o.host_port
            && (self.host_ip.is_empty() || o.host_ip.is_empty() || self.host_ip == o.host_ip)
    }
}

fn bad(spec: &str, why: &str) -> Error {
    Error::Invalid(format!("--publish {spec:?}: {why}"))
}

/// `A` or `A-B` of ports (1..65535; 0 only where `zero_ok`, meaning "any free one").
fn port_range(spec: &str, s: &str, what: &str) -> Result<(u16, u16)> {
    let one = |x: &str| -> Result<u16> {
        x.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(spec, &format!("{what} {x:?} is not a port (1 to 65535)")))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(bad(spec, &format!("{what} range {s} runs backwards")));
            }
            Ok((a, b))
        }
        None => one(s).map(|p| (p, p)),
    }
}

/// Parse one `-p` value into its mappings (a host port of 0: to be chosen).
pub fn parse(spec: &str) -> Result<Vec<PortMapping>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(spec, &format!("protocol {proto:?} is not tcp, udp or sctp")));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [i, h, c] => (*i, *h, *c),
        _ => {
            return Err(bad(
                spec,
                "not [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO] (IPv6 host addresses are not supported)",
            ))
        }
    };
    let host_ip = match ip {
        "" | "0.0.0.0" => String::new(),
        i => i
            .parse::<Ipv4Addr>()
            .map_err(|_| bad(spec, &format!("host address {i:?} is not an IPv4 address")))?
            .to_string(),
    };
    let (c0, c1) = port_range(spec, ctr, "container port")?;
    let (h0, h1) = if host.is_empty() {
        (0, 0)
    } else {
        port_range(spec, host, "host port")?
    };
    if h0 != 0 && h1 - h0 != c1 - c0 && h0 != h1 {
        return Err(bad(spec, "the host and container ranges differ in length"));
    }
    if h0 != 0 && h0 == h1 && c0 != c1 {
        return Err(bad(spec, "one host port cannot take a range of container ports"));
    }
    Ok((c0..=c1)
        .map(|c| PortMapping {
            host_port: if h0 == 0 { 0 } else { h0 + (c - c0) },
            container_port: c,
            protocol: proto.clone(),
            host_ip: host_ip.clone(),
        })
        .collect())
}

/// The image's ExposedPorts (`"80/tcp": {}`), for `-P`.
pub fn exposed(image_config: &serde_json::Value) -> Vec<PortMapping> {
    let Some(m) = image_config["ExposedPorts"].as_object() else {
        return Vec::new();
    };
    m.keys()
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            Some(PortMapping {
                host_port: 0,
                container_port: p.parse().ok().filter(|p| *p > 0)?,
                protocol: proto.to_ascii_lowercase(),
                host_ip: String::new(),
            })
        })
        .filter(|m| matches!(m.protocol.as_str(), "tcp" | "udp"))
        .collect()
}

fn bind_addr(m: &PortMapping, port: u16) -> SocketAddrV4 {
    let ip = m.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    SocketAddrV4::new(ip, port)
}

/// Whether a host program holds the port (a bind of it fails with EADDRINUSE); the port the
/// kernel gave for 0.
fn try_bind(m: &PortMapping, port: u16) -> std::io::Result<u16> {
    match m.protocol.as_str() {
        "udp" => UdpSocket::bind(bind_addr(m, port))
            .and_then(|s| s.local_addr())
            .map(|a| a.port()),
        // sctp: not bindable through std; tcp's answer is the nearest one.
        _ => TcpListener::bind(bind_addr(m, port))
            .and_then(|s| s.local_addr())
            .map(|a| a.port()),
    }
}

/// Give every mapping a host port and check that each is free: not published by another
/// container (`others`: mapping and its container's name) nor held on the host. Duplicates
/// within `wanted` are refused too.
pub fn reserve(wanted: &[PortMapping], others: &[(PortMapping, String)]) -> Result<Vec<PortMapping>> {
    let mut out: Vec<PortMapping> = Vec::with_capacity(wanted.len());
    for m in wanted {
        let mut m = m.clone();
        if !m.host_ip.is_empty() && try_bind(&m, 0).is_err() {
            return Err(Error::Invalid(format!(
                "port {}: {} is not an address of this host",
                m.show(),
                m.host_ip
            )));
        }
        if m.host_port == 0 {
            // A free port from the kernel's ephemeral range, not used by another container.
            let mut tries = 0;
            m.host_port = loop {
                let p = try_bind(&m, 0)
                    .map_err(|e| Error::Invalid(format!("port {}: no free host port: {e}", m.show())))?;
                let c = PortMapping {
                    host_port: p,
                    ..m.clone()
                };
                if !others.iter().any(|(o, _)| o.same_host_port(&c)) && !out.iter().any(|o| o.same_host_port(&c)) {
                    break p;
                }
                tries += 1;
                if tries > 32 {
                    return Err(Error::Conflict(format!("port {}: no free host port", m.show())));
                }
            };
        } else {
            if let Some((_, who)) = others.iter().find(|(o, _)| o.same_host_port(&m)) {
                return Err(Error::Conflict(format!(
                    "port {}: host port {} is already published by container {who}",
                    m.show(),
                    m.host_port
                )));
            }
            if out.iter().any(|o| o.same_host_port(&m)) {
                return Err(Error::Conflict(format!("port {}: published twice", m.show())));
            }
            if let Err(e) = try_bind(&m, m.host_port) {
                return Err(Error::Conflict(format!(
                    "port {}: host port {} is already in use on the host ({e})",
                    m.show(),
                    m.host_port
                )));
            }
        }
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(h: u16, c: u16, p: &str, ip: &str) -> PortMapping {
        PortMapping {
            host_port: h,
            container_port: c,
            protocol: p.into(),
            host_ip: ip.into(),
        }
    }

    #[test]
    fn dockers_publish_forms_parse() {
        assert_eq!(parse("80").unwrap(), vec![pm(0, 80, "tcp", "")]);
        assert_eq!(parse("8080:80").unwrap(), vec![pm(8080, 80, "tcp", "")]);
        assert_eq!(
            parse("127.0.0.1:8080:80/udp").unwrap(),
            vec![pm(8080, 80, "udp", "127.0.0.1")]
        );
        assert_eq!(parse("127.0.0.1::80").unwrap(), vec![pm(0, 80, "tcp", "127.0.0.1")]);
        assert_eq!(parse("0.0.0.0:81:80").unwrap(), vec![pm(81, 80, "tcp", "")]);
        assert_eq!(
            parse("8000-8001:80-81").unwrap(),
            vec![pm(8000, 80, "tcp", ""), pm(8001, 81, "tcp", "")]
        );
        for (bad, why) in [
            ("80/icmp", "protocol"),
            ("70000:80", "not a port"),
            ("0:80", "not a port"),
            ("x:80", "not a port"),
            ("1.2.3:80:80", "IPv4"),
            ("[::1]:80:80", "not [HOSTIP"),
            ("9-8:80", "backwards"),
            ("8000-8002:80-81", "differ"),
            ("8000:80-81", "one host port"),
            ("", "not a port"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("--publish"), "{bad}: {e}");
        }
    }

    #[test]
    fn exposed_ports_come_from_the_image() {
        let cfg = serde_json::json!({"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "x/tcp": {}}});
        let mut e = exposed(&cfg);
        e.sort_by_key(|m| m.container_port);
        assert_eq!(e, vec![pm(0, 53, "udp", ""), pm(0, 80, "tcp", "")]);
    }

    #[test]
    fn reserved_ports_are_free_and_conflicts_are_named() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let e = reserve(&[pm(port, 80, "tcp", "127.0.0.1")], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("already in use on the host"), "{e}");
        let e = reserve(
            &[pm(40001, 80, "tcp", "")],
            &[(pm(40001, 81, "tcp", "127.0.0.1"), "web".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("published by container web"), "{e}");
        // Another protocol or address does not clash.
        drop(held);
        let r = reserve(
            &[pm(0, 80, "tcp", "127.0.0.1"), pm(0, 81, "udp", "")],
            &[(pm(port, 80, "udp", ""), "x".into())],
        )
        .unwrap();
        assert!(r.iter().all(|m| m.host_port != 0), "{r:?}");
        let e = reserve(&[pm(0, 80, "tcp", "192.0.2.7")], &[]).unwrap_err().to_string();
        assert!(e.contains("not an address of this host"), "{e}");
    }
}
