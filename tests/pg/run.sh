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

# publish_new NAME DAEMON FAMILY FILE SEED KIB: family FAMILY on DAEMON
# with variant "v" on a new blob (make_blob FILE SEED KIB, uploaded there);
# the publish is checked as NAME (201). PUB_HEX: the blob's hex.
publish_new() {
    local name=$1 d=$2 fam=$3 file=$4
    make_blob "$file" "$5" "$6"
    PUB_HEX=$(sha "$file")
    admin "$d" PUT "/v1/families/$fam" "${JSON[@]}" -d '{"task":"t","description":"d"}' >/dev/null
    admin "$d" PUT "/v1/blobs/sha256:$PUB_HEX" --data-binary "@$file" >/dev/null
    check "$name" 201 \
        "$(admin "$d" PUT "/v1/families/$fam/variants/v" "${JSON[@]}" -d "$(variant_body "$PUB_HEX")")"
}

# origin_start NAME DELAY_S: tests/pg/origin.py serving $WORK/NAME (made
# here; DELAY_S between chunks), once it listens. ORIGIN_URL, ORIGIN_PID.
origin_start() {
    mkdir -p "$WORK/$1"
    python3 tests/pg/origin.py "$WORK/$1" "$2" >"$WORK/$1.port" 2>"$WORK/$1.err" &
    ORIGIN_PID=$!
    wait_for 10 test -s "$WORK/$1.port"
    ORIGIN_URL=http://127.0.0.1:$(head -1 "$WORK/$1.port")
}

# origin_stop PID: stops an origin origin_start started.
origin_stop() {
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
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
