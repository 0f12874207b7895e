//! `wrun system ...` and `wrun container prune`: docker's housekeeping over a data root.
//! `prune` removes stopped containers, unused networks, dangling (with -a: unused) images and,
//! with --volumes, named volumes no container names; `df` sums what images, containers'
//! writes and volumes take; `events` prints (and follows) the data root's event log.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use wrun_front::container::{events, run as life, Containers, Record, Status};
use wrun_front::network::{Networks, DEFAULT};
use wrun_image::store::{self, Store};

use super::image::human_size;

#[derive(Args, Debug)]
pub struct SystemArgs {
    /// The data root [default: $WRUN_DATA_ROOT, else /var/lib/wrun].
    #[arg(long, global = true)]
    pub data_root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: SystemCommand,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Remove stopped containers, unused networks and dangling images (and more with -a, --volumes).
    Prune(PruneArgs),
    /// What images, containers and volumes take on disk.
    Df,
    /// Container events (create, start, die, oom, health_status, destroy, rename), followed.
    Events(EventsArgs),
    /// Remove every container, image, network and volume of the data root, and the data root;
    /// without root, also end the rootless session (as `podman system reset`).
    Reset(ResetArgs),
    /// End the rootless session, so the next command maps the user's ranges as /etc/subuid and
    /// /etc/subgid give them now (after `usermod --add-subuids`); containers are stopped.
    Migrate,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// Do remove everything (required: wrun never asks).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Every image no container uses, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Named volumes no container names too.
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask (accepted: wrun never asks).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// From this time: RFC 3339, seconds since the epoch, or a duration ago (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time (then exit); same forms.
    #[arg(long)]
    pub until: Option<String>,
    /// `json`: the events as JSON lines.
    #[arg(long)]
    pub format: Option<String>,
    /// container=NAME|ID, event=ACTION, image=NAME (repeatable).
    #[arg(short, long)]
    pub filter: Vec<String>,
}

/// The data root asked (or the default), made and given by its real path: mounts are found in
/// mountinfo by the path the kernel shows, which a symlink or a relative root would not match.
pub fn data_root(d: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let root = d.clone().unwrap_or_else(store::default_data_root);
    std::fs::create_dir_all(&root).map_err(|e| anyhow::anyhow!("data root {}: {e}", root.display()))?;
    std::fs::canonicalize(&root).map_err(|e| anyhow::anyhow!("data root {}: {e}", root.display()))
}

/// Bytes under `dir` (apparent sizes), walked without recursion (a container's writes may nest
/// deeper than a stack) and without following symlinks or crossing into other filesystems.
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = top.dev();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if m.is_dir() {
                todo.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Stopped containers go (running, restarting and paused ones stay); their ids.
pub fn prune_containers(st: &Store, cs: &Containers) -> anyhow::Result<(Vec<String>, u64)> {
    let mut gone = Vec::new();
    let mut bytes = 0;
    for r in cs.list()? {
        if matches!(r.status, Status::Exited | Status::Created | Status::Dead) {
            let size = dir_size(&cs.dir_of(&r.id).join("upper"));
            if life::remove(st, cs, &r.id, false).is_ok() {
                gone.push(r.id);
                bytes += size;
            }
        }
    }
    Ok((gone, bytes))
}

/// The named volumes some container's config names.
fn volumes_in_use(cs: &Containers, vol_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut used = Vec::new();
    for r in cs.list()? {
        let Ok(b) = std::fs::read(cs.dir_of(&r.id).join("config.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) else {
            continue;
        };
        for m in v["mounts"].as_array().into_iter().flatten() {
            if let Some(rest) = m["source"]
                .as_str()
                .and_then(|s| Path::new(s).strip_prefix(vol_dir).ok())
            {
                if let Some(n) = rest.components().next() {
                    used.push(n.as_os_str().to_string_lossy().into_owned());
                }
            }
        }
    }
    Ok(used)
}

fn prune(root: &Path, a: &PruneArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (st, cs, nets) = (Store::open(root)?, Containers::open(root)?, Networks::open(root)?);
    let (containers, mut bytes) = prune_containers(&st, &cs)?;
    if !containers.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &containers {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    let users: Vec<Record> = cs.list()?;
    let mut deleted_nets = Vec::new();
    for n in nets.list()?.iter().filter(|n| n.name != DEFAULT) {
        if !users.iter().any(|r| r.network.as_deref() == Some(&n.name)) && nets.remove(n).is_ok() {
            deleted_nets.push(n.name.clone());
        }
    }
    if !deleted_nets.is_empty() {
        writeln!(out, "Deleted Networks:")?;
        for n in &deleted_nets {
            writeln!(out, "{n}")?;
        }
        writeln!(out)?;
    }
    if a.volumes {
        let vol_dir = root.join("volumes");
        let used = volumes_in_use(&cs, &vol_dir)?;
        let mut deleted = Vec::new();
        for e in std::fs::read_dir(&vol_dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) {
                let size = dir_size(&e.path());
                if std::fs::remove_dir_all(e.path()).is_ok() {
                    bytes += size;
                    deleted.push(name);
                }
            }
        }
        if !deleted.is_empty() {
            writeln!(out, "Deleted Volumes:")?;
            for n in &deleted {
                writeln!(out, "{n}")?;
            }
            writeln!(out)?;
        }
    }
    let (ids, freed) = st.prune(a.all)?;
    if !ids.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for id in ids {
            writeln!(out, "deleted: {id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(bytes + freed.bytes))?;
    Ok(())
}

fn df(root: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let (st, cs) = (Store::open(root)?, Containers::open(root)?);
    let u = wrun_image::view::usage(&st)?;
    let list = cs.list()?;
    let active = list
        .iter()
        .filter(|r| matches!(r.status, Status::Running | Status::Restarting))
        .count();
    let sizes: Vec<(bool, u64)> = list
        .iter()
        .map(|r| {
            (
                matches!(r.status, Status::Running | Status::Restarting),
                dir_size(&cs.dir_of(&r.id).join("upper")),
            )
        })
        .collect();
    let c_total: u64 = sizes.iter().map(|(_, s)| s).sum();
    let c_idle: u64 = sizes.iter().filter(|(a, _)| !a).map(|(_, s)| s).sum();
    let vol_dir = root.join("volumes");
    let used = volumes_in_use(&cs, &vol_dir)?;
    let vols: Vec<(String, u64)> = std::fs::read_dir(&vol_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), dir_size(&e.path())))
        .collect();
    let v_total: u64 = vols.iter().map(|(_, s)| s).sum();
    let v_idle: u64 = vols.iter().filter(|(n, _)| !used.contains(n)).map(|(_, s)| s).sum();
    let v_active = vols.iter().filter(|(n, _)| used.contains(n)).count();
    writeln!(
        out,
        "{:<16}{:<8}{:<8}{:<12}RECLAIMABLE",
        "TYPE", "TOTAL", "ACTIVE", "SIZE"
    )?;
    let row = |out: &mut dyn Write, t: &str, total: usize, act: usize, size: u64, rec: u64| {
        writeln!(
            out,
            "{t:<16}{total:<8}{act:<8}{:<12}{}",
            human_size(size),
            human_size(rec)
        )
    };
    row(
        out,
        "Images",
        u.images,
        u.images - u.dangling,
        u.blob_bytes + u.layer_bytes,
        u.reclaimable,
    )?;
    row(out, "Containers", list.len(), active, c_total, c_idle)?;
    row(out, "Local Volumes", vols.len(), v_active, v_total, v_idle)?;
    Ok(())
}

/// A time of --since/--until as nanoseconds since the epoch.
fn parse_time(flag: &str, s: &str) -> anyhow::Result<u128> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as u128);
    }
    if let Some(secs) = wrun_sys::timefmt::parse_rfc3339(s) {
        return Ok(secs.max(0) as u128 * 1_000_000_000);
    }
    if let Some(d) = wrun_front::container::health::parse_duration(s) {
        return Ok(now.saturating_sub(d.as_nanos()));
    }
    anyhow::bail!("{flag} {s:?}: not a time (RFC 3339, seconds since the epoch, or a duration ago like 10m)")
}

fn events_cmd(root: &Path, a: &EventsArgs) -> anyhow::Result<()> {
    if let Some(f) = a.format.as_deref().filter(|f| *f != "json") {
        anyhow::bail!("--format {f:?}: only \"json\"");
    }
    let since = a.since.as_deref().map(|s| parse_time("--since", s)).transpose()?;
    let until = a.until.as_deref().map(|s| parse_time("--until", s)).transpose()?;
    let mut filters = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some((k @ ("container" | "event" | "image"), v)) if !v.is_empty() => filters.push((k, v.to_string())),
            _ => anyhow::bail!("--filter {f:?}: container=NAME, event=ACTION or image=NAME"),
        }
    }
    let keep = |e: &events::Event| {
        filters.iter().all(|(k, v)| match *k {
            "container" => e.id.starts_with(v.as_str()) || e.attributes.get("name") == Some(v),
            "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
            _ => e.attributes.get("image") == Some(v),
        })
    };
    let json = a.format.is_some();
    let mut out = std::io::stdout().lock();
    events::follow(root, since, until, |e| {
        if !keep(e) {
            return true;
        }
        let line = if json {
            serde_json::to_string(e).unwrap_or_default()
        } else {
            e.text()
        };
        // A reader that went away (a pipe closed) ends it quietly.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    });
    Ok(())
}

pub fn run(a: &SystemArgs) -> anyhow::Result<i32> {
    let root = data_root(&a.data_root)?;
    let mut out = std::io::stdout().lock();
    match &a.command {
        SystemCommand::Prune(p) => prune(&root, p, &mut out)?,
        SystemCommand::Df => df(&root, &mut out)?,
        SystemCommand::Events(e) => {
            drop(out);
            events_cmd(&root, e)?;
        }
        SystemCommand::Reset(r) => reset(&root, r.force)?,
        SystemCommand::Migrate => migrate(&root)?,
    }
    Ok(0)
}

/// Stop every running container of `root` (they run in the session about to end).
fn stop_all(cs: &Containers) -> anyhow::Result<()> {
    for r in cs.list()? {
        if matches!(r.status, Status::Running | Status::Restarting) {
            super::container::stop(cs, &r.id, Some(0), None)
                .map_err(|e| anyhow::anyhow!("system: stop container {}: {e}", r.name))?;
        }
    }
    Ok(())
}

/// End the caller's rootless session (a no-op for root, which has none).
fn end_session() -> anyhow::Result<bool> {
    let Some(_) = wrun_sys::userns::unprivileged_user() else {
        return Ok(false);
    };
    Ok(wrun_sys::userns::end(&wrun::state::default_root())?)
}

/// `system reset`: what podman's does. Inside the session, as its uid 0, even trees a hostile
/// image made unreadable (mode 000) are removed: every owner in the store is mapped there,
/// where a plain `rm -rf` of the user's on the host fails with EACCES.
fn reset(root: &Path, force: bool) -> anyhow::Result<()> {
    if !force {
        anyhow::bail!(
            "system reset removes every container, image, network and volume under {}: pass --force",
            root.display()
        );
    }
    // Only a data root wrun made is removed: every entry in it must be one wrun makes, so a
    // mistyped --data-root (/, /var/lib, a home directory) never becomes a recursive removal.
    const OURS: [&str; 14] = [
        "images",
        "images.lock",
        "layers",
        "tmp",
        "containers",
        "events.jsonl",
        "networks",
        "runtime",
        "volumes",
        "mounts",
        "holds",
        "build",
        "wasm-cache",
        "lost+found",
    ];
    let foreign: Vec<String> = std::fs::read_dir(root)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !OURS.contains(&n.as_str()))
        .collect();
    if root == Path::new("/") || !foreign.is_empty() {
        anyhow::bail!(
            "system reset: {} does not look like a wrun data root (it holds {}): refused",
            root.display(),
            foreign.first().map_or("/", String::as_str)
        );
    }
    let (st, cs, nets) = (Store::open(root)?, Containers::open(root)?, Networks::open(root)?);
    for r in cs.list()? {
        life::remove(&st, &cs, &r.id, true).map_err(|e| anyhow::anyhow!("system reset: container {}: {e}", r.name))?;
    }
    for n in nets.list()?.iter().filter(|n| n.name != DEFAULT) {
        nets.remove(n)
            .map_err(|e| anyhow::anyhow!("system reset: network {}: {e}", n.name))?;
    }
    drop((st, cs, nets));
    life::remove_tree(root).map_err(|e| anyhow::anyhow!("system reset: {e}"))?;
    end_session()?;
    Ok(())
}

/// `system migrate`: stop the containers and end the session; the next command makes a new one.
fn migrate(root: &Path) -> anyhow::Result<()> {
    if wrun_sys::userns::unprivileged_user().is_none() {
        eprintln!("wrun: system migrate: root has no rootless session; nothing to do");
        return Ok(());
    }
    let cs = Containers::open(root)?;
    stop_all(&cs)?;
    // What a created container holds lives in the old session (its network namespace's
    // mount, its pasta): taken down now, made again in the new session by its start.
    for r in cs.list()? {
        let _ = wrun_front::container::netns::disconnect(&cs, &r);
    }
    end_session()?;
    Ok(())
}
