//! Link the `wrun` binary as a non-PIE executable: it carries wasmtime, and as a PIE its
//! ~45,000 dynamic relocations cost ~0.6 ms at every start of every `wrun` command (measured
//! with hyperfine on `wrun --version`); resolved at link time they cost nothing. The price is
//! that the binary's own code is not address-randomised, as for runc's statically linked Go
//! binary. The Makefile's release build also links it statically (see `release_wrun` there).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=wrun=-no-pie");
    }
}
