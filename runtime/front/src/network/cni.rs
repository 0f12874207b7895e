//! wrun as a CNI runtime (CNI spec 1.0): the plugin chain of a network run on a container's
//! pinned network namespace. ADD runs the plugins in order, each given the previous one's
//! result; DEL runs them in reverse with the ADD's result (the firewall plugin removes its
//! per-address rules only when it gets it). What ADD used and returned is kept in the
//! container's `network.json` before the first plugin runs, so an interrupted ADD, a crashed
//! run or a removed network can still be taken down exactly.
//!
//! Plugins are found in `$WRUN_CNI_PATH` (colon-separated), else /usr/lib/cni (Debian),
//! /usr/libexec/cni and /opt/cni/bin. Each runs with a bound of 60 s.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ports::PortMapping;
use super::Network;
use crate::container::{io, Error, Result};

const CNI_VERSION: &str = "1.0.0";
/// Where `host-local` keeps its leases (its default), a directory per CNI network name.
pub const LEASES: &str = "/var/lib/cni/networks";
const IFNAME: &str = "eth0";
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What `containers/<id>/network.json` keeps: the chain as run, and what it gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    /// The network's bridge (for the inspect view).
    pub bridge: String,
    /// The configuration list the plugins were run with.
    pub conflist: Value,
    pub ports: Vec<PortMapping>,
    /// The last plugin's result (None until ADD finished).
    #[serde(default)]
    pub result: Option<Value>,
}

impl Attachment {
    /// The container's address (without the prefix) and its gateway, from the result.
    pub fn address(&self) -> Option<(String, u8, String)> {
        let ip = self.result.as_ref()?["ips"].as_array()?.first()?;
        let (a, p) = ip["address"].as_str()?.split_once('/')?;
        Some((
            a.to_string(),
            p.parse().ok()?,
            ip["gateway"].as_str().unwrap_or("").to_string(),
        ))
    }

    /// The MAC address of the container's interface.
    pub fn mac(&self) -> Option<String> {
        self.result.as_ref()?["interfaces"]
            .as_array()?
            .iter()
            .find(|i| i["sandbox"].as_str().is_some_and(|s| !s.is_empty()))
            .and_then(|i| i["mac"].as_str().map(str::to_string))
    }
}

fn file_of(dir: &Path) -> PathBuf {
    dir.join("network.json")
}

/// The attachment of the container in `dir`, if it has one.
pub fn attachment(dir: &Path) -> Option<Attachment> {
    fs::read(file_of(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn save(dir: &Path, a: &Attachment) -> Result<()> {
    let p = file_of(dir);
    let tmp = p.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(a).map_err(|e| Error::Invalid(format!("encode {}: {e}", p.display())))?;
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, &p))
        .map_err(io(format!("write {}", p.display())))
}

/// The configuration list of network `n` for a container publishing `ports`.
pub fn conflist(n: &Network, ports: &[PortMapping]) -> Value {
    let mut range = json!({"subnet": n.subnet, "gateway": n.gateway.to_string()});
    range["rangeEnd"] = json!(std::net::Ipv4Addr::from(u32::from(n.subnet().broadcast()) - 1).to_string());
    let mut ipam = json!({"type": "host-local", "ranges": [[range]], "dataDir": LEASES});
    if !n.internal {
        ipam["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    }
    let mut plugins = vec![json!({
        "type": "bridge",
        "bridge": n.bridge,
        "isGateway": true,
        // Masquerading is one rule per network (guard.rs), not a chain per container.
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": ipam,
    })];
    if !ports.is_empty() {
        plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}));
    }
    plugins.push(json!({"type": "firewall", "backend": "iptables"}));
    json!({"cniVersion": CNI_VERSION, "name": n.cni_name(), "plugins": plugins})
}

/// The plugin search path.
fn search_path() -> Vec<PathBuf> {
    match std::env::var_os("WRUN_CNI_PATH") {
        Some(p) if !p.is_empty() => std::env::split_paths(&p).collect(),
        _ => ["/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    }
}

fn find_plugin(ty: &str) -> Result<PathBuf> {
    find_plugin_in(&search_path(), ty)
}

fn find_plugin_in(dirs: &[PathBuf], ty: &str) -> Result<PathBuf> {
    dirs.iter().map(|d| d.join(ty)).find(|p| p.is_file()).ok_or_else(|| {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Error::Invalid(format!(
            "CNI plugin {ty:?} not found in {} (install containernetworking-plugins, set WRUN_CNI_PATH, or use --network none)",
            shown.join(":")
        ))
    })
}

/// Run one plugin: `command` (ADD or DEL) with `conf` on its stdin; its result.
fn exec(command: &str, ty: &str, id: &str, netns: &Path, conf: &Value) -> Result<Value> {
    let bin = find_plugin(ty)?;
    let path_env = search_path()
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let path = super::tools_path();
    let mut child = Command::new(&bin)
        .env_clear()
        .env("PATH", path)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", IFNAME)
        .env("CNI_PATH", path_env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("run CNI plugin {}", bin.display())))?;
    let input = serde_json::to_vec(conf).unwrap_or_default();
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(&input);
    }
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = out_pipe.read_to_end(&mut out);
        out
    });
    let err_reader = std::thread::spawn(move || {
        let mut err = Vec::new();
        let _ = (&mut err_pipe).take(64 * 1024).read_to_end(&mut err);
        err
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > PLUGIN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Invalid(format!(
                    "CNI plugin {ty} {command}: no answer in {} s",
                    PLUGIN_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(io(format!("wait for CNI plugin {ty}"))(e)),
        }
    };
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        // A plugin's error is JSON on stdout: {"code", "msg", "details"}.
        let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        let msg = v["msg"].as_str().map(str::to_string).unwrap_or_else(|| {
            let e = String::from_utf8_lossy(&err);
            let e = e.trim();
            if e.is_empty() {
                format!("{status}")
            } else {
                e.to_string()
            }
        });
        let details = v["details"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(Error::Invalid(
            format!("CNI plugin {ty} {command}: {msg}{details}").replace('\n', " "),
        ));
    }
    if out.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out)
        .map_err(|e| Error::Invalid(format!("CNI plugin {ty} {command}: its result is not JSON: {e}")))
}

/// The configuration one plugin of the list gets.
fn plugin_conf(list: &Value, plugin: &Value, prev: Option<&Value>, ports: &[PortMapping]) -> Value {
    let mut c = plugin.clone();
    c["cniVersion"] = list["cniVersion"].clone();
    c["name"] = list["name"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    if plugin["capabilities"]["portMappings"] == true {
        c["runtimeConfig"] = json!({"portMappings": ports});
    }
    c
}

/// Connect the container `id` (its directory `dir`, its namespace pinned at `netns`) to `n`,
/// publishing `ports`. On failure nothing is left: the plugins that ran are taken back.
pub fn attach(dir: &Path, id: &str, netns: &Path, n: &Network, ports: &[PortMapping]) -> Result<Attachment> {
    let mut a = Attachment {
        network: n.name.clone(),
        bridge: n.bridge.clone(),
        conflist: conflist(n, ports),
        ports: ports.to_vec(),
        result: None,
    };
    save(dir, &a)?;
    let plugins = a.conflist["plugins"].as_array().cloned().unwrap_or_default();
    let mut prev: Option<Value> = None;
    for (i, p) in plugins.iter().enumerate() {
        let ty = p["type"].as_str().unwrap_or_default();
        let step = exec("ADD", ty, id, netns, &plugin_conf(&a.conflist, p, prev.as_ref(), ports))
            .map_err(|e| Error::Invalid(format!("network {}: {e}", n.name)))
            .and_then(|r| {
                prev = Some(r);
                if ty == "bridge" {
                    super::guard::bridge_up(n)?;
                }
                Ok(())
            });
        if let Err(e) = step {
            // The spec: a failed ADD is followed by a DEL of the whole chain so far.
            a.result = prev;
            let _ = del_chain(&a, &plugins[..=i], id, netns);
            let _ = fs::remove_file(file_of(dir));
            return Err(e);
        }
    }
    a.result = prev;
    save(dir, &a)?;
    Ok(a)
}

fn del_chain(a: &Attachment, plugins: &[Value], id: &str, netns: &Path) -> Result<()> {
    let mut first_err = None;
    for p in plugins.iter().rev() {
        let ty = p["type"].as_str().unwrap_or_default();
        if ty == "bridge" && p["ipMasq"] == false {
            // Without a masquerade chain to take down, the bridge plugin needs the namespace
            // only to delete the veth, which waits for the kernel (70-100 ms here). The
            // namespace goes first instead: the kernel deletes its veth in the background, and
            // the plugin, finding no namespace, releases the address (the CNI spec's DEL). The
            // bridge is first in the chain, so its DEL is the last: no plugin needs it after.
            let _ = crate::container::netns::remove(netns);
        }
        let conf = plugin_conf(&a.conflist, p, a.result.as_ref(), &a.ports);
        if let Err(e) = exec("DEL", ty, id, netns, &conf) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Take the container in `dir` off its network (the plugins' DEL, in reverse); a no-op when
/// it is on none. The record goes only when every plugin let go.
pub fn detach(dir: &Path, id: &str, netns: &Path) -> Result<()> {
    let Some(a) = attachment(dir) else { return Ok(()) };
    let plugins = a.conflist["plugins"].as_array().cloned().unwrap_or_default();
    del_chain(&a, &plugins, id, netns).map_err(|e| Error::Invalid(format!("network {}: {e}", a.network)))?;
    let _ = fs::remove_file(file_of(dir));
    Ok(())
}

/// What a removed network leaves on the host: its bridge, its leases, its localhost guard.
pub fn forget(n: &Network) -> Result<()> {
    super::guard::bridge_gone(n)?;
    wrun_sys::netdev::delete(&n.bridge).map_err(|e| Error::Invalid(format!("network {}: {e}", n.name)))?;
    let leases = Path::new(LEASES).join(n.cni_name());
    match fs::remove_dir_all(&leases) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("remove {}", leases.display()))(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(internal: bool) -> Network {
        Network {
            name: "n".into(),
            id: "0123456789abcdef".repeat(4),
            driver: "bridge".into(),
            bridge: "wr-0123456789ab".into(),
            subnet: "10.91.7.0/24".into(),
            gateway: "10.91.7.1".parse().unwrap(),
            internal,
            created: String::new(),
            labels: Default::default(),
        }
    }

    fn types(l: &Value) -> Vec<&str> {
        l["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_chain_is_bridge_portmap_firewall_and_portmap_only_with_ports() {
        let p = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: "127.0.0.1".into(),
        };
        let l = conflist(&net(false), std::slice::from_ref(&p));
        assert_eq!(types(&l), ["bridge", "portmap", "firewall"]);
        assert_eq!(l["name"], "wrun-0123456789ab");
        assert_eq!(l["plugins"][0]["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(l["plugins"][0]["ipam"]["ranges"][0][0]["rangeEnd"], "10.91.7.254");
        let c = plugin_conf(&l, &l["plugins"][1], Some(&json!({"ips": []})), &[p]);
        assert_eq!(c["runtimeConfig"]["portMappings"][0]["hostIP"], "127.0.0.1");
        assert_eq!(c["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(c["name"], "wrun-0123456789ab");
        assert!(c["prevResult"].is_object());
        assert_eq!(
            l["plugins"][0]["ipMasq"], false,
            "one masquerade rule per network instead"
        );
        let l = conflist(&net(true), &[]);
        assert_eq!(types(&l), ["bridge", "firewall"]);
        assert!(l["plugins"][0]["ipam"]["routes"].is_null());
    }

    #[test]
    fn a_missing_plugin_is_named_with_the_fix() {
        let e = find_plugin_in(&[PathBuf::from("/nonexistent-cni")], "bridge")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"bridge\"") && e.contains("/nonexistent-cni") && e.contains("containernetworking-plugins"),
            "{e}"
        );
    }
}
