# bench/lib.sh: what bench/ttl.sh and bench/unique.sh share. Sourced, with
# BIN, STORE and SCRATCH set.

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
cycle() {
  local spool=$1 t0 t1 r
  t0=$(now)
  r=$("$BIN" --dir "$spool" pop q --json | sed 's/.*"receipt":"\([0-9a-f]*\)".*/\1/')
  "$BIN" --dir "$spool" ack q "$r"
  t1=$(now)
  echo $((t1 - t0))
}
