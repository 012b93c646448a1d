#!/usr/bin/env bash
# Regenerates completions/ and man/ from the binary (a test fails until they match).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/spoolmq
for s in bash:spoolmq.bash zsh:_spoolmq fish:spoolmq.fish elvish:spoolmq.elv powershell:_spoolmq.ps1; do
  "$bin" completions "${s%%:*}" > "completions/${s#*:}"
done
"$bin" man > man/spoolmq.1
# Every subcommand that has a page: the list `spoolmq man NOPE` prints.
cmds=$("$bin" man nope 2>&1 | sed -n 's/.*the commands are //p' | tr -d ',' || true)
[[ -n $cmds ]] || { echo "regen.sh: cannot read the command list from 'spoolmq man nope'" >&2; exit 1; }
for c in $cmds; do
  "$bin" man "$c" > "man/spoolmq-$c.1"
done
