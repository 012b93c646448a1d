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
plain=() ttl=()
for r in $(seq 1 "$REPS"); do
  plain+=("$(bulk_push "$SCRATCH/plain$r" "$INPUT")")
  ttl+=("$(bulk_push "$SCRATCH/ttl$r" "$INPUT" --ttl 1h)")
  [[ $r -lt $REPS ]] && rm -rf "$SCRATCH/plain$r" "$SCRATCH/ttl$r"
done
mp=$(printf '%s\n' "${plain[@]}" | median)
mt=$(printf '%s\n' "${ttl[@]}" | median)
dp=$(du -sb "$SCRATCH/plain$REPS" | cut -f1)
dt=$(du -sb "$SCRATCH/ttl$REPS" | cut -f1)

# pop+ack at depth N: a cycle is one pop and one ack, alternating queues.
cp_=() ct=()
for _ in $(seq 1 "$CYCLES"); do
  cp_+=("$(cycle "$SCRATCH/plain$REPS")")
  ct+=("$(cycle "$SCRATCH/ttl$REPS")")
done
pp=$(printf '%s\n' "${cp_[@]}" | median)
pt=$(printf '%s\n' "${ct[@]}" | median)

printf 'store %s, %d lines of 100 bytes, median of %d pushes, %d pop+ack cycles; %s\n' \
  "$STORE" "$LINES" "$REPS" "$CYCLES" "$("$BIN" --version)"
printf '%-34s %12s %12s %8s\n' "" "plain" "--ttl 1h" "ratio"
awk -v a="$mp" -v b="$mt" 'BEGIN { printf "%-34s %10.3f s %10.3f s %7.2fx\n", "bulk push", a / 1e6, b / 1e6, b / a }'
awk -v a="$dp" -v b="$dt" -v n="$LINES" 'BEGIN { printf "%-34s %9.1f MB %9.1f MB %7.2fx\n", "on disk", a / 1e6, b / 1e6, b / a;
  printf "%-34s %10.1f B %10.1f B\n", "  per message", a / n, b / n }'
awk -v a="$pp" -v b="$pt" -v n="$LINES" 'BEGIN { printf "%-34s %9.2f ms %9.2f ms %7.2fx\n", "pop+ack cycle at depth " n, a / 1e3, b / 1e3, b / a }'
