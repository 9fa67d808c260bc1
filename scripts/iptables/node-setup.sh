#!/bin/sh
# Strait node capture: create Strait's own chains in the nat table (DESIGN §6a). Idempotent.
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
#       1. mark MARK/MASK     -> RETURN   the ztunnel's own sockets (SO_MARK, see original-dst.ts connectMarked)
#       2. -j STRAIT_INBOUND              a node-local, unmarked client reaching an enrolled pod is captured too
#
# From-pod rules are consulted before to-pod rules, so pod-to-pod traffic on one node is captured as outbound
# (15001) first; the ztunnel's own connection onwards carries the mark and is not captured again.
# STRAIT_OUTBOUND and STRAIT_INBOUND hold one small rule set per pod, managed by pod-add.sh / pod-del.sh.
# REDIRECT rewrites the destination to the address of the interface the packet came in on (PREROUTING) or
# 127.0.0.1 (OUTPUT), keeping the source; the ztunnel reads the original destination with SO_ORIGINAL_DST.
# In the lab a "node" is a network namespace and pods are namespaces routed through it over veths, so pod traffic
# meets the node's PREROUTING hook exactly as it would on a Kubernetes node.
#
# Parameters (environment): STRAIT_IPTABLES (default iptables; ip6tables for IPv6),
#   STRAIT_CAPTURE_MARK (default 0x539, Istio's 1337), STRAIT_CAPTURE_MASK (default 0xfff).
set -eu

IPT="${STRAIT_IPTABLES:-iptables}"
MARK="${STRAIT_CAPTURE_MARK:-0x539}"
MASK="${STRAIT_CAPTURE_MASK:-0xfff}"

ipt() { "$IPT" -w -t nat "$@"; }
die() { echo "strait node-setup: $*" >&2; exit 1; }

command -v "$IPT" >/dev/null 2>&1 || die "$IPT not found: install iptables (apt-get install -y iptables)"
ipt -S >/dev/null 2>&1 || die "cannot read the nat table with $IPT: run as root (NET_ADMIN) on a kernel with iptable_nat/nf_tables"

ensure_chain() { ipt -S "$1" >/dev/null 2>&1 || ipt -N "$1"; }
# ensure_rule CHAIN RULE...: append RULE unless an identical rule is already there.
ensure_rule() { c="$1"; shift; ipt -C "$c" "$@" 2>/dev/null || ipt -A "$c" "$@"; }
# ensure_jump FROM TO: the jump goes first in the built-in chain, so Strait sees traffic before other NAT rules.
ensure_jump() { ipt -C "$1" -j "$2" 2>/dev/null || ipt -I "$1" 1 -j "$2"; }

for chain in STRAIT_OUTBOUND STRAIT_INBOUND STRAIT_PREROUTING STRAIT_OUTPUT; do ensure_chain "$chain"; done

ensure_rule STRAIT_PREROUTING -m mark --mark "$MARK/$MASK" -j RETURN
ensure_rule STRAIT_PREROUTING -j STRAIT_OUTBOUND
ensure_rule STRAIT_PREROUTING -j STRAIT_INBOUND
ensure_rule STRAIT_OUTPUT -m mark --mark "$MARK/$MASK" -j RETURN
ensure_rule STRAIT_OUTPUT -j STRAIT_INBOUND

ensure_jump PREROUTING STRAIT_PREROUTING
ensure_jump OUTPUT STRAIT_OUTPUT
