#!/usr/bin/env bash
# bench/consume.sh: how fast the consuming side goes, against the pushing
# side and against the floor of starting a process. In one run, on one
# disk, medians of REPS:
#   - a bulk push of N lines, then `pop --count N` of them and `ack -` of
#     the receipts `pop --json` printed (one commit): msg/s of each;
#   - `exec --loop` of C jobs of `true`, against spawning `true` C times
#     (`seq C | xargs -n1 true`, the floor);
#   - `exec --loop --wait 1s` of C jobs (messages waiting, so the wait is
#     never waited; --max-messages ends the run) against `exec --loop`:
#     a worker that waits keeps one watch for its life;
#   - `spoolmq bench --count C` (one process pushing one message per
#     commit, one popping and acking with --wait) end to end, against the
#     same pop+ack loop on a filled queue that never waits (its drain row);
#   - completed jobs/s with 1, 2, 4 and 8 `exec --loop -- true` workers on
#     one queue: the push of W*C/4 messages and their draining, timed
#     together (push + pop + ack, as SteadQ counts a job).
# Row lines are `NAME VALUE UNIT` so scripts can read them.
#
#   bench/consume.sh [--lines N] [--reps R] [--cycles C] [--bin PATH] [--store fs|sqlite]
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" consume "$@"
INPUT=$SCRATCH/lines
lines "$INPUT" "$LINES"

# time_us CMD...: runs CMD, prints the microseconds it took.
time_us() {
  local t0 t1
  t0=$(now)
  "$@"
  t1=$(now)
  echo $((t1 - t0))
}

push_t=() pop_t=() ack_t=()
for ((r = 0; r < REPS; r++)); do
  sp=$SCRATCH/batch$r
  push_t+=("$(bulk_push "$sp" "$INPUT")")
  pop_t+=("$(time_us sh -c '"$1" --dir "$2" pop q --count "$3" --json >"$4"' _ "$BIN" "$sp" "$LINES" "$SCRATCH/popped")")
  ack_t+=("$(time_us sh -c '"$1" --dir "$2" ack q - <"$3"' _ "$BIN" "$sp" "$SCRATCH/popped")")
  acked=$("$BIN" --dir "$sp" stats q --json | sed 's/.*"acked":\([0-9]*\).*/\1/')
  [[ $acked == "$LINES" ]] || { echo "consume.sh: $acked acked, not $LINES" >&2; exit 1; }
  rm -rf "$sp"
done
mpush=$(printf '%s\n' "${push_t[@]}" | median)
mpop=$(printf '%s\n' "${pop_t[@]}" | median)
mack=$(printf '%s\n' "${ack_t[@]}" | median)

floor_t=() loop_t=() wait_t=()
for ((r = 0; r < REPS; r++)); do
  floor_t+=("$(time_us sh -c 'seq "$1" | xargs -n1 true' _ "$CYCLES")")
  for mode in loop wait; do
    sp=$SCRATCH/exec-$mode$r
    seq "$CYCLES" | "$BIN" --dir "$sp" --store "$STORE" push q --lines >/dev/null
    extra=()
    [[ $mode == wait ]] && extra=(--wait 1s)
    t=$(time_us "$BIN" --dir "$sp" exec q --loop "${extra[@]}" --max-messages "$CYCLES" -- true)
    if [[ $mode == loop ]]; then loop_t+=("$t"); else wait_t+=("$t"); fi
    rm -rf "$sp"
  done
done
mfloor=$(printf '%s\n' "${floor_t[@]}" | median)
mloop=$(printf '%s\n' "${loop_t[@]}" | median)
mwait=$(printf '%s\n' "${wait_t[@]}" | median)

bench_line=$("$BIN" --dir "$SCRATCH/bench" --store "$STORE" bench --count "$CYCLES" --json)
bench_s=$(sed 's/.*"latency_seconds":\([0-9.e+-]*\).*/\1/' <<<"$bench_line")
drain_s=$(sed 's/.*"drain_seconds":\([0-9.e+-]*\).*/\1/' <<<"$bench_line")

# Workers: W processes drain W*C/4 jobs (so each does about C/4).
workers_rows=()
for w in 1 2 4 8; do
  jobs=$((w * CYCLES / 4))
  ts=()
  for ((r = 0; r < REPS; r++)); do
    sp=$SCRATCH/workers-$w-$r
    t0=$(now)
    seq "$jobs" | "$BIN" --dir "$sp" --store "$STORE" push q --lines >/dev/null
    pids=()
    for ((i = 0; i < w; i++)); do
      "$BIN" --dir "$sp" exec q --loop -- true &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(now)
    acked=$("$BIN" --dir "$sp" stats q --json | sed 's/.*"acked":\([0-9]*\).*/\1/')
    [[ $acked == "$jobs" ]] || { echo "consume.sh: $acked acked of $jobs with $w workers" >&2; exit 1; }
    ts+=($((t1 - t0)))
    rm -rf "$sp"
  done
  m=$(printf '%s\n' "${ts[@]}" | median)
  workers_rows+=("workers_${w}_jobs_per_s $(awk -v n="$jobs" -v us="$m" 'BEGIN { printf "%.0f", n / (us / 1e6) }') jobs/s ($jobs jobs)")
done

rate() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "consume.sh: $LINES lines of 100 bytes, $CYCLES jobs, median of $REPS, store $STORE, $(uname -r), $("$BIN" --version)"
echo "push_lines_msg_per_s $(rate "$LINES" "$mpush") msg/s"
echo "pop_count_msg_per_s $(rate "$LINES" "$mpop") msg/s ($((mpop / 1000)) ms)"
echo "ack_stdin_msg_per_s $(rate "$LINES" "$mack") msg/s ($((mack / 1000)) ms)"
echo "pop_plus_ack_msg_per_s $(rate "$LINES" $((mpop + mack))) msg/s"
echo "spawn_floor_ms_per_job $(awk -v t="$mfloor" -v n="$CYCLES" 'BEGIN { printf "%.3f", t / n / 1000 }') ms"
echo "exec_loop_ms_per_job $(awk -v t="$mloop" -v n="$CYCLES" 'BEGIN { printf "%.3f", t / n / 1000 }') ms ($(ratio "$mloop" "$mfloor")x the floor)"
echo "exec_loop_wait_ms_per_job $(awk -v t="$mwait" -v n="$CYCLES" 'BEGIN { printf "%.3f", t / n / 1000 }') ms ($(ratio "$mwait" "$mloop")x exec --loop)"
echo "bench_consumer_msg_per_s $(awk -v n="$CYCLES" -v s="$bench_s" 'BEGIN { printf "%.0f", n / s }') msg/s ($CYCLES in $bench_s s; $(ratio "$bench_s" "$drain_s")x a pop+ack loop without waiting)"
printf '%s\n' "${workers_rows[@]}"
