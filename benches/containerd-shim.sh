#!/usr/bin/env bash
# `ctr run --rm` through containerd-shim-wrun-v1 vs Debian's runc.v2 shim, in one run against
# one private containerd (runs interleaved: runc.v2, wrun native, wrun wasm, repeat), then the
# idle memory of each shim with N sleeping containers. Prints medians and per-shim RSS/PSS.
# The busybox image is the same for both shims; the wasm row runs wasm-apps' hello.
# usage: benches/containerd-shim.sh [RUNS] [IDLE_CONTAINERS]   (default 40 and 10); as root.
set -euo pipefail
runs=${1:-40}
idle=${2:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${WRUN_BIN_DIR:-$here/target/release}
for b in wrun containerd-shim-wrun-v1; do
  [ -x "$bin/$b" ] || { echo "containerd-shim: $bin/$b missing: cargo build --release first" >&2; exit 1; }
done
hello=$here/wasm-apps/target/wasm32-wasip1/release/hello.wasm
[ -f "$hello" ] || { echo "containerd-shim: $hello missing: bash wasm-apps/build.sh" >&2; exit 1; }
command -v containerd >/dev/null || { echo "containerd-shim: apt-get install containerd" >&2; exit 1; }

work=$(mktemp -d /tmp/wrun-shim-bench.XXXXXX)
ns=bench$$
ctr() { command ctr --address "$work/c.sock" -n "$ns" "$@"; }
cpid=
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -f "$work/containerd.log" ]; then
    echo "containerd-shim: failed; containerd's log kept in /tmp/wrun-shim-bench-containerd.log" >&2
    cp "$work/containerd.log" /tmp/wrun-shim-bench-containerd.log
  fi
  for id in $(ctr containers ls -q 2>/dev/null); do
    ctr task kill -s SIGKILL "$id" >/dev/null 2>&1; sleep 0.1
    ctr task rm -f "$id" >/dev/null 2>&1; ctr containers rm "$id" >/dev/null 2>&1
  done
  [ -n "$cpid" ] && kill "$cpid" && wait "$cpid" 2>/dev/null
  for d in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  rm -rf "$work" "/run/containerd/wrun/$ns"
  # The runc.v2 shim makes its namespace's state dir and never removes it.
  rmdir "/run/containerd/runc/$ns" 2>/dev/null
}
trap cleanup EXIT

cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/c.sock"
[ttrpc]
  address = "$work/c.sock.ttrpc"
TOML
PATH=$bin:$PATH containerd --log-level debug --config "$work/config.toml" >"$work/containerd.log" 2>&1 </dev/null &
cpid=$!
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done

WRUN=$bin/wrun "$here/tests/busybox-bundle.sh" "$work/bb" >/dev/null
bash "$here/shims/tests/oci-image.sh" "$work/bb/rootfs" "$work/bb.tar" wrun.test/busybox:1 '["sh"]'
mkdir -p "$work/w" && cp "$hello" "$work/w/hello.wasm"
bash "$here/shims/tests/oci-image.sh" "$work/w" "$work/w.tar" wrun.test/wasm:1 '["/hello.wasm"]' module.wasm.image/variant=compat
ctr images import "$work/bb.tar" >/dev/null
ctr images import "$work/w.tar" >/dev/null
mkdir -p "$work/fifo"

one() { # NAME RUNTIME IMAGE ARGS... -> appends milliseconds to $work/NAME
  local name=$1 rt=$2 img=$3; shift 3
  local t0 t1
  t0=$(date +%s%N)
  ctr run --rm --fifo-dir "$work/fifo" --runtime "$rt" "$img" "b-$name" "$@" </dev/null >/dev/null
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 )) >> "$work/$name"
}
# Warm-up (page cache, the wasm module cache), not counted.
one warm io.containerd.runc.v2 wrun.test/busybox:1 true
one warm io.containerd.wrun.v1 wrun.test/busybox:1 true
one warm io.containerd.wrun.v1 wrun.test/wasm:1 /hello.wasm
for _ in $(seq "$runs"); do
  one runc-v2 io.containerd.runc.v2 wrun.test/busybox:1 true
  one wrun-native io.containerd.wrun.v1 wrun.test/busybox:1 true
  one wrun-wasm io.containerd.wrun.v1 wrun.test/wasm:1 /hello.wasm
done
echo "ctr run --rm, $runs runs each, interleaved (median / min, ms):"
python3 - "$work" <<'PY'
import statistics, sys
w = sys.argv[1]
rows = {}
for n in ["runc-v2", "wrun-native", "wrun-wasm"]:
    v = [int(x) / 1000 for x in open(f"{w}/{n}")]
    rows[n] = statistics.median(v)
    print(f"  {n:12s} {rows[n]:7.1f}  {min(v):7.1f}")
print(f"  ratio wrun-native / runc-v2 = {rows['wrun-native'] / rows['runc-v2']:.2f}x")
print(f"  ratio wrun-wasm   / runc-v2 = {rows['wrun-wasm'] / rows['runc-v2']:.2f}x")
PY

kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/$3" 2>/dev/null || echo 0; }
idle_row() { # NAME RUNTIME SHIM_BINARY_NAME
  local name=$1 rt=$2 shim=$3 rss=0 pss=0 n=0 helpers=0
  for i in $(seq "$idle"); do
    ctr run -d --fifo-dir "$work/fifo" --runtime "$rt" wrun.test/busybox:1 "idle-$name-$i" sleep 1000 </dev/null >/dev/null
  done
  sleep 2
  for pid in $(pgrep -f "$shim -namespace $ns"); do
    rss=$((rss + $(kb "$pid" VmRSS status))); pss=$((pss + $(kb "$pid" Pss smaps_rollup))); n=$((n + 1))
    for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
      case $(cat /proc/"$c"/comm 2>/dev/null) in wrun) helpers=$((helpers + $(kb "$c" Pss smaps_rollup)));; esac
    done
  done
  echo "  $name: $n shims, RSS $((rss / n)) kB, PSS $((pss / n)) kB per shim; helper processes PSS $((helpers / n)) kB per container"
  for i in $(seq "$idle"); do
    ctr task kill -s SIGKILL "idle-$name-$i" >/dev/null 2>&1 || true
  done
  sleep 1
  for i in $(seq "$idle"); do
    ctr task rm -f "idle-$name-$i" >/dev/null 2>&1 || true; ctr containers rm "idle-$name-$i" >/dev/null 2>&1 || true
  done
}
echo "idle memory with $idle sleeping containers:"
idle_row runc-v2 io.containerd.runc.v2 containerd-shim-runc-v2
idle_row wrun io.containerd.wrun.v1 containerd-shim-wrun-v1
