#!/usr/bin/env bash
# `wrun build` against `podman build` (buildah inside Debian's podman, with runc) of the same
# Dockerfile and context, alternating round by round: uncached (--no-cache) and fully cached
# (the same build again). Prints medians, min/max and the ratios (targets, issue #18: uncached
# <= 1.0x podman's median, cached <= 0.5x). Offline: a busybox base imported into both stores.
# usage: benches/build.sh [ROUNDS]   (default 10)
# Everything lives in a temp dir (podman's storage too: --root/--runroot) and is removed.
set -euo pipefail
rounds=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=${WRUN:-$here/target/release/wrun}
[ -x "$wrun" ] || { echo "build-bench: $wrun missing: run make build first" >&2; exit 1; }
work=$(mktemp -d /tmp/wrun-build-bench.XXXXXX)
data=$work/data
. "$here/benches/podman-common.sh"
trap remove_work EXIT
import_busybox
# The context: 200 small files and one of 4 MiB; the Dockerfile copies them, runs two shell
# steps (one adds files, one deletes some: a whiteout) and sets config.
ctx=$work/ctx
mkdir -p "$ctx/data"
for i in $(seq 200); do echo "file $i" > "$ctx/data/f$i"; done
head -c 4194304 /dev/urandom > "$ctx/data/big"
cat > "$ctx/Dockerfile" <<'DF'
FROM bench/busybox:1
COPY data /data
RUN i=0; while [ $i -lt 100 ]; do echo $i > /tmp/made$i; i=$((i + 1)); done && cp /data/big /big
RUN rm -f /data/f1* && mkdir -p /out
ENV MODE=bench
WORKDIR /out
CMD ["ls", "/data"]
DF
# A podman that cannot build here (storage, network) is reported and left out, not a failure.
podman_skip="podman is not installed (apt-get install podman)"
if [ -n "$have_podman" ] && ! out=$(pod --runtime runc build -q --pull=never --network host -t bench/probe:1 "$ctx" 2>&1); then
  have_podman= podman_skip="podman build failed here: $(echo "$out" | tail -1)"
fi
ms() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
declare -A t
kinds=(wrun-uncached wrun-cached)
[ -n "$have_podman" ] && kinds+=(podman-uncached podman-cached)
for r in $(seq "$rounds"); do
  for who in "${kinds[@]}"; do
    t0=$(ms)
    case $who in
      wrun-uncached) "$wrun" build --data-root "$data" -q --no-cache -t bench/built:1 "$ctx" >/dev/null ;;
      wrun-cached) "$wrun" build --data-root "$data" -q -t bench/built:1 "$ctx" >/dev/null ;;
      podman-uncached) pod --runtime runc build -q --no-cache --pull=never --network host -t bench/built:1 "$ctx" >/dev/null 2>&1 ;;
      podman-cached) pod --runtime runc build -q --pull=never --network host -t bench/built:1 "$ctx" >/dev/null 2>&1 ;;
    esac
    t1=$(ms)
    t[$who]+="$((t1 - t0)) "
  done
done
python3 - "$rounds" "${t[wrun-uncached]}" "${t[wrun-cached]}" "${t[podman-uncached]:-}" "${t[podman-cached]:-}" "${BUILD_JSON:-}" "$podman_skip" <<'PY'
import json, statistics, sys
rounds = sys.argv[1]
def vals(s): return [int(x) / 1000 for x in s.split()]
def row(name, s):
    v = vals(s)
    if not v: return None
    m = statistics.median(v)
    print(f"{name:40}{m:>10.1f}{min(v):>9.1f}{max(v):>9.1f}")
    return m
print(f"{rounds} rounds, alternating; milliseconds")
print(f"{'':40}{'median':>10}{'min':>9}{'max':>9}")
wu = row("wrun build --no-cache", sys.argv[2])
wc = row("wrun build (fully cached)", sys.argv[3])
pu = row("podman build --no-cache (runc)", sys.argv[4])
pc = row("podman build (fully cached)", sys.argv[5])
if pu: print(f"uncached: wrun / podman {wu / pu:.2f}  (target <= 1.0)")
if pc: print(f"cached: wrun / podman {wc / pc:.2f}  (target <= 0.5)")
if not pu: print(f"podman rows skipped: {sys.argv[7]}")
if sys.argv[6]:
    json.dump({"rounds": int(rounds), "wrun_uncached_ms": vals(sys.argv[2]), "wrun_cached_ms": vals(sys.argv[3]),
               "podman_uncached_ms": vals(sys.argv[4]), "podman_cached_ms": vals(sys.argv[5]),
               "podman_skip": "" if pu else sys.argv[7]}, open(sys.argv[6], "w"))
PY
