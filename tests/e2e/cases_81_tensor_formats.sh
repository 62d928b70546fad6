# shellcheck shell=bash
# Sourced by tests/e2e/run.sh: tensor deltas through the daemon for the
# formats cases_80 (safetensors) does not publish: ONNX, TFLite and TF.js
# (its model.json uploaded as a blob and named in weights_manifest). For
# each, a base model and a fine-tune of every value (tests/bench/gentensor.c,
# 64 KiB) are published as two versions; a UE on the base that accepts
# modeld-tensor/1 gets one, smaller than the model, and `modeld patch`
# rebuilds the new version from it byte for byte.

use main
GACCEPT='{"delta_formats":["zstd-patch","modeld-tensor/1"]}'
GDIR=$WORK/tensor-formats
mkdir -p "$GDIR"
if ! "${CC:-cc}" -O2 -I"$ROOT" -o "$GDIR/gentensor" \
    "$ROOT/tests/bench/gentensor.c" -lm 2>"$GDIR/cc.err"; then
    fail "tensor formats: gentensor builds: $(head -n 3 "$GDIR/cc.err")"
fi
for fmt in onnx tflite tfjs; do
    [ -x "$GDIR/gentensor" ] || break
    "$GDIR/gentensor" 64 "$GDIR" "$fmt" ft100 >/dev/null 2>&1
    base=$GDIR/$fmt/base.$fmt
    next=$GDIR/$fmt/ft100.$fmt
    check_cmd "tensor $fmt: gentensor wrote base and ft100" test -s "$next"
    fam=tensor-$fmt
    http_admin PUT "/v1/families/$fam" -H 'Content-Type: application/json' \
        --data-binary '{"task":"e2e","description":"tensor deltas by format"}'
    check "tensor $fmt: family" 201 "$STATUS"
    for f in "$base" "$next"; do
        http_admin PUT "/v1/blobs/$(sha_of "$f")" -T "$f"
        man=""
        if [ "$fmt" = tfjs ]; then
            http_admin PUT "/v1/blobs/$(sha_of "$f.json")" -T "$f.json"
            man=",\"weights_manifest\":\"$(sha_of "$f.json")\""
        fi
        http_admin PUT "/v1/families/$fam/variants/m" \
            -H 'Content-Type: application/json' --data-binary \
            "{\"blob\":\"$(sha_of "$f")\",\"flops\":1000000,\"accuracy\":0.7,\"format\":\"$fmt\"$man}"
    done
    check "tensor $fmt: publish v2" 201 "$STATUS"
    report="{\"device\":{\"memory_bytes\":100000000,\"gflops\":10},\"current\":\"$(sha_of "$base")\",\"accept\":$GACCEPT}"
    got=""
    for ((i = 0; i < 600; i++)); do
        http POST "/v1/families/$fam/select" \
            -H 'Content-Type: application/json' --data-binary "$report"
        got=$(jbody '.delta.format // empty')
        [ "$got" = modeld-tensor/1 ] && break
        sleep 0.1
    done
    check "tensor $fmt: a UE on v1 gets a modeld-tensor/1 delta (60 s)" \
        modeld-tensor/1 "$got"
    check_jq "tensor $fmt: the delta under 0.7x the model" \
        '.delta.size_bytes * 10 < .model.size_bytes * 7'
    url=$(jbody .delta.url)
    http GET "$url"
    check "tensor $fmt: GET the delta" 200 "$STATUS"
    cp "$BODY" "$GDIR/$fmt.delta"
    "$MODELD" patch "$base" "$GDIR/$fmt.delta" "$GDIR/$fmt.out" \
        >/dev/null 2>&1
    check "tensor $fmt: modeld patch exit status" 0 "$?"
    check "tensor $fmt: modeld patch rebuilds v2" "$(sha_of "$next")" \
        "$(sha_of "$GDIR/$fmt.out" 2>/dev/null)"
done
rm -rf "$GDIR"
