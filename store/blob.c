/*
 * Content-addressed files: streaming uploads into DIR/tmp that are hashed
 * as they are written and renamed into DIR/blobs/sha256/<ab>/<hex> only
 * when the digest matches, and opening blobs, their zstd copies and deltas
 * by validated hex. Paths are only ever built from validated hex.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"

struct store_upload {
    struct store *st;
    int fd;
    char path[STORE_PATH_SIZE];
    char expected_hex[PROTO_HEX_SIZE];
    uint64_t max_bytes;
    uint64_t written;
    struct proto_hasher *hasher;
    enum store_status failed;     /* the first write failure, if any */
    bool checked;                 /* store_upload_check said it matches */
};

int store_path_blob(const struct store *st, const char *hex,
                    const char *suffix, char out[STORE_PATH_SIZE])
{
    int n = snprintf(out, STORE_PATH_SIZE, "%s/blobs/sha256/%.2s/%s%s",
                     st->dir, hex, hex, suffix);

    return n > 0 && n < STORE_PATH_SIZE ? 0 : -1;
}

int store_path_delta(const struct store *st, const char *from_hex,
                     const char *to_hex, char out[STORE_PATH_SIZE])
{
    int n = snprintf(out, STORE_PATH_SIZE, "%s/deltas/%s-%s", st->dir,
                     from_hex, to_hex);

    return n > 0 && n < STORE_PATH_SIZE ? 0 : -1;
}

int store_path_delta_tensor(const struct store *st, const char *from_hex,
                            const char *to_hex, char out[STORE_PATH_SIZE])
{
    int n = snprintf(out, STORE_PATH_SIZE, "%s/deltas/%s-%s.mt", st->dir,
                     from_hex, to_hex);

    return n > 0 && n < STORE_PATH_SIZE ? 0 : -1;
}

int store_tmp_create(struct store *st, const char *prefix,
                     char out_path[STORE_PATH_SIZE])
{
    for (int attempt = 0; attempt < 16; attempt++) {
        unsigned long long n = atomic_fetch_add(&st->tmp_counter, 1);
        int fd;

        snprintf(out_path, STORE_PATH_SIZE, "%s/tmp/%s-%ld-%llu", st->dir,
                 prefix, (long)getpid(), n);
        fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                  STORE_FILE_MODE);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST) {
            int err = errno;

            (void)store_err_os(st, "creating", out_path, err);
            out_path[0] = '\0';  /* not ours: never to be unlinked */
            errno = err;
            return -1;
        }
    }
    (void)store_err_os(st, "creating", out_path, EEXIST);
    out_path[0] = '\0';
    errno = EEXIST;
    return -1;
}

enum store_status store_tmp_commit(struct store *st, int *fd,
                                   char tmp[STORE_PATH_SIZE], const char *path)
{
    enum store_status rc = STORE_OK;

    if (fsync(*fd) != 0)
        rc = store_err_os(st, "fsync", tmp, errno);
    if (close(*fd) != 0 && rc == STORE_OK)
        rc = store_err_os(st, "closing", tmp, errno);
    *fd = -1;
    if (rc == STORE_OK && rename(tmp, path) != 0)
        rc = store_err_os(st, "renaming to", path, errno);
    if (rc != STORE_OK)
        return rc;
    tmp[0] = '\0';
    return store_fsync_parent(st, path);
}

void store_tmp_discard(int *fd, char tmp[STORE_PATH_SIZE])
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    if (tmp[0])
        unlink(tmp);
    tmp[0] = '\0';
}

enum store_status store_fsync_parent(struct store *st, const char *path)
{
    if (fileio_fsync_parent(path) != 0)
        return store_err_os(st, "fsync of the directory of", path, errno);
    return STORE_OK;
}

enum store_status store_tmp_clean(struct store *st)
{
    char path[STORE_PATH_SIZE];
    struct dirent *de;
    DIR *d;
    enum store_status rc = STORE_OK;

    snprintf(path, sizeof(path), "%s/tmp", st->dir);
    d = opendir(path);
    if (!d)
        return store_err_os(st, "opening", path, errno);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno == ENOENT)
            continue;
        /* The store makes no directories here; an empty one goes, a full
         * one is someone else's and stays. */
        if (errno == EISDIR || errno == EPERM) {
            (void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
            continue;
        }
        rc = store_err_os(st, "removing leftover", de->d_name, errno);
        break;
    }
    closedir(d);
    return rc;
}

/* ---- uploads ----------------------------------------------------------- */

enum store_status store_upload_begin(struct store *st,
                                     const char expected_hex[PROTO_HEX_SIZE],
                                     uint64_t max_bytes,
                                     struct store_upload **out)
{
    struct store_upload *up;

    if (!proto_hex_is_valid(expected_hex, strnlen(expected_hex,
                                                  PROTO_HEX_SIZE))) {
        store_err_text("upload: invalid digest");
        return STORE_DIGEST_MISMATCH;
    }
    up = calloc(1, sizeof(*up));
    if (!up) {
        store_err_text("upload: out of memory");
        return STORE_NO_MEMORY;
    }
    up->st = st;
    up->max_bytes = max_bytes;
    memcpy(up->expected_hex, expected_hex, PROTO_HEX_LEN);
    up->expected_hex[PROTO_HEX_LEN] = '\0';
    up->hasher = proto_hasher_new();
    if (!up->hasher) {
        free(up);
        store_err_text("upload: out of memory");
        return STORE_NO_MEMORY;
    }
    up->fd = store_tmp_create(st, "upload", up->path);
    if (up->fd < 0) {
        enum store_status rc = errno == ENOSPC || errno == EDQUOT
                                   ? STORE_NO_SPACE
                                   : STORE_IO_ERROR;

        proto_hasher_free(up->hasher);
        free(up);
        return rc;
    }
    *out = up;
    return STORE_OK;
}

static enum store_status write_all(struct store *st, int fd,
                                   const char *path, const void *data,
                                   size_t len)
{
    if (fileio_write_all(fd, data, len) != 0)
        return store_err_os(st, "writing", path, errno);
    return STORE_OK;
}

enum store_status store_upload_write(struct store_upload *up,
                                     const void *data, size_t len)
{
    enum store_status rc;

    if (up->failed != STORE_OK) {
        store_err_text("upload: write after a failure");
        return up->failed;
    }
    if (len > up->max_bytes - up->written) {
        store_err_text("upload: more than %llu bytes",
                       (unsigned long long)up->max_bytes);
        rc = STORE_TOO_LARGE;
        goto out;
    }
    rc = write_all(up->st, up->fd, up->path, data, len);
    if (rc != STORE_OK)
        goto out;
    if (proto_hasher_update(up->hasher, data, len) != PROTO_OK) {
        store_err_text("upload: hashing failed");
        rc = STORE_NO_MEMORY;
        goto out;
    }
    up->written += len;
out:
    up->failed = rc;
    return rc;
}

void store_upload_abort(struct store_upload *up)
{
    if (!up)
        return;
    store_tmp_discard(&up->fd, up->path);
    proto_hasher_free(up->hasher);
    free(up);
}

int store_upload_read_fd(const struct store_upload *up)
{
    return open(up->path, O_RDONLY | O_CLOEXEC);
}

/* Links the checked temp file to its final name; *out_created is false
 * when a blob of that name was already there. */
static enum store_status place_blob(struct store *st, const char *tmp,
                                    const char *hex, bool *out_created)
{
    char path[STORE_PATH_SIZE];
    char fanout[STORE_PATH_SIZE];
    bool made_fanout = false;
    enum store_status rc;

    if (store_path_blob(st, hex, "", path) != 0)
        return store_err_os(st, "naming blob", hex, ENAMETOOLONG);
    snprintf(fanout, sizeof(fanout), "%s/blobs/sha256/%.2s", st->dir, hex);
    if (mkdir(fanout, STORE_DIR_MODE) == 0)
        made_fanout = true;
    else if (errno != EEXIST)
        return store_err_os(st, "mkdir", fanout, errno);
    if (made_fanout) {
        rc = store_fsync_parent(st, fanout);
        if (rc != STORE_OK)
            return rc;
    }
    /* link() never replaces: an existing blob has the same bytes. */
    if (link(tmp, path) == 0) {
        *out_created = true;
    } else if (errno == EEXIST) {
        *out_created = false;
    } else {
        return store_err_os(st, "linking", path, errno);
    }
    /* Also when the blob was there: a crash may have come between an
     * earlier link and its directory fsync. */
    rc = store_fsync_parent(st, path);
    if (rc != STORE_OK) {
        if (*out_created)
            unlink(path);
        return rc;
    }
    return STORE_OK;
}

static enum store_status record_blob(struct store *st, const char *hex,
                                     uint64_t size)
{
    struct db_stmt *s;
    enum store_status rc;

    pthread_mutex_lock(&st->db_mu);
    s = store_stmt(st, STMT_BLOB_INSERT);
    db_bind_text(s, 1, hex);
    db_bind_int64(s, 2, (int64_t)size);
    /* No generation bump: a blob reaches snapshots only when published. */
    rc = store_stmt_run(st, STMT_BLOB_INSERT, "recording blob");
    pthread_mutex_unlock(&st->db_mu);
    if (rc == STORE_OK)
        store_worker_kick(st);
    return rc;
}

enum store_status store_upload_check(struct store_upload *up)
{
    char hex[PROTO_HEX_SIZE];
    enum store_status rc = STORE_OK;

    if (up->checked)
        return STORE_OK;
    if (up->failed != STORE_OK) {
        store_err_text("upload: finish after a failed write");
        return up->failed;
    }
    if (proto_hasher_final(up->hasher, hex) != PROTO_OK) {
        store_err_text("upload: hashing failed");
        rc = STORE_NO_MEMORY;
    } else if (strcmp(hex, up->expected_hex) != 0) {
        store_err_text("upload: content is sha256:%s, not sha256:%s", hex,
                       up->expected_hex);
        rc = STORE_DIGEST_MISMATCH;
    }
    /* The hasher is spent either way: a second check repeats the result. */
    if (rc == STORE_OK)
        up->checked = true;
    else
        up->failed = rc;
    return rc;
}

enum store_status store_upload_finish(struct store_upload *up,
                                      bool *out_created, uint64_t *out_size)
{
    struct store *st = up->st;
    const char *hex = up->expected_hex;
    enum store_status rc;
    bool created = false;

    rc = store_upload_check(up);
    if (rc != STORE_OK)
        goto out;
    if (fsync(up->fd) != 0) {
        rc = store_err_os(st, "fsync", up->path, errno);
        goto out;
    }
    rc = place_blob(st, up->path, hex, &created);
    if (rc != STORE_OK)
        goto out;
    rc = record_blob(st, hex, up->written);
    if (rc != STORE_OK)
        goto out;
    *out_created = created;
    *out_size = up->written;
out:
    /* On success the blob has its own name; the temp name always goes. */
    store_upload_abort(up);
    return rc;
}

/* ---- opening ------------------------------------------------------------- */

static enum store_status open_file(struct store *st, const char *path,
                                   int *out_fd, uint64_t *out_size,
                                   int64_t *out_mtime_s)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            return STORE_NOT_FOUND;
        return store_err_os(st, "opening", path, errno);
    }
    if (fstat(fd, &sb) != 0) {
        enum store_status rc = store_err_os(st, "fstat", path, errno);

        close(fd);
        return rc;
    }
    *out_fd = fd;
    *out_size = (uint64_t)sb.st_size;
    *out_mtime_s = (int64_t)sb.st_mtime;
    return STORE_OK;
}

static bool hex_ok(const char *hex)
{
    return hex && proto_hex_is_valid(hex, strnlen(hex, PROTO_HEX_SIZE));
}

/* The file of blob hex with suffix ("", ".zst", ".bg"), opened. */
static enum store_status open_blob_file(struct store *st,
                                        const char hex[PROTO_HEX_SIZE],
                                        const char *suffix, int *out_fd,
                                        uint64_t *out_size,
                                        int64_t *out_mtime_s)
{
    char path[STORE_PATH_SIZE];

    if (!hex_ok(hex) || store_path_blob(st, hex, suffix, path) != 0)
        return STORE_NOT_FOUND;
    return open_file(st, path, out_fd, out_size, out_mtime_s);
}

enum store_status store_blob_open(struct store *st,
                                  const char hex[PROTO_HEX_SIZE], int *out_fd,
                                  uint64_t *out_size, int64_t *out_mtime_s)
{
    return open_blob_file(st, hex, "", out_fd, out_size, out_mtime_s);
}

enum store_status store_blob_zstd_open(struct store *st,
                                       const char hex[PROTO_HEX_SIZE],
                                       int *out_fd, uint64_t *out_size,
                                       int64_t *out_mtime_s)
{
    return open_blob_file(st, hex, ".zst", out_fd, out_size, out_mtime_s);
}

enum store_status store_blob_bg_open(struct store *st,
                                     const char hex[PROTO_HEX_SIZE],
                                     int *out_fd, uint64_t *out_size,
                                     int64_t *out_mtime_s)
{
    return open_blob_file(st, hex, ".bg", out_fd, out_size, out_mtime_s);
}

enum store_status store_delta_open(struct store *st,
                                   const char from_hex[PROTO_HEX_SIZE],
                                   const char to_hex[PROTO_HEX_SIZE],
                                   int *out_fd, uint64_t *out_size,
                                   int64_t *out_mtime_s)
{
    return store_delta_format_open(st, from_hex, to_hex,
                                   PROTO_DELTA_ZSTD_PATCH, out_fd, out_size,
                                   out_mtime_s);
}

enum store_status store_delta_format_open(struct store *st,
                                          const char from_hex[PROTO_HEX_SIZE],
                                          const char to_hex[PROTO_HEX_SIZE],
                                          enum proto_delta_format format,
                                          int *out_fd, uint64_t *out_size,
                                          int64_t *out_mtime_s)
{
    char path[STORE_PATH_SIZE];
    enum store_status rc;
    struct db_stmt *s;

    if (!hex_ok(from_hex) || !hex_ok(to_hex) ||
        (format == PROTO_DELTA_TENSOR
             ? store_path_delta_tensor(st, from_hex, to_hex, path)
             : store_path_delta(st, from_hex, to_hex, path)) != 0)
        return STORE_NOT_FOUND;
    rc = open_file(st, path, out_fd, out_size, out_mtime_s);
    if (rc != STORE_OK || st->opt.read_only)
        return rc;
    /* Served: first in line to stay (at most one write a minute). A
     * failure here costs the eviction order, not the answer. */
    pthread_mutex_lock(&st->db_mu);
    s = store_stmt(st, STMT_DELTA_TOUCH);
    db_bind_text(s, 1, from_hex);
    db_bind_text(s, 2, to_hex);
    if (store_stmt_run(st, STMT_DELTA_TOUCH, "noting a delta served") !=
        STORE_OK)
        rc = STORE_OK;
    pthread_mutex_unlock(&st->db_mu);
    return STORE_OK;
}
