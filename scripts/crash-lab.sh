#!/usr/bin/env bash
# scripts/crash-lab.sh: power loss on real file systems (docs/CRASHLAB.md).
#
#   scripts/crash-lab.sh                 bounded run (fixed seed, a few minutes): what CI runs
#   scripts/crash-lab.sh --long          every flush, more torn states per flush pair
#   scripts/crash-lab.sh --plant NAME    the same with a planted bug in spoolmq
#                                        (segment-sync, segment-dir-sync): must find violations
#   scripts/crash-lab.sh replay DIR STATE   mount one state of a kept run again and judge it
#   scripts/crash-lab.sh suites          the kill -9 and concurrency suites on XFS and btrfs
#                                        loop mounts made for it (CI runs this too)
#   scripts/crash-lab.sh teardown        unmount and detach whatever a killed run left
#
# Options: --seed N, --fs "ext4 ext4-writeback xfs btrfs", --store "fs sqlite".
# Needs root, /dev/fuse, loop devices and mkfs.ext4/xfs/btrfs: without them
# it says it was skipped (exit 0), and fails under CI=true. Everything lives
# under target/crashlab/ (CRASHLAB_DIR): images are files there, served
# through FUSE, never a device that holds anything else.
#
# Output, one line per file system and store, then the total:
#   ext4 fs: 212 states, 0 violations
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${CRASHLAB_DIR:-$ROOT/target/crashlab}
LAB=$ROOT/target/release/crashlab
BIN=$ROOT/target/release/spoolmq

say() { echo "crash-lab: $*" >&2; }

# ---------------------------------------------------------------- teardown
# Every loop device backed by a file under $BASE, every mount under it, and
# the lab's FUSE processes: detached, unmounted, stopped. Safe to run twice.
teardown() {
  local m dev
  for m in $(awk -v b="$BASE" 'index($2, b) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  for dev in $(losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v b="$BASE" 'index($2, b) == 1 { print $1 }'); do
    losetup -d "$dev" 2>/dev/null
  done
  for m in $(awk -v b="$BASE" 'index($2, b) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
  pkill -f "^$LAB (record|serve) " 2>/dev/null
  return 0
}

skip_or_fail() {
  if [ "${CI:-}" = true ]; then
    say "FAILED: $1 (CI=true: the crash lab must run)"
    exit 1
  fi
  say "skipped: $1"
  exit 0
}

prerequisites() {
  [ "$(id -u)" = 0 ] || skip_or_fail "needs root (losetup, mount)"
  [ -c /dev/fuse ] || skip_or_fail "needs /dev/fuse"
  [ -e /dev/loop-control ] || skip_or_fail "needs loop devices (/dev/loop-control)"
  local t
  for t in losetup mkfs.ext4 mkfs.xfs mkfs.btrfs jq; do
    command -v "$t" >/dev/null 2>&1 || skip_or_fail "needs $t (e2fsprogs, xfsprogs, btrfs-progs, jq)"
  done
}

build() {
  # The test build of spoolmq (its knobs: SPOOLMQ_TEST_SEGMENT_BYTES, and
  # SPOOLMQ_TEST_PLANT for --plant): the same binary `cargo test --release`
  # makes, so after the tests this builds nothing.
  cargo build --release --quiet --features failpoints --bin spoolmq || exit 1
  cargo build --release --quiet -p crashlab || exit 1
}

# Image size, mkfs and mount options of each file system under test.
fs_setup() {
  case $1 in
    ext4) SIZE=$((64 << 20)); MKFS=(mkfs.ext4 -q -F -b 4096 -E nodiscard); MOPT=() ;;
    ext4-writeback) SIZE=$((64 << 20)); MKFS=(mkfs.ext4 -q -F -b 4096 -E nodiscard); MOPT=(-o data=writeback) ;;
    # 300 MiB is the smallest XFS that mkfs.xfs makes.
    xfs) SIZE=$((300 << 20)); MKFS=(mkfs.xfs -q -f -K); MOPT=() ;;
    btrfs) SIZE=$((256 << 20)); MKFS=(mkfs.btrfs -q -f -K); MOPT=(-o nodiscard) ;;
    *) say "unknown file system $1"; exit 2 ;;
  esac
}

wait_mounted() { # DIR: until a FUSE file system is mounted there (5 s)
  local i
  for i in $(seq 1 100); do
    awk -v d="$1" '$2 == d { found = 1 } END { exit !found }' /proc/mounts && return 0
    sleep 0.05
  done
  return 1
}

# record FS STORE DIR: mkfs, mount, the workload, unmount; leaves DIR/log
# and DIR/journal.json.
record() {
  local fs=$1 store=$2 dir=$3 dev
  fs_setup "$fs"
  mkdir -p "$dir/fuse" "$dir/mnt"
  echo "$fs" > "$dir/fs"
  "$LAB" record "$SIZE" "$dir/log" "$dir/fuse" 2> "$dir/record.err" &
  local rec=$!
  wait_mounted "$dir/fuse" || { say "$fs $store: the recorder did not mount: $(cat "$dir/record.err")"; return 1; }
  # Direct I/O off (losetup's default): see docs/CRASHLAB.md.
  dev=$(losetup -f --show "$dir/fuse/disk") || return 1
  "${MKFS[@]}" "$dev" > "$dir/mkfs.out" 2>&1 || { say "$fs: mkfs failed: $(cat "$dir/mkfs.out")"; losetup -d "$dev"; return 1; }
  mount "${MOPT[@]}" "$dev" "$dir/mnt" || { losetup -d "$dev"; return 1; }
  mkdir -p "$dir/mnt/spool"
  sync
  local ok=0
  SPOOLMQ_TEST_PLANT=${PLANT:-} "$LAB" workload "$BIN" "$dir/mnt/spool" "$store" "$dir/fuse/pos" "$dir/journal.json" \
    > "$dir/workload.out" 2>&1 || ok=1
  umount "$dir/mnt" && losetup -d "$dev" && umount "$dir/fuse"
  wait "$rec" || ok=1
  if [ $ok != 0 ]; then
    say "$fs $store: the workload failed: $(tail -3 "$dir/workload.out" "$dir/record.err")"
    return 1
  fi
}

# judge DIR STATE: mount state STATE (served at DIR/states) and check it.
judge() {
  local dir=$1 s=$2 dev rc
  fs_setup "$(cat "$dir/fs")"
  dev=$(losetup -f --show "$dir/states/$s") || { echo "violation: losetup failed"; return 1; }
  if ! mount "${MOPT[@]}" "$dev" "$dir/mnt" 2> "$dir/mount.err"; then
    echo "violation: the file system does not mount: $(head -1 "$dir/mount.err")"
    losetup -d "$dev"
    return 1
  fi
  "$LAB" check "$BIN" "$dir/mnt/spool" "$dir/journal.json" "$s"
  rc=$?
  umount "$dir/mnt" || umount -l "$dir/mnt"
  losetup -d "$dev"
  return $rc
}

serve() { # DIR: serve DIR/plan.json's states at DIR/states
  local dir=$1
  fs_setup "$(cat "$dir/fs")"
  mkdir -p "$dir/states"
  "$LAB" serve "$dir/log" "$SIZE" "$dir/plan.json" "$dir/states" 2> "$dir/serve.err" &
  SERVER=$!
  wait_mounted "$dir/states" || { say "the server did not mount: $(cat "$dir/serve.err")"; return 1; }
}

# run_pair FS STORE: record, plan, judge every state; prints the gate line.
run_pair() {
  local fs=$1 store=$2 dir="$RUN/$1-$2" n=0 bad=0 repaired=0 s out first_repair=""
  mkdir -p "$dir"
  if ! record "$fs" "$store" "$dir"; then
    echo "$fs $store: 0 states, 1 violations (the recording failed)"
    VIOLATIONS=$((VIOLATIONS + 1))
    return
  fi
  "$LAB" plan "$dir/log" "$dir/plan.json" "$FLUSHES" "$TORN" "$SEED" $ALL > "$dir/plan.out" || return
  serve "$dir" || return
  for s in $(jq -r .name "$dir/plan.json"); do
    n=$((n + 1))
    out=$(judge "$dir" "$s")
    case $? in
      0) ;;
      *)
        bad=$((bad + 1))
        # The first three failing states are printed and their images kept
        # (each is a few megabytes; every one can be rebuilt from its name).
        if [ $bad -le 3 ]; then
          say "$fs $store: state $s:"
          printf '%s\n' "$out" | grep violation | head -5 >&2
          "$LAB" image "$dir/log" "$SIZE" "$s" "$dir/$s.img" > /dev/null 2>&1
        fi
        echo "$s" >> "$dir/failed"
        ;;
    esac
    if printf '%s\n' "$out" | grep -q '^repaired:'; then
      repaired=$((repaired + 1))
      [ $repaired -eq 1 ] && first_repair="$s: $(printf '%s\n' "$out" | grep -m1 '^repaired:')"
    fi
  done
  umount "$dir/states"
  wait "$SERVER"
  echo "$fs $store: $n states, $bad violations"
  [ $repaired -gt 0 ] && say "$fs $store: $repaired states had damage to unacknowledged work that fsck --repair mended (first: $first_repair)"
  if [ $bad -gt 0 ]; then
    say "$fs $store: kept in $dir (the failing states in $dir/failed, the first images as $dir/STATE.img); re-run one with:"
    say "  scripts/crash-lab.sh replay $dir $(head -1 "$dir/failed")"
  fi
  STATES=$((STATES + n))
  VIOLATIONS=$((VIOLATIONS + bad))
  [ $bad -eq 0 ] && [ -z "${KEEP:-}" ] && rm -rf "$dir"
}

# The kill -9 and concurrency suites (tests/it/kill9.rs, concurrency.rs) on
# the fs and sqlite stores, their spools (the tests' temporary directories)
# on an XFS and then a btrfs file system made here on a loop device over an
# image file under $BASE; and doctor there says the file system is
# crash-tested.
suites() {
  local fs img mnt rc=0
  prerequisites
  cargo build --release --quiet --tests || exit 1
  trap teardown EXIT
  for fs in xfs btrfs; do
    fs_setup "$fs"
    img=$BASE/suites-$fs.img mnt=$BASE/suites-$fs
    mkdir -p "$mnt"
    rm -f "$img"
    truncate -s $((2 << 30)) "$img"
    "${MKFS[@]}" "$img" > /dev/null || exit 1
    mount -o loop "$img" "$mnt" || exit 1
    chmod 1777 "$mnt"
    if TMPDIR=$mnt cargo test --release --quiet --test it -- kill9 concurrency --skip postgres > "$mnt.out" 2>&1; then
      echo "$fs: kill -9 and concurrency suites: $(grep -o '[0-9]* passed' "$mnt.out" | head -1)"
    else
      echo "$fs: kill -9 and concurrency suites FAILED"; tail -30 "$mnt.out" >&2; rc=1
    fi
    SPOOLMQ_DIR=$mnt/doctor "$BIN" doctor | grep 'file system' | grep -q crash-tested \
      || { echo "$fs: doctor does not say it is crash-tested"; rc=1; }
    umount "$mnt"
    rm -f "$img"
  done
  exit $rc
}

main() {
  local long="" fss="ext4 ext4-writeback xfs btrfs" stores="fs sqlite"
  SEED=1 PLANT="" ALL="" KEEP=""
  case ${1:-} in
    teardown) teardown; exit 0 ;;
    suites) suites ;;
    replay)
      local dir s=${3:?replay DIR STATE}
      dir=$(cd "${2:?replay DIR STATE}" && pwd) || exit 2
      prerequisites; build
      trap teardown EXIT
      # A plan of that one state, rebuilt from its name.
      "$LAB" state "$s" > "$dir/plan.json" || exit 2
      serve "$dir" || exit 1
      judge "$dir" "$s"; local rc=$?
      umount "$dir/states"; exit $rc ;;
  esac
  while [ $# -gt 0 ]; do
    case $1 in
      --long) long=1 ;;
      --seed) SEED=$2; shift ;;
      --fs) fss=$2; shift ;;
      --store) stores=$2; shift ;;
      --plant) PLANT=$2; KEEP=1; shift ;;
      --keep) KEEP=1 ;;
      *) say "unknown argument $1 (see the top of $0)"; exit 2 ;;
    esac
    shift
  done
  if [ -n "$long" ]; then FLUSHES=100000 TORN=100000 ALL=all; else FLUSHES=120 TORN=80; fi
  prerequisites
  build
  RUN=$BASE/run-$$
  mkdir -p "$RUN"
  trap 'teardown; exit 130' INT TERM
  trap teardown EXIT
  STATES=0 VIOLATIONS=0
  local fs store
  for fs in $fss; do
    for store in $stores; do
      run_pair "$fs" "$store"
    done
  done
  echo "all: $STATES states, $VIOLATIONS violations"
  rmdir "$RUN" 2>/dev/null
  if [ -n "$PLANT" ]; then
    [ $VIOLATIONS -gt 0 ] || { say "the planted bug $PLANT went unnoticed"; exit 1; }
    exit 0
  fi
  [ $VIOLATIONS -eq 0 ]
}

main "$@"
