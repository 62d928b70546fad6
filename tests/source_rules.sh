#!/usr/bin/env bash
# Rules about the source that no unit test can see (issue 15, STYLE.md),
# checked by `make check`: tests/source_rules.sh [RESULTS_FILE]
#  - one FNV-1a: its prime and offset basis are written only in
#    proto/types.h (a copy elsewhere once lost a digit of the basis);
#  - one mmap-a-file and one fsync-a-directory helper (store/fileio.c)
#    for the daemon and its commands; the UE library (client/, which links
#    proto/ only, not store/) keeps its own in client/;
#  - every error code of proto/errors.def that is not RETIRED_<n> is
#    produced somewhere (PROTO_ERR_<NAME> used outside the table): a code
#    no answer carries is retired, not left documented.
# Prints ok/not ok lines; appends "N_PASSED N_FAILED" to RESULTS_FILE
# (build/results by default).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/lib/check.sh
. "$ROOT/tests/lib/check.sh"
cd "$ROOT" || exit 1

SRC_DIRS=(server proto store policy client tools)

# ---- one FNV-1a -----------------------------------------------------------
# The prime (decimal or hex) and the offset basis, also with its lost digit.
copies=$(grep -rnE --include='*.c' --include='*.h' \
    '1099511628211|0x0*100000001b3|1469598103934665603|cbf29ce484222325' \
    "${SRC_DIRS[@]}" | grep -v '^proto/types\.h:')
check "one FNV-1a: its constants only in proto/types.h" "" "$copies"

# ---- one mmap-a-file, one fsync-a-directory ------------------------------
copies=$(grep -rnE --include='*.c' '[^_]mmap\(|O_DIRECTORY' \
    server proto store policy tools | grep -v '^store/fileio\.c:')
check "one mmap/fsync-dir helper: only store/fileio.c maps or opens a directory" \
    "" "$copies"

# ---- every live error code is produced ------------------------------------
while IFS= read -r name; do
    case $name in RETIRED_*) continue ;; esac
    users=$(grep -rlw --include='*.c' --include='*.h' "PROTO_ERR_$name" \
        "${SRC_DIRS[@]}" | grep -v '^proto/errors\.def$' | head -n 1)
    if [ -n "$users" ]; then
        pass "errors.def: $name is produced ($users)"
    else
        fail "errors.def: $name is produced nowhere (retire it: RETIRED_<n>)"
    fi
done < <(sed -n 's/^PROTO_ERR([0-9]*, *\([A-Z0-9_]*\),.*/\1/p' proto/errors.def)

check_report source-rules "${1:-$ROOT/build/results}"
