/*
 * The background worker: one thread that makes the zstd copies of new
 * blobs and the queued deltas, one job at a time, oldest first. Jobs live
 * in the catalog (blobs.zstd_state, deltas.state), so work left pending by
 * a crash is picked up at the next open. The compression itself runs
 * outside every mutex; requests never wait on it.
 *
 * Failures: a deterministic one (the input is not what the format needs,
 * a name that cannot fit) is final and recorded as failed; a full disk
 * leaves the job pending for the next kick; any other (an OS error such
 * as EMFILE, EIO or ENOMEM, a SQLite error) is transient: the job stays
 * pending and is retried after a backoff that doubles per attempt, until
 * retry_attempts have failed. store_jobs_retry starts failed jobs again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/tensor.h"
#include "store/internal.h"

enum job_kind {
    JOB_ZSTD,
    JOB_DELTA,
    JOB_BG,
};

struct job {
    enum job_kind kind;
    int64_t attempts;                     /* failed attempts so far */
    char from_hex[PROTO_HEX_SIZE];        /* deltas only */
    char to_hex[PROTO_HEX_SIZE];          /* the blob, or the delta target */
};

/* What a job ended as; JOB_STUCK means its state could not be recorded
 * and the worker should wait for the next kick rather than spin. */
enum job_result {
    JOB_DONE,
    JOB_ABANDONED,
    JOB_STUCK,
};


struct file_sink {
    struct store *st;
    int fd;
    char *path;                   /* the temp file, in the job's buffer */
    struct proto_hasher *hasher;
    uint64_t len;
    int err;                      /* errno of a failed write; ECANCELED */
};

/* ---- files --------------------------------------------------------------- */

/* Opens a blob for reading, with its size. */
static enum store_status open_blob(struct store *st, const char *hex,
                                   int *out_fd, uint64_t *out_len)
{
    char path[STORE_PATH_SIZE];
    struct stat sb;
    int fd;

    if (store_path_blob(st, hex, "", path) != 0)
        return store_err_os(st, "naming blob", hex, ENAMETOOLONG);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return store_err_os(st, "opening", path, errno);
    if (fstat(fd, &sb) != 0) {
        int err = errno;

        close(fd);
        return store_err_os(st, "fstat", path, err);
    }
    *out_fd = fd;
    *out_len = (uint64_t)sb.st_size;
    return STORE_OK;
}

/* Maps a whole blob: a delta's base must be in memory as zstd's prefix.
 * The pages are the file's (page cache), not the heap's. */
static enum store_status map_blob(struct store *st, const char *hex,
                                  struct fileio_map *out)
{
    enum store_status rc;
    uint64_t len = 0;
    int fd = -1;

    rc = open_blob(st, hex, &fd, &len);
    if (rc != STORE_OK)
        return rc;
    if (fileio_map_fd(fd, out) != 0)
        rc = store_err_os(st, "mmap", hex, errno);
    close(fd);
    return rc;
}

/* Writes the compressor's output to the temp file, hashing it; gives up
 * as soon as the store is closing. */
static int sink_write(void *ctx, const void *data, size_t len)
{
    struct file_sink *fs = ctx;

    if (atomic_load(&fs->st->stop)) {
        fs->err = ECANCELED;
        return 1;
    }
    if (proto_hasher_update(fs->hasher, data, len) != PROTO_OK) {
        fs->err = ENOMEM;
        return 1;
    }
    fs->len += len;
    if (fileio_write_all(fs->fd, data, len) != 0) {
        fs->err = errno;
        return 1;
    }
    return 0;
}

static bool is_no_space(int err)
{
    return err == ENOSPC || err == EDQUOT;
}

/* How a job's output step went. */
enum step {
    STEP_OK,
    STEP_ABANDONED,   /* the store is closing */
    STEP_LATER,       /* full disk: the job stays pending */
    STEP_FAILED,      /* transient: retried after a backoff */
    STEP_FINAL,       /* deterministic: recorded as failed for good */
};

/* Milliseconds since the epoch: retry times are stored in the catalog
 * and so must mean the same after a restart. */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The wait before attempt number attempts + 1: base, 2 base, 4 base...,
 * at most retry_max_ms. */
static int64_t backoff_ms(const struct store *st, int64_t attempts)
{
    int64_t wait = st->opt.retry_base_ms;

    for (int64_t i = 1; i < attempts && wait < st->opt.retry_max_ms; i++)
        wait *= 2;
    return wait < st->opt.retry_max_ms ? wait : st->opt.retry_max_ms;
}

/* Classifies what a producer (zstd copy, delta) left in fs. */
static enum step produced(struct store *st, const struct file_sink *fs,
                          enum proto_status prc, const char *what)
{
    if (fs->err == ECANCELED)
        return STEP_ABANDONED;
    if (is_no_space(fs->err))
        return STEP_LATER;
    if (prc == PROTO_OK)
        return STEP_OK;
    if (fs->err) {
        (void)store_err_os(st, "writing", fs->path, fs->err);
        return STEP_FAILED;
    }
    store_err_text("%s failed (%d)", what, (int)prc);
    /* Only running out of memory may go differently next time; bad
     * input or a mismatch will not. */
    return prc == PROTO_NO_MEMORY ? STEP_FAILED : STEP_FINAL;
}

/*
 * Readies fs for a job's output: a hasher and a temp file in DIR/tmp
 * (fs->path, left empty by store_tmp_create unless the file was made, so
 * that a job never unlinks a path it did not create). STEP_LATER on a full disk.
 */
static enum step sink_open(struct store *st, const char *kind,
                           struct file_sink *fs)
{
    int err;

    fs->hasher = proto_hasher_new();
    if (!fs->hasher) {
        store_err_text("%s: out of memory", kind);
        return STEP_FAILED;
    }
    fs->fd = store_tmp_create(st, kind, fs->path);
    err = errno;
    if (fs->fd >= 0)
        return STEP_OK;
    return is_no_space(err) ? STEP_LATER : STEP_FAILED;
}

/* Closes and removes what sink_open made (a committed file's temp name is
 * already empty) and frees its hasher. */
static void sink_close(struct file_sink *fs)
{
    store_tmp_discard(&fs->fd, fs->path);
    proto_hasher_free(fs->hasher);
    fs->hasher = NULL;
}

/* ---- recording results --------------------------------------------------- */

static enum store_status record_zstd(struct store *st, const char *hex,
                                     const char *state, uint64_t size)
{
    struct db_stmt *s;
    enum store_status rc;

    store_db_lock(st, STORE_ROLE_JOB);
    s = store_stmt(st, STMT_ZSTD_DONE);
    db_bind_text(s, 1, hex);
    db_bind_text(s, 2, state);
    db_bind_int64(s, 3, (int64_t)size);
    /* No generation bump: snapshots do not hold compressed copies. */
    rc = store_stmt_run(st, STMT_ZSTD_DONE, "recording zstd copy");
    store_db_unlock(st);
    return rc;
}

/* No size: the column stays NULL. */
#define NO_SIZE UINT64_MAX

static enum store_status record_delta(struct store *st, const struct job *j,
                                      const char *state, uint64_t size,
                                      const char *digest_hex,
                                      const char *error, uint64_t tensor_size)
{
    struct db_stmt *s;
    enum store_status rc;

    store_db_lock(st, STORE_ROLE_JOB);
    s = store_stmt(st, STMT_DELTA_DONE);
    db_bind_text(s, 1, j->from_hex);
    db_bind_text(s, 2, j->to_hex);
    db_bind_text(s, 3, state);
    if (strcmp(state, "failed") != 0 && size != NO_SIZE)
        db_bind_int64(s, 4, (int64_t)size);
    if (digest_hex)
        db_bind_text(s, 5, digest_hex);
    if (error)
        db_bind_text(s, 6, error);
    if (tensor_size != NO_SIZE)
        db_bind_int64(s, 7, (int64_t)tensor_size);
    rc = store_stmt_run(st, STMT_DELTA_DONE, "recording delta");
    if (rc == STORE_OK && db_changes(s) > 0) {
        atomic_fetch_sub(&st->deltas_pending_now, 1);
        if (strcmp(state, "ready") == 0)
            atomic_fetch_add(&st->deltas_ready_now, 1);
    }
    /* Snapshots list ready deltas only: other outcomes change none. */
    if (rc == STORE_OK && strcmp(state, "ready") == 0)
        store_generation_bump(st);
    store_db_unlock(st);
    return rc;
}

/* A transient failure: attempts + 1 recorded, the job stays pending until
 * its backoff has passed. */
static enum store_status record_retry(struct store *st, const struct job *j,
                                      int64_t attempts, int64_t retry_at_ms)
{
    enum stmt_id id = j->kind == JOB_ZSTD ? STMT_ZSTD_RETRY
                                          : STMT_DELTA_RETRY;
    struct db_stmt *s;
    enum store_status rc;

    store_db_lock(st, STORE_ROLE_JOB);
    s = store_stmt(st, id);
    if (j->kind == JOB_ZSTD) {
        db_bind_text(s, 1, j->to_hex);
        db_bind_int64(s, 2, attempts);
        db_bind_int64(s, 3, retry_at_ms);
    } else {
        db_bind_text(s, 1, j->from_hex);
        db_bind_text(s, 2, j->to_hex);
        db_bind_int64(s, 3, attempts);
        db_bind_int64(s, 4, retry_at_ms);
        db_bind_text(s, 5, store_errmsg(st));
    }
    rc = store_stmt_run(st, id, "recording a retry");
    store_db_unlock(st);
    return rc;
}

/*
 * A job that failed: retried later when the failure was transient and
 * attempts remain (true), else to be recorded as failed (false).
 */
static bool retry_later(struct store *st, const struct job *j, bool final,
                        enum job_result *result)
{
    int64_t attempts = j->attempts + 1;

    if (final)
        return false;
    if (attempts >= (int64_t)st->opt.retry_attempts) {
        atomic_fetch_add(&st->jobs_gave_up, 1);
        return false;
    }
    atomic_fetch_add(&st->job_retries, 1);
    if (record_retry(st, j, attempts, now_ms() + backoff_ms(st, attempts)) !=
        STORE_OK)
        *result = JOB_STUCK;
    return true;
}

/* The size a delta into hex must beat: the zstd copy's when known, else
 * the blob's. */
static enum store_status target_size(struct store *st, const char *hex,
                                     uint64_t full_bytes, uint64_t *out)
{
    struct db_stmt *s;
    enum store_status rc = STORE_OK;
    int src;

    *out = full_bytes;
    store_db_lock(st, STORE_ROLE_JOB);
    s = store_stmt(st, STMT_BLOB_GET);
    db_bind_text(s, 1, hex);
    src = db_step(s);
    if (src == DB_ROW) {
        const char *state = db_column_text(s, 1);

        if (state && strcmp((const char *)state, "ready") == 0 &&
            !db_column_is_null(s, 2))
            *out = (uint64_t)db_column_int64(s, 2);
    } else if (src != DB_DONE) {
        rc = store_err_db(st, "looking up blob", src);
    }
    db_reset(s);
    store_db_unlock(st);
    return rc;
}

/* ---- jobs ---------------------------------------------------------------- */

/* The first row of a job query as a job: 1, 0 when none, -1 on error. */
static int pick(struct store *st, enum stmt_id id, const char *op,
                int64_t now, struct job *out)
{
    struct db_stmt *s = store_stmt(st, id);
    int found = 0;
    int src;

    db_bind_int64(s, 1, now);
    src = db_step(s);

    if (src == DB_ROW) {
        const char *a = db_column_text(s, 0);
        const char *b = db_column_text(s, 1);

        if (id == STMT_JOB_DELTA) {
            out->kind = JOB_DELTA;
            snprintf(out->from_hex, sizeof(out->from_hex), "%s",
                     a ? (const char *)a : "");
            snprintf(out->to_hex, sizeof(out->to_hex), "%s",
                     b ? (const char *)b : "");
        } else {
            out->kind = JOB_ZSTD;
            snprintf(out->to_hex, sizeof(out->to_hex), "%s",
                     a ? (const char *)a : "");
        }
        out->attempts = db_column_int64(s, 2);
        found = 1;
    } else if (src != DB_DONE) {
        (void)store_err_db(st, op, src);
        found = -1;
    }
    db_reset(s);
    return found;
}

/* Whether the blob hex waits for its zstd copy and may have it made now
 * (not in a retry's backoff: then the delta goes first, measured against
 * the full size). On PostgreSQL the row is also claimed for this job's
 * transaction: another daemon's worker making the copy skips it. */
static bool zstd_pending(struct store *st, const char *hex, int64_t now,
                         int64_t *out_attempts)
{
    struct db_stmt *s = store_stmt(st, STMT_JOB_ZSTD_OF);
    bool pending = false;

    db_bind_text(s, 1, hex);
    if (db_step(s) == DB_ROW) {
        const char *state = db_column_text(s, 1);

        pending = state && strcmp(state, "pending") == 0 &&
                  db_column_int64(s, 3) <= now;
        *out_attempts = db_column_int64(s, 4);
    }
    db_reset(s);
    return pending;
}

/*
 * 1 and *out filled when a job is pending, 0 when none, -1 on error.
 * Deltas come first, since they are what saves bytes on the air; but a
 * delta's target gets its zstd copy made just before, so that the delta
 * is measured against the compressed size. Then the remaining copies.
 */
static int next_job(struct store *st, struct job *out)
{
    int64_t now = now_ms();
    int64_t zstd_attempts = 0;
    int found;

    memset(out, 0, sizeof(*out));
    store_db_lock(st, STORE_ROLE_JOB);
    if (store_is_postgresql(st) && store_tx_begin_job(st) != STORE_OK) {
        store_db_unlock(st);
        return -1;
    }
    found = pick(st, STMT_JOB_DELTA, "finding delta jobs", now, out);
    if (found == 1 && zstd_pending(st, out->to_hex, now, &zstd_attempts)) {
        out->kind = JOB_ZSTD;
        out->from_hex[0] = '\0';
        out->attempts = zstd_attempts;
    }
    if (found == 0)
        found = pick(st, STMT_JOB_ZSTD, "finding zstd jobs", now, out);
    if (found == 0) {
        found = pick(st, STMT_JOB_BG, "finding bg jobs", now, out);
        if (found == 1)
            out->kind = JOB_BG;
    }
    store_db_unlock(st);
    /* Only validated hex ever names a file. */
    if (found == 1 &&
        (!proto_hex_is_valid(out->to_hex, strlen(out->to_hex)) ||
         (out->kind == JOB_DELTA &&
          !proto_hex_is_valid(out->from_hex, strlen(out->from_hex))))) {
        store_err_text("worker: malformed digest in the catalog");
        found = -1;
    }
    return found;
}

/* The blob read in pieces: the compressed copy of a model of any size
 * costs zstd's window, not the model's size, in resident memory. */
struct blob_source {
    int fd;
    int err;
};

static int blob_read(void *ctx, void *buf, size_t cap, size_t *out_len)
{
    struct blob_source *src = ctx;
    ssize_t n;

    do
        n = read(src->fd, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        src->err = errno;
        return -1;
    }
    *out_len = (size_t)n;
    return 0;
}

static enum job_result run_zstd(struct store *st, const struct job *j)
{
    char tmp[STORE_PATH_SIZE] = "";
    char path[STORE_PATH_SIZE];
    struct blob_source src = { -1, 0 };
    struct file_sink fs = { .st = st, .fd = -1, .path = tmp };
    enum job_result result = JOB_DONE;
    bool final = false;               /* a deterministic failure */
    uint64_t blob_len = 0;
    enum store_status rc;
    enum proto_status prc;

    rc = open_blob(st, j->to_hex, &src.fd, &blob_len);
    if (rc != STORE_OK)
        goto fail;
    (void)posix_fadvise(src.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    switch (sink_open(st, "zstd", &fs)) {
    case STEP_OK:
        break;
    case STEP_LATER:
        goto later;
    default:
        goto fail;
    }
    prc = proto_zstd_compress_from(blob_read, &src, blob_len,
                                   st->opt.compress_level, sink_write, &fs);
    if (src.err) {
        (void)store_err_os(st, "reading blob", j->to_hex, src.err);
        goto fail;
    }
    switch (produced(st, &fs, prc, "zstd copy")) {
    case STEP_ABANDONED:
        result = JOB_ABANDONED;
        goto out;
    case STEP_LATER:
        goto later;
    case STEP_FAILED:
        goto fail;
    case STEP_FINAL:
        final = true;
        goto fail;
    case STEP_OK:
        break;
    }
    if (fs.len >= blob_len) {
        if (record_zstd(st, j->to_hex, "larger", fs.len) != STORE_OK)
            result = JOB_STUCK;
        goto out;
    }
    if (store_path_blob(st, j->to_hex, ".zst", path) != 0) {
        (void)store_err_os(st, "naming", j->to_hex, ENAMETOOLONG);
        final = true;
        goto fail;
    }
    rc = store_tmp_commit(st, &fs.fd, fs.path, path);
    if (rc == STORE_NO_SPACE)
        goto later;
    if (rc != STORE_OK)
        goto fail;
    atomic_fetch_add(&st->compressed_made, 1);
    if (record_zstd(st, j->to_hex, "ready", fs.len) != STORE_OK)
        result = JOB_STUCK;
    goto out;
later:
    /* A full disk is not the job's fault: it stays pending, for the next
     * upload, publish or start-up to retry. */
    result = JOB_STUCK;
    goto out;
fail:
    if (retry_later(st, j, final, &result))
        goto out;
    if (record_zstd(st, j->to_hex, "failed", 0) != STORE_OK)
        result = JOB_STUCK;
out:
    sink_close(&fs);
    if (src.fd >= 0)
        close(src.fd);
    return result;
}

/* ---- tensor codings -------------------------------------------------------- */

/* The tensor map of a mapped blob, with the TF.js model.json a version
 * names for it (mapped into man, which the caller unmaps). False when the
 * blob is of no known format (or out of memory: then no tensor coding). */
static bool tensor_map_of(struct store *st, const char *hex,
                          const struct fileio_map *blob, struct fileio_map *man,
                          struct proto_tensor_map *out)
{
    char mhex[PROTO_HEX_SIZE] = "";
    struct db_stmt *s;

    store_db_lock(st, STORE_ROLE_JOB);
    s = store_stmt(st, STMT_MANIFEST_OF);
    db_bind_text(s, 1, hex);
    if (db_step(s) == DB_ROW && db_column_text(s, 0))
        snprintf(mhex, sizeof(mhex), "%s",
                 (const char *)db_column_text(s, 0));
    db_reset(s);
    store_db_unlock(st);
    if (proto_hex_is_valid(mhex, strlen(mhex)) &&
        map_blob(st, mhex, man) != STORE_OK)
        return false;
    return proto_tensor_map_parse(blob->data, blob->len,
                                  man->data ? man->data : NULL, man->len,
                                  out) == PROTO_OK;
}

/* Drops ready deltas, least recently served first, until they fit
 * delta_storage_max_bytes; never the one just made (else a delta bigger
 * than the bound would be asked for, made and dropped in a loop). The
 * row goes first, so no snapshot offers a delta whose file is gone. */
static void evict(struct store *st, const struct job *keep)
{
    uint64_t max = st->opt.delta_storage_max_bytes;

    for (int round = 0; round < 10000; round++) {
        char from[PROTO_HEX_SIZE] = "", to[PROTO_HEX_SIZE] = "";
        char path[STORE_PATH_SIZE];
        uint64_t total = 0;
        struct db_stmt *s;
        bool found = false;

        store_db_lock(st, STORE_ROLE_JOB);
        s = store_stmt(st, STMT_DELTA_COUNTS);
        if (db_step(s) == DB_ROW) {
            total = (uint64_t)db_column_int64(s, 2);
            /* the gauges a scrape reads without a query */
            atomic_store(&st->delta_storage_bytes_now,
                         db_column_int64(s, 2));
            atomic_store(&st->deltas_tensor_now, db_column_int64(s, 3));
        }
        db_reset(s);
        if (max && total > max) {
            s = store_stmt(st, STMT_DELTA_LRU);
            db_bind_text(s, 1, keep->from_hex);
            db_bind_text(s, 2, keep->to_hex);
            if (db_step(s) == DB_ROW && db_column_text(s, 0) &&
                db_column_text(s, 1)) {
                snprintf(from, sizeof(from), "%s",
                         (const char *)db_column_text(s, 0));
                snprintf(to, sizeof(to), "%s",
                         (const char *)db_column_text(s, 1));
                found = proto_hex_is_valid(from, strlen(from)) &&
                        proto_hex_is_valid(to, strlen(to));
            }
            db_reset(s);
        }
        if (found) {
            s = store_stmt(st, STMT_DELTA_DELETE);
            db_bind_text(s, 1, from);
            db_bind_text(s, 2, to);
            found = store_stmt_run(st, STMT_DELTA_DELETE, "evicting delta") ==
                    STORE_OK;
            if (found) {
                atomic_fetch_sub(&st->deltas_ready_now, 1);
                store_generation_bump(st);
            }
        }
        store_db_unlock(st);
        if (!found)
            return;
        if (store_path_delta(st, from, to, path) == 0)
            unlink(path);
        if (store_path_delta_tensor(st, from, to, path) == 0)
            unlink(path);
        atomic_fetch_add(&st->deltas_evicted, 1);
    }
}

static enum store_status record_bg(struct store *st, const char *hex,
                                   const char *state, uint64_t size)
{
    struct db_stmt *s;
    enum store_status rc;

    store_db_lock(st, STORE_ROLE_JOB);
    s = store_stmt(st, STMT_BG_DONE);
    db_bind_text(s, 1, hex);
    db_bind_text(s, 2, state);
    if (size != NO_SIZE)
        db_bind_int64(s, 3, (int64_t)size);
    rc = store_stmt_run(st, STMT_BG_DONE, "recording bg copy");
    /* Snapshots carry the bg size of each version. */
    if (rc == STORE_OK && strcmp(state, "ready") == 0)
        store_generation_bump(st);
    store_db_unlock(st);
    return rc;
}

/* A published tensor model's modeld-bg/1 copy, kept when smaller than its
 * zstd copy (or the blob when it has none). */
static enum job_result run_bg(struct store *st, const struct job *j)
{
    char tmp[STORE_PATH_SIZE] = "";
    char path[STORE_PATH_SIZE];
    struct fileio_map blob = { 0 }, man = { 0 };
    struct proto_tensor_map map = { 0 };
    struct proto_tensor_options opt = { st->opt.compress_level };
    struct file_sink fs = { .st = st, .fd = -1, .path = tmp };
    enum job_result result = JOB_DONE;
    uint64_t limit_bytes = 0;
    const char *state = "failed";
    uint64_t size = NO_SIZE;
    enum proto_status prc;
    enum store_status rc;

    if (map_blob(st, j->to_hex, &blob) != STORE_OK ||
        target_size(st, j->to_hex, blob.len, &limit_bytes) != STORE_OK)
        goto record;
    if (!tensor_map_of(st, j->to_hex, &blob, &man, &map)) {
        state = "none";
        goto record;
    }
    switch (sink_open(st, "bg", &fs)) {
    case STEP_OK:
        break;
    case STEP_LATER:
        result = JOB_STUCK;
        goto out;
    default:
        goto record;
    }
    prc = proto_tensor_bg_make(blob.data, blob.len, &map, j->to_hex, &opt,
                               sink_write, &fs);
    switch (produced(st, &fs, prc, "bg copy")) {
    case STEP_ABANDONED:
        result = JOB_ABANDONED;
        goto out;
    case STEP_LATER:
        result = JOB_STUCK;
        goto out;
    case STEP_FAILED:
    case STEP_FINAL:
        goto record;
    case STEP_OK:
        break;
    }
    if (fs.len >= limit_bytes) {
        state = "larger";
        size = fs.len;
        goto record;
    }
    if (store_path_blob(st, j->to_hex, ".bg", path) != 0)
        goto record;
    rc = store_tmp_commit(st, &fs.fd, fs.path, path);
    if (rc == STORE_NO_SPACE) {
        result = JOB_STUCK;
        goto out;
    }
    if (rc != STORE_OK)
        goto record;
    atomic_fetch_add(&st->bg_made, 1);
    state = "ready";
    size = fs.len;
record:
    if (record_bg(st, j->to_hex, state, size) != STORE_OK)
        result = JOB_STUCK;
out:
    sink_close(&fs);
    proto_tensor_map_free(&map);
    fileio_unmap(&man);
    fileio_unmap(&blob);
    return result;
}

/* Names one of a job's delta files (name_delta: store_path_delta or
 * store_path_delta_tensor) and commits fs to it. STEP_LATER on a full
 * disk; STEP_FINAL when the name does not fit. */
static enum step keep_delta(struct store *st, const struct job *j,
                            int (*name_delta)(const struct store *,
                                              const char *, const char *,
                                              char[STORE_PATH_SIZE]),
                            struct file_sink *fs)
{
    char path[STORE_PATH_SIZE];
    enum store_status rc;

    if (name_delta(st, j->from_hex, j->to_hex, path) != 0) {
        (void)store_err_os(st, "naming delta", j->to_hex, ENAMETOOLONG);
        return STEP_FINAL;
    }
    rc = store_tmp_commit(st, &fs->fd, fs->path, path);
    if (rc == STORE_NO_SPACE)
        return STEP_LATER;
    return rc == STORE_OK ? STEP_OK : STEP_FAILED;
}

/*
 * A delta job makes the zstd-patch delta and, when the target is a tensor
 * model, the modeld-tensor/1 one. Each is kept when under
 * delta_max_fraction of the target's compressed size; the tensor delta
 * only when also smaller than the zstd-patch one (so it is never offered
 * where patch-from does better). Neither kept: rejected.
 */
static enum job_result run_delta(struct store *st, const struct job *j)
{
    char tmp[STORE_PATH_SIZE] = "", ttmp[STORE_PATH_SIZE] = "";
    char digest[PROTO_HEX_SIZE];
    struct fileio_map from = { 0 }, to = { 0 }, fman = { 0 }, tman = { 0 };
    struct proto_tensor_map fmap = { 0 }, tmap = { 0 };
    struct proto_tensor_options opt = { st->opt.delta_level };
    struct file_sink fs = { .st = st, .fd = -1, .path = tmp };
    struct file_sink ts = { .st = st, .fd = -1, .path = ttmp };
    enum job_result result = JOB_DONE;
    bool final = false;               /* a deterministic failure */
    uint64_t limit_bytes = 0;
    bool have_tensor = false, keep_z, keep_t;
    double limit;
    enum step step = STEP_OK;
    enum proto_status prc;

    if (map_blob(st, j->from_hex, &from) != STORE_OK ||
        map_blob(st, j->to_hex, &to) != STORE_OK ||
        target_size(st, j->to_hex, to.len, &limit_bytes) != STORE_OK)
        goto fail;
    switch (sink_open(st, "delta", &fs)) {
    case STEP_OK:
        break;
    case STEP_LATER:
        goto later;
    default:
        goto fail;
    }
    prc = proto_delta_make(from.data, from.len, to.data, to.len, j->from_hex,
                           j->to_hex, st->opt.delta_level, sink_write, &fs);
    switch (produced(st, &fs, prc, "delta")) {
    case STEP_ABANDONED:
        result = JOB_ABANDONED;
        goto out;
    case STEP_LATER:
        goto later;
    case STEP_FAILED:
        goto fail;
    case STEP_FINAL:
        final = true;
        goto fail;
    case STEP_OK:
        break;
    }
    if (st->opt.tensor_coding &&
        tensor_map_of(st, j->to_hex, &to, &tman, &tmap)) {
        /* A base of unknown format still gives its non-tensor bytes. */
        if (!tensor_map_of(st, j->from_hex, &from, &fman, &fmap))
            memset(&fmap, 0, sizeof(fmap));
        switch (sink_open(st, "tdelta", &ts)) {
        case STEP_OK:
            break;
        case STEP_LATER:
            goto later;
        default:
            goto fail;
        }
        prc = proto_tensor_delta_make(from.data, from.len, &fmap, to.data,
                                      to.len, &tmap, j->from_hex, j->to_hex,
                                      &opt, sink_write, &ts);
        switch (produced(st, &ts, prc, "tensor delta")) {
        case STEP_ABANDONED:
            result = JOB_ABANDONED;
            goto out;
        case STEP_LATER:
            goto later;
        case STEP_FAILED:
        case STEP_FINAL:
            break;                /* the zstd-patch delta still stands */
        case STEP_OK:
            have_tensor = true;
            break;
        }
    }
    limit = st->opt.delta_max_fraction * (double)limit_bytes;
    keep_z = (double)fs.len < limit;
    keep_t = have_tensor && ts.len < fs.len && (double)ts.len < limit;
    if (!keep_z && !keep_t) {
        atomic_fetch_add(&st->deltas_rejected, 1);
        if (record_delta(st, j, "rejected", fs.len, NULL, NULL, NO_SIZE) !=
            STORE_OK)
            result = JOB_STUCK;
        goto out;
    }
    if (proto_hasher_final(fs.hasher, digest) != PROTO_OK) {
        store_err_text("delta: hashing failed");
        goto fail;
    }
    if (keep_t)
        step = keep_delta(st, j, store_path_delta_tensor, &ts);
    if (step == STEP_OK && keep_z)
        step = keep_delta(st, j, store_path_delta, &fs);
    if (step == STEP_LATER)
        goto later;
    if (step != STEP_OK) {
        final = step == STEP_FINAL;
        goto fail;
    }
    atomic_fetch_add(&st->deltas_made, 1);
    if (record_delta(st, j, "ready", keep_z ? fs.len : NO_SIZE,
                     keep_z ? digest : NULL, NULL,
                     keep_t ? ts.len : NO_SIZE) != STORE_OK)
        result = JOB_STUCK;
    else
        evict(st, j);
    goto out;
later:
    result = JOB_STUCK;         /* full disk: stays pending, see run_zstd */
    goto out;
fail:
    if (retry_later(st, j, final, &result))
        goto out;
    atomic_fetch_add(&st->deltas_failed, 1);
    if (record_delta(st, j, "failed", 0, NULL, store_errmsg(st),
                     NO_SIZE) != STORE_OK)
        result = JOB_STUCK;
out:
    sink_close(&fs);
    sink_close(&ts);
    proto_tensor_map_free(&fmap);
    proto_tensor_map_free(&tmap);
    fileio_unmap(&fman);
    fileio_unmap(&tman);
    fileio_unmap(&to);
    fileio_unmap(&from);
    return result;
}

/*
 * PostgreSQL: a job runs inside the transaction that claimed its row, so
 * that no other daemon's worker takes it meanwhile and a crash puts it
 * back. Whatever it recorded (made, failed, a retry's backoff) is
 * committed here; one that recorded nothing just releases its claim (a
 * statement that failed inside makes PostgreSQL roll the whole job back:
 * it stays pending). SQLite has one daemon per catalog and commits each
 * result as it is recorded.
 */
static void job_end(struct store *st, bool done)
{
    bool committed = false;

    if (!store_is_postgresql(st))
        return;
    store_db_lock(st, STORE_ROLE_JOB);
    if (done)
        committed = store_tx_commit(st) == STORE_OK;
    if (!committed)
        store_tx_rollback(st);
    store_db_unlock(st);
    /* What this worker made is visible to selects only now. */
    if (committed)
        store_generation_bump(st);
}

/* ---- the thread ---------------------------------------------------------- */

/* When the earliest job in a retry's backoff may start (ms since the
 * epoch), 0 when none waits. */
static int64_t next_retry_ms(struct store *st)
{
    struct db_stmt *s;
    int64_t at = 0;

    store_db_lock(st, STORE_ROLE_JOB);
    s = store_stmt(st, STMT_JOB_NEXT_RETRY);
    if (db_step(s) == DB_ROW && !db_column_is_null(s, 0))
        at = db_column_int64(s, 0);
    db_reset(s);
    store_db_unlock(st);
    return at;
}

/* Waits on work_cv (work_mu held) for a kick, or until the next retry
 * is due, which then counts as a kick. */
static void wait_for_work(struct store *st)
{
    struct timespec ts;

    if (st->retry_wake_ms <= 0) {
        pthread_cond_wait(&st->work_cv, &st->work_mu);
        return;
    }
    ts.tv_sec = (time_t)(st->retry_wake_ms / 1000);
    ts.tv_nsec = (long)(st->retry_wake_ms % 1000) * 1000000L;
    if (pthread_cond_timedwait(&st->work_cv, &st->work_mu, &ts) ==
        ETIMEDOUT) {
        st->retry_wake_ms = 0;
        st->kicked = true;
    }
}

static void *worker_main(void *arg)
{
    struct store *st = arg;

    for (;;) {
        pthread_mutex_lock(&st->work_mu);
        while (!atomic_load(&st->stop) && !st->kicked) {
            st->busy = false;
            pthread_cond_broadcast(&st->idle_cv);
            wait_for_work(st);
        }
        if (atomic_load(&st->stop)) {
            st->busy = false;
            pthread_cond_broadcast(&st->idle_cv);
            pthread_mutex_unlock(&st->work_mu);
            break;
        }
        st->kicked = false;
        st->busy = true;
        pthread_mutex_unlock(&st->work_mu);

        while (!atomic_load(&st->stop)) {
            struct job j;
            enum job_result r;

            if (next_job(st, &j) != 1) {
                job_end(st, false);
                break;
            }
            r = j.kind == JOB_ZSTD    ? run_zstd(st, &j)
                : j.kind == JOB_DELTA ? run_delta(st, &j)
                                      : run_bg(st, &j);
            job_end(st, true);
            if (r != JOB_DONE)
                break;
        }
        {
            int64_t at = next_retry_ms(st);

            pthread_mutex_lock(&st->work_mu);
            st->retry_wake_ms = at;
            pthread_mutex_unlock(&st->work_mu);
        }
    }
    return NULL;
}

enum store_status store_worker_start(struct store *st)
{
    int err;

    pthread_mutex_lock(&st->work_mu);
    st->kicked = true;            /* pick up what a crash left pending */
    st->busy = true;
    pthread_mutex_unlock(&st->work_mu);
    err = pthread_create(&st->worker, NULL, worker_main, st);
    if (err != 0) {
        st->busy = false;
        st->kicked = false;
        return store_err_os(st, "starting the worker", "", err);
    }
    st->worker_started = true;
    return STORE_OK;
}

void store_worker_stop(struct store *st)
{
    if (!st->worker_started)
        return;
    pthread_mutex_lock(&st->work_mu);
    atomic_store(&st->stop, true);
    pthread_cond_broadcast(&st->work_cv);
    pthread_mutex_unlock(&st->work_mu);
    pthread_join(st->worker, NULL);
    st->worker_started = false;
}

enum store_status store_jobs_retry(struct store *st, uint64_t *out_deltas,
                                   uint64_t *out_compressed)
{
    static const enum stmt_id ids[4] = {
        STMT_RETRY_FAILED_DELTAS, STMT_RETRY_WAITING_DELTAS,
        STMT_RETRY_FAILED_ZSTD, STMT_RETRY_WAITING_ZSTD,
    };
    int64_t changed[4] = { 0 };
    enum store_status rc;

    /* An admin's request: the write connection (on PostgreSQL the job
     * connection belongs to the worker thread and its open job). */
    store_db_lock(st, STORE_ROLE_WRITE);
    rc = store_tx_begin(st);
    for (size_t i = 0; rc == STORE_OK && i < 4; i++) {
        struct db_stmt *s = store_stmt(st, ids[i]);

        rc = store_stmt_run(st, ids[i], "retrying jobs");
        if (rc == STORE_OK)
            changed[i] = db_changes(s);
    }
    if (rc == STORE_OK)
        rc = store_tx_commit(st);
    if (rc != STORE_OK)
        store_tx_rollback(st);
    else
        atomic_fetch_add(&st->deltas_pending_now, changed[0]);
    store_db_unlock(st);
    if (rc != STORE_OK)
        return rc;
    store_worker_kick(st);
    *out_deltas = (uint64_t)(changed[0] + changed[1]);
    *out_compressed = (uint64_t)(changed[2] + changed[3]);
    return STORE_OK;
}

void store_worker_kick(struct store *st)
{
    if (!st->worker_started)
        return;
    pthread_mutex_lock(&st->work_mu);
    st->kicked = true;
    pthread_cond_signal(&st->work_cv);
    pthread_mutex_unlock(&st->work_mu);
}

enum store_status store_worker_wait_idle(struct store *st, int timeout_ms)
{
    struct timespec deadline;
    enum store_status rc = STORE_OK;

    if (!st->worker_started)
        return STORE_OK;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms < 0)
        timeout_ms = 0;
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->work_mu);
    while (st->busy || st->kicked) {
        if (pthread_cond_timedwait(&st->idle_cv, &st->work_mu, &deadline) ==
            ETIMEDOUT) {
            if (st->busy || st->kicked) {
                store_err_text("worker still busy after %d ms", timeout_ms);
                rc = STORE_TIMEOUT;
            }
            break;
        }
    }
    pthread_mutex_unlock(&st->work_mu);
    return rc;
}
