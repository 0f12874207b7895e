//! Thin wrappers for the syscalls that libc and nix do not wrap (new mount API, sched_setattr,
//! ioprio, mempolicy, keyctl, pivot_root). Each returns `nix::Result` so callers add context.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

const OPEN_TREE_CLONE: u32 = 1;
const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn check(r: libc::c_long) -> nix::Result<libc::c_long> {
    Errno::result(r)
}

/// mount_setattr(2) on `path` (relative to `dirfd`), optionally recursive.
pub fn mount_setattr(
    dirfd: RawFd,
    path: &CStr,
    flags: u32,
    set: u64,
    clr: u64,
    userns: Option<RawFd>,
) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: userns.unwrap_or(0) as u64,
    };
    // SAFETY: all pointers are valid for the duration of the call; the size matches the struct.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path`.
pub fn open_tree_clone(path: &CStr, recursive: bool) -> nix::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | if recursive { libc::AT_RECURSIVE as u32 } else { 0 };
    // SAFETY: `path` is a valid C string; the returned fd is owned by the caller.
    let fd = check(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })?;
    // SAFETY: the kernel returned a new, valid file descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// move_mount(2) of a detached tree `from` onto the file `to` is open on (an O_PATH fd).
pub fn move_mount_to_fd(from: RawFd, to: RawFd) -> nix::Result<()> {
    // SAFETY: valid fds and empty C strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// pivot_root(2).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> nix::Result<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }).map(drop)
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
}

/// sched_setattr(2) for the calling thread.
pub fn sched_setattr(attr: &mut SchedAttr) -> nix::Result<()> {
    attr.size = size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a valid, fully initialised struct of the size we pass.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *mut SchedAttr, 0) }).map(drop)
}

/// ioprio_set(2) for the calling process.
pub fn ioprio_set(class: i32, level: i32) -> nix::Result<()> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    const IOPRIO_CLASS_SHIFT: i32 = 13;
    // SAFETY: plain integer arguments.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << IOPRIO_CLASS_SHIFT) | level,
        )
    })
    .map(drop)
}

/// set_mempolicy(2).
pub fn set_mempolicy(mode: i32, nodemask: &[libc::c_ulong]) -> nix::Result<()> {
    let maxnode = nodemask.len() * libc::c_ulong::BITS as usize;
    let ptr = if nodemask.is_empty() {
        std::ptr::null()
    } else {
        nodemask.as_ptr()
    };
    // SAFETY: `ptr` is null or points to `maxnode` bits.
    check(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode as libc::c_ulong) }).map(drop)
}

/// Join a new session keyring named `name` (runc gives each container its own).
pub fn join_session_keyring(name: &CStr) -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: valid C string.
    check(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) }).map(drop)
}

/// A raw clone(2) with a NULL stack: like fork(2), the child continues here on a copy of the
/// parent's memory, but with new namespaces. Returns 0 in the child.
///
/// # Safety
/// The caller must be single-threaded (no lock can be held by a thread that does not exist in
/// the child) and the child must leave through `exec` or `_exit`.
pub unsafe fn clone_fork(flags: libc::c_ulong) -> nix::Result<libc::pid_t> {
    // SAFETY: see the function's contract; a NULL stack makes the child use a COW copy of ours.
    let pid = check(unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) })?;
    Ok(pid as libc::pid_t)
}

const FSOPEN_CLOEXEC: u32 = 0x1;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 0x1;

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new, valid file descriptor that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// fsopen(2): a filesystem context for `fstype`.
pub fn fsopen(fstype: &CStr) -> nix::Result<OwnedFd> {
    // SAFETY: a valid C string; the returned fd is owned by the caller.
    check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) }).map(owned)
}

/// fsconfig(2) FSCONFIG_SET_STRING `key`=`value`.
pub fn fsconfig_set(fs: RawFd, key: &CStr, value: &CStr) -> nix::Result<()> {
    // SAFETY: valid fd and C strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// fsconfig(2) FSCONFIG_SET_FLAG `key` (an option without a value).
pub fn fsconfig_set_flag(fs: RawFd, key: &CStr) -> nix::Result<()> {
    // SAFETY: a valid fd and C string; a flag takes no value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            0, // FSCONFIG_SET_FLAG
            key.as_ptr(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map(drop)
}

/// fsconfig(2) FSCONFIG_CMD_CREATE then fsmount(2): a detached mount with `attrs`
/// (MOUNT_ATTR_*), attached to no namespace.
pub fn fsmount(fs: RawFd, attrs: u64) -> nix::Result<OwnedFd> {
    // SAFETY: a valid fd; null key and value are what FSCONFIG_CMD_CREATE takes.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: a valid fd; the returned fd is owned by the caller.
    check(unsafe { libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs) }).map(owned)
}
