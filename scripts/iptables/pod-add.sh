#!/bin/sh
# Strait node capture: enroll pods, i.e. capture their TCP traffic to the node's ztunnel (DESIGN §6a).
# Usage: pod-add.sh POD_IP [POD_IP...]     (in the node's network namespace, after node-setup.sh)
#
# For each pod address three rules, each tagged with the comment "strait-pod=POD_IP":
#   STRAIT_OUTBOUND  -s POD_IP -p tcp                   -> REDIRECT :15001  (the pod is the client: outbound)
#   STRAIT_INBOUND   -d POD_IP -p tcp --dport 15008     -> REDIRECT :15008  (HBONE from another ztunnel)
#   STRAIT_INBOUND   -d POD_IP -p tcp                   -> REDIRECT :15006  (plaintext to the pod: inbound)
# node-setup.sh wires STRAIT_OUTBOUND and STRAIT_INBOUND into PREROUTING (traffic coming from pods) and
# STRAIT_INBOUND into OUTPUT (node-local clients), after a rule that skips packets carrying the ztunnel's mark.
# Idempotent: when a pod's three rules are already there (same ports) nothing changes, so running it twice leaves
# one copy; a partial or stale set (other ports) is replaced. Pods are added and removed while traffic flows;
# other pods' rules are never touched. The ztunnel runs these scripts one at a time.
#
# Parameters (environment): STRAIT_IPTABLES (default iptables; ip6tables for IPv6 pod addresses),
#   STRAIT_OUTBOUND_PORT (15001), STRAIT_INBOUND_PORT (15006), STRAIT_HBONE_PORT (15008).
set -eu

IPT="${STRAIT_IPTABLES:-iptables}"
OUTBOUND_PORT="${STRAIT_OUTBOUND_PORT:-15001}"
INBOUND_PORT="${STRAIT_INBOUND_PORT:-15006}"
HBONE_PORT="${STRAIT_HBONE_PORT:-15008}"

ipt() { "$IPT" -w -t nat "$@"; }
die() { echo "strait pod-add: $*" >&2; exit 1; }

# valid_ip ADDR: one IPv4 or IPv6 address, never a prefix (a typo must not capture a whole network).
valid_ip() {
  case "$1" in
    '' | */* | *[!0-9a-fA-F:.]*) return 1 ;;
    *:*) return 0 ;;
  esac
  (
    IFS=.
    # shellcheck disable=SC2086
    set -- $1
    [ "$#" -eq 4 ] || exit 1
    for octet in "$@"; do
      case "$octet" in '' | *[!0-9]*) exit 1 ;; esac
      [ "${#octet}" -le 3 ] && [ "$octet" -le 255 ] || exit 1
    done
  )
}

# pod_rules ACTION IP: ACTION (-A or -C) applied to the pod's three rules, in this order.
pod_rules() {
  ipt "$1" STRAIT_OUTBOUND -s "$2" -p tcp -m comment --comment "strait-pod=$2" -j REDIRECT --to-ports "$OUTBOUND_PORT" &&
    ipt "$1" STRAIT_INBOUND -d "$2" -p tcp --dport "$HBONE_PORT" -m comment --comment "strait-pod=$2" -j REDIRECT --to-ports "$HBONE_PORT" &&
    ipt "$1" STRAIT_INBOUND -d "$2" -p tcp -m comment --comment "strait-pod=$2" -j REDIRECT --to-ports "$INBOUND_PORT"
}

# tagged_rules CHAIN IP: numbers of the rules in CHAIN tagged "strait-pod=IP", highest first (so deleting them in
# this order does not shift the numbers still to delete). Fails when CHAIN cannot be listed.
tagged_rules() {
  rules=$(ipt -S "$1")
  printf '%s\n' "$rules" | awk -v tag="strait-pod=$2" '
    NR > 1 { for (i = 1; i <= NF; i++) { f = $i; gsub(/"/, "", f); if (f == tag) { hit[++n] = NR - 1; break } } }
    END { for (j = n; j >= 1; j--) print hit[j] }'
}

# pod_rule_count IP: how many rules carry the pod's tag in Strait's per-pod chains.
pod_rule_count() {
  outbound=$(tagged_rules STRAIT_OUTBOUND "$1")
  inbound=$(tagged_rules STRAIT_INBOUND "$1")
  printf '%s\n%s\n' "$outbound" "$inbound" | grep -c '[0-9]' || true
}

# delete_pod_rules IP: removes every rule tagged with the pod.
delete_pod_rules() {
  for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do
    nums=$(tagged_rules "$chain" "$1")
    for num in $nums; do ipt -D "$chain" "$num"; done
  done
}

[ "$#" -ge 1 ] || die "usage: pod-add.sh POD_IP [POD_IP...]"
command -v "$IPT" >/dev/null 2>&1 || die "$IPT not found: install iptables (apt-get install -y iptables)"
for port in "$OUTBOUND_PORT" "$INBOUND_PORT" "$HBONE_PORT"; do
  case "$port" in '' | *[!0-9]*) die "invalid port '$port' (STRAIT_*_PORT must be a number)" ;; esac
done
for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do
  ipt -S "$chain" >/dev/null 2>&1 || die "chain $chain is missing in the nat table: run node-setup.sh first (as root)"
done

for ip in "$@"; do
  valid_ip "$ip" || die "invalid pod address '$ip': expected one IPv4 or IPv6 address (no prefix length)"
  count=$(pod_rule_count "$ip")
  if [ "$count" -eq 3 ] && pod_rules -C "$ip" 2>/dev/null; then
    continue
  fi
  delete_pod_rules "$ip"
  pod_rules -A "$ip"
done
