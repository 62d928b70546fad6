/*
 * replay: a simulated UE that follows decisions through a scenario (UE
 * reports at given times and the throughput the link really gives), and
 * the offline oracle that knows the whole scenario in advance. Pure like
 * the policy: no I/O, clock or randomness; memory from malloc only for the
 * oracle's table and per-step utilities, freed before returning.
 *
 * The simulator. Between reports the UE downloads at the trace's
 * throughput (bits integrated over time; round trips are not modelled)
 * and runs what it holds; a finished download replaces the model at once.
 * At each report it sends current (what it holds), fetching (what is in
 * flight, bytes done) and downlink_history_bps (the link's average over
 * each of the last 16 report intervals), and downlink_bps when the
 * scenario's report has none (the last interval's average). It follows the
 * answer: download/delta of the blob in flight (same kind) continues it;
 * of another blob aborts what is in flight (its bytes stay moved) and
 * starts that one; keep and none abort what is in flight.
 *
 * The score, the policy's objective over the whole scenario: the
 * utility of what runs, integrated over time (policy_utilities: 0 while
 * nothing runs or what is held cannot run or misses a requirement), minus
 * the bytes moved times their cost per byte at the report that started
 * the transfer.
 *
 * The oracle: dynamic programming over (report, model held), exact for
 * the simulator. From each report the UE either keeps what it holds for
 * one interval or starts a transfer to another model, which runs from the
 * instant the trace has moved its bytes; the next decision is at the first
 * report after that. Aborting a transfer never helps an oracle (its bytes
 * cost and bring nothing), so it has no abort.
 */
#ifndef POLICY_REPLAY_H
#define POLICY_REPLAY_H

#include <stddef.h>

#include "policy/policy.h"

enum replay_status {
    REPLAY_OK = 0,
    REPLAY_BAD_ARGUMENT,   /* times not increasing, no steps, no models */
    REPLAY_NO_MEMORY,
};

/* One UE report; current, fetching and the history are the simulator's. */
struct replay_step {
    double t_s;                   /* increasing */
    struct proto_report report;
};

/* The link's throughput: bps[i] from t_s[i] to t_s[i + 1] (before the
 * first point: bps[0]; after the last: bps[count - 1]). */
struct replay_trace {
    const double *t_s;
    const double *bps;
    size_t count;
};

/* Called with every decision the policy strategies take (optional). */
typedef void replay_observer(void *ctx, size_t step,
                             const struct proto_report *report,
                             const struct proto_decision *decision,
                             const struct proto_variant *variants);

enum replay_strategy {
    REPLAY_POLICY = 0,            /* policy_select with the given config */
    REPLAY_GREEDY,                /* best now: horizon 1e9 s, bytes free */
    REPLAY_SMALLEST,              /* always the smallest model that runs */
    REPLAY_ORACLE,                /* the dynamic program */
};

/* Called at every model replacement (to: the model that now runs; from:
 * the one it replaces, NULL for nothing) at time t_s, with the bytes of
 * the transfer that brought it, and at every abort (to NULL, from: the
 * model in flight, bytes: those moved for nothing). step: the report at
 * which the transfer started. For every strategy, the oracle's plan
 * included (its path, which no other output shows). A transfer still in
 * flight at the end is not reported (its bytes are in the figures). */
typedef void replay_switch_observer(void *ctx, enum replay_strategy strategy,
                                    size_t step, double t_s,
                                    const struct proto_variant *from,
                                    const struct proto_variant *to,
                                    double bytes);

/*
 * Where a strategy loses to the oracle, report by report. At each report
 * the UE is in some state (what it holds, what is in flight and how much
 * of it is done); value is the most any strategy can still get from that
 * state (the oracle's dynamic program, extended to a transfer in flight:
 * the better of aborting it and finishing it), and regret what the
 * strategy's answer gives up against it: value less what the strategy got
 * until the next report and the next report's value. Every regret is >= 0
 * (up to rounding) and they sum to the oracle's utility less the
 * strategy's, so a loss is charged to the reports whose answers made it.
 * Variants are indices into the input's variants, SIZE_MAX for nothing.
 */
struct replay_regret {
    double regret;
    double value;                 /* the best value to go from here */
    size_t held, fetch;           /* the state at the report */
    size_t to;                    /* the strategy's transfer after the
                                   * report (fetch when it continues it) */
    size_t best_to;               /* the oracle's, from this state */
    double best_tc;               /* when best_to would run (its time to
                                   * the report's: 0 when it is none) */
    double u_held, u_to, u_best;  /* utility per second at the report */
};

struct replay_scenario {
    const struct replay_step *steps;
    size_t step_count;
    double end_s;                 /* after the last step's t_s */
    struct replay_trace trace;
    replay_observer *observe;     /* NULL: none */
    void *observe_ctx;
    replay_switch_observer *on_switch; /* NULL: none; gets observe_ctx */
    struct replay_regret *regret; /* step_count entries, filled by the
                                   * simulated strategies; NULL: none */
};

struct replay_result {
    double utility;               /* run_value - cost */
    double run_value;             /* utility-seconds of what ran */
    double cost;                  /* of the bytes moved */
    double bytes;                 /* moved, aborted transfers included */
    unsigned switches;            /* models replaced (installs included) */
    unsigned aborts;              /* transfers abandoned */
    double unrunnable_s;          /* time when nothing usable ran */
    double duration_s;
};

/*
 * Replays sc with one strategy against the family in (its deltas count:
 * a transfer from a held model uses the smallest ready delta). The
 * scenario's first report may carry current: the UE starts holding it.
 */
POLICY_MUST_CHECK enum replay_status
replay_run(const struct policy_config *cfg, const struct policy_input *in,
           const struct replay_scenario *sc, enum replay_strategy strategy,
           struct replay_result *out);

#endif
