//! The data root's event log (`events.jsonl`), what `wrun system events` reads: a JSON line per
//! container event (create, start, die with its exit code, destroy, rename, health_status),
//! appended by whichever process saw it (the CLI, a monitor). With no daemon, the log is the
//! bus: a reader follows the file. It is cut at 1 MiB (the older half kept as
//! `events.jsonl.1`), so it never grows without bound. Writing is best effort: an event that
//! cannot be written never fails the operation it reports.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Record;

const MAX: u64 = 1 << 20;

/// One event, in docker's terms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, nanoseconds.
    pub time: String,
    /// Nanoseconds since the epoch (for --since/--until).
    #[serde(rename = "timeNano")]
    pub time_nano: u128,
    #[serde(rename = "type")]
    pub typ: String,
    pub action: String,
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// docker's text form: `TIME container ACTION ID (k=v, ...)`.
    pub fn text(&self) -> String {
        let attrs: Vec<String> = self.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} {} {} {} ({})",
            self.time,
            self.typ,
            self.action,
            self.id,
            attrs.join(", ")
        )
    }
}

/// The log of the data root `data_root`.
pub fn path(data_root: &Path) -> PathBuf {
    data_root.join("events.jsonl")
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Append `action` of container `rec` (with `extra` attributes) to the log.
pub fn emit(data_root: &Path, rec: &Record, action: &str, extra: &[(&str, String)]) {
    let mut attributes: BTreeMap<String, String> = rec.labels.clone();
    attributes.insert("name".into(), rec.name.clone());
    attributes.insert("image".into(), rec.image.clone());
    for (k, v) in extra {
        attributes.insert(k.to_string(), v.clone());
    }
    let t = std::time::SystemTime::now();
    let nanos = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let e = Event {
        time: wrun_sys::timefmt::rfc3339(t),
        time_nano: nanos,
        typ: "container".into(),
        action: action.into(),
        id: rec.id.clone(),
        attributes,
    };
    let Ok(mut line) = serde_json::to_string(&e) else {
        return;
    };
    line.push('\n');
    let p = path(data_root);
    if fs::metadata(&p).is_ok_and(|m| m.len() > MAX) {
        let _ = fs::rename(&p, p.with_extension("jsonl.1"));
    }
    // One write(2) of one line with O_APPEND: lines of concurrent writers do not mix.
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&p) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The events of the log (the rotated part first) whose time is within [since, until].
pub fn read(data_root: &Path, since: u128, until: Option<u128>) -> Vec<Event> {
    let p = path(data_root);
    let mut out = Vec::new();
    for f in [p.with_extension("jsonl.1"), p] {
        let Ok(text) = fs::read_to_string(&f) else { continue };
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Event>(l).ok())
                .filter(|e| e.time_nano >= since && until.is_none_or(|u| e.time_nano <= u)),
        );
    }
    out
}

/// Follow the log from its end (or from `since`), calling `f` for each event until `until`
/// passes or `f` says stop.
pub fn follow(data_root: &Path, since: Option<u128>, until: Option<u128>, mut f: impl FnMut(&Event) -> bool) {
    use std::io::{BufRead, BufReader, Seek, SeekFrom};
    let p = path(data_root);
    let open = || -> Option<(BufReader<File>, u64)> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        let ino = std::os::unix::fs::MetadataExt::ino(&file.metadata().ok()?);
        Some((BufReader::new(file), ino))
    };
    // Opened at its end before the past is replayed: nothing written meanwhile is missed (an
    // event in both is told once, by its time).
    let Some((mut r, mut ino)) = open() else { return };
    let mut seen_nano = 0u128;
    if let Some(s) = since {
        for e in read(data_root, s, until) {
            seen_nano = e.time_nano;
            if !f(&e) {
                return;
            }
        }
    }
    let mut line = String::new();
    loop {
        if until.is_some_and(|u| now_nanos() > u) {
            return;
        }
        line.clear();
        match r.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {
                if let Ok(e) = serde_json::from_str::<Event>(&line) {
                    if e.time_nano > seen_nano && until.is_none_or(|u| e.time_nano <= u) && !f(&e) {
                        return;
                    }
                }
            }
            Ok(n) => {
                if n > 0 {
                    // Half a line: read it again whole.
                    let _ = r.seek_relative(-(n as i64));
                }
                // Rotated: follow the new file from its start.
                let now_ino = fs::metadata(&p).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok();
                if now_ino.is_some_and(|i| i != ino) {
                    if let Ok(file) = File::open(&p) {
                        ino = now_ino.unwrap_or(ino);
                        r = BufReader::new(file);
                        continue;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(_) => return,
        }
    }
}
