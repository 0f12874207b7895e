//! A container's network namespace, made by the front end before the container: a new
//! namespace with its loopback up (docker's `none`), kept alive by a bind mount of its nsfs
//! file at `containers/<id>/netns`, and given to the runtime as the config's network namespace
//! path. This is where the bridge (CNI) will plug in: a plugin gets the same path.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{io, Error, Result};

fn sys(what: &str) -> impl FnOnce(nix::errno::Errno) -> Error + '_ {
    move |e| io(what)(e.into())
}

/// Bring `lo` up in the calling thread's network namespace.
fn loopback_up() -> Result<()> {
    // SAFETY: a plain socket(2) call; the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(sys("socket for the loopback")(nix::errno::Errno::last()));
    }
    // SAFETY: fd is a new socket.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(sys("read the loopback's flags")(nix::errno::Errno::last()));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(sys("bring the loopback up")(nix::errno::Errno::last()));
        }
    }
    Ok(())
}

/// Make a new network namespace with `lo` up and pin it at `path` (a new file).
pub fn create(path: &Path) -> Result<()> {
    fs::File::create_new(path).map_err(io(format!("create {}", path.display())))?;
    let p = path.to_path_buf();
    // In a thread of its own: unshare(CLONE_NEWNET) moves only the calling thread, which then
    // ends; the namespace lives on in the bind mount.
    let r = std::thread::spawn(move || -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(sys("unshare the network namespace"))?;
        loopback_up()?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| io(format!("pin the network namespace at {}", p.display()))(e.into()))
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Invalid("the network namespace thread panicked".into())));
    if r.is_err() {
        let _ = fs::remove_file(path);
    }
    r
}

/// Unpin (and so end, once nothing is in it) the namespace at `path`, and remove the file.
pub fn remove(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io(format!("unmount {}", path.display()))(e.into())),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("remove {}", path.display()))(e)),
        _ => Ok(()),
    }
}

/// Whether `rec` has a network namespace of its own connected to a network (not none/host).
pub fn on_a_network(rec: &super::Record) -> Option<&str> {
    rec.network.as_deref().filter(|n| !matches!(*n, "none" | "host"))
}

/// Connect `rec`'s pinned namespace to its network (the CNI chain), its ports checked and
/// taken under the networks lock, and write its /etc/hosts with the address it got. A stale
/// attachment of an earlier run is taken down first.
pub fn connect(cs: &super::Containers, rec: &super::Record) -> Result<Option<crate::network::cni::Attachment>> {
    use crate::network::{cni, ports, Networks};
    let Some(name) = on_a_network(rec) else { return Ok(None) };
    let dir = cs.dir_of(&rec.id);
    let ns = dir.join("netns");
    if name == crate::network::pasta::NAME {
        if let Some((h, _)) = rec.extra_hosts.iter().find(|(_, ip)| ip == "host-gateway") {
            return Err(Error::Invalid(format!(
                "--add-host {h}:host-gateway: on pasta the host is not reachable from the container \
                 (its gateway address is not mapped to the host); give an address instead"
            )));
        }
        crate::network::pasta::attach(&dir, &ns, &rec.ports)?;
        // No nameserver left (the host's were all on its loopback): pasta's DNS forwarder.
        let resolv = dir.join("resolv.conf");
        let text = fs::read_to_string(&resolv).unwrap_or_default();
        if !text.lines().any(|l| l.trim_start().starts_with("nameserver")) {
            let line = format!("{text}nameserver {}\n", crate::network::pasta::DNS_FORWARD);
            if let Err(e) = fs::write(&resolv, line) {
                let _ = crate::network::pasta::detach(&dir);
                return Err(io(format!("write {}", resolv.display()))(e));
            }
        }
        let hostname = fs::read_to_string(dir.join("hostname")).unwrap_or_default();
        let hosts = dir.join("hosts");
        if let Err(e) = fs::write(&hosts, super::spec::hosts_file(hostname.trim(), None, &rec.extra_hosts)) {
            let _ = crate::network::pasta::detach(&dir);
            return Err(io(format!("write {}", hosts.display()))(e));
        }
        return Ok(None);
    }
    let nets = Networks::open(cs.data_root())?;
    let n = nets.find(name)?;
    let _l = nets.lock()?;
    cni::detach(&dir, &rec.id, &ns)?;
    let mut others = Vec::new();
    if !rec.ports.is_empty() {
        for other in cs.list()?.iter().filter(|o| o.id != rec.id) {
            if let Some(a) = cni::attachment(&cs.dir_of(&other.id)) {
                others.extend(a.ports.into_iter().map(|p| (p, other.name.clone())));
            }
        }
    }
    let ports = ports::reserve(&rec.ports, &others)?;
    let a = cni::attach(&dir, &rec.id, &ns, &n, &ports)?;
    let own = a.address().and_then(|(ip, _, _)| ip.parse().ok());
    let hostname = fs::read_to_string(dir.join("hostname")).unwrap_or_default();
    let extra: Vec<(String, String)> = rec
        .extra_hosts
        .iter()
        .map(|(h, ip)| {
            (
                h.clone(),
                if ip == "host-gateway" {
                    n.gateway.to_string()
                } else {
                    ip.clone()
                },
            )
        })
        .collect();
    let hosts = dir.join("hosts");
    let text = super::spec::hosts_file(hostname.trim(), own, &extra);
    if let Err(e) = fs::write(&hosts, text) {
        let _ = cni::detach(&dir, &rec.id, &ns);
        return Err(io(format!("write {}", hosts.display()))(e));
    }
    Ok(Some(a))
}

/// Take `rec` off its network (a no-op when it is on none).
pub fn disconnect(cs: &super::Containers, rec: &super::Record) -> Result<()> {
    let dir = cs.dir_of(&rec.id);
    crate::network::pasta::detach(&dir)?;
    crate::network::cni::detach(&dir, &rec.id, &dir.join("netns"))
}

/// Whether `rec`'s namespace is connected to its network now (its CNI chain ran, or its pasta
/// runs).
pub fn attached(cs: &super::Containers, rec: &super::Record) -> bool {
    let dir = cs.dir_of(&rec.id);
    crate::network::cni::attachment(&dir).is_some() || crate::network::pasta::attachment(&dir).is_some()
}
