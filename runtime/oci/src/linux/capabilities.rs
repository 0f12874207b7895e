//! The five capability sets of `process.capabilities`: the bounding set is narrowed before
//! the switch to `process.user` (it needs CAP_SETPCAP), the permitted set is kept across the
//! switch (PR_SET_KEEPCAPS), and effective, inheritable, permitted and ambient are set after
//! it, so a non-root user keeps exactly what the config grants.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

use crate::{Error, Result};

/// The sets to apply; `None` for a set the config leaves out (then it is emptied, as runc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

/// Translate the config's names. Unknown names cannot get here (the spec parser refuses
/// them); names this kernel does not know are skipped with a debug log, as runc does.
pub fn plan(c: &LinuxCapabilities, supported: &CapsHashSet) -> Result<CapPlan> {
    let set = |field: &str, v: &Option<oci_spec::runtime::Capabilities>| -> Result<CapsHashSet> {
        let mut out = CapsHashSet::new();
        for cap in v.iter().flatten() {
            let name = format!("CAP_{cap}");
            let c = Capability::from_str(&name)
                .map_err(|_| Error::Invalid(format!("process.capabilities.{field}: unknown capability {name}")))?;
            if supported.contains(&c) {
                out.insert(c);
            } else {
                tracing::debug!("process.capabilities.{field}: {name} is not supported by this kernel: skipped");
            }
        }
        Ok(out)
    };
    Ok(CapPlan {
        bounding: set("bounding", c.bounding())?,
        effective: set("effective", c.effective())?,
        inheritable: set("inheritable", c.inheritable())?,
        permitted: set("permitted", c.permitted())?,
        ambient: set("ambient", c.ambient())?,
    })
}

/// Whether `name` (`CAP_NET_ADMIN`) names a capability.
pub fn known(name: &str) -> bool {
    Capability::from_str(name).is_ok()
}

/// The capabilities this kernel knows.
pub fn supported() -> CapsHashSet {
    caps::runtime::thread_all_supported()
}

/// The caps crate's error is a string; when a syscall failed, it ends in std's "(os error N)",
/// which is kept as the errno.
fn err(step: &str, e: caps::errors::CapsError) -> Error {
    let msg = e.to_string();
    match os_error_in(&msg) {
        Some(errno) => Error::sys(format!("process.capabilities: {step}"), errno),
        None => Error::Invalid(format!("process.capabilities: {step}: {msg}")),
    }
}

fn os_error_in(msg: &str) -> Option<nix::errno::Errno> {
    let n = msg.rsplit_once("(os error ")?.1.strip_suffix(')')?;
    Some(nix::errno::Errno::from_raw(n.parse().ok()?))
}

/// Drop from the bounding set everything the config does not list.
pub fn narrow_bounding(p: &CapPlan) -> Result<()> {
    for c in caps::read(None, CapSet::Bounding).map_err(|e| err("read bounding set", e))? {
        if !p.bounding.contains(&c) {
            caps::drop(None, CapSet::Bounding, c).map_err(|e| err(&format!("drop {c} from the bounding set"), e))?;
        }
    }
    Ok(())
}

/// Keep the permitted set across setuid to a non-root user.
pub fn keep_across_setuid(on: bool) -> Result<()> {
    nix::sys::prctl::set_keepcaps(on).map_err(|e| Error::sys("prctl PR_SET_KEEPCAPS", e))
}

/// Set effective, inheritable, permitted and ambient, in an order that every step allows:
/// effective is raised from the still-full permitted set, inheritable while permitted is
/// still full, then permitted is lowered, then ambient (which needs permitted+inheritable).
pub fn apply(p: &CapPlan) -> Result<()> {
    caps::set(None, CapSet::Effective, &p.effective).map_err(|e| err("set effective", e))?;
    caps::set(None, CapSet::Inheritable, &p.inheritable).map_err(|e| err("set inheritable", e))?;
    caps::set(None, CapSet::Permitted, &p.permitted).map_err(|e| err("set permitted", e))?;
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(|e| err("clear ambient", e))?;
        for c in &p.ambient {
            // The kernel raises an ambient capability only if it is permitted and inheritable.
            // `runc spec` lists ambient capabilities without inheritable ones, so, like runc,
            // a refusal is a warning, not a failure.
            if let Err(e) = caps::raise(None, CapSet::Ambient, *c) {
                tracing::warn!(
                    "process.capabilities.ambient: {c} not raised (it must also be permitted and inheritable): {e}"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caps_error_from_a_syscall_keeps_its_errno() {
        let e = err(
            "set permitted",
            caps::errors::CapsError::from("capset failure: Operation not permitted (os error 1)"),
        );
        assert_eq!(e.errno(), Some(nix::errno::Errno::EPERM), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::Os);
        assert!(
            e.to_string().starts_with("process.capabilities: set permitted: "),
            "{e}"
        );
        let e = err("set ambient", caps::errors::CapsError::from("not a base set"));
        assert_eq!(e.errno(), None);
        assert!(e.to_string().contains("not a base set"), "{e}");
    }

    #[test]
    fn config_names_map_to_kernel_capabilities_and_unsupported_ones_are_skipped() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"],"ambient":["CAP_NET_RAW"]}"#,
        )
        .unwrap();
        let supported: CapsHashSet = [Capability::CAP_CHOWN, Capability::CAP_KILL].into_iter().collect();
        let p = plan(&c, &supported).unwrap();
        assert_eq!(p.bounding, supported);
        assert_eq!(p.effective, [Capability::CAP_KILL].into_iter().collect());
        assert!(
            p.ambient.is_empty(),
            "CAP_NET_RAW is not supported here, so it is skipped"
        );
        assert!(p.permitted.is_empty() && p.inheritable.is_empty());
    }

    #[test]
    fn unknown_capability_names_are_refused_by_the_parser() {
        let r: Result<LinuxCapabilities, _> = serde_json::from_str(r#"{"bounding":["CAP_NOT_A_THING"]}"#);
        assert!(r.is_err());
    }
}
