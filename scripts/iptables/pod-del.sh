#!/bin/sh
# Strait node capture: un-enroll pods, i.e. stop capturing their traffic (DESIGN §6a).
# Usage: pod-del.sh POD_IP [POD_IP...]     (in the node's network namespace)
#
# Deletes exactly the rules pod-add.sh made for each address: those tagged "strait-pod=POD_IP" in STRAIT_OUTBOUND
# and STRAIT_INBOUND (every copy, whatever ports they redirect to). Other pods' rules, the dispatch chains and the
# mark-skip rules stay. Idempotent: deleting a pod that has no rules (or chains that do not exist) succeeds.
# Connections already redirected keep their conntrack NAT entry until they close. See node-setup.sh for the design.
#
# Parameters (environment): STRAIT_IPTABLES (default iptables; ip6tables for IPv6 pod addresses).
set -eu

IPT="${STRAIT_IPTABLES:-iptables}"

ipt() { "$IPT" -w -t nat "$@"; }
die() { echo "strait pod-del: $*" >&2; exit 1; }

# tagged_rules CHAIN IP: numbers of the rules in CHAIN tagged "strait-pod=IP", highest first (so deleting them in
# this order does not shift the numbers still to delete). Fails when CHAIN cannot be listed.
tagged_rules() {
  rules=$(ipt -S "$1")
  printf '%s\n' "$rules" | awk -v tag="strait-pod=$2" '
    NR > 1 { for (i = 1; i <= NF; i++) { f = $i; gsub(/"/, "", f); if (f == tag) { hit[++n] = NR - 1; break } } }
    END { for (j = n; j >= 1; j--) print hit[j] }'
}

[ "$#" -ge 1 ] || die "usage: pod-del.sh POD_IP [POD_IP...]"
command -v "$IPT" >/dev/null 2>&1 || die "$IPT not found: install iptables (apt-get install -y iptables)"
ipt -S >/dev/null 2>&1 || die "cannot read the nat table with $IPT: run as root (NET_ADMIN)"

for ip in "$@"; do
  case "$ip" in '' | */* | *[!0-9a-fA-F:.]*) die "invalid pod address '$ip': expected one IPv4 or IPv6 address" ;; esac
  for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do
    ipt -S "$chain" >/dev/null 2>&1 || continue
    nums=$(tagged_rules "$chain" "$ip")
    for num in $nums; do ipt -D "$chain" "$num"; done
  done
done
