#!/usr/bin/env bash
# Runs each cargo-fuzz target of spoolmq for SECONDS, one after another, on
# one core. Usage: fuzz/run.sh SECONDS [TARGET...]   (default: every target)
#
# Exits non-zero if any target crashed (panic, timeout or out-of-memory);
# the crashing inputs are then in fuzz/artifacts/<target>/. The corpus grows
# in fuzz/corpus/<target>/ and is reused by the next run. Both are ignored by
# git. See fuzz/README.md.
#
# Environment: FUZZ_SANITIZER (default none: the decoders are safe Rust, and
# without ASan a target runs ~2x as many inputs; "address" works too),
# FUZZ_ARGS (more libFuzzer flags, e.g. "-max_len=70000").
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
secs=$1
shift
cd "$(dirname "$0")"

# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov...);
# this lets the machine's one stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

sanitizer=${FUZZ_SANITIZER:-none}
build=(-s "$sanitizer" --debug-assertions)
cargo fuzz build "${build[@]}"

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/run.log"
    echo "== $t: ${secs}s (log: fuzz/$log)"
    # One process (no -jobs/-workers): the machine has 2 cores and is shared.
    # A single input running over 10 s counts as a crash (a hang).
    # shellcheck disable=SC2086
    if cargo fuzz run "${build[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-} \
        >"$log" 2>&1; then
        status=ok
    else
        failed+=("$t")
        if grep -q "Test unit written to" "$log"; then
            status=CRASHED
            grep -E "panicked at|^(SUMMARY|==[0-9]+== ERROR)|deadly signal|Test unit written to" "$log" >&2 || true
        elif grep -qE "^error(\[E[0-9]+\])?:" "$log"; then
            # cargo fuzz run rebuilds: src/ changed since the build above and no longer compiles.
            status="BUILD-FAILED"
            grep -E -A3 "^error" "$log" | head -20 >&2 || true
        else
            status=FAILED
            tail -20 "$log" >&2
        fi
    fi
    runs=$(grep -oE "^Done [0-9]+ runs in [0-9]+ second" "$log" | tail -1 || true)
    [[ -n $runs ]] || runs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "$log" | tail -1 || true)
    summary+=("$(printf '%-16s %-8s %s' "$t" "$status" "${runs:-?}")")
done

echo
echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
echo "artifacts (crashing inputs, logs): $(pwd)/artifacts/<target>/"
echo "corpus: $(pwd)/corpus/<target>/"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (see the summary and fuzz/artifacts/<target>/run.log)" >&2
    echo "reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} TARGET artifacts/TARGET/crash-..." >&2
    exit 1
fi
