#!/usr/bin/env bash
# Builds and runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) on the stable toolchain.
#
#   scripts/fuzz.sh build                  build every target
#   scripts/fuzz.sh list                   the target names
#   scripts/fuzz.sh run [--time S | --runs N] [TARGET...]
#                                          fuzz each target (all by default) in turn, one job,
#                                          starting from fuzz/seeds/TARGET (hand-made inputs and
#                                          past crashes); new inputs go to fuzz/corpus/TARGET
#                                          (not committed), a crash to fuzz/artifacts/TARGET/.
#
# The code is safe Rust, so no sanitizer (`-s none`, which also keeps it on stable); debug
# assertions and overflow checks are on (`-a`). `run` prints one line per target,
# `fuzz: TARGET ok|FAILED runs=N exec/s=N`, and exits non-zero if any target failed.
# Needs cargo-fuzz: `scripts/setup.sh --tests` installs it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"

FLAGS=(--sanitizer none --debug-assertions)

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

case "$cmd" in
build)
    cargo fuzz build "${FLAGS[@]}"
    ;;
list)
    cargo fuzz list
    ;;
run)
    limit=(-max_total_time=10)
    while [ $# -gt 0 ]; do
        case "$1" in
        --time) limit=("-max_total_time=$2"); shift 2 ;;
        --runs) limit=("-runs=$2"); shift 2 ;;
        -*) usage ;;
        *) break ;;
        esac
    done
    targets=("$@")
    [ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
    if [ "${#targets[@]}" -eq 0 ]; then
        echo "fuzz: no targets (is cargo-fuzz installed? scripts/setup.sh --tests)" >&2
        exit 1
    fi
    failed=0
    for t in "${targets[@]}"; do
        mkdir -p "corpus/$t" "artifacts/$t"
        log="artifacts/$t/last-run.log"
        set +e
        cargo fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
            -print_final_stats=1 "${limit[@]}" >"$log" 2>&1
        rc=$?
        set -e
        runs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log" | tail -1)
        rate=$(awk '/stat::average_exec_per_sec:/ { print $2 }' "$log" | tail -1)
        if [ "$rc" -eq 0 ]; then
            echo "fuzz: $t ok runs=${runs:-?} exec/s=${rate:-?}"
        else
            failed=$((failed + 1))
            echo "fuzz: $t FAILED (exit $rc) runs=${runs:-?}; log: fuzz/$log"
            grep -E "panicked at|ERROR: libFuzzer|Test unit written|^Minimize|SUMMARY" "$log" | head -20 || true
        fi
    done
    [ "$failed" -eq 0 ]
    ;;
*)
    usage
    ;;
esac
