#!/usr/bin/env bash
# make test's check of the comparison harness: a tiny run of benches/report.sh (--quick) into a
# temp dir, then the report must have its three tables, the targets and the charts, and the
# harness must leave no work dir behind. Uses $WRUN, or target/release/wrun if built, else target/debug/wrun
# (cargo build --workspace): a debug build's figures mean nothing, only the harness is tested.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=${WRUN:-$here/target/release/wrun}
[ -x "$wrun" ] || wrun=$here/target/debug/wrun
out=$(mktemp -d /tmp/wrun-report-check.XXXXXX)
trap 'rm -rf "$out"' EXIT
before=$(ls -d /tmp/wrun-report.* 2>/dev/null | sort || true)
fail() { echo "report-check: $*" >&2; exit 1; }
WRUN=$wrun bash "$here/benches/report.sh" --quick --out "$out" >"$out/stdout" 2>&1 ||
  { cat "$out/stdout" >&2; fail "benches/report.sh failed"; }
r=$out/report.md
[ -s "$r" ] || fail "no report.md"
for h in "## Start to exit of a no-op" "## CPU-bound kernel" "## create / start / delete cycle" \
  "## Targets of issue #7"; do
  grep -qF "$h" "$r" || fail "no section '$h'"
done
for row in "| host /bin/true" "| wrun native (busybox" "| wrun wasm (exit.wasm" "| host nbody" \
  "| wrun native container nbody" "| wrun wasm container nbody.wasm" "| wrun create + start"; do
  grep -F "$row" "$r" | grep -qE '\| [0-9]+\.[0-9]+ \|' || fail "no figures in the row '$row'"
done
for chart in noop cpu cycle; do
  grep -qF "]($chart.svg)" "$r" || fail "$chart.svg not linked"
  python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$out/$chart.svg" || fail "$chart.svg not valid"
done
after=$(ls -d /tmp/wrun-report.* 2>/dev/null | sort || true)
[ "$before" = "$after" ] || fail "work dir left behind: $after"
echo "report-check: ok ($(grep -c '^|' "$r") table rows, 3 charts)"
