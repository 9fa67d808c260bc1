#!/bin/sh
# Strait node capture: list the pods that have capture rules (DESIGN §6a).
# Usage: pod-list.sh     (in the node's network namespace)
#
# Prints each address tagged "strait-pod=ADDR" in STRAIT_OUTBOUND or STRAIT_INBOUND once, one per line, sorted.
# Prints nothing when the chains do not exist (node-setup.sh has not run). The ztunnel runs it after a restart to find
# rules an earlier run left behind (a crash skips node-teardown.sh): stale ones are removed, missing ones added.
#
# Parameters (environment): STRAIT_IPTABLES (default iptables).
set -eu

IPT="${STRAIT_IPTABLES:-iptables}"

ipt() { "$IPT" -w -t nat "$@"; }
die() { echo "strait pod-list: $*" >&2; exit 1; }

command -v "$IPT" >/dev/null 2>&1 || die "$IPT not found: install iptables (apt-get install -y iptables)"
ipt -S >/dev/null 2>&1 || die "cannot read the nat table with $IPT: run as root (NET_ADMIN)"

for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do
  ipt -S "$chain" 2>/dev/null || true
done | awk '{ for (i = 1; i <= NF; i++) { f = $i; gsub(/"/, "", f); if (f ~ /^strait-pod=/) { sub(/^strait-pod=/, "", f); print f } } }' | sort -u
