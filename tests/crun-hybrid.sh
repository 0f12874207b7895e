#!/bin/sh
# crun 1.8 refuses this host's hybrid cgroups ("cgroups in hybrid mode not supported") unless the
# cgroup2 mount is hidden, so run it in a private mount namespace without /sys/fs/cgroup/unified
# (as benches/start-latency.sh does). For WRUN_TEST_RUNTIME=tests/crun-hybrid.sh.
# Note: mounts crun makes in its own namespace are then invisible to the host's mountinfo.
exec unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
