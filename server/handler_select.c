/*
 * POST /v1/families/{family}/select: the UE report in, the decision out.
 * Reads the family through the store's immutable snapshot (a cache hit
 * takes one short mutex; a miss reads on a read connection beside the
 * writer, never waiting for its commits) and runs the pure policy on it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/decide.h"
#include "server/http.h"
#include "server/log.h"

/* ?explain=all lists every candidate, as "explain": "all" in the body
 * does; false on another value than all or best. */
static bool
explain_query(struct MHD_Connection *c, struct proto_report *report)
{
    const char *ex =
        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "explain");

    if (!ex || strcmp(ex, "best") == 0)
        return true;
    if (strcmp(ex, "all") != 0)
        return false;
    report->explain_all = true;
    return true;
}

/* The keyring to sign this answer with, or NULL for an unsigned one:
 * sign_decisions = always, or the report asked (nonce, accept.signed). */
static const struct keyring *
signer_for(const struct app *app, const struct proto_report *r)
{
    const struct keyring *kr = atomic_load(&app->keyring);

    if (!sign_keyring_can_sign(kr))
        return NULL;
    if (app->cfg.sign_decisions == CONFIG_SIGN_ALWAYS || r->has_nonce ||
        r->accept_signed)
        return kr;
    return NULL;
}

/* Queues the decision json (taken), signed with kr when not NULL. */
static enum MHD_Result
reply_decision(struct MHD_Connection *c, struct request *rq,
               const struct keyring *kr, int64_t now_s, char *json)
{
    struct sign_headers h;
    struct sign_message msg = {
        .status = 200,
        .method = rq->method,
        .path = rq->path,
        .content_type = "application/json",
        .created_s = now_s,
        .expires_s = now_s + rq->app->cfg.decision_ttl_s,
    };

    if (!kr || !json)
        return http_reply_json(c, rq, 200, json);
    if (sign_response(kr, &msg, json, strlen(json), &h) != 0) {
        free(json);
        log_msg(LOG_ERROR, rq->id, "signing the answer failed");
        return http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                                "signing the answer failed");
    }
    const char *const headers[] = {
        "Content-Digest", h.content_digest,
        "Signature-Input", h.signature_input,
        "Signature", h.signature,
        "Cache-Control", "no-store",
        NULL,
    };
    return http_reply_json_with(c, rq, 200, json, headers);
}

enum MHD_Result
handle_select(struct MHD_Connection *c, struct request *rq)
{
    struct app *app = rq->app;
    const struct store_snapshot *snap = NULL;
    struct policy_admission adm = {app->cfg.admission_load,
                                   app->cfg.admission_recheck_s};
    struct decision_run run;
    struct proto_decision *d = &run.d;
    struct proto_report report;
    struct proto_error err;
    const struct keyring *kr;
    enum decide_status drc;
    enum store_status rc;
    enum MHD_Result ret;
    uint64_t saved = 0;
    char *json;

    if (proto_report_parse(rq->body ? rq->body : "", rq->body_len,
                           &app->cfg.limits, &report, &err) != PROTO_OK) {
        if (err.code == PROTO_ERR_JSON_TOO_DEEP)
            metrics_limit(&app->metrics, METRICS_LIMIT_JSON_DEPTH);
        return http_reply_problem(c, rq, &err);
    }
    if (!explain_query(c, &report))
        return http_reply_error(c, rq, PROTO_ERR_BAD_FIELD, "explain",
                                "explain must be \"all\" or \"best\"");
    rc = store_snapshot_get(app->store, rq->params[0], &snap);
    if (rc == STORE_NOT_FOUND)
        return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_FAMILY, "family",
                                "family \"%s\" does not exist",
                                rq->params[0]);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "reading the family");
    drc = decide_run(&app->cfg.policy, &adm, snap, &report, &run);
    if (drc == DECIDE_POLICY_BUG)
        log_msg(LOG_ERROR, rq->id, "BUG: policy_select refused its input");
    if (drc != DECIDE_OK) {
        ret = http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                               drc == DECIDE_NO_MEMORY ? "out of memory"
                                                       : "selection failed");
        goto out;
    }
    if (run.deferred)
        atomic_fetch_add(&app->deferred, 1);
    if (d->action == PROTO_ACTION_DELTA && d->has_delta &&
        run.variants[d->chosen].size_bytes >
            snap->deltas[d->delta].size_bytes)
        saved = run.variants[d->chosen].size_bytes -
                snap->deltas[d->delta].size_bytes;
    metrics_decision(&app->metrics, d->action, d->degraded, saved,
                     snap->family.name,
                     d->action == PROTO_ACTION_NONE
                         ? NULL
                         : run.variants[d->chosen].name);
    kr = signer_for(app, &report);
    if (kr) {
        d->is_signed = true;
        d->issued_at_s = (int64_t)time(NULL);
        d->expires_at_s = d->issued_at_s + app->cfg.decision_ttl_s;
        d->generation = snap->generation;
        memcpy(d->nonce, report.nonce, sizeof(d->nonce));
    }
    json = proto_decision_write(d, snap->family.name, run.variants,
                                snap->deltas);
    ret = reply_decision(c, rq, kr, d->issued_at_s, json);
out:
    decide_run_free(&run);
    store_snapshot_release(snap);
    return ret;
}
