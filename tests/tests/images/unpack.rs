//! Hostile layers, trick by trick: each is imported as a root filesystem tar, and nothing may
//! appear, change or be linked outside the layer directory. Where the unpacker cannot honour
//! an entry it refuses the import in one line and leaves nothing in the store.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

/// A host directory with one canary file, checked untouched at the end.
struct Host {
    dir: TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = TempDir::new("host-canary");
        fs::write(dir.join("canary"), b"host").unwrap();
        Host { dir }
    }

    fn path(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    #[track_caller]
    fn assert_untouched(&self) {
        assert_eq!(
            names(self.dir.path()),
            vec!["canary".to_string()],
            "something was written on the host"
        );
        let m = fs::metadata(self.dir.join("canary")).unwrap();
        assert_eq!(m.nlink(), 1, "the canary got a hard link");
        assert_eq!(fs::read(self.dir.join("canary")).unwrap(), b"host");
    }
}

/// Import `tar`; Ok(layer dir) when it was taken, Err(the one-line error) when refused (and
/// then the store is checked clean).
fn import(im: &Images, name: &str, tar: &[u8]) -> Result<PathBuf, String> {
    let f = im.write(&format!("{name}.tar"), tar);
    let o = im.import(&f, &["--name", &format!("hostile/{name}:1")]);
    if o.status.success() {
        return Ok(im.only_layer(&format!("hostile/{name}:1")));
    }
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    im.assert_clean(0);
    Err(e)
}

#[test]
fn dotdot_entries_are_refused_and_absolute_ones_stay_inside() {
    let Some(im) = Images::new() else { return };
    let host = Host::new();
    let climb = format!("../../../../../../..{}/dotdot", host.path());
    let e = import(&im, "dotdot", &Tarball::new().file(&climb, b"x").finish()).unwrap_err();
    assert!(e.contains("climbs out of the layer"), "{e}");
    let abs = format!("{}/abs", host.path());
    let layer = import(&im, "abs", &Tarball::new().file(&abs, b"inside").finish()).unwrap();
    assert_eq!(fs::read(layer.join(abs.trim_start_matches('/'))).unwrap(), b"inside");
    host.assert_untouched();
}

#[test]
fn a_symlink_out_and_a_file_through_it_land_inside_the_layer_or_are_refused() {
    let Some(im) = Images::new() else { return };
    let host = Host::new();
    for (i, target) in [host.path(), format!("../../../../../../..{}", host.path())]
        .iter()
        .enumerate()
    {
        let mut t = Tarball::new();
        t.symlink("evil", target)
            .file("evil/pwned", b"x")
            .file("evil/canary", b"overwritten");
        match import(&im, &format!("symdir{i}"), &t.finish()) {
            Ok(layer) => {
                let l = fs::symlink_metadata(layer.join("evil")).unwrap();
                assert!(l.file_type().is_symlink() || l.is_dir(), "evil stays in the layer");
            }
            Err(e) => assert!(e.contains("evil/pwned"), "{e}"),
        }
        host.assert_untouched();
    }
    // A file entry over a symlink replaces the link; it never writes through it.
    let mut t = Tarball::new();
    t.symlink("link", &format!("{}/canary", host.path()))
        .file("link", b"replaced");
    let layer = import(&im, "overlink", &t.finish()).unwrap();
    assert!(fs::symlink_metadata(layer.join("link")).unwrap().is_file());
    host.assert_untouched();
}

#[test]
fn hardlinks_can_only_name_files_of_the_layer() {
    let Some(im) = Images::new() else { return };
    let host = Host::new();
    let canary = format!("{}/canary", host.path());
    // An absolute target is a path inside the layer, where there is no such file.
    let e = import(&im, "hl-abs", &Tarball::new().hardlink("h", &canary).finish()).unwrap_err();
    assert!(e.contains("hardlink"), "{e}");
    let e = import(
        &im,
        "hl-climb",
        &Tarball::new()
            .hardlink("h", &format!("../../../../..{canary}"))
            .finish(),
    )
    .unwrap_err();
    assert!(e.contains("climbs out"), "{e}");
    // Through a symlinked directory: the directory is resolved inside the layer too.
    let mut t = Tarball::new();
    t.symlink("d", host.path().as_str()).hardlink("h", "d/canary");
    assert!(import(&im, "hl-via", &t.finish()).is_err());
    // A link to a symlink links the symlink, not what it points to.
    let mut t = Tarball::new();
    t.symlink("s", &canary).hardlink("h", "s");
    let layer = import(&im, "hl-sym", &t.finish()).unwrap();
    assert!(fs::symlink_metadata(layer.join("h")).unwrap().file_type().is_symlink());
    host.assert_untouched();
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

#[test]
fn whiteouts_become_overlayfs_whiteouts_and_metadata_is_kept() {
    let Some(im) = Images::new() else { return };
    let mut t = Tarball::new();
    t.dir("etc")
        .file("etc/.wh.shadow", b"")
        .dir("opaque")
        .file("opaque/.wh..wh..opq", b"");
    t.file("opaque/kept", b"k");
    let mut suid = TarEntry::new("bin/su", EntryKind::File(b"#!/bin/sh\n".to_vec()));
    suid.mode = 0o4755;
    suid.uid = 1000;
    suid.gid = 1001;
    suid.xattrs = vec![
        ("user.wrun.test".into(), b"kept".to_vec()),
        ("trusted.overlay.redirect".into(), b"/etc".to_vec()),
        ("trusted.wrun.test".into(), b"host-only".to_vec()),
    ];
    t.entry(suid);
    t.entry(TarEntry::new("dev/sda", EntryKind::Block(8, 0)));
    t.entry(TarEntry::new("dev/null", EntryKind::Char(1, 3)));
    t.entry(TarEntry::new("run/fifo", EntryKind::Fifo));
    let layer = import(&im, "meta", &t.finish()).unwrap();
    let wh = fs::symlink_metadata(layer.join("etc/shadow")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "a whiteout is a 0:0 char device"
    );
    assert!(!layer.join("etc/.wh.shadow").exists());
    assert_eq!(
        xattr(&layer.join("opaque"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(layer.join("opaque/kept").exists() && !layer.join("opaque/.wh..wh..opq").exists());
    let su = fs::metadata(layer.join("bin/su")).unwrap();
    assert_eq!(
        (su.mode() & 0o7777, su.uid(), su.gid()),
        (0o4755, 1000, 1001),
        "setuid and owner kept"
    );
    assert_eq!(
        xattr(&layer.join("bin/su"), "user.wrun.test").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        xattr(&layer.join("bin/su"), "trusted.overlay.redirect"),
        None,
        "overlay xattrs are not taken from a layer"
    );
    assert_eq!(
        xattr(&layer.join("bin/su"), "trusted.wrun.test"),
        None,
        "only user.* and security.capability are"
    );
    let sda = fs::symlink_metadata(layer.join("dev/sda")).unwrap();
    assert!(sda.file_type().is_block_device() && sda.rdev() == libc::makedev(8, 0));
    assert!(fs::symlink_metadata(layer.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::metadata(layer.join("bin/su")).unwrap().mtime(), 1_700_000_000);
}

#[test]
fn truncated_and_corrupt_archives_are_refused_and_leave_nothing() {
    let Some(im) = Images::new() else { return };
    let mut t = Tarball::new();
    t.file("a", b"fine");
    let cut = t.truncated_file("big", 1 << 20, b"only this");
    let e = import(&im, "truncated", &cut).unwrap_err();
    assert!(e.contains("truncated") || e.contains("corrupt"), "{e}");
    let e = import(&im, "garbage", &[0x42u8; 2000]).unwrap_err();
    assert!(e.contains("tar"), "{e}");
    // A gzip stream cut in the middle.
    let gz = {
        let f = im.write("whole.tar", &Tarball::new().file("x", &[7u8; 100_000]).finish());
        let o = run_cmd(Command::new("gzip").args(["-k", "-f", f.to_str().unwrap()]), None);
        assert_ok(&o, "gzip");
        let mut b = fs::read(im.work.join("whole.tar.gz")).unwrap();
        b.truncate(b.len() / 2);
        b
    };
    let e = import(&im, "cut-gzip", &gz).unwrap_err();
    assert!(e.contains("layer") || e.contains("tar"), "{e}");
}

#[test]
fn an_archive_cannot_write_through_its_own_symlinks_or_open_devices() {
    let Some(im) = Images::new() else { return };
    let host = Host::new();
    // docker save: the config's and the blobs' paths lead to the host through symlinks.
    let mut t = Tarball::new();
    t.file("manifest.json", br#"[{"Config":"c.json","Layers":["l.tar"]}]"#);
    t.file("c.json", b"* * * * * root echo owned");
    t.symlink("blobs", &host.path());
    t.symlink("l.tar", &format!("{}/canary", host.path()));
    let e = im.fails(&["import", im.write("evil-save.tar", &t.finish()).to_str().unwrap()]);
    assert!(e.contains("archive entry") || e.contains("c.json"), "{e}");
    host.assert_untouched();
    im.assert_clean(0);
    // OCI: index.json a symlink to a host file, and manifests that are a FIFO and a device.
    for (name, entry) in [
        (
            "sym",
            TarEntry::new("index.json", EntryKind::Symlink(format!("{}/canary", host.path()))),
        ),
        ("fifo", TarEntry::new("index.json", EntryKind::Fifo)),
        ("zero", TarEntry::new("index.json", EntryKind::Char(1, 5))),
    ] {
        let mut t = Tarball::new();
        t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).entry(entry);
        let f = im.write(&format!("evil-{name}.tar"), &t.finish());
        let t0 = std::time::Instant::now();
        let e = im.fails(&["import", f.to_str().unwrap()]);
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "{name}: the import hung"
        );
        assert!(e.contains("index.json"), "{name}: {e}");
        host.assert_untouched();
        im.assert_clean(0);
    }
}

#[test]
fn a_pax_header_of_64_mib_is_refused_before_it_is_read_into_memory() {
    let Some(im) = Images::new() else { return };
    // 64 MiB of zeros as pax records: 64 KiB gzipped, and the tar crate would read it whole.
    let mut t = Tarball::new();
    let pax = TarEntry::new("PaxHeaders/x", EntryKind::File(vec![0u8; 64 << 20]));
    t.entry(pax);
    let mut raw = t.finish();
    raw[156] = b'x';
    // The checksum field covers the type flag: recompute it.
    raw[148..156].copy_from_slice(b"        ");
    let sum: u64 = raw[..512].iter().map(|&b| b as u64).sum();
    raw[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let f = im.write("pax-bomb.tar", &raw);
    let o = run_cmd(Command::new("gzip").args(["-f", f.to_str().unwrap()]), None);
    assert_ok(&o, "gzip");
    let gz = im.work.join("pax-bomb.tar.gz");
    assert!(fs::metadata(&gz).unwrap().len() < 1 << 20);
    let e = im.fails(&["import", gz.to_str().unwrap(), "--name", "bomb:1"]);
    assert!(e.contains("metadata entry") && e.contains("more than 1048576"), "{e}");
    im.assert_clean(0);
}
