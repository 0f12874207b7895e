#!/usr/bin/env python3
"""An independent implementation of cosign's key-based signature format, for the tests.

It shares no code with wrun: Python's `cryptography` for ECDSA P-256 and the registry's HTTP
API through urllib. Usage (REF is HOST:PORT/REPO:TAG of a plain-HTTP loopback registry):

  cosign_compat.py keygen PREFIX         write PREFIX.key (PKCS#8 PEM) and PREFIX.pub
  cosign_compat.py sign KEY REF          sign REF's manifest digest, push sha256-HEX.sig
  cosign_compat.py verify PUB REF        exit 0 if a signature of REF verifies with PUB
"""
import base64
import hashlib
import json
import sys
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([OCI_MANIFEST, "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


def split(ref):
    host, rest = ref.split("/", 1)
    repo, tag = rest.rsplit(":", 1)
    return host, repo, tag


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(req)


def manifest(host, repo, tag):
    try:
        r = request("GET", f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    return r.read()


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def push_blob(host, repo, data):
    r = request("POST", f"http://{host}/v2/{repo}/blobs/uploads/")
    loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    request("PUT", f"{loc}{sep}digest={digest(data)}", data=data,
            headers={"Content-Type": "application/octet-stream"})


def keygen(prefix):
    k = ec.generate_private_key(ec.SECP256R1())
    open(prefix + ".key", "wb").write(k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    open(prefix + ".pub", "wb").write(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def sign(keyfile, ref):
    host, repo, tag = split(ref)
    d = digest(manifest(host, repo, tag))
    payload = json.dumps({"critical": {"identity": {"docker-reference": f"{host}/{repo}"},
                                       "image": {"docker-manifest-digest": d},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    key = serialization.load_pem_private_key(open(keyfile, "rb").read(), password=None)
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [digest(payload)]}}).encode()
    push_blob(host, repo, payload)
    push_blob(host, repo, config)
    m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "size": len(config), "digest": digest(config)},
                    "layers": [{"mediaType": SIMPLESIGNING, "size": len(payload), "digest": digest(payload),
                                "annotations": {ANNOTATION: base64.b64encode(sig).decode()}}]}).encode()
    sig_tag = d.replace(":", "-") + ".sig"
    request("PUT", f"http://{host}/v2/{repo}/manifests/{sig_tag}", data=m, headers={"Content-Type": OCI_MANIFEST})
    print(f"{host}/{repo}:{sig_tag}")


def verify(pubfile, ref):
    host, repo, tag = split(ref)
    d = digest(manifest(host, repo, tag))
    m = manifest(host, repo, d.replace(":", "-") + ".sig")
    if m is None:
        print("no signature", file=sys.stderr)
        return 1
    pub = serialization.load_pem_public_key(open(pubfile, "rb").read())
    for layer in json.loads(m)["layers"]:
        if layer["mediaType"] != SIMPLESIGNING:
            continue
        payload = request("GET", f"http://{host}/v2/{repo}/blobs/{layer['digest']}").read()
        if digest(payload) != layer["digest"]:
            continue
        try:
            pub.verify(base64.b64decode(layer["annotations"][ANNOTATION]), payload, ec.ECDSA(hashes.SHA256()))
        except Exception:
            continue
        p = json.loads(payload)["critical"]
        if p["type"] == "cosign container image signature" and p["image"]["docker-manifest-digest"] == d:
            print(f"verified {p['identity']['docker-reference']}@{d}")
            return 0
    print("no signature verifies", file=sys.stderr)
    return 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "keygen":
        keygen(sys.argv[2])
    elif cmd == "sign":
        sign(sys.argv[2], sys.argv[3])
    elif cmd == "verify":
        sys.exit(verify(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(f"unknown command {cmd}")
