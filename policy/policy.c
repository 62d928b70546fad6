/*
 * The selection policy: estimates every offered variant once for one UE
 * report, applies the hard and soft constraints, weighs what each choice
 * is worth over the horizon (the accuracy the UE actually runs, counting
 * the time a download takes and what its bytes cost) and explains the
 * losses. Pure: no I/O, clock, globals or allocation; the caller's
 * candidates array is the working storage, one entry per competing
 * variant.
 *
 * The objective (README "Selection policy"): choosing v is worth
 *
 *   V(v) = u_cur * t_v + u_v * (H - t_v) - cost_v       (t_v < H)
 *
 * accuracy-seconds, where H is the horizon, u the per-second utility
 * (quality: the accuracy; balanced/saver: the score without transfer)
 * times the share of time the variant is expected to fit in memory (with
 * a memory history: plus the fallback's for the rest, and minus the
 * expected round trips of its dips, see memory_dips),
 * u_cur that of what the UE runs now (0 when it holds nothing runnable),
 * t_v the conservative time until v runs and cost_v its bytes times
 * policy_transfer_cost_per_mb / 1e6. Keeping current is worth u_cur * H,
 * so a switch happens only when its gain after the download,
 * (u_v - u_cur) * (H - t_v), exceeds its cost (plus the hysteresis).
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/reason_text.h"
#include "policy/table.h"

/*
 * Quality: between two choices whose values differ by at most this much
 * accuracy over the horizon, one whose context tags match the report's
 * wins (a "tiny epsilon": a tenth of an accuracy point).
 */
#define CONTEXT_ACCURACY_EPS 0.001
/* Balanced/saver: a context match adds this to the score (worth one
 * accuracy point at accuracy weight 1). */
#define CONTEXT_SCORE_BONUS 0.01
/*
 * device.memory_history_bytes: each sample is the lowest free memory of
 * one minute (the API's definition). Apps start and stop on the scale of
 * minutes, so a minute resolves a dip without flooding the report; 16 of
 * them cover about half the default horizon.
 */
#define MEMORY_SAMPLE_S 60.0
/* Runner-ups chosen in one pass up to this many (indexes on the stack). */
#define TOP_MAX 64
/* Families of up to this many variants are screened (briefs on the
 * stack, 16 bytes each; see run_evaluate); larger ones keep every entry
 * in full. */
#define BRIEF_MAX 512
/* Relative tolerance of limits and ties, against floating-point noise. */
#define REL_EPS POLICY_REL_EPS

#define ROLLOUT_SEPARATOR 0x1f

void
policy_config_default(struct policy_config *out)
{
    /* Balanced: one accuracy point (0.01) is worth 10% of the latency
     * budget or 20% of the energy budget; bytes cost as for quality. */
    out->balanced = (struct policy_weights){
        .accuracy = 1.0, .latency = 0.1, .energy = 0.05, .transfer = 1.0,
    };
    /* Saver leans hard on cost: one accuracy point is worth 2.5% of the
     * latency or energy budget, and bytes cost three times as much. */
    out->saver = (struct policy_weights){
        .accuracy = 1.0, .latency = 0.4, .energy = 0.4, .transfer = 3.0,
    };
    out->hysteresis_accuracy = 0.005; /* half an accuracy point */
    out->hysteresis_score = 0.02;     /* two accuracy points' worth */
    out->low_battery_percent = 20;
    out->high_load = 0.8;
    out->transfer_boost = 3;          /* metered or loaded: bytes x3 */
    out->default_downlink_bps = 10e6; /* 10 Mbit/s */
    out->recheck_after_s = 300;
    out->recheck_degraded_s = 60;     /* conditions may improve soon */
    out->horizon_s = 1800;            /* half an hour of use */
    out->transfer_cost_per_mb = 0.3;  /* 100 MB = 30 accuracy-seconds */
    out->throughput_safety = 0.9;     /* dash.js's bandwidth safety factor */
    out->memory_margin = 0.1;
    out->runner_ups = 5;
    out->recheck_outage_s = 15;
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

double
policy_throughput_estimate(const struct policy_config *cfg,
                           const struct proto_report *r)
{
    double now = r->has_downlink_bps ? r->downlink_bps
                                     : cfg->default_downlink_bps;
    double inv_sum = 0;
    size_t positive = 0;
    size_t n = r->downlink_history_count < PROTO_MAX_HISTORY
                   ? r->downlink_history_count
                   : PROTO_MAX_HISTORY;

    if (r->has_downlink_bps && r->downlink_bps <= 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (r->downlink_history_bps[i] > 0) {
            inv_sum += 1.0 / r->downlink_history_bps[i];
            positive++;
        }
    }
    if (n > 0) {
        /* harmonic mean of the samples that moved bytes, times the share
         * of samples that did (outages in the history count as time
         * without progress) */
        double hm = positive ? (double)positive / inv_sum : 0;
        double low = hm * (double)positive / (double)n;

        if (!r->has_downlink_bps || low < now)
            now = low;
    }
    return now * cfg->throughput_safety;
}

/* What the report says that makes the throughput estimate 0, for the
 * reasons: the report's downlink_bps, else its recent samples. */
static const char *
no_throughput_why(const struct proto_report *r)
{
    return r->has_downlink_bps && r->downlink_bps <= 0
               ? "downlink_bps 0"
               : "every downlink_history_bps sample 0";
}

/* ---- per-variant evaluation ------------------------------------------ */

/* What every pass needs: the inputs and the effective preference. */
struct run {
    const struct policy_config *cfg;
    const struct policy_input *in;
    const struct proto_report *r;
    const struct policy_table *t; /* in's: the per-variant checks read it */
    /* the report's strings as the table's indexes (POLICY_ID_NONE: absent
     * or in no variant, so that it matches none) */
    uint32_t formats[PROTO_MAX_FORMATS];
    size_t format_count;
    uint32_t accelerators[PROTO_MAX_ACCELERATORS];
    size_t accelerator_count;
    uint32_t device_class;
    struct policy_tag tags[PROTO_MAX_TAGS];
    size_t tag_count;
    uint32_t current;
    uint32_t fetching;
    bool has_bucket;
    unsigned bucket;
    enum proto_preference pref;   /* after the battery rule */
    struct policy_weights w;      /* of pref (quality: transfer 1) */
    bool low_battery;
    bool busy_network;
    double horizon_s;
    double bps;                   /* conservative throughput */
    double nominal_bps;           /* the reported (else default) downlink */
    double rtt_s;
    /* over() of the report's max_latency_ms, max_download_s, max_energy_mj */
    double latency_over;
    double download_over;
    double energy_over;
    /* some ready delta starts from current: a transfer may be a delta */
    bool delta_from_current;
    /* per requirement of the table (policy_req): the hard cause of its
     * format and accelerators, PROTO_CAUSE_OUTRANKED when met */
    uint8_t req_cause[POLICY_REQ_MAX];
    double cost_per_byte;         /* accuracy-seconds, all factors in */
    double margin;                /* hysteresis over the horizon */
    /* the larger of margin and (quality) the context's window */
    double tie_window;
    double memory_limit;          /* above it a variant is at risk */
    /* score denominators: the requirement, else the largest value among
     * the variants this device can run at all (format, accelerators; not
     * memory, which comes and goes, so that a score does not jump when an
     * app frees or takes memory) */
    double lat_den;
    double energy_den;
    bool energy_known;            /* every hard-ok variant has an energy */
    double u_cur;                 /* what the UE runs now, per second */
    /* with a memory history: the expected cost per second of current's
     * round trips (dip_cost) while it is held, a download's time too */
    double cur_risk_per_s;
    /* with a memory history: what runs while a dip evicts another choice
     * (current, when the history shows it never dipped out; else nothing)
     * and what fetching it again costs */
    double u_fallback;
    double fallback_cost;
    bool has_cur;                 /* current is offered and runnable */
    size_t cur;                   /* its entry */
    /* current when it is not offered (an older version, or one whose
     * rollout does not cover the UE) and meets the hard rules: what runs
     * while a download does, never a candidate (old_weigh) */
    const struct proto_variant *old;
    size_t old_row;               /* old's row (old_find), when old is set */
    /* current is offered, meets every hard rule but memory, and fitted
     * in some minute of the memory history: a dip may end (ride_out) */
    bool has_held;
    size_t held;                  /* its entry */
    /* nothing is feasible and startable: every value is worth the
     * degraded utility, utility / (1 + violation), as the replay scores
     * what runs (policy_utilities) */
    bool degraded;
    /* riding out the dip that evicts current (has_held): the dip's
     * expected length and what holding current is worth over the
     * horizon then (ride_out) */
    double ride_s;
    double ride_value;
    /* thermal throttling (throttle_init): the fastest compute of the
     * gflops history, how long a slowdown like now's lasts, and the share
     * of minutes faster than now */
    double gflops_ref;
    double throttle_s;
    double throttle_fit;
    bool throttle_kept;           /* current kept through a slowdown */
    /* balanced below the low battery level only while charging: current
     * kept (charge_keep); what the move gains over the horizon as
     * balanced and as saver */
    bool charge_kept;
    /* nothing runs now; the download in flight goes on through a memory
     * dip (resume_in_dip) */
    bool dip_resumed;
    double charge_gain_balanced;
    double charge_gain_saver;
    /* small now, better later (stage_pick): the chosen entry is the
     * first of two transfers, then this entry; the plan's worth */
    bool staged;
    size_t staged_variant;        /* the second transfer's (in->variants) */
    double staged_then_s;
    double staged_then_value;     /* its value straight away */
    double staged_value;
    /* the best entry eligible in the mode (degraded), as the entries are
     * weighed (run_weigh) */
    bool found;
    size_t best;
    double best_cut;              /* below_cut of the best */
    /* screened selects without a memory history: a feasible, startable
     * entry is kept pending, its screen in pend[] at its index among the
     * candidates (whose slot holds nothing until then) and pending[] 1
     * there, and worked out in full only when it may be chosen or listed
     * (pending_finish) */
    bool lazy;
    /* the plain walk (plain_loop) wrote no briefs: screen_briefs writes
     * them when the listing needs them */
    bool briefs_lazy;
    bool last_kept;               /* struct walk's */
    size_t pending_count;
    uint8_t *pending;             /* per kept entry */
    struct pend *pend;
};

/* What a pending entry keeps of its screen (struct run). */
struct pend {
    double bound;                 /* of its value (pending_weigh) */
    /* the bound's terms: its utility's bound times the time it runs
     * (quality: worked out by the walk), and its bytes' cost */
    double gain;
    double cost;
    double ready_s;
    double latency_ms;
    double energy_mj;
    uint16_t variant;
    bool has_energy_mj;
};

/*
 * What listing and counting read of one offered version (screened
 * selects, run_evaluate): its causes in either mode, its violation, and
 * where its full entry is when it was kept (BRIEF_NONE: worked out again
 * if it is listed).
 */
#define BRIEF_NONE UINT16_MAX

struct brief {
    double violation;
    uint16_t variant;             /* index into in->variants */
    uint16_t full;                /* index into the candidates */
    uint8_t cause;                /* cause_of(e, false); degraded, a
                                     brief without its entry fails a
                                     hard rule: the same */
    bool hard_ok;
};

static void throttle_init(struct run *k);

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

/* s1 x s2 y, the numbers as "%.<prec>g" (reason_text.h: as printf
 * spells them, without printf) */
static void
reason_2g(struct proto_reasons *rs, const char *s1, double x, const char *s2,
          double y, int prec)
{
    struct rtext t;

    rt_begin(&t, rs);
    rt_s(&t, s1);
    rt_g(&t, x, prec);
    rt_s(&t, s2);
    rt_g(&t, y, prec);
    rt_end(&t);
}

/* s1 x s2 y, the numbers as PRIu64 */
static void
reason_2u(struct proto_reasons *rs, const char *s1, uint64_t x,
          const char *s2, uint64_t y)
{
    struct rtext t;

    rt_begin(&t, rs);
    rt_s(&t, s1);
    rt_u64(&t, x);
    rt_s(&t, s2);
    rt_u64(&t, y);
    rt_end(&t);
}

/* The least value that exceeds limit (exceeds() compares with it; the
 * report's limits are worked out once per select, see run_init). */
static double
over(double limit)
{
    return limit + REL_EPS * fabs(limit);
}

static bool
exceeds(double x, double limit)
{
    return x > over(limit);
}

static double
max3(double a, double b, double c)
{
    double m = a > b ? a : b;

    return m > c ? m : c;
}

static bool
differs(double a, double b)
{
    return fabs(a - b) > REL_EPS * max3(1.0, fabs(a), fabs(b));
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

static const struct proto_variant *
var_of(const struct run *k, const struct proto_candidate *e)
{
    return &k->in->variants[e->variant];
}

static const struct policy_row *
row_of(const struct run *k, const struct proto_candidate *e)
{
    return &k->t->rows[e->variant];
}

/* The version of row i of the table: a variant, or past them an older
 * version (policy_table.older). For the rules that read a row's version
 * (exits, context), which value the rows of both. */
static inline __attribute__((always_inline)) const struct proto_variant *
var_at(const struct run *k, size_t i)
{
    const struct policy_table *t = k->t;

    return i < t->variant_count ? &t->variants[i]
                                : &t->older[i - t->variant_count];
}

/* The value measured on the report's device class among count class
 * values from first (a row's latencies or energies); false when none. */
static bool
class_value(const struct run *k, size_t first, size_t count, double *out)
{
    const struct policy_class_value *cv = &k->t->class_values[first];

    for (size_t i = 0; i < count; i++) {
        if (cv[i].device_class == k->device_class) {
            *out = cv[i].value;
            return true;
        }
    }
    return false;
}

static bool
measured_latency(const struct run *k, const struct policy_row *row,
                 double *out)
{
    return class_value(k, row->class_first, row->latency_count, out);
}

static bool
measured_energy(const struct run *k, const struct policy_row *row,
                double *out)
{
    return class_value(k, row->class_first + row->latency_count,
                       row->energy_count, out);
}

static bool
id_in(uint32_t id, const uint32_t *list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (list[i] == id)
            return true;
    return false;
}

/* The variant's first context tag that the report also has. */
static inline __attribute__((always_inline)) const struct proto_tag *
context_match(const struct run *k, const struct policy_row *row,
              const struct proto_candidate *e)
{
    const struct policy_tag *tags = &k->t->tags[row->tag_first];

    for (size_t i = 0; i < row->tag_count; i++)
        for (size_t j = 0; j < k->tag_count; j++)
            if (tags[i].key == k->tags[j].key &&
                tags[i].value == k->tags[j].value)
                return &var_at(k, e->variant)->context[i];
    return NULL;
}

/* The deepest exit of v whose latency meets max_latency_ms, when the full
 * network's does not: e runs there (its latency and accuracy), and the
 * whole network's measured energy no longer holds (*energy false). */
static inline __attribute__((always_inline)) void
exit_pick(const struct run *k, const struct proto_variant *v,
          struct proto_candidate *e, bool *energy)
{
    size_t n = v->exit_count < PROTO_MAX_EXITS ? v->exit_count
                                               : PROTO_MAX_EXITS;

    for (size_t i = n; i-- > 0;) {
        double l = flops_latency_ms(v->exits[i].flops, k->r->gflops);

        if (!(l > k->latency_over)) {
            e->exit_index = (int)i;
            e->est.latency_ms = l;
            e->accuracy = v->exits[i].accuracy;
            *energy = false;
            return;
        }
    }
}

/* Latency, accuracy and energy; early exit when the whole network misses
 * max_latency_ms. Measured per-class numbers describe the whole network,
 * so an exit's latency comes from its flops and its energy from power_mw. */
static inline __attribute__((always_inline)) void
estimate_compute(const struct run *k, const struct policy_row *row,
                 struct proto_candidate *e)
{
    const struct proto_report *r = k->r;
    double lat, energy_mj;
    bool energy = measured_energy(k, row, &energy_mj);

    e->accuracy = row->accuracy;
    e->exit_index = -1;
    e->est.latency_ms = measured_latency(k, row, &lat)
                            ? lat
                            : flops_latency_ms(row->flops, r->gflops);
    if (r->has_max_latency_ms && row->has_exits &&
        e->est.latency_ms > k->latency_over)
        exit_pick(k, var_at(k, e->variant), e, &energy);
    e->est.has_energy_mj = true;
    if (energy)
        e->est.energy_mj = energy_mj;
    else if (r->has_power_mw)
        e->est.energy_mj = r->power_mw * e->est.latency_ms / 1000.0;
    else
        e->est.has_energy_mj = false;
}

/* The whole network's latency, for the exit reason. */
static double
full_latency_ms(const struct run *k, const struct proto_candidate *e)
{
    const struct policy_row *row = row_of(k, e);
    double lat;

    return measured_latency(k, row, &lat)
               ? lat
               : flops_latency_ms(row->flops, k->r->gflops);
}

/* The documented download estimate of bytes at the reported downlink. */
static inline __attribute__((always_inline)) double
download_time(const struct run *k, uint64_t bytes)
{
    return bytes == 0 ? k->rtt_s
           : k->nominal_bps > 0
               ? (double)bytes * 8.0 / k->nominal_bps + k->rtt_s
               : INFINITY;
}

/* Until bytes have arrived at the conservative throughput. */
static inline __attribute__((always_inline)) double
ready_time(const struct run *k, uint64_t bytes)
{
    return bytes == 0 ? 0
           : k->bps > 0 ? (double)bytes * 8.0 / k->bps + k->rtt_s
                        : INFINITY;
}

/* Bytes still to transfer: none when the UE holds this blob; what is
 * left of it when it is the download in flight (resumed); the smallest
 * ready delta from what the UE holds when that is less; else the full
 * size. download_s is the documented estimate at the reported downlink;
 * ready_s (the objective's) uses the conservative throughput. */
static inline __attribute__((always_inline)) void
transfer_compute(const struct run *k, const struct policy_row *row,
                 struct proto_candidate *e)
{
    const struct proto_report *r = k->r;
    const struct policy_input *in = k->in;

    e->transfer_bytes = row->size_bytes;
    e->is_current = row->blob == k->current;
    if (e->is_current) {
        e->transfer_bytes = 0;
        return;
    }
    for (size_t i = 0; k->current != POLICY_ID_NONE && i < in->delta_count;
         i++) {
        const struct proto_delta *d = &in->deltas[i];

        /* Only the delta formats the UE decodes (report's accept). */
        bool decodes = d->format == PROTO_DELTA_TENSOR
                           ? r->accept_tensor_delta
                           : !r->refuse_zstd_patch;

        if (decodes && k->t->delta_from[i] == k->current &&
            k->t->delta_to[i] == row->blob &&
            (!e->has_delta || d->size_bytes < e->transfer_bytes)) {
            e->has_delta = true;
            e->delta = i;
            e->transfer_bytes = d->size_bytes;
        }
    }
    if (row->blob == k->fetching) {
        uint64_t done = r->fetching_bytes_done < row->size_bytes
                            ? r->fetching_bytes_done
                            : row->size_bytes;
        uint64_t left = row->size_bytes - done;

        if (!e->has_delta || left <= e->transfer_bytes) {
            e->is_fetching = true;
            e->has_delta = false;
            e->transfer_bytes = left;
        }
    }
    e->est.download_s = download_time(k, e->transfer_bytes);
    e->ready_s = ready_time(k, e->transfer_bytes);
    e->cost = (double)e->transfer_bytes * k->cost_per_byte;
}

/* Hard constraints; reasons go to rs when given. Memory is checked last,
 * so that hard_cause MEMORY means the device could run it with more free
 * memory. Inlined (as soft_check): the copies that check every variant
 * without reasons then make no calls, and a non-leaf's register saves were
 * a third of their cost. */
static inline __attribute__((always_inline)) bool
hard_check(const struct run *k, const struct policy_row *row,
           struct proto_candidate *e, struct proto_reasons *rs)
{
    const struct proto_report *r = k->r;
    const uint32_t *accelerators = &k->t->accelerators[row->accelerator_first];
    bool ok = true;

    /* without reasons: the requirement's cause, worked out per select */
    if (!rs && row->req != POLICY_REQ_NONE) {
        enum proto_cause c = (enum proto_cause)k->req_cause[row->req];

        if (c == PROTO_CAUSE_OUTRANKED &&
            e->est.memory_bytes > r->memory_bytes)
            c = PROTO_CAUSE_MEMORY;
        if (c == PROTO_CAUSE_OUTRANKED)
            return true;
        e->hard_cause = c;
        return false;
    }
    if (row->format != POLICY_ID_NONE && r->has_formats &&
        !id_in(row->format, k->formats, k->format_count)) {
        if (ok)
            e->hard_cause = PROTO_CAUSE_FORMAT;
        ok = false;
        if (rs)
            reason_add(rs, "format: %s not in device.formats",
                       var_of(k, e)->format);
    }
    for (size_t i = 0; i < row->accelerator_count; i++) {
        if (id_in(accelerators[i], k->accelerators, k->accelerator_count))
            continue;
        if (ok)
            e->hard_cause = PROTO_CAUSE_ACCELERATOR;
        ok = false;
        if (rs)
            reason_add(rs, "accelerator: %s not in device.accelerators",
                       var_of(k, e)->accelerators[i]);
    }
    if (e->est.memory_bytes > r->memory_bytes) {
        if (ok)
            e->hard_cause = PROTO_CAUSE_MEMORY;
        ok = false;
        if (rs)
            reason_2u(rs, "memory: ", e->est.memory_bytes,
                      " bytes over device.memory_bytes ", r->memory_bytes);
    }
    return ok;
}

/* Soft constraints; returns the violation sum (0 when all are met), the
 * sum over missed constraints of (estimate - limit) / limit. An unknown
 * energy cannot be checked and is skipped. */
static inline __attribute__((always_inline)) double
soft_check(const struct run *k, struct proto_candidate *e, bool *out_ok,
           struct proto_reasons *rs)
{
    const struct proto_report *r = k->r;
    double sum = 0;
    bool ok = true;

    if (r->has_max_latency_ms &&
        e->est.latency_ms > k->latency_over) {
        if (ok)
            e->soft_cause = PROTO_CAUSE_LATENCY;
        ok = false;
        sum += relative_miss(e->est.latency_ms - r->max_latency_ms,
                             r->max_latency_ms);
        if (rs)
            reason_2g(rs, "latency: ", e->est.latency_ms,
                      " ms over max_latency_ms ", r->max_latency_ms, 6);
    }
    if (r->has_min_accuracy && exceeds(r->min_accuracy, e->accuracy)) {
        if (ok)
            e->soft_cause = PROTO_CAUSE_ACCURACY;
        ok = false;
        sum += relative_miss(r->min_accuracy - e->accuracy, r->min_accuracy);
        if (rs)
            reason_2g(rs, "accuracy: ", e->accuracy, " under min_accuracy ",
                      r->min_accuracy, 6);
    }
    if (r->has_max_download_s &&
        e->est.download_s > k->download_over) {
        if (ok)
            e->soft_cause = PROTO_CAUSE_DOWNLOAD;
        ok = false;
        /* an outage's infinite download is a large, finite miss so that
         * violations still compare */
        sum += isfinite(e->est.download_s)
                   ? relative_miss(e->est.download_s - r->max_download_s,
                                   r->max_download_s)
                   : 1e9;
        if (rs)
            reason_2g(rs, "download: ", e->est.download_s,
                      " s over max_download_s ", r->max_download_s, 6);
    }
    if (r->has_max_energy_mj && e->est.has_energy_mj &&
        e->est.energy_mj > k->energy_over) {
        if (ok)
            e->soft_cause = PROTO_CAUSE_ENERGY;
        ok = false;
        sum += relative_miss(e->est.energy_mj - r->max_energy_mj,
                             r->max_energy_mj);
        if (rs)
            reason_2g(rs, "energy: ", e->est.energy_mj,
                      " mJ over max_energy_mj ", r->max_energy_mj, 6);
    }
    *out_ok = ok;
    return sum;
}

/*
 * The share of the time a variant is expected to keep fitting in memory.
 * With device.memory_floor_bytes (the lowest free memory seen recently)
 * below the free memory now, free memory is taken as spread evenly over
 * [floor, now]: a variant needing m bytes fits (now - m) / (now - floor) of
 * the time (1 at or under the floor). Without a floor: 1 (the margin only
 * breaks near-ties, see rank_cmp).
 */
static double
fit_share(const struct run *k, const struct proto_candidate *e)
{
    const struct proto_report *r = k->r;
    double need = (double)e->est.memory_bytes;
    double now = (double)r->memory_bytes;
    double floor_b = (double)r->memory_floor_bytes;

    if (!r->has_memory_floor_bytes || !(floor_b < now) || need <= floor_b)
        return 1;
    if (need > now)
        return 0;
    return (now - need) / (now - floor_b);
}

/*
 * With device.memory_history_bytes (the low of each of the last minutes):
 * the share of minutes in which the variant fitted is its fit, and each
 * run of minutes in which it did not is a dip, a round trip the UE pays
 * for (down to a model that fits, back up when memory returns). Dips seen
 * over the history's span are expected at the same rate over the horizon:
 * the only estimate of how long a condition lasts that a UE-side report
 * can carry without the future. Without a history: fit_share and the
 * floor, as before.
 */
static void
memory_dips(const struct run *k, struct proto_candidate *e)
{
    const struct proto_report *r = k->r;
    size_t n = r->memory_history_count < PROTO_MAX_HISTORY
                   ? r->memory_history_count
                   : PROTO_MAX_HISTORY;
    size_t below = 0, dips = 0;
    bool was_below = false;

    for (size_t i = 0; i < n; i++) {
        bool is_below = r->memory_history_bytes[i] < e->est.memory_bytes;

        below += is_below;
        dips += is_below && !was_below;
        was_below = is_below;
    }
    e->fit = (double)(n - below) / (double)n;
    e->dips_per_s = (double)dips / ((double)n * MEMORY_SAMPLE_S);
    e->at_risk = below > 0;
}

static inline __attribute__((always_inline)) void
eval_finish(const struct run *k, const struct policy_row *row,
            struct proto_candidate *e);

/* What the ranking needs beyond the hard rules: estimates, transfer, the
 * soft rules, context and memory margin. */
static inline __attribute__((always_inline)) void
eval_rest(const struct run *k, const struct policy_row *row,
          struct proto_candidate *e)
{
    estimate_compute(k, row, e);
    transfer_compute(k, row, e);
    e->violation = soft_check(k, e, &e->soft_ok, NULL);
    eval_finish(k, row, e);
}

/* The rest of eval_rest, after the soft rules. */
static inline __attribute__((always_inline)) void
eval_finish(const struct run *k, const struct policy_row *row,
            struct proto_candidate *e)
{
    e->feasible = e->hard_ok && e->soft_ok;
    e->ctx = context_match(k, row, e);
    e->at_risk = (double)e->est.memory_bytes > k->memory_limit;
    e->fit = fit_share(k, e);
    if (k->r->memory_history_count > 0 &&
        (e->hard_ok || ((e->is_current || e->is_fetching) &&
                        e->hard_cause == PROTO_CAUSE_MEMORY)))
        memory_dips(k, e);
    e->partial = false;
}

/*
 * The one evaluation of a variant. One the device cannot run whatever the
 * memory (format, accelerator) competes for nothing and is ranked by its
 * index only, so the rest waits until it is listed (run_candidates): in
 * a large family most of the per-select work is saved for these.
 */
static inline __attribute__((always_inline)) void
eval_compute(const struct run *k, size_t index, struct proto_candidate *e)
{
    const struct policy_row *row = &k->t->rows[index];

    /* field by field: a whole-struct initialiser becomes rep stos, whose
     * start-up costs more than these stores. First what the hard rules
     * read and what eval_rest leaves as it is. */
    e->variant = index;
    e->hard_cause = PROTO_CAUSE_OUTRANKED;
    e->soft_cause = PROTO_CAUSE_OUTRANKED;
    e->est.memory_bytes = row->memory_bytes;
    e->est.download_s = 0;
    e->est.energy_mj = 0;
    e->has_delta = false;
    e->is_fetching = false;
    e->ready_s = 0;
    e->cost = 0;
    e->dips_per_s = 0;
    e->risk = 0;
    e->utility = 0;
    e->value = 0;
    e->hard_ok = hard_check(k, row, e, NULL);
    if (e->hard_ok || e->hard_cause == PROTO_CAUSE_MEMORY) {
        eval_rest(k, row, e);
        return;
    }
    /* the rest, which eval_rest works out when this one is listed */
    e->is_current = false;
    e->violation = 0;
    e->soft_ok = false;
    e->ctx = NULL;
    e->at_risk = false;
    e->fit = 0;
    e->transfer_bytes = 0;
    e->accuracy = row->accuracy;
    e->exit_index = -1;
    e->est.latency_ms = 0;
    e->est.has_energy_mj = false;
    e->feasible = false;
    e->partial = true;
}

static double
share(double x, double den)
{
    return den > 0 ? x / den : 0;
}

/* Per-second utility. Quality: the accuracy. Balanced/saver, the score
 *   w.accuracy*accuracy + w.latency*(1 - latency/L) + w.energy*(1 - energy/E)
 * (+ bonus on a context match): accuracy plus the shares of the latency
 * and energy budgets a variant leaves unused (none when it is over
 * budget), so that running any variant is worth at least its weighted
 * accuracy, more than running nothing (0). Without a known energy for every variant, energy is taken as
 * proportional to run time (constant power), so its share is latency's. */
static inline __attribute__((always_inline)) double
utility_of(const struct run *k, double accuracy, double latency_ms,
           double energy_mj, bool ctx)
{
    double lat, energy, u;

    if (k->pref == PROTO_PREFER_QUALITY)
        return accuracy;
    lat = fmin(1, share(latency_ms, k->lat_den));
    energy = k->energy_known ? fmin(1, share(energy_mj, k->energy_den))
                             : lat;
    u = k->w.accuracy * accuracy + k->w.latency * (1 - lat) +
        k->w.energy * (1 - energy);
    if (ctx)
        u += CONTEXT_SCORE_BONUS;
    return u > 0 ? u : 0;
}

static inline __attribute__((always_inline)) void
utility_compute(const struct run *k, struct proto_candidate *e)
{
    e->utility = utility_of(k, e->accuracy, e->est.latency_ms,
                            e->est.energy_mj, e->ctx != NULL);
}

/* What running e is worth per second: its utility; in degraded mode
 * discounted by its violation (what the replay scores, and what makes a
 * smaller violation worth more). */
static double
run_utility(const struct run *k, const struct proto_candidate *e)
{
    return k->degraded ? e->utility / (1 + e->violation) : e->utility;
}

/* Whether v can start at all: held, or arrives within the horizon. */
static bool
startable(const struct run *k, const struct proto_candidate *e)
{
    return e->is_current || e->ready_s < k->horizon_s ||
           (e->is_fetching && !(k->bps > 0));
}

/* The expected cost of the memory dips over held_s of holding e: each
 * one fetches the fallback and then e again (its full size). */
static double
dip_cost(const struct run *k, const struct proto_candidate *e, double held_s)
{
    double again = (double)row_of(k, e)->size_bytes * k->cost_per_byte;

    return e->dips_per_s * held_s * (k->fallback_cost + again);
}

/* Per second over the horizon: the utility while it fits, the
 * fallback's (0 without a memory history) while a dip evicts it. */
static double
effective_utility(const struct run *k, const struct proto_candidate *e)
{
    return run_utility(k, e) * e->fit + k->u_fallback * (1 - e->fit);
}

/*
 * Keeping current, which fits now, until its next memory dip and then
 * settling on the fallback: the dips come at dips_per_s / fit per second
 * of fitting (a Poisson process, as dip_cost expects them), the first
 * within the horizon with probability p, after m = p / rate seconds on
 * average. Worth u * m + u_fallback * (H - m) - p * fallback's bytes: the
 * same bytes a move to the fallback pays now, later, and current runs
 * until then. So a move away from current for its expected dips alone
 * never pays: waiting for the dip is worth more.
 */
static double
settle_value(const struct run *k, const struct proto_candidate *e)
{
    double rate = e->dips_per_s / fmax(e->fit, 1.0 / PROTO_MAX_HISTORY);
    double p = 1 - exp(-rate * k->horizon_s);
    double m = p / rate;

    return run_utility(k, e) * m + k->u_fallback * (k->horizon_s - m) -
           k->fallback_cost * p;
}

/* V(v) over the horizon (see the top of the file). */
static inline __attribute__((always_inline)) void
value_compute(const struct run *k, struct proto_candidate *e)
{
    double h = k->horizon_s;
    double u = effective_utility(k, e);

    if (e->is_current) {
        if (e->dips_per_s > 0)
            e->risk = dip_cost(k, e, h);
        e->value = u * h - e->risk;
        if (e->dips_per_s > 0 && e->hard_ok &&
            run_utility(k, e) > k->u_fallback)
            e->value = fmax(e->value, settle_value(k, e));
        return;
    }
    if (!(e->ready_s < h)) {
        e->value = (k->u_cur - k->cur_risk_per_s) * h - e->cost;
        return;
    }
    if (e->dips_per_s > 0)
        e->risk = dip_cost(k, e, h - e->ready_s);
    e->value = (k->u_cur - k->cur_risk_per_s) * e->ready_s +
               u * (h - e->ready_s) - e->cost - e->risk;
}

/* ---- competing versions --------------------------------------------- */

/*
 * Whether version i competes: the newest of its variant name (versions of
 * a name are adjacent, newest first) whose rollout covers the UE. Called
 * for i = 0, 1, ... in order; *name_done (false before the first call)
 * carries whether an earlier version of the name already competes.
 */
static inline __attribute__((always_inline)) bool
offered_at(const struct run *k, size_t i, bool *name_done)
{
    const struct policy_row *row = &k->t->rows[i];

    if (row->starts_name)
        *name_done = false;
    if (*name_done || !(row->rollout_percent >= 100 ||
                        (k->has_bucket && k->bucket < row->rollout_percent)))
        return false;
    *name_done = true;
    return true;
}

/* ---- ranking ----------------------------------------------------------- */

enum criterion {
    CRIT_VIOLATION,
    CRIT_CONTEXT,
    CRIT_MEMORY,
    CRIT_VALUE,
    CRIT_TRANSFER,
    CRIT_LATENCY,
    CRIT_NAME,
};

/*
 * Negative when a ranks before b. Degraded: smaller violation first.
 * Quality: within CONTEXT_ACCURACY_EPS over the horizon a context match
 * first. Near-equal values (within the hysteresis): one that keeps
 * fitting when memory drops first. Then the higher value, fewer bytes to
 * transfer, lower latency, name.
 */
static inline __attribute__((always_inline)) int
rank_cmp(const struct run *k, const struct proto_candidate *a,
         const struct proto_candidate *b, bool by_violation,
         enum criterion *out_crit)
{
    double dv = a->value - b->value;

    /* values further apart than both near-tie windows: the value decides
     * (the checks below in short) */
    if (!by_violation && fabs(dv) > k->tie_window &&
        differs(a->value, b->value)) {
        *out_crit = CRIT_VALUE;
        return dv > 0 ? -1 : 1;
    }
    if (by_violation && differs(a->violation, b->violation)) {
        *out_crit = CRIT_VIOLATION;
        return a->violation < b->violation ? -1 : 1;
    }
    if (k->pref == PROTO_PREFER_QUALITY &&
        fabs(dv) <= CONTEXT_ACCURACY_EPS * k->horizon_s &&
        (a->ctx != NULL) != (b->ctx != NULL)) {
        *out_crit = CRIT_CONTEXT;
        return a->ctx ? -1 : 1;
    }
    if (fabs(dv) <= k->margin && a->at_risk != b->at_risk) {
        *out_crit = CRIT_MEMORY;
        return a->at_risk ? 1 : -1;
    }
    if (differs(a->value, b->value)) {
        *out_crit = CRIT_VALUE;
        return dv > 0 ? -1 : 1;
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
    return row_of(k, a)->name < row_of(k, b)->name ? -1 : 1;
}

static double
mbit(double bps)
{
    return bps / 1e6;
}

static double
mb(uint64_t bytes)
{
    return (double)bytes / 1e6;
}

/* "gain 0.008 over 1715 s after 85.3 s (96 MB at 9 Mbit/s) = 13.7" */
/* "<ready_s> s (<MB> MB at <Mbit> Mbit/s": when e would run, and why. */
static void
rt_ready(struct rtext *t, const struct run *k, const struct proto_candidate *e)
{
    rt_g(t, e->ready_s, 3);
    rt_s(t, " s (");
    rt_g(t, mb(e->transfer_bytes), 3);
    rt_s(t, " MB at ");
    rt_g(t, mbit(k->bps), 3);
    rt_s(t, " Mbit/s");
}

/* "worth <value> over <horizon> s": an entry's value over the horizon. */
static void
rt_worth(struct rtext *t, const struct run *k, double value)
{
    rt_s(t, "worth ");
    rt_g(t, value, 6);
    rt_s(t, " over ");
    rt_g(t, k->horizon_s, 6);
    rt_s(t, " s");
}

static void
gain_text(const struct run *k, const struct proto_candidate *e, double from_u,
          char *buf, size_t size)
{
    double after = k->horizon_s - e->ready_s;
    struct rtext t;

    rt_begin_buf(&t, buf, size);
    rt_s(&t, "gain ");
    rt_g(&t, effective_utility(k, e) - from_u, 3);
    rt_s(&t, " over ");
    rt_f0(&t, after);
    rt_s(&t, " s after ");
    rt_ready(&t, k, e);
    rt_s(&t, ") = ");
    rt_g(&t, (effective_utility(k, e) - from_u) * after, 3);
    rt_end(&t);
}

/* "does not pay: <gain>, under cost %.3g + hysteresis %.3g" */
static void
no_pay_reason(struct proto_reasons *rs, const char *gain, double cost,
              double margin)
{
    struct rtext t;

    rt_begin(&t, rs);
    rt_s(&t, "does not pay: ");
    rt_s(&t, gain);
    rt_s(&t, ", under cost ");
    rt_g(&t, cost, 3);
    rt_s(&t, " + hysteresis ");
    rt_g(&t, margin, 3);
    rt_end(&t);
}

/* s1 x s2 y s3 z, the numbers as "%g" */
static void
reason_3g(struct proto_reasons *rs, const char *s1, double x, const char *s2,
          double y, const char *s3, double z)
{
    struct rtext t;

    rt_begin(&t, rs);
    rt_s(&t, s1);
    rt_g(&t, x, 6);
    rt_s(&t, s2);
    rt_g(&t, y, 6);
    rt_s(&t, s3);
    rt_g(&t, z, 6);
    rt_end(&t);
}

/* With a memory history: how often e did not fit and what its dips cost,
 * e.g. "memory: under 21200000 bytes in 4 of 16 minutes, 4 dips; round
 * trips cost 76.6 over 1781 s". */
static void
dips_reason(const struct run *k, const struct proto_candidate *e,
            struct proto_reasons *rs)
{
    double n = (double)(k->r->memory_history_count < PROTO_MAX_HISTORY
                            ? k->r->memory_history_count
                            : PROTO_MAX_HISTORY);

    struct rtext t;

    if (n == 0 || e->fit >= 1)
        return;
    rt_begin(&t, rs);
    rt_s(&t, "memory: under ");
    rt_u64(&t, e->est.memory_bytes);
    rt_s(&t, " bytes in ");
    rt_f0(&t, (1 - e->fit) * n);
    rt_s(&t, " of ");
    rt_f0(&t, n);
    rt_s(&t, " minutes, ");
    rt_f0(&t, e->dips_per_s * n * MEMORY_SAMPLE_S);
    rt_s(&t, " dips; round trips cost ");
    rt_g(&t, e->risk, 3);
    rt_s(&t, " over ");
    rt_f0(&t, e->is_current ? k->horizon_s : k->horizon_s - e->ready_s);
    rt_s(&t, " s");
    rt_end(&t);
    if (e->is_current &&
        differs(e->value, effective_utility(k, e) * k->horizon_s - e->risk)) {
        rt_begin(&t, rs);
        rt_s(&t, "memory: keeping it until its next dip (in ");
        rt_f0(&t, e->fit / e->dips_per_s);
        rt_s(&t, " s on average) and the fallback then is worth ");
        rt_g(&t, e->value, 6);
        rt_end(&t);
    }
}

/* Why loser ranks after chosen, in one reason. */
static void
loss_reason(const struct run *k, const struct proto_candidate *loser,
            const struct proto_candidate *chosen, bool degraded,
            struct proto_reasons *rs)
{
    enum criterion crit;
    int cmp = rank_cmp(k, loser, chosen, degraded, &crit);
    bool quality = k->pref == PROTO_PREFER_QUALITY;
    char gain[96];

    if (chosen->is_current && !chosen->hard_ok) {
        reason_add(rs,
                   "does not pay: worth %.6g over %g s, riding out current's "
                   "dip (%.0f s) %.6g",
                   loser->value, k->horizon_s, k->ride_s, k->ride_value);
        return;
    }
    if (!startable(k, loser)) {
        if (isfinite(loser->ready_s)) {
            struct rtext t;

            rt_begin(&t, rs);
            rt_s(&t, "horizon: ");
            rt_g(&t, mb(loser->transfer_bytes), 3);
            rt_s(&t, " MB at ");
            rt_g(&t, mbit(k->bps), 3);
            rt_s(&t, " Mbit/s takes ");
            rt_g(&t, loser->ready_s, 3);
            rt_s(&t, " s, not within horizon_s ");
            rt_g(&t, k->horizon_s, 6);
            rt_end(&t);
        } else
            reason_add(rs,
                       "horizon: no throughput now (%s); %.3g MB cannot "
                       "arrive",
                       no_throughput_why(k->r), mb(loser->transfer_bytes));
        return;
    }
    if (cmp < 0 && k->staged) {
        /* the second transfer of the plan, or worth less than it */
        reason_2g(rs,
                  loser->variant == k->staged_variant
                      ? "later, after chosen: small now, this then, worth "
                      : "small now, better later worth ",
                  k->staged_value, ", this at once ", loser->value, 6);
        return;
    }
    if (cmp < 0) {
        /* ranks better, but the UE keeps what it holds or fetches */
        if (degraded && !differs(loser->violation, chosen->violation))
            reason_2g(rs, "violation ", loser->violation,
                      " no smaller than current's ", chosen->violation, 6);
        else if (degraded) {
            /* a smaller violation whose move does not pay (stays) */
            gain_text(k, loser, effective_utility(k, chosen), gain,
                      sizeof(gain));
            no_pay_reason(rs, gain, loser->cost, k->margin);
        }
        else if (quality)
            reason_3g(rs, "accuracy ", loser->accuracy,
                      " within hysteresis_accuracy ",
                      k->cfg->hysteresis_accuracy, " of current ",
                      chosen->accuracy);
        else
            reason_3g(rs, "score ", loser->utility, " within hysteresis_score ",
                      k->cfg->hysteresis_score, " of current ",
                      chosen->utility);
        return;
    }
    switch (crit) {
    case CRIT_VIOLATION:
        reason_2g(rs, "violation ", loser->violation, " over chosen's ",
                  chosen->violation, 6);
        break;
    case CRIT_CONTEXT:
        reason_add(rs, "context: chosen matches %s=%s", chosen->ctx->key,
                   chosen->ctx->value);
        break;
    case CRIT_MEMORY:
        reason_add(rs,
                   "memory: %" PRIu64 " bytes may not fit when memory drops; "
                   "chosen's %" PRIu64 " does",
                   loser->est.memory_bytes, chosen->est.memory_bytes);
        break;
    case CRIT_VALUE:
        if (differs(loser->utility, chosen->utility) &&
            loser->utility < chosen->utility) {
            if (quality)
                reason_2g(rs, "accuracy ", loser->accuracy, " below chosen ",
                          chosen->accuracy, 6);
            else
                reason_2g(rs, "score ", loser->utility, " below chosen ",
                          chosen->utility, 3);
        } else if (!differs(loser->utility, chosen->utility)) {
            reason_2u(rs, "transfer ", loser->transfer_bytes,
                      " bytes over chosen's ", chosen->transfer_bytes);
        } else if (chosen->is_current) {
            /* better per second, but the switch does not pay */
            gain_text(k, loser, effective_utility(k, chosen), gain,
                      sizeof(gain));
            no_pay_reason(rs, gain, loser->cost, k->margin);
        } else {
            struct rtext t;

            rt_begin(&t, rs);
            rt_s(&t, "does not pay: ");
            rt_g(&t, quality ? loser->accuracy : loser->utility, 6);
            rt_s(&t, " after ");
            rt_ready(&t, k, loser);
            rt_s(&t, ", cost ");
            rt_g(&t, loser->cost, 3);
            rt_s(&t, ") is ");
            rt_worth(&t, k, loser->value);
            rt_s(&t, ", chosen ");
            rt_g(&t, chosen->value, 6);
            rt_end(&t);
        }
        break;
    case CRIT_TRANSFER:
        reason_2u(rs, "transfer ", loser->transfer_bytes,
                  " bytes over chosen's ", chosen->transfer_bytes);
        break;
    case CRIT_LATENCY:
        reason_2g(rs, "latency ", loser->est.latency_ms, " ms over chosen's ",
                  chosen->est.latency_ms, 6);
        break;
    case CRIT_NAME:
        reason_add(rs, "ties with chosen; name sorts after it");
        break;
    }
}

/* ---- the passes ---------------------------------------------------- */

/* Whether in->table was built from in's arrays (policy_table_build). */
static bool
table_fits(const struct policy_input *in)
{
    const struct policy_table *t = in->table;

    if (in->variant_count == 0)
        return true;
    return t && t->variants == in->variants &&
           t->variant_count == in->variant_count &&
           t->delta_count == in->delta_count &&
           t->older_count == (in->older ? in->older_count : 0);
}

/* The report's strings as the table's indexes, once per select. */
static void
run_resolve(struct run *k)
{
    const struct proto_report *r = k->r;
    const struct policy_table *t = k->t;

    k->device_class = POLICY_ID_NONE;
    k->current = POLICY_ID_NONE;
    k->fetching = POLICY_ID_NONE;
    if (!t)
        return;
    for (size_t i = 0; r->has_formats && i < r->format_count &&
                       i < PROTO_MAX_FORMATS; i++)
        k->formats[k->format_count++] = policy_table_find(t, r->formats[i]);
    for (size_t i = 0;
         i < r->accelerator_count && i < PROTO_MAX_ACCELERATORS; i++)
        k->accelerators[k->accelerator_count++] =
            policy_table_find(t, r->accelerators[i]);
    if (r->has_device_class)
        k->device_class = policy_table_find(t, r->device_class);
    for (size_t i = 0; i < r->context_count && i < PROTO_MAX_TAGS; i++) {
        struct policy_tag *tag = &k->tags[k->tag_count];

        tag->key = policy_table_find(t, r->context[i].key);
        tag->value = policy_table_find(t, r->context[i].value);
        if (tag->key != POLICY_ID_NONE && tag->value != POLICY_ID_NONE)
            k->tag_count++;
    }
    if (r->has_current)
        k->current = policy_table_find(t, r->current_hex);
    if (r->has_fetching)
        k->fetching = policy_table_find(t, r->fetching_hex);
    for (size_t i = 0; k->current != POLICY_ID_NONE && i < t->delta_count;
         i++)
        if (t->delta_from[i] == k->current)
            k->delta_from_current = true;
    for (size_t q = 0; q < t->req_count; q++) {
        const struct policy_req *rq = &t->reqs[q];
        enum proto_cause c = PROTO_CAUSE_OUTRANKED;

        if (rq->format != POLICY_ID_NONE && r->has_formats &&
            !id_in(rq->format, k->formats, k->format_count))
            c = PROTO_CAUSE_FORMAT;
        for (size_t j = 0;
             c == PROTO_CAUSE_OUTRANKED && j < rq->accelerator_count; j++)
            if (!id_in(t->accelerators[rq->accelerator_first + j],
                       k->accelerators, k->accelerator_count))
                c = PROTO_CAUSE_ACCELERATOR;
        k->req_cause[q] = (uint8_t)c;
    }
}

static void
run_init(struct run *k, const struct policy_config *cfg,
         const struct policy_input *in, const struct proto_report *r)
{
    double factor;

    memset(k, 0, sizeof(*k));
    k->cfg = cfg;
    k->in = in;
    k->r = r;
    k->t = in->table;
    run_resolve(k);
    k->has_bucket = r->has_ue;
    if (r->has_ue)
        k->bucket = policy_rollout_bucket(in->family, r->ue);
    k->pref = r->preference;
    k->low_battery = r->has_battery_percent && !r->charging &&
                     r->battery_percent < cfg->low_battery_percent;
    if (k->pref == PROTO_PREFER_BALANCED && k->low_battery)
        k->pref = PROTO_PREFER_SAVER;
    k->w = k->pref == PROTO_PREFER_SAVER ? cfg->saver : cfg->balanced;
    if (k->pref == PROTO_PREFER_QUALITY)
        k->w.transfer = 1;
    k->busy_network = r->metered || (r->has_load && r->load >= cfg->high_load);
    factor = k->w.transfer * (k->busy_network ? cfg->transfer_boost : 1);
    k->cost_per_byte = cfg->transfer_cost_per_mb * factor / 1e6;
    k->horizon_s = r->has_horizon_s ? r->horizon_s : cfg->horizon_s;
    k->bps = policy_throughput_estimate(cfg, r);
    k->nominal_bps = r->has_downlink_bps ? r->downlink_bps
                                         : cfg->default_downlink_bps;
    k->rtt_s = r->has_rtt_ms ? r->rtt_ms / 1000.0 : 0.0;
    k->latency_over = over(r->max_latency_ms);
    k->download_over = over(r->max_download_s);
    k->energy_over = over(r->max_energy_mj);
    k->margin = (k->pref == PROTO_PREFER_QUALITY ? cfg->hysteresis_accuracy
                                                 : cfg->hysteresis_score) *
                k->horizon_s;
    k->tie_window =
        k->pref == PROTO_PREFER_QUALITY
            ? fmax(k->margin, CONTEXT_ACCURACY_EPS * k->horizon_s)
            : k->margin;
    k->memory_limit =
        r->has_memory_floor_bytes && r->memory_floor_bytes < r->memory_bytes
            ? (double)r->memory_floor_bytes
            : (double)r->memory_bytes * (1.0 - cfg->memory_margin);
    throttle_init(k);
}

/* Eligibility in a mode: 0 feasible, 1 degraded (hard rules only). */
static inline __attribute__((always_inline)) bool
eligible(const struct run *k, const struct proto_candidate *e, bool degraded)
{
    return e->hard_ok && (degraded || e->soft_ok) && startable(k, e);
}

/*
 * Whether the decision may read e's value (and risk): an entry eligible
 * in the select's mode (k->degraded is the mode policy_select picks in:
 * no entry is feasible and startable), current (held or not) and the
 * download in flight. The value of any other entry only matters when it
 * is listed, and run_candidates works it out then: in a large family
 * most losers miss a requirement and are never weighed.
 */
static inline __attribute__((always_inline)) bool
needs_value(const struct run *k, const struct proto_candidate *e)
{
    return e->is_current || e->is_fetching ||
           (e->hard_ok && (e->soft_ok || k->degraded));
}

/*
 * The value under which an entry ranks after x by rank_cmp's first test
 * (values further apart than both near-tie windows), whatever else it
 * holds: an entry whose value's bound is under it is neither chosen over
 * x nor listed before it. A value v under it is more than tie_window
 * below x, and x - v = g > 3e-9 (1 + 2|x|) with |v| <= |x| + g gives
 * g > 2e-9 max(1, |v|, |x|), twice differs()'s tolerance: the margins are
 * far above the rounding of these sums.
 */
static double
below_cut(const struct run *k, const struct proto_candidate *x)
{
    return x->value - k->tie_window -
           3 * REL_EPS * (1.0 + 2 * fabs(x->value));
}

/*
 * Works out entry i's value and keeps the best eligible entry so far
 * (entries in input order, each against the best before it: what a
 * separate walk over the ranking would pick, without walking the array
 * again). The mode is known by then: eligible entries are feasible and
 * startable unless none is (k->degraded).
 */
static inline __attribute__((always_inline)) void
run_pick(struct run *k, struct proto_candidate *cands, size_t i)
{
    enum criterion crit;

    if (eligible(k, &cands[i], k->degraded) &&
        (!k->found ||
         rank_cmp(k, &cands[i], &cands[k->best], k->degraded, &crit) < 0)) {
        k->best = i;
        k->found = true;
        k->best_cut = below_cut(k, &cands[i]);
    }
}

static inline __attribute__((always_inline)) void
run_weigh(struct run *k, struct proto_candidate *cands, size_t i)
{
    value_compute(k, &cands[i]);
    run_pick(k, cands, i);
}

/* What the screen works out of a variant that is not current, not in
 * flight, not a delta's target and runs whole (screen_one). */
struct screened {
    double latency_ms;
    double energy_mj;             /* 0 unless has_energy_mj */
    double download_s;
    double violation;
    double ready_s;
    enum proto_cause hard_cause;
    enum proto_cause soft_cause;
    bool hard_ok;
    bool partial;
    bool has_energy_mj;
    bool soft_ok;
};

/* What screen_one reads of the select, copied into one local object
 * before the walk (screen_init): the stores of the walk cannot alias it,
 * so that its fields stay in registers. */
struct screen_ctx {
    const struct policy_row *rows;
    const struct policy_class_value *class_values;
    const uint8_t *req_cause;
    uint32_t current;
    uint32_t fetching;
    uint32_t device_class;
    bool slow;                    /* every variant: a delta from current */
    bool special;                 /* current, fetching or slow */
    bool has_min_accuracy;
    bool has_max_download_s;
    bool has_power_mw;
    uint64_t memory_bytes;
    double gflops;
    double latency_limit;         /* latency_over, else INFINITY */
    double max_latency_ms;
    double min_accuracy;
    double download_over;
    double max_download_s;
    double energy_limit;          /* energy_over, else INFINITY */
    double max_energy_mj;
    double power_mw;
    double nominal_bps;
    double bps;
    double rtt_s;
    /* the table's columns (screen_cols); fast: false when the report's
     * class has no slot or every variant is a delta from current; plain:
     * fast, every version offered, every version's requirements have an
     * index, and none is current or in flight */
    bool fast;
    bool plain;
    const uint8_t *col_req;
    const uint64_t *col_memory;
    const double *col_flops;
    const double *col_accuracy;
    const double *col_accuracy_over;
    const double *col_bytes;
    const uint32_t *col_blob;
    const uint8_t *col_flags;     /* of the report's class's slot */
    const double *col_latency;    /* ... */
    const double *col_energy;
    double gflops_1e9;            /* flops_latency_ms's divisor */
};

/* The columns of the report's device class (struct screen_ctx). */
static void
screen_columns(const struct run *k, struct screen_ctx *c)
{
    const struct policy_table *t = k->t;
    size_t n, slot;

    c->fast = false;
    c->plain = false;
    if (!t || !t->has_columns)
        return;
    n = t->variant_count;
    slot = t->class_slots;        /* no class: no variant has values */
    for (size_t s = 0; k->device_class != POLICY_ID_NONE &&
                       s < t->class_slots; s++)
        if (t->class_ids[s] == k->device_class)
            slot = s;
    /* a class without a slot may have values */
    c->fast = !c->slow && (slot < t->class_slots ||
                           k->device_class == POLICY_ID_NONE ||
                           !t->class_overflow);
    c->plain = c->fast && t->all_offered && t->req_all && !c->special;
    c->col_req = t->col_req;
    c->col_memory = t->col_memory;
    c->col_flops = t->col_flops;
    c->col_accuracy = t->col_accuracy;
    c->col_accuracy_over = t->col_accuracy_over;
    c->col_bytes = t->col_bytes;
    c->col_blob = t->col_blob;
    c->col_flags = t->col_flags + slot * n;
    /* the flags of the no-class column never send the walk there */
    c->col_latency = t->col_latency + (slot < t->class_slots ? slot * n : 0);
    c->col_energy = t->col_energy + (slot < t->class_slots ? slot * n : 0);
    c->gflops_1e9 = c->gflops * 1e9;
}

static void
screen_init(const struct run *k, struct screen_ctx *c)
{
    const struct proto_report *r = k->r;

    c->rows = k->t->rows;
    c->class_values = k->t->class_values;
    c->req_cause = k->req_cause;
    c->current = k->current;
    c->fetching = k->fetching;
    c->device_class = k->device_class;
    c->slow = k->delta_from_current;
    c->special = c->slow || c->current != POLICY_ID_NONE ||
                 c->fetching != POLICY_ID_NONE;
    c->has_min_accuracy = r->has_min_accuracy;
    c->has_max_download_s = r->has_max_download_s;
    c->has_power_mw = r->has_power_mw;
    c->memory_bytes = r->memory_bytes;
    c->gflops = r->gflops;
    /* x > INFINITY is false for every x, as the unset limit's check */
    c->latency_limit = r->has_max_latency_ms ? k->latency_over : INFINITY;
    c->max_latency_ms = r->max_latency_ms;
    c->min_accuracy = r->min_accuracy;
    c->download_over = k->download_over;
    c->max_download_s = r->max_download_s;
    c->energy_limit = r->has_max_energy_mj ? k->energy_over : INFINITY;
    c->max_energy_mj = r->max_energy_mj;
    c->power_mw = r->power_mw;
    c->nominal_bps = k->nominal_bps;
    c->bps = k->bps;
    c->rtt_s = k->rtt_s;
    screen_columns(k, c);
}

/* The value of count class values from first on the report's class. */
static inline __attribute__((always_inline)) bool
screen_class(const struct screen_ctx *c, size_t first, size_t count,
             double *out)
{
    const struct policy_class_value *cv = &c->class_values[first];

    for (size_t i = 0; i < count; i++) {
        if (cv[i].device_class == c->device_class) {
            *out = cv[i].value;
            return true;
        }
    }
    return false;
}

/*
 * soft_check's rules and violation sum, in its order, on a screen's
 * estimates (both screen paths: rows and columns); acc_low: the report's
 * min_accuracy exceeds the variant's accuracy (exceeds(), each path
 * reading the limit its way). Sets the screen's soft cause, soft_ok,
 * violation and estimates.
 */
static inline __attribute__((always_inline)) void
screen_soft(const struct screen_ctx *c, struct screened *s, double lat,
            bool acc_low, double acc, bool has_energy, double energy)
{
    enum proto_cause cause = PROTO_CAUSE_OUTRANKED;
    double sum = 0;

    if (lat > c->latency_limit) {
        cause = PROTO_CAUSE_LATENCY;
        sum += relative_miss(lat - c->max_latency_ms, c->max_latency_ms);
    }
    if (acc_low) {
        if (cause == PROTO_CAUSE_OUTRANKED)
            cause = PROTO_CAUSE_ACCURACY;
        sum += relative_miss(c->min_accuracy - acc, c->min_accuracy);
    }
    if (c->has_max_download_s && s->download_s > c->download_over) {
        if (cause == PROTO_CAUSE_OUTRANKED)
            cause = PROTO_CAUSE_DOWNLOAD;
        sum += isfinite(s->download_s)
                   ? relative_miss(s->download_s - c->max_download_s,
                                   c->max_download_s)
                   : 1e9;
    }
    if (has_energy && energy > c->energy_limit) {
        if (cause == PROTO_CAUSE_OUTRANKED)
            cause = PROTO_CAUSE_ENERGY;
        sum += relative_miss(energy - c->max_energy_mj, c->max_energy_mj);
    }
    s->soft_cause = cause;
    s->soft_ok = cause == PROTO_CAUSE_OUTRANKED;
    s->violation = sum;
    s->latency_ms = lat;
    s->energy_mj = energy;
    s->has_energy_mj = has_energy;
}

/*
 * The screen of variant index: its hard rules and, unless it is partial,
 * its estimates and soft rules, exactly as eval_compute and soft_check
 * work them out (the same expressions in the same order), without what
 * only an entry that is kept or listed needs (the transfer times unless
 * the soft rules read them, context, memory margin and dips). False when
 * the variant needs eval_compute's every branch: it is current or in
 * flight, a delta from current may reach it, or an exit may run.
 */
static inline __attribute__((always_inline)) bool
screen_one(const struct run *k, const struct screen_ctx *c, size_t index,
           struct screened *s)
{
    const struct policy_row *row = &c->rows[index];
    enum proto_cause cause = PROTO_CAUSE_OUTRANKED;
    double lat, energy, acc = row->accuracy;
    bool has_energy;

    if (row->req != POLICY_REQ_NONE) {
        cause = (enum proto_cause)c->req_cause[row->req];
    } else {
        struct proto_candidate e;

        e.est.memory_bytes = 0;
        e.hard_cause = PROTO_CAUSE_OUTRANKED;
        if (!hard_check(k, row, &e, NULL))
            cause = e.hard_cause;
    }
    s->hard_cause = cause;
    s->partial = cause != PROTO_CAUSE_OUTRANKED;
    if (s->partial) {
        *s = (struct screened){.hard_cause = cause, .partial = true,
                               .soft_cause = PROTO_CAUSE_OUTRANKED};
        return true;
    }
    s->hard_ok = !(row->memory_bytes > c->memory_bytes);
    if (!s->hard_ok)
        s->hard_cause = PROTO_CAUSE_MEMORY;
    if (c->special &&
        (row->blob == c->current || row->blob == c->fetching || c->slow))
        return false;
    if (!screen_class(c, row->class_first, row->latency_count, &lat))
        lat = flops_latency_ms(row->flops, c->gflops);
    if (row->has_exits && lat > c->latency_limit)
        return false;
    has_energy = true;
    if (!screen_class(c, row->class_first + row->latency_count,
                      row->energy_count, &energy)) {
        if (c->has_power_mw)
            energy = c->power_mw * lat / 1000.0;
        else
            has_energy = false;
    }
    if (!has_energy)
        energy = 0;
    s->download_s = 0;
    if (c->has_max_download_s)
        s->download_s =
            row->size_bytes == 0 ? c->rtt_s
            : c->nominal_bps > 0
                ? (double)row->size_bytes * 8.0 / c->nominal_bps + c->rtt_s
                : INFINITY;
    screen_soft(c, s, lat,
                c->has_min_accuracy && exceeds(c->min_accuracy, acc), acc,
                has_energy, energy);
    return true;
}

/* The entry eval_compute works out for a screened variant that meets
 * the hard rules, from its screen. */
static inline __attribute__((always_inline)) void
screen_entry(const struct run *k, size_t index, const struct screened *s,
             struct proto_candidate *e)
{
    const struct policy_row *row = &k->t->rows[index];

    e->variant = index;
    e->value = 0;
    e->ready_s = s->ready_s;
    e->violation = s->violation;
    e->transfer_bytes = row->size_bytes;
    e->cost = (double)row->size_bytes * k->cost_per_byte;
    e->hard_cause = PROTO_CAUSE_OUTRANKED;
    e->soft_cause = s->soft_cause;
    e->hard_ok = true;
    e->soft_ok = s->soft_ok;
    e->is_current = false;
    e->is_fetching = false;
    e->has_delta = false;
    e->utility = 0;
    e->dips_per_s = 0;
    e->risk = 0;
    e->accuracy = row->accuracy;
    e->est.latency_ms = s->latency_ms;
    e->est.download_s = s->download_s;
    e->est.memory_bytes = row->memory_bytes;
    e->est.energy_mj = s->energy_mj;
    e->est.has_energy_mj = s->has_energy_mj;
    e->exit_index = -1;
    eval_finish(k, row, e);
}

static inline __attribute__((always_inline)) bool
is_pending(const struct run *k, size_t i)
{
    return k->pending_count > 0 && k->pending[i];
}

/*
 * An upper bound of what pending entry e (feasible, startable, not
 * current, in flight or a delta's target, no memory history: no dips and
 * no fallback) is worth over the horizon: value_compute's expression
 * with the utility's bound, the one utility_compute works out with a
 * context match whenever one is possible; the utility times the fit
 * share (at most 1) is no more. Each operation rounds up no less than it
 * would with the smaller utility, so the bound holds in floating point.
 */
static inline __attribute__((always_inline)) double
pending_bound(const struct run *k, struct pend *p)
{
    if (k->pref != PROTO_PREFER_QUALITY) {
        const struct policy_row *row = &k->t->rows[p->variant];
        double u = utility_of(k, row->accuracy, p->latency_ms, p->energy_mj,
                              row->tag_count > 0 && k->tag_count > 0);

        p->gain = u * (k->horizon_s - p->ready_s);
    }
    return k->u_cur * p->ready_s + p->gain - p->cost;
}

/* Works out pending entry i in full into cands[i] (screen_entry from its
 * screen, utility, value), as a kept screened entry is worked out. */
static void
pending_finish(struct run *k, struct proto_candidate *cands, size_t i)
{
    const struct pend *p = &k->pend[i];
    struct screened sc = {
        .latency_ms = p->latency_ms,
        .energy_mj = p->energy_mj,
        .download_s = download_time(k, k->t->rows[p->variant].size_bytes),
        .ready_s = p->ready_s,
        .hard_cause = PROTO_CAUSE_OUTRANKED,
        .soft_cause = PROTO_CAUSE_OUTRANKED,
        .hard_ok = true,
        .has_energy_mj = p->has_energy_mj,
        .soft_ok = true,
    };

    screen_entry(k, p->variant, &sc, &cands[i]);
    utility_compute(k, &cands[i]);
    value_compute(k, &cands[i]);
    k->pending[i] = 0;
    k->pending_count--;
}

/* Pending entry i, weighed as run_weigh weighs an entry: its value's
 * bound first (kept as its value while it is pending), then in full
 * unless the bound shows it ranks after the best so far. */
static inline __attribute__((always_inline)) void
pending_weigh(struct run *k, struct proto_candidate *cands, size_t i)
{
    double bound = pending_bound(k, &k->pend[i]);

    if (k->found && bound < k->best_cut) {
        k->pend[i].bound = bound;
        return;
    }
    pending_finish(k, cands, i);
    run_pick(k, cands, i);
}

/* Every pending entry of cands[0..m) in full. */
static void
pending_finish_all(struct run *k, struct proto_candidate *cands, size_t m)
{
    for (size_t i = 0; k->pending_count > 0 && i < m; i++)
        if (is_pending(k, i))
            pending_finish(k, cands, i);
}

static inline enum proto_cause cause_of(const struct run *k,
                                        const struct proto_candidate *e,
                                        bool degraded);

static inline __attribute__((always_inline)) void
brief_of(const struct run *k, const struct proto_candidate *e, size_t full,
         struct brief *b)
{
    b->violation = e->violation;
    b->variant = (uint16_t)e->variant;
    b->full = (uint16_t)full;
    b->cause = (uint8_t)cause_of(k, e, false);
    b->hard_ok = e->hard_ok;
}

/* Evaluates every offered version once; returns the count of entries in
 * cands. Without briefs every offered version keeps its entry, in input
 * order. With briefs (screening: briefs[0..*out_offered) in input order)
 * only the entries the decision may read keep theirs, in input order:
 * current, the download in flight, the feasible ones and, while no entry
 * is feasible and startable yet (the select may be degraded), every one
 * that meets the hard rules; the others are summed up in their briefs
 * and worked out again only if they are listed (brief_place).
 * One pass works out each entry's estimates, rules and transfer and
 * what the whole set decides (score denominators, current, degraded);
 * a second pass weighs the entries (utility, value) and keeps the best
 * eligible one (k->found, k->best), unless a memory history's fallback
 * needs every utility first (then a pass for each). */
/* What the walk over the offered versions gathers (run_evaluate). */
struct walk {
    double max_lat;
    double max_energy;
    bool name_done;
    bool energy_known;
    bool degraded;
    bool has_cur;
    bool has_held;
    /* the last offered version's entry is kept (cands[m - 1]) */
    bool last_kept;
    size_t m;                     /* entries kept */
    size_t offered;
    size_t cur;
    size_t held;
};

/* Version i, offered, worked out in full in e (its address never
 * escapes, so that its stores cannot alias the inputs) and copied to
 * cands when it is kept (store: false, only counted as kept); screened:
 * kept only when the decision may read it (run_evaluate), its cause
 * counted and, with briefs, summed up in the next one. */
static inline __attribute__((always_inline)) void
walk_entry(struct run *k, size_t i, struct proto_candidate *cands,
           struct brief *briefs, size_t counts[PROTO_CAUSE_COUNT],
           struct walk *w, const bool screened, const bool store)
{
    struct proto_candidate e;
    bool keep = !screened;

    eval_compute(k, i, &e);
    if (!e.partial) {
        /* as fmax (a call) would: a NaN estimate never becomes the max */
        if (e.est.latency_ms > w->max_lat)
            w->max_lat = e.est.latency_ms;
        if (!e.est.has_energy_mj)
            w->energy_known = false;
        else if (e.est.energy_mj > w->max_energy)
            w->max_energy = e.est.energy_mj;
        if (e.is_current && e.hard_ok && !w->has_cur) {
            w->has_cur = true;
            w->cur = w->m;
        }
        if (e.is_current && !e.hard_ok && e.fit > 0 && !w->has_held) {
            w->has_held = true;
            w->held = w->m;
        }
        if (w->degraded && e.feasible && startable(k, &e))
            w->degraded = false;
        keep = keep || e.is_current || e.is_fetching || e.feasible ||
               (e.hard_ok && w->degraded);
    }
    if (screened)
        counts[cause_of(k, &e, false)]++;
    if (briefs)
        brief_of(k, &e, keep ? w->m : BRIEF_NONE, &briefs[w->offered]);
    w->last_kept = keep;
    if (keep && store)
        cands[w->m] = e;
    w->m += keep;
    w->offered++;
}

/* What screen_cols found of a version. */
enum screen_how {
    SCREEN_DONE,                  /* screened */
    SCREEN_FULL,                  /* needs its full entry (walk_entry) */
    SCREEN_ROW,                   /* screen_one's row path */
};

/*
 * The columnar screen of version i: screen_one's result from the table's
 * columns only (one array per field, walked in order), with the same
 * expressions in the same order; partial screens set hard_cause, partial
 * and hard_ok only (what the walk reads of them). SCREEN_FULL exactly
 * when screen_one returns false; SCREEN_ROW, having done nothing, for a
 * version whose requirements have no index. plain: known per select
 * that every version's requirements have an index and that none is
 * current, in flight or a delta's target (screen_ctx.plain).
 */
static inline __attribute__((always_inline)) enum screen_how
screen_cols(const struct screen_ctx *c, size_t i, struct screened *s,
            const bool plain)
{
    unsigned req = c->col_req[i], f;
    double lat, energy = 0, acc;
    bool has_energy = true;

    if (!plain && req == POLICY_REQ_NONE)
        return SCREEN_ROW;
    if (c->req_cause[req] != PROTO_CAUSE_OUTRANKED) {
        s->hard_cause = (enum proto_cause)c->req_cause[req];
        s->partial = true;
        s->hard_ok = false;
        return SCREEN_DONE;
    }
    s->partial = false;
    s->hard_ok = !(c->col_memory[i] > c->memory_bytes);
    s->hard_cause = s->hard_ok ? PROTO_CAUSE_OUTRANKED : PROTO_CAUSE_MEMORY;
    if (!plain && c->special && (c->col_blob[i] == c->current ||
                       c->col_blob[i] == c->fetching || c->slow))
        return SCREEN_FULL;
    f = c->col_flags[i];
    lat = f & POLICY_COL_LATENCY
              ? c->col_latency[i]
              : c->col_flops[i] / c->gflops_1e9 * 1000.0;
    if ((f & POLICY_COL_EXITS) && lat > c->latency_limit)
        return SCREEN_FULL;
    if (f & POLICY_COL_ENERGY)
        energy = c->col_energy[i];
    else if (c->has_power_mw)
        energy = c->power_mw * lat / 1000.0;
    else
        has_energy = false;
    acc = c->col_accuracy[i];
    s->download_s = 0;
    if (c->has_max_download_s) {
        /* download_time's, (double)bytes * 8.0 from the column */
        double bits = c->col_bytes[i] * 8.0;

        s->download_s = bits == 0         ? c->rtt_s
                        : c->nominal_bps > 0 ? bits / c->nominal_bps + c->rtt_s
                                             : INFINITY;
    }
    /* exceeds(min_accuracy, acc), its limit from the column */
    screen_soft(c, s, lat,
                c->has_min_accuracy &&
                    c->min_accuracy > c->col_accuracy_over[i],
                acc, has_energy, energy);
    return SCREEN_DONE;
}

/* The screened walk (run_evaluate with briefs): each offered version's
 * screen, its brief and its cause counted; the kept ones' entries unless
 * store is false (the briefs of a plain walk, screen_briefs). */
static inline __attribute__((always_inline)) void
screen_loop(struct run *k, const struct screen_ctx *ctx_in,
            struct proto_candidate *cands, struct brief *briefs,
            size_t cause_count[PROTO_CAUSE_COUNT], struct walk *out,
            const bool plain, const bool store)
{
    /* locals: the stores below (bytes among them) cannot alias them, so
     * that what the loop reads of them stays in registers */
    const struct screen_ctx c = *ctx_in, *ctx = &c;
    struct walk w = *out;
    /* the same for what the loop reads of k */
    size_t n = k->in->variant_count;
    bool all_offered = k->t->all_offered, lazy = k->lazy, fast = ctx->fast;
    double horizon_s = k->horizon_s;

    for (size_t i = 0; i < n; i++) {
        struct screened sc;
        struct brief *b;
        enum proto_cause cause;
        enum screen_how how;
        bool feasible, start = false;

        /* (set where it is read: for the compiler's flow analysis) */
        if (!plain)
            sc = (struct screened){.soft_cause = PROTO_CAUSE_OUTRANKED};
        if (!plain && !all_offered && !offered_at(k, i, &w.name_done))
            continue;
        how = plain  ? screen_cols(ctx, i, &sc, true)
              : fast ? screen_cols(ctx, i, &sc, false)
                     : SCREEN_ROW;
        if (how == SCREEN_ROW)
            how = screen_one(k, ctx, i, &sc) ? SCREEN_DONE : SCREEN_FULL;
        if (how == SCREEN_FULL) {
            walk_entry(k, i, cands, briefs, cause_count, &w, true, store);
            continue;
        }
        b = &briefs[w.offered++];
        b->variant = (uint16_t)i;
        b->hard_ok = sc.hard_ok;
        b->full = BRIEF_NONE;
        if (sc.partial) {
            b->violation = 0;
            b->cause = (uint8_t)sc.hard_cause;
            cause_count[sc.hard_cause]++;
            continue;
        }
        b->violation = sc.violation;
        /* as fmax (a call) would: a NaN never becomes the max */
        if (sc.latency_ms > w.max_lat)
            w.max_lat = sc.latency_ms;
        if (!sc.has_energy_mj)
            w.energy_known = false;
        else if (sc.energy_mj > w.max_energy)
            w.max_energy = sc.energy_mj;
        feasible = sc.hard_ok && sc.soft_ok;
        if (feasible || (sc.hard_ok && w.degraded)) {
            /* ready_time's, (double)bytes * 8.0 from the column */
            double bits = plain ? ctx->col_bytes[i] * 8.0 : 0;

            sc.ready_s = plain ? (bits == 0      ? 0
                                  : ctx->bps > 0 ? bits / ctx->bps + ctx->rtt_s
                                                 : INFINITY)
                               : ready_time(k, ctx->rows[i].size_bytes);
            start = sc.ready_s < horizon_s;
            if (!store) {
                /* counted as kept only */
            } else if (feasible && start && lazy) {
                struct pend *p = &k->pend[w.m];

                p->ready_s = sc.ready_s;
                p->cost = (plain ? ctx->col_bytes[i]
                                 : (double)ctx->rows[i].size_bytes) *
                          k->cost_per_byte;
                p->gain = (plain ? ctx->col_accuracy[i]
                                 : ctx->rows[i].accuracy) *
                          (horizon_s - sc.ready_s);
                p->latency_ms = sc.latency_ms;
                p->energy_mj = sc.energy_mj;
                p->variant = (uint16_t)i;
                p->has_energy_mj = sc.has_energy_mj;
                k->pending[w.m] = 1;
                k->pending_count++;
            } else {
                /* screen_times' download */
                if (!ctx->has_max_download_s)
                    sc.download_s =
                        download_time(k, ctx->rows[i].size_bytes);
                screen_entry(k, i, &sc, &cands[w.m]);
            }
            b->full = (uint16_t)w.m++;
        }
        if (w.degraded && feasible && start)
            w.degraded = false;
        cause = !sc.hard_ok  ? sc.hard_cause
                : !sc.soft_ok ? sc.soft_cause
                : !start      ? PROTO_CAUSE_HORIZON
                              : PROTO_CAUSE_OUTRANKED;
        b->cause = (uint8_t)cause;
        cause_count[cause]++;
    }
    w.last_kept = w.offered > 0 && briefs[w.offered - 1].full != BRIEF_NONE;
    *out = w;
}

/* screen_cols' energy of version i (flags f, latency lat) on a plain walk;
 * false when it has none. */
static inline __attribute__((always_inline)) bool
plain_energy(const struct screen_ctx *c, size_t i, unsigned f, double lat,
             double *out)
{
    *out = 0;
    if (f & POLICY_COL_ENERGY)
        *out = c->col_energy[i];
    else if (c->has_power_mw)
        *out = c->power_mw * lat / 1000.0;
    else
        return false;
    return true;
}

/* The entry of version i of a plain walk that is kept and not pending
 * (plain_loop), as screen_loop works it out: screen_cols' screen, the
 * ready time it was kept by, screen_times' download. */
static __attribute__((noinline)) void
plain_entry(const struct run *k, const struct screen_ctx *c, size_t i,
            double ready_s, struct proto_candidate *e)
{
    struct screened sc = {.soft_cause = PROTO_CAUSE_OUTRANKED};

    (void)screen_cols(c, i, &sc, true);
    sc.ready_s = ready_s;
    if (!c->has_max_download_s)
        sc.download_s = download_time(k, c->rows[i].size_bytes);
    screen_entry(k, i, &sc, e);
}

/*
 * The walk of a plain select (screen_ctx.plain) without briefs, the
 * common case of a large family: only the versions of the requirements
 * the device meets are visited (the table's req_bits; the others are
 * counted by their requirement's cause, policy_req.variant_count), and
 * each visited version's first failed rule, in the rules' order, is all
 * that is worked out of one that fails a rule
 * (its violation and estimates are read only when it is listed, and
 * screen_briefs works them out then), so most versions cost a few loads
 * and compares. What it counts, keeps and pends is screen_loop's (plain,
 * store) to the bit: the same column expressions, and the kept ones that
 * are not pending screened by screen_cols itself. track_lat,
 * track_energy: whether the score denominators read the largest latency
 * and energy (run_evaluate); energy_known is always worked out.
 */
static inline __attribute__((always_inline)) void
plain_loop(struct run *k, const struct screen_ctx *ctx_in,
           struct proto_candidate *cands,
           size_t cause_count[PROTO_CAUSE_COUNT], struct walk *out,
           const bool track_lat, const bool track_energy)
{
    const struct screen_ctx c = *ctx_in;
    const struct policy_table *t = k->t;
    size_t n = t->variant_count, offered = out->offered;
    size_t kept_at = SIZE_MAX;    /* the last version kept */
    size_t words = t->req_words, m = out->m, pended = 0;
    bool lazy = k->lazy, degraded = out->degraded;
    bool energy_known = out->energy_known;
    /* every version's energy flag, with a power every version has one:
     * energy_known ends with it set (one AND a version) */
    unsigned energy_bits = c.has_power_mw ? POLICY_COL_ENERGY : 0;
    unsigned known_bits = POLICY_COL_ENERGY;
    struct pend *pend = k->pend;
    uint8_t *pending = k->pending;
    double cost_per_byte = k->cost_per_byte;
    double horizon_s = k->horizon_s;
    double max_lat = out->max_lat, max_energy = out->max_energy;
    /* exceeds(min_accuracy, acc): no accuracy exceeds -INFINITY */
    double acc_floor = c.has_min_accuracy ? c.min_accuracy : -INFINITY;
    uint64_t todo[BRIEF_MAX / 64] = {0};

    /* the variants of the requirements the device meets; the others
     * counted by their requirement's cause */
    for (size_t q = 0; q < t->req_count; q++) {
        if (c.req_cause[q] != PROTO_CAUSE_OUTRANKED) {
            cause_count[c.req_cause[q]] += t->reqs[q].variant_count;
            continue;
        }
        for (size_t j = 0; j < words; j++)
            todo[j] |= t->req_bits[q * words + j];
    }
    for (size_t j = 0; j < words; j++) {
        for (uint64_t left = todo[j]; left != 0; left &= left - 1) {
            size_t i = j * 64 + (size_t)__builtin_ctzll(left);
            unsigned f = c.col_flags[i];
            double lat, energy, bits, ready_s;
            bool has_energy;
            enum proto_cause cause;

            lat = f & POLICY_COL_LATENCY
                      ? c.col_latency[i]
                      : c.col_flops[i] / c.gflops_1e9 * 1000.0;
            if ((f & POLICY_COL_EXITS) && lat > c.latency_limit) {
                struct walk w = *out;

                w.m = m;
                w.degraded = degraded;
                w.energy_known =
                    energy_known && (known_bits & POLICY_COL_ENERGY);
                w.max_lat = max_lat;
                w.max_energy = max_energy;
                walk_entry(k, i, cands, NULL, cause_count, &w, true, true);
                m = w.m;
                degraded = w.degraded;
                energy_known = w.energy_known;
                max_lat = w.max_lat;
                max_energy = w.max_energy;
                if (w.last_kept)
                    kept_at = i;
                continue;
            }
            /* screen_loop's largest latency and energy, energy_known */
            if (track_lat && lat > max_lat)
                max_lat = lat;
            has_energy = (f | energy_bits) & POLICY_COL_ENERGY;
            known_bits &= f | energy_bits;
            if (track_energy && has_energy &&
                plain_energy(&c, i, f, lat, &energy) && energy > max_energy)
                max_energy = energy;
            if (c.col_memory[i] > c.memory_bytes) {
                cause_count[PROTO_CAUSE_MEMORY]++;
                continue;
            }
            /* screen_soft's rules in its order, the first missed one */
            cause = PROTO_CAUSE_OUTRANKED;
            if (lat > c.latency_limit) {
                cause = PROTO_CAUSE_LATENCY;
            } else if (acc_floor > c.col_accuracy_over[i]) {
                cause = PROTO_CAUSE_ACCURACY;
            } else if (c.has_max_download_s) {
                double dbits = c.col_bytes[i] * 8.0;
                double download_s = dbits == 0 ? c.rtt_s
                                    : c.nominal_bps > 0
                                        ? dbits / c.nominal_bps + c.rtt_s
                                        : INFINITY;

                if (download_s > c.download_over)
                    cause = PROTO_CAUSE_DOWNLOAD;
            }
            if (cause == PROTO_CAUSE_OUTRANKED && has_energy &&
                plain_energy(&c, i, f, lat, &energy) &&
                energy > c.energy_limit)
                cause = PROTO_CAUSE_ENERGY;
            if (cause != PROTO_CAUSE_OUTRANKED && !degraded) {
                cause_count[cause]++;
                continue;
            }
            /* kept: feasible, or meets the hard rules while no kept entry
             * is feasible and startable (screen_loop's ready time) */
            bits = c.col_bytes[i] * 8.0;
            ready_s = bits == 0      ? 0
                      : c.bps > 0 ? bits / c.bps + c.rtt_s
                                  : INFINITY;
            if (cause == PROTO_CAUSE_OUTRANKED) {
                if (!(ready_s < horizon_s)) {
                    cause = PROTO_CAUSE_HORIZON;
                } else {
                    degraded = false;
                    if (lazy) {
                        struct pend *p = &pend[m];

                        (void)plain_energy(&c, i, f, lat, &energy);
                        p->ready_s = ready_s;
                        p->cost = c.col_bytes[i] * cost_per_byte;
                        p->gain = c.col_accuracy[i] * (horizon_s - ready_s);
                        p->latency_ms = lat;
                        p->energy_mj = energy;
                        p->variant = (uint16_t)i;
                        p->has_energy_mj = has_energy;
                        pending[m] = 1;
                        pended++;
                        cause_count[PROTO_CAUSE_OUTRANKED]++;
                        kept_at = i;
                        m++;
                        continue;
                    }
                }
            }
            cause_count[cause]++;
            plain_entry(k, &c, i, ready_s, &cands[m]);
            kept_at = i;
            m++;
        }
    }
    k->pending_count += pended;
    out->m = m;
    out->degraded = degraded;
    out->energy_known = energy_known && (known_bits & POLICY_COL_ENERGY);
    out->max_lat = max_lat;
    out->max_energy = max_energy;
    out->offered = offered + n;
    out->last_kept = n > 0 && kept_at == n - 1;
}

/* plain_loop, tracking the largest latency and energy only when the
 * score denominators read them (run_evaluate's lat_den, energy_den). */
static void
plain_walk(struct run *k, const struct screen_ctx *ctx,
           struct proto_candidate *cands, size_t counts[PROTO_CAUSE_COUNT],
           struct walk *out)
{
    /* local: the loop's stores to it cannot alias what it reads */
    size_t cause_count[PROTO_CAUSE_COUNT] = {0};
    const struct proto_report *r = k->r;
    bool lat = !(r->has_max_latency_ms && r->max_latency_ms > 0);
    bool energy = !(r->has_max_energy_mj && r->max_energy_mj > 0);

    if (lat && energy)
        plain_loop(k, ctx, cands, cause_count, out, true, true);
    else if (lat)
        plain_loop(k, ctx, cands, cause_count, out, true, false);
    else if (energy)
        plain_loop(k, ctx, cands, cause_count, out, false, true);
    else
        plain_loop(k, ctx, cands, cause_count, out, false, false);
    for (size_t c = 0; c < PROTO_CAUSE_COUNT; c++)
        counts[c] += cause_count[c];
}

/* The briefs of a plain walk (plain_walk), from screen_loop's walk
 * over the columns, when the listing reads them: each offered
 * version's in briefs[0..offered), kept ones naming their entries in
 * cands, which it leaves as they are. */
static void
screen_briefs(struct run *k, struct proto_candidate *cands,
              struct brief *briefs)
{
    struct screen_ctx ctx;
    struct walk w = {.energy_known = true, .degraded = true};
    size_t counts[PROTO_CAUSE_COUNT] = {0};

    if (!k->briefs_lazy)
        return;
    screen_init(k, &ctx);
    screen_loop(k, &ctx, cands, briefs, counts, &w, true, false);
    k->briefs_lazy = false;
}

static void
screen_walk(struct run *k, const struct screen_ctx *ctx,
            struct proto_candidate *cands, struct brief *briefs,
            size_t counts[PROTO_CAUSE_COUNT], struct walk *out)
{
    /* local: the loop's stores to it cannot alias what it reads */
    size_t cause_count[PROTO_CAUSE_COUNT] = {0};

    if (ctx->plain)
        screen_loop(k, ctx, cands, briefs, cause_count, out, true, true);
    else
        screen_loop(k, ctx, cands, briefs, cause_count, out, false, true);
    for (size_t c = 0; c < PROTO_CAUSE_COUNT; c++)
        counts[c] += cause_count[c];
}

/* ---- a held version that is not offered -------------------------------- */

/* The table's row of the version current names when it is not offered:
 * one of the variants (its rollout does not cover the UE, or it is below
 * a newer head) or, past them, an older version. The row count when it
 * is neither (not a live version of the family). */
static size_t
old_find(const struct run *k)
{
    const struct policy_table *t = k->t;
    size_t rows = t ? t->variant_count + t->older_count : 0;

    for (size_t i = 0; k->current != POLICY_ID_NONE && i < rows; i++)
        if (t->rows[i].blob == k->current)
            return i;
    return rows;
}

/*
 * Row i (old_find) as a held current: the one evaluation every row gets
 * (eval_compute: the hard rules, estimates, exits, the soft rules,
 * context, fit and dips) and its utility. False when it misses a hard
 * rule now: then nothing runs. An energy the version does not give is
 * taken, when every offered version's is known, as proportional to run
 * time (utility_of's assumption otherwise): the share of it that counts.
 */
static bool
old_eval(const struct run *k, size_t i, struct proto_candidate *e)
{
    eval_compute(k, i, e);
    if (!e->hard_ok)
        return false;
    if (!e->est.has_energy_mj && k->energy_known) {
        e->est.energy_mj =
            fmin(1, share(e->est.latency_ms, k->lat_den)) * k->energy_den;
        e->est.has_energy_mj = true;
    }
    utility_compute(k, e);
    return true;
}

/*
 * Current when no offered version is it: an older version of its variant
 * still runs on the UE while the download it is sent to runs, so its
 * utility is u_cur, worked out as a held current's is, when it meets the
 * hard rules now; else nothing runs. It is never a candidate: it is not
 * offered (the API's update rule sends its holders to what is), and its
 * row (policy_table.older) is never walked with the others. Out of line:
 * the selects that hold an offered version, or nothing, never run it.
 */
static __attribute__((noinline, cold)) void
old_weigh(struct run *k)
{
    struct proto_candidate e;
    size_t i = old_find(k);

    if (i == (k->t ? k->t->variant_count + k->t->older_count : 0) ||
        !old_eval(k, i, &e))
        return;
    k->old = var_at(k, i);
    k->old_row = i;
    k->u_cur = effective_utility(k, &e);
}

static size_t
run_evaluate(struct run *k, struct proto_candidate *cands,
             struct brief *briefs, size_t *out_offered,
             size_t counts[PROTO_CAUSE_COUNT])
{
    double max_lat, max_energy;
    size_t m;

    struct walk w = {.energy_known = true, .degraded = true};
    struct screen_ctx ctx;

    screen_init(k, &ctx);
    k->lazy = briefs && k->pend && k->r->memory_history_count == 0;
    if (k->lazy)
        memset(k->pending, 0, k->in->variant_count);
    if (!briefs) {
        for (size_t i = 0; i < k->in->variant_count; i++)
            if (offered_at(k, i, &w.name_done))
                walk_entry(k, i, cands, NULL, NULL, &w, false, true);
    } else if (ctx.plain) {
        plain_walk(k, &ctx, cands, counts, &w);
        k->briefs_lazy = true;
    } else {
        screen_walk(k, &ctx, cands, briefs, counts, &w);
    }
    m = w.m;
    k->last_kept = w.last_kept;
    *out_offered = w.offered;
    k->energy_known = w.energy_known;
    k->degraded = w.degraded;
    k->has_cur = w.has_cur;
    k->cur = w.cur;
    k->has_held = w.has_held;
    k->held = w.held;
    max_lat = w.max_lat;
    max_energy = w.max_energy;
    k->lat_den = k->r->has_max_latency_ms && k->r->max_latency_ms > 0
                     ? k->r->max_latency_ms
                     : max_lat;
    k->energy_den = k->r->has_max_energy_mj && k->r->max_energy_mj > 0
                        ? k->r->max_energy_mj
                        : max_energy;
    if (k->r->memory_history_count == 0) {
        /* no fallback: u_cur needs current's utility only, and every
         * entry is weighed in one pass */
        if (k->has_cur) {
            utility_compute(k, &cands[k->cur]);
            k->u_cur = effective_utility(k, &cands[k->cur]);
        } else if (k->r->has_current && !k->has_held) {
            old_weigh(k);
        }
        /* (only entry i's flag changes at i: read once) */
        const uint8_t *pending = k->pending_count > 0 ? k->pending : NULL;

        for (size_t i = 0; i < m; i++) {
            /* first: a pending entry's slot holds nothing yet */
            if (pending && pending[i]) {
                pending_weigh(k, cands, i);
                continue;
            }
            if (cands[i].partial)
                continue;
            utility_compute(k, &cands[i]);
            if (needs_value(k, &cands[i]))
                run_weigh(k, cands, i);
        }
        return m;
    }
    for (size_t i = 0; i < m; i++)
        if (!cands[i].partial)
            utility_compute(k, &cands[i]);
    /* the fallback in a dip: the best feasible variant (degraded: the
     * best that meets the hard rules) that fitted in every minute of the
     * memory history (none: nothing runs) */
    for (size_t i = 0; i < m; i++) {
        const struct proto_candidate *e = &cands[i];

        if (!e->partial && e->hard_ok && (e->feasible || k->degraded) &&
            e->fit >= 1 && run_utility(k, e) > k->u_fallback) {
            k->u_fallback = run_utility(k, e);
            k->fallback_cost =
                (double)row_of(k, e)->size_bytes * k->cost_per_byte;
        }
    }
    /* what runs now is valued as every choice is: with the fallback,
     * and its round trips while a download runs as while it is kept */
    if (k->has_cur) {
        k->u_cur = effective_utility(k, &cands[k->cur]);
        if (cands[k->cur].dips_per_s > 0)
            k->cur_risk_per_s = dip_cost(k, &cands[k->cur], 1);
    } else if (k->r->has_current && !k->has_held)
        old_weigh(k);
    for (size_t i = 0; i < m; i++)
        if (!cands[i].partial && needs_value(k, &cands[i]))
            run_weigh(k, cands, i);
    return m;
}

/*
 * Whether staying with s (held or in flight) beats moving to best.
 * Degraded: best has the smallest violation; a move to it whose gain per
 * second (the degraded utility, u / (1 + violation)) is positive must
 * still pay for its bytes and expected round trips over the horizon, as
 * every switch does. When s is worth more per second than best, the
 * objective and the degraded rule disagree and the rule wins: move.
 */
static bool
stays(const struct run *k, const struct proto_candidate *best,
      const struct proto_candidate *s, bool degraded)
{
    if (degraded && differs(s->violation, best->violation) &&
        !(run_utility(k, best) > run_utility(k, s)))
        return false;
    return best->value - s->value <= k->margin + REL_EPS * fabs(s->value);
}

/*
 * With a memory history, current may not fit now only for a dip: the
 * history's dips under its need last (1 - fit) / dips_per_s seconds on
 * average, and then current runs again with no transfer. Riding the dip
 * out (nothing runs meanwhile) is worth
 *   ride = u_cur * fit * (H - D)
 * (later dips ridden out too: no round trips). It beats moving to pick
 * when pick is worth no more over the horizon (within the hysteresis),
 * and moving to pick for the dip only and back does not pay either:
 * pick runs max(0, D - t_pick) seconds of the dip, which must pay for
 * its bytes and current's again (a download that cannot finish before the
 * dip is expected to end gains nothing).
 */
static bool
ride_out(struct run *k, const struct proto_candidate *cands,
         const struct proto_candidate *pick)
{
    const struct proto_candidate *h = &cands[k->held];
    double again = (double)var_of(k, h)->size_bytes * k->cost_per_byte;
    double in_dip;

    /* a download in flight is not aborted to ride a dip out */
    if (!k->has_held || k->has_cur || !(h->dips_per_s > 0) ||
        pick->is_fetching)
        return false;
    k->ride_s = (1 - h->fit) / h->dips_per_s;
    k->ride_value = run_utility(k, h) * h->fit * (k->horizon_s - k->ride_s);
    /* the hysteresis per second, over the time the gain lasts */
    in_dip = (run_utility(k, pick) - k->margin / k->horizon_s) *
             fmax(0, k->ride_s - pick->ready_s);
    return k->ride_value >= pick->value - k->margin &&
           in_dip <= pick->cost + again;
}

/*
 * Thermal throttling (device.gflops_history, the low of each minute):
 * compute now below the history's fastest minute is a slowdown that is
 * expected to last as long as the history's runs of minutes as slow as
 * now, throttle_s on average (throttle_fit: the share of minutes faster).
 * A switch away from a held current that the slowdown causes must pay
 * within it (and pay for current's bytes again when compute returns):
 *   (u_pick - u_cur - hysteresis per second) * max(0, throttle_s - t_pick)
 *     > cost_pick + cost_current
 * else current is kept. A current that misses the requirements now but
 * met max_latency_ms at the history's fastest compute is ridden out as a
 * memory dip is (ride_out): nothing acceptable runs meanwhile.
 */
static void
throttle_init(struct run *k)
{
    const struct proto_report *r = k->r;
    size_t n = r->gflops_history_count < PROTO_MAX_HISTORY
                   ? r->gflops_history_count
                   : PROTO_MAX_HISTORY;
    size_t slow = 0, runs = 0;
    bool was_slow = false;

    k->gflops_ref = r->gflops;
    for (size_t i = 0; i < n; i++) {
        bool is_slow = !exceeds(r->gflops_history[i], r->gflops);

        k->gflops_ref = fmax(k->gflops_ref, r->gflops_history[i]);
        slow += is_slow;
        runs += is_slow && !was_slow;
        was_slow = is_slow;
    }
    if (runs == 0 || !exceeds(k->gflops_ref, r->gflops))
        return;
    k->throttle_s = (double)slow * MEMORY_SAMPLE_S / (double)runs;
    k->throttle_fit = 1 - (double)slow / (double)n;
}

/* Whether c misses the requirements now only by latency, and only while
 * slow: at the history's fastest compute it meets max_latency_ms. */
static bool
slow_only(const struct run *k, const struct proto_candidate *c)
{
    return c->soft_cause == PROTO_CAUSE_LATENCY && c->violation > 0 &&
           k->r->has_max_latency_ms &&
           !exceeds(c->est.latency_ms * k->r->gflops / k->gflops_ref,
                    k->r->max_latency_ms) &&
           !exceeds(c->violation,
                    relative_miss(c->est.latency_ms - k->r->max_latency_ms,
                                  k->r->max_latency_ms));
}

/*
 * Whether current, held and runnable, should stay through a slowdown.
 * When every variant misses a requirement (degraded) and current misses
 * only latency, only while slow, it still runs meanwhile, discounted by
 * its violation as the pick is by its own: the slowdown changes only how
 * much more the pick is worth per second, for as long as it lasts, as for
 * a current that meets the requirements. (Riding it out as a memory dip,
 * below, is for a current that stops running: a feasible variant exists,
 * so a current that misses is worth nothing meanwhile.)
 */
static bool
throttle_keep(struct run *k, const struct proto_candidate *cands,
              const struct proto_candidate *pick)
{
    const struct proto_candidate *c = &cands[k->cur];
    double again = (double)var_of(k, c)->size_bytes * k->cost_per_byte;
    double rate = k->margin / k->horizon_s;

    if (!(k->throttle_s > 0) || !k->has_cur || pick == c ||
        pick->is_fetching)
        return false;
    if (c->soft_ok || (k->degraded && slow_only(k, c))) {
        k->ride_s = k->throttle_s;
        return (run_utility(k, pick) - run_utility(k, c) - rate) *
                   fmax(0, k->throttle_s - pick->ready_s) <=
               pick->cost + again;
    }
    /* misses the requirements now: only latency, and only while slow */
    if (!slow_only(k, c))
        return false;
    k->ride_s = k->throttle_s;
    k->ride_value = run_utility(k, c) * k->throttle_fit *
                    (k->horizon_s - k->throttle_s);
    return k->ride_value >= pick->value - k->margin &&
           (run_utility(k, pick) - rate) *
                   fmax(0, k->throttle_s - pick->ready_s) <=
               pick->cost + again;
}

/*
 * When nothing meets the hard rules now, the download in flight is of a
 * variant that only misses memory and fitted in some minute of the memory
 * history: a dip, as ride_out reads one for current. When it ends the
 * variant runs, and the bytes done are worth what they were; answering
 * none aborts the download and throws them away (the UE fetches them
 * again when memory returns). So the download goes on (resume), as it
 * does through an outage. Returns its entry in *out_i.
 */
static bool
resume_in_dip(const struct run *k, const struct proto_candidate *cands,
              size_t m, size_t *out_i)
{
    if (k->fetching == POLICY_ID_NONE || k->r->memory_history_count == 0)
        return false;
    for (size_t i = 0; i < m; i++) {
        const struct proto_candidate *e = &cands[i];

        if (!is_pending(k, i) && !e->partial && e->is_fetching &&
            !e->hard_ok && e->hard_cause == PROTO_CAUSE_MEMORY &&
            e->fit > 0 && startable(k, e)) {
            *out_i = i;
            return true;
        }
    }
    return false;
}

/* utility_of's score of e under other weights (charge_keep: saver's). */
static double
score_with(const struct run *k, const struct proto_candidate *e,
           const struct policy_weights *w)
{
    double lat = fmin(1, share(e->est.latency_ms, k->lat_den));
    double energy = k->energy_known
                        ? fmin(1, share(e->est.energy_mj, k->energy_den))
                        : lat;
    double u = w->accuracy * e->accuracy + w->latency * (1 - lat) +
               w->energy * (1 - energy) + (e->ctx ? CONTEXT_SCORE_BONUS : 0);

    return u > 0 ? u : 0;
}

/*
 * The battery rule: balanced acts as saver below policy_low_battery_percent
 * unless charging. Below that level a charging UE is balanced only until
 * it is unplugged, and saver again at once (above it, it stays balanced
 * until the battery drains back down: a long way off). How long it stays
 * plugged in, nothing in a report says: the horizon is as likely to be
 * spent either way. So a move away from a held current is weighed half as
 * balanced (its value, as every move) and half as saver (saver's scores
 * over the same time, the same bytes now):
 *   (gain_balanced + gain_saver) / 2 > hysteresis
 * else current is kept. With free bytes (the greedy baseline's instant
 * rule) a move can be undone for nothing when the charger goes: no keep.
 * (Without this rule a UE whose charger comes and goes at low battery
 * moves between the two preferences' picks at every plug-in, each move
 * weighed over a horizon the charger does not last.)
 */
static bool
charge_keep(struct run *k, const struct proto_candidate *cands,
            const struct proto_candidate *pick)
{
    const struct proto_report *r = k->r;
    const struct proto_candidate *c = &cands[k->cur];
    double u_c, u_p;

    if (r->preference != PROTO_PREFER_BALANCED || !r->has_battery_percent ||
        !r->charging || !(r->battery_percent < k->cfg->low_battery_percent) ||
        !k->has_cur || pick == c || pick->is_fetching ||
        !eligible(k, c, k->degraded) || !(pick->cost > 0))
        return false;
    u_c = score_with(k, c, &k->cfg->saver) /
          (k->degraded ? 1 + c->violation : 1);
    u_p = score_with(k, pick, &k->cfg->saver) /
          (k->degraded ? 1 + pick->violation : 1);
    k->charge_gain_balanced = pick->value - c->value;
    k->charge_gain_saver =
        (u_p - u_c) * fmax(0, k->horizon_s - pick->ready_s) - pick->cost;
    return (k->charge_gain_balanced + k->charge_gain_saver) / 2 <= k->margin;
}

/*
 * Small now, better later (progressive delivery). While nothing runs, a
 * plan of two transfers, v now and the pick b as soon as v runs, may be
 * worth more than b alone: v runs while b downloads. Over the horizon,
 * with t_b and c_b b's whole transfer after v has arrived,
 *   plan(v) = u_v * t_b + u_b * (H - t_v - t_b) - c_v - c_b - dips
 * (the expected round trips of each while it is held, dip_cost). It is
 * the policy's own plan only when, holding v, it would make the second
 * move: (u_b - u_v) * (H - t_b) - c_b over the hysteresis. And it has
 * one switch more than going straight to b, which the hysteresis prices
 * as it prices every switch: v is chosen when plan(v) > V(b) + margin.
 * (The greedy baseline's margin over its endless horizon is never
 * cleared: it stays the instant rule.) Only while the UE holds nothing,
 * balanced and saver (see README "Small now, better later" for quality);
 * recheck_after_s is then when v runs, the time to ask for b.
 */
/*
 * An upper bound of plan(v) below, from v's arrival t_v alone: with
 * u_v < u_b, t_b >= 0 and v's cost and round trips >= 0, plan(v) <=
 * u_b * (H - t_v) - c_b. Widened by a relative 1e-9 for rounding, so that
 * an entry it rules out (the bound not above the best so far) could not
 * have been chosen: answers are as without it.
 */
static inline double
stage_bound(double ub, double h, double t_v, double c_b)
{
    double bound = ub * (h - t_v) - c_b;

    return bound + 1e-9 * fabs(bound) + 1e-12;
}

static bool
stage_pick(struct run *k, struct proto_candidate *cands, size_t m,
           size_t *pick)
{
    const struct proto_candidate *b = &cands[*pick];
    double h = k->horizon_s, best = b->value + k->margin;
    double ub = effective_utility(k, b);
    double c_b = (double)row_of(k, b)->size_bytes * k->cost_per_byte;
    double t_b = ready_time(k, row_of(k, b)->size_bytes);
    size_t first = m;

    if (!(t_b < h) || !(stage_bound(ub, h, 0, c_b) > best))
        return false;
    for (size_t i = 0; i < m; i++) {
        struct proto_candidate *v;
        double uv, plan;

        if (i == *pick)
            continue;
        /* the bound first: a large family's pending entries are
         * evaluated in full only when their arrival leaves room */
        if (!(stage_bound(ub, h,
                          is_pending(k, i) ? k->pend[i].ready_s
                                           : cands[i].ready_s,
                          c_b) > best))
            continue;
        if (is_pending(k, i))
            pending_finish(k, cands, i);
        v = &cands[i];
        if (v->partial || !eligible(k, v, false) || !startable(k, v) ||
            !(v->ready_s + t_b < h))
            continue;
        uv = effective_utility(k, v);
        if (!(uv < ub) ||
            !((ub - uv) * (h - t_b) - c_b - dip_cost(k, b, h - t_b) >
              k->margin))
            continue;
        plan = uv * t_b + ub * (h - v->ready_s - t_b) - v->cost - c_b -
               dip_cost(k, v, t_b) - dip_cost(k, b, h - v->ready_s - t_b);
        if (plan > best) {
            best = plan;
            first = i;
        }
    }
    if (first == m)
        return false;
    k->staged = true;
    k->staged_variant = b->variant;
    k->staged_then_value = b->value;
    k->staged_then_s = t_b;
    k->staged_value = best;
    *pick = first;
    return true;
}

static void
exit_reason(const struct run *k, const struct proto_candidate *c,
            struct proto_reasons *rs)
{
    struct rtext t;

    rt_begin(&t, rs);
    rt_s(&t, "latency: full network ");
    rt_g(&t, full_latency_ms(k, c), 6);
    rt_s(&t, " ms over max_latency_ms ");
    rt_g(&t, k->r->max_latency_ms, 6);
    rt_s(&t, "; exit ");
    rt_i(&t, c->exit_index);
    rt_s(&t, " at ");
    rt_g(&t, c->est.latency_ms, 6);
    rt_s(&t, " ms");
    rt_end(&t);
}

static void
chosen_reasons(const struct run *k, const struct proto_candidate *c,
               const struct proto_candidate *best, bool is_best,
               bool degraded, struct proto_decision *out)
{
    struct proto_reasons *rs = &out->reasons;
    char gain[96];

    if (k->throttle_kept) {
        reason_add(rs,
                   "keep: %g GFLOP/s now, %g lately; slowdowns last %.0f s, "
                   "too short for %s to pay back %.3g + %.3g",
                   k->r->gflops, k->gflops_ref, k->throttle_s,
                   var_of(k, best)->name, best->cost,
                   (double)var_of(k, c)->size_bytes * k->cost_per_byte);
    } else if (k->charge_kept) {
        reason_add(rs,
                   "keep: battery %g%% and charging, saver again when "
                   "unplugged; %s gains %.3g as balanced, %.3g as saver: "
                   "half each %.3g, not over hysteresis %.3g",
                   k->r->battery_percent, var_of(k, best)->name,
                   k->charge_gain_balanced, k->charge_gain_saver,
                   (k->charge_gain_balanced + k->charge_gain_saver) / 2,
                   k->margin);
    } else if (c->is_current && !c->hard_ok) {
        reason_add(rs,
                   "keep: needs %" PRIu64 " bytes, %" PRIu64 " free; its "
                   "dips last %.0f s: riding this out is worth %.6g over "
                   "%g s, %s %.6g",
                   c->est.memory_bytes, k->r->memory_bytes, k->ride_s,
                   k->ride_value, k->horizon_s, var_of(k, best)->name,
                   best->value);
    } else if (c->is_current && is_best) {
        reason_add(rs, "keep: current is the chosen version");
    } else if (c->is_current && !startable(k, best)) {
        struct rtext t;

        rt_begin(&t, rs);
        rt_s(&t, "keep: nothing better can arrive within horizon_s ");
        rt_g(&t, k->horizon_s, 6);
        rt_end(&t);
    } else if (c->is_current) {
        struct rtext t;

        gain_text(k, best, effective_utility(k, c), gain, sizeof(gain));
        rt_begin(&t, rs);
        rt_s(&t, "keep: switching to ");
        rt_s(&t, var_of(k, best)->name);
        rt_s(&t, " does not pay: ");
        rt_s(&t, gain);
        rt_s(&t, ", cost ");
        rt_g(&t, best->cost, 3);
        rt_s(&t, ", hysteresis ");
        rt_g(&t, k->margin, 3);
        rt_end(&t);
    } else if (k->staged) {
        const char *then = k->in->variants[k->staged_variant].name;
        struct rtext t;

        rt_begin(&t, rs);
        rt_s(&t, "small now, better later: runs after ");
        rt_ready(&t, k, c);
        rt_s(&t, "), ");
        rt_s(&t, then);
        rt_s(&t, " ");
        rt_g(&t, k->staged_then_s, 3);
        rt_s(&t, " s later: ");
        rt_worth(&t, k, k->staged_value);
        rt_s(&t, ", at once ");
        rt_g(&t, k->staged_then_value, 6);
        rt_end(&t);
    } else if (c->is_fetching) {
        reason_add(rs,
                   "in flight: %" PRIu64 " of %" PRIu64
                   " bytes done; resume, worth %.6g over %g s",
                   var_of(k, c)->size_bytes - c->transfer_bytes,
                   var_of(k, c)->size_bytes, c->value, k->horizon_s);
    } else if (k->old) {
        struct rtext t;

        gain_text(k, c, k->u_cur, gain, sizeof(gain));
        rt_begin(&t, rs);
        rt_s(&t, "held ");
        rt_s(&t, k->old->name);
        rt_s(&t, " version ");
        rt_u64(&t, (uint64_t)k->old->version);
        rt_s(&t, " runs meanwhile (not offered): ");
        rt_s(&t, gain);
        rt_s(&t, ", cost ");
        rt_g(&t, c->cost, 3);
        rt_end(&t);
    } else if (k->has_cur) {
        struct rtext t;

        gain_text(k, c, k->u_cur, gain, sizeof(gain));
        rt_begin(&t, rs);
        rt_s(&t, "switch pays: ");
        rt_s(&t, gain);
        rt_s(&t, " over cost ");
        rt_g(&t, c->cost, 3);
        rt_end(&t);
    } else {
        struct rtext t;

        rt_begin(&t, rs);
        rt_s(&t, "nothing runs now: runs after ");
        rt_ready(&t, k, c);
        rt_s(&t, "), ");
        rt_worth(&t, k, c->value);
        rt_s(&t, ", cost ");
        rt_g(&t, c->cost, 3);
        rt_end(&t);
    }
    if (c->ctx)
        reason_add(rs, "context: matches %s=%s", c->ctx->key, c->ctx->value);
    dips_reason(k, c, rs);
    if (c->exit_index >= 0)
        exit_reason(k, c, rs);
    if (degraded) {
        struct rtext t;

        rt_begin(&t, rs);
        rt_s(&t, "degraded: smallest violation ");
        rt_g(&t, c->violation, 6);
        rt_end(&t);
    }
    if (k->low_battery && k->r->preference == PROTO_PREFER_BALANCED)
        reason_add(rs, "battery: %g%% and not charging, balanced acts as saver",
                   k->r->battery_percent);
    if (k->busy_network)
        reason_add(rs, "network: %s, transfer cost x%g",
                   k->r->metered ? "metered" : "high load",
                   k->cfg->transfer_boost);
}

static inline __attribute__((always_inline)) enum proto_cause
cause_of(const struct run *k, const struct proto_candidate *e, bool degraded)
{
    if (!e->hard_ok)
        return e->hard_cause;
    if (!e->soft_ok && !degraded)
        return e->soft_cause;
    if (!startable(k, e))
        return PROTO_CAUSE_HORIZON;
    return PROTO_CAUSE_OUTRANKED;
}

/* Listing order: eligible first (by rank), then hard-ok by violation,
 * then the rest in input order; the tier is that group (of an entry of
 * cause c: eligible ones are the outranked). */
static int
tier_of(const struct proto_candidate *e, enum proto_cause c)
{
    return c == PROTO_CAUSE_OUTRANKED ? 0 : e->hard_ok ? 1 : 2;
}

/* Negative when a (of tier ta) is listed before b (of tier tb). */
static inline __attribute__((always_inline)) int
list_cmp_tiers(const struct run *k, const struct proto_candidate *a, int ta,
               const struct proto_candidate *b, int tb, bool degraded)
{
    enum criterion crit;

    if (ta != tb)
        return ta - tb;
    if (ta == 0)
        return rank_cmp(k, a, b, degraded, &crit);
    if (ta == 1 && differs(a->violation, b->violation))
        return a->violation < b->violation ? -1 : 1;
    return a->variant < b->variant ? -1 : a->variant > b->variant;
}

static int
list_cmp(const struct run *k, const struct proto_candidate *a,
         const struct proto_candidate *b, bool degraded)
{
    return list_cmp_tiers(k, a, tier_of(a, cause_of(k, a, degraded)), b,
                          tier_of(b, cause_of(k, b, degraded)), degraded);
}

static void
swap_cand(struct proto_candidate *a, struct proto_candidate *b)
{
    struct proto_candidate t = *a;

    *a = *b;
    *b = t;
}

/*
 * Puts index j (its tier and cause) at pos of the best-so-far lists of
 * *count <= n entries, moving the later ones down; the worst falls off
 * when the lists are full.
 */
static inline void
top_put(size_t *top, int *top_tier, uint8_t *top_cause, size_t *count,
        size_t n, size_t pos, size_t j, int tier, uint8_t cause)
{
    size_t last = *count < n ? *count : n - 1;

    for (size_t i = last; i > pos; i--) {
        top[i] = top[i - 1];
        top_tier[i] = top_tier[i - 1];
        top_cause[i] = top_cause[i - 1];
    }
    top[pos] = j;
    top_tier[pos] = tier;
    top_cause[pos] = cause;
    if (*count < n)
        (*count)++;
}

/*
 * Moves the best n entries (listing order) to cands[0..n), best first, in
 * one pass: each entry is compared with the worst of the best so far and
 * only a better one is inserted (n <= TOP_MAX indexes and tiers on the
 * stack, so that each entry's tier is worked out once). Counts the
 * entries left out by cause into omitted.
 */
static void
top_select(const struct run *k, struct proto_candidate *cands, size_t m,
           size_t n, bool degraded, size_t omitted[PROTO_CAUSE_COUNT])
{
    size_t top[TOP_MAX];
    int top_tier[TOP_MAX];
    uint8_t top_cause[TOP_MAX];
    size_t count = 0;

    for (size_t j = 0; j < m && n == 0; j++)
        omitted[cause_of(k, &cands[j], degraded)]++;
    for (size_t j = 0; j < m && n > 0; j++) {
        enum proto_cause cause = cause_of(k, &cands[j], degraded);
        int tier = tier_of(&cands[j], cause);
        size_t pos;

        omitted[cause]++;

        if (count == n &&
            (tier > top_tier[n - 1] ||
             list_cmp_tiers(k, &cands[j], tier, &cands[top[n - 1]],
                            top_tier[n - 1], degraded) >= 0))
            continue;
        pos = count < n ? count : n - 1;
        while (pos > 0 &&
               list_cmp_tiers(k, &cands[j], tier, &cands[top[pos - 1]],
                              top_tier[pos - 1], degraded) < 0)
            pos--;
        top_put(top, top_tier, top_cause, &count, n, pos, j, tier,
                (uint8_t)cause);
    }
    for (size_t i = 0; i < count; i++)
        omitted[top_cause[i]]--;
    /* top holds distinct indexes, best first; bring them to the front.
     * Moving entry top[i] to slot i sends the entry at i to top[i]'s old
     * place: when that entry is itself among the later ones, follow it. */
    for (size_t i = 0; i < count; i++) {
        size_t from = top[i];

        swap_cand(&cands[i], &cands[from]);
        for (size_t l = i + 1; l < count; l++)
            if (top[l] == i)
                top[l] = from;
    }
}

static void list_reasons(const struct run *k, struct proto_candidate *cands,
                         size_t listed, const struct proto_candidate *chosen,
                         bool degraded, struct proto_decision *out);

/*
 * Lists the candidates: every one with explain all (input order), else
 * the best runner_ups (listing order) and the rest counted by cause.
 * cands[0..m) holds every evaluated entry but the chosen one.
 */
static void
run_candidates(const struct run *k, struct proto_candidate *cands, size_t m,
               const struct proto_candidate *chosen, bool degraded,
               struct proto_decision *out)
{
    size_t listed = m;

    if (!k->r->explain_all && m > k->cfg->runner_ups) {
        listed = k->cfg->runner_ups;
        if (listed <= TOP_MAX) {
            top_select(k, cands, m, listed, degraded, out->omitted);
        } else {
            for (size_t i = 0; i < listed; i++) {
                size_t best = i;

                for (size_t j = i + 1; j < m; j++)
                    if (list_cmp(k, &cands[j], &cands[best], degraded) < 0)
                        best = j;
                swap_cand(&cands[i], &cands[best]);
            }
            for (size_t i = listed; i < m; i++)
                out->omitted[cause_of(k, &cands[i], degraded)]++;
        }
        out->omitted_count = m - listed;
    }
    list_reasons(k, cands, listed, chosen, degraded, out);
}

/* The listed entries cands[0..listed): values not weighed yet, reasons. */
static void
list_reasons(const struct run *k, struct proto_candidate *cands,
             size_t listed, const struct proto_candidate *chosen,
             bool degraded, struct proto_decision *out)
{
    for (size_t i = 0; i < listed; i++) {
        struct proto_candidate *c = &cands[i];
        struct proto_reasons *rs = &out->candidate_reasons[i];
        bool ok;

        if (c->partial)
            eval_rest(k, row_of(k, c), c);
        else if (!needs_value(k, c))
            value_compute(k, c);
        rs->count = 0;
        (void)hard_check(k, row_of(k, c), c, rs);
        (void)soft_check(k, c, &ok, rs);
        if (c->exit_index >= 0)
            exit_reason(k, c, rs);
        if (chosen && c->hard_ok && (c->soft_ok || degraded))
            loss_reason(k, c, chosen, degraded, rs);
        else if (!chosen && c->hard_ok && !startable(k, c))
            loss_reason(k, c, c, degraded, rs);
        if (c->ctx)
            reason_add(rs, "context: matches %s=%s", c->ctx->key,
                       c->ctx->value);
        if (c->hard_ok)
            dips_reason(k, c, rs);
        if (rs->count == 0)
            reason_add(rs, "not chosen");
    }
    out->candidate_count = listed;
}

/* Negative when the entry of brief a (of tier ta) is listed before b's
 * (list_cmp_tiers on the briefs: an entry of tier 0 always has its full
 * entry). */
static inline __attribute__((always_inline)) int
brief_cmp(const struct run *k, const struct proto_candidate *cands,
          const struct brief *a, int ta, const struct brief *b, int tb,
          bool degraded)
{
    enum criterion crit;

    if (ta != tb)
        return ta - tb;
    if (ta == 0)
        return rank_cmp(k, &cands[a->full], &cands[b->full], degraded, &crit);
    if (ta == 1 && differs(a->violation, b->violation))
        return a->violation < b->violation ? -1 : 1;
    return a->variant < b->variant ? -1 : a->variant > b->variant;
}

/* top_select on briefs[0..m): the best n (n <= TOP_MAX < m) brief
 * indexes to at[], best first, making the same comparisons in the same
 * order; the rest counted by cause into omitted. */
static void
brief_top(const struct run *k, const struct proto_candidate *cands,
          const struct brief *briefs, size_t m, size_t n, bool degraded,
          size_t omitted[PROTO_CAUSE_COUNT], size_t *at)
{
    int top_tier[TOP_MAX];
    uint8_t top_cause[TOP_MAX];
    size_t count = 0;

    for (size_t j = 0; j < m && n == 0; j++)
        omitted[briefs[j].full != BRIEF_NONE && degraded
                    ? cause_of(k, &cands[briefs[j].full], true)
                    : briefs[j].cause]++;
    for (size_t j = 0; j < m && n > 0; j++) {
        const struct brief *b = &briefs[j];
        uint8_t cause = b->full != BRIEF_NONE && degraded
                            ? (uint8_t)cause_of(k, &cands[b->full], true)
                            : b->cause;
        int tier = cause == PROTO_CAUSE_OUTRANKED ? 0 : b->hard_ok ? 1 : 2;
        size_t pos;

        omitted[cause]++;
        if (count == n &&
            (tier > top_tier[n - 1] ||
             brief_cmp(k, cands, b, tier, &briefs[at[n - 1]],
                       top_tier[n - 1], degraded) >= 0))
            continue;
        pos = count < n ? count : n - 1;
        while (pos > 0 &&
               brief_cmp(k, cands, b, tier, &briefs[at[pos - 1]],
                         top_tier[pos - 1], degraded) < 0)
            pos--;
        top_put(at, top_tier, top_cause, &count, n, pos, j, tier, cause);
    }
    for (size_t i = 0; i < count; i++)
        omitted[top_cause[i]]--;
}

static void kept_place(struct proto_candidate *cands, size_t *src,
                       size_t n);

/* The full entries of briefs at[0..n) (n <= TOP_MAX) to cands[0..n), in
 * that order: kept ones moved there (the moves follow an entry that is
 * itself listed later), the others worked out again as the full
 * evaluation works them out (utility included). */
static void
brief_place(const struct run *k, struct proto_candidate *cands,
            const struct brief *briefs, const size_t *at, size_t n)
{
    size_t src[TOP_MAX];

    for (size_t i = 0; i < n; i++)
        src[i] = briefs[at[i]].full;
    kept_place(cands, src, n);
    for (size_t i = 0; i < n; i++) {
        if (src[i] != BRIEF_NONE)
            continue;
        eval_compute(k, briefs[at[i]].variant, &cands[i]);
        if (!cands[i].partial)
            utility_compute(k, &cands[i]);
    }
}

/*
 * The entries cands[src[i]] to cands[i] for i < n (n <= TOP_MAX; src
 * distinct, BRIEF_NONE: none): each moves by a swap, and an entry that
 * a swap moves and that is itself listed later is followed there.
 */
static void
kept_place(struct proto_candidate *cands, size_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t from = src[i];

        if (from == BRIEF_NONE)
            continue;
        if (from != i)
            swap_cand(&cands[i], &cands[from]);
        for (size_t l = i + 1; l < n; l++)
            if (src[l] == i)
                src[l] = from;
    }
}

/* run_candidates for a screened select: the entries are briefs[0..m),
 * the full ones in cands. */
/*
 * The best n (1 <= n <= TOP_MAX) eligible entries (not degraded) among
 * the kept ones cands[0..m) in the order the listing walks them (the
 * chosen one, pick, leaves and the last offered version takes its place
 * when moved: kept, cands[m - 1]) to at[], best first, by top_select's
 * comparisons; returns how many there are, up to n. An eligible entry
 * is listed before any other, so when there are n of them they are the
 * listing, and every entry that is not one is only counted: as
 * top_select would list them, without walking the briefs.
 */
static size_t
kept_top(struct run *k, struct proto_candidate *cands, size_t m,
         size_t pick, bool moved, size_t n, size_t *at)
{
    enum criterion crit;
    size_t count = 0;
    double cut = -INFINITY;       /* below_cut of at[n - 1] when full */

    for (size_t i = 0; i < m; i++) {
        const struct proto_candidate *e;
        size_t c = i, pos;

        if (i == pick) {
            if (!moved)
                continue;
            c = m - 1;
        } else if (moved && i == m - 1) {
            continue;
        }
        /* pending: feasible and startable, worth at most its bound */
        if (is_pending(k, c)) {
            if (k->pend[c].bound < cut)
                continue;
            pending_finish(k, cands, c);
        }
        e = &cands[c];
        if (!(e->hard_ok && e->soft_ok && startable(k, e)))
            continue;
        if (count == n &&
            rank_cmp(k, e, &cands[at[n - 1]], false, &crit) >= 0)
            continue;
        pos = count < n ? count : n - 1;
        while (pos > 0 &&
               rank_cmp(k, e, &cands[at[pos - 1]], false, &crit) < 0) {
            at[pos] = at[pos - 1];
            pos--;
        }
        at[pos] = c;
        if (count < n)
            count++;
        if (count == n)
            cut = below_cut(k, &cands[at[n - 1]]);
    }
    return count;
}

/* brief_candidates for a select that chose (not degraded) when its
 * listing is eligible entries only (kept_top): counts (every offered
 * version's cause) less the chosen and the listed. False otherwise. */
static bool
kept_candidates(struct run *k, struct proto_candidate *cands,
                size_t m, size_t pick, bool moved, size_t offered,
                const size_t counts[PROTO_CAUSE_COUNT],
                const struct proto_candidate *chosen,
                struct proto_decision *out)
{
    size_t at[TOP_MAX], n = k->cfg->runner_ups;

    if (n == 0 || offered - 1 <= n ||
        kept_top(k, cands, m, pick, moved, n, at) < n)
        return false;
    for (size_t i = 0; i < PROTO_CAUSE_COUNT; i++)
        out->omitted[i] = counts[i];
    out->omitted[cause_of(k, chosen, false)]--;
    out->omitted[PROTO_CAUSE_OUTRANKED] -= n;
    out->omitted_count = offered - 1 - n;
    kept_place(cands, at, n);
    list_reasons(k, cands, n, chosen, false, out);
    return true;
}

static void
brief_candidates(const struct run *k, struct proto_candidate *cands,
                 const struct brief *briefs, size_t m,
                 const struct proto_candidate *chosen, bool degraded,
                 struct proto_decision *out)
{
    size_t at[TOP_MAX], listed = m;

    if (m > k->cfg->runner_ups) {
        listed = k->cfg->runner_ups;
        brief_top(k, cands, briefs, m, listed, degraded, out->omitted, at);
        out->omitted_count = m - listed;
    } else {
        for (size_t i = 0; i < m; i++)
            at[i] = i;
    }
    brief_place(k, cands, briefs, at, listed);
    list_reasons(k, cands, listed, chosen, degraded, out);
}

/* Whether nothing was found (select_run) for want of time: some entry
 * that runs here cannot arrive within the horizon (or at all: an
 * outage). */
static bool
horizon_bound(const struct run *k, const struct proto_candidate *cands,
              size_t m)
{
    for (size_t i = 0; i < m; i++)
        if (cands[i].hard_ok && !startable(k, &cands[i]))
            return true;
    return false;
}

/* Nothing can arrive in time (horizon_bound): why, with what the answer
 * does meanwhile ("nothing can arrive", "keep") in an outage; recheck
 * soon. */
static void
wait_reason(const struct run *k, const char *meanwhile,
            struct proto_decision *out)
{
    if (k->bps > 0)
        reason_add(&out->reasons,
                   "horizon: nothing that runs here can arrive within "
                   "horizon_s %g at %.3g Mbit/s",
                   k->horizon_s, mbit(k->bps));
    else
        reason_add(&out->reasons,
                   "network: no throughput now (%s); %s, recheck in %u s",
                   no_throughput_why(k->r), meanwhile,
                   k->cfg->recheck_outage_s);
    out->recheck_after_s = k->cfg->recheck_outage_s;
}

/* No throughput now and nothing held runs: say why, recheck soon. */
static void
none_reasons(const struct run *k, const struct proto_candidate *cands,
             size_t m, struct proto_decision *out)
{
    if (horizon_bound(k, cands, m))
        wait_reason(k, "nothing can arrive", out);
}

/*
 * Nothing offered can start (select_run found nothing: no offered version
 * meets the hard rules here, or none can arrive within the horizon, as in
 * an outage), and the UE holds a version that is not offered but meets
 * the hard rules (old_weigh, k->old): it goes on running, so the answer
 * keeps it (its row: chosen past the variants for an older version), as
 * it keeps a held current that nothing startable beats, rather than
 * none, which tells the UE that nothing runs. The move to what is offered
 * (the API's update rule) waits until a download can finish; the recheck
 * is as none's. False when nothing held runs.
 */
static __attribute__((noinline, cold)) bool
old_keep(const struct run *k, const struct proto_candidate *cands, size_t m,
         struct proto_decision *out)
{
    struct proto_candidate e;
    struct rtext t;
    bool ok, waits;

    /* old_weigh set old only when its row met the hard rules: evaluated
     * again here for the answer's estimates, the same inputs */
    if (!k->old || !old_eval(k, k->old_row, &e))
        return false;
    waits = horizon_bound(k, cands, m);
    out->action = PROTO_ACTION_KEEP;
    out->chosen = k->old_row;
    out->estimates = e.est;
    out->exit_index = e.exit_index;
    out->degraded = !e.soft_ok;
    if (!e.soft_ok)
        (void)soft_check(k, &e, &ok, &out->violations);
    out->recheck_after_s = k->cfg->recheck_degraded_s;
    if (waits)
        wait_reason(k, "keep", out);
    rt_begin(&t, &out->reasons);
    rt_s(&t, "keep: held ");
    rt_s(&t, k->old->name);
    rt_s(&t, " version ");
    rt_u64(&t, (uint64_t)k->old->version);
    rt_s(&t, waits ? " runs until a download can finish (not offered)"
                 : " runs (not offered); no offered version meets the "
                   "hard rules here");
    rt_end(&t);
    if (e.ctx)
        reason_add(&out->reasons, "context: matches %s=%s", e.ctx->key,
                   e.ctx->value);
    if (e.exit_index >= 0)
        exit_reason(k, &e, &out->reasons);
    return true;
}

/* policy_select; with briefs (BRIEF_MAX of them: select_screened) only
 * the entries the decision reads are kept in full (run_evaluate). */
static enum policy_status
select_run(const struct policy_config *cfg, const struct policy_input *in,
           const struct proto_report *report, struct proto_decision *out,
           struct brief *briefs, struct pend *pend, uint8_t *pending)
{
    struct proto_candidate *cands;
    struct proto_reasons *cand_reasons;
    struct proto_candidate chosen;
    size_t counts[PROTO_CAUSE_COUNT] = {0};
    bool screen = briefs != NULL;
    bool found, degraded = false, ok, riding, throttled;
    size_t m, offered, best = 0, pick;
    struct run k;
    unsigned staged_recheck_s = 0; /* small now: when the first one runs */

    if (!cfg || !in || !report || !out || !in->family ||
        (in->variant_count > 0 &&
         (!in->variants || !out->candidates || !out->candidate_reasons)) ||
        (in->delta_count > 0 && !in->deltas) || !table_fits(in) ||
        !(report->gflops > 0) || !(cfg->default_downlink_bps > 0))
        return POLICY_BAD_ARGUMENT;

    cands = out->candidates;
    cand_reasons = out->candidate_reasons;
    memset(out, 0, sizeof(*out));
    out->candidates = cands;
    out->candidate_reasons = cand_reasons;
    out->exit_index = -1;

    run_init(&k, cfg, in, report);
    k.pend = pend;
    k.pending = pending;
    out->horizon_s = k.horizon_s;
    out->throughput_bps = k.bps;
    m = run_evaluate(&k, cands, briefs, &offered, counts);
    /* the best feasible and startable entry; when none is, the best
     * that meets the hard rules and is startable (degraded) */
    found = k.found;
    best = k.best;
    degraded = k.degraded;
    if (!found && resume_in_dip(&k, cands, m, &best)) {
        found = true;
        k.dip_resumed = true;
    }
    if (!found) {
        if (!old_keep(&k, cands, m, out)) {
            out->action = PROTO_ACTION_NONE;
            out->recheck_after_s = cfg->recheck_degraded_s;
            none_reasons(&k, cands, m, out);
        }
        if (screen) {
            screen_briefs(&k, cands, briefs);
            brief_candidates(&k, cands, briefs, offered, NULL, false, out);
        }
        else
            run_candidates(&k, cands, m, NULL, false, out);
        return POLICY_OK;
    }

    /* Never abort a download in flight that is still (near) the best;
     * keep what runs unless moving pays beyond the hysteresis. A download
     * in flight worth more than current is kept going. */
    pick = best;
    for (size_t i = 0; k.fetching != POLICY_ID_NONE && i < m; i++) {
        if (!is_pending(&k, i) && cands[i].is_fetching && i != pick &&
            eligible(&k, &cands[i], degraded) &&
            stays(&k, &cands[pick], &cands[i], degraded)) {
            pick = i;
            break;
        }
    }
    if (k.has_cur && pick != k.cur && eligible(&k, &cands[k.cur], degraded) &&
        stays(&k, &cands[pick], &cands[k.cur], degraded) &&
        !(cands[pick].is_fetching && cands[pick].value > cands[k.cur].value))
        pick = k.cur;
    riding = ride_out(&k, cands, &cands[pick]);
    if (riding)
        pick = k.held;
    throttled = !riding && throttle_keep(&k, cands, &cands[pick]);
    if (throttled) {
        pick = k.cur;
        k.throttle_kept = true;
    }
    if (!riding && !throttled && charge_keep(&k, cands, &cands[pick])) {
        pick = k.cur;
        k.charge_kept = true;
    }
    if (!report->has_current && !degraded && k.bps > 0 &&
        k.pref != PROTO_PREFER_QUALITY && stage_pick(&k, cands, m, &pick) &&
        cands[pick].ready_s < cfg->recheck_after_s)
        staged_recheck_s = (unsigned)ceil(cands[pick].ready_s);

    chosen = cands[pick];
    out->chosen = chosen.variant;
    out->estimates = chosen.est;
    out->exit_index = chosen.exit_index;
    out->degraded = degraded;
    if (chosen.is_current) {
        out->action = PROTO_ACTION_KEEP;
    } else if (chosen.has_delta) {
        out->action = PROTO_ACTION_DELTA;
        out->has_delta = true;
        out->delta = chosen.delta;
    } else {
        out->action = PROTO_ACTION_DOWNLOAD;
    }
    if (degraded || !chosen.soft_ok)
        (void)soft_check(&k, &chosen, &ok, &out->violations);
    out->recheck_after_s = degraded || riding ? cfg->recheck_degraded_s
                           : staged_recheck_s ? staged_recheck_s
                                              : cfg->recheck_after_s;
    if (!(k.bps > 0)) {
        out->recheck_after_s = cfg->recheck_outage_s;
        reason_add(&out->reasons,
                   "network: no throughput now (%s); %s, recheck in %u s",
                   no_throughput_why(report),
                   chosen.is_current ? "keep" : "resume when it returns",
                   cfg->recheck_outage_s);
    }
    if (k.dip_resumed)
        reason_add(&out->reasons,
                   "memory: needs %" PRIu64 " bytes, %" PRIu64
                   " free; nothing fits now, but it fitted in %.0f%% of "
                   "the minutes lately: the download in flight goes on",
                   chosen.est.memory_bytes, report->memory_bytes,
                   chosen.fit * 100);
    chosen_reasons(&k, &chosen, &cands[best], pick == best, degraded, out);

    /* the chosen entry leaves the list (explain all keeps input order) */
    if (screen) {
        bool moved = k.last_kept && pick != m - 1;
        size_t j = 0;

        if (!degraded && kept_candidates(&k, cands, m, pick, moved, offered,
                                         counts, &chosen, out))
            return POLICY_OK;
        /* brief_candidates reads the full entries of the ones it lists
         * and of every eligible one it ranks: none without runner-ups */
        if (cfg->runner_ups > 0)
            pending_finish_all(&k, cands, m);
        screen_briefs(&k, cands, briefs);
        while (briefs[j].full != pick)
            j++;
        briefs[j] = briefs[offered - 1];
        brief_candidates(&k, cands, briefs, offered - 1, &chosen, degraded,
                         out);
        return POLICY_OK;
    }
    if (report->explain_all)
        memmove(&cands[pick], &cands[pick + 1],
                (m - 1 - pick) * sizeof(cands[0]));
    else
        cands[pick] = cands[m - 1];
    run_candidates(&k, cands, m - 1, &chosen, degraded, out);
    return POLICY_OK;
}

/* select_run with the briefs on this frame's stack (kept off the
 * frames of selects that do not screen). */
static __attribute__((noinline)) enum policy_status
select_screened(const struct policy_config *cfg,
                const struct policy_input *in,
                const struct proto_report *report, struct proto_decision *out)
{
    struct brief briefs[BRIEF_MAX];
    struct pend pend[BRIEF_MAX];
    uint8_t pending[BRIEF_MAX];

    return select_run(cfg, in, report, out, briefs, pend, pending);
}

/*
 * The default answer of a family of more variants than it lists and at
 * most BRIEF_MAX (runner_ups up to TOP_MAX) is screened; explain all, a
 * family the answer lists whole and a larger one keep every entry.
 */
enum policy_status
policy_select(const struct policy_config *cfg, const struct policy_input *in,
              const struct proto_report *report, struct proto_decision *out)
{
    if (cfg && in && report && !report->explain_all &&
        cfg->runner_ups <= TOP_MAX && in->variant_count <= BRIEF_MAX &&
        in->variant_count > (size_t)cfg->runner_ups + 1)
        return select_screened(cfg, in, report, out);
    return select_run(cfg, in, report, out, NULL, NULL, NULL);
}

enum policy_status
policy_select_full(const struct policy_config *cfg,
                   const struct policy_input *in,
                   const struct proto_report *report,
                   struct proto_decision *out)
{
    return select_run(cfg, in, report, out, NULL, NULL, NULL);
}

/* ---- for the replay simulator ------------------------------------------- */

size_t
policy_offered(const struct policy_input *in, const struct proto_report *report,
               size_t *out_index)
{
    struct policy_config cfg;
    struct run k;
    bool name_done = false;
    size_t m = 0;

    if (!table_fits(in))
        return 0;
    policy_config_default(&cfg);
    run_init(&k, &cfg, in, report);
    for (size_t i = 0; i < in->variant_count; i++)
        if (offered_at(&k, i, &name_done))
            out_index[m++] = i;
    return m;
}

enum policy_status
policy_utilities(const struct policy_config *cfg,
                 const struct policy_input *in,
                 const struct proto_report *report,
                 struct proto_candidate *scratch, double *out_u,
                 double *out_cost_per_byte)
{
    struct proto_report r;
    struct run k;
    bool any_feasible = false;
    size_t m, offered;

    if (!cfg || !in || !report || !scratch || !out_u || !in->family ||
        !table_fits(in) || !(report->gflops > 0))
        return POLICY_BAD_ARGUMENT;
    /* what runs is judged on running: a download limit does not apply */
    r = *report;
    r.has_max_download_s = false;
    run_init(&k, cfg, in, &r);
    m = run_evaluate(&k, scratch, NULL, &offered, NULL);
    for (size_t i = 0; i < m; i++)
        any_feasible = any_feasible || scratch[i].feasible;
    /* when nothing meets every requirement (degraded), what runs is worth
     * its utility discounted by its violation, as degraded mode ranks */
    for (size_t i = 0; i < m; i++)
        out_u[i] = scratch[i].feasible ? scratch[i].utility
                   : !any_feasible && scratch[i].hard_ok
                       ? scratch[i].utility / (1 + scratch[i].violation)
                       : 0;
    if (out_cost_per_byte)
        *out_cost_per_byte = k.cost_per_byte;
    return POLICY_OK;
}
