//! dpkg's `status` and apk's `installed`: the two package databases of the images people run.

use std::path::Path;

use super::{Kind, Package};
use crate::layers::View;

/// One `Field: value` paragraph (continuation lines appended), fields in order.
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text (byte {})", e.valid_up_to()))
}

pub(super) fn package(kind: Kind, name: String, version: String) -> Package {
    Package {
        kind,
        name,
        version,
        source: None,
        source_version: None,
        arch: None,
        licenses: Vec::new(),
        layer: 0,
        layer_digest: String::new(),
        found_in: String::new(),
        extra: Vec::new(),
    }
}

/// The installed packages of a dpkg status file (or a status.d record): those whose
/// `Status` says `installed`, as `dpkg-query -W -f '${db:Status-Status}'` does.
pub fn parse(bytes: &[u8]) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for (n, para) in paragraphs(text(bytes)?).into_iter().enumerate() {
        let get = |k: &str| {
            para.iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let Some(name) = get("Package") else {
            return Err(format!("paragraph {} has no Package field", n + 1));
        };
        // status.d records have no Status: they are installed by being there.
        if let Some(s) = get("Status") {
            if s.split_whitespace().nth(2) != Some("installed") {
                continue;
            }
        }
        let Some(version) = get("Version") else {
            return Err(format!("package {name} has no Version"));
        };
        let mut p = package(Kind::Deb, name, version);
        p.arch = get("Architecture");
        if let Some(src) = get("Source") {
            // "Source: glibc (2.36-9+deb12u4)": the source's own version in parentheses.
            match src.split_once('(') {
                Some((s, v)) => {
                    p.source = Some(s.trim().to_string());
                    p.source_version = Some(v.trim_end_matches(')').trim().to_string());
                }
                None => p.source = Some(src.trim().to_string()),
            }
        }
        out.push(p);
    }
    Ok(out)
}

/// apk's `lib/apk/db/installed`: `P:` name, `V:` version, `A:` arch, `L:` license, `o:`
/// origin.
pub fn parse_apk(bytes: &[u8]) -> Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for (n, block) in text(bytes)?.split("\n\n").enumerate() {
        let mut f = std::collections::BTreeMap::new();
        for line in block.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.len() == 1 {
                    f.entry(k.to_string()).or_insert_with(|| v.to_string());
                }
            }
        }
        if f.is_empty() {
            continue;
        }
        let (Some(name), Some(version)) = (f.get("P"), f.get("V")) else {
            return Err(format!("entry {} has no P: or V: line", n + 1));
        };
        let mut p = package(Kind::Apk, name.clone(), version.clone());
        p.arch = f.get("A").cloned();
        p.source = f.get("o").filter(|o| *o != name).cloned();
        if let Some(l) = f.get("L") {
            p.licenses = vec![l.clone()];
        }
        out.push(p);
    }
    Ok(out)
}

/// The licenses a machine-readable (DEP-5) `/usr/share/doc/NAME/copyright` names, in the
/// order met; empty when there is none (Debian does not require the format).
pub fn licenses(v: View<'_>, name: &str) -> Vec<String> {
    let base = name.split(':').next().unwrap_or(name);
    if base.is_empty() || base.contains('/') || base.starts_with('.') {
        return Vec::new();
    }
    let p = Path::new("/usr/share/doc").join(base).join("copyright");
    let Ok(Some((_, bytes))) = v.read(&p, 1 << 20) else {
        return Vec::new();
    };
    let Ok(t) = std::str::from_utf8(&bytes) else {
        return Vec::new();
    };
    if !t.starts_with("Format:") {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for line in t.lines() {
        if let Some(rest) = line.strip_prefix("License:") {
            let l = rest.trim();
            if !l.is_empty() && !out.iter().any(|o| o == l) {
                out.push(l.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_installed_packages_count_and_the_source_version_is_split_out() {
        let s = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\n\
                 Version: 2.36-9+b1\nDescription: GNU C Library\n continued\n\n\
                 Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                 Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nArchitecture: amd64\n";
        let p = parse(s.as_bytes()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[0].advisory_name(), ("glibc", "2.36-9"));
        assert_eq!(p[1].advisory_name(), ("bash", "5.2.15-2+b2"));
        assert!(parse(b"Version: 1\n").unwrap_err().contains("no Package"));
        assert!(parse(b"Package: x\xff\n").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn apk_entries_give_name_version_origin_and_license() {
        let s = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:libcrypto3\nV:3.1.4-r1\nA:x86_64\nL:Apache-2.0\no:openssl\n\n";
        let p = parse_apk(s.as_bytes()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source, None);
        assert_eq!(p[1].advisory_name(), ("openssl", "3.1.4-r1"));
        assert_eq!(p[1].licenses, vec!["Apache-2.0".to_string()]);
    }
}
