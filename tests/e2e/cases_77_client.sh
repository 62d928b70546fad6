# shellcheck shell=bash
# Sourced by tests/e2e/run.sh: the UE client, `modeld fetch`, against a
# daemon of its own ("cli", recheck_after_s=3) and, where bytes must be
# counted, throttled, flipped or refused, through tests/e2e/client_proxy.py.
# First fetch downloads and verifies; keep; the next publish arrives as a
# delta; less memory gives the smaller model; a flipped byte is refused and
# nothing switched (a flipped delta falls back to the full model); kill -9
# mid-download then a rerun asks only for the missing bytes; the daemon
# killed and restarted mid-transfer; Retry-After honoured; deferrals; bad
# arguments; HTTPS with a pinned CA; N clients in --watch come back spread
# out (N=200, 30 under ASan). Runs under ASan too (MODELD_E2E_QUICK=1).

CLI_WORK=$WORK/client
mkdir -p "$CLI_WORK"
CLI_SRV=""       # the daemon's base URL

# fetch STATE [ARGS...]: one `modeld fetch` of family cli at $CLI_SRV (a
# --server in ARGS wins); sets FETCH_RC, FETCH_OUT (stdout), FETCH_ERR.
fetch() {
    local state=$1
    shift
    fetch_run "$CLI_WORK" --server "$CLI_SRV" --family cli --state "$state" \
        --no-benchmark --set device.gflops=50 --backoff-ms 100 "$@"
}

# path_digest STATE: sha256:<hex> of the file STATE/path names ("none").
path_digest() {
    if [ -e "$1/path" ]; then sha_of "$1/path"; else echo none; fi
}

publish() { # publish NAME FILE MEMORY ACCURACY [FAMILY]
    local fam=${5:-cli}
    http_admin PUT "/v1/blobs/$(sha_of "$2")" -T "$2"
    http_admin PUT "/v1/families/$fam/variants/$1" \
        -H 'Content-Type: application/json' --data-binary \
        "{\"blob\":\"$(sha_of "$2")\",\"flops\":1000000,\"accuracy\":$4,\"memory_bytes\":$3}"
    check "client: publish $fam/$1" 201 "$STATUS"
}

# ---- proxy --------------------------------------------------------------------
PROXY_PID=""
PROXY=""
proxy_start() { # proxy_start CONTROL_JSON
    rm -f "$CLI_WORK/proxy.port" "$CLI_WORK/proxy.log"
    printf '%s\n' "$1" >"$CLI_WORK/proxy.ctl"
    python3 "$E2E_DIR/client_proxy.py" "$CLI_WORK/proxy.port" \
        "$CLI_WORK/upstream.port" "$CLI_WORK/proxy.ctl" \
        "$CLI_WORK/proxy.log" 2>"$CLI_WORK/proxy.err" &
    PROXY_PID=$!
    local i
    for ((i = 0; i < 200; i++)); do
        [ -s "$CLI_WORK/proxy.port" ] && break
        sleep 0.05
    done
    PROXY=http://127.0.0.1:$(cat "$CLI_WORK/proxy.port" 2>/dev/null)
    : >>"$CLI_WORK/proxy.log"
}
proxy_ctl() { printf '%s\n' "$1" >"$CLI_WORK/proxy.ctl"; }
proxy_stop() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    PROXY_PID=""
}
# proxy_sum JQ_SELECT: sum of "sent" over log lines matching the filter.
proxy_sum() {
    jq -s "[.[] | select($1) | .sent // 0] | add // 0" "$CLI_WORK/proxy.log"
}

# wait_size FILE BYTES: until FILE holds at least BYTES (20 s at most).
wait_size() {
    local i
    for ((i = 0; i < 400; i++)); do
        [ -f "$1" ] && [ "$(file_size "$1")" -ge "$2" ] && return 0
        sleep 0.05
    done
    return 1
}

# ---- models ---------------------------------------------------------------------
LARGE=$CLI_WORK/large.bin
LARGE2=$CLI_WORK/large2.bin
SMALL=$CLI_WORK/small.bin
TINY=$CLI_WORK/tiny.bin
head -c 2097152 /dev/urandom >"$LARGE"
cp "$LARGE" "$LARGE2"
# v2: a fine-tune of a few hundred bytes, so the delta is small
printf 'retrained weights, version two of the large model' |
    dd of="$LARGE2" bs=1 seek=100000 conv=notrunc 2>/dev/null
printf 'and some more changed bytes further on' |
    dd of="$LARGE2" bs=1 seek=1500000 conv=notrunc 2>/dev/null
head -c 262144 /dev/urandom >"$SMALL"
head -c 4096 /dev/urandom >"$TINY"
L1=$(sha_of "$LARGE")
L2=$(sha_of "$LARGE2")
S1=$(sha_of "$SMALL")
LSIZE=$(file_size "$LARGE")

"$MODELD" keygen --out "$CLI_WORK/sign.pem" >"$CLI_WORK/kid" 2>/dev/null
"$MODELD" keygen --out "$CLI_WORK/other.pem" >/dev/null 2>&1
KID=$(cat "$CLI_WORK/kid")
CLI_ARGS=(--admin-token-file "$TOKEN_FILE" --set recheck_after_s=3
    --set "signing_key=$CLI_WORK/sign.pem")
if daemon_start cli "$CLI_WORK/data" "${CLI_ARGS[@]}"; then
    CLI_SRV=$BASE
    printf '%s\n' "${DPORT[cli]}" >"$CLI_WORK/upstream.port"
    http_admin PUT /v1/families/cli -H 'Content-Type: application/json' \
        --data-binary '{"task":"client tests"}'
    publish large "$LARGE" 50000000 0.8
    publish small "$SMALL" 10000000 0.7

    # ---- bad arguments, exit 2 ------------------------------------------------
    "$MODELD" fetch --family cli --state "$CLI_WORK/x" >/dev/null 2>&1
    check "client: no --server: exit 2" 2 "$?"
    fetch "$CLI_WORK/st-bad" --set device.memroy_bytes=5
    check "client: unknown --set key: exit 2" 2 "$FETCH_RC"
    check_match "client: unknown --set key: says which" 'memroy_bytes' "$(cat "$FETCH_ERR")"
    fetch "$CLI_WORK/st-bad" --set device.gflops=-3
    check "client: invalid report value: exit 2" 2 "$FETCH_RC"
    check_match "client: invalid report value: names the field" 'device\.gflops' "$(cat "$FETCH_ERR")"
    fetch "$CLI_WORK/st-bad" --server ftp://127.0.0.1:1
    check "client: non-http server URL: exit 2" 2 "$FETCH_RC"
    "$MODELD" fetch --help >"$CLI_WORK/help" 2>&1
    check_match "client: --help documents exit codes" '6 transfer deferred' "$(cat "$CLI_WORK/help")"

    echo "# $SECONDS s"
    # ---- first fetch: download, verify, switch -------------------------------
    A=$CLI_WORK/st-a
    fetch "$A" --set device.memory_bytes=100000000
    check "client: first fetch: exit 0" 0 "$FETCH_RC"
    check "client: first fetch: path names the large model" "$L1" "$(path_digest "$A")"
    check_match "client: first fetch: path is a symlink into models/" \
        "^models/${L1#sha256:}$" "$(readlink "$A/path")"
    check_match "client: first fetch: one line per event" \
        'select action=download variant=large' "$(cat "$FETCH_OUT")"
    check_match "client: first fetch: verified before the switch" \
        'verify ok' "$(cat "$FETCH_OUT")"
    check "client: first fetch: nothing left in partial/" 0 "$(ls "$A/partial" | wc -l)"
    check_match "client: first fetch: installed event accepted" 'event installed status=202' "$(cat "$FETCH_OUT")"
    check "client: first fetch: state names the model" "${L1#sha256:}" \
        "$(jq -r .current.digest_hex "$A/state.json")"
    check_ge "client: first fetch: a throughput sample kept" 1 \
        "$(jq '.downlink_samples | length' "$A/state.json")"
    no_sanitizer "client: first fetch" "$FETCH_ERR"

    # on a terminal (script(1) gives it one): a progress bar on stderr
    script -qec "$MODELD fetch --server $CLI_SRV --family cli --state $CLI_WORK/st-tty --no-benchmark --set device.gflops=50 --set device.memory_bytes=100000000" \
        /dev/null </dev/null >"$CLI_WORK/tty.out" 2>&1
    check "client: on a terminal: exit 0" 0 "$?"
    check_match "client: on a terminal: a progress bar with rate and ETA" \
        '\[=+\] 100%  2\.0 MiB / 2\.0 MiB  .*/s  ETA' "$(tr '\r' '\n' <"$CLI_WORK/tty.out")"
    check "client: on a terminal: verified model" "$L1" "$(path_digest "$CLI_WORK/st-tty")"

    fetch "$A" --set device.memory_bytes=100000000 --print-report
    check "client: --print-report: exit 0" 0 "$FETCH_RC"
    check "client: --print-report: current" "$L1" "$(jq -r .current "$FETCH_OUT")"
    check "client: --print-report: the override" 100000000 "$(jq -r .device.memory_bytes "$FETCH_OUT")"
    check_ge "client: --print-report: downlink_history_bps from its transfers" 1 \
        "$(jq '.network.downlink_history_bps | length' "$FETCH_OUT")"
    check_match "client: --print-report: rtt_ms from connect time" '^[0-9.]+$' \
        "$(jq -r .network.rtt_ms "$FETCH_OUT")"

    fetch "$A" --set device.memory_bytes=100000000
    check "client: second fetch: exit 0" 0 "$FETCH_RC"
    check_match "client: second fetch: keep" 'select action=keep' "$(cat "$FETCH_OUT")"
    check "client: second fetch: nothing transferred" "" "$(grep -E 'download|transfer' "$FETCH_OUT")"

    # A copy before v2, for the flipped-delta case below (not locked: copy).
    cp -a "$A" "$CLI_WORK/st-a2"

    echo "# $SECONDS s"
    # ---- next publish: a delta -------------------------------------------------
    publish large "$LARGE2" 50000000 0.8
    for ((i = 0; i < 200; i++)); do
        http POST /v1/families/cli/select -H 'Content-Type: application/json' --data-binary \
            "{\"device\":{\"memory_bytes\":100000000,\"gflops\":50},\"current\":\"$L1\"}"
        [ "$(jbody .action)" = delta ] && break
        sleep 0.1
    done
    check "client: the daemon offers the v1 -> v2 delta" delta "$(jbody .action)"
    DSIZE=$(jbody .delta.size_bytes)
    fetch "$A" --set device.memory_bytes=100000000
    check "client: delta: exit 0" 0 "$FETCH_RC"
    check_match "client: delta: applied" 'select action=delta' "$(cat "$FETCH_OUT")"
    check "client: delta: path names v2" "$L2" "$(path_digest "$A")"
    check "client: delta: received only the delta" "$DSIZE" \
        "$(sed -n 's/.*transfer delta from=0 received=\([0-9]*\) .*/\1/p' "$FETCH_OUT")"
    check "client: delta: previous model kept" "${L1#sha256:}" \
        "$(jq -r .previous.digest_hex "$A/state.json")"
    check_cmd "client: delta: previous model file kept" test -f "$A/models/${L1#sha256:}"
    no_sanitizer "client: delta" "$FETCH_ERR"

    echo "# $SECONDS s"
    # ---- memory shrinks: the smaller model ---------------------------------------
    fetch "$A" --set device.memory_bytes=20000000
    check "client: less memory: exit 0" 0 "$FETCH_RC"
    check "client: less memory: the small model" "$S1" "$(path_digest "$A")"
    check "client: less memory: two models kept (current, previous)" 2 "$(ls "$A/models" | wc -l)"
    fetch "$A" --rollback
    check "client: --rollback: exit 0" 0 "$FETCH_RC"
    check "client: --rollback: back to the previous model" "$L2" "$(path_digest "$A")"

    echo "# $SECONDS s"
    # ---- deferrals -----------------------------------------------------------------
    B=$CLI_WORK/st-b
    fetch "$B" --set device.memory_bytes=100000000 --max-bytes 1000
    check "client: --max-bytes: exit 6" 6 "$FETCH_RC"
    check "client: --max-bytes: nothing in place" none "$(path_digest "$B")"
    fetch "$B" --set device.memory_bytes=100000000 --wifi-only --set network.metered=true
    check "client: --wifi-only on a metered link: exit 6" 6 "$FETCH_RC"
    fetch "$B" --set device.memory_bytes=1000
    check "client: nothing fits, nothing in place: exit 5" 5 "$FETCH_RC"

    echo "# $SECONDS s"
    # ---- flipped bytes are refused -----------------------------------------------
    proxy_start '{"flip_prefix":"/v1/blobs/","flip_offset":1000}'
    C=$CLI_WORK/st-c
    fetch "$C" --set device.memory_bytes=20000000
    check "client: flip: the small model first (direct)" 0 "$FETCH_RC"
    # more memory at once: without the minute's low of 20 MB that the
    # client remembers (device.memory_history_bytes, memory_floor_bytes),
    # or the policy rightly waits for the extra memory to last
    fetch "$C" --server "$PROXY" --set device.memory_bytes=100000000 \
        --set device.memory_history_bytes=null --set device.memory_floor_bytes=null
    check "client: flipped model byte: exit 4" 4 "$FETCH_RC"
    check "client: flipped model byte: nothing switched" "$S1" "$(path_digest "$C")"
    check "client: flipped model byte: bytes deleted" 0 "$(ls "$C/partial" | wc -l)"
    check "client: flipped model byte: only the model in use kept" 1 "$(ls "$C/models" | wc -l)"
    check_match "client: flipped model byte: says so" 'not that digest' "$(cat "$FETCH_ERR")"
    check_match "client: flipped model byte: verify_failed event accepted" 'event verify_failed status=202' "$(cat "$FETCH_OUT")"

    # a flipped delta: refused, deleted, the full model once instead
    proxy_ctl '{"flip_prefix":"/v1/deltas/","flip_offset":500}'
    : >"$CLI_WORK/proxy.log"
    fetch "$CLI_WORK/st-a2" --server "$PROXY" --set device.memory_bytes=100000000
    check "client: flipped delta: exit 0 after the full model" 0 "$FETCH_RC"
    check "client: flipped delta: v2 in place" "$L2" "$(path_digest "$CLI_WORK/st-a2")"
    check_match "client: flipped delta: refused then full" \
        'verify failed.*falling back' "$(cat "$FETCH_OUT")"
    check "client: flipped delta: the full model fetched once" 1 \
        "$(jq -s '[.[] | select(.path | startswith("/v1/blobs/"))] | length' "$CLI_WORK/proxy.log")"
    proxy_stop

    echo "# $SECONDS s"
    # ---- kill -9 mid-download, then resume -------------------------------------------
    # held after 512 KiB: the transfer is still under way at the lock check
    # and the kill, however long a loaded machine takes to get there
    proxy_start '{"rate_bps":1000000,"hold_after":524288}'
    K=$CLI_WORK/st-k
    "$MODELD" fetch --server "$PROXY" --family cli --state "$K" \
        --no-benchmark --set device.gflops=50 --set device.memory_bytes=100000000 \
        >"$CLI_WORK/kill.out" 2>"$CLI_WORK/kill.err" &
    KPID=$!
    PART=$K/partial/${L2#sha256:}.model
    wait_size "$PART" 400000
    check "client: kill -9: the transfer is under way" 0 "$?"
    # one process per state directory
    fetch "$K" --server "$PROXY" --set device.memory_bytes=100000000
    check "client: a second client on a locked state directory: exit 1" 1 "$FETCH_RC"
    check_match "client: ... says it is in use" 'in use' "$(cat "$FETCH_ERR")"
    kill -KILL "$KPID" 2>/dev/null
    wait "$KPID" 2>/dev/null
    HAVE=$(file_size "$PART")
    check_lt "client: kill -9: killed before the end" "$LSIZE" "$HAVE"
    proxy_ctl '{}'
    fetch "$K" --server "$PROXY" --set device.memory_bytes=100000000
    check "client: rerun after kill -9: exit 0" 0 "$FETCH_RC"
    check "client: rerun after kill -9: verified model in place" "$L2" "$(path_digest "$K")"
    check "client: rerun after kill -9: asked for exactly the missing bytes" \
        "bytes=$HAVE-" "$(jq -rs '[.[] | select(.range != null)] | last | .range' "$CLI_WORK/proxy.log")"
    check "client: rerun after kill -9: received exactly the missing bytes" \
        "$((LSIZE - HAVE))" "$(jq -s '[.[] | select(.range != null)] | last | .sent' "$CLI_WORK/proxy.log")"
    SENT=$(proxy_sum '.path | startswith("/v1/blobs/")')
    # re-sent: what the proxy wrote that never reached the file (in the
    # socket buffers at the kill), at most one 16 KiB piece plus buffers
    check_lt "client: kill -9: bytes sent twice stay under 256 KiB" 262144 "$((SENT - LSIZE))"
    no_sanitizer "client: rerun after kill -9" "$FETCH_ERR"

    echo "# $SECONDS s"
    # ---- the daemon killed and restarted mid-transfer ----------------------------------
    proxy_ctl '{"rate_bps":1000000}'
    : >"$CLI_WORK/proxy.log"
    R=$CLI_WORK/st-r
    "$MODELD" fetch --server "$PROXY" --family cli --state "$R" \
        --no-benchmark --set device.gflops=50 --set device.memory_bytes=100000000 \
        --backoff-ms 200 --retries 12 >"$CLI_WORK/restart.out" 2>"$CLI_WORK/restart.err" &
    RPID=$!
    wait_size "$R/partial/${L2#sha256:}.model" 400000
    check "client: restart: the transfer is under way" 0 "$?"
    kill -KILL "${DPID[cli]}" 2>/dev/null
    wait "${DPID[cli]}" 2>/dev/null
    proxy_ctl '{"rate_bps":1000000,"epoch":1}' # what was in flight is lost
    unset "DPID[cli]"
    if daemon_start cli "$CLI_WORK/data" "${CLI_ARGS[@]}"; then
        CLI_SRV=$BASE
        printf '%s\n' "${DPORT[cli]}" >"$CLI_WORK/upstream.port"
    fi
    proxy_ctl '{"epoch":1}'
    wait "$RPID"
    check "client: daemon restarted mid-transfer: exit 0" 0 "$?"
    check "client: daemon restarted mid-transfer: verified model" "$L2" "$(path_digest "$R")"
    check_match "client: daemon restarted mid-transfer: resumed with a range" \
        '^bytes=[1-9][0-9]*-$' "$(jq -rs '[.[] | select(.range != null)] | last | .range' "$CLI_WORK/proxy.log")"
    check_lt "client: daemon restarted mid-transfer: under 256 KiB sent twice" 262144 \
        "$(( $(proxy_sum '.path | startswith("/v1/blobs/")') - LSIZE ))"
    no_sanitizer "client: restart" "$CLI_WORK/restart.err"

    echo "# $SECONDS s"
    # ---- Retry-After ----------------------------------------------------------------------
    proxy_ctl '{"fail_select":1,"retry_after":2}'
    : >"$CLI_WORK/proxy.log"
    fetch "$CLI_WORK/st-ra" --server "$PROXY" --set device.memory_bytes=20000000
    check "client: Retry-After: exit 0 after the 503" 0 "$FETCH_RC"
    GAP_MS=$(jq -s '[.[] | select(.path | endswith("/select"))] | ((.[1].t - .[0].t) * 1000 | floor)' \
        "$CLI_WORK/proxy.log")
    check_ge "client: Retry-After: 2 s honoured" 1950 "$GAP_MS"
    check_lt "client: Retry-After: not much longer" 4000 "$GAP_MS"

    # ---- signed answers (RFC 9421, server/sign.c) ------------------------------------
    proxy_ctl '{}'
    SG=$CLI_WORK/st-sig
    fetch "$SG" --set device.memory_bytes=20000000 --verify-key "$CLI_WORK/sign.pem"
    check "client: signed: --verify-key: exit 0" 0 "$FETCH_RC"
    check_match "client: signed: the answer verified" 'select action=download .* signed=ok' "$(cat "$FETCH_OUT")"
    check "client: signed: verified model" "$S1" "$(path_digest "$SG")"
    check_match "client: signed: generation remembered" '^[0-9]+$' "$(jq -r .generation "$SG/state.json")"
    fetch "$CLI_WORK/st-kid" --set device.memory_bytes=20000000 --verify-kid "$KID"
    check "client: signed: --verify-kid alone pins the key from /v1/keys: exit 0" 0 "$FETCH_RC"
    check "client: signed: the pinned kid" "$KID" "$(jq -r .pinned_key.kid "$CLI_WORK/st-kid/state.json")"
    fetch "$SG" --set device.memory_bytes=100000000 --verify-key "$CLI_WORK/other.pem"
    check "client: signed: another key: exit 4" 4 "$FETCH_RC"
    check "client: signed: another key: nothing switched" "$S1" "$(path_digest "$SG")"
    fetch "$SG" --set device.memory_bytes=100000000 --verify-key "$CLI_WORK/sign.pem" --verify-kid wrong-kid
    check "client: signed: keyid not the pinned one: exit 4" 4 "$FETCH_RC"
    # a byte of the body changed on the way
    proxy_ctl '{"flip_prefix":"/v1/families/cli/select","flip_offset":12}'
    fetch "$SG" --server "$PROXY" --set device.memory_bytes=100000000 --verify-key "$CLI_WORK/sign.pem"
    check "client: signed: a tampered answer: exit 4" 4 "$FETCH_RC"
    check_match "client: signed: a tampered answer: says why" 'Content-Digest' "$(cat "$FETCH_ERR")"
    check "client: signed: a tampered answer: nothing switched" "$S1" "$(path_digest "$SG")"
    # a replayed answer (the attacker's copy of an earlier signed one)
    proxy_ctl '{}'
    fetch "$CLI_WORK/st-rp" --server "$PROXY" --set device.memory_bytes=100000000 --verify-key "$CLI_WORK/sign.pem"
    check "client: signed: through the proxy: exit 0" 0 "$FETCH_RC"
    proxy_ctl '{"replay_select":true}'
    fetch "$CLI_WORK/st-rp" --server "$PROXY" --set device.memory_bytes=100000000 --verify-key "$CLI_WORK/sign.pem"
    check "client: signed: a replayed answer: exit 4" 4 "$FETCH_RC"
    check_match "client: signed: a replayed answer: nonce" 'nonce' "$(cat "$FETCH_ERR")"
    # a generation lower than one seen before
    jq '.generation = 9007199254740000' "$SG/state.json" >"$SG/state.new" && mv "$SG/state.new" "$SG/state.json"
    fetch "$SG" --set device.memory_bytes=20000000 --verify-key "$CLI_WORK/sign.pem"
    check "client: signed: an older generation: exit 4" 4 "$FETCH_RC"
    check_match "client: signed: an older generation: says so" 'generation' "$(cat "$FETCH_ERR")"
    fetch "$SG" --set device.memory_bytes=20000000
    check "client: unsigned answers still work without a key" 0 "$FETCH_RC"
    proxy_stop

    # ---- tensor codings: modeld-bg/1 model, modeld-tensor/1 delta (proto/tensor.h) ----
    TT=$CLI_WORK/tensor
    mkdir -p "$TT"
    python3 "$E2E_DIR/tensorgen.py" "$TT" 2
    T1=$(sha_of "$TT/v1.safetensors")
    T2=$(sha_of "$TT/v2.safetensors")
    ACCEPT='"accept":{"delta_formats":["zstd-patch","modeld-tensor/1"],"encodings":["modeld-bg/1"]}'
    http_admin PUT /v1/families/clit -H 'Content-Type: application/json' --data-binary '{}'
    publish net "$TT/v1.safetensors" 1000 0.5 clit
    # clit_select_until FIELD WANT TRIES [CURRENT]: selects on clit every
    # 0.1 s until the answer's FIELD is WANT (the worker made it), at most
    # TRIES times; the last answer stays in BODY.
    clit_select_until() {
        local i cur=""
        [ -n "${4:-}" ] && cur="\"current\":\"$4\","
        for ((i = 0; i < $3; i++)); do
            http POST /v1/families/clit/select -H 'Content-Type: application/json' --data-binary \
                "{\"device\":{\"memory_bytes\":100000000,\"gflops\":50},$cur$ACCEPT}"
            [ "$(jbody "$1")" = "$2" ] && break
            sleep 0.1
        done
    }
    clit_select_until .model.encoding modeld-bg/1 200
    check "client: tensor: the daemon offers the modeld-bg/1 form" modeld-bg/1 "$(jbody .model.encoding)"
    check "client: tensor: the decision names the model's own size" \
        "$(file_size "$TT/v1.safetensors")" "$(jbody .model.decoded_size_bytes)"
    TS=$CLI_WORK/st-tensor
    timeout 60 "$MODELD" fetch --server "$CLI_SRV" --family clit --state "$TS" --no-benchmark \
        --set device.gflops=50 --set device.memory_bytes=100000000 >"$CLI_WORK/bg.out" 2>&1
    check "client: tensor: modeld-bg/1 model: exit 0" 0 "$?"
    check_match "client: tensor: fetched in modeld-bg/1" 'download model coding=modeld-bg/1' "$(cat "$CLI_WORK/bg.out")"
    check "client: tensor: decoded and verified" "$T1" "$(path_digest "$TS")"
    publish net "$TT/v2.safetensors" 1000 0.5 clit
    clit_select_until .delta.format modeld-tensor/1 300 "$T1"
    check "client: tensor: the daemon offers the modeld-tensor/1 delta" modeld-tensor/1 "$(jbody .delta.format)"
    cp -a "$TS" "$CLI_WORK/st-tensor2"
    timeout 60 "$MODELD" fetch --server "$CLI_SRV" --family clit --state "$TS" --no-benchmark \
        --set device.gflops=50 --set device.memory_bytes=100000000 >"$CLI_WORK/td.out" 2>&1
    check "client: tensor: modeld-tensor/1 delta: exit 0" 0 "$?"
    check_match "client: tensor: fetched as a modeld-tensor/1 delta" 'download delta coding=modeld-tensor/1' "$(cat "$CLI_WORK/td.out")"
    check "client: tensor: delta applied and verified" "$T2" "$(path_digest "$TS")"
    proxy_start '{"flip_prefix":"/v1/deltas/","flip_offset":300}'
    timeout 60 "$MODELD" fetch --server "$PROXY" --family clit --state "$CLI_WORK/st-tensor2" --no-benchmark \
        --set device.gflops=50 --set device.memory_bytes=100000000 >"$CLI_WORK/td2.out" 2>&1
    check "client: tensor: a flipped tensor delta: exit 0 after the full model" 0 "$?"
    check_match "client: tensor: a flipped tensor delta: refused" 'verify failed.*modeld-tensor/1' "$(cat "$CLI_WORK/td2.out")"
    check "client: tensor: a flipped tensor delta: v2 in place" "$T2" "$(path_digest "$CLI_WORK/st-tensor2")"
    proxy_stop

    echo "# $SECONDS s"
    # ---- HTTPS with a pinned CA ----------------------------------------------------------------
    CPKI=$CLI_WORK/pki
    mkdir -p "$CPKI"
    if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=client test CA" \
        -keyout "$CPKI/ca.key" -out "$CPKI/ca.pem" 2>/dev/null &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$CPKI/srv.key" -out "$CPKI/srv.csr" 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1\n' >"$CPKI/ext" &&
        openssl x509 -req -in "$CPKI/srv.csr" -CA "$CPKI/ca.pem" -CAkey "$CPKI/ca.key" \
            -CAcreateserial -days 2 -extfile "$CPKI/ext" -out "$CPKI/srv.pem" 2>/dev/null &&
        CURL_TLS=(--cacert "$CPKI/ca.pem") &&
        daemon_start clitls "$CLI_WORK/data-tls" --admin-token-file "$TOKEN_FILE" \
            --tls-cert "$CPKI/srv.pem" --tls-key "$CPKI/srv.key"; then
        TLS_SRV=$BASE
        http_admin PUT /v1/families/cli -H 'Content-Type: application/json' --data-binary '{}'
        publish small "$SMALL" 10000000 0.7
        CURL_TLS=()
        fetch "$CLI_WORK/st-tls" --server "$TLS_SRV" --set device.memory_bytes=20000000
        check "client: https without the CA: refused, exit 3" 3 "$FETCH_RC"
        check "client: https without the CA: nothing in place" none "$(path_digest "$CLI_WORK/st-tls")"
        fetch "$CLI_WORK/st-tls" --server "$TLS_SRV" --ca-file "$CPKI/ca.pem" \
            --set device.memory_bytes=20000000
        check "client: https with the pinned CA: exit 0" 0 "$FETCH_RC"
        check "client: https with the pinned CA: verified model" "$S1" "$(path_digest "$CLI_WORK/st-tls")"
        daemon_stop clitls
    else
        fail "client: https daemon with a test CA starts"
    fi
    CURL_TLS=()

    echo "# $SECONDS s"
    # ---- a fleet in --watch comes back spread out -------------------------------------------------
    use cli
    http_admin PUT /v1/families/cli-tiny -H 'Content-Type: application/json' --data-binary '{}'
    publish tiny "$TINY" 1000 0.5 cli-tiny
    FLEET=200
    [ "$QUICK" = 1 ] && FLEET=30
    WPIDS=()
    for ((i = 0; i < FLEET; i++)); do
        "$MODELD" fetch --server "$CLI_SRV" --family cli-tiny --state "$CLI_WORK/w$i" \
            --no-benchmark --set device.gflops=50 --set device.memory_bytes=100000000 \
            --watch >"$CLI_WORK/w$i.out" 2>"$CLI_WORK/w$i.err" &
        WPIDS+=($!)
    done
    # every client's second select, or 40 s
    for ((t = 0; t < 400; t++)); do
        n=$(grep -c 'select action' "$CLI_WORK"/w*.out 2>/dev/null |
            awk -F: '$2 >= 2' | wc -l)
        [ "$n" -ge "$FLEET" ] && break
        sleep 0.1
    done
    for ((i = 0; i < FLEET; i++)); do
        if [ "$(grep -c 'select action' "$CLI_WORK/w$i.out")" -lt 2 ]; then
            echo "# w$i (pid ${WPIDS[$i]}) has not rechecked; waiting in" \
                "$(cat "/proc/${WPIDS[$i]}/wchan" 2>/dev/null)"
        fi
    done
    for p in "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wrc=0
    for p in "${WPIDS[@]}"; do wait "$p" || wrc=$?; done
    check "client: --watch fleet: every client rechecked" "$FLEET" "$n"
    check "client: --watch fleet: SIGTERM stops them, exit 0" 0 "$wrc"
    # the delay between each client's first and second select: recheck_after_s
    # 3 spread by +-20 %, i.e. over [2.4, 3.6] s
    for ((i = 0; i < FLEET; i++)); do
        grep 'select action' "$CLI_WORK/w$i.out" | head -n 2 | cut -d' ' -f1 |
            while read -r ts; do date -d "$ts" +%s.%N; done | paste -sd' '
    done | awk '{ d = $2 - $1; print d }' >"$CLI_WORK/delays"
    check "client: --watch fleet: all delays measured" "$FLEET" "$(wc -l <"$CLI_WORK/delays")"
    SPREAD=$(sort -n "$CLI_WORK/delays" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%d", (hi - lo) * 1000 }')
    check_ge "client: --watch fleet: recheck delays spread over at least 0.6 s" 600 "$SPREAD"
    check "client: --watch fleet: no delay below 2.3 s" 0 "$(awk '$1 < 2.3' "$CLI_WORK/delays" | wc -l)"
    for ((i = 0; i < FLEET; i++)); do
        if [ "$(grep -c 'select action' "$CLI_WORK/w$i.out")" -lt 2 ] ||
            grep -q 'error' "$CLI_WORK/w$i.out"; then
            echo "# w$i: $(tail -n 6 "$CLI_WORK/w$i.out")"
        fi
    done
    # no 100 ms slot holds more than a quarter of the fleet
    BUSIEST=$(awk '{ b = int($1 * 10); c[b]++ } END { m = 0; for (k in c) if (c[k] > m) m = c[k]; print m }' "$CLI_WORK/delays")
    check_lt "client: --watch fleet: at most a quarter of the fleet in any 100 ms" \
        $((FLEET / 4 + 1)) "$BUSIEST"
    check "client: --watch fleet: no sanitizer report" "" \
        "$(cat "$CLI_WORK"/w*.err | grep -E 'runtime error|AddressSanitizer|LeakSanitizer' | head -n 3)"

    daemon_stop cli
fi
