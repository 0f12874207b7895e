//! An SBOM written as a table, SPDX 2.3 JSON or CycloneDX 1.5 JSON.
//!
//! Both documents name each package by its package URL (`pkg:deb/debian/bash@5.2.15-2%2Bb2?
//! arch=amd64&distro=debian-12`), record the layer it came from (SPDX: `sourceInfo`;
//! CycloneDX: the `wrun:layer` property) and its licenses: Debian's short names mapped to SPDX
//! identifiers where one exists, the rest as `LicenseRef-` (SPDX, defined in the document) or
//! as a license name (CycloneDX). Documents are deterministic for one image apart from their
//! creation time, which follows `SOURCE_DATE_EPOCH` when set.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{Kind, Package, Sbom};

/// Debian's short license names and their SPDX identifiers.
const DEBIAN_TO_SPDX: &[(&str, &str)] = &[
    ("GPL-1", "GPL-1.0-only"),
    ("GPL-1+", "GPL-1.0-or-later"),
    ("GPL-2", "GPL-2.0-only"),
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-3", "GPL-3.0-only"),
    ("GPL-3+", "GPL-3.0-or-later"),
    ("LGPL-2", "LGPL-2.0-only"),
    ("LGPL-2+", "LGPL-2.0-or-later"),
    ("LGPL-2.1", "LGPL-2.1-only"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-3", "LGPL-3.0-only"),
    ("LGPL-3+", "LGPL-3.0-or-later"),
    ("AGPL-3", "AGPL-3.0-only"),
    ("AGPL-3+", "AGPL-3.0-or-later"),
    ("GFDL-1.3+", "GFDL-1.3-or-later"),
    ("BSD-2-clause", "BSD-2-Clause"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("BSD-4-clause", "BSD-4-Clause"),
    ("Expat", "MIT"),
    ("Apache-2", "Apache-2.0"),
    ("MPL-1.1", "MPL-1.1"),
    ("MPL-2.0", "MPL-2.0"),
    ("Artistic", "Artistic-1.0-Perl"),
    ("zlib", "Zlib"),
    ("PSF-2", "PSF-2.0"),
    ("CC0", "CC0-1.0"),
];

/// SPDX identifiers met as they are written (apk records SPDX expressions).
const SPDX_IDS: &[&str] = &[
    "0BSD",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-2.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "curl",
    "GFDL-1.3-or-later",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "GPL-2.0",
    "GPL-3.0",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "OpenSSL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Unlicense",
    "X11",
    "Zlib",
    "bzip2-1.0.6",
    "OLDAP-2.8",
    "Sleepycat",
    "GCC-exception-3.1",
    "Autoconf-exception-3.0",
    "Classpath-exception-2.0",
    "LLVM-exception",
];

/// `l` as an SPDX identifier: known as is, mapped from Debian's name, or None.
fn spdx_id(l: &str) -> Option<&'static str> {
    SPDX_IDS
        .iter()
        .find(|i| i.eq_ignore_ascii_case(l))
        .copied()
        .or_else(|| {
            DEBIAN_TO_SPDX
                .iter()
                .find(|(d, _)| d.eq_ignore_ascii_case(l))
                .map(|(_, s)| *s)
        })
}

fn license_ref(l: &str) -> String {
    let s: String = l
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("LicenseRef-{s}")
}

/// A recorded license (one name or an expression) as an SPDX expression; the LicenseRefs it
/// needed are added to `refs`.
fn expression(l: &str, refs: &mut Vec<(String, String)>) -> String {
    // Debian's "GPL-3+ with Bison exception" names an exception SPDX has no id for: the
    // whole text is one license of its own.
    if l.contains(" with ") {
        let r = license_ref(l);
        if !refs.iter().any(|(id, _)| *id == r) {
            refs.push((r.clone(), l.to_string()));
        }
        return r;
    }
    let spaced = l.replace('(', " ( ").replace(')', " ) ");
    let mut out = Vec::new();
    for tok in spaced.split_whitespace() {
        let t = match tok {
            "(" | ")" | "AND" | "OR" | "WITH" => tok.to_string(),
            "and" | "&" => "AND".into(),
            "or" | "|" => "OR".into(),
            _ => match spdx_id(tok) {
                Some(id) => id.to_string(),
                None => {
                    let r = license_ref(tok);
                    if !refs.iter().any(|(id, _)| *id == r) {
                        refs.push((r.clone(), tok.to_string()));
                    }
                    r
                }
            },
        };
        out.push(t);
    }
    out.join(" ").replace("( ", "(").replace(" )", ")")
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The package URL of `p` in an image of `distro` (`debian-12`).
pub fn purl(p: &Package, distro: Option<&str>) -> String {
    let (ty, ns) = match p.kind {
        Kind::Deb => ("deb", Some(distro_ns(distro, "debian"))),
        Kind::Apk => ("apk", Some(distro_ns(distro, "alpine"))),
        Kind::Rpm => ("rpm", Some(distro_ns(distro, "redhat"))),
        Kind::Binary | Kind::Wasm => ("generic", None),
    };
    let mut s = format!("pkg:{ty}/");
    if let Some(ns) = ns {
        s.push_str(&pct(&ns));
        s.push('/');
    }
    s.push_str(&pct(&p.name));
    if !p.version.is_empty() {
        s.push('@');
        s.push_str(&pct(&p.version));
    }
    let mut q = Vec::new();
    if let Some(a) = &p.arch {
        q.push(format!("arch={}", pct(a)));
    }
    if let (Some(d), Kind::Deb | Kind::Apk | Kind::Rpm) = (distro, p.kind) {
        q.push(format!("distro={}", pct(d)));
    }
    if let (Some(src), Kind::Deb) = (&p.source, p.kind) {
        let v = p.source_version.as_deref().unwrap_or(&p.version);
        q.push(format!("upstream={}", pct(&format!("{src}@{v}"))));
    }
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

fn distro_ns(distro: Option<&str>, fallback: &str) -> String {
    distro
        .and_then(|d| d.split('-').next())
        .filter(|d| !d.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// `debian-12`, `alpine-3.19.1`: the distro qualifier of package URLs.
fn distro_tag(s: &Sbom) -> Option<String> {
    s.distro.as_ref().map(|d| match &d.version_id {
        Some(v) => format!("{}-{v}", d.id),
        None => d.id.clone(),
    })
}

fn created() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    wrun_sys::timefmt::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64))
        .replace(".000000000Z", "Z")
}

/// A stable id made of `parts`, hex.
fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

fn layer_note(p: &Package) -> String {
    format!("layer {} ({}), from {}", p.layer + 1, p.layer_digest, p.found_in)
}

pub fn spdx(s: &Sbom) -> Value {
    let distro = distro_tag(s);
    let mut refs: Vec<(String, String)> = Vec::new();
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": s.name,
        "versionInfo": s.digest,
        "downloadLocation": "NOASSERTION",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:oci/{}@{}", pct(s.name.rsplit('/').next().unwrap_or(&s.name).split(':').next().unwrap_or("")), pct(&s.digest)),
        }],
    })];
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image",
    })];
    for p in &s.packages {
        let purl = purl(p, distro.as_deref());
        let id = format!(
            "SPDXRef-Package-{}-{}",
            p.kind.as_str(),
            &hash(&[&purl, &p.found_in])[..16]
        );
        let declared = if p.licenses.is_empty() {
            "NOASSERTION".to_string()
        } else {
            let e: Vec<String> = p.licenses.iter().map(|l| expression(l, &mut refs)).collect();
            if e.len() == 1 {
                e[0].clone()
            } else {
                e.iter().map(|x| format!("({x})")).collect::<Vec<_>>().join(" AND ")
            }
        };
        let mut v = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
            "copyrightText": "NOASSERTION",
            "sourceInfo": layer_note(p),
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}],
        });
        if let Some(src) = &p.source {
            v["comment"] = json!(format!(
                "source package {src} {}",
                p.source_version.as_deref().unwrap_or(&p.version)
            ));
        }
        if !p.extra.is_empty() {
            let notes: Vec<String> = p.extra.iter().map(|(k, x)| format!("{k}: {x}")).collect();
            v["comment"] = json!(notes.join("; "));
        }
        packages.push(v);
        rels.push(json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": s.name,
        "documentNamespace": format!("https://wrun.invalid/spdx/{}/{}", pct(&s.name), s.digest.trim_start_matches("sha256:")),
        "creationInfo": {
            "created": created(),
            "creators": [format!("Tool: wrun-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": rels,
    });
    if !refs.is_empty() {
        doc["hasExtractedLicensingInfos"] = refs
            .iter()
            .map(|(id, text)| json!({"licenseId": id, "extractedText": text, "name": text}))
            .collect();
    }
    doc
}

pub fn cyclonedx(s: &Sbom) -> Value {
    let distro = distro_tag(s);
    let h = hash(&[&s.digest, "cyclonedx"]);
    let serial = format!(
        "urn:uuid:{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    );
    let components: Vec<Value> = s
        .packages
        .iter()
        .map(|p| {
            let purl = purl(p, distro.as_deref());
            let licenses: Vec<Value> = p
                .licenses
                .iter()
                .map(|l| match spdx_id(l) {
                    Some(id) => json!({"license": {"id": id}}),
                    None => json!({"license": {"name": l}}),
                })
                .collect();
            let mut props = vec![
                json!({"name": "wrun:layer", "value": p.layer_digest}),
                json!({"name": "wrun:layerIndex", "value": (p.layer + 1).to_string()}),
                json!({"name": "wrun:location", "value": p.found_in}),
            ];
            if let Some(src) = &p.source {
                props.push(json!({"name": "wrun:sourcePackage", "value": src}));
                props.push(
                    json!({"name": "wrun:sourceVersion", "value": p.source_version.as_deref().unwrap_or(&p.version)}),
                );
            }
            for (k, v) in &p.extra {
                props.push(json!({"name": format!("wrun:{k}"), "value": v}));
            }
            let mut c = json!({
                "type": if matches!(p.kind, Kind::Binary | Kind::Wasm) { "application" } else { "library" },
                "bom-ref": format!("{purl}&layer={}", p.layer + 1),
                "name": p.name,
                "version": p.version,
                "purl": purl,
                "properties": props,
            });
            if !licenses.is_empty() {
                c["licenses"] = json!(licenses);
            }
            c
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": created(),
            "tools": {"components": [{"type": "application", "name": "wrun", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "type": "container",
                "bom-ref": s.digest,
                "name": s.name,
                "version": s.digest,
                "properties": [{"name": "wrun:imageID", "value": s.id}],
            },
        },
        "components": components,
    })
}

pub fn table(s: &Sbom) -> String {
    let name_w = s.packages.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4) + 2;
    let ver_w = s.packages.iter().map(|p| p.version.len()).max().unwrap_or(7).max(7) + 2;
    let mut out = format!("{:<name_w$}{:<ver_w$}{:<8}LAYER\n", "NAME", "VERSION", "TYPE");
    for p in &s.packages {
        let d = p.layer_digest.trim_start_matches("sha256:");
        out.push_str(&format!(
            "{:<name_w$}{:<ver_w$}{:<8}{} {}\n",
            p.name,
            p.version,
            p.kind.as_str(),
            p.layer + 1,
            &d[..d.len().min(12)]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_names_map_to_spdx_and_the_rest_become_license_refs() {
        let mut refs = Vec::new();
        assert_eq!(expression("GPL-2+", &mut refs), "GPL-2.0-or-later");
        assert_eq!(
            expression("MIT AND (BSD-3-clause OR custom)", &mut refs),
            "MIT AND (BSD-3-Clause OR LicenseRef-custom)"
        );
        assert_eq!(expression("public-domain", &mut refs), "LicenseRef-public-domain");
        assert_eq!(
            expression("GPL-3+ with Bison exception", &mut refs),
            "LicenseRef-GPL-3--with-Bison-exception"
        );
        assert_eq!(refs.len(), 3);
    }

    #[test]
    fn package_urls_encode_epochs_and_plus_signs() {
        let p = Package {
            kind: Kind::Deb,
            name: "libc6".into(),
            version: "1:2.36-9+b1".into(),
            source: Some("glibc".into()),
            source_version: Some("2.36-9".into()),
            arch: Some("amd64".into()),
            licenses: vec![],
            layer: 0,
            layer_digest: String::new(),
            found_in: String::new(),
            extra: vec![],
        };
        assert_eq!(
            purl(&p, Some("debian-12")),
            "pkg:deb/debian/libc6@1%3A2.36-9%2Bb1?arch=amd64&distro=debian-12&upstream=glibc%402.36-9"
        );
    }
}
