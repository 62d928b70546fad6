/*
 * policy: picks the variant that fits a UE report best and says why every
 * other one lost. Pure: facts in, decision out. No I/O, no clock, no
 * globals, no allocation (the caller provides the candidates array).
 */
#ifndef POLICY_POLICY_H
#define POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/types.h"

#if defined(__GNUC__)
#define POLICY_MUST_CHECK __attribute__((warn_unused_result))
#else
#define POLICY_MUST_CHECK
#endif

enum policy_status {
    POLICY_OK = 0,
    POLICY_BAD_ARGUMENT,   /* caller's bug: NULL, too few candidate slots */
};

/* Weights of one preference's per-second score (accuracy, latency and
 * energy are normalised to 0..1); transfer multiplies the byte cost
 * (policy_transfer_cost_per_mb) for this preference. */
struct policy_weights {
    double accuracy;
    double latency;
    double energy;
    double transfer;
};

/* Every tunable of the policy; the config file sets them (server/). */
struct policy_config {
    struct policy_weights balanced;
    struct policy_weights saver;
    double hysteresis_accuracy;   /* quality: keep current within this */
    double hysteresis_score;      /* balanced/saver: keep within this score */
    double low_battery_percent;   /* below it, not charging: balanced->saver */
    double high_load;             /* network load at/above it weighs transfer */
    double transfer_boost;        /* multiplier of the transfer weight when
                                     metered or high load */
    double default_downlink_bps;  /* when the report gives none */
    unsigned recheck_after_s;
    unsigned recheck_degraded_s;
    /* selection over time */
    double horizon_s;             /* unless the report gives horizon_s */
    double transfer_cost_per_mb;  /* accuracy-seconds per 1e6 bytes */
    double throughput_safety;     /* conservative share of the estimate */
    double memory_margin;         /* share of free memory that may vanish */
    unsigned runner_ups;          /* candidates listed by default */
    unsigned recheck_outage_s;    /* when nothing can arrive now */
};

void policy_config_default(struct policy_config *out);

struct policy_table;

/* What the policy chooses from: one family's offered versions and the
 * ready deltas (store_snapshot's arrays), and the compact table of
 * exactly these (policy_table_build; required when variant_count > 0). */
struct policy_input {
    const char *family;                 /* salts the rollout hash */
    const struct proto_variant *variants;
    size_t variant_count;
    const struct proto_delta *deltas;
    size_t delta_count;
    const struct policy_table *table;
    /* The live versions that compete no more (store_snapshot.older; may
     * be NULL with older_count 0). The table has a row for each, after
     * the variants' (policy_table_build): built from the same arrays.
     * When the report's current is one of them, or a version among
     * variants that is not offered to this UE, it is what the UE runs
     * while a download does (weighed as a held current is, when it meets
     * the hard rules), and never a candidate; kept (action keep) only
     * when no offered version can start (none meets the hard rules, or
     * none can arrive within the horizon: an outage). */
    const struct proto_variant *older;
    size_t older_count;
};

/*
 * The compact table of a family that every select reads instead of the
 * variants' full records (one 64-byte row per variant, strings as small
 * integers; policy/table.h). Build it once per catalog snapshot:
 * policy_table_size(in) bytes (in->table is ignored), then
 * policy_table_build into a buffer of that many bytes aligned as malloc
 * aligns. The table borrows in's variants and deltas (valid while they
 * are) and is read-only afterwards: any number of selects may share it.
 * policy_table_build returns buf as a table, or NULL when size is too
 * small or in is malformed.
 */
size_t policy_table_size(const struct policy_input *in);
const struct policy_table *policy_table_build(const struct policy_input *in,
                                              void *buf, size_t size);

/*
 * Decides for one report. out->candidates and out->candidate_reasons
 * must each point at variant_count entries (owned by the caller); the
 * policy fills candidate_count and every other field of *out. Indexes in
 * *out point into in's arrays; out->chosen, into the variants followed
 * by the older versions: variant_count + j when the answer keeps the
 * held in->older[j] (action keep, see policy_input.older). The entries past candidate_count are the
 * policy's working storage: what they hold is not part of the answer
 * (the default answer of a large family keeps only the entries its
 * decision reads, policy/policy.c).
 */
POLICY_MUST_CHECK enum policy_status
policy_select(const struct policy_config *cfg, const struct policy_input *in,
              const struct proto_report *report, struct proto_decision *out);

/*
 * The conservative throughput (bit/s) the policy plans downloads with:
 * the lower of downlink_bps (else default_downlink_bps) and a low estimate
 * from downlink_history_bps (the harmonic mean of the samples above 0,
 * times the share of samples above 0), times throughput_safety. 0 when the
 * report says downlink_bps 0 (an outage now).
 */
double policy_throughput_estimate(const struct policy_config *cfg,
                                  const struct proto_report *report);

/*
 * The versions that compete for report (one per variant name, the newest
 * whose rollout covers the UE), as indexes into in->variants written to
 * out_index (variant_count slots), in input order. Returns their count.
 */
size_t policy_offered(const struct policy_input *in,
                      const struct proto_report *report, size_t *out_index);

/*
 * What running each competing version (policy_offered's order) is worth
 * per second under report, as policy_select weighs it: the preference's
 * utility when it meets the hard constraints and the latency, accuracy and
 * energy requirements; when no version meets them all (degraded), the
 * utility / (1 + violation) of each that meets the hard ones; else 0. out_u has variant_count slots; scratch too.
 * *out_cost_per_byte (when not NULL): what a byte moved costs under the
 * report (accuracy-seconds, preference and network factors in).
 */
POLICY_MUST_CHECK enum policy_status
policy_utilities(const struct policy_config *cfg,
                 const struct policy_input *in,
                 const struct proto_report *report,
                 struct proto_candidate *scratch, double *out_u,
                 double *out_cost_per_byte);

/* The UE's stable rollout bucket 0..99 for a family (FNV-1a of family,
 * a separator and ue). */
unsigned policy_rollout_bucket(const char *family, const char *ue);

#endif
