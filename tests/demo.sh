#!/usr/bin/env bash
# The README's demo: a native busybox container through the runc-style lifecycle, then a
# wasm container (wasm-apps/hello) in the same kind of sandbox, compiled on its first start
# and loaded from the compiled-module cache on the second; then the docker-like front end:
# images imported into a store, `wrun container run` of a native and a wasm image with a few
# of docker's flags, and a detached container with its logs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=$here/target/release/wrun
work=$(mktemp -d /tmp/wrun-demo.XXXXXX)
root=$work/state
images=$work/images
cleanup() {
  "$wrun" --root "$root" delete --force demo-sleeper >/dev/null 2>&1 || true
  "$wrun" container --data-root "$images" rm -f demo-ticker demo-web >/dev/null 2>&1 || true
  rm -rf "$work"
}
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
echo "== wrun image import: a busybox root filesystem and a wasm module become images"
tar -C "$work/bundle/rootfs" -cf "$work/busybox.tar" .
"$wrun" image --data-root "$images" import "$work/busybox.tar" --name demo/busybox:1 --change 'CMD ["sh"]'
mkdir -p "$work/wasm-image"
cp "$here/wasm-apps/target/wasm32-wasip1/release/hello.wasm" "$work/wasm-image/"
tar -C "$work/wasm-image" -cf "$work/hello.tar" .
"$wrun" image --data-root "$images" import "$work/hello.tar" --name demo/hello-wasm:1 \
  --change 'CMD ["/hello.wasm"]' --change 'ENV GREETING=hello from the image'
"$wrun" image --data-root "$images" ls
echo "== wrun container run --rm -e VAL=5 --memory 64m --pids-limit 20 --cap-drop ALL demo/busybox:1"
"$wrun" container --data-root "$images" run --rm -e VAL=5 --memory 64m --pids-limit 20 --cap-drop ALL \
  demo/busybox:1 sh -c 'echo "VAL=$VAL, hostname $(hostname), $(grep CapEff /proc/self/status)"; \
    echo "memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"; \
    echo "pids limit: $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"'
echo "== wrun container run --rm --memory 64m demo/hello-wasm:1 (the same command, a wasm image)"
"$wrun" container --data-root "$images" run --rm --memory 64m demo/hello-wasm:1
echo "== wrun container run -d: a health check, a published port; ps, port, stats, logs, stop, rm"
c() { "$wrun" container --data-root "$images" "$@"; }
c run -d --name demo-ticker --restart on-failure --health-cmd 'test -f /tmp/ready' --health-interval 300ms \
  demo/busybox:1 sh -c 'trap "echo stopping; exit 0" TERM; touch /tmp/ready; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done' >/dev/null
c run -d --name demo-web -p 127.0.0.1::80 demo/busybox:1 \
  sh -c 'mkdir -p /www && echo "hello from demo-web, through -p" > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
for _ in $(seq 50); do c ps | grep -q '(healthy)' && break; sleep 0.1; done
c ps
addr=$(c port demo-web 80)
echo "demo-web's port 80 is $addr: $(curl -s --max-time 5 "http://$addr/" || echo unreachable)"
c stats --no-stream
c logs --tail 2 demo-ticker
c stop demo-ticker >/dev/null
c logs --tail 1 demo-ticker
c rm -f demo-ticker demo-web >/dev/null
"$wrun" image --data-root "$images" rm demo/busybox:1 demo/hello-wasm:1 >/dev/null
echo "== done: nothing left under $root: $(ls "$root" | wc -l) containers; $("$wrun" container --data-root "$images" ls -aq | wc -l) front-end containers"
