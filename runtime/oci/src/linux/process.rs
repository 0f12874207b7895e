//! The container process's attributes: identity (hostname, sysctl), scheduling (personality,
//! scheduler, I/O priority, memory policy, CPU affinity), rlimits, user and groups, and the
//! program to exec. `ProcessPlan::new` validates in the parent; the `apply_*` functions run
//! in the init, in the order `init` calls them.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::sched::CpuSet;
use oci_spec::runtime::{
    IOPriorityClass, LinuxNamespaceType, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, PosixRlimitType, Spec,
};

use super::namespaces::NsPlan;
use crate::error::Context;
use crate::{Error, Result};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Default)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_env: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub rlimits: Vec<(&'static str, libc::__rlimit_resource_t, u64, u64)>,
    pub no_new_privs: bool,
    pub oom_score_adj: Option<i32>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(PathBuf, String)>,
    pub personality: Option<libc::c_ulong>,
    pub scheduler: Option<wrun_sys::syscall::SchedAttr>,
    pub io_priority: Option<(i32, i32)>,
    pub mempolicy: Option<(i32, Vec<libc::c_ulong>)>,
    pub affinity_initial: Option<CpuSet>,
    pub affinity_final: Option<CpuSet>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    /// `None` when the config has no `process.capabilities` (then nothing is changed).
    pub capabilities: Option<super::capabilities::CapPlan>,
    /// AppArmor profile and SELinux label of the program.
    pub lsm: super::lsm::Lsm,
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{field}: {why}"))
}

fn cstring(field: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| bad(field, format!("{s:?} contains a NUL byte")))
}

impl ProcessPlan {
    /// Validate and precompute everything the init will apply.
    pub fn new(spec: &Spec, rootfs: &Path, ns: &NsPlan) -> Result<ProcessPlan> {
        let process = spec.process().as_ref().ok_or_else(|| bad("process", "missing"))?;
        let args = process.args().clone().unwrap_or_default();
        let mut env: Vec<String> = process.env().clone().unwrap_or_default();
        let user = process.user();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", home_of(rootfs, user.uid())));
        }
        let path_env = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let mut p = ProcessPlan {
            args: args.iter().map(|a| cstring("process.args", a)).collect::<Result<_>>()?,
            env: env.iter().map(|e| cstring("process.env", e)).collect::<Result<_>>()?,
            path_env,
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask(),
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            oom_score_adj: process.oom_score_adj(),
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
            terminal: process.terminal().unwrap_or(false),
            console_size: process.console_size().map(|b| (b.height() as u16, b.width() as u16)),
            ..Default::default()
        };
        if let Some(c) = process.capabilities() {
            p.capabilities = Some(super::capabilities::plan(c, &super::capabilities::supported())?);
        }
        p.lsm = super::lsm::Lsm::new(
            process.apparmor_profile().as_deref(),
            process.selinux_label().as_deref(),
        )?;
        for r in process.rlimits().as_deref().unwrap_or_default() {
            let (name, res) = rlimit(r.typ());
            if r.soft() > r.hard() {
                return Err(bad(
                    "process.rlimits",
                    format!("{name}: soft limit {} is above the hard limit {}", r.soft(), r.hard()),
                ));
            }
            p.rlimits.push((name, res, r.soft(), r.hard()));
        }
        if let Some(linux) = spec.linux() {
            for (k, v) in linux.sysctl().clone().unwrap_or_default() {
                check_sysctl(&k, ns)?;
                p.sysctl.push((Path::new("/proc/sys").join(k.replace('.', "/")), v));
            }
            p.sysctl.sort();
            if let Some(pers) = linux.personality() {
                p.personality = Some(match pers.domain() {
                    LinuxPersonalityDomain::PerLinux => 0x0000,
                    LinuxPersonalityDomain::PerLinux32 => 0x0008,
                });
            }
            if let Some(mp) = linux.memory_policy() {
                p.mempolicy = Some(mempolicy(
                    mp.mode(),
                    mp.nodes().as_deref(),
                    mp.flags().as_deref().unwrap_or_default(),
                )?);
            }
        }
        if let Some(s) = process.scheduler() {
            p.scheduler = Some(sched_attr(s));
        }
        if let Some(io) = process.io_priority() {
            let class = match io.class() {
                IOPriorityClass::IoprioClassRt => 1,
                IOPriorityClass::IoprioClassBe => 2,
                IOPriorityClass::IoprioClassIdle => 3,
            };
            if !(0..=7).contains(&io.priority()) {
                return Err(bad(
                    "process.ioPriority.priority",
                    format!("{} is outside 0-7", io.priority()),
                ));
            }
            p.io_priority = Some((class, io.priority() as i32));
        }
        if let Some(aff) = process.exec_cpu_affinity() {
            p.affinity_initial = aff
                .initial()
                .as_deref()
                .map(|s| cpu_set("process.execCPUAffinity.initial", s))
                .transpose()?;
            p.affinity_final = aff
                .cpu_affinity_final()
                .as_deref()
                .map(|s| cpu_set("process.execCPUAffinity.final", s))
                .transpose()?;
        }
        Ok(p)
    }
}

fn rlimit(t: PosixRlimitType) -> (&'static str, libc::__rlimit_resource_t) {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => ("RLIMIT_CPU", libc::RLIMIT_CPU),
        T::RlimitFsize => ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        T::RlimitData => ("RLIMIT_DATA", libc::RLIMIT_DATA),
        T::RlimitStack => ("RLIMIT_STACK", libc::RLIMIT_STACK),
        T::RlimitCore => ("RLIMIT_CORE", libc::RLIMIT_CORE),
        T::RlimitRss => ("RLIMIT_RSS", libc::RLIMIT_RSS),
        T::RlimitNproc => ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        T::RlimitNofile => ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        T::RlimitMemlock => ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        T::RlimitAs => ("RLIMIT_AS", libc::RLIMIT_AS),
        T::RlimitLocks => ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        T::RlimitSigpending => ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        T::RlimitMsgqueue => ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        T::RlimitNice => ("RLIMIT_NICE", libc::RLIMIT_NICE),
        T::RlimitRtprio => ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        T::RlimitRttime => ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    }
}

/// runc's rule: a namespaced sysctl needs its namespace, others are refused.
fn check_sysctl(key: &str, ns: &NsPlan) -> Result<()> {
    let need = if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key.starts_with("fs.mqueue.")
        || matches!(
            key,
            "kernel.msgmax"
                | "kernel.msgmnb"
                | "kernel.msgmni"
                | "kernel.sem"
                | "kernel.shmall"
                | "kernel.shmmax"
                | "kernel.shmmni"
                | "kernel.shm_rmid_forced"
        )
    {
        LinuxNamespaceType::Ipc
    } else if matches!(key, "kernel.hostname" | "kernel.domainname") {
        LinuxNamespaceType::Uts
    } else {
        return Err(bad(
            "linux.sysctl",
            format!("{key} is not namespaced and would change the host"),
        ));
    };
    if key.contains("..") || key.contains('/') {
        return Err(bad("linux.sysctl", format!("{key:?} is not a sysctl name")));
    }
    if !ns.has(need) {
        return Err(bad("linux.sysctl", format!("{key} needs a {need} namespace")));
    }
    Ok(())
}

fn sched_attr(s: &oci_spec::runtime::Scheduler) -> wrun_sys::syscall::SchedAttr {
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s.flags().as_deref().unwrap_or_default().iter().fold(0u64, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    wrun_sys::syscall::SchedAttr {
        size: 0,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
    }
}

fn cpu_set(field: &str, s: &str) -> Result<CpuSet> {
    let mut set = CpuSet::new();
    for cpu in wrun_sys::cpulist::parse_list(field, s)? {
        set.set(cpu)
            .map_err(|_| bad(field, format!("cpu {cpu} is out of range")))?;
    }
    Ok(set)
}

fn mempolicy(
    mode: MemoryPolicyModeType,
    nodes: Option<&str>,
    flags: &[MemoryPolicyFlagType],
) -> Result<(i32, Vec<libc::c_ulong>)> {
    use MemoryPolicyModeType as M;
    let mut m = match mode {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    for f in flags {
        m |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    let bits = libc::c_ulong::BITS as usize;
    for n in wrun_sys::cpulist::parse_list("linux.memoryPolicy.nodes", nodes.unwrap_or(""))? {
        if mask.len() <= n / bits {
            mask.resize(n / bits + 1, 0);
        }
        mask[n / bits] |= 1 << (n % bits);
    }
    Ok((m, mask))
}

/// The home directory of `uid` from the rootfs's /etc/passwd, or `/` (runc's default).
fn home_of(rootfs: &Path, uid: u32) -> String {
    // Read through the rootfs as the container sees it: an image whose /etc/passwd is a
    // symlink to a host file must not get that file's contents into HOME.
    wrun_sys::inroot::Root::open(rootfs)
        .ok()
        .and_then(|r| r.open_file(Path::new("/etc/passwd")).ok())
        .and_then(|fd| std::io::read_to_string(std::fs::File::from(fd)).ok())
        .and_then(|s| passwd_field(&s, uid, 5))
        .unwrap_or_else(|| "/".into())
}

/// Field `n` (0: name, 5: home, ...) of `uid`'s line in /etc/passwd text: the one place wrun
/// reads passwd(5).
pub fn passwd_field(passwd: &str, uid: u32, n: usize) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > n.max(2) && f[2].parse() == Ok(uid)).then(|| f[n].to_string())
    })
}

/// Before pivot_root, while the host's /proc is still visible.
pub fn apply_oom_score_adj(p: &ProcessPlan) -> Result<()> {
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("process.oomScoreAdj: set {adj}"))?;
    }
    Ok(())
}

/// Hostname, domain name and sysctls, inside the container's namespaces.
pub fn apply_identity(p: &ProcessPlan) -> Result<()> {
    if let Some(h) = &p.hostname {
        nix::unistd::sethostname(h).ctx(|| format!("hostname: set {h:?}"))?;
    }
    if let Some(d) = &p.domainname {
        // SAFETY: pointer and length describe `d`.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::io(
                format!("domainname: set {d:?}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    for (path, value) in &p.sysctl {
        std::fs::write(path, value).ctx(|| format!("linux.sysctl: write {value:?} to {}", path.display()))?;
    }
    Ok(())
}

/// Personality, scheduler, I/O priority, memory policy and the initial CPU affinity.
pub fn apply_scheduling(p: &ProcessPlan) -> Result<()> {
    if let Some(pers) = p.personality {
        // SAFETY: personality(2) with a plain value.
        if unsafe { libc::personality(pers) } == -1 {
            return Err(Error::io("linux.personality", std::io::Error::last_os_error()));
        }
    }
    if let Some(mut attr) = p.scheduler {
        wrun_sys::syscall::sched_setattr(&mut attr).ctx(|| "process.scheduler: sched_setattr".into())?;
    }
    if let Some((class, level)) = p.io_priority {
        wrun_sys::syscall::ioprio_set(class, level).ctx(|| "process.ioPriority: ioprio_set".into())?;
    }
    if let Some((mode, mask)) = &p.mempolicy {
        wrun_sys::syscall::set_mempolicy(*mode, mask).ctx(|| "linux.memoryPolicy: set_mempolicy".into())?;
    }
    if let Some(set) = &p.affinity_initial {
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)
            .ctx(|| "process.execCPUAffinity.initial".into())?;
    }
    Ok(())
}

pub fn apply_rlimits(p: &ProcessPlan) -> Result<()> {
    for &(name, res, soft, hard) in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: valid resource and struct.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(Error::io(
                format!("process.rlimits: {name} {soft}:{hard}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Narrow the bounding set, switch to the configured user keeping the permitted set, then set
/// the capability sets: the order the kernel allows.
pub fn switch_user_with_capabilities(p: &ProcessPlan) -> Result<()> {
    use super::capabilities as caps;
    if let Some(c) = &p.capabilities {
        caps::narrow_bounding(c)?;
        caps::keep_across_setuid(true)?;
    }
    switch_user(p, true)?;
    if let Some(c) = &p.capabilities {
        caps::keep_across_setuid(false)?;
        caps::apply(c)?;
    }
    Ok(())
}

/// Groups, gid, uid (in that order: after setuid the rest is no longer allowed), then umask.
pub fn switch_user(p: &ProcessPlan, allow_setgroups: bool) -> Result<()> {
    // A user namespace mapped by an unprivileged caller without newgidmap denies setgroups
    // (the kernel's condition for writing gid_map): then no supplementary groups are set,
    // and asking for some is an error that says why.
    let denied = allow_setgroups && std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if denied && !p.additional_gids.is_empty() {
        return Err(Error::Invalid(format!(
            "process.user.additionalGids {:?}: setgroups is denied in this user namespace (its \
             gid mapping was written without newgidmap: give the user a range in /etc/subgid \
             and map it)",
            p.additional_gids
        )));
    }
    if allow_setgroups && !denied {
        let gids: Vec<nix::unistd::Gid> = p
            .additional_gids
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids)
            .ctx(|| format!("process.user.additionalGids: setgroups {:?}", p.additional_gids))?;
    }
    let (uid, gid) = (nix::unistd::Uid::from_raw(p.uid), nix::unistd::Gid::from_raw(p.gid));
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("process.user.gid: setgid {}", p.gid))?;
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("process.user.uid: setuid {}", p.uid))?;
    if let Some(m) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m as libc::mode_t));
    }
    Ok(())
}

/// chdir to `process.cwd`, creating it as runc does, then check that we are inside the
/// container's root: a cwd through a magic link (`/proc/self/fd/N`) onto a directory outside
/// it makes getcwd(2) fail with ENOENT ("unreachable"), and is refused (CVE-2024-21626).
pub fn enter_cwd(p: &ProcessPlan) -> Result<()> {
    if nix::unistd::chdir(&p.cwd).is_err() {
        std::fs::create_dir_all(&p.cwd).ctx(|| format!("process.cwd: create {}", p.cwd.display()))?;
        nix::unistd::chdir(&p.cwd).ctx(|| format!("process.cwd: chdir {}", p.cwd.display()))?;
    }
    match nix::unistd::getcwd() {
        Ok(dir) if dir.is_absolute() => Ok(()),
        Ok(dir) => Err(bad(
            "process.cwd",
            format!(
                "{} resolves to {}, outside the container",
                p.cwd.display(),
                dir.display()
            ),
        )),
        Err(e) => Err(bad(
            "process.cwd",
            format!("{} resolves outside the container's root ({e})", p.cwd.display()),
        )),
    }
}

/// Find args[0] the way execvp would, as the container user, so a missing program fails
/// `create` rather than `start`.
pub fn find_program(p: &ProcessPlan) -> Result<CString> {
    let arg0 = p.args.first().ok_or_else(|| bad("process.args", "empty"))?;
    let name = arg0.to_str().unwrap_or_default();
    let executable = |c: &CString| {
        use std::os::unix::fs::PermissionsExt;
        let Ok(m) = std::fs::metadata(Path::new(c.to_str().unwrap_or_default())) else {
            return false;
        };
        // access(2) decides for this user; if a seccomp profile refuses access(2) itself,
        // the mode bits are the best answer left.
        m.is_file()
            && match nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::X_OK) {
                Ok(()) => true,
                Err(nix::errno::Errno::EACCES | nix::errno::Errno::ENOENT) => false,
                Err(_) => m.permissions().mode() & 0o111 != 0,
            }
    };
    if name.contains('/') {
        return if executable(arg0) {
            Ok(arg0.clone())
        } else {
            Err(not_found(format!("{name:?}: no such executable file in the container")))
        };
    }
    for dir in p.path_env.split(':').filter(|d| !d.is_empty()) {
        let cand = cstring("process.args[0]", &format!("{dir}/{name}"))?;
        if executable(&cand) {
            return Ok(cand);
        }
    }
    Err(not_found(format!(
        "{name:?}: executable file not found in PATH {}",
        p.path_env
    )))
}

/// args[0] not found: ENOENT, as execve would have said, so that a front end can tell it
/// from other failures (docker's exit code 127).
fn not_found(why: String) -> Error {
    Error::Init {
        msg: format!("process.args[0]: {why}"),
        errno: Some(nix::errno::Errno::ENOENT),
    }
}

pub fn set_no_new_privs(p: &ProcessPlan) -> Result<()> {
    if p.no_new_privs {
        nix::sys::prctl::set_no_new_privs().ctx(|| "process.noNewPrivileges".into())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_fields_are_found_by_uid() {
        let text = "root:x:0:0:root:/root:/bin/sh\nbad line\napp:x:1000:1000::/home/app:/bin/sh\nshort:x:7\n";
        assert_eq!(passwd_field(text, 1000, 5).as_deref(), Some("/home/app"));
        assert_eq!(passwd_field(text, 0, 0).as_deref(), Some("root"));
        assert_eq!(passwd_field(text, 7, 5), None, "a short line has no home");
        assert_eq!(passwd_field(text, 7, 0).as_deref(), Some("short"));
        assert_eq!(passwd_field(text, 42, 0), None);
    }

    #[test]
    fn sysctls_need_their_namespace_and_global_ones_are_refused() {
        let ns =
            super::super::namespaces::plan(&serde_json::from_str(r#"{"namespaces":[{"type":"network"}]}"#).unwrap());
        assert!(check_sysctl("net.ipv4.ip_forward", &ns).is_ok());
        assert!(check_sysctl("kernel.shmmax", &ns).is_err());
        assert!(check_sysctl("vm.swappiness", &ns).is_err());
    }

    #[test]
    fn memory_policy_flags_are_or_ed_into_the_mode() {
        let (m, mask) = mempolicy(
            MemoryPolicyModeType::MpolBind,
            Some("0,2"),
            &[MemoryPolicyFlagType::MpolFStaticNodes],
        )
        .unwrap();
        assert_eq!(m, 2 | (1 << 15));
        assert_eq!(mask, vec![0b101]);
    }
}
