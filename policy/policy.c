/*
 * The selection policy: estimates every offered variant for one UE report,
 * applies the hard and soft constraints, ranks what is left by the UE's
 * preference and explains every loss. Pure: no I/O, clock, globals or
 * allocation; working state is recomputed per pass instead of stored, so
 * the only memory used is the caller's candidates array.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

/*
 * Quality: between two variants whose accuracies differ by at most this,
 * one whose context tags match the report's wins (a "tiny epsilon": a
 * tenth of an accuracy point).
 */
#define CONTEXT_ACCURACY_EPS 0.001
/* Balanced/saver: a context match adds this to the score (worth one
 * accuracy point at accuracy weight 1). */
#define CONTEXT_SCORE_BONUS 0.01
/* Relative tolerance of limits and ties, against floating-point noise. */
#define REL_EPS 1e-9

#define ROLLOUT_SEPARATOR 0x1f

void
policy_config_default(struct policy_config *out)
{
    /* Balanced: one accuracy point (0.01) is worth 10% of the latency
     * budget, 20% of the energy budget or 10% of the transfer budget. */
    out->balanced = (struct policy_weights){
        .accuracy = 1.0, .latency = 0.1, .energy = 0.05, .transfer = 0.1,
    };
    /* Saver leans hard on cost: one accuracy point is worth 2.5% of the
     * latency or energy budget or 3.3% of the transfer budget. */
    out->saver = (struct policy_weights){
        .accuracy = 1.0, .latency = 0.4, .energy = 0.4, .transfer = 0.3,
    };
    out->hysteresis_accuracy = 0.005; /* half an accuracy point */
    out->hysteresis_score = 0.02;     /* two accuracy points' worth */
    out->low_battery_percent = 20;
    out->high_load = 0.8;
    out->transfer_boost = 3;          /* metered or loaded: transfer x3 */
    out->default_downlink_bps = 10e6; /* 10 Mbit/s */
    out->recheck_after_s = 300;
    out->recheck_degraded_s = 60;     /* conditions may improve soon */
}

unsigned
policy_rollout_bucket(const char *family, const char *ue)
{
    static const unsigned char sep = ROLLOUT_SEPARATOR;
    uint64_t h = proto_fnv1a64_str(PROTO_FNV1A64_OFFSET, family);

    h = proto_fnv1a64_add(h, &sep, 1);
    h = proto_fnv1a64_str(h, ue);
    return (unsigned)(h % 100);
}

/* ---- per-variant evaluation ------------------------------------------ */

/* One competing variant version, estimated for the report. */
struct eval {
    size_t index;                 /* into in->variants */
    const struct proto_variant *v;
    double accuracy;              /* the exit's when an exit is used */
    int exit_index;
    struct proto_estimates est;
    uint64_t transfer_bytes;
    bool has_delta;
    size_t delta;
    bool is_current;              /* report.current is this blob */
    bool hard_ok;
    bool soft_ok;
    double violation;             /* sum of relative soft misses */
    const struct proto_tag *ctx;  /* the variant's first tag the report has */
    double score;                 /* balanced/saver; set by score_eval */
};

/* What every pass needs: the inputs and the effective preference. */
struct run {
    const struct policy_config *cfg;
    const struct policy_input *in;
    const struct proto_report *r;
    bool has_bucket;
    unsigned bucket;
    enum proto_preference pref;   /* after the battery rule */
    struct policy_weights w;      /* after the network rule */
    bool low_battery;
    bool busy_network;
    /* score denominators: the requirement, else the largest value among
     * the variants that meet the hard constraints */
    double lat_den;
    double dl_den;
    double energy_den;
    bool energy_known;            /* every hard-ok variant has an energy */
};

static void
reason_add(struct proto_reasons *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reason_add(struct proto_reasons *rs, const char *fmt, ...)
{
    va_list ap;

    if (rs->count >= PROTO_MAX_REASONS)
        return;
    va_start(ap, fmt);
    vsnprintf(rs->text[rs->count], PROTO_REASON_SIZE, fmt, ap);
    va_end(ap);
    rs->count++;
}

static bool
exceeds(double x, double limit)
{
    return x > limit + REL_EPS * fabs(limit);
}

static bool
differs(double a, double b)
{
    return fabs(a - b) > REL_EPS * fmax(1.0, fmax(fabs(a), fabs(b)));
}

static double
relative_miss(double over, double limit)
{
    return limit > 0 ? over / limit : over;
}

static double
flops_latency_ms(double flops, double gflops)
{
    return flops / (gflops * 1e9) * 1000.0;
}

static const struct proto_class_value *
class_value(const struct proto_class_value *vals, size_t count,
            const struct proto_report *r)
{
    if (!r->has_device_class)
        return NULL;
    for (size_t i = 0; i < count && i < PROTO_MAX_LATENCIES; i++)
        if (strcmp(vals[i].device_class, r->device_class) == 0)
            return &vals[i];
    return NULL;
}

static bool
token_in(const char *tok, const char (*list)[PROTO_TOKEN_SIZE], size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(list[i], tok) == 0)
            return true;
    return false;
}

static const struct proto_tag *
context_match(const struct proto_variant *v, const struct proto_report *r)
{
    for (size_t i = 0; i < v->context_count && i < PROTO_MAX_TAGS; i++)
        for (size_t j = 0; j < r->context_count && j < PROTO_MAX_TAGS; j++)
            if (strcmp(v->context[i].key, r->context[j].key) == 0 &&
                strcmp(v->context[i].value, r->context[j].value) == 0)
                return &v->context[i];
    return NULL;
}

/* Latency, accuracy and energy; early exit when the whole network misses
 * max_latency_ms. Measured per-class numbers describe the whole network,
 * so an exit's latency comes from its flops and its energy from power_mw. */
static void
estimate_compute(const struct run *k, struct eval *e)
{
    const struct proto_report *r = k->r;
    const struct proto_variant *v = e->v;
    const struct proto_class_value *lat =
        class_value(v->latency_ms, v->latency_count, r);
    const struct proto_class_value *energy =
        class_value(v->energy_mj, v->energy_count, r);

    e->accuracy = v->accuracy;
    e->exit_index = -1;
    e->est.latency_ms =
        lat ? lat->value : flops_latency_ms(v->flops, r->gflops);
    if (r->has_max_latency_ms &&
        exceeds(e->est.latency_ms, r->max_latency_ms)) {
        size_t n = v->exit_count < PROTO_MAX_EXITS ? v->exit_count
                                                   : PROTO_MAX_EXITS;

        for (size_t i = n; i-- > 0;) {
            double l = flops_latency_ms(v->exits[i].flops, r->gflops);

            if (!exceeds(l, r->max_latency_ms)) {
                e->exit_index = (int)i;
                e->est.latency_ms = l;
                e->accuracy = v->exits[i].accuracy;
                energy = NULL;
                break;
            }
        }
    }
    e->est.has_energy_mj = true;
    if (energy)
        e->est.energy_mj = energy->value;
    else if (r->has_power_mw)
        e->est.energy_mj = r->power_mw * e->est.latency_ms / 1000.0;
    else
        e->est.has_energy_mj = false;
}

/* Bytes to transfer and download time: none when the UE holds this blob,
 * the smallest ready delta from what it holds, else the full size. */
static void
transfer_compute(const struct run *k, struct eval *e)
{
    const struct proto_report *r = k->r;
    const struct policy_input *in = k->in;
    double bps = r->has_downlink_bps && r->downlink_bps > 0
                     ? r->downlink_bps
                     : k->cfg->default_downlink_bps;

    e->transfer_bytes = e->v->size_bytes;
    e->is_current = r->has_current &&
                    strcmp(r->current_hex, e->v->blob_hex) == 0;
    if (e->is_current) {
        e->transfer_bytes = 0;
        e->est.download_s = 0;
        return;
    }
    for (size_t i = 0; r->has_current && i < in->delta_count; i++) {
        const struct proto_delta *d = &in->deltas[i];

        if (strcmp(d->from_hex, r->current_hex) == 0 &&
            strcmp(d->to_hex, e->v->blob_hex) == 0 &&
            (!e->has_delta || d->size_bytes < e->transfer_bytes)) {
            e->has_delta = true;
            e->delta = i;
            e->transfer_bytes = d->size_bytes;
        }
    }
    e->est.download_s = (double)e->transfer_bytes * 8.0 / bps +
                        (r->has_rtt_ms ? r->rtt_ms / 1000.0 : 0.0);
}

/* Hard constraints; reasons go to rs when given. */
static bool
hard_check(const struct run *k, const struct eval *e,
           struct proto_reasons *rs)
{
    const struct proto_report *r = k->r;
    const struct proto_variant *v = e->v;
    bool ok = true;

    if (e->est.memory_bytes > r->memory_bytes) {
        ok = false;
        if (rs)
            reason_add(rs,
                       "memory: %" PRIu64 " bytes over device.memory_bytes "
                       "%" PRIu64,
                       e->est.memory_bytes, r->memory_bytes);
    }
    if (v->format[0] && r->has_formats &&
        !token_in(v->format, r->formats,
                  r->format_count < PROTO_MAX_FORMATS ? r->format_count
                                                      : PROTO_MAX_FORMATS)) {
        ok = false;
        if (rs)
            reason_add(rs, "format: %s not in device.formats", v->format);
    }
    for (size_t i = 0;
         i < v->accelerator_count && i < PROTO_MAX_ACCELERATORS; i++) {
        if (token_in(v->accelerators[i], r->accelerators,
                     r->accelerator_count < PROTO_MAX_ACCELERATORS
                         ? r->accelerator_count
                         : PROTO_MAX_ACCELERATORS))
            continue;
        ok = false;
        if (rs)
            reason_add(rs, "accelerator: %s not in device.accelerators",
                       v->accelerators[i]);
    }
    return ok;
}

/* Soft constraints; returns the violation sum (0 when all are met), the
 * sum over missed constraints of (estimate - limit) / limit. An unknown
 * energy cannot be checked and is skipped. */
static double
soft_check(const struct run *k, const struct eval *e, bool *out_ok,
           struct proto_reasons *rs)
{
    const struct proto_report *r = k->r;
    double sum = 0;
    bool ok = true;

    if (r->has_max_latency_ms &&
        exceeds(e->est.latency_ms, r->max_latency_ms)) {
        ok = false;
        sum += relative_miss(e->est.latency_ms - r->max_latency_ms,
                             r->max_latency_ms);
        if (rs)
            reason_add(rs, "latency: %g ms over max_latency_ms %g",
                       e->est.latency_ms, r->max_latency_ms);
    }
    if (r->has_min_accuracy && exceeds(r->min_accuracy, e->accuracy)) {
        ok = false;
        sum += relative_miss(r->min_accuracy - e->accuracy, r->min_accuracy);
        if (rs)
            reason_add(rs, "accuracy: %g under min_accuracy %g", e->accuracy,
                       r->min_accuracy);
    }
    if (r->has_max_download_s &&
        exceeds(e->est.download_s, r->max_download_s)) {
        ok = false;
        sum += relative_miss(e->est.download_s - r->max_download_s,
                             r->max_download_s);
        if (rs)
            reason_add(rs, "download: %g s over max_download_s %g",
                       e->est.download_s, r->max_download_s);
    }
    if (r->has_max_energy_mj && e->est.has_energy_mj &&
        exceeds(e->est.energy_mj, r->max_energy_mj)) {
        ok = false;
        sum += relative_miss(e->est.energy_mj - r->max_energy_mj,
                             r->max_energy_mj);
        if (rs)
            reason_add(rs, "energy: %g mJ over max_energy_mj %g",
                       e->est.energy_mj, r->max_energy_mj);
    }
    *out_ok = ok;
    return sum;
}

static void
eval_compute(const struct run *k, size_t index, struct eval *e)
{
    memset(e, 0, sizeof(*e));
    e->index = index;
    e->v = &k->in->variants[index];
    e->est.memory_bytes =
        e->v->memory_bytes ? e->v->memory_bytes : e->v->size_bytes;
    estimate_compute(k, e);
    transfer_compute(k, e);
    e->hard_ok = hard_check(k, e, NULL);
    e->violation = soft_check(k, e, &e->soft_ok, NULL);
    e->ctx = context_match(e->v, k->r);
}

static double
share(double x, double den)
{
    return den > 0 ? x / den : 0;
}

/* score = w.accuracy*accuracy - w.latency*latency/L - w.energy*energy/E
 *         - w.transfer*download_s/D (+ bonus on a context match).
 * Without a known energy for every variant, energy is taken as
 * proportional to run time (constant power), so its share is latency's. */
static void
score_eval(const struct run *k, struct eval *e)
{
    double lat = share(e->est.latency_ms, k->lat_den);
    double energy = k->energy_known ? share(e->est.energy_mj, k->energy_den)
                                    : lat;

    e->score = k->w.accuracy * e->accuracy - k->w.latency * lat -
               k->w.energy * energy -
               k->w.transfer * share(e->est.download_s, k->dl_den);
    if (e->ctx)
        e->score += CONTEXT_SCORE_BONUS;
}

/* ---- competing versions --------------------------------------------- */

/*
 * The offered version of the variant name starting at *pos (versions of a
 * name are adjacent, newest first): the newest whose rollout covers the UE.
 * Moves *pos past the name. false when the name offers nothing.
 */
static bool
offered_next(const struct run *k, size_t *pos, size_t *out_index)
{
    const struct proto_variant *vs = k->in->variants;
    size_t start = *pos;
    size_t end = start + 1;
    bool found = false;

    while (end < k->in->variant_count &&
           strcmp(vs[end].name, vs[start].name) == 0)
        end++;
    for (size_t i = start; i < end && !found; i++) {
        if (vs[i].rollout_percent >= 100 ||
            (k->has_bucket && k->bucket < vs[i].rollout_percent)) {
            *out_index = i;
            found = true;
        }
    }
    *pos = end;
    return found;
}

/* ---- ranking ----------------------------------------------------------- */

enum criterion {
    CRIT_VIOLATION,
    CRIT_CONTEXT,
    CRIT_ACCURACY,
    CRIT_SCORE,
    CRIT_TRANSFER,
    CRIT_LATENCY,
    CRIT_NAME,
};

/*
 * Negative when a ranks before b. Degraded: smaller violation first.
 * Quality: within CONTEXT_ACCURACY_EPS a context match first, then higher
 * accuracy. Balanced/saver: higher score. Then fewer bytes to transfer,
 * lower latency, name.
 */
static int
rank_cmp(const struct run *k, const struct eval *a, const struct eval *b,
         bool by_violation, enum criterion *out_crit)
{
    if (by_violation && differs(a->violation, b->violation)) {
        *out_crit = CRIT_VIOLATION;
        return a->violation < b->violation ? -1 : 1;
    }
    if (k->pref == PROTO_PREFER_QUALITY) {
        if (fabs(a->accuracy - b->accuracy) <= CONTEXT_ACCURACY_EPS &&
            (a->ctx != NULL) != (b->ctx != NULL)) {
            *out_crit = CRIT_CONTEXT;
            return a->ctx ? -1 : 1;
        }
        if (differs(a->accuracy, b->accuracy)) {
            *out_crit = CRIT_ACCURACY;
            return a->accuracy > b->accuracy ? -1 : 1;
        }
    } else if (differs(a->score, b->score)) {
        *out_crit = CRIT_SCORE;
        return a->score > b->score ? -1 : 1;
    }
    if (a->transfer_bytes != b->transfer_bytes) {
        *out_crit = CRIT_TRANSFER;
        return a->transfer_bytes < b->transfer_bytes ? -1 : 1;
    }
    if (differs(a->est.latency_ms, b->est.latency_ms)) {
        *out_crit = CRIT_LATENCY;
        return a->est.latency_ms < b->est.latency_ms ? -1 : 1;
    }
    *out_crit = CRIT_NAME;
    return strcmp(a->v->name, b->v->name) < 0 ? -1 : 1;
}

/* Why loser ranks after chosen, in one reason. */
static void
loss_reason(const struct run *k, const struct eval *loser,
            const struct eval *chosen, bool degraded,
            struct proto_reasons *rs)
{
    enum criterion crit;
    int cmp = rank_cmp(k, loser, chosen, degraded, &crit);

    if (cmp < 0) {
        /* ranks better, but the UE keeps what it holds */
        if (degraded)
            reason_add(rs, "violation %g no smaller than current's %g",
                       loser->violation, chosen->violation);
        else if (k->pref == PROTO_PREFER_QUALITY)
            reason_add(rs,
                       "accuracy %g within hysteresis_accuracy %g of "
                       "current %g",
                       loser->accuracy, k->cfg->hysteresis_accuracy,
                       chosen->accuracy);
        else
            reason_add(rs,
                       "score %g within hysteresis_score %g of current %g",
                       loser->score, k->cfg->hysteresis_score,
                       chosen->score);
        return;
    }
    switch (crit) {
    case CRIT_VIOLATION:
        reason_add(rs, "violation %g over chosen's %g", loser->violation,
                   chosen->violation);
        break;
    case CRIT_CONTEXT:
        reason_add(rs, "context: chosen matches %s=%s", chosen->ctx->key,
                   chosen->ctx->value);
        break;
    case CRIT_ACCURACY:
        reason_add(rs, "accuracy %g below chosen %g", loser->accuracy,
                   chosen->accuracy);
        break;
    case CRIT_SCORE:
        reason_add(rs, "score %g below chosen %g", loser->score,
                   chosen->score);
        break;
    case CRIT_TRANSFER:
        reason_add(rs,
                   "transfer %" PRIu64 " bytes over chosen's %" PRIu64,
                   loser->transfer_bytes, chosen->transfer_bytes);
        break;
    case CRIT_LATENCY:
        reason_add(rs, "latency %g ms over chosen's %g", loser->est.latency_ms,
                   chosen->est.latency_ms);
        break;
    case CRIT_NAME:
        reason_add(rs, "ties with chosen; name sorts after it");
        break;
    }
}

/* ---- the passes ---------------------------------------------------- */

static void
run_init(struct run *k, const struct policy_config *cfg,
         const struct policy_input *in, const struct proto_report *r)
{
    memset(k, 0, sizeof(*k));
    k->cfg = cfg;
    k->in = in;
    k->r = r;
    k->has_bucket = r->has_ue;
    if (r->has_ue)
        k->bucket = policy_rollout_bucket(in->family, r->ue);
    k->pref = r->preference;
    k->low_battery = r->has_battery_percent && !r->charging &&
                     r->battery_percent < cfg->low_battery_percent;
    if (k->pref == PROTO_PREFER_BALANCED && k->low_battery)
        k->pref = PROTO_PREFER_SAVER;
    k->w = k->pref == PROTO_PREFER_SAVER ? cfg->saver : cfg->balanced;
    k->busy_network = r->metered || (r->has_load && r->load >= cfg->high_load);
    if (k->busy_network)
        k->w.transfer *= cfg->transfer_boost;
}

/* Denominators of the score over the variants meeting the hard rules. */
static void
run_denominators(struct run *k)
{
    double max_lat = 0, max_dl = 0, max_energy = 0;
    size_t pos = 0, idx;
    struct eval e;

    k->energy_known = true;
    while (pos < k->in->variant_count) {
        if (!offered_next(k, &pos, &idx))
            continue;
        eval_compute(k, idx, &e);
        if (!e.hard_ok)
            continue;
        max_lat = fmax(max_lat, e.est.latency_ms);
        max_dl = fmax(max_dl, e.est.download_s);
        if (e.est.has_energy_mj)
            max_energy = fmax(max_energy, e.est.energy_mj);
        else
            k->energy_known = false;
    }
    k->lat_den = k->r->has_max_latency_ms && k->r->max_latency_ms > 0
                     ? k->r->max_latency_ms
                     : max_lat;
    k->dl_den = k->r->has_max_download_s && k->r->max_download_s > 0
                    ? k->r->max_download_s
                    : max_dl;
    k->energy_den = k->r->has_max_energy_mj && k->r->max_energy_mj > 0
                        ? k->r->max_energy_mj
                        : max_energy;
}

/* The best eligible variant (feasible, or hard-ok when degraded) and the
 * one the UE holds; false when none is eligible. */
static bool
run_pick(const struct run *k, bool degraded, struct eval *out_best,
         struct eval *out_cur, bool *out_has_cur)
{
    size_t pos = 0, idx;
    bool found = false;
    enum criterion crit;
    struct eval e;

    *out_has_cur = false;
    while (pos < k->in->variant_count) {
        if (!offered_next(k, &pos, &idx))
            continue;
        eval_compute(k, idx, &e);
        if (!e.hard_ok || (!degraded && !e.soft_ok))
            continue;
        score_eval(k, &e);
        if (e.is_current && !*out_has_cur) {
            *out_cur = e;
            *out_has_cur = true;
        }
        if (!found || rank_cmp(k, &e, out_best, degraded, &crit) < 0) {
            *out_best = e;
            found = true;
        }
    }
    return found;
}

/* Whether the UE keeps cur instead of moving to best (hysteresis). */
static bool
keep_current(const struct run *k, const struct eval *best,
             const struct eval *cur, bool degraded)
{
    if (cur->index == best->index)
        return true;
    if (degraded)
        return !differs(cur->violation, best->violation);
    if (k->pref == PROTO_PREFER_QUALITY)
        return best->accuracy - cur->accuracy <=
               k->cfg->hysteresis_accuracy + REL_EPS;
    return best->score - cur->score <= k->cfg->hysteresis_score + REL_EPS;
}

static void
chosen_reasons(const struct run *k, const struct eval *c,
               const struct eval *best, bool keep, struct proto_decision *out)
{
    struct proto_reasons *rs = &out->reasons;

    if (keep && c->index == best->index)
        reason_add(rs, "keep: current is the chosen version");
    else if (keep)
        reason_add(rs, "keep: current within hysteresis of %s", best->v->name);
    if (c->ctx)
        reason_add(rs, "context: matches %s=%s", c->ctx->key, c->ctx->value);
    if (c->exit_index >= 0)
        reason_add(rs, "exit %d: whole network misses max_latency_ms %g",
                   c->exit_index, k->r->max_latency_ms);
    if (out->degraded)
        reason_add(rs, "degraded: smallest violation %g", c->violation);
    if (k->low_battery && k->r->preference == PROTO_PREFER_BALANCED)
        reason_add(rs, "battery: %g%% and not charging, balanced acts as saver",
                   k->r->battery_percent);
    if (k->busy_network && k->pref != PROTO_PREFER_QUALITY)
        reason_add(rs, "network: %s, transfer weight x%g",
                   k->r->metered ? "metered" : "high load",
                   k->cfg->transfer_boost);
}

static void
run_candidates(const struct run *k, const struct eval *chosen, bool has_chosen,
               bool degraded, struct proto_decision *out)
{
    size_t pos = 0, idx;
    struct eval e;

    while (pos < k->in->variant_count) {
        struct proto_candidate *c;
        bool ok;

        if (!offered_next(k, &pos, &idx))
            continue;
        if (has_chosen && idx == chosen->index)
            continue;
        eval_compute(k, idx, &e);
        score_eval(k, &e);
        c = &out->candidates[out->candidate_count++];
        memset(c, 0, sizeof(*c));
        c->variant = idx;
        c->feasible = e.hard_ok && e.soft_ok;
        (void)hard_check(k, &e, &c->reasons);
        (void)soft_check(k, &e, &ok, &c->reasons);
        if (has_chosen && e.hard_ok && (e.soft_ok || degraded))
            loss_reason(k, &e, chosen, degraded, &c->reasons);
        if (e.ctx)
            reason_add(&c->reasons, "context: matches %s=%s", e.ctx->key,
                       e.ctx->value);
    }
}

enum policy_status
policy_select(const struct policy_config *cfg, const struct policy_input *in,
              const struct proto_report *report, struct proto_decision *out)
{
    struct proto_candidate *cands;
    struct eval best, cur, chosen;
    bool has_cur = false, found, degraded = false, keep = false, ok;
    struct run k;

    if (!cfg || !in || !report || !out || !in->family ||
        (in->variant_count > 0 && (!in->variants || !out->candidates)) ||
        (in->delta_count > 0 && !in->deltas) || !(report->gflops > 0) ||
        !(cfg->default_downlink_bps > 0))
        return POLICY_BAD_ARGUMENT;

    cands = out->candidates;
    memset(out, 0, sizeof(*out));
    out->candidates = cands;
    out->exit_index = -1;

    run_init(&k, cfg, in, report);
    run_denominators(&k);
    found = run_pick(&k, false, &best, &cur, &has_cur);
    if (!found) {
        degraded = true;
        found = run_pick(&k, true, &best, &cur, &has_cur);
    }
    if (!found) {
        out->action = PROTO_ACTION_NONE;
        out->recheck_after_s = cfg->recheck_degraded_s;
        run_candidates(&k, NULL, false, false, out);
        return POLICY_OK;
    }

    keep = has_cur && keep_current(&k, &best, &cur, degraded);
    chosen = keep ? cur : best;
    out->chosen = chosen.index;
    out->estimates = chosen.est;
    out->exit_index = chosen.exit_index;
    out->degraded = degraded;
    if (keep) {
        out->action = PROTO_ACTION_KEEP;
    } else if (chosen.has_delta) {
        out->action = PROTO_ACTION_DELTA;
        out->has_delta = true;
        out->delta = chosen.delta;
    } else {
        out->action = PROTO_ACTION_DOWNLOAD;
    }
    if (degraded)
        (void)soft_check(&k, &chosen, &ok, &out->violations);
    out->recheck_after_s =
        degraded ? cfg->recheck_degraded_s : cfg->recheck_after_s;
    chosen_reasons(&k, &chosen, &best, keep, out);
    run_candidates(&k, &chosen, true, degraded, out);
    return POLICY_OK;
}
