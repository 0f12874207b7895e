//! The life of a front-end container: made (record, image hold, root filesystem, config),
//! run in the foreground by the lifecycle library, and removed. Every failure on the way
//! removes what was made before it: no record, hold, mount or directory is left.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use wrun_image::store::{Image, Store};

use super::spec::{self, EtcFiles, RunOptions, Source, UserMount};
use super::{io, Containers, Error, Record, Result, Status};

const WASM_VARIANT: &str = "module.wasm.image/variant";

fn now() -> String {
    wrun_sys::timefmt::now()
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .map_err(io(format!("create {}", p.display())))
}

/// Make container for `img` (named `image` by the user) as `o` asks; returns its record
/// (status created). The name is taken under the containers lock.
pub fn create(store: &Store, cs: &Containers, img: &Image, image: &str, o: &RunOptions) -> Result<Record> {
    for w in spec::check_flags(o)? {
        eprintln!("wrun: warning: {w}");
    }
    let cfg = img.config["config"].clone();
    let health = super::health::resolve(&cfg, &o.health)?;
    let mut ports = Vec::new();
    for p in &o.publish {
        ports.extend(crate::network::ports::parse(p)?);
    }
    if o.publish_all {
        ports.extend(crate::network::ports::exposed(&cfg));
    }
    if let Some(n) = o.network.as_deref() {
        crate::network::check_rootless(n)?;
    }
    if let Some(n) = o
        .network
        .as_deref()
        .filter(|n| !matches!(*n, "none" | "host" | crate::network::pasta::NAME))
    {
        // Named before anything is made: a network that does not exist is a one-line refusal.
        crate::network::Networks::open(cs.data_root())?.find(n)?;
    }
    let id = super::new_id()?;
    let dir = cs.dir_of(&id);
    let rec = {
        let _l = cs.lock()?;
        let all = cs.list()?;
        let name = match &o.name {
            Some(n) => {
                if let Some(other) = all.iter().find(|r| &r.name == n) {
                    return Err(Error::Conflict(format!(
                        "container name {n:?} is already in use by container {}; remove or rename that container",
                        other.short_id()
                    )));
                }
                n.clone()
            }
            None => cs.generate_name(&all),
        };
        mkdir(&dir, 0o700)?;
        // The image's StopSignal is checked like the flag; one that does not parse is not
        // kept (stop would fail on it every time), SIGTERM is used instead.
        let stop_signal = o.stop_signal.clone().or_else(|| {
            let s = cfg["StopSignal"].as_str()?;
            if wrun_sys::signal::parse(s).is_ok() {
                Some(s.to_string())
            } else {
                eprintln!("wrun: warning: the image's StopSignal {s:?} is not a signal; SIGTERM is used");
                None
            }
        });
        let rec = Record {
            id: id.clone(),
            name,
            image: image.to_string(),
            image_id: img.id.to_string(),
            image_digest: img.digest.to_string(),
            command: vec![],
            created: now(),
            status: Status::Created,
            pid: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            auto_remove: o.rm,
            labels: o
                .labels
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (l.clone(), String::new()),
                })
                .collect(),
            stop_signal,
            stop_timeout: o.stop_timeout,
            restart: o
                .restart
                .as_deref()
                .map(super::RestartPolicy::parse)
                .transpose()?
                .unwrap_or_default(),
            restart_count: 0,
            log_opts: super::logs::LogOpts::parse(&o.log_opts)?,
            monitor_pid: None,
            stop_requested: false,
            remove_requested: false,
            network: Some(
                o.network
                    .clone()
                    .unwrap_or_else(|| crate::network::default_for_caller().to_string()),
            ),
            ports,
            extra_hosts: o
                .add_host
                .iter()
                .filter_map(|h| spec::add_host(h).ok())
                .map(|(n, ip)| (n, ip.map_or_else(|| "host-gateway".to_string(), |ip| ip.to_string())))
                .collect(),
            health,
            health_state: None,
            open_stdin: o.interactive,
        };
        if let Err(e) = cs.save(&rec) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        rec
    };
    let mut rec = rec;
    match fill(store, cs, img, o, &mut rec) {
        Ok(()) => {
            super::events::emit(cs.data_root(), &rec, "create", &[]);
            Ok(rec)
        }
        Err(e) => {
            let _ = remove_made(store, cs, &rec);
            Err(e)
        }
    }
}

/// Everything after the record: the hold, the rootfs, the volumes, the config.
fn fill(store: &Store, cs: &Containers, img: &Image, o: &RunOptions, rec: &mut Record) -> Result<()> {
    let r = (|| -> Result<Vec<String>> {
        let dir = cs.dir_of(&rec.id);
        let who = format!("container {} ({})", rec.name, rec.short_id());
        store.hold(img, &rec.id, &who, &dir)?;
        let cfg = &img.config["config"];
        let mounts = spec::user_mounts(cfg, o)?;
        let host_net = o.network.as_deref() == Some("host");
        let netns = (!host_net).then(|| dir.join("netns"));
        if let Some(p) = &netns {
            super::netns::create(p)?;
        }
        let rootfs = store.mount(img, &dir)?;
        let hostname = spec::hostname(o, &rec.id);
        let etc = EtcFiles {
            hostname: dir.join("hostname"),
            hosts: dir.join("hosts"),
            resolv: dir.join("resolv.conf"),
        };
        let extra: Vec<(String, String)> = rec.extra_hosts.clone();
        let hosts = if host_net {
            let mut h = fs::read_to_string("/etc/hosts").unwrap_or_else(|_| spec::hosts_file(&hostname, None, &[]));
            for (n, ip) in &extra {
                h.push_str(&format!("{ip}\t{n}\n"));
            }
            h
        } else {
            spec::hosts_file(&hostname, None, &extra)
        };
        for (p, text) in [
            (&etc.hostname, format!("{hostname}\n")),
            (&etc.hosts, hosts),
            (&etc.resolv, spec::resolv_conf(host_net, o)),
        ] {
            fs::write(p, text).map_err(io(format!("write {}", p.display())))?;
        }
        super::netns::connect(cs, rec)?;
        let mut resolved = Vec::new();
        for (n, m) in mounts.into_iter().enumerate() {
            let src = match &m {
                UserMount::Bind {
                    src: Source::Host(p), ..
                } => Some(p.clone()),
                UserMount::Bind {
                    src: Source::Named(v), ..
                } => {
                    let d = volume_dir(store.root(), v);
                    mkdir(&d, 0o755)?;
                    Some(d)
                }
                UserMount::Bind {
                    src: Source::Anonymous, ..
                } => {
                    let d = dir.join("volumes").join(n.to_string());
                    mkdir(&d, 0o755)?;
                    Some(d)
                }
                UserMount::Tmpfs { .. } => None,
            };
            resolved.push((m, src));
        }
        let wasm_default = img
            .manifest
            .layers
            .iter()
            .find(|l| l.media_type.starts_with("application/wasm") || l.media_type.contains("wasm.content.layer"))
            .map(|l| format!("/{}", wrun_image::archive::wasm_file_name(l)));
        let mut annotations = BTreeMap::new();
        let variant = img
            .manifest
            .annotations
            .get(WASM_VARIANT)
            .cloned()
            .or_else(|| cfg["Labels"][WASM_VARIANT].as_str().map(str::to_string));
        if let Some(v) = variant {
            annotations.insert(WASM_VARIANT.to_string(), v);
        }
        let config = spec::build(
            o,
            &spec::Inputs {
                id: &rec.id,
                image_config: cfg,
                wasm_default: wasm_default.as_deref(),
                annotations,
                rootfs: &rootfs,
                etc: &etc,
                mounts: &resolved,
                netns: netns.as_deref(),
            },
        )?;
        let p = dir.join("config.json");
        let text = serde_json::to_vec_pretty(&config).map_err(|e| Error::Invalid(format!("encode the config: {e}")))?;
        fs::write(&p, text).map_err(io(format!("write {}", p.display())))?;
        Ok(config["process"]["args"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    })();
    rec.command = r?;
    cs.save(rec)
}

/// A named volume's directory.
pub fn volume_dir(data_root: &Path, name: &str) -> PathBuf {
    data_root.join("volumes").join(name).join("_data")
}

/// What the lifecycle library is given to run container `rec`.
fn create_options(cs: &Containers, rec: &Record) -> wrun::container::CreateOptions {
    wrun::container::CreateOptions {
        root: cs.runtime_root().to_path_buf(),
        id: rec.id.clone(),
        bundle: cs.dir_of(&rec.id),
        pid_file: None,
        console_socket: None,
        preserve_fds: 0,
        no_pivot: false,
        no_new_keyring: false,
    }
}

/// The network namespace file the container's config names, if it has one of its own.
fn netns_of(cs: &Containers, rec: &Record) -> Option<PathBuf> {
    let b = fs::read(cs.dir_of(&rec.id).join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str().map(PathBuf::from))
}

/// Whether something is mounted at `p` (as mountinfo shows it).
pub(crate) fn is_mounted(p: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            wrun_sys::mountinfo::parse(&t)
                .iter()
                .any(|m| Path::new(&m.mountpoint) == p)
        })
        .unwrap_or(false)
}

/// Make what a run of `rec` needs and a past run took down: its root filesystem (with the
/// writes it kept) and its network namespace.
pub fn prepare_to_run(store: &Store, cs: &Containers, rec: &Record) -> Result<()> {
    let dir = cs.dir_of(&rec.id);
    if !is_mounted(&wrun_image::store::mount::rootfs_of(&dir)) {
        let img = store.resolve(&rec.image_id)?;
        store.mount(&img, &dir)?;
    }
    if let Some(ns) = netns_of(cs, rec) {
        // A namespace made again (after a reboot, or in a new rootless session) is connected
        // again whatever an old attachment says: connect takes a stale one down first.
        let fresh = !is_mounted(&ns);
        if fresh {
            let _ = fs::remove_file(&ns);
            super::netns::create(&ns)?;
        }
        if fresh || !super::netns::attached(cs, rec) {
            super::netns::connect(cs, rec)?;
        }
    }
    Ok(())
}

/// One run of the container, in this process's stdio; its exit status (128+N for a signal).
pub fn run_once(cs: &Containers, rec: &Record) -> Result<i32> {
    Ok(wrun::container::run(&create_options(cs, rec), false)?)
}

/// Start the container in the background (its process's stdio is this process's, or with a
/// terminal, the pty whose master goes to `console`); returns its init's pid.
pub fn start_detached(cs: &Containers, rec: &Record, console: Option<PathBuf>) -> Result<i32> {
    let mut opts = create_options(cs, rec);
    opts.console_socket = console;
    wrun::container::run(&opts, true)?;
    wrun::container::load(cs.runtime_root(), &rec.id)?
        .rec
        .map(|r| r.pid)
        .ok_or_else(|| Error::Invalid(format!("container {}: the runtime kept no record", rec.name)))
}

/// Take down what `prepare_to_run` made, keeping the writes.
pub fn after_run(store: &Store, cs: &Containers, rec: &Record) {
    let dir = cs.dir_of(&rec.id);
    let _ = store.unmount_keeping_writes(&dir);
    if super::netns::disconnect(cs, rec).is_ok() {
        let _ = super::netns::remove(&dir.join("netns"));
    }
}

/// Run a created container in the foreground (stdio is the caller's; with a terminal, the
/// caller's terminal) and wait for it; returns its exit status (128+N for a signal). The
/// record follows: running, then exited with the code; `--rm` removes it.
pub fn run_foreground(store: &Store, cs: &Containers, rec: Record) -> Result<i32> {
    let rec = cs.update(&rec.id, |r| {
        r.status = Status::Running;
        r.started_at = Some(now());
    })?;
    super::events::emit(cs.data_root(), &rec, "start", &[]);
    let r = run_once(cs, &rec);
    // `rm -f` from elsewhere may have removed it meanwhile: then there is nothing to record.
    let Ok(rec) = cs.update(&rec.id, |rec| {
        match &r {
            Ok(code) => {
                rec.status = Status::Exited;
                rec.exit_code = Some(*code);
            }
            // As docker: a container whose process could not start stays created, with the
            // code `run` exits with.
            Err(e) => {
                rec.status = Status::Created;
                rec.exit_code = Some(exit_code_of(e));
            }
        }
        rec.finished_at = Some(now());
    }) else {
        return r;
    };
    after_run(store, cs, &rec);
    if let Ok(code) = &r {
        super::events::emit(cs.data_root(), &rec, "die", &[("exitCode", code.to_string())]);
    }
    if rec.auto_remove {
        remove_made(store, cs, &rec)?;
        super::events::emit(cs.data_root(), &rec, "destroy", &[]);
    }
    r
}

/// docker's exit code for a `run` that failed: 127 when the command was not found, 126 when
/// it could not be executed, 125 for anything else.
pub fn exit_code_of(e: &Error) -> i32 {
    use nix::errno::Errno;
    match e {
        Error::Runtime(r) => match r.errno() {
            Some(Errno::ENOENT) => 127,
            Some(Errno::EACCES | Errno::ENOEXEC | Errno::EPERM | Errno::EISDIR) => 126,
            _ => 125,
        },
        _ => 125,
    }
}

/// Make /dev/null this process's stdin (what a container run without `-i` reads).
pub fn stdin_from_dev_null() -> Result<()> {
    use std::os::fd::AsRawFd;
    let null = fs::File::open("/dev/null").map_err(io("open /dev/null"))?;
    nix::unistd::dup2(null.as_raw_fd(), 0).map_err(|e| io("make /dev/null stdin")(e.into()))?;
    Ok(())
}

/// Remove container `name`: refused while it runs unless `force` (then it is killed first,
/// and its monitor is waited for).
pub fn remove(store: &Store, cs: &Containers, name: &str, force: bool) -> Result<Record> {
    let rec = cs.find(name)?;
    if matches!(rec.status, Status::Running | Status::Restarting) && !force {
        return Err(Error::Conflict(format!(
            "container {} is {}: stop it first or use rm -f",
            rec.name,
            rec.status.as_str()
        )));
    }
    let rec = cs.update(&rec.id, |r| {
        r.remove_requested = true;
        r.stop_requested = true;
    })?;
    if cs.runtime_status(&rec.id).is_some() {
        let _ = wrun::container::kill(cs.runtime_root(), &rec.id, libc::SIGKILL, true);
    }
    if let Some(pid) = rec.monitor_pid.filter(|p| super::monitor::alive(*p, &rec.id)) {
        if !super::monitor::wait_gone(pid, &rec.id, std::time::Duration::from_secs(10)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            super::monitor::wait_gone(pid, &rec.id, std::time::Duration::from_secs(5));
        }
    }
    if cs.runtime_status(&rec.id).is_some() {
        wrun::container::delete(cs.runtime_root(), &rec.id, true)?;
    }
    remove_made(store, cs, &rec)?;
    super::events::emit(cs.data_root(), &rec, "destroy", &[]);
    Ok(rec)
}

/// Remove a tree a container (or an image) shaped: a chain of thousands of nested directories
/// makes std's removal (an fd per level) fail with EMFILE, so coreutils' `rm`, which walks any
/// depth, finishes what it could not. Neither follows symlinks; `--one-file-system` keeps `rm`
/// off anything mounted below.
pub fn remove_tree(dir: &Path) -> Result<()> {
    let first = match fs::remove_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let ok = std::process::Command::new("rm")
        .args(["-rf", "--one-file-system", "--"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok && !dir.exists() {
        Ok(())
    } else {
        Err(io(format!("remove {}", dir.display()))(first))
    }
}

/// Undo `create`: the rootfs mount and its writes, the anonymous volumes, the directory,
/// the hold.
pub fn remove_made(store: &Store, cs: &Containers, rec: &Record) -> Result<()> {
    let dir = cs.dir_of(&rec.id);
    // The CNI plugins' DEL first: it needs the namespace, and a failure keeps the container
    // (and what its network holds on the host) for another try.
    super::netns::disconnect(cs, rec).map_err(|e| {
        Error::Conflict(format!(
            "container {}: {e}; the container is kept so that its network can be taken down: remove it again",
            rec.name
        ))
    })?;
    super::netns::remove(&dir.join("netns"))?;
    match store.unmount(&dir) {
        Ok(()) | Err(wrun_image::Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // Never a recursive removal through a mount: it would delete what the mount shows.
    if let Ok(text) = fs::read_to_string("/proc/self/mountinfo") {
        if let Some(m) = wrun_sys::mountinfo::parse(&text)
            .iter()
            .find(|m| Path::new(&m.mountpoint).starts_with(&dir))
        {
            return Err(Error::Conflict(format!(
                "container {}: {} is still mounted; unmount it and remove the container again",
                rec.name, m.mountpoint
            )));
        }
    }
    if dir.exists() {
        remove_tree(&dir)?;
    }
    store.release(&rec.id)?;
    Ok(())
}
