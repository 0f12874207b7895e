//! Shared helpers for wrun's criterion benches (`cargo bench -p wrun-benches`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A wasm guest built by `wasm-apps/build.sh`.
pub fn wasm_app(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../wasm-apps/target/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: run `make wasm-apps` first", p.display());
    p
}

/// The tests' busybox root filesystem (busybox-static and its ~400 applet links) under
/// `work/rootfs`, tarred as `work/busybox.tar`; returns the tar's path.
pub fn busybox_tar(work: &Path) -> PathBuf {
    let rootfs = work.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
    let list = Command::new("/usr/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
    }
    let tar = work.join("busybox.tar");
    let st = Command::new("tar")
        .args(["-C", rootfs.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(st.success());
    tar
}
