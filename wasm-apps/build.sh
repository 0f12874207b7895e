#!/usr/bin/env bash
# Build the guests: every crate for wasm32-wasip1 except hello-p2 and tcp-fetch, components
# for wasm32-wasip2 (they use wasi:sockets), plus the native twins of the CPU kernel (nbody)
# and of the syscall loop (syscalls) for the benches.
# Output: wasm-apps/target/wasm32-wasip{1,2}/release/*.wasm and wasm-apps/target/native/{nbody,syscalls}
# (static, so they run in a busybox rootfs without glibc).
# Needs the rustup targets wasm32-wasip1 and wasm32-wasip2 (.ci/deps adds them).
set -euo pipefail
cd "$(dirname "$0")"
# Always here, whatever CARGO_TARGET_DIR says: the tests and benches look in wasm-apps/target.
export CARGO_TARGET_DIR=$PWD/target
cargo build --quiet --release --target wasm32-wasip1 --workspace --exclude hello-p2 --exclude tcp-fetch
cargo build --quiet --release --target wasm32-wasip2 -p hello-p2 -p tcp-fetch
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release -p nbody -p syscalls --target "$host"
mkdir -p target/native
for twin in nbody syscalls; do cp "target/$host/release/$twin" "target/native/$twin"; done
