/*
 * `modeld patch OLD DELTA OUT`: applies a delta served by /v1/deltas (either
 * format: zstd-patch or modeld-tensor/1) to the base model a UE holds, and
 * `modeld decode IN OUT`: decodes a model served in an encoding
 * (modeld-bg/1, or a zstd content coding). Both write the result
 * atomically: a temporary file next to OUT, fsync, rename over OUT, fsync
 * of the directory; OUT is left untouched unless the result is exactly the
 * model the input names. The output is written as it is decoded; the
 * formats themselves are proto/delta.c's and proto/tensor_code.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio/fileio.h"
#include "proto/proto.h"
#include "proto/tensor.h"
#include "server/commands.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: modeld patch OLD DELTA OUT\n"
    "\n"
    "Applies DELTA (from GET /v1/deltas/sha256:FROM/sha256:TO) to OLD and\n"
    "writes the result to OUT atomically. Checks that OLD's SHA-256 is FROM\n"
    "and that the result's is TO; on any failure OUT is left untouched.\n"
    "Both delta formats are read: a zstd-patch delta also applies with\n"
    "stock zstd:\n"
    "  zstd -d --long=31 --patch-from=OLD DELTA -o OUT\n"
    "a modeld-tensor/1 delta needs modeld (or its proto/ library).\n"
    "\n"
    "Exit status: 0 OUT written and verified, 1 failure, 2 usage error.\n";

static const char decode_usage_text[] =
    "usage: modeld decode [--digest sha256:HEX] IN OUT\n"
    "\n"
    "Decodes IN, a model served in an encoding (model.encoding modeld-bg/1,\n"
    "or Content-Encoding: zstd), into OUT atomically and verifies its\n"
    "SHA-256: against the digest a modeld-bg/1 file names, and against\n"
    "--digest when given. A plain zstd file names no digest: --digest is\n"
    "then required.\n"
    "\n"
    "Exit status: 0 OUT written and verified, 1 failure, 2 usage error.\n";

struct file_sink {
    int fd;
    int err; /* errno of the failed write */
    struct proto_hasher *hasher; /* what was written: only for plain zstd,
                                    which names no digest (the decoders of
                                    the other codings verify their own) */
};

/* "modeld patch" or "modeld decode", for messages. */
static const char *prog = "modeld patch";

static int map_file(const char *path, struct fileio_map *out)
{
    if (fileio_map_path(path, out) != 0) {
        fprintf(stderr, "%s: cannot map %s: %s\n", prog, path,
                errno == EINVAL ? "not a regular file" : strerror(errno));
        return -1;
    }
    return 0;
}

static int write_sink(void *ctx, const void *data, size_t len)
{
    struct file_sink *fs = ctx;

    if (fs->hasher && proto_hasher_update(fs->hasher, data, len) != PROTO_OK) {
        fs->err = ENOMEM;
        return -1;
    }
    if (fileio_write_all(fs->fd, data, len) != 0) {
        fs->err = errno;
        return -1;
    }
    return 0;
}

/* Says, in one line, why the digests did not match: the base or the
 * result. old is NULL for modeld decode. */
static void report_mismatch(const char *old_path,
                            const struct fileio_map *old,
                            const struct fileio_map *delta)
{
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    char have_hex[PROTO_HEX_SIZE];
    struct proto_hasher *h = NULL;

    if (proto_coded_kind(delta->data, delta->len, from_hex, to_hex) ==
        PROTO_CODED_UNKNOWN) {
        fprintf(stderr, "%s: digest mismatch\n", prog);
        return;
    }
    if (old && from_hex[0]) {
        h = proto_hasher_new();
        if (!h || proto_hasher_update(h, old->data, old->len) != PROTO_OK ||
            proto_hasher_final(h, have_hex) != PROTO_OK) {
            fprintf(stderr, "%s: digest mismatch\n", prog);
            proto_hasher_free(h);
            return;
        }
        proto_hasher_free(h);
        if (strcmp(have_hex, from_hex) != 0) {
            fprintf(stderr,
                    "%s: %s is not the delta's base: have sha256:%s, "
                    "delta wants sha256:%s\n",
                    prog, old_path, have_hex, from_hex);
            return;
        }
    }
    fprintf(stderr,
            "%s: the result is not sha256:%s named by the input; the input "
            "is corrupt\n",
            prog, to_hex);
}

/*
 * The SHA-256 of a file read with read(2): its pages stay in the page
 * cache instead of being faulted into this process through a mapping.
 * 0, or -1 with errno.
 */
static int hash_piece(void *ctx, const void *data, size_t len)
{
    return proto_hasher_update(ctx, data, len) == PROTO_OK ? 0 : -1;
}

static int hash_file(const char *path, char out_hex[PROTO_HEX_SIZE])
{
    enum { PIECE = 64 * 1024 };
    unsigned char *buf = malloc(PIECE);
    struct proto_hasher *h = proto_hasher_new();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1, err = ENOMEM;

    if (fd < 0)
        err = errno;
    if (buf && h && fd >= 0) {
        int got = fileio_read_each(fd, buf, PIECE, hash_piece, h);

        if (got < 0)
            err = errno;
        else if (got == 0 && proto_hasher_final(h, out_hex) == PROTO_OK)
            rc = 0;
    }
    if (fd >= 0)
        close(fd);
    proto_hasher_free(h);
    free(buf);
    errno = err;
    return rc;
}

/* The streaming decoder as fileio_read_each's piece handler. */
struct feed {
    struct proto_tensor_dec *d;
    enum proto_status st;
};

static int feed_piece(void *ctx, const void *data, size_t len)
{
    struct feed *f = ctx;

    f->st = proto_tensor_dec_feed(f->d, data, len);
    return f->st == PROTO_OK ? 0 : 1;
}

/*
 * The tensor codings read in pieces through the streaming decoder (only
 * the header page of the mapping is touched): memory stays at the
 * decoder's, whatever the delta's size. base_hex, when not NULL, is the
 * base's digest computed by hash_file: the decoder then reads through old
 * only the base ranges the delta uses.
 */
static enum proto_status stream_tensor(const void *old, size_t old_len,
                                       const char *base_hex, const char *path,
                                       struct file_sink *fs)
{
    enum { PIECE = 64 * 1024 };
    struct proto_tensor_dec *d = NULL;
    unsigned char *buf = malloc(PIECE);
    enum proto_status st = PROTO_NO_MEMORY;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (!buf || fd < 0)
        goto out;
    st = proto_tensor_dec_new(old, old_len, write_sink, fs, &d);
    if (st == PROTO_OK && base_hex)
        st = proto_tensor_dec_trust_base(d, base_hex);
    if (st == PROTO_OK) {
        struct feed f = { d, PROTO_OK };

        switch (fileio_read_each(fd, buf, PIECE, feed_piece, &f)) {
        case 0:
            st = proto_tensor_dec_finish(d);
            break;
        case 1:
            st = f.st;
            break;
        default:
            st = PROTO_BAD_INPUT;
            break;
        }
    }
out:
    proto_tensor_dec_free(d);
    if (fd >= 0)
        close(fd);
    free(buf);
    return st;
}

/* Applies (old_path given) or decodes, and writes; want_hex, when not
 * NULL, is the digest the result must have besides the one the input
 * names. Returns the exit code. */
static int patch(const char *old_path, const char *delta_path,
                 const char *out_path, const char *want_hex)
{
    struct fileio_map old = { NULL, 0 }, delta = { NULL, 0 };
    struct file_sink fs = { -1, 0, NULL };
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    char have_hex[PROTO_HEX_SIZE], base_hex[PROTO_HEX_SIZE];
    enum proto_coded_kind kind;
    struct fileio_tmp tmp = { -1, NULL };
    enum proto_status st;
    int code = 1;

    if ((old_path && map_file(old_path, &old) != 0) ||
        map_file(delta_path, &delta) != 0)
        goto out;
    kind = proto_coded_kind(delta.data, delta.len, from_hex, to_hex);
    if (old_path ? kind != PROTO_CODED_ZSTD_PATCH &&
                       kind != PROTO_CODED_TENSOR
                 : kind != PROTO_CODED_BG && kind != PROTO_CODED_ZSTD) {
        fprintf(stderr, "%s: %s is not a %s\n", prog, delta_path,
                old_path ? "delta (zstd-patch or modeld-tensor/1)"
                         : "model encoding (modeld-bg/1 or zstd)");
        goto out;
    }
    if (kind == PROTO_CODED_ZSTD && !want_hex) {
        fprintf(stderr, "%s: %s is plain zstd, which names no digest: give "
                        "--digest\n", prog, delta_path);
        goto out;
    }
    /* Only plain zstd names no digest: the other decoders hash what they
     * write and compare it with the digest the input names, so hashing
     * the output here too would be a second SHA-256 pass over it. */
    fs.hasher = kind == PROTO_CODED_ZSTD ? proto_hasher_new() : NULL;
    if (kind == PROTO_CODED_ZSTD && !fs.hasher) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (kind == PROTO_CODED_TENSOR && hash_file(old_path, base_hex) != 0) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, old_path,
                strerror(errno));
        goto out;
    }
    /* OUT gets the mode a plain create would give it. */
    if (fileio_tmp_open(&tmp, out_path, 0666) != 0) {
        fprintf(stderr, "%s: cannot create a file beside %s: %s\n", prog,
                out_path, strerror(errno));
        goto out;
    }
    fs.fd = tmp.fd;

    if (kind == PROTO_CODED_TENSOR || kind == PROTO_CODED_BG)
        st = stream_tensor(old.data, old.len,
                           kind == PROTO_CODED_TENSOR ? base_hex : NULL,
                           delta_path, &fs);
    else
        st = proto_coded_apply(old.data, old.len, delta.data, delta.len,
                               write_sink, &fs, NULL);
    /* The result's digest: the one the input names (its decoder checked
     * it) or, for plain zstd, the one hashed here. */
    if (fs.hasher) {
        if (st == PROTO_OK &&
            proto_hasher_final(fs.hasher, have_hex) != PROTO_OK)
            st = PROTO_NO_MEMORY;
    } else {
        memcpy(have_hex, to_hex, PROTO_HEX_SIZE);
    }
    if (st == PROTO_OK && want_hex && strcmp(have_hex, want_hex) != 0) {
        fprintf(stderr, "%s: the result is sha256:%s, not sha256:%s\n",
                prog, have_hex, want_hex ? want_hex : "");
        goto out;
    }
    switch (st) {
    case PROTO_OK:
        break;
    case PROTO_MISMATCH:
        report_mismatch(old_path ? old_path : "", old_path ? &old : NULL,
                        &delta);
        goto out;
    case PROTO_BAD_INPUT:
        fprintf(stderr,
                "%s: %s is not valid (bad header, corrupt or "
                "truncated)\n", prog,
                delta_path);
        goto out;
    case PROTO_SINK_FAILED:
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, tmp.path,
                strerror(fs.err));
        goto out;
    case PROTO_NO_MEMORY:
    default:
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (fileio_tmp_commit(&tmp, out_path, false) != 0) {
        fprintf(stderr, "%s: cannot put %s in place (sync, rename): %s\n",
                prog, out_path, strerror(errno));
        goto out;
    }
    code = 0;
out:
    fileio_tmp_discard(&tmp);
    proto_hasher_free(fs.hasher);
    fileio_unmap(&delta);
    fileio_unmap(&old);
    return code;
}

int cmd_patch(int argc, char **argv)
{
    const char *paths[3];
    size_t path_count = 0;
    bool options_done = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!options_done && (strcmp(a, "--help") == 0 ||
                              strcmp(a, "-h") == 0)) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!options_done && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "%s: unknown option %s\n%s", prog, a,
                    usage_text);
            return EXIT_USAGE;
        }
        if (path_count == ARRAY_SIZE(paths)) {
            fprintf(stderr, "%s: too many arguments\n%s", prog,
                    usage_text);
            return EXIT_USAGE;
        }
        paths[path_count++] = a;
    }
    if (path_count != ARRAY_SIZE(paths)) {
        fprintf(stderr, "%s: needs OLD, DELTA and OUT\n%s", prog,
                usage_text);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < path_count; i++) {
        if (paths[i][0] == '\0') {
            fprintf(stderr, "%s: empty path\n%s", prog, usage_text);
            return EXIT_USAGE;
        }
    }
    return patch(paths[0], paths[1], paths[2], NULL);
}

int cmd_decode(int argc, char **argv)
{
    const char *paths[2];
    size_t path_count = 0;
    const char *digest = NULL;
    char want[PROTO_HEX_SIZE];
    bool options_done = false;

    prog = "modeld decode";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!options_done && (strcmp(a, "--help") == 0 ||
                              strcmp(a, "-h") == 0)) {
            fputs(decode_usage_text, stdout);
            return 0;
        }
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (!options_done && strcmp(a, "--digest") == 0 && i + 1 < argc) {
            digest = argv[++i];
            continue;
        }
        if (!options_done && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "%s: unknown option %s\n%s", prog, a,
                    decode_usage_text);
            return EXIT_USAGE;
        }
        if (path_count == ARRAY_SIZE(paths) || a[0] == '\0') {
            fprintf(stderr, "%s: needs IN and OUT\n%s", prog,
                    decode_usage_text);
            return EXIT_USAGE;
        }
        paths[path_count++] = a;
    }
    if (path_count != ARRAY_SIZE(paths)) {
        fprintf(stderr, "%s: needs IN and OUT\n%s", prog, decode_usage_text);
        return EXIT_USAGE;
    }
    if (digest &&
        proto_digest_parse(digest, strlen(digest), want) != PROTO_OK) {
        fprintf(stderr, "%s: --digest wants sha256:<64 lowercase hex>\n%s",
                prog, decode_usage_text);
        return EXIT_USAGE;
    }
    return patch(NULL, paths[0], paths[1], digest ? want : NULL);
}
