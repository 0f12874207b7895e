//! Works inside its preopens (write, read back, list), then tries to reach a file that lies
//! outside the container's root, by `..`, by absolute paths and through symlinks it plants.
//! Every escape must fail. Prints one line per attempt; exits 0 only if the work inside
//! succeeded and every escape was blocked.
//!
//! usage: fs NAME   (NAME: a file the test put next to the rootfs, outside it)

use std::ffi::CString;
use std::fs;

extern "C" {
    /// wasi-libc's symlink(2) (std's wrapper is unstable on wasi).
    fn symlink(target: *const std::ffi::c_char, link: *const std::ffi::c_char) -> i32;
}

fn symlink_path(target: &str, link: &str) -> std::io::Result<()> {
    let (t, l) = (CString::new(target)?, CString::new(link)?);
    // SAFETY: two NUL-terminated strings that outlive the call.
    if unsafe { symlink(t.as_ptr(), l.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "secret".into());
    let mut ok = true;

    let inside = "/tmp/fs-inside.txt";
    match fs::write(inside, b"inside").and_then(|()| fs::read(inside)) {
        Ok(b) if b == b"inside" => println!("inside: write+read {inside}: ok"),
        Ok(_) => {
            println!("inside: {inside}: read back other bytes");
            ok = false;
        }
        Err(e) => {
            println!("inside: write+read {inside}: {e}");
            ok = false;
        }
    }
    match fs::read_dir("/") {
        Ok(d) => println!("inside: / has {} entries", d.count()),
        Err(e) => {
            println!("inside: list /: {e}");
            ok = false;
        }
    }

    // Symlinks planted inside the preopen that point up and out.
    let links = [
        ("/tmp/up-rel", "../../.."),
        ("/tmp/up-abs", "/.."),
        ("/tmp/root-abs", "/"),
    ];
    for (link, target) in links {
        let _ = fs::remove_file(link);
        if let Err(e) = symlink_path(target, link) {
            println!("plant symlink {link} -> {target}: {e}");
        }
    }

    let reads = [
        format!("../{name}"),
        format!("../../../../{name}"),
        format!("/../{name}"),
        format!("/../../../{name}"),
        format!("/tmp/../../{name}"),
        format!("/tmp/up-rel/{name}"),
        format!("/tmp/up-abs/{name}"),
        format!("/tmp/root-abs/../{name}"),
        // Symlinks the image itself may carry (the test plants them on the host side).
        format!("/host-up/{name}"),
        format!("/host-abs/../{name}"),
    ];
    let mut escapes = 0;
    let mut blocked = 0;
    for p in &reads {
        escapes += 1;
        match fs::read(p) {
            Ok(b) => {
                println!("escape read {p}: ESCAPED ({} bytes)", b.len());
                ok = false;
            }
            Err(e) => {
                blocked += 1;
                println!("escape read {p}: blocked ({e})");
            }
        }
    }
    let writes = [
        "/../fs-escape-file".to_string(),
        "../fs-escape-file".to_string(),
        "/tmp/up-rel/fs-escape-file".to_string(),
    ];
    for p in &writes {
        escapes += 1;
        match fs::write(p, b"escaped") {
            Ok(()) => {
                println!("escape write {p}: ESCAPED");
                ok = false;
            }
            Err(e) => {
                blocked += 1;
                println!("escape write {p}: blocked ({e})");
            }
        }
    }
    println!("fs: {blocked} of {escapes} escapes blocked");
    std::process::exit(if ok { 0 } else { 1 });
}
