# shellcheck shell=bash disable=SC2153
# Sourced by tests/e2e/run.sh: signed decisions. `modeld keygen` makes the
# key; GET /v1/keys publishes it as a JWK; a select that sends a nonce gets
# Content-Digest, Signature-Input and Signature, and the test verifies the
# signature with `openssl pkeyutl -verify -rawin` over a signature base it
# builds itself (README "Signed decisions") with the key taken from the
# JWK set. A tampered body or path does not verify; generations grow
# across restarts; SIGHUP rotates the key (the old one stays published as
# a verify key) and a broken key file on SIGHUP keeps the current one.

SIG=$WORK/sign
mkdir -p "$SIG"
SEL=/v1/families/image-classification/select

# b64url_to_pem X OUT: an Ed25519 public key PEM from a JWK's x.
b64url_to_pem() {
    local x=$1 pad
    pad=$(( (4 - ${#x} % 4) % 4 ))
    x=$(printf '%s%s' "$x" "$(head -c "$pad" /dev/zero | tr '\0' '=')" | tr '_-' '/+')
    {
        printf '\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00'
        printf '%s' "$x" | openssl base64 -d -A
    } >"$2.der"
    openssl pkey -pubin -inform DER -in "$2.der" -out "$2" 2>/dev/null
}

# sig_base METHOD PATH STATUS: the RFC 9421 signature base of the last
# answer, rebuilt from its headers, on stdout (no trailing newline).
sig_base() {
    local params
    params=$(hdr Signature-Input)
    params=${params#modeld=}
    printf '"@status": %s\n"@method";req: %s\n"@path";req: %s\n"content-digest": %s\n"content-type": %s\n"@signature-params": %s' \
        "$3" "$1" "$2" "$(hdr Content-Digest)" "$(hdr Content-Type)" "$params"
}

# verify_last METHOD PATH PUBPEM [BODYFILE]: 0 when the last answer's
# signature verifies and its Content-Digest is the body's.
verify_last() {
    local body=${4:-$BODY} want
    sig_base "$1" "$2" "$STATUS" >"$SIG/base"
    want="sha-256=:$(openssl dgst -sha256 -binary "$body" | openssl base64 -A):"
    [ "$want" = "$(hdr Content-Digest)" ] || return 1
    hdr Signature | sed -e 's/^modeld=://' -e 's/:$//' | openssl base64 -d -A >"$SIG/sig"
    openssl pkeyutl -verify -pubin -inkey "$3" -rawin -in "$SIG/base" \
        -sigfile "$SIG/sig" >/dev/null 2>&1
}

kid1=$("$MODELD" keygen --out "$SIG/k1.pem" 2>"$SIG/keygen.err")
check "sign: keygen exits 0" 0 "$?"
check_match "sign: keygen prints a kid" '^[A-Za-z0-9_-]{43}$' "$kid1"
check "sign: key file mode 0600" 600 "$(stat -c %a "$SIG/k1.pem")"
check_cmd "sign: the key is a PEM Ed25519 private key" \
    sh -c "openssl pkey -in '$SIG/k1.pem' -noout -text | grep -q ED25519"
"$MODELD" keygen --out "$SIG/k1.pem" >/dev/null 2>&1
check "sign: keygen refuses to overwrite a key" 1 "$?"
"$MODELD" keygen --out "$SIG/k0.pem" >/dev/null 2>&1
cp "$SIG/k0.pem" "$SIG/old.pem"

err=$(timeout 20 "$MODELD" serve --config "$CONFIG" --listen 127.0.0.1:0 \
    --data "$SIG/bad" --set sign_decisions=always 2>&1 >/dev/null)
check "sign: always without a key does not start" 1 "$?"
check_match "sign: ... and says why" 'signing_key' "$err"

if demo_data && cp -r "$DEMO_DATA" "$SIG/data" &&
    daemon_start sign "$SIG/data" --set "signing_key=$SIG/k1.pem" \
        --set "verify_keys=$SIG/old.pem" --set decision_ttl_s=120; then
    http GET /v1/keys
    check "sign: keys 200" 200 "$STATUS"
    check_jq "sign: keys is a JWK set, signing key first" \
        "(.keys|length)==2 and .keys[0].kid==\"$kid1\" and (.keys|all(.kty==\"OKP\" and .crv==\"Ed25519\" and .alg==\"EdDSA\" and .use==\"sig\" and (.x|test(\"^[A-Za-z0-9_-]{43}$\"))))"
    check_match "sign: keys are cacheable" 'max-age=[1-9]' "$(hdr Cache-Control)"
    etag=$(hdr ETag)
    b64url_to_pem "$(jbody '.keys[0].x')" "$SIG/pub1.pem"
    http GET /v1/keys -H "If-None-Match: $etag"
    check "sign: keys revalidate with If-None-Match" 304 "$STATUS"

    # Unsigned unless asked.
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":60000000,"gflops":100}}'
    check "sign: unsigned select 200" 200 "$STATUS"
    check "sign: no Signature without a nonce" "" "$(hdr Signature)"
    check_jq "sign: no signed members in an unsigned answer" 'has("issued_at")|not'

    nonce=n0nce-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    http POST "$SEL" -H "$JSON_CT" --data-binary "{\"device\":{\"memory_bytes\":60000000,\"gflops\":100},\"nonce\":\"$nonce\"}"
    check "sign: signed select 200" 200 "$STATUS"
    check_match "sign: Signature-Input names label, components, alg, keyid, created, expires" \
        "^modeld=\(\"@status\" \"@method\";req \"@path\";req \"content-digest\" \"content-type\"\);created=[0-9]+;expires=[0-9]+;keyid=\"$kid1\";alg=\"ed25519\"$" \
        "$(hdr Signature-Input)"
    check_match "sign: Signature is a byte sequence" '^modeld=:[A-Za-z0-9+/]{86}==:$' "$(hdr Signature)"
    check_jq "sign: body echoes the nonce, has issued_at, expires_at, generation" \
        ".nonce==\"$nonce\" and (.issued_at|test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$\")) and (.expires_at|fromdateiso8601) - (.issued_at|fromdateiso8601) == 120 and (.generation|type==\"number\" and .>0)"
    check_cmd "sign: openssl verifies the signature with the published key" \
        verify_last POST "$SEL" "$SIG/pub1.pem"
    gen1=$(jbody .generation)
    cp "$BODY" "$SIG/body.orig"
    sed 's/"action":"[a-z]*"/"action":"keep"/' "$SIG/body.orig" >"$SIG/body.tampered"
    ! verify_last POST "$SEL" "$SIG/pub1.pem" "$SIG/body.tampered"
    check "sign: a tampered body does not verify" 0 "$?"
    ! verify_last POST /v1/families/object-detection/select "$SIG/pub1.pem"
    check "sign: the answer does not verify for another path" 0 "$?"
    ! verify_last POST "$SEL" "$SIG/k0.pem"
    check "sign: ... nor with another key" 0 "$?"

    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":60000000,"gflops":100},"accept":{"signed":true}}'
    check "sign: accept.signed gets a signature too" "$kid1" \
        "$(hdr Signature-Input | sed -n 's/.*keyid="\([^"]*\)".*/\1/p')"
    check_jq "sign: no nonce member without a nonce" 'has("nonce")|not'
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":60000000,"gflops":100},"nonce":"short"}'
    check_problem "sign: a short nonce" 400 nonce
    http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":60000000,"gflops":100},"nonce":"has a space in it!!"}'
    check_problem "sign: a nonce with other characters" 400 nonce

    # Rotation: the old key moves to verify_keys, a new one signs.
    cp "$SIG/k1.pem" "$SIG/old.pem"
    kid2=$("$MODELD" keygen --out "$SIG/k2.pem")
    mv "$SIG/k2.pem" "$SIG/k1.pem"
    kill -HUP "${DPID[sign]}"
    for ((i = 0; i < 200; i++)); do
        http GET /v1/keys
        [ "$(jbody '.keys[0].kid')" = "$kid2" ] && break
        sleep 0.05
    done
    check_jq "sign: SIGHUP publishes the new key first and keeps the old one" \
        "[.keys[].kid]==[\"$kid2\",\"$kid1\"]"
    b64url_to_pem "$(jbody '.keys[0].x')" "$SIG/pub2.pem"
    http POST "$SEL" -H "$JSON_CT" --data-binary "{\"device\":{\"memory_bytes\":60000000,\"gflops\":100},\"nonce\":\"$nonce\"}"
    check_cmd "sign: answers after SIGHUP verify with the new key" \
        verify_last POST "$SEL" "$SIG/pub2.pem"
    echo garbage >"$SIG/k1.pem"
    kill -HUP "${DPID[sign]}"
    for ((i = 0; i < 200; i++)); do
        grep -q 'keeping the current ones' "$WORK/sign.err" && break
        sleep 0.05
    done
    check_match "sign: a broken key on SIGHUP is refused" 'keeping the current ones' "$(cat "$WORK/sign.err")"
    http POST "$SEL" -H "$JSON_CT" --data-binary "{\"device\":{\"memory_bytes\":60000000,\"gflops\":100},\"nonce\":\"$nonce\"}"
    check_cmd "sign: ... and the current key keeps signing" \
        verify_last POST "$SEL" "$SIG/pub2.pem"
    "$MODELD" keygen --out "$SIG/k3.pem" >/dev/null && mv "$SIG/k3.pem" "$SIG/k1.pem"
    daemon_stop sign

    # A restart never lowers the generation. (A new name: daemon_start
    # reads NAME.out, which the old daemon's line may still fill.)
    if daemon_start sign2 "$SIG/data" --set "signing_key=$SIG/k1.pem" \
        --set sign_decisions=always; then
        http POST "$SEL" -H "$JSON_CT" --data-binary '{"device":{"memory_bytes":60000000,"gflops":100}}'
        check_match "sign: always signs without being asked" '^modeld=' "$(hdr Signature)"
        check_jq "sign: the generation after a restart is higher" ".generation > $gen1"
        daemon_stop sign2
    fi
fi
use main
