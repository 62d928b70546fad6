/*
 * Prometheus metrics: fixed arrays of atomic counters indexed by route,
 * status slot and histogram bucket, so that recording a request is a few
 * relaxed atomic adds and needs no lock.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/opensslv.h>
#include <zstd.h>

#include "proto/proto.h"
#include "proto/types.h"
#include "server/metrics.h"

#ifndef MODELD_VERSION
#define MODELD_VERSION "0.1.0"
#endif

static const unsigned statuses[METRICS_STATUSES] = {
    200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 408, 411,
    413, 415, 416, 431, 500, 503, 507, 414, 505, 0, 0, 0,
};
#define STATUS_OTHER (METRICS_STATUSES - 1)

static const double buckets_s[METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 1, 5, 30,
};

static const char *const limit_names[METRICS_LIMIT_COUNT] = {
    "body_size", "json_depth", "request_timeout", "header_size",
    "query_args", "connections", "transfer_stalled"};

void
metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
}

static size_t
status_slot(unsigned status)
{
    for (size_t i = 0; i < METRICS_STATUSES && statuses[i]; i++)
        if (statuses[i] == status)
            return i;
    return STATUS_OTHER;
}

static size_t
route_slot(int route)
{
    return route >= 0 && route < METRICS_ROUTES - 1 ? (size_t)route
                                                    : METRICS_ROUTES - 1;
}

void
metrics_request(struct metrics *m, int route, unsigned status,
                uint64_t bytes, double seconds)
{
    size_t r = route_slot(route), b = 0;

    while (b < METRICS_BUCKETS && seconds > buckets_s[b])
        b++;
    atomic_fetch_add_explicit(&m->requests[r][status_slot(status)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us[r],
                              (uint_fast64_t)(seconds * 1e6),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->bytes_sent[r], bytes,
                              memory_order_relaxed);
}

/* FNV-1a of "family/variant". */
static uint64_t
name_hash(const char *family, const char *variant)
{
    uint64_t h = proto_fnv1a64_str(PROTO_FNV1A64_OFFSET, family);

    h = proto_fnv1a64_str(h, "/");
    return proto_fnv1a64_str(h, variant);
}

/* Finds the slot of family/variant by linear probing, claiming a free one
 * when claim is set and fewer than METRICS_VARIANT_NAMES are named; NULL
 * when it is not there (or a slot is being named right now). The table is
 * at most half full: a probe ends at a free slot within a few steps.
 * *out_probes: the slots looked at. */
static struct metrics_variant *
variant_slot(struct metrics *m, const char *family, const char *variant,
             bool claim, size_t *out_probes)
{
    char name[METRICS_VARIANT_NAME];
    size_t start;

    snprintf(name, sizeof(name), "%s/%s", family, variant);
    start = (size_t)(name_hash(family, variant) % METRICS_VARIANT_SLOTS);
    for (size_t k = 0; k < METRICS_VARIANT_SLOTS; k++) {
        struct metrics_variant *v =
            &m->variants[(start + k) % METRICS_VARIANT_SLOTS];
        int state = atomic_load_explicit(&v->state, memory_order_acquire);

        *out_probes = k + 1;
        if (state == 0) {
            int expected = 0;

            /* Reserve a name first: never more than _NAMES slots named
             * (the load first: no shared write once the table is full). */
            if (!claim || atomic_load_explicit(&m->variants_named,
                                               memory_order_relaxed) >=
                              METRICS_VARIANT_NAMES)
                return NULL;
            if (atomic_fetch_add(&m->variants_named, 1) >=
                METRICS_VARIANT_NAMES) {
                atomic_fetch_sub(&m->variants_named, 1);
                return NULL;
            }
            if (atomic_compare_exchange_strong(&v->state, &expected, 1)) {
                memcpy(v->name, name, sizeof(name));
                atomic_store_explicit(&v->state, 2, memory_order_release);
                return v;
            }
            atomic_fetch_sub(&m->variants_named, 1);
            state = expected;
        }
        if (state == 1)
            return NULL;
        if (strcmp(v->name, name) == 0)
            return v;
    }
    return NULL;
}

size_t
metrics_variant_probes(struct metrics *m, const char *family,
                       const char *variant)
{
    size_t probes = 0;

    (void)variant_slot(m, family, variant, false, &probes);
    return probes;
}

void
metrics_decision(struct metrics *m, enum proto_action action, bool degraded,
                 uint64_t bytes_saved, const char *family,
                 const char *variant)
{
    if (family && variant) {
        size_t probes;
        struct metrics_variant *v =
            variant_slot(m, family, variant, true, &probes);

        atomic_fetch_add_explicit(v ? &v->count : &m->variants_other, 1,
                                  memory_order_relaxed);
    }
    if ((unsigned)action < 4)
        atomic_fetch_add_explicit(&m->decisions[action], 1,
                                  memory_order_relaxed);
    if (degraded)
        atomic_fetch_add_explicit(&m->degraded, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->delta_bytes_saved, bytes_saved,
                              memory_order_relaxed);
}

void
metrics_limit(struct metrics *m, enum metrics_limit limit)
{
    if ((unsigned)limit < METRICS_LIMIT_COUNT)
        atomic_fetch_add_explicit(&m->limits[limit], 1,
                                  memory_order_relaxed);
}

static void
vput(struct metrics_text *t, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
vput(struct metrics_text *t, const char *fmt, va_list ap)
{
    if (t->failed)
        return;
    for (;;) {
        va_list aq;
        size_t room = t->cap - t->len;
        int n;

        va_copy(aq, ap);
        n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, aq);
        va_end(aq);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n + 1;
        char *p = realloc(t->p, cap);

        if (!p) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

void
metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vput(t, fmt, ap);
    va_end(ap);
}

void
metrics_text_head(struct metrics_text *t, const char *name,
                  const char *type, const char *help_fmt, ...)
{
    va_list ap;

    metrics_text_printf(t, "# HELP %s ", name);
    va_start(ap, help_fmt);
    vput(t, help_fmt, ap);
    va_end(ap);
    metrics_text_printf(t, "\n# TYPE %s %s\n", name, type);
}

void
metrics_text_line(struct metrics_text *t, const char *name,
                  const char *type, const char *help, uint64_t value)
{
    metrics_text_head(t, name, type, "%s", help);
    metrics_text_printf(t, "%s %llu\n", name, (unsigned long long)value);
}

char *
metrics_text_take(struct metrics_text *t)
{
    char *p = t->failed ? NULL : t->p;

    if (t->failed)
        free(t->p);
    memset(t, 0, sizeof(*t));
    return p;
}

static uint64_t
get(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void
render_requests(struct metrics_text *b, struct metrics *m,
                const char *const *labels, size_t count)
{
    metrics_text_head(b, "modeld_http_requests_total", "counter",
                      "HTTP requests by route and status.");
    for (size_t r = 0; r <= count && r < METRICS_ROUTES; r++) {
        size_t slot = r < count ? r : METRICS_ROUTES - 1;
        const char *label = r < count ? labels[r] : "other";

        for (size_t s = 0; s < METRICS_STATUSES; s++) {
            uint64_t v = get(&m->requests[slot][s]);

            if (v == 0)
                continue;
            if (s == STATUS_OTHER)
                metrics_text_printf(b, "modeld_http_requests_total{route=\"%s\","
                       "status=\"other\"} %llu\n", label,
                    (unsigned long long)v);
            else
                metrics_text_printf(b, "modeld_http_requests_total{route=\"%s\","
                       "status=\"%u\"} %llu\n", label, statuses[s],
                    (unsigned long long)v);
        }
    }
    metrics_text_head(b, "modeld_http_request_duration_seconds", "histogram",
                      "Time from the request line to the last byte queued.");
    for (size_t r = 0; r <= count && r < METRICS_ROUTES; r++) {
        size_t slot = r < count ? r : METRICS_ROUTES - 1;
        const char *label = r < count ? labels[r] : "other";
        uint64_t cum = 0;

        for (size_t k = 0; k <= METRICS_BUCKETS; k++)
            cum += get(&m->latency[slot][k]);
        if (cum == 0)
            continue;
        cum = 0;
        for (size_t k = 0; k < METRICS_BUCKETS; k++) {
            cum += get(&m->latency[slot][k]);
            metrics_text_printf(b, "modeld_http_request_duration_seconds_bucket{route=\"%s\""
                   ",le=\"%g\"} %llu\n", label, buckets_s[k],
                (unsigned long long)cum);
        }
        cum += get(&m->latency[slot][METRICS_BUCKETS]);
        metrics_text_printf(b, "modeld_http_request_duration_seconds_bucket{route=\"%s\","
               "le=\"+Inf\"} %llu\n", label, (unsigned long long)cum);
        metrics_text_printf(b, "modeld_http_request_duration_seconds_sum{route=\"%s\"} "
               "%.6f\n", label, (double)get(&m->latency_sum_us[slot]) / 1e6);
        metrics_text_printf(b, "modeld_http_request_duration_seconds_count{route=\"%s\"} "
               "%llu\n", label, (unsigned long long)cum);
    }
    metrics_text_head(b, "modeld_http_response_bytes_total", "counter",
                      "Response body bytes by route.");
    for (size_t r = 0; r < count && r < METRICS_ROUTES - 1; r++) {
        uint64_t v = get(&m->bytes_sent[r]);

        if (v)
            metrics_text_printf(b, "modeld_http_response_bytes_total{route=\"%s\"} %llu\n",
                labels[r], (unsigned long long)v);
    }
}

static void
render_decisions(struct metrics_text *b, struct metrics *m)
{
    metrics_text_head(b, "modeld_decisions_total", "counter",
                      "Select decisions by action.");
    for (size_t a = 0; a < PROTO_ACTION_COUNT; a++)
        metrics_text_printf(b, "modeld_decisions_total{action=\"%s\"} %llu\n",
                            proto_action_name((enum proto_action)a),
                            (unsigned long long)get(&m->decisions[a]));
    metrics_text_head(b, "modeld_decisions_by_variant_total", "counter",
                      "Decisions by chosen variant (\"other\" past %d names).",
                      METRICS_VARIANT_NAMES);
    for (size_t i = 0; i < METRICS_VARIANT_SLOTS; i++) {
        struct metrics_variant *v = &m->variants[i];
        const char *slash;

        if (atomic_load_explicit(&v->state, memory_order_acquire) != 2)
            continue;
        slash = strchr(v->name, '/');
        metrics_text_printf(b, "modeld_decisions_by_variant_total{family="
                               "\"%.*s\",variant=\"%s\"} %llu\n",
                            (int)(slash - v->name), v->name, slash + 1,
                            (unsigned long long)get(&v->count));
    }
    if (get(&m->variants_other))
        metrics_text_printf(b, "modeld_decisions_by_variant_total{family="
                               "\"other\",variant=\"other\"} %llu\n",
                            (unsigned long long)get(&m->variants_other));
    metrics_text_line(b, "modeld_decisions_degraded_total", "counter",
                      "Decisions that miss a soft constraint.",
                      get(&m->degraded));
    metrics_text_line(b, "modeld_delta_bytes_saved_total", "counter",
                      "Full size minus delta size, summed over delta "
                      "decisions.",
                      get(&m->delta_bytes_saved));
}

/* The store's counters and gauges (struct store_stats). */
static void
render_store(struct metrics_text *b, const struct store_stats *ss)
{
    const struct {
        const char *name, *type, *help;
        uint64_t value;
    } lines[] = {
        {"modeld_worker_retries_total", "counter",
         "Worker jobs (deltas, zstd copies) retried after a transient "
         "failure.",
         ss->job_retries},
        {"modeld_worker_gave_up_total", "counter",
         "Worker jobs failed after their last attempt.", ss->jobs_gave_up},
        {"modeld_compressed_copies_made_total", "counter",
         "zstd copies of blobs made since start.", ss->compressed_made},
        {"modeld_tensor_deltas", "gauge",
         "Ready deltas that have a modeld-tensor/1 form.",
         ss->deltas_tensor_ready},
        {"modeld_delta_storage_bytes", "gauge",
         "Bytes of ready delta files (both formats).",
         ss->delta_storage_bytes},
        {"modeld_delta_storage_max_bytes", "gauge",
         "delta_storage_max_bytes (0: no bound).",
         ss->delta_storage_max_bytes},
        {"modeld_deltas_evicted_total", "counter",
         "Ready deltas dropped to fit delta_storage_max_bytes, least "
         "recently served first.",
         ss->deltas_evicted},
        {"modeld_deltas_on_demand_total", "counter",
         "Deltas queued because a UE held a version without one.",
         ss->deltas_on_demand},
        {"modeld_bg_copies_made_total", "counter",
         "modeld-bg/1 copies of published models made since start.",
         ss->bg_made},
        {"modeld_store_errors_total", "counter",
         "SQLite and OS errors in the store.", ss->errors},
        {"modeld_catalog_snapshot_builds_total", "counter",
         "Family snapshots read from the catalog (concurrent misses share "
         "one read).",
         ss->snapshot_builds},
        {"modeld_catalog_generation", "gauge",
         "Catalog generation: the start-up epoch times 2^32 plus the "
         "changes since start.",
         ss->generation},
        {"modeld_catalog_unreachable", "gauge",
         "1 while the catalog database cannot be reached (selects use the "
         "last snapshots).",
         ss->catalog_down ? 1 : 0},
        {"modeld_catalog_unavailable_total", "counter",
         "Catalog operations that failed because the database could not be "
         "reached.",
         ss->catalog_unavailable},
        {"modeld_catalog_refreshes_total", "counter",
         "Catalog generation moves made by other daemons (PostgreSQL "
         "catalog).",
         ss->catalog_refreshes},
    };

    metrics_text_head(b, "modeld_deltas", "gauge", "Deltas by state.");
    metrics_text_printf(b, "modeld_deltas{state=\"pending\"} %llu\n"
                           "modeld_deltas{state=\"ready\"} %llu\n",
                        (unsigned long long)ss->deltas_pending,
                        (unsigned long long)ss->deltas_ready);
    metrics_text_head(b, "modeld_deltas_made_total", "counter",
                      "Deltas made since start, by outcome.");
    metrics_text_printf(b, "modeld_deltas_made_total{outcome=\"ready\"} %llu\n"
                           "modeld_deltas_made_total{outcome=\"rejected\"} "
                           "%llu\n"
                           "modeld_deltas_made_total{outcome=\"failed\"} "
                           "%llu\n",
                        (unsigned long long)ss->deltas_made,
                        (unsigned long long)ss->deltas_rejected,
                        (unsigned long long)ss->deltas_failed);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        metrics_text_line(b, lines[i].name, lines[i].type, lines[i].help,
                          lines[i].value);
}

/* Edge mode's counters (config blob_origin). refused and failed are
 * reported without HELP/TYPE lines of their own, as they always were. */
static void
render_edge(struct metrics_text *b, const struct edge_stats *es)
{
    metrics_text_head(b, "modeld_edge_blob_requests_total", "counter",
                      "Blob requests of an edge, by where the bytes were.");
    metrics_text_printf(b, "modeld_edge_blob_requests_total{result=\"hit\"} "
                           "%" PRIu64 "\n"
                           "modeld_edge_blob_requests_total{result=\"miss\"} "
                           "%" PRIu64 "\n",
                        es->hits, es->misses);
    metrics_text_line(b, "modeld_edge_origin_fetches_total", "counter",
                      "Fetches from the origin, by outcome.", es->fetches);
    metrics_text_printf(b, "modeld_edge_origin_refused_total %" PRIu64 "\n"
                           "modeld_edge_origin_failed_total %" PRIu64 "\n",
                        es->refused, es->failed);
    metrics_text_line(b, "modeld_edge_origin_bytes_total", "counter",
                      "Bytes received from the origin.", es->origin_bytes);
    metrics_text_line(b, "modeld_edge_evicted_total", "counter",
                      "Blobs evicted by blob_cache_max_bytes.", es->evicted);
    metrics_text_line(b, "modeld_edge_early_answers_total", "counter",
                      "Answers begun from the bytes of a pull-through still "
                      "in flight.",
                      es->early);
    metrics_text_line(b, "modeld_edge_cut_answers_total", "counter",
                      "Early answers cut before their last byte because the "
                      "pull-through failed.",
                      es->cut);
}

char *
metrics_render(struct metrics *m, const char *const *route_labels,
               size_t count, const struct store_stats *ss,
               const struct edge_stats *edge)
{
    struct metrics_text b = {malloc(16384), 0, 16384, false};

    if (!b.p)
        return NULL;
    render_requests(&b, m, route_labels, count);
    render_decisions(&b, m);
    metrics_text_head(&b, "modeld_connections", "gauge",
                      "Open HTTP connections.");
    metrics_text_printf(&b, "modeld_connections %lld\n",
                        (long long)atomic_load(&m->connections));
    metrics_text_head(&b, "modeld_uploads_in_progress", "gauge",
                      "Blob uploads being received.");
    metrics_text_printf(&b, "modeld_uploads_in_progress %lld\n",
                        (long long)atomic_load(&m->uploads));
    metrics_text_head(&b, "modeld_limit_hits_total", "counter",
                      "Requests refused by a limit.");
    for (size_t l = 0; l < METRICS_LIMIT_COUNT; l++)
        metrics_text_printf(&b, "modeld_limit_hits_total{limit=\"%s\"} %llu\n",
                            limit_names[l],
                            (unsigned long long)get(&m->limits[l]));
    render_store(&b, ss);
    /* TLS goes through GnuTLS (libmicrohttpd's); OpenSSL's libcrypto does
     * the digests and signatures: both are named. */
    metrics_text_head(&b, "modeld_build_info", "gauge",
                      "Version of modeld and its libraries (gnutls: TLS; "
                      "openssl: libcrypto, digests and signatures).");
    metrics_text_printf(&b, "modeld_build_info{version=\"%s\",microhttpd="
                            "\"%s\",zstd=\"%s\",gnutls=\"%s\",openssl="
                            "\"%s\"} 1\n",
                        MODELD_VERSION, MHD_get_version(),
                        ZSTD_versionString(), gnutls_check_version(NULL),
                        OPENSSL_VERSION_STR);
    if (edge)
        render_edge(&b, edge);
    return metrics_text_take(&b);
}
