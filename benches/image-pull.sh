#!/usr/bin/env bash
# Pull throughput: `wrun image pull` of a multi-layer image of >= 100 MiB from Debian's
# docker-registry on 127.0.0.1 against `skopeo copy` of the same image into an OCI layout,
# alternating, one fresh destination per run. wrun's pull also unpacks every layer (skopeo's
# copy only stores the blobs), so the comparison is conservative for wrun. Then a second pull
# into the same store, which must download no layer. Prints medians, MiB/s and the ratio
# (target: wrun's throughput >= 1.0x skopeo's).
# usage: benches/image-pull.sh [ROUNDS] [LAYERS] [MIB_PER_LAYER]   (default 5 4 32)
# With IMAGE_PULL_JSON=FILE the figures are also written to FILE (benches/report.sh's rows).
set -euo pipefail
rounds=${1:-5} layers=${2:-4} mib=${3:-32}
here=$(cd "$(dirname "$0")/.." && pwd)
wrun=${WRUN:-$here/target/release/wrun}
[ -x "$wrun" ] || { echo "image-pull: $wrun missing: run make build first" >&2; exit 1; }
for t in docker-registry skopeo python3; do
  command -v $t >/dev/null || { echo "image-pull: $t missing (apt-get install $t)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/wrun-pull-bench.XXXXXX)
rpid=
cleanup() {
  [ -z "$rpid" ] || { kill "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
rpid=$!
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break; sleep 0.05; done

# The image: LAYERS layers of MIB MiB of random bytes each (incompressible, as most real
# layers' binaries are not far from), as a docker save archive; wrun imports it, saves it as
# an OCI archive, and skopeo puts it in the registry (gzipping each layer, as registries hold them).
python3 - "$work" "$layers" "$mib" <<'PY'
import hashlib, io, json, os, sys, tarfile
work, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
diff_ids, paths = [], []
out = tarfile.open(os.path.join(work, "big-save.tar"), "w")
for i in range(n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = os.urandom(mib << 20)
        ti = tarfile.TarInfo(f"layer{i}/data"); ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    b = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(b).hexdigest())
    p = f"l{i}/layer.tar"; paths.append(p)
    ti = tarfile.TarInfo(p); ti.size = len(b); out.addfile(ti, io.BytesIO(b))
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
ci = tarfile.TarInfo("config.json"); ci.size = len(cfg); out.addfile(ci, io.BytesIO(cfg))
m = json.dumps([{"Config": "config.json", "RepoTags": ["bench/big:1"], "Layers": paths}]).encode()
mi = tarfile.TarInfo("manifest.json"); mi.size = len(m); out.addfile(mi, io.BytesIO(m))
out.close()
PY
"$wrun" image --data-root "$work/src" import -q "$work/big-save.tar" >/dev/null
"$wrun" image --data-root "$work/src" save -o "$work/big-oci.tar" bench/big:1
skopeo copy --quiet --dest-tls-verify=false "oci-archive:$work/big-oci.tar" "docker://127.0.0.1:$port/bench/big:1"
rm -rf "$work/src" "$work/big-save.tar" "$work/big-oci.tar"
ref=127.0.0.1:$port/bench/big:1
bytes=$(du -sb "$work/registry/docker/registry/v2/blobs" | cut -f1)

ms() { python3 -c 'import sys,time; print(int(time.monotonic()*1000))'; }
wrun_t=() skopeo_t=()
for r in $(seq "$rounds"); do
  for who in wrun skopeo; do
    [ $((r % 2)) -eq 0 ] && who=$([ $who = wrun ] && echo skopeo || echo wrun)
    sync
    t0=$(ms)
    if [ $who = wrun ]; then
      "$wrun" image --data-root "$work/w$r" pull -q "$ref" >/dev/null
      t1=$(ms); wrun_t+=($((t1 - t0)))
    else
      skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/s$r:big"
      t1=$(ms); skopeo_t+=($((t1 - t0)))
    fi
  done
  # The second pull, into the same store: no layer may be downloaded.
  if [ "$r" = 1 ]; then
    again=$("$wrun" image --data-root "$work/w1" pull "$ref" | tee "$work/again.log")
    if grep -q downloading "$work/again.log"; then echo "image-pull: a second pull downloaded a layer" >&2; exit 1; fi
    t0=$(ms); "$wrun" image --data-root "$work/w1" pull -q "$ref" >/dev/null; t1=$(ms); second=$((t1 - t0))
  fi
  rm -rf "$work/w$r" "$work/s$r"
done
python3 - "$bytes" "$second" "${wrun_t[*]}" "${skopeo_t[*]}" "${IMAGE_PULL_JSON:-}" "$layers" <<'PY'
import json, statistics, sys
b = int(sys.argv[1]); second = int(sys.argv[2])
w = [int(x) for x in sys.argv[3].split()]; s = [int(x) for x in sys.argv[4].split()]
mw, ms_ = statistics.median(w), statistics.median(s)
mib = b / 2**20
print(f"image: {mib:.1f} MiB in the registry (gzipped layers), {len(w)} rounds, alternating")
print(f"{'':22}{'median ms':>10}{'min':>8}{'max':>8}{'MiB/s':>9}")
print(f"{'wrun pull (+unpack)':22}{mw:>10.0f}{min(w):>8}{max(w):>8}{mib / (mw / 1000):>9.1f}")
print(f"{'skopeo copy (blobs)':22}{ms_:>10.0f}{min(s):>8}{max(s):>8}{mib / (ms_ / 1000):>9.1f}")
print(f"throughput wrun / skopeo: {ms_ / mw:.2f}  (target >= 1.0)")
print(f"second pull (nothing to download): {second} ms")
if sys.argv[5]:
    with open(sys.argv[5], "w") as f:
        json.dump({"mib": mib, "layers": int(sys.argv[6]), "rounds": len(w), "wrun_ms": w,
                   "skopeo_ms": s, "second_ms": second}, f)
PY
