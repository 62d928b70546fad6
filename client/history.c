/*
 * What the client remembers of its conditions, for the policy
 * (README "Selection policy"): its own download throughput
 * (network.downlink_history_bps, network.downlink_bps) and the lowest free
 * memory of each clock minute (device.memory_history_bytes,
 * device.memory_floor_bytes). Kept in the state (client/state.c), so that
 * a restart keeps them; every entry carries its time, so that nothing
 * stale is ever sent:
 *
 * - a throughput sample is sent for CLIENT_DOWNLINK_MAX_AGE_S (30 min, the
 *   default policy horizon: what the server plans for) after it was
 *   measured, and only while the default route is the interface it was
 *   measured on (Wi-Fi and cellular are different links);
 * - a memory minute is sent while it is one of the last 16 clock minutes,
 *   now's (partial) included: the field's definition.
 *
 * A time after now (the wall clock went back) cannot be placed: such
 * entries are not sent, and memory minutes after now's are dropped when a
 * sample arrives. Pure functions: now is passed in.
 */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"

size_t client_history_slot(void *base, size_t *count, size_t size)
{
    if (*count == CLIENT_HISTORY_MAX) {
        memmove(base, (char *)base + size, (CLIENT_HISTORY_MAX - 1) * size);
        (*count)--;
    }
    return (*count)++;
}

void client_state_add_downlink(struct client_state *st, int64_t now_s,
                               const char *iface, double bps)
{
    if (!(bps >= 0) || !isfinite(bps))
        return;
    if (bps > 1e12)
        bps = 1e12; /* the report's bound */
    if (!iface)
        iface = "";
    if (strcmp(iface, st->downlink_iface) != 0) {
        /* Another link: what was measured on the last one says nothing. */
        st->downlink_count = 0;
        snprintf(st->downlink_iface, sizeof(st->downlink_iface), "%s", iface);
    }
    size_t at = client_history_slot(st->downlink, &st->downlink_count,
                                    sizeof(st->downlink[0]));
    st->downlink[at].at_s = now_s;
    st->downlink[at].bps = bps;
}

size_t client_state_fresh_downlink(const struct client_state *st,
                                   int64_t now_s, const char *iface,
                                   double out[CLIENT_HISTORY_MAX])
{
    size_t n = 0;

    if (strcmp(iface ? iface : "", st->downlink_iface) != 0)
        return 0;
    for (size_t i = 0; i < st->downlink_count && i < CLIENT_HISTORY_MAX; i++) {
        const struct client_downlink_sample *s = &st->downlink[i];

        if (s->at_s > now_s || now_s - s->at_s >= CLIENT_DOWNLINK_MAX_AGE_S)
            continue;
        out[n++] = s->bps;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double client_state_downlink_estimate(const struct client_state *st,
                                      int64_t now_s, const char *iface)
{
    double v[CLIENT_HISTORY_MAX];
    size_t n = client_state_fresh_downlink(st, now_s, iface, v);

    if (n == 0)
        return -1;
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The clock minute of t (floor, also before 1970). */
static int64_t minute_of(int64_t t)
{
    return t >= 0 ? t / CLIENT_MINUTE_S
                  : -((-t + CLIENT_MINUTE_S - 1) / CLIENT_MINUTE_S);
}

/*
 * The entry of minute m in a history of per-minute lows (entries of size
 * bytes beginning with their int64_t minute, oldest first; memory and
 * compute): entries of later minutes go first (the clock went back:
 * *changed). *out_new says the entry was just made (the oldest dropped
 * when full): the caller fills it; else it holds m's low so far.
 */
static_assert(offsetof(struct client_memory_minute, minute) == 0 &&
                  offsetof(struct client_compute_minute, minute) == 0,
              "minute_entry reads the minute at the start of an entry");

static void *minute_entry(void *base, size_t *count, size_t size, int64_t m,
                          bool *changed, bool *out_new)
{
    char *b = base;
    int64_t last = 0;

    while (*count > 0) {
        memcpy(&last, b + (*count - 1) * size, sizeof(last));
        if (last <= m)
            break;
        (*count)--;
        *changed = true;
    }
    *out_new = *count == 0 || last != m;
    if (!*out_new)
        return b + (*count - 1) * size;
    return b + client_history_slot(base, count, size) * size;
}

bool client_state_add_memory(struct client_state *st, int64_t now_s,
                             uint64_t bytes)
{
    int64_t m = minute_of(now_s);
    struct client_memory_minute *e;
    bool changed = false, is_new;

    if (bytes == 0)
        return false; /* unknown */
    e = minute_entry(st->memory, &st->memory_count, sizeof(st->memory[0]), m,
                     &changed, &is_new);
    if (is_new) {
        e->minute = m;
        e->low_bytes = bytes;
        return true;
    }
    if (bytes < e->low_bytes) {
        e->low_bytes = bytes;
        changed = true;
    }
    return changed;
}

size_t client_state_fresh_memory(const struct client_state *st,
                                 int64_t now_s,
                                 uint64_t out[CLIENT_HISTORY_MAX])
{
    int64_t m = minute_of(now_s);
    size_t n = 0;

    for (size_t i = 0; i < st->memory_count && i < CLIENT_HISTORY_MAX; i++) {
        const struct client_memory_minute *e = &st->memory[i];

        if (e->minute > m || m - e->minute >= CLIENT_HISTORY_MAX)
            continue;
        out[n++] = e->low_bytes;
    }
    return n;
}

uint64_t client_state_memory_floor(const struct client_state *st,
                                   int64_t now_s)
{
    uint64_t v[CLIENT_HISTORY_MAX], low = 0;
    size_t n = client_state_fresh_memory(st, now_s, v);

    for (size_t i = 0; i < n; i++)
        if (low == 0 || v[i] < low)
            low = v[i];
    return low;
}

/*
 * Compute: the per-minute lows of the probe (client/facts.c) and the
 * reference they are read against. The probe kernel is not the models'
 * workload, so its figures are read as a ratio to the fastest probe seen
 * lately (the device unthrottled), times the device's peak GFLOP/s (the
 * configured device.gflops, else the benchmark's): a device throttled to
 * half its clock reports half its peak.
 */
bool client_state_add_compute(struct client_state *st, int64_t now_s,
                              double probe_gflops)
{
    int64_t m = minute_of(now_s);
    struct client_compute_minute *e;
    bool changed = false, is_new;

    if (!(probe_gflops > 0) || !isfinite(probe_gflops))
        return false;
    if (st->probe_ref <= 0 || st->probe_ref_at_s > now_s ||
        now_s - st->probe_ref_at_s >= CLIENT_PROBE_REF_MAX_AGE_S ||
        probe_gflops > st->probe_ref) {
        st->probe_ref = probe_gflops;
        st->probe_ref_at_s = now_s;
        changed = true;
    }
    /* The newest probe: what the report sends as gflops now (not saved:
     * every report probes first). */
    st->probe_last = probe_gflops;
    st->probe_last_at_s = now_s;
    e = minute_entry(st->compute, &st->compute_count, sizeof(st->compute[0]),
                     m, &changed, &is_new);
    if (is_new) {
        e->minute = m;
        e->low_gflops = probe_gflops;
        return true;
    }
    if (probe_gflops < e->low_gflops) {
        e->low_gflops = probe_gflops;
        changed = true;
    }
    return changed;
}

/* A probe figure as this device's GFLOP/s: the share of the reference,
 * times peak; a share within CLIENT_PROBE_NOISE of the reference is the
 * probe's own jitter (a few-ms kernel on a shared core) and counts as the
 * reference itself, so that an unthrottled device reports a flat history;
 * within the report's bounds. */
static double scaled(const struct client_state *st, double probe, double peak)
{
    double r = probe / st->probe_ref;
    double v = (r < 1 - CLIENT_PROBE_NOISE ? r : 1) * peak;

    if (v > 1e6)
        v = 1e6;
    return v;
}

size_t client_state_fresh_compute(const struct client_state *st,
                                  int64_t now_s, double peak,
                                  double out[CLIENT_HISTORY_MAX])
{
    int64_t m = minute_of(now_s);
    size_t n = 0;

    if (!(peak > 0) || !(st->probe_ref > 0))
        return 0;
    for (size_t i = 0; i < st->compute_count && i < CLIENT_HISTORY_MAX; i++) {
        const struct client_compute_minute *e = &st->compute[i];
        double v;

        if (e->minute > m || m - e->minute >= CLIENT_HISTORY_MAX)
            continue;
        v = scaled(st, e->low_gflops, peak);
        if (v > 0)
            out[n++] = v;
    }
    return n;
}

double client_state_compute_now(const struct client_state *st, int64_t now_s,
                                double peak)
{
    double v;

    if (!(peak > 0) || !(st->probe_ref > 0) || !(st->probe_last > 0) ||
        st->probe_last_at_s > now_s ||
        now_s - st->probe_last_at_s >= CLIENT_MINUTE_S)
        return -1;
    v = scaled(st, st->probe_last, peak);
    return v > 0 ? v : -1;
}
