//! Networks of front-end containers (`wrun network ...`, `--network NAME`): Linux bridges
//! built by the standard CNI plugins (Debian's containernetworking-plugins: `bridge` with
//! `host-local` addresses, `portmap` for `-p`, `firewall` for the forwarding rules), never a
//! home-made stack. wrun is the CNI runtime here: it runs the plugin chain on the network
//! namespace it pinned for the container (`cni`).
//!
//! A network is a record `networks/<name>.json` under the data root. `bridge`, docker's
//! default, exists without being made: bridge `wrun0` on 10.90.0.0/16. A user network gets a
//! bridge `wr-<12 hex of its id>` and, unless `--subnet` says otherwise, the first free /24 of
//! 10.91.0.0/16 (free: no network of this data root and no host route overlaps it).
//!
//! What is host-wide (bridges, iptables chains, `host-local`'s leases under
//! /var/lib/cni/networks/<cni name>) is named from the network's id, so two data roots never
//! share one by accident; every data root's `bridge` shares `wrun0`, and its leases, on purpose.

pub mod cni;
mod guard;
pub mod pasta;
pub mod ports;

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::{io, Error, Result};

/// The default network's name, as docker's.
pub const DEFAULT: &str = "bridge";

/// The network of a container run without `--network`: docker's bridge for root; pasta
/// without root (a user can make no bridge), as podman.
pub fn default_for_caller() -> &'static str {
    if wrun_sys::userns::unprivileged_user().is_some() {
        pasta::NAME
    } else {
        DEFAULT
    }
}

/// A network other than none, host and pasta, named by a caller without root: one line
/// saying what works instead.
pub fn check_rootless(name: &str) -> Result<()> {
    // A rootless session's user (or any non-root uid); root in some other user namespace (an
    // unprivileged LXC) may well have bridges and iptables of its own.
    if wrun_sys::userns::unprivileged_user().is_some() && !matches!(name, "none" | "host" | pasta::NAME) {
        return Err(Error::Invalid(format!(
            "network {name}: bridge networks need root (a user cannot make a bridge or its \
             firewall rules); without root, use --network pasta (the default), none or host"
        )));
    }
    Ok(())
}
const DEFAULT_BRIDGE: &str = "wrun0";
const DEFAULT_SUBNET: &str = "10.90.0.0/16";
/// A fixed id: every data root's default network is the same host-wide one.
const DEFAULT_ID: &str = "77c7e0a1d5b1f0c3a2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7";
/// Where user networks' subnets are taken from, a /24 each.
const POOL: (u8, u8) = (10, 91);

/// An IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// `A.B.C.D/N`, with no host bits set, a prefix from 8 to 30.
    pub fn parse(s: &str) -> Option<Subnet> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        if !(8..=30).contains(&prefix) {
            return None;
        }
        let sn = Subnet { addr, prefix };
        (u32::from(addr) & !sn.mask() == 0).then_some(sn)
    }

    fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(&self, o: &Subnet) -> bool {
        let m = self.mask() & o.mask();
        u32::from(self.addr) & m == u32::from(o.addr) & m
    }

    /// The first host address: the gateway docker gives a network.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What `networks/<name>.json` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    /// Always "bridge".
    pub driver: String,
    /// The host's bridge interface.
    pub bridge: String,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    /// `--internal`: no default route, no masquerade (containers reach only each other).
    #[serde(default)]
    pub internal: bool,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Network {
    /// The name the CNI plugins know it by (their chains and leases are keyed by it).
    pub fn cni_name(&self) -> String {
        format!("wrun-{}", &self.id[..12])
    }

    pub fn subnet(&self) -> Subnet {
        Subnet::parse(&self.subnet).expect("a network's subnet was checked when it was made")
    }

    fn default_network() -> Network {
        let subnet = Subnet::parse(DEFAULT_SUBNET).expect("a valid subnet");
        Network {
            name: DEFAULT.into(),
            id: DEFAULT_ID.into(),
            driver: "bridge".into(),
            bridge: DEFAULT_BRIDGE.into(),
            subnet: DEFAULT_SUBNET.into(),
            gateway: subnet.first_host(),
            internal: false,
            created: String::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// `network create`'s choices.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub labels: Vec<String>,
}

/// The networks of a data root.
pub struct Networks {
    dir: PathBuf,
}

impl Networks {
    pub fn open(data_root: &Path) -> Result<Networks> {
        let dir = data_root.join("networks");
        fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        Ok(Networks { dir })
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Every network, the default first.
    pub fn list(&self) -> Result<Vec<Network>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io(format!("read {}", self.dir.display())))? {
            let Ok(e) = e else { continue };
            if e.path().extension().is_some_and(|x| x == "json") {
                if let Ok(n) = fs::read(e.path())
                    .map_err(|_| ())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|_| ()))
                {
                    out.push(n);
                }
            }
        }
        out.sort_by(|a: &Network, b| a.name.cmp(&b.name));
        out.insert(0, Network::default_network());
        Ok(out)
    }

    /// The network named `name` or whose id starts with `name`.
    pub fn find(&self, name: &str) -> Result<Network> {
        let all = self.list()?;
        if let Some(n) = all.iter().find(|n| n.name == name || n.id == name) {
            return Ok(n.clone());
        }
        let hits: Vec<&Network> = all
            .iter()
            .filter(|n| name.len() >= 3 && n.id.starts_with(name))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(Error::NoSuchNetwork(name.to_string())),
        }
    }

    /// Make a bridge network (its bridge comes with its first container).
    pub fn create(&self, name: &str, o: &CreateOptions) -> Result<Network> {
        if !crate::container::valid_name(name) || name.len() > 64 {
            return Err(Error::Invalid(format!(
                "network name {name:?}: a name is [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 64 characters)"
            )));
        }
        if matches!(name, "none" | "host" | "bridge" | "default" | pasta::NAME) {
            return Err(Error::Conflict(format!("network {name}: the name is reserved")));
        }
        let labels = o
            .labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                None if !l.is_empty() => Ok((l.clone(), String::new())),
                _ => Err(Error::Invalid(format!("--label {l:?}: not KEY=VALUE"))),
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        let _l = self.lock()?;
        let all = self.list()?;
        if all.iter().any(|n| n.name == name) {
            return Err(Error::Conflict(format!(
                "network {name}: a network with that name exists"
            )));
        }
        let taken: Vec<(String, Subnet)> = all
            .iter()
            .map(|n| (format!("network {}", n.name), n.subnet()))
            .chain(
                host_routes()
                    .into_iter()
                    .map(|(dev, s)| (format!("the host's route via {dev}"), s)),
            )
            .collect();
        let subnet = match &o.subnet {
            Some(s) => {
                let sn = Subnet::parse(s).ok_or_else(|| {
                    Error::Invalid(format!(
                        "--subnet {s:?}: not an IPv4 subnet A.B.C.D/N (prefix 8 to 30, no host bits set)"
                    ))
                })?;
                if let Some((who, t)) = taken.iter().find(|(_, t)| t.overlaps(&sn)) {
                    return Err(Error::Conflict(format!("--subnet {sn}: overlaps {t} of {who}")));
                }
                sn
            }
            None => (0..=255u8)
                .map(|c| Subnet {
                    addr: Ipv4Addr::new(POOL.0, POOL.1, c, 0),
                    prefix: 24,
                })
                .find(|sn| !taken.iter().any(|(_, t)| t.overlaps(sn)))
                .ok_or_else(|| {
                    Error::Conflict("network create: every /24 of 10.91.0.0/16 is taken; give --subnet".into())
                })?,
        };
        let gateway = match &o.gateway {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| Error::Invalid(format!("--gateway {g:?}: not an IPv4 address")))?;
                if !subnet.contains(ip) || ip == subnet.addr || ip == subnet.broadcast() {
                    return Err(Error::Invalid(format!(
                        "--gateway {ip}: not a host address of {subnet}"
                    )));
                }
                ip
            }
            None => subnet.first_host(),
        };
        let id = crate::container::new_id()?;
        let n = Network {
            name: name.to_string(),
            bridge: format!("wr-{}", &id[..12]),
            id,
            driver: "bridge".into(),
            subnet: subnet.to_string(),
            gateway,
            internal: o.internal,
            created: wrun_sys::timefmt::now(),
            labels,
        };
        let p = self.path_of(name);
        let text = serde_json::to_vec_pretty(&n).map_err(|e| Error::Invalid(format!("encode {}: {e}", p.display())))?;
        fs::write(&p, text).map_err(io(format!("write {}", p.display())))?;
        Ok(n)
    }

    /// Remove network `n`: its record, its bridge, its leases and its localhost guard. The
    /// caller checked that no container is on it.
    pub fn remove(&self, n: &Network) -> Result<()> {
        if n.name == DEFAULT {
            return Err(Error::Conflict(format!(
                "network {DEFAULT}: the default network cannot be removed"
            )));
        }
        cni::forget(n)?;
        let p = self.path_of(&n.name);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("remove {}", p.display()))(e)),
            _ => Ok(()),
        }
    }

    /// An exclusive flock on `networks/.lock`: held while a network is made and while ports
    /// are checked and taken.
    pub fn lock(&self) -> Result<crate::container::Lock> {
        crate::container::Lock::take(&self.dir.join(".lock"))
    }
}

/// The caller's PATH with the sbin directories added: the CNI plugins and the loopback guard run
/// iptables, which a user's PATH may not reach.
pub(crate) fn tools_path() -> String {
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The host's IPv4 routes that are not the default one: (device, destination).
fn host_routes() -> Vec<(String, Subnet)> {
    let text = fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // /proc/net/route prints addresses in host (little-endian) byte order.
            let (dest, mask) = (u32::from_be(dest.to_le()), u32::from_be(mask.to_le()));
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then(|| {
                (
                    f[0].to_string(),
                    Subnet {
                        addr: Ipv4Addr::from(dest & mask),
                        prefix,
                    },
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_parsed_strictly_and_overlaps_found() {
        let a = Subnet::parse("10.91.3.0/24").unwrap();
        assert_eq!(a.first_host(), Ipv4Addr::new(10, 91, 3, 1));
        assert!(a.contains(Ipv4Addr::new(10, 91, 3, 200)));
        assert!(!a.contains(Ipv4Addr::new(10, 91, 4, 1)));
        assert!(a.overlaps(&Subnet::parse("10.91.0.0/16").unwrap()));
        assert!(!a.overlaps(&Subnet::parse("10.91.4.0/24").unwrap()));
        for bad in [
            "10.91.3.1/24",
            "10.0.0.0/7",
            "10.0.0.0/31",
            "10.0.0.0",
            "x/24",
            "10.0.0.0/24/1",
        ] {
            assert!(Subnet::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(a.broadcast(), Ipv4Addr::new(10, 91, 3, 255));
    }

    #[test]
    fn user_networks_take_free_subnets_and_refuse_overlaps() {
        let d = std::env::temp_dir().join(format!("wrun-net-unit-{}", std::process::id()));
        let ns = Networks::open(&d).unwrap();
        let a = ns.create("one", &CreateOptions::default()).unwrap();
        let b = ns.create("two", &CreateOptions::default()).unwrap();
        assert!(!a.subnet().overlaps(&b.subnet()), "{} {}", a.subnet, b.subnet);
        assert_eq!(a.gateway, a.subnet().first_host());
        assert!(a.bridge.len() < 16 && a.bridge.starts_with("wr-"));
        let e = ns
            .create(
                "three",
                &CreateOptions {
                    subnet: Some(a.subnet.clone()),
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps") && e.contains("network one"), "{e}");
        assert!(ns.create("one", &CreateOptions::default()).is_err());
        assert!(ns.create("bridge", &CreateOptions::default()).is_err());
        assert!(ns.create("../x", &CreateOptions::default()).is_err());
        let e = ns
            .create(
                "gw",
                &CreateOptions {
                    subnet: Some("10.99.7.0/24".into()),
                    gateway: Some("10.99.8.1".into()),
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("--gateway 10.99.8.1"), "{e}");
        assert_eq!(ns.find("two").unwrap().id, b.id);
        assert_eq!(ns.find(DEFAULT).unwrap().bridge, "wrun0");
        assert_eq!(ns.list().unwrap().len(), 3);
        fs::remove_dir_all(&d).unwrap();
    }
}
