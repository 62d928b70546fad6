/*
 * Admission under load: the one rule of policy/admission.h, kept apart
 * from the selection objective (policy/policy.c) so that either can change
 * alone. No I/O, no clock.
 */
#include <stdio.h>
#include <string.h>

#include "policy/admission.h"

static uint64_t
memory_of(const struct proto_variant *v)
{
    return v->memory_bytes ? v->memory_bytes : v->size_bytes;
}

/* The hard constraints of the selection rules. */
static bool
is_runnable(const struct proto_variant *v, const struct proto_report *r)
{
    bool found;

    if (memory_of(v) > r->memory_bytes)
        return false;
    if (v->format[0] && r->has_formats) {
        found = false;
        for (size_t i = 0; i < r->format_count && !found; i++)
            found = strcmp(r->formats[i], v->format) == 0;
        if (!found)
            return false;
    }
    for (size_t a = 0; a < v->accelerator_count; a++) {
        found = false;
        for (size_t i = 0; i < r->accelerator_count && !found; i++)
            found = strcmp(r->accelerators[i], v->accelerators[a]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static unsigned
percent(double fraction)
{
    return (unsigned)(fraction * 100.0 + 0.5);
}

static double
latency_of(const struct proto_variant *v, const struct proto_report *r)
{
    if (r->has_device_class)
        for (size_t i = 0; i < v->latency_count; i++)
            if (strcmp(v->latency_ms[i].device_class, r->device_class) == 0)
                return v->latency_ms[i].value;
    return v->flops / (r->gflops * 1e9) * 1000.0;
}

bool
policy_admission_defer(const struct policy_admission *cfg,
                       const struct policy_input *in,
                       const struct proto_report *r, struct proto_decision *d)
{
    const struct proto_variant *held = NULL, *wanted;
    size_t held_index = 0, slot;
    struct proto_candidate *c = NULL;

    if (d->action != PROTO_ACTION_DOWNLOAD && d->action != PROTO_ACTION_DELTA)
        return false;
    if (!r->has_load || r->load < cfg->max_load || !r->has_current)
        return false;
    for (size_t i = 0; i < in->variant_count && !held; i++) {
        if (strcmp(in->variants[i].blob_hex, r->current_hex) == 0 &&
            is_runnable(&in->variants[i], r)) {
            held = &in->variants[i];
            held_index = i;
        }
    }
    if (!held)
        return false;
    wanted = &in->variants[d->chosen];

    /* The variant it would have fetched takes the held one's place among
     * the candidates (or a free slot). */
    for (slot = 0; slot < d->candidate_count; slot++)
        if (d->candidates[slot].variant == held_index)
            break;
    if (slot == d->candidate_count && d->candidate_count < in->variant_count)
        d->candidate_count++;
    if (slot < d->candidate_count) {
        struct proto_reasons *rs = &d->candidate_reasons[slot];

        c = &d->candidates[slot];
        memset(c, 0, sizeof(*c));
        c->variant = d->chosen;
        c->feasible = true;
        snprintf(rs->text[0], sizeof(rs->text[0]),
                 "deferred: network load %u%% at or above %u%%",
                 percent(r->load), percent(cfg->max_load));
        rs->count = 1;
    }

    d->action = PROTO_ACTION_KEEP;
    d->chosen = held_index;
    d->has_delta = false;
    d->degraded = false;
    d->violations.count = 0;
    d->exit_index = -1;
    d->estimates.latency_ms = latency_of(held, r);
    d->estimates.download_s = 0;
    d->estimates.memory_bytes = memory_of(held);
    d->estimates.has_energy_mj = false;
    d->recheck_after_s = cfg->recheck_after_s;
    memset(&d->reasons, 0, sizeof(d->reasons));
    snprintf(d->reasons.text[0], sizeof(d->reasons.text[0]),
             "admission: load %u%% at or above %u%%; %s version %lld waits",
             percent(r->load), percent(cfg->max_load), wanted->name,
             (long long)wanted->version);
    d->reasons.count = 1;
    return true;
}
