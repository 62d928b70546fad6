# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: event receipts (README "Event receipts"), on
# a daemon of its own with the default rollout_pause_needs_receipt = true
# and the default events_per_minute_per_ip (60), small thresholds
# (rollout_min_reports 5, rollout_max_failure_share 0.4):
# - 30 failure reports from one address with fresh, invented ue ids (no
#   receipt, or a made-up or borrowed one) are accepted (202, verified
#   false) and shown, but do not pause the version;
# - UEs that selected send back the answer's receipt and do pause it at
#   2 failed of 5 verified UEs;
# - a malformed receipt is a 400 naming it; /metrics counts receipts;
# - the UE client (modeld fetch) sends back its answer's receipt.

RC=$WORK/receipts
mkdir -p "$RC"
RF=rc

# rc_event UE EVENT [RECEIPT]: one report on $RF/m version 1.
rc_event() {
    local receipt=""
    [ -n "${3:-}" ] && receipt=",\"receipt\":\"$3\""
    http POST "/v1/families/$RF/events" -H "$JSON_CT" --data-binary \
        "{\"ue\":\"$1\",\"variant\":\"m\",\"version\":1,\"digest\":\"$RD1\",\"event\":\"$2\"$receipt}"
}

# rc_select UE: a select as that UE; RECEIPT is the answer's receipt.
rc_select() {
    http POST "/v1/families/$RF/select" -H "$JSON_CT" --data-binary \
        "{\"ue\":\"$1\",\"device\":{\"memory_bytes\":100000000,\"gflops\":10}}"
    RECEIPT=$(jbody '.receipt // ""')
}

# rc_publish FAMILY FILE BYTES: family FAMILY with variant m v1 on BYTES
# random bytes written to FILE; RD is its digest.
rc_publish() {
    head -c "$3" /dev/urandom >"$2"
    RD=$(sha_of "$2")
    http_admin PUT "/v1/families/$1" -H "$JSON_CT" -d '{"task":"t"}'
    http_admin PUT "/v1/blobs/$RD" --data-binary "@$2"
    http_admin PUT "/v1/families/$1/variants/m" -H "$JSON_CT" \
        -d "{\"blob\":\"$RD\",\"flops\":1e6,\"accuracy\":0.7}"
    check "receipts: publish $1/m v1" 201 "$STATUS"
}

if daemon_start receipts "$RC/data" --admin-token-file "$TOKEN_FILE" \
    --set rollout_min_reports=5 --set rollout_max_failure_share=0.4; then
    rc_publish "$RF" "$RC/b1" 100000
    RD1=$RD

    # ---- forged: one address, fresh ue ids, no select ----
    forged_paused=0 forged_verified=0 forged_counted=0
    for i in $(seq 1 30); do
        case $((i % 3)) in
        0) rc_event "forged-$i" load_failed ;;
        1) rc_event "forged-$i" verify_failed "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" ;;
        2) rc_event "forged-$i" rolled_back ;;
        esac
        [ "$STATUS" = 202 ] || break
        [ "$(jbody .paused)" = true ] && forged_paused=$((forged_paused + 1))
        [ "$(jbody .verified)" = true ] && forged_verified=$((forged_verified + 1))
        [ "$(jbody .counted)" = true ] && forged_counted=$((forged_counted + 1))
    done
    check "receipts: 30 forged failures are accepted (202)" 202 "$STATUS"
    check "receipts: ... and recorded" 30 "$forged_counted"
    check "receipts: ... none verified" 0 "$forged_verified"
    check "receipts: ... none paused the version" 0 "$forged_paused"
    http GET "/v1/families/$RF/variants/m/versions"
    check_jq "receipts: the forged failures are shown, unverified, not paused" \
        '.versions[0].paused == false and .versions[0].events.ues == 30 and .versions[0].events.failed_ues == 30 and .versions[0].events.verified_ues == 0 and .versions[0].events.verified_failed_ues == 0'

    # ---- receipts in select answers ----
    http POST "/v1/families/$RF/select" -H "$JSON_CT" --data-binary \
        '{"device":{"memory_bytes":100000000,"gflops":10}}'
    check_jq "receipts: no ue in the report, no receipt" 'has("receipt") | not'
    rc_select r1
    check_match "receipts: a select with ue answers a receipt" '^[A-Za-z0-9_-]{43}$' "$RECEIPT"
    R1=$RECEIPT
    rc_select r1
    check "receipts: the same UE and version, the same receipt" "$R1" "$RECEIPT"
    rc_event forged-31 load_failed "$R1"
    check_jq "receipts: another UE's receipt does not verify" '.verified == false and .paused == false'
    rc_event r1 load_failed "not a receipt!"
    check_problem "receipts: a malformed receipt" 400 receipt

    # ---- real UEs: selected, then report with their receipts ----
    rc_event r1 installed "$R1"
    check_jq "receipts: a UE's own receipt verifies" '.verified == true and .counted == true'
    for u in r2 r3; do
        rc_select "$u"
        rc_event "$u" installed "$RECEIPT"
    done
    rc_select r4
    rc_event r4 load_failed "$RECEIPT"
    check_jq "receipts: 1 failed of 4 verified UEs: not paused" '.verified == true and .paused == false'
    # forged-3 was recorded unverified; its verified report upgrades it.
    rc_select forged-3
    rc_event forged-3 load_failed "$RECEIPT"
    check_jq "receipts: 2 failed of 5 verified UEs (0.4) pause it" \
        '.verified == true and .counted == true and .paused == true'
    http GET "/v1/families/$RF/variants/m/versions"
    check_jq "receipts: listing, paused, verified counts" \
        '.versions[0].paused == true and .versions[0].events.verified_ues == 5 and .versions[0].events.verified_failed_ues == 2 and .versions[0].events.ues == 35'
    http GET /metrics
    check "receipts: metrics, valid" 5 "$(metric modeld_event_receipts_total 'result="valid"')"
    check "receipts: metrics, missing" 20 "$(metric modeld_event_receipts_total 'result="missing"')"
    check "receipts: metrics, invalid" 11 "$(metric modeld_event_receipts_total 'result="invalid"')"

    # ---- the UE client (modeld fetch) sends its answer's receipt ----
    rc_publish rc2 "$RC/b2" 50000
    timeout 120 "$MODELD" fetch --server "$BASE" --family rc2 \
        --state "$RC/ue" --no-benchmark --set device.gflops=50 \
        >"$RC/fetch.out" 2>"$RC/fetch.err"
    check "receipts: modeld fetch installs" 0 "$?"
    check_match "receipts: ... and reports installed" 'event installed status=202' "$(cat "$RC/fetch.out" "$RC/fetch.err")"
    http GET "/v1/families/rc2/variants/m/versions"
    check_jq "receipts: the client's installed event is verified" \
        '.versions[0].events.installed == 1 and .versions[0].events.verified_ues == 1'
    daemon_stop receipts
fi
use main
