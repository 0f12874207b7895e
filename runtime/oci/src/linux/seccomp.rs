//! `linux.seccomp` through libseccomp: the filter is built and checked in the parent (bad
//! actions, architectures or flags fail `create` before any side effect) and loaded by the
//! init as the last step before the user process runs.

use std::str::FromStr;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use crate::{Error, Result};

/// A built filter, ready to load.
pub struct Filter(ScmpFilterContext);

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("seccomp::Filter")
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("linux.seccomp.{field}: {why}"))
}

fn action(field: &str, a: LinuxSeccompAction, errno: Option<u32>, default_errno: u32) -> Result<ScmpAction> {
    use LinuxSeccompAction as A;
    Ok(match a {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno.unwrap_or(default_errno) as i32),
        A::ScmpActTrace => ScmpAction::Trace(errno.unwrap_or(default_errno) as u16),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => {
            return Err(bad(
                field,
                "SCMP_ACT_NOTIFY (seccomp user notification) is not supported by wrun",
            ))
        }
    })
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
    if s.listener_path().is_some() {
        return Err(bad(
            "listenerPath",
            "seccomp user notification is not supported by wrun",
        ));
    }
    let default_errno = s.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action("defaultAction", s.default_action(), Some(default_errno), default_errno)?;
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
        let act = action(&field, rule.action(), rule.errno_ret(), default_errno)?;
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
    Ok(Filter(ctx))
}

impl Filter {
    /// Install the filter on the calling process.
    pub fn load(&self) -> Result<()> {
        self.0.load().map_err(|e| match e.sysrawrc() {
            // The kernel's refusal (EINVAL, EACCES without no_new_privs, ...) keeps its errno.
            Some(rc) if rc < 0 => Error::sys("linux.seccomp: load the filter", nix::errno::Errno::from_raw(-rc)),
            _ => Error::Invalid(format!("linux.seccomp: load the filter: {e}")),
        })
    }
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
    fn notify_and_listener_path_are_refused_clearly() {
        let s = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(build(&s).unwrap_err().to_string().contains("SCMP_ACT_NOTIFY"));
        let s = seccomp(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock"}"#);
        assert!(build(&s).unwrap_err().to_string().contains("listenerPath"));
    }

    #[test]
    fn an_unknown_action_is_refused_by_the_parser() {
        let r: std::result::Result<LinuxSeccomp, _> = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_FOO"}"#);
        assert!(r.is_err());
    }
}
