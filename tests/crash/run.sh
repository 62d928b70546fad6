#!/usr/bin/env bash
# Crash-safety and full-disk tests: tests/crash/run.sh DAEMON_BINARY
#
# 1. Kill loop: ROUNDS times, clients upload blobs and publish new versions
#    of two variants (so that the worker makes deltas and zstd copies) while
#    the daemon is killed with SIGKILL at a random moment. The crashed data
#    directory is then checked offline (PRAGMA integrity_check on a copy of
#    the catalog, every blob/.zst/delta file against its name, every row
#    against its file, every acknowledged upload and publish in the catalog),
#    and again through a restarted daemon (no temp file of the killed one
#    left, acknowledged publishes listed, acknowledged blobs served). At the
#    end the worker must finish what the crashes left pending, SIGTERM must
#    stop the daemon with exit 0, and the whole directory is checked again.
# 2. Full disk: the daemon on a 24 MiB tmpfs answers 507 problem+json for
#    the upload that does not fit, keeps serving everything else, answers a
#    well-formed problem (or success) for catalog writes on a full disk, and
#    works again once space comes back. Needs root for mount; without it the
#    test is reported as skipped, not counted.
#
# Environment: MODELD_CRASH_SEED (random seed, printed), MODELD_CRASH_ROUNDS
# (default 12), MODELD_CRASH_BUDGET_S (the kill loop stops starting rounds
# after this many seconds, default 60), MODELD_CRASH_ONLY (kill-loop or
# full-disk: run only that part), MODELD_CRASH_RESULTS (the file to append
# the counts to, default build/results).
# Prints "ok - NAME" / "not ok - NAME: DETAIL" lines and "crash: N passed,
# N failed", appends "N_PASSED N_FAILED" to build/results, exits non-zero on
# any failure.
set -u

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: tests/crash/run.sh DAEMON_BINARY" >&2
    exit 2
fi

CRASH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$CRASH_DIR/../.." && pwd)
MODELD=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
CONFIG=$ROOT/configs/test.conf
# The distribution's interpreter starts in 0.1 s; a version manager's shim
# may take a second.
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
HELPER=$CRASH_DIR/helper.py
SEED=${MODELD_CRASH_SEED:-$(($(date +%s) % 100000))}
ROUNDS=${MODELD_CRASH_ROUNDS:-12}
BUDGET_S=${MODELD_CRASH_BUDGET_S:-60}
RESULTS=${MODELD_CRASH_RESULTS:-$ROOT/build/results}
CURL_TIME=20
RANDOM=$SEED
START_S=$SECONDS

WORK=$(mktemp -d "${TMPDIR:-/tmp}/modeld-crash.XXXXXX") || exit 1
TOKEN=crash-token-$RANDOM-$RANDOM-$RANDOM
TOKFILE=$WORK/admin.token
printf '%s\n' "$TOKEN" >"$TOKFILE"
# shellcheck source=tests/lib/check.sh
. "$ROOT/tests/lib/check.sh"
DPID=""          # the daemon running now
BASE=""          # its http://127.0.0.1:PORT
DLOG=""          # its stderr
STARTS=0
STOP_RC=""       # exit status of the last stop_daemon
KILL_RC=""       # wait status of the last kill_daemon
MOUNTED=""       # the tmpfs to unmount
CLIENTS=()       # client subshells of the current round
unset MODELD_ADMIN_TOKEN http_proxy https_proxy HTTP_PROXY HTTPS_PROXY \
    all_proxy ALL_PROXY

cleanup() {
    local pid
    if [ -n "$DPID" ]; then
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
    fi
    for pid in "${CLIENTS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    if [ -n "$MOUNTED" ]; then
        umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- reporting ------------------------------------------------------------

# helper PREFIX CMD ARGS...: runs a check command of helper.py and counts
# its "ok - " / "not ok - " lines, each name prefixed with PREFIX; a helper
# that fails (a traceback, say) is a failure too.
helper() {
    local prefix=$1 out=$WORK/helper.out line rc
    shift
    "$PY" "$HELPER" "$@" >"$out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case $line in
        "ok - "*) pass "$prefix${line#ok - }" ;;
        "not ok - "*) fail "$prefix${line#not ok - }" ;;
        *) echo "# $line" ;;
        esac
    done <"$out"
    if [ "$rc" -ne 0 ]; then
        fail "${prefix}helper.py $1 exits 0: it exited $rc"
    fi
}

# Shows the tail of the daemon's log after a failure.
show_log() {
    [ -n "$DLOG" ] && [ -f "$DLOG" ] && tail -n 15 "$DLOG" | sed 's/^/#   /'
}

# ---- the daemon -----------------------------------------------------------

# start_daemon DATA_DIR: starts it and waits (bounded) for its listening line.
start_daemon() {
    local out i
    STARTS=$((STARTS + 1))
    out=$WORK/daemon.$STARTS.out
    DLOG=$WORK/daemon.$STARTS.err
    : >"$out"
    "$MODELD" serve --config "$CONFIG" --listen 127.0.0.1:0 --data "$1" \
        --admin-token-file "$TOKFILE" >"$out" 2>"$DLOG" &
    DPID=$!
    BASE=""
    for ((i = 0; i < 200; i++)); do
        BASE=$(sed -n 's/^listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$out")
        [ -n "$BASE" ] && return 0
        if ! kill -0 "$DPID" 2>/dev/null; then
            wait "$DPID" 2>/dev/null
            DPID=""
            show_log
            return 1
        fi
        sleep 0.05
    done
    show_log
    return 1
}

# kill_daemon: SIGKILL; sets KILL_RC to its wait status (137 when the
# signal killed it, anything else when it had died by itself).
kill_daemon() {
    kill -KILL "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
    KILL_RC=$?
    DPID=""
}

# stop_daemon: SIGTERM; sets STOP_RC to its exit status ("hung" after 20 s).
stop_daemon() {
    local i
    kill -TERM "$DPID" 2>/dev/null
    for ((i = 0; i < 400; i++)); do
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null
        DPID=""
        STOP_RC=hung
        return
    fi
    wait "$DPID"
    STOP_RC=$?
    DPID=""
}

# ---- HTTP -----------------------------------------------------------------

# code METHOD PATH [CURL ARGS...]: prints the status ("000": no answer);
# headers in $WORK/h, body in $WORK/b.
code() {
    local method=$1 path=$2
    shift 2
    curl -s -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' --max-time \
        "$CURL_TIME" -X "$method" "$@" "$BASE$path"
}

admin() {
    code "$@" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json'
}

# put_blob FILE HEX [BODY_OUT]: uploads, prints the status. Uses BASE as it
# was when called, so that a client never talks to a later daemon.
put_blob() {
    curl -s -o "${3:-/dev/null}" -w '%{http_code}' --max-time "$CURL_TIME" \
        -H "Authorization: Bearer $TOKEN" -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -T "$1" \
        "$BASE/v1/blobs/sha256:$2"
}

# ---- clients (background subshells; each appends to its own log) --------

# upload_client LOG FILE HEX [FILE HEX...]
upload_client() {
    local log=$1 st
    shift
    while [ $# -ge 2 ]; do
        st=$(put_blob "$1" "$2")
        echo "upload $2 $st" >>"$log"
        shift 2
    done
}

# publish_client LOG FAMILY VARIANT FILE HEX: the family, the blob (unless
# FILE is "-": uploaded already), then the new version.
publish_client() {
    local log=$1 fam=$2 var=$3 file=$4 hex=$5 st body version
    body=$WORK/bodies/${log##*/}
    st=$(curl -s -o /dev/null -w '%{http_code}' --max-time "$CURL_TIME" \
        -X PUT -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d '{"task":"crash-test"}' "$BASE/v1/families/$fam")
    echo "family $fam $st" >>"$log"
    if [ "$file" != - ]; then
        st=$(put_blob "$file" "$hex")
        echo "pubblob $hex $st" >>"$log"
        case $st in 200 | 201) ;; *) return ;; esac
    fi
    st=$(curl -s -o "$body" -w '%{http_code}' --max-time "$CURL_TIME" \
        -X PUT -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d "{\"blob\":\"sha256:$hex\",\"flops\":1e9,\"accuracy\":0.7}" \
        "$BASE/v1/families/$fam/variants/$var")
    version=$(sed -n 's/.*"version":\([0-9]*\).*/\1/p' "$body" 2>/dev/null)
    echo "publish $fam $var $hex $st ${version:--}" >>"$log"
}

# ---- checks of a stopped data directory ----------------------------------

# check_stopped PREFIX DATA CACHE: integrity_check on a copy of the catalog
# (so that the daemon's own recovery is what the next start exercises), then
# the files and rows, then the acknowledged writes.
check_stopped() {
    local prefix=$1 data=$2 cache=$3 snap=$WORK/snap f res
    rm -rf "$snap"
    mkdir -p "$snap"
    for f in catalog.db catalog.db-wal; do
        [ -f "$data/$f" ] && cp "$data/$f" "$snap/$f"
    done
    res=$(sqlite3 "$snap/catalog.db" 'PRAGMA integrity_check' 2>&1)
    check "${prefix}catalog integrity_check" ok "$res"
    res=$(sqlite3 "$snap/catalog.db" 'PRAGMA foreign_key_check' 2>&1)
    check "${prefix}catalog foreign_key_check" "" "$res"
    helper "$prefix" store "$data" "$snap/catalog.db" "$MODELD" "$cache"
    helper "$prefix" acked "$WORK/logs" "$snap/catalog.db"
}

# Temp files in DATA/tmp that a process other than pid $2 made (names are
# PREFIX-PID-COUNTER).
foreign_tmp() {
    local data=$1 pid=$2 f name rest
    for f in "$data"/tmp/*; do
        [ -e "$f" ] || continue
        name=${f##*/}
        rest=${name#*-}
        [ "${rest%%-*}" = "$pid" ] || printf '%s ' "$name"
    done
}

# ---- 1. the kill loop ----------------------------------------------------

kill_loop() {
    local data=$WORK/data gen=$WORK/gen cache=$WORK/verified
    local round ms at files hex left up_ok up_n pub_ok pub_n v st line i
    local -a lines args
    mkdir -p "$gen" "$WORK/logs" "$WORK/bodies"
    : >"$cache"
    # The two variants' lineages start from similar 2-4 MiB blobs, so that
    # the deltas between variants are worth keeping too.
    printf 'gen %s %d %d\nmutate %s %s %d\n' "$gen/v0.cur" "$SEED" \
        $(((2 + RANDOM % 3) << 20)) "$gen/v0.cur" "$gen/v1.cur" \
        $((SEED + 1)) | "$PY" "$HELPER" batch >/dev/null || {
        fail "kill loop: generating blobs"
        return
    }
    if ! start_daemon "$data"; then
        fail "kill loop: the daemon starts"
        return
    fi
    for ((round = 1; round <= ROUNDS; round++)); do
        if [ $((SECONDS - START_S)) -ge "$BUDGET_S" ]; then
            echo "# time budget reached: $((round - 1)) rounds run"
            break
        fi
        # This round's blobs: 2 clients x 2 uploads of 1-8 MiB, and one
        # new version per variant (its previous one with ~2% changed).
        mapfile -t lines < <(
            for ((i = 0; i < 4; i++)); do
                echo "gen $gen/r$round.u$i $((SEED * 1000 + round * 10 + i))" \
                    "$(((1 << 20) + RANDOM * 224 + RANDOM % 224))"
            done
            for v in 0 1; do
                echo "mutate $gen/v$v.cur $gen/r$round.v$v" \
                    "$((SEED * 1000 + round * 10 + 5 + v))"
            done
        )
        mapfile -t lines < <(printf '%s\n' "${lines[@]}" |
            "$PY" "$HELPER" batch)
        if [ "${#lines[@]}" -ne 6 ]; then
            fail "round $round: generating blobs"
            break
        fi
        # "OUT HEX" lines, in the order asked.
        args=()
        for line in "${lines[@]}"; do
            args+=("${line% *}" "${line#* }")
        done
        # v0's blob goes up before the clients start, so that its publish
        # is quick and usually lands before the kill; v1's goes up in the
        # round, racing the kill.
        st=$(put_blob "${args[8]}" "${args[9]}")
        echo "upload ${args[9]} $st" >"$WORK/logs/r$round.pre"
        check "round $round: v0's blob uploads before the clients" 201 "$st"
        CLIENTS=()
        upload_client "$WORK/logs/r$round.u0" "${args[@]:0:4}" &
        CLIENTS+=($!)
        upload_client "$WORK/logs/r$round.u1" "${args[@]:4:4}" &
        CLIENTS+=($!)
        publish_client "$WORK/logs/r$round.p0" crash v0 - "${args[9]}" &
        CLIENTS+=($!)
        publish_client "$WORK/logs/r$round.p1" crash v1 "${args[@]:10:2}" &
        CLIENTS+=($!)
        # A random moment 0.05-1.5 s in (a random delay, not a wait for
        # anything).
        ms=$((50 + RANDOM % 1451))
        at=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
        sleep "$at"
        kill_daemon
        check "round $round: the daemon was alive until SIGKILL" 137 \
            "$KILL_RC"
        wait "${CLIENTS[@]}" 2>/dev/null
        CLIENTS=()
        for v in 0 1; do
            cp "$gen/r$round.v$v" "$gen/v$v.cur"
        done
        rm -f "$gen/r$round".*

        files=$(foreign_tmp "$data" none)
        up_n=$(cat "$WORK/logs/r$round".* | grep -c '^upload\|^pubblob')
        up_ok=$(cat "$WORK/logs/r$round".* |
            grep -c '^\(upload\|pubblob\) [0-9a-f]* 20[01]$')
        pub_n=$(cat "$WORK/logs/r$round".* | grep -c '^publish')
        pub_ok=$(cat "$WORK/logs/r$round".* | grep -c '^publish .* 201 ')
        echo "# round $round: SIGKILL after ${at}s; uploads acknowledged" \
            "$up_ok/$up_n, publishes $pub_ok/$pub_n of 2;" \
            "temp files left: ${files:-none}"
        check_stopped "round $round crashed: " "$data" "$cache"

        if ! start_daemon "$data"; then
            fail "round $round: the daemon restarts on the crashed data"
            return
        fi
        pass "round $round: the daemon restarts on the crashed data"
        left=$(foreign_tmp "$data" "$DPID")
        check "round $round restarted: no temp file of the killed daemon" \
            "" "$left"
        helper "round $round restarted: " versions "$WORK/logs" "$BASE"
        left=""
        while read -r _ hex st; do
            case $st in 200 | 201) ;; *) continue ;; esac
            st=$(code HEAD "/v1/blobs/sha256:$hex" -I)
            [ "$st" = 200 ] || left="$left ${hex:0:12}:$st"
        done < <(cat "$WORK/logs/r$round".* | grep '^upload\|^pubblob')
        check "round $round restarted: acknowledged blobs answer HEAD 200" \
            "" "$left"
    done

    echo "# kill loop done at $((SECONDS - START_S)) s"
    # The worker catches up with what the crashes left pending.
    for ((i = 0; i < 300; i++)); do
        st=$(code GET /metrics)
        [ "$st" = 200 ] && grep -q '^modeld_deltas{state="pending"} 0$' \
            "$WORK/b" && break
        sleep 0.1
    done
    check "after the crashes: the worker makes every pending delta" \
        'modeld_deltas{state="pending"} 0' \
        "$(grep '^modeld_deltas{state="pending"}' "$WORK/b")"
    stop_daemon
    check "after the crashes: SIGTERM stops the daemon with exit 0" 0 "$STOP_RC"
    echo "# final check of the whole data directory at $((SECONDS - START_S)) s"
    check_stopped "final: " "$data" "$cache"
    check "final: DATA/tmp is empty after a graceful stop" "" \
        "$(foreign_tmp "$data" none)"
    st=$(sqlite3 -readonly "$data/catalog.db" \
        "SELECT count(*) FROM deltas WHERE state = 'failed'" 2>&1)
    check "final: no delta failed" 0 "$st"
    st=$(sqlite3 -readonly "$data/catalog.db" \
        "SELECT count(*) > 0 FROM deltas WHERE state = 'ready'" 2>&1)
    check "final: deltas were made (the test exercised the worker)" 1 "$st"
    st=$(sqlite3 -readonly "$data/catalog.db" \
        "SELECT count(*) > 0 FROM blobs WHERE zstd_state = 'ready'" 2>&1)
    check "final: zstd copies were made" 1 "$st"
}

# ---- 2. full disk ---------------------------------------------------------

# check_problem NAME STATUS: the last answer is a 2xx or a well-formed
# problem whose status member is STATUS.
check_problem() {
    local res
    res=$("$PY" "$HELPER" problem "$2" "$WORK/h" "$WORK/b" 2>&1)
    check "$1" "" "$res"
}

full_disk() {
    local mnt=$WORK/full data st i hex fhex file n lines line
    local -a blobs
    mkdir -p "$mnt"
    if ! mount -t tmpfs -o size=24m tmpfs "$mnt" 2>"$WORK/mount.err"; then
        echo "# SKIPPED (not counted): full disk: cannot mount a tmpfs:" \
            "$(head -n 1 "$WORK/mount.err")"
        return
    fi
    MOUNTED=$mnt
    data=$mnt/data
    mapfile -t lines < <(
        echo "gen $WORK/disk.first $((SEED + 1)) $((1 << 20))"
        echo "gen $WORK/disk.small $((SEED + 2)) 65536"
        echo "gen $WORK/disk.after $((SEED + 3)) 65536"
        for ((i = 0; i < 8; i++)); do
            echo "gen $WORK/disk.$i $((SEED + 10 + i)) $((4 << 20))"
        done
    )
    mapfile -t blobs < <(printf '%s\n' "${lines[@]}" | "$PY" "$HELPER" batch)
    if [ "${#blobs[@]}" -ne 11 ] || ! start_daemon "$data"; then
        fail "full disk: set-up (blobs, daemon)"
        return
    fi
    fhex=${blobs[0]#* }
    st=$(admin PUT /v1/families/disk -d '{"task":"disk"}')
    check "full disk: set-up: family created" 201 "$st"
    st=$(put_blob "$WORK/disk.first" "$fhex")
    check "full disk: set-up: first blob uploaded" 201 "$st"
    st=$(admin PUT /v1/families/disk/variants/a \
        -d "{\"blob\":\"sha256:$fhex\",\"flops\":1e9,\"accuracy\":0.7}")
    check "full disk: set-up: variant published" 201 "$st"

    # 4 MiB blobs (and the worker's zstd copies) until one does not fit.
    n=0
    st=""
    for ((i = 3; i < 11; i++)); do
        file=${blobs[$i]% *}
        hex=${blobs[$i]#* }
        st=$(curl -s -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' \
            --max-time "$CURL_TIME" -H "Authorization: Bearer $TOKEN" \
            -H 'Expect:' -T "$file" "$BASE/v1/blobs/sha256:$hex")
        n=$((n + 1))
        [ "$st" = 201 ] || break
    done
    echo "# full disk: upload $n of 4 MiB answered $st"
    check "full disk: the upload that does not fit answers 507" 507 "$st"
    check "full disk: ... as application/problem+json" \
        application/problem+json \
        "$(sed -n 's/^[Cc]ontent-[Tt]ype: *\([^;[:space:]]*\).*/\1/p' \
            "$WORK/h")"
    check "full disk: ... with \"status\":507" 1 \
        "$(grep -c '"status": *507' "$WORK/b")"
    check_problem "full disk: ... a well-formed problem" "$st"
    # The failed upload's temp file goes once its request is over.
    for ((i = 0; i < 100; i++)); do
        [ -z "$(find "$data/tmp" -name 'upload-*' 2>/dev/null)" ] && break
        sleep 0.05
    done
    check "full disk: no temp file of the failed upload is left" "" \
        "$(find "$data/tmp" -name 'upload-*' -printf '%f ' 2>/dev/null)"
    check "full disk: the failed blob is not served" 404 \
        "$(code GET "/v1/blobs/sha256:$hex")"
    serving "full disk, after the 507"

    # Fill what is left, then write to the catalog and upload a little.
    dd if=/dev/zero of="$mnt/filler" bs=64k 2>/dev/null
    st=$(admin PUT /v1/families/disk2 -d '{"task":"full"}')
    echo "# full disk: family PUT on a full disk answered $st"
    check "full disk: family PUT on a full disk: 2xx or 5xx" 1 \
        "$(case $st in 2?? | 5??) echo 1 ;; *) echo "$st" ;; esac)"
    check_problem "full disk: family PUT on a full disk: well-formed" "$st"
    st=$(admin PUT /v1/families/disk/variants/a \
        -d "{\"blob\":\"sha256:$fhex\",\"flops\":2e9,\"accuracy\":0.8}")
    echo "# full disk: publish on a full disk answered $st"
    check "full disk: publish on a full disk: 2xx or 5xx" 1 \
        "$(case $st in 2?? | 5??) echo 1 ;; *) echo "$st" ;; esac)"
    check_problem "full disk: publish on a full disk: well-formed" "$st"
    st=$(put_blob "$WORK/disk.small" "${blobs[1]#* }" "$WORK/b")
    check "full disk: a 64 KiB upload on a full disk answers 507" 507 "$st"
    serving "full disk, with no byte free"

    # Space comes back: writes work again.
    rm -f "$mnt/filler"
    st=$(put_blob "$WORK/disk.after" "${blobs[2]#* }")
    check "full disk: after space is freed, an upload answers 201" 201 "$st"
    st=$(admin PUT /v1/families/disk/variants/a \
        -d "{\"blob\":\"sha256:${blobs[2]#* }\",\"flops\":1e9,\"accuracy\":0.75}")
    check "full disk: after space is freed, a publish answers 201" 201 "$st"
    serving "full disk, after space is freed"

    stop_daemon
    check "full disk: SIGTERM stops the daemon with exit 0" 0 "$STOP_RC"
    check "full disk: catalog integrity_check after the stop" ok \
        "$(sqlite3 "$data/catalog.db" 'PRAGMA integrity_check' 2>&1)"
    if umount "$mnt"; then
        MOUNTED=""
    fi
}

# serving WHEN: healthz, the first blob, the family and a select still work.
serving() {
    local st
    st=$(code GET /healthz)
    check "$1: /healthz answers 200" 200 "$st"
    st=$(code GET "/v1/blobs/sha256:$fhex")
    check "$1: GET of an earlier blob answers 200 with its bytes" \
        "200 $fhex" "$st $(sha256sum <"$WORK/b" | cut -c1-64)"
    st=$(code GET /v1/families/disk)
    check "$1: GET of the family answers 200" 200 "$st"
    st=$(code POST /v1/families/disk/select \
        -H 'Content-Type: application/json' \
        -d '{"device":{"memory_bytes":100000000,"gflops":50}}')
    check "$1: select answers 200 with a download" "200 1" \
        "$st $(grep -c '"action": *"download"' "$WORK/b")"
}

echo "# crash tests: seed $SEED (MODELD_CRASH_SEED=$SEED reproduces the" \
    "blobs and the kill delays)"
ONLY=${MODELD_CRASH_ONLY:-}
[ "$ONLY" = full-disk ] || kill_loop
if [ "$ONLY" != kill-loop ]; then
    echo "# full disk test at $((SECONDS - START_S)) s"
    full_disk
fi

echo "# crash tests took $((SECONDS - START_S)) s"
check_report crash "$RESULTS"
