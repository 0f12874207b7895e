//! Tar archives written byte by byte, so a test can make the hostile entries a tar library
//! refuses to write (`..`, absolute paths, links out, truncated data), and the sha256 digests
//! of image content.

use serde_json::json;
use sha2::{Digest as _, Sha256};

/// What an entry is.
#[derive(Debug, Clone)]
pub enum EntryKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One entry, every header field under the test's control.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub name: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// `SCHILY.xattr.*` pax records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl TarEntry {
    pub fn new(name: &str, kind: EntryKind) -> TarEntry {
        let mode = match kind {
            EntryKind::Dir => 0o755,
            EntryKind::Symlink(_) => 0o777,
            _ => 0o644,
        };
        TarEntry {
            name: name.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Vec::new(),
        }
    }
}

/// An archive being written.
#[derive(Debug, Default, Clone)]
pub struct Tarball {
    buf: Vec<u8>,
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

impl Tarball {
    pub fn new() -> Tarball {
        Tarball::default()
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(TarEntry::new(name, EntryKind::File(data.to_vec())))
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(TarEntry::new(name, EntryKind::Dir))
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(TarEntry::new(name, EntryKind::Symlink(target.into())))
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(TarEntry::new(name, EntryKind::Hardlink(target.into())))
    }

    fn header(&mut self, name: &str, typeflag: u8, size: u64, e: &TarEntry, link: &str) {
        let mut h = [0u8; 512];
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "test tar names are short: {name} {link}"
        );
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], e.mode as u64);
        octal(&mut h[108..116], e.uid as u64);
        octal(&mut h[116..124], e.gid as u64);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], e.mtime);
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if let EntryKind::Char(ma, mi) | EntryKind::Block(ma, mi) = e.kind {
            octal(&mut h[329..337], ma as u64);
            octal(&mut h[337..345], mi as u64);
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| b as u64).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.buf.extend_from_slice(&h);
    }

    fn data(&mut self, d: &[u8]) {
        self.buf.extend_from_slice(d);
        let pad = (512 - d.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn entry(&mut self, e: TarEntry) -> &mut Self {
        if !e.xattrs.is_empty() {
            let mut recs = Vec::new();
            for (k, v) in &e.xattrs {
                let body_len = format!(" SCHILY.xattr.{k}=").len() + v.len() + 1;
                let mut len = body_len + 1;
                while len.to_string().len() + body_len != len {
                    len = len.to_string().len() + body_len;
                }
                recs.extend_from_slice(format!("{len} SCHILY.xattr.{k}=").as_bytes());
                recs.extend_from_slice(v);
                recs.push(b'\n');
            }
            let pax = TarEntry::new("", EntryKind::File(Vec::new()));
            self.header("PaxHeaders/x", b'x', recs.len() as u64, &pax, "");
            self.data(&recs);
        }
        match &e.kind {
            EntryKind::File(d) => {
                let d = d.clone();
                self.header(&e.name, b'0', d.len() as u64, &e, "");
                self.data(&d);
            }
            EntryKind::Dir => self.header(&e.name, b'5', 0, &e, ""),
            EntryKind::Symlink(t) => self.header(&e.name, b'2', 0, &e, &t.clone()),
            EntryKind::Hardlink(t) => self.header(&e.name, b'1', 0, &e, &t.clone()),
            EntryKind::Char(..) => self.header(&e.name, b'3', 0, &e, ""),
            EntryKind::Block(..) => self.header(&e.name, b'4', 0, &e, ""),
            EntryKind::Fifo => self.header(&e.name, b'6', 0, &e, ""),
        }
        self
    }

    /// A file entry whose header promises `claimed` bytes but whose data stops at `data`:
    /// the archive ends there (a truncated download).
    pub fn truncated_file(&mut self, name: &str, claimed: u64, data: &[u8]) -> Vec<u8> {
        let e = TarEntry::new(name, EntryKind::File(Vec::new()));
        self.header(name, b'0', claimed, &e, "");
        let mut out = self.buf.clone();
        out.extend_from_slice(data);
        out
    }

    /// The archive with its end marker.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let mut s = String::from("sha256:");
    for b in sum {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// An OCI archive (an image layout as a tar) of one manifest, named `name` in its index, with
/// `blobs` (the manifest's config and layers) beside it.
fn layout_archive(manifest: &serde_json::Value, blobs: &[&[u8]], name: &str) -> Vec<u8> {
    let manifest = serde_json::to_vec(manifest).unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(&manifest),
                       "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": name}}],
    }))
    .unwrap();
    let mut t = Tarball::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &index);
    t.dir("blobs").dir("blobs/sha256");
    for b in blobs.iter().copied().chain([manifest.as_slice()]) {
        t.file(&format!("blobs/sha256/{}", sha256(b).trim_start_matches("sha256:")), b);
    }
    t.finish()
}

/// An OCI archive holding a wasm artifact: config `application/vnd.wasm.config.v0+json`, one
/// `application/wasm` layer (the module), as wasm-to-oci tools push them.
pub fn wasm_artifact(module: &[u8], name: &str) -> Vec<u8> {
    let config =
        serde_json::to_vec(&json!({"architecture": "wasm", "os": "wasip1", "layerDigests": [sha256(module)]})).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.wasm.config.v0+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/wasm", "digest": sha256(module), "size": module.len(),
                    "annotations": {"org.opencontainers.image.title": "hello.wasm"}}],
    });
    layout_archive(&manifest, &[&config, module], name)
}

/// An OCI archive of one image: `layers` (uncompressed tars, bottom first) and the image
/// config `config` (its `rootfs` is filled in), named `name`. For images whose config says
/// what `wrun image import --change` cannot (a bare `Env` name, a hostile StopSignal).
pub fn image_archive(layers: &[Vec<u8>], mut config: serde_json::Value, name: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    if config.get("architecture").is_none() {
        config["architecture"] = json!("amd64");
        config["os"] = json!("linux");
    }
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(l), "size": l.len()
        })).collect::<Vec<_>>(),
    });
    let mut blobs: Vec<&[u8]> = vec![&config];
    blobs.extend(layers.iter().map(Vec::as_slice));
    layout_archive(&manifest, &blobs, name)
}
