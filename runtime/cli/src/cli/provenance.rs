//! `wrun image sbom` and `wrun image scan` (crate wrun-provenance), and the scan that
//! `wrun build --scan` runs on the image it built.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use wrun_image::store::{Image, Store};
use wrun_provenance::sbom::{self, format};
use wrun_provenance::scan::{self, Severity};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    Table,
    SpdxJson,
    CyclonedxJson,
}

#[derive(Args, Debug)]
pub struct SbomArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The document to write.
    #[arg(long, value_enum, default_value = "table")]
    pub format: SbomFormat,
    /// Write it to FILE rather than to standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    fn severity(self) -> Severity {
        match self {
            Level::Unknown => Severity::Unknown,
            Level::Low => Severity::Low,
            Level::Medium => Severity::Medium,
            Level::High => Severity::High,
            Level::Critical => Severity::Critical,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFormat {
    Table,
    Json,
}

/// The vulnerability database and the threshold, shared by `image scan` and `build --scan`.
#[derive(Args, Debug, Clone)]
pub struct ScanOptions {
    /// The vulnerability database: a directory of OSV JSON files you keep current (wrun
    /// fetches nothing).
    #[arg(long, value_name = "DIR")]
    pub db: Option<PathBuf>,
    /// Fail (exit 1) when a vulnerability of this severity or above is found (`unknown`:
    /// any vulnerability at all).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Level>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub opts: ScanOptions,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ScanFormat,
}

pub fn sbom(store: &Store, a: &SbomArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let img = store.resolve(&a.image)?;
    let s = sbom::of_image(store, &img, &a.image).map_err(|e| anyhow::anyhow!("image {}: {e}", a.image))?;
    let text = match a.format {
        SbomFormat::Table => format::table(&s),
        SbomFormat::SpdxJson => serde_json::to_string_pretty(&format::spdx(&s))? + "\n",
        SbomFormat::CyclonedxJson => serde_json::to_string_pretty(&format::cyclonedx(&s))? + "\n",
    };
    match &a.output {
        Some(f) => std::fs::write(f, text).map_err(|e| anyhow::anyhow!("--output {}: {e}", f.display()))?,
        None => out.write_all(text.as_bytes())?,
    }
    Ok(0)
}

pub fn scan_cmd(store: &Store, a: &ScanArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let img = store.resolve(&a.image)?;
    scan_image(store, &img, &a.image, &a.opts, a.format, out)
}

/// Scan `img` and print the report; an error (the one line naming the worst findings) when
/// one is at or above `--fail-on`.
pub fn scan_image(
    store: &Store,
    img: &Image,
    name: &str,
    o: &ScanOptions,
    fmt: ScanFormat,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let Some(dir) = &o.db else {
        anyhow::bail!("scan {name}: give the vulnerability database with --db DIR (a directory of OSV JSON files)");
    };
    let db = scan::load(dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Some(w) = db.staleness(now) {
        eprintln!("wrun: warning: {w}");
    }
    let s = sbom::of_image(store, img, name).map_err(|e| anyhow::anyhow!("image {name}: {e}"))?;
    let r = scan::scan(&s, &db);
    match fmt {
        ScanFormat::Json => {
            let matches: Vec<serde_json::Value> = r
                .findings
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "package": f.package, "version": f.version, "type": f.kind.as_str(),
                        "layer": f.layer + 1, "layerDigest": f.layer_digest,
                        "vulnerability": f.id, "aliases": f.aliases, "severity": f.severity.as_str(),
                        "fixedIn": f.fixed, "summary": f.summary,
                    })
                })
                .collect();
            let v = serde_json::json!({
                "image": name, "digest": s.digest,
                "distro": s.distro.as_ref().map(|d| format!("{} {}", d.id, d.version_id.as_deref().unwrap_or(""))),
                "packages": s.packages.len(), "unmatchedPackages": r.unmatched,
                "database": {"dir": db.dir, "advisories": db.advisories.len(),
                    "newest": db.newest.map(|t| wrun_sys::timefmt::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64)))},
                "matches": matches,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        ScanFormat::Table => {
            if !r.findings.is_empty() {
                let w = |f: fn(&scan::Finding) -> usize, min: usize| {
                    r.findings.iter().map(f).max().unwrap_or(0).max(min) + 2
                };
                let (pw, vw) = (w(|f| f.package.len(), 7), w(|f| f.version.len(), 9));
                let fw = w(|f| f.fixed.as_deref().map_or(1, str::len), 8);
                let iw = w(|f| f.id.len(), 13);
                writeln!(
                    out,
                    "{:<pw$}{:<vw$}{:<fw$}{:<10}{:<iw$}LAYER",
                    "PACKAGE", "INSTALLED", "FIXED-IN", "SEVERITY", "VULNERABILITY"
                )?;
                for f in &r.findings {
                    writeln!(
                        out,
                        "{:<pw$}{:<vw$}{:<fw$}{:<10}{:<iw$}{}",
                        f.package,
                        f.version,
                        f.fixed.as_deref().unwrap_or("-"),
                        f.severity.as_str(),
                        f.id,
                        f.layer + 1
                    )?;
                }
            }
            let count = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
            writeln!(
                out,
                "{} vulnerabilities ({} critical, {} high, {} medium, {} low, {} unknown) in {} packages of {name}; {} not matched (no ecosystem); database {}: {} advisories",
                r.findings.len(),
                count(Severity::Critical),
                count(Severity::High),
                count(Severity::Medium),
                count(Severity::Low),
                count(Severity::Unknown),
                s.packages.len(),
                r.unmatched,
                db.dir.display(),
                db.advisories.len()
            )?;
        }
    }
    out.flush()?;
    if let Some(level) = o.fail_on {
        let bad: Vec<&scan::Finding> = r.findings.iter().filter(|f| f.severity >= level.severity()).collect();
        if !bad.is_empty() {
            let ids: Vec<String> = bad
                .iter()
                .take(5)
                .map(|f| format!("{} in {}", f.id, f.package))
                .collect();
            anyhow::bail!(
                "image {name}: {} vulnerabilities at or above {} ({}{})",
                bad.len(),
                level.severity().as_str(),
                ids.join(", "),
                if bad.len() > 5 { ", …" } else { "" }
            );
        }
    }
    Ok(0)
}
