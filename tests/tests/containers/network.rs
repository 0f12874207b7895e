//! Bridge networks from the CNI plugins (`wrun network ...`, `--network NAME`, `-p`, `--dns`,
//! `--add-host`): a published port answering on 127.0.0.1, containers reaching each other, the
//! host's loopback out of a container's reach (CVE-2020-8558's class), refusals in one line,
//! and nothing left on the host by `rm -f` or `network rm` (veth, lease, iptables rule,
//! bridge). Traffic goes only to 127.0.0.1 and to the test's own networks.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

/// A /24 of 10.94.0.0/16 of this test process's own: 16 per process, so the networks of
/// tests running at once never overlap (with 4, a fifth call took a /24 still in use).
fn subnet() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = (std::process::id() % 16) * 16 + N.fetch_add(1, Ordering::SeqCst) % 16;
    format!("10.94.{n}.0/24")
}

/// A TCP port of 127.0.0.1 that nothing holds now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A network of the test's own, removed (and checked gone from the host) on drop.
struct TestNet<'a> {
    f: &'a Front,
    name: String,
    bridge: String,
    cni_name: String,
}

impl<'a> TestNet<'a> {
    /// None (with the skip line) where the CNI plugins or iptables are missing.
    fn new(f: &'a Front) -> Option<TestNet<'a>> {
        for need in [
            "/usr/lib/cni/bridge",
            "/usr/lib/cni/portmap",
            "/usr/lib/cni/firewall",
            "/usr/lib/cni/host-local",
        ] {
            if !Path::new(need).exists() {
                skip(&format!("{need} is missing (containernetworking-plugins)"));
                return None;
            }
        }
        if !run_cmd(Command::new("iptables").args(["-w", "-L", "-n"]), None)
            .status
            .success()
        {
            skip("iptables does not work here");
            return None;
        }
        let name = unique("tn");
        let o = f.network(&["create", "--subnet", &subnet(), &name]);
        assert_ok(&o, "network create");
        let v: Value = serde_json::from_str(&stdout(&f.network(&["inspect", &name]))).unwrap();
        Some(TestNet {
            f,
            bridge: v[0]["bridge"].as_str().unwrap().to_string(),
            cni_name: format!("wrun-{}", &v[0]["id"].as_str().unwrap()[..12]),
            name,
        })
    }

    /// The interfaces on the bridge (the host ends of the containers' veths).
    fn ports_on_bridge(&self) -> Vec<String> {
        bridge_ports(&self.bridge)
    }

    /// The addresses host-local has leased on this network.
    fn leases(&self) -> Vec<String> {
        fs::read_dir(Path::new("/var/lib/cni/networks").join(&self.cni_name))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TestNet<'_> {
    fn drop(&mut self) {
        // A failed test may have left containers on it: they go first.
        self.f.remove_all_containers();
        let o = self.f.network(&["rm", &self.name]);
        if std::thread::panicking() {
            return;
        }
        assert_ok(&o, "network rm");
        assert!(
            !Path::new(&format!("/sys/class/net/{}", self.bridge)).exists(),
            "bridge {} left",
            self.bridge
        );
        assert!(
            !Path::new("/var/lib/cni/networks").join(&self.cni_name).exists(),
            "leases left"
        );
        let rules = stdout(&run_cmd(&mut Command::new("iptables-save"), None));
        assert!(
            !rules.contains(&self.bridge),
            "iptables rules of {} left:\n{rules}",
            self.bridge
        );
    }
}

/// An HTTP GET of `/` on 127.0.0.1:`port`: the body, once the server answers.
fn http_get(port: u16) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    r.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

const WEB: &str =
    "mkdir -p /www && echo served-from-$(hostname) > /www/index.html && exec busybox httpd -f -p 80 -h /www";

#[test]
fn a_published_port_answers_on_127_0_0_1_containers_meet_and_rm_leaves_nothing() {
    let Some(f) = Front::new() else { return };
    let Some(net) = TestNet::new(&f) else { return };
    f.import_busybox("bb:net", &[]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let o = f.container(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        &net.name,
        "-p",
        &publish,
        "bb:net",
        "sh",
        "-c",
        WEB,
    ]);
    assert_ok(&o, "run -d the web server");
    let id = stdout(&o).trim().to_string();
    let mut body = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            body = http_get(port);
            body.is_some()
        }),
        "nothing answered on 127.0.0.1:{port}"
    );
    assert_eq!(body.unwrap().trim(), format!("served-from-{}", &id[..12]));
    // port and inspect say where it is.
    let o = f.container(&["port", "web"]);
    assert_eq!(stdout(&o).trim(), format!("80/tcp -> 127.0.0.1:{port}"));
    let ns = &inspect(&f, "web")["network_settings"];
    let ip = ns["ip_address"].as_str().unwrap().to_string();
    let sn = net_subnet(&f, &net.name);
    assert!(ip.starts_with(&sn[..sn.len() - 4]), "{ip} in {sn}");
    assert_eq!(net.leases(), vec![ip.clone()]);
    assert_eq!(net.ports_on_bridge().len(), 1);
    // Another container on the network reaches it by address; its /etc/hosts names itself by
    // its own address.
    let out = f.run_ok(&[
        "--network",
        &net.name,
        "bb:net",
        "sh",
        "-c",
        &format!("wget -qO- http://{ip}/; tail -n1 /etc/hosts; ip -o -4 addr show eth0"),
    ]);
    assert!(out.starts_with(&format!("served-from-{}", &id[..12])), "{out}");
    // The same host port again: refused in one line naming the holder; nothing more made.
    let o = f.container(&["run", "--rm", "--network", &net.name, "-p", &publish, "bb:net", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.contains(&format!("{port}")) && e.contains("published by container web"),
        "{e}"
    );
    assert_eq!(net.leases().len(), 1, "the refused run leased nothing");
    // rm -f: the veth, the lease and every rule naming its address or id go.
    let o = f.container(&["rm", "-f", "web"]);
    assert_ok(&o, "rm -f web");
    // The kernel deletes a veth with its namespace, in the background: soon, not at once.
    wait_until(Duration::from_secs(5), || net.ports_on_bridge().is_empty());
    assert_eq!(net.ports_on_bridge(), Vec::<String>::new(), "veths left");
    assert_eq!(net.leases(), Vec::<String>::new(), "leases left");
    let rules = stdout(&run_cmd(&mut Command::new("iptables-save"), None));
    assert!(
        !rules.contains(&format!("{ip}/")) && !rules.contains(&id),
        "rules left:\n{rules}"
    );
    assert!(http_get(port).is_none(), "127.0.0.1:{port} still answers");
    f.assert_nothing_left();
}

fn net_subnet(f: &Front, name: &str) -> String {
    let v: Value = serde_json::from_str(&stdout(&f.network(&["inspect", name]))).unwrap();
    v[0]["subnet"].as_str().unwrap().to_string()
}

#[test]
fn a_container_cannot_reach_the_hosts_loopback_services_through_the_bridge() {
    let Some(f) = Front::new() else { return };
    let Some(net) = TestNet::new(&f) else { return };
    f.import_busybox("bb:lo", &[]);
    // A published port makes the portmap plugin set route_localnet on the bridge: the
    // condition of the attack (CVE-2020-8558).
    let port = free_port();
    let o = f.container(&[
        "run",
        "-d",
        "--name",
        "pub",
        "--network",
        &net.name,
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "bb:lo",
        "sleep",
        "60",
    ]);
    assert_ok(&o, "run -d a publishing container");
    let rl = fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge)).unwrap();
    assert_eq!(
        rl.trim(),
        "1",
        "the attack's precondition: route_localnet on the bridge"
    );
    let ra = format!("/proc/sys/net/ipv6/conf/{}/accept_ra", net.bridge);
    if Path::new(&ra).exists() {
        assert_eq!(
            fs::read_to_string(&ra).unwrap().trim(),
            "0",
            "the bridge takes no router advertisements"
        );
    }
    // A host service on 127.0.0.1 only.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let secret = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let gw = net_subnet(&f, &net.name).replace(".0/24", ".1");
    // The attacker routes 127.0.0.1 to the gateway (what raw packets, which NET_RAW allows,
    // do without --privileged) and connects.
    let attack = format!(
        "sysctl -qw net.ipv4.conf.eth0.route_localnet=1; ip route del local 127.0.0.0/8 table local; \
         ip addr del 127.0.0.1/8 dev lo; ip route add 127.0.0.1/32 via {gw} dev eth0 && \
         echo probe | timeout 3 nc 127.0.0.1 {secret}; echo done"
    );
    let o = f.container(&[
        "run",
        "--rm",
        "--privileged",
        "--network",
        &net.name,
        "bb:lo",
        "sh",
        "-c",
        &attack,
    ]);
    assert!(stdout(&o).contains("done"), "{}", show(&o));
    let got = l.accept();
    assert!(
        got.is_err(),
        "a container reached the host's 127.0.0.1:{secret}: {got:?}"
    );
    assert_ok(&f.container(&["rm", "-f", "pub"]), "rm -f pub");
}

#[test]
fn dns_add_host_and_the_networks_verbs_do_as_docker() {
    let Some(f) = Front::new() else { return };
    let Some(net) = TestNet::new(&f) else { return };
    f.import_busybox("bb:dns", &[]);
    let out = f.run_ok(&[
        "--network",
        &net.name,
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "--add-host",
        "db:192.0.2.9",
        "--add-host",
        "gw:host-gateway",
        "bb:dns",
        "sh",
        "-c",
        "cat /etc/resolv.conf /etc/hosts",
    ]);
    let gw = net_subnet(&f, &net.name).replace(".0/24", ".1");
    let ns: Vec<&str> = out.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(ns, ["nameserver 192.0.2.53"], "{out}");
    assert!(out.contains("search example.test"), "{out}");
    assert!(
        out.contains("192.0.2.9\tdb") && out.contains(&format!("{gw}\tgw")),
        "{out}"
    );
    // ls shows it; a second one with the same subnet is refused; one in use is not removed.
    let ls = stdout(&f.network(&["ls"]));
    assert!(
        ls.lines().any(|l| l.contains(&net.name) && l.contains(&net.bridge)),
        "{ls}"
    );
    assert!(ls.lines().any(|l| l.contains("bridge") && l.contains("wrun0")), "{ls}");
    let o = f.network(&["create", "--subnet", &net_subnet(&f, &net.name), "other"]);
    assert_fails(&o, "an overlapping subnet");
    assert!(stderr(&o).contains("overlaps"), "{}", show(&o));
    let o = f.container(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--network",
        &net.name,
        "bb:dns",
        "sleep",
        "60",
    ]);
    assert_ok(&o, "run -d holder");
    let o = f.network(&["rm", &net.name]);
    assert_fails(&o, "network rm of a network in use");
    assert!(stderr(&o).contains("holder"), "{}", show(&o));
    assert_ok(&f.container(&["rm", "-f", "holder"]), "rm -f holder");
    // --network none: loopback only; an unknown network, a bad -p, -p with none: refused.
    let out = f.run_ok(&["--network", "none", "bb:dns", "sh", "-c", "ip -o link | wc -l"]);
    assert_eq!(out.trim(), "1");
    f.refused(
        &["--network", "nosuch", "bb:dns", "true"],
        "network nosuch: no such network",
    );
    f.refused(
        &["-p", "70000:80", "--network", &net.name, "bb:dns", "true"],
        "--publish",
    );
    f.refused(&["-p", "80", "--network", "none", "bb:dns", "true"], "--publish");
    // A port a host program holds.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = format!("127.0.0.1:{}:80", held.local_addr().unwrap().port());
    f.refused(
        &["-p", &p, "--network", &net.name, "bb:dns", "true"],
        "already in use on the host",
    );
    assert_eq!(net.leases(), Vec::<String>::new());
    wait_until(Duration::from_secs(5), || net.ports_on_bridge().is_empty());
    assert_eq!(net.ports_on_bridge(), Vec::<String>::new());
}

/// Outbound traffic of a bridge network leaves masqueraded (one rule for the network's
/// subnet): a peer in a namespace of the test's own, routed from the host, sees the host's
/// address, never the container's; an internal network has no way out at all.
#[test]
fn traffic_out_of_a_bridge_network_is_masqueraded() {
    let Some(f) = Front::new() else { return };
    let Some(net) = TestNet::new(&f) else { return };
    f.import_busybox("bb:nat", &[]);
    // "Outside": a namespace with a veth to the host, 198.18.N.2 there and .1 here.
    let n = std::process::id() % 250;
    let (ns, host_if, peer_if) = (format!("wrt-out-{n}"), format!("wrto{n}h"), format!("wrto{n}p"));
    let (here, there) = (format!("198.18.{n}.1"), format!("198.18.{n}.2"));
    struct Outside(String);
    impl Drop for Outside {
        fn drop(&mut self) {
            let _ = run_cmd(Command::new("ip").args(["netns", "del", &self.0]), None);
        }
    }
    host(&["ip", "netns", "add", &ns]);
    let _outside = Outside(ns.clone());
    host(&[
        "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if, "netns", &ns,
    ]);
    host(&["ip", "addr", "add", &format!("{here}/24"), "dev", &host_if]);
    host(&["ip", "link", "set", &host_if, "up"]);
    host(&["ip", "-n", &ns, "addr", "add", &format!("{there}/24"), "dev", &peer_if]);
    host(&["ip", "-n", &ns, "link", "set", &peer_if, "up"]);
    // The peer prints the address each connection comes from.
    let port = 39000 + n as u16;
    let script = format!(
        "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{there}', {port}))\ns.listen(1)\nc, a = s.accept()\nprint(a[0], flush=True)\n"
    );
    let mut peer = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 in the outside namespace");
    std::thread::sleep(Duration::from_millis(300));
    let o = f.container(&[
        "run",
        "--rm",
        "--network",
        &net.name,
        "bb:nat",
        "sh",
        "-c",
        &format!("echo hi | nc -w 3 {there} {port}; hostname -i"),
    ]);
    let seen = {
        let _ = wait_until(Duration::from_secs(5), || peer.try_wait().is_ok_and(|s| s.is_some()));
        let _ = peer.kill();
        let mut out = String::new();
        let _ = peer.stdout.take().unwrap().read_to_string(&mut out);
        let _ = peer.wait();
        out
    };
    assert_ok(&o, "run");
    let container_ip = stdout(&o).trim().to_string();
    assert_eq!(
        seen.trim(),
        here,
        "the peer saw {seen:?}, the container is {container_ip}"
    );
    assert_ne!(seen.trim(), container_ip);
    // An internal network: no masquerade rule, no route out.
    let o = f.network(&["create", "--internal", "--subnet", &subnet(), "nat-internal"]);
    assert_ok(&o, "network create --internal");
    let o = f.container(&[
        "run",
        "--rm",
        "--network",
        "nat-internal",
        "bb:nat",
        "sh",
        "-c",
        &format!("echo hi | nc -w 2 {there} {port} && echo REACHED"),
    ]);
    assert!(!stdout(&o).contains("REACHED"), "{}", show(&o));
    assert_ok(&f.network(&["rm", "nat-internal"]), "network rm");
}
