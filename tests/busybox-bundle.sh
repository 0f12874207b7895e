#!/usr/bin/env bash
# Make an OCI bundle with a busybox rootfs from Debian's busybox-static.
# usage: tests/busybox-bundle.sh DIR [ARG...]   (ARGs become process.args; default: sh)
# The config is `wrun spec`'s default with terminal off, so it runs with plain stdio.
set -euo pipefail
dir=$1; shift
bb=$(command -v busybox) || { echo "busybox-bundle: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
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
wrun=${WRUN:-$(dirname "$0")/../target/release/wrun}
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
