# shellcheck shell=bash
# The assertions and the tally shared by the shell test runners
# (tests/e2e/run.sh, tests/crash/run.sh): "ok - NAME" / "not ok - NAME:
# why" lines, counted in PASSED and FAILED; check_report prints the
# closing line and appends "N_PASSED N_FAILED" to a results file.

PASSED=0
FAILED=0

pass() {
    PASSED=$((PASSED + 1))
    echo "ok - $1"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "not ok - $1"
}

# check NAME EXPECTED ACTUAL: string equality.
check() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1: expected $2, got $3"
    fi
}

# check_cmd NAME COMMAND...: passes when the command succeeds.
check_cmd() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then
        pass "$name"
    else
        fail "$name: '$*' failed"
    fi
}

# check_match NAME ERE ACTUAL: ACTUAL matches the extended regex.
check_match() {
    if printf '%s' "$3" | grep -Eq -- "$2"; then
        pass "$1"
    else
        fail "$1: expected a match of /$2/, got '$3'"
    fi
}

# check_ge NAME MIN ACTUAL / check_lt NAME LIMIT ACTUAL: integers.
check_ge() {
    if [[ "$3" =~ ^-?[0-9]+$ ]] && [ "$3" -ge "$2" ]; then
        pass "$1"
    else
        fail "$1: expected at least $2, got $3"
    fi
}

check_lt() {
    if [[ "$3" =~ ^-?[0-9]+$ ]] && [ "$3" -lt "$2" ]; then
        pass "$1"
    else
        fail "$1: expected under $2, got $3"
    fi
}

# check_report LABEL RESULTS_FILE: "LABEL: N passed, N failed", the counts
# appended to RESULTS_FILE; returns non-zero when anything failed.
check_report() {
    echo "$1: $PASSED passed, $FAILED failed"
    mkdir -p "$(dirname "$2")"
    echo "$PASSED $FAILED" >>"$2"
    [ "$FAILED" -eq 0 ]
}
