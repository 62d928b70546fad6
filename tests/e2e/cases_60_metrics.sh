# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: /metrics after known traffic on a fresh
# daemon over the demo catalog: request counts by route and status,
# latency histogram counts, response bytes, decisions by action and by
# variant, degraded decisions, delta bytes saved, limit hits, gauges,
# delta states and build info.

SEL=/v1/families/image-classification/select
if demo_data && daemon_start metrics "$DEMO_DATA" --admin-token-file "$WORK/demo.token"; then
    for _ in 1 2 3; do http GET /healthz; done
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":60000000,"gflops":100}}'
    eff_size=$(jbody .model.size_bytes)
    eff_url=$(jbody .model.url)
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":60000000,"gflops":100}}'
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":10000000,"gflops":100}}'
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":1000000000,"gflops":1},"requirements":{"max_latency_ms":1}}'
    check_jq "metrics: the 1 GFLOP/s report is degraded" '.degraded == true'
    http GET /v1/families/image-classification/variants/mobilenet-v1-1.0-224/versions
    v1=$(jbody '.versions[] | select(.version == 1) | .digest')
    http POST "$SEL" -H "$JSON_CT" --data-binary "{\"device\":{\"memory_bytes\":15000000,\"gflops\":100},\"current\":\"$v1\"}"
    check_jq "metrics: holding mobilenet v1 gives a delta" '.action == "delta"'
    saved=$(jbody '.model.size_bytes - .delta.size_bytes')
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":'
    http GET "$eff_url"
    http POST "$SEL" -H "$JSON_CT" --data-binary "$(head -c 20000 /dev/zero | tr '\0' ' ')"

    http GET /metrics
    check "metrics: status" 200 "$STATUS"
    check_match "metrics: Prometheus text content type" '^text/plain; version=0\.0\.4' "$(hdr Content-Type)"
    # daemon_start's readiness probe is the fourth /healthz.
    check "metrics: healthz 200 count" 4 "$(metric modeld_http_requests_total 'route="/healthz"' 'status="200"')"
    check "metrics: select 200 count" 5 "$(metric modeld_http_requests_total 'route="/v1/families/{family}/select"' 'status="200"')"
    check "metrics: select 400 count" 1 "$(metric modeld_http_requests_total 'route="/v1/families/{family}/select"' 'status="400"')"
    check "metrics: select 413 count" 1 "$(metric modeld_http_requests_total 'route="/v1/families/{family}/select"' 'status="413"')"
    check "metrics: select latency histogram count" 7 \
        "$(metric modeld_http_request_duration_seconds_count 'route="/v1/families/{family}/select"')"
    check "metrics: select +Inf bucket equals the count" 7 \
        "$(metric modeld_http_request_duration_seconds_bucket 'route="/v1/families/{family}/select"' 'le="+Inf"')"
    check "metrics: blob bytes sent" "$eff_size" "$(metric modeld_http_response_bytes_total 'route="/v1/blobs/{digest}"')"
    # Two efficientnet-b0 downloads and the degraded one.
    check "metrics: download decisions" 3 "$(metric modeld_decisions_total 'action="download"')"
    check "metrics: none decisions" 1 "$(metric modeld_decisions_total 'action="none"')"
    check "metrics: delta decisions" 1 "$(metric modeld_decisions_total 'action="delta"')"
    check "metrics: degraded decisions" 1 "$(metric modeld_decisions_degraded_total)"
    check "metrics: decisions for efficientnet-b0" 2 \
        "$(metric modeld_decisions_by_variant_total 'family="image-classification"' 'variant="efficientnet-b0"')"
    check "metrics: delta bytes saved" "$saved" "$(metric modeld_delta_bytes_saved_total)"
    check "metrics: body limit hits" 1 "$(metric modeld_limit_hits_total 'limit="body_size"')"
    check_ge "metrics: ready deltas" 1 "$(metric modeld_deltas 'state="ready"')"
    check "metrics: no pending deltas" 0 "$(metric modeld_deltas 'state="pending"')"
    check_ge "metrics: one open connection (this scrape)" 1 "$(metric modeld_connections)"
    check "metrics: no uploads in progress" 0 "$(metric modeld_uploads_in_progress)"
    check_match "metrics: build info" 'modeld_build_info\{version="[^"]+",microhttpd="[^"]+"' "$(cat "$BODY")"
    check "metrics: no UE id or digest in any label" "" \
        "$(grep -E '\{[^}]*(sha256|[0-9a-f]{64})' "$BODY" | head -n 1)"
    daemon_stop metrics
fi
use main
