# Sourced by the benches that compare wrun with podman (front-run.sh, build.sh); expects $here
# (the repo), $work (the bench's temp dir), $wrun and $data (wrun's data root).

# podman with all of its storage under $work.
pod() { podman --root "$work/podman" --runroot "$work/podman-run" --cgroup-manager cgroupfs \
  --events-backend file --storage-driver overlay "$@"; }

# podman's containers and images of the bench, what is left mounted under $work, then $work.
remove_work() {
  if command -v podman >/dev/null; then
    pod rm -af >/dev/null 2>&1 || true
    pod rmi -af >/dev/null 2>&1 || true
  fi
  { findmnt -rn -o TARGET | grep "^$work" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done; } || true
  rm -rf "$work"
}

# The tests' busybox root filesystem as bench/busybox:1 in wrun's store and, when podman is
# here, in podman's (then have_podman=1).
import_busybox() {
  WRUN=$wrun "$here/tests/busybox-bundle.sh" "$work/bundle" true >/dev/null
  tar -C "$work/bundle/rootfs" -cf "$work/busybox.tar" .
  "$wrun" image --data-root "$data" import -q "$work/busybox.tar" --name bench/busybox:1 >/dev/null
  have_podman=
  if command -v podman >/dev/null; then
    pod import -q "$work/busybox.tar" bench/busybox:1 >/dev/null && have_podman=1
  fi
}
