#!/usr/bin/env bash
# Run ONE command in a user-mode-linux guest (Debian's `user-mode-linux`, a 6.1 kernel run as a
# process) whose only cgroup hierarchy is cgroup2, print its output, exit with its exit code.
#
# usage: tests/v2/run.sh [--timeout SECS] [--mem SIZE] [--kernel LINUX.UML --modules DIR] [--] CMD [ARG...]
#
# --kernel and --modules name another UML kernel and its modules directory (tests/v2/kernel.sh
# picks one that boots on this CPU); the default is Debian's, from PATH.
#
# The guest sees the host's `/` read-only through hostfs with a tmpfs overlay on top (the
# overlay lives in guest RAM: size it with --mem), so built binaries and toolchains are there and
# nothing on the host changes; tests/v2/init sets the guest up. The command runs as root in the
# caller's working directory with HOME, PATH and the variables named in WRUN_UML_ENV (plus
# RUST_BACKTRACE, RUST_LOG, WRUN_TEST_RUNTIME when set). If the guest is not off after --timeout
# seconds (default 600), it is killed and this exits 124 with a message.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
timeout=600
mem=1536M
kernel=
modules=/usr/lib/uml/modules
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --kernel) kernel=$2; shift 2 ;;
    --modules) modules=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--timeout SECS] [--mem SIZE] [--] CMD [ARG...]" >&2; exit 2; }
[ -n "$kernel" ] || kernel=$(command -v linux.uml) || {
  echo "run.sh: linux.uml not found: apt-get install user-mode-linux (bash .ci/deps does)" >&2
  exit 2
}
[ -x /bin/busybox ] || { echo "run.sh: /bin/busybox not found: apt-get install busybox-static" >&2; exit 2; }

io=$(mktemp -d /tmp/wrun-uml.XXXXXX)
vm=
cleanup() {
  if [ -n "$vm" ] && kill -0 "$vm" 2>/dev/null; then kill -KILL -- "-$vm" 2>/dev/null || true; fi
  rm -rf "$io"
}
trap cleanup EXIT

# Single quotes survive any shell: ' becomes '\''.
q() { printf "'%s' " "${1//\'/\'\\\'\'}"; }
{
  echo "cd $(q "$PWD") || exit 125"
  for v in HOME PATH RUST_BACKTRACE RUST_LOG WRUN_TEST_RUNTIME ${WRUN_UML_ENV:-}; do
    [ -n "${!v+x}" ] && echo "export $v=$(q "${!v}")"
  done
  printf 'exec '
  for a in "$@"; do q "$a"; done
  echo
} >"$io/cmd"
printf '%s' "$PWD" >"$io/cwd"

# The guest's console goes to a file; what follows the init's first line is shown as it comes
# (before it: the kernel's boot chatter, shown only when the guest fails to reach the command).
start=$(date +%s.%N)
: >"$io/console" # before the follower starts: the guest's redirection happens later
setsid "$kernel" mem="$mem" root=/dev/root rootfstype=hostfs rootflags=/ ro quiet loglevel=1 \
  con=null con0=fd:0,fd:1 umid="wrun-uml-$$" uml_dir="$io" \
  init="$here/init" wrun_uml_io="$io" wrun_uml_modules="$modules" </dev/null >"$io/console" 2>&1 &
vm=$!
tail -n +1 -s 0.2 --pid="$vm" -f "$io/console" 2>/dev/null |
  sed -u -n -e '/^wrun-uml/,$ { /^reboot: System halted$/d; p }' &
printer=$!
deadline=$(($(date +%s) + timeout))
while kill -0 "$vm" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    kill -KILL -- "-$vm" 2>/dev/null || true
    wait "$printer" 2>/dev/null || true
    echo "run.sh: TIMEOUT: the guest ran longer than ${timeout}s and was killed; console tail:" >&2
    tail -n 20 "$io/console" >&2
    exit 124
  fi
  sleep 0.2
done
wait "$vm" || true
wait "$printer" 2>/dev/null || true
vm=
if [ ! -s "$io/rc" ]; then
  echo "run.sh: the guest stopped without an exit code from the command; its console:" >&2
  cat "$io/console" >&2
  exit 125
fi
rc=$(cat "$io/rc")
printf 'run.sh: guest exit code %s after %ss\n' "$rc" "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')" >&2
exit "$rc"
