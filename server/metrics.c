/*
 * Prometheus metrics: fixed arrays of atomic counters indexed by route,
 * status slot and histogram bucket, so that recording a request is a few
 * relaxed atomic adds and needs no lock.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/opensslv.h>
#include <zstd.h>

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

static const char *const action_names[4] = {"download", "delta", "keep",
                                            "none"};
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

/* Finds or claims the slot of family/variant by linear probing; NULL when
 * the table is full (or a slot is being named right now). */
static struct metrics_variant *
variant_slot(struct metrics *m, const char *family, const char *variant)
{
    char name[METRICS_VARIANT_NAME];
    size_t start;

    snprintf(name, sizeof(name), "%s/%s", family, variant);
    start = (size_t)(name_hash(family, variant) % METRICS_VARIANT_SLOTS);
    for (size_t k = 0; k < METRICS_VARIANT_SLOTS; k++) {
        struct metrics_variant *v =
            &m->variants[(start + k) % METRICS_VARIANT_SLOTS];
        int state = atomic_load_explicit(&v->state, memory_order_acquire);

        if (state == 0) {
            int expected = 0;

            if (atomic_compare_exchange_strong(&v->state, &expected, 1)) {
                memcpy(v->name, name, sizeof(name));
                atomic_store_explicit(&v->state, 2, memory_order_release);
                return v;
            }
            state = expected;
        }
        if (state == 1)
            return NULL;
        if (strcmp(v->name, name) == 0)
            return v;
    }
    return NULL;
}

void
metrics_decision(struct metrics *m, enum proto_action action, bool degraded,
                 uint64_t bytes_saved, const char *family,
                 const char *variant)
{
    if (family && variant) {
        struct metrics_variant *v = variant_slot(m, family, variant);

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

struct buf {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
};

static void
put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);

        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static uint64_t
get(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void
render_requests(struct buf *b, struct metrics *m,
                const char *const *labels, size_t count)
{
    put(b, "# HELP modeld_http_requests_total HTTP requests by route "
           "and status.\n# TYPE modeld_http_requests_total counter\n");
    for (size_t r = 0; r <= count && r < METRICS_ROUTES; r++) {
        size_t slot = r < count ? r : METRICS_ROUTES - 1;
        const char *label = r < count ? labels[r] : "other";

        for (size_t s = 0; s < METRICS_STATUSES; s++) {
            uint64_t v = get(&m->requests[slot][s]);

            if (v == 0)
                continue;
            if (s == STATUS_OTHER)
                put(b, "modeld_http_requests_total{route=\"%s\","
                       "status=\"other\"} %llu\n", label,
                    (unsigned long long)v);
            else
                put(b, "modeld_http_requests_total{route=\"%s\","
                       "status=\"%u\"} %llu\n", label, statuses[s],
                    (unsigned long long)v);
        }
    }
    put(b, "# HELP modeld_http_request_duration_seconds Time from the "
           "request line to the last byte queued.\n"
           "# TYPE modeld_http_request_duration_seconds histogram\n");
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
            put(b, "modeld_http_request_duration_seconds_bucket{route=\"%s\""
                   ",le=\"%g\"} %llu\n", label, buckets_s[k],
                (unsigned long long)cum);
        }
        cum += get(&m->latency[slot][METRICS_BUCKETS]);
        put(b, "modeld_http_request_duration_seconds_bucket{route=\"%s\","
               "le=\"+Inf\"} %llu\n", label, (unsigned long long)cum);
        put(b, "modeld_http_request_duration_seconds_sum{route=\"%s\"} "
               "%.6f\n", label, (double)get(&m->latency_sum_us[slot]) / 1e6);
        put(b, "modeld_http_request_duration_seconds_count{route=\"%s\"} "
               "%llu\n", label, (unsigned long long)cum);
    }
    put(b, "# HELP modeld_http_response_bytes_total Response body bytes "
           "by route.\n# TYPE modeld_http_response_bytes_total counter\n");
    for (size_t r = 0; r < count && r < METRICS_ROUTES - 1; r++) {
        uint64_t v = get(&m->bytes_sent[r]);

        if (v)
            put(b, "modeld_http_response_bytes_total{route=\"%s\"} %llu\n",
                labels[r], (unsigned long long)v);
    }
}

char *
metrics_render(struct metrics *m, const char *const *route_labels,
               size_t count, const struct store_stats *ss)
{
    struct buf b = {malloc(16384), 0, 16384, false};

    if (!b.p)
        return NULL;
    render_requests(&b, m, route_labels, count);
    put(&b, "# HELP modeld_decisions_total Select decisions by action.\n"
            "# TYPE modeld_decisions_total counter\n");
    for (size_t a = 0; a < 4; a++)
        put(&b, "modeld_decisions_total{action=\"%s\"} %llu\n",
            action_names[a], (unsigned long long)get(&m->decisions[a]));
    put(&b, "# HELP modeld_decisions_by_variant_total Decisions by chosen "
            "variant (\"other\" past %d names).\n# TYPE "
            "modeld_decisions_by_variant_total counter\n",
        METRICS_VARIANT_SLOTS);
    for (size_t i = 0; i < METRICS_VARIANT_SLOTS; i++) {
        struct metrics_variant *v = &m->variants[i];
        const char *slash;

        if (atomic_load_explicit(&v->state, memory_order_acquire) != 2)
            continue;
        slash = strchr(v->name, '/');
        put(&b, "modeld_decisions_by_variant_total{family=\"%.*s\","
                "variant=\"%s\"} %llu\n",
            (int)(slash - v->name), v->name, slash + 1,
            (unsigned long long)get(&v->count));
    }
    if (get(&m->variants_other))
        put(&b, "modeld_decisions_by_variant_total{family=\"other\","
                "variant=\"other\"} %llu\n",
            (unsigned long long)get(&m->variants_other));
    put(&b, "# HELP modeld_decisions_degraded_total Decisions that miss a "
            "soft constraint.\n# TYPE modeld_decisions_degraded_total "
            "counter\nmodeld_decisions_degraded_total %llu\n",
        (unsigned long long)get(&m->degraded));
    put(&b, "# HELP modeld_delta_bytes_saved_total Full size minus delta "
            "size, summed over delta decisions.\n# TYPE "
            "modeld_delta_bytes_saved_total counter\n"
            "modeld_delta_bytes_saved_total %llu\n",
        (unsigned long long)get(&m->delta_bytes_saved));
    put(&b, "# HELP modeld_connections Open HTTP connections.\n"
            "# TYPE modeld_connections gauge\nmodeld_connections %lld\n",
        (long long)atomic_load(&m->connections));
    put(&b, "# HELP modeld_uploads_in_progress Blob uploads being "
            "received.\n# TYPE modeld_uploads_in_progress gauge\n"
            "modeld_uploads_in_progress %lld\n",
        (long long)atomic_load(&m->uploads));
    put(&b, "# HELP modeld_limit_hits_total Requests refused by a limit.\n"
            "# TYPE modeld_limit_hits_total counter\n");
    for (size_t l = 0; l < METRICS_LIMIT_COUNT; l++)
        put(&b, "modeld_limit_hits_total{limit=\"%s\"} %llu\n",
            limit_names[l], (unsigned long long)get(&m->limits[l]));
    put(&b, "# HELP modeld_deltas Deltas by state.\n# TYPE modeld_deltas "
            "gauge\nmodeld_deltas{state=\"pending\"} %llu\n"
            "modeld_deltas{state=\"ready\"} %llu\n",
        (unsigned long long)ss->deltas_pending,
        (unsigned long long)ss->deltas_ready);
    put(&b, "# HELP modeld_deltas_made_total Deltas made since start, by "
            "outcome.\n# TYPE modeld_deltas_made_total counter\n"
            "modeld_deltas_made_total{outcome=\"ready\"} %llu\n"
            "modeld_deltas_made_total{outcome=\"rejected\"} %llu\n"
            "modeld_deltas_made_total{outcome=\"failed\"} %llu\n",
        (unsigned long long)ss->deltas_made,
        (unsigned long long)ss->deltas_rejected,
        (unsigned long long)ss->deltas_failed);
    put(&b, "# HELP modeld_worker_retries_total Worker jobs (deltas, zstd "
            "copies) retried after a transient failure.\n# TYPE "
            "modeld_worker_retries_total counter\n"
            "modeld_worker_retries_total %llu\n"
            "# HELP modeld_worker_gave_up_total Worker jobs failed after "
            "their last attempt.\n# TYPE modeld_worker_gave_up_total "
            "counter\nmodeld_worker_gave_up_total %llu\n",
        (unsigned long long)ss->job_retries,
        (unsigned long long)ss->jobs_gave_up);
    put(&b, "# HELP modeld_compressed_copies_made_total zstd copies of "
            "blobs made since start.\n# TYPE "
            "modeld_compressed_copies_made_total counter\n"
            "modeld_compressed_copies_made_total %llu\n",
        (unsigned long long)ss->compressed_made);
    put(&b, "# HELP modeld_tensor_deltas Ready deltas that have a "
            "modeld-tensor/1 form.\n# TYPE modeld_tensor_deltas gauge\n"
            "modeld_tensor_deltas %llu\n",
        (unsigned long long)ss->deltas_tensor_ready);
    put(&b, "# HELP modeld_delta_storage_bytes Bytes of ready delta files "
            "(both formats).\n# TYPE modeld_delta_storage_bytes gauge\n"
            "modeld_delta_storage_bytes %llu\n"
            "# HELP modeld_delta_storage_max_bytes delta_storage_max_bytes "
            "(0: no bound).\n# TYPE modeld_delta_storage_max_bytes gauge\n"
            "modeld_delta_storage_max_bytes %llu\n",
        (unsigned long long)ss->delta_storage_bytes,
        (unsigned long long)ss->delta_storage_max_bytes);
    put(&b, "# HELP modeld_deltas_evicted_total Ready deltas dropped to fit "
            "delta_storage_max_bytes, least recently served first.\n"
            "# TYPE modeld_deltas_evicted_total counter\n"
            "modeld_deltas_evicted_total %llu\n"
            "# HELP modeld_deltas_on_demand_total Deltas queued because a "
            "UE held a version without one.\n"
            "# TYPE modeld_deltas_on_demand_total counter\n"
            "modeld_deltas_on_demand_total %llu\n",
        (unsigned long long)ss->deltas_evicted,
        (unsigned long long)ss->deltas_on_demand);
    put(&b, "# HELP modeld_bg_copies_made_total modeld-bg/1 copies of "
            "published models made since start.\n# TYPE "
            "modeld_bg_copies_made_total counter\n"
            "modeld_bg_copies_made_total %llu\n",
        (unsigned long long)ss->bg_made);
    put(&b, "# HELP modeld_store_errors_total SQLite and OS errors in the "
            "store.\n# TYPE modeld_store_errors_total counter\n"
            "modeld_store_errors_total %llu\n",
        (unsigned long long)ss->errors);
    put(&b, "# HELP modeld_catalog_snapshot_builds_total Family snapshots "
            "read from the catalog (concurrent misses share one read).\n"
            "# TYPE modeld_catalog_snapshot_builds_total counter\n"
            "modeld_catalog_snapshot_builds_total %llu\n",
        (unsigned long long)ss->snapshot_builds);
    put(&b, "# HELP modeld_catalog_generation Catalog generation: the "
            "start-up epoch times 2^32 plus the changes since start.\n# TYPE modeld_catalog_generation gauge\n"
            "modeld_catalog_generation %llu\n",
        (unsigned long long)ss->generation);
    put(&b, "# HELP modeld_catalog_unreachable 1 while the catalog "
            "database cannot be reached (selects use the last snapshots).\n"
            "# TYPE modeld_catalog_unreachable gauge\n"
            "modeld_catalog_unreachable %d\n",
        ss->catalog_down ? 1 : 0);
    put(&b, "# HELP modeld_catalog_unavailable_total Catalog operations "
            "that failed because the database could not be reached.\n"
            "# TYPE modeld_catalog_unavailable_total counter\n"
            "modeld_catalog_unavailable_total %llu\n",
        (unsigned long long)ss->catalog_unavailable);
    put(&b, "# HELP modeld_catalog_refreshes_total Catalog generation moves "
            "made by other daemons (PostgreSQL catalog).\n"
            "# TYPE modeld_catalog_refreshes_total counter\n"
            "modeld_catalog_refreshes_total %llu\n",
        (unsigned long long)ss->catalog_refreshes);
    /* TLS goes through GnuTLS (libmicrohttpd's); OpenSSL's libcrypto does
     * the digests and signatures: both are named. */
    put(&b, "# HELP modeld_build_info Version of modeld and its "
            "libraries (gnutls: TLS; openssl: libcrypto, digests and "
            "signatures).\n# TYPE modeld_build_info gauge\n"
            "modeld_build_info{version=\"%s\",microhttpd=\"%s\","
            "zstd=\"%s\",gnutls=\"%s\",openssl=\"%s\"} 1\n",
        MODELD_VERSION, MHD_get_version(), ZSTD_versionString(),
        gnutls_check_version(NULL), OPENSSL_VERSION_STR);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
