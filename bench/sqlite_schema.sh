#!/usr/bin/env bash
# bench/sqlite_schema.sh: what the sqlite store's schema costs a bulk push
# by itself, with no cost of spoolmq's own: the sqlite3 shell inserts
# --lines rows (1,000,000 by default) of 100-byte bodies in one
# transaction (`INSERT ... SELECT` from a recursive CTE; WAL,
# synchronous=FULL) into each of these tables, --reps times (median):
#   - shell:     bench/compare.sh's plain table (id INTEGER PRIMARY KEY,
#                the body in the row, no index);
#   - spoolmq:   the sqlite store's schema (bodies, the messages row, its
#                (queue, seq) key with the queue as text, the pending index);
#   - worowid:   the same messages as WITHOUT ROWID;
#   - intqueue:  the same with an integer queue;
#   - bodyinrow: the same with the body in the row, no bodies table.
# Row lines are `NAME SECONDS s`. Figures in docs/PERFORMANCE.md (Which store?).
#
#   bench/sqlite_schema.sh [--lines N] [--reps R]
set -euo pipefail
export LC_ALL=C
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" sqlite_schema "$@"
command -v sqlite3 >/dev/null || { echo "sqlite_schema.sh: needs sqlite3" >&2; exit 1; }

COLS="state INTEGER NOT NULL, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
  pushed_at INTEGER NOT NULL, until_ms INTEGER NOT NULL, receipt BLOB NOT NULL,
  len INTEGER NOT NULL, crc INTEGER NOT NULL"
ROWS="WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $LINES)"
BODIES="CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
$ROWS INSERT INTO bodies SELECT i, zeroblob(100) FROM c;"

# sql VARIANT: the script for one variant.
sql() {
  echo "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; BEGIN;"
  case $1 in
    shell) echo "CREATE TABLE q (id INTEGER PRIMARY KEY, body BLOB NOT NULL,
  state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  pushed_at INTEGER NOT NULL, not_before INTEGER NOT NULL DEFAULT 0,
  leased_until INTEGER, receipt BLOB);
$ROWS INSERT INTO q (body, pushed_at) SELECT zeroblob(100), 0 FROM c;" ;;
    spoolmq|worowid) echo "$BODIES
CREATE TABLE messages (queue TEXT NOT NULL, seq INTEGER NOT NULL, $COLS,
  body_id INTEGER NOT NULL, PRIMARY KEY (queue, seq))$([[ $1 == worowid ]] && echo ' WITHOUT ROWID');
CREATE INDEX pending ON messages (queue, seq) WHERE state IN (1, 2, 3);
$ROWS INSERT INTO messages SELECT 'jobs', i, 1, 0, 0, 0, 0, zeroblob(12), 100, 0, i FROM c;" ;;
    intqueue) echo "$BODIES
CREATE TABLE messages (queue INTEGER NOT NULL, seq INTEGER NOT NULL, $COLS,
  body_id INTEGER NOT NULL, PRIMARY KEY (queue, seq)) WITHOUT ROWID;
CREATE INDEX pending ON messages (queue, seq) WHERE state IN (1, 2, 3);
$ROWS INSERT INTO messages SELECT 1, i, 1, 0, 0, 0, 0, zeroblob(12), 100, 0, i FROM c;" ;;
    bodyinrow) echo "CREATE TABLE messages (queue INTEGER NOT NULL, seq INTEGER NOT NULL, $COLS,
  body BLOB NOT NULL, PRIMARY KEY (queue, seq)) WITHOUT ROWID;
CREATE INDEX pending ON messages (queue, seq) WHERE state IN (1, 2, 3);
$ROWS INSERT INTO messages SELECT 1, i, 1, 0, 0, 0, 0, zeroblob(12), 100, 0, zeroblob(100) FROM c;" ;;
  esac
  echo "COMMIT;"
}

VARIANTS=(shell spoolmq worowid intqueue bodyinrow)
declare -A T=()
for ((r = 0; r < REPS; r++)); do
  for v in "${VARIANTS[@]}"; do
    db=$SCRATCH/$v.db
    rm -f "$db" "$db-wal" "$db-shm"
    sql "$v" >"$SCRATCH/$v.sql"
    t0=$(now)
    sqlite3 -batch -bail -init /dev/null "$db" <"$SCRATCH/$v.sql" >/dev/null
    t1=$(now)
    T[$v]+="$((t1 - t0)) "
    n=$(sqlite3 -init /dev/null "$db" "SELECT count(*) FROM $([[ $v == shell ]] && echo q || echo messages)")
    [[ $n == "$LINES" ]] || { echo "sqlite_schema.sh: $v has $n rows, not $LINES" >&2; exit 1; }
  done
done
echo "sqlite_schema.sh: $LINES rows of 100 bytes, median of $REPS, $(sqlite3 --version | awk '{print $1}'), $(uname -r)"
for v in "${VARIANTS[@]}"; do
  m=$(printf '%s\n' ${T[$v]} | median)
  awk -v v="$v" -v m="$m" 'BEGIN { printf "%s %.3f s\n", v, m / 1e6 }'
done
