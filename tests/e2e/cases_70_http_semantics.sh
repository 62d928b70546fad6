# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: HEAD wherever GET is served (same headers,
# no body, no body bytes counted in the access log or in
# modeld_http_response_bytes_total), and the shutdown: on SIGTERM the
# listening socket is closed at once (a new connection is refused, not left
# hanging in the backlog) while a download in flight completes.

if demo_data && daemon_start head "$DEMO_DATA" --admin-token-file "$WORK/demo.token"; then
    fam=image-classification
    var=mobilenet-v1-1.0-224
    for path in /healthz /metrics /v1/families /v1/families/$fam \
        /v1/families/$fam/variants/$var/versions; do
        http GET "$path"
        get_status=$STATUS
        get_len=$(hdr Content-Length)
        get_type=$(hdr Content-Type)
        http HEAD "$path"
        check "HEAD $path: status as GET" "$get_status" "$STATUS"
        check "HEAD $path: Content-Type as GET" "$get_type" "$(hdr Content-Type)"
        # /metrics grows between the two requests; the others are equal.
        if [ "$path" = /metrics ]; then
            check_ge "HEAD $path: Content-Length" 1 "$(hdr Content-Length)"
        else
            check "HEAD $path: Content-Length as GET" "$get_len" "$(hdr Content-Length)"
        fi
        check "HEAD $path: no body" 0 "$(file_size "$BODY")"
    done
    # The other GET routes: the JWK set (its cache headers too) and the
    # admin audit log (the same 401 without a token; its body grows with
    # each admin request, so only a length is asked of HEAD).
    http GET /v1/keys
    get_len=$(hdr Content-Length)
    get_etag=$(hdr ETag)
    get_cc=$(hdr Cache-Control)
    http HEAD /v1/keys
    check "HEAD /v1/keys: 200" 200 "$STATUS"
    check "HEAD /v1/keys: Content-Length as GET" "$get_len" "$(hdr Content-Length)"
    check "HEAD /v1/keys: ETag as GET" "$get_etag" "$(hdr ETag)"
    check "HEAD /v1/keys: Cache-Control as GET" "$get_cc" "$(hdr Cache-Control)"
    check "HEAD /v1/keys: no body" 0 "$(file_size "$BODY")"
    demo_auth=(-H "Authorization: Bearer $(cat "$WORK/demo.token")")
    http HEAD /v1/audit
    check "HEAD /v1/audit without a token: 401" 401 "$STATUS"
    http GET /v1/audit "${demo_auth[@]}"
    get_type=$(hdr Content-Type)
    http HEAD /v1/audit "${demo_auth[@]}"
    check "HEAD /v1/audit: 200" 200 "$STATUS"
    check "HEAD /v1/audit: Content-Type as GET" "$get_type" "$(hdr Content-Type)"
    check_ge "HEAD /v1/audit: Content-Length" 2 "$(hdr Content-Length)"
    check "HEAD /v1/audit: no body" 0 "$(file_size "$BODY")"
    http HEAD /v1/families/no-such-family
    check "HEAD unknown family: 404" 404 "$STATUS"
    http POST /healthz
    check "POST /healthz: 405" 405 "$STATUS"
    check "POST /healthz: Allow names GET and HEAD" "GET, HEAD" "$(hdr Allow)"
    http DELETE /v1/families/$fam/variants/$var/versions
    check "DELETE versions: Allow" "GET, HEAD" "$(hdr Allow)"

    # Body bytes: HEAD adds none to the response-bytes counter or the log.
    http GET /metrics
    bytes0=$(metric modeld_http_response_bytes_total 'route="/v1/families"')
    count0=$(metric modeld_http_requests_total 'route="/v1/families"' 'status="200"')
    logged0=$(grep -c 'HEAD "/v1/families" 200 0 ' "$WORK/head.err")
    for _ in 1 2 3; do http HEAD /v1/families; done
    http GET /metrics
    check "HEAD counts no response bytes" "$bytes0" \
        "$(metric modeld_http_response_bytes_total 'route="/v1/families"')"
    check "HEAD requests are counted" $((count0 + 3)) \
        "$(metric modeld_http_requests_total 'route="/v1/families"' 'status="200"')"
    check "access log: HEAD lines with 0 bytes" $((logged0 + 3)) \
        "$(grep -c 'HEAD "/v1/families" 200 0 ' "$WORK/head.err")"
    daemon_stop head
fi

# ---- shutdown: refused at once, the download in flight completes ----------
SD_DATA=$WORK/data-shutdown
if [ "$QUICK" != 1 ] && daemon_start shutdown "$SD_DATA" \
    --admin-token-file "$TOKEN_FILE" --set shutdown_grace_s=30; then
    big=$WORK/shutdown.bin
    head -c $((32 << 20)) /dev/urandom >"$big"
    big_sha=$(sha_of "$big")
    http_admin PUT "/v1/blobs/$big_sha" -T "$big"
    check "shutdown: upload 201" 201 "$STATUS"
    # About 8 s at 4 MB/s: the grace period (30 s) covers it.
    curl -sS --max-time 60 --limit-rate 4M -o "$WORK/shutdown-dl.bin" \
        "$BASE/v1/blobs/$big_sha" 2>"$WORK/shutdown-dl.curl" &
    dl_pid=$!
    for ((i = 0; i < 200; i++)); do
        [ -s "$WORK/shutdown-dl.bin" ] && break
        sleep 0.05
    done
    check_ge "shutdown: the download has started" 1 "$(file_size "$WORK/shutdown-dl.bin")"
    kill -TERM "${DPID[shutdown]}"
    for ((i = 0; i < 200; i++)); do
        grep -q 'stopping' "$WORK/shutdown.err" && break
        sleep 0.05
    done
    for ((i = 0; i < 40; i++)); do
        grep -q 'listening socket closed' "$WORK/shutdown.err" && break
        sleep 0.05
    done
    start_ns=$(date +%s%N)
    curl -sS --max-time 3 -o /dev/null "$BASE/healthz" 2>/dev/null
    rc=$?
    took_ms=$((($(date +%s%N) - start_ns) / 1000000))
    # 7: connection refused; a socket left open gives 28 (timed out).
    check "shutdown: a new connection is refused (curl exit 7)" 7 "$rc"
    check_lt "shutdown: refused at once (ms)" 1000 "$took_ms"
    check_cmd "shutdown: the daemon is still running (grace)" is_running "${DPID[shutdown]}"
    wait "$dl_pid"
    check "shutdown: the download in flight completes" 0 "$?"
    check "shutdown: downloaded bytes are the blob's" "$big_sha" "$(sha_of "$WORK/shutdown-dl.bin")"
    daemon_stop shutdown
    rm -f "$big" "$WORK/shutdown-dl.bin"
fi

# ---- the worker's retries: the admin endpoint and the counters ------------
use main
http POST /v1/jobs/retry
check_problem "jobs retry without a token" 401
http_admin POST /v1/jobs/retry
check "jobs retry: 200" 200 "$STATUS"
check_jq "jobs retry: counts of jobs started again" \
    '(.deltas|type=="number") and (.compressed|type=="number")'
http GET /v1/jobs/retry
check "GET jobs retry: 405" 405 "$STATUS"
http GET /metrics
check_match "metrics: worker retries counter" '^modeld_worker_retries_total [0-9]+$' \
    "$(grep '^modeld_worker_retries_total ' "$BODY")"
check_match "metrics: worker gave-up counter" '^modeld_worker_gave_up_total [0-9]+$' \
    "$(grep '^modeld_worker_gave_up_total ' "$BODY")"
# build_info names both TLS (GnuTLS) and libcrypto (OpenSSL).
check_match "metrics: build_info names GnuTLS and OpenSSL" \
    'modeld_build_info\{[^}]*gnutls="[0-9][^"]*"[^}]*openssl="[^"]+"' \
    "$(grep '^modeld_build_info' "$BODY")"

# ---- make run's figures: the demo's file sizes beside the README's -------
if demo_data; then
    figures=$("$ROOT/deploy/demo-figures.sh" "$MODELD" "$DEMO_DATA" 2>&1)
    # --scale 0.001: inception-v3's 96 MB footprint is a 96000-byte file.
    check_match "demo figures: the file size served here" '96000 bytes served here' "$figures"
    check_match "demo figures: the README's full-size figure" '96000000 bytes at full size' "$figures"
    check_match "demo figures: the scale" 'footprints x 0\.001' "$figures"
fi
