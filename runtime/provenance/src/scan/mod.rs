//! An image's SBOM matched against a local vulnerability database in the OSV format.
//!
//! The database is a directory of OSV JSON files (one advisory each, at any depth), as
//! `osv.dev` publishes per ecosystem and Debian's and Alpine's trackers export. Nothing is
//! fetched: the user keeps the directory current, and a database whose newest advisory is
//! older than a week is reported as stale.
//!
//! Matching follows the OSV schema: an affected entry's ecosystem (`Debian:12`, `Alpine:v3.19`;
//! a bare `Debian` matches every release) must be the image's distribution, its package name
//! the package's source name (Debian's and Alpine's advisories are per source package) or its
//! own name, and the installed version must be in one of its `versions` or `ranges`
//! (introduced / fixed / last_affected / limit events, compared with the ecosystem's version
//! ordering). Severity comes from a CVSS v3 vector (base score computed), else the
//! advisory's `database_specific.severity`, else Debian's urgency, else it is unknown.

pub mod cvss;
pub mod version;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::sbom::{Kind, Sbom};
use crate::{Error, Result};
use version::Scheme;

/// One OSV file's size limit.
const FILE_CAP: u64 = 16 << 20;
/// A database older than this (its newest `modified`) is reported as stale.
pub const STALE_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "unknown" | "not yet assigned" | "unassigned" | "" => Severity::Unknown,
            "low" | "negligible" | "unimportant" | "minor" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "high" | "important" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    fn of_score(s: f64) -> Severity {
        match s {
            x if x >= 9.0 => Severity::Critical,
            x if x >= 7.0 => Severity::High,
            x if x >= 4.0 => Severity::Medium,
            x if x > 0.0 => Severity::Low,
            _ => Severity::Unknown,
        }
    }
}

#[derive(Debug, Clone)]
enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

#[derive(Debug, Clone)]
struct Affected {
    ecosystem: String,
    name: String,
    versions: Vec<String>,
    /// Ranges of type ECOSYSTEM or SEMVER (GIT ranges name commits, not package versions).
    ranges: Vec<(bool, Vec<Event>)>,
    severity: Option<Severity>,
}

#[derive(Debug, Clone)]
pub struct Advisory {
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub modified: Option<i64>,
    pub severity: Severity,
    affected: Vec<Affected>,
}

/// A loaded database.
#[derive(Debug)]
pub struct Db {
    pub dir: PathBuf,
    pub advisories: Vec<Advisory>,
    /// The newest `modified` of its advisories (seconds since the epoch).
    pub newest: Option<i64>,
}

impl Db {
    /// A warning when the database looks out of date, naming its age and the fix.
    pub fn staleness(&self, now: i64) -> Option<String> {
        match self.newest {
            None => Some(format!(
                "vulnerability database {}: no advisory says when it was modified; its age is unknown",
                self.dir.display()
            )),
            Some(t) if now - t > STALE_DAYS * 86_400 => Some(format!(
                "vulnerability database {} is {} days old (newest advisory modified {}): update it, findings may be missing",
                self.dir.display(),
                (now - t) / 86_400,
                &wrun_sys::timefmt::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64))[..10]
            )),
            Some(_) => None,
        }
    }
}

/// Every OSV file under `dir`. A file that does not parse is an error naming it and where.
pub fn load(dir: &Path) -> Result<Db> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        Error::invalid(format!(
            "vulnerability database {}: {e} (give --db a directory of OSV JSON files, kept current by you: wrun fetches nothing)",
            dir.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(Error::invalid(format!(
            "vulnerability database {}: not a directory of OSV JSON files",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    walk(dir, &mut files, 0)?;
    files.sort();
    let mut advisories = Vec::new();
    for f in &files {
        advisories.push(parse_file(f)?);
    }
    if advisories.is_empty() {
        return Err(Error::invalid(format!(
            "vulnerability database {}: no OSV advisories (*.json) in it",
            dir.display()
        )));
    }
    let newest = advisories.iter().filter_map(|a| a.modified).max();
    Ok(Db {
        dir: dir.to_path_buf(),
        advisories,
        newest,
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 16 {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
        let p = e.path();
        // Directories are entered only when they are directories, not links to one.
        let ft = e
            .file_type()
            .map_err(|e| Error::io(format!("stat {}", p.display()), e))?;
        if ft.is_dir() {
            walk(&p, out, depth + 1)?;
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    Ok(())
}

fn parse_file(f: &Path) -> Result<Advisory> {
    use std::io::Read;
    let file = std::fs::File::open(f).map_err(|e| Error::io(format!("OSV file {}", f.display()), e))?;
    let mut bytes = Vec::new();
    file.take(FILE_CAP + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("OSV file {}", f.display()), e))?;
    if bytes.len() as u64 > FILE_CAP {
        return Err(Error::invalid(format!(
            "OSV file {}: larger than {FILE_CAP} bytes",
            f.display()
        )));
    }
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("OSV file {}: {e}", f.display())))?;
    parse_advisory(&v).map_err(|e| Error::invalid(format!("OSV file {}: {e}", f.display())))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn parse_advisory(v: &Value) -> std::result::Result<Advisory, String> {
    let id = v["id"]
        .as_str()
        .ok_or("no \"id\" string: not an OSV advisory")?
        .to_string();
    let modified = match &v["modified"] {
        Value::String(s) => {
            Some(wrun_sys::timefmt::parse_rfc3339(s).ok_or(format!("{id}: modified {s:?} is not an RFC 3339 time"))?)
        }
        Value::Null => None,
        _ => return Err(format!("{id}: modified is not a string")),
    };
    let mut affected = Vec::new();
    for (i, a) in v["affected"].as_array().into_iter().flatten().enumerate() {
        let (Some(eco), Some(name)) = (a["package"]["ecosystem"].as_str(), a["package"]["name"].as_str()) else {
            continue;
        };
        let mut ranges = Vec::new();
        for r in a["ranges"].as_array().into_iter().flatten() {
            let semver = match r["type"].as_str() {
                Some("ECOSYSTEM") => false,
                Some("SEMVER") => true,
                Some("GIT") => continue,
                other => {
                    return Err(format!(
                        "{id}: affected[{i}]: range type {other:?} is not ECOSYSTEM, SEMVER or GIT"
                    ))
                }
            };
            let mut events = Vec::new();
            for e in r["events"].as_array().into_iter().flatten() {
                let get = |k: &str| e[k].as_str().map(str::to_string);
                events.push(if let Some(x) = get("introduced") {
                    Event::Introduced(x)
                } else if let Some(x) = get("fixed") {
                    Event::Fixed(x)
                } else if let Some(x) = get("last_affected") {
                    Event::LastAffected(x)
                } else if let Some(x) = get("limit") {
                    Event::Limit(x)
                } else {
                    return Err(format!(
                        "{id}: affected[{i}]: an event that is none of introduced, fixed, last_affected, limit"
                    ));
                });
            }
            ranges.push((semver, events));
        }
        let severity = a["ecosystem_specific"]["urgency"]
            .as_str()
            .or(a["ecosystem_specific"]["severity"].as_str())
            .or(a["database_specific"]["severity"].as_str())
            .and_then(Severity::parse);
        affected.push(Affected {
            ecosystem: eco.to_string(),
            name: name.to_string(),
            versions: strings(&a["versions"]),
            ranges,
            severity,
        });
    }
    let cvss = v["severity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| matches!(s["type"].as_str(), Some("CVSS_V3")))
        .filter_map(|s| s["score"].as_str().and_then(cvss::base_score))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let severity = cvss
        .map(Severity::of_score)
        .or_else(|| v["database_specific"]["severity"].as_str().and_then(Severity::parse))
        .unwrap_or(Severity::Unknown);
    Ok(Advisory {
        id,
        aliases: strings(&v["aliases"]),
        summary: v["summary"]
            .as_str()
            .or(v["details"].as_str())
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        modified,
        severity,
        affected,
    })
}

/// What an image's distribution is called in OSV: (ecosystem, release) and its ordering.
fn ecosystem(s: &Sbom, kind: Kind) -> Option<(&'static str, Option<String>, Scheme)> {
    let d = s.distro.as_ref();
    match kind {
        Kind::Deb => {
            let id = d.map_or("debian", |d| d.id.as_str());
            let name = match id {
                "ubuntu" => "Ubuntu",
                _ => "Debian",
            };
            Some((name, d.and_then(|d| d.version_id.clone()), Scheme::Debian))
        }
        Kind::Apk => {
            let rel = d.and_then(|d| d.version_id.as_ref()).map(|v| {
                let mm: Vec<&str> = v.split('.').take(2).collect();
                format!("v{}", mm.join("."))
            });
            Some(("Alpine", rel, Scheme::Alpine))
        }
        // OSV's rpm ecosystems, by the image's os-release ID, each with its major release
        // ("Rocky Linux:9"; Red Hat's "Red Hat:enterprise_linux:9::appstream").
        Kind::Rpm => {
            let d = d?;
            let name = match d.id.as_str() {
                "rhel" => "Red Hat",
                "rocky" => "Rocky Linux",
                "almalinux" => "AlmaLinux",
                "opensuse-leap" | "opensuse-tumbleweed" | "opensuse" => "openSUSE",
                "sles" | "sled" => "SUSE",
                "mageia" => "Mageia",
                _ => return None,
            };
            let major = d
                .version_id
                .as_ref()
                .map(|v| v.split('.').next().unwrap_or(v).to_string());
            Some((name, major, Scheme::Rpm))
        }
        Kind::Binary | Kind::Wasm => None,
    }
}

fn eco_matches(osv: &str, name: &str, release: Option<&str>) -> bool {
    let mut parts = osv.splitn(2, ':');
    let base = parts.next().unwrap_or("");
    if !base.eq_ignore_ascii_case(name) {
        return false;
    }
    match (parts.next(), release) {
        (None, _) => true,
        // Red Hat's "enterprise_linux:9::appstream": the release is any field.
        (Some(r), Some(rel)) if base.eq_ignore_ascii_case("Red Hat") => r.split(':').any(|f| f == rel),
        // "Ubuntu:22.04:LTS", "Rocky Linux:9": the release is the first field.
        (Some(r), Some(rel)) => r.split(':').next() == Some(rel),
        (Some(_), None) => false,
    }
}

/// Whether `version` is affected by `a`, and the lowest fixed version above it.
fn affected(a: &Affected, version: &str, scheme: Scheme) -> (bool, Option<String>) {
    if a.versions.iter().any(|v| v == version) {
        return (true, None);
    }
    let cmp = |x: &str, y: &str| -> Ordering {
        match (x, y) {
            ("0", "0") => Ordering::Equal,
            ("0", _) => Ordering::Less,
            (_, "0") => Ordering::Greater,
            _ => scheme.compare(x, y),
        }
    };
    for (semver, events) in &a.ranges {
        let scheme_here = if *semver { Scheme::Semver } else { scheme };
        let c = |x: &str, y: &str| if *semver { scheme_here.compare(x, y) } else { cmp(x, y) };
        let mut evs = events.clone();
        evs.sort_by(|x, y| c(x.version(), y.version()));
        let mut hit = false;
        for e in &evs {
            match e {
                Event::Introduced(v) if v == "0" || c(version, v) != Ordering::Less => hit = true,
                Event::Fixed(v) | Event::Limit(v) if c(version, v) != Ordering::Less => hit = false,
                Event::LastAffected(v) if c(version, v) == Ordering::Greater => hit = false,
                _ => {}
            }
        }
        if hit {
            let fixed = evs
                .iter()
                .filter_map(|e| match e {
                    Event::Fixed(v) if c(version, v) == Ordering::Less => Some(v.clone()),
                    _ => None,
                })
                .next();
            return (true, fixed);
        }
    }
    (false, None)
}

/// A package of the image that an advisory affects.
#[derive(Debug, Clone)]
pub struct Finding {
    pub package: String,
    pub version: String,
    pub kind: Kind,
    pub layer: usize,
    pub layer_digest: String,
    pub id: String,
    pub aliases: Vec<String>,
    pub severity: Severity,
    pub fixed: Option<String>,
    pub summary: String,
}

/// What a scan found, and what it could not look at.
#[derive(Debug)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Packages with no ecosystem to match in (binaries, wasm modules).
    pub unmatched: usize,
}

pub fn scan(s: &Sbom, db: &Db) -> Report {
    let mut findings = Vec::new();
    let mut unmatched = 0;
    for p in &s.packages {
        let Some((eco, release, scheme)) = ecosystem(s, p.kind) else {
            unmatched += 1;
            continue;
        };
        let (src, src_ver) = p.advisory_name();
        for adv in &db.advisories {
            for a in &adv.affected {
                if !eco_matches(&a.ecosystem, eco, release.as_deref()) {
                    continue;
                }
                let version = if a.name == src {
                    src_ver
                } else if a.name == p.name {
                    p.version.as_str()
                } else {
                    continue;
                };
                let (hit, fixed) = affected(a, version, scheme);
                if !hit || findings.iter().any(|f: &Finding| f.id == adv.id && f.package == p.name) {
                    continue;
                }
                findings.push(Finding {
                    package: p.name.clone(),
                    version: p.version.clone(),
                    kind: p.kind,
                    layer: p.layer,
                    layer_digest: p.layer_digest.clone(),
                    id: adv.id.clone(),
                    aliases: adv.aliases.clone(),
                    severity: if adv.severity == Severity::Unknown {
                        a.severity.unwrap_or(Severity::Unknown)
                    } else {
                        adv.severity
                    },
                    fixed,
                    summary: adv.summary.clone(),
                });
            }
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| (&a.package, &a.id).cmp(&(&b.package, &b.id)))
    });
    Report { findings, unmatched }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adv(json: &str) -> Affected {
        parse_advisory(&serde_json::from_str(json).unwrap())
            .unwrap()
            .affected
            .remove(0)
    }

    #[test]
    fn ranges_follow_the_osv_rules() {
        let a = adv(
            r#"{"id":"X","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1~deb12u1"}]}]}]}"#,
        );
        assert_eq!(
            affected(&a, "3.0.11-1~deb12u2", Scheme::Debian),
            (true, Some("3.0.13-1~deb12u1".into()))
        );
        assert!(!affected(&a, "3.0.13-1~deb12u1", Scheme::Debian).0);
        assert!(!affected(&a, "3.0.15-1~deb12u1", Scheme::Debian).0);
        let b = adv(
            r#"{"id":"Y","affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"busybox"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.36.0-r0"},{"last_affected":"1.36.1-r15"}]}],
            "versions":["1.30.0-r0"]}]}"#,
        );
        assert!(affected(&b, "1.36.1-r15", Scheme::Alpine).0);
        assert!(!affected(&b, "1.36.1-r16", Scheme::Alpine).0);
        assert!(!affected(&b, "1.35.0-r1", Scheme::Alpine).0);
        assert!(affected(&b, "1.30.0-r0", Scheme::Alpine).0);
        assert!(eco_matches("Debian:12", "Debian", Some("12")));
        assert!(eco_matches("Debian", "Debian", Some("12")));
        assert!(!eco_matches("Debian:11", "Debian", Some("12")));
        assert!(eco_matches("Ubuntu:22.04:LTS", "Ubuntu", Some("22.04")));
    }

    #[test]
    fn bad_advisories_say_what_is_wrong() {
        let e = parse_advisory(&serde_json::json!({"summary": "x"})).unwrap_err();
        assert!(e.contains("no \"id\""), "{e}");
        let e = parse_advisory(
            &serde_json::json!({"id": "A", "affected": [{"package": {"ecosystem": "Debian", "name": "x"},
            "ranges": [{"type": "WHATEVER", "events": []}]}]}),
        )
        .unwrap_err();
        assert!(e.contains("WHATEVER"), "{e}");
    }
}
