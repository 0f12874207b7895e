#!/usr/bin/env bash
# The README's demo: a native busybox container through the runc-style lifecycle, then a
# wasm container (wasm-apps/hello) in the same kind of sandbox, compiled on its first start
# and loaded from the compiled-module cache on the second.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=$here/target/release/wrun
work=$(mktemp -d /tmp/wrun-demo.XXXXXX)
root=$work/state
cleanup() { "$wrun" --root "$root" delete --force demo-sleeper >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
WRUN=$wrun "$here/tests/busybox-bundle.sh" "$work/bundle" sh -c \
  'echo "pid in the container: $$"; echo "hostname: $(hostname)"; touch /x 2>/dev/null || echo "root is read-only"; echo "mounts: $(wc -l < /proc/self/mounts)"'
echo "== wrun run (native busybox)"
(cd "$work/bundle" && "$wrun" --root "$root" run demo-run)
echo "== wrun create / state / start / kill / delete"
WRUN=$wrun "$here/tests/busybox-bundle.sh" "$work/sleeper" sleep 1000
"$wrun" --root "$root" create --bundle "$work/sleeper" demo-sleeper </dev/null >/dev/null 2>&1
"$wrun" --root "$root" state demo-sleeper | grep '"status"'
"$wrun" --root "$root" start demo-sleeper
"$wrun" --root "$root" list
"$wrun" --root "$root" kill demo-sleeper KILL
sleep 0.2
"$wrun" --root "$root" state demo-sleeper | grep '"status"'
"$wrun" --root "$root" delete demo-sleeper
echo "== wrun run (wasm: /app/hello.wasm in wasmtime, inside the same namespaces and cgroup)"
WRUN=$wrun "$here/tests/busybox-bundle.sh" "$work/wasm" /app/hello.wasm from-the-demo
mkdir -p "$work/wasm/rootfs/app"
cp "$here/wasm-apps/target/wasm32-wasip1/release/hello.wasm" "$work/wasm/rootfs/app/"
python3 - "$work/wasm/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["env"].append("GREETING=hello from config.json")
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
export WRUN_DATA_DIR=$work/data
for n in 1 2; do
  "$wrun" --root "$root" --debug run --bundle "$work/wasm" "demo-wasm-$n" 2>"$work/debug.log"
  echo "(start $n: $(grep -o 'compiled-module cache [a-z]*' "$work/debug.log"))"
done
echo "== done: nothing left under $root: $(ls "$root" | wc -l) containers"
