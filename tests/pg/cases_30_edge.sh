# shellcheck shell=bash
# Sourced by tests/pg/run.sh: edge mode (blob_origin). An empty edge on
# the central PostgreSQL catalog answers a UE's select and serves the
# download, pulled once from the central daemon, and a UE holding v1 gets
# the delta to v2 through another empty edge. Against a stand-in origin
# (tests/pg/origin.py): a corrupted byte (blob or delta) is refused and
# nothing is kept,
# 50 parallel requests for one missing blob make one origin fetch, and the
# cache bound evicts the least recently used blob.

blob_file() { echo "$1/blobs/sha256/${2:0:2}/$2"; }

# ---- select + download through an empty edge --------------------------
if pg_database main edgecat; then
    URL=$(pg_url main edgecat)
    d_start central "$WORK/central" --catalog "$URL" &&
        d_start edge1 "$WORK/edge1" --catalog "$URL" --set worker=false \
            --set catalog_poll_ms=200 --set "blob_origin=$(d_url central)"
    check "edge: central and edge start on one catalog" 0 $?
    publish_new "edge: publish on the central daemon" central edgefam "$WORK/eb1" 31 256
    EH=$PUB_HEX
    check "edge: the edge holds no blob yet" "" "$(find "$WORK/edge1/blobs" -type f)"
    check "edge: a UE's select on the edge" 200 \
        "$(req edge1 POST /v1/families/edgefam/select "${JSON[@]}" -d "$SELECT_BODY")"
    MURL=$(jq -r .model.url "$WORK/body")
    check "edge: ... names the blob" "/v1/blobs/sha256:$EH" "$MURL"
    check "edge: download through the edge" 200 "$(req edge1 GET "$MURL")"
    check "edge: ... the right bytes" "$EH" "$(sha "$WORK/body")"
    check_soon "edge: ... now kept at the edge" "$EH" sha "$(blob_file "$WORK/edge1" "$EH")"
    check "edge: second download" 200 "$(req edge1 GET "$MURL")"
    check "edge: a range of it" 206 "$(req edge1 GET "$MURL" -H 'Range: bytes=10-19')"
    check "edge: one origin fetch" 1 "$(metric edge1 modeld_edge_origin_fetches_total)"
    check "edge: origin bytes = the blob's size" "$(stat -c %s "$WORK/eb1")" \
        "$(metric edge1 modeld_edge_origin_bytes_total)"
    check "edge: misses" 1 "$(metric edge1 'modeld_edge_blob_requests_total{result="miss"}')"
    check "edge: hits" 2 "$(metric edge1 'modeld_edge_blob_requests_total{result="hit"}')"
    d_stop edge1

    # A delta through another empty edge: v2 is v1 with a few bytes changed;
    # the central daemon's worker makes the delta, a UE holding v1 selects
    # it at the edge, which pulls the delta (and v1 to verify it) through.
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[5000:5016] = b"edge-delta-v2..."; open(sys.argv[2], "wb").write(b)' \
        "$WORK/eb1" "$WORK/eb2"
    E2H=$(sha "$WORK/eb2")
    admin central PUT "/v1/blobs/sha256:$E2H" --data-binary "@$WORK/eb2" >/dev/null
    check "edge: publish v2 on the central daemon" 201 \
        "$(admin central PUT /v1/families/edgefam/variants/v "${JSON[@]}" -d "$(variant_body "$E2H")")"
    DSEL="{\"device\":{\"memory_bytes\":4000000000,\"gflops\":50},\"current\":\"sha256:$EH\"}"
    delta_ready() {
        req central POST /v1/families/edgefam/select "${JSON[@]}" -d "$DSEL" >/dev/null &&
            [ "$(jq -r .action "$WORK/body")" = delta ]
    }
    wait_for 60 delta_ready
    DURL="/v1/deltas/sha256:$EH/sha256:$E2H"
    check "edge: central offers the delta" 200 "$(req central GET "$DURL")"
    cp "$WORK/body" "$WORK/edelta"
    if d_start edge3 "$WORK/edge3" --catalog "$URL" --set worker=false \
        --set catalog_poll_ms=200 --set "blob_origin=$(d_url central)"; then
        check "edge: a UE holding v1 selects at an empty edge" 200 \
            "$(req edge3 POST /v1/families/edgefam/select "${JSON[@]}" -d "$DSEL")"
        check "edge: ... and gets the delta" "delta $DURL" "$(jq -r '.action + " " + .delta.url' "$WORK/body")"
        check "edge: the delta through the edge" 200 "$(req edge3 GET "$DURL")"
        check "edge: ... byte-identical to the origin's" "$(sha "$WORK/edelta")" "$(sha "$WORK/body")"
        check "edge: ... kept at the edge" "$(sha "$WORK/edelta")" "$(sha "$WORK/edge3/deltas/$EH-$E2H" 2>/dev/null)"
        check "edge: ... with v1, pulled to verify it" "$EH" "$(sha "$(blob_file "$WORK/edge3" "$EH")" 2>/dev/null)"
        check "edge: HEAD of the kept delta" 200 "$(req edge3 HEAD "$DURL" -I)"
        check "edge: two origin fetches (v1, the delta)" 2 "$(metric edge3 modeld_edge_origin_fetches_total)"
        check "edge: origin bytes = v1 + the delta" "$(($(stat -c %s "$WORK/eb1") + $(stat -c %s "$WORK/edelta")))" \
            "$(metric edge3 modeld_edge_origin_bytes_total)"
        d_stop edge3
    else
        fail "edge: edge3 starts"
    fi
    d_stop central
else
    fail "starting PostgreSQL for the edge case"
fi

# ---- a stand-in origin: corruption, single flight, eviction -------------
origin_start origin 0.5
ORIGIN=$ORIGIN_URL
count_of() { curl -s "$ORIGIN/_count/$1"; }
make_blob "$WORK/good" 41 512
make_blob "$WORK/other" 42 512
make_blob "$WORK/bad" 43 128
GH=$(sha "$WORK/good")
OH=$(sha "$WORK/other")
BH=$(sha "$WORK/bad")
cp "$WORK/good" "$WORK/origin/$GH"
cp "$WORK/other" "$WORK/origin/$OH"
# One byte changed: the origin serves bytes that are not sha256:$BH,
# without a length, so that the edge cannot begin an answer before it
# verified them (tests/pg/cases_35_pull.sh has the answers cut mid-way).
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[100] ^= 1; open(sys.argv[2], "wb").write(b)' \
    "$WORK/bad" "$WORK/origin/$BH"
touch "$WORK/origin/$BH.nolength"
# Room for one of the 512 KiB blobs, not two.
if d_start edge2 "$WORK/edge2" --set "blob_origin=$ORIGIN" \
    --set blob_cache_max_bytes=800000; then
    check "edge: a corrupted origin blob is refused" 502 "$(req edge2 GET "/v1/blobs/sha256:$BH")"
    check "edge: ... as problem+json naming the digest" digest "$(jq -r .field "$WORK/body")"
    check "edge: ... and not kept" "" "$(find "$WORK/edge2/blobs" "$WORK/edge2/tmp" -type f)"
    check "edge: ... counted" 1 "$(metric edge2 modeld_edge_origin_refused_total)"

    # The delta of the first case with one byte changed: applied to v1 it
    # does not give v2.
    cp "$WORK/eb1" "$WORK/origin/$EH"
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-8] ^= 1; open(sys.argv[2], "wb").write(b)' \
        "$WORK/edelta" "$WORK/origin/$EH-$E2H"
    touch "$WORK/origin/$EH-$E2H.nolength"
    check "edge: a corrupted origin delta is refused" 502 \
        "$(req edge2 GET "/v1/deltas/sha256:$EH/sha256:$E2H")"
    check "edge: ... as problem+json" 502 "$(jq -r .status "$WORK/body")"
    check "edge: ... and not kept" "" "$(find "$WORK/edge2/deltas" "$WORK/edge2/tmp" -type f)"
    check "edge: ... counted" 2 "$(metric edge2 modeld_edge_origin_refused_total)"
    rm -f "$WORK/edge2/blobs/sha256/${EH:0:2}/$EH"

    # Wait for the curl processes, not for their status lines: curl prints
    # -w before it has closed (flushed) the -o file, so a body read as soon
    # as its status appeared could still be short.
    par_pids=()
    for i in $(seq 1 50); do
        curl -s --max-time 60 -o "$WORK/par$i" -w '%{http_code}\n' \
            "$(d_url edge2)/v1/blobs/sha256:$GH" >"$WORK/par$i.status" &
        par_pids+=($!)
    done
    wait "${par_pids[@]}"
    check "edge: 50 parallel requests for one missing blob all answered 200" 50 \
        "$(cat "$WORK"/par*.status | grep -c '^200$')"
    same=0
    for i in $(seq 1 50); do [ "$(sha "$WORK/par$i")" = "$GH" ] && same=$((same + 1)); done
    check "edge: ... all with the right bytes" 50 "$same"
    check "edge: ... from one origin fetch" 1 "$(count_of "$GH")"

    check "edge: another blob" 200 "$(req edge2 GET "/v1/blobs/sha256:$OH")"
    # The answer may end before the edge has kept the blob and trimmed.
    check_soon "edge: the bound evicted the least recently used blob" 1 \
        metric edge2 modeld_edge_evicted_total
    check_soon "edge: ... its file is gone" "" ls "$(blob_file "$WORK/edge2" "$GH")"
    check "edge: the evicted blob is fetched again" 200 "$(req edge2 GET "/v1/blobs/sha256:$GH")"
    check "edge: ... a second origin fetch" 2 "$(count_of "$GH")"
    # The bound counts pulled-through deltas: the delta (with v1) comes in,
    # GH is fetched again (OH out), then OH needs room: v1, the delta and
    # GH go, least recently used first.
    cp "$WORK/edelta" "$WORK/origin/$EH-$E2H"
    rm -f "$WORK/origin/$EH-$E2H.nolength"
    check "edge: a delta pulled through (v1 with it)" 200 \
        "$(req edge2 GET "/v1/deltas/sha256:$EH/sha256:$E2H")"
    check "edge: ... kept" "$(sha "$WORK/edelta")" "$(sha "$WORK/edge2/deltas/$EH-$E2H" 2>/dev/null)"
    check "edge: then two blobs" "200 200" \
        "$(req edge2 GET "/v1/blobs/sha256:$GH") $(req edge2 GET "/v1/blobs/sha256:$OH")"
    check_soon "edge: the bound evicted the delta too" "" ls "$WORK/edge2/deltas/$EH-$E2H"
    check_soon "edge: ... and only OH is left" "$OH" \
        find "$WORK/edge2/blobs" "$WORK/edge2/deltas" -type f -printf '%f\n'
    check "edge: unknown at the origin: 404" 404 \
        "$(req edge2 GET "/v1/blobs/sha256:$(printf 'nope' | sha256sum | cut -d' ' -f1)")"
    d_stop edge2
    check "edge: no BUG or sanitizer report" 0 \
        "$(cat "$WORK"/edge*.err | grep -c -E 'BUG:|runtime error|Sanitizer')"
else
    fail "edge: edge2 starts"
fi
origin_stop "$ORIGIN_PID"
