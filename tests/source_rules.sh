#!/usr/bin/env bash
# Rules about the source that no unit test can see (issue 15, STYLE.md),
# checked by `make check`: tests/source_rules.sh [RESULTS_FILE]
#  - one FNV-1a: its prime and offset basis are written only in
#    proto/types.h (a copy elsewhere once lost a digit of the basis);
# Prints ok/not ok lines; appends "N_PASSED N_FAILED" to RESULTS_FILE
# (build/results by default).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/check.sh
. "$ROOT/tests/lib/check.sh"
cd "$ROOT" || exit 1

SRC_DIRS="server proto store policy client tools"

# ---- one FNV-1a -----------------------------------------------------------
# The prime (decimal or hex) and the offset basis, also with its lost digit.
copies=$(grep -rnE --include='*.c' --include='*.h' \
    '1099511628211|0x0*100000001b3|1469598103934665603|cbf29ce484222325' \
    $SRC_DIRS | grep -v '^proto/types\.h:')
check "one FNV-1a: its constants only in proto/types.h" "" "$copies"

check_report source-rules "${1:-$ROOT/build/results}"
