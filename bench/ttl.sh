#!/usr/bin/env bash
# bench/ttl.sh: what `push --ttl` costs. In one run, on one disk: the bulk
# push of N lines without and with --ttl (alternating, median of REPS), the
# bytes each leaves on disk, and pop+ack cycles on a queue N deep of
# messages with a TTL against one N deep without.
#
#   bench/ttl.sh [--lines N] [--reps R] [--cycles C] [--bin PATH] [--store fs|sqlite]
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" ttl "$@"
INPUT=$SCRATCH/lines
lines "$INPUT" "$LINES"

# Bulk push: plain and --ttl in turn, each into a fresh queue of a fresh spool.
r=$(bulk_pair ttl --ttl 1h)
read -r mp mt dp dt <<<"$r"

# pop+ack at depth N: a cycle is one pop and one ack, alternating queues.
r=$(medians cycle "$SCRATCH/plain$REPS" "$SCRATCH/ttl$REPS")
read -r pp pt <<<"$r"

printf 'store %s, %d lines of 100 bytes, median of %d pushes, %d pop+ack cycles; %s\n' \
  "$STORE" "$LINES" "$REPS" "$CYCLES" "$("$BIN" --version)"
printf '%-34s %12s %12s %8s\n' "" "plain" "--ttl 1h" "ratio"
awk -v a="$mp" -v b="$mt" 'BEGIN { printf "%-34s %10.3f s %10.3f s %7.2fx\n", "bulk push", a / 1e6, b / 1e6, b / a }'
awk -v a="$dp" -v b="$dt" -v n="$LINES" 'BEGIN { printf "%-34s %9.1f MB %9.1f MB %7.2fx\n", "on disk", a / 1e6, b / 1e6, b / a;
  printf "%-34s %10.1f B %10.1f B\n", "  per message", a / n, b / n }'
awk -v a="$pp" -v b="$pt" -v n="$LINES" 'BEGIN { printf "%-34s %9.2f ms %9.2f ms %7.2fx\n", "pop+ack cycle at depth " n, a / 1e3, b / 1e3, b / a }'
