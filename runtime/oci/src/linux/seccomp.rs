//! `linux.seccomp` through libseccomp: the filter is built and checked in the parent (bad
//! actions, architectures or flags fail `create` before any side effect) and loaded by the
//! init as the last step before the user process runs.

use std::str::FromStr;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use crate::{Error, Result};

/// A built filter, ready to load, and where its notifications go (with SCMP_ACT_NOTIFY).
pub struct Filter(ScmpFilterContext, Option<Listener>);

/// `linux.seccomp.listenerPath` and `listenerMetadata`.
#[derive(Debug, Clone)]
pub struct Listener {
    pub path: std::path::PathBuf,
    pub metadata: String,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("seccomp::Filter")
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("linux.seccomp.{field}: {why}"))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: u32) -> ScmpAction {
    use LinuxSeccompAction as A;
    match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(default_errno) as i32),
        A::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(default_errno) as u16),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => ScmpAction::Notify,
    }
}

fn op(o: LinuxSeccompOperator, value: u64) -> ScmpCompareOp {
    use LinuxSeccompOperator as O;
    match o {
        O::ScmpCmpNe => ScmpCompareOp::NotEqual,
        O::ScmpCmpLt => ScmpCompareOp::Less,
        O::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        O::ScmpCmpEq => ScmpCompareOp::Equal,
        O::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        O::ScmpCmpGt => ScmpCompareOp::Greater,
        O::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    }
}

/// The spec's name of an enum value (`SCMP_ARCH_X86_64`), from its serde form.
fn spec_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Build the filter. Syscall names this libseccomp does not know are skipped with a warning,
/// as runc does (profiles name syscalls of newer kernels).
pub fn build(s: &LinuxSeccomp) -> Result<Filter> {
    let notifies = s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        // The kernel would send the filter's own load and the fd's hand-over to the agent.
        return Err(bad("defaultAction", "SCMP_ACT_NOTIFY cannot be the default action"));
    }
    let listener = match (s.listener_path(), notifies) {
        (Some(p), true) => {
            if !p.is_absolute() {
                return Err(bad("listenerPath", format!("{} is not an absolute path", p.display())));
            }
            Some(Listener {
                path: p.clone(),
                metadata: s.listener_metadata().clone().unwrap_or_default(),
            })
        }
        (None, true) => {
            return Err(bad(
                "listenerPath",
                "missing: SCMP_ACT_NOTIFY needs an agent listening there for the notifications",
            ))
        }
        (_, false) => None,
    };
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(s.default_action(), Some(default_errno), default_errno);
    let e = |what: &str, err: libseccomp::error::SeccompError| bad(what, err);
    let mut ctx = ScmpFilterContext::new(default).map_err(|err| e("defaultAction", err))?;
    for arch in s.architectures().as_deref().unwrap_or_default() {
        let name = spec_name(arch);
        let a = ScmpArch::from_str(&name).map_err(|_| bad("architectures", format!("{name:?} is not known")))?;
        ctx.add_arch(a).map_err(|err| e("architectures", err))?;
    }
    for f in s.flags().as_deref().unwrap_or_default() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map(drop),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(drop),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(drop),
            other => return Err(bad("flags", format!("{} is not supported", spec_name(other)))),
        }
        .map_err(|err| e("flags", err))?;
    }
    // The filter is loaded after no_new_privs is decided by the config, never by libseccomp.
    ctx.set_ctl_nnp(false).map_err(|err| e("flags", err))?;
    for (i, rule) in s.syscalls().as_deref().unwrap_or_default().iter().enumerate() {
        let field = format!("syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), default_errno);
        if act == default {
            continue; // libseccomp refuses rules that repeat the default action
        }
        let args: Vec<ScmpArgCompare> = rule
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                // MASKED_EQ: (arg & value) == valueTwo, and a valueTwo of 0 is often left
                // out of the JSON (Go's omitempty). Every other operator compares `value`.
                let datum = if a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
                    a.value_two().unwrap_or(0)
                } else {
                    a.value()
                };
                ScmpArgCompare::new(a.index() as u32, op(a.op(), a.value()), datum)
            })
            .collect();
        // Conditions on different arguments must all hold (one rule); several conditions on
        // the same argument are alternatives (one rule each), as runc reads them.
        let mut indexes: Vec<u32> = rule
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| a.index() as u32)
            .collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::warn!("linux.seccomp.{field}: unknown syscall {name:?}: skipped");
                continue;
            };
            let r = if args.is_empty() {
                ctx.add_rule(act, sc).map(drop)
            } else if repeated {
                args.iter()
                    .try_for_each(|a| ctx.add_rule_conditional(act, sc, &[*a]).map(drop))
            } else {
                ctx.add_rule_conditional(act, sc, &args).map(drop)
            };
            r.map_err(|err| bad(&field, format!("{name}: {err}")))?;
        }
    }
    Ok(Filter(ctx, listener))
}

impl Filter {
    /// Install the filter on the calling process. With SCMP_ACT_NOTIFY rules, the kernel's
    /// notification fd (close-on-exec: the process never holds it after its exec) is
    /// returned, for the runtime to hand to the agent.
    pub fn load(&self) -> Result<Option<std::os::fd::RawFd>> {
        self.0.load().map_err(|e| match e.sysrawrc() {
            // The kernel's refusal (EINVAL, EACCES without no_new_privs, ...) keeps its errno.
            Some(rc) if rc < 0 => Error::sys("linux.seccomp: load the filter", nix::errno::Errno::from_raw(-rc)),
            _ => Error::Invalid(format!("linux.seccomp: load the filter: {e}")),
        })?;
        if self.1.is_none() {
            return Ok(None);
        }
        self.0
            .get_notify_fd()
            .map(Some)
            .map_err(|e| Error::Invalid(format!("linux.seccomp: the notification fd: {e}")))
    }

    /// Where notifications go, if the filter has SCMP_ACT_NOTIFY rules.
    pub fn listener(&self) -> Option<&Listener> {
        self.1.as_ref()
    }
}

/// The version of the libseccomp linked in (`2.5.4`).
pub fn library_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into())
}

/// Hand the notification fd to the agent at `l.path`: one message carrying the
/// `containerProcessState` JSON of the runtime spec and the fd (SCM_RIGHTS), as runc does.
pub fn send_to_listener(l: &Listener, fd: &std::os::fd::OwnedFd, pid: i32, state: serde_json::Value) -> Result<()> {
    use std::os::fd::AsRawFd;
    let msg = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION_MAX,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": l.metadata,
        "state": state,
    });
    let sock = std::os::unix::net::UnixStream::connect(&l.path)
        .map_err(|e| Error::Invalid(format!("linux.seccomp.listenerPath {}: {e}", l.path.display())))?;
    let bytes = serde_json::to_vec(&msg).unwrap_or_default();
    wrun_sys::fdpass::send_fd(sock.as_raw_fd(), fd.as_raw_fd(), &bytes)
        .map_err(|e| Error::Invalid(format!("linux.seccomp.listenerPath {}: {e}", l.path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_profile_with_args_arches_and_flags_builds() {
        let s = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "flags":["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                                {"index":0,"value":8,"op":"SCMP_CMP_EQ"},{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]},
                            {"names":["not_a_syscall_at_all"],"action":"SCMP_ACT_KILL"}]}"#,
        );
        assert!(build(&s).is_ok());
    }

    #[test]
    fn notify_needs_a_listener_path() {
        let s = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let e = build(&s).unwrap_err().to_string();
        assert!(e.contains("listenerPath") && e.contains("SCMP_ACT_NOTIFY"), "{e}");
        // A listener without notify rules has nothing to listen to: accepted, no fd.
        let s = seccomp(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock"}"#);
        assert!(build(&s).unwrap().listener().is_none());
        let s = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock","listenerMetadata":"m",
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert_eq!(build(&s).unwrap().listener().unwrap().metadata, "m");
        let s = seccomp(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/x.sock"}"#);
        assert!(build(&s).unwrap_err().to_string().contains("default action"));
    }

    #[test]
    fn an_unknown_action_is_refused_by_the_parser() {
        let r: std::result::Result<LinuxSeccomp, _> = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_FOO"}"#);
        assert!(r.is_err());
    }
}
