/*
 * Private to store/: the store struct, the prepared-statement table and the
 * helpers the store's files share (paths, errors, connections,
 * transactions, the cache generation, the worker's wake-up). Nothing
 * outside store/ includes it. SQL goes through store/db.h, never through
 * sqlite3 or libpq directly, so that it runs on both catalog engines.
 */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "fileio/fileio.h"
#include "store/db.h"
#include "store/store.h"

#define STORE_PATH_SIZE 4096
#define STORE_ERR_SIZE 512
#define STORE_FILE_MODE 0640
#define STORE_DIR_MODE 0750

/* Every SQL statement the store runs; prepared at open, finalized at
 * close. The texts are in store/store.c. */
enum stmt_id {
    STMT_BEGIN = 0,
    STMT_READ_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_BLOB_INSERT,
    STMT_BLOB_GET,
    STMT_FAMILY_GET,
    STMT_FAMILY_INSERT,
    STMT_FAMILY_UPDATE,
    STMT_FAMILY_DELETE,
    STMT_FAMILY_LIST,
    STMT_VARIANT_UPSERT,
    STMT_VARIANT_ID,
    STMT_VARIANT_RETIRE,
    STMT_VERSION_LAST,
    STMT_VERSION_LATEST_ROW,
    STMT_VERSION_INSERT,
    STMT_TECH_INSERT,
    STMT_LATENCY_INSERT,
    STMT_ENERGY_INSERT,
    STMT_EXIT_INSERT,
    STMT_CONTEXT_INSERT,
    STMT_ACCEL_INSERT,
    STMT_TECH_LIST,
    STMT_LATENCY_LIST,
    STMT_ENERGY_LIST,
    STMT_EXIT_LIST,
    STMT_CONTEXT_LIST,
    STMT_ACCEL_LIST,
    STMT_CROSS_LIST,
    STMT_DELTA_QUEUE,
    STMT_SNAP_VERSIONS,
    STMT_VARIANT_VERSIONS,
    STMT_SNAP_DELTAS,
    STMT_JOB_ZSTD,
    STMT_JOB_DELTA,
    STMT_ZSTD_DONE,
    STMT_DELTA_DONE,
    STMT_DELTA_COUNTS,
    STMT_WRITE_LOCK,
    STMT_JOB_ZSTD_OF,
    STMT_GENERATION,
    STMT_PING,
    STMT_VERSIONS_RECENT,
    STMT_BG_QUEUE,
    STMT_JOB_BG,
    STMT_BG_DONE,
    STMT_MANIFEST_OF,
    STMT_DELTA_SAME_FAMILY,
    STMT_DELTA_DEMAND,
    STMT_DELTA_STATE,
    STMT_DELTA_TOUCH,
    STMT_DELTA_LRU,
    STMT_DELTA_DELETE,
    STMT_JOB_NEXT_RETRY,
    STMT_ZSTD_RETRY,
    STMT_DELTA_RETRY,
    STMT_RETRY_FAILED_DELTAS,
    STMT_RETRY_WAITING_DELTAS,
    STMT_RETRY_FAILED_ZSTD,
    STMT_RETRY_WAITING_ZSTD,
    /* Measured latency and energy (store/trust.c), read by snapshots too,
     * so they live here where the read connections prepare them. */
    STMT_MEASURED_LATENCY_CLASSES,
    STMT_MEASURED_LATENCY_NTH,
    STMT_MEASURED_ENERGY_CLASSES,
    STMT_MEASURED_ENERGY_NTH,
    /* A version's statistics and the lists they are read for (store/
     * trust.c): on the read connections, so that the versions listing and
     * a /metrics scrape never wait for the writer's commits. */
    STMT_EVENT_UES,
    STMT_EVENT_KINDS,
    STMT_VARIANT_VERSION_IDS,
    STMT_METRIC_VERSIONS,
    STMT_COUNT
};

/* The statements of store/trust.c (events, rollouts, audit), kept apart
 * from the catalog's: prepared at open, finalized at close. */
enum trust_stmt_id {
    TSTMT_VERSION_FIND = 0,
    TSTMT_EVENT_INSERT,
    TSTMT_CLASS_COUNT,
    TSTMT_PAUSE,
    TSTMT_ROLLOUT_SET,
    TSTMT_VERSION_RETIRE,
    TSTMT_VERSION_PREVIOUS,
    TSTMT_AUDIT_INSERT,
    TSTMT_AUDIT_LIST,
    TSTMT_COUNT
};

/*
 * A SQLite connection with its statements: the writer (st->db and
 * st->stmt, used under db_mu) or one of the read connections, each used
 * by one thread at a time (store/reader.c). A read connection has only
 * its SELECT statements (and READ_BEGIN, COMMIT, ROLLBACK) prepared.
 */
struct store_conn {
    struct db *db;
    struct db_stmt **stmt;
};

struct store_reader {
    struct store_conn conn;
    struct db_stmt *stmt[STMT_COUNT];
    bool busy;
};

/* A snapshot being read: concurrent misses for one family wait for it
 * instead of each reading their own (under cache_mu). */
struct snapshot_flight {
    struct snapshot_flight *next;
    char name[PROTO_NAME_SIZE];
    bool done;
    enum store_status rc;
    const struct store_snapshot *snap;    /* one reference while held */
    unsigned refs;                        /* the builder and its waiters */
};

struct cache_entry {
    char name[PROTO_NAME_SIZE];
    const struct store_snapshot *snap;    /* holds one reference */
};

/* Which connection a piece of work uses (see store_db_lock). */
enum store_role {
    STORE_ROLE_WRITE,
    STORE_ROLE_JOB,
    STORE_ROLE_WATCH,
};

#define STORE_DEMAND_MEMO_SIZE 256

struct store {
    char *dir;
    struct store_options opt;
    int lock_fd;                  /* flock'ed DIR/lock, -1 before */

    /* The writing connection and its statements, under db_mu. */
    pthread_mutex_t db_mu;
    /* On-demand delta requests answered in the last second, by pair
     * (store_delta_request): a select that finds no delta asks the
     * catalog at most once a second per pair instead of on every select,
     * which took the writer's mutex on the hot path. An answer holds only
     * within its second and its cache generation (a delta made ready
     * moves the generation). Under demand_mu. */
    pthread_mutex_t demand_mu;
    struct demand_memo {
        uint64_t key;           /* FNV-1a of from and to; 0: empty */
        int64_t asked_s;        /* CLOCK_MONOTONIC second of the answer */
        uint64_t generation;    /* the cache generation it was asked in */
        bool pending;
    } demand_memo[STORE_DEMAND_MEMO_SIZE];
    struct db *db;
    struct db_stmt *stmt[STMT_COUNT];
    struct db_stmt *tstmt[TSTMT_COUNT];
    struct store_conn writer;     /* {db, stmt} */
    /* HMAC-SHA256 under the event receipt key (store/receipt.c): the
     * SHA-256 states after the key's inner and outer pads, made at open
     * and only copied from after (NULL: no key). */
    struct evp_md_ctx_st *receipt_inner;
    struct evp_md_ctx_st *receipt_outer;

    /* Read connections beside the writer (WAL: readers never wait for
     * it; on PostgreSQL sessions on catalog_read_url, a replica, else on
     * the primary), handed out under readers_mu; none in a read-only
     * store, whose reads take the writer under db_mu. */
    pthread_mutex_t readers_mu;
    pthread_cond_t readers_cv;
    struct store_reader *readers;
    size_t reader_count;

    /* PostgreSQL only: the worker's own connection (its job's
     * transaction stays open while it runs; only the worker thread uses
     * it) and the catalog watcher's (store/watch.c; only its thread). */
    struct store_reader job;
    struct store_reader watch;
    pthread_t watcher;
    bool watcher_started;
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_cv;
    bool watch_stop;              /* under watch_mu */
    uint64_t db_generation;       /* highest generation seen in the
                                     catalog, 0: none yet (watch_mu) */
    atomic_bool catalog_down;     /* the last catalog contact failed */
    atomic_uint_fast64_t catalog_unavailable;  /* such failures, counted */
    atomic_uint_fast64_t catalog_refreshes;    /* generation moved remotely */

    /* Snapshot cache, dropped whenever generation moves (both under
     * cache_mu; generation only moves while db_mu is held too). */
    pthread_mutex_t cache_mu;
    uint64_t generation;
    struct cache_entry *cache;
    size_t cache_count;
    size_t cache_cap;
    struct snapshot_flight *flights;
    pthread_cond_t flight_cv;
    atomic_uint_fast64_t snapshot_builds;

    atomic_uint_fast64_t tmp_counter;
    atomic_uint_fast64_t deltas_made;
    atomic_uint_fast64_t deltas_failed;
    atomic_uint_fast64_t deltas_rejected;
    atomic_uint_fast64_t compressed_made;
    atomic_uint_fast64_t deltas_evicted;
    atomic_uint_fast64_t deltas_on_demand;
    atomic_uint_fast64_t bg_made;
    atomic_uint_fast64_t errors;
    atomic_uint_fast64_t job_retries;     /* transient failures retried */
    atomic_uint_fast64_t jobs_gave_up;    /* out of attempts: failed */

    /* Deltas by state now, kept in step with every state change (read
     * once at open) so that /metrics never counts rows. Whoever changes
     * a delta's state changes these, after its transaction commits. */
    atomic_int_fast64_t deltas_pending_now;
    atomic_int_fast64_t deltas_ready_now;
    /* ready delta bytes (both formats) and ready deltas with a tensor
     * form: set at open and by the worker after each ready delta */
    atomic_int_fast64_t delta_storage_bytes_now;
    atomic_int_fast64_t deltas_tensor_now;

    /* The worker: kicked when work may be pending, busy until it has
     * found nothing to do since the last kick (all under work_mu). */
    pthread_mutex_t work_mu;
    pthread_cond_t work_cv;
    pthread_cond_t idle_cv;
    bool worker_started;
    bool kicked;
    bool busy;
    int64_t retry_wake_ms;        /* earliest job in backoff; 0: none */
    atomic_bool stop;
    pthread_t worker;
};

/* ---- errors (store/store.c) ---- */

/* Records "op path: strerror(err)" as this thread's last error; counts
 * it. Returns the status for err (ENOSPC/EDQUOT: STORE_NO_SPACE). */
enum store_status store_err_os(struct store *st, const char *op,
                               const char *path, int err);
/* Records "op: <the database's message>" from this thread's connection
 * and maps its class to a status (STORE_UNAVAILABLE when the catalog
 * server cannot be reached). rc, a db_step result, is not used. */
enum store_status store_err_db(struct store *st, const char *op, int rc);
/* Records a free-form message (no counter). */
void store_err_text(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* The SQL text of statement id (store/store.c's table). */
const char *store_stmt_sql(enum stmt_id id);
/* The SQL of statement id for db's engine (PostgreSQL's own text where
 * store/store.c has one). */
const char *store_stmt_sql_for(const struct db *db, enum stmt_id id);
/* Records "op: <db's message>" and maps its class, for any connection. */
enum store_status store_err_conn(struct store *st, struct db *db,
                                 const char *op, int rc);

/* ---- read connections (store/reader.c) ---- */

/* Opens opt.read_connections read-only connections to catalog.db. */
MUST_CHECK enum store_status store_readers_open(struct store *st,
                                                const char *path);
void store_readers_close(struct store *st);
/* A connection for reading, waiting while every one is in use; in a
 * store without read connections, the writer with db_mu held. Give it
 * back with store_reader_release. */
struct store_conn *store_reader_acquire(struct store *st);
void store_reader_release(struct store *st, struct store_conn *c);
/* c's statement id, reset and with its bindings cleared. */
struct db_stmt *store_conn_stmt(struct store_conn *c, enum stmt_id id);
/* Ends the read transaction on c (it changed nothing: no error to see). */
void store_conn_end_read(struct store_conn *c);
/* Steps c's statement id (BEGIN, COMMIT...) once; resets it. */
MUST_CHECK enum store_status store_conn_run(struct store *st,
                                            struct store_conn *c,
                                            enum stmt_id id, const char *op);

/* ---- database helpers (store/store.c); callers hold db_mu ---- */

/*
 * Makes role's connection this thread's connection for store_stmt,
 * store_stmt_run, store_err_db and the transactions until
 * store_db_unlock: WRITE is the writer under db_mu; JOB (the worker
 * thread) and WATCH (the watcher thread) are their own PostgreSQL
 * sessions, used by that thread only, else the writer under db_mu. Code
 * that locks db_mu directly uses the writer.
 */
void store_db_lock(struct store *st, enum store_role role);
void store_db_unlock(struct store *st);

/* The statement id, reset and with its bindings cleared. */
struct db_stmt *store_stmt(struct store *st, enum stmt_id id);
/* Steps a statement that returns no rows to SQLITE_DONE; resets it. */
MUST_CHECK enum store_status store_stmt_run(struct store *st,
                                            enum stmt_id id, const char *op);
MUST_CHECK enum store_status store_tx_begin(struct store *st);
/* BEGIN without the write lock: a worker job's claim (PostgreSQL). */
MUST_CHECK enum store_status store_tx_begin_job(struct store *st);
MUST_CHECK enum store_status store_tx_commit(struct store *st);
void store_tx_rollback(struct store *st);
/* After a write that changes what a snapshot holds (families, variants,
 * versions, ready deltas): generation + 1, so that cached snapshots are
 * read again (they stay cached, stale, for when the catalog server cannot
 * be reached). */
void store_generation_bump(struct store *st);

/* ---- files (store/blob.c) ---- */

/* DIR/blobs/sha256/<ab>/<hex> with suffix ("" or ".zst"). hex must be
 * valid. Returns 0, or -1 when the path does not fit. */
int store_path_blob(const struct store *st, const char *hex,
                    const char *suffix, char out[STORE_PATH_SIZE]);
int store_path_delta(const struct store *st, const char *from_hex,
                     const char *to_hex, char out[STORE_PATH_SIZE]);
/* The modeld-tensor/1 delta: store_path_delta's with ".mt". */
int store_path_delta_tensor(const struct store *st, const char *from_hex,
                            const char *to_hex, char out[STORE_PATH_SIZE]);
/* Creates a new file DIR/tmp/<prefix>-<counter> (O_EXCL); fd or -1 with
 * the error recorded and out_path empty. */
int store_tmp_create(struct store *st, const char *prefix,
                     char out_path[STORE_PATH_SIZE]);
/*
 * Puts a finished temporary file (store_tmp_create) in place: fsyncs and
 * closes *fd (-1 afterwards, either way), renames tmp to path (tmp is
 * emptied once renamed: nothing left to unlink) and fsyncs path's
 * directory. A full disk gives STORE_NO_SPACE; the error is recorded.
 */
MUST_CHECK enum store_status store_tmp_commit(struct store *st, int *fd,
                                              char tmp[STORE_PATH_SIZE],
                                              const char *path);
/* Drops a temporary file that was not committed: closes *fd (when >= 0;
 * -1 afterwards) and unlinks tmp (when not empty; emptied afterwards). */
void store_tmp_discard(int *fd, char tmp[STORE_PATH_SIZE]);
/* fsyncs the directory holding path. */
MUST_CHECK enum store_status store_fsync_parent(struct store *st,
                                                const char *path);
/* Empties DIR/tmp. */
MUST_CHECK enum store_status store_tmp_clean(struct store *st);

/* ---- snapshots (store/catalog.c) ---- */

/* Drops every cached snapshot. Caller holds cache_mu. */
void store_cache_clear(struct store *st);

/* ---- the catalog generation watcher (store/watch.c) ---- */

/* Notes gen as seen (PostgreSQL's shared generation; it only grows);
 * *out_moved: it is newer than one seen before. */
void store_generation_seen(struct store *st, uint64_t gen, bool *out_moved);

/* PostgreSQL: starts the thread that follows the catalog generation. */
MUST_CHECK enum store_status store_watch_start(struct store *st);
void store_watch_stop(struct store *st);

/* ---- event receipts (store/receipt.c) ---- */

/* Reads the catalog's receipt key, making it first when the catalog has
 * none (not in a read-only store). At open, on the writer. */
MUST_CHECK enum store_status store_receipt_key_load(struct store *st);
/* Frees what store_receipt_key_load made. */
void store_receipt_key_free(struct store *st);

/* ---- trust (store/trust.c) ---- */

MUST_CHECK enum store_status store_trust_prepare(struct store *st);
void store_trust_finalize(struct store *st);
/* Puts the measured latency and energy of version ver_id (median over
 * installed events, per device class with at least latency_min_reports
 * UEs) into v's per-class values, read on c (the writer under db_mu,
 * or a read connection inside its read transaction). */
MUST_CHECK enum store_status store_trust_measured(struct store *st,
                                                  struct store_conn *c,
                                                  int64_t ver_id,
                                                  struct proto_variant *v);

/* ---- worker (store/worker.c) ---- */

MUST_CHECK enum store_status store_worker_start(struct store *st);
void store_worker_stop(struct store *st);
/* Tells the worker there may be new work. */
void store_worker_kick(struct store *st);

#endif
