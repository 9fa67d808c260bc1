#!/bin/sh
# Strait node capture: list the pods that have capture rules (DESIGN §6a).
# Usage: pod-list.sh     (in the node's network namespace)
#
# Prints each address that has any of a pod's capture state once per line, sorted: tagged "strait-pod=ADDR" in
# STRAIT_OUTBOUND or STRAIT_INBOUND (IPv4, and IPv6 when an ip6tables backend can read its nat table), or an element of
# the nftables set `ip strait pods`. An address whose state is not complete (the three rules of pod-add.sh and, for
# IPv4, the set element) is followed by " incomplete": the ztunnel adds such a pod again (pod-add.sh replaces partial
# sets) or removes it. Prints nothing when the chains do not exist (node-setup.sh has
# not run). Changes nothing (so it has no --dry-run). The ztunnel runs it after a restart to find rules an earlier run
# left behind (a crash skips node-teardown.sh) and periodically to find rules someone else removed.
#
# Parameters (environment): STRAIT_IPTABLES, STRAIT_IP6TABLES (default: see the backend choice in lib.sh).
# Errors on stderr with the fix, exit 1.
set -eu

case "$0" in */*) here=${0%/*} ;; *) here=. ;; esac
[ -r "$here/lib.sh" ] || { echo "strait pod-list: $here/lib.sh not found: keep the scripts of scripts/iptables together" >&2; exit 1; }
# shellcheck source=lib.sh
. "$here/lib.sh"

[ "$#" -eq 0 ] || die "usage: pod-list.sh (no arguments)"
load_marks
use_family 4
require_state
{
  for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do ipt -S "$chain" 2>/dev/null | sed "s/^/$chain /" || true; done
  use_family 6
  if readable; then
    for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do ipt -S "$chain" 2>/dev/null | sed "s/^/$chain /" || true; done
  fi
  # The set `pods` of the Service-VIP capture (IPv4), one "SET ADDR" line per element.
  if nft_table_exists; then
    "$NFT" list set ip "$NFT_TABLE" pods 2>/dev/null | awk '
      /elements = \{/ { on = 1; sub(/.*elements = \{/, "") }
      on { line = $0; sub(/\}.*/, "", line); n = split(line, parts, /[ \t,]+/); for (i = 1; i <= n; i++) if (parts[i] != "") print "SET " parts[i] }
      on && /\}/ { on = 0 }'
  fi
} | awk '
  $1 == "SET" { set[$2] = 1; seen[$2] = 1; next }
  { for (i = 2; i <= NF; i++) { f = $i; gsub(/"/, "", f); if (f ~ /^strait-pod=/) { sub(/^strait-pod=/, "", f); seen[f] = 1; count[$1, f]++; break } } }
  END {
    for (a in seen) {
      complete = count["STRAIT_OUTBOUND", a] == 1 && count["STRAIT_INBOUND", a] == 2 && (a ~ /:/ || set[a])
      print a (complete ? "" : " incomplete")
    }
  }' | sort
