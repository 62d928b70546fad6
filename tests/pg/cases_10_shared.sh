# shellcheck shell=bash
# Sourced by tests/pg/run.sh: two daemons on one PostgreSQL catalog. A
# publish on A is selected on B within B's poll interval; both workers run
# on the shared job queue and each job is done exactly once; a receipt
# given by A verifies on B.

if pg_database main shared; then
    URL=$(pg_url main shared)
    POLL_MS=200
    A_OK=0
    # Both sign (the generation of a signed answer is the shared one).
    "$MODELD" keygen --out "$WORK/pg-sign.pem" >/dev/null
    d_start pgA "$WORK/pgA" --catalog "$URL" --set catalog_poll_ms=$POLL_MS \
        --set "signing_key=$WORK/pg-sign.pem" && A_OK=1
    d_start pgB "$WORK/pgB" --catalog "$URL" --set catalog_poll_ms=$POLL_MS \
        --set "signing_key=$WORK/pg-sign.pem" || A_OK=0
    check "two daemons start on one PostgreSQL catalog" 1 "$A_OK"

    check "shared: family created on A" 201 \
        "$(admin pgA PUT /v1/families/shared -H 'Content-Type: application/json' \
            "${JSON[@]}" -d '{"task":"t","description":"d"}')"
    # Both daemons hold every blob (the worker's jobs read local files).
    for i in 1 2 3 4 5 6; do
        make_blob "$WORK/blob$i" "$i" 512
        h=$(sha "$WORK/blob$i")
        admin pgA PUT "/v1/blobs/sha256:$h" --data-binary "@$WORK/blob$i" >/dev/null
        admin pgB PUT "/v1/blobs/sha256:$h" --data-binary "@$WORK/blob$i" >/dev/null
    done
    # B reads the family before the publish, so that a stale snapshot
    # would be cached if B did not follow the generation.
    check "shared: B sees the family, no variants yet" 200 \
        "$(req pgB POST /v1/families/shared/select "${JSON[@]}" -d "$SELECT_BODY")"
    check "shared: B's answer before the publish is none" none "$(jq -r .action "$WORK/body")"
    t0=$(date +%s%N)
    check "shared: publish on A" 201 \
        "$(admin pgA PUT /v1/families/shared/variants/v1 "${JSON[@]}" -d "$(variant_body "$(sha "$WORK/blob1")")")"
    seen_on_b() {
        [ "$(req pgB POST /v1/families/shared/select "${JSON[@]}" -d "$SELECT_BODY")" = 200 ] &&
            [ "$(jq -r .variant "$WORK/body")" = v1 ]
    }
    if wait_for 10 seen_on_b; then
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        pass "shared: A's publish is selected on B (after $ms ms; poll $POLL_MS ms)"
        # Within the poll interval plus scheduling on a busy machine.
        check_lt "shared: ... within poll interval + 1 s" $((POLL_MS + 1000)) "$ms"
    else
        fail "shared: A's publish never reached B's selects"
    fi
    # More versions and variants, published on both: jobs for both workers.
    admin pgB PUT /v1/families/shared/variants/v1 "${JSON[@]}" -d "$(variant_body "$(sha "$WORK/blob2")")" >/dev/null
    admin pgA PUT /v1/families/shared/variants/v2 "${JSON[@]}" -d "$(variant_body "$(sha "$WORK/blob3")")" >/dev/null
    admin pgB PUT /v1/families/shared/variants/v2 "${JSON[@]}" -d "$(variant_body "$(sha "$WORK/blob4")")" >/dev/null
    admin pgA PUT /v1/families/shared/variants/v3 "${JSON[@]}" -d "$(variant_body "$(sha "$WORK/blob5")")" >/dev/null
    check "shared: the last publish (on B)" 201 \
        "$(admin pgB PUT /v1/families/shared/variants/v3 "${JSON[@]}" -d "$(variant_body "$(sha "$WORK/blob6")")")"
    PSQL=(psql -X -q -t -A "$URL")
    queue_empty() {
        [ "$("${PSQL[@]}" -c "SELECT count(*) FROM deltas WHERE state = 'pending'")" = 0 ] &&
            [ "$("${PSQL[@]}" -c "SELECT count(*) FROM blobs WHERE zstd_state = 'pending'")" = 0 ]
    }
    if wait_for 60 queue_empty; then
        pass "shared: the job queue drains"
    else
        fail "shared: jobs still pending after 60 s"
    fi
    deltas_done=$("${PSQL[@]}" -c "SELECT count(*) FROM deltas WHERE state IN ('ready', 'rejected', 'failed')")
    copies_done=$("${PSQL[@]}" -c "SELECT count(*) FROM blobs WHERE zstd_state = 'ready'")
    made=0
    for d in pgA pgB; do
        for o in ready rejected failed; do
            made=$((made + $(metric $d "modeld_deltas_made_total{outcome=\"$o\"}")))
        done
    done
    jobs_of() {
        local n=$(metric "$1" modeld_compressed_copies_made_total) o
        for o in ready rejected failed; do
            n=$((n + $(metric "$1" "modeld_deltas_made_total{outcome=\"$o\"}")))
        done
        echo "$n"
    }
    a_jobs=$(jobs_of pgA)
    b_jobs=$(jobs_of pgB)
    check_ge "shared: deltas were queued" 1 "$deltas_done"
    check "shared: each delta made once (made on A + B = rows done)" "$deltas_done" "$made"
    check "shared: each zstd copy made once" "$copies_done" \
        "$(( $(metric pgA modeld_compressed_copies_made_total) + $(metric pgB modeld_compressed_copies_made_total) ))"
    echo "# shared queue: $deltas_done deltas, $copies_done zstd copies; A did $a_jobs jobs, B $b_jobs"
    check "shared: healthz ok on A" '{"status":"ok"}' "$(curl -s "$(d_url pgA)/healthz")"
    # Signed answers from either daemon carry the catalog's shared
    # generation: the same on A and B once both saw the last write, so a
    # UE that moves between them never sees it go down.
    SIGNED_BODY='{"device":{"memory_bytes":4000000000,"gflops":50},"accept":{"signed":true}}'
    gen_of() {
        req "$1" POST /v1/families/shared/select "${JSON[@]}" -d "$SIGNED_BODY" >/dev/null
        jq -r .generation "$WORK/body"
    }
    same_generation() {
        GA=$(gen_of pgA)
        GB=$(gen_of pgB)
        [ -n "$GA" ] && [ "$GA" != null ] && [ "$GA" = "$GB" ]
    }
    if wait_for 10 same_generation; then
        pass "shared: signed answers of A and B carry one generation ($GA)"
    else
        fail "shared: signed answers of A and B carry one generation (A $GA, B $GB)"
    fi
    check "shared: ... the catalog's" "$GA" \
        "$("${PSQL[@]}" -c "SELECT generation FROM catalog_generation WHERE id = 1")"
    # Event receipts: one key for the whole catalog, so a receipt given
    # by A verifies on B (a UE may select at one daemon and report at
    # another); the key is the one row of secrets.
    req pgA POST /v1/families/shared/select "${JSON[@]}" \
        -d '{"ue":"fleet-ue","device":{"memory_bytes":4000000000,"gflops":50}}' >/dev/null
    rcpt=$(jq -r '.receipt // ""' "$WORK/body")
    rvar=$(jq -r .variant "$WORK/body")
    rver=$(jq -r .version "$WORK/body")
    rdig=$(jq -r .model.digest "$WORK/body")
    check_match "shared: A's answer carries a receipt" '^[A-Za-z0-9_-]{43}$' "$rcpt"
    check "shared: B verifies A's receipt" 202 \
        "$(req pgB POST /v1/families/shared/events "${JSON[@]}" -d "{\"ue\":\"fleet-ue\",\"variant\":\"$rvar\",\"version\":$rver,\"digest\":\"$rdig\",\"event\":\"installed\",\"receipt\":\"$rcpt\"}")"
    check "shared: ... verified" true "$(jq -r .verified "$WORK/body")"
    check "shared: one receipt key in the catalog" 1 \
        "$("${PSQL[@]}" -c "SELECT count(*) FROM secrets WHERE name = 'event_receipt_key'")"
    d_stop pgA
    d_stop pgB
    check "shared: no BUG or sanitizer report" 0 \
        "$(cat "$WORK/pgA.err" "$WORK/pgB.err" | grep -c -E 'BUG:|runtime error|Sanitizer')"
else
    fail "starting PostgreSQL for the two-daemon case"
fi
