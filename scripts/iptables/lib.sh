# shellcheck shell=sh
# Shared by Strait's capture scripts (node-setup.sh, node-teardown.sh, pod-add.sh, pod-del.sh), which source it from
# their own directory. Not meant to be run on its own. See node-setup.sh for what the rules do (DESIGN §6a).
#
# Backend: STRAIT_IPTABLES names the iptables binary when set; otherwise iptables-nft when it is on PATH and can read
# the nat table, else iptables-legacy (same test), else plain iptables. IPv6 (ip6tables) likewise: STRAIT_IP6TABLES,
# else ip6tables-nft, ip6tables-legacy, ip6tables. Every change runs as `BIN -w -t nat ...`.
#
# --dry-run (DRY_RUN=true): each command that would change the nat table is printed on stdout instead of run, one per
# line, exactly as it would run (`iptables -w -t nat -A ...`). Reading the table (-S, -C) is not a change: when the
# nat table can be read (root, binary present) the scripts read it and print only what this state calls for; when it
# cannot (no root, no binary) they print the full set, as for a node without any Strait rule (deletions: as for a node
# holding all of them). Nothing else is printed on stdout; errors go to stderr with the fix, and the exit status is 1.

ME=${0##*/}
ME=${ME%.sh}
DRY_RUN=false
# Rule specs are kept as space-separated words and split unquoted; never expand them as file patterns.
set -f

die() {
  printf 'strait %s: %s\n' "$ME" "$*" >&2
  exit 1
}

# can_read BIN: BIN is on PATH and can list the nat table (one chain of it: on a node with many NAT rules, listing
# them all would be slow).
can_read() { command -v "$1" >/dev/null 2>&1 && "$1" -w -t nat -S PREROUTING >/dev/null 2>&1; }

# choose_backend NAME FORCED: sets CHOSEN to FORCED when set, else NAME-nft or NAME-legacy (the first that can read the
# nat table), else NAME; and CHOSEN_READABLE to true when CHOSEN can read the nat table.
choose_backend() {
  CHOSEN=$2 CHOSEN_READABLE=false
  if [ -z "$CHOSEN" ]; then
    for candidate in "$1-nft" "$1-legacy"; do
      if can_read "$candidate"; then
        CHOSEN=$candidate CHOSEN_READABLE=true
        return 0
      fi
    done
    CHOSEN=$1
  fi
  if can_read "$CHOSEN"; then CHOSEN_READABLE=true; fi
}

# use_family 4|6: the backend every later ipt/change call uses (IPT, its environment variable IPT_VAR, and READABLE:
# whether the nat table can be read). Each family is probed once, when first used.
IPT4='' IPT6='' READABLE4='' READABLE6=''
use_family() {
  case "$1" in
    4)
      if [ -z "$IPT4" ]; then
        choose_backend iptables "${STRAIT_IPTABLES:-}"
        IPT4=$CHOSEN READABLE4=$CHOSEN_READABLE
      fi
      IPT=$IPT4 READABLE=$READABLE4 IPT_VAR=STRAIT_IPTABLES IPT_FORCED=${STRAIT_IPTABLES:-}
      ;;
    6)
      if [ -z "$IPT6" ]; then
        choose_backend ip6tables "${STRAIT_IP6TABLES:-}"
        IPT6=$CHOSEN READABLE6=$CHOSEN_READABLE
      fi
      IPT=$IPT6 READABLE=$READABLE6 IPT_VAR=STRAIT_IP6TABLES IPT_FORCED=${STRAIT_IP6TABLES:-}
      ;;
    *) die "BUG: use_family $1" ;;
  esac
}

# readable: true when the current family's nat table can be read (then dry runs follow the current state).
readable() { [ "$READABLE" = true ]; }

# require_state: a real run needs the nat table; a dry run goes on without it (and prints the full set).
require_state() {
  readable && return 0
  [ "$DRY_RUN" = true ] && return 0
  if ! command -v "$IPT" >/dev/null 2>&1; then
    if [ -n "$IPT_FORCED" ]; then
      die "$IPT not found ($IPT_VAR=$IPT_FORCED): apt-get install -y iptables, or set $IPT_VAR to an iptables binary"
    fi
    die "$IPT not found: apt-get install -y iptables"
  fi
  die "cannot read the nat table with $IPT: run as root (NET_ADMIN), on a kernel with nf_tables or iptable_nat"
}

# ipt ARGS...: a read-only look at the nat table (-S, -C); runs in dry runs too.
ipt() { "$IPT" -w -t nat "$@"; }

# change ARGS...: a change to the nat table; printed instead of run in a dry run.
change() { run_change "$IPT" -w -t nat "$@"; }

# run_change CMD ARGS...: one command that changes the node; in a dry run printed instead (words joined by spaces).
run_change() {
  if [ "$DRY_RUN" = true ]; then
    printf '%s' "$1"
    shift
    printf ' %s' "$@"
    printf '\n'
    return 0
  fi
  "$@" || die "$* failed (its message is above)"
}

# valid_port VALUE NAME: dies unless VALUE is a TCP port number.
valid_port() {
  case "$1" in '' | *[!0-9]* | 0*) die "invalid port '$1' in $2: expected a number from 1 to 65535" ;; esac
  if [ "${#1}" -gt 5 ] || [ "$1" -gt 65535 ]; then die "invalid port '$1' in $2: expected a number from 1 to 65535"; fi
}

# load_ports: OUTBOUND_PORT, INBOUND_PORT, HBONE_PORT from the environment (15001, 15006, 15008), checked.
load_ports() {
  OUTBOUND_PORT=${STRAIT_OUTBOUND_PORT:-15001}
  INBOUND_PORT=${STRAIT_INBOUND_PORT:-15006}
  HBONE_PORT=${STRAIT_HBONE_PORT:-15008}
  valid_port "$OUTBOUND_PORT" STRAIT_OUTBOUND_PORT
  valid_port "$INBOUND_PORT" STRAIT_INBOUND_PORT
  valid_port "$HBONE_PORT" STRAIT_HBONE_PORT
}

# valid_ipv4 ADDR: four decimal octets 0-255, no leading zeros (some parsers read 010 as octal).
valid_ipv4() (
  case "$1" in .* | *. | *..*) exit 1 ;; esac
  IFS=.
  # shellcheck disable=SC2086 # split on the dots
  set -- $1
  [ "$#" -eq 4 ] || exit 1
  for octet in "$@"; do
    case "$octet" in '' | *[!0-9]* | 0?*) exit 1 ;; esac
    [ "${#octet}" -le 3 ] && [ "$octet" -le 255 ] || exit 1
  done
)

# valid_ipv6 ADDR: eight groups of at most four hex digits, or fewer with one "::"; an IPv4 tail counts as two groups.
valid_ipv6() (
  addr=$1
  groups=8
  case "$addr" in *:::* | *::*::* | :[!:]* | *[!:]:) exit 1 ;; esac
  case "${addr##*:}" in
    *.*)
      valid_ipv4 "${addr##*:}" || exit 1
      addr="${addr%:*}:0"
      groups=7
      ;;
  esac
  case "$addr" in *.*) exit 1 ;; esac
  IFS=:
  # shellcheck disable=SC2086 # split on the colons
  set -- $addr
  n=0
  for group in "$@"; do
    case "$group" in ?????*) exit 1 ;; esac
    if [ -n "$group" ]; then n=$((n + 1)); fi
  done
  case "$addr" in
    *::*) [ "$n" -lt "$groups" ] ;;
    *) [ "$n" -eq "$groups" ] ;;
  esac
)

# valid_ip ADDR: one IPv4 or IPv6 address, never a prefix (a typo must not capture a whole network).
valid_ip() {
  case "$1" in
    '' | */* | *[!0-9a-fA-F:.]*) return 1 ;;
    *:*) valid_ipv6 "$1" ;;
    *) valid_ipv4 "$1" ;;
  esac
}

# family_of ADDR: 6 for an IPv6 address, else 4.
family_of() {
  case "$1" in *:*) echo 6 ;; *) echo 4 ;; esac
}

# pod_addresses ADDR...: checks every address before anything changes (so one typo changes nothing), and prints them
# one per line, IPv6 in lower case (the rules' tag is compared as text).
pod_addresses() {
  [ "$#" -ge 1 ] || die "usage: $ME.sh [--dry-run] POD_IP [POD_IP...]"
  for ip in "$@"; do
    valid_ip "$ip" || die "invalid pod address '$ip': expected one IPv4 or IPv6 address (no prefix length)"
  done
  for ip in "$@"; do printf '%s\n' "$ip"; done | tr 'A-F' 'a-f'
}

# tagged_rules CHAIN IP: numbers of the rules in CHAIN tagged "strait-pod=IP", highest first (so deleting them in
# this order does not shift the numbers still to delete). Fails when CHAIN cannot be listed.
tagged_rules() {
  rules=$(ipt -S "$1") || return 1
  printf '%s\n' "$rules" | awk -v tag="strait-pod=$2" '
    NR > 1 { for (i = 1; i <= NF; i++) { f = $i; gsub(/"/, "", f); if (f == tag) { hit[++n] = NR - 1; break } } }
    END { for (j = n; j >= 1; j--) print hit[j] }'
}

# chain_exists CHAIN: the chain is in the nat table (assumed so when the table cannot be read).
chain_exists() {
  readable || return 0
  ipt -S "$1" >/dev/null 2>&1
}

# --- Service-DNAT capture (nftables table `ip strait`, policy routing) -----------------------------------------------
# A connection to a Service VIP (or a NodePort) that the node's own NAT (kube-proxy, the lab's service chains) turns
# into a connection to an enrolled pod of this node never meets STRAIT_INBOUND: nat PREROUTING decides once, and the
# service DNAT wins over Strait's rules, which saw only the VIP. iptables cannot look at a packet after the nat stage
# in PREROUTING, so these rules live in an nftables table whose chains run just after it (priority -99, NAT is -100):
#   chain prerouting (filter, -99):  a new TCP connection, DNATed by someone else, to an address in set `pods`
#                                    -> its conntrack entry gets ct mark TPROXY_MARK; every packet of such a connection
#                                    is marked TPROXY_MARK and TPROXYed to :INBOUND_PORT (the ztunnel's transparent
#                                    plaintext listener, which sees the pod's address and port as its local address)
#   chain output (route, -99):       the same for node-local clients (host-network processes calling a VIP), whose
#                                    packets the mark reroutes through loopback into the prerouting chain; the
#                                    ztunnel's own sockets (CAPTURE_MARK) are skipped
#   ip rule fwmark TPROXY_MARK/MASK lookup ROUTE_TABLE; ip route local 0.0.0.0/0 dev lo table ROUTE_TABLE
# Because the connection, not the set, carries the mark after the first packet, a pod that leaves the mesh keeps its
# live captured connections. Connections Strait's own REDIRECT rules handled never match (after REDIRECT their
# destination is the node's address, not a pod's). IPv4 only (IPv6 capture does not exist yet).
NFT_TABLE=strait

# hex32 VALUE: VALUE (decimal or 0x hex, at most 32 bits) as lower-case hex, the way iptables -S prints marks.
hex32() {
  case "$1" in
    0[xX]*) case "${1#0[xX]}" in '' | *[!0-9a-fA-F]*) return 1 ;; esac ;;
    *) case "$1" in '' | *[!0-9]*) return 1 ;; esac ;;
  esac
  value=$(printf '%d' "$1" 2>/dev/null) || return 1
  [ "$value" -ge 0 ] && [ "$value" -le 4294967295 ] || return 1
  printf '0x%x\n' "$value"
}

# load_marks: MARK and MASK (STRAIT_CAPTURE_MARK 0x539, the ztunnel's own sockets; STRAIT_CAPTURE_MASK 0xfff),
# MARK_MATCH as iptables -S prints it (the mask left out when it is all ones); TPROXY_MARK (STRAIT_TPROXY_MARK 0x111,
# connections captured after a service DNAT), KEEP_MASK (the mark bits Strait leaves alone); ROUTE_TABLE
# (STRAIT_ROUTE_TABLE 133); NFT (STRAIT_NFT or nft) and IPROUTE (STRAIT_IP or ip). All checked.
load_marks() {
  MARK=$(hex32 "${STRAIT_CAPTURE_MARK:-0x539}") || die "invalid STRAIT_CAPTURE_MARK '${STRAIT_CAPTURE_MARK:-}': expected a 32-bit number (e.g. 0x539)"
  MASK=$(hex32 "${STRAIT_CAPTURE_MASK:-0xfff}") || die "invalid STRAIT_CAPTURE_MASK '${STRAIT_CAPTURE_MASK:-}': expected a 32-bit number (e.g. 0xfff)"
  # shellcheck disable=SC2034 # used by the scripts that source this file
  if [ "$MASK" = 0xffffffff ]; then MARK_MATCH=$MARK; else MARK_MATCH=$MARK/$MASK; fi
  TPROXY_MARK=$(hex32 "${STRAIT_TPROXY_MARK:-0x111}") || die "invalid STRAIT_TPROXY_MARK '${STRAIT_TPROXY_MARK:-}': expected a 32-bit number (e.g. 0x111)"
  if [ $((TPROXY_MARK & ~MASK)) -ne 0 ] || [ "$TPROXY_MARK" = 0x0 ]; then
    die "invalid STRAIT_TPROXY_MARK $TPROXY_MARK: it must be non-zero and inside STRAIT_CAPTURE_MASK $MASK"
  fi
  [ $((TPROXY_MARK & MASK)) -ne $((MARK & MASK)) ] || die "STRAIT_TPROXY_MARK $TPROXY_MARK equals STRAIT_CAPTURE_MARK $MARK under the mask $MASK: give them different values"
  # shellcheck disable=SC2034 # used by the scripts that source this file
  KEEP_MASK=$(printf '0x%x' $((~MASK & 0xffffffff)))
  ROUTE_TABLE=${STRAIT_ROUTE_TABLE:-133}
  case "$ROUTE_TABLE" in '' | *[!0-9]* | 0*) die "invalid STRAIT_ROUTE_TABLE '$ROUTE_TABLE': expected a routing table number from 1 to 252" ;; esac
  if [ "${#ROUTE_TABLE}" -gt 3 ] || [ "$ROUTE_TABLE" -gt 252 ]; then
    die "invalid STRAIT_ROUTE_TABLE '$ROUTE_TABLE': expected a routing table number from 1 to 252"
  fi
  NFT=${STRAIT_NFT:-nft}
  IPROUTE=${STRAIT_IP:-ip}
}

# nft_readable: nft is installed and can list tables here (root).
nft_readable() { command -v "$NFT" >/dev/null 2>&1 && "$NFT" list tables >/dev/null 2>&1; }

# require_nft: a real run needs nft and ip; a dry run goes on without them.
require_nft() {
  [ "$DRY_RUN" = true ] && return 0
  command -v "$NFT" >/dev/null 2>&1 || die "$NFT not found (Service-VIP capture needs nftables): apt-get install -y nftables, or set STRAIT_NFT to the nft binary"
  "$NFT" list tables >/dev/null 2>&1 || die "cannot list nftables tables with $NFT: run as root (NET_ADMIN), on a kernel with nf_tables"
  command -v "$IPROUTE" >/dev/null 2>&1 || die "$IPROUTE not found: apt-get install -y iproute2, or set STRAIT_IP to the ip binary"
}

# nft_change COMMAND: one nft command given as one word (e.g. 'add element ip strait pods { 198.18.0.2 }'); printed
# instead of run in a dry run, quoted so the printed line can be pasted into a shell.
nft_change() {
  if [ "$DRY_RUN" = true ]; then
    printf "%s '%s'\n" "$NFT" "$1"
    return 0
  fi
  "$NFT" "$1" || die "$NFT '$1' failed (its message is above)"
}

# ip_change ARGS...: one ip(8) command (a change); printed instead of run in a dry run.
ip_change() { run_change "$IPROUTE" "$@"; }


# nft_table_exists: the table `ip strait` exists (assumed absent when nft cannot read).
nft_table_exists() { nft_readable && "$NFT" list table ip "$NFT_TABLE" >/dev/null 2>&1; }

# nft_has_pod IP: IP is an element of the set `pods`.
nft_has_pod() { nft_table_exists && "$NFT" get element ip "$NFT_TABLE" pods "{ $1 }" >/dev/null 2>&1; }
