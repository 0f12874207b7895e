#!/usr/bin/env bash
# The cgroup v2 set: boots ONE user-mode-linux guest whose only hierarchy is cgroup2
# (tests/v2/run.sh) and runs in it, against wrun's v2 backend and with the host's already-built
# binaries (nothing is compiled in the guest):
#   1. a reference: Debian's runc and wrun on the same busybox bundles (a 64 MiB memory limit
#      that must OOM-kill with 137, a pids limit of 16 under a fork bomb), so a v2 failure of
#      wrun can be told apart from a broken harness;
#   2. the tests that touch cgroups: wrun's cgroup unit tests (with the eBPF device filter loaded
#      into the kernel), tests/tests/cgroups.rs and cleanup.rs in full, and the cgroup cases of
#      lifecycle, exec and wasm (kill --all, delete --force, exec joining the cgroup, the wasm
#      memory limit);
#   3. a check that no container cgroup is left in the guest.
# Prints libtest's own lines (and one `test result:` line for the reference), so .ci/run's
# summary counts them. Exits non-zero if anything failed.
#
# usage: tests/v2/suite.sh          (on the host, after `cargo build --workspace` and
#                                    `cargo test --workspace --no-run`; make test does both)
# WRUN_V2_TIMEOUT (seconds, default 600) bounds the guest. tests/v2/kernel.sh picks the kernel
# (Debian's, or sid's where Debian's does not boot on this CPU); if none boots, the set is
# reported as skipped with the reason.
set -euo pipefail
# The guest is user-mode Linux: several times slower than the host (a wasm module compiles
# in seconds there). Each command the tests spawn gets 60 s rather than 20.
export WRUN_TEST_TIMEOUT=60
cd "$(dirname "$0")/../.."

if [ "${1:-}" != --in-guest ]; then
  # The test executables cargo built for the workspace (a no-op build when they are fresh).
  exes=$(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        kind = m["target"]["kind"][0]
        if kind in ("lib", "test"):
            print(m["target"]["name"] + ":" + kind + "=" + m["executable"])
')
  [ -n "$exes" ] || { echo "v2 suite: no test executables from cargo test --no-run" >&2; exit 1; }
  command -v runc >/dev/null || { echo "v2 suite: runc not found (bash .ci/deps installs it)" >&2; exit 1; }
  # The reference bundles are made here (python3 and ~300 symlinks are slow in the guest), in
  # target/ rather than /tmp, which the guest replaces with its own.
  ref=$(mktemp -d "$PWD/target/v2-reference.XXXXXX")
  trap 'rm -rf "$ref"' EXIT
  bundle() { # DIR RESOURCES-JSON ARG...
    local dir=$1 res=$2
    shift 2
    WRUN=target/debug/wrun bash tests/busybox-bundle.sh "$dir" "$@" >/dev/null
    python3 - "$dir/config.json" "$res" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["linux"]["resources"] = json.loads(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
  }
  bundle "$ref/oom" '{"memory": {"limit": 67108864}}' dd if=/dev/zero of=/dev/null bs=128M count=1
  bundle "$ref/pids" '{"pids": {"limit": 16}}' sh -c \
    "sh -c 'i=0; while [ \$i -lt 40 ]; do sleep 30 & i=\$((i+1)); done' 2>/dev/null; read n < /sys/fs/cgroup/pids.current; [ \$n -le 16 ] && echo limited"
  # A kernel that boots on this CPU; none: the set is skipped, with the reason, in the
  # summary .ci/run prints (never failed for the host's CPU, never silently passed).
  kcode=0
  kernel=$(bash tests/v2/kernel.sh 2>"$ref/kernel.err") || kcode=$?
  cat "$ref/kernel.err" >&2
  if [ "$kcode" = 3 ]; then
    echo "wrun-tests: skipped tests/v2 (the cgroup v2 set): $(cat "$ref/kernel.err")"
    exit 0
  fi
  [ "$kcode" = 0 ] || exit "$kcode"
  # shellcheck disable=SC2086
  tests/v2/run.sh --timeout "${WRUN_V2_TIMEOUT:-600}" --kernel "$(sed -n 1p <<<"$kernel")" \
    --modules "$(sed -n 2p <<<"$kernel")" -- bash tests/v2/suite.sh --in-guest "$ref" $exes
  exit
fi
ref=$2
shift 2

exe() {
  local e
  for e in "${exes[@]}"; do
    [ "${e%%=*}" = "$1" ] && { echo "${e#*=}"; return; }
  done
  echo "v2 suite: no test executable $1" >&2
  return 1
}
exes=("$@")
failed=0
t0=$(date +%s.%N)
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1fs", e - s }'; }

# 1. Reference: runc and wrun on the same bundle.
echo "== v2 reference: Debian's runc $(runc --version | awk 'NR == 1 { print $3 }') and wrun on the same bundles"
ref_pass=0
ref_fail=0
check() { # NAME WANT GOT
  if [ "$2" = "$3" ]; then
    echo "test reference::$1 ... ok ($3)"
    ref_pass=$((ref_pass + 1))
  else
    echo "test reference::$1 ... FAILED: want $2, got $3"
    ref_fail=$((ref_fail + 1))
  fi
}
for rt in runc target/debug/wrun; do
  name=$(basename "$rt")
  start=$(date +%s.%N)
  code=0
  "$rt" --root "/run/v2-$name" run --bundle "$ref/oom" "oom-$name" >/dev/null 2>/tmp/v2-err || code=$?
  check "${name}_memory_limit_oom_kills_with_137" 137 "$code"
  [ "$code" = 137 ] || cat /tmp/v2-err
  out=$("$rt" --root "/run/v2-$name" run --bundle "$ref/pids" "pids-$name" 2>/tmp/v2-err) || true
  check "${name}_pids_limit_16_holds_a_fork_bomb" limited "${out:-$(cat /tmp/v2-err)}"
  echo "   ($name: both runs in $(elapsed "$start"))"
done
state=ok
[ $ref_fail = 0 ] || { state=FAILED; failed=1; }
echo "test result: $state. $ref_pass passed; $ref_fail failed; 0 ignored; 0 measured; 0 filtered out"
echo

# 2. The tests that touch cgroups, with the host's binaries.
run_tests() { # TITLE EXE [LIBTEST ARG...]
  local title=$1 bin
  bin=$(exe "$2") || { failed=1; return; }
  shift 2
  echo "== v2: $title"
  local start
  start=$(date +%s.%N)
  "$bin" --test-threads=4 "$@" | tee /tmp/v2-run || failed=1
  # A filter that matches nothing (a module moved) must not pass as an empty success.
  if grep -q '^running 0 tests' /tmp/v2-run; then
    echo "v2 suite: $title: no test matched ${*:-(no filter)}"
    failed=1
  fi
  echo "   ($title: $(elapsed "$start"))"
}
run_tests "wrun-sys cgroup unit tests (eBPF device filter in the kernel)" wrun_sys:lib cgroups::
run_tests "tests/tests/cgroups.rs" cgroups:test
run_tests "tests/tests/cleanup.rs" cleanup:test
run_tests "lifecycle: signals and delete through the cgroup" lifecycle:test \
  kill_all_reaches_child_processes delete_force_kills_and_removes_a_running_container \
  run_exits_with_137_when_the_container_is_killed_from_outside
run_tests "exec joins the container's cgroup" exec:test exec_joins_the_containers_cgroup
run_tests "wasm under a memory limit" wasm:test membomb_under_a_64_mib_limit
run_tests "rootless: a memory limit in a subtree delegated to a user" rootless:test \
  a_memory_limit_applies_in_a_cgroup_v2_subtree_delegated_to_the_user

# 3. Nothing left: the only cgroups are the guest's own (tests/v2/init) and the empty
# placement directory wrun made.
left=$(cd /sys/fs/cgroup && find . -mindepth 1 -type d | sed 's|^\./||' |
  grep -vx -e system.slice -e system.slice/wrun-uml.service -e system.slice/wrun || true)
echo "== v2: cgroups left after the set: ${left:-none}"
[ -z "$left" ] || failed=1
echo "== v2 set: $(elapsed "$t0") in the guest"
exit $failed
