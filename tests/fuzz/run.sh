#!/bin/sh
# Runs every built libFuzzer target: tests/fuzz/run.sh [SECONDS]
# Each target first replays its committed corpus (tests/fuzz/corpus/NAME,
# crash regressions included), then fuzzes for SECONDS. New inputs go to a
# temporary directory; the committed corpus is only read, through a copy.
# Prints one line per target, keeps crash inputs in build/fuzz/crashes/ and
# logs in build/fuzz/logs/, appends "passed failed" to build/results (or
# to $FUZZ_RESULTS).
seconds=${1:-3}
results=${FUZZ_RESULTS:-build/results}
cd "$(dirname "$0")/../.." || exit 1

crashes=build/fuzz/crashes
logs=build/fuzz/logs
mkdir -p "$crashes" "$logs"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/modeld-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

passed=0
failed=0
for bin in build/fuzz/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    seeds="$tmp/$name.seeds"
    out="$tmp/$name.new"
    log="$logs/$name.log"
    mkdir -p "$seeds" "$out"
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp -R "tests/fuzz/corpus/$name/." "$seeds/"
    fi
    "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 \
        -print_final_stats=1 -artifact_prefix="$crashes/$name-" \
        "$out" "$seeds" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    new=$(find "$out" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "$name: ok, ${runs:-?} runs in ${seconds}s, $new new inputs"
    else
        failed=$((failed + 1))
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
                   tail -n 1)
        echo "$name: FAILED (exit $rc), input ${artifact:-not written}," \
             "log $log"
        grep -E 'ERROR: |SUMMARY: |runtime error|^ +#[0-9]+ ' "$log" |
            head -n 20 | sed 's/^/    /'
    fi
done

if [ $((passed + failed)) -eq 0 ]; then
    echo "fuzz: no target built in build/fuzz (make fuzz-build)"
    failed=1
fi
mkdir -p "$(dirname "$results")"
echo "$passed $failed" >>"$results"
echo "fuzz: $passed targets clean, $failed failed"
[ "$failed" -eq 0 ]
