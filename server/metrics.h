/*
 * Counters and histograms for GET /metrics, updated lock-free with C11
 * atomics from every request thread and rendered in the Prometheus text
 * format. Label values are bounded: route patterns, status codes,
 * actions, limit names; never digests or UE ids.
 */
#ifndef SERVER_METRICS_H
#define SERVER_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/types.h"
#include "server/edge.h"
#include "store/store.h"

#define METRICS_ROUTES 16      /* route table entries + "other" */
#define METRICS_STATUSES 24
#define METRICS_BUCKETS 14

enum metrics_limit {
    METRICS_LIMIT_BODY = 0,    /* 413: a body over its cap */
    METRICS_LIMIT_JSON_DEPTH,  /* 400: nesting over max_json_depth */
    METRICS_LIMIT_REQUEST_TIMEOUT, /* closed: headers too slow */
    METRICS_LIMIT_HEADER_SIZE, /* 414/431: request line or headers over
                                  libmicrohttpd's buffer */
    METRICS_LIMIT_QUERY_ARGS,  /* 431: more query arguments than
                                  libmicrohttpd's pool holds */
    METRICS_LIMIT_CONNECTIONS, /* closed at accept: max_connections or
                                  max_connections_per_ip */
    METRICS_LIMIT_TRANSFER_STALLED, /* a large answer stalled or slower
                                       than min_download_bytes_per_s */
    METRICS_LIMIT_COUNT,
};

/* Decisions by chosen variant: a fixed table of family/variant slots,
 * filled on first use; names past the first METRICS_VARIANT_NAMES count
 * as "other", which bounds the label values whatever the catalog holds.
 * Twice as many slots as names: the table is never more than half full,
 * so that a decision for a name it does not hold (a catalog of thousands
 * of families) finds a free slot within a few probes instead of scanning
 * a full table. */
#define METRICS_VARIANT_NAMES 512
#define METRICS_VARIANT_SLOTS (2 * METRICS_VARIANT_NAMES)
#define METRICS_VARIANT_NAME (2 * PROTO_NAME_SIZE)

struct metrics_variant {
    atomic_int state;                  /* 0 free, 1 being named, 2 ready */
    char name[METRICS_VARIANT_NAME];   /* "family/variant" */
    atomic_uint_fast64_t count;
};

struct metrics {
    struct metrics_variant variants[METRICS_VARIANT_SLOTS];
    atomic_uint variants_named;        /* slots claimed, <= _NAMES */
    atomic_uint_fast64_t variants_other;
    atomic_uint_fast64_t requests[METRICS_ROUTES][METRICS_STATUSES];
    atomic_uint_fast64_t latency[METRICS_ROUTES][METRICS_BUCKETS + 1];
    atomic_uint_fast64_t latency_sum_us[METRICS_ROUTES];
    atomic_uint_fast64_t bytes_sent[METRICS_ROUTES];
    atomic_uint_fast64_t decisions[PROTO_ACTION_COUNT]; /* by enum proto_action */
    atomic_uint_fast64_t degraded;
    atomic_uint_fast64_t delta_bytes_saved;  /* full - delta, per delta
                                                decision */
    atomic_int_fast64_t connections;
    atomic_int_fast64_t uploads;
    atomic_uint_fast64_t limits[METRICS_LIMIT_COUNT];
};

/* Zeroes every counter. */
void metrics_init(struct metrics *m);

/* One finished request: route index (-1: none), status, body bytes and
 * duration. */
void metrics_request(struct metrics *m, int route, unsigned status,
                     uint64_t bytes, double seconds);

/* One select decision; family and variant name the chosen variant (NULL
 * variant for action none). */
void metrics_decision(struct metrics *m, enum proto_action action,
                      bool degraded, uint64_t bytes_saved,
                      const char *family, const char *variant);
/* The slots a decision for family/variant looks at in the table of
 * decisions by variant (tests: a few, whatever the catalog holds). */
size_t metrics_variant_probes(struct metrics *m, const char *family,
                              const char *variant);

void metrics_limit(struct metrics *m, enum metrics_limit limit);

/*
 * The Prometheus text exposition. route_labels[i] names route i (count
 * entries); edge: edge mode's counters (NULL when not an edge). Returns a
 * malloc'd string or NULL.
 */
char *metrics_render(struct metrics *m, const char *const *route_labels,
                     size_t count, const struct store_stats *ss,
                     const struct edge_stats *edge);

/*
 * A growing text in the exposition format, for whoever renders metrics
 * (this file, handler_rollout.c). Start from {0}; after a failed
 * allocation every call does nothing and metrics_text_take gives NULL.
 */
struct metrics_text {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
};

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP name <help>" and "# TYPE name type" lines; samples follow. */
void metrics_text_head(struct metrics_text *t, const char *name,
                       const char *type, const char *help_fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The head and the one unlabelled sample "name value". */
void metrics_text_line(struct metrics_text *t, const char *name,
                       const char *type, const char *help, uint64_t value);
/* The text (the caller frees it), or NULL after a failure; t is empty
 * again either way. */
char *metrics_text_take(struct metrics_text *t);

#endif
