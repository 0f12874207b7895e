#!/usr/bin/env bash
# The README's demo: a native busybox container through the runc-style lifecycle.
# (The wasm half of the demo arrives with the wasm workload, issue #5.)
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
echo "== done: nothing left under $root: $(ls "$root" | wc -l) containers"
