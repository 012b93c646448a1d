#!/usr/bin/env bash
# bench/unique.sh: what unique keys cost. In one run, on one disk: the bulk
# push of N different lines without and with --key-from-line (alternating,
# median of REPS), the bytes each leaves on disk, the same N lines pushed
# again (every one a duplicate: nothing stored), one-message pushes with a
# new --key into a queue holding N keys against one holding 1,000, and
# pop+ack cycles on the keyed queue N deep against the plain one.
#
#   bench/unique.sh [--lines N] [--reps R] [--cycles C] [--bin PATH] [--store fs|sqlite]
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" unique "$@"
INPUT=$SCRATCH/lines
lines "$INPUT" "$LINES"
SMALL=$SCRATCH/small
lines "$SMALL" 1000

# Bulk push: plain and keyed in turn, each into a fresh queue of a fresh spool.
r=$(bulk_pair keyed --key-from-line)
read -r mp mk dp dk <<<"$r"
DEEP=$SCRATCH/keyed$REPS

# The same lines again: every key held, nothing stored.
again=$(bulk_push "$DEEP" "$INPUT" --key-from-line)
pushed=$("$BIN" --dir "$DEEP" stats q --json | sed 's/.*"pushed":\([0-9]*\).*/\1/')
[[ $pushed -eq $LINES ]] || { echo "unique.sh: the second push stored $((pushed - LINES)) messages" >&2; exit 1; }

# One push of a new key per process, into N keys held and into 1,000.
"$BIN" --dir "$SCRATCH/shallow" --store "$STORE" push q --lines --key-from-line <"$SMALL" >/dev/null
one() {
  local spool=$1 i=$2 t0 t1
  t0=$(now)
  "$BIN" --dir "$spool" push q --key "new-$i" "single $i" >/dev/null
  t1=$(now)
  echo $((t1 - t0))
}
r=$(medians one "$DEEP" "$SCRATCH/shallow")
read -r md ms <<<"$r"

# pop+ack at depth N: plain against keyed, alternating.
r=$(medians cycle "$SCRATCH/plain$REPS" "$DEEP")
read -r pp pk <<<"$r"

printf 'store %s, %d lines of 100 bytes, median of %d pushes, %d single pushes and pop+ack cycles; %s\n' \
  "$STORE" "$LINES" "$REPS" "$CYCLES" "$("$BIN" --version)"
printf '%-40s %12s %14s %8s\n' "" "plain" "keyed" "ratio"
awk -v a="$mp" -v b="$mk" 'BEGIN { printf "%-40s %10.3f s %12.3f s %7.2fx\n", "bulk push (--key-from-line)", a / 1e6, b / 1e6, b / a }'
awk -v a="$mp" -v b="$again" 'BEGIN { printf "%-40s %10.3f s %12.3f s %7.2fx\n", "  the same lines again, all duplicates", a / 1e6, b / 1e6, b / a }'
awk -v a="$dp" -v b="$dk" -v n="$LINES" 'BEGIN { printf "%-40s %9.1f MB %11.1f MB %7.2fx\n", "on disk", a / 1e6, b / 1e6, b / a;
  printf "%-40s %10.1f B %12.1f B\n", "  per message", a / n, b / n }'
awk -v a="$ms" -v b="$md" -v n="$LINES" 'BEGIN { printf "%-40s %9.2f ms %11.2f ms %7.2fx\n", "push --key, 1000 keys held vs " n, a / 1e3, b / 1e3, b / a }'
awk -v a="$pp" -v b="$pk" -v n="$LINES" 'BEGIN { printf "%-40s %9.2f ms %11.2f ms %7.2fx\n", "pop+ack cycle at depth " n, a / 1e3, b / 1e3, b / a }'
