# shellcheck shell=bash
# Sourced by tests/e2e/run.sh: `modeld fetch` against
# tests/e2e/client_standin.py (decisions and bytes from the control file):
# - the transfer deadline: a body that trickles forever ends the fetch
#   (exit 3) with its bytes kept in partial/ and named in state.json, and
#   the next fetch resumes from exactly those bytes;
# - a modeld-tensor/1 delta is applied against the model in use by its
#   installed digest, not by hashing the base again (bytes of the base the
#   delta does not read are never looked at), and the result's digest is
#   still checked (bytes it does read, changed, give the full model);
# - device.gflops_history: the compute probe's per-minute lows, calibrated
#   against the configured device.gflops, sampled during transfers, stale
#   minutes never sent; --watch rechecks when the probe's share moves by
#   the margin (throttling), as for free memory.

UC_WORK=$WORK/client-ue
mkdir -p "$UC_WORK"

# uc_fetch STATE [ARGS...]: one `modeld fetch` of family uc at the stand-in;
# sets FETCH_RC, FETCH_OUT, FETCH_ERR.
uc_fetch() {
    local state=$1
    shift
    fetch_run "$UC_WORK" --server "$UC_SRV" --family uc --state "$state" \
        --retries 2 --backoff-ms 50 "$@"
}
uc_ctl() { printf '%s\n' "$1" >"$UC_WORK/ctl.json"; }
uc_decision() { standin_decision uc "$1" "$2"; } # HEX SIZE

standin_start "$UC_WORK"
UC_PID=$STANDIN_PID
UC_SRV=$STANDIN_SRV

# ---- the transfer deadline ---------------------------------------------------------
head -c 1048576 /dev/urandom >"$UC_WORK/m.bin"
UM_HEX=$(sha_of "$UC_WORK/m.bin")
UM_HEX=${UM_HEX#sha256:}
UM_BLOB=/v1/blobs/sha256:$UM_HEX
# 16 KiB, then 16 KiB every 4 s: never a stall (--stall-timeout-s), never done
uc_ctl "{\"select\":$(uc_decision "$UM_HEX" 1048576),\"paths\":{\"$UM_BLOB\":{\"file\":\"$UC_WORK/m.bin\",\"rate\":4096,\"ranges\":true}}}"
D=$UC_WORK/st-deadline
uc_fetch "$D" --no-benchmark --set device.gflops=50 --deadline-s 2
check "client deadline: a trickling body: exit 3" 3 "$FETCH_RC"
check_match "client deadline: says so, with the bytes" \
    'transfer deadline: [0-9]+ of 1048576 bytes after [0-9]+ s.*kept for a resume' "$(cat "$FETCH_ERR")"
check_match "client deadline: the event line" 'deadline after_s=[0-9.]+ bytes=[0-9]+ of=1048576 limit_s=2' "$(cat "$FETCH_OUT")"
UC_PART=$D/partial/$UM_HEX.model
UC_HAVE=$(file_size "$UC_PART" 2>/dev/null || echo 0)
check_ge "client deadline: the partial file kept" 16384 "$UC_HAVE"
check "client deadline: state.json names the transfer and its bytes" \
    "$UM_HEX $UC_HAVE" "$(jq -r '"\(.inflight.target_hex) \(.inflight.bytes_done)"' "$D/state.json")"
check "client deadline: nothing installed" 0 "$(ls -A "$D/models" | wc -l)"
check "client deadline: no path" no "$([ -e "$D/path" ] && echo yes || echo no)"
# the next fetch reports what it holds and resumes from it
uc_fetch "$D" --no-benchmark --set device.gflops=50 --print-report
check "client deadline: the report says what is in flight" "sha256:$UM_HEX $UC_HAVE" \
    "$(jq -r '"\(.fetching.digest) \(.fetching.bytes_done)"' "$FETCH_OUT")"
uc_ctl "{\"select\":$(uc_decision "$UM_HEX" 1048576),\"paths\":{\"$UM_BLOB\":{\"file\":\"$UC_WORK/m.bin\",\"ranges\":true}}}"
: >"$UC_WORK/log"
uc_fetch "$D" --no-benchmark --set device.gflops=50 --deadline-s 2
check "client deadline: then at full speed: exit 0" 0 "$FETCH_RC"
check "client deadline: resumed from the bytes kept" "bytes=$UC_HAVE- 206 $((1048576 - UC_HAVE))" \
    "$(jq -r --arg p "$UM_BLOB" 'select(.path == $p) | "\(.range) \(.status) \(.sent)"' "$UC_WORK/log")"
check "client deadline: installed" "sha256:$UM_HEX" "$(sha_of "$D/path")"
# the deadline counts the missing bytes: 60 s plus 1 MiB at 1 Mbit/s is
# plenty for a fair server (no cap)
uc_fetch "$UC_WORK/st-deadline2" --no-benchmark --set device.gflops=50 --deadline-s 0 --min-rate-bps 1000000
check "client deadline: derived from the size: a fair transfer completes" 0 "$FETCH_RC"
uc_fetch "$UC_WORK/st-deadline3" --no-benchmark --deadline-s x
check "client deadline: --deadline-s x: exit 2" 2 "$FETCH_RC"

echo "# $SECONDS s"
# ---- modeld-tensor/1 against the installed base, trusted by its digest ----------------
UT=$UC_WORK/tensor
mkdir -p "$UT"
python3 "$E2E_DIR/tensorgen.py" "$UT" 2
# the base: v1 plus a tensor that v2 no longer has (the delta never reads it)
python3 - "$UT/v1.safetensors" "$UT/old.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head, data = json.loads(raw[8:8 + n]), raw[8 + n:]
spare = struct.pack("<4096f", *[(i % 97) / 97.0 for i in range(4096)])
head["spare.weight"] = {"dtype": "F32", "shape": [4096],
                        "data_offsets": [len(data), len(data) + len(spare)]}
h = json.dumps(head, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + data + spare)
PY
UO_HEX=$(sha_of "$UT/old.safetensors")
UO_HEX=${UO_HEX#sha256:}
UN_HEX=$(sha_of "$UT/v2.safetensors")
UN_HEX=${UN_HEX#sha256:}
"$MODELD" delta --format modeld-tensor/1 "$UT/old.safetensors" "$UT/v2.safetensors" "$UT/on.delta" >/dev/null 2>&1
check "client trusted base: the tensor delta made" 0 "$?"
UO_SIZE=$(file_size "$UT/old.safetensors")
UN_SIZE=$(file_size "$UT/v2.safetensors")
UT_URL=/v1/deltas/sha256:$UO_HEX/sha256:$UN_HEX
# uc_tensor_ctl [FORMAT FILE]: the decision old -> v2 as a delta
uc_tensor_ctl() {
    local fmt=${1:-modeld-tensor/1} file=${2:-$UT/on.delta}
    uc_ctl "{\"select\":{\"action\":\"delta\",\"family\":\"uc\",\"variant\":\"m\",\"version\":2,\"model\":{\"digest\":\"sha256:$UN_HEX\",\"size_bytes\":$UN_SIZE,\"url\":\"/v1/blobs/sha256:$UN_HEX\"},\"delta\":{\"from\":\"sha256:$UO_HEX\",\"format\":\"$fmt\",\"size_bytes\":$(file_size "$file"),\"url\":\"$UT_URL\"},\"recheck_after_s\":2},\"paths\":{\"$UT_URL\":{\"file\":\"$file\"},\"/v1/blobs/sha256:$UN_HEX\":{\"file\":\"$UT/v2.safetensors\"}}}"
}
# uc_tensor_base STATE: a state directory holding old.safetensors as current
uc_tensor_base() {
    uc_ctl "{\"select\":$(uc_decision "$UO_HEX" "$UO_SIZE"),\"paths\":{\"/v1/blobs/sha256:$UO_HEX\":{\"file\":\"$UT/old.safetensors\"}}}"
    uc_fetch "$1" --no-benchmark --set device.gflops=50
    check "client trusted base: the base installed" "sha256:$UO_HEX" "$(sha_of "$1/path")"
}
# flip_at FILE OFFSET: inverts one byte in place (the installed model)
flip_at() {
    python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1)
f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}
# uc_trusted STATE OFFSET [FORMAT FILE]: the base installed in STATE with
# its byte at OFFSET inverted, then the delta old -> v2 fetched (the
# stand-in's log holds that fetch's requests alone)
uc_trusted() {
    uc_tensor_base "$1"
    flip_at "$1/models/$UO_HEX" "$2"
    uc_tensor_ctl "${@:3}"
    : >"$UC_WORK/log"
    uc_fetch "$1" --no-benchmark --set device.gflops=50
}
TB=$UC_WORK/st-trust
# a byte of the tensor v2 dropped: the delta does not read it; hashing the
# base (as before) would refuse the base and fetch the full model
uc_trusted "$TB" $((UO_SIZE - 100))
check "client trusted base: exit 0" 0 "$FETCH_RC"
check_match "client trusted base: the delta decoded" 'verify ok digest=sha256:'"$UN_HEX"' \(modeld-tensor/1 decoded\)' "$(cat "$FETCH_OUT")"
check "client trusted base: the full model never asked for" 0 \
    "$(standin_requests "$UC_WORK" "/v1/blobs/sha256:$UN_HEX")"
check "client trusted base: v2 in place" "sha256:$UN_HEX" "$(sha_of "$TB/path")"
# a byte of a tensor v2 is made from: the result's digest is wrong, refused,
# and the full model fetched instead
TB2=$UC_WORK/st-trust2
uc_trusted "$TB2" $((UO_SIZE - 16384 - 4096 - 100))
check "client trusted base: a changed base byte the delta reads: exit 0" 0 "$FETCH_RC"
check_match "client trusted base: ... the result refused" 'verify failed.*modeld-tensor/1' "$(cat "$FETCH_OUT")"
check "client trusted base: ... the full model fetched" 1 \
    "$(standin_requests "$UC_WORK" "/v1/blobs/sha256:$UN_HEX")"
check "client trusted base: ... v2 in place" "sha256:$UN_HEX" "$(sha_of "$TB2/path")"
# the same for a zstd-patch delta (proto_delta_apply_trusted)
"$MODELD" delta --format zstd-patch "$UT/old.safetensors" "$UT/v2.safetensors" "$UT/on.zpatch" >/dev/null 2>&1
check "client trusted base: the zstd-patch delta made" 0 "$?"
uc_trusted "$UC_WORK/st-trust3" $((UO_SIZE - 100)) zstd-patch "$UT/on.zpatch"
check "client trusted base: zstd-patch: exit 0" 0 "$FETCH_RC"
check_match "client trusted base: zstd-patch: the delta decoded" 'verify ok digest=sha256:'"$UN_HEX"' \(zstd-patch decoded\)' "$(cat "$FETCH_OUT")"
check "client trusted base: zstd-patch: the full model never asked for" 0 \
    "$(standin_requests "$UC_WORK" "/v1/blobs/sha256:$UN_HEX")"
TB4=$UC_WORK/st-trust4
uc_trusted "$TB4" 20 zstd-patch "$UT/on.zpatch" # in the header, which v2 shares
check "client trusted base: zstd-patch, a byte it reads changed: exit 0" 0 "$FETCH_RC"
check_match "client trusted base: zstd-patch ... refused" 'verify failed.*zstd-patch' "$(cat "$FETCH_OUT")"
check "client trusted base: zstd-patch ... v2 in place" "sha256:$UN_HEX" "$(sha_of "$TB4/path")"

echo "# $SECONDS s"
# ---- device.gflops_history: the compute probe's per-minute lows ------------------------
# --compute-probe FILE stands in for the probe's measurement (the kernel's
# GFLOP/s); --set device.gflops=50 is the device's peak it is scaled to
G=$UC_WORK/st-gflops
PROBE=$UC_WORK/probe
uc_probe() { printf '%s\n' "$1" >"$PROBE.new" && mv "$PROBE.new" "$PROBE"; }
uc_probe 20
uc_fetch "$G" --print-report --set device.gflops=50 --compute-probe "$PROBE"
check "client gflops: --print-report: exit 0" 0 "$FETCH_RC"
check "client gflops: the first probe: the peak" 50 "$(jq .device.gflops "$FETCH_OUT")"
check "client gflops: the first minute sent" "[50]" "$(jq -c .device.gflops_history "$FETCH_OUT")"
uc_probe 10
uc_fetch "$G" --print-report --set device.gflops=50 --compute-probe "$PROBE"
check "client gflops: throttled to half: gflops now half the peak" 25 "$(jq .device.gflops "$FETCH_OUT")"
check "client gflops: throttled to half: the minute's low" 25 "$(jq '.device.gflops_history | min' "$FETCH_OUT")"
uc_probe 20
uc_fetch "$G" --print-report --set device.gflops=50 --compute-probe "$PROBE"
check "client gflops: back to full speed: gflops now the peak" 50 "$(jq .device.gflops "$FETCH_OUT")"
check "client gflops: ... the slow minute still sent" 25 "$(jq '.device.gflops_history | min' "$FETCH_OUT")"
check "client gflops: the minutes in state.json, raw probe lows" 10 "$(jq '[.compute_minutes[].low_gflops] | min' "$G/state.json")"
check "client gflops: the reference in state.json" 20 "$(jq .probe_ref.gflops "$G/state.json")"
# a stale minute (20 minutes ago) and a fresh one (2 minutes ago) from an
# earlier run: only the fresh one sent, oldest first
NOW=$(date +%s)
jq --argjson m $((NOW / 60)) '.compute_minutes = [{"minute": ($m - 20), "low_gflops": 1}, {"minute": ($m - 2), "low_gflops": 5}] + .compute_minutes' \
    "$G/state.json" >"$G/state.new" && mv "$G/state.new" "$G/state.json"
uc_fetch "$G" --print-report --set device.gflops=50 --compute-probe "$PROBE"
check "client gflops: a fresh minute of an earlier run sent first" 12.5 "$(jq '.device.gflops_history | first' "$FETCH_OUT")"
check "client gflops: a stale minute not sent" null "$(jq '.device.gflops_history | index(2.5)' "$FETCH_OUT")"
# measured for real: the benchmark is the peak, the probe's share of it
# now; --print-report's stdout is the report alone (the first run's
# benchmark line used to come before it)
uc_fetch "$UC_WORK/st-gflops-measured" --print-report
check_cmd "client gflops: measured: --print-report prints JSON only" jq -e . "$FETCH_OUT"
check "client gflops: measured: gflops and one minute of history" "true 1" \
    "$(jq -r '"\(.device.gflops > 0) \(.device.gflops_history | length)"' "$FETCH_OUT")"
check "client gflops: measured: the benchmark kept in the state" true "$(jq '.gflops > 0' "$UC_WORK/st-gflops-measured/state.json")"
# --no-benchmark: no probe, device.gflops as configured, no history
uc_fetch "$G" --print-report --set device.gflops=50 --compute-probe "$PROBE" --no-benchmark
check "client gflops: --no-benchmark: no history" null "$(jq -c .device.gflops_history "$FETCH_OUT")"
check "client gflops: --no-benchmark: gflops as set" 50 "$(jq .device.gflops "$FETCH_OUT")"
# the real daemon takes the report (the field's bounds)
uc_probe 20
uc_fetch "$UC_WORK/st-gflops-real" --set device.gflops=50 --compute-probe "$PROBE" --print-report
printf '%s' "$(cat "$FETCH_OUT")" >"$UC_WORK/report.json"
http POST /v1/families/uc-none/select -H 'Content-Type: application/json' --data-binary @"$UC_WORK/report.json"
check "client gflops: the daemon parses the report (404: no such family, not 400)" 404 "$STATUS"

# during a transfer the probe runs at the memory samples' cadence
GT=$UC_WORK/st-gflops-transfer
uc_probe 20
uc_ctl "{\"select\":$(uc_decision "$UM_HEX" 1048576),\"paths\":{\"$UM_BLOB\":{\"file\":\"$UC_WORK/m.bin\",\"rate\":200000}}}"
timeout 60 "$MODELD" fetch --server "$UC_SRV" --family uc --state "$GT" --set device.gflops=50 \
    --compute-probe "$PROBE" --facts-interval-s 1 >"$UC_WORK/gt.out" 2>"$UC_WORK/gt.err" &
GPID=$!
for ((i = 0; i < 400; i++)); do
    grep -q ' download model ' "$UC_WORK/gt.out" 2>/dev/null && break
    sleep 0.05
done
uc_probe 4 # throttled to a fifth, mid-transfer
wait "$GPID"
check "client gflops: a transfer with a throttled probe: exit 0" 0 "$?"
check "client gflops: the probe sampled during the transfer" 4 \
    "$(jq '[.compute_minutes[].low_gflops] | min' "$GT/state.json")"
uc_probe 20
uc_fetch "$GT" --print-report --set device.gflops=50 --compute-probe "$PROBE"
check "client gflops: the next report sends the slow minute" 10 "$(jq '.device.gflops_history | min' "$FETCH_OUT")"

# --watch re-decides when the probe's share of its reference moves by a
# quarter from the last report's (throttling), as it does for free memory:
# not for a dip within the margin, at once for a drop to half, and again
# for the way back
GW=$UC_WORK/st-gflops-watch
uc_probe 20
uc_ctl "{\"select\":$(uc_decision "$UM_HEX" 1048576 | sed 's/"recheck_after_s":2/"recheck_after_s":600/'),\"paths\":{\"$UM_BLOB\":{\"file\":\"$UC_WORK/m.bin\"}}}"
uc_fetch "$GW" --set device.gflops=50 --compute-probe "$PROBE"
check "client watch: the model installed first: exit 0" 0 "$FETCH_RC"
: >"$UC_WORK/log"
"$MODELD" fetch --server "$UC_SRV" --family uc --state "$GW" --set device.gflops=50 \
    --compute-probe "$PROBE" --facts-interval-s 1 --watch >"$UC_WORK/gw.out" 2>"$UC_WORK/gw.err" &
GWPID=$!
uc_wait_lines() { # uc_wait_lines FILE PATTERN COUNT: at most 30 s
    for ((i = 0; i < 600; i++)); do
        [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
        sleep 0.05
    done
    return 1
}
uc_wait_lines "$UC_WORK/gw.out" 'recheck in_s=' 1
uc_probe 17 # 0.85 of the reference
for ((i = 0; i < 300; i++)); do
    [ "$(jq '[.compute_minutes[].low_gflops] | min' "$GW/state.json" 2>/dev/null)" = 17 ] && break
    sleep 0.1
done
check "client watch: a probe within the margin sampled" 17 "$(jq '[.compute_minutes[].low_gflops] | min' "$GW/state.json")"
check "client watch: ... no recheck for it" 0 "$(grep -c 'recheck now' "$UC_WORK/gw.out")"
uc_probe 10 # throttled to half
uc_wait_lines "$UC_WORK/gw.out" 'recheck in_s=' 2
check_match "client watch: throttled to half: a recheck at once" 'recheck now reason="compute changed"' \
    "$(grep 'recheck now' "$UC_WORK/gw.out")"
check "client watch: throttled to half: one recheck, a second select" "1 2" \
    "$(grep -c 'recheck now' "$UC_WORK/gw.out") $(grep -c '/select' "$UC_WORK/log")"
uc_probe 20 # back to full speed
uc_wait_lines "$UC_WORK/gw.out" 'recheck in_s=' 3
check "client watch: back to full speed: rechecked again" 2 "$(grep -c 'reason="compute changed"' "$UC_WORK/gw.out")"
kill "$GWPID" 2>/dev/null
wait "$GWPID"
check "client watch: SIGTERM stops it, exit 0" 0 "$?"

echo "# $SECONDS s"
no_sanitizer "client ue" "$UC_WORK"/*.err

kill "$UC_PID" 2>/dev/null
wait "$UC_PID" 2>/dev/null
