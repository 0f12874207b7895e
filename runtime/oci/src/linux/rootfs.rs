//! The container's filesystem view: mount propagation, the rootfs bind, every entry of
//! `mounts` in order, devices, pivot_root (or chroot with --no-pivot), then masked and
//! read-only paths and a read-only root. `plan` runs in the parent; the rest in the init.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use super::devices::{self, Device};
use crate::error::Context;
use crate::{Error, Result};
use wrun_sys::inroot::{Root, Target};
use wrun_sys::mountopts::{self, MountOptions};
use wrun_sys::securepath::resolve_in_root;

#[derive(Debug, Clone)]
pub struct PlannedMount {
    /// Destination as the container sees it.
    pub dest: PathBuf,
    /// Source: an absolute host path for binds, else the fs source string.
    pub source: Option<PathBuf>,
    pub typ: String,
    pub opts: MountOptions,
    /// uid_map/gid_map text for an idmapped mount.
    pub idmap: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct RootfsPlan {
    pub rootfs: PathBuf,
    pub propagation: MsFlags,
    pub readonly: bool,
    pub mounts: Vec<PlannedMount>,
    pub devices: Vec<Device>,
    /// /dev comes from a bind of the host's: create no devices.
    pub dev_bound: bool,
    pub masked: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub no_pivot: bool,
    /// In a new user namespace: device nodes are bind-mounted, not made.
    pub in_user_ns: bool,
    /// (name under /sys/fs/cgroup, container's cgroup dir) for `cgroup` mounts.
    pub cgroup_dirs: Vec<(String, PathBuf)>,
    /// The host is pure cgroup v2.
    pub cgroup_v2_only: bool,
    pub new_cgroup_ns: bool,
    /// No mount namespace: the container's mounts are made in the runtime's own namespace,
    /// under a private bind of the rootfs that the parent makes and `delete` detaches.
    pub host_mount_ns: bool,
}

/// Build the mount plan; relative bind sources are taken relative to the bundle.
pub fn plan(spec: &Spec, bundle: &Path, rootfs: &Path) -> Result<RootfsPlan> {
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Invalid("linux: missing".into()))?;
    // runc's default: the new root is rslave.
    let propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => *mountopts::parse(&[p.to_string()])
            .propagation
            .first()
            .ok_or_else(|| Error::Invalid(format!("linux.rootfsPropagation: {p:?} is not a propagation mode")))?,
    };
    let mut mounts = Vec::new();
    let mut dev_bound = false;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let opts = mountopts::parse(m.options().as_deref().unwrap_or_default());
        let typ = m.typ().clone().unwrap_or_default();
        let is_bind = opts.is_bind() || typ == "bind";
        let mut opts = opts;
        if typ == "bind" {
            opts.flags |= MsFlags::MS_BIND;
        }
        let source = m.source().as_ref().map(|s| {
            if is_bind && s.is_relative() {
                bundle.join(s)
            } else {
                s.clone()
            }
        });
        if is_bind {
            let s = source.as_ref().ok_or_else(|| {
                Error::Invalid(format!(
                    "mounts: bind mount onto {} has no source",
                    m.destination().display()
                ))
            })?;
            if !s.exists() {
                return Err(Error::Invalid(format!(
                    "mounts: bind source {}: no such file or directory",
                    s.display()
                )));
            }
            if m.destination() == Path::new("/dev") {
                dev_bound = true;
            }
        }
        let idmap = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(u), Some(g)) if !u.is_empty() => Some((super::namespaces::id_map(u), super::namespaces::id_map(g))),
            (Some(u), None) if !u.is_empty() => {
                return Err(Error::Invalid(format!(
                    "mounts: {}: uidMappings without gidMappings",
                    m.destination().display()
                )))
            }
            _ if opts.idmap => {
                return Err(Error::Invalid(format!(
                    "mounts: {}: idmap needs uidMappings and gidMappings",
                    m.destination().display()
                )))
            }
            _ => None,
        };
        if idmap.is_some() && !is_bind {
            return Err(Error::Invalid(format!(
                "mounts: {}: id mappings are only supported on bind mounts",
                m.destination().display()
            )));
        }
        // Resolve now so an escaping destination fails before any side effect.
        let resolved =
            resolve_in_root(rootfs, m.destination()).map_err(|e| Error::Invalid(format!("mount destination {e}")))?;
        check_proc_mount(rootfs, &resolved, &typ, is_bind.then_some(source.as_deref()).flatten())?;
        mounts.push(PlannedMount {
            dest: m.destination().clone(),
            source,
            typ,
            opts,
            idmap,
        });
    }
    let ns = super::namespaces::plan(linux);
    Ok(RootfsPlan {
        rootfs: rootfs.to_path_buf(),
        propagation,
        readonly: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
        mounts,
        devices: devices::plan(linux),
        dev_bound,
        masked: linux
            .masked_paths()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        readonly_paths: linux
            .readonly_paths()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        no_pivot: false,
        in_user_ns: ns.new_user()
            || ns
                .join
                .iter()
                .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::User)
            // The runtime itself in one (a rootless session): no mknod, no sysfs of a network
            // namespace another user namespace owns, either.
            || wrun_sys::userns::in_user_namespace(),
        cgroup_dirs: Vec::new(),
        cgroup_v2_only: false,
        new_cgroup_ns: ns.new_cgroup,
        host_mount_ns: !ns.has(oci_spec::runtime::LinuxNamespaceType::Mount),
    })
}

fn mount(src: Option<&Path>, dest: &Path, typ: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    nix::mount::mount(src, dest, typ, flags, data).ctx(|| {
        format!(
            "mount {} on {} (type {}, flags {flags:?}, data {:?})",
            src.map(|s| s.display().to_string()).unwrap_or_default(),
            dest.display(),
            typ.unwrap_or("none"),
            data.unwrap_or("")
        )
    })
}

/// The files under /proc a mount may cover: what lxcfs emulates, as runc allows. Anything else
/// under /proc (a bind over /proc/sys/kernel/core_pattern, say) would let the config hand the
/// container a writable kernel knob or hide a masked file, so it is refused.
const PROC_MOUNTS_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// runc's proc-mount check, on the destination as resolved in the root: on /proc itself only
/// a proc filesystem (a `proc` mount, or a bind of one); under it only `PROC_MOUNTS_ALLOWED`.
fn check_proc_mount(rootfs: &Path, resolved: &Path, typ: &str, bind_source: Option<&Path>) -> Result<()> {
    let Ok(rel) = resolved.strip_prefix(rootfs.join("proc")) else {
        return Ok(());
    };
    let inside = Path::new("/proc").join(rel);
    if rel.as_os_str().is_empty() {
        let is_proc = match bind_source {
            Some(src) => {
                nix::sys::statfs::statfs(src).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
            }
            None => typ == "proc",
        };
        return if is_proc {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "mount destination /proc: only a proc filesystem may be mounted there (type {typ:?})"
            )))
        };
    }
    if PROC_MOUNTS_ALLOWED.iter().any(|a| Path::new(a) == inside) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "mount destination {}: mounts inside /proc are limited to {}",
        inside.display(),
        PROC_MOUNTS_ALLOWED.join(", ")
    )))
}

/// runc's rule for proc and sysfs: where the destination exists it must be a real directory.
/// A symlink there (a rootfs whose `/proc` points elsewhere) is refused rather than followed,
/// even inside the root: mounting proc somewhere the image chose has been an attack before
/// (CVE-2019-19921's class), and nothing legitimate needs it.
fn ordinary_dir(root: &Root, inside: &Path, typ: &str) -> Result<()> {
    match root.lstat(inside) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
            let what = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                "a symlink"
            } else {
                "not a directory"
            };
            Err(Error::Invalid(format!(
                "mount destination {}: {typ} must be mounted on an ordinary directory, and the rootfs has {what} there",
                inside.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Everything before pivot_root: propagation, the rootfs bind, mounts, devices, symlinks.
/// `idmapped_trees[i]` is the detached, idmapped tree for mount `i`, made by the parent.
pub fn prepare(p: &RootfsPlan, idmapped_trees: &[Option<OwnedFd>]) -> Result<()> {
    if !p.host_mount_ns {
        // Cut propagation back to the host first (rslave, or rprivate when asked for private);
        // the configured rootfsPropagation is given to the new root after pivot_root, where
        // shared or unbindable can no longer get in the way of the bind and the pivot.
        let base = if p.propagation.contains(MsFlags::MS_PRIVATE) {
            MsFlags::MS_PRIVATE
        } else {
            MsFlags::MS_SLAVE
        };
        mount(None, Path::new("/"), None, base | MsFlags::MS_REC, None)?;
        bind_rootfs(&p.rootfs)?;
    }
    // Opened after the bind, so every target below is found on the rootfs's own mount.
    let root = Root::open(&p.rootfs)?;
    for (i, m) in p.mounts.iter().enumerate() {
        let tree = idmapped_trees.get(i).and_then(|o| o.as_ref());
        mount_entry(p, &root, m, tree).map_err(|e| e.within(format!("mount {}", m.dest.display())))?;
    }
    if !p.dev_bound {
        devices::create(&root, &p.devices, p.in_user_ns)?;
        devices::create_symlinks(&root)?;
    }
    Ok(())
}

/// One mount, its target made and resolved in the root and mounted on by fd; what follows the
/// mount (remount flags, propagation, recursive attributes) acts on the mount just made,
/// resolved again the same way.
fn mount_entry(p: &RootfsPlan, root: &Root, m: &PlannedMount, idmapped_tree: Option<&OwnedFd>) -> Result<()> {
    let o = &m.opts;
    if m.typ == "cgroup" || m.typ == "cgroup2" {
        return mount_cgroup(p, root, &m.dest, o);
    }
    if o.is_bind() {
        let src = m.source.as_deref().unwrap_or(Path::new(""));
        let target = root.make(&m.dest, !src.is_dir())?;
        if let Some(tree) = idmapped_tree {
            wrun_sys::syscall::move_mount_to_fd(tree.as_raw_fd(), target.fd.as_raw_fd())
                .ctx(|| format!("move_mount to {}", target.real_path().display()))?;
        } else {
            mount(
                Some(src),
                &target.proc_path(),
                None,
                MsFlags::MS_BIND | (o.flags & MsFlags::MS_REC),
                None,
            )?;
        }
        let extra = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(&mounted(root, &m.dest)?.proc_path(), extra)?;
        }
    } else {
        if matches!(m.typ.as_str(), "proc" | "sysfs") {
            ordinary_dir(root, &m.dest, &m.typ)?;
        }
        let target = root.make(&m.dest, false)?;
        let dest = target.proc_path();
        let src = m.source.clone().unwrap_or_else(|| PathBuf::from(&m.typ));
        let data = (!o.data.is_empty()).then_some(o.data.as_str());
        let r = mount(Some(&src), &dest, Some(&m.typ), o.flags, data);
        match r {
            // devpts with gid=5 fails in a user namespace that does not map gid 5.
            Err(_) if m.typ == "devpts" && o.data.contains("gid=") => {
                let data: Vec<&str> = o.data.split(',').filter(|d| !d.starts_with("gid=")).collect();
                mount(Some(&src), &dest, Some(&m.typ), o.flags, Some(&data.join(",")))?;
            }
            // sysfs can only be mounted by the owner of the network namespace: bind the host's.
            Err(_) if m.typ == "sysfs" && p.in_user_ns => {
                mount(
                    Some(Path::new("/sys")),
                    &dest,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                remount_bind(&mounted(root, &m.dest)?.proc_path(), o.flags)?;
            }
            r => r?,
        }
    }
    if o.propagation.is_empty() && o.rec.is_empty() {
        return Ok(());
    }
    let made = mounted(root, &m.dest)?;
    for prop in &o.propagation {
        mount(None, &made.proc_path(), None, *prop, None)?;
    }
    if !o.rec.is_empty() {
        wrun_sys::syscall::mount_setattr(
            made.fd.as_raw_fd(),
            c"",
            libc::AT_RECURSIVE as u32 | libc::AT_EMPTY_PATH as u32,
            o.rec.set,
            o.rec.clr,
            None,
        )
        .ctx(|| format!("mount_setattr {}", made.real_path().display()))?;
    }
    Ok(())
}

/// The mount just made at `inside`: resolved again, so the fd is on the new mount's root rather
/// than on the directory under it.
fn mounted(root: &Root, inside: &Path) -> Result<Target> {
    root.resolve(inside).map_err(|e| {
        Error::sys(
            format!("reopen {} in the container after mounting it", inside.display()),
            e,
        )
    })
}

/// /sys/fs/cgroup: on v2 a cgroup2 mount (fresh in a cgroup namespace, else the container's
/// directory bound); on v1/hybrid a tmpfs holding a bind of the container's directory in each
/// hierarchy, as runc does.
fn mount_cgroup(p: &RootfsPlan, root: &Root, inside: &Path, o: &MountOptions) -> Result<()> {
    let target = root.make(inside, false)?;
    let dest = target.proc_path();
    let flags = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    if p.cgroup_v2_only {
        if p.new_cgroup_ns {
            return mount(Some(Path::new("cgroup2")), &dest, Some("cgroup2"), flags, None);
        }
        let dir = p.cgroup_dirs.first().map(|(_, d)| d.clone()).unwrap_or_default();
        mount(Some(&dir), &dest, None, MsFlags::MS_BIND, None)?;
        return remount_bind(&mounted(root, inside)?.proc_path(), flags);
    }
    mount(
        Some(Path::new("tmpfs")),
        &dest,
        Some("tmpfs"),
        flags - MsFlags::MS_RDONLY,
        Some("mode=755"),
    )?;
    let tmpfs = mounted(root, inside)?;
    for (name, dir) in &p.cgroup_dirs {
        let sub = root.make(&inside.join(name), false)?;
        mount(Some(dir), &sub.proc_path(), None, MsFlags::MS_BIND, None)?;
        remount_bind(&mounted(root, &inside.join(name))?.proc_path(), flags)?;
        if name.contains(',') {
            for c in name.split(',') {
                let _ = std::os::unix::fs::symlink(name, tmpfs.proc_path().join(c));
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None,
            &tmpfs.proc_path(),
            None,
            MsFlags::MS_REMOUNT | flags,
            Some("mode=755"),
        )?;
    }
    Ok(())
}

/// Remount a bind mount with `flags`, keeping the flags the kernel locks in a user namespace
/// (a remount that drops them fails with EPERM).
pub fn remount_bind(dest: &Path, flags: MsFlags) -> Result<()> {
    let locked = nix::sys::statvfs::statvfs(dest)
        .map(|s| {
            use nix::sys::statvfs::FsFlags as V;
            let f = s.flags();
            let mut m = MsFlags::empty();
            for (v, ms) in [
                (V::ST_NOSUID, MsFlags::MS_NOSUID),
                (V::ST_NODEV, MsFlags::MS_NODEV),
                (V::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (V::ST_NOATIME, MsFlags::MS_NOATIME),
                (V::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (V::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(v) {
                    m |= ms;
                }
            }
            m
        })
        .unwrap_or(MsFlags::empty());
    mount(
        None,
        dest,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked,
        None,
    )
}

/// Bind the rootfs onto itself, so it is a mount of its own (pivot_root needs one, and
/// without a mount namespace it is the one thing `delete` detaches).
pub fn bind_rootfs(rootfs: &Path) -> Result<()> {
    mount(Some(rootfs), rootfs, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
}

/// Without a mount namespace: the parent binds the rootfs privately, so nothing mounted
/// under it propagates anywhere else.
pub fn bind_rootfs_private(rootfs: &Path) -> Result<()> {
    bind_rootfs(rootfs)?;
    mount(None, rootfs, None, MsFlags::MS_PRIVATE | MsFlags::MS_REC, None)
}

/// Detach the rootfs bind (and everything mounted under it) made by `bind_rootfs_private`.
pub fn detach_rootfs(rootfs: &Path) {
    let _ = nix::mount::umount2(rootfs, MntFlags::MNT_DETACH);
}

/// Make the rootfs the root: pivot_root, or a move + chroot with --no-pivot, or a plain
/// chroot without a mount namespace (a move would move the host's mount).
pub fn pivot(p: &RootfsPlan) -> Result<()> {
    nix::unistd::chdir(&p.rootfs).ctx(|| format!("chdir {}", p.rootfs.display()))?;
    if p.host_mount_ns {
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    } else if p.no_pivot {
        mount(Some(&p.rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    } else {
        // pivot_root(".", ".") stacks the old root under the new one; detach it at once.
        wrun_sys::syscall::pivot_root(c".", c".").ctx(|| format!("pivot_root {}", p.rootfs.display()))?;
        mount(None, Path::new("."), None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount the old root".into())?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    if !p.host_mount_ns {
        mount(None, Path::new("/"), None, p.propagation, None)?;
    }
    Ok(())
}

/// After pivot: masked paths, read-only paths, the read-only root. Each path is resolved in the
/// container's root without magic links and mounted on by fd; masking fails closed.
pub fn finalize(p: &RootfsPlan) -> Result<()> {
    if p.masked.is_empty() && p.readonly_paths.is_empty() && !p.readonly {
        return Ok(());
    }
    let root = Root::open(Path::new("/"))?;
    // By fd through the container's /proc; a container without one has no magic link either,
    // and the path checked by `existing` is used as it is.
    let by_fd = Path::new("/proc/self/fd").is_dir();
    let at = |t: &Target, path: &Path| if by_fd { t.proc_path() } else { path.to_path_buf() };
    if !p.masked.is_empty() {
        let null = dev_null(&root)?;
        let null = at(&null, Path::new("/dev/null"));
        for path in &p.masked {
            mask(&root, &null, path, at).map_err(|e| e.within(format!("linux.maskedPaths {}", path.display())))?;
        }
    }
    for path in &p.readonly_paths {
        let Some(t) = existing(&root, path)? else { continue };
        mount(
            Some(&at(&t, path)),
            &at(&t, path),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        remount_bind(&at(&mounted(&root, path)?, path), MsFlags::MS_RDONLY | MsFlags::MS_REC)?;
    }
    if p.readonly {
        remount_bind(Path::new("/"), MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// `path` resolved in the root, or `None` when it does not exist (as runc, a missing masked or
/// read-only path is skipped). Any other failure, a magic link on the way included, is an error.
fn existing(root: &Root, path: &Path) -> Result<Option<Target>> {
    match root.resolve(path) {
        Ok(t) => Ok(Some(t)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::sys(format!("resolve {} in the container", path.display()), e)),
    }
}

/// The container's /dev/null, checked to be the real null device (1:3): an image or a mount
/// could put a regular file or another device there, and masking with it would expose what
/// it should hide (the CVE-2025-31133 class).
fn dev_null(root: &Root) -> Result<Target> {
    let t = existing(root, Path::new("/dev/null"))?
        .ok_or_else(|| Error::Invalid("linux.maskedPaths: /dev/null does not exist in the container".into()))?;
    let st = nix::sys::stat::fstat(t.fd.as_raw_fd()).map_err(|e| Error::sys("stat /dev/null", e))?;
    let is_chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_chr || st.st_rdev != libc::makedev(1, 3) {
        return Err(Error::Invalid(format!(
            "linux.maskedPaths: /dev/null in the container is not the null device (mode {:o}, device {}:{}); refusing to mask with it",
            st.st_mode,
            libc::major(st.st_rdev),
            libc::minor(st.st_rdev)
        )));
    }
    Ok(t)
}

fn mask(root: &Root, null: &Path, path: &Path, at: impl Fn(&Target, &Path) -> PathBuf) -> Result<()> {
    let Some(t) = existing(root, path)? else { return Ok(()) };
    let st = nix::sys::stat::fstat(t.fd.as_raw_fd()).map_err(|e| Error::sys("stat", e))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            Some(Path::new("tmpfs")),
            &at(&t, path),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        )
    } else {
        mount(Some(null), &at(&t, path), None, MsFlags::MS_BIND, None)
    }
}
