/*
 * Check suite for the replay simulator and its oracle (policy/replay.c):
 * hand-computed scenarios, the oracle as an upper bound of every strategy
 * on seeded random scenarios, determinism, argument checks.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/replay.h"
#include "proto/proto.h"

#define MAX_STEPS 64
#define MAX_TRACE 128
#define TOL 1e-6

struct fix {
    struct proto_variant v[4];
    size_t n;
    struct proto_delta d[2];
    size_t nd;
    struct replay_step steps[MAX_STEPS];
    size_t step_count;
    double t[MAX_TRACE], bps[MAX_TRACE];
    size_t trace_count;
    double end_s;
    struct policy_config cfg;
};

static void
model(struct fix *f, const char *name, uint64_t bytes, double accuracy,
      double flops)
{
    struct proto_variant *v = &f->v[f->n];

    memset(v, 0, sizeof(*v));
    snprintf(v->family, sizeof(v->family), "fam");
    snprintf(v->name, sizeof(v->name), "%s", name);
    v->version = 1;
    snprintf(v->blob_hex, sizeof(v->blob_hex), "%064zx", f->n + 1);
    v->size_bytes = bytes;
    v->memory_bytes = bytes;
    v->accuracy = accuracy;
    v->flops = flops;
    v->rollout_percent = 100;
    f->n++;
}

/* A (1 MB, 0.5) and B (8 MB, 0.8); reports every 10 s from 0 to 90, end
 * 100; 1 GB, 100 GFLOP/s, quality, downlink_bps reported as bps. */
static void
fix_ab(struct fix *f, double bps)
{
    memset(f, 0, sizeof(*f));
    policy_config_default(&f->cfg);
    model(f, "a", 1000000, 0.5, 1e8);
    model(f, "b", 8000000, 0.8, 1e8);
    for (size_t k = 0; k < 10; k++) {
        struct proto_report *r = &f->steps[k].report;

        f->steps[k].t_s = 10.0 * (double)k;
        r->memory_bytes = 1000000000;
        r->gflops = 100;
        r->downlink_bps = bps;
        r->has_downlink_bps = true;
    }
    f->step_count = 10;
    f->t[0] = 0;
    f->bps[0] = bps;
    f->trace_count = 1;
    f->end_s = 100;
}

/* What replay_switch_observer reported (modeld replay --switches). */
struct seen {
    enum replay_strategy strategy;
    unsigned switches, aborts, wrong_strategy;
    double bytes;
    char path[4][PROTO_NAME_SIZE]; /* the first models switched to */
};

static void
seen_switch(void *ctx, enum replay_strategy strategy, size_t step,
            double t_s, const struct proto_variant *from,
            const struct proto_variant *to, double bytes)
{
    struct seen *sn = ctx;

    (void)step;
    (void)t_s;
    (void)from;
    sn->wrong_strategy += strategy != sn->strategy;
    sn->bytes += bytes;
    if (!to) {
        sn->aborts++;
        return;
    }
    if (sn->switches < 4)
        snprintf(sn->path[sn->switches], sizeof(sn->path[0]), "%s",
                 to->name);
    sn->switches++;
}

static enum replay_status
run_seen(const struct fix *f, enum replay_strategy s,
         struct replay_result *out, struct seen *sn)
{
    struct policy_input in = {
        .family = "fam", .variants = f->v, .variant_count = f->n,
        .deltas = f->d, .delta_count = f->nd,
    };
    struct replay_scenario sc = {
        .steps = f->steps, .step_count = f->step_count, .end_s = f->end_s,
        .trace = {.t_s = f->t, .bps = f->bps, .count = f->trace_count},
        .observe_ctx = sn, .on_switch = seen_switch,
    };

    memset(out, 0, sizeof(*out));
    memset(sn, 0, sizeof(*sn));
    sn->strategy = s;
    return replay_run(&f->cfg, &in, &sc, s, out);
}

static enum replay_status
run(const struct fix *f, enum replay_strategy s, struct replay_result *out)
{
    struct policy_input in = {
        .family = "fam", .variants = f->v, .variant_count = f->n,
        .deltas = f->d, .delta_count = f->nd,
    };
    struct replay_scenario sc = {
        .steps = f->steps, .step_count = f->step_count, .end_s = f->end_s,
        .trace = {.t_s = f->t, .bps = f->bps, .count = f->trace_count},
    };

    memset(out, 0, sizeof(*out));
    return replay_run(&f->cfg, &in, &sc, s, out);
}

/*
 * 8 Mbit/s: B arrives after 8 s; A after 1 s.
 *   B at once:        0.8 * 92 - 8 * 0.3                        = 71.2
 *   A, then B at 10:  0.5 * 9 + 0.5 * 8 + 0.8 * 82 - 9 * 0.3    = 71.4
 * The oracle finds the second; the policy (horizon 1800 s: B is worth
 * 0.8 * (1800 - 8.9) - 2.4 = 1430.5 against A's 899.1) the first, as does
 * greedy; always-smallest holds A: 0.5 * 99 - 0.3 = 49.2.
 */
static const struct ab_case {
    enum replay_strategy strategy;
    double utility;
    unsigned switches;
    double bytes;
} ab_cases[] = {
    { REPLAY_ORACLE, 71.4, 2, 9e6 },
    { REPLAY_POLICY, 71.2, 1, 8e6 },
    { REPLAY_GREEDY, 71.2, 1, 8e6 },
    { REPLAY_SMALLEST, 49.2, 1, 1e6 },
};

START_TEST(test_replay_run_ab)
{
    const struct ab_case *c = &ab_cases[_i];
    struct replay_result r;
    struct fix f;

    fix_ab(&f, 8e6);
    ck_assert_int_eq(run(&f, c->strategy, &r), REPLAY_OK);
    ck_assert_double_eq_tol(r.utility, c->utility, TOL);
    ck_assert_uint_eq(r.switches, c->switches);
    ck_assert_double_eq_tol(r.bytes, c->bytes, 1e-3);
    ck_assert_double_eq_tol(r.duration_s, 100, TOL);
    ck_assert_uint_eq(r.aborts, 0);
}
END_TEST

/* No throughput before 30 s (the reports say 0): the policy answers none
 * until the link returns and never moves a byte before; the oracle starts
 * A at 0 (it arrives at 31 s) and B at 40 (48 s):
 *   0.5 * 9 + 0.5 * 8 + 0.8 * 52 - 2.7 = 47.4 */
START_TEST(test_replay_run_outage)
{
    struct replay_result pol, orc;
    struct fix f;

    fix_ab(&f, 8e6);
    f.t[0] = 0;
    f.bps[0] = 0;
    f.t[1] = 30;
    f.bps[1] = 8e6;
    f.trace_count = 2;
    for (size_t k = 0; k < 3; k++)
        f.steps[k].report.downlink_bps = 0;
    ck_assert_int_eq(run(&f, REPLAY_ORACLE, &orc), REPLAY_OK);
    ck_assert_double_eq_tol(orc.utility, 47.4, TOL);
    ck_assert_int_eq(run(&f, REPLAY_POLICY, &pol), REPLAY_OK);
    ck_assert_uint_eq(pol.aborts, 0);
    ck_assert(pol.utility > 0);
    ck_assert(pol.utility <= orc.utility + TOL);
    ck_assert(pol.unrunnable_s >= 30);
}
END_TEST

/* A tiny deterministic generator for the random scenarios. */
static uint64_t
next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static double
uniform(uint64_t *s)
{
    return (double)next_rand(s) / 2147483648.0;
}

static void
fix_random(struct fix *f, unsigned seed)
{
    uint64_t s = seed * 2654435761ULL + 1;
    static const enum proto_preference prefs[] = {
        PROTO_PREFER_QUALITY, PROTO_PREFER_BALANCED, PROTO_PREFER_SAVER,
    };

    memset(f, 0, sizeof(*f));
    policy_config_default(&f->cfg);
    f->cfg.horizon_s = 60 + 600 * uniform(&s);
    model(f, "s", 2000000, 0.55, 1e8);
    model(f, "m", 6000000, 0.7, 5e8);
    model(f, "l", 20000000, 0.76, 3e9);
    /* a delta from m to l */
    memcpy(f->d[0].from_hex, f->v[1].blob_hex, PROTO_HEX_SIZE);
    memcpy(f->d[0].to_hex, f->v[2].blob_hex, PROTO_HEX_SIZE);
    f->d[0].size_bytes = 3000000;
    f->nd = 1;
    f->trace_count = 40;
    for (size_t i = 0; i < f->trace_count; i++) {
        f->t[i] = 7.0 * (double)i;
        f->bps[i] = uniform(&s) < 0.15 ? 0 : 2e5 * pow(10, 3 * uniform(&s));
    }
    f->step_count = 30;
    for (size_t k = 0; k < f->step_count; k++) {
        struct proto_report *r = &f->steps[k].report;

        f->steps[k].t_s = 9.0 * (double)k;
        r->memory_bytes = uniform(&s) < 0.2 ? 5000000 : 40000000;
        r->gflops = uniform(&s) < 0.2 ? 20 : 100;
        r->preference = prefs[seed % 3];
        if (uniform(&s) < 0.5) {
            r->downlink_bps = f->bps[(size_t)(f->steps[k].t_s / 7.0)];
            r->has_downlink_bps = true;
        }
        r->metered = uniform(&s) < 0.3;
        if (seed % 4 == 0) {
            r->max_latency_ms = 10;
            r->has_max_latency_ms = true;
        }
    }
    f->end_s = 9.0 * (double)f->step_count;
}

/* The oracle is exact for the simulator, so no strategy beats it; the
 * same scenario replays to the same figures. */
START_TEST(test_replay_run_oracle_bounds)
{
    struct replay_result orc, r, again;
    struct fix f;

    fix_random(&f, (unsigned)_i);
    ck_assert_int_eq(run(&f, REPLAY_ORACLE, &orc), REPLAY_OK);
    for (int s = REPLAY_POLICY; s < REPLAY_ORACLE; s++) {
        ck_assert_int_eq(run(&f, (enum replay_strategy)s, &r), REPLAY_OK);
        ck_assert_msg(r.utility <= orc.utility + TOL,
                      "seed %d strategy %d: %g over the oracle's %g", _i, s,
                      r.utility, orc.utility);
        ck_assert_int_eq(run(&f, (enum replay_strategy)s, &again),
                         REPLAY_OK);
        ck_assert(memcmp(&r, &again, sizeof(r)) == 0);
    }
    ck_assert(orc.utility >= 0);
}
END_TEST

/* --switches: every replacement and abort is reported, with the bytes
 * the figures count (the oracle's all of them: it has no transfer in
 * flight at the end); the oracle's path in the a/b case is A, then B. */
START_TEST(test_replay_run_switches_seen)
{
    struct replay_result r;
    struct seen sn;
    struct fix f;

    fix_random(&f, (unsigned)_i);
    for (int s = REPLAY_POLICY; s <= REPLAY_ORACLE; s++) {
        ck_assert_int_eq(run_seen(&f, (enum replay_strategy)s, &r, &sn),
                         REPLAY_OK);
        ck_assert_uint_eq(sn.wrong_strategy, 0);
        ck_assert_uint_eq(sn.switches, r.switches);
        ck_assert_uint_eq(sn.aborts, r.aborts);
        /* all of them but a transfer still in flight at the end */
        ck_assert_msg(sn.bytes <= r.bytes * (1 + 1e-9) + 1e-6 &&
                          (s != REPLAY_ORACLE ||
                           fabs(sn.bytes - r.bytes) <= 1e-9 * r.bytes),
                      "seed %d strategy %d: %g bytes seen, %g moved", _i, s,
                      sn.bytes, r.bytes);
    }
    fix_ab(&f, 8e6);
    ck_assert_int_eq(run_seen(&f, REPLAY_ORACLE, &r, &sn), REPLAY_OK);
    ck_assert_uint_eq(sn.switches, 2);
    ck_assert_str_eq(sn.path[0], "a");
    ck_assert_str_eq(sn.path[1], "b");
}
END_TEST

/* The regrets (struct replay_regret): each >= 0, summing to the oracle's
 * utility less the strategy's, the first report's value the oracle's; the
 * figures are the same as without them. */
START_TEST(test_replay_run_regret_sums)
{
    static struct replay_regret rg[MAX_STEPS];
    struct replay_result orc, r, plain;
    struct policy_input in;
    struct replay_scenario sc;
    struct fix f;

    fix_random(&f, (unsigned)_i);
    in = (struct policy_input){
        .family = "fam", .variants = f.v, .variant_count = f.n,
        .deltas = f.d, .delta_count = f.nd,
    };
    sc = (struct replay_scenario){
        .steps = f.steps, .step_count = f.step_count, .end_s = f.end_s,
        .trace = {.t_s = f.t, .bps = f.bps, .count = f.trace_count},
        .regret = rg,
    };
    ck_assert_int_eq(run(&f, REPLAY_ORACLE, &orc), REPLAY_OK);
    for (int s = REPLAY_POLICY; s < REPLAY_ORACLE; s++) {
        double sum = 0;

        memset(rg, 0, sizeof(rg));
        ck_assert_int_eq(replay_run(&f.cfg, &in, &sc,
                                    (enum replay_strategy)s, &r),
                         REPLAY_OK);
        ck_assert_int_eq(run(&f, (enum replay_strategy)s, &plain),
                         REPLAY_OK);
        ck_assert(memcmp(&r, &plain, sizeof(r)) == 0);
        ck_assert_double_eq_tol(rg[0].value, orc.utility, TOL);
        for (size_t k = 0; k < f.step_count; k++) {
            ck_assert_msg(rg[k].regret >= -TOL, "seed %d strategy %d step "
                          "%zu: regret %g", _i, s, k, rg[k].regret);
            sum += rg[k].regret;
        }
        ck_assert_double_eq_tol(sum, orc.utility - r.utility, TOL);
    }
}
END_TEST

START_TEST(test_replay_run_bad_arguments)
{
    struct replay_result r;
    struct fix f;

    fix_ab(&f, 8e6);
    f.end_s = 90;                       /* not after the last report */
    ck_assert_int_eq(run(&f, REPLAY_POLICY, &r), REPLAY_BAD_ARGUMENT);
    fix_ab(&f, 8e6);
    f.steps[3].t_s = f.steps[2].t_s;    /* not increasing */
    ck_assert_int_eq(run(&f, REPLAY_ORACLE, &r), REPLAY_BAD_ARGUMENT);
    fix_ab(&f, 8e6);
    f.bps[0] = -1;
    ck_assert_int_eq(run(&f, REPLAY_ORACLE, &r), REPLAY_BAD_ARGUMENT);
    fix_ab(&f, 8e6);
    f.step_count = 0;
    ck_assert_int_eq(run(&f, REPLAY_POLICY, &r), REPLAY_BAD_ARGUMENT);
}
END_TEST

static Suite *
replay_suite(void)
{
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("run");

    tcase_add_loop_test(tc, test_replay_run_ab, 0, ARRAY_SIZE(ab_cases));
    tcase_add_test(tc, test_replay_run_outage);
    tcase_add_loop_test(tc, test_replay_run_oracle_bounds, 0, 60);
    tcase_add_loop_test(tc, test_replay_run_switches_seen, 0, 60);
    tcase_add_loop_test(tc, test_replay_run_regret_sums, 0, 60);
    tcase_add_test(tc, test_replay_run_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(replay_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
