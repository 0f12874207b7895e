//! The verbs that act on a running container's cgroup: update, pause, resume, ps, events
//! (OOM notifications and statistics).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::Serialize;

use super::ops::load;
use crate::state::Status;
use crate::{Error, Result};
use wrun_sys::cgroups::{self, stats::Stats, Cgroup};

fn running_cgroup(root: &Path, id: &str, verb: &'static str) -> Result<(super::ops::Loaded, Cgroup)> {
    let c = load(root, id)?;
    if !matches!(c.status, Status::Created | Status::Running | Status::Paused) {
        return Err(Error::WrongStatus {
            id: id.into(),
            status: c.status.to_string(),
            why: verb,
        });
    }
    let dirs = c.rec.as_ref().map(|r| r.cgroup_dirs.clone()).unwrap_or_default();
    if dirs.is_empty() {
        return Err(Error::Invalid(format!(
            "container {id} has no cgroup (made without root where none is delegated to the \
             user): limits, pause, statistics and events need one"
        )));
    }
    Ok((c, Cgroup::new(&dirs)))
}

/// The processes of a container without a cgroup (made without root where none is
/// delegated): those in the init's pid namespace when it has one of its own, and the init's
/// descendants (all that is known of a non-dumpable wasm init, whose namespace links only its
/// owner's root can read).
pub fn pid_ns_members(init: i32) -> Vec<i32> {
    let link = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let ns = link(init).filter(|ns| std::fs::read_link("/proc/self/ns/pid").ok().as_ref() != Some(ns));
    let procs: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|p| {
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                    let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
                    Some((p, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![init];
    if let Some(ns) = &ns {
        out.extend(
            procs
                .iter()
                .filter(|(p, _)| *p != init && link(*p).as_ref() == Some(ns))
                .map(|(p, _)| *p),
        );
    }
    loop {
        let more: Vec<i32> = procs
            .iter()
            .filter(|(p, pp)| out.contains(pp) && !out.contains(p))
            .map(|(p, _)| *p)
            .collect();
        if more.is_empty() {
            break;
        }
        out.extend(more);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `update`: apply new limits to a live container. New device rules replace the old ones as
/// `create` made them: the defaults and the nodes of the config's `linux.devices` stay allowed
/// (the container has those nodes; the rules must not take them away).
pub fn update(root: &Path, id: &str, r: &LinuxResources) -> Result<()> {
    let (c, cg) = running_cgroup(root, id, "only a live container can be updated")?;
    let rules = match r.devices().as_deref().filter(|d| !d.is_empty()) {
        Some(d) => {
            let nodes = c
                .rec
                .as_ref()
                .and_then(|rec| crate::spec::Bundle::load(&rec.bundle).ok())
                .and_then(|b| b.spec.linux().as_ref().map(crate::linux::devices::plan))
                .unwrap_or_else(crate::linux::devices::defaults);
            cgroups::device_rules(d, &crate::linux::devices::cgroup_nodes(&nodes))
        }
        None => Vec::new(),
    };
    Ok(cg.apply(r, &rules, true)?)
}

/// `pause` (true) or `resume` (false).
pub fn pause(root: &Path, id: &str, paused: bool) -> Result<()> {
    let (c, cg) = running_cgroup(root, id, "only a live container can be paused or resumed")?;
    match (paused, c.status) {
        (true, Status::Running) | (false, Status::Paused) => Ok(cg.freeze(paused)?),
        (true, _) => Err(Error::WrongStatus {
            id: id.into(),
            status: c.status.to_string(),
            why: "only a running container can be paused",
        }),
        (false, _) => Err(Error::WrongStatus {
            id: id.into(),
            status: c.status.to_string(),
            why: "only a paused container can be resumed",
        }),
    }
}

/// `ps`: the host pids of the container's processes.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let c = load(root, id)?;
    if let Some(rec) = c.rec.as_ref().filter(|r| r.cgroup_dirs.is_empty()) {
        if matches!(c.status, Status::Created | Status::Running | Status::Paused) {
            return Ok(pid_ns_members(rec.pid));
        }
    }
    let (_, cg) = running_cgroup(root, id, "only a live container has processes")?;
    let mut p = cgroups::pids(&cg.dirs);
    p.sort_unstable();
    Ok(p)
}

pub fn stats(root: &Path, id: &str) -> Result<Stats> {
    let (_, cg) = running_cgroup(root, id, "only a live container has statistics")?;
    Ok(cg.stats())
}

#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

/// One `{"type":"stats","id":…,"data":…}` line, as `runc events --stats` prints.
pub fn stats_event(id: &str, s: &Stats) -> String {
    serde_json::to_string(&Event {
        typ: "stats",
        id,
        data: Some(s),
    })
    .unwrap_or_default()
}

/// `events`: print an `oom` event line for each OOM kill and a `stats` line every
/// `interval`, until the container stops.
pub fn events(root: &Path, id: &str, interval: Duration, out: &mut dyn Write) -> Result<()> {
    let (_, cg) = running_cgroup(root, id, "only a live container has events")?;
    let mut watch = cg.oom_watch()?;
    let step = interval.min(Duration::from_millis(200)).max(Duration::from_millis(10));
    let mut since_stats = Duration::ZERO;
    loop {
        if watch.wait(step) {
            let line = serde_json::to_string(&Event::<()> {
                typ: "oom",
                id,
                data: None,
            })
            .unwrap_or_default();
            writeln!(out, "{line}").map_err(|e| Error::io("events: write", e))?;
            out.flush().map_err(|e| Error::io("events: write", e))?;
        }
        since_stats += step;
        if since_stats >= interval {
            since_stats = Duration::ZERO;
            writeln!(out, "{}", stats_event(id, &cg.stats())).map_err(|e| Error::io("events: write", e))?;
            out.flush().map_err(|e| Error::io("events: write", e))?;
        }
        match load(root, id) {
            Ok(c) if matches!(c.status, Status::Created | Status::Running | Status::Paused) => {}
            _ => return Ok(()),
        }
    }
}
