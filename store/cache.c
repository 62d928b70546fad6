/*
 * The blob cache of an edge (blob_origin set): blobs fetched from the
 * origin are kept under a size bound, least recently used first out. Use
 * is the file's access time, set explicitly on every hit (noatime mounts
 * and relatime would not), so that no table or lock is on the hit path.
 * The catalog is not touched: a blob's row says it exists somewhere, the
 * origin has it, and the edge fetches it again when asked.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/tensor.h"
#include "store/internal.h"

#define HEX "0123456789abcdef"

struct cached {
    char hex[2 * PROTO_HEX_SIZE + 4]; /* a blob's hex, or a delta's file
                                         name from-to[.mt] */
    bool delta;
    uint64_t bytes;               /* the blob and its derived copies */
    int64_t used_ns;
};

void store_blob_touch(int fd)
{
    const struct timespec times[2] = { { 0, UTIME_NOW }, { 0, UTIME_OMIT } };

    (void)futimens(fd, times);
}

/* Size of DIR/blobs/sha256/ab/<hex><suffix>, 0 when absent. */
static uint64_t file_bytes(const struct store *st, const char *hex,
                           const char *suffix, int64_t *out_used_ns)
{
    char path[STORE_PATH_SIZE];
    struct stat sb;

    if (store_path_blob(st, hex, suffix, path) != 0 || stat(path, &sb) != 0)
        return 0;
    if (out_used_ns)
        *out_used_ns = (int64_t)sb.st_atim.tv_sec * 1000000000 +
                       sb.st_atim.tv_nsec;
    return (uint64_t)sb.st_size;
}

static int by_use(const void *a, const void *b)
{
    const struct cached *x = a, *y = b;

    return (x->used_ns > y->used_ns) - (x->used_ns < y->used_ns);
}

/* The next entry of *list, grown by doubling; NULL (error text set) when
 * out of memory, *list then unchanged. */
static struct cached *cached_add(struct cached **list, size_t *count,
                                 size_t *cap)
{
    if (*count == *cap) {
        size_t ncap = *cap ? 2 * *cap : 64;
        struct cached *n = realloc(*list, ncap * sizeof(*n));

        if (!n) {
            store_err_text("blob cache: out of memory");
            return NULL;
        }
        *list = n;
        *cap = ncap;
    }
    return &(*list)[(*count)++];
}

/* Every blob file under DIR/blobs/sha256, with its use time and size. */
static enum store_status list_blobs(struct store *st, struct cached **out,
                                    size_t *out_count)
{
    static const char *const suffixes[] = { ".zst", ".bg" };
    char dir[STORE_PATH_SIZE];
    struct cached *list = NULL;
    size_t count = 0, cap = 0;
    DIR *top, *sub;
    struct dirent *de, *fe;

    snprintf(dir, sizeof(dir), "%.4000s/blobs/sha256", st->dir);
    top = opendir(dir);
    if (!top)
        return store_err_os(st, "opendir", dir, errno);
    while ((de = readdir(top)) != NULL) {
        char subdir[STORE_PATH_SIZE];

        if (strlen(de->d_name) != 2 || !strchr(HEX, de->d_name[0]) ||
            !strchr(HEX, de->d_name[1]))
            continue;
        if (snprintf(subdir, sizeof(subdir), "%.4000s/%.2s", dir,
                     de->d_name) >= (int)sizeof(subdir))
            continue;
        sub = opendir(subdir);
        if (!sub)
            continue;
        while ((fe = readdir(sub)) != NULL) {
            struct cached *c;

            /* The blobs themselves; their copies are counted with them. */
            if (strlen(fe->d_name) != PROTO_HEX_LEN ||
                !proto_hex_is_valid(fe->d_name, PROTO_HEX_LEN))
                continue;
            c = cached_add(&list, &count, &cap);
            if (!c) {
                closedir(sub);
                closedir(top);
                free(list);
                return STORE_NO_MEMORY;
            }
            snprintf(c->hex, sizeof(c->hex), "%.64s", fe->d_name);
            c->delta = false;
            c->used_ns = 0;
            c->bytes = file_bytes(st, c->hex, "", &c->used_ns);
            for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++)
                c->bytes += file_bytes(st, c->hex, suffixes[i], NULL);
        }
        closedir(sub);
    }
    closedir(top);
    /* Deltas pulled through (and any others here). */
    snprintf(dir, sizeof(dir), "%.4000s/deltas", st->dir);
    top = opendir(dir);
    while (top && (de = readdir(top)) != NULL) {
        size_t len = strlen(de->d_name);
        char path[STORE_PATH_SIZE];
        struct stat sb;
        struct cached *c;

        if ((len != 2 * PROTO_HEX_LEN + 1 &&
             len != 2 * PROTO_HEX_LEN + 4) ||
            de->d_name[PROTO_HEX_LEN] != '-' ||
            !proto_hex_is_valid(de->d_name, PROTO_HEX_LEN) ||
            !proto_hex_is_valid(de->d_name + PROTO_HEX_LEN + 1,
                                PROTO_HEX_LEN) ||
            (len > 2 * PROTO_HEX_LEN + 1 &&
             strcmp(de->d_name + 2 * PROTO_HEX_LEN + 1, ".mt") != 0) ||
            snprintf(path, sizeof(path), "%.4000s/%s", dir, de->d_name) >=
                (int)sizeof(path) ||
            stat(path, &sb) != 0)
            continue;
        c = cached_add(&list, &count, &cap);
        if (!c) {
            closedir(top);
            free(list);
            return STORE_NO_MEMORY;
        }
        snprintf(c->hex, sizeof(c->hex), "%.132s", de->d_name);
        c->delta = true;
        c->bytes = (uint64_t)sb.st_size;
        c->used_ns = (int64_t)sb.st_atim.tv_sec * 1000000000 +
                     sb.st_atim.tv_nsec;
    }
    if (top)
        closedir(top);
    *out = list;
    *out_count = count;
    return STORE_OK;
}

enum store_status store_blob_cache_trim(struct store *st, uint64_t max_bytes,
                                        const char *keep_hex,
                                        uint64_t *out_evicted)
{
    static const char *const suffixes[] = { "", ".zst", ".bg" };
    struct cached *list = NULL;
    size_t count = 0;
    uint64_t total = 0;
    enum store_status rc;

    *out_evicted = 0;
    rc = list_blobs(st, &list, &count);
    if (rc != STORE_OK)
        return rc;
    for (size_t i = 0; i < count; i++)
        total += list[i].bytes;
    qsort(list, count, sizeof(*list), by_use);
    for (size_t i = 0; i < count && total > max_bytes; i++) {
        char dpath[STORE_PATH_SIZE];

        /* keep: that blob or delta; a delta's from blob with it */
        if (keep_hex && (strcmp(list[i].hex, keep_hex) == 0 ||
                         (!list[i].delta &&
                          strncmp(list[i].hex, keep_hex, PROTO_HEX_LEN) ==
                              0)))
            continue;
        if (list[i].delta &&
            snprintf(dpath, sizeof(dpath), "%.4000s/deltas/%s", st->dir,
                     list[i].hex) < (int)sizeof(dpath))
            (void)unlink(dpath);
        for (size_t k = 0; !list[i].delta && k < ARRAY_SIZE(suffixes); k++) {
            char path[STORE_PATH_SIZE];

            /* A reader holding the file open keeps its bytes until it
             * closes it: eviction never cuts a transfer short. */
            if (store_path_blob(st, list[i].hex, suffixes[k], path) == 0)
                (void)unlink(path);
        }
        total -= list[i].bytes;
        (*out_evicted)++;
    }
    free(list);
    return STORE_OK;
}

/* ---- deltas pulled through (edge) ----------------------------------------- */

struct store_delta_in {
    struct store *st;
    int fd;
    uint64_t bytes, max_bytes;
    char path[STORE_PATH_SIZE];
};

enum store_status store_delta_in_begin(struct store *st, uint64_t max_bytes,
                                       struct store_delta_in **out)
{
    struct store_delta_in *in = calloc(1, sizeof(*in));

    *out = NULL;
    if (!in)
        return STORE_NO_MEMORY;
    in->st = st;
    in->max_bytes = max_bytes;
    in->fd = store_tmp_create(st, "edge-delta", in->path);
    if (in->fd < 0) {
        free(in);
        return store_err_os(st, "creating", "a temporary file", errno);
    }
    *out = in;
    return STORE_OK;
}

enum store_status store_delta_in_write(struct store_delta_in *in,
                                       const void *data, size_t len)
{
    if (in->max_bytes && in->bytes + len > in->max_bytes)
        return STORE_TOO_LARGE;
    if (fileio_write_all(in->fd, data, len) != 0)
        return store_err_os(in->st, "writing", in->path, errno);
    in->bytes += len;
    return STORE_OK;
}

void store_delta_in_abort(struct store_delta_in *in)
{
    if (!in)
        return;
    store_tmp_discard(&in->fd, in->path);
    free(in);
}

int store_delta_in_read_fd(const struct store_delta_in *in)
{
    return open(in->path, O_RDONLY | O_CLOEXEC);
}

static int drop_bytes(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return 0;
}

enum store_status store_delta_in_finish(struct store_delta_in *in,
                                        const char from_hex[PROTO_HEX_SIZE],
                                        const char to_hex[PROTO_HEX_SIZE],
                                        enum proto_delta_format format)
{
    struct store *st = in->st;
    char path[STORE_PATH_SIZE], from_c[PROTO_HEX_SIZE], to_c[PROTO_HEX_SIZE];
    char out_hex[PROTO_HEX_SIZE] = "";
    struct fileio_map old = { 0 }, coded = { 0 };
    enum store_status rc;
    uint64_t old_size = 0;
    int64_t mtime;
    int old_fd = -1, coded_fd = -1;

    rc = store_blob_open(st, from_hex, &old_fd, &old_size, &mtime);
    if (rc == STORE_NOT_FOUND)
        rc = STORE_BLOB_MISSING;
    if (rc != STORE_OK)
        goto out;
    /* The temporary file is write-only: read it through its name. */
    if (fileio_map_fd(old_fd, &old) != 0 ||
        (coded_fd = open(in->path, O_RDONLY | O_CLOEXEC)) < 0 ||
        fileio_map_fd(coded_fd, &coded) != 0) {
        rc = store_err_os(st, "mapping", in->path, errno);
        goto out;
    }
    rc = STORE_DIGEST_MISMATCH;
    if (old.len != old_size || coded.len != in->bytes)
        rc = store_err_os(st, "mapping", in->path, EIO);
    /* Of the format asked for, naming these digests, and applied to the
     * local from blob gives bytes that hash to to_hex (the decoders verify
     * the target digest the file names). */
    else if (proto_coded_kind(coded.data, coded.len, from_c, to_c) ==
                 (format == PROTO_DELTA_TENSOR ? PROTO_CODED_TENSOR
                                               : PROTO_CODED_ZSTD_PATCH) &&
             strcmp(from_c, from_hex) == 0 && strcmp(to_c, to_hex) == 0 &&
             proto_coded_apply(old.data, old.len, coded.data, coded.len,
                               drop_bytes, NULL, out_hex) == PROTO_OK &&
             strcmp(out_hex, to_hex) == 0)
        rc = STORE_OK;
    if (rc == STORE_OK &&
        (format == PROTO_DELTA_TENSOR
             ? store_path_delta_tensor(st, from_hex, to_hex, path)
             : store_path_delta(st, from_hex, to_hex, path)) != 0)
        rc = store_err_os(st, "naming", "the delta", ENAMETOOLONG);
    if (rc == STORE_OK)
        rc = store_tmp_commit(st, &in->fd, in->path, path);
out:
    fileio_unmap(&old);
    fileio_unmap(&coded);
    if (old_fd >= 0)
        close(old_fd);
    if (coded_fd >= 0)
        close(coded_fd);
    store_delta_in_abort(in);
    return rc;
}
