#!/usr/bin/env bash
# bench/groups.sh: what ordered groups cost. In one run, on one disk: the
# bulk push of N lines without and with --group (alternating, median of
# REPS) and the bytes each leaves on disk; then pop+ack cycles on the plain
# queue N deep against a queue N deep in ten groups (N/10 lines each, one
# push per group: every group's head is near the front of its block), and
# the worst case: a plain push and pop+ack behind one group of N lines
# whose head is leased, so each pop reads past the N-1 messages waiting
# behind it (against a plain push and pop+ack of the plain queue); and
# `stats` of that queue (which reads every waiting message of a queue that
# has had groups, to count the blocked ones) against the plain queue's.
#
#   bench/groups.sh [--lines N] [--reps R] [--cycles C] [--bin PATH] [--store fs|sqlite]
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" groups "$@"
INPUT=$SCRATCH/lines
lines "$INPUT" "$LINES"

# Bulk push: plain and in one group in turn, each into a fresh spool.
r=$(bulk_pair grouped --group g)
read -r mp mg dp dg <<<"$r"

# A queue N deep in ten groups.
MIXED=$SCRATCH/mixed
part=$((LINES / 10))
for g in 0 1 2 3 4 5 6 7 8 9; do
  sed -n "$((g * part + 1)),$(((g + 1) * part))p" "$INPUT" |
    "$BIN" --dir "$MIXED" --store "$STORE" push q --lines --group "g$g" >/dev/null
done
# One group N deep, its head leased for the whole run.
BLOCKED=$SCRATCH/blocked
"$BIN" --dir "$BLOCKED" --store "$STORE" push q --lines --group g <"$INPUT" >/dev/null
"$BIN" --dir "$BLOCKED" pop q --lease 1h >/dev/null
r=$(medians cycle "$SCRATCH/plain$REPS" "$MIXED")
read -r pp pm <<<"$r"
r=$(medians2 plain_cycle "$SCRATCH/plain$REPS" plain_cycle "$BLOCKED")
read -r bp bb <<<"$r"
stats_time() {
  local t0 t1
  t0=$(now)
  "$BIN" --dir "$1" stats q --json >/dev/null
  t1=$(now)
  echo $((t1 - t0))
}
r=$(medians stats_time "$SCRATCH/plain$REPS" "$BLOCKED")
read -r sp sb <<<"$r"
blocked=$("$BIN" --dir "$BLOCKED" stats q --json | sed 's/.*"groups_blocked":\([0-9]*\).*/\1/')
[[ $blocked == 1 ]] || { echo "groups.sh: $blocked groups blocked, not 1" >&2; exit 1; }

printf 'store %s, %d lines of 100 bytes, median of %d pushes and %d pop+ack cycles; %s\n' \
  "$STORE" "$LINES" "$REPS" "$CYCLES" "$("$BIN" --version)"
printf '%-46s %12s %14s %8s\n' "" "plain" "groups" "ratio"
awk -v a="$mp" -v b="$mg" 'BEGIN { printf "%-46s %10.3f s %12.3f s %7.2fx\n", "bulk push (--group g)", a / 1e6, b / 1e6, b / a }'
awk -v a="$dp" -v b="$dg" -v n="$LINES" 'BEGIN { printf "%-46s %9.1f MB %11.1f MB %7.2fx\n", "on disk", a / 1e6, b / 1e6, b / a;
  printf "%-46s %10.1f B %12.1f B\n", "  per message", a / n, b / n }'
awk -v a="$pp" -v b="$pm" -v n="$LINES" 'BEGIN { printf "%-46s %9.2f ms %11.2f ms %7.2fx\n", "pop+ack at depth " n ", ten groups", a / 1e3, b / 1e3, b / a }'
awk -v a="$bp" -v b="$bb" -v n="$LINES" 'BEGIN { printf "%-46s %9.2f ms %11.2f ms %7.2fx\n", "push + pop+ack behind a blocked group of " n, a / 1e3, b / 1e3, b / a }'
awk -v a="$sp" -v b="$sb" -v n="$LINES" 'BEGIN { printf "%-46s %9.2f ms %11.2f ms %7.2fx\n", "stats at depth " n ", one group blocked", a / 1e3, b / 1e3, b / a }'
