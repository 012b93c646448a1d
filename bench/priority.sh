#!/usr/bin/env bash
# bench/priority.sh: what priorities cost. In one run, on one disk: the
# bulk push of N lines without and with --priority 5 (alternating, median
# of REPS) and the bytes each leaves on disk; then pop+ack cycles on the
# plain queue N deep against a queue N deep in ten priorities (N/10 lines
# each, priority 0 pushed first and 9 last, so the most urgent are the
# newest: what a scan in push order would reach last), and against a queue
# of N plain lines with one priority-9 message pushed behind them before
# each cycle (the head of a lane far from the head of the queue), against
# a plain push before each cycle of the plain queue.
#
#   bench/priority.sh [--lines N] [--reps R] [--cycles C] [--bin PATH] [--store fs|sqlite]
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" priority "$@"
INPUT=$SCRATCH/lines
lines "$INPUT" "$LINES"

# Bulk push: plain and with a priority in turn, each into a fresh spool.
r=$(bulk_pair ranked --priority 5)
read -r mp mr dp dr <<<"$r"

# A queue N deep in ten priorities.
MIXED=$SCRATCH/mixed
part=$((LINES / 10))
for p in 0 1 2 3 4 5 6 7 8 9; do
  sed -n "$((p * part + 1)),$(((p + 1) * part))p" "$INPUT" |
    "$BIN" --dir "$MIXED" --store "$STORE" push q --lines --priority "$p" >/dev/null
done
# N plain lines; each cycle first pushes one message of priority 9.
BEHIND=$SCRATCH/behind
"$BIN" --dir "$BEHIND" --store "$STORE" push q --lines <"$INPUT" >/dev/null
urgent_cycle() {
  "$BIN" --dir "$1" push q --priority 9 "urgent $2" >/dev/null
  cycle "$1"
}
check() {
  local got
  got=$("$BIN" --dir "$1" peek q --json | sed 's/.*"body":"\([^"]*\)".*/\1/')
  [[ $got == "$2"* ]] || { echo "priority.sh: $1 serves $got first, not $2" >&2; exit 1; }
}
check "$MIXED" "$(sed -n "$((9 * part + 1))p" "$INPUT")"
r=$(medians cycle "$SCRATCH/plain$REPS" "$MIXED")
read -r pp pm <<<"$r"
r=$(medians2 plain_cycle "$SCRATCH/plain$REPS" urgent_cycle "$BEHIND")
read -r up ub <<<"$r"
check "$BEHIND" "$(head -1 "$INPUT")"

printf 'store %s, %d lines of 100 bytes, median of %d pushes and %d pop+ack cycles; %s\n' \
  "$STORE" "$LINES" "$REPS" "$CYCLES" "$("$BIN" --version)"
printf '%-46s %12s %14s %8s\n' "" "plain" "priorities" "ratio"
awk -v a="$mp" -v b="$mr" 'BEGIN { printf "%-46s %10.3f s %12.3f s %7.2fx\n", "bulk push (--priority 5)", a / 1e6, b / 1e6, b / a }'
awk -v a="$dp" -v b="$dr" -v n="$LINES" 'BEGIN { printf "%-46s %9.1f MB %11.1f MB %7.2fx\n", "on disk", a / 1e6, b / 1e6, b / a;
  printf "%-46s %10.1f B %12.1f B\n", "  per message", a / n, b / n }'
awk -v a="$pp" -v b="$pm" -v n="$LINES" 'BEGIN { printf "%-46s %9.2f ms %11.2f ms %7.2fx\n", "pop+ack at depth " n ", ten priorities", a / 1e3, b / 1e3, b / a }'
awk -v a="$up" -v b="$ub" -v n="$LINES" 'BEGIN { printf "%-46s %9.2f ms %11.2f ms %7.2fx\n", "push + pop+ack; -p 9, behind " n " plain", a / 1e3, b / 1e3, b / a }'
