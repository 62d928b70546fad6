# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: model selection on the demo catalog (made by
# `modeld demo --scale 0.001`), served by a "demo" daemon, then the offline
# `modeld select` on the same data.

SEL=/v1/families/image-classification/select
IC_NAMES='["densenet-169","efficientnet-b0","inception-v3","mobilenet-v1-1.0-224","resnet-50","vgg-16"]'

# select BODY [CURL ARGS...]: POSTs a UE report to image-classification.
select_req() {
    local body=$1
    shift
    http POST "$SEL" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

if demo_data && daemon_start demo "$DEMO_DATA" --admin-token-file "$WORK/demo.token"; then
    http GET /v1/families
    check_jq "demo: two families of 6 variants" \
        '[.families[] | {name, variants}] | sort_by(.name) == [{"name":"image-classification","variants":6},{"name":"object-detection","variants":6}]'
    http GET /v1/families/image-classification
    check_jq "demo: image-classification lists its 6 variants" \
        "[.variants[].variant] | sort == $IC_NAMES"
    # A client generated from the spec percent-encodes path parameters.
    http GET /v1/families/image%2Dclassification
    check "GET /v1/families/image%2Dclassification: 200" 200 "$STATUS"
    check_jq "GET /v1/families/image%2Dclassification: the family" \
        "[.variants[].variant] | sort == $IC_NAMES"

    # The done criteria.
    R60='{"device":{"memory_bytes":60000000,"gflops":100}}'
    select_req "$R60"
    check "select 60 MB, 100 GFLOP/s: status" 200 "$STATUS"
    check_match "select: JSON content type" '^application/json' "$(hdr Content-Type)"
    check_jq "select 60 MB: download efficientnet-b0" \
        '.action == "download" and .family == "image-classification" and .variant == "efficientnet-b0" and .version == 1'
    check_jq "select 60 MB: model digest, size and url" \
        '(.model.digest | test("^sha256:[0-9a-f]{64}$")) and .model.size_bytes > 0 and .model.url == "/v1/blobs/" + .model.digest'
    check_jq "select 60 MB: no delta, not degraded" \
        '(has("delta") | not) and .degraded == false and .violations == []'
    check_jq "select 60 MB: the other 5 variants are candidates, each with reasons" \
        "([.candidates[].variant] | sort) == ($IC_NAMES - [\"efficientnet-b0\"]) and all(.candidates[]; (.reasons | type == \"array\" and length > 0) and (.feasible | type == \"boolean\"))"
    check_jq "select 60 MB: densenet-169 (56 MB) feasible, inception-v3 (96 MB) not" \
        '(.candidates[] | select(.variant == "densenet-169") | .feasible) == true and (.candidates[] | select(.variant == "inception-v3") | .feasible) == false'
    check_jq "select 60 MB: estimates" \
        '(.estimates.latency_ms - 3.9 | fabs) < 0.01 and .estimates.memory_bytes == 21200000 and (.recheck_after_s | type == "number")'
    EFF_DIGEST=$(jbody .model.digest)
    EFF_URL=$(jbody .model.url)
    EFF_SIZE=$(jbody .model.size_bytes)
    http GET "$EFF_URL"
    check "select 60 MB: model.url serves the model" 200 "$STATUS"
    check "select 60 MB: model bytes have model.digest" "$EFF_DIGEST" "$(sha_of "$BODY")"
    check "select 60 MB: model bytes are model.size_bytes long" "$EFF_SIZE" "$(file_size "$BODY")"

    select_req '{"device":{"memory_bytes":1000000000,"gflops":100},"requirements":{"max_latency_ms":100}}'
    check "select 1 GB, 100 ms: status" 200 "$STATUS"
    check_jq "select 1 GB, 100 ms: inception-v3 at 57 ms" \
        '.action == "download" and .variant == "inception-v3" and (.estimates.latency_ms - 57 | fabs) < 0.01 and .degraded == false'
    check_jq "select 1 GB, 100 ms: 5 candidates" '(.candidates | length) == 5'

    select_req '{"device":{"memory_bytes":10000000,"gflops":100},"explain":"all"}'
    check "select 10 MB: status" 200 "$STATUS"
    check_jq "select 10 MB: none, without variant or model" \
        '.action == "none" and (has("variant") | not) and (has("model") | not) and (has("delta") | not)'
    check_jq "select 10 MB: all 6 infeasible candidates with reasons" \
        "([.candidates[].variant] | sort) == $IC_NAMES and all(.candidates[]; .feasible == false and (.reasons | length > 0))"

    select_req "{\"device\":{\"memory_bytes\":60000000,\"gflops\":100},\"current\":\"$EFF_DIGEST\"}"
    check "select holding efficientnet-b0: status" 200 "$STATUS"
    check_jq "select holding efficientnet-b0: keep" \
        ".action == \"keep\" and .variant == \"efficientnet-b0\" and .model.digest == \"$EFF_DIGEST\" and (has(\"delta\") | not)"

    # mobilenet-v1-1.0-224 has two versions; the family shows the latest.
    http GET /v1/families/image-classification
    MOB_V2=$(jbody '.variants[] | select(.variant == "mobilenet-v1-1.0-224") | .digest')
    check_jq "demo: mobilenet-v1-1.0-224 is at version 2" \
        '(.variants[] | select(.variant == "mobilenet-v1-1.0-224") | .version) == 2'
    http GET /v1/families/image-classification/variants/mobilenet-v1-1.0-224/versions
    check "versions of mobilenet-v1-1.0-224: status" 200 "$STATUS"
    check_jq "versions of mobilenet-v1-1.0-224: 1 and 2 with distinct digests" \
        '[.versions[].version] == [1,2] and .versions[0].digest != .versions[1].digest and all(.versions[]; .digest | test("^sha256:[0-9a-f]{64}$"))'
    check "versions: the latest is the family's" "$MOB_V2" "$(jbody '.versions[1].digest')"
    http GET /v1/families/image-classification/variants/no-such/versions
    check_problem "versions of an unknown variant" 404

    select_req "{\"device\":{\"memory_bytes\":15000000,\"gflops\":100},\"current\":\"$MOB_V2\"}"
    check "select 15 MB holding mobilenet v2: status" 200 "$STATUS"
    check_jq "select 15 MB holding mobilenet v2: keep" \
        '.action == "keep" and .variant == "mobilenet-v1-1.0-224" and .version == 2'

    # Malformed reports: 400 problem+json naming the field.
    select_req '{"device":{"gflops":100}}'
    check_problem "select without device.memory_bytes" 400 device.memory_bytes
    select_req '{"device":{"memory_bytes":60000000}}'
    check_problem "select without device.gflops" 400 device.gflops
    select_req '{"device":{"memory_bytes":60000000,"gflops":"fast"}}'
    check_problem "select with device.gflops \"fast\"" 400 device.gflops
    select_req '{"device":{"memory_bytes":-1,"gflops":100}}'
    check_problem "select with negative memory" 400 device.memory_bytes
    select_req '{"device":{"memory_bytes":60000000,"gflops":100},"preference":"fastest"}'
    check_problem "select with preference \"fastest\"" 400 preference
    select_req '{"device":{"memory_bytes":60000000,"gflops":100},"current":"sha256:XYZ"}'
    check_problem "select with current \"sha256:XYZ\"" 400 current
    select_req '{"device":{"memory_bytes":60000000,"gflops":100},"requirements":{"min_accuracy":2}}'
    check_problem "select with min_accuracy 2" 400 requirements.min_accuracy
    select_req '{"device":{"memory_bytes":60000000,"gflops":100},"network":{"downlink_bps":"x"}}'
    check_problem "select with downlink_bps \"x\"" 400 network.downlink_bps
    select_req '{"device":"big"}'
    check_problem "select with device a string" 400 device
    select_req 'this is not JSON'
    check_problem "select, body not JSON" 400
    select_req '[{"device":{"memory_bytes":60000000,"gflops":100}}]'
    check_problem "select, body an array" 400
    select_req ''
    check_problem "select, empty body" 400
    { printf '{"device":'; head -c 3000 /dev/zero | tr '\0' '['
      head -c 3000 /dev/zero | tr '\0' ']'; printf '}'; } >"$WORK/deep-select.json"
    http POST "$SEL" -H 'Content-Type: application/json' --data-binary "@$WORK/deep-select.json"
    check_problem "select, 3000 levels of nesting" 400

    select_req '{"device":{"memory_bytes":60000000,"gflops":100},"future_field":{"x":[1,2]}}'
    check "select with an unknown top-level field: ignored" 200 "$STATUS"
    check_jq "select with an unknown top-level field: same choice" '.variant == "efficientnet-b0"'
    http POST /v1/families/no-such-family/select -H 'Content-Type: application/json' --data-binary "$R60"
    check_problem "select on an unknown family" 404 family

    http GET /healthz
    check "demo daemon answers after the malformed reports" 200 "$STATUS"

    # The offline command reads beside the running daemon (read-only);
    # a second daemon on the same data directory is refused.
    printf '%s\n' "$R60" >"$WORK/report60.json"
    timeout 60 "$MODELD" select --data "$DEMO_DATA" image-classification \
        "$WORK/report60.json" >"$WORK/cli-live.out" 2>"$WORK/cli-live.err"
    check "modeld select beside the running daemon: exit status" 0 "$?"
    check "modeld select beside the running daemon: efficientnet-b0" efficientnet-b0 \
        "$(jq -r .variant "$WORK/cli-live.out" 2>/dev/null)"
    timeout 20 "$MODELD" serve --config "$CONFIG" --listen 127.0.0.1:0 \
        --data "$DEMO_DATA" >"$WORK/second.out" 2>"$WORK/second.err"
    check "a second daemon on the same data directory exits 1" 1 "$?"
    check_match "a second daemon says the directory is in use" 'in use by another modeld' \
        "$(cat "$WORK/second.err")"
    http GET /healthz
    check "the first daemon still serves after the refused second one" 200 "$STATUS"
    daemon_stop demo

    # The offline command on the same data gives the same answer.
    printf '%s\n' "$R60" >"$WORK/report60.json"
    timeout 60 "$MODELD" select --data "$DEMO_DATA" image-classification \
        "$WORK/report60.json" >"$WORK/cli-select.out" 2>"$WORK/cli-select.err"
    check "modeld select: exit status" 0 "$?"
    check "modeld select: same action and variant as HTTP" "download efficientnet-b0" \
        "$(jq -r '"\(.action) \(.variant)"' "$WORK/cli-select.out" 2>/dev/null)"
    printf '%s\n' '{"device":{"memory_bytes":10000000,"gflops":100}}' >"$WORK/report10.json"
    timeout 60 "$MODELD" select --data "$DEMO_DATA" image-classification \
        "$WORK/report10.json" >"$WORK/cli-select.out" 2>"$WORK/cli-select.err"
    check "modeld select, 10 MB: action none" none \
        "$(jq -r .action "$WORK/cli-select.out" 2>/dev/null)"
    # A directory without a catalog: refused, and nothing is created there.
    mkdir -p "$WORK/no-catalog"
    timeout 60 "$MODELD" select --data "$WORK/no-catalog" image-classification \
        "$WORK/report10.json" >/dev/null 2>"$WORK/cli-none.err"
    check "modeld select on a directory without a catalog exits 1" 1 "$?"
    check_match "modeld select says it cannot open the catalog" 'cannot open .*catalog\.db' \
        "$(cat "$WORK/cli-none.err")"
    check "modeld select creates nothing there" "" "$(ls -A "$WORK/no-catalog")"
fi
use main
