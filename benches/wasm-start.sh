#!/usr/bin/env bash
# Wasm vs native, side by side in one hyperfine run each (not a test):
#  1. start-to-exit: `wrun run` of the wasm hello bundle (compiled module cached) vs
#     `wrun run` of a native busybox /bin/true bundle; the issue's target is wasm <= 1.5x;
#  2. the compiled-module cache: `wrun run` of hello with a warm cache vs with the cache
#     emptied before every run (a compile each time);
#  3. the same CPU-bound code (wasm-apps/nbody) as a native and as a wasm container.
# Prints medians and ratios. usage: benches/wasm-start.sh [RUNS]   (default 100)
set -euo pipefail
runs=${1:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=${WRUN:-$here/target/release/wrun}
apps=$here/wasm-apps/target
[ -x "$wrun" ] || { echo "wasm-start: $wrun missing: run cargo build --release first" >&2; exit 1; }
[ -f "$apps/wasm32-wasip1/release/hello.wasm" ] || { echo "wasm-start: guests missing: run make wasm-apps" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "wasm-start: hyperfine missing (apt-get install hyperfine)" >&2; exit 1; }
work=$(mktemp -d /tmp/wrun-wasm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export WRUN_DATA_DIR=$work/data
bundle() { # DIR ARGS...: a busybox bundle running ARGS
  local dir=$1; shift
  WRUN=$wrun "$here/tests/busybox-bundle.sh" "$dir" "$@" >/dev/null
}
bundle "$work/native" /bin/true
bundle "$work/wasm" /app/hello.wasm
mkdir -p "$work/wasm/rootfs/app" && cp "$apps/wasm32-wasip1/release/hello.wasm" "$work/wasm/rootfs/app/"
bundle "$work/nbody-native" /app/nbody 20000000
mkdir -p "$work/nbody-native/rootfs/app" && cp "$apps/native/nbody" "$work/nbody-native/rootfs/app/"
bundle "$work/nbody-wasm" /app/nbody.wasm 20000000
mkdir -p "$work/nbody-wasm/rootfs/app" && cp "$apps/wasm32-wasip1/release/nbody.wasm" "$work/nbody-wasm/rootfs/app/"
r="$wrun --root $work/state"
"$wrun" --root "$work/state" run --bundle "$work/wasm" warm >/dev/null  # fill the cache

report() { # JSON NAME_A NAME_B
  python3 - "$@" <<'PY'
import json, statistics, sys
rs = {r["command"]: r["times"] for r in json.load(open(sys.argv[1]))["results"]}
med = {k: statistics.median(v) * 1000 for k, v in rs.items()}
for k, v in rs.items():
    print(f"  {k:<24} median {med[k]:8.2f} ms   min {min(v)*1000:8.2f}   max {max(v)*1000:8.2f}")
a, b = sys.argv[2], sys.argv[3]
print(f"  ratio {a} / {b}: {med[a] / med[b]:.2f}")
PY
}

echo "== start to exit: wasm hello (cached) vs native /bin/true, $runs runs each"
hyperfine -N --style none -w 5 -r "$runs" --export-json "$work/start.json" \
  -n wasm-hello "$r run --bundle $work/wasm b1" \
  -n native-true "$r run --bundle $work/native b2" >/dev/null
report "$work/start.json" wasm-hello native-true

echo "== compiled-module cache: hit vs miss (cache emptied before each miss run)"
hyperfine -N --style none -w 2 -r "$(( runs / 4 > 5 ? runs / 4 : 5 ))" --export-json "$work/cache.json" \
  --prepare true --prepare "rm -rf $WRUN_DATA_DIR/wasm-cache" \
  -n cache-hit "$r run --bundle $work/wasm c1" \
  -n cache-miss "$r run --bundle $work/wasm c2" >/dev/null
report "$work/cache.json" cache-miss cache-hit

echo "== the same CPU-bound kernel (nbody, 20M steps) native vs wasm, in containers"
hyperfine -N --style none -w 1 -r 3 --export-json "$work/nbody.json" \
  -n nbody-wasm "$r run --bundle $work/nbody-wasm n1" \
  -n nbody-native "$r run --bundle $work/nbody-native n2" >/dev/null
report "$work/nbody.json" nbody-wasm nbody-native
