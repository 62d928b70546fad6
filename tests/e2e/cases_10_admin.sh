# shellcheck shell=bash
# Sourced by tests/e2e/run.sh: health, catalog administration, auth, limits,
# routing, metrics and hostile input, against the "main" daemon (empty
# catalog, token $TOKEN) and two more instances (no token; small limits).

# ---- health and the empty catalog -------------------------------------------

http GET /healthz
check "healthz: status" 200 "$STATUS"
check_jq "healthz: body" '. == {"status":"ok"}'
check_match "healthz: JSON content type" '^application/json' "$(hdr Content-Type)"

http GET /v1/families
check "families on an empty catalog: status" 200 "$STATUS"
check_jq "families on an empty catalog: body" '. == {"families":[]}'

# ---- authentication ---------------------------------------------------------

FAM=e2e-fam
FAM_BODY='{"task":"image-classification","description":"first"}'

http PUT "/v1/families/$FAM" -H 'Content-Type: application/json' -d "$FAM_BODY"
check_problem "PUT family without a token" 401
check_match "PUT family without a token: WWW-Authenticate" '^Bearer' "$(hdr WWW-Authenticate)"

http PUT "/v1/families/$FAM" -H 'Authorization: Bearer not-the-token-at-all' \
    -H 'Content-Type: application/json' -d "$FAM_BODY"
check_problem "PUT family with a wrong token" 403

http PUT "/v1/families/$FAM" -H "Authorization: Basic $(printf 'admin:%s' "$TOKEN" | base64 -w0)" \
    -H 'Content-Type: application/json' -d "$FAM_BODY"
check_match "PUT family with Basic auth: refused" '^40[13]$' "$STATUS"

http GET /v1/families
check_jq "refused PUTs created nothing" '.families == []'

# A daemon with neither a token file nor MODELD_ADMIN_TOKEN: every admin
# endpoint answers 403, even to the token the other daemon accepts.
if daemon_start notoken "$WORK/data-notoken"; then
    http_admin PUT "/v1/families/$FAM" -H 'Content-Type: application/json' -d "$FAM_BODY"
    check_problem "no-token daemon: PUT family with a token" 403
    http PUT "/v1/families/$FAM" -H 'Content-Type: application/json' -d "$FAM_BODY"
    check_problem "no-token daemon: PUT family without a token" 403
    http_admin PUT "/v1/blobs/sha256:$(printf x | sha256sum | cut -d' ' -f1)" --data-binary x
    check_problem "no-token daemon: PUT blob" 403
    http_admin DELETE "/v1/families/$FAM"
    check_problem "no-token daemon: DELETE family" 403
    http GET /v1/families
    check "no-token daemon: public GET still works" 200 "$STATUS"
    check_jq "no-token daemon: nothing was created" '.families == []'
    daemon_stop notoken
fi
use main

# ---- families ---------------------------------------------------------------

http_admin PUT "/v1/families/$FAM" -H 'Content-Type: application/json' -d "$FAM_BODY"
check "PUT family: created" 201 "$STATUS"
http_admin PUT "/v1/families/$FAM" -H 'Content-Type: application/json' \
    -d '{"task":"image-classification","description":"second"}'
check "PUT family again: updated" 200 "$STATUS"
http GET "/v1/families/$FAM"
check "GET family: status" 200 "$STATUS"
check_jq "GET family: current task and description, no variants" \
    ".name == \"$FAM\" and .task == \"image-classification\" and .description == \"second\" and .variants == []"
http GET /v1/families
check_jq "family list shows it with 0 variants" \
    ".families == [{\"name\":\"$FAM\",\"task\":\"image-classification\",\"description\":\"second\",\"variants\":0}]"

http_admin PUT /v1/families/Bad_Name -H 'Content-Type: application/json' -d "$FAM_BODY"
check_problem "PUT family with a bad name" 400 family
http_admin PUT "/v1/families/a$(printf '%064d' 0)" -H 'Content-Type: application/json' -d "$FAM_BODY"
check_problem "PUT family with a 65-character name" 400 family
http_admin PUT /v1/families/-dash -H 'Content-Type: application/json' -d "$FAM_BODY"
check_problem "PUT family with a name starting with '-'" 400 family

http_admin PUT "/v1/families/$FAM" -H 'Content-Type: application/json' -d '{"task":'
check_problem "PUT family, malformed JSON" 400
check_jq "PUT family, malformed JSON: field member present" 'has("field") and (.field|type=="string")'
http_admin PUT "/v1/families/$FAM" -H 'Content-Type: application/json' -d '{"task":5}'
check_problem "PUT family, task of the wrong type" 400 task
http_admin PUT "/v1/families/$FAM" -H 'Content-Type: application/json' \
    -d "{\"task\":\"$(head -c 300 /dev/zero | tr '\0' a)\"}"
check_problem "PUT family, task over 256 bytes" 400 task
http GET "/v1/families/$FAM"
check_jq "refused family PUTs changed nothing" '.description == "second" and .task == "image-classification"'

# ---- blobs ------------------------------------------------------------------

BLOB1=$WORK/blob1.bin
head -c 300000 /dev/urandom >"$BLOB1"
BLOB1_DIGEST=$(sha_of "$BLOB1")
BLOB1_HEX=${BLOB1_DIGEST#sha256:}
BLOB1_SIZE=$(file_size "$BLOB1")

http PUT "/v1/blobs/$BLOB1_DIGEST" --data-binary "@$BLOB1"
check_problem "PUT blob without a token" 401
http HEAD "/v1/blobs/$BLOB1_DIGEST"
check "blob refused for auth is not stored" 404 "$STATUS"

# A refusal on the headers of a small upload comes after its body has been
# read: a client still sending must not see its send fail (EPIPE/RST) and
# lose the answer. The client sends 16 KiB, waits up to 2 s for an early
# answer, then the rest; every byte must be taken and the answer be 401.
out=$(python3 - "${BASE#http://127.0.0.1:}" "$BLOB1_HEX" <<'PY'
import select, socket, sys
port, hexd = int(sys.argv[1]), sys.argv[2]
body = bytes(300000)
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"PUT /v1/blobs/sha256:%s HTTP/1.1\r\nHost: x\r\n"
          b"Content-Type: application/octet-stream\r\n"
          b"Content-Length: %d\r\n\r\n" % (hexd.encode(), len(body)))
s.sendall(body[:16384])
select.select([s], [], [], 2.0)
sent = "all"
try:
    s.sendall(body[16384:])
except OSError as e:
    sent = "failed:" + type(e).__name__
data = b""
try:
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
except OSError:
    pass
print(sent, data.split(b"\r\n", 1)[0].decode("latin-1").replace(" ", "_"))
PY
)
check "refused upload: the client's body is taken, not reset" "all HTTP/1.1_401_Unauthorized" "$out"

http_admin PUT "/v1/blobs/$BLOB1_DIGEST" -H 'Content-Type: application/octet-stream' -T "$BLOB1"
check "PUT blob with the right digest: created" 201 "$STATUS"
http_admin PUT "/v1/blobs/$BLOB1_DIGEST" -H 'Content-Type: application/octet-stream' -T "$BLOB1"
check "PUT blob again: already present" 200 "$STATUS"
http GET "/v1/blobs/$BLOB1_DIGEST"
check "GET the uploaded blob" 200 "$STATUS"
check "GET the uploaded blob: same bytes" "$BLOB1_DIGEST" "$(sha_of "$BODY")"

# Wrong digest: the body's real digest differs from the one in the URL.
BAD_BLOB=$WORK/bad.bin
head -c 50000 /dev/urandom >"$BAD_BLOB"
BAD_REAL=$(sha_of "$BAD_BLOB")
BAD_CLAIM=sha256:$(printf 'something else' | sha256sum | cut -d' ' -f1)
http_admin PUT "/v1/blobs/$BAD_CLAIM" -H 'Content-Type: application/octet-stream' -T "$BAD_BLOB"
check_problem "PUT blob with a wrong digest" 400
for d in "$BAD_CLAIM" "$BAD_REAL"; do
    http GET "/v1/blobs/$d"
    check_problem "wrong-digest upload: GET ${d:0:20}... not found" 404
    http HEAD "/v1/blobs/$d"
    check "wrong-digest upload: HEAD ${d:0:20}... not found" 404 "$STATUS"
    check "wrong-digest upload: no file named ${d:0:20}... under DATA/blobs" "" \
        "$(find "$MAIN_DATA/blobs" -name "*${d#sha256:}*" 2>/dev/null)"
done
# Files in DATA/tmp may briefly belong to the background worker (compressed
# copies): wait, bounded, for it to be empty.
tmp_left=""
for ((i = 0; i < 100; i++)); do
    tmp_left=$(find "$MAIN_DATA/tmp" -type f 2>/dev/null | head -n 3)
    [ -z "$tmp_left" ] && break
    sleep 0.05
done
check "wrong-digest upload: nothing left in DATA/tmp" "" "$tmp_left"

http_admin PUT /v1/blobs/sha256:XYZ --data-binary x
check_problem "PUT blob with a malformed digest" 400

# ---- variants ---------------------------------------------------------------

MISSING=sha256:$(printf 'never uploaded' | sha256sum | cut -d' ' -f1)
http_admin PUT "/v1/families/$FAM/variants/v-a" -H 'Content-Type: application/json' \
    -d "{\"blob\":\"$MISSING\",\"flops\":1e9,\"accuracy\":0.7}"
check_problem "PUT variant whose blob is not uploaded" 400 blob

http_admin PUT "/v1/families/$FAM/variants/v-a" -H 'Content-Type: application/json' \
    -d "{\"blob\":\"$BLOB1_DIGEST\",\"flops\":1e9,\"accuracy\":1.5}"
check_problem "PUT variant with accuracy 1.5" 400 accuracy
http_admin PUT "/v1/families/$FAM/variants/v-a" -H 'Content-Type: application/json' \
    -d "{\"blob\":\"$BLOB1_DIGEST\",\"accuracy\":0.7}"
check_problem "PUT variant without flops" 400 flops
http_admin PUT "/v1/families/no-such-family/variants/v-a" -H 'Content-Type: application/json' \
    -d "{\"blob\":\"$BLOB1_DIGEST\",\"flops\":1e9,\"accuracy\":0.7}"
check_problem "PUT variant into an unknown family" 404
http PUT "/v1/families/$FAM/variants/v-a" -H 'Content-Type: application/json' \
    -d "{\"blob\":\"$BLOB1_DIGEST\",\"flops\":1e9,\"accuracy\":0.7}"
check_problem "PUT variant without a token" 401

VAR_META="{\"blob\":\"$BLOB1_DIGEST\",\"format\":\"tflite\",\"flops\":1e9,\"accuracy\":0.7,\"memory_bytes\":4000000}"
http_admin PUT "/v1/families/$FAM/variants/v-a" -H 'Content-Type: application/json' -d "$VAR_META"
check "PUT variant: created" 201 "$STATUS"
check_jq "PUT variant: version 1" '.version == 1'
http_admin PUT "/v1/families/$FAM/variants/v-a" -H 'Content-Type: application/json' \
    -d "{\"blob\":\"$BLOB1_DIGEST\",\"format\":\"tflite\",\"flops\":2e9,\"accuracy\":0.75,\"memory_bytes\":5000000}"
check "PUT variant again: created" 201 "$STATUS"
check_jq "PUT variant again: version 2" '.version == 2'

http GET "/v1/families/$FAM"
check "GET family with a variant: status" 200 "$STATUS"
check_jq "GET family: one variant, its current metadata" \
    "(.variants|length) == 1 and .variants[0].variant == \"v-a\" and .variants[0].version == 2 and .variants[0].accuracy == 0.75 and .variants[0].flops == 2e9 and .variants[0].size_bytes == $BLOB1_SIZE and .variants[0].blob == \"$BLOB1_DIGEST\""
http GET /v1/families
check_jq "family list counts 1 variant" ".families[0].variants == 1"
http GET "/v1/families/$FAM/variants/v-a/versions"
check "GET versions: status" 200 "$STATUS"
check_jq "GET versions: 1 then 2" '[.versions[].version] == [1,2] and .versions[0].accuracy == 0.7'

http GET /v1/families/no-such-family
check_problem "GET unknown family" 404
http POST /v1/families/no-such-family/select -H 'Content-Type: application/json' \
    -d '{"device":{"memory_bytes":1000000000,"gflops":10}}'
check_problem "select on an unknown family" 404

http_admin DELETE "/v1/families/$FAM/variants/no-such-variant"
check_problem "DELETE unknown variant" 404
http DELETE "/v1/families/$FAM/variants/v-a"
check_problem "DELETE variant without a token" 401
http_admin DELETE "/v1/families/$FAM/variants/v-a"
check "DELETE variant" 204 "$STATUS"
check "DELETE variant: empty body" 0 "$(file_size "$BODY")"
http GET "/v1/families/$FAM"
check_jq "retired variant: family shows 0 variants" '.variants == []'
http GET /v1/families
check_jq "retired variant: list counts 0" '.families[0].variants == 0'
http HEAD "/v1/blobs/$BLOB1_DIGEST"
check "retired variant: its blob stays" 200 "$STATUS"

http DELETE "/v1/families/$FAM"
check_problem "DELETE family without a token" 401
http_admin DELETE "/v1/families/$FAM"
check "DELETE family" 204 "$STATUS"
http GET "/v1/families/$FAM"
check_problem "deleted family: GET" 404
http GET /v1/families
check_jq "deleted family: gone from the list" '.families == []'

# ---- routing ----------------------------------------------------------------

http GET /no/such/path
check_problem "unknown path" 404
http GET /v1/familiesx
check_problem "unknown path next to a known one" 404
http GET /v1/families/x/y/z/w/v
check_problem "path too deep" 404

http POST /healthz
check_problem "POST /healthz" 405
check_match "POST /healthz: Allow" '^GET' "$(hdr Allow)"
http PATCH /v1/families
check_problem "PATCH /v1/families" 405
check_match "PATCH /v1/families: Allow names GET" 'GET' "$(hdr Allow)"
http_admin DELETE "/v1/blobs/$BLOB1_DIGEST"
check_problem "DELETE a blob" 405
allow=$(hdr Allow)
check_match "DELETE a blob: Allow names GET, HEAD and PUT" 'GET' "$allow"
check_match "DELETE a blob: Allow names HEAD" 'HEAD' "$allow"
check_match "DELETE a blob: Allow names PUT" 'PUT' "$allow"
http GET /v1/families/x/select
check_problem "GET select" 405
check_match "GET select: Allow" 'POST' "$(hdr Allow)"

# ---- metrics ----------------------------------------------------------------

http GET /metrics
check "metrics: status" 200 "$STATUS"
check_match "metrics: text format" '^text/plain' "$(hdr Content-Type)"
check_cmd "metrics: modeld_http_requests_total with route and status labels" \
    grep -Eq '^modeld_http_requests_total\{.*route="[^"]+".*status="[0-9]{3}".*\} [0-9]' "$BODY"
check_cmd "metrics: TYPE line" grep -q '^# TYPE modeld_http_requests_total counter' "$BODY"
h0=$(metric modeld_http_requests_total 'route="/healthz"' 'status="200"')
n0=$(metric modeld_http_requests_total 'status="404"')
for _ in 1 2 3; do http GET /healthz; done
http GET /definitely/not/here
http GET /metrics
h1=$(metric modeld_http_requests_total 'route="/healthz"' 'status="200"')
n1=$(metric modeld_http_requests_total 'status="404"')
check_ge "metrics: healthz 200 counter rose by at least 3" 3 $((h1 - h0))
check_ge "metrics: 404 counter rose by at least 1" 1 $((n1 - n0))

# ---- hostile input ----------------------------------------------------------

http GET /v1/blobs/sha256:XYZ
check_problem "GET /v1/blobs/sha256:XYZ" 400
http GET "/v1/blobs/sha256:$(printf '%064d' 0 | tr 0 A)"
check_problem "GET blob with uppercase hex" 400
http GET /v1/blobs/../../etc/passwd
check_match "GET /v1/blobs/../../etc/passwd: 4xx" '^4[0-9][0-9]$' "$STATUS"
check_cmd "GET /v1/blobs/../../etc/passwd: no passwd file" bash -c "! grep -q 'root:' '$BODY'"
http GET /v1/blobs/..%2f..%2fetc%2fpasswd
check_match "GET /v1/blobs/..%2f..%2fetc%2fpasswd: 4xx" '^4[0-9][0-9]$' "$STATUS"
check_cmd "GET ..%2f..: no passwd file" bash -c "! grep -q 'root:' '$BODY'"
http GET /v1/families/a%00b
check_match "GET /v1/families/a%00b: 400 or 404" '^40[04]$' "$STATUS"
http GET "/v1/blobs/sha256:$BLOB1_HEX%00"
check_match "GET blob digest%00: not the blob" '^40[04]$' "$STATUS"
# Each path segment is percent-decoded after the split: %2F adds no
# segment (a name holding '/' is invalid), %69 is "i", and the encoded
# digest and name that clients generated from the spec send work.
http POST /v1/families/x%2Fselect --data-binary '{"device":{"memory_bytes":1,"gflops":1}}'
check_problem "POST /v1/families/x%2Fselect is no select" 405
http GET /v1/families/x%2Fselect
check_problem "GET /v1/families/x%2Fselect: a name with '/'" 400 family
http GET /v1/famil%69es
check "GET /v1/famil%69es: 200" 200 "$STATUS"
http GET "/v1/blobs/sha256%3A$BLOB1_HEX"
check "GET /v1/blobs/sha256%3A<hex>: 200" 200 "$STATUS"
check "GET /v1/blobs/sha256%3A<hex>: the bytes" "$BLOB1_DIGEST" "$(sha_of "$BODY")"
http HEAD "/v1/blobs/sha256%3a$BLOB1_HEX"
check "HEAD /v1/blobs/sha256%3a<hex>: 200" 200 "$STATUS"
http_admin PUT /v1/families/e2e%2Denc -H 'Content-Type: application/json' -d '{}'
check "PUT /v1/families/e2e%2Denc: 201" 201 "$STATUS"
check "PUT /v1/families/e2e%2Denc: named e2e-enc" e2e-enc "$(jbody .name)"
http GET /v1/families/e2e-enc
check "GET /v1/families/e2e-enc: 200" 200 "$STATUS"
http GET /v1/families/image%2Dclassification
check_problem "GET /v1/families/image%2Dclassification: unknown here" 404 family
http_admin DELETE /v1/families/e2e%2denc
check "DELETE /v1/families/e2e%2denc: 204" 204 "$STATUS"
http_admin DELETE /v1/families/Bad%20Name
check_problem "DELETE /v1/families/Bad%20Name: invalid name" 400 family
http GET "/v1/blobs/sha256%3A$BLOB1_HEX%00"
check_problem "GET blob sha256%3A<hex>%00: refused" 400 digest
http GET "/v1/blobs/sha256%3A$BLOB1_HEX%2"
check_problem "GET blob with a malformed escape: refused" 400 digest
http GET "/v1/families/$(head -c 8192 /dev/zero | tr '\0' a)"
check_match "8 KiB path: refused" '^4[0-9][0-9]$' "$STATUS"
check_match "8 KiB path: problem+json" '^application/problem\+json' "$(hdr Content-Type)"
http GET /v1/families/UPPER
check_problem "GET /v1/families/UPPER" 400 family

http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' --data-binary ''
check_problem "PUT family, empty body" 400
http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' -d '[]'
check_problem "PUT family, body []" 400
http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' -d 'null'
check_problem "PUT family, body null" 400
DEEP=$WORK/deep.json
{ head -c 10000 /dev/zero | tr '\0' '['; head -c 10000 /dev/zero | tr '\0' ']'; } >"$DEEP"
http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' --data-binary "@$DEEP"
check_problem "PUT family, 10000 levels of nesting" 400
{ printf '{"task":'; head -c 5000 /dev/zero | tr '\0' '['; head -c 5000 /dev/zero | tr '\0' ']'; printf '}'; } >"$DEEP"
http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' --data-binary "@$DEEP"
check_problem "PUT family, 5000 levels inside task" 400
http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' -d $'{"task":"a\x01b"}'
check_match "PUT family, control character in a string: 400" '^400$' "$STATUS"
http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' -d $'{"task":"\xff\xfe"}'
check_problem "PUT family, invalid UTF-8" 400
http_admin PUT /v1/families/hostile -H 'Content-Type: application/json' -d '{"task":"x","task":"y"}'
check_match "PUT family, duplicate key: 200/201 or 400, not 5xx" '^(20[01]|400)$' "$STATUS"
http_admin DELETE /v1/families/hostile
http POST /v1/families/hostile/select -H 'Content-Type: application/json' \
    -d "{\"device\":{\"memory_bytes\":1e400,\"gflops\":1}}"
check_match "select, memory_bytes 1e400: 400 or 404" '^40[04]$' "$STATUS"
http GET /healthz -H "X-Big: $(head -c 6000 /dev/zero | tr '\0' b)"
check "6 KB header: still served" 200 "$STATUS"

http GET /healthz
check "daemon answers after hostile input" 200 "$STATUS"
check_jq "daemon answers after hostile input: body" '.status == "ok"'

# ---- limits (a daemon with small limits) ------------------------------------
# Its token comes from MODELD_ADMIN_TOKEN (padded with whitespace, which is
# trimmed): the uploads under the limit below prove that it is accepted.

LIM_DATA=$WORK/data-limits
if MODELD_ADMIN_TOKEN=" $TOKEN
" daemon_start limits "$LIM_DATA" \
    --set max_upload_bytes=1048576 --set max_select_bytes=1024 \
    --set max_json_bytes=4096; then
    http PUT /v1/families/env-token -H 'Authorization: Bearer wrong-token-0123456789' -d '{}'
    check_problem "MODELD_ADMIN_TOKEN daemon: wrong token" 403
    http_admin PUT /v1/families/env-token -H 'Content-Type: application/json' -d '{"task":"t"}'
    check "MODELD_ADMIN_TOKEN daemon: the token from the environment" 201 "$STATUS"
    check "MODELD_ADMIN_TOKEN daemon: the token is wiped from its environment" 0 \
        "$(tr '\0' '\n' <"/proc/${DPID[limits]}/environ" | grep -c -F "$TOKEN")"
    BIG=$WORK/big2m.bin
    head -c 2097152 /dev/urandom >"$BIG"
    BIG_DIGEST=$(sha_of "$BIG")
    http_admin PUT "/v1/blobs/$BIG_DIGEST" -H 'Content-Type: application/octet-stream' -T "$BIG"
    check_problem "upload of 2 MiB over a 1 MiB limit (Content-Length)" 413
    STATUS=$(head -c 2097152 /dev/urandom | curl -sS --max-time "$CURL_MAX_TIME" \
        -o "$BODY" -D "$HDRS" -w '%{http_code}' -X PUT \
        -H "Authorization: Bearer $TOKEN" -H 'Transfer-Encoding: chunked' \
        -H 'Content-Type: application/octet-stream' -T - \
        "$BASE/v1/blobs/$BIG_DIGEST" 2>"$WORK/last.curl")
    spec_record PUT "/v1/blobs/$BIG_DIGEST"
    check_problem "upload of 2 MiB over a 1 MiB limit (chunked)" 413
    http HEAD "/v1/blobs/$BIG_DIGEST"
    check "over-limit upload: not stored" 404 "$STATUS"
    SMALL=$WORK/small.bin
    head -c 1000 /dev/urandom >"$SMALL"
    http_admin PUT "/v1/blobs/$(sha_of "$SMALL")" -T "$SMALL"
    check "upload under the limit still works" 201 "$STATUS"

    { printf '{"device":{"memory_bytes":1000,"gflops":1},"ue":"'
      head -c 6000 /dev/zero | tr '\0' u; printf '"}'; } >"$WORK/big-select.json"
    http POST /v1/families/any/select -H 'Content-Type: application/json' \
        --data-binary "@$WORK/big-select.json"
    check_problem "select body over max_select_bytes" 413
    http_admin PUT /v1/families/any -H 'Content-Type: application/json' \
        --data-binary "@$WORK/big-select.json"
    check_problem "admin JSON over max_json_bytes" 413

    http GET /healthz
    check "limits daemon: /healthz after the refusals" 200 "$STATUS"
    tmp_left=""
    for ((i = 0; i < 100; i++)); do
        tmp_left=$(find "$LIM_DATA/tmp" -type f 2>/dev/null | head -n 3)
        [ -z "$tmp_left" ] && break
        sleep 0.05
    done
    check "limits daemon: nothing left in DATA/tmp" "" "$tmp_left"
    check "limits daemon: no blob file for the refused upload" "" \
        "$(find "$LIM_DATA/blobs" -name "*${BIG_DIGEST#sha256:}*" 2>/dev/null)"
    daemon_stop limits
    rm -f "$BIG"
fi
use main

# ---- a 200 MiB upload and download in bounded memory ---------------------------
# On its own daemon, with the background worker on: it reads the blob in
# pieces for the compressed copy, so that too stays in bounded memory.

# sample_rss PID WATCHED_PID: prints the peak VmRSS (KiB) of PID while
# WATCHED_PID runs.
sample_rss() {
    local peak=0 rss
    while kill -0 "$2" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
        [ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.05
    done
    echo "$peak"
}

if [ "$QUICK" != 1 ] && daemon_start big "$WORK/data-big" \
    --admin-token-file "$TOKEN_FILE"; then
    HUGE=$WORK/huge.bin
    head -c $((200 * 1024 * 1024)) /dev/urandom >"$HUGE"
    HUGE_DIGEST=$(sha_of "$HUGE")
    pid=${DPID[big]}
    huge_started=$SECONDS
    curl -sS --max-time 120 -o "$WORK/huge.body" -w '%{http_code}' -X PUT \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
        -T "$HUGE" "$BASE/v1/blobs/$HUGE_DIGEST" >"$WORK/huge.status" 2>&1 &
    peak_rss=$(sample_rss "$pid" $!)
    wait $!
    echo "# 200 MiB upload: $((SECONDS - huge_started)) s, sampled VmRSS peak $peak_rss KiB"
    check "200 MiB upload: created" 201 "$(cat "$WORK/huge.status")"
    check_lt "200 MiB upload: sampled VmRSS under 64 MiB (KiB)" 65536 "$peak_rss"
    http HEAD "/v1/blobs/$HUGE_DIGEST"
    check "200 MiB upload: HEAD" 200 "$STATUS"
    check "200 MiB upload: Content-Length" $((200 * 1024 * 1024)) "$(hdr Content-Length)"

    huge_started=$SECONDS
    curl -sS --max-time 120 -o "$HUGE.back" -w '%{http_code}' \
        "$BASE/v1/blobs/$HUGE_DIGEST" >"$WORK/huge.status" 2>&1 &
    peak_rss=$(sample_rss "$pid" $!)
    wait $!
    echo "# 200 MiB download: $((SECONDS - huge_started)) s, sampled VmRSS peak $peak_rss KiB"
    check "200 MiB download: status" 200 "$(cat "$WORK/huge.status")"
    check "200 MiB download: the bytes" "$HUGE_DIGEST" "$(sha_of "$HUGE.back")"
    check_lt "200 MiB download: sampled VmRSS under 64 MiB (KiB)" 65536 "$peak_rss"
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    check_lt "200 MiB upload and download: VmHWM under 64 MiB (KiB)" 65536 "${hwm:-999999}"
    rm -f "$HUGE" "$HUGE.back"
    daemon_stop big
fi
use main
