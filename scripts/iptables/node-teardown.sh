#!/bin/sh
# Strait node capture: remove everything node-setup.sh and pod-add.sh created in the nat table. Idempotent.
#
# Deletes the jumps PREROUTING -> STRAIT_PREROUTING and OUTPUT -> STRAIT_OUTPUT (every copy), then flushes and
# deletes STRAIT_PREROUTING, STRAIT_OUTPUT, STRAIT_OUTBOUND and STRAIT_INBOUND (with all pods' rules).
# Other chains and rules are left alone. Connections already redirected keep their conntrack NAT entry until they close.
# See node-setup.sh for the design.
#
# Parameters (environment): STRAIT_IPTABLES (default iptables; ip6tables for IPv6).
set -eu

IPT="${STRAIT_IPTABLES:-iptables}"

ipt() { "$IPT" -w -t nat "$@"; }
die() { echo "strait node-teardown: $*" >&2; exit 1; }

command -v "$IPT" >/dev/null 2>&1 || die "$IPT not found: install iptables (apt-get install -y iptables)"
ipt -S >/dev/null 2>&1 || die "cannot read the nat table with $IPT: run as root (NET_ADMIN)"

while ipt -C PREROUTING -j STRAIT_PREROUTING 2>/dev/null; do ipt -D PREROUTING -j STRAIT_PREROUTING; done
while ipt -C OUTPUT -j STRAIT_OUTPUT 2>/dev/null; do ipt -D OUTPUT -j STRAIT_OUTPUT; done

# Flush all first (the dispatch chains reference the per-pod chains), then delete.
for chain in STRAIT_PREROUTING STRAIT_OUTPUT STRAIT_OUTBOUND STRAIT_INBOUND; do
  if ipt -S "$chain" >/dev/null 2>&1; then ipt -F "$chain"; fi
done
for chain in STRAIT_PREROUTING STRAIT_OUTPUT STRAIT_OUTBOUND STRAIT_INBOUND; do
  if ipt -S "$chain" >/dev/null 2>&1; then ipt -X "$chain"; fi
done
