//! Namespaces: which are created and which joined, and starting the container's init inside
//! them. The common case (nothing to join) is one clone(2) with every flag; joining a
//! namespace by path takes an intermediate process that joins first and then creates the rest,
//! so new namespaces are owned by the right user namespace (runc's order).

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use super::sync::{Failure, Msg, SyncSocket};
use crate::error::Context;
use crate::{Error, Result};

/// What to do with each namespace, decided before any side effect.
#[derive(Debug)]
pub struct NsPlan {
    /// Namespaces created by clone/unshare (not cgroup or time: see below).
    pub new_flags: CloneFlags,
    /// A new cgroup namespace is unshared by the init once it is in its cgroup, so the
    /// namespace's root is the container's cgroup.
    pub new_cgroup: bool,
    /// A new time namespace is unshared before the init exists (it only applies to children)
    /// so its clock offsets can be written first.
    pub new_time: bool,
    /// Namespaces to join, opened early; the user namespace comes first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    pub uid_map: String,
    pub gid_map: String,
    /// Contents for /proc/self/timens_offsets.
    pub time_offsets: String,
}

impl Default for NsPlan {
    fn default() -> Self {
        NsPlan {
            new_flags: CloneFlags::empty(),
            new_cgroup: false,
            new_time: false,
            join: vec![],
            uid_map: String::new(),
            gid_map: String::new(),
            time_offsets: String::new(),
        }
    }
}

impl NsPlan {
    pub fn new_user(&self) -> bool {
        self.new_flags.contains(CloneFlags::CLONE_NEWUSER)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        flag(t).is_some_and(|f| self.new_flags.contains(f))
            || (t == LinuxNamespaceType::Cgroup && self.new_cgroup)
            || (t == LinuxNamespaceType::Time && self.new_time)
            || self.join.iter().any(|(j, _)| *j == t)
    }
}

/// The one table of namespace types: the flag that setns(2) and unshare(2) take, and the
/// file under /proc/PID/ns.
pub fn setns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/PID/ns file name of each namespace type.
pub fn proc_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The flag for the clone that makes the container: none for cgroup and time, which the init
/// unshares itself later (after joining its cgroup; time takes its offsets first).
fn flag(t: LinuxNamespaceType) -> Option<CloneFlags> {
    match t {
        LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time => None,
        t => Some(setns_flag(t)),
    }
}

/// Build the namespace plan from `linux`.
pub fn plan(linux: &Linux) -> NsPlan {
    let mut p = NsPlan::default();
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        match (ns.path(), ns.typ()) {
            (Some(path), t) if t == LinuxNamespaceType::User => p.join.insert(0, (t, path.clone())),
            (Some(path), t) => p.join.push((t, path.clone())),
            (None, LinuxNamespaceType::Cgroup) => p.new_cgroup = true,
            (None, LinuxNamespaceType::Time) => p.new_time = true,
            (None, t) => p.new_flags |= flag(t).unwrap_or(CloneFlags::empty()),
        }
    }
    p.uid_map = id_map(linux.uid_mappings().as_deref().unwrap_or_default());
    p.gid_map = id_map(linux.gid_mappings().as_deref().unwrap_or_default());
    if let Some(offsets) = linux.time_offsets() {
        let mut keys: Vec<_> = offsets.keys().collect();
        keys.sort();
        for k in keys {
            let o = &offsets[k];
            p.time_offsets += &format!("{k} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0));
        }
    }
    p
}

/// The text of /proc/PID/uid_map for `maps`.
pub fn id_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

pub use wrun_sys::idmap::write_id_maps;

/// Namespace files opened in the parent, so a bad path fails before any side effect.
pub struct JoinFds(Vec<(LinuxNamespaceType, File)>);

pub fn open_join_fds(plan: &NsPlan) -> Result<JoinFds> {
    let mut v = Vec::new();
    for (t, path) in &plan.join {
        let f = File::open(path).ctx(|| format!("{t} namespace {}", path.display()))?;
        v.push((*t, f));
    }
    Ok(JoinFds(v))
}

fn join_all(fds: &JoinFds) -> Result<()> {
    for (t, f) in &fds.0 {
        nix::sched::setns(f.as_fd(), setns_flag(*t)).ctx(|| format!("join {t} namespace"))?;
    }
    Ok(())
}

fn unshare_time(offsets: &str) -> Result<()> {
    nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)).ctx(|| "unshare time namespace".into())?;
    if !offsets.is_empty() {
        std::fs::write("/proc/self/timens_offsets", offsets)
            .ctx(|| "linux.timeOffsets: write timens_offsets".into())?;
    }
    Ok(())
}

/// The body of a child process; returns only with an error.
pub type InitFn<'a> = dyn FnOnce(&SyncSocket) -> Result<Infallible> + 'a;

/// Start the init in its namespaces and return its pid. `init` runs in the child with the
/// child's end of the setup socket; it never returns on success (it execs), and its error
/// goes back to the parent as the message `create` prints. Id maps are written here; the
/// caller sends `Go` once the init's cgroup and devices are ready.
/// The body of a cloned child (the container's init, or an `exec` process): made
/// non-dumpable before anything else, so no process of the container can open its
/// `/proc/PID/{exe,fd,mem}` (the kernel resets this at execve for a native program; a wasm
/// guest keeps it for life). A panic is caught here and reported like an error: it must not
/// unwind into the parent's code (its cleanup would run in the child). Never returns.
///
/// With `mapped_later` (a caller without root made a user namespace) the child stays dumpable
/// until the parent has written its id maps: the kernel lets an unprivileged writer reach
/// /proc/PID/{uid,gid}_map only while PID is dumpable (runc's nsexec does the same). The init
/// makes itself non-dumpable as soon as the parent's `Go` says the maps are there, before it
/// touches the container (`no_dump`); until then it runs only wrun's own code, under the
/// caller's own uid.
pub fn child_main(sock: &SyncSocket, body: Box<InitFn<'_>>, mapped_later: bool) -> ! {
    if !mapped_later {
        no_dump();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(sock)));
    let failure = match r {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => Failure::from(&e),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Failure {
                msg: format!("internal error in the container's setup (panic: {what})"),
                errno: None,
            }
        }
    };
    let _ = sock.send(&Msg::Failed(failure));
    // SAFETY: leave without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(1) }
}

/// Make this process non-dumpable: its /proc/PID/{exe,fd,mem} closed to the container.
pub fn no_dump() {
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// A raw clone of a multi-threaded process may deadlock in the child (another thread may hold
/// malloc's lock): refuse, with the reason, rather than hang.
pub fn single_threaded() -> Result<()> {
    let stat = std::fs::read_to_string("/proc/self/stat").ctx(|| "read /proc/self/stat".into())?;
    // Field 20 (num_threads), counted after the command name's closing parenthesis.
    let threads = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1);
    if threads > 1 {
        return Err(Error::init(format!(
            "clone: this process has {threads} threads; a container can only be made from a single-threaded process"
        )));
    }
    Ok(())
}

pub fn spawn(
    plan: &NsPlan,
    fds: &JoinFds,
    parent: &SyncSocket,
    child: &SyncSocket,
    init: impl FnOnce(&SyncSocket) -> Result<Infallible>,
) -> Result<i32> {
    single_threaded()?;
    let mapped_later = plan.new_user() && !nix::unistd::geteuid().is_root();
    let run_child = |sock: &SyncSocket, init: Box<InitFn<'_>>, mapped_later: bool| -> ! {
        // SAFETY: closing our copy of the parent's end so we see EOF if the parent dies.
        unsafe { libc::close(parent.0.as_raw_fd()) };
        child_main(sock, init, mapped_later)
    };

    if plan.join.is_empty() {
        if plan.new_time {
            unshare_time(&plan.time_offsets)?;
        }
        // SAFETY: wrun is single-threaded here, and the child leaves through exec or _exit.
        let pid = unsafe { wrun_sys::syscall::clone_fork(plan.new_flags.bits() as libc::c_ulong) }
            .ctx(|| format!("clone with namespaces {:?}", plan.new_flags))?;
        if pid == 0 {
            run_child(child, Box::new(init), mapped_later);
        }
        if plan.new_user() {
            if let Err(e) = write_id_maps(pid, &plan.uid_map, &plan.gid_map) {
                kill_and_reap(pid);
                return Err(e.into());
            }
        }
        return Ok(pid);
    }

    // Two stages: an intermediate joins, unshares, then forks the init as our child.
    // SAFETY: as above.
    let mid = unsafe { wrun_sys::syscall::clone_fork(0) }.ctx(|| "clone intermediate process".into())?;
    if mid == 0 {
        let stage = || -> Result<Infallible> {
            join_all(fds)?;
            if plan.new_user() {
                nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare user namespace".into())?;
                child.send(&Msg::MapIds)?;
                child.expect(Msg::Go)?;
                no_dump();
            }
            let rest = plan.new_flags - CloneFlags::CLONE_NEWUSER;
            nix::sched::unshare(rest).ctx(|| format!("unshare {rest:?}"))?;
            if plan.new_time {
                unshare_time(&plan.time_offsets)?;
            }
            // SAFETY: the intermediate is single-threaded; the init is made our parent's child.
            let pid = unsafe { wrun_sys::syscall::clone_fork(libc::CLONE_PARENT as libc::c_ulong) }
                .ctx(|| "clone init".into())?;
            // The init is made after the maps were written (on the intermediate's namespace):
            // it is non-dumpable from its first instruction, even in a pid namespace it
            // joined, where other processes could otherwise trace it.
            if pid == 0 {
                run_child(child, Box::new(init), false);
            }
            child.send(&Msg::Pid(pid))?;
            // SAFETY: the intermediate's job is done.
            unsafe { libc::_exit(0) }
        };
        run_child(child, Box::new(|_| stage()), mapped_later);
    }
    let result = (|| loop {
        match parent.recv()? {
            Some(Msg::MapIds) => {
                write_id_maps(mid, &plan.uid_map, &plan.gid_map)?;
                parent.send(&Msg::Go)?;
            }
            Some(Msg::Pid(pid)) => return Ok(pid),
            Some(Msg::Failed(f)) => return Err(f.into()),
            Some(m) => return Err(Error::init(format!("unexpected {m:?} from the intermediate process"))),
            None => return Err(Error::init("the intermediate process died")),
        }
    })();
    if result.is_err() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(mid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(mid), None);
    result
}

/// SIGKILL a child and reap it.
pub fn kill_and_reap(pid: i32) {
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(p, None);
}

/// The inode of a namespace file, for comparisons in tests and `exec`.
pub fn ns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn new_namespaces_become_clone_flags_and_cgroup_time_are_separate() {
        let p = plan(&linux(
            r#"{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"network"},{"type":"cgroup"},{"type":"time"}]}"#,
        ));
        assert_eq!(
            p.new_flags,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET
        );
        assert!(p.new_cgroup && p.new_time && p.join.is_empty());
    }

    #[test]
    fn joined_namespaces_put_user_first() {
        let p = plan(&linux(
            r#"{"namespaces":[{"type":"network","path":"/n"},{"type":"user","path":"/u"},{"type":"mount"}]}"#,
        ));
        let types: Vec<_> = p.join.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, vec![LinuxNamespaceType::User, LinuxNamespaceType::Network]);
        assert_eq!(p.new_flags, CloneFlags::CLONE_NEWNS);
        assert!(p.has(LinuxNamespaceType::Network));
    }

    #[test]
    fn id_maps_and_time_offsets_are_rendered_for_proc() {
        let p = plan(&linux(
            r#"{"namespaces":[{"type":"user"},{"type":"time"}],
               "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
               "gidMappings":[{"containerID":0,"hostID":200000,"size":10}],
               "timeOffsets":{"monotonic":{"secs":86400,"nanosecs":5},"boottime":{"secs":-1}}}"#,
        ));
        assert_eq!(p.uid_map, "0 100000 65536\n");
        assert_eq!(p.gid_map, "0 200000 10\n");
        assert_eq!(p.time_offsets, "boottime -1 0\nmonotonic 86400 5\n");
        assert!(p.new_user());
    }
}
