//! The network of a container run without root: pasta (Debian's `passt`), as podman 5 uses
//! it. A user cannot make a bridge, a veth pair or an iptables rule on the host, so the
//! container's network namespace (made in the rootless session, so owned by its user
//! namespace) gets a tap device whose traffic pasta, a process of the user on the host side,
//! turns into ordinary sockets of the user: outbound connections are the user's own, and a
//! published port (`-p [IP:]HOST:CONTAINER`) is a socket pasta listens on in the host's
//! namespace and forwards into the container.
//!
//! What the container can reach of the host is cut down as podman does: `--no-map-gw` (the
//! gateway address is not the host), `-T none -U none` (no port of the host's loopback is
//! forwarded into the container), and `-t none -u none` unless ports are published (pasta
//! would otherwise forward every port the container listens on, on every host address).
//!
//! pasta daemonizes once the namespace is configured and writes its pid (`-P`); the
//! attachment record keeps that pid with its start time, so `detach` ends that process and no
//! other, even after a reboot reused the pid.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ports::PortMapping;
use crate::container::{io, Error, Result};

/// The network's name for `--network` (and the default without root).
pub const NAME: &str = "pasta";

/// The address whose DNS queries pasta forwards to the host's resolver (podman's): the
/// container's nameserver when the host's are all on its loopback (systemd-resolved's
/// 127.0.0.53), which the container cannot reach.
pub const DNS_FORWARD: &str = "169.254.1.1";

/// A running pasta of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub pid: i32,
    /// The process's start time (clock ticks after boot), to know it is still ours.
    pub start: u64,
    pub ports: Vec<PortMapping>,
}

fn file_of(dir: &Path) -> PathBuf {
    dir.join("pasta.json")
}

/// The container's pasta attachment, if it has one whose process still runs.
pub fn attachment(dir: &Path) -> Option<Attachment> {
    let a: Attachment = serde_json::from_slice(&fs::read(file_of(dir)).ok()?).ok()?;
    alive(&a).then_some(a)
}

fn alive(a: &Attachment) -> bool {
    wrun_sys::pidfd::proc_stat(a.pid).is_some_and(|(state, t)| t == a.start && state != 'Z')
}

/// pasta's forwarding spec for one port: `[IP/]HOST:CONTAINER`.
fn spec(p: &PortMapping) -> String {
    let ip = if p.host_ip.is_empty() {
        String::new()
    } else {
        format!("{}/", p.host_ip)
    };
    format!("{ip}{}:{}", p.host_port, p.container_port)
}

/// pasta's arguments for the namespace `netns` with `ports` published, its pid to `pid_file`.
pub fn args(netns: &Path, ports: &[PortMapping], pid_file: &Path) -> Result<Vec<String>> {
    let mut a: Vec<String> = [
        "--config-net",
        "--quiet",
        "--netns-only",
        "--no-map-gw",
        "-T",
        "none",
        "-U",
        "none",
        "--dns-forward",
        DNS_FORWARD,
    ]
    .map(String::from)
    .to_vec();
    for (flag, proto) in [("-t", "tcp"), ("-u", "udp")] {
        let mine: Vec<&PortMapping> = ports.iter().filter(|p| p.protocol == proto).collect();
        if mine.is_empty() {
            a.extend([flag.to_string(), "none".to_string()]);
        }
        for p in mine {
            a.extend([flag.to_string(), spec(p)]);
        }
    }
    if let Some(p) = ports.iter().find(|p| p.protocol != "tcp" && p.protocol != "udp") {
        return Err(Error::Invalid(format!(
            "-p {}: pasta forwards tcp and udp ports only",
            p.show()
        )));
    }
    a.extend(["-P".to_string(), pid_file.to_string_lossy().into_owned()]);
    a.extend(["--netns".to_string(), netns.to_string_lossy().into_owned()]);
    Ok(a)
}

/// Start pasta for the container of `dir` on its namespace `netns`, with `ports` published.
/// A stale attachment of an earlier run is taken down first.
pub fn attach(dir: &Path, netns: &Path, ports: &[PortMapping]) -> Result<Attachment> {
    detach(dir)?;
    let prog = wrun_sys::which("pasta").ok_or_else(|| {
        Error::Invalid(
            "network pasta: pasta is not installed (apt-get install passt); without root a \
             container is on pasta, or on --network none or host"
                .into(),
        )
    })?;
    let pid_file = dir.join("pasta.pid");
    let err_file = dir.join("pasta.err");
    let _ = fs::remove_file(&pid_file);
    // The daemon keeps the stdio it was given: never a pipe of ours, which would stay open.
    let err = fs::File::create(&err_file).map_err(io(format!("create {}", err_file.display())))?;
    let status = Command::new(&prog)
        .args(args(netns, ports, &pid_file)?)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .status()
        .map_err(io(format!("run {}", prog.display())))?;
    let said = fs::read_to_string(&err_file).unwrap_or_default();
    let _ = fs::remove_file(&err_file);
    if !status.success() {
        let line = said
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("Failed to send") && !l.contains("syslog"))
            .unwrap_or("no message");
        let hint = if line.contains("tun") {
            " (/dev/net/tun must be usable by the user: mode 0666, as udev makes it)"
        } else {
            ""
        };
        return Err(Error::Invalid(format!("network pasta: {line}{hint}")));
    }
    let pid: i32 = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| Error::Invalid(format!("network pasta: no pid in {}", pid_file.display())))?;
    let _ = fs::remove_file(&pid_file);
    let start = wrun_sys::pidfd::proc_stat(pid)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::Invalid("network pasta: it exited at once".into()))?;
    let a = Attachment {
        pid,
        start,
        ports: ports.to_vec(),
    };
    let p = file_of(dir);
    let text = serde_json::to_vec(&a).map_err(|e| Error::Invalid(format!("encode {}: {e}", p.display())))?;
    if let Err(e) = fs::write(&p, text) {
        end(&a);
        return Err(io(format!("write {}", p.display()))(e));
    }
    Ok(a)
}

/// End the container's pasta (a no-op when it has none).
pub fn detach(dir: &Path) -> Result<()> {
    let p = file_of(dir);
    let Ok(b) = fs::read(&p) else { return Ok(()) };
    if let Ok(a) = serde_json::from_slice::<Attachment>(&b) {
        end(&a);
    }
    match fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("remove {}", p.display()))(e)),
        _ => Ok(()),
    }
}

/// SIGTERM, then SIGKILL after a second; only while it is still the process we started.
fn end(a: &Attachment) {
    use nix::sys::signal::{kill, Signal};
    let pid = nix::unistd::Pid::from_raw(a.pid);
    if !alive(a) {
        return;
    }
    let _ = kill(pid, Signal::SIGTERM);
    let t = Instant::now();
    while alive(a) {
        if t.elapsed() > Duration::from_secs(1) {
            let _ = kill(pid, Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(ip: &str, h: u16, c: u16, proto: &str) -> PortMapping {
        PortMapping {
            host_port: h,
            container_port: c,
            protocol: proto.into(),
            host_ip: ip.into(),
        }
    }

    #[test]
    fn nothing_of_the_host_is_forwarded_in_and_only_published_ports_out() {
        let a = args(Path::new("/n"), &[], Path::new("/p")).unwrap().join(" ");
        assert_eq!(
            a,
            "--config-net --quiet --netns-only --no-map-gw -T none -U none --dns-forward 169.254.1.1 -t none -u none -P /p --netns /n"
        );
        let a = args(
            Path::new("/n"),
            &[port("127.0.0.1", 8080, 80, "tcp"), port("", 5353, 53, "udp")],
            Path::new("/p"),
        )
        .unwrap()
        .join(" ");
        assert!(a.contains("-t 127.0.0.1/8080:80 -u 5353:53 "), "{a}");
        assert!(!a.contains("-t none") && !a.contains("-u none"), "{a}");
        let e = args(Path::new("/n"), &[port("", 1, 1, "sctp")], Path::new("/p")).unwrap_err();
        assert!(e.to_string().contains("tcp and udp"), "{e}");
    }
}
