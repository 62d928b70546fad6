#!/usr/bin/env bash
# Rules about the source that no unit test can see (issue 15, STYLE.md),
# checked by `make check`: tests/source_rules.sh [RESULTS_FILE]
#  - one FNV-1a: its prime and offset basis are written only in
#    proto/types.h (a copy elsewhere once lost a digit of the basis);
#  - one write-all, one fsync-a-directory and one mmap-a-file helper in
#    the whole tree (fileio/fileio.c), which the daemon, its commands and
#    the UE library (client/) all link: no other file calls write(),
#    pwrite(), mmap() or munmap(), or opens or fsyncs a directory;
#  - fileio/ stands on libc alone and client/ includes no header of
#    store/, server/ or policy/ (an app links the UE library without
#    SQLite, libpq or libmicrohttpd);
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

SRC_DIRS=(server proto store policy client tools fileio)

# ---- one FNV-1a -----------------------------------------------------------
# The prime (decimal or hex) and the offset basis, also with its lost digit.
copies=$(grep -rnE --include='*.c' --include='*.h' \
    '1099511628211|0x0*100000001b3|1469598103934665603|cbf29ce484222325' \
    "${SRC_DIRS[@]}" | grep -v '^proto/types\.h:')
check "one FNV-1a: its constants only in proto/types.h" "" "$copies"

# ---- one write-all, one fsync-a-directory, one mmap-a-file ----------------
# A write-all loop is a loop around write()/pwrite(); a directory's fsync
# opens it with O_DIRECTORY or fsyncs something named dir (dirfd() too).
only_fileio() {
    grep -rnE --include='*.c' --include='*.h' "$1" "${SRC_DIRS[@]}" |
        grep -v '^fileio/fileio\.c:'
}
copies=$(only_fileio '(^|[^_[:alnum:].>])p?write(v)?\(')
check "one write-all: only fileio/fileio.c calls write()/pwrite()" "" "$copies"
copies=$(only_fileio '(^|[^_[:alnum:].>])(mmap|munmap)\(')
check "one mmap helper: only fileio/fileio.c maps a file" "" "$copies"
copies=$(only_fileio 'O_DIRECTORY|fsync\([^;]*dir')
check "one fsync-dir helper: only fileio/fileio.c opens or fsyncs a directory" \
    "" "$copies"

# ---- the UE library links without the daemon -----------------------------
copies=$(grep -nE '^#[[:space:]]*include[[:space:]]*"' fileio/*.[ch] |
    grep -v '"fileio/')
check "fileio/ includes no other module" "" "$copies"
copies=$(grep -nE '^#[[:space:]]*include[[:space:]]*"(store|server|policy)/' \
    client/*.[ch])
check "client/ includes nothing of store/, server/, policy/" "" "$copies"

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
