/*
 * Edge mode (config blob_origin): a blob missing here is fetched from the
 * origin (a central modeld, or any HTTP server holding /v1/blobs/), once
 * however many requests ask for it at the same time, verified against its
 * digest by the store before anything is kept, then served like any blob.
 * The cache of fetched blobs is bounded (blob_cache_max_bytes, least
 * recently used out). libcurl does the HTTP.
 */
#ifndef SERVER_EDGE_H
#define SERVER_EDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"
#include "store/store.h"

struct edge;

enum edge_result {
    EDGE_FETCHED = 0,     /* now in the store */
    EDGE_NOT_FOUND,       /* the origin has no such blob */
    EDGE_REFUSED,         /* the origin's bytes did not match the digest:
                             nothing kept */
    EDGE_FAILED,          /* origin unreachable, error status, local
                             disk: nothing kept */
};

struct edge_stats {
    uint64_t hits;            /* blob requests answered from the cache */
    uint64_t misses;          /* ... that needed the origin */
    uint64_t fetches;         /* origin requests made */
    uint64_t origin_bytes;    /* bytes received from the origin */
    uint64_t refused;         /* fetches refused (digest mismatch) */
    uint64_t failed;          /* fetches that failed otherwise */
    uint64_t evicted;         /* blobs evicted by the size bound */
};

/* origin: base URL (no trailing slash needed). cache_max_bytes 0: no
 * bound. max_blob_bytes: the largest blob accepted. NULL on ENOMEM. */
struct edge *edge_new(const char *origin, uint64_t cache_max_bytes,
                      uint64_t max_blob_bytes);
void edge_free(struct edge *e);

/* Counts a hit (the blob was here). */
void edge_hit(struct edge *e);

/*
 * Gets blob hex into st from the origin. Concurrent calls for one digest
 * share one fetch and its result. Blocks the calling thread for the
 * fetch. err: a line for the log on failure.
 */
enum edge_result edge_fetch_blob(struct edge *e, struct store *st,
                                 const char hex[PROTO_HEX_SIZE], char *err,
                                 size_t err_len);

/*
 * The same for the delta from from_hex to to_hex in format: kept only
 * when applying it to the from blob (here, or pulled through first)
 * gives bytes that hash to to_hex (EDGE_REFUSED otherwise).
 */
enum edge_result edge_fetch_delta(struct edge *e, struct store *st,
                                  const char from_hex[PROTO_HEX_SIZE],
                                  const char to_hex[PROTO_HEX_SIZE],
                                  enum proto_delta_format format, char *err,
                                  size_t err_len);

void edge_stats_get(struct edge *e, struct edge_stats *out);

#endif
