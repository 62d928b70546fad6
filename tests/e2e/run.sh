#!/usr/bin/env bash
# End-to-end tests: tests/e2e/run.sh DAEMON_BINARY
#
# Starts the real daemon on a free loopback port with a fresh data directory
# and a random admin token, then sources tests/e2e/cases_*.sh in order. Each
# case file talks HTTP to it with curl and asserts with check/check_*.
# MODELD_E2E_QUICK=1 (the ASan run) skips the heavy cases; they are not
# counted. Prints "e2e: N passed, N failed", appends "N_PASSED N_FAILED" to
# build/results and exits non-zero on any failure.
set -u

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: tests/e2e/run.sh DAEMON_BINARY" >&2
    exit 2
fi

E2E_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$E2E_DIR/../.." && pwd)
MODELD=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
CONFIG=$ROOT/configs/test.conf
QUICK=${MODELD_E2E_QUICK:-0}
CURL_MAX_TIME=${MODELD_E2E_CURL_TIME:-60}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/modeld-e2e.XXXXXX") || exit 1
# shellcheck source=tests/lib/check.sh
. "$ROOT/tests/lib/check.sh"
unset MODELD_ADMIN_TOKEN

# Daemons by name: pid and port; stdout and stderr in $WORK/NAME.out, .err.
declare -A DPID=() DPORT=() DSCHEME=()
# Extra curl arguments of every http() call (the TLS cases set --cacert).
CURL_TLS=()
BASE=""        # http://127.0.0.1:PORT of the daemon http() talks to
STATUS=""      # status of the last http() call ("000": no answer)
HDRS=$WORK/last.headers
BODY=$WORK/last.body

cleanup() {
    [ -n "${E2E_KEEP:-}" ] && return
    local name
    for name in "${!DPID[@]}"; do
        kill -KILL "${DPID[$name]}" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- reporting ------------------------------------------------------------

# check_jq NAME FILTER: the jq filter over the last body yields true.
check_jq() {
    local got
    got=$(jq -c "$2" "$BODY" 2>/dev/null) || got="(not JSON: $(head -c 200 "$BODY"))"
    if [ "$got" = "true" ]; then
        pass "$1"
    else
        fail "$1: expected $2 to hold, got $got; body $(head -c 300 "$BODY")"
    fi
}

# ---- HTTP -----------------------------------------------------------------

# http METHOD PATH [CURL ARGS...]: sends one request to $BASE. Sets STATUS;
# the headers land in $HDRS and the body in $BODY (empty for HEAD).
http() {
    local method=$1 path=$2
    shift 2
    local mflag=(-X "$method" -o "$BODY")
    # curl --head writes the headers to -o: keep $BODY empty.
    [ "$method" = HEAD ] && mflag=(--head -o /dev/null)
    : >"$HDRS"
    : >"$BODY"
    local out
    out=$(curl -sS --max-time "$CURL_MAX_TIME" --path-as-is \
        -D "$HDRS" -w '%{http_code} %{content_type}' "${mflag[@]}" \
        "${CURL_TLS[@]}" "$@" "$BASE$path" 2>"$WORK/last.curl")
    STATUS=${out%% *}
    [ -n "$STATUS" ] || STATUS=000
    spec_record "$method" "$path" "${out#* }"
}

# The header a JSON body needs (415 without a JSON media type; curl -d
# alone sends application/x-www-form-urlencoded): http POST P -H "$JSON_CT" -d ...
JSON_CT='Content-Type: application/json'

# http_admin METHOD PATH [CURL ARGS...]: with the right bearer token.
http_admin() {
    local method=$1 path=$2
    shift 2
    http "$method" "$path" -H "Authorization: Bearer $TOKEN" "$@"
}

# hdr NAME: value of a header of the last answer (last occurrence, so the
# final answer after a 100 Continue), without the CR.
hdr() {
    tr -d '\r' <"$HDRS" | awk -v want="$1" '
        BEGIN { want = tolower(want) }
        { i = index($0, ":"); if (i == 0) next
          n = tolower(substr($0, 1, i - 1))
          if (n == want) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); last = v } }
        END { printf "%s", last }'
}

# jbody FILTER: jq -r over the last body ("" when it is not JSON).
jbody() {
    jq -r "$1" "$BODY" 2>/dev/null
}

# check_problem NAME STATUS [FIELD]: the last answer is an RFC 9457 problem
# with this status (and this field when given).
check_problem() {
    local name=$1 want=$2 field=${3-}
    check "$name: status" "$want" "$STATUS"
    check_match "$name: content type" '^application/problem\+json' "$(hdr Content-Type)"
    check_jq "$name: problem body" \
        "(.type|type==\"string\") and (.title|type==\"string\") and .status==$want and (.detail|type==\"string\" and length>0) and (.code|type==\"number\")"
    if [ -n "$field" ]; then
        check "$name: field" "$field" "$(jbody '.field')"
    fi
}

# spec_record METHOD PATH [CONTENT_TYPE]: records the last answer ($STATUS,
# $HDRS, and $BODY when it is JSON) for the check against
# proto/openapi.yaml at the end of the run (tests/e2e/spec_check.py). A
# case that calls curl itself with -D "$HDRS" -o "$BODY" calls this after.
SPEC_DIR=$WORK/spec
SPEC_SEQ=0
SPEC_CASE=run.sh
mkdir -p "$SPEC_DIR"
spec_record() {
    local method=$1 path=$2 ctype=${3-} f
    [ "$STATUS" = 000 ] && return 0
    [ $# -ge 3 ] || ctype=$(hdr Content-Type)
    SPEC_SEQ=$((SPEC_SEQ + 1))
    f=$SPEC_DIR/$SPEC_SEQ
    cp "$HDRS" "$f.h"
    case $ctype in *json*) cp "$BODY" "$f.b" ;; esac
    path=${path//$'\t'/%09}
    path=${path//$'\n'/%0A}
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$SPEC_SEQ" "$SPEC_CASE" \
        "$method" "$path" "$STATUS" "$ctype" >>"$SPEC_DIR/index.tsv"
}

# spec_check: every recorded answer against proto/openapi.yaml, in one
# python run (a pass per case file whose answers all match, a fail per
# answer that does not, naming the operation, status and JSON path), after
# the validator's own self-test.
spec_check() {
    local line rc=0
    {
        python3 "$E2E_DIR/spec_check.py" --self-test "$ROOT/proto/openapi.yaml" &&
            python3 "$E2E_DIR/spec_check.py" "$ROOT/proto/openapi.yaml" "$SPEC_DIR"
    } >"$WORK/spec.out" 2>&1 || rc=$?
    while IFS= read -r line; do
        case $line in
        pass$'\t'*) pass "${line#*$'\t'}" ;;
        fail$'\t'*) fail "${line#*$'\t'}" ;;
        *) echo "# $line" ;;
        esac
    done <"$WORK/spec.out"
    [ "$rc" -eq 0 ] || fail "spec: tests/e2e/spec_check.py exits $rc"
}

# ---- daemons --------------------------------------------------------------

is_running() {
    local state
    [ -r "/proc/$1/stat" ] || return 1
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# daemon_start NAME DATA_DIR [EXTRA ARGS...]: starts `serve` with the test
# config; waits for the "listening on" line and /healthz. Returns non-zero
# (after a failed check) when it does not come up. Sets BASE to it.
daemon_start() {
    local name=$1 data=$2 port line scheme=http
    shift 2
    mkdir -p "$data"
    # Emptied here, not only by the redirect below: that truncation runs in
    # the forked child, and a restart under the same NAME could otherwise
    # read the previous daemon's "listening on" line (its dead port) first
    : >"$WORK/$name.out"
    : >"$WORK/$name.err"
    "$MODELD" serve --config "$CONFIG" --listen 127.0.0.1:0 --data "$data" \
        "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    DPID[$name]=$!
    port=""
    # bounded by time (60 s each wait), not by a count of polls, whose
    # length a loaded machine stretches
    local deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        line=$(grep -m1 '^listening on ' "$WORK/$name.out" 2>/dev/null)
        if [ -n "$line" ]; then
            port=$(printf '%s' "$line" |
                sed -n 's#^listening on https\{0,1\}://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p')
            scheme=${line#listening on }
            scheme=${scheme%%://*}
            break
        fi
        is_running "${DPID[$name]}" || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        fail "$name: daemon prints 'listening on http://127.0.0.1:PORT' (stdout '$(head -c 200 "$WORK/$name.out")', stderr: $(tail -n 5 "$WORK/$name.err"))"
        kill -KILL "${DPID[$name]}" 2>/dev/null
        unset "DPID[$name]"
        return 1
    fi
    DPORT[$name]=$port
    DSCHEME[$name]=$scheme
    BASE=$scheme://127.0.0.1:$port
    deadline=$((SECONDS + 60))
    while :; do
        http GET /healthz
        if [ "$STATUS" = 200 ] || ((SECONDS >= deadline)); then break; fi
        sleep 0.05
    done
    check "$name: /healthz answers 200 once listening" 200 "$STATUS"
}

# use NAME: later http() calls go to this daemon.
use() {
    BASE=${DSCHEME[$1]:-http}://127.0.0.1:${DPORT[$1]}
}

# daemon_log_clean NAME: no bug report or sanitizer output in its stderr.
daemon_log_clean() {
    local bad
    bad=$(grep -E 'BUG:|runtime error|AddressSanitizer|LeakSanitizer' \
        "$WORK/$1.err" | head -n 5)
    check "$1: stderr has no BUG:/sanitizer report" "" "$bad"
}

# daemon_stop NAME: SIGTERM; it must exit 0 within 30 s, with exactly one
# stdout line and a clean stderr.
daemon_stop() {
    local name=$1 pid i rc
    if [ -z "${DPID[$name]+set}" ]; then
        fail "$name: stop: the daemon is not running"
        return 1
    fi
    pid=${DPID[$name]}
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 600; i++)); do
        is_running "$pid" || break
        sleep 0.05
    done
    if is_running "$pid"; then
        fail "$name: exits within 30 s of SIGTERM"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"
    rc=$?
    unset "DPID[$name]"
    check "$name: exit status after SIGTERM" 0 "$rc"
    check "$name: stdout is exactly one line" 1 "$(wc -l <"$WORK/$name.out" | tr -d ' ')"
    daemon_log_clean "$name"
}

# metric NAME SELECTOR...: sum of the samples of metric NAME whose label set
# holds every SELECTOR (e.g. 'route="/healthz"'); 0 when there is none.
metric() {
    local name=$1
    shift
    awk -v name="$name" -v sels="$*" '
        BEGIN { n = split(sels, want, " ") }
        index($0, name "{") == 1 || index($0, name " ") == 1 {
            ok = 1
            for (i = 1; i <= n; i++) if (index($0, want[i]) == 0) ok = 0
            if (ok) sum += $NF
        }
        END { printf "%d", sum }' "$BODY"
}

# sha_of FILE: "sha256:<hex>" of a file.
sha_of() {
    printf 'sha256:%s' "$(sha256sum "$1" | cut -d' ' -f1)"
}

# file_size FILE
file_size() {
    stat -c %s "$1"
}

# demo_data: makes the demo catalog in $DEMO_DATA once (scale 0.001) with
# `modeld demo`; non-zero when that fails.
DEMO_DATA=$WORK/demo
DEMO_MADE=""
demo_data() {
    local rc
    [ "$DEMO_MADE" = yes ] && return 0
    [ "$DEMO_MADE" = failed ] && return 1
    timeout 120 "$MODELD" demo --data "$DEMO_DATA" --scale 0.001 \
        --token-file "$WORK/demo.token" >"$WORK/demo.out" 2>"$WORK/demo.err"
    rc=$?
    check "modeld demo --scale 0.001: exit status" 0 "$rc"
    if [ "$rc" -ne 0 ]; then
        echo "# demo stderr: $(tail -n 5 "$WORK/demo.err")"
        DEMO_MADE=failed
        return 1
    fi
    DEMO_MADE=yes
}

# ---- the UE client (cases_77-79) ------------------------------------------

# fetch_run DIR ARGS...: one `modeld fetch ARGS` (at most 120 s), its stdout
# and stderr in DIR/fetch.N.{out,err}; sets FETCH_RC, FETCH_OUT, FETCH_ERR.
FETCH_N=0
fetch_run() {
    local dir=$1
    shift
    FETCH_N=$((FETCH_N + 1))
    FETCH_OUT=$dir/fetch.$FETCH_N.out
    FETCH_ERR=$dir/fetch.$FETCH_N.err
    timeout 120 "$MODELD" fetch "$@" >"$FETCH_OUT" 2>"$FETCH_ERR"
    FETCH_RC=$?
}

# no_sanitizer NAME FILE...: the clients' stderr holds no sanitizer report.
no_sanitizer() {
    local name=$1
    shift
    check "$name: no sanitizer report" "" \
        "$(grep -hE 'runtime error|AddressSanitizer|LeakSanitizer' "$@" | head -n 3)"
}

# standin_start DIR: tests/e2e/client_standin.py answering from
# DIR/ctl.json (made '{}') and logging to DIR/log; sets STANDIN_PID and
# STANDIN_SRV, its base URL. Stop it with kill "$STANDIN_PID".
standin_start() {
    local dir=$1 i
    rm -f "$dir/port"
    : >"$dir/log"
    printf '{}\n' >"$dir/ctl.json"
    python3 "$E2E_DIR/client_standin.py" "$dir/port" "$dir/ctl.json" \
        "$dir/log" 2>"$dir/standin.err" &
    STANDIN_PID=$!
    for ((i = 0; i < 200; i++)); do
        [ -s "$dir/port" ] && break
        sleep 0.05
    done
    STANDIN_SRV=http://127.0.0.1:$(cat "$dir/port" 2>/dev/null)
}

# standin_requests DIR PATH: how many requests for PATH the stand-in of DIR
# logged.
standin_requests() {
    jq -s --arg p "$2" '[.[] | select(.path == $p)] | length' "$1/log"
}

# standin_decision FAMILY HEX SIZE [EXTRA_MODEL_MEMBERS [URL_QUERY]]: a
# download decision for the stand-in's control file (variant m, version 1,
# recheck_after_s 2).
standin_decision() {
    printf '{"action":"download","family":"%s","variant":"m","version":1,"model":{"digest":"sha256:%s","size_bytes":%s,"url":"/v1/blobs/sha256:%s%s"%s},"recheck_after_s":2}' \
        "$1" "$2" "$3" "$2" "${5:-}" "${4:-}"
}

# ---- the run --------------------------------------------------------------

TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
TOKEN_FILE=$WORK/admin.token
printf '%s\n' "$TOKEN" >"$TOKEN_FILE"
chmod 600 "$TOKEN_FILE"

echo "e2e: $MODELD (work dir $WORK${QUICK:+, quick=$QUICK})"
if daemon_start main "$WORK/data" --admin-token-file "$TOKEN_FILE"; then
    # shellcheck disable=SC2034  # used by the case files
    MAIN_DATA=$WORK/data
    for f in "$E2E_DIR"/cases_*.sh; do
        [ -e "$f" ] || continue
        # MODELD_E2E_ONLY=GLOB runs only the matching case files.
        # shellcheck disable=SC2254
        case $(basename "$f") in ${MODELD_E2E_ONLY:-*}) ;; *) continue ;; esac
        echo "# $(basename "$f")"
        use main
        SPEC_CASE=$(basename "$f")
        started=$SECONDS
        # shellcheck source=/dev/null
        . "$f"
        echo "# $(basename "$f"): $((SECONDS - started)) s"
    done

    echo "# shutdown"
    if is_running "${DPID[main]}"; then
        pass "main: still running after every case"
        use main
        http GET /healthz
        check "main: /healthz after every case" 200 "$STATUS"
    else
        fail "main: still running after every case (stderr: $(tail -n 5 "$WORK/main.err"))"
    fi
    daemon_stop main
fi
echo "# spec: the answers against proto/openapi.yaml"
spec_check

check_report e2e "${MODELD_E2E_RESULTS:-$ROOT/build/results}" &&
    [ "$PASSED" -gt 0 ]
