//! The files a container gets of its own in /etc: `/etc/hosts` (its name at its address, and
//! `--add-host` entries) and `/etc/resolv.conf` (the host's, or `--dns*`).

use super::{Error, Result, RunOptions};

/// `--add-host NAME:IP` (or `NAME=IP`): the name and the address (`host-gateway`: None, the
/// network's gateway).
pub fn add_host(h: &str) -> Result<(String, Option<std::net::IpAddr>)> {
    let bad = |why: &str| Error::Invalid(format!("--add-host {h:?}: {why}"));
    // The first ':' or '=': an IPv6 address has colons of its own.
    let i = h.find([':', '=']).ok_or_else(|| bad("not NAME:IP"))?;
    let (name, ip) = (&h[..i], &h[i + 1..]);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Err(bad("not a host name"));
    }
    if ip == "host-gateway" {
        return Ok((name.to_string(), None));
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip.parse().map_err(|_| bad("not an IP address (or host-gateway)"))?;
    Ok((name.to_string(), Some(ip)))
}

/// The text of the container's /etc/hosts: loopback, its own address (127.0.1.1 without a
/// network of its own) and name, then `--add-host` entries.
pub fn hosts_file(hostname: &str, own: Option<std::net::Ipv4Addr>, extra: &[(String, String)]) -> String {
    let own = own.map_or_else(|| "127.0.1.1".to_string(), |ip| ip.to_string());
    let mut s = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{own}\t{hostname}\n"
    );
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

/// The text of the container's /etc/resolv.conf: the host's with --network host; otherwise
/// the host's with loopback nameservers (unreachable from another network namespace) left
/// out, as docker does; `--dns`, `--dns-search` and `--dns-option` replace the host's lines of
/// their kind.
pub fn resolv_conf(host_network: bool, o: &RunOptions) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let kept: Vec<&str> = host
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            let (k, v) = (w.next(), w.next());
            if k == Some("nameserver") && !o.dns.is_empty()
                || k == Some("search") && !o.dns_search.is_empty()
                || k == Some("options") && !o.dns_option.is_empty()
            {
                return false;
            }
            host_network || !(k == Some("nameserver") && v.is_some_and(|a| a.starts_with("127.") || a == "::1"))
        })
        .collect();
    let mut s: String = kept.iter().map(|l| format!("{l}\n")).collect();
    if !o.dns_search.is_empty() {
        s.push_str(&format!("search {}\n", o.dns_search.join(" ")));
    }
    for d in &o.dns {
        s.push_str(&format!("nameserver {d}\n"));
    }
    if !o.dns_option.is_empty() {
        s.push_str(&format!("options {}\n", o.dns_option.join(" ")));
    }
    s
}

/// The network flags' values: `-p` with a network of the container's own, `--dns*`,
/// `--add-host`.
pub(super) fn check_flags(o: &RunOptions) -> Result<()> {
    let own_net = !matches!(o.network.as_deref(), Some("none") | Some("host"));
    if !own_net && (!o.publish.is_empty() || o.publish_all) {
        return Err(Error::Invalid(format!(
            "--publish: container ports cannot be published with --network {}",
            o.network.as_deref().unwrap_or_default()
        )));
    }
    for p in &o.publish {
        crate::network::ports::parse(p)?;
    }
    for d in &o.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::Invalid(format!("--dns {d:?}: not an IP address")));
        }
    }
    for (flag, v) in [("--dns-search", &o.dns_search), ("--dns-option", &o.dns_option)] {
        if let Some(x) = v.iter().find(|x| x.is_empty() || x.contains(char::is_whitespace)) {
            return Err(Error::Invalid(format!("{flag} {x:?}: empty or with white space")));
        }
    }
    for h in &o.add_host {
        add_host(h)?;
    }
    Ok(())
}
