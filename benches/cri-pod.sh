#!/usr/bin/env bash
# Issue #9's speed figures: the pod + container cycle through containerd's CRI plugin with
# wrun's shim vs runc.v2 (alternating, one private containerd), and the shim's memory for a
# two-container pod. Release builds; the measuring is shims/examples/cri-cycle.rs.
# usage: benches/cri-pod.sh [ROUNDS]   (default 20)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-20}
command -v containerd >/dev/null || { echo "cri-pod: containerd is not installed: skipped"; exit 0; }
for b in wrun containerd-shim-wrun-v1; do
  [ -x "$here/target/release/$b" ] || { echo "cri-pod: target/release/$b missing: run make build first" >&2; exit 1; }
done
cargo build --quiet --release -p containerd-shim-wrun --example cri-cycle
work=$(mktemp -d /tmp/wrun-cri-bench.XXXXXX)
# The runc.v2 shim makes /run/containerd/runc/k8s.io and never removes it: remove it after
# the run unless it was there before (then it may be someone else's).
runc_state=/run/containerd/runc/k8s.io
[ -d "$runc_state" ] && had_runc_state=1 || had_runc_state=
trap 'rm -rf "$work"; [ -n "$had_runc_state" ] || rmdir "$runc_state" 2>/dev/null' EXIT
WRUN=$here/target/release/wrun "$here/tests/busybox-bundle.sh" "$work/bb" true >/dev/null
"$here/target/release/examples/cri-cycle" --work "$work" --shim-dir "$here/target/release" \
  --busybox "$work/bb/rootfs" --guests "$here/wasm-apps/target" --rounds "$rounds"
