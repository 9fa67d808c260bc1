#!/bin/sh
# Strait node capture: remove everything node-setup.sh and pod-add.sh created in the nat table. Idempotent.
# Usage: node-teardown.sh [--dry-run]
#
# Deletes every rule of PREROUTING and OUTPUT that jumps to one of Strait's chains (every copy), then flushes and
# deletes STRAIT_PREROUTING, STRAIT_OUTPUT, STRAIT_OUTBOUND and STRAIT_INBOUND (with all pods' rules), for IPv4 and,
# when STRAIT_IP6TABLES is set or an ip6tables backend can read its nat table, for IPv6. Other chains and rules are
# left alone. Connections already redirected keep their conntrack NAT entry until they close. Running it on a node
# without Strait's chains succeeds and changes nothing. See node-setup.sh for the design.
#
# --dry-run: prints the iptables commands this run would make, one per line, and changes nothing. As root it reads the
# current tables and prints the deletions this state calls for (rules by number, highest first; nothing when Strait's
# chains are gone); without root or without the binary it prints the full set: the two jumps by rule, then -F and -X
# of the four chains, for IPv4 (and IPv6 when STRAIT_IP6TABLES is set).
#
# Parameters (environment): STRAIT_IPTABLES, STRAIT_IP6TABLES (default: see the backend choice in lib.sh).
# Prints nothing on success; errors on stderr with the fix, exit 1.
set -eu

case "$0" in */*) here=${0%/*} ;; *) here=. ;; esac
[ -r "$here/lib.sh" ] || { echo "strait node-teardown: $here/lib.sh not found: keep the scripts of scripts/iptables together" >&2; exit 1; }
# shellcheck source=lib.sh
. "$here/lib.sh"

if [ "${1:-}" = --dry-run ]; then DRY_RUN=true; shift; fi
[ "$#" -eq 0 ] || die "usage: node-teardown.sh [--dry-run] (parameters come from STRAIT_* environment variables)"

CHAINS='STRAIT_PREROUTING STRAIT_OUTPUT STRAIT_OUTBOUND STRAIT_INBOUND'

# strait_jumps CHAIN: numbers of the rules in CHAIN whose target is one of Strait's chains, highest first.
strait_jumps() {
  rules=$(ipt -S "$1") || return 1
  printf '%s\n' "$rules" | awk -v chains="$CHAINS" '
    BEGIN { n = split(chains, list, " "); for (i = 1; i <= n; i++) strait[list[i]] = 1 }
    NR > 1 { for (i = 1; i < NF; i++) if (($i == "-j" || $i == "-g") && ($(i + 1) in strait)) { hit[++m] = NR - 1; break } }
    END { for (j = m; j >= 1; j--) print hit[j] }'
}

teardown() {
  if readable; then
    for builtin in PREROUTING OUTPUT; do
      nums=$(strait_jumps "$builtin") || die "cannot list the nat chain $builtin with $IPT"
      for num in $nums; do change -D "$builtin" "$num"; done
    done
  else
    change -D PREROUTING -j STRAIT_PREROUTING
    change -D OUTPUT -j STRAIT_OUTPUT
  fi
  # Flush all first (the dispatch chains reference the per-pod chains), then delete.
  for chain in $CHAINS; do
    if chain_exists "$chain"; then change -F "$chain"; fi
  done
  for chain in $CHAINS; do
    if chain_exists "$chain"; then change -X "$chain"; fi
  done
}

# nft_teardown: the table `ip strait` (with its set), the policy-routing rule and the route table of node-setup.sh.
# Connections already captured this way lose their delivery (their packets are no longer marked): teardown is for a
# node leaving the mesh, not for a restart.
nft_teardown() {
  if [ "$DRY_RUN" = true ] && ! nft_readable; then
    nft_change "delete table ip $NFT_TABLE"
    ip_change -4 rule del fwmark "$TPROXY_MARK/$MASK" lookup "$ROUTE_TABLE"
    ip_change -4 route flush table "$ROUTE_TABLE"
    return 0
  fi
  if nft_table_exists; then nft_change "delete table ip $NFT_TABLE"; fi
  if command -v "$IPROUTE" >/dev/null 2>&1; then
    n=$("$IPROUTE" -4 rule show 2>/dev/null | grep -c "fwmark $TPROXY_MARK/$MASK lookup $ROUTE_TABLE\b" || true)
    while [ "${n:-0}" -gt 0 ]; do
      ip_change -4 rule del fwmark "$TPROXY_MARK/$MASK" lookup "$ROUTE_TABLE"
      n=$((n - 1))
    done
    if [ -n "$("$IPROUTE" -4 route show table "$ROUTE_TABLE" 2>/dev/null)" ]; then ip_change -4 route flush table "$ROUTE_TABLE"; fi
  fi
}

use_family 4
require_state
teardown
load_marks
nft_teardown

use_family 6
if [ -n "$IPT_FORCED" ] || readable; then
  require_state
  teardown
fi
