#!/usr/bin/env bash
# `wrun container run --rm IMAGE true` against `podman run --rm` of the same image (Debian's
# podman, with crun and with runc; crun through tests/crun-hybrid.sh, as it refuses this
# host's hybrid cgroups otherwise), alternating, one round at a time; then `wrun container ps`
# with N detached containers. Prints medians, min/max and the ratios (targets, issue #17:
# wrun <= 0.5x podman's median; ps with 50 containers <= 20 ms).
# usage: benches/front-run.sh [ROUNDS] [CONTAINERS]   (default 20 50)
# Everything lives in a temp dir (podman's storage too: --root/--runroot) and is removed.
set -euo pipefail
rounds=${1:-20} n=${2:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=${WRUN:-$here/target/release/wrun}
[ -x "$wrun" ] || { echo "front-run: $wrun missing: run make build first" >&2; exit 1; }
work=$(mktemp -d /tmp/wrun-front-bench.XXXXXX)
data=$work/data
. "$here/benches/podman-common.sh"
cleanup() {
  for i in $(seq "$n"); do "$wrun" container --data-root "$data" rm -f "ps$i" >/dev/null 2>&1 || true; done
  remove_work
}
trap cleanup EXIT
import_busybox
# Microseconds from bash itself: a clock read that starts no process (a python3 per read
# would add tens of ms to every sample).
ms() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
declare -A t
runs=(wrun wrun-none)
[ -n "$have_podman" ] && runs+=(podman-crun podman-runc podman-crun-none podman-runc-none)
ulim=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
for r in $(seq "$rounds"); do
  for who in "${runs[@]}"; do
    t0=$(ms)
    case $who in
      wrun) "$wrun" container --data-root "$data" run --rm bench/busybox:1 true ;;
      wrun-none) "$wrun" container --data-root "$data" run --rm --network none bench/busybox:1 true ;;
      podman-crun) pod --runtime "$here/tests/crun-hybrid.sh" run --rm "${ulim[@]}" bench/busybox:1 true ;;
      podman-runc) pod --runtime runc run --rm "${ulim[@]}" bench/busybox:1 true ;;
      podman-crun-none) pod --runtime "$here/tests/crun-hybrid.sh" run --rm --network none "${ulim[@]}" bench/busybox:1 true ;;
      podman-runc-none) pod --runtime runc run --rm --network none "${ulim[@]}" bench/busybox:1 true ;;
    esac
    t1=$(ms)
    t[$who]+="$((t1 - t0)) "
  done
done
for i in $(seq "$n"); do "$wrun" container --data-root "$data" run -d --name "ps$i" bench/busybox:1 sleep 1000 >/dev/null; done
ps_t=
for r in $(seq "$rounds"); do
  t0=$(ms); "$wrun" container --data-root "$data" ps >/dev/null; t1=$(ms); ps_t+="$((t1 - t0)) "
done
# Memory of a detached container's keepers: its monitor (wrun-monitor), and any wrun process
# still under it besides the container (none once the container runs: the steps that start
# it exit), from smaps_rollup, kB; podman's conmon for the same when podman is here.
kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
mem=
for i in $(seq "$n"); do
  mp=$("$wrun" container --data-root "$data" inspect "ps$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["monitor_pid"])')
  kr=0 kp=0
  for c in $(pgrep -P "$mp"); do
    [ "$(tr '\0' '\n' <"/proc/$c/cmdline" 2>/dev/null | head -1)" = wrun ] || continue
    kr=$((kr + $(kb "$c" Rss))) kp=$((kp + $(kb "$c" Pss)))
  done
  mem+="$(kb "$mp" Rss):$(kb "$mp" Pss):$kr:$kp "
done
conmon=
if [ -n "$have_podman" ]; then
  for i in 1 2 3; do pod --runtime runc run -d --name "pc$i" --network none "${ulim[@]}" bench/busybox:1 sleep 1000 >/dev/null; done
  for i in 1 2 3; do
    cp=$(pod inspect --format '{{.State.ConmonPid}}' "pc$i")
    conmon+="$(kb "$cp" Rss):$(kb "$cp" Pss) "
  done
  pod rm -f pc1 pc2 pc3 >/dev/null 2>&1 || true
fi
python3 - "$rounds" "$n" "${t[wrun]}" "${t[podman-crun]:-}" "${t[podman-runc]:-}" "$ps_t" \
  "${t[wrun-none]}" "${t[podman-crun-none]:-}" "${t[podman-runc-none]:-}" "$mem" "$conmon" "${FRONT_JSON:-}" <<'PY'
import json, statistics, sys
rounds, n = sys.argv[1], sys.argv[2]
def vals(s): return [int(x) / 1000 for x in s.split()]
def row(name, s):
    v = vals(s)
    if not v: return None
    m = statistics.median(v)
    print(f"{name:40}{m:>10.1f}{min(v):>9.1f}{max(v):>9.1f}")
    return m
print(f"{rounds} rounds, alternating; milliseconds")
print(f"{'':40}{'median':>10}{'min':>9}{'max':>9}")
print("-- each one's default network (wrun: the CNI bridge; podman: its own bridge)")
w = row("wrun container run --rm busybox true", sys.argv[3])
c = row("podman (crun) run --rm busybox true", sys.argv[4])
r = row("podman (runc) run --rm busybox true", sys.argv[5])
print("-- --network none (loopback only)")
wn = row("wrun ... --network none", sys.argv[7])
cn = row("podman (crun) ... --network none", sys.argv[8])
rn = row("podman (runc) ... --network none", sys.argv[9])
for a, b, what in [(w, c, "podman-crun"), (w, r, "podman-runc"), (wn, cn, "podman-crun, none"), (wn, rn, "podman-runc, none")]:
    if a and b: print(f"wrun / {what}: {a / b:.2f}  (target <= 0.5)")
if not c: print("podman rows skipped: podman is not installed (apt-get install podman)")
p = row(f"wrun container ps, {n} running", sys.argv[6])
print(f"ps with {n} containers: {p:.1f} ms (target <= 20)")
mem = [[int(x) for x in m.split(":")] for m in sys.argv[10].split()]
med = lambda i: statistics.median(m[i] for m in mem) / 1024
print(f"per detached container, MiB (median of {len(mem)}): monitor RSS {med(0):.2f} PSS {med(1):.2f}; "
      f"wrun processes kept beside it RSS {med(2):.2f} PSS {med(3):.2f} (target: monitor RSS <= 2)")
con = [[int(x) for x in m.split(":")] for m in sys.argv[11].split()]
if con:
    print(f"podman's conmon, MiB (median of {len(con)}): RSS {statistics.median(c[0] for c in con) / 1024:.2f} "
          f"PSS {statistics.median(c[1] for c in con) / 1024:.2f}")
if sys.argv[12]:
    json.dump({"rounds": int(rounds), "n": int(n), "wrun_ms": vals(sys.argv[3]), "wrun_none_ms": vals(sys.argv[7]),
               "podman_crun_ms": vals(sys.argv[4]), "podman_runc_ms": vals(sys.argv[5]),
               "podman_crun_none_ms": vals(sys.argv[8]), "podman_runc_none_ms": vals(sys.argv[9]),
               "ps_ms": vals(sys.argv[6]), "monitor_kb": mem, "conmon_kb": con}, open(sys.argv[12], "w"))
PY
