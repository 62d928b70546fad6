/*
 * Admission under load (Omaha-style): a rule applied after the policy's
 * choice. When the UE reports its cell loaded at or above a threshold, a
 * non-urgent transfer (the UE already holds a model it can run) waits:
 * the answer keeps that model and asks again soon. Pure, like policy/.
 */
#ifndef POLICY_ADMISSION_H
#define POLICY_ADMISSION_H

#include <stdbool.h>

#include "policy/policy.h"

struct policy_admission {
    double max_load;              /* network.load at or above it defers;
                                     above 1: never */
    unsigned recheck_after_s;     /* recheck_after_s of a deferred answer */
};

/*
 * Defers d's transfer (download or delta) when r reports network.load at
 * or above cfg->max_load and r's current model is one of in's variants
 * that meets the hard constraints (memory, format, accelerators): d
 * becomes keep of that variant with cfg->recheck_after_s and a reason; the
 * variant it would have fetched is listed among the candidates. Returns
 * whether it deferred; d is unchanged otherwise (also when the UE holds
 * nothing runnable: then the transfer is urgent).
 */
bool policy_admission_defer(const struct policy_admission *cfg,
                            const struct policy_input *in,
                            const struct proto_report *r,
                            struct proto_decision *d);

#endif
