# shellcheck shell=bash
# Sourced by tests/e2e/run.sh: model-aware updates. Seven fine-tuned
# versions of a safetensors model published as one variant: a UE two
# versions behind gets a modeld-tensor/1 delta when its report accepts it
# (and exactly today's answer when it does not), decoded by `modeld patch`;
# the modeld-bg/1 form of the model with `modeld decode`; a UE six
# versions behind (past delta_versions = 4) gets the full model while the
# delta is made on demand, then the delta; accept's shape is checked.

TDIR=$WORK/tensor
mkdir -p "$TDIR"
python3 "$E2E_DIR/tensorgen.py" "$TDIR" 7
check "tensor: tensorgen.py wrote 7 versions" 7 "$(ls "$TDIR" | wc -l | tr -d ' ')"
declare -A TV=()
for v in 1 2 3 4 5 6 7; do
    TV[$v]=$(sha_of "$TDIR/v$v.safetensors")
    http_admin PUT "/v1/blobs/${TV[$v]}" -T "$TDIR/v$v.safetensors"
done
check "tensor: uploads" 201 "$STATUS"
http_admin PUT /v1/families/tensor-e2e -H 'Content-Type: application/json' \
    --data-binary '{"task":"e2e","description":"tensor deltas"}'
check "tensor: family" 201 "$STATUS"

# tpublish V: publishes version V of variant m.
tpublish() {
    http_admin PUT /v1/families/tensor-e2e/variants/m \
        -H 'Content-Type: application/json' \
        --data-binary "{\"blob\":\"${TV[$1]}\",\"flops\":1000000,\"accuracy\":0.7,\"format\":\"safetensors\"}"
}
# tselect CURRENT [ACCEPT_JSON]: a select holding version CURRENT.
tselect() {
    local accept=""
    [ $# -ge 2 ] && accept=",\"accept\":$2"
    http POST /v1/families/tensor-e2e/select -H 'Content-Type: application/json' \
        --data-binary "{\"device\":{\"memory_bytes\":100000000,\"gflops\":10},\"current\":\"${TV[$1]}\"$accept}"
}
ACCEPT_ALL='{"delta_formats":["zstd-patch","modeld-tensor/1"],"encodings":["zstd","modeld-bg/1"]}'
# twait V ACCEPT: polls (bounded: 60 s) until a UE on V gets a delta.
twait() {
    local i
    for ((i = 0; i < 600; i++)); do
        tselect "$1" "$2"
        [ "$(jbody .action)" = delta ] && return 0
        sleep 0.1
    done
    return 1
}

for v in 1 2 3; do tpublish "$v"; done
check "tensor: publish v3" 201 "$STATUS"
check_cmd "tensor: a UE on v1 (two behind) gets a delta within 60 s" twait 1 "$ACCEPT_ALL"
check_jq "tensor: v1 -> v3 is modeld-tensor/1" \
    ".delta.format == \"modeld-tensor/1\" and .delta.from == \"${TV[1]}\" and .model.digest == \"${TV[3]}\""
check_jq "tensor: its url names the format" \
    ".delta.url == \"/v1/deltas/${TV[1]}/${TV[3]}?format=modeld-tensor/1\""
check_jq "tensor: the delta under 0.7x the model" \
    '.delta.size_bytes * 10 < .model.size_bytes * 7'
TURL=$(jbody .delta.url)
TSIZE=$(jbody .delta.size_bytes)

# Without accept: what stock tools decode, as before (the zstd-patch
# delta of an all-values fine-tune is no smaller than the model: full).
tselect 1
check "tensor: no accept: status" 200 "$STATUS"
check_jq "tensor: no accept: no tensor delta, no encoding" \
    '(.delta == null or .delta.format == "zstd-patch") and .model.encoding == null and (.model.url | test("^/v1/blobs/sha256:[0-9a-f]{64}$"))'
tselect 1 '{"delta_formats":["zstd-patch"]}'
check_jq "tensor: accept zstd-patch only: no tensor delta" \
    '.delta == null or .delta.format == "zstd-patch"'

http GET "$TURL"
check "tensor: GET the delta" 200 "$STATUS"
check "tensor: its size" "$TSIZE" "$(file_size "$BODY")"
check_match "tensor: ETag names the format" 'modeld-tensor' "$(hdr ETag)"
cp "$BODY" "$TDIR/d13"
"$MODELD" patch "$TDIR/v1.safetensors" "$TDIR/d13" "$TDIR/out3" >/dev/null 2>&1
check "tensor: modeld patch exit status" 0 "$?"
check "tensor: modeld patch rebuilds v3" "${TV[3]}" "$(sha_of "$TDIR/out3" 2>/dev/null)"
"$MODELD" patch "$TDIR/v2.safetensors" "$TDIR/d13" "$TDIR/out3b" >/dev/null 2>&1
check "tensor: on the wrong base: exit 1" 1 "$?"
check_cmd "tensor: on the wrong base: no OUT" test ! -e "$TDIR/out3b"
check_match "tensor: on the wrong base: says so" "is not the delta's base" \
    "$("$MODELD" patch "$TDIR/v2.safetensors" "$TDIR/d13" "$TDIR/out3b" 2>&1)"
# build/modeld-apply: the same code without the server's libraries (built
# beside build/modeld by make all; not by the ASan build).
MODELD_APPLY=$(dirname "$MODELD")/modeld-apply
if [ -x "$MODELD_APPLY" ]; then
    "$MODELD_APPLY" "$TDIR/v1.safetensors" "$TDIR/d13" "$TDIR/out3c" >/dev/null 2>&1
    check "tensor: modeld-apply exit status" 0 "$?"
    check "tensor: modeld-apply rebuilds v3" "${TV[3]}" "$(sha_of "$TDIR/out3c" 2>/dev/null)"
    "$MODELD_APPLY" "$TDIR/v2.safetensors" "$TDIR/d13" "$TDIR/out3d" >/dev/null 2>&1
    check "tensor: modeld-apply on the wrong base: exit 1" 1 "$?"
    check_cmd "tensor: modeld-apply on the wrong base: no OUT" test ! -e "$TDIR/out3d"
    check_cmd "tensor: modeld-apply links none of the server's libraries" \
        sh -c "! ldd '$MODELD_APPLY' | grep -E 'libmicrohttpd|libgnutls|libpq|libcurl|libsqlite3|libcrypto'"
fi
http GET "/v1/deltas/${TV[1]}/${TV[3]}?format=modeld-tensor%2F1"
check "tensor: ?format percent-encoded" 200 "$STATUS"
http GET "/v1/deltas/${TV[1]}/${TV[3]}?format=bsdiff"
check_problem "tensor: unknown ?format" 400
check_jq "tensor: the problem names format" '.field == "format"'

# The byte-grouped form of the model.
for ((i = 0; i < 600; i++)); do
    tselect 3 "$ACCEPT_ALL"
    [ "$(jbody .model.encoding)" = modeld-bg/1 ] && break
    sleep 0.1
done
check "tensor: model.encoding modeld-bg/1 (within 60 s)" modeld-bg/1 "$(jbody .model.encoding)"
check_jq "tensor: bg url and a size under the model's" \
    ".model.url == \"/v1/blobs/${TV[3]}?encoding=modeld-bg/1\" and .model.size_bytes < $(file_size "$TDIR/v3.safetensors")"
BGSIZE=$(jbody .model.size_bytes)
http GET "/v1/blobs/${TV[3]}?encoding=modeld-bg/1"
check "tensor: GET the bg form" 200 "$STATUS"
check "tensor: bg size" "$BGSIZE" "$(file_size "$BODY")"
check "tensor: bg is no content coding" "" "$(hdr Content-Encoding)"
cp "$BODY" "$TDIR/v3.bg"
"$MODELD" decode "$TDIR/v3.bg" "$TDIR/v3.dec" >/dev/null 2>&1
check "tensor: modeld decode exit status" 0 "$?"
check "tensor: modeld decode rebuilds v3" "${TV[3]}" "$(sha_of "$TDIR/v3.dec" 2>/dev/null)"
http GET "/v1/blobs/${TV[3]}" -H 'Accept-Encoding: zstd'
if [ "$(hdr Content-Encoding)" = zstd ]; then
    cp "$BODY" "$TDIR/v3.zst"
    "$MODELD" decode "$TDIR/v3.zst" "$TDIR/v3.z" >/dev/null 2>&1
    check "tensor: modeld decode of zstd without --digest: exit 1" 1 "$?"
    "$MODELD" decode --digest "${TV[3]}" "$TDIR/v3.zst" "$TDIR/v3.z" >/dev/null 2>&1
    check "tensor: modeld decode --digest of zstd" 0 "$?"
    "$MODELD" decode --digest "${TV[2]}" "$TDIR/v3.zst" "$TDIR/v3.y" >/dev/null 2>&1
    check "tensor: modeld decode with the wrong --digest: exit 1" 1 "$?"
fi
# A bg file names its digest: --digest must agree with it (the decoder
# verified the bytes against the file's own).
"$MODELD" decode --digest "${TV[3]}" "$TDIR/v3.bg" "$TDIR/v3.dec2" >/dev/null 2>&1
check "tensor: modeld decode --digest of bg" 0 "$?"
"$MODELD" decode --digest "${TV[2]}" "$TDIR/v3.bg" "$TDIR/v3.dec3" >/dev/null 2>&1
check "tensor: modeld decode of bg with the wrong --digest: exit 1" 1 "$?"
check_cmd "tensor: ... and no OUT" test ! -e "$TDIR/v3.dec3"
if [ -x "$MODELD_APPLY" ]; then
    "$MODELD_APPLY" decode "$TDIR/v3.bg" "$TDIR/v3.dec4" >/dev/null 2>&1
    check "tensor: modeld-apply decode rebuilds v3" "${TV[3]}" "$(sha_of "$TDIR/v3.dec4" 2>/dev/null)"
fi
tselect 3
check_jq "tensor: no accept: no encoding" '.model.encoding == null'

# Past delta_versions (4): v1 -> v7 is made on demand.
for v in 4 5 6 7; do tpublish "$v"; done
check "tensor: publish v7" 201 "$STATUS"
check_cmd "tensor: a UE on v3 gets a delta to v7 within 60 s" twait 3 "$ACCEPT_ALL"
tselect 1 "$ACCEPT_ALL"
check_jq "tensor: a UE on v1 (six behind): the full model meanwhile" \
    ".action == \"download\" and .model.digest == \"${TV[7]}\""
check_jq "tensor: ... and the reason says a delta is being made" \
    '[.reasons[]? | select(test("being made"))] | length == 1'
check_cmd "tensor: then a delta from v1 within 60 s" twait 1 "$ACCEPT_ALL"
http GET /metrics
check_ge "tensor: modeld_deltas_on_demand_total" 1 "$(metric modeld_deltas_on_demand_total)"
check_ge "tensor: modeld_tensor_deltas" 2 "$(metric modeld_tensor_deltas)"
check_ge "tensor: modeld_delta_storage_bytes" 1 "$(metric modeld_delta_storage_bytes)"

# accept's shape.
tselect 1 '{"delta_formats":"modeld-tensor/1"}'
check_problem "tensor: accept.delta_formats not an array" 400
check_jq "tensor: the problem names it" '.field == "accept.delta_formats"'
tselect 1 '{"encodings":[""]}'
check_problem "tensor: an empty encoding name" 400
tselect 1 '[1]'
check_problem "tensor: accept not an object" 400
tselect 1 '{"delta_formats":["something-new"],"signed":true}'
check "tensor: unknown names and members are ignored" 200 "$STATUS"
check_jq "tensor: ... and a UE that takes no known format gets the model" \
    '.action == "download"'
