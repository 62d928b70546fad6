/*
 * The replay simulator and its oracle (see policy/replay.h for the model
 * both follow). Pure: the scenario, the catalog and the config in, the
 * figures out; the only memory is this run's tables.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/replay.h"

#define HISTORY_MAX PROTO_MAX_HISTORY
/* The greedy baseline's horizon: so long that time and bytes vanish next
 * to the accuracy that runs after a download (the instant rule). */
#define GREEDY_HORIZON_S 1e9

/* What every pass needs: the models that compete, what running each is
 * worth at each report, the trace's cumulative bits. */
struct world {
    const struct policy_config *cfg;
    const struct policy_input *in;
    const struct replay_scenario *sc;
    size_t n;                     /* reports */
    size_t m;                     /* models; index m means "nothing" */
    size_t *model_var;            /* model -> index into in->variants */
    size_t *var_model;            /* variant index -> model (m: none) */
    double *u;                    /* n x m utilities per second */
    double *cpb;                  /* n: cost per byte at each report */
    double *cum;                  /* trace.count: bits at trace.t_s[i] */
    size_t init;                  /* the model held at the start */
    struct proto_candidate *scratch; /* variant_count entries */
    struct proto_reasons *scratch_reasons; /* variant_count entries */
    struct policy_input in_table; /* the caller's input with its table */
    void *table;
};

static double
step_end(const struct world *w, size_t k)
{
    return k + 1 < w->n ? w->sc->steps[k + 1].t_s : w->sc->end_s;
}

static double
util(const struct world *w, size_t k, size_t model)
{
    return model < w->m ? w->u[k * w->m + model] : 0;
}

/* ---- the trace ------------------------------------------------------- */

/* Bits the link moved from trace.t_s[0] to t (negative before it). */
static double
bits_at(const struct world *w, double t)
{
    const struct replay_trace *tr = &w->sc->trace;
    size_t lo = 0, hi = tr->count;

    if (t <= tr->t_s[0])
        return (t - tr->t_s[0]) * tr->bps[0];
    /* the last point at or before t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (tr->t_s[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return w->cum[lo] + (t - tr->t_s[lo]) * tr->bps[lo];
}

/* The first instant at which bits_at reaches bits; INFINITY if never. */
static double
time_at(const struct world *w, double bits)
{
    const struct replay_trace *tr = &w->sc->trace;
    size_t last = tr->count - 1;
    size_t lo = 0, hi = tr->count;

    if (bits <= 0)
        return tr->bps[0] > 0 ? tr->t_s[0] + bits / tr->bps[0] : tr->t_s[0];
    if (bits > w->cum[last])
        return tr->bps[last] > 0
                   ? tr->t_s[last] + (bits - w->cum[last]) / tr->bps[last]
                   : INFINITY;
    /* the first point whose cumulative bits reach bits: lo..hi-1 */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (w->cum[mid] >= bits)
            hi = mid;
        else
            lo = mid + 1;
    }
    /* lo >= 1 here: cum[0] = 0 < bits */
    return tr->t_s[lo - 1] + (bits - w->cum[lo - 1]) / tr->bps[lo - 1];
}

/* ---- models and transfers -------------------------------------------- */

static const struct proto_variant *
model_variant(const struct world *w, size_t model)
{
    return &w->in->variants[w->model_var[model]];
}

/* The smallest ready delta from held to to, or SIZE_MAX. */
static size_t
delta_of(const struct world *w, size_t held, size_t to)
{
    size_t best = SIZE_MAX;

    if (held >= w->m)
        return SIZE_MAX;
    for (size_t i = 0; i < w->in->delta_count; i++) {
        const struct proto_delta *d = &w->in->deltas[i];

        if (strcmp(d->from_hex, model_variant(w, held)->blob_hex) == 0 &&
            strcmp(d->to_hex, model_variant(w, to)->blob_hex) == 0 &&
            (best == SIZE_MAX ||
             d->size_bytes < w->in->deltas[best].size_bytes))
            best = i;
    }
    return best;
}

/* Bytes of the cheapest transfer from held to to. */
static double
transfer_bytes(const struct world *w, size_t held, size_t to)
{
    size_t d = delta_of(w, held, to);
    uint64_t full = model_variant(w, to)->size_bytes;

    if (d != SIZE_MAX && w->in->deltas[d].size_bytes < full)
        return (double)w->in->deltas[d].size_bytes;
    return (double)full;
}

/* ---- setting up ---------------------------------------------------------- */

static void
world_free(struct world *w)
{
    free(w->model_var);
    free(w->var_model);
    free(w->u);
    free(w->cpb);
    free(w->cum);
    free(w->scratch);
    free(w->scratch_reasons);
    free(w->table);
}

static enum replay_status
world_init(struct world *w, const struct policy_config *cfg,
           const struct policy_input *in, const struct replay_scenario *sc)
{
    const struct replay_trace *tr = &sc->trace;
    size_t vc = in->variant_count;
    double *row = NULL;

    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    w->in = in;
    w->sc = sc;
    w->n = sc->step_count;
    if (w->n == 0 || vc == 0 || !tr->t_s || !tr->bps || tr->count == 0 ||
        !(sc->end_s > sc->steps[w->n - 1].t_s))
        return REPLAY_BAD_ARGUMENT;
    for (size_t k = 1; k < w->n; k++)
        if (!(sc->steps[k].t_s > sc->steps[k - 1].t_s))
            return REPLAY_BAD_ARGUMENT;
    for (size_t i = 0; i < tr->count; i++)
        if (!(tr->bps[i] >= 0) || !isfinite(tr->bps[i]) ||
            (i > 0 && !(tr->t_s[i] > tr->t_s[i - 1])))
            return REPLAY_BAD_ARGUMENT;

    w->model_var = calloc(vc, sizeof(*w->model_var));
    w->var_model = calloc(vc, sizeof(*w->var_model));
    w->scratch = calloc(vc, sizeof(*w->scratch));
    w->scratch_reasons = calloc(vc, sizeof(*w->scratch_reasons));
    w->table = malloc(policy_table_size(in));
    w->cum = calloc(tr->count, sizeof(*w->cum));
    w->cpb = calloc(w->n, sizeof(*w->cpb));
    row = calloc(vc, sizeof(*row));
    if (!w->model_var || !w->var_model || !w->scratch ||
        !w->scratch_reasons || !w->table || !w->cum || !w->cpb || !row)
        goto nomem;
    w->in_table = *in;
    w->in_table.table =
        policy_table_build(in, w->table, policy_table_size(in));
    in = w->in = &w->in_table;
    w->m = policy_offered(in, &sc->steps[0].report, w->model_var);
    if (w->m == 0) {
        free(row);
        return REPLAY_BAD_ARGUMENT;
    }
    w->u = calloc(w->n * w->m, sizeof(*w->u));
    if (!w->u)
        goto nomem;
    for (size_t i = 0; i < vc; i++)
        w->var_model[i] = w->m;
    for (size_t j = 0; j < w->m; j++)
        w->var_model[w->model_var[j]] = j;
    for (size_t k = 0; k < w->n; k++) {
        if (policy_utilities(cfg, in, &sc->steps[k].report, w->scratch, row,
                             &w->cpb[k]) != POLICY_OK) {
            free(row);
            return REPLAY_BAD_ARGUMENT;
        }
        memcpy(&w->u[k * w->m], row, w->m * sizeof(*row));
    }
    free(row);
    for (size_t i = 1; i < tr->count; i++)
        w->cum[i] = w->cum[i - 1] + (tr->t_s[i] - tr->t_s[i - 1]) *
                                        tr->bps[i - 1];
    w->init = w->m;
    if (sc->steps[0].report.has_current)
        for (size_t j = 0; j < w->m; j++)
            if (strcmp(model_variant(w, j)->blob_hex,
                       sc->steps[0].report.current_hex) == 0)
                w->init = j;
    return REPLAY_OK;
nomem:
    free(row);
    return REPLAY_NO_MEMORY;
}

/* ---- the oracle -------------------------------------------------------- */

struct plan {
    double *v;                    /* (n + 1) x (m + 1) values */
    int *to;                      /* n x (m + 1): -1 keep, else model */
    size_t *next;                 /* n x (m + 1): the report after it */
    double *tc;                   /* n x (m + 1): when the new model runs */
    double *run;                  /* m x (n + 1) prefix run values */
};

static void
plan_free(struct plan *p)
{
    free(p->v);
    free(p->to);
    free(p->next);
    free(p->tc);
    free(p->run);
}

/* The first report index after k at or after time t (n: none). */
static size_t
report_at_or_after(const struct world *w, size_t k, double t)
{
    size_t lo = k + 1, hi = w->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (w->sc->steps[mid].t_s >= t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Running model from report k's time to t, within reports k..seg. */
static double
run_until(const struct world *w, const struct plan *p, size_t model,
          size_t k, size_t seg, double t)
{
    if (model >= w->m)
        return 0;
    return p->run[model * (w->n + 1) + seg] - p->run[model * (w->n + 1) + k] +
           util(w, seg, model) * (t - w->sc->steps[seg].t_s);
}

/* ---- the simulated UE ------------------------------------------------ */

struct ue {
    size_t held;                  /* model, or m for nothing */
    size_t fetch;                 /* model in flight, or m */
    bool fetch_delta;
    double fetch_total;           /* bytes */
    double fetch_done;
    double fetch_cpb;             /* cost per byte at its start */
    size_t fetch_step;            /* the report that started it */
    enum replay_strategy strategy;
    double history[HISTORY_MAX];
    size_t history_count;
};

/* What the strategy answers at report k: a model to move to (m: none,
 * keep when it is held) and whether by delta. */
struct move {
    size_t to;
    bool delta;
    double delta_bytes;
};

static void
report_fill(const struct world *w, const struct ue *ue, size_t k,
            struct proto_report *r)
{
    *r = w->sc->steps[k].report;
    r->has_current = ue->held < w->m;
    if (r->has_current)
        memcpy(r->current_hex, model_variant(w, ue->held)->blob_hex,
               PROTO_HEX_SIZE);
    r->has_fetching = ue->fetch < w->m;
    if (r->has_fetching) {
        memcpy(r->fetching_hex, model_variant(w, ue->fetch)->blob_hex,
               PROTO_HEX_SIZE);
        r->fetching_bytes_done = (uint64_t)ue->fetch_done;
    }
    memcpy(r->downlink_history_bps, ue->history,
           ue->history_count * sizeof(ue->history[0]));
    r->downlink_history_count = ue->history_count;
    if (!r->has_downlink_bps && ue->history_count > 0) {
        r->downlink_bps = ue->history[ue->history_count - 1];
        r->has_downlink_bps = true;
    }
}

static enum replay_status
decide_policy(const struct world *w, const struct policy_config *cfg,
              const struct ue *ue, size_t k, struct move *out)
{
    struct proto_report r;
    struct proto_decision d;

    report_fill(w, ue, k, &r);
    memset(&d, 0, sizeof(d));
    d.candidates = w->scratch;
    d.candidate_reasons = w->scratch_reasons;
    if (policy_select(cfg, w->in, &r, &d) != POLICY_OK)
        return REPLAY_BAD_ARGUMENT;
    if (w->sc->observe)
        w->sc->observe(w->sc->observe_ctx, k, &r, &d, w->in->variants);
    out->to = ue->held;
    out->delta = false;
    if (d.action == PROTO_ACTION_NONE) {
        out->to = w->m;
    } else if (d.action != PROTO_ACTION_KEEP) {
        out->to = w->var_model[d.chosen];
        out->delta = d.action == PROTO_ACTION_DELTA;
        if (out->delta)
            out->delta_bytes = (double)w->in->deltas[d.delta].size_bytes;
    }
    return REPLAY_OK;
}

static void
decide_smallest(const struct world *w, const struct ue *ue, size_t k,
                struct move *out)
{
    size_t best = w->m;

    for (size_t j = 0; j < w->m; j++)
        if (util(w, k, j) > 0 &&
            (best == w->m || model_variant(w, j)->size_bytes <
                                 model_variant(w, best)->size_bytes))
            best = j;
    out->to = best == w->m ? ue->held : best;
    out->delta = false;
    if (best == w->m) {
        out->to = w->m;
    } else if (best != ue->held && best != ue->fetch) {
        size_t d = delta_of(w, ue->held, best);

        if (d != SIZE_MAX && w->in->deltas[d].size_bytes <
                                 model_variant(w, best)->size_bytes) {
            out->delta = true;
            out->delta_bytes = (double)w->in->deltas[d].size_bytes;
        }
    } else if (best == ue->fetch) {
        out->delta = ue->fetch_delta;
    }
}

/* Tells sc->on_switch: from (m: nothing) replaced by to, or an abort of
 * from (aborted). */
static void
tell_switch(const struct world *w, enum replay_strategy strategy,
            size_t step, double t_s, size_t from, size_t to, double bytes,
            bool aborted)
{
    if (!w->sc->on_switch)
        return;
    w->sc->on_switch(w->sc->observe_ctx, strategy, step, t_s,
                     from < w->m ? model_variant(w, from) : NULL,
                     aborted ? NULL : model_variant(w, to), bytes);
}

static void
ue_abort(const struct world *w, struct ue *ue, size_t k,
         struct replay_result *res)
{
    if (ue->fetch < w->m) {
        res->aborts++;
        tell_switch(w, ue->strategy, ue->fetch_step, w->sc->steps[k].t_s,
                    ue->fetch, w->m, ue->fetch_done, true);
    }
    ue->fetch = w->m;
}

/* Follows mv at report k. */
static void
ue_apply(const struct world *w, struct ue *ue, size_t k,
         const struct move *mv, struct replay_result *res)
{
    if (mv->to >= w->m || mv->to == ue->held) {
        ue_abort(w, ue, k, res);
        return;
    }
    if (mv->to == ue->fetch && mv->delta == ue->fetch_delta)
        return;
    ue_abort(w, ue, k, res);
    ue->fetch = mv->to;
    ue->fetch_delta = mv->delta;
    ue->fetch_total = mv->delta
                          ? mv->delta_bytes
                          : (double)model_variant(w, mv->to)->size_bytes;
    ue->fetch_done = 0;
    ue->fetch_cpb = w->cpb[k];
    ue->fetch_step = k;
}

/* Runs model over [t0, t1] of report k. */
static void
run_span(const struct world *w, size_t k, size_t model, double t0, double t1,
         struct replay_result *res)
{
    double u = util(w, k, model);

    if (t1 <= t0)
        return;
    res->run_value += u * (t1 - t0);
    if (u <= 0)
        res->unrunnable_s += t1 - t0;
}

/* From report k to the next: transfer and run. */
static void
ue_advance(const struct world *w, struct ue *ue, size_t k,
           struct replay_result *res)
{
    double t0 = w->sc->steps[k].t_s, t1 = step_end(w, k);
    double b0 = bits_at(w, t0), b1 = bits_at(w, t1);
    double moved;

    if (ue->fetch < w->m) {
        double left = ue->fetch_total - ue->fetch_done;
        double tc = time_at(w, b0 + left * 8.0);

        if (left <= 0)
            tc = t0;
        if (tc <= t1) {
            moved = left > 0 ? left : 0;
            run_span(w, k, ue->held, t0, tc, res);
            run_span(w, k, ue->fetch, tc, t1, res);
            tell_switch(w, ue->strategy, ue->fetch_step, tc, ue->held,
                        ue->fetch, ue->fetch_total, false);
            ue->held = ue->fetch;
            ue->fetch = w->m;
            res->switches++;
        } else {
            moved = (b1 - b0) / 8.0;
            if (moved > left)
                moved = left;
            ue->fetch_done += moved;
            run_span(w, k, ue->held, t0, t1, res);
        }
        res->bytes += moved;
        res->cost += moved * ue->fetch_cpb;
    } else {
        run_span(w, k, ue->held, t0, t1, res);
    }
    if (ue->history_count == HISTORY_MAX) {
        memmove(ue->history, ue->history + 1,
                (HISTORY_MAX - 1) * sizeof(ue->history[0]));
        ue->history_count--;
    }
    ue->history[ue->history_count++] = (b1 - b0) / (t1 - t0);
}

/* The dynamic program: p's values, moves and run prefixes. */
static enum replay_status
plan_build(const struct world *w, struct plan *pp)
{
    size_t cols = w->m + 1, n = w->n;
    struct plan p;
    size_t k;

    memset(&p, 0, sizeof(p));
    p.v = calloc((n + 1) * cols, sizeof(*p.v));
    p.to = calloc(n * cols, sizeof(*p.to));
    p.next = calloc(n * cols, sizeof(*p.next));
    p.tc = calloc(n * cols, sizeof(*p.tc));
    p.run = calloc(w->m * (n + 1), sizeof(*p.run));
    if (!p.v || !p.to || !p.next || !p.tc || !p.run) {
        plan_free(&p);
        return REPLAY_NO_MEMORY;
    }
    for (size_t j = 0; j < w->m; j++)
        for (k = 0; k < n; k++)
            p.run[j * (n + 1) + k + 1] =
                p.run[j * (n + 1) + k] +
                util(w, k, j) * (step_end(w, k) - w->sc->steps[k].t_s);

    for (k = n; k-- > 0;) {
        double t0 = w->sc->steps[k].t_s, b0 = bits_at(w, t0);

        for (size_t h = 0; h < cols; h++) {
            double best = util(w, k, h) * (step_end(w, k) - t0) +
                          p.v[(k + 1) * cols + h];
            int to = -1;
            size_t nx = k + 1;
            double at = t0;

            for (size_t j = 0; j < w->m; j++) {
                double bytes, tc, val;
                size_t k2, seg;

                if (j == h)
                    continue;
                bytes = transfer_bytes(w, h, j);
                tc = time_at(w, b0 + bytes * 8.0);
                if (!(tc <= w->sc->end_s))
                    continue;
                if (tc < t0)
                    tc = t0;
                k2 = report_at_or_after(w, k, tc);
                seg = k2 - 1;
                val = run_until(w, &p, h, k, seg, tc) +
                      util(w, seg, j) * (step_end(w, seg) - tc) -
                      bytes * w->cpb[k] + p.v[k2 * cols + j];
                if (val > best) {
                    best = val;
                    to = (int)j;
                    nx = k2;
                    at = tc;
                }
            }
            p.v[k * cols + h] = best;
            p.to[k * cols + h] = to;
            p.next[k * cols + h] = nx;
            p.tc[k * cols + h] = at;
        }
    }
    *pp = p;
    return REPLAY_OK;
}

/* The most any strategy gets from ue's state at report k (holding, in
 * flight): the plan's value of what it holds (the transfer aborted), or
 * finishing the transfer and the plan's value from then on, whichever is
 * more; *best_to and *best_tc what that does (model, m: keep). */
static double
state_value(const struct world *w, const struct plan *p, const struct ue *ue,
            size_t k, size_t *best_to, double *best_tc)
{
    size_t cols = w->m + 1, h = ue->held;
    double best = p->v[k * cols + h];
    int to = p->to[k * cols + h];

    *best_to = to < 0 ? w->m : (size_t)to;
    *best_tc = to < 0 ? 0 : p->tc[k * cols + h] - w->sc->steps[k].t_s;
    if (ue->fetch < w->m) {
        double t0 = w->sc->steps[k].t_s;
        double left = ue->fetch_total - ue->fetch_done;
        double tc = left > 0 ? time_at(w, bits_at(w, t0) + left * 8.0) : t0;

        if (left < 0)
            left = 0;
        if (tc < t0)
            tc = t0;
        if (tc <= w->sc->end_s) {
            size_t k2 = report_at_or_after(w, k, tc), seg = k2 - 1;
            double val = run_until(w, p, h, k, seg, tc) +
                         util(w, seg, ue->fetch) * (step_end(w, seg) - tc) -
                         left * ue->fetch_cpb + p->v[k2 * cols + ue->fetch];

            if (val > best) {
                best = val;
                *best_to = ue->fetch;
                *best_tc = tc - t0;
            }
        }
    }
    return best;
}

static size_t
variant_of(const struct world *w, size_t model)
{
    return model < w->m ? w->model_var[model] : SIZE_MAX;
}

/* p: the plan, for sc->regret (NULL: no regrets). */
static enum replay_status
simulate(const struct world *w, enum replay_strategy strategy,
         const struct plan *p, struct replay_result *res)
{
    struct policy_config greedy = *w->cfg;
    struct replay_regret *rg = p ? w->sc->regret : NULL;
    struct ue ue;

    greedy.horizon_s = GREEDY_HORIZON_S;
    greedy.transfer_cost_per_mb = 0;
    memset(&ue, 0, sizeof(ue));
    ue.held = w->init;
    ue.fetch = w->m;
    ue.strategy = strategy;
    for (size_t k = 0; k < w->n; k++) {
        struct move mv;
        enum replay_status rc = REPLAY_OK;
        double got = res->run_value - res->cost;

        if (strategy == REPLAY_SMALLEST)
            decide_smallest(w, &ue, k, &mv);
        else
            rc = decide_policy(w, strategy == REPLAY_GREEDY ? &greedy
                                                            : w->cfg,
                               &ue, k, &mv);
        if (rc != REPLAY_OK)
            return rc;
        if (rg) {
            size_t best_to;

            rg[k].value = state_value(w, p, &ue, k, &best_to, &rg[k].best_tc);
            rg[k].held = variant_of(w, ue.held);
            rg[k].fetch = variant_of(w, ue.fetch);
            rg[k].best_to = variant_of(w, best_to);
            rg[k].u_held = util(w, k, ue.held);
            rg[k].u_best = util(w, k, best_to == w->m ? ue.held : best_to);
        }
        ue_apply(w, &ue, k, &mv, res);
        if (rg) {
            rg[k].to = variant_of(w, ue.fetch);
            rg[k].u_to = util(w, k, ue.fetch == w->m ? ue.held : ue.fetch);
        }
        ue_advance(w, &ue, k, res);
        if (rg) /* what the answer got until the next report */
            rg[k].regret = rg[k].value - (res->run_value - res->cost - got);
    }
    if (rg)
        for (size_t k = 0; k + 1 < w->n; k++)
            rg[k].regret -= rg[k + 1].value;
    return REPLAY_OK;
}

static enum replay_status
oracle(const struct world *w, struct replay_result *res)
{
    size_t cols = w->m + 1, n = w->n;
    struct plan p;
    size_t k, held;
    enum replay_status rc = plan_build(w, &p);

    if (rc != REPLAY_OK)
        return rc;
    /* follow the plan for its figures */
    held = w->init;
    k = 0;
    while (k < n) {
        int to = p.to[k * cols + held];

        if (to < 0) {
            run_span(w, k, held, w->sc->steps[k].t_s, step_end(w, k), res);
            k++;
            continue;
        }
        {
            size_t k2 = p.next[k * cols + held];
            double tc = p.tc[k * cols + held];
            double bytes = transfer_bytes(w, held, (size_t)to);

            for (size_t s = k; s < k2; s++) {
                double a = w->sc->steps[s].t_s, b = step_end(w, s);

                run_span(w, s, held, a, b < tc ? b : tc, res);
                run_span(w, s, (size_t)to, a > tc ? a : tc, b, res);
            }
            res->bytes += bytes;
            res->cost += bytes * w->cpb[k];
            res->switches++;
            tell_switch(w, REPLAY_ORACLE, k, tc, held, (size_t)to, bytes,
                        false);
            held = (size_t)to;
            k = k2;
        }
    }
    plan_free(&p);
    return REPLAY_OK;
}

enum replay_status
replay_run(const struct policy_config *cfg, const struct policy_input *in,
           const struct replay_scenario *sc, enum replay_strategy strategy,
           struct replay_result *out)
{
    struct replay_result res;
    enum replay_status rc;
    struct world w;

    if (!cfg || !in || !sc || !out || !sc->steps)
        return REPLAY_BAD_ARGUMENT;
    rc = world_init(&w, cfg, in, sc);
    if (rc == REPLAY_OK) {
        memset(&res, 0, sizeof(res));
        if (strategy == REPLAY_ORACLE) {
            rc = oracle(&w, &res);
        } else if (sc->regret) {
            struct plan p;

            memset(&p, 0, sizeof(p));
            rc = plan_build(&w, &p);
            if (rc == REPLAY_OK)
                rc = simulate(&w, strategy, &p, &res);
            plan_free(&p);
        } else {
            rc = simulate(&w, strategy, NULL, &res);
        }
        if (rc == REPLAY_OK) {
            res.utility = res.run_value - res.cost;
            res.duration_s = sc->end_s - sc->steps[0].t_s;
            *out = res;
        }
    }
    world_free(&w);
    return rc;
}
