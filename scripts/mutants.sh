#!/usr/bin/env bash
# Mutation testing of the record, segment, index and queue modules with
# cargo-mutants (https://mutants.rs). Configuration, including the mutants
# excluded as harmless and why: .cargo/mutants.toml.
#
# Usage: scripts/mutants.sh [more cargo-mutants arguments]
#   e.g. scripts/mutants.sh -f src/store/fs/index.rs      (one file)
#        scripts/mutants.sh --list               (count, run nothing)
#
# Runs one mutant at a time against the unit tests (`cargo test --lib`, with
# the model test cut to SPOOLMQ_MODEL_OPS operations) and tests/it/mutants_*.rs.
# About 45 minutes on 2 cores. Results: target/mutants.out/ (missed.txt,
# caught.txt, timeout.txt, unviable.txt, outcomes.json). Exits non-zero if
# any mutant survived. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "== installing cargo-mutants"
    cargo install cargo-mutants --locked
fi

export SPOOLMQ_MODEL_OPS="${SPOOLMQ_MODEL_OPS:-10000}"
status=0
cargo mutants --jobs 1 --output target "$@" || status=$?

out=target/mutants.out
if [[ -f $out/outcomes.json ]]; then
    caught=$(wc -l <"$out/caught.txt")
    timeout=$(wc -l <"$out/timeout.txt")
    missed=$(wc -l <"$out/missed.txt")
    unviable=$(wc -l <"$out/unviable.txt")
    viable=$((caught + timeout + missed))
    echo "== mutants: $((viable + unviable)) in all, $unviable unviable (do not build)"
    echo "== caught $caught + timeout $timeout, missed $missed:" \
        "score $((caught + timeout)) / $viable"
    if [[ $missed -gt 0 ]]; then
        echo "== missed:"
        cat "$out/missed.txt"
    fi
fi
exit "$status"
