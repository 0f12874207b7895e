#!/usr/bin/env bash
# Pick a user-mode-linux kernel that boots on this host and print it as two lines: the kernel
# binary and the directory of its modules (tests/v2/init loads overlay.ko from there).
#
# Debian bookworm's `user-mode-linux` (6.1) comes first. On CPUs with AMX (`amx_tile`), it and
# trixie's 6.12 panic before init ("ptrace set fp regs failed, errno = 14"): the kernel's
# ptrace register-set size predates AMX's extended state. sid's 7.2 boots there. It needs
# glibc >= 2.38, so sid's `user-mode-linux` and `libc6` are downloaded with a private apt
# configuration (nothing is added to the host's apt sources), unpacked under the cache dir and
# the kernel is patched (patchelf) to use that libc. Running it through ld.so instead does
# not work: UML then refuses its own memory layout.
#
# Each candidate gets one smoke boot (`true` in the guest, through run.sh); the verdict is
# cached per kernel, host kernel and CPU flags, so later runs skip it. Exits 3 with the reason
# on stderr when no kernel boots here, so the caller can report the v2 set as skipped.
#
# usage: tests/v2/kernel.sh
# WRUN_UML_KERNEL=debian|sid tries only that one (to exercise the fallback on any CPU).
# WRUN_UML_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/wrun/uml) holds sid's kernel and
# the verdicts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${WRUN_UML_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wrun/uml}
mkdir -p "$cache"
only=${WRUN_UML_KERNEL:-}
case $only in "" | debian | sid) ;; *) echo "kernel.sh: WRUN_UML_KERNEL must be debian or sid, not $only" >&2; exit 2 ;; esac

# A smoke boot's verdict, cached: "ok", or the reason it failed.
verdict() { # NAME KERNEL MODULES
  local key file out rc
  key=$( {
    stat -c '%n %s %Y' "$2"
    uname -r
    grep -m1 '^flags' /proc/cpuinfo
  } | sha256sum | cut -c1-16)
  file="$cache/verdict-$1-$key"
  if [ ! -s "$file" ]; then
    rc=0
    out=$(bash "$here/run.sh" --kernel "$2" --modules "$3" --timeout 60 --mem 256M -- true 2>&1) || rc=$?
    if [ "$rc" = 0 ]; then
      echo ok >"$file"
    else
      # The line that says why: a panic, a missing library, an init that could not run.
      { grep -m1 -E 'failed|panic|error|not found|No such' <<<"$out" || tail -n1 <<<"$out"; } |
        tr -s ' \t' ' ' | cut -c1-200 >"$file"
    fi
  fi
  cat "$file"
}

# sid's kernel and libc, fetched once into the cache. Prints nothing; fails with a reason.
fetch_sid() {
  local d=$cache/sid
  [ -x "$d/root/usr/bin/linux.uml" ] && [ -f "$d/ready" ] && return 0
  command -v patchelf >/dev/null || { echo "patchelf not found (bash .ci/deps installs it)"; return 1; }
  rm -rf "$d"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/debs" "$d/root"
  # _apt must be able to write where it downloads, or apt warns and downloads as root.
  chmod 755 "$d" "$d/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
    >"$d/sources.list"
  local o=(-o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$d/lists"
    -o "Dir::Cache=$d/cache" -o DPkg::Lock::Timeout=600 -o APT::Sandbox::User=root -qq)
  local log=$d/apt.log
  if ! apt-get "${o[@]}" update >"$log" 2>&1 ||
    ! (cd "$d/debs" && apt-get "${o[@]}" download user-mode-linux libc6 >>"$log" 2>&1); then
    echo "cannot download sid's user-mode-linux and libc6: $(grep -m1 -E '^(E|W):' "$log" || tail -n1 "$log")"
    return 1
  fi
  local deb
  for deb in "$d"/debs/*.deb; do dpkg-deb -x "$deb" "$d/root"; done
  local libc=$d/root/usr/lib/x86_64-linux-gnu
  patchelf --set-interpreter "$libc/ld-linux-x86-64.so.2" --set-rpath "$libc" "$d/root/usr/bin/linux.uml"
  rm -rf "$d/lists" "$d/cache" "$d/debs"
  basename -a "$d"/root/usr/lib/uml/modules/* >"$d/ready"
}

reasons=()
try() { # NAME KERNEL MODULES
  local v
  v=$(verdict "$@")
  if [ "$v" = ok ]; then
    [ ${#reasons[@]} = 0 ] || echo "kernel.sh: using $1's kernel $(basename -a "$3"/*) because ${reasons[*]}" >&2
    printf '%s\n%s\n' "$2" "$3"
    exit 0
  fi
  reasons+=("$1 ($2): $v")
}

if [ -z "$only" ] || [ "$only" = debian ]; then
  if k=$(command -v linux.uml); then
    try debian "$k" /usr/lib/uml/modules
  else
    reasons+=("debian: linux.uml not found (apt-get install user-mode-linux)")
  fi
fi
if [ -z "$only" ] || [ "$only" = sid ]; then
  if why=$(fetch_sid); then
    try sid "$cache/sid/root/usr/bin/linux.uml" "$cache/sid/root/usr/lib/uml/modules"
  else
    reasons+=("sid: $why")
  fi
fi
printf 'no user-mode-linux kernel boots on this host: %s\n' "$(IFS=';'; echo "${reasons[*]}")" >&2
exit 3
