# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: the contract of proto/openapi.yaml that the
# other case files do not reach: JSON bodies need a JSON Content-Type (415
# otherwise), null counts as absent in optional members, and every answer
# here is checked against the spec at the end of the run like all others.

C15=c15-fam
C15_JSON=(-H 'Content-Type: application/json')

# ---- 415: a JSON body needs a JSON media type ------------------------------

http_admin PUT "/v1/families/$C15" -H 'Content-Type: text/plain' -d '{"task":"t"}'
check_problem "PUT family as text/plain: 415" 415 Content-Type
http_admin PUT "/v1/families/$C15" -d '{"task":"t"}'
check_problem "PUT family as a form (curl -d's default): 415" 415 Content-Type
http GET "/v1/families/$C15"
check "refused PUTs created nothing" 404 "$STATUS"
http_admin PUT "/v1/families/$C15" -H 'Content-Type:' -d '{"task":"t"}'
check "PUT family with no Content-Type: taken as JSON (201)" 201 "$STATUS"
http_admin PUT "/v1/families/$C15" \
    -H 'Content-Type: Application/JSON; charset=utf-8' \
    -d '{"task":"t","description":null}'
check "PUT family as application/json with charset: 200" 200 "$STATUS"
check_jq "PUT family: null description is absent (\"\")" '.description == ""'
http_admin PUT "/v1/families/$C15" -H 'Content-Type: application/vnd.x+json' \
    -d '{"task":"t2"}'
check "PUT family as a +json type: 200" 200 "$STATUS"

C15_BLOB=$WORK/c15.bin
head -c 4096 /dev/urandom >"$C15_BLOB"
C15_DIGEST=$(sha_of "$C15_BLOB")
http_admin PUT "/v1/blobs/$C15_DIGEST" --data-binary "@$C15_BLOB"
check "PUT blob: 201" 201 "$STATUS"
check_jq "PUT blob: its digest and size" \
    ".digest == \"$C15_DIGEST\" and .size_bytes == 4096"
http_admin PUT "/v1/blobs/$C15_DIGEST" --data-binary "@$C15_BLOB"
check "PUT blob again: 200" 200 "$STATUS"

http_admin PUT "/v1/families/$C15/variants/v1" -H 'Content-Type: text/plain' \
    -d "{\"blob\":\"$C15_DIGEST\",\"flops\":1e9,\"accuracy\":0.7}"
check_problem "PUT variant as text/plain: 415" 415 Content-Type
# Optional members sent as null count as absent.
http_admin PUT "/v1/families/$C15/variants/v1" "${C15_JSON[@]}" \
    -d "{\"blob\":\"$C15_DIGEST\",\"flops\":1e9,\"accuracy\":0.7,\"format\":null,\"techniques\":null,\"params\":null,\"memory_bytes\":null,\"latency_ms\":null,\"exits\":null,\"context\":null,\"requires\":null,\"rollout_percent\":null}"
check "PUT variant with null optional members: 201" 201 "$STATUS"
check_jq "PUT variant: version 1" '.version == 1'
http GET "/v1/families/$C15"
check_jq "the variant: nulls left out, rollout 100, created a date-time" \
    '.variants[0] | (has("format") | not) and .rollout_percent == 100 and (.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"))'

C15_SEL=/v1/families/$C15/select
http POST "$C15_SEL" -H 'Content-Type: text/plain' \
    -d '{"device":{"memory_bytes":100000000,"gflops":10}}'
check_problem "select as text/plain: 415" 415 Content-Type
http POST "$C15_SEL" -d '{"device":{"memory_bytes":100000000,"gflops":10}}'
check_problem "select as a form: 415" 415 Content-Type
http POST "$C15_SEL" "${C15_JSON[@]}" \
    -d '{"device":{"memory_bytes":100000000,"gflops":10,"class":null,"formats":null},"network":null,"requirements":{"max_latency_ms":null},"preference":null,"current":null,"context":null,"ue":null}'
check "select with null optional members: 200" 200 "$STATUS"
check_jq "select: downloads v1" '.action == "download" and .variant == "v1"'
# A context value is one tag or an array of them, in reports and variants.
http POST "$C15_SEL" "${C15_JSON[@]}" \
    -d '{"device":{"memory_bytes":100000000,"gflops":10},"context":{"scene":["night","rain"],"place":"road"}}'
check "select with string and array context values: 200" 200 "$STATUS"

# A body-less endpoint ignores the Content-Type; a GET answers as usual.
http GET "/v1/families/$C15" -H 'Content-Type: text/plain'
check "GET with a stray Content-Type: 200" 200 "$STATUS"

http_admin DELETE "/v1/families/$C15"
check "DELETE the family: 204" 204 "$STATUS"
