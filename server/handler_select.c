/*
 * POST /v1/families/{family}/select: the UE report in, the decision out.
 * Reads the family through the store's immutable snapshot (a cache hit
 * takes one short mutex; a miss reads on a read connection beside the
 * writer, never waiting for its commits) and runs the pure policy on it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/decide.h"
#include "server/http.h"
#include "server/log.h"

/* Candidate slots on the stack for families up to this size. */
#define STACK_CANDIDATES 32

/*
 * Larger families: each HTTP thread keeps its candidate and reason slots
 * between selects (a 200-variant family needs ~300 KB, which malloc would
 * take from and give back to the kernel on every request); freed when
 * the thread exits.
 */
struct cands_buf {
    struct proto_candidate *v;
    struct proto_reasons *reasons;
    size_t cap;
};

static pthread_key_t cands_key;
static pthread_once_t cands_once = PTHREAD_ONCE_INIT;
static bool cands_key_ok;

static void
cands_buf_free(void *p)
{
    struct cands_buf *b = p;

    if (b) {
        free(b->v);
        free(b->reasons);
    }
    free(b);
}

static void
cands_key_make(void)
{
    cands_key_ok = pthread_key_create(&cands_key, cands_buf_free) == 0;
}

/* This thread's slots for n candidates and their reasons, or NULL (out
 * of memory). */
static struct cands_buf *
cands_get(size_t n)
{
    struct cands_buf *b;

    (void)pthread_once(&cands_once, cands_key_make);
    if (!cands_key_ok)
        return NULL;
    b = pthread_getspecific(cands_key);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b || pthread_setspecific(cands_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (b->cap < n) {
        struct proto_candidate *v = realloc(b->v, n * sizeof(*v));
        struct proto_reasons *rs;

        if (!v)
            return NULL;
        b->v = v;
        rs = realloc(b->reasons, n * sizeof(*rs));
        if (!rs)
            return NULL;
        b->reasons = rs;
        b->cap = n;
    }
    return b;
}

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
              const struct proto_variant *variants,
              const struct proto_report *r, struct proto_decision *d)
{
    const struct proto_variant *v = &variants[d->chosen];
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
    struct proto_candidate stack[STACK_CANDIDATES];
    struct proto_reasons stack_reasons[STACK_CANDIDATES];
    struct proto_candidate *cands = stack;
    struct proto_reasons *reasons = stack_reasons;
    const struct store_snapshot *snap = NULL;
    struct policy_admission adm = {app->cfg.admission_load,
                                   app->cfg.admission_recheck_s};
    struct decision_run run = {0};
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
    /* One slot per variant, and one for a held version (admission). */
    if (snap->variant_count + 1 > STACK_CANDIDATES) {
        struct cands_buf *b = cands_get(snap->variant_count + 1);

        if (!b) {
            ret = http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                                   "out of memory");
            goto out;
        }
        cands = b->v;
        reasons = b->reasons;
    }
    drc = decide_run(&app->cfg.policy, &adm, snap, &report, cands, reasons,
                     &run);
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
    if (d->action != PROTO_ACTION_NONE)
        tensor_extras(app, rq, snap, run.variants, &report, d);
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
        d->generation = snap->answer_generation;
        memcpy(d->nonce, report.nonce, sizeof(d->nonce));
    }
    /* The receipt a failure event of this UE must send back to count
     * toward pausing the version (README "Event receipts"). */
    if (report.has_ue && d->action != PROTO_ACTION_NONE) {
        const struct proto_variant *v = &run.variants[d->chosen];

        (void)store_receipt_make(app->store, report.ue, snap->family.name,
                                 v->name, v->version, v->blob_hex,
                                 d->receipt);
    }
    json = proto_decision_write(d, snap->family.name, run.variants,
                                snap->deltas);
    ret = reply_decision(c, rq, kr, d->issued_at_s, json);
out:
    decide_run_free(&run);
    store_snapshot_release(snap);
    return ret;
}
