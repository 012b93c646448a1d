#!/usr/bin/env bash
# scripts/package-test.sh: the artifacts of scripts/package.sh on a fresh
# Debian root, as a new user would meet them. In a minimal Debian 12 root made
# with debootstrap (no Rust, no compiler; cached as a tarball under
# target/package-test/ between runs), inside chroot:
#
#   1. dpkg -i the .deb; `spoolmq --version` names its commit; the README's
#      30-second tour runs as written (its receipt taken from the pop before);
#      `man spoolmq` shows the page; bash-completion finds the completion and
#      the zsh and fish files are where those shells look; the worker unit is
#      installed, not enabled, and `systemd-analyze verify` accepts it;
#      dpkg -r removes every file the package installed.
#   2. the static binary from the tarball runs the same tour; `init --group`
#      resolves a name from /etc/group, takes a numeric gid, and refuses an
#      unknown name with exit 2 and one line.
#
# Needs root, debootstrap and a Debian mirror (DEBIAN_MIRROR, default
# deb.debian.org); without them it says it was skipped (exit 0), and fails
# under CI=true.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/target/package-test
CACHE=$WORK/bookworm-root.tar
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
say() { echo "package-test: $*" >&2; }

skip_or_fail() {
  if [ "${CI:-}" = true ]; then say "FAILED: $1 (CI=true: the package test must run)"; exit 1; fi
  say "skipped: $1"; exit 0
}
[ "$(id -u)" = 0 ] || skip_or_fail "needs root (debootstrap, chroot)"
command -v debootstrap >/dev/null || skip_or_fail "needs debootstrap (apt-get install debootstrap)"
ls dist/*.deb dist/*.tar.gz >/dev/null 2>&1 || { say "no artifacts in dist/: run scripts/package.sh first"; exit 1; }

R=$WORK/root
cleanup() {
  for m in "$R/proc" "$R/dev/pts" "$R/dev"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  return 0
}
trap cleanup EXIT
cleanup
rm -rf "$R"
mkdir -p "$R"
if [ -s "$CACHE" ]; then
  tar -xf "$CACHE" -C "$R"
else
  say "debootstrap of Debian 12 (minbase, with man-db, bash-completion, systemd) from $MIRROR"
  debootstrap --variant=minbase --include=man-db,bash-completion,systemd bookworm "$R" "$MIRROR" \
    > "$WORK.debootstrap.log" 2>&1 || { tail -5 "$WORK.debootstrap.log" >&2; skip_or_fail "debootstrap failed (no mirror?)"; }
  tar -cf "$CACHE" -C "$R" .
fi
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"

cp dist/*.deb dist/*.tar.gz "$R/tmp/"
# The tour, from the README as written: its ack takes the receipt of the pop
# before it (a receipt differs on every run).
sed -n '/^## A 30-second tour/,/^```$/p' README.md | sed -n 's/^\$ //p' \
  | sed -e 's/^spoolmq pop jobs --json$/spoolmq pop jobs --json | tee \/tmp\/pop.out/' \
        -e 's/[0-9a-f]\{40\}/$(sed "s\/.*\\"receipt\\":\\"\\([0-9a-f]*\\)\\".*\/\\1\/" \/tmp\/pop.out)/' \
  > "$R/tmp/tour.sh"
[ -s "$R/tmp/tour.sh" ] || { say "no tour found in README.md"; exit 1; }

cat > "$R/tmp/check.sh" <<'EOF'
set -u
fail() { echo "FAILED: $*"; exit 1; }
tour() { # DIR: the tour in a new spool, checked against the README's lines
  rm -rf /tmp/tour
  out=$(bash /tmp/tour.sh 2>&1)
  # jobs: 1 ready, 2 pushed, 1 acked (the ack took); the exec ran; pop exits 3.
  for want in "$(printf 'jobs\t1\t0\t0\t0\t2\t1\t')" "got: hello (attempt 1)" "spoolmq: mail: nothing to pop" "exit 3"; do
    printf '%s\n' "$out" | grep -qF "$want" || fail "the tour did not print '$want':
$out"
  done
}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
! command -v cargo >/dev/null && ! command -v rustc >/dev/null && ! command -v cc >/dev/null \
  || fail "this root has a Rust toolchain or a compiler"

# 1. The package.
dpkg -i /tmp/spoolmq_*.deb > /tmp/dpkg.out 2>&1 || fail "dpkg -i: $(cat /tmp/dpkg.out)"
dpkg -L spoolmq > /tmp/files
v=$(spoolmq --version)
printf '%s\n' "$v" | grep -qE '^spoolmq [0-9.]+ \([0-9a-f]{12}(, dirty)?\)$' || fail "--version: $v"
echo "package: $v"
tour
man -P cat spoolmq 2>/dev/null | grep -q "durable message queue" || fail "man spoolmq shows no page"
man -P cat spoolmq-exec 2>/dev/null | grep -q "exec" || fail "man spoolmq-exec shows no page"
bash -c '. /usr/share/bash-completion/bash_completion; __load_completion spoolmq && complete -p spoolmq' \
  > /dev/null 2>&1 || fail "bash-completion does not find the spoolmq completion"
[ -f /usr/share/zsh/vendor-completions/_spoolmq ] || fail "no zsh completion"
[ -f /usr/share/fish/vendor_completions.d/spoolmq.fish ] || fail "no fish completion"
[ -f /usr/share/doc/spoolmq/README.md ] && [ -f /usr/share/doc/spoolmq/docs/DURABILITY.md ] || fail "no docs"
unit=/usr/lib/systemd/system/spoolmq-worker@.service
[ -f "$unit" ] || fail "no worker unit"
ls /etc/systemd/system/*/spoolmq-worker@* >/dev/null 2>&1 && fail "the worker unit was enabled"
mkdir -p /etc/spoolmq /var/spool/spoolmq
cp /usr/share/doc/spoolmq/examples/worker.env /etc/spoolmq/jobs.env
if command -v systemd-analyze >/dev/null; then
  cp "$unit" /tmp/spoolmq-worker@jobs.service
  systemd-analyze verify /tmp/spoolmq-worker@jobs.service > /tmp/verify.out 2>&1 \
    || fail "systemd-analyze verify: $(cat /tmp/verify.out)"
  echo "package: systemd-analyze verify accepts spoolmq-worker@.service"
fi
# The unit's command line as systemd would run it (%i = jobs, the variables
# from the environment file): it must take a message as SPOOLMQ_USER and
# end on SIGTERM with 143, which the unit counts as a clean stop.
useradd --system --user-group spoolmq
install -d -o spoolmq -g spoolmq -m 0700 /var/spool/spoolmq
cat > /etc/spoolmq/jobs.env <<ENV
SPOOLMQ_COMMAND="/usr/local/bin/handle-job --verbose"
SPOOLMQ_DIR=/var/spool/spoolmq
SPOOLMQ_USER=spoolmq
SPOOLMQ_GROUP=spoolmq
ENV
printf '#!/bin/sh\n[ "$1" = --verbose ] && echo "$(id -un): $(cat)" >> /tmp/handled\n' > /usr/local/bin/handle-job
chmod 755 /usr/local/bin/handle-job
touch /tmp/handled && chmod 666 /tmp/handled
line=$(sed -n 's/^ExecStart=//p' "$unit" | sed 's/%i/jobs/g')
(set -a; . /etc/spoolmq/jobs.env; set +a; eval "exec $line") &
worker=$!
setpriv --reuid=spoolmq --regid=spoolmq --init-groups env SPOOLMQ_DIR=/var/spool/spoolmq spoolmq push jobs "job one" > /dev/null \
  || fail "a push as the worker's user"
for _ in $(seq 1 50); do grep -q "job one" /tmp/handled && break; sleep 0.1; done
grep -qx "spoolmq: job one" /tmp/handled || fail "the unit's command did not run the job as spoolmq: $(cat /tmp/handled)"
kill -TERM $worker
wait $worker; rc=$?
[ $rc = 143 ] && grep -q '^SuccessExitStatus=143$' "$unit" || fail "the worker stopped with $rc"
echo "package: the unit's command ran a job as spoolmq and stopped on SIGTERM with 143"
rm -f /etc/spoolmq/jobs.env
dpkg -r spoolmq > /dev/null 2>&1 || fail "dpkg -r"
left=""
while read -r f; do
  [ -d "$f" ] && continue
  [ -e "$f" ] && left="$left $f"
done < /tmp/files
[ -z "$left" ] || fail "dpkg -r left:$left"
command -v spoolmq >/dev/null && fail "spoolmq still on PATH after dpkg -r"
echo "package: installed, toured, man, completions, unit verified, removed: $(grep -vc '/$' /tmp/files) paths"

# 2. The static binary from the tarball.
cd /tmp && tar -xzf /tmp/spoolmq-*-x86_64-linux.tar.gz
d=$(ls -d /tmp/spoolmq-*-x86_64-linux)
export PATH=$d:$PATH
spoolmq --version > /dev/null || fail "the static binary does not run"
tour
groupadd -g 4321 jobsgrp
spoolmq --dir /tmp/g1 init --group jobsgrp > /dev/null || fail "init --group NAME from /etc/group"
[ "$(stat -c %g /tmp/g1)" = 4321 ] || fail "init --group jobsgrp: gid $(stat -c %g /tmp/g1)"
spoolmq --dir /tmp/g2 init --group 4321 > /dev/null || fail "init --group GID"
err=$(spoolmq --dir /tmp/g3 init --group nosuchgroup 2>&1); rc=$?
[ $rc = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "init --group nosuchgroup: exit $rc: $err"
echo "package: the static binary from the tarball: tour, init --group by name, by gid, refused: $err"
EOF
if chroot "$R" /bin/bash /tmp/check.sh; then
  say "ok"
else
  say "FAILED"
  exit 1
fi
