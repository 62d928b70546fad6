# shellcheck shell=bash
# Sourced by tests/e2e/run.sh: the byte path. Blob downloads with their
# caching headers, ranges, conditional requests, resumption and zstd
# content coding against the "main" daemon; then the demo's v1 -> v2 delta
# of mobilenet-v1-1.0-224 through the select answer, stock zstd and
# `modeld patch`.

D1=$WORK/d1.bin
head -c 100000 /dev/urandom >"$D1"
D1_DIGEST=$(sha_of "$D1")
D1_SIZE=$(file_size "$D1")
D1_URL=/v1/blobs/$D1_DIGEST
http_admin PUT "$D1_URL" -H 'Content-Type: application/octet-stream' -T "$D1"
check "delivery: upload a blob" 201 "$STATUS"

# bytes_of FILE OFFSET COUNT: those bytes of FILE, as hex.
bytes_of() {
    dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | od -An -tx1 | tr -d ' \n'
}
body_hex() {
    od -An -tx1 "$BODY" | tr -d ' \n'
}

http GET "$D1_URL"
check "GET blob: status" 200 "$STATUS"
check "GET blob: ETag" "\"$D1_DIGEST\"" "$(hdr ETag)"
check "GET blob: Accept-Ranges" bytes "$(hdr Accept-Ranges)"
check "GET blob: Content-Length" "$D1_SIZE" "$(hdr Content-Length)"
check_match "GET blob: Cache-Control immutable" 'immutable' "$(hdr Cache-Control)"
LAST_MOD=$(hdr Last-Modified)
check_cmd "GET blob: Last-Modified is an HTTP date" date -d "$LAST_MOD"
check_match "GET blob: Last-Modified in GMT" ' GMT$' "$LAST_MOD"
check "GET blob: the bytes" "$D1_DIGEST" "$(sha_of "$BODY")"

http HEAD "$D1_URL"
check "HEAD blob: status" 200 "$STATUS"
check "HEAD blob: ETag" "\"$D1_DIGEST\"" "$(hdr ETag)"
check "HEAD blob: Content-Length" "$D1_SIZE" "$(hdr Content-Length)"
check "HEAD blob: Accept-Ranges" bytes "$(hdr Accept-Ranges)"
check "HEAD blob: Cache-Control as GET" "$(curl -sS --max-time "$CURL_MAX_TIME" -o /dev/null -D - "$BASE$D1_URL" | tr -d '\r' | sed -n 's/^[Cc]ache-[Cc]ontrol: //p')" "$(hdr Cache-Control)"

http GET "$D1_URL" -H 'Range: bytes=0-9'
check "Range 0-9: status" 206 "$STATUS"
check "Range 0-9: Content-Range" "bytes 0-9/$D1_SIZE" "$(hdr Content-Range)"
check "Range 0-9: Content-Length" 10 "$(hdr Content-Length)"
check "Range 0-9: the bytes" "$(bytes_of "$D1" 0 10)" "$(body_hex)"

http GET "$D1_URL" -H 'Range: bytes=-5'
check "Range -5: status" 206 "$STATUS"
check "Range -5: Content-Range" "bytes $((D1_SIZE - 5))-$((D1_SIZE - 1))/$D1_SIZE" "$(hdr Content-Range)"
check "Range -5: the bytes" "$(bytes_of "$D1" $((D1_SIZE - 5)) 5)" "$(body_hex)"

http GET "$D1_URL" -H 'Range: bytes=10-'
check "Range 10-: status" 206 "$STATUS"
check "Range 10-: Content-Range" "bytes 10-$((D1_SIZE - 1))/$D1_SIZE" "$(hdr Content-Range)"
check "Range 10-: the bytes" "$(tail -c +11 "$D1" | sha256sum | cut -d' ' -f1)" \
    "$(sha256sum <"$BODY" | cut -d' ' -f1)"

http GET "$D1_URL" -H "Range: bytes=$D1_SIZE-"
check "Range SIZE-: 416" 416 "$STATUS"
check "Range SIZE-: Content-Range" "bytes */$D1_SIZE" "$(hdr Content-Range)"
check_match "Range SIZE-: problem+json" '^application/problem\+json' "$(hdr Content-Type)"

http GET "$D1_URL" -H 'Range: bytes=0-1,5-6'
check "multi-range: 200" 200 "$STATUS"
check "multi-range: the whole blob" "$D1_DIGEST" "$(sha_of "$BODY")"

http GET "$D1_URL" -H 'Range: bytes=abc'
check "malformed Range: 200 whole" 200 "$STATUS"
check "malformed Range: the whole blob" "$D1_SIZE" "$(file_size "$BODY")"

http GET "$D1_URL" -H "If-None-Match: \"$D1_DIGEST\""
check "If-None-Match the ETag: 304" 304 "$STATUS"
check "If-None-Match: no body" 0 "$(file_size "$BODY")"
check "If-None-Match: ETag on the 304" "\"$D1_DIGEST\"" "$(hdr ETag)"
http GET "$D1_URL" -H "If-None-Match: \"sha256:$(printf '%064d' 0)\", \"$D1_DIGEST\""
check "If-None-Match list holding the ETag: 304" 304 "$STATUS"
http GET "$D1_URL" -H "If-None-Match: \"sha256:$(printf '%064d' 0)\""
check "If-None-Match another ETag: 200" 200 "$STATUS"

http GET "$D1_URL" -H 'Range: bytes=0-9' -H "If-Range: \"$D1_DIGEST\""
check "If-Range the ETag + Range: 206" 206 "$STATUS"
check "If-Range the ETag + Range: the bytes" "$(bytes_of "$D1" 0 10)" "$(body_hex)"
http GET "$D1_URL" -H 'Range: bytes=0-9' -H "If-Range: \"sha256:$(printf '%064d' 0)\""
check "If-Range another ETag + Range: 200" 200 "$STATUS"
check "If-Range another ETag: the whole blob" "$D1_DIGEST" "$(sha_of "$BODY")"

# Resuming: the first 1001 bytes, then curl -C - fetches the rest.
PART=$WORK/d1.part
curl -sS --max-time "$CURL_MAX_TIME" -r 0-1000 -o "$PART" "$BASE$D1_URL"
check "resume: the first part is 1001 bytes" 1001 "$(file_size "$PART")"
curl -sS --max-time "$CURL_MAX_TIME" -C - -o "$PART" "$BASE$D1_URL"
check "resume: curl -C - completes the blob" "$D1_DIGEST" "$(sha_of "$PART")"

http GET "/v1/blobs/sha256:$(printf '%064d' 0)"
check_problem "GET unknown blob" 404
http HEAD "/v1/blobs/sha256:$(printf '%064d' 0)"
check "HEAD unknown blob" 404 "$STATUS"

# Content-Encoding: zstd. A compressible blob gets a compressed copy in the
# background: poll, bounded, until it is served.
TXT=$WORK/text.bin
seq 1 60000 >"$TXT"
TXT_DIGEST=$(sha_of "$TXT")
http_admin PUT "/v1/blobs/$TXT_DIGEST" -H 'Content-Type: application/octet-stream' -T "$TXT"
check "zstd: upload a compressible blob" 201 "$STATUS"
for ((i = 0; i < 200; i++)); do
    http GET "/v1/blobs/$TXT_DIGEST" -H 'Accept-Encoding: zstd'
    [ "$(hdr Content-Encoding)" = zstd ] && break
    sleep 0.05
done
check "zstd: Content-Encoding within 10 s" zstd "$(hdr Content-Encoding)"
check "zstd: status" 200 "$STATUS"
check_match "zstd: Vary" 'Accept-Encoding' "$(hdr Vary)"
check_cmd "zstd: smaller than the blob" test "$(file_size "$BODY")" -lt "$(file_size "$TXT")"
check "zstd: decodes to the blob" "$TXT_DIGEST" \
    "sha256:$(zstd -q -d -c <"$BODY" 2>/dev/null | sha256sum | cut -d' ' -f1)"
check_match "zstd: ETag differs from the identity one" '^(W/)?".+"$' "$(hdr ETag)"
check_cmd "zstd: ETag is not the identity ETag" test "$(hdr ETag)" != "\"$TXT_DIGEST\""
http GET "/v1/blobs/$TXT_DIGEST" -H 'Accept-Encoding: zstd' -H 'Range: bytes=0-9'
check "zstd + Range: 206 identity" 206 "$STATUS"
check "zstd + Range: no Content-Encoding" "" "$(hdr Content-Encoding)"
check "zstd + Range: the bytes" "$(bytes_of "$TXT" 0 10)" "$(body_hex)"
http GET "/v1/blobs/$TXT_DIGEST"
check "no Accept-Encoding: identity" "" "$(hdr Content-Encoding)"
check "no Accept-Encoding: the bytes" "$TXT_DIGEST" "$(sha_of "$BODY")"
http GET "/v1/blobs/$TXT_DIGEST" -H 'Accept-Encoding: gzip, zstd;q=0'
check "zstd;q=0: identity" "" "$(hdr Content-Encoding)"

# Random bytes do not compress: identity even when zstd is accepted (or, if
# zstd is used, it decodes to the blob).
http GET "$D1_URL" -H 'Accept-Encoding: zstd'
if [ "$(hdr Content-Encoding)" = zstd ]; then
    got="sha256:$(zstd -q -d -c <"$BODY" 2>/dev/null | sha256sum | cut -d' ' -f1)"
else
    got=$(sha_of "$BODY")
fi
check "incompressible blob with Accept-Encoding: zstd: the bytes" "$D1_DIGEST" "$got"

# ---- the demo's delta ---------------------------------------------------------

if demo_data && daemon_start demo2 "$DEMO_DATA" --admin-token-file "$WORK/demo.token"; then
    http GET /v1/families/image-classification/variants/mobilenet-v1-1.0-224/versions
    check "delta: versions of mobilenet-v1-1.0-224" 200 "$STATUS"
    MOB_V1=$(jbody '.versions[] | select(.version == 1) | .digest')
    MOB_V2=$(jbody '.versions[] | select(.version == 2) | .digest')
    if [ -z "$MOB_V1" ] || [ -z "$MOB_V2" ]; then
        fail "delta: version 1 and 2 digests from /versions (body $(head -c 200 "$BODY"))"
    else
        select_body="{\"device\":{\"memory_bytes\":15000000,\"gflops\":100},\"current\":\"$MOB_V1\"}"
        http POST /v1/families/image-classification/select \
            -H 'Content-Type: application/json' --data-binary "$select_body"
        check "delta: select holding mobilenet v1: status" 200 "$STATUS"
        check_jq "delta: action delta to mobilenet v2" \
            ".action == \"delta\" and .variant == \"mobilenet-v1-1.0-224\" and .version == 2 and .model.digest == \"$MOB_V2\""
        check_jq "delta: from v1, url /v1/deltas/FROM/TO" \
            ".delta.from == \"$MOB_V1\" and .delta.url == \"/v1/deltas/$MOB_V1/$MOB_V2\""
        check_jq "delta: size under half the model's" \
            '.delta.size_bytes > 0 and .delta.size_bytes * 2 < .model.size_bytes'
        DELTA_URL=$(jbody .delta.url)
        DELTA_SIZE=$(jbody .delta.size_bytes)
        MODEL_SIZE=$(jbody .model.size_bytes)
        echo "# delta: $DELTA_SIZE bytes for a $MODEL_SIZE-byte model"

        DELTA=$WORK/v1-v2.delta
        V1=$WORK/mob-v1.bin
        http GET "$DELTA_URL"
        check "delta: GET" 200 "$STATUS"
        cp "$BODY" "$DELTA"
        check "delta: size_bytes" "$DELTA_SIZE" "$(file_size "$DELTA")"
        check_match "delta: ETag" '^"sha256:[0-9a-f]{64}' "$(hdr ETag)"
        check_match "delta: Cache-Control immutable" 'immutable' "$(hdr Cache-Control)"
        check "delta: Accept-Ranges" bytes "$(hdr Accept-Ranges)"
        check_match "delta: starts with a zstd skippable frame" '^5[0-9a-f]2a4d18$' \
            "$(od -An -tx1 -N4 "$DELTA" | tr -d ' \n')"
        http HEAD "$DELTA_URL"
        check "delta: HEAD" 200 "$STATUS"
        check "delta: HEAD Content-Length" "$DELTA_SIZE" "$(hdr Content-Length)"
        http GET "$DELTA_URL" -H 'Range: bytes=0-9'
        check "delta: Range 0-9" 206 "$STATUS"
        check "delta: Range 0-9 bytes" "$(bytes_of "$DELTA" 0 10)" "$(body_hex)"

        http GET "/v1/blobs/$MOB_V1"
        check "delta: GET the v1 blob" 200 "$STATUS"
        cp "$BODY" "$V1"
        check "delta: v1 bytes" "$MOB_V1" "$(sha_of "$V1")"

        OUT=$WORK/mob-v2.zstd
        zstd -q -d --long=31 --patch-from="$V1" "$DELTA" -o "$OUT" 2>"$WORK/zstd.err"
        check "delta: stock zstd --patch-from exit status" 0 "$?"
        check "delta: stock zstd rebuilds v2" "$MOB_V2" "$(sha_of "$OUT" 2>/dev/null)"

        OUT2=$WORK/mob-v2.patch
        "$MODELD" patch "$V1" "$DELTA" "$OUT2" >"$WORK/patch.out" 2>&1
        check "delta: modeld patch exit status" 0 "$?"
        check "delta: modeld patch rebuilds v2" "$MOB_V2" "$(sha_of "$OUT2" 2>/dev/null)"

        # A corrupted delta: one byte in the middle flipped.
        BAD=$WORK/bad.delta
        cp "$DELTA" "$BAD"
        mid=$(($(file_size "$BAD") / 2))
        byte=$(od -An -tu1 -j "$mid" -N1 "$BAD" | tr -d ' ')
        # shellcheck disable=SC2059
        printf "\\$(printf '%03o' $((byte ^ 0xff)))" |
            dd of="$BAD" bs=1 seek="$mid" conv=notrunc 2>/dev/null
        check_cmd "corrupted delta: differs from the delta" bash -c "! cmp -s '$BAD' '$DELTA'"
        OUT3=$WORK/mob-v2.bad
        printf 'previous content\n' >"$OUT3"
        "$MODELD" patch "$V1" "$BAD" "$OUT3" >"$WORK/patch-bad.out" 2>&1
        rc=$?
        check_cmd "corrupted delta: modeld patch exits non-zero (got $rc)" test "$rc" -ne 0
        check "corrupted delta: OUT untouched" "previous content" "$(cat "$OUT3")"
        # The right delta on the wrong old file.
        "$MODELD" patch "$D1" "$DELTA" "$OUT3" >"$WORK/patch-wrong.out" 2>&1
        rc=$?
        check_cmd "delta on the wrong OLD: modeld patch exits non-zero (got $rc)" test "$rc" -ne 0
        check "delta on the wrong OLD: OUT untouched" "previous content" "$(cat "$OUT3")"
        check "patch leaves no temp file next to OUT" "" \
            "$(find "$WORK" -maxdepth 1 -name '*mob-v2.bad*' ! -name mob-v2.bad | head -n 3)"

        http GET "/v1/deltas/$MOB_V2/$MOB_V1"
        check_problem "unknown delta (v2 -> v1)" 404
        http HEAD "/v1/deltas/$MOB_V2/$MOB_V1"
        check "unknown delta: HEAD" 404 "$STATUS"
        http GET "/v1/deltas/$MOB_V1/sha256:XYZ"
        check_problem "delta with a malformed digest" 400
    fi
    daemon_stop demo2
fi
use main

# ---- `modeld delta`: OUT appears whole or not at all -------------------
# A write that fails part way (a file size limit stands in for a full
# disk) leaves OUT as it was and no temporary beside it.
DA=$WORK/cli-a.bin
DB=$WORK/cli-b.bin
DOUT=$WORK/cli.delta
head -c 65536 /dev/urandom >"$DA"
head -c 65536 /dev/urandom >"$DB"
printf 'previous content\n' >"$DOUT"
(
    ulimit -f 16
    trap '' XFSZ
    exec "$MODELD" delta --format zstd-patch --level 1 "$DA" "$DB" "$DOUT"
) >"$WORK/cli-delta-full.out" 2>&1
rc=$?
check_cmd "modeld delta, write fails: exits non-zero (got $rc)" test "$rc" -ne 0
check "modeld delta, write fails: OUT untouched" "previous content" "$(cat "$DOUT")"
check "modeld delta, write fails: no temporary left" "" \
    "$(find "$WORK" -maxdepth 1 -name 'cli.delta?*' | head -n 3)"
"$MODELD" delta --format zstd-patch --level 1x "$DA" "$DB" "$DOUT" >"$WORK/cli-delta-level.out" 2>&1
check "modeld delta --level 1x: usage error" 2 "$?"
check "modeld delta --level 1x: OUT untouched" "previous content" "$(cat "$DOUT")"
"$MODELD" delta --format zstd-patch --level 1 "$DA" "$DB" "$DOUT" >"$WORK/cli-delta.out" 2>&1
check "modeld delta: exit status" 0 "$?"
"$MODELD" patch "$DA" "$DOUT" "$WORK/cli-b.rebuilt" >"$WORK/cli-patch.out" 2>&1
check "modeld delta: modeld patch rebuilds NEW" "$(sha_of "$DB")" "$(sha_of "$WORK/cli-b.rebuilt" 2>/dev/null)"
