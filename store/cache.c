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

#include "store/internal.h"

#define HEX "0123456789abcdef"

struct cached {
    char hex[PROTO_HEX_SIZE];
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
            if (count == cap) {
                size_t ncap = cap ? 2 * cap : 64;
                struct cached *n = realloc(list, ncap * sizeof(*n));

                if (!n) {
                    closedir(sub);
                    closedir(top);
                    free(list);
                    store_err_text("blob cache: out of memory");
                    return STORE_NO_MEMORY;
                }
                list = n;
                cap = ncap;
            }
            c = &list[count++];
            snprintf(c->hex, sizeof(c->hex), "%.64s", fe->d_name);
            c->used_ns = 0;
            c->bytes = file_bytes(st, c->hex, "", &c->used_ns);
            for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++)
                c->bytes += file_bytes(st, c->hex, suffixes[i], NULL);
        }
        closedir(sub);
    }
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
        if (keep_hex && strcmp(list[i].hex, keep_hex) == 0)
            continue;
        for (size_t k = 0; k < ARRAY_SIZE(suffixes); k++) {
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
