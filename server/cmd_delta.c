/*
 * `modeld delta OLD NEW OUT` and `modeld encode IN OUT`: the codings the
 * worker serves, made offline (for operators checking a model pair, and
 * for the benchmark): a zstd-patch or modeld-tensor/1 delta, or the
 * byte-grouped modeld-bg/1 coding. The files are mapped; the codings are
 * proto/'s. Prints one line: format, bytes, milliseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio/fileio.h"
#include "proto/proto.h"
#include "proto/tensor.h"
#include "server/commands.h"

#define EXIT_USAGE 2

static const char delta_usage[] =
    "usage: modeld delta [--format zstd-patch|modeld-tensor/1|smaller]\n"
    "                    [--level N] [--old-manifest JSON]\n"
    "                    [--new-manifest JSON] OLD NEW OUT\n"
    "       modeld encode [--level N] [--manifest JSON] IN OUT\n"
    "\n"
    "delta writes the delta from OLD to NEW in the format given (default\n"
    "smaller: both are made, the smaller is kept, as the server does).\n"
    "encode writes IN as modeld-bg/1 (tensor byte planes, zstd-coded).\n"
    "A TF.js model's weights need its model.json (--*manifest). The level\n"
    "is zstd's, 1..19 (default 19). Prints \"FORMAT BYTES MS\".\n"
    "\n"
    "Exit status: 0 written, 1 failure, 2 usage error.\n";

/* Maps path read-only (fileio's one mmap helper); says why not on
 * stderr. */
static int view_open(const char *path, struct fileio_map *v)
{
    v->data = NULL;
    v->len = 0;
    if (fileio_map_path(path, v) != 0) {
        fprintf(stderr, "modeld: cannot read %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    return 0;
}

struct mem {
    unsigned char *p;
    size_t len, cap;
};

static int mem_sink(void *ctx, const void *data, size_t len)
{
    struct mem *m = ctx;

    if (m->cap - m->len < len) {
        size_t cap = m->cap ? m->cap : 65536;
        unsigned char *q;

        while (cap - m->len < len)
            cap *= 2;
        q = realloc(m->p, cap);
        if (!q)
            return 1;
        m->p = q;
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, len);
    m->len += len;
    return 0;
}

static int sha_hex(const struct fileio_map *v, char out[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();
    int rc = h && proto_hasher_update(h, v->data, v->len) == PROTO_OK &&
                     proto_hasher_final(h, out) == PROTO_OK
                 ? 0
                 : -1;

    proto_hasher_free(h);
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A tensor map (empty when the file is of no known format). */
static int map_of(const struct fileio_map *v, const char *manifest_path,
                  struct proto_tensor_map *out)
{
    struct fileio_map man = { NULL, 0 };
    enum proto_status rc;

    memset(out, 0, sizeof(*out));
    if (manifest_path && view_open(manifest_path, &man) != 0)
        return -1;
    rc = proto_tensor_map_parse(v->data, v->len, man.data, man.len, out);
    fileio_unmap(&man);
    if (rc == PROTO_NO_MEMORY)
        return -1;
    if (rc != PROTO_OK)
        memset(out, 0, sizeof(*out));
    return 0;
}

/* OUT appears whole or not at all (a full disk, a crash mid-write). */
static int write_out(const char *path, const struct mem *m)
{
    if (fileio_put(path, m->p, m->len, 0666, false) != 0) {
        fprintf(stderr, "modeld: cannot write %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    return 0;
}

static int run(bool encode, const char *format, int level,
               const char *old_manifest, const char *new_manifest,
               const char **paths)
{
    struct fileio_map old = { NULL, 0 }, cur = { NULL, 0 };
    struct proto_tensor_map om = { 0 }, nm = { 0 };
    struct proto_tensor_options opt = { level };
    struct mem t = { 0 }, z = { 0 };
    char oh[PROTO_HEX_SIZE], nh[PROTO_HEX_SIZE];
    const struct mem *keep = NULL;
    const char *name = NULL;
    double t0;
    int code = 1;
    bool want_t = encode || strcmp(format, "zstd-patch") != 0;
    bool want_z = !encode && strcmp(format, "modeld-tensor/1") != 0;

    if ((!encode && view_open(paths[0], &old) != 0) ||
        view_open(paths[encode ? 0 : 1], &cur) != 0 ||
        (!encode && sha_hex(&old, oh) != 0) || sha_hex(&cur, nh) != 0)
        goto out;
    t0 = now_ms();
    if (want_t && ((!encode && map_of(&old, old_manifest, &om) != 0) ||
                   map_of(&cur, new_manifest, &nm) != 0))
        goto out;
    if (encode) {
        if (proto_tensor_bg_make(cur.data, cur.len, &nm, nh, &opt, mem_sink,
                                 &t) != PROTO_OK)
            goto fail;
    } else {
        if (want_t && proto_tensor_delta_make(old.data, old.len, &om,
                                              cur.data, cur.len, &nm, oh, nh,
                                              &opt, mem_sink,
                                              &t) != PROTO_OK)
            goto fail;
        if (want_z && proto_delta_make(old.data, old.len, cur.data, cur.len,
                                       oh, nh, level, mem_sink,
                                       &z) != PROTO_OK)
            goto fail;
    }
    if (want_t && (!want_z || t.len < z.len)) {
        keep = &t;
        name = encode ? PROTO_ENCODING_BG : PROTO_DELTA_FORMAT_TENSOR;
    } else {
        keep = &z;
        name = PROTO_DELTA_FORMAT_ZSTD;
    }
    if (write_out(paths[encode ? 1 : 2], keep) != 0)
        goto out;
    printf("%s %zu %.0f\n", name, keep->len, now_ms() - t0);
    code = 0;
    goto out;
fail:
    fprintf(stderr, "modeld: coding failed\n");
out:
    proto_tensor_map_free(&om);
    proto_tensor_map_free(&nm);
    free(t.p);
    free(z.p);
    fileio_unmap(&old);
    fileio_unmap(&cur);
    return code;
}

static int command(int argc, char **argv, bool encode)
{
    const char *paths[3];
    size_t want = encode ? 2 : 3, n = 0;
    const char *format = "smaller", *om = NULL, *nm = NULL;
    int level = 19;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(delta_usage, stdout);
            return 0;
        } else if (!encode && strcmp(a, "--format") == 0 && has_value) {
            format = argv[++i];
            if (strcmp(format, "smaller") != 0 &&
                strcmp(format, PROTO_DELTA_FORMAT_ZSTD) != 0 &&
                strcmp(format, PROTO_DELTA_FORMAT_TENSOR) != 0) {
                fprintf(stderr, "modeld: unknown format %s\n", format);
                return EXIT_USAGE;
            }
        } else if (strcmp(a, "--level") == 0 && has_value) {
            const char *v = argv[++i];
            char *end;
            long l;

            errno = 0;
            l = strtol(v, &end, 10);
            level = errno || end == v || *end || l < 1 || l > 19 ? 0
                                                                  : (int)l;
            if (level < 1 || level > 19) {
                fprintf(stderr, "modeld: --level wants 1..19\n");
                return EXIT_USAGE;
            }
        } else if (!encode && strcmp(a, "--old-manifest") == 0 && has_value) {
            om = argv[++i];
        } else if (strcmp(a, encode ? "--manifest" : "--new-manifest") == 0 &&
                   has_value) {
            nm = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "modeld: unknown option %s\n%s", a, delta_usage);
            return EXIT_USAGE;
        } else if (n < want) {
            paths[n++] = a;
        } else {
            fprintf(stderr, "modeld: too many arguments\n%s", delta_usage);
            return EXIT_USAGE;
        }
    }
    if (n != want) {
        fprintf(stderr, "modeld: missing arguments\n%s", delta_usage);
        return EXIT_USAGE;
    }
    return run(encode, format, level, om, nm, paths);
}

int cmd_delta(int argc, char **argv)
{
    return command(argc, argv, false);
}

int cmd_encode(int argc, char **argv)
{
    return command(argc, argv, true);
}
