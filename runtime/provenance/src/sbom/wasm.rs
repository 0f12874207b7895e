//! A wasm module's own metadata: its custom sections, read without loading the module.
//!
//! - `name`: the module's own name (subsection 0; the package is named by its file, since
//!   rustc writes the hashed artifact name here);
//! - `producers`: the language, the tools that processed it and the SDK (rustc writes it);
//! - `version`, `licenses`, `source`, `revision`, `description`, `authors`, `homepage`:
//!   the sections `wasm-tools metadata add` writes (as OCI annotations are named).
//!
//! The module is an untrusted file: sections are skipped by their declared size, a custom
//! section read is capped, and a malformed module gives an error naming it.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use wrun_image::store::{oci, Image, Store};

use super::{Kind, Package};
use crate::layers::Layers;
use crate::{Error, Result};

/// The most of one custom section read.
const SECTION_CAP: u64 = 1 << 20;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: Option<String>,
    pub producers: Vec<(String, String)>,
    pub fields: Vec<(String, String)>,
}

fn leb(r: &mut impl Read) -> std::io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(std::io::Error::other("LEB128 number too long"))
}

fn string(r: &mut impl Read) -> std::io::Result<String> {
    let n = leb(r)?;
    if n > SECTION_CAP {
        return Err(std::io::Error::other("string longer than its section"));
    }
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|_| std::io::Error::other("string not UTF-8"))
}

/// The metadata of the module `f` (of `size` bytes).
pub fn read_meta(mut f: impl Read + Seek, size: u64) -> std::io::Result<Meta> {
    let mut head = [0u8; 8];
    f.read_exact(&mut head)?;
    if &head[..4] != b"\0asm" {
        return Err(std::io::Error::other("not a wasm binary (no \\0asm magic)"));
    }
    let mut m = Meta::default();
    let mut pos = 8u64;
    while pos < size {
        let mut id = [0u8];
        f.read_exact(&mut id)?;
        let len = leb(&mut f)?;
        let start = f.stream_position()?;
        let end = start
            .checked_add(len)
            .filter(|e| *e <= size)
            .ok_or_else(|| std::io::Error::other(format!("section at byte {pos} runs past the end")))?;
        if id[0] == 0 && len <= SECTION_CAP {
            let mut body = vec![0u8; len as usize];
            f.read_exact(&mut body)?;
            let mut c = std::io::Cursor::new(body.as_slice());
            if let Ok(name) = string(&mut c) {
                // A malformed custom section is ignored, as engines do.
                let _ = custom(&name, &mut c, &mut m);
            }
        }
        f.seek(SeekFrom::Start(end))?;
        pos = end;
    }
    Ok(m)
}

fn custom(name: &str, c: &mut std::io::Cursor<&[u8]>, m: &mut Meta) -> std::io::Result<()> {
    match name {
        "name" => {
            let mut kind = [0u8];
            c.read_exact(&mut kind)?;
            if kind[0] == 0 {
                let _ = leb(c)?;
                m.name = Some(string(c)?);
            }
        }
        "producers" => {
            for _ in 0..leb(c)?.min(64) {
                let field = string(c)?;
                for _ in 0..leb(c)?.min(256) {
                    let n = string(c)?;
                    let v = string(c)?;
                    m.producers
                        .push((field.clone(), if v.is_empty() { n } else { format!("{n} {v}") }));
                }
            }
        }
        "version" | "licenses" | "source" | "revision" | "description" | "authors" | "homepage" => {
            let mut s = String::new();
            c.read_to_string(&mut s)?;
            m.fields.push((name.to_string(), s.trim().to_string()));
        }
        _ => {}
    }
    Ok(())
}

/// The wasm modules of an image: its wasm layers, and the module a wasm image's entrypoint
/// names when it is a file of a tar layer.
pub fn modules(_store: &Store, img: &Image, ls: &Layers) -> Result<Vec<Package>> {
    let top = ls.top();
    let mut paths: Vec<(PathBuf, Option<usize>)> = Vec::new();
    for (i, l) in img.manifest.layers.iter().enumerate() {
        if oci::is_wasm_layer(&l.media_type) {
            paths.push((Path::new("/").join(wrun_image::archive::wasm_file_name(l)), Some(i)));
        }
    }
    let c = &img.config["config"];
    let first = c["Entrypoint"]
        .as_array()
        .and_then(|a| a.first())
        .or_else(|| c["Cmd"].as_array().and_then(|a| a.first()))
        .and_then(|v| v.as_str());
    if let Some(e) = first.filter(|e| e.ends_with(".wasm")) {
        let wd = c["WorkingDir"].as_str().unwrap_or("/");
        let p = Path::new("/").join(wd).join(e);
        if !paths.iter().any(|(q, _)| *q == p) {
            paths.push((p, None));
        }
    }
    let mut out = Vec::new();
    for (p, layer) in paths {
        let Some((at, file, size, shown)) = top.open(&p)? else {
            continue;
        };
        let meta = read_meta(std::io::BufReader::new(file), size)
            .map_err(|e| Error::invalid(format!("wasm module {} (layer {}): {e}", shown.display(), at + 1)))?;
        let field = |k: &str| meta.fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut extra: Vec<(String, String)> = meta
            .producers
            .iter()
            .map(|(k, v)| (format!("producers.{k}"), v.clone()))
            .collect();
        if let Some(n) = &meta.name {
            extra.push(("module-name".into(), n.clone()));
        }
        for k in ["source", "revision", "description", "authors", "homepage"] {
            if let Some(v) = field(k) {
                extra.push((k.to_string(), v));
            }
        }
        out.push(Package {
            kind: Kind::Wasm,
            name: stem,
            version: field("version").unwrap_or_default(),
            source: None,
            source_version: None,
            arch: Some("wasm32".into()),
            licenses: field("licenses").into_iter().collect(),
            layer: layer.unwrap_or(at),
            layer_digest: String::new(),
            found_in: shown.display().to_string(),
            extra,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, body: &[u8]) -> Vec<u8> {
        let mut payload = vec![name.len() as u8];
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(body);
        let mut s = vec![0u8, payload.len() as u8];
        s.extend(payload);
        s
    }

    #[test]
    fn producers_name_and_version_sections_are_read() {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        // A type section, skipped by its size.
        m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]);
        m.extend(section("name", &[0, 4, 3, b'a', b'p', b'p']));
        m.extend(section(
            "producers",
            &[
                1, 12, b'p', b'r', b'o', b'c', b'e', b's', b's', b'e', b'd', b'-', b'b', b'y', 1, 5, b'r', b'u', b's',
                b't', b'c', 4, b'1', b'.', b'9', b'5',
            ],
        ));
        m.extend(section("version", b"2.1.0"));
        let meta = read_meta(std::io::Cursor::new(&m), m.len() as u64).unwrap();
        assert_eq!(meta.name.as_deref(), Some("app"));
        assert_eq!(meta.producers, vec![("processed-by".into(), "rustc 1.95".into())]);
        assert_eq!(meta.fields, vec![("version".into(), "2.1.0".into())]);
        // A section that claims more than the file holds.
        let mut bad = b"\0asm\x01\0\0\0".to_vec();
        bad.extend_from_slice(&[1, 0x7f, 0]);
        assert!(read_meta(std::io::Cursor::new(&bad), bad.len() as u64).is_err());
        assert!(read_meta(std::io::Cursor::new(b"hello world!"), 12).is_err());
    }
}
