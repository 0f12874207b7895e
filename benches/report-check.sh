#!/usr/bin/env bash
# make test's check of the comparison harness: a tiny run of benches/report.sh (--quick) into a
# temp dir; the report must have every table with figures in each row (the containerd rows
# too when containerd is installed, else the note that skips them), the targets, the charts,
# and the harness must leave nothing behind: no work dir, no container, no containerd.
# Uses $WRUN, or target/release/wrun if built, else target/debug/wrun (cargo build --workspace
# builds wasm-bare, peak-rss and the shim next to it): a debug build's figures mean nothing,
# only the harness is tested.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=${WRUN:-$here/target/release/wrun}
[ -x "$wrun" ] || wrun=$here/target/debug/wrun
out=$(mktemp -d /tmp/wrun-report-check.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
leftovers() { ls -d /tmp/wrun-report.* /tmp/wrun-pull-bench.* /tmp/wrun-image-costs-* /tmp/wrun-front-bench.* /tmp/wrun-build-bench.* 2>/dev/null | sort || true; }
before=$(leftovers)
fail() { echo "report-check: $*" >&2; exit 1; }
start=$(date +%s)
WRUN=$wrun bash "$here/benches/report.sh" --quick --out "$out" >"$out/stdout" 2>&1 ||
  { cat "$out/stdout" >&2; fail "benches/report.sh failed"; }
r=$out/report.md
[ -s "$r" ] || fail "no report.md"
for h in "## Start to exit of a no-op" "## CPU-bound kernel" "## Syscall-heavy loop" \
  "## create / start / delete cycle" "## Memory: nbody" "## Density: 4 idle containers" \
  "## Targets (medians" "## Where the time goes" "## Images: pull, unpack, mount" \
  "## Front end: container run, ps, the monitor" "## Build: wrun build against podman build"; do
  grep -qF "$h" "$r" || fail "no section '$h'"
done
rows=("| host /bin/true" "| wrun native (busybox" "| wrun native, 200 ms after" "| wrun wasm (exit.wasm" "| wasmtime library, no container (exit.wasm"
  "| host nbody (no" "| wrun native container nbody |" "| wrun wasm container nbody.wasm |"
  "| wasmtime library, no container, nbody.wasm |" "| host syscalls" "| wrun native container syscalls"
  "| wrun wasm container syscalls.wasm" "| wasmtime library, no container, syscalls.wasm"
  "| wrun create + start" "| host nbody (the process)" "| wasmtime library, no container, nbody.wasm (the process)"
  "| wrun native, busybox sleep" "| wrun wasm, sleep.wasm"
  "| wrun container run (CNI bridge) |" "| wrun container run --network none |" "| wrun container ps, 4 running |"
  "| wrun monitor |" "| wrun build --no-cache |" "| wrun build, fully cached |")
charts=(noop cpu syscalls cycle memory density)
if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
  rows+=("| wrun native, rootless")
  grep -qF "Rootless start (the no-op, medians): wrun rootless" "$r" || fail "no rootless start line"
fi
if command -v containerd >/dev/null; then
  grep -qF "## Through containerd" "$r" || fail "containerd is installed but the report has no containerd rows: $(grep -F 'containerd rows skipped' "$r")"
  rows+=("| runc.v2 shim" "| wrun shim (containerd-shim-wrun-v1)" "| wrun shim, exit.wasm"
    "| containerd wrun shim, busybox sleep" "| containerd wrun shim, sleep.wasm")
  charts+=(containerd)
else
  grep -qF "containerd rows skipped: containerd is not installed" "$r" || fail "no note that skips the containerd rows"
fi
if command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
  rows+=("| wrun image pull (+ unpack)" "| skopeo copy (blobs only)" "| wrun image pull again"
    "| unpack the busybox layer" "| import the busybox rootfs tar" "| mount an image's root filesystem")
  targets_img=$(grep -cE "^\| (pull throughput|unpack of the busybox|rootfs from an unpacked).*\| (met|\*\*missed\*\*) \|" "$r" || true)
  [ "$targets_img" = 3 ] || fail "the image targets have no result ($targets_img of 3)"
else
  grep -qF "Image rows skipped:" "$r" || fail "no note that skips the image rows"
fi
for row in "${rows[@]}"; do
  grep -F "$row" "$r" | grep -qE '\| \**[0-9]+\.[0-9]+\** \|' || fail "no figures in the row '$row'"
done
targets="native start|wasm start|CPU kernel|ps with|monitor RSS|build uncached|build cached"
command -v containerd >/dev/null && targets="$targets|shim"
bad=$(grep -E "^\| ($targets)" "$r" | grep -vE "\| (met|\*\*missed\*\*) " || true)
[ -z "$bad" ] || fail "targets without a result: $bad"
for chart in "${charts[@]}"; do
  grep -qF "]($chart.svg)" "$r" || fail "$chart.svg not linked"
  python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$out/$chart.svg" || fail "$chart.svg not valid"
done
after=$(leftovers)
[ "$before" = "$after" ] || fail "work dir left behind: $after"
ns=$(sed -n 's/^report: containerd namespace //p' "$out/stdout")
[ -z "$ns" ] || ! pgrep -f -- "-namespace $ns " >/dev/null || fail "a shim of the harness ($ns) is still running"
grep -qF "/tmp/wrun-report." /proc/self/mountinfo && fail "a mount of the harness is left"
echo "report-check: ok ($(grep -c '^|' "$r") table rows, ${#charts[@]} charts, $(( $(date +%s) - start )) s)"
