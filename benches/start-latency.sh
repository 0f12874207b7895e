#!/usr/bin/env bash
# Start-to-exit latency of a busybox /bin/true container: wrun vs Debian's runc and crun,
# measured side by side. hyperfine runs one command's runs back to back, so a drift in the
# machine's load would favour whichever came first: the runs are split into 10 rounds, the
# command order rotating each round, and the medians are over all rounds. Prints medians
# and ratios.
#
# crun refuses this host's hybrid cgroups unless the cgroup2 mount is hidden in a private
# mount namespace (see shared/ENVIRONMENT.md); wrun is measured both plainly and through
# the same wrapper so the crun ratio compares like with like.
# usage: benches/start-latency.sh [RUNS]   (default 100)
set -euo pipefail
runs=${1:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=${WRUN:-$here/target/release/wrun}
[ -x "$wrun" ] || { echo "start-latency: $wrun missing: run cargo build --release first" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "start-latency: hyperfine missing (apt-get install hyperfine)" >&2; exit 1; }
work=$(mktemp -d /tmp/wrun-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
WRUN=$wrun "$here/tests/busybox-bundle.sh" "$work/bundle" /bin/true
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["ociVersion"] = "1.0.2"  # runc 1.1 and crun 1.8 predate 1.3
json.dump(c, open(sys.argv[1], "w"))
PY
hide_v2='umount /sys/fs/cgroup/unified 2>/dev/null; exec'
cmds=(-n wrun "$wrun --root $work/wrun run bench")
names=(wrun)
# The same without re-executing from the sealed binary (WRUN_EXE_SEAL=off): the sealing's cost.
cmds+=(-n wrun-unsealed "env WRUN_EXE_SEAL=off $wrun --root $work/wrun run bench3")
names+=(wrun-unsealed)
if [ -d /sys/fs/cgroup/unified ]; then
  cmds+=(-n wrun-hidden-v2 "unshare -m sh -c '$hide_v2 $wrun --root $work/wrun run bench2'")
  names+=(wrun-hidden-v2)
fi
if command -v runc >/dev/null; then
  cmds+=(-n runc "runc --root $work/runc run bench"); names+=(runc)
else echo "note: runc not installed: row skipped"; fi
if command -v crun >/dev/null; then
  if [ -d /sys/fs/cgroup/unified ]; then
    cmds+=(-n crun-hidden-v2 "unshare -m sh -c '$hide_v2 crun --root $work/crun run bench'"); names+=(crun-hidden-v2)
  else
    cmds+=(-n crun "crun --root $work/crun run bench"); names+=(crun)
  fi
else echo "note: crun not installed: row skipped"; fi
cd "$work/bundle"
rounds=10 per=$(( (runs + 9) / 10 )) n=$(( ${#cmds[@]} / 3 ))
for ((r = 0; r < rounds; r++)); do
  order=()
  for ((i = 0; i < n; i++)); do
    k=$(( (i + r) % n )); order+=("${cmds[@]:$((k * 3)):3}")
  done
  hyperfine -N --style none -w 2 -r "$per" --export-json "$work/h$r.json" "${order[@]}" >/dev/null
done
python3 - "$work"/h*.json <<'PY'
import json, statistics, sys
rs = {}
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        rs.setdefault(r["command"], []).extend(r["times"])
med = {k: statistics.median(v) * 1000 for k, v in rs.items()}
print(f"{'runtime':<16} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
for k, v in rs.items():
    print(f"{k:<16} {med[k]:>10.2f} {min(v)*1000:>8.2f} {max(v)*1000:>8.2f}")
def ratio(a, b):
    if a in med and b in med:
        print(f"ratio {a} / {b}: {med[a] / med[b]:.2f}")
ratio("wrun", "runc")
ratio("wrun", "wrun-unsealed")
ratio("wrun", "crun")
ratio("wrun-hidden-v2", "crun-hidden-v2")
PY
