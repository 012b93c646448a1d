# bench/lib.sh: what bench/ttl.sh, unique.sh, priority.sh and groups.sh share. Sourced by a
# script with its arguments: `source bench/lib.sh NAME "$@"` reads
# --lines N --reps R --cycles C --bin PATH --store fs|sqlite (-h prints
# the script's header), builds the binary if missing, and makes SCRATCH,
# removed at exit. Then the functions below.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LINES=1000000 REPS=5 CYCLES=200 BIN="$REPO/target/release/spoolmq" STORE=fs
BENCH=$1
shift
while [[ $# -gt 0 ]]; do
  case $1 in
    --lines) LINES=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --cycles) CYCLES=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --store) STORE=$2; shift ;;
    -h|--help) sed -n '2,/^set /p' "$0" | sed '$d'; exit 0 ;;
    *) echo "$BENCH: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $BIN ]] || (cd "$REPO" && cargo build --release -q)
SCRATCH=$(mktemp -d "${TMPDIR:-$REPO/target}/$BENCH-bench.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

now() { echo "${EPOCHREALTIME/./}"; }   # microseconds
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# lines FILE N: N lines of 100 bytes (99 digits and a newline), all different.
lines() {
  awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%099d\n", i }' >"$1"
}

# bulk_push SPOOL INPUT FLAGS...: pushes INPUT's lines into queue q of SPOOL
# (a fresh one); prints the microseconds it took.
bulk_push() {
  local spool=$1 input=$2 t0 t1
  shift 2
  t0=$(now)
  "$BIN" --dir "$spool" --store "$STORE" push q --lines "$@" <"$input" >/dev/null
  t1=$(now)
  echo $((t1 - t0))
}

# cycle SPOOL: one pop and one ack of queue q; prints the microseconds.
# (A second argument, from `medians`, is not used.)
cycle() {
  local spool=$1 t0 t1 r
  t0=$(now)
  r=$("$BIN" --dir "$spool" pop q --json | sed 's/.*"receipt":"\([0-9a-f]*\)".*/\1/')
  "$BIN" --dir "$spool" ack q "$r"
  t1=$(now)
  echo $((t1 - t0))
}

# bulk_pair NAME FLAGS...: REPS bulk pushes of INPUT, plain and with FLAGS
# in turn, each into a fresh spool (the last of each kept:
# $SCRATCH/plain$REPS and $SCRATCH/NAME$REPS). Prints the median
# microseconds of each, then the bytes each kept spool takes.
bulk_pair() {
  local name=$1 r plain=() with=()
  shift
  for r in $(seq 1 "$REPS"); do
    plain+=("$(bulk_push "$SCRATCH/plain$r" "$INPUT")")
    with+=("$(bulk_push "$SCRATCH/$name$r" "$INPUT" "$@")")
    if [[ $r -lt $REPS ]]; then rm -rf "$SCRATCH/plain$r" "$SCRATCH/$name$r"; fi
  done
  echo "$(printf '%s\n' "${plain[@]}" | median) $(printf '%s\n' "${with[@]}" | median)" \
    "$(du -sb "$SCRATCH/plain$REPS" | cut -f1) $(du -sb "$SCRATCH/$name$REPS" | cut -f1)"
}

# medians FN A B: `FN A i` and `FN B i` in turn for i = 1..CYCLES (each
# prints microseconds); prints the median of each.
medians() {
  local fn=$1 a=$2 b=$3 i ta=() tb=()
  for i in $(seq 1 "$CYCLES"); do
    ta+=("$("$fn" "$a" "$i")")
    tb+=("$("$fn" "$b" "$i")")
  done
  echo "$(printf '%s\n' "${ta[@]}" | median) $(printf '%s\n' "${tb[@]}" | median)"
}

# plain_cycle SPOOL I: a plain push of "new I" into queue q, then a cycle.
plain_cycle() {
  "$BIN" --dir "$1" push q "new $2" >/dev/null
  cycle "$1"
}

# medians2 FA A FB B: `FA A i` and `FB B i` in turn for i = 1..CYCLES;
# prints the median of each.
medians2() {
  local i ta=() tb=()
  for i in $(seq 1 "$CYCLES"); do
    ta+=("$("$1" "$2" "$i")")
    tb+=("$("$3" "$4" "$i")")
  done
  echo "$(printf '%s\n' "${ta[@]}" | median) $(printf '%s\n' "${tb[@]}" | median)"
}
