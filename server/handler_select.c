/*
 * POST /v1/families/{family}/select: the UE report in, the decision out.
 * Reads the family through the store's immutable snapshot (never waits on
 * a writer) and runs the pure policy on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "server/http.h"
#include "server/log.h"

/* Candidate slots on the stack for families up to this size. */
#define STACK_CANDIDATES 32

/*
 * What the tensor codings add to a decision: the modeld-bg/1 form of the
 * model for a UE that accepts it, and, for a UE that holds another version
 * of the family but has no delta to the chosen one, a delta asked for in
 * the background (the answer meanwhile is the full model, and a reason
 * says so).
 */
static void
tensor_extras(struct app *app, struct request *rq,
              const struct store_snapshot *snap,
              const struct proto_report *r, struct proto_decision *d)
{
    const struct proto_variant *v = &snap->variants[d->chosen];
    bool pending = false;

    d->model_bg = r->accept_bg && v->bg_size_bytes > 0;
    if (d->action != PROTO_ACTION_DOWNLOAD || !r->has_current ||
        strcmp(r->current_hex, v->blob_hex) == 0)
        return;
    for (size_t i = 0; i < snap->delta_count; i++)
        if (strcmp(snap->deltas[i].from_hex, r->current_hex) == 0 &&
            strcmp(snap->deltas[i].to_hex, v->blob_hex) == 0)
            return;             /* made, just not one this UE takes */
    if (store_delta_request(app->store, r->current_hex, v->blob_hex,
                            &pending) != STORE_OK) {
        log_msg(LOG_ERROR, rq->id, "asking for a delta: %s",
                store_errmsg(app->store));
        return;
    }
    if (pending && d->reasons.count < PROTO_MAX_REASONS)
        snprintf(d->reasons.text[d->reasons.count++], PROTO_REASON_SIZE,
                 "delta: a delta from current is being made; the full "
                 "model meanwhile");
}

enum MHD_Result
handle_select(struct MHD_Connection *c, struct request *rq)
{
    struct app *app = rq->app;
    struct proto_candidate stack[STACK_CANDIDATES];
    struct proto_candidate *cands = stack;
    const struct store_snapshot *snap = NULL;
    struct proto_decision d;
    struct proto_report report;
    struct proto_error err;
    struct policy_input in;
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
    rc = store_snapshot_get(app->store, rq->params[0], &snap);
    if (rc == STORE_NOT_FOUND)
        return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_FAMILY, "family",
                                "family \"%s\" does not exist",
                                rq->params[0]);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "reading the family");
    if (snap->variant_count > STACK_CANDIDATES) {
        cands = malloc(snap->variant_count * sizeof(*cands));
        if (!cands) {
            ret = http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                                   "out of memory");
            goto out;
        }
    }
    in.family = snap->family.name;
    in.variants = snap->variants;
    in.variant_count = snap->variant_count;
    in.deltas = snap->deltas;
    in.delta_count = snap->delta_count;
    memset(&d, 0, sizeof(d));
    d.candidates = cands;
    if (policy_select(&app->cfg.policy, &in, &report, &d) != POLICY_OK) {
        log_msg(LOG_ERROR, rq->id, "BUG: policy_select refused its input");
        ret = http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                               "selection failed");
        goto out;
    }
    if (d.action != PROTO_ACTION_NONE)
        tensor_extras(app, rq, snap, &report, &d);
    if (d.action == PROTO_ACTION_DELTA && d.has_delta &&
        snap->variants[d.chosen].size_bytes > snap->deltas[d.delta].size_bytes)
        saved = snap->variants[d.chosen].size_bytes -
                snap->deltas[d.delta].size_bytes;
    metrics_decision(&app->metrics, d.action, d.degraded, saved,
                     snap->family.name,
                     d.action == PROTO_ACTION_NONE
                         ? NULL
                         : snap->variants[d.chosen].name);
    json = proto_decision_write(&d, snap->family.name, snap->variants,
                                snap->deltas);
    ret = http_reply_json(c, rq, 200, json);
out:
    if (cands != stack)
        free(cands);
    store_snapshot_release(snap);
    return ret;
}
