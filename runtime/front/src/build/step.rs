//! The steps that change the filesystem, and the commit of every step's image.
//!
//! - RUN runs in a wrun native container made from the image so far (the front end's own
//!   containers, with docker's default capabilities and seccomp filter), on the host's network
//!   or none; its layer is the container's overlay upper directory, less the mount points the
//!   runtime had to make.
//! - COPY and ADD write into the image's root filesystem mounted for the step, resolving the
//!   destination inside that root (`openat2(RESOLVE_IN_ROOT)`: the image's symlinks cannot
//!   send a write to the host) and copying sources without following symlinks.
//!
//! Each step's image is committed to the store as the build cache's answer for its key.

use std::fs;
use std::io::BufWriter;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use wrun_image::digest::{Digest, HashingWriter};
use wrun_image::store::oci::{Descriptor, Manifest, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};
use wrun_image::store::{Image, Staged, Store};

use crate::container::cp::{self, Rules};
use crate::container::spec::RunOptions;
use crate::container::{run, Containers, Error, Result};

/// Where a build works: the store, the containers its RUN steps use, a private directory.
pub struct Work<'a> {
    pub store: &'a Store,
    pub cs: &'a Containers,
    pub dir: PathBuf,
    /// `SOURCE_DATE_EPOCH`: the time of every config, history entry and (at most) file.
    pub epoch: Option<u64>,
    seq: std::cell::Cell<u32>,
}

impl<'a> Work<'a> {
    pub fn new(store: &'a Store, cs: &'a Containers, epoch: Option<u64>) -> Result<Work<'a>> {
        let dir = cs.data_root().join("build").join(crate::container::new_id()?);
        fs::create_dir_all(&dir).map_err(crate::container::io(format!("create {}", dir.display())))?;
        Ok(Work {
            store,
            cs,
            dir,
            epoch,
            seq: std::cell::Cell::new(0),
        })
    }

    fn next(&self, what: &str) -> PathBuf {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        self.dir.join(format!("{what}-{n}"))
    }

    /// The time a step's config and history get.
    pub fn now(&self) -> String {
        match self.epoch {
            Some(e) => wrun_sys::timefmt::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(e)),
            None => wrun_sys::timefmt::now(),
        }
    }
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A layer written into the staging area: its digest (its diffID: it is not compressed) and
/// size.
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
}

/// Write the layer of overlay upper directory `upper` into `staged`.
fn stage_layer(w: &Work, staged: &mut Staged, upper: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<Layer> {
    let p = staged.reserve();
    let f = fs::File::create(&p).map_err(crate::container::io(format!("create {}", p.display())))?;
    let mut hw = HashingWriter::new(BufWriter::with_capacity(256 << 10, f));
    wrun_image::layer::diff_tar(upper, &mut hw, w.epoch, skip)?;
    let (buf, digest, size) = hw.finish();
    buf.into_inner()
        .map_err(|e| crate::container::io("write the layer")(e.into_error()))?
        .sync_all()
        .map_err(crate::container::io("write the layer"))?;
    staged.adopt_written(&p, &digest);
    staged.unpack_layer(&p, Some(&digest), Some(&digest), "the step's layer")?;
    Ok(Layer { digest, size })
}

/// Commit the image of a step: `parent`'s layers (none for scratch) plus `layer`, with config
/// `config` (its `rootfs` and `history` are completed here), as the cache's answer for `key`.
pub fn commit(
    w: &Work,
    mut staged: Staged,
    parent: Option<&Image>,
    mut config: Value,
    layer: Option<Layer>,
    created_by: &str,
    key: &str,
) -> Result<Image> {
    let now = w.now();
    let mut layers: Vec<Descriptor> = parent.map(|p| p.manifest.layers.clone()).unwrap_or_default();
    let mut diff_ids: Vec<Value> = parent
        .map(|p| p.diff_ids().iter().map(|d| json!(d.as_str())).collect())
        .unwrap_or_default();
    let mut history = json!({"created": now, "created_by": created_by});
    match &layer {
        Some(l) => {
            layers.push(Descriptor::new(OCI_LAYER, l.digest.clone(), l.size));
            diff_ids.push(json!(l.digest.as_str()));
        }
        None => history["empty_layer"] = json!(true),
    }
    config["created"] = json!(now);
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    match config["history"].as_array_mut() {
        Some(h) => h.push(history),
        None => config["history"] = json!([history]),
    }
    let cb = serde_json::to_vec(&config).map_err(|e| Error::Invalid(format!("image config: {e}")))?;
    let cd = staged.add_bytes(&cb, "config")?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(OCI_CONFIG, cd, cb.len() as u64),
        layers,
        annotations: Default::default(),
    };
    let mb = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(format!("manifest: {e}")))?;
    let md = staged.add_bytes(&mb, "manifest")?;
    Ok(w.store.commit_cached(staged, &md, key)?)
}

/// Whether `rel` (a path inside the image, relative) exists in `img`'s layers.
fn in_image(store: &Store, img: &Image, rel: &Path) -> bool {
    let Ok(keys) = img.layer_keys() else { return false };
    for k in keys.iter().rev() {
        if let Ok(md) = fs::symlink_metadata(store.layer_dir(k).join(rel)) {
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            return !(md.file_type().is_char_device() && md.rdev() == 0);
        }
    }
    false
}

/// RUN `argv` in a container of `img` with `env` added, on network `network`; returns the
/// layer of what it changed, staged in `staged`.
pub fn run_step(
    w: &Work,
    staged: &mut Staged,
    img: &Image,
    argv: Vec<String>,
    env: Vec<String>,
    network: &str,
) -> Result<Layer> {
    let o = RunOptions {
        entrypoint: Some(String::new()),
        command: argv.clone(),
        env,
        network: Some(network.to_string()),
        ..Default::default()
    };
    let rec = run::create(w.store, w.cs, img, img.id.short(), &o)?;
    let done = (|| {
        let code = run::run_foreground(w.store, w.cs, rec.clone())?;
        if code != 0 {
            return Err(Error::Invalid(format!(
                "the command {argv:?} returned a non-zero code: {code}"
            )));
        }
        let dir = w.cs.dir_of(&rec.id);
        // The mount points the runtime made because the image lacked them are not the step's.
        let made: Vec<PathBuf> = fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|c| c["mounts"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .map(|d| PathBuf::from(d.trim_start_matches('/')))
            .filter(|d| !in_image(w.store, img, d))
            .collect();
        stage_layer(w, staged, &dir.join("upper"), &|p| made.iter().any(|m| m == p))
    })();
    let _ = run::remove_made(w.store, w.cs, &rec);
    done
}

/// A root to copy into or from: a mounted image, or (for scratch) a plain directory.
pub struct Root<'a> {
    store: &'a Store,
    dir: PathBuf,
    mounted: bool,
    /// Always Some until dropped.
    fd: Option<OwnedFd>,
}

impl<'a> Root<'a> {
    /// `img`'s root filesystem (empty for None: scratch), writable, its writes in `upper`.
    pub fn open(w: &Work<'a>, img: Option<&Image>) -> Result<Root<'a>> {
        let dir = w.next("root");
        let has_layers = img.is_some_and(|i| !i.manifest.layers.is_empty());
        let rootfs = match img.filter(|_| has_layers) {
            Some(i) => w.store.mount(i, &dir)?,
            None => {
                let up = dir.join("upper");
                fs::create_dir_all(&up).map_err(crate::container::io(format!("create {}", up.display())))?;
                up
            }
        };
        let fd = nix::fcntl::open(
            &rootfs,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(cp::own)
        .map_err(cp::sys(format!("open {}", rootfs.display())))?;
        Ok(Root {
            store: w.store,
            dir,
            mounted: has_layers,
            fd: Some(fd),
        })
    }

    /// The root, open (`O_PATH`).
    pub fn fd(&self) -> &OwnedFd {
        self.fd.as_ref().expect("open until dropped")
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

impl Drop for Root<'_> {
    fn drop(&mut self) {
        // The fd first: a mount it holds open would not unmount.
        drop(self.fd.take());
        if self.mounted {
            let _ = self.store.unmount(&self.dir);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `mkdir -p` of `path` inside `root` (created directories get `owner`); returns it open. A
/// symlink on the way whose target is missing is followed as the kernel would, inside the
/// root: what it points to is made.
pub fn mkdir_in_root(root: &OwnedFd, path: &Path, owner: (u32, u32)) -> Result<OwnedFd> {
    mkdir_in(root, path, owner, 0)
}

fn mkdir_in(root: &OwnedFd, path: &Path, owner: (u32, u32), links: usize) -> Result<OwnedFd> {
    let shown = path.display().to_string();
    let open = |p: &Path| wrun_sys::inroot::openat2_in_root(root.as_raw_fd(), p, libc::O_RDONLY | libc::O_DIRECTORY);
    let comps = super::context::clean(&path.to_string_lossy()).unwrap_or_default();
    let mut cur = PathBuf::from(".");
    let mut fd = open(&cur).map_err(cp::sys(format!("open {shown}")))?;
    for (i, name) in comps.iter().enumerate() {
        cur.push(name);
        match open(&cur) {
            Ok(next) => fd = next,
            Err(nix::errno::Errno::ENOENT) => {
                let n = std::ffi::CString::new(name.as_bytes())
                    .map_err(|_| Error::Invalid(format!("{shown}: a NUL byte in the path")))?;
                let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
                match nix::sys::stat::mkdirat(Some(fd.as_raw_fd()), n.as_c_str(), mode) {
                    Ok(()) => {}
                    Err(nix::errno::Errno::EEXIST) => {
                        // A symlink to something missing: make its target (inside the root).
                        if links >= 16 {
                            return Err(Error::Invalid(format!("{shown}: too many levels of symbolic links")));
                        }
                        let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), n.as_c_str())
                            .map_err(cp::sys(format!("{shown}: not a directory")))?;
                        let mut p = match Path::new(&target).is_absolute() {
                            true => PathBuf::from(&target),
                            false => cur.parent().unwrap_or(Path::new(".")).join(&target),
                        };
                        for rest in &comps[i + 1..] {
                            p.push(rest);
                        }
                        return mkdir_in(root, &p, owner, links + 1);
                    }
                    Err(e) => return Err(cp::sys(format!("create {shown}"))(e)),
                }
                let next = open(&cur).map_err(cp::sys(format!("open {shown}")))?;
                nix::unistd::fchown(next.as_raw_fd(), Some(owner.0.into()), Some(owner.1.into()))
                    .map_err(cp::sys(format!("chown {shown}")))?;
                fd = next;
            }
            Err(e) => return Err(cp::sys(format!("{shown}: not a directory"))(e)),
        }
    }
    Ok(fd)
}

/// One COPY source: the directory it is in (open) and its name there, or None for a
/// directory whose contents are copied; `shown` names it (a host path, for `.dockerignore`).
pub struct Source {
    pub dir: OwnedFd,
    pub name: Option<std::ffi::CString>,
    pub is_dir: bool,
    pub shown: PathBuf,
}

/// Copy `sources` to `dest` (absolute, in the image) in `root`, as docker's COPY: a directory's
/// contents into `dest`; a file into `dest` if that is (or is written as) a directory, else as
/// `dest`.
pub(crate) fn copy_into(root: &Root, sources: &[Source], dest: &str, rules: Rules<'_>) -> Result<()> {
    let owner = rules.owner.unwrap_or((0, 0));
    let into_dir = dest.ends_with('/') || sources.len() > 1 || {
        let rel = Path::new(dest.trim_start_matches('/'));
        rel.as_os_str().is_empty()
            || wrun_sys::inroot::openat2_in_root(root.fd().as_raw_fd(), rel, libc::O_RDONLY | libc::O_DIRECTORY).is_ok()
    };
    let dest_path = Path::new(dest);
    for s in sources {
        let mut out = cp::Copied::default();
        if s.is_dir || into_dir {
            let d = mkdir_in_root(root.fd(), dest_path, owner)?;
            let name = if s.is_dir { None } else { s.name.as_deref() };
            cp::copy_top(
                &s.dir,
                if s.is_dir { None } else { s.name.as_deref() },
                &d,
                name,
                &s.shown,
                rules,
                &mut out,
            )?;
        } else {
            let parent = dest_path.parent().unwrap_or(Path::new("/"));
            let d = mkdir_in_root(root.fd(), parent, owner)?;
            let name = dest_path
                .file_name()
                .and_then(|n| std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(n)).ok())
                .ok_or_else(|| Error::Invalid(format!("COPY: {dest}: not a file name")))?;
            cp::copy_top(&s.dir, s.name.as_deref(), &d, Some(&name), &s.shown, rules, &mut out)?;
        }
    }
    Ok(())
}

/// The layer of what a COPY wrote into `root`.
pub fn copy_layer(w: &Work, staged: &mut Staged, root: &Root) -> Result<Layer> {
    stage_layer(w, staged, &root.upper(), &|_| false)
}
