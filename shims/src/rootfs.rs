//! The container's root filesystem: containerd hands it as mounts (typically one overlay) in
//! `CreateTaskRequest`; the shim mounts them on `<bundle>/rootfs` and takes them down again.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use containerd_shim::mount::mount_rootfs;
use containerd_shim::protos::types::mount::Mount;

use crate::error::{Error, Result};

/// Mounts every mount of `mounts`, in order, on `target`. On failure, what was mounted is
/// unmounted again.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(target).map_err(|e| Error::io(format!("mkdir {}", target.display()), e))?;
    for m in mounts {
        let typ = (!m.type_.is_empty()).then_some(m.type_.as_str());
        let src = (!m.source.is_empty()).then_some(m.source.as_str());
        if let Err(e) = mount_rootfs(typ, src, &m.options, target) {
            unmount_all(target);
            return Err(Error::Invalid(format!(
                "mount rootfs {} ({}) on {}: {e}",
                m.source,
                m.type_,
                target.display()
            )));
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `target` (lazily, so a process still holding it cannot
/// make this fail). Safe to call when nothing is mounted: it is the idempotent half of
/// `delete`.
pub fn unmount_all(target: &Path) {
    let Ok(c) = CString::new(target.as_os_str().as_bytes()) else {
        return;
    };
    for _ in 0..16 {
        // SAFETY: umount2 with a NUL-terminated path; fails with EINVAL once nothing is
        // mounted there any more, or ENOENT when the path is gone.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            return;
        }
    }
}
