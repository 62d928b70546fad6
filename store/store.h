/*
 * store: all persistent state. The SQLite catalog (DIR/catalog.db, WAL,
 * migrations by PRAGMA user_version, prepared statements only), the
 * content-addressed blob files (DIR/blobs/sha256/ab/<hex>), delta files
 * (DIR/deltas/<from>-<to>) and the background worker that makes deltas and
 * compressed copies. Nothing half-written is ever visible: every file is
 * written in DIR/tmp, fsync'ed and renamed; DIR/tmp is emptied at open.
 *
 * Thread safety: every function may be called from any thread. Reads of
 * the catalog for selection go through immutable, reference-counted
 * snapshots, read on read connections beside the single writer (WAL), so
 * a writer's commit never blocks them.
 */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

enum store_status {
    STORE_OK = 0,
    STORE_NOT_FOUND,        /* family, variant, blob or delta unknown */
    STORE_BLOB_MISSING,     /* publish names a blob that is not uploaded */
    STORE_DIGEST_MISMATCH,  /* upload's bytes do not hash to the digest */
    STORE_TOO_LARGE,        /* upload over its max_bytes */
    STORE_NO_SPACE,         /* ENOSPC / EDQUOT / SQLITE_FULL */
    STORE_IO_ERROR,         /* any other OS error */
    STORE_DB_ERROR,         /* any other SQLite error */
    STORE_NO_MEMORY,
    STORE_TIMEOUT,          /* store_worker_wait_idle */
    STORE_UNAVAILABLE,      /* the catalog server cannot be reached now;
                               store_retry_after_s says when to retry */
    STORE_MISMATCH,         /* an event's digest is not its version's blob */
};

#define STORE_URL_SIZE 1024

struct store_snapshot;

struct store_options {
    int busy_timeout_ms;          /* SQLite busy timeout, default 5000 */
    /* Data derived from each snapshot when it is read, kept and freed
     * with it (snap->derived): how the server gives every snapshot the
     * policy's table without store/ knowing policy/. derive returns NULL
     * when out of memory (the read fails). NULL derive (the default):
     * derived stays NULL. */
    void *(*snapshot_derive)(const struct store_snapshot *snap);
    void (*snapshot_derived_free)(void *derived);
    bool run_worker;              /* start the delta/compression worker */
    int delta_level;              /* zstd level for deltas, default 19 */
    int compress_level;           /* zstd level for blob copies, default 19 */
    double delta_max_fraction;    /* offer a delta only when its size is under
                                     this fraction of the target's compressed
                                     (else full) size; default 0.9 */
    bool delta_cross_variants;    /* also try deltas between variants of one
                                     family; default true */
    uint64_t delta_cross_max_bytes; /* ... when both are at most this big;
                                       default 256 MiB */
    unsigned delta_versions;      /* deltas from each of the last K versions
                                     of a variant; default 4 */
    uint64_t delta_storage_max_bytes; /* ready deltas beyond this are
                                         evicted, least recently served
                                         first; 0: no bound; default 16 GiB */
    bool tensor_coding;           /* also make modeld-tensor/1 deltas and
                                     modeld-bg/1 copies; default true */
    unsigned retry_base_ms;       /* a job failing for a transient reason
                                     (an OS, SQLite or memory error) is
                                     retried after base, 2 base, 4 base...
                                     (at most retry_max_ms); default 2000 */
    unsigned retry_max_ms;        /* default 600000 */
    unsigned retry_attempts;      /* attempts in all before it is failed;
                                     default 10 */
    unsigned read_connections;    /* read-only SQLite connections beside
                                     the writer, for snapshots and
                                     listings; default 4 (0: reads share
                                     the writer's connection) */
    bool read_only;               /* look only: no lock, no tmp/ cleaning,
                                     no migration, no worker, no writes;
                                     works beside a running daemon */
    /* The catalog on PostgreSQL: "postgresql://..." (empty: SQLite in the
     * data directory). Writes and worker jobs go there. */
    char catalog_url[STORE_URL_SIZE];
    /* Where snapshots are read from (a streaming replica); empty: the
     * catalog_url. */
    char catalog_read_url[STORE_URL_SIZE];
    /* How often the catalog generation is polled (PostgreSQL; LISTEN/
     * NOTIFY wakes it sooner where the read server allows), default
     * 1000. */
    unsigned catalog_poll_ms;
    /* Rollouts driven by events (store/trust.c). */
    double rollout_max_failure_share; /* pause a version at this share of
                                         failed UEs, default 0.2 */
    unsigned rollout_min_reports; /* ... over at least this many distinct
                                     UEs, default 20 */
    bool pause_needs_receipt;     /* only events with a valid receipt count
                                     toward the pause, default true */
    unsigned latency_min_reports; /* measured latency (energy) of a device
                                     class feeds the snapshot from this many
                                     UEs on, default 5 */
};

void store_options_default(struct store_options *out);

struct store;

/*
 * Opens (creating when absent) the data directory DIR: makes blobs/,
 * deltas/, tmp/, empties tmp/, opens or creates catalog.db and migrates it
 * to the current schema. On STORE_OK the caller owns *out (store_close).
 */
MUST_CHECK enum store_status store_open(const char *dir,
                                        const struct store_options *opt,
                                        struct store **out);

/* Stops the worker (finishing nothing half-made), closes everything.
 * NULL does nothing. */
void store_close(struct store *st);

/* Whether the last contact with the catalog server failed (PostgreSQL;
 * never on SQLite). Cheap: no query. */
bool store_catalog_is_down(struct store *st);

/* Whether the catalog is on PostgreSQL. */
bool store_is_postgresql(const struct store *st);

/* Seconds a client should wait before retrying after STORE_UNAVAILABLE
 * (at least 1). */
unsigned store_retry_after_s(struct store *st);

/* The last SQLite or OS error message of this thread's last failing call,
 * for the server's log. st may be NULL (after a failed store_open). Never
 * NULL. */
const char *store_errmsg(const struct store *st);

/* ---- blobs ------------------------------------------------------------ */

struct store_upload;

/*
 * Starts an upload of a blob whose digest must be expected_hex. Bytes go to
 * a temp file in DIR/tmp and are hashed as they are written.
 */
MUST_CHECK enum store_status
store_upload_begin(struct store *st, const char expected_hex[PROTO_HEX_SIZE],
                   uint64_t max_bytes, struct store_upload **out);

/* STORE_TOO_LARGE past max_bytes; STORE_NO_SPACE / STORE_IO_ERROR. The
 * upload stays valid only for store_upload_abort after a failure. */
MUST_CHECK enum store_status
store_upload_write(struct store_upload *up, const void *data, size_t len);

/* Checks the digest of what was written: STORE_DIGEST_MISMATCH, or the
 * first write failure; STORE_OK when the bytes are the blob's (they may
 * then be served before finish has kept them). The upload stays for
 * finish or abort. */
MUST_CHECK enum store_status store_upload_check(struct store_upload *up);

/*
 * Checks the digest (unless store_upload_check did), fsyncs, renames into
 * place, fsyncs the directory and records the blob. *out_created is false when the blob was already there
 * (the new copy is dropped). Always frees up, even on failure, and leaves
 * no file behind on failure.
 */
MUST_CHECK enum store_status
store_upload_finish(struct store_upload *up, bool *out_created,
                    uint64_t *out_size);

/* Drops an upload and its temp file. NULL does nothing. */
void store_upload_abort(struct store_upload *up);

/* A new read-only descriptor of the upload's temporary file (the caller
 * closes it): the bytes written so far, unverified, readable with pread
 * while more are written, and still the same bytes once finish has kept
 * them. -1 with errno on failure. */
int store_upload_read_fd(const struct store_upload *up);

/* Opens a blob for reading. The caller owns *out_fd. */
MUST_CHECK enum store_status
store_blob_open(struct store *st, const char hex[PROTO_HEX_SIZE],
                int *out_fd, uint64_t *out_size, int64_t *out_mtime_s);

/* Opens a blob's modeld-bg/1 copy (made for published tensor models when
 * smaller than the zstd copy); STORE_NOT_FOUND otherwise. */
MUST_CHECK enum store_status
store_blob_bg_open(struct store *st, const char hex[PROTO_HEX_SIZE],
                   int *out_fd, uint64_t *out_size, int64_t *out_mtime_s);

/*
 * Opens the zstd-compressed copy of a blob when the worker made one and it
 * is smaller than the blob; STORE_NOT_FOUND otherwise.
 */
MUST_CHECK enum store_status
store_blob_zstd_open(struct store *st, const char hex[PROTO_HEX_SIZE],
                     int *out_fd, uint64_t *out_size, int64_t *out_mtime_s);

/* ---- the edge's blob cache (store/cache.c) ------------------------------- */

/* Marks the blob open on fd as just used (its access time), for the
 * cache's LRU order. */
void store_blob_touch(int fd);

/*
 * Evicts least recently used blob files (with their compressed copies)
 * and delta files until they take at most max_bytes, never keep_hex
 * (NULL: none): a blob's hex, or a delta's file name from-to[.mt], which
 * keeps its from blob too. *out_evicted counts the files removed. For an
 * edge, whose blobs and deltas are a cache of its origin's.
 */
MUST_CHECK enum store_status
store_blob_cache_trim(struct store *st, uint64_t max_bytes,
                      const char *keep_hex, uint64_t *out_evicted);

/*
 * An edge's delta fetched from its origin: written to a temporary file,
 * kept (as the local delta file of that format) only when it is a delta
 * of that format naming from_hex and to_hex and applying it to the local
 * from blob gives bytes that hash to to_hex. finish: STORE_DIGEST_MISMATCH
 * when it does not verify, STORE_BLOB_MISSING when from_hex is not here;
 * it frees in whatever it says, abort too (NULL does nothing). write:
 * STORE_TOO_LARGE past max_bytes (0: no bound).
 */
struct store_delta_in;
MUST_CHECK enum store_status
store_delta_in_begin(struct store *st, uint64_t max_bytes,
                     struct store_delta_in **out);
MUST_CHECK enum store_status
store_delta_in_write(struct store_delta_in *in, const void *data, size_t len);
MUST_CHECK enum store_status
store_delta_in_finish(struct store_delta_in *in,
                      const char from_hex[PROTO_HEX_SIZE],
                      const char to_hex[PROTO_HEX_SIZE],
                      enum proto_delta_format format);
void store_delta_in_abort(struct store_delta_in *in);
/* As store_upload_read_fd, for a delta being received. */
int store_delta_in_read_fd(const struct store_delta_in *in);

/* ---- catalog ------------------------------------------------------------ */

/* Creates or updates a family (task, description from f); undeletes a
 * deleted one. */
MUST_CHECK enum store_status
store_family_put(struct store *st, const char *name,
                 const struct proto_family *f, bool *out_created);

/* Marks a family deleted: it is no longer listed or selected. */
MUST_CHECK enum store_status store_family_delete(struct store *st,
                                                 const char *name);

/* The live families, by name. The caller frees *out with free(). */
MUST_CHECK enum store_status
store_family_list(struct store *st, struct proto_family **out,
                  size_t *out_count);

/*
 * PUT .../variants/{v}: as store_variant_publish, but when meta equals the
 * latest version's metadata (and neither it nor the variant is retired)
 * nothing is published: *out_version is that version and *out_created
 * false (a retried PUT must not publish twice).
 */
MUST_CHECK enum store_status
store_variant_put(struct store *st, const char *family, const char *variant,
                  const struct proto_variant *meta, int64_t now_s,
                  int64_t *out_version, bool *out_created);

/*
 * Publishes a new version of a variant (created when new; a retired one
 * comes back). meta is the parsed metadata; the store fills size_bytes from
 * the blob and created_s from now_s. STORE_NOT_FOUND: unknown family;
 * STORE_BLOB_MISSING: blob not uploaded. Queues the delta from the previous
 * version (and cross-variant deltas) for the worker.
 */
MUST_CHECK enum store_status
store_variant_publish(struct store *st, const char *family,
                      const char *variant, const struct proto_variant *meta,
                      int64_t now_s, int64_t *out_version);

/*
 * Every version of a variant, oldest first, retired ones included (for
 * GET .../versions). STORE_NOT_FOUND for an unknown family or variant.
 * The caller frees *out with free().
 */
MUST_CHECK enum store_status
store_variant_versions(struct store *st, const char *family,
                       const char *variant, struct proto_variant **out,
                       size_t *out_count);

/* Retires a variant: no longer selected; its blobs stay for deltas. */
MUST_CHECK enum store_status
store_variant_retire(struct store *st, const char *family,
                     const char *variant);

/*
 * An immutable view of one live family, for selection and GET.
 * variants: for each live variant, its versions newest first, down to and
 * including the newest version with rollout_percent 100 (older versions are
 * left out); variants of one name are adjacent. latest[i] is true for the
 * newest version of each variant. deltas: every ready delta whose target
 * is one of these versions.
 */
struct store_snapshot {
    struct proto_family family;
    struct proto_variant *variants;
    bool *latest;
    size_t variant_count;
    struct proto_delta *deltas;
    size_t delta_count;
    uint64_t generation;          /* catalog generation it was read at */
    /* The generation a signed answer carries: never lower for a later
     * catalog state, whichever daemon answers. SQLite: generation (the
     * start-up epoch << 32 plus this run's changes). PostgreSQL: the
     * shared generation all daemons move, as seen when this was read. */
    uint64_t answer_generation;
    /* The live versions below those (offered to nobody, still held by
     * UEs), for rules about what a UE holds (admission). */
    struct proto_variant *older;
    size_t older_count;
    size_t paused_count;          /* variants[] that are paused */
    /* store_options.snapshot_derive's result for this snapshot, or NULL */
    const void *derived;
};

/* Gets the snapshot of a live family (cached until the catalog generation
 * moves). When the catalog server cannot be reached, the last snapshot
 * read of the family, if any (else STORE_UNAVAILABLE). STORE_NOT_FOUND for
 * an unknown or deleted family. Release it with store_snapshot_release. */
MUST_CHECK enum store_status
store_snapshot_get(struct store *st, const char *family,
                   const struct store_snapshot **out);

/* NULL does nothing. */
void store_snapshot_release(const struct store_snapshot *snap);

/* ---- deltas and the worker ------------------------------------------------ */

/* Opens a ready zstd-patch delta for reading. STORE_NOT_FOUND when none
 * (yet, or evicted). */
MUST_CHECK enum store_status
store_delta_open(struct store *st, const char from_hex[PROTO_HEX_SIZE],
                 const char to_hex[PROTO_HEX_SIZE], int *out_fd,
                 uint64_t *out_size, int64_t *out_mtime_s);

/* The same for a format, and notes the delta served (the eviction
 * order: least recently served goes first). */
MUST_CHECK enum store_status
store_delta_format_open(struct store *st, const char from_hex[PROTO_HEX_SIZE],
                        const char to_hex[PROTO_HEX_SIZE],
                        enum proto_delta_format format, int *out_fd,
                        uint64_t *out_size, int64_t *out_mtime_s);

/*
 * Asks for the delta from from_hex to to_hex (a UE holds from_hex, an
 * older version or another variant of the same family): queued for the
 * worker when neither made nor asked for yet. *out_pending is true when
 * the delta is being made (now or already); false when it exists, was
 * found not worth offering, or from_hex is not of to_hex's family.
 */
MUST_CHECK enum store_status
store_delta_request(struct store *st, const char from_hex[PROTO_HEX_SIZE],
                    const char to_hex[PROTO_HEX_SIZE], bool *out_pending);
/*
 * Starts again, now, every job of the worker that failed (deltas and
 * compressed copies) or waits in a retry's backoff; "rejected" deltas
 * (not smaller than the model) stay as they are. The counts of jobs
 * started again go to *out_deltas and *out_compressed.
 */
MUST_CHECK enum store_status store_jobs_retry(struct store *st,
                                              uint64_t *out_deltas,
                                              uint64_t *out_compressed);

/* Counters for /metrics. */
struct store_stats {
    uint64_t deltas_made;         /* since open */
    uint64_t deltas_failed;       /* since open */
    uint64_t deltas_rejected;     /* not smaller enough, since open */
    uint64_t deltas_pending;      /* now */
    uint64_t deltas_ready;        /* now */
    uint64_t compressed_made;     /* zstd copies, since open */
    uint64_t bg_made;             /* modeld-bg/1 copies, since open */
    uint64_t deltas_tensor_ready; /* ready with a modeld-tensor/1 file, now */
    uint64_t deltas_evicted;      /* since open */
    uint64_t deltas_on_demand;    /* queued by selects, since open */
    uint64_t delta_storage_bytes; /* ready delta files, now */
    uint64_t delta_storage_max_bytes;
    uint64_t errors;              /* SQLite/OS errors, since open */
    uint64_t job_retries;         /* worker jobs retried after a transient
                                     failure, since open */
    uint64_t jobs_gave_up;        /* ... failed after the last attempt */
    uint64_t generation;          /* catalog generation */
    bool catalog_down;            /* the last catalog contact failed */
    uint64_t catalog_unavailable; /* catalog contacts that failed, since
                                     open */
    uint64_t catalog_refreshes;   /* generation moves seen from other
                                     writers (PostgreSQL), since open */
    uint64_t snapshot_builds;     /* snapshots read from the catalog (cache
                                     misses that did the reading) */
};

void store_stats_get(struct store *st, struct store_stats *out);

/* Waits until the worker has nothing pending (tests, demo). STORE_TIMEOUT
 * after timeout_ms. */
MUST_CHECK enum store_status store_worker_wait_idle(struct store *st,
                                                    int timeout_ms);

/* ---- event receipts (store/receipt.c) --------------------------------------- */

/*
 * A select answer carries a receipt for the version it names: HMAC-SHA256
 * under the catalog's receipt key over ue, family, variant, version and
 * digest, base64url (43 characters). An event that sends it back proves
 * that this UE id was answered with that version by a daemon of this
 * catalog. The key is made (random, 32 bytes) by the first daemon that
 * opens the catalog and kept in it, so every daemon sharing a PostgreSQL
 * catalog makes and checks the same receipts, and they survive restarts.
 * false (out left "") when the store has no key (a read-only store of a
 * catalog no writable store has opened since it gained receipts).
 */
bool store_receipt_make(const struct store *st, const char *ue,
                        const char *family, const char *variant,
                        int64_t version, const char *digest_hex,
                        char out[PROTO_RECEIPT_SIZE]);
/* Whether receipt is the one store_receipt_make gives (constant time). */
bool store_receipt_check(const struct store *st, const char *ue,
                         const char *family, const char *variant,
                         int64_t version, const char *digest_hex,
                         const char *receipt);

/* ---- trust and control: events, rollouts, audit (store/trust.c) ---------- */

/*
 * Records what happened to a version on a UE. A UE counts once per version
 * and event kind: a repeat changes nothing (*out_counted false). When the
 * version's failure share reaches rollout_max_failure_share over at least
 * rollout_min_reports distinct UEs it is paused (*out_paused true, once),
 * which the audit log records as token "auto". STORE_NOT_FOUND: unknown
 * family, variant or version; STORE_MISMATCH: the event's digest is not
 * the version's. ev->verified (the caller checked ev's receipt with
 * store_receipt_check) marks the event verified; a verified event for a
 * UE and kind already recorded unverified upgrades it (counted). With
 * pause_needs_receipt only verified events count toward the pause rule
 * (both the failed UEs and the reporting UEs).
 */
MUST_CHECK enum store_status
store_event_add(struct store *st, const char *family,
                const struct proto_event *ev, int64_t now_s,
                bool *out_counted, bool *out_paused);

/*
 * The event statistics of every version of a variant, in the order of
 * store_variant_versions (by version). The caller frees *out.
 * STORE_NOT_FOUND for an unknown family or variant.
 */
MUST_CHECK enum store_status
store_variant_stats(struct store *st, const char *family,
                    const char *variant, struct proto_version_stats **out,
                    size_t *out_count);

/*
 * Changes a version's rollout (PATCH): rollout_percent and/or paused.
 * Fills *out_before and *out_after (the version without its lists).
 * STORE_NOT_FOUND for an unknown family, variant or version.
 */
MUST_CHECK enum store_status
store_version_rollout(struct store *st, const char *family,
                      const char *variant, int64_t version,
                      const struct proto_rollout_patch *patch,
                      struct proto_variant *out_before,
                      struct proto_variant *out_after);

/*
 * Retires one version: no longer offered, so UEs holding it are sent to
 * what the variant offers now (its newest live version), by a delta when
 * one is made: the worker is asked for the delta from the retired blob to
 * the previous live version's. *out_previous is that version (0: none).
 * STORE_NOT_FOUND for an unknown or already retired version.
 */
MUST_CHECK enum store_status
store_version_retire(struct store *st, const char *family,
                     const char *variant, int64_t version,
                     int64_t *out_previous);

MUST_CHECK enum store_status
store_audit_add(struct store *st, const struct proto_audit_entry *e);

/* Entries at or after since_s, oldest first, at most max. The caller
 * frees *out. */
MUST_CHECK enum store_status
store_audit_list(struct store *st, int64_t since_s, size_t max,
                 struct proto_audit_entry **out, size_t *out_count);

/* One version's statistics for /metrics. */
struct store_rollout_metric {
    char family[PROTO_NAME_SIZE];
    char variant[PROTO_NAME_SIZE];
    int64_t version;
    bool paused;
    struct proto_version_stats stats;
};

/* The live versions that have events, newest first, at most max (bounded
 * labels). The caller frees *out. */
MUST_CHECK enum store_status
store_rollout_metrics(struct store *st, size_t max,
                      struct store_rollout_metric **out, size_t *out_count);

#endif
