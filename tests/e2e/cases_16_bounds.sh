# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: one source of truth for input bounds. Every
# member of the request schemas of proto/openapi.yaml (Report, VariantInput,
# FamilyInput) is sent at and just past each bound the spec states, and
# the daemon (proto/json_in.c's bounds table) must accept and refuse
# exactly what the spec does (tests/e2e/bounds_probe.py).

B16=c16-bounds
B16_BLOB=$WORK/c16.bin
head -c 1024 /dev/urandom >"$B16_BLOB"
B16_DIGEST=$(sha_of "$B16_BLOB")
http_admin PUT "/v1/families/$B16" -H "$JSON_CT" -d '{"task":"bounds"}'
check "bounds: family created" 201 "$STATUS"
http_admin PUT "/v1/blobs/$B16_DIGEST" --data-binary "@$B16_BLOB"
check "bounds: blob uploaded" 201 "$STATUS"
http_admin PUT "/v1/families/$B16/variants/base" -H "$JSON_CT" \
    -d "{\"blob\":\"$B16_DIGEST\",\"flops\":1e9,\"accuracy\":0.5}"
check "bounds: a variant published" 201 "$STATUS"

while IFS= read -r line; do
    case $line in
    pass$'\t'*) pass "${line#*$'\t'}" ;;
    fail$'\t'*) fail "${line#*$'\t'}" ;;
    *) echo "# $line" ;;
    esac
done < <(timeout 120 python3 "$E2E_DIR/bounds_probe.py" "$ROOT/proto/openapi.yaml" \
    "${DPORT[main]}" "$TOKEN" "$B16" "$B16_DIGEST" 2>&1 || echo "fail	bounds: bounds_probe.py failed")

http_admin DELETE "/v1/families/$B16"
check "bounds: family deleted" 204 "$STATUS"
http_admin DELETE "/v1/families/$B16-probe"
check_match "bounds: probe family deleted" '^(204|404)$' "$STATUS"
