# shellcheck shell=bash
# Sourced by tests/pg/run.sh: a primary with a synchronous streaming
# replica (pg_basebackup -R). The edge writes to whichever server of its
# multi-host URL takes writes and reads snapshots from the replica. The
# primary is killed (SIGKILL) and the replica promoted (pg_ctl promote):
# selects are answered throughout, admin writes get 503 + Retry-After
# until the edge has reconnected to the new primary, /healthz says
# degraded meanwhile, and no acknowledged publish is lost.

# Every commit waits for the replica (PostgreSQL's own guarantee that an
# acknowledged write survives the loss of the primary).
if pg_start prim "synchronous_standby_names = '*'" &&
    pg_replica repl prim; then
    # The replica must not wait for a standby of its own once promoted.
    echo "synchronous_standby_names = ''" |
        pg_as tee -a "$PG_DIR_repl/postgresql.conf" >/dev/null
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR_repl" reload >/dev/null
    WRITE_URL="postgresql://postgres@127.0.0.1:$PG_PORT_prim,127.0.0.1:$PG_PORT_repl/postgres?target_session_attrs=read-write&connect_timeout=2"
    READ_URL=$(pg_url repl)
    if d_start edge "$WORK/edge" --catalog "$WRITE_URL" \
        --set "catalog_read_url=$READ_URL" --set catalog_poll_ms=200; then
        pass "failover: edge starts (writes: multi-host URL, reads: replica)"
    else
        fail "failover: edge starts"
    fi
    admin edge PUT /v1/families/fo "${JSON[@]}" -d '{"task":"t","description":"d"}' >/dev/null
    make_blob "$WORK/fo1" 11 64
    H1=$(sha "$WORK/fo1")
    admin edge PUT "/v1/blobs/sha256:$H1" --data-binary "@$WORK/fo1" >/dev/null
    ACKED=0
    for i in 1 2 3; do
        [ "$(admin edge PUT /v1/families/fo/variants/v "${JSON[@]}" -d \
            "{\"blob\":\"sha256:$H1\",\"flops\":1e8,\"accuracy\":0.$((50 + i))}")" = 201 ] &&
            ACKED=$((ACKED + 1))
    done
    check "failover: publishes acknowledged before the failure" 3 "$ACKED"
    fo_selected() {
        [ "$(req edge POST /v1/families/fo/select "${JSON[@]}" -d "$SELECT_BODY")" = 200 ] &&
            [ "$(jq -r .version "$WORK/body")" = 3 ]
    }
    check_cmd "failover: the edge selects version 3 (read from the replica)" wait_for 10 fo_selected

    # Selects all along: a background loop records every status.
    : >"$WORK/select-statuses"
    (
        BODY_OUT=$WORK/select-body
        while [ ! -e "$WORK/stop-selects" ]; do
            req edge POST /v1/families/fo/select "${JSON[@]}" -d "$SELECT_BODY" >>"$WORK/select-statuses"
            echo >>"$WORK/select-statuses"
            sleep 0.05
        done
    ) &
    SELECTS_PID=$!

    pg_kill prim
    s=$(admin edge PUT /v1/families/fo2 "${JSON[@]}" -d '{"task":"t","description":"d"}' -D "$WORK/hdrs")
    check "failover: admin write while no primary: 503" 503 "$s"
    check_match "failover: ... with Retry-After" '^[0-9]+$' \
        "$(tr -d '\r' <"$WORK/hdrs" | awk -F': ' 'tolower($1)=="retry-after" {print $2}')"
    check "failover: ... as problem+json" 503 "$(jq -r .status "$WORK/body")"
    degraded() { curl -s "$(d_url edge)/healthz" | grep -q '"degraded"'; }
    check_cmd "failover: /healthz says degraded" wait_for 10 degraded
    check_ge "failover: /metrics counts the unreachable catalog" 1 \
        "$(metric edge modeld_catalog_unavailable_total)"
    check "failover: /metrics shows it unreachable" 1 "$(metric edge modeld_catalog_unreachable)"

    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR_repl" -w -t 30 promote >/dev/null
    writes_back() {
        [ "$(admin edge PUT /v1/families/fo2 "${JSON[@]}" -d '{"task":"t","description":"d"}')" = 201 ]
    }
    if wait_for 30 writes_back; then
        pass "failover: admin writes accepted again after the promotion"
    else
        fail "failover: admin writes still refused 30 s after the promotion"
    fi
    check "failover: publish on the new primary" 201 \
        "$(admin edge PUT /v1/families/fo/variants/v "${JSON[@]}" -d "{\"blob\":\"sha256:$H1\",\"flops\":1e8,\"accuracy\":0.9}")"
    check "failover: ... is version 4 (none of 1-3 lost)" 4 "$(jq -r .version "$WORK/body")"
    check "failover: versions listed" 200 "$(req edge GET /v1/families/fo/variants/v/versions)"
    check "failover: every acknowledged version is there" "1 2 3 4" \
        "$(jq -r '[.versions[].version] | map(tostring) | join(" ")' "$WORK/body")"
    healthy() { curl -s "$(d_url edge)/healthz" | grep -q '"ok"'; }
    check_cmd "failover: /healthz ok again" wait_for 10 healthy
    touch "$WORK/stop-selects"
    wait "$SELECTS_PID" 2>/dev/null
    total=$(grep -c . "$WORK/select-statuses")
    ok=$(grep -c '^200$' "$WORK/select-statuses")
    check_ge "failover: selects were sent during the failover" 10 "$total"
    check "failover: every select during the failover answered 200" "$total" "$ok"
    d_stop edge
    check "failover: no BUG or sanitizer report" 0 \
        "$(grep -c -E 'BUG:|runtime error|Sanitizer' "$WORK/edge.err")"
else
    fail "starting a PostgreSQL primary and replica"
fi
