#!/bin/bash
# The PostgreSQL catalog's tests: tests/pg/run.sh MODELD_BINARY STORE_CHECK
# Starts throw-away PostgreSQL servers (tests/lib/pg.sh), runs the store
# unit suite on them (the same tests as on SQLite), then the daemon cases
# in tests/pg/cases_*.sh. Skipped, saying so, only when PostgreSQL is not
# installed and cannot be (deploy/install-deps.sh installs it).
set -u
cd "$(dirname "$0")/../.."
BIN=$(realpath "$1")
CHECK_STORE=$(realpath "$2")
. tests/lib/check.sh
. tests/lib/pg.sh
. tests/lib/daemon.sh
MODELD=$BIN
WORK=$(mktemp -d /tmp/modeld-pg-e2e.XXXXXX)
TOKEN_FILE=$WORK/token
openssl rand -hex 24 >"$TOKEN_FILE"
JSON=(-H 'Content-Type: application/json')
SELECT_BODY='{"device":{"memory_bytes":4000000000,"gflops":50}}'

# make_blob FILE SEED SIZE_KB: compressible bytes, one seed's pattern.
make_blob() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys, random
path, seed, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
words = [bytes(r.getrandbits(8) for _ in range(16)) for _ in range(64)]
out = bytearray()
while len(out) < kb * 1024:
    out += words[r.randrange(64)]
open(path, "wb").write(bytes(out[: kb * 1024]))
PY
}

# variant_body HEX: the smallest valid variant metadata.
variant_body() {
    printf '{"blob":"sha256:%s","flops":100000000,"accuracy":0.7}' "$1"
}

if ! pg_find_bin; then
    rm -rf "$WORK"
    echo "SKIPPED: PostgreSQL is not installed (postgresql-15); the" \
         "PostgreSQL catalog was not tested"
    exit 0
fi
trap 'd_stop_all; pg_stop_all; rm -rf "$WORK"' EXIT
mkdir -p build

# ---- the store suite on PostgreSQL ----------------------------------------
# One server for the suite and the cases that need no replication, a
# database each.
if pg_start main && pg_database main unit; then
    out=$(MODELD_TEST_CATALOG=$(pg_url main unit) CK_DEFAULT_TIMEOUT=120 \
        "$CHECK_STORE" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -E '^[0-9]+%|:[EF]:' || printf '%s\n' "$out" | tail -20
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    checks=$(printf '%s' "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
    bad=$(printf '%s' "$line" | sed -n 's/.*Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1+\2/p')
    if [ -n "$checks" ] && [ "$rc" -eq 0 ] && [ "$((bad))" -eq 0 ]; then
        pass "store suite on PostgreSQL ($checks checks)"
    else
        fail "store suite on PostgreSQL (exit $rc)"
    fi
else
    fail "starting PostgreSQL for the store suite"
fi

# ---- daemons on PostgreSQL --------------------------------------------------
for f in tests/pg/cases_*.sh; do
    [ -e "$f" ] || continue
    [ -n "${MODELD_PG_ONLY:-}" ] && case $(basename "$f") in $MODELD_PG_ONLY) ;; *) continue ;; esac
    # shellcheck disable=SC1090
    . "$f"
done

check_report "pg" build/results
