#!/usr/bin/env bash
# Build wrun's Debian package from the same install step as `make install`: the binaries of
# BIN, the man pages, the shell completions and the example configs, with PREFIX=/usr, staged
# in a temp dir and packed by dpkg-deb. dpkg keeps its own file list, so the install manifest
# of `make uninstall` is left out; man pages are gzipped and the zsh completion goes where
# Debian's zsh looks for packages' completions, as Debian policy asks.
#   packaging/deb.sh BIN OUT.deb     (DEB_COMPRESS=gzip|zstd|none: dpkg-deb's -Z, default xz)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: packaging/deb.sh BIN OUT.deb}
out=${2:?usage: packaging/deb.sh BIN OUT.deb}
command -v dpkg-deb >/dev/null || { echo "deb: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }
for b in wrun wrun-monitor containerd-shim-wrun-v1; do
  [ -x "$bin/$b" ] || { echo "deb: $bin/$b: not built (make build, or cargo build --workspace and BIN=target/debug)" >&2; exit 1; }
done
stage=$(mktemp -d /tmp/wrun-deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT
make --no-print-directory install DESTDIR="$stage/root" PREFIX=/usr BIN="$bin" >/dev/null
root=$stage/root
rm -r "$root/usr/share/wrun"
gzip -9n "$root"/usr/share/man/man8/*.8
mkdir -p "$root/usr/share/zsh/vendor-completions"
mv "$root/usr/share/zsh/site-functions/_wrun" "$root/usr/share/zsh/vendor-completions/_wrun"
rmdir "$root/usr/share/zsh/site-functions"
# Debian's copyright file, machine-readable; the licence text is the system's copy.
cat > "$root/usr/share/doc/wrun/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wrun

Files: *
Copyright: the wrun developers
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0 (and in /usr/share/doc/wrun/LICENSE).
COPYRIGHT
chmod 644 "$root/usr/share/doc/wrun/copyright"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
# Depends, as dpkg-shlibdeps would find them: the package of each shared library the
# binaries load. The release binaries are static and need none; a debug build needs libc6 and
# libseccomp2.
depends=$(for b in wrun wrun-monitor containerd-shim-wrun-v1; do
    ldd "$bin/$b" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
  done | sort -u | while read -r lib; do
    dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
  done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
mkdir -p "$root/DEBIAN"
{
  echo "Package: wrun"
  echo "Version: $version"
  echo "Architecture: $arch"
  echo "Maintainer: wrun developers <maintainers@users.noreply.r-seed-ebc9deeb.example>"
  echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
  [ -z "$depends" ] || echo "Depends: $depends"
  echo "Recommends: containernetworking-plugins, iptables, fuse-overlayfs, tini, gpgv"
  echo "Suggests: containerd, skopeo"
  echo "Section: admin"
  echo "Priority: optional"
  echo "Description: OCI container runtime for native and WebAssembly workloads"
  echo " wrun runs Linux containers (namespaces, cgroups, capabilities, seccomp) with a"
  echo " runc-compatible command line, and WebAssembly modules in wasmtime inside the same"
  echo " sandbox. It includes a containerd shim (io.containerd.wrun.v1) and a docker-like"
  echo " front end: image pull and push, container run, build from a Dockerfile."
} > "$root/DEBIAN/control"
mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$root" "$out" >/dev/null
echo "deb: $out (wrun $version, $arch)"
