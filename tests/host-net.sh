#!/usr/bin/env bash
# What the container tests change on the host beyond their own networks, saved before the
# suite and put back after it: the default network's bridge (wrun0, made by the first
# `wrun container run` that uses it, as docker0 is; it stays, like docker0, on a user's host),
# its leases, loopback guard and masquerade rules, and net.ipv4.ip_forward (the CNI bridge plugin turns it
# on for a gateway bridge, as docker does). Networks the tests make are removed by each test.
#   tests/host-net.sh save | restore
set -uo pipefail
state=/run/wrun-tests-host-net
case "${1:-}" in
save)
  { [ -e /sys/class/net/wrun0 ] && echo bridge=1 || echo bridge=0
    echo "forward=$(cat /proc/sys/net/ipv4/ip_forward)"; } > "$state"
  ;;
restore)
  [ -f "$state" ] || exit 0
  . "$state"
  if [ "$bridge" = 0 ] && [ -e /sys/class/net/wrun0 ]; then
    # Only when no container is on it any more (no port on the bridge). A removed container's
    # veth goes with its namespace, in the background: given a few seconds.
    for _ in $(seq 50); do [ -z "$(ls /sys/class/net/wrun0/brif 2>/dev/null)" ] && break; sleep 0.1; done
    if [ -z "$(ls /sys/class/net/wrun0/brif 2>/dev/null)" ]; then
      ip link del wrun0
      while iptables -w -D INPUT -i wrun0 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT \
        -m comment --comment "wrun: no host loopback from wrun0" -j DROP 2>/dev/null; do :; done
      while iptables -w -t nat -D POSTROUTING -s 10.90.0.0/16 ! -o wrun0 \
        -m comment --comment "wrun: masquerade wrun0" -j MASQUERADE 2>/dev/null; do :; done
      rm -rf /var/lib/cni/networks/wrun-77c7e0a1d5b1
      echo "host-net: removed the default bridge wrun0 the tests made"
    else
      echo "host-net: wrun0 still has containers on it: kept" >&2
    fi
  fi
  echo "$forward" > /proc/sys/net/ipv4/ip_forward
  rm -f "$state"
  ;;
*) echo "usage: $0 save|restore" >&2; exit 2 ;;
esac
