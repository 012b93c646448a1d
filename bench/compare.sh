#!/usr/bin/env bash
# bench/compare.sh: spoolmq against sqlite3 (WAL, synchronous=FULL) and dd
# (conv=fdatasync, the disk's limit), all in one run on the same file system.
# See bench/README.md for what each row measures and how to read it.
set -euo pipefail
export LC_ALL=C   # a '.' decimal point in EPOCHREALTIME, awk and printf

usage() {
  cat <<'EOF'
Usage: bench/compare.sh [--quick] [--dir DIR] [--bin PATH] [options]

  --quick          small sizes (20,000 lines, 50 processes, depth 20,000);
                   finishes in well under a minute
  --dir DIR        put the scratch data in a fresh directory inside DIR
                   (default: a fresh directory under the repository's target/,
                   or $TMPDIR if target/ is not writable)
  --bin PATH       the spoolmq binary (default: target/release/spoolmq, built
                   with `cargo build --release` if missing)
  --build          run `cargo build --release` first even if the binary exists
  --store STORE    the spoolmq store to measure: fs (default) or sqlite
  --lines N        lines for the bulk push, and the deep queue's depth
                   (default 1000000; --quick: 20000)
  --procs N        processes for the one-message-per-process row (500; 50)
  --cycles N       pop+ack cycles at each depth (200; 50)
  --reps N         repetitions of the bulk row, median reported (3; 3)
  --stats-runs N   runs of `stats --json` (21; 11)
  --steadq PATH    also measure SteadQ's `steadq` binary in the same run (one
                   put per process, lease+ack cycles, `work` of `true` jobs)
                   beside the same spoolmq commands; never built here
  --json FILE      also write a JSON summary to FILE (`-`: stdout; the table
                   then goes to stderr)
  --strict         exit 1 if any target is missed
  --keep           keep the scratch directory
  -h, --help       this text
EOF
}

die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'compare.sh: %s (see --help)\n' "$*" >&2; exit 2; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- arguments
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0 DIR_PARENT="" BIN="" BUILD=0 KEEP=0 STRICT=0 JSON_OUT=""
LINES="" PROCS="" CYCLES="" REPS="" STATS_RUNS="" STORE=fs STEADQ=""
need_arg() { [[ $# -ge 2 && -n $2 ]] || usage_error "$1 needs a value"; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]] || usage_error "$2: not a positive count: $1"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --dir) need_arg "$@"; DIR_PARENT=$2; shift ;;
    --bin) need_arg "$@"; BIN=$2; shift ;;
    --build) BUILD=1 ;;
    --store) need_arg "$@"; [[ $2 == fs || $2 == sqlite ]] || usage_error "--store: fs or sqlite, not $2"; STORE=$2; shift ;;
    --lines) need_arg "$@"; is_count "$2" "$1"; LINES=$2; shift ;;
    --procs) need_arg "$@"; is_count "$2" "$1"; PROCS=$2; shift ;;
    --cycles) need_arg "$@"; is_count "$2" "$1"; CYCLES=$2; shift ;;
    --reps) need_arg "$@"; is_count "$2" "$1"; REPS=$2; shift ;;
    --stats-runs) need_arg "$@"; is_count "$2" "$1"; STATS_RUNS=$2; shift ;;
    --json) need_arg "$@"; JSON_OUT=$2; shift ;;
    --steadq) need_arg "$@"; [[ -x $2 ]] || usage_error "--steadq: not an executable: $2"; STEADQ=$2; shift ;;
    --strict) STRICT=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done
if [[ $QUICK == 1 ]]; then
  : "${LINES:=20000}" "${PROCS:=50}" "${CYCLES:=50}" "${REPS:=3}" "${STATS_RUNS:=11}"
else
  : "${LINES:=1000000}" "${PROCS:=500}" "${CYCLES:=200}" "${REPS:=3}" "${STATS_RUNS:=21}"
fi
(( PROCS <= LINES )) || usage_error "--procs ($PROCS) must not exceed --lines ($LINES)"
(( CYCLES < LINES )) || usage_error "--cycles ($CYCLES) must be less than --lines ($LINES)"
SHALLOW_DEPTH=10
(( LINES > SHALLOW_DEPTH + CYCLES )) || usage_error "--lines must exceed $((SHALLOW_DEPTH + CYCLES))"
BODY_BYTES=100   # 99 characters and a newline

# The table goes to stdout, unless the JSON summary does.
if [[ $JSON_OUT == - ]]; then exec 3>&2; else exec 3>&1; fi

# ---------------------------------------------------------------- tools
SUDO=""
if [[ $(id -u) -ne 0 ]]; then command -v sudo >/dev/null && SUDO="sudo -n"; fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "$1 is missing and there is no apt-get: install $1 by hand"
  log "installing $1 (apt-get install -y $1)"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -q "$1" >/dev/null 2>&1; then
    if [[ $APT_UPDATED == 0 ]]; then
      $SUDO apt-get update -q >/dev/null 2>&1 || true
      APT_UPDATED=1
    fi
    $SUDO apt-get install -y -q "$1" >/dev/null || die "could not install $1"
  fi
}
command -v sqlite3 >/dev/null || apt_install sqlite3
/usr/bin/time -v true >/dev/null 2>&1 || apt_install time
/usr/bin/time -v true >/dev/null 2>&1 || die "/usr/bin/time -v does not work (GNU time needed)"
for c in dd awk sort df sync; do command -v "$c" >/dev/null || die "$c is missing"; done

if [[ -z $BIN ]]; then
  BIN=$REPO/target/release/spoolmq
  if [[ $BUILD == 1 || ! -x $BIN ]]; then
    log "building: cargo build --release"
    (cd "$REPO" && cargo build --release -q) || die "cargo build --release failed"
  fi
elif [[ $BUILD == 1 ]]; then
  usage_error "--build builds target/release/spoolmq; do not combine it with --bin"
fi
[[ -x $BIN ]] || die "no spoolmq binary at $BIN"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

# ---------------------------------------------------------------- scratch
if [[ -z $DIR_PARENT ]]; then
  if mkdir -p "$REPO/target" 2>/dev/null && [[ -w $REPO/target ]]; then
    DIR_PARENT=$REPO/target
  else
    DIR_PARENT=${TMPDIR:-/tmp}
  fi
fi
mkdir -p "$DIR_PARENT" || die "cannot create $DIR_PARENT"
SCRATCH=$(mktemp -d "$DIR_PARENT/spoolmq-bench.XXXXXX") || die "cannot create a directory in $DIR_PARENT"
cleanup() {
  local rc=$?
  if [[ $KEEP == 1 ]]; then
    log "scratch data kept in $SCRATCH"
  else
    rm -rf -- "$SCRATCH"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export SQLITE_TMPDIR=$SCRATCH   # sqlite's temp table (the .import) on the same disk
SPOOL=$SCRATCH/spool
INPUT=$SCRATCH/input.txt
FSTYPE=$(df -T -P "$SCRATCH" | awk 'NR==2 {print $2}')
FSDEV=$(df -T -P "$SCRATCH" | awk 'NR==2 {print $1}')
FSOPTS=$(findmnt -n -o OPTIONS -T "$SCRATCH" 2>/dev/null || echo '?')
FSAVAIL_KB=$(df -P -k "$SCRATCH" | awk 'NR==2 {print $4}')
# dd output + (reps+1) spoolmq queues (records 140 B, slots 64 B) + reps sqlite
# databases (a WAL and the database, ~2 x) + input, with a margin.
NEED_KB=$(( (LINES * (BODY_BYTES * (2 + 2 * REPS) + 210 * (REPS + 1)) + 50000000) / 1024 ))
(( FSAVAIL_KB > NEED_KB )) || die "about $((NEED_KB / 1024)) MiB needed in $SCRATCH, $((FSAVAIL_KB / 1024)) MiB free"
case $FSTYPE in
  tmpfs|ramfs|overlay) log "warning: $SCRATCH is on $FSTYPE: fsync may cost nothing there; pass --dir on a real disk" ;;
esac

# ---------------------------------------------------------------- helpers
# now: sets NOW to the time in microseconds, without forking.
if [[ -n ${EPOCHREALTIME:-} ]]; then
  now() { NOW=${EPOCHREALTIME/[.,]/}; }
else
  now() { NOW=$(date +%s%6N); }
fi
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
minimum() { printf '%s\n' "$@" | sort -n | head -1; }
sum() { printf '%s\n' "$@" | awk '{s+=$1} END {print s+0}'; }
calc() { awk "BEGIN { printf \"%s\", ($1) }"; }   # calc '<awk expression>'
fmt() { awk -v v="$2" "BEGIN { printf \"$1\", v }"; }
rss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
cpu_us() { awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ {s+=$2} END {printf "%d", s*1e6}' "$1"; }
sq() { "$BIN" --dir "$SPOOL" --store "$STORE" "$@"; }

SQL_SCHEMA="PRAGMA journal_mode=WAL;
CREATE TABLE q(
  id           INTEGER PRIMARY KEY,        -- push order, like spoolmq's ids
  body         BLOB    NOT NULL,
  state        INTEGER NOT NULL DEFAULT 0, -- 0 ready, 1 leased, 2 dead
  attempts     INTEGER NOT NULL DEFAULT 0,
  pushed_at    INTEGER NOT NULL,           -- ms
  not_before   INTEGER NOT NULL DEFAULT 0, -- ms (--delay)
  leased_until INTEGER,                    -- ms
  receipt      BLOB
);"
sqlite_new_db() { sqlite3 -batch -bail -init /dev/null "$1" "$SQL_SCHEMA" >/dev/null; }

# ---------------------------------------------------------------- header
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || true)
SPOOLMQ_VERSION=$("$BIN" --version 2>&1 | head -1)
SQLITE_VERSION=$(sqlite3 --version | awk '{print $1, $2}')
DD_VERSION=$(dd --version 2>/dev/null | head -1 || echo dd)
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (work tree has uncommitted changes)' || true)
BIN_MTIME=$(date -r "$BIN" '+%Y-%m-%d %H:%M:%S' 2>/dev/null || echo '?')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
DATE=$(date '+%Y-%m-%d %H:%M:%S %Z')
MODE=$([[ $QUICK == 1 ]] && echo quick || echo full)
group() { awk '{ s=sprintf("%d",$1); o=""; while (length(s)>3) { o="," substr(s,length(s)-2) o; s=substr(s,1,length(s)-3) } print s o }' <<<"$1"; }

{
  echo "spoolmq benchmark ($MODE run), $DATE"
  echo "  machine:     $(nproc) cores, ${CPU:-unknown CPU}, $MEM RAM, Linux $(uname -r)"
  echo "  load:        $LOAD_START (1/5/15-minute load average at the start)"
  echo "  file system: $FSTYPE on $FSDEV ($FSOPTS), scratch $SCRATCH"
  echo "  spoolmq:     $SPOOLMQ_VERSION, $BIN (built $BIN_MTIME; repo at $GIT_REV$GIT_DIRTY), $STORE store"
  echo "  sqlite3:     $SQLITE_VERSION (journal_mode=WAL, synchronous=FULL)"
  echo "  dd:          $DD_VERSION (bs=1M conv=fdatasync)"
  echo "  sizes:       $(group "$LINES") lines of $BODY_BYTES bytes ($(calc "$LINES*$BODY_BYTES/1e6") MB), bulk rows x $REPS (median)," \
       "$(group "$PROCS") processes, $(group "$CYCLES") pop+ack cycles per depth, $STATS_RUNS stats runs"
  echo
} >&3

# ---------------------------------------------------------------- input
log "generating $LINES lines of $BODY_BYTES bytes"
awk -v n="$LINES" 'BEGIN {
  base = "q7w3e9r1t5y2u8i4o6p0asdfghjklzxcvbnm1234567890mnbvcxzlkjhgfdsapoiuytrewq0987654321qazwsxedcrfvtgbyhnujmikolp"
  base = base base
  for (i = 1; i <= n; i++) printf "%010d %s\n", i, substr(base, (i * 7) % 97 + 1, 88)
}' >"$INPUT"
INPUT_BYTES=$(wc -c <"$INPUT")
(( INPUT_BYTES == LINES * BODY_BYTES )) || die "input is $INPUT_BYTES bytes, expected $((LINES * BODY_BYTES))"
mapfile -t BODIES < <(head -n "$((PROCS + SHALLOW_DEPTH + 2 * CYCLES + 1))" "$INPUT")
sync

# ---------------------------------------------------------------- 1 + 5: bulk
# Each repetition runs the three tools in a rotated order, each after a `sync`
# (so nobody pays for another's dirty pages), each under /usr/bin/time -v (for
# the peak RSS). The wall time is taken around the whole process.
SQL_BULK=$SCRATCH/bulk.sql
cat >"$SQL_BULK" <<EOF
PRAGMA synchronous=FULL;
CREATE TEMP TABLE staging(body TEXT);
.import --csv $INPUT staging
BEGIN;
INSERT INTO q(body, pushed_at) SELECT CAST(body AS BLOB), CAST(strftime('%s','now') AS INTEGER) * 1000 FROM staging;
COMMIT;
EOF
declare -a T_SPOOL=() T_SQL=() T_DD=() R_SPOOL=() R_SQL=() R_DD=() U_SPOOL=() U_SQL=() U_DD=()
DEEP=bulk1   # the first bulk queue stays as the deep queue of rows 3 and 4
run_spool_bulk() {
  local r=$1 tv=$SCRATCH/time.spool.$r
  sync; now; local t0=$NOW
  /usr/bin/time -v -o "$tv" "$BIN" --dir "$SPOOL" --store "$STORE" push "bulk$r" --lines <"$INPUT" >"$SCRATCH/ids.$r"
  now; T_SPOOL+=($((NOW - t0))); R_SPOOL+=("$(rss_kb "$tv")") U_SPOOL+=("$(cpu_us "$tv")")
  local n; n=$(wc -l <"$SCRATCH/ids.$r"); rm -f "$SCRATCH/ids.$r"
  (( n == LINES )) || die "spoolmq push --lines printed $n ids, expected $LINES"
}
run_sqlite_bulk() {
  local r=$1 tv=$SCRATCH/time.sqlite.$r db=$SCRATCH/bulk$r.db
  sqlite_new_db "$db"
  sync; now; local t0=$NOW
  /usr/bin/time -v -o "$tv" sqlite3 -batch -bail -init /dev/null "$db" <"$SQL_BULK" >/dev/null
  now; T_SQL+=($((NOW - t0))); R_SQL+=("$(rss_kb "$tv")") U_SQL+=("$(cpu_us "$tv")")
  local n; n=$(sqlite3 -init /dev/null "$db" 'SELECT count(*) FROM q')
  (( n == LINES )) || die "sqlite3 has $n rows, expected $LINES"
  rm -f "$db" "$db-wal" "$db-shm"   # keep the disk use down
}
run_dd() {
  local r=$1 tv=$SCRATCH/time.dd.$r out=$SCRATCH/dd.out
  rm -f "$out"; sync; now; local t0=$NOW
  /usr/bin/time -v -o "$tv" dd if="$INPUT" of="$out" bs=1M conv=fdatasync status=none
  now; T_DD+=($((NOW - t0))); R_DD+=("$(rss_kb "$tv")") U_DD+=("$(cpu_us "$tv")")
  rm -f "$out"
}
for ((r = 1; r <= REPS; r++)); do
  log "bulk $r/$REPS: spoolmq push --lines, sqlite3 .import + INSERT...SELECT, dd conv=fdatasync"
  case $(( (r - 1) % 3 )) in
    0) run_spool_bulk "$r"; run_sqlite_bulk "$r"; run_dd "$r" ;;
    1) run_sqlite_bulk "$r"; run_dd "$r"; run_spool_bulk "$r" ;;
    2) run_dd "$r"; run_spool_bulk "$r"; run_sqlite_bulk "$r" ;;
  esac
  # keep only the deep queue's messages
  if (( r > 1 )); then
    if [[ $STORE == fs ]]; then rm -rf -- "$SPOOL/bulk$r"; else sq purge "bulk$r" >/dev/null; fi
  fi
done
B_SPOOL=$(median "${T_SPOOL[@]}") B_SQL=$(median "${T_SQL[@]}") B_DD=$(median "${T_DD[@]}")
RSS_SPOOL=$(printf '%s\n' "${R_SPOOL[@]}" | sort -n | tail -1)
RSS_SQL=$(printf '%s\n' "${R_SQL[@]}" | sort -n | tail -1)
RSS_DD=$(printf '%s\n' "${R_DD[@]}" | sort -n | tail -1)
mbps() { calc "$INPUT_BYTES / $1"; }   # bytes per microsecond = MB/s

# ---------------------------------------------------------------- 2: one per process
log "one message per process: $PROCS x spoolmq push, $PROCS x sqlite3 INSERT (interleaved, with /bin/true and spoolmq --version as floors)"
P_DB=$SCRATCH/procs.db
sqlite_new_db "$P_DB"
sq push procs "warm-up: the queue exists before the clock starts" >/dev/null
declare -a P_SPOOL=() P_SQL=() P_TRUE=() P_VERSION=()
for ((i = 0; i < PROCS; i++)); do
  # the floor: starting any process, and starting spoolmq to do nothing
  now; t0=$NOW; /bin/true; now; P_TRUE+=($((NOW - t0)))
  now; t0=$NOW; "$BIN" --version >/dev/null; now; P_VERSION+=($((NOW - t0)))
  b=${BODIES[i]}
  sqlcmd="PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; INSERT INTO q(body, pushed_at) VALUES (CAST('$b' AS BLOB), CAST(strftime('%s','now') AS INTEGER) * 1000) RETURNING id;"
  if (( i % 2 == 0 )); then
    now; t0=$NOW; sq push procs "$b" >/dev/null; now; P_SPOOL+=($((NOW - t0)))
    now; t0=$NOW; sqlite3 -batch -bail -init /dev/null "$P_DB" "$sqlcmd" >/dev/null; now; P_SQL+=($((NOW - t0)))
  else
    now; t0=$NOW; sqlite3 -batch -bail -init /dev/null "$P_DB" "$sqlcmd" >/dev/null; now; P_SQL+=($((NOW - t0)))
    now; t0=$NOW; sq push procs "$b" >/dev/null; now; P_SPOOL+=($((NOW - t0)))
  fi
done
n=$(sqlite3 -init /dev/null "$P_DB" 'SELECT count(*) FROM q')
(( n == PROCS )) || die "sqlite3 has $n rows after $PROCS inserts"
n=$(sq stats procs --json | sed -n 's/.*"pushed": *\([0-9]*\).*/\1/p')
(( n == PROCS + 1 )) || die "spoolmq stats says pushed=$n after $PROCS pushes (+1 warm-up)"
PS_SPOOL=$(sum "${P_SPOOL[@]}") PS_SQL=$(sum "${P_SQL[@]}")
PM_SPOOL=$(median "${P_SPOOL[@]}") PM_SQL=$(median "${P_SQL[@]}")

# ---------------------------------------------------------------- 3: pop+ack
# One cycle is two processes: `pop --json` then `ack RECEIPT`. After each cycle
# one message is pushed back (not timed) so the depth stays at 10 and at
# $LINES; the two depths alternate so that a change of machine load hits both.
log "pop+ack: $CYCLES cycles at depth $SHALLOW_DEPTH and at depth $LINES (interleaved)"
printf '%s\n' "${BODIES[@]:PROCS:SHALLOW_DEPTH}" | sq push shallow --lines >/dev/null
declare -a C_SHALLOW=() C_DEEP=() POP_SHALLOW=() POP_DEEP=() ACK_SHALLOW=() ACK_DEEP=()
RECEIPT_RE='"receipt": *"([0-9a-f]{40})"'
cycle() {   # cycle QUEUE NAME-OF-ARRAY-SUFFIX REFILL-BODY
  local q=$1 which=$2 out t0 t1 t2
  now; t0=$NOW
  out=$(sq pop "$q" --json) || die "pop $q failed (exit $?)"
  now; t1=$NOW
  [[ $out =~ $RECEIPT_RE ]] || die "no receipt in: $out"
  sq ack "$q" "${BASH_REMATCH[1]}" || die "ack $q failed (exit $?)"
  now; t2=$NOW
  sq push "$q" "$3" >/dev/null   # refill, not timed
  if [[ $which == shallow ]]; then
    C_SHALLOW+=($((t2 - t0))); POP_SHALLOW+=($((t1 - t0))); ACK_SHALLOW+=($((t2 - t1)))
  else
    C_DEEP+=($((t2 - t0))); POP_DEEP+=($((t1 - t0))); ACK_DEEP+=($((t2 - t1)))
  fi
}
sync
for ((i = 0; i < CYCLES; i++)); do
  rb=${BODIES[PROCS + SHALLOW_DEPTH + 2 * i]}
  if (( i % 2 == 0 )); then
    cycle shallow shallow "$rb"; cycle "$DEEP" deep "${BODIES[PROCS + SHALLOW_DEPTH + 2 * i + 1]}"
  else
    cycle "$DEEP" deep "$rb"; cycle shallow shallow "${BODIES[PROCS + SHALLOW_DEPTH + 2 * i + 1]}"
  fi
done
CM_SHALLOW=$(median "${C_SHALLOW[@]}") CM_DEEP=$(median "${C_DEEP[@]}")
CA_SHALLOW=$(calc "$(sum "${C_SHALLOW[@]}") / $CYCLES") CA_DEEP=$(calc "$(sum "${C_DEEP[@]}") / $CYCLES")

# ---------------------------------------------------------------- 4: stats
log "stats --json: $STATS_RUNS runs at depth $LINES (and at depth $SHALLOW_DEPTH)"
declare -a S_DEEP=() S_SHALLOW=()
DEEP_STATS=$(sq stats "$DEEP" --json)   # one untimed run, shown below the table
for ((i = 0; i < STATS_RUNS; i++)); do
  now; t0=$NOW; sq stats "$DEEP" --json >/dev/null; now; S_DEEP+=($((NOW - t0)))
  now; t0=$NOW; sq stats shallow --json >/dev/null; now; S_SHALLOW+=($((NOW - t0)))
done
SM_DEEP=$(median "${S_DEEP[@]}") SMIN_DEEP=$(minimum "${S_DEEP[@]}")
SM_SHALLOW=$(median "${S_SHALLOW[@]}") SMIN_SHALLOW=$(minimum "${S_SHALLOW[@]}")
DEEP_READY=$(sed -n 's/.*"ready": *\([0-9]*\).*/\1/p' <<<"$DEEP_STATS")
DEEP_DISK=$(sed -n 's/.*"disk_bytes": *\([0-9]*\).*/\1/p' <<<"$DEEP_STATS")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

# ---------------------------------------------------------------- table
# Verdicts: calc prints 1 or 0.
V1=$(calc "($B_SQL / $B_SPOOL) >= 5")
V2=$(calc "($B_DD / $B_SPOOL) >= 0.5")
V3=$(calc "($PS_SPOOL / $PS_SQL) <= 0.5")
V4=$(calc "($CM_DEEP / $CM_SHALLOW) <= 1.2")
V5=$(calc "$SM_DEEP < 20000")
V6=$(calc "$RSS_SPOOL < 65536")
verdict() { [[ $1 == 1 ]] && echo PASS || echo MISS; }
s() { fmt '%.3f s' "$(calc "$1 / 1e6")"; }
ms() { fmt '%.2f ms' "$(calc "$1 / 1e3")"; }
mib() { fmt '%.1f MiB' "$(calc "$1 / 1024")"; }
NL=$(group "$LINES")
ROW='%-3s %-40s %13s %13s %13s %20s %16s %5s\n'
{
  printf "$ROW" '#' operation spoolmq sqlite3 dd ratio target ''
  printf "$ROW" '' '' '' '' '' '' '' '' | tr ' ' '-'
  printf "$ROW" 1a "push $NL lines, one process (median)" "$(s "$B_SPOOL")" "$(s "$B_SQL")" "$(s "$B_DD")" \
    "sqlite/spool $(fmt '%.1fx' "$(calc "$B_SQL / $B_SPOOL")")" '>= 5x' "$(verdict "$V1")"
  printf "$ROW" 1b "  bandwidth of the same $(calc "$INPUT_BYTES/1e6") MB" "$(fmt '%.1f MB/s' "$(mbps "$B_SPOOL")")" \
    "$(fmt '%.1f MB/s' "$(mbps "$B_SQL")")" "$(fmt '%.1f MB/s' "$(mbps "$B_DD")")" \
    "spool/dd $(fmt '%.0f%%' "$(calc "100 * $B_DD / $B_SPOOL")")" '>= 50% of dd' "$(verdict "$V2")"
  printf "$ROW" 2 "$(group "$PROCS") processes x 1 message (total)" "$(s "$PS_SPOOL")" "$(s "$PS_SQL")" - \
    "spool/sqlite $(fmt '%.2fx' "$(calc "$PS_SPOOL / $PS_SQL")")" '<= 0.5x' "$(verdict "$V3")"
  printf "$ROW" '' "  per process (median)" "$(ms "$PM_SPOOL")" "$(ms "$PM_SQL")" - '' '' ''
  printf "$ROW" 3a "pop+ack cycle, depth $SHALLOW_DEPTH (median)" "$(ms "$CM_SHALLOW")" - - '' '' ''
  printf "$ROW" 3b "pop+ack cycle, depth $NL (median)" "$(ms "$CM_DEEP")" - - \
    "deep/shallow $(fmt '%.2fx' "$(calc "$CM_DEEP / $CM_SHALLOW")")" '<= 1.2x' "$(verdict "$V4")"
  printf "$ROW" 4 "stats --json, depth $NL (median)" "$(ms "$SM_DEEP")" - - "min $(ms "$SMIN_DEEP")" '< 20 ms' "$(verdict "$V5")"
  printf "$ROW" 5 "peak RSS, row 1a (largest of $REPS)" "$(mib "$RSS_SPOOL")" "$(mib "$RSS_SQL")" "$(mib "$RSS_DD")" '' '< 64 MiB' "$(verdict "$V6")"
  echo
  echo "details:"
  echo "  1a runs (s):      spoolmq $(for t in "${T_SPOOL[@]}"; do fmt '%.3f ' "$(calc "$t/1e6")"; done)| sqlite3 $(for t in "${T_SQL[@]}"; do fmt '%.3f ' "$(calc "$t/1e6")"; done)| dd $(for t in "${T_DD[@]}"; do fmt '%.3f ' "$(calc "$t/1e6")"; done)"
  echo "     CPU (user+sys, median): spoolmq $(s "$(median "${U_SPOOL[@]}")"), sqlite3 $(s "$(median "${U_SQL[@]}")"), dd $(s "$(median "${U_DD[@]}")")"
  echo "     spoolmq writes more than the input: the deep queue takes $(group "${DEEP_DISK:-0}") bytes on disk ($(fmt '%.2f' "$(calc "${DEEP_DISK:-0} / $INPUT_BYTES")") x), so"
  echo "     even at dd's bandwidth row 1b could reach at most $(fmt '%.0f%%' "$(calc "${DEEP_DISK:-0} > 0 ? 100 * $INPUT_BYTES / $DEEP_DISK : 0")") of dd"
  echo "  2  mean per process: spoolmq $(ms "$(calc "$PS_SPOOL / $PROCS")"), sqlite3 $(ms "$(calc "$PS_SQL / $PROCS")")"
  echo "     floors (median): /bin/true $(ms "$(median "${P_TRUE[@]}")"), spoolmq --version $(ms "$(median "${P_VERSION[@]}")");" \
       "spoolmq push above --version: $(ms "$(calc "$PM_SPOOL - $(median "${P_VERSION[@]}")")")"
  echo "  3  depth $SHALLOW_DEPTH: pop $(ms "$(median "${POP_SHALLOW[@]}")") + ack $(ms "$(median "${ACK_SHALLOW[@]}")") (medians), cycle mean $(ms "$CA_SHALLOW")"
  echo "     depth $NL: pop $(ms "$(median "${POP_DEEP[@]}")") + ack $(ms "$(median "${ACK_DEEP[@]}")") (medians), cycle mean $(ms "$CA_DEEP")"
  echo "  4  stats --json at depth $SHALLOW_DEPTH: median $(ms "$SM_SHALLOW"), min $(ms "$SMIN_SHALLOW")"
  echo "     deep queue: ready=$DEEP_READY"
  echo "  load average at the end: $LOAD_END"
} | sed 's/[[:space:]]*$//' >&3

# ---------------------------------------------------------------- 6: SteadQ
# With --steadq: the peer's CLI beside ours on the same jobs, interleaved so
# that a change of load hits both. 6a: one message per process (put / push);
# 6b: a lease+ack cycle of two processes at depth 10 (lease then ack / pop
# then ack); 6c: a worker that runs `true` for each of $PROCS jobs until the
# queue is empty (`steadq work`, which waits for more, is stopped once its
# queue shows none ready or leased, polled every 10 ms; `spoolmq exec
# --loop` ends by itself).
if [[ -n $STEADQ ]]; then
  log "SteadQ: $PROCS puts, $CYCLES lease+ack cycles, work of $PROCS jobs, each beside spoolmq"
  SQD=$SCRATCH/steadq
  "$STEADQ" init "$SQD" >/dev/null 2>&1 || die "steadq init failed"
  for ((i = 0; i < SHALLOW_DEPTH; i++)); do printf '%s' "${BODIES[i]}" | "$STEADQ" put "$SQD" - >/dev/null 2>&1; done
  printf '%s\n' "${BODIES[@]:0:SHALLOW_DEPTH}" | sq push sq-shallow --lines >/dev/null
  declare -a Q_PUT=() Q_PUSH=() Q_CYC=() Q_SCYC=()
  for ((i = 0; i < PROCS; i++)); do
    b=${BODIES[i]}
    now; t0=$NOW; printf '%s' "$b" | "$STEADQ" put "$SQD" - >/dev/null 2>&1; now; Q_PUT+=($((NOW - t0)))
    now; t0=$NOW; sq push sq-procs "$b" >/dev/null; now; Q_PUSH+=($((NOW - t0)))
  done
  H=$SCRATCH/steadq.handle
  for ((i = 0; i < CYCLES; i++)); do
    now; t0=$NOW
    "$STEADQ" lease "$SQD" --handle-file "$H" >/dev/null 2>&1 || die "steadq lease failed"
    "$STEADQ" ack "$SQD" --handle-file "$H" >/dev/null 2>&1 || die "steadq ack failed"
    now; Q_CYC+=($((NOW - t0)))
    printf '%s' "${BODIES[i]}" | "$STEADQ" put "$SQD" - >/dev/null 2>&1   # refill, not timed
    now; t0=$NOW
    out=$(sq pop sq-shallow --json) || die "pop sq-shallow failed"
    [[ $out =~ $RECEIPT_RE ]] || die "no receipt in: $out"
    sq ack sq-shallow "${BASH_REMATCH[1]}" || die "ack failed"
    now; Q_SCYC+=($((NOW - t0)))
    sq push sq-shallow "${BODIES[i]}" >/dev/null   # refill, not timed
  done
  # 6c: fresh queues of $PROCS jobs each.
  SQW=$SCRATCH/steadq-work
  "$STEADQ" init "$SQW" >/dev/null 2>&1
  for ((i = 0; i < PROCS; i++)); do printf '%s' "${BODIES[i]}" | "$STEADQ" put "$SQW" - >/dev/null 2>&1; done
  printf '%s\n' "${BODIES[@]:0:PROCS}" | sq push sq-work --lines >/dev/null
  sync
  now; t0=$NOW
  "$STEADQ" work "$SQW" -- true >/dev/null 2>&1 &
  wpid=$!
  while :; do
    st=$("$STEADQ" stats "$SQW")
    [[ $st == *"ready: 0"* && $st == *"leased: 0"* ]] && break
    sleep 0.01
  done
  now; Q_WORK=$((NOW - t0))
  kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null || true
  now; t0=$NOW; sq exec sq-work --loop -- true || die "exec --loop failed"; now; Q_EXEC=$((NOW - t0))
  {
    echo
    echo "SteadQ, same run ($("$STEADQ" --version 2>/dev/null || echo steadq), $STEADQ):"
    printf "$ROW" '#' operation spoolmq steadq '' ratio '' ''
    printf "$ROW" 6a "1 message per process (median)" "$(ms "$(median "${Q_PUSH[@]}")")" "$(ms "$(median "${Q_PUT[@]}")")" '' \
      "spool/steadq $(fmt '%.2fx' "$(calc "$(median "${Q_PUSH[@]}") / $(median "${Q_PUT[@]}")")")" '' ''
    printf "$ROW" 6b "lease+ack / pop+ack cycle (median)" "$(ms "$(median "${Q_SCYC[@]}")")" "$(ms "$(median "${Q_CYC[@]}")")" '' \
      "spool/steadq $(fmt '%.2fx' "$(calc "$(median "${Q_SCYC[@]}") / $(median "${Q_CYC[@]}")")")" '' ''
    printf "$ROW" 6c "worker: $(group "$PROCS") jobs of true (total)" "$(s "$Q_EXEC")" "$(s "$Q_WORK")" '' \
      "spool/steadq $(fmt '%.2fx' "$(calc "$Q_EXEC / $Q_WORK")")" '' ''
    echo "  6c steadq's time includes its stats polling (every 10 ms) and the poll that sees the queue empty;"
    echo "     its worker checks on a running command every 50 ms (its work.rs), which bounds it near 20 jobs/s"
  } | sed 's/[[:space:]]*$//' >&3
fi

# ---------------------------------------------------------------- JSON
if [[ -n $JSON_OUT ]]; then
  jb() { [[ $1 == 1 ]] && echo true || echo false; }
  json=$(cat <<EOF
{"date":"$DATE","mode":"$MODE","nproc":$(nproc),"kernel":"$(uname -r)","cpu":"${CPU//\"/}","fs":"$FSTYPE","load_start":"$LOAD_START","load_end":"$LOAD_END",
 "spoolmq":"$SPOOLMQ_VERSION","store":"$STORE","sqlite3":"$SQLITE_VERSION","git":"$GIT_REV",
 "lines":$LINES,"bytes":$INPUT_BYTES,"procs":$PROCS,"cycles":$CYCLES,"reps":$REPS,
 "bulk_s":{"spoolmq":$(calc "$B_SPOOL/1e6"),"sqlite3":$(calc "$B_SQL/1e6"),"dd":$(calc "$B_DD/1e6")},
 "per_process_total_s":{"spoolmq":$(calc "$PS_SPOOL/1e6"),"sqlite3":$(calc "$PS_SQL/1e6")},
 "pop_ack_median_ms":{"depth_$SHALLOW_DEPTH":$(calc "$CM_SHALLOW/1e3"),"depth_$LINES":$(calc "$CM_DEEP/1e3")},
 "stats_ms":{"median":$(calc "$SM_DEEP/1e3"),"min":$(calc "$SMIN_DEEP/1e3")},
 "peak_rss_kib":{"spoolmq":$RSS_SPOOL,"sqlite3":$RSS_SQL,"dd":$RSS_DD},
 "targets":{"bulk_5x_sqlite":$(jb "$V1"),"bulk_half_dd":$(jb "$V2"),"per_process_half_sqlite":$(jb "$V3"),
            "pop_ack_deep_1_2x":$(jb "$V4"),"stats_under_20ms":$(jb "$V5"),"rss_under_64mib":$(jb "$V6")}}
EOF
)
  if [[ $JSON_OUT == - ]]; then printf '%s\n' "$json"; else printf '%s\n' "$json" >"$JSON_OUT"; fi
fi

if [[ $STRICT == 1 && "$V1$V2$V3$V4$V5$V6" != 111111 ]]; then exit 1; fi
exit 0
