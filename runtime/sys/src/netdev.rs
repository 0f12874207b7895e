//! Network interfaces over rtnetlink. `linux.netDevices`: move a host interface into the
//! container's network namespace, renamed when asked, with one RTM_NEWLINK request (move and
//! rename together, so a name clash cannot leave the device half-moved). The front end's
//! networks: delete a bridge (RTM_DELLINK) when its network is removed.

use std::ffi::CString;

use crate::{Error, Result};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
/// RT_SCOPE_UNIVERSE: the addresses worth keeping (link-local ones the kernel makes again).
const SCOPE_UNIVERSE: u8 = 0;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_PID: u16 = 19;

fn push_attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The RTM_NEWLINK request moving interface `index` to the netns of `pid`, named `new_name`.
pub fn move_request(index: i32, pid: i32, new_name: Option<&str>, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&[0u8; 16]); // nlmsghdr, filled in below
                                     // struct ifinfomsg: family, pad, type, index, flags, change
    b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut b, IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes());
    if let Some(n) = new_name {
        let mut name = n.as_bytes().to_vec();
        name.push(0);
        push_attr(&mut b, IFLA_IFNAME, &name);
    }
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// Check a name the kernel would accept for an interface.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() < libc::IFNAMSIZ
        && n != "."
        && n != ".."
        && !n.contains(['/', ':'])
        && !n.contains(char::is_whitespace)
}

/// The index of interface `name` in the calling thread's network namespace (None: no such one).
pub fn index_of(name: &str) -> Option<i32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: valid C string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    (index != 0).then_some(index as i32)
}

/// A netlink route socket in the calling thread's network namespace.
fn route_socket(what: &dyn Fn() -> String) -> Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(Error::io(what(), std::io::Error::last_os_error()));
    }
    // SAFETY: we own the new fd.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

fn header(b: &mut [u8], typ: u16, flags: u16, seq: u32) {
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&typ.to_ne_bytes());
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
}

/// An interface address, as RTM_GETADDR gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: u8,
    pub prefixlen: u8,
    pub scope: u8,
    pub local: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
}

/// The global-scope addresses of interface `index` (IPv4 and IPv6).
pub fn addresses(index: i32) -> Result<Vec<Addr>> {
    let what = || format!("list the addresses of interface {index}");
    let fd = route_socket(&what)?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let mut req = vec![0u8; 16];
    req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    req.extend_from_slice(&0i32.to_ne_bytes());
    header(&mut req, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1);
    // SAFETY: a valid buffer of its length.
    if unsafe { libc::send(raw, req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(Error::io(what(), std::io::Error::last_os_error()));
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return Err(Error::io(what(), std::io::Error::last_os_error()));
        }
        let mut msgs = &buf[..n as usize];
        while msgs.len() >= 16 {
            let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap_or_default()) as usize;
            let typ = u16::from_ne_bytes([msgs[4], msgs[5]]);
            if len < 16 || len > msgs.len() {
                return Ok(out);
            }
            match typ {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let err = i32::from_ne_bytes(msgs[16..20].try_into().unwrap_or_default());
                    return Err(Error::io(what(), std::io::Error::from_raw_os_error(-err)));
                }
                RTM_NEWADDR if len >= 24 => {
                    let body = &msgs[16..len];
                    let ifindex = i32::from_ne_bytes(body[4..8].try_into().unwrap_or_default());
                    let mut a = Addr {
                        family: body[0],
                        prefixlen: body[1],
                        scope: body[3],
                        local: None,
                        address: None,
                        broadcast: None,
                    };
                    let mut attrs = &body[8..];
                    while attrs.len() >= 4 {
                        let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                        let atyp = u16::from_ne_bytes([attrs[2], attrs[3]]);
                        if alen < 4 || alen > attrs.len() {
                            break;
                        }
                        let data = attrs[4..alen].to_vec();
                        match atyp {
                            IFA_LOCAL => a.local = Some(data),
                            IFA_ADDRESS => a.address = Some(data),
                            IFA_BROADCAST => a.broadcast = Some(data),
                            _ => {}
                        }
                        attrs = &attrs[alen.next_multiple_of(4).min(attrs.len())..];
                    }
                    if ifindex == index && a.scope == SCOPE_UNIVERSE {
                        out.push(a);
                    }
                }
                _ => {}
            }
            msgs = &msgs[len.next_multiple_of(4).min(msgs.len())..];
        }
    }
}

/// Add `addrs` to interface `name` of the calling thread's network namespace.
pub fn add_addresses(name: &str, addrs: &[Addr]) -> Result<()> {
    let what = || format!("linux.netDevices: restore the addresses of {name}");
    let index = index_of(name).ok_or_else(|| Error::io(what(), std::io::Error::from_raw_os_error(libc::ENODEV)))?;
    for (i, a) in addrs.iter().enumerate() {
        let mut b = vec![0u8; 16];
        b.extend_from_slice(&[a.family, a.prefixlen, 0, a.scope]);
        b.extend_from_slice(&index.to_ne_bytes());
        for (typ, v) in [
            (IFA_LOCAL, &a.local),
            (IFA_ADDRESS, &a.address),
            (IFA_BROADCAST, &a.broadcast),
        ] {
            if let Some(v) = v {
                push_attr(&mut b, typ, v);
            }
        }
        header(
            &mut b,
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            i as u32 + 1,
        );
        request(&b, what)?;
    }
    Ok(())
}

/// Send one rtnetlink request and read its acknowledgement.
fn request(req: &[u8], what: impl Fn() -> String) -> Result<()> {
    let fd = route_socket(&what)?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // SAFETY: zeroed sockaddr_nl is valid; kernel is pid 0.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: buffer and address are valid for the call.
    let n = unsafe {
        libc::sendto(
            raw,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if n < 0 {
        return Err(Error::io(what(), std::io::Error::last_os_error()));
    }
    let mut buf = [0u8; 4096];
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 20 {
        return Err(Error::io(what(), std::io::Error::last_os_error()));
    }
    let typ = u16::from_ne_bytes([buf[4], buf[5]]);
    let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if typ == NLMSG_ERROR && err != 0 {
        return Err(Error::io(what(), std::io::Error::from_raw_os_error(-err)));
    }
    Ok(())
}

/// Move host interface `name` into the network namespace of `pid`, renaming it to `new_name`,
/// with its global addresses, which the kernel drops on the move, added back there (as runc
/// 1.3 does).
pub fn move_to(name: &str, pid: i32, new_name: Option<&str>) -> Result<()> {
    let what = || format!("linux.netDevices: move {name} into the container");
    let index = index_of(name).ok_or_else(|| Error::io(what(), std::io::Error::from_raw_os_error(libc::ENODEV)))?;
    let addrs = addresses(index)?;
    request(&move_request(index, pid, new_name, 1), what)?;
    if addrs.is_empty() {
        return Ok(());
    }
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| Error::io(format!("linux.netDevices: open the network namespace of {pid}"), e))?;
    let inside = new_name.unwrap_or(name).to_string();
    // A thread of its own enters the container's namespace: ours stays where it is.
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::sys("linux.netDevices: enter the container's network namespace", e))?;
            add_addresses(&inside, &addrs)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::io(
                "linux.netDevices: restore the addresses",
                std::io::Error::other("thread panicked"),
            ))
        })
    })
}

/// Delete interface `name` of the calling thread's network namespace (a bridge, with the
/// ports still on it let go). Ok when there is no such interface.
pub fn delete(name: &str) -> Result<()> {
    let Some(index) = index_of(name) else { return Ok(()) };
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    header(&mut b, RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, 1);
    match request(&b, || format!("delete network interface {name}")) {
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_request_carries_the_pid_and_the_new_name_aligned() {
        let r = move_request(7, 1234, Some("eth9"), 1);
        assert_eq!(r.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()) as usize, r.len());
        assert_eq!(i32::from_ne_bytes(r[20..24].try_into().unwrap()), 7);
        // First attribute: IFLA_NET_NS_PID with the pid.
        assert_eq!(u16::from_ne_bytes(r[34..36].try_into().unwrap()), IFLA_NET_NS_PID);
        assert_eq!(u32::from_ne_bytes(r[36..40].try_into().unwrap()), 1234);
        assert_eq!(&r[44..49], b"eth9\0");
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(valid_name("eth0"));
        for n in ["", "a/b", "sixteen-chars-xx", "a b", ".."] {
            assert!(!valid_name(n), "{n}");
        }
    }
}
