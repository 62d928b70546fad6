/*
 * The select pipeline around the pure policy: which versions compete for
 * this UE (paused ones only for their holders), the policy's choice, and
 * the admission rule with the version the UE holds in view. Both the
 * select handler and `modeld select` call decide_run, so the daemon and
 * the offline command answer alike.
 */
#include <stdlib.h>
#include <string.h>

#include "server/decide.h"

/* The snapshot's versions without the paused ones the UE does not hold
 * (copied, with room for one more, only when some version is paused). */
static enum decide_status
competing(const struct store_snapshot *snap, const struct proto_report *r,
          struct decision_run *run, size_t *out_count)
{
    size_t n = 0;

    run->variants = snap->variants;
    *out_count = snap->variant_count;
    if (snap->paused_count == 0)
        return DECIDE_OK;
    run->view = malloc((snap->variant_count + 1) * sizeof(*run->view));
    if (!run->view)
        return DECIDE_NO_MEMORY;
    for (size_t i = 0; i < snap->variant_count; i++) {
        const struct proto_variant *v = &snap->variants[i];

        if (v->paused &&
            !(r->has_current && strcmp(r->current_hex, v->blob_hex) == 0))
            continue;
        run->view[n++] = *v;
    }
    run->variants = run->view;
    *out_count = n;
    return DECIDE_OK;
}

/* Appends held (an older version) to the variants d's indexes point
 * into, after the policy ran: it must not compete. */
static enum decide_status
view_push(const struct store_snapshot *snap, struct decision_run *run,
          size_t *count, const struct proto_variant *held)
{
    if (!run->view) {
        run->view = malloc((snap->variant_count + 1) * sizeof(*run->view));
        if (!run->view)
            return DECIDE_NO_MEMORY;
        memcpy(run->view, snap->variants,
               snap->variant_count * sizeof(*run->view));
        run->variants = run->view;
    }
    run->view[(*count)++] = *held;
    return DECIDE_OK;
}

/*
 * For the admission rule after the policy: the version the UE holds must
 * be among the variants. When it is an older version that competes no
 * more, it is appended.
 */
static enum decide_status
add_held(const struct store_snapshot *snap, const struct proto_report *r,
         struct decision_run *run, size_t *count)
{
    const struct proto_variant *held = NULL;

    for (size_t i = 0; i < *count; i++)
        if (strcmp(run->variants[i].blob_hex, r->current_hex) == 0)
            return DECIDE_OK;
    for (size_t i = 0; i < snap->older_count && !held; i++)
        if (strcmp(snap->older[i].blob_hex, r->current_hex) == 0)
            held = &snap->older[i];
    if (!held)
        return DECIDE_OK;
    return view_push(snap, run, count, held);
}

/* Builds the policy table of in into *out_buf (malloc). */
static const struct policy_table *
table_new(const struct policy_input *in, void **out_buf)
{
    size_t size = policy_table_size(in);
    void *buf = malloc(size);
    const struct policy_table *t;

    if (!buf)
        return NULL;
    t = policy_table_build(in, buf, size);
    if (!t) {
        free(buf);
        return NULL;
    }
    *out_buf = buf;
    return t;
}

void *
decide_snapshot_table(const struct store_snapshot *snap)
{
    struct policy_input in = {
        .family = snap->family.name,
        .variants = snap->variants,
        .variant_count = snap->variant_count,
        .deltas = snap->deltas,
        .delta_count = snap->delta_count,
        .older = snap->older,
        .older_count = snap->older_count,
    };
    void *buf = NULL;

    return table_new(&in, &buf) ? buf : NULL;
}

void
decide_snapshot_table_free(void *table)
{
    free(table);
}

enum decide_status
decide_run(const struct policy_config *policy,
           const struct policy_admission *admission,
           const struct store_snapshot *snap, const struct proto_report *r,
           struct proto_candidate *cands, struct proto_reasons *reasons,
           struct decision_run *run)
{
    struct policy_input in;
    size_t count = 0;
    enum decide_status rc;

    memset(&run->d, 0, sizeof(run->d));
    run->view = NULL;
    run->table = NULL;
    run->deferred = false;
    rc = competing(snap, r, run, &count);
    if (rc != DECIDE_OK)
        return rc;
    in = (struct policy_input){
        .family = snap->family.name,
        .variants = run->variants,
        .variant_count = count,
        .deltas = snap->deltas,
        .delta_count = snap->delta_count,
        .table = run->variants == snap->variants ? snap->derived : NULL,
        .older = snap->older,
        .older_count = snap->older_count,
    };
    if (!in.table && !(in.table = table_new(&in, &run->table)))
        return DECIDE_NO_MEMORY;
    run->d.candidates = cands;
    run->d.candidate_reasons = reasons;
    if (policy_select(policy, &in, r, &run->d) != POLICY_OK)
        return DECIDE_POLICY_BUG;
    /* keep of a held older version (past the variants: in.older) */
    if (run->d.action == PROTO_ACTION_KEEP && run->d.chosen >= count) {
        if (run->d.chosen - count >= snap->older_count)
            return DECIDE_POLICY_BUG;
        rc = view_push(snap, run, &count, &snap->older[run->d.chosen - count]);
        if (rc != DECIDE_OK)
            return rc;
        run->d.chosen = count - 1;
    }
    if ((run->d.action == PROTO_ACTION_DOWNLOAD ||
         run->d.action == PROTO_ACTION_DELTA) &&
        r->has_current && r->has_load && r->load >= admission->max_load) {
        rc = add_held(snap, r, run, &count);
        if (rc != DECIDE_OK)
            return rc;
        in.variants = run->variants;
        in.variant_count = count;
        in.table = NULL;      /* admission reads the variants only */
        run->deferred = policy_admission_defer(admission, &in, r, &run->d);
    }
    return DECIDE_OK;
}

void
decide_run_free(struct decision_run *run)
{
    free(run->view);
    run->view = NULL;
    free(run->table);
    run->table = NULL;
}
