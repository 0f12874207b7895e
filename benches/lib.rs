//! Shared helpers for wrun's criterion benches (`cargo bench -p wrun-benches`).

use std::path::PathBuf;

/// A wasm guest built by `wasm-apps/build.sh`.
pub fn wasm_app(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../wasm-apps/target/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(p.exists(), "{} is missing: run `make wasm-apps` first", p.display());
    p
}
