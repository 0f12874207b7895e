//! Translating a mount's `options` into mount(2) flags, propagation changes, recursive
//! attributes for mount_setattr(2) and filesystem data. Pure, so it is unit-tested.

use nix::mount::MsFlags;

use crate::syscall::{
    MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME,
};

/// Attributes to set and clear recursively with mount_setattr(2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecAttr {
    pub set: u64,
    pub clr: u64,
}

impl RecAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (ro, nosuid, bind, rec, ...).
    pub flags: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...).
    pub rec: RecAttr,
    /// Filesystem-specific options, comma-joined (`mode=755,size=64k`).
    pub data: String,
    /// `idmap`/`ridmap`: the mount carries an id mapping.
    pub idmap: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: vec![],
            rec: RecAttr::default(),
            data: String::new(),
            idmap: false,
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Parse OCI mount options. Unknown options are filesystem data, as runc and crun do.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if let Some((set, flag)) = flag_option(opt) {
            if set {
                o.flags |= flag;
            } else {
                o.flags &= !flag;
            }
        } else if let Some(p) = propagation_option(opt) {
            o.propagation.push(p);
        } else if let Some(value) = recursive_atime_option(opt) {
            // The atime attributes are one field: clear it, then set the wanted value.
            o.rec.clr |= MOUNT_ATTR__ATIME;
            o.rec.set = (o.rec.set & !MOUNT_ATTR__ATIME) | value;
        } else if let Some((set, attr)) = recursive_option(opt) {
            if set {
                o.rec.set |= attr;
                o.rec.clr &= !attr;
            } else {
                o.rec.clr |= attr;
                o.rec.set &= !attr;
            }
        } else if opt == "idmap" || opt == "ridmap" {
            o.idmap = true;
            if opt == "ridmap" {
                o.flags |= MsFlags::MS_REC;
            }
        } else if opt == "tmpcopyup" {
            // crun's extension; wrun does not copy up, and says so by ignoring it.
        } else {
            data.push(opt);
        }
    }
    o.data = data.join(",");
    o
}

fn flag_option(opt: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match opt {
        "defaults" => (true, F::empty()),
        "ro" => (true, F::MS_RDONLY),
        "rw" => (false, F::MS_RDONLY),
        "nosuid" => (true, F::MS_NOSUID),
        "suid" => (false, F::MS_NOSUID),
        "nodev" => (true, F::MS_NODEV),
        "dev" => (false, F::MS_NODEV),
        "noexec" => (true, F::MS_NOEXEC),
        "exec" => (false, F::MS_NOEXEC),
        "sync" => (true, F::MS_SYNCHRONOUS),
        "async" => (false, F::MS_SYNCHRONOUS),
        "dirsync" => (true, F::MS_DIRSYNC),
        "remount" => (true, F::MS_REMOUNT),
        "mand" => (true, F::MS_MANDLOCK),
        "nomand" => (false, F::MS_MANDLOCK),
        "atime" => (false, F::MS_NOATIME),
        "noatime" => (true, F::MS_NOATIME),
        "diratime" => (false, F::MS_NODIRATIME),
        "nodiratime" => (true, F::MS_NODIRATIME),
        "relatime" => (true, F::MS_RELATIME),
        "norelatime" => (false, F::MS_RELATIME),
        "strictatime" => (true, F::MS_STRICTATIME),
        "nostrictatime" => (false, F::MS_STRICTATIME),
        "iversion" => (true, F::MS_I_VERSION),
        "noiversion" => (false, F::MS_I_VERSION),
        "lazytime" => (true, F::MS_LAZYTIME),
        "nolazytime" => (false, F::MS_LAZYTIME),
        "silent" => (true, F::MS_SILENT),
        "loud" => (false, F::MS_SILENT),
        "nosymfollow" => (true, F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "symfollow" => (false, F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "bind" => (true, F::MS_BIND),
        "rbind" => (true, F::MS_BIND | F::MS_REC),
        _ => return None,
    })
}

fn propagation_option(opt: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match opt {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

fn recursive_option(opt: &str) -> Option<(bool, u64)> {
    Some(match opt {
        "rro" => (true, MOUNT_ATTR_RDONLY),
        "rrw" => (false, MOUNT_ATTR_RDONLY),
        "rnosuid" => (true, MOUNT_ATTR_NOSUID),
        "rsuid" => (false, MOUNT_ATTR_NOSUID),
        "rnodev" => (true, MOUNT_ATTR_NODEV),
        "rdev" => (false, MOUNT_ATTR_NODEV),
        "rnoexec" => (true, MOUNT_ATTR_NOEXEC),
        "rexec" => (false, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// The atime setting a recursive option gives: mount_setattr's atime attributes are one field
/// (an enum: relatime, noatime, strictatime), not flags, so each option names the value the
/// whole field takes. The negative forms clear their value as mount(2)'s `atime`,
/// `norelatime` and `nostrictatime` do, leaving the kernel's default: relatime (what runc
/// leaves for `rnorelatime` too).
fn recursive_atime_option(opt: &str) -> Option<u64> {
    Some(match opt {
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => MOUNT_ATTR_RELATIME,
        "rnoatime" => MOUNT_ATTR_NOATIME,
        "rstrictatime" => MOUNT_ATTR_STRICTATIME,
        _ => return None,
    })
}

/// Every option `parse` understands, for `wrun features`.
pub fn known_options() -> Vec<&'static str> {
    let mut v = vec![
        "defaults",
        "ro",
        "rw",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "noexec",
        "exec",
        "sync",
        "async",
        "dirsync",
        "remount",
        "mand",
        "nomand",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "iversion",
        "noiversion",
        "lazytime",
        "nolazytime",
        "silent",
        "loud",
        "nosymfollow",
        "symfollow",
        "bind",
        "rbind",
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
        "rro",
        "rrw",
        "rnosuid",
        "rsuid",
        "rnodev",
        "rdev",
        "rnoexec",
        "rexec",
        "rnodiratime",
        "rdiratime",
        "rnosymfollow",
        "rsymfollow",
        "rrelatime",
        "rnorelatime",
        "ratime",
        "rnoatime",
        "rstrictatime",
        "rnostrictatime",
        "idmap",
        "ridmap",
    ];
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_are_split() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.is_bind());
    }

    #[test]
    fn later_options_override_earlier_ones() {
        assert_eq!(p(&["ro", "rw"]).flags, MsFlags::empty());
        assert_eq!(p(&["rw", "ro"]).flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn rbind_is_a_recursive_bind_and_propagation_is_kept_in_order() {
        let o = p(&["rbind", "rprivate", "shared"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::MS_SHARED]
        );
    }

    #[test]
    fn recursive_options_become_mount_setattr_attributes() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoexec"]);
        assert_eq!(o.rec.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        assert_eq!(
            p(&["rro", "rrw"]).rec,
            RecAttr {
                set: 0,
                clr: MOUNT_ATTR_RDONLY
            }
        );
        let atime = p(&["rnoatime"]).rec;
        assert_eq!((atime.set, atime.clr), (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME));
        // The whole field is cleared and set to one value, the last option's.
        for (opt, want) in [
            ("rrelatime", MOUNT_ATTR_RELATIME),
            ("rstrictatime", MOUNT_ATTR_STRICTATIME),
            ("ratime", MOUNT_ATTR_RELATIME),
            ("rnorelatime", MOUNT_ATTR_RELATIME),
            ("rnostrictatime", MOUNT_ATTR_RELATIME),
        ] {
            let a = p(&["rnoatime", opt]).rec;
            assert_eq!((a.set, a.clr), (want, MOUNT_ATTR__ATIME), "{opt}");
        }
    }

    #[test]
    fn idmap_options_are_recognised() {
        assert!(p(&["bind", "idmap"]).idmap);
        assert!(p(&["ridmap"]).flags.contains(MsFlags::MS_REC));
        assert!(p(&["tmpcopyup"]).data.is_empty());
    }
}
