# shellcheck shell=bash
# Sourced by tests/e2e/run.sh: what `modeld fetch` reports of its own
# conditions, and what a server cannot make it do. Against
# tests/e2e/client_standin.py, a stand-in server that answers with the
# decisions and bytes the control file gives (the real daemon never
# misbehaves like this):
# - the histories: free memory per clock minute (device.memory_history_bytes,
#   memory_floor_bytes) sampled in --watch, kept across kill -9, stale
#   entries never sent; throughput samples per transfer and per window of a
#   long one (network.downlink_history_bps), stale ones never sent;
# - the bounds: a body longer than the decision announced is cut and
#   nothing is installed (plain, and the plain fall back of an encoded
#   model, which had no bound before); a Content-Length over it is refused
#   before a byte lands; a decoding that expands past the model's size is
#   refused; an endless error body or header stream is cut.

CB_WORK=$WORK/client-bounds
mkdir -p "$CB_WORK"

# cb_fetch STATE [ARGS...]: one `modeld fetch` of family cb at the stand-in;
# sets FETCH_RC, FETCH_OUT, FETCH_ERR.
cb_fetch() {
    local state=$1
    shift
    fetch_run "$CB_WORK" --server "$CB_SRV" --family cb --state "$state" \
        --no-benchmark --set device.gflops=50 --retries 2 --backoff-ms 50 "$@"
}
cb_ctl() { printf '%s\n' "$1" >"$CB_WORK/ctl.json"; }
# cb_sent PATH: body bytes the stand-in sent for PATH, over all requests.
cb_sent() {
    jq -s --arg p "$1" '[.[] | select(.path == $p) | .sent] | add // 0' "$CB_WORK/log"
}
cb_decision() { standin_decision cb "$@"; } # HEX SIZE [EXTRA [QUERY]]

standin_start "$CB_WORK"
CB_PID=$STANDIN_PID
CB_SRV=$STANDIN_SRV

head -c 1048576 /dev/urandom >"$CB_WORK/m.bin"
M_HEX=$(sha_of "$CB_WORK/m.bin")
M_HEX=${M_HEX#sha256:}
M_SIZE=1048576
BLOB=/v1/blobs/sha256:$M_HEX

echo "# $SECONDS s"
# ---- a plain download longer than announced --------------------------------
cb_ctl "{\"select\":$(cb_decision "$M_HEX" $M_SIZE),\"paths\":{\"$BLOB\":{\"file\":\"$CB_WORK/m.bin\",\"length\":\"none\",\"extra\":-1}}}"
: >"$CB_WORK/log"
cb_fetch "$CB_WORK/st-long"
check "client bounds: endless body: exit 4" 4 "$FETCH_RC"
check_match "client bounds: endless body: says why" 'more than the 1048576 bytes announced' "$(cat "$FETCH_ERR")"
check "client bounds: endless body: nothing installed" 0 "$(ls "$CB_WORK/st-long/models" | wc -l)"
check "client bounds: endless body: no path" no "$([ -e "$CB_WORK/st-long/path" ] && echo yes || echo no)"
check "client bounds: endless body: nothing left in partial/" 0 "$(ls "$CB_WORK/st-long/partial" | wc -l)"
check "client bounds: endless body: tried twice, no more" 2 "$(standin_requests "$CB_WORK" "$BLOB")"
# what the kernel buffers besides: well under the 2 x 64 MiB offered
check_lt "client bounds: endless body: the client stopped reading" $((2 * (M_SIZE + 16 * 1048576))) "$(cb_sent "$BLOB")"
check_match "client bounds: endless body: verify_failed reported" 'event verify_failed status=202' "$(cat "$FETCH_OUT")"

# a Content-Length over the announced size: refused before a byte lands
cb_ctl "{\"select\":$(cb_decision "$M_HEX" $M_SIZE),\"paths\":{\"$BLOB\":{\"file\":\"$CB_WORK/m.bin\",\"length\":$((M_SIZE + 1)),\"extra\":1}}}"
cb_fetch "$CB_WORK/st-cl"
check "client bounds: Content-Length over the announced size: exit 4" 4 "$FETCH_RC"
check "client bounds: Content-Length over: nothing left in partial/" 0 "$(ls "$CB_WORK/st-cl/partial" | wc -l)"

# the same bytes, as announced: fetched (the stand-in is a fair server too)
cb_ctl "{\"select\":$(cb_decision "$M_HEX" $M_SIZE),\"paths\":{\"$BLOB\":{\"file\":\"$CB_WORK/m.bin\"}}}"
cb_fetch "$CB_WORK/st-cl"
check "client bounds: then as announced: exit 0" 0 "$FETCH_RC"
check "client bounds: then as announced: installed" "sha256:$M_HEX" "$(sha_of "$CB_WORK/st-cl/path")"

echo "# $SECONDS s"
# ---- an encoded model whose form is gone: the plain fall back is bounded too
ENC_DEC=$(cb_decision "$M_HEX" 600000 ",\"encoding\":\"modeld-bg/1\",\"decoded_size_bytes\":$M_SIZE" "?encoding=modeld-bg/1")
cb_ctl "{\"select\":$ENC_DEC,\"paths\":{\"$BLOB?encoding=modeld-bg/1\":{\"status\":404},\"$BLOB\":{\"file\":\"$CB_WORK/m.bin\",\"length\":\"none\",\"extra\":-1}}}"
: >"$CB_WORK/log"
cb_fetch "$CB_WORK/st-enc"
check "client bounds: encoded form gone, endless plain body: exit 4" 4 "$FETCH_RC"
check_match "client bounds: encoded form gone: fell back to the model's bytes" 'modeld-bg/1 gone: falling back' "$(cat "$FETCH_OUT")"
check_match "client bounds: encoded form gone: the plain bytes bounded by decoded_size_bytes" \
    'more than the 1048576 bytes announced' "$(cat "$FETCH_ERR")"
check "client bounds: encoded form gone: nothing installed" 0 "$(ls "$CB_WORK/st-enc/models" | wc -l)"
check "client bounds: encoded form gone: nothing left in partial/" 0 "$(ls "$CB_WORK/st-enc/partial" | wc -l)"
check_lt "client bounds: encoded form gone: the client stopped reading" $((2 * (M_SIZE + 16 * 1048576))) "$(cb_sent "$BLOB")"
# with the plain bytes as announced, the fall back installs the model
cb_ctl "{\"select\":$ENC_DEC,\"paths\":{\"$BLOB?encoding=modeld-bg/1\":{\"status\":404},\"$BLOB\":{\"file\":\"$CB_WORK/m.bin\"}}}"
cb_fetch "$CB_WORK/st-enc"
check "client bounds: encoded form gone, fair plain bytes: exit 0" 0 "$FETCH_RC"
check "client bounds: encoded form gone, fair plain bytes: installed" "sha256:$M_HEX" "$(sha_of "$CB_WORK/st-enc/path")"
# --max-bytes counts the fall back's bytes, not the encoded form's
cb_fetch "$CB_WORK/st-enc-max" --max-bytes 700000
check "client bounds: the fall back over --max-bytes: deferred, exit 6" 6 "$FETCH_RC"
# a decision naming an encoding without the model's own size: not fetched
cb_ctl "{\"select\":$(cb_decision "$M_HEX" 600000 ',"encoding":"modeld-bg/1"'),\"paths\":{}}"
cb_fetch "$CB_WORK/st-enc-nosize"
check "client bounds: encoding without decoded_size_bytes: exit 4" 4 "$FETCH_RC"
check_match "client bounds: encoding without decoded_size_bytes: says so" 'decoded_size_bytes' "$(cat "$FETCH_ERR")"

echo "# $SECONDS s"
# ---- a delta that decodes past the model's announced size ---------------------
head -c 65536 /dev/urandom >"$CB_WORK/a.bin"
A_HEX=$(sha_of "$CB_WORK/a.bin")
A_HEX=${A_HEX#sha256:}
head -c 2097152 /dev/zero >"$CB_WORK/b.bin"
B_HEX=$(sha_of "$CB_WORK/b.bin")
B_HEX=${B_HEX#sha256:}
"$MODELD" delta --format zstd-patch "$CB_WORK/a.bin" "$CB_WORK/b.bin" "$CB_WORK/ab.delta" >/dev/null 2>&1
DL_SIZE=$(file_size "$CB_WORK/ab.delta")
cb_ctl "{\"select\":$(cb_decision "$A_HEX" 65536),\"paths\":{\"/v1/blobs/sha256:$A_HEX\":{\"file\":\"$CB_WORK/a.bin\"}}}"
cb_fetch "$CB_WORK/st-bomb"
check "client bounds: delta base installed" 0 "$FETCH_RC"
# the model announced at 4096 bytes; the delta makes 2 MiB of it
DELTA_URL=/v1/deltas/sha256:$A_HEX/sha256:$B_HEX
cb_ctl "{\"select\":{\"action\":\"delta\",\"family\":\"cb\",\"variant\":\"m\",\"version\":2,\"model\":{\"digest\":\"sha256:$B_HEX\",\"size_bytes\":4096,\"url\":\"/v1/blobs/sha256:$B_HEX\"},\"delta\":{\"from\":\"sha256:$A_HEX\",\"size_bytes\":$DL_SIZE,\"url\":\"$DELTA_URL\"},\"recheck_after_s\":2},\"paths\":{\"$DELTA_URL\":{\"file\":\"$CB_WORK/ab.delta\"},\"/v1/blobs/sha256:$B_HEX\":{\"file\":\"$CB_WORK/b.bin\"}}}"
: >"$CB_WORK/log"
cb_fetch "$CB_WORK/st-bomb"
check "client bounds: a delta decoding past the model's size: exit 4" 4 "$FETCH_RC"
check_match "client bounds: a delta decoding past the model's size: refused" \
    'decode to more than the 4096 bytes announced' "$(cat "$FETCH_OUT")"
check "client bounds: ... then the plain bytes cut too: the base stays" "sha256:$A_HEX" "$(sha_of "$CB_WORK/st-bomb/path")"
check "client bounds: ... no temporary file left in models/" 1 "$(ls -A "$CB_WORK/st-bomb/models" | wc -l)"

echo "# $SECONDS s"
# ---- endless error bodies and headers --------------------------------------------
cb_ctl "{\"select\":$(cb_decision "$M_HEX" $M_SIZE),\"paths\":{\"$BLOB\":{\"status\":404,\"endless\":true}}}"
: >"$CB_WORK/log"
cb_fetch "$CB_WORK/st-err"
check "client bounds: an endless 404 body: exit 5 (refused)" 5 "$FETCH_RC"
check_lt "client bounds: an endless 404 body: not read to the end" $((16 * 1048576)) "$(cb_sent "$BLOB")"
cb_ctl "{\"select\":$(cb_decision "$M_HEX" $M_SIZE),\"header_flood\":2000}"
cb_fetch "$CB_WORK/st-hdr"
check "client bounds: 200 KB of headers: exit 3" 3 "$FETCH_RC"
check_match "client bounds: 200 KB of headers: says so" 'headers are over' "$(cat "$FETCH_ERR")"

echo "# $SECONDS s"
# ---- histories: what --print-report sends ------------------------------------------
H=$CB_WORK/st-hist
printf 'MemTotal: 16000000 kB\nMemAvailable: 500000 kB\n' >"$CB_WORK/meminfo"
cb_fetch "$H" --print-report --meminfo "$CB_WORK/meminfo"
check "client history: --print-report: exit 0" 0 "$FETCH_RC"
check "client history: the first sample: this minute's low" "[512000000]" \
    "$(jq -c .device.memory_history_bytes "$FETCH_OUT")"
check "client history: memory_floor_bytes" 512000000 "$(jq .device.memory_floor_bytes "$FETCH_OUT")"
check "client history: no throughput measured: none sent" null "$(jq -c .network.downlink_history_bps "$FETCH_OUT")"
# entries written by an earlier run: a stale minute (20 minutes ago) and a
# fresh one (2 minutes ago); a stale throughput sample (an hour ago) and a
# fresh one, on the link the default route uses now
NOW=$(date +%s)
IFACE=$(awk 'NR > 1 && $2 == "00000000" { print $1; exit }' /proc/net/route 2>/dev/null)
jq --argjson m $((NOW / 60)) --argjson now "$NOW" --arg ifc "$IFACE" \
    '.memory_minutes = [{"minute": ($m - 20), "low_bytes": 1000}, {"minute": ($m - 2), "low_bytes": 123456789}] + .memory_minutes
     | .downlink_samples = [{"at_s": ($now - 3600), "bps": 1}, {"at_s": ($now - 10), "bps": 8000000}]
     | .downlink_iface = $ifc' "$H/state.json" >"$H/state.new" && mv "$H/state.new" "$H/state.json"
cb_fetch "$H" --print-report --meminfo "$CB_WORK/meminfo"
# the two fetches may fall into two clock minutes: then this run's low is
# sent for each of them
check "client history: only fresh minutes sent, newest last" "[123456789,512000000]" \
    "$(jq -c '.device.memory_history_bytes | [.[0]] + (.[1:] | unique)' "$FETCH_OUT")"
check_lt "client history: at most one minute per fetch" 4 \
    "$(jq '.device.memory_history_bytes | length' "$FETCH_OUT")"
check "client history: the floor from fresh minutes only" 123456789 "$(jq .device.memory_floor_bytes "$FETCH_OUT")"
check "client history: only fresh throughput sent" "[8000000]" "$(jq -c .network.downlink_history_bps "$FETCH_OUT")"
check "client history: downlink_bps from fresh samples" 8000000 "$(jq .network.downlink_bps "$FETCH_OUT")"
# --set device.memory_bytes: that is the free memory sampled
cb_fetch "$CB_WORK/st-hist-set" --print-report --set device.memory_bytes=60000000
check "client history: --set device.memory_bytes is the sample" "[60000000]" \
    "$(jq -c .device.memory_history_bytes "$FETCH_OUT")"

echo "# $SECONDS s"
# ---- histories: --watch samples memory, kill -9 keeps what it saw -----------------
W=$CB_WORK/st-watch
cb_ctl "{\"select\":$(cb_decision "$M_HEX" $M_SIZE),\"paths\":{\"$BLOB\":{\"file\":\"$CB_WORK/m.bin\",\"rate\":262144}}}"
: >"$CB_WORK/log"
"$MODELD" fetch --server "$CB_SRV" --family cb --state "$W" --no-benchmark \
    --set device.gflops=50 --meminfo "$CB_WORK/meminfo" --facts-interval-s 1 \
    --rate-window-s 1 --watch >"$CB_WORK/watch.out" 2>"$CB_WORK/watch.err" &
WPID=$!
# the model arrives at 256 KiB/s: about 4 s, a throughput sample a second
for ((i = 0; i < 400; i++)); do
    grep -q '^.* switch ' "$CB_WORK/watch.out" 2>/dev/null && break
    sleep 0.05
done
check_match "client history: --watch: installed" 'switch digest' "$(cat "$CB_WORK/watch.out")"
check_ge "client history: a throughput sample per second of a long transfer" 3 \
    "$(grep -c 'throughput bps=' "$CB_WORK/watch.out")"
check_ge "client history: the samples kept in the state" 3 "$(jq '.downlink_samples | length' "$W/state.json")"
# served at 2097152 bit/s; a loaded machine may read slower, never faster
RATE=$(jq '.downlink_samples[1].bps | floor' "$W/state.json")
check_ge "client history: a window's rate: not far under the rate served" 524288 "$RATE"
check_lt "client history: a window's rate: not over it" 3145728 "$RATE"
# free memory dips, then comes back: the minute keeps its low
printf 'MemTotal: 16000000 kB\nMemAvailable: 300000 kB\n' >"$CB_WORK/meminfo.new"
mv "$CB_WORK/meminfo.new" "$CB_WORK/meminfo"
for ((i = 0; i < 200; i++)); do
    [ "$(jq '[.memory_minutes[].low_bytes] | min' "$W/state.json" 2>/dev/null)" = 307200000 ] && break
    sleep 0.1
done
check "client history: --watch: the dip sampled and saved" 307200000 \
    "$(jq '[.memory_minutes[].low_bytes] | min' "$W/state.json")"
printf 'MemTotal: 16000000 kB\nMemAvailable: 500000 kB\n' >"$CB_WORK/meminfo.new"
mv "$CB_WORK/meminfo.new" "$CB_WORK/meminfo"
sleep 1.5 # a sample after the dip (the client samples every second)
kill -KILL "$WPID" 2>/dev/null
wait "$WPID" 2>/dev/null
check_cmd "client history: after kill -9 the state is whole JSON" jq -e .memory_minutes "$W/state.json"
# what a write cut by a kill would leave: removed at the next open
printf '{"format":1,"fam' >"$W/state.json.tmp-AbC123"
cb_fetch "$W" --print-report --meminfo "$CB_WORK/meminfo"
check "client history: after kill -9: the dip is still sent" 307200000 \
    "$(jq '.device.memory_history_bytes | min' "$FETCH_OUT")"
check "client history: after kill -9: the floor is the dip" 307200000 "$(jq .device.memory_floor_bytes "$FETCH_OUT")"
check "client history: a cut state.json write's temporary file removed" 0 \
    "$(ls "$W" | grep -c 'state.json.tmp-')"
check_ge "client history: after kill -9: the throughput samples sent" 3 \
    "$(jq '.network.downlink_history_bps | length' "$FETCH_OUT")"
no_sanitizer "client history" "$CB_WORK"/*.err

kill "$CB_PID" 2>/dev/null
wait "$CB_PID" 2>/dev/null
