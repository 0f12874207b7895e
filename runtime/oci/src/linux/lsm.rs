//! `process.apparmorProfile` and `process.selinuxLabel` (and `exec --apparmor` /
//! `--process-label`): the Linux security module's label for the container's program, set to
//! take effect at its `execve`, as runc does. A host whose kernel has no AppArmor (or no
//! SELinux) cannot honour one: the config is refused in one line, never run unconfined (runc
//! fails closed the same way).

use std::path::Path;

use crate::{Error, Result};

/// The labels asked for, checked against what the host has.
#[derive(Debug, Clone, Default)]
pub struct Lsm {
    pub apparmor: Option<String>,
    pub selinux: Option<String>,
}

/// Whether AppArmor is enabled in this kernel (and its filesystem is there to load profiles).
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.trim_start().starts_with('Y'))
        && Path::new("/sys/kernel/security/apparmor").exists()
}

/// Whether SELinux is enabled (selinuxfs mounted).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

impl Lsm {
    /// The labels of `process`, refused where the host cannot apply them.
    pub fn new(apparmor: Option<&str>, selinux: Option<&str>) -> Result<Lsm> {
        let apparmor = apparmor.filter(|p| !p.is_empty()).map(str::to_string);
        let selinux = selinux.filter(|l| !l.is_empty()).map(str::to_string);
        if let Some(p) = &apparmor {
            if !apparmor_enabled() {
                return Err(Error::Invalid(format!(
                    "process.apparmorProfile {p:?}: AppArmor is not enabled on this host, so the profile cannot be applied"
                )));
            }
        }
        if let Some(l) = &selinux {
            if !selinux_enabled() {
                return Err(Error::Invalid(format!(
                    "process.selinuxLabel {l:?}: SELinux is not enabled on this host, so the label cannot be applied"
                )));
            }
        }
        Ok(Lsm { apparmor, selinux })
    }

    /// Set the labels for the next `execve` of this thread (native programs); a wasm guest,
    /// which never execs, changes its AppArmor profile at once.
    pub fn apply(&self, exec_follows: bool) -> Result<()> {
        if let Some(p) = &self.apparmor {
            let (attr, text) = if exec_follows {
                ("exec", format!("exec {p}"))
            } else {
                ("current", format!("changeprofile {p}"))
            };
            // The LSM-specific file where the kernel has it (5.8+), else the shared one.
            let own = format!("/proc/thread-self/attr/apparmor/{attr}");
            let path = if Path::new(&own).exists() {
                own
            } else {
                format!("/proc/thread-self/attr/{attr}")
            };
            write_proc_attr(&path, text.as_bytes())
                .map_err(|e| Error::io(format!("apply AppArmor profile {p:?} ({path})"), e))?;
        }
        if let Some(l) = &self.selinux {
            if !exec_follows {
                return Err(Error::Invalid(format!(
                    "process.selinuxLabel {l:?}: a wasm guest never execs, so there is no transition to label"
                )));
            }
            write_proc_attr("/proc/thread-self/attr/exec", l.as_bytes())
                .map_err(|e| Error::io(format!("apply SELinux label {l:?}"), e))?;
        }
        Ok(())
    }
}

/// Write an LSM attribute file, which must be procfs's: never through a symlink, never made
/// (no O_CREAT), and refused when what is mounted at /proc is not procfs (a config without a
/// /proc mount shows the image's files there; a write to one of those would "succeed" and the
/// program would run unconfined: runc's CVE-2019-16884).
fn write_proc_attr(path: &str, value: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let st = nix::sys::statfs::fstatfs(&f).map_err(std::io::Error::from)?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(std::io::Error::other("not on procfs: refused"));
    }
    f.write_all(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_written_only_to_procfs_never_through_a_link_or_to_a_new_file() {
        let d = std::env::temp_dir().join(format!("wrun-lsm-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let plain = d.join("exec");
        std::fs::write(&plain, "").unwrap();
        let e = write_proc_attr(plain.to_str().unwrap(), b"x").unwrap_err();
        assert!(e.to_string().contains("not on procfs"), "{e}");
        assert_eq!(std::fs::read(&plain).unwrap(), b"");
        std::os::unix::fs::symlink(&plain, d.join("link")).unwrap();
        assert!(write_proc_attr(d.join("link").to_str().unwrap(), b"x").is_err());
        assert!(write_proc_attr(d.join("missing").to_str().unwrap(), b"x").is_err());
        assert!(!d.join("missing").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
