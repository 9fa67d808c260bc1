#!/bin/sh
# Strait node capture: un-enroll pods, i.e. stop capturing their traffic (DESIGN §6a).
# Usage: pod-del.sh [--dry-run] POD_IP [POD_IP...]     (in the node's network namespace)
#
# Deletes exactly the rules pod-add.sh made for each address: those tagged "strait-pod=POD_IP" in STRAIT_OUTBOUND
# and STRAIT_INBOUND (every copy, whatever ports they redirect to). Other pods' rules, the dispatch chains and the
# mark-skip rules stay. Idempotent: deleting a pod that has no rules (or chains that do not exist) succeeds.
# Every address is checked before anything changes; IPv6 addresses go to ip6tables (lower-cased, as pod-add.sh).
# Connections already redirected keep their conntrack NAT entry until they close. See node-setup.sh for the design.
#
# --dry-run: prints the iptables commands this run would make, one per line, and changes nothing. As root it reads the
# current tables and prints the deletions of the pod's tagged rules by number, highest first (nothing when it has
# none); without root or without the binary it prints the deletion of the three rules pod-add.sh makes, by rule
# (with the ports from the environment).
#
# Parameters (environment): STRAIT_IPTABLES, STRAIT_IP6TABLES (default: see the backend choice in lib.sh); for
#   --dry-run without root also STRAIT_OUTBOUND_PORT (15001), STRAIT_INBOUND_PORT (15006), STRAIT_HBONE_PORT (15008).
# Prints nothing on success; errors on stderr with the fix, exit 1.
set -eu

case "$0" in */*) here=${0%/*} ;; *) here=. ;; esac
[ -r "$here/lib.sh" ] || { echo "strait pod-del: $here/lib.sh not found: keep the scripts of scripts/iptables together" >&2; exit 1; }
# shellcheck source=lib.sh
. "$here/lib.sh"

if [ "${1:-}" = --dry-run ]; then DRY_RUN=true; shift; fi
load_ports
load_marks
ips=$(pod_addresses "$@") || exit 1

for ip in $ips; do
  use_family "$(family_of "$ip")"
  require_state
  # The set first: new connections to the pod through a Service VIP are no longer captured. Connections captured
  # already carry a conntrack mark and keep their path until they close (lib.sh).
  if [ "$(family_of "$ip")" = 4 ]; then
    if [ "$DRY_RUN" = true ] && ! nft_readable; then
      nft_change "delete element ip $NFT_TABLE pods { $ip }"
    elif nft_has_pod "$ip"; then
      nft_change "delete element ip $NFT_TABLE pods { $ip }"
    fi
  fi
  if readable; then
    for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do
      ipt -S "$chain" >/dev/null 2>&1 || continue
      nums=$(tagged_rules "$chain" "$ip") || die "cannot list the nat chain $chain with $IPT"
      for num in $nums; do change -D "$chain" "$num"; done
    done
  else
    change -D STRAIT_OUTBOUND -s "$ip" -p tcp -m comment --comment "strait-pod=$ip" -j REDIRECT --to-ports "$OUTBOUND_PORT"
    change -D STRAIT_INBOUND -d "$ip" -p tcp -m tcp --dport "$HBONE_PORT" -m comment --comment "strait-pod=$ip" -j REDIRECT --to-ports "$HBONE_PORT"
    change -D STRAIT_INBOUND -d "$ip" -p tcp -m comment --comment "strait-pod=$ip" -j REDIRECT --to-ports "$INBOUND_PORT"
  fi
done
