#!/bin/sh
# Runs Check unit-test binaries: tests/run-unit.sh DIR NAME...
# Prints each suite's summary and appends "passed failed" to build/results.
dir=$1
shift
status=0
mkdir -p build
for name in "$@"; do
    out=$(CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60} "$dir/$name" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v '^Running suite' | grep -E '^[0-9]+%|:[EF]:' \
        || printf '%s\n' "$out" | tail -n 20
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    checks=$(printf '%s' "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
    fails=$(printf '%s' "$line" | sed -n 's/.*Failures: \([0-9]*\).*/\1/p')
    errs=$(printf '%s' "$line" | sed -n 's/.*Errors: \([0-9]*\).*/\1/p')
    if [ -z "$checks" ]; then
        echo "$dir/$name: no Check summary (exit $rc)"
        echo "0 1" >>build/results
        status=1
        continue
    fi
    bad=$((fails + errs))
    echo "$((checks - bad)) $bad" >>build/results
    if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then
        status=1
    fi
done
exit $status
