# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: rollouts driven by what UEs report, scoped
# admin tokens, the audit log and the idempotent PUT, on a daemon of its
# own (a tokens file with a publish and a rollout token besides the admin
# one; small rollout thresholds):
# - a PUT whose body equals the latest version answers 200 and publishes
#   nothing;
# - a 10 % rollout reaches exactly the UEs whose bucket is below 10, and a
#   PATCH to 50 % exactly those below 50 (buckets computed here);
# - events: counted once per UE, version and kind; bad input is a 4xx that
#   names the field; failures past rollout_max_failure_share over
#   rollout_min_reports UEs pause the version (new UEs go back to v1, its
#   holders keep it), recorded in the audit log as "auto" (this daemon
#   counts events without receipts, rollout_pause_needs_receipt = false;
#   receipts: cases_76_receipts.sh);
# - measured latency from latency_min_reports UEs becomes the estimate for
#   that device class;
# - retiring a version sends its holders back to the previous one by a
#   reverse delta;
# - per-version statistics in GET .../versions and /metrics;
# - scopes: publish cannot change a rollout, rollout cannot publish, only
#   admin reads the audit log; the audit log names the token.

RO=$WORK/rollout
mkdir -p "$RO"
F=rt
V=m
PUB_TOKEN=pub-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
ROLL_TOKEN=roll-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
{
    echo "# name scope token"
    echo "publisher publish $PUB_TOKEN"
    echo "roller   rollout  $ROLL_TOKEN"
} >"$RO/tokens"
chmod 600 "$RO/tokens"

as_pub() { http "$1" "$2" -H "Authorization: Bearer $PUB_TOKEN" -H "$JSON_CT" "${@:3}"; }
as_roll() { http "$1" "$2" -H "Authorization: Bearer $ROLL_TOKEN" -H "$JSON_CT" "${@:3}"; }

# buckets_below P UE...: how many of the UEs have a rollout bucket below P
# (FNV-1a 64 of family, 0x1f, ue; modulo 100), computed independently; with
# P negative, the first UE whose bucket is below -P.
buckets_below() {
    python3 - "$F" "$@" <<'EOF'
import sys
fam, p, ues = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def fnv(data, h=0xcbf29ce484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h
inb = [u for u in ues if fnv(fam.encode() + b"\x1f" + u.encode()) % 100 < abs(p)]
print(len(inb) if p >= 0 else inb[0])
EOF
}

# count_holding DIGEST UE...: how many of the UEs a select sends to DIGEST
# (curl alone per UE: this loop is the test's hot path).
count_holding() {
    local want=$1 ue
    shift
    for ue in "$@"; do
        curl -sS --max-time "$CURL_MAX_TIME" -X POST "$BASE/v1/families/$F/select" -H "$JSON_CT" \
            --data-binary "{\"ue\":\"$ue\",\"device\":{\"memory_bytes\":100000000,\"gflops\":10}}"
        echo
    done | grep -c "\"model\":{\"digest\":\"$want\""
}

event() {
    http POST "/v1/families/$F/events" -H "$JSON_CT" --data-binary "$1"
}

if daemon_start rollout "$RO/data" --admin-token-file "$TOKEN_FILE" \
    --set "admin_tokens_file=$RO/tokens" --set rollout_min_reports=5 \
    --set rollout_max_failure_share=0.4 --set latency_min_reports=3 \
    --set rollout_pause_needs_receipt=false \
    --set events_per_minute_per_ip=100000; then
    head -c 300000 /dev/urandom >"$RO/b1"
    { head -c 200000 "$RO/b1"; head -c 100000 /dev/urandom; } >"$RO/b2"
    D1=$(sha_of "$RO/b1")
    D2=$(sha_of "$RO/b2")

    # ---- scopes ----
    as_pub PUT "/v1/families/$F" -d '{"task":"t"}'
    check "scopes: publish token creates a family" 201 "$STATUS"
    as_roll PUT "/v1/blobs/$D1" --data-binary "@$RO/b1"
    check_problem "scopes: rollout token cannot upload" 403 Authorization
    check_match "scopes: the refusal names the token and scope" 'roller.*rollout' "$(jbody .detail)"
    as_pub PUT "/v1/blobs/$D1" --data-binary "@$RO/b1"
    check "scopes: publish token uploads" 201 "$STATUS"
    as_pub PUT "/v1/blobs/$D2" --data-binary "@$RO/b2"
    META1="{\"blob\":\"$D1\",\"flops\":2e9,\"accuracy\":0.7}"
    META2="{\"blob\":\"$D2\",\"flops\":2e9,\"accuracy\":0.8,\"rollout_percent\":10}"
    as_pub PUT "/v1/families/$F/variants/$V" -d "$META1"
    check "publish v1" 201 "$STATUS"
    as_pub PUT "/v1/families/$F/variants/$V" -d "$META2"
    check "publish v2 at 10 %" 201 "$STATUS"

    # ---- idempotent PUT ----
    as_pub PUT "/v1/families/$F/variants/$V" -d "$META2"
    check "idempotent PUT: the same body again answers 200" 200 "$STATUS"
    check_jq "idempotent PUT: ... with the latest version" '.version == 2'
    http GET "/v1/families/$F/variants/$V/versions"
    check_jq "idempotent PUT: nothing published" '[.versions[].version] == [1,2]'

    # ---- rollout share ----
    UES=()
    for i in $(seq 1 40); do UES+=("ue-$i"); done
    want=$(buckets_below 10 "${UES[@]}")
    check "rollout 10 %: exactly the UEs with bucket < 10 get v2" "$want" "$(count_holding "$D2" "${UES[@]}")"
    http PATCH "/v1/families/$F/variants/$V/versions/2" -H "$JSON_CT" -d '{"rollout_percent":50}'
    check_problem "PATCH without a token" 401
    as_pub PATCH "/v1/families/$F/variants/$V/versions/2" -d '{"rollout_percent":50}'
    check_problem "PATCH with a publish token" 403
    as_roll PATCH "/v1/families/$F/variants/$V/versions/2" -d '{"rollout_percent":"half"}'
    check_problem "PATCH with a bad rollout_percent" 400 rollout_percent
    as_roll PATCH "/v1/families/$F/variants/$V/versions/2" -d '{}'
    check_problem "PATCH with nothing to change" 400 rollout_percent
    as_roll PATCH "/v1/families/$F/variants/$V/versions/9" -d '{"rollout_percent":50}'
    check_problem "PATCH an unknown version" 404 version
    as_roll PATCH "/v1/families/$F/variants/$V/versions/x1" -d '{"rollout_percent":50}'
    check_problem "PATCH a malformed version" 400 version
    as_roll PATCH "/v1/families/$F/variants/$V/versions/2" -d '{"rollout_percent":50}'
    check "PATCH widens the rollout" 200 "$STATUS"
    check_jq "PATCH answers the version, all of it" '.version == 2 and .rollout_percent == 50 and .paused == false and .flops == 2e9 and .accuracy == 0.8 and .digest == "'"$D2"'"'
    want=$(buckets_below 50 "${UES[@]}")
    check "rollout 50 %: exactly the UEs with bucket < 50 get v2" "$want" "$(count_holding "$D2" "${UES[@]}")"

    # ---- events ----
    event "{\"ue\":\"a1\",\"variant\":\"$V\",\"version\":2,\"digest\":\"$D2\",\"event\":\"installed\",\"device\":{\"class\":\"c9\"},\"latency_ms\":12}"
    check "event: 202" 202 "$STATUS"
    check_jq "event: counted" '.counted == true'
    event "{\"ue\":\"a1\",\"variant\":\"$V\",\"version\":2,\"event\":\"installed\"}"
    check_jq "event: a repeat from the same UE is not counted" '.counted == false'
    event "{\"ue\":\"a1\",\"variant\":\"$V\",\"version\":2,\"event\":\"exploded\"}"
    check_problem "event: unknown kind" 400 event
    event "{\"variant\":\"$V\",\"version\":2,\"event\":\"installed\"}"
    check_problem "event: without ue" 400 ue
    event "{\"ue\":\"a1\",\"variant\":\"$V\",\"version\":7,\"event\":\"installed\"}"
    check_problem "event: unknown version" 404 version
    event "{\"ue\":\"a1\",\"variant\":\"no-such-variant\",\"version\":1,\"event\":\"installed\"}"
    check_problem "event: unknown variant" 404 variant
    http POST "/v1/families/no-such-family/events" -H "$JSON_CT" --data-binary "{\"ue\":\"a1\",\"variant\":\"$V\",\"version\":1,\"event\":\"installed\"}"
    check_problem "event: unknown family" 404 family
    event "{\"ue\":\"a1\",\"variant\":\"$V\",\"version\":2,\"digest\":\"$D1\",\"event\":\"installed\"}"
    check_problem "event: a digest that is not the version's" 400 digest
    event "{\"ue\":\"a1\",\"variant\":\"$V\",\"version\":2,\"event\":\"installed\",\"latency_ms\":-1}"
    check_problem "event: negative latency" 400 latency_ms
    http POST "/v1/families/$F/events" -H "$JSON_CT" --data-binary "$(head -c 20000 /dev/zero | tr '\0' ' ')"
    check_problem "event: body over the limit" 413

    # Auto-pause: 5 UEs, 2 of them failing = 0.4.
    for u in a2 a3; do
        event "{\"ue\":\"$u\",\"variant\":\"$V\",\"version\":2,\"event\":\"installed\"}"
    done
    event "{\"ue\":\"f1\",\"variant\":\"$V\",\"version\":2,\"event\":\"load_failed\"}"
    check_jq "auto-pause: not at 1 of 4" '.paused == false'
    event "{\"ue\":\"f2\",\"variant\":\"$V\",\"version\":2,\"event\":\"verify_failed\"}"
    check_jq "auto-pause: paused at 2 of 5 UEs (0.4)" '.counted == true and .paused == true'
    http GET "/v1/families/$F/variants/$V/versions"
    check_jq "versions: v2 paused with its counts and failure share" \
        '.versions[1].paused == true and .versions[1].events.installed == 3 and .versions[1].events.load_failed == 1 and .versions[1].events.verify_failed == 1 and .versions[1].events.ues == 5 and .versions[1].events.failure_share == 0.4'
    check_jq "versions: latency by class" '.versions[1].events.latency_ms.c9 == {"count":1,"p50":12,"p90":12,"p99":12}'
    check_jq "versions: v1 unpaused, no events" '.versions[0].paused == false and .versions[0].events.ues == 0'
    # Every UE that had v2 at 50 % now gets v1, unless it holds v2.
    check "paused: no new UE gets v2" 0 "$(count_holding "$D2" "${UES[@]}")"
    in_bucket=$(buckets_below -50 "${UES[@]}")
    http POST "/v1/families/$F/select" -H "$JSON_CT" --data-binary \
        "{\"ue\":\"$in_bucket\",\"current\":\"$D2\",\"device\":{\"memory_bytes\":100000000,\"gflops\":10}}"
    check_jq "paused: a UE holding v2 keeps it" ".action == \"keep\" and .model.digest == \"$D2\""

    # Measured latency: 3 UEs of class c1 on v1 (10, 20, 30 ms) make its
    # estimate 20 ms (the median) instead of flops / gflops = 200 ms.
    http POST "/v1/families/$F/select" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":100000000,"gflops":10,"class":"c1"}}'
    check_jq "latency: before reports, from flops" '.version == 1 and .estimates.latency_ms == 200'
    for l in 10 30 20; do
        event "{\"ue\":\"l$l\",\"variant\":\"$V\",\"version\":1,\"event\":\"installed\",\"device\":{\"class\":\"c1\"},\"latency_ms\":$l}"
    done
    http POST "/v1/families/$F/select" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":100000000,"gflops":10,"class":"c1"}}'
    check_jq "latency: 3 reports make the median the estimate" '.version == 1 and .estimates.latency_ms == 20'
    http POST "/v1/families/$F/select" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":100000000,"gflops":10,"class":"c2"}}'
    check_jq "latency: other classes keep the flops estimate" '.estimates.latency_ms == 200'

    http GET /metrics
    check "metrics: v1 installed UEs" 3 "$(metric modeld_version_ues "family=\"$F\"" 'version="1"' 'event="installed"')"
    check "metrics: v2 paused" 1 "$(metric modeld_version_paused "family=\"$F\"" 'version="2"')"
    check_match "metrics: v2 failure share" "modeld_version_failure_share\{family=\"$F\",variant=\"$V\",version=\"2\"\} 0.4" "$(cat "$BODY")"
    check_ge "metrics: counted installed events" 6 "$(metric modeld_events_total 'event="installed"' 'outcome="counted"')"
    check "metrics: refused events" 4 "$(metric modeld_events_total 'outcome="refused"')"

    # ---- retiring a version ----
    as_pub DELETE "/v1/families/$F/variants/$V/versions/2"
    check_problem "retire with a publish token" 403
    as_roll DELETE "/v1/families/$F/variants/$V/versions/2"
    check "retire v2" 204 "$STATUS"
    as_roll DELETE "/v1/families/$F/variants/$V/versions/2"
    check_problem "retire v2 again" 404 version
    for ((i = 0; i < 200; i++)); do
        http POST "/v1/families/$F/select" -H "$JSON_CT" --data-binary \
            "{\"ue\":\"$in_bucket\",\"current\":\"$D2\",\"device\":{\"memory_bytes\":100000000,\"gflops\":10}}"
        [ "$(jbody .action)" = delta ] && break
        sleep 0.05
    done
    check_jq "retired: holders go back to v1 by a reverse delta" \
        ".action == \"delta\" and .version == 1 and .model.digest == \"$D1\" and .delta.from == \"$D2\""
    url=$(jbody .delta.url)
    http GET "$url"
    cp "$BODY" "$RO/back.delta"
    check_cmd "retired: the reverse delta rebuilds v1" "$MODELD" patch "$RO/b2" "$RO/back.delta" "$RO/back.bin"
    check "retired: ... byte for byte" "$D1" "$(sha_of "$RO/back.bin")"
    http GET "/v1/families/$F/variants/$V/versions"
    check_jq "retired: listed as retired" '.versions[1].retired == true'

    # ---- audit ----
    as_roll GET /v1/audit
    check_problem "audit with a rollout token" 403
    http_admin GET "/v1/audit?since=2000-01-01T00:00:00Z"
    check "audit: 200" 200 "$STATUS"
    check_jq "audit: the PATCH, by name, with what changed" \
        "any(.entries[]; .token == \"roller\" and .method == \"PATCH\" and .path == \"/v1/families/$F/variants/$V/versions/2\" and .status == 200 and (.detail|test(\"rollout_percent 10 -> 50\")))"
    check_jq "audit: the automatic pause" 'any(.entries[]; .token == "auto" and (.detail|test("paused false -> true")))'
    check_jq "audit: the PATCH refused for its scope" 'any(.entries[]; .token == "publisher" and .method == "PATCH" and .status == 403)'
    check_jq "audit: nothing without a known token" 'all(.entries[]; .token != "-" and .token != "") and all(.entries[]; .status != 401)'
    check_jq "audit: the idempotent PUT" 'any(.entries[]; .method == "PUT" and .status == 200 and (.detail|test("unchanged")))'
    check_jq "audit: times are RFC 3339" 'all(.entries[]; .time|test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"))'
    http_admin GET "/v1/audit?since=2999-01-01T00:00:00Z"
    check_jq "audit: since filters" '.entries == []'
    http_admin GET "/v1/audit?since=yesterday"
    check_problem "audit: a malformed since" 400 since
    check_cmd "rollout: no token in the daemon's log" sh -c "! grep -q -e '$PUB_TOKEN' -e '$ROLL_TOKEN' '$WORK/rollout.err'"
    daemon_stop rollout
fi

# The per-address rate limit of event reports (a daemon allowing 3 a
# minute; whatever minute boundary falls in between, 10 reports cannot all
# pass).
if daemon_start ratelimit "$RO/data-rl" --set events_per_minute_per_ip=3; then
    limited=0
    for i in $(seq 1 10); do
        http POST /v1/families/x/events -H "$JSON_CT" --data-binary '{"ue":"u","variant":"v","version":1,"event":"installed"}'
        if [ "$STATUS" = 429 ]; then
            limited=$((limited + 1))
            ra=$(hdr Retry-After)
            cp "$BODY" "$RO/429.body"
        fi
    done
    check_ge "rate limit: reports beyond 3 a minute get 429" 4 "$limited"
    check_match "rate limit: Retry-After in seconds" '^[1-9][0-9]?$' "$ra"
    cp "$RO/429.body" "$BODY"
    check_jq "rate limit: a problem body" '.status == 429 and (.detail|length) > 0'
    daemon_stop ratelimit
fi
use main
