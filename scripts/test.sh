#!/usr/bin/env bash
# The single "run all tests" command.
#
#   1. scripts/setup.sh --tests    (npm deps, chromium, nginx, debug build of the workspace)
#   2. cargo test --workspace      (unit, integration and doc tests of every crate)
#   3. node --test                 (tests/**/*.test.mjs: conformance tests with the official clients;
#                                   two lanes side by side, see below)
#   4. scripts/fuzz.sh run         (every fuzz target of fuzz/ for a few seconds)
#
# All output goes to the terminal (and to tests/artifacts/*.log). At the end exactly one summary
# line "N passed, N failed" is printed, summed over all suites. The exit code is non-zero if any
# suite failed, if any test failed, or if a suite could not run at all (compile error, crash):
# such a suite counts as (at least) one failure, never as "0 tests".
#
# Extra arguments are passed to `node --test` (e.g. --test-name-pattern=heartbeat).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ART="$ROOT/tests/artifacts"
mkdir -p "$ART"

TOTAL_PASSED=0
TOTAL_FAILED=0
SUITE_REPORT=()

banner() { printf '\n========== %s ==========\n' "$*"; }
strip_ansi() { sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g' "$@"; }

record() { # record NAME PASSED FAILED NOTE
    TOTAL_PASSED=$((TOTAL_PASSED + $2))
    TOTAL_FAILED=$((TOTAL_FAILED + $3))
    # (deliberately not "N passed, N failed": that line is printed once, at the very end)
    SUITE_REPORT+=("$(printf '%-8s pass=%-5d fail=%-5d%s' "$1" "$2" "$3" "${4:+ ($4)}")")
}

# ---------------------------------------------------------------------------------------------
banner "setup"
set +e
bash "$ROOT/scripts/setup.sh" --tests 2>&1 | tee "$ART/setup.log"
setup_rc=${PIPESTATUS[0]}
set -e
if [ "$setup_rc" -ne 0 ]; then
    echo "!! setup.sh failed (exit $setup_rc); continuing so every suite reports" >&2
    record setup 0 1 "setup.sh exit $setup_rc"
fi

# ---------------------------------------------------------------------------------------------
banner "cargo test --workspace"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$ART/cargo-test.log"
cargo_rc=${PIPESTATUS[0]}
set -e
# libtest prints one line per test binary / doctest run:
#   test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
read -r c_pass c_fail c_bins < <(
    strip_ansi "$ART/cargo-test.log" | awk '
        /^test result: / {
            bins++
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^passed;?$/) p += $i
                if ($(i+1) ~ /^failed;?$/) f += $i
            }
        }
        END { printf "%d %d %d\n", p, f, bins }'
)
note="$c_bins result lines, exit $cargo_rc"
if [ "$cargo_rc" -ne 0 ] && [ "$c_fail" -eq 0 ]; then
    # compile error, crashed test binary (no result line), ... — never a silent 0
    c_fail=1
    note="$note: cargo failed without a failing test (compile error or crash?)"
fi
record cargo "$c_pass" "$c_fail" "$note"

# ---------------------------------------------------------------------------------------------
banner "node --test (tests/**/*.test.mjs)"
# Two lanes run side by side, each one file at a time: the cluster and browser tests (several
# servers each), and all the others. NODE_LANES=1 runs everything in one lane.
mapfile -t NODE_FILES < <(find "$ROOT/tests" -path "$ROOT/tests/node_modules" -prune -o \
    -type f -name '*.test.mjs' -print | sort)
if [ "${#NODE_FILES[@]}" -eq 0 ]; then
    echo "no *.test.mjs files found under tests/"
    record node 0 0 "no test files"
else
    HEAVY=() LIGHT=()
    for f in "${NODE_FILES[@]}"; do
        case "$f" in
        "$ROOT"/tests/cluster/* | "$ROOT"/tests/web/*) HEAVY+=("$f") ;;
        *) LIGHT+=("$f") ;;
        esac
    done
    if [ "${NODE_LANES:-2}" = 1 ]; then
        LANES=(all)
        LIGHT=("${NODE_FILES[@]}") HEAVY=()
    else
        LANES=(heavy light)
    fi
    run_lane() { # run_lane NAME FILES... -> tests/artifacts/node-NAME.{log,tap,rc}
        local name=$1
        shift
        rm -f "$ART/node-$name.tap" "$ART/node-$name.rc"
        local rc=0
        (cd "$ROOT/tests" && node --test \
            --test-timeout=120000 \
            --test-reporter=spec --test-reporter-destination="$ART/node-$name.log" \
            --test-reporter=tap --test-reporter-destination="$ART/node-$name.tap" \
            "${EXTRA_NODE_ARGS[@]}" "$@") >"$ART/node-$name.out" 2>&1 || rc=$?
        echo "$rc" >"$ART/node-$name.rc"
    }
    EXTRA_NODE_ARGS=("$@")
    rm -f "$ART/node-test.log"
    pids=()
    for lane in "${LANES[@]}"; do
        case "$lane" in
        heavy) files=("${HEAVY[@]}") ;;
        *) files=("${LIGHT[@]}") ;;
        esac
        [ "${#files[@]}" -gt 0 ] || { echo 0 >"$ART/node-$lane.rc"; continue; }
        run_lane "$lane" "${files[@]}" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    n_pass=0 n_fail=0 node_rc=0 note=""
    for lane in "${LANES[@]}"; do
        echo "---------- node lane: $lane ----------"
        cat "$ART/node-$lane.log" "$ART/node-$lane.out" 2>/dev/null | tee -a "$ART/node-test.log"
        rc=$(cat "$ART/node-$lane.rc" 2>/dev/null || echo 1)
        # The TAP reporter ends with "# tests N", "# pass N", "# fail N", "# cancelled N", ...
        read -r p f c seen < <(
            { [ -f "$ART/node-$lane.tap" ] && strip_ansi "$ART/node-$lane.tap"; } | awk '
                /^# pass [0-9]+$/      { p = $3; seen = 1 }
                /^# fail [0-9]+$/      { f = $3 }
                /^# cancelled [0-9]+$/ { c = $3 }
                END { printf "%d %d %d %d\n", p, f, c, seen }'
        )
        f=$((f + c))
        [ "$c" -gt 0 ] && note="$note $lane: $c cancelled counted as failed;"
        files_in_lane=$([ "$lane" = heavy ] && echo "${#HEAVY[@]}" || echo "${#LIGHT[@]}")
        if [ "$files_in_lane" -gt 0 ] && [ "$seen" -eq 0 ]; then
            f=$((f + 1))
            note="$note $lane: no TAP summary (runner crashed?);"
        elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1
            note="$note $lane: node failed without a failing test;"
        fi
        [ "$rc" -ne 0 ] && node_rc=$rc
        n_pass=$((n_pass + p))
        n_fail=$((n_fail + f))
    done
    record node "$n_pass" "$n_fail" "exit $node_rc${note:+;$note}"
fi

# ---------------------------------------------------------------------------------------------
# Every fuzz target for a few seconds from its seeds (which hold the inputs of past crashes): one
# pass or failure per target. The long runs are in docs/fuzzing.md.
banner "fuzz (short runs)"
FUZZ_SECONDS="${FUZZ_SECONDS:-8}"
set +e
bash "$ROOT/scripts/fuzz.sh" run --time "$FUZZ_SECONDS" 2>&1 | tee "$ART/fuzz.log"
fuzz_rc=${PIPESTATUS[0]}
set -e
f_pass=$(grep -c '^fuzz: .* ok ' "$ART/fuzz.log" || true)
f_fail=$(grep -c '^fuzz: .* FAILED' "$ART/fuzz.log" || true)
note="exit $fuzz_rc"
if [ "$fuzz_rc" -ne 0 ] && [ "$f_fail" -eq 0 ]; then
    f_fail=1
    note="$note: fuzz.sh failed without a failing target (cargo-fuzz missing? build error?)"
elif [ "$f_pass" -eq 0 ] && [ "$f_fail" -eq 0 ]; then
    f_fail=1
    note="$note: no fuzz target ran"
fi
record fuzz "$f_pass" "$f_fail" "$note"

# ---------------------------------------------------------------------------------------------
banner "summary"
for line in "${SUITE_REPORT[@]}"; do echo "  $line"; done
echo
echo "${TOTAL_PASSED} passed, ${TOTAL_FAILED} failed"
if [ "$TOTAL_FAILED" -ne 0 ]; then
    exit 1
fi
exit 0
