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
change() {
  if [ "$DRY_RUN" = true ]; then
    printf '%s -w -t nat' "$IPT"
    printf ' %s' "$@"
    printf '\n'
    return 0
  fi
  "$IPT" -w -t nat "$@" || die "$IPT -w -t nat $* failed (its message is above)"
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
