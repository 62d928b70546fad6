# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: 64 parallel downloads of a 256 MiB blob.
# Bodies come from file descriptors (sendfile), so the daemon's resident
# memory must not grow with the model size or the number of downloads.
# Heavy: not run (nor counted) when MODELD_E2E_QUICK=1. The background
# worker is on: it makes the blob's zstd copy meanwhile, reading the blob
# in pieces.

if [ "$QUICK" != 1 ] && daemon_start par "$WORK/data-par" \
    --admin-token-file "$TOKEN_FILE"; then
    pid=${DPID[par]}
    PAR=$WORK/par.bin
    head -c $((256 * 1024 * 1024)) /dev/urandom >"$PAR"
    PAR_DIGEST=sha256:$(sha256sum "$PAR" | cut -d' ' -f1)
    curl -sS --max-time 120 -o /dev/null -w '%{http_code}' -X PUT \
        -H "Authorization: Bearer $TOKEN" -T "$PAR" \
        "$BASE/v1/blobs/$PAR_DIGEST" >"$WORK/par.status" 2>&1
    check "parallel: 256 MiB upload" 201 "$(cat "$WORK/par.status")"

    started=$SECONDS
    pids=()
    for ((k = 0; k < 64; k++)); do
        if [ "$k" = 0 ]; then
            curl -sS --max-time 240 -o "$PAR.back" -w '%{size_download}\n' \
                "$BASE/v1/blobs/$PAR_DIGEST" >"$WORK/par.$k" 2>&1 &
        else
            curl -sS --max-time 240 -o /dev/null -w '%{size_download}\n' \
                "$BASE/v1/blobs/$PAR_DIGEST" >"$WORK/par.$k" 2>&1 &
        fi
        pids+=($!)
    done
    peak=0
    while :; do
        alive=0
        for p in "${pids[@]}"; do
            is_running "$p" && alive=1 && break
        done
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        [ "$alive" = 0 ] && break
        sleep 0.05
    done
    wait "${pids[@]}"
    echo "# 64 x 256 MiB downloads: $((SECONDS - started)) s, sampled VmRSS peak $peak KiB"
    full=0
    for ((k = 0; k < 64; k++)); do
        [ "$(cat "$WORK/par.$k")" = $((256 * 1024 * 1024)) ] && full=$((full + 1))
    done
    check "parallel: 64 of 64 downloads got all 256 MiB" 64 "$full"
    check "parallel: the bytes" "$PAR_DIGEST" "sha256:$(sha256sum "$PAR.back" | cut -d' ' -f1)"
    check_lt "parallel: sampled VmRSS under 64 MiB during 64 downloads (KiB)" 65536 "$peak"
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    check_lt "parallel: VmHWM under 64 MiB (KiB)" 65536 "${hwm:-999999}"
    rm -f "$PAR" "$PAR.back"
    daemon_stop par
fi
use main
