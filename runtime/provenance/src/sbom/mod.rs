//! The packages an image holds, each with the layer it came from.
//!
//! Sources, in the merged tree of the image's layers (see `layers`):
//! - dpkg: `/var/lib/dpkg/status` (installed packages only, as `dpkg-query` counts them) and
//!   distroless's `/var/lib/dpkg/status.d/*`; licenses from the machine-readable
//!   `/usr/share/doc/PKG/copyright` where there is one;
//! - apk: `/lib/apk/db/installed`;
//! - rpm: `rpmdb.sqlite` in `/var/lib/rpm` or `/usr/lib/sysimage/rpm` (see `rpm`);
//! - with no package database: known static binaries (busybox, by its version string);
//! - wasm modules (wasm layers, and a wasm image's entrypoint): the module's own metadata
//!   (`name`, `producers` and the `version`/`licenses`/`source` custom sections).
//!
//! The layer of a package is the layer from which on its database lists it at its version:
//! the database is read as the image stood after each layer that changed it.

mod dpkg;
pub mod format;
mod rpm;
mod wasm;

use std::collections::BTreeMap;
use std::path::Path;

use wrun_image::store::{oci, Image, Store};

use crate::layers::{Layers, View};
use crate::{Error, Result};

/// A package database's size limit: Debian's full desktop status is ~10 MB.
const DB_CAP: u64 = 64 << 20;
/// A binary searched for its version string.
const BINARY_CAP: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deb,
    Apk,
    Rpm,
    Binary,
    Wasm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deb => "deb",
            Kind::Apk => "apk",
            Kind::Rpm => "rpm",
            Kind::Binary => "binary",
            Kind::Wasm => "wasm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub kind: Kind,
    pub name: String,
    pub version: String,
    /// The source package (dpkg's `Source`, apk's origin) and its version, when they differ.
    pub source: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    /// License names as the package records them (Debian's short names, apk's expression).
    pub licenses: Vec<String>,
    /// Index of the layer (0 is the bottom one) and its diffID (a wasm layer: its digest).
    pub layer: usize,
    pub layer_digest: String,
    /// Where it was found: the database or the file.
    pub found_in: String,
    /// Other facts (a wasm module's producers), as name/value pairs.
    pub extra: Vec<(String, String)>,
}

impl Package {
    /// The source name and version that advisories name (Debian's and Alpine's are per source
    /// package).
    pub fn advisory_name(&self) -> (&str, &str) {
        (
            self.source.as_deref().unwrap_or(&self.name),
            self.source_version.as_deref().unwrap_or(&self.version),
        )
    }
}

/// `/etc/os-release` of the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distro {
    pub id: String,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Sbom {
    /// The name the user gave, and the image's manifest digest and id.
    pub name: String,
    pub digest: String,
    pub id: String,
    pub distro: Option<Distro>,
    pub packages: Vec<Package>,
    /// Layer keys, bottom first.
    pub layers: Vec<String>,
}

/// The SBOM of `img`, named `name` in the documents.
pub fn of_image(store: &Store, img: &Image, name: &str) -> Result<Sbom> {
    let ls = Layers::open(store, img)?;
    let keys: Vec<String> = img
        .manifest
        .layers
        .iter()
        .zip(img.layer_keys()?)
        .map(|(l, k)| {
            if oci::is_wasm_layer(&l.media_type) {
                l.digest.to_string()
            } else {
                k.to_string()
            }
        })
        .collect();
    let top = ls.top();
    let distro = os_release(top)?;
    let mut packages = Vec::new();
    let mut dbs = 0;
    if let Some(p) = attributed(&ls, Path::new("/var/lib/dpkg/status"), dpkg::parse)? {
        dbs += 1;
        packages.extend(p);
    }
    let status_d = top.list(Path::new("/var/lib/dpkg/status.d"))?;
    for n in status_d {
        let p = Path::new("/var/lib/dpkg/status.d").join(&n);
        // md5sums files sit beside the records in some distroless images.
        if p.extension().is_some_and(|e| e == "md5sums") {
            continue;
        }
        if let Some((layer, bytes)) = top.read(&p, DB_CAP)? {
            dbs += 1;
            for mut pk in dpkg::parse(&bytes).map_err(|e| Error::invalid(format!("{}: {e}", p.display())))? {
                pk.layer = layer;
                pk.found_in = p.display().to_string();
                packages.push(pk);
            }
        }
    }
    for pk in packages.iter_mut() {
        pk.licenses = dpkg::licenses(top, &pk.name);
    }
    if let Some(p) = attributed(&ls, Path::new("/lib/apk/db/installed"), dpkg::parse_apk)? {
        dbs += 1;
        packages.extend(p);
    }
    for db in ["/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"] {
        if let Some(p) = attributed(&ls, Path::new(db), rpm::parse)? {
            dbs += 1;
            packages.extend(p);
        }
    }
    if dbs == 0 {
        packages.extend(binaries(top)?);
    }
    packages.extend(wasm::modules(store, img, &ls)?);
    for p in packages.iter_mut() {
        p.layer_digest = keys.get(p.layer).cloned().unwrap_or_default();
    }
    packages.sort_by(|a, b| (a.kind, &a.name, &a.arch).cmp(&(b.kind, &b.name, &b.arch)));
    packages.dedup_by(|a, b| a.kind == b.kind && a.name == b.name && a.arch == b.arch && a.version == b.version);
    Ok(Sbom {
        name: name.to_string(),
        digest: img.digest.to_string(),
        id: img.id.to_string(),
        distro,
        packages,
        layers: keys,
    })
}

/// The database at `path` parsed as the image stood after each layer that changed it, each
/// package attributed to the layer from which on it is listed at its final version. None
/// when the image has no such database.
fn attributed(
    ls: &Layers,
    path: &Path,
    parse: fn(&[u8]) -> std::result::Result<Vec<Package>, String>,
) -> Result<Option<Vec<Package>>> {
    // (name, arch) -> (version, layer)
    let mut seen: BTreeMap<(String, Option<String>), (String, usize)> = BTreeMap::new();
    let mut last: Option<usize> = None;
    let mut current: Vec<Package> = Vec::new();
    for upto in 1..=ls.len() {
        let v = ls.view(upto);
        let at = v.find(path)?.map(|f| f.layer);
        if at == last && at != Some(upto - 1) {
            continue;
        }
        last = at;
        let Some((layer, bytes)) = v.read(path, DB_CAP)? else {
            seen.clear();
            current.clear();
            continue;
        };
        current =
            parse(&bytes).map_err(|e| Error::invalid(format!("{} (layer {}): {e}", path.display(), layer + 1)))?;
        let mut next = BTreeMap::new();
        for p in &current {
            let k = (p.name.clone(), p.arch.clone());
            let l = match seen.get(&k) {
                Some((ver, l)) if *ver == p.version => *l,
                _ => layer,
            };
            next.insert(k, (p.version.clone(), l));
        }
        seen = next;
    }
    if last.is_none() {
        return Ok(None);
    }
    for p in current.iter_mut() {
        p.layer = seen.get(&(p.name.clone(), p.arch.clone())).map_or(0, |(_, l)| *l);
        p.found_in = path.display().to_string();
    }
    Ok(Some(current))
}

fn os_release(v: View<'_>) -> Result<Option<Distro>> {
    let mut text = None;
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        // An unreadable os-release (a directory, a FIFO) is no distribution, not an error.
        if let Ok(Some((_, b))) = v.read(Path::new(p), 1 << 16) {
            text = Some(String::from_utf8_lossy(&b).into_owned());
            break;
        }
    }
    let Some(text) = text else { return Ok(None) };
    let mut d = Distro::default();
    for line in text.lines() {
        let Some((k, val)) = line.split_once('=') else { continue };
        let val = val.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "ID" => d.id = val,
            "VERSION_ID" => d.version_id = Some(val),
            "PRETTY_NAME" => d.pretty_name = Some(val),
            _ => {}
        }
    }
    Ok((!d.id.is_empty()).then_some(d))
}

/// Static binaries known by their version string, for images with no package database.
fn binaries(v: View<'_>) -> Result<Vec<Package>> {
    let mut out = Vec::new();
    for path in ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox"] {
        let Some(f) = v.find(Path::new(path))? else { continue };
        if f.stat.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        let Some((layer, bytes)) = v.read(Path::new(path), BINARY_CAP)? else {
            continue;
        };
        if let Some(version) = version_after(&bytes, b"BusyBox v") {
            out.push(Package {
                kind: Kind::Binary,
                name: "busybox".into(),
                version,
                source: None,
                source_version: None,
                arch: None,
                licenses: vec!["GPL-2.0-only".into()],
                layer,
                layer_digest: String::new(),
                found_in: f.path.display().to_string(),
                extra: Vec::new(),
            });
            break;
        }
    }
    Ok(out)
}

/// The version (digits and dots) after the first `marker` in `bytes`.
fn version_after(bytes: &[u8], marker: &[u8]) -> Option<String> {
    let at = bytes.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let v: String = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .map(|&b| b as char)
        .collect();
    let v = v.trim_end_matches('.').to_string();
    (!v.is_empty() && v.as_bytes()[0].is_ascii_digit()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_versions_are_read_from_the_banner() {
        assert_eq!(
            version_after(b"\0BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call", b"BusyBox v"),
            Some("1.35.0".into())
        );
        assert_eq!(version_after(b"BusyBox v.", b"BusyBox v"), None);
        assert_eq!(version_after(b"nothing", b"BusyBox v"), None);
    }
}
