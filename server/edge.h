/*
 * Edge mode (config blob_origin): a blob or delta missing here is fetched
 * from the origin (a central modeld, or any HTTP server holding
 * /v1/blobs/ and /v1/deltas/), once however many requests ask for it at
 * the same time, on a thread of its own, and kept only when the store has
 * verified it against its digest. Requests follow the fetch (a "flight")
 * without blocking a thread: they park and are woken when it changes, and
 * may read the bytes that have arrived so far (unverified until the flight
 * is done). The cache of fetched files is bounded (blob_cache_max_bytes,
 * least recently used out). libcurl does the HTTP.
 */
#ifndef SERVER_EDGE_H
#define SERVER_EDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"
#include "store/store.h"

struct edge;
struct edge_pull;

enum edge_result {
    EDGE_FETCHED = 0,     /* now in the store */
    EDGE_NOT_FOUND,       /* the origin has no such blob */
    EDGE_REFUSED,         /* the origin's bytes did not match the digest:
                             nothing kept */
    EDGE_FAILED,          /* origin unreachable, error status, cut short,
                             local disk, shutting down: nothing kept */
};

struct edge_stats {
    uint64_t hits;            /* blob requests answered from the cache */
    uint64_t misses;          /* ... that needed the origin */
    uint64_t fetches;         /* origin requests made */
    uint64_t origin_bytes;    /* bytes received from the origin */
    uint64_t refused;         /* fetches refused (digest mismatch) */
    uint64_t failed;          /* fetches that failed otherwise */
    uint64_t evicted;         /* blobs evicted by the size bound */
    uint64_t early;           /* answers begun before their fetch ended */
    uint64_t cut;             /* ... cut because it then failed */
};

/* What a flight has now (edge_pull_wait). */
struct edge_view {
    uint64_t version;         /* moves on every change below */
    bool done;                /* finished: result says how */
    enum edge_result result;  /* when done */
    bool size_known;          /* the origin's 200 named its length */
    uint64_t size;            /* when size_known */
    uint64_t arrived;         /* bytes readable at fd; unverified unless
                                 verified */
    bool verified;            /* all arrived and match the digest (they may
                                 be served whole even if keeping them then
                                 fails) */
    int fd;                   /* read with pread only; the flight owns it;
                                 -1 until size_known */
    int64_t started_s;        /* when the fetch began (wall clock) */
};

/* origin: base URL (no trailing slash needed). cache_max_bytes 0: no
 * bound. max_blob_bytes: the largest blob accepted. NULL on ENOMEM. */
struct edge *edge_new(const char *origin, uint64_t cache_max_bytes,
                      uint64_t max_blob_bytes);

/* Call edge_shutdown first. NULL does nothing. */
void edge_free(struct edge *e);

/*
 * Ends every fetch in flight (each fails; its waiters are woken) and
 * refuses new ones; returns once no fetch thread runs. Call before
 * stopping the HTTP daemon, which must hold no parked connection then.
 */
void edge_shutdown(struct edge *e);

/* Counts a hit (the blob was here). */
void edge_hit(struct edge *e);

/* Counts an answer begun from a flight in progress, and one of those cut
 * because the flight failed. */
void edge_count_early(struct edge *e);
void edge_count_cut(struct edge *e);

/*
 * Joins the flight that fetches blob hex into st, starting one (on its
 * own thread) when none is in the air. Never waits for the origin.
 * EDGE_FETCHED with *out NULL: the blob is in the store (open it there).
 * EDGE_FETCHED with *out set: the caller owns *out, follows the flight
 * with edge_pull_wait and drops it with edge_pull_release. EDGE_FAILED:
 * no flight could start (no memory, shutting down).
 */
enum edge_result edge_pull_blob(struct edge *e, struct store *st,
                                const char hex[PROTO_HEX_SIZE],
                                struct edge_pull **out);

/*
 * The same for the delta from from_hex to to_hex in format: kept only
 * when applying it to the from blob (here, or pulled through first)
 * gives bytes that hash to to_hex (EDGE_REFUSED otherwise).
 */
enum edge_result edge_pull_delta(struct edge *e, struct store *st,
                                 const char from_hex[PROTO_HEX_SIZE],
                                 const char to_hex[PROTO_HEX_SIZE],
                                 enum proto_delta_format format,
                                 struct edge_pull **out);

/*
 * When the flight's version differs from seen: writes its state to *out
 * and returns false. Otherwise parks p: calls park(arg) under the
 * flight's lock and returns true; wake(arg) is then called exactly once,
 * later, from another thread and without the lock, when the flight
 * changes (or the edge shuts down). A parked pull is not waited on again
 * or released before it is woken. seen 0 never parks.
 */
bool edge_pull_wait(struct edge_pull *p, uint64_t seen,
                    void (*park)(void *), void (*wake)(void *), void *arg,
                    struct edge_view *out);

/* Drops a pull (and the flight with its last one). NULL does nothing. */
void edge_pull_release(struct edge_pull *p);

void edge_stats_get(struct edge *e, struct edge_stats *out);

#endif
