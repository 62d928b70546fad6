/*
 * `modeld replay`: replays a scenario of UE reports through the policy
 * with a simulated UE, beside two baselines and the offline oracle, and
 * prints their figures. Glue only: proto parses the scenario lines, store
 * gives the family's snapshot, policy/replay.c simulates and scores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/replay.h"
#include "proto/proto.h"
#include "server/commands.h"
#include "server/config.h"
#include "store/store.h"

#define EXIT_USAGE 2
#define MAX_STEPS 1000000
#define MAX_TRACE 10000000

static const char usage_text[] =
    "usage: modeld replay [--config FILE] --data DIR [--preference P]\n"
    "                     [--size-scale F] [--json] [--decisions] [--trace]\n"
    "                     [--switches]\n"
    "                     [--regret STRATEGY]\n"
    "                     FAMILY SCENARIO [TRACE]\n"
    "\n"
    "Replays the UE reports of SCENARIO (JSON lines: {\"t_s\": N, "
    "\"report\": {...},\n"
    "\"bps\": N} per report, optionally {\"end_s\": N} last) through the "
    "policy\n"
    "with a simulated UE that downloads at the link's throughput (TRACE, a "
    "CSV\n"
    "of \"t_s,bps\" lines, else each line's bps) and runs what it holds; "
    "prints\n"
    "utility, switches, MB moved and unrunnable time for the policy, two\n"
    "baselines (greedy best-now, always the smallest runnable) and the\n"
    "offline oracle, and the ratios to the oracle.\n"
    "\n"
    "  --preference P   quality, balanced or saver for every report\n"
    "  --size-scale F   multiply blob and delta sizes by F (e.g. 1000 for a\n"
    "                   demo catalog made with --scale 0.001)\n"
    "  --json           one JSON object instead of the table\n"
    "  --decisions      also print the policy's decision at every report\n"
    "  --trace          also print, at every report where the policy and\n"
    "                   greedy best-now hold or do different things, both\n"
    "                   decisions, the utility per second each runs and\n"
    "                   the running sum of policy minus greedy run value\n"
    "  --switches       also print every model replacement and abort of\n"
    "                   each strategy, the oracle's path included\n"
    "  --regret S       also print, at every report where the answer of S\n"
    "                   (policy, greedy or smallest) loses to the best\n"
    "                   possible from the same state (the\n"
    "                   oracle's), the state, the answer, what the oracle\n"
    "                   would do and the utility lost; the losses sum to\n"
    "                   the oracle's utility less S's\n"
    "\n"
    "Exit status: 0 replayed, 1 failure, 2 usage error.\n";

struct scenario_buf {
    struct replay_step *steps;
    size_t step_count, step_cap;
    double *t_s, *bps;            /* the trace */
    size_t trace_count, trace_cap;
    double end_s;
    bool has_end;
};

static void
scenario_buf_free(struct scenario_buf *b)
{
    free(b->steps);
    free(b->t_s);
    free(b->bps);
}

static bool
trace_add(struct scenario_buf *b, double t, double bps)
{
    if (b->trace_count == b->trace_cap) {
        size_t cap = b->trace_cap ? b->trace_cap * 2 : 256;
        double *t2, *b2;

        if (cap > MAX_TRACE)
            return false;
        t2 = realloc(b->t_s, cap * sizeof(*t2));
        if (!t2)
            return false;
        b->t_s = t2;
        b2 = realloc(b->bps, cap * sizeof(*b2));
        if (!b2)
            return false;
        b->bps = b2;
        b->trace_cap = cap;
    }
    b->t_s[b->trace_count] = t;
    b->bps[b->trace_count] = bps;
    b->trace_count++;
    return true;
}

/* Reads SCENARIO; the per-line bps go to the trace when use_bps. */
static int
read_scenario(const char *path, const struct config *cfg, bool use_bps,
              int pref, struct scenario_buf *b)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int status = 1;

    if (!f) {
        fprintf(stderr, "modeld replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        struct proto_scenario_line sl;
        struct proto_error err;

        lineno++;
        if (len == 0 || line[0] == '\n' || line[0] == '#')
            continue;
        if ((uint64_t)len > cfg->max_select_bytes + 1024) {
            fprintf(stderr, "modeld replay: %s:%zu: line too long\n", path,
                    lineno);
            goto out;
        }
        if (proto_scenario_line_parse(line, (size_t)len, &cfg->limits, &sl,
                                      &err) != PROTO_OK) {
            fprintf(stderr, "modeld replay: %s:%zu: %s\n", path, lineno,
                    err.detail);
            goto out;
        }
        if (sl.is_end) {
            b->end_s = sl.t_s;
            b->has_end = true;
            continue;
        }
        if (b->step_count > 0 &&
            !(sl.t_s > b->steps[b->step_count - 1].t_s)) {
            fprintf(stderr, "modeld replay: %s:%zu: t_s must increase\n",
                    path, lineno);
            goto out;
        }
        if (use_bps && !sl.has_bps) {
            fprintf(stderr,
                    "modeld replay: %s:%zu: bps is required without TRACE\n",
                    path, lineno);
            goto out;
        }
        if (b->step_count == b->step_cap) {
            size_t ncap = b->step_cap ? b->step_cap * 2 : 256;
            struct replay_step *s2;

            if (ncap > MAX_STEPS) {
                fprintf(stderr, "modeld replay: more than %d reports\n",
                        MAX_STEPS);
                goto out;
            }
            s2 = realloc(b->steps, ncap * sizeof(*s2));
            if (!s2)
                goto nomem;
            b->steps = s2;
            b->step_cap = ncap;
        }
        if (pref >= 0)
            sl.report.preference = (enum proto_preference)pref;
        b->steps[b->step_count].t_s = sl.t_s;
        b->steps[b->step_count].report = sl.report;
        b->step_count++;
        if (use_bps && !trace_add(b, sl.t_s, sl.bps))
            goto nomem;
    }
    if (b->step_count == 0) {
        fprintf(stderr, "modeld replay: %s: no reports\n", path);
        goto out;
    }
    if (!b->has_end) {
        size_t n = b->step_count;
        double dt = n > 1 ? b->steps[n - 1].t_s - b->steps[n - 2].t_s : 5;

        b->end_s = b->steps[n - 1].t_s + dt;
    }
    if (!(b->end_s > b->steps[b->step_count - 1].t_s)) {
        fprintf(stderr, "modeld replay: %s: end_s must follow the last "
                        "report\n", path);
        goto out;
    }
    status = 0;
    goto out;
nomem:
    fprintf(stderr, "modeld replay: out of memory\n");
out:
    free(line);
    fclose(f);
    return status;
}

/* TRACE: "t_s,bps" lines; lines that do not start with a digit (a header,
 * comments) are skipped. */
static int
read_trace(const char *path, struct scenario_buf *b)
{
    FILE *f = fopen(path, "r");
    char buf[256];
    size_t lineno = 0;

    if (!f) {
        fprintf(stderr, "modeld replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    while (fgets(buf, sizeof(buf), f)) {
        double t, bps;
        char *end;

        lineno++;
        if (buf[0] < '0' || buf[0] > '9')
            continue;
        t = strtod(buf, &end);
        if (*end != ',')
            goto bad;
        bps = strtod(end + 1, &end);
        if ((*end != '\n' && *end != '\r' && *end != '\0') || !(bps >= 0) ||
            bps > 1e12 || !(t >= 0) ||
            (b->trace_count > 0 && !(t > b->t_s[b->trace_count - 1])))
            goto bad;
        if (!trace_add(b, t, bps)) {
            fprintf(stderr, "modeld replay: out of memory\n");
            fclose(f);
            return 1;
        }
    }
    fclose(f);
    if (b->trace_count == 0) {
        fprintf(stderr, "modeld replay: %s: no samples\n", path);
        return 1;
    }
    return 0;
bad:
    fprintf(stderr,
            "modeld replay: %s:%zu: want \"t_s,bps\" with t_s increasing and "
            "bps 0..1e12\n",
            path, lineno);
    fclose(f);
    return 1;
}

/* --trace: what the policy and greedy held and answered at each report. */
struct trace_step {
    char held[PROTO_NAME_SIZE];   /* "" nothing */
    char what[PROTO_NAME_SIZE + 16]; /* action and variant */
    char reason[PROTO_REASON_SIZE];
    char why_not[PROTO_REASON_SIZE * 3]; /* the policy on greedy's pick */
    double start_bytes;           /* of a transfer started here, else 0 */
};

struct observe_ctx {
    int strategy;
    bool decisions;
    const struct replay_step *steps; /* --switches */
    size_t variant_count;
    const struct proto_delta *deltas;
    struct trace_step *trace[2]; /* policy, greedy; NULL: no --trace */
};

static const char *
held_name(const struct proto_report *r, const struct proto_variant *vs,
          size_t count)
{
    if (r->has_current)
        for (size_t i = 0; i < count; i++)
            if (strcmp(vs[i].blob_hex, r->current_hex) == 0)
                return vs[i].name;
    return "";
}

/* The policy's listed candidates, "name value: reason; ...", for the
 * trace to show what it said about greedy's pick. */
static void
candidates_keep(struct trace_step *ts, const struct proto_decision *d,
                const struct proto_variant *variants)
{
    size_t at = 0;

    for (size_t i = 0; i < d->candidate_count && at < sizeof(ts->why_not);
         i++) {
        const struct proto_reasons *rs = &d->candidate_reasons[i];
        int n = snprintf(ts->why_not + at, sizeof(ts->why_not) - at,
                         "%s%s %.2f: %s%s%s", i ? "\n      " : "",
                         variants[d->candidates[i].variant].name,
                         d->candidates[i].value,
                         rs->count ? rs->text[0] : "",
                         rs->count > 1 ? "; " : "",
                         rs->count > 1 ? rs->text[1] : "");

        if (n < 0)
            break;
        at += (size_t)n;
    }
}

static const char *const strategy_names[] = {
    [REPLAY_POLICY] = "policy",
    [REPLAY_GREEDY] = "greedy",
    [REPLAY_SMALLEST] = "smallest",
    [REPLAY_ORACLE] = "oracle",
};

/* --switches: "switch: STRATEGY STEP T_START -> T: FROM -> TO (MB)", or
 * "abort: STRATEGY STEP T_START -> T: NAME (MB moved)". */
static void
print_switch(void *ctx, enum replay_strategy strategy, size_t step,
             double t_s, const struct proto_variant *from,
             const struct proto_variant *to, double bytes)
{
    const struct observe_ctx *oc = ctx;

    if (to)
        printf("switch: %s %zu %.0f -> %.0f: %s -> %s (%.1f MB)\n",
               strategy_names[strategy], step, oc->steps[step].t_s, t_s,
               from ? from->name : "-", to->name, bytes / 1e6);
    else
        printf("abort: %s %zu %.0f -> %.0f: %s (%.1f MB moved)\n",
               strategy_names[strategy], step, oc->steps[step].t_s, t_s,
               from ? from->name : "-", bytes / 1e6);
}

/* --decisions: one line per report of the policy strategy. */
static void
print_decision(void *ctx, size_t step, const struct proto_report *r,
               const struct proto_decision *d,
               const struct proto_variant *variants)
{
    struct observe_ctx *oc = ctx;

    if (oc->strategy <= REPLAY_GREEDY && oc->trace[oc->strategy]) {
        struct trace_step *ts = &oc->trace[oc->strategy][step];

        snprintf(ts->held, sizeof(ts->held), "%s",
                 held_name(r, variants, oc->variant_count));
        snprintf(ts->what, sizeof(ts->what), "%s %s%s",
                 proto_action_name(d->action),
                 d->action == PROTO_ACTION_NONE ? "-"
                                                : variants[d->chosen].name,
                 d->degraded ? " (degraded)" : "");
        snprintf(ts->reason, sizeof(ts->reason), "%s",
                 d->reasons.count ? d->reasons.text[0] : "");
        if (oc->strategy == REPLAY_POLICY)
            candidates_keep(ts, d, variants);
        ts->start_bytes = 0;
        if (d->action == PROTO_ACTION_DOWNLOAD ||
            d->action == PROTO_ACTION_DELTA) {
            const char *hex = variants[d->chosen].blob_hex;

            if (!r->has_fetching || strcmp(r->fetching_hex, hex) != 0)
                ts->start_bytes =
                    (double)(d->action == PROTO_ACTION_DELTA
                                 ? oc->deltas[d->delta].size_bytes
                                 : variants[d->chosen].size_bytes);
        }
    }
    if (oc->strategy != REPLAY_POLICY || !oc->decisions)
        return;
    printf("%zu bps=%.3g mem=%llu floor=%llu gflops=%g %s %s%s%s %s\n", step,
           r->downlink_bps, (unsigned long long)r->memory_bytes,
           (unsigned long long)r->memory_floor_bytes, r->gflops,
           proto_action_name(d->action),
           d->action == PROTO_ACTION_NONE ? "-" : variants[d->chosen].name,
           r->has_fetching ? " (fetching)" : "",
           d->degraded ? " (degraded)" : "",
           d->reasons.count ? d->reasons.text[0] : "");
}


static double
ratio(double a, double b)
{
    return b != 0 ? a / b : (a == 0 ? 1 : 0);
}

static void
print_results(const char *family, const struct scenario_buf *b,
              const struct replay_result *res, bool json)
{
    const struct replay_result *o = &res[REPLAY_ORACLE];

    if (json) {
        printf("{\"family\":\"%s\",\"reports\":%zu,\"duration_s\":%.3f",
               family, b->step_count, o->duration_s);
        for (int s = 0; s <= REPLAY_ORACLE; s++)
            printf(",\"%s\":{\"utility\":%.6f,\"run_value\":%.6f,"
                   "\"cost\":%.6f,\"switches\":%u,\"aborts\":%u,"
                   "\"mb\":%.6f,\"unrunnable_s\":%.3f}",
                   strategy_names[s], res[s].utility, res[s].run_value,
                   res[s].cost, res[s].switches, res[s].aborts,
                   res[s].bytes / 1e6, res[s].unrunnable_s);
        printf("}\n");
        return;
    }
    printf("replay: %s, %zu reports over %.0f s\n", family, b->step_count,
           o->duration_s);
    printf("%-9s %12s %8s %8s %6s %10s %12s\n", "strategy", "utility",
           "/oracle", "switches", "aborts", "MB", "unrunnable_s");
    for (int s = 0; s <= REPLAY_ORACLE; s++)
        printf("%-9s %12.1f %8.4f %8u %6u %10.1f %12.1f\n",
               strategy_names[s], res[s].utility,
               ratio(res[s].utility, o->utility), res[s].switches,
               res[s].aborts, res[s].bytes / 1e6, res[s].unrunnable_s);
    printf("policy/oracle: utility %.4f, switches %.3f, MB %.3f\n",
           ratio(res[0].utility, o->utility),
           ratio(res[0].switches, o->switches),
           ratio(res[0].bytes, o->bytes));
}

/* u[] of the variant named name under the step's report, 0 when none. */
static double
util_of(const struct policy_input *in, const size_t *offered, size_t m,
        const double *u, const char *name)
{
    for (size_t j = 0; j < m; j++)
        if (strcmp(in->variants[offered[j]].name, name) == 0)
            return u[j];
    return 0;
}

/* --trace: the reports where the policy and greedy differ. The running
 * sum counts what each runs from one report to the next as what it held
 * at the report (a download finishing between two reports counts from
 * the next), less the whole cost of each transfer at the report that
 * starts it (an aborted one moved less): the replay's figures are the
 * exact ones. */
static int
print_trace(const struct policy_config *pc, const struct policy_input *in0,
            const struct scenario_buf *b, struct trace_step *const tr[2])
{
    size_t vc = in0->variant_count;
    struct policy_input in = *in0;
    void *table = malloc(policy_table_size(in0));
    struct proto_candidate *scratch = calloc(vc, sizeof(*scratch));
    size_t *offered = calloc(vc, sizeof(*offered));
    double *u = calloc(vc, sizeof(*u));
    double sum = 0;
    int status = 1;

    if (!table || !scratch || !offered || !u)
        goto out;
    in.table = policy_table_build(in0, table, policy_table_size(in0));
    if (!in.table)
        goto out;
    printf("trace: step t_s | policy holds (u/s) answer | greedy holds "
           "(u/s) answer | sum policy - greedy run value\n");
    for (size_t k = 0; k < b->step_count; k++) {
        const struct proto_report *r = &b->steps[k].report;
        double t1 = k + 1 < b->step_count ? b->steps[k + 1].t_s : b->end_s;
        size_t m = policy_offered(&in, r, offered);
        double up, ug, cpb;

        if (policy_utilities(pc, &in, r, scratch, u, &cpb) != POLICY_OK)
            goto out;
        up = util_of(&in, offered, m, u, tr[0][k].held);
        ug = util_of(&in, offered, m, u, tr[1][k].held);
        sum += (up - ug) * (t1 - b->steps[k].t_s) -
               (tr[0][k].start_bytes - tr[1][k].start_bytes) * cpb;
        if (strcmp(tr[0][k].held, tr[1][k].held) == 0 &&
            strcmp(tr[0][k].what, tr[1][k].what) == 0)
            continue;
        printf("%zu %.0f | %s (%.4g) %s | %s (%.4g) %s | %.2f\n", k,
               b->steps[k].t_s, tr[0][k].held[0] ? tr[0][k].held : "-", up,
               tr[0][k].what, tr[1][k].held[0] ? tr[1][k].held : "-", ug,
               tr[1][k].what, sum);
        printf("    policy: %s\n    greedy: %s\n    candidates: %s\n",
               tr[0][k].reason, tr[1][k].reason, tr[0][k].why_not);
    }
    status = 0;
out:
    free(table);
    free(scratch);
    free(offered);
    free(u);
    if (status)
        fprintf(stderr, "modeld replay: --trace failed\n");
    return status;
}

/* --regret: the reports whose answers lost utility against the oracle. */
static void
print_regret(const struct policy_input *in, const struct scenario_buf *b,
             const struct trace_step *ts, const struct replay_regret *rg)
{
    double sum = 0;

    printf("regret: step t_s | holds [fetching] | answer, transfer | oracle "
           "transfer (runs after s) | regret | value to go | u/s held, "
           "answer's, oracle's\n");
    for (size_t k = 0; k < b->step_count; k++) {
        const struct replay_regret *g = &rg[k];

        sum += g->regret;
        if (!(g->regret > 0.005))
            continue;
        printf("%zu %.0f | %s [%s] | %s, %s | %s (%.1f) | %.3f | %.2f | "
               "u/s %.4g %.4g %.4g\n",
               k, b->steps[k].t_s,
               g->held == SIZE_MAX ? "-" : in->variants[g->held].name,
               g->fetch == SIZE_MAX ? "-" : in->variants[g->fetch].name,
               ts ? ts[k].what : "-",
               g->to == SIZE_MAX ? "-" : in->variants[g->to].name,
               g->best_to == SIZE_MAX ? "-" : in->variants[g->best_to].name,
               g->best_tc, g->regret, g->value, g->u_held, g->u_to,
               g->u_best);
        printf("    reason: %s\n", ts ? ts[k].reason : "");
    }
    printf("regret: total %.3f\n", sum);
}

/* Copies of the snapshot's arrays with sizes times scale. */
static int
replay_family(const struct config *cfg, const struct store_snapshot *snap,
              double scale, const struct scenario_buf *b, bool json,
              bool decisions, bool trace, bool switches, int regret)
{
    struct observe_ctx oc = {.decisions = decisions,
                             .steps = b->steps,
                             .variant_count = snap->variant_count};
    struct proto_variant *vs = NULL;
    struct proto_delta *ds = NULL;
    struct replay_result res[REPLAY_ORACLE + 1];
    struct replay_scenario sc;
    struct policy_input in;
    struct replay_regret *rg = NULL;
    int status = 1;

    vs = calloc(snap->variant_count ? snap->variant_count : 1, sizeof(*vs));
    ds = calloc(snap->delta_count ? snap->delta_count : 1, sizeof(*ds));
    oc.deltas = ds;
    for (int s = REPLAY_POLICY; s <= REPLAY_GREEDY; s++)
        if (trace || regret == s)
            oc.trace[s] = calloc(b->step_count, sizeof(*oc.trace[s]));
    if (regret >= 0)
        rg = calloc(b->step_count, sizeof(*rg));
    if (!vs || !ds || (trace && (!oc.trace[0] || !oc.trace[1])) ||
        (regret >= 0 && (!rg || (regret <= REPLAY_GREEDY &&
                                 !oc.trace[regret])))) {
        fprintf(stderr, "modeld replay: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < snap->variant_count; i++) {
        vs[i] = snap->variants[i];
        vs[i].size_bytes = (uint64_t)((double)vs[i].size_bytes * scale);
    }
    for (size_t i = 0; i < snap->delta_count; i++) {
        ds[i] = snap->deltas[i];
        ds[i].size_bytes = (uint64_t)((double)ds[i].size_bytes * scale);
    }
    in = (struct policy_input){
        .family = snap->family.name,
        .variants = vs,
        .variant_count = snap->variant_count,
        .deltas = ds,
        .delta_count = snap->delta_count,
    };
    sc = (struct replay_scenario){
        .steps = b->steps,
        .step_count = b->step_count,
        .end_s = b->end_s,
        .trace = {.t_s = b->t_s, .bps = b->bps, .count = b->trace_count},
        .observe =
            decisions || trace || regret >= 0 ? print_decision : NULL,
        .observe_ctx = &oc,
        .on_switch = switches ? print_switch : NULL,
    };
    for (int s = 0; s <= REPLAY_ORACLE; s++) {
        enum replay_status rc;

        oc.strategy = s;
        sc.regret = s == regret ? rg : NULL;
        rc =
            replay_run(&cfg->policy, &in, &sc, (enum replay_strategy)s,
                       &res[s]);

        if (rc != REPLAY_OK) {
            fprintf(stderr, "modeld replay: %s: %s\n", strategy_names[s],
                    rc == REPLAY_NO_MEMORY
                        ? "out of memory"
                        : "the scenario does not fit the family (no "
                          "variant, or times out of order)");
            goto out;
        }
    }
    if (trace && print_trace(&cfg->policy, &in, b, oc.trace) != 0)
        goto out;
    if (regret >= 0)
        print_regret(&in, b, regret <= REPLAY_GREEDY ? oc.trace[regret] : NULL,
                     rg);
    print_results(snap->family.name, b, res, json);
    status = 0;
out:
    free(rg);
    free(oc.trace[0]);
    free(oc.trace[1]);
    free(vs);
    free(ds);
    return status;
}

int
cmd_replay(int argc, char **argv)
{
    const char *config_path = NULL, *dir = NULL, *args[3];
    size_t arg_count = 0;
    struct scenario_buf b;
    const struct store_snapshot *snap = NULL;
    struct store *st = NULL;
    struct store_options opt;
    struct config cfg;
    double scale = 1;
    bool json = false, decisions = false, trace = false, switches = false;
    int pref = -1, status = 1, regret = -1;
    enum store_status rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--decisions") == 0) {
            decisions = true;
        } else if (strcmp(argv[i], "--trace") == 0) {
            trace = true;
        } else if (strcmp(argv[i], "--switches") == 0) {
            switches = true;
        } else if (strcmp(argv[i], "--regret") == 0 && i + 1 < argc) {
            const char *r = argv[++i];

            regret = strcmp(r, "policy") == 0     ? REPLAY_POLICY
                     : strcmp(r, "greedy") == 0   ? REPLAY_GREEDY
                     : strcmp(r, "smallest") == 0 ? REPLAY_SMALLEST
                                                  : -2;
            if (regret == -2) {
                fprintf(stderr, "modeld replay: --regret wants policy, "
                                "greedy or smallest\n");
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--preference") == 0 && i + 1 < argc) {
            const char *p = argv[++i];

            pref = strcmp(p, "quality") == 0    ? PROTO_PREFER_QUALITY
                   : strcmp(p, "balanced") == 0 ? PROTO_PREFER_BALANCED
                   : strcmp(p, "saver") == 0    ? PROTO_PREFER_SAVER
                                                : -2;
            if (pref == -2) {
                fprintf(stderr, "modeld replay: --preference wants quality, "
                                "balanced or saver\n");
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--size-scale") == 0 && i + 1 < argc) {
            char *end;

            scale = strtod(argv[++i], &end);
            if (*end || !(scale > 0) || scale > 1e9) {
                fprintf(stderr, "modeld replay: --size-scale wants a number "
                                "in (0, 1e9]\n");
                return EXIT_USAGE;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "modeld replay: unknown or incomplete option "
                            "\"%.64s\"\n%s", argv[i], usage_text);
            return EXIT_USAGE;
        } else if (arg_count < 3) {
            args[arg_count++] = argv[i];
        } else {
            fprintf(stderr, "modeld replay: too many arguments\n%s",
                    usage_text);
            return EXIT_USAGE;
        }
    }
    if (arg_count < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (cmd_config_load("modeld replay", config_path, &cfg, &dir) != 0)
        return 1;

    memset(&b, 0, sizeof(b));
    if (read_scenario(args[1], &cfg, arg_count < 3, pref, &b) != 0 ||
        (arg_count == 3 && read_trace(args[2], &b) != 0))
        goto out;

    opt = cfg.store;
    opt.run_worker = false;
    opt.read_only = true;
    rc = store_open(dir, &opt, &st);
    if (rc != STORE_OK) {
        fprintf(stderr, "modeld replay: cannot open %s: %s\n", dir,
                store_errmsg(NULL));
        goto out;
    }
    rc = store_snapshot_get(st, args[0], &snap);
    if (rc != STORE_OK) {
        fprintf(stderr, "modeld replay: %s \"%.64s\"\n",
                rc == STORE_NOT_FOUND ? "no family" : "cannot read family",
                args[0]);
        goto out;
    }
    status = replay_family(&cfg, snap, scale, &b, json, decisions,
                           trace, switches, regret);
out:
    store_snapshot_release(snap);
    store_close(st);
    scenario_buf_free(&b);
    return status;
}
