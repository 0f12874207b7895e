#!/usr/bin/env bash
# The comparison harness of issue #7 (first increment): runs each workload under each
# configuration, alternating the configurations round by round, and writes
# target/bench-report/report.md plus one SVG bar chart of the medians per workload.
#   start-to-exit no-op: host /bin/true, wrun native, wrun wasm (exit 0), runc, crun
#   CPU-bound kernel:    nbody on the host, in a wrun native container, as wasm in wrun
#   create/start/delete: wrun and runc
# A missing runc/crun skips its rows with a note; a failing run marks its row failed (exit 1).
# usage: benches/report.sh [--quick] [--out DIR]   (--quick: 3 rounds, short nbody; CI uses it)
# WRUN=path picks the wrun binary (default target/release/wrun).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=30 steps=10000000 out=$here/target/bench-report
while [ $# -gt 0 ]; do
  case $1 in
    --quick) rounds=3 steps=200000 ;;
    --rounds) rounds=$2; shift ;;
    --steps) steps=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: benches/report.sh [--quick] [--rounds N] [--steps N] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
wrun=${WRUN:-$here/target/release/wrun}
apps=$here/wasm-apps/target
[ -x "$wrun" ] || { echo "report: $wrun missing: run make build first" >&2; exit 1; }
wrun=$(realpath "$wrun")  # the runs start in the bundles' dirs
for f in wasm32-wasip1/release/exit.wasm wasm32-wasip1/release/nbody.wasm native/nbody; do
  [ -f "$apps/$f" ] || { echo "report: $apps/$f missing: run make wasm-apps" >&2; exit 1; }
done
work=$(mktemp -d /tmp/wrun-report.XXXXXX)
cleanup() { # containers left by an interrupted run, then every file of the harness
  local root
  for root in "$work"/state-*; do
    [ -d "$root" ] || continue
    case $root in
      *-wrun) for id in $(ls "$root" 2>/dev/null); do "$wrun" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; done ;;
      *-runc) for id in $(ls "$root" 2>/dev/null); do runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true; done ;;
      *-crun) for id in $(ls "$root" 2>/dev/null); do unshare -m sh -c "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root $root delete --force $id" >/dev/null 2>&1 || true; done ;;
    esac
  done
  rm -rf "$work"
}
trap cleanup EXIT
bundle() { # DIR FILE ARGS...: a busybox bundle running ARGS, with FILE (if any) copied to /app
  local dir=$1 file=$2; shift 2
  WRUN=$wrun "$here/tests/busybox-bundle.sh" "$dir" "$@" >/dev/null
  if [ -n "$file" ]; then mkdir -p "$dir/rootfs/app" && cp "$file" "$dir/rootfs/app/"; fi
  python3 - "$dir/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["ociVersion"] = "1.0.2"  # runc 1.1 and crun 1.8 predate 1.3
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
}
bundle "$work/true" "" /bin/true
bundle "$work/exit-wasm" "$apps/wasm32-wasip1/release/exit.wasm" /app/exit.wasm 0
bundle "$work/nbody-native" "$apps/native/nbody" /app/nbody "$steps"
bundle "$work/nbody-wasm" "$apps/wasm32-wasip1/release/nbody.wasm" /app/nbody.wasm "$steps"
mkdir -p "$out"
WRUN_DATA_DIR=$work/data python3 "$here/benches/report.py" \
  --wrun "$wrun" --work "$work" --out "$out" --rounds "$rounds" --steps "$steps" \
  --host-nbody "$apps/native/nbody"
