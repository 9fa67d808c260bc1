#!/bin/sh
# Strait node capture: list the pods that have capture rules (DESIGN §6a).
# Usage: pod-list.sh     (in the node's network namespace)
#
# Prints each address tagged "strait-pod=ADDR" in STRAIT_OUTBOUND or STRAIT_INBOUND (IPv4, and IPv6 when an ip6tables
# backend can read its nat table) once per line, sorted. Prints nothing when the chains do not exist (node-setup.sh has
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
use_family 4
require_state
{
  for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do ipt -S "$chain" 2>/dev/null || true; done
  use_family 6
  if readable; then
    for chain in STRAIT_OUTBOUND STRAIT_INBOUND; do ipt -S "$chain" 2>/dev/null || true; done
  fi
} | awk '{ for (i = 1; i <= NF; i++) { f = $i; gsub(/"/, "", f); if (f ~ /^strait-pod=/) { sub(/^strait-pod=/, "", f); print f } } }' | sort -u
