#!/bin/bash
# The seed talk's workflow with wrun alone: a Debian base image, `wrun build` of myrand (one
# stage, two, and the naive way), `wrun container run --rm -e VAL=5 myrand`, and the two images' sizes.
#
#   bash examples/myrand/run.sh        (as root; WRUN=path picks the wrun binary)
#
# The base: `mmdebstrap --variant=minbase bookworm` into a tar (Debian's mmdebstrap; ~95 s, from
# deb.debian.org), kept in ~/.cache/wrun for the next run, then `wrun image import`ed. The RUN
# steps install gcc from the same mirror over the host's network (wrun build's default).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
wrun=${WRUN:-$repo/target/release/wrun}
[ -x "$wrun" ] || wrun=$repo/target/debug/wrun
data=${WRUN_DATA_ROOT:-/var/lib/wrun}
base=${WRUN_DEBIAN_BASE:-$HOME/.cache/wrun/debian-bookworm-minbase.tar}

if [ ! -s "$base" ]; then
  command -v mmdebstrap >/dev/null || { echo "myrand: mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
  mkdir -p "$(dirname "$base")"
  echo "== mmdebstrap --variant=minbase bookworm (once; cached in $base)"
  mmdebstrap --quiet --format=tar --variant=minbase bookworm "$base.tmp" http://deb.debian.org/debian
  mv "$base.tmp" "$base"
fi
echo "== wrun image import $base --name debian-minbase:bookworm"
"$wrun" image --data-root "$data" import -q "$base" --name debian-minbase:bookworm >/dev/null

echo "== wrun build -t myrand examples/myrand"
"$wrun" build --data-root "$data" -t myrand "$here"
echo "== wrun build -t myrand:multistage -f Dockerfile.multistage examples/myrand"
"$wrun" build --data-root "$data" -t myrand:multistage -f "$here/Dockerfile.multistage" "$here"

echo "== wrun build -t myrand:naive -f Dockerfile.naive examples/myrand"
"$wrun" build --data-root "$data" -t myrand:naive -f "$here/Dockerfile.naive" "$here"

echo "== wrun container run --rm -e VAL=5 myrand"
"$wrun" container --data-root "$data" run --rm --network none -e VAL=5 myrand
echo "== wrun container run --rm myrand"
"$wrun" container --data-root "$data" run --rm --network none myrand
echo "== wrun container run --rm -e VAL=3 myrand:multistage"
"$wrun" container --data-root "$data" run --rm --network none -e VAL=3 myrand:multistage

echo "== image sizes"
"$wrun" image --data-root "$data" ls | awk 'NR == 1 || $1 ~ /^(myrand|debian-minbase)$/'
