#!/bin/sh
# Strait node capture: create Strait's own chains in the nat table (DESIGN §6a). Idempotent.
# Usage: node-setup.sh [--dry-run]
#
# Run once per node, in the node's network namespace, before any pod-add.sh (the ztunnel runs it at start-up;
# it needs NET_ADMIN). Nothing outside Strait's chains is touched except one jump each from PREROUTING and OUTPUT.
#
#   nat PREROUTING -> STRAIT_PREROUTING   traffic arriving from pods (over their veth, or routed through the node)
#       1. mark MARK/MASK     -> RETURN   (never captures a packet the ztunnel itself marked)
#       2. -j STRAIT_OUTBOUND             TCP *from* an enrolled pod  -> REDIRECT :15001 (outbound)
#       3. -j STRAIT_INBOUND              TCP *to* an enrolled pod    -> REDIRECT :15008 (dport 15008, HBONE)
#                                                                    or :15006 (any other port, plaintext)
#   nat OUTPUT     -> STRAIT_OUTPUT       traffic originated in the node namespace itself
#       1. tcp dport HBONE_PORT -> STRAIT_INBOUND   same-node HBONE, marked or not (below)
#       2. mark MARK/MASK     -> RETURN   the ztunnel's own sockets (SO_MARK, see original-dst.ts connectMarked)
#       3. -j STRAIT_INBOUND              a node-local, unmarked client reaching an enrolled pod is captured too
#
# Same-node HBONE (STRAIT_OUTPUT rule 1): when a client pod and its server pod share a node, the ztunnel's outbound
# side opens its HBONE connection to SERVER_POD:15008 from a marked socket. Rule 2 alone would let it through to the
# pod itself; rule 1 sends it first to STRAIT_INBOUND, whose per-pod rule redirects it to this node's own 15008
# listener, which reads the pod's address with SO_ORIGINAL_DST and answers with that pod's certificate. Only pods
# with rules are affected: STRAIT_INBOUND holds per-pod rules only, so a connection to port 15008 of any other
# address (a pod on another node, a pod outside the mesh) comes back from it and meets rule 2 as before. Marked
# connections to other ports of a local pod (the ztunnel delivering to the pod) still RETURN. Pods must not serve
# port 15008 themselves (Istio reserves it too).
#
# Service VIPs: a connection the node's own NAT (kube-proxy) turns into one to an enrolled pod of this node after these
# chains saw only the VIP is caught by the nftables table `ip strait` this script also makes (lib.sh explains it), with
# its policy route (ip rule fwmark TPROXY_MARK/MASK lookup ROUTE_TABLE; local 0.0.0.0/0 dev lo in that table).
#
# From-pod rules are consulted before to-pod rules, so pod-to-pod traffic on one node is captured as outbound
# (15001) first; the ztunnel's own connection onwards carries the mark and is not captured again.
# STRAIT_OUTBOUND and STRAIT_INBOUND hold one small rule set per pod, managed by pod-add.sh / pod-del.sh.
# REDIRECT rewrites the destination to the address of the interface the packet came in on (PREROUTING) or
# 127.0.0.1 (OUTPUT), keeping the source; the ztunnel reads the original destination with SO_ORIGINAL_DST.
# In the lab a "node" is a network namespace and pods are namespaces routed through it over veths, so pod traffic
# meets the node's PREROUTING hook exactly as it would on a Kubernetes node.
#
# Idempotent: STRAIT_PREROUTING and STRAIT_OUTPUT are brought to exactly the rules above, in this order (a chain left
# by an older version, e.g. without rule 1, gets the missing rule inserted in place and any extra rule deleted, with no
# moment without capture); the jumps are first in PREROUTING / OUTPUT, one copy each, and are moved back to the top
# when another rule took that place (kube-proxy puts its own jump first whenever it restarts). A second run changes
# nothing. IPv6: the same chains are made with ip6tables when STRAIT_IP6TABLES is set or an ip6tables backend
# can read its nat table (a node without IPv6 NAT gets IPv4 only).
#
# --dry-run: prints the iptables commands this run would make, one per line, and changes nothing. As root it reads the
# current tables and prints only what is missing (nothing on a node already set up); without root or without the
# binary it prints the full set for IPv4 (and for IPv6 when STRAIT_IP6TABLES is set).
#
# Parameters (environment): STRAIT_IPTABLES, STRAIT_IP6TABLES (default: see the backend choice in lib.sh),
#   STRAIT_CAPTURE_MARK (default 0x539, Istio's 1337), STRAIT_CAPTURE_MASK (default 0xfff),
#   STRAIT_HBONE_PORT (default 15008), STRAIT_INBOUND_PORT (15006, the TPROXY target), STRAIT_TPROXY_MARK (0x111),
#   STRAIT_ROUTE_TABLE (133), STRAIT_NFT (nft), STRAIT_IP (ip). Prints nothing on success; errors on stderr with the
#   fix, exit 1.
set -eu

case "$0" in */*) here=${0%/*} ;; *) here=. ;; esac
[ -r "$here/lib.sh" ] || { echo "strait node-setup: $here/lib.sh not found: keep the scripts of scripts/iptables together" >&2; exit 1; }
# shellcheck source=lib.sh
. "$here/lib.sh"

if [ "${1:-}" = --dry-run ]; then DRY_RUN=true; shift; fi
[ "$#" -eq 0 ] || die "usage: node-setup.sh [--dry-run] (parameters come from STRAIT_* environment variables)"

load_ports

load_marks

# wanted CHAIN: the rules CHAIN must hold, in order, one per line, written as `iptables -S` prints them (so the current
# chain can be compared line by line) and as they are given to iptables.
wanted() {
  case "$1" in
    STRAIT_PREROUTING)
      printf '%s\n' "-m mark --mark $MARK_MATCH -j RETURN" "-j STRAIT_OUTBOUND" "-j STRAIT_INBOUND" ;;
    STRAIT_OUTPUT)
      printf '%s\n' "-p tcp -m tcp --dport $HBONE_PORT -j STRAIT_INBOUND" "-m mark --mark $MARK_MATCH -j RETURN" "-j STRAIT_INBOUND" ;;
  esac
}

ensure_chain() { { readable && ipt -S "$1" >/dev/null 2>&1; } || change -N "$1"; }

# ensure_rules CHAIN: keeps the rules CHAIN shares with the wanted list at its start and end, and replaces what lies
# between: the missing rules are inserted first, then the unwanted ones deleted, so the chain never lacks a rule it
# had. A chain holding the wanted rules already changes nothing; a new (or unreadable) chain gets them appended.
ensure_rules() {
  have=''
  if readable; then have=$(ipt -S "$1" 2>/dev/null | sed -n "s/^-A $1 //p") || have=''; fi
  plan=$(CHAIN=$1 WANT=$(wanted "$1") HAVE=$have awk 'BEGIN {
    c = ENVIRON["CHAIN"]
    nw = ENVIRON["WANT"] == "" ? 0 : split(ENVIRON["WANT"], w, "\n")
    nh = ENVIRON["HAVE"] == "" ? 0 : split(ENVIRON["HAVE"], h, "\n")
    k = 0; while (k < nw && k < nh && w[k + 1] == h[k + 1]) k++
    s = 0; while (s < nw - k && s < nh - k && w[nw - s] == h[nh - s]) s++
    for (i = k + 1; i <= nw - s; i++) {
      if (s == 0 && nh == k) print "-A " c " " w[i]; else print "-I " c " " i " " w[i]
    }
    for (j = k + 1; j <= nh - s; j++) print "-D " c " " (nw - s + 1)
  }')
  [ -n "$plan" ] || return 0
  while IFS= read -r args; do
    # shellcheck disable=SC2086 # a rule spec: words without spaces, globbing off (lib.sh)
    change $args
  done <<EOF
$plan
EOF
}

# ensure_jump FROM TO: exactly one jump, first in the built-in chain, so Strait sees traffic before other NAT rules.
# Others move themselves first too (kube-proxy puts its KUBE-SERVICES jump at the top whenever it restarts), so a jump
# that is no longer first is inserted at the top again and the old copy deleted after (no moment without it).
ensure_jump() {
  if ! readable; then
    change -I "$1" 1 -j "$2"
    return 0
  fi
  rules=$(ipt -S "$1") || die "cannot list the nat chain $1 with $IPT"
  moved=0
  if [ "$(printf '%s\n' "$rules" | sed -n 2p)" != "-A $1 -j $2" ]; then
    change -I "$1" 1 -j "$2"
    moved=1
  fi
  # The other copies by number (after the insert, each is one further down), highest first, so the numbers still to
  # delete do not shift.
  nums=$(printf '%s\n' "$rules" | awk -v want="-A $1 -j $2" -v moved="$moved" '
    NR > 1 && $0 == want { if (moved || seen++) hit[++n] = NR - 1 + moved }
    END { for (j = n; j >= 1; j--) print hit[j] }')
  for num in $nums; do change -D "$1" "$num"; done
}

setup() {
  for chain in STRAIT_OUTBOUND STRAIT_INBOUND STRAIT_PREROUTING STRAIT_OUTPUT; do ensure_chain "$chain"; done
  ensure_rules STRAIT_PREROUTING
  ensure_rules STRAIT_OUTPUT
  ensure_jump PREROUTING STRAIT_PREROUTING
  ensure_jump OUTPUT STRAIT_OUTPUT
}

# nft_in_place: the table `ip strait` holds the two chains with exactly the rules below for these parameters (the set's
# elements are pod-add.sh's business and are kept).
nft_in_place() {
  nft_table_exists || return 1
  listing=$("$NFT" -t list table ip "$NFT_TABLE" 2>/dev/null) || return 1
  hex8() { printf '0x%08x' "$1"; }
  printf '%s\n' "$listing" | awk -v port=":$INBOUND_PORT" -v tmark="== $(hex8 "$TPROXY_MARK")" -v cmark="== $(hex8 "$MARK") return" -v mask="& $(hex8 "$MASK")" '
    /^[ \t]*chain / { chain = $2; next }
    /^[ \t]*(type|policy) / { next }
    /^[ \t]*}/ { chain = ""; next }
    chain != "" && NF > 0 { n[chain]++; text[chain] = text[chain] "\n" $0 }
    END {
      ok = n["prerouting"] == 2 && n["output"] == 3
      ok = ok && index(text["prerouting"], "tproxy to " port " accept") && index(text["prerouting"], mask " " tmark) && index(text["prerouting"], "@pods")
      ok = ok && index(text["output"], mask " " cmark) && index(text["output"], mask " " tmark) && index(text["output"], "@pods")
      exit ok ? 0 : 1
    }'
}

# nft_setup: the table, its set and chains, in one nft transaction (atomic: no moment without the rules; the set and
# its elements are kept). Skipped when already in place.
nft_setup() {
  if nft_in_place; then return 0; fi
  new_conn="meta l4proto tcp ct direction original ct state new ct status dnat ip daddr @pods ct mark set ct mark and $KEEP_MASK or $TPROXY_MARK"
  marked_conn="meta l4proto tcp ct direction original ct mark and $MASK == $TPROXY_MARK meta mark set meta mark and $KEEP_MASK or $TPROXY_MARK"
  script="add table ip $NFT_TABLE
add set ip $NFT_TABLE pods { type ipv4_addr; }
add chain ip $NFT_TABLE prerouting { type filter hook prerouting priority -99; policy accept; }
add chain ip $NFT_TABLE output { type route hook output priority -99; policy accept; }
flush chain ip $NFT_TABLE prerouting
flush chain ip $NFT_TABLE output
add rule ip $NFT_TABLE prerouting $new_conn
add rule ip $NFT_TABLE prerouting $marked_conn tproxy to :$INBOUND_PORT accept
add rule ip $NFT_TABLE output meta mark and $MASK == $MARK return
add rule ip $NFT_TABLE output $new_conn
add rule ip $NFT_TABLE output $marked_conn"
  if [ "$DRY_RUN" = true ]; then
    printf '%s\n' "$script" | while IFS= read -r line; do printf "%s '%s'\n" "$NFT" "$line"; done
    return 0
  fi
  printf '%s\n' "$script" | "$NFT" -f - || die "$NFT -f failed to create the table ip $NFT_TABLE (its message is above): the kernel needs nf_tables with nft_tproxy, nft_ct and nft_socket (modprobe nft_tproxy)"
}

# route_setup: marked packets are delivered locally (the TPROXY socket, or loopback for node-local clients).
route_setup() {
  if [ "$DRY_RUN" = true ] && ! nft_readable; then
    ip_change -4 rule add fwmark "$TPROXY_MARK/$MASK" lookup "$ROUTE_TABLE"
    ip_change -4 route replace local 0.0.0.0/0 dev lo table "$ROUTE_TABLE"
    return 0
  fi
  if ! "$IPROUTE" -4 rule show 2>/dev/null | grep -q "fwmark $TPROXY_MARK/$MASK lookup $ROUTE_TABLE\b"; then
    ip_change -4 rule add fwmark "$TPROXY_MARK/$MASK" lookup "$ROUTE_TABLE"
  fi
  if ! "$IPROUTE" -4 route show table "$ROUTE_TABLE" 2>/dev/null | grep -q '^local default dev lo\b'; then
    ip_change -4 route replace local 0.0.0.0/0 dev lo table "$ROUTE_TABLE"
  fi
}

use_family 4
require_state
setup
require_nft
nft_setup
route_setup

use_family 6
if [ -n "$IPT_FORCED" ] || readable; then
  require_state
  setup
fi
