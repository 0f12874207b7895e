//! Link the `wrun` binary as a non-PIE executable: it carries wasmtime, and as a PIE its
//! ~45,000 dynamic relocations cost ~0.6 ms at every start of every `wrun` command (measured
//! with hyperfine on `wrun --version`); resolved at link time they cost nothing. The price is
//! that the binary's own code is not address-randomised, as for runc's statically linked Go
//! binary. The Makefile's release build also links it statically (see `release_wrun` there).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=wrun=-no-pie");
    }
    version_facts();
}

/// What `wrun --version` prints besides the package version, fixed at build time: the git
/// commit (`-dirty` with uncommitted changes; `unknown` outside a git checkout) and the
/// wasmtime version the lockfile pins.
fn version_facts() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c}-dirty")
        }
        Some(c) => c,
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=WRUN_GIT_COMMIT={commit}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for f in [".git/HEAD", ".git/index"] {
        if root.join(f).exists() {
            println!("cargo:rerun-if-changed={}", root.join(f).display());
        }
    }
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let wasmtime = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"wasmtime\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WRUN_WASMTIME_VERSION={wasmtime}");
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed=build.rs");
}
