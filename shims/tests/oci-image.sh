#!/usr/bin/env bash
# Write a single-layer OCI image archive (an OCI layout in a tar) that `ctr images import`
# reads, from a directory tree. Plain tar + sha256sum + python3 for the JSON: no image tools.
# usage: oci-image.sh ROOTFS_DIR OUT.tar REF ENTRYPOINT_JSON [ANNOTATION=VALUE...]
#   e.g. oci-image.sh /tmp/bb/rootfs bb.tar wrun.test/busybox:1 '["sh"]'
#        oci-image.sh /tmp/w w.tar wrun.test/hello:1 '["/hello.wasm"]' module.wasm.image/variant=compat
set -euo pipefail
rootfs=$1 out=$2 ref=$3 entrypoint=$4; shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/blobs/sha256"
blob() { # FILE -> prints its digest after moving it into blobs/
  local d; d=$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$work/blobs/sha256/$d"
  echo "$d"
}
tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$work/layer.tar" .
layer_size=$(stat -c %s "$work/layer.tar")
layer=$(blob "$work/layer.tar")
python3 - "$work" "$entrypoint" "$layer" "$layer_size" "$ref" "$@" <<'PY'
import json, sys, os, hashlib
work, entrypoint, layer, layer_size, ref = sys.argv[1:6]
annotations = dict(a.split("=", 1) for a in sys.argv[6:])
def put(obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(work, "blobs", "sha256", d), "wb").write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
config = put({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": json.loads(entrypoint), "Env": ["PATH=/bin:/usr/bin"], "WorkingDir": "/"},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer]},
})
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **config),
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + layer, "size": int(layer_size)}]}
if annotations:
    manifest["annotations"] = annotations
m = put(manifest)
index = {"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
         annotations={"org.opencontainers.image.ref.name": ref}, **m)]}
open(os.path.join(work, "index.json"), "w").write(json.dumps(index))
open(os.path.join(work, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
tar -C "$work" -cf "$out" oci-layout index.json blobs
