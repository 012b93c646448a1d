#!/usr/bin/env bash
# scripts/package.sh: the artifacts people install without a Rust toolchain,
# built from this checkout into dist/:
#
#   dist/spoolmq                                 the static binary (x86_64 Linux, static-pie)
#   dist/spoolmq-VERSION-x86_64-linux.tar.gz     it, with man pages, completions, README, docs,
#                                                the systemd unit and its example environment file
#   dist/spoolmq_VERSION-1_amd64.deb             the Debian package (cargo-deb)
#   dist/SHA256SUMS
#
# One command from a clean clone: it installs cargo-deb from crates.io when
# it is missing. The binary is built once, with the `dist` profile (LTO, one
# codegen unit, no unwinding) and `crt-static`, and both the tarball and the
# package carry that same file. Checked on a fresh Debian root by
# scripts/package-test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=x86_64-unknown-linux-gnu
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
say() { echo "package: $*" >&2; }

command -v cargo >/dev/null || { say "cargo is required to build the artifacts (rustup.rs)"; exit 1; }

# The static binary. RUSTFLAGS replaces .cargo/config.toml's flags, so its
# one flag is given again here. With --target, RUSTFLAGS reach only the
# target's code, not build scripts. On this target crt-static links a
# static-pie, so address-space randomisation stays.
CONFIG_FLAGS="--cfg poly1305_force_soft"
say "building the static binary (profile dist, $TARGET)"
RUSTFLAGS="$CONFIG_FLAGS -C target-feature=+crt-static" \
  cargo build --quiet --locked --profile dist --target "$TARGET" --bin spoolmq
BIN=$ROOT/target/$TARGET/dist/spoolmq
# ldd says "statically linked" of a static-pie ("not a dynamic executable"
# of a static non-PIE binary).
if ! ldd "$BIN" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
  say "$BIN is dynamically linked: the static build did not take ($(ldd "$BIN" 2>&1 | head -1))"
  exit 1
fi
file "$BIN" 2>/dev/null | grep -q 'static-pie' || say "warning: $BIN is static but not a static-pie"

rm -rf dist
mkdir -p dist
# The dist profile strips it (Cargo.toml), so this is the very file the
# package installs.
cp "$BIN" dist/spoolmq

# What both the tarball and the package install beside the binary: man
# pages gzipped as Debian installs them, completions, docs, the unit.
STAGE=$ROOT/target/package
rm -rf "$STAGE"
mkdir -p "$STAGE/man"
for m in man/*.1; do
  gzip -9n < "$m" > "$STAGE/man/$(basename "$m").gz"
done

NAME=spoolmq-$VERSION-x86_64-linux
T=$STAGE/$NAME
mkdir -p "$T/man/man1" "$T/completions" "$T/docs" "$T/systemd"
cp dist/spoolmq "$T/"
cp man/*.1 "$T/man/man1/"
cp completions/spoolmq.bash completions/_spoolmq completions/spoolmq.fish "$T/completions/"
cp README.md "$T/"
cp docs/*.md "$T/docs/"
cp 'packaging/spoolmq-worker@.service' packaging/worker.env "$T/systemd/"
tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -czf "dist/$NAME.tar.gz" "$NAME"

# The Debian package, from the same binary (--no-build): Cargo.toml's
# [package.metadata.deb] lists what goes where.
if ! cargo deb --version >/dev/null 2>&1; then
  say "installing cargo-deb from crates.io"
  cargo install --quiet --locked cargo-deb
fi
say "building the Debian package"
cargo deb --no-build --no-strip --target "$TARGET" --profile dist --output dist/ >/dev/null
# cargo-deb names it spoolmq_VERSION-1_amd64.deb.

(cd dist && sha256sum spoolmq ./*.tar.gz ./*.deb | sed 's| \./| |' > SHA256SUMS)
say "done:"
ls -l dist >&2
