#!/bin/sh
# Strait node capture: enroll pods, i.e. capture their TCP traffic to the node's ztunnel (DESIGN §6a).
# Usage: pod-add.sh [--dry-run] POD_IP [POD_IP...]     (in the node's network namespace, after node-setup.sh)
#
# For each pod address three rules, each tagged with the comment "strait-pod=POD_IP":
#   STRAIT_OUTBOUND  -s POD_IP -p tcp                   -> REDIRECT :15001  (the pod is the client: outbound)
#   STRAIT_INBOUND   -d POD_IP -p tcp --dport 15008     -> REDIRECT :15008  (HBONE from another ztunnel, or from
#                                                                           this node's own: node-setup.sh)
#   STRAIT_INBOUND   -d POD_IP -p tcp                   -> REDIRECT :15006  (plaintext to the pod: inbound)
# node-setup.sh wires STRAIT_OUTBOUND and STRAIT_INBOUND into PREROUTING (traffic coming from pods) and
# STRAIT_INBOUND into OUTPUT (node-local clients), after a rule that skips packets carrying the ztunnel's mark
# (except HBONE to port 15008, see node-setup.sh).
# Idempotent: when a pod's three rules are already there (same ports) nothing changes, so running it twice leaves
# one copy; a partial or stale set (other ports) is replaced. Pods are added and removed while traffic flows;
# other pods' rules are never touched. The ztunnel runs these scripts one at a time. Every address is checked before
# anything changes. IPv6 addresses go to ip6tables (node-setup.sh makes its chains when ip6tables has a nat table);
# the tag is compared as text, so give an address the same way to pod-add.sh and pod-del.sh (IPv6 is lower-cased).
#
# --dry-run: prints the iptables commands this run would make, one per line, and changes nothing. As root it reads the
# current tables: nothing for a pod whose rules are in place, else the deletions of its stale rules (by number) and
# the three -A; a missing chain is the same error as without --dry-run. Without root or without the binary it prints
# the three -A per address.
#
# Parameters (environment): STRAIT_IPTABLES, STRAIT_IP6TABLES (default: see the backend choice in lib.sh),
#   STRAIT_OUTBOUND_PORT (15001), STRAIT_INBOUND_PORT (15006), STRAIT_HBONE_PORT (15008).
# Prints nothing on success; errors on stderr with the fix, exit 1.
set -eu

case "$0" in */*) here=${0%/*} ;; *) here=. ;; esac
[ -r "$here/lib.sh" ] || { echo "strait pod-add: $here/lib.sh not found: keep the scripts of scripts/iptables together" >&2; exit 1; }
# shellcheck source=lib.sh
. "$here/lib.sh"

if [ "${1:-}" = --dry-run ]; then DRY_RUN=true; shift; fi
load_ports
load_marks
ips=$(pod_addresses "$@") || exit 1

# pod_rules ACTION IP: ACTION (-A or -C) applied to the pod's three rules, in this order; RUN is `change` or `ipt`.
pod_rules() {
  run=$1 action=$2 ip=$3
  "$run" "$action" STRAIT_OUTBOUND -s "$ip" -p tcp -m comment --comment "strait-pod=$ip" -j REDIRECT --to-ports "$OUTBOUND_PORT" &&
    "$run" "$action" STRAIT_INBOUND -d "$ip" -p tcp -m tcp --dport "$HBONE_PORT" -m comment --comment "strait-pod=$ip" -j REDIRECT --to-ports "$HBONE_PORT" &&
    "$run" "$action" STRAIT_INBOUND -d "$ip" -p tcp -m comment --comment "strait-pod=$ip" -j REDIRECT --to-ports "$INBOUND_PORT"
}

# in_place IP: the pod's rules are exactly the three pod_rules would add (no more, none other).
in_place() {
  outbound=$(tagged_rules STRAIT_OUTBOUND "$1") && inbound=$(tagged_rules STRAIT_INBOUND "$1") || return 1
  [ "$(printf '%s\n%s\n' "$outbound" "$inbound" | grep -c '[0-9]')" -eq 3 ] && pod_rules ipt -C "$1" 2>/dev/null
}

# nft_add IP: IP joins the set `pods` (IPv4: Service-VIP capture, see lib.sh); adding an element already there is a no-op.
nft_add() {
  [ "$(family_of "$1")" = 4 ] || return 0
  if [ "$DRY_RUN" = true ] && ! nft_readable; then nft_change "add element ip $NFT_TABLE pods { $1 }"; return 0; fi
  require_nft
  nft_table_exists || die "nftables table ip $NFT_TABLE is missing: run node-setup.sh first (as root)"
  nft_has_pod "$1" || nft_change "add element ip $NFT_TABLE pods { $1 }"
}

for ip in $ips; do
  use_family "$(family_of "$ip")"
  require_state
  if readable; then
    for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do
      ipt -S "$chain" >/dev/null 2>&1 || die "chain $chain is missing in the nat table of $IPT: run node-setup.sh first (as root)"
    done
    if in_place "$ip"; then nft_add "$ip"; continue; fi
    for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do
      nums=$(tagged_rules "$chain" "$ip") || die "cannot list the nat chain $chain with $IPT"
      for num in $nums; do change -D "$chain" "$num"; done
    done
  fi
  pod_rules change -A "$ip"
  nft_add "$ip"
done
