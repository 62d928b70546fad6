# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: admission under load and the transfer
# bound, on a copy of the demo catalog served with admission_load 0.8 and
# max_transfers 1:
# - a UE reporting load 0.9 that holds a model it can run keeps it, with
#   the short admission_recheck_s and a reason; the same UE at load 0.5
#   gets its delta; a UE holding nothing (or nothing runnable) at load 0.9
#   still gets its download;
# - while one download is in flight, a second gets 503 problem+json with
#   Retry-After; selects and HEAD still answer; once the first ends,
#   downloads work again.

AD=$WORK/admission
mkdir -p "$AD"
SEL=/v1/families/image-classification/select

if demo_data && cp -r "$DEMO_DATA" "$AD/data" &&
    daemon_start admission "$AD/data" --admin-token-file "$WORK/demo.token" \
        --set admission_load=0.8 --set admission_recheck_s=45 \
        --set max_transfers=1 --set transfer_retry_after_s=7; then
    http GET /v1/families/image-classification/variants/mobilenet-v1-1.0-224/versions
    mv1=$(jbody '.versions[] | select(.version == 1) | .digest')
    mv2=$(jbody '.versions[] | select(.version == 2) | .digest')
    http GET /v1/families/image-classification/variants/vgg-16/versions
    vgg=$(jbody '.versions[0].digest')
    dev='"device":{"memory_bytes":15000000,"gflops":100}'

    http POST "$SEL" -H "$JSON_CT" --data-binary "{$dev,\"current\":\"$mv1\",\"network\":{\"load\":0.5}}"
    check_jq "admission: at load 0.5 the UE gets its delta" ".action == \"delta\" and .model.digest == \"$mv2\""
    http POST "$SEL" -H "$JSON_CT" --data-binary "{$dev,\"current\":\"$mv1\",\"network\":{\"load\":0.9}}"
    check_jq "admission: at load 0.9 it keeps what it runs, rechecks soon, says why" \
        ".action == \"keep\" and .model.digest == \"$mv1\" and .recheck_after_s == 45 and (.reasons|any(test(\"admission: load 90% at or above 80%\"))) and (.delta|not)"
    check_jq "admission: the deferred variant is a candidate" \
        '.candidates|any(.variant == "mobilenet-v1-1.0-224" and .version == 2 and (.reasons[0]|test("deferred")))'
    http POST "$SEL" -H "$JSON_CT" --data-binary "{$dev,\"network\":{\"load\":0.9}}"
    check_jq "admission: a UE holding nothing still downloads" '.action == "download"'
    http POST "$SEL" -H "$JSON_CT" --data-binary "{$dev,\"current\":\"$vgg\",\"network\":{\"load\":0.9}}"
    check_jq "admission: a UE holding a model it cannot run still downloads" '.action == "download"'

    # ---- the transfer bound ----
    head -c $((24 << 20)) /dev/urandom >"$AD/big"
    big=$(sha_of "$AD/big")
    http PUT "/v1/blobs/$big" -H "Authorization: Bearer $(cat "$WORK/demo.token")" \
        --data-binary "@$AD/big"
    check "transfers: big blob uploaded" 201 "$STATUS"
    curl -sS --limit-rate 100k -o /dev/null "$BASE/v1/blobs/$big" 2>/dev/null &
    slow=$!
    for ((i = 0; i < 200; i++)); do
        http GET /metrics
        [ "$(metric modeld_transfers_in_progress)" = 1 ] && break
        sleep 0.05
    done
    check "transfers: one download in flight" 1 "$(metric modeld_transfers_in_progress)"
    http GET "/v1/blobs/$mv1"
    check_problem "transfers: a second download beyond max_transfers" 503
    check "transfers: Retry-After" 7 "$(hdr Retry-After)"
    http HEAD "/v1/blobs/$mv1"
    check "transfers: HEAD is not a transfer" 200 "$STATUS"
    http POST "$SEL" -H "$JSON_CT" --data-binary "{$dev}"
    check "transfers: selects still answer" 200 "$STATUS"
    kill "$slow" 2>/dev/null
    wait "$slow" 2>/dev/null
    for ((i = 0; i < 200; i++)); do
        http GET "/v1/blobs/$mv1"
        [ "$STATUS" = 200 ] && break
        sleep 0.05
    done
    check "transfers: downloads work again once the first ended" 200 "$STATUS"
    http GET /metrics
    check_ge "transfers: refusals counted" 1 "$(metric modeld_transfers_refused_total)"
    check_ge "admission: deferrals counted" 1 "$(metric modeld_decisions_deferred_total)"
    daemon_stop admission
fi
use main
