#!/usr/bin/env bash
# Make an OCI bundle with a busybox rootfs from Debian's busybox-static.
# usage: tests/busybox-bundle.sh DIR [ARG...]   (ARGs become process.args; default: sh)
# The config is `wrun spec`'s default with terminal off, so it runs with plain stdio.
set -euo pipefail
dir=$1; shift
# The rootfs holds busybox alone, so it must be the static build: Debian's `busybox` package is
# dynamically linked (installing it replaces busybox-static), and every exec in such a rootfs
# fails for want of the ELF interpreter. Install busybox-static when it is not what we have.
is_static() {
  local out
  [ -n "$1" ] || return 1
  out=$(LC_ALL=C ldd "$1" 2>&1 || true) # ldd exits 1 for a static executable
  grep -qE 'not a dynamic executable|statically linked' <<<"$out"
}
bb=$(command -v busybox || true)
if ! is_static "$bb"; then
  if [ -n "$bb" ]; then
    echo "busybox-bundle: $bb is dynamically linked: installing busybox-static" >&2
  else
    echo "busybox-bundle: busybox not found: installing busybox-static" >&2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 busybox-static >/dev/null
  hash -r
  bb=$(command -v busybox)
  is_static "$bb" || { echo "busybox-bundle: $bb is still not a static executable" >&2; exit 1; }
fi
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" "$dir/rootfs/tmp"
cp "$bb" "$dir/rootfs/bin/busybox"
# One process for the ~400 links (a fork per applet takes ~15 s in tests/v2's guest).
"$bb" --list | python3 -c '
import os, sys
for applet in sys.stdin.read().split():
    link = os.path.join(sys.argv[1], applet)
    if applet != "busybox":
        if os.path.lexists(link):
            os.remove(link)
        os.symlink("busybox", link)
' "$dir/rootfs/bin"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
args=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:] or ["sh"]))' "$@")
# The wrun that writes config.json: $WRUN, else the release build, else the one on PATH.
wrun=${WRUN:-$(dirname "$0")/../target/release/wrun}
[ -n "${WRUN:-}" ] || [ -x "$wrun" ] || wrun=$(command -v wrun || echo "$wrun")
rm -f "$dir/config.json"
"$wrun" spec --bundle "$dir"
python3 - "$dir/config.json" "$args" <<'PY'
import json, sys
path, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
