/*
 * One select decision on a snapshot, the single pipeline of the select
 * handler and `modeld select`: the versions that compete for this UE
 * (a paused version only for the UEs that hold it), the policy, then the
 * admission rule under load. No HTTP, no output.
 */
#ifndef SERVER_DECIDE_H
#define SERVER_DECIDE_H

#include <stdbool.h>

#include "policy/admission.h"
#include "policy/policy.h"
#include "store/store.h"

struct decision_run {
    struct proto_decision d;
    /* what d's indexes point into (with a kept older version last) */
    const struct proto_variant *variants;
    bool deferred;                        /* admission deferred a transfer */
    struct proto_variant *view;           /* owned (decide_run_free) */
    void *table;                          /* owned: the policy table of the
                                             view, or of a snapshot read
                                             without one */
};

enum decide_status {
    DECIDE_OK = 0,
    DECIDE_NO_MEMORY,
    DECIDE_POLICY_BUG,    /* the policy refused its input */
};

/*
 * Decides for report r on snap. cands and reasons are the caller's storage
 * for the decision's candidates and their reasons, room for
 * snap->variant_count + 1 of each (one more for a held version). On DECIDE_OK run->d and run->variants hold the
 * decision, to write with proto_decision_write(&run->d, ...,
 * run->variants, snap->deltas). Always release with decide_run_free.
 */
enum decide_status decide_run(const struct policy_config *policy,
                              const struct policy_admission *admission,
                              const struct store_snapshot *snap,
                              const struct proto_report *r,
                              struct proto_candidate *cands,
                              struct proto_reasons *reasons,
                              struct decision_run *run);

void decide_run_free(struct decision_run *run);

/*
 * The policy's table of snap's variants, deltas and older versions, for
 * store_options.snapshot_derive (so that every select of a snapshot
 * shares one; decide_run builds its own when the snapshot has none).
 * NULL when out of memory; free with decide_snapshot_table_free.
 */
void *decide_snapshot_table(const struct store_snapshot *snap);
void decide_snapshot_table_free(void *table);

#endif
