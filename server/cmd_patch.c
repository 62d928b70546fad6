/*
 * `modeld patch OLD DELTA OUT`: applies a delta served by /v1/deltas to the
 * base model a UE holds and writes the target atomically: a temporary file
 * next to OUT, fsync, rename over OUT, fsync of the directory. OUT is left
 * untouched unless the result is exactly the model the delta names. The
 * format itself (header, zstd frame, digest checks) is proto/delta.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/proto.h"
#include "server/commands.h"
#include "store/store.h"

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: modeld patch OLD DELTA OUT\n"
    "\n"
    "Applies DELTA (from GET /v1/deltas/sha256:FROM/sha256:TO) to OLD and\n"
    "writes the result to OUT atomically. Checks that OLD's SHA-256 is FROM\n"
    "and that the result's is TO; on any failure OUT is left untouched.\n"
    "The same delta also applies with stock zstd:\n"
    "  zstd -d --long=31 --patch-from=OLD DELTA -o OUT\n"
    "\n"
    "Exit status: 0 OUT written and verified, 1 failure, 2 usage error.\n";

struct file_sink {
    int fd;
    int err; /* errno of the failed write */
};

static int map_file(const char *path, struct store_file_map *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc, err;

    if (fd < 0) {
        fprintf(stderr, "modeld patch: cannot open %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    rc = store_file_map_fd(fd, out);
    err = errno;
    close(fd);
    if (rc != 0)
        fprintf(stderr, "modeld patch: cannot map %s: %s\n", path,
                err == EINVAL ? "not a regular file" : strerror(err));
    return rc;
}

static int write_sink(void *ctx, const void *data, size_t len)
{
    struct file_sink *fs = ctx;

    if (store_file_write_all(fs->fd, data, len) != 0) {
        fs->err = errno;
        return -1;
    }
    return 0;
}

/* Says, in one line, why the digests did not match: the base or the
 * result. */
static void report_mismatch(const char *old_path, const struct store_file_map *old,
                            const struct store_file_map *delta)
{
    char from_hex[PROTO_HEX_SIZE], to_hex[PROTO_HEX_SIZE];
    char have_hex[PROTO_HEX_SIZE];
    struct proto_hasher *h = proto_hasher_new();

    if (!h || proto_delta_header_parse(delta->data, delta->len, from_hex,
                                       to_hex) != PROTO_OK ||
        proto_hasher_update(h, old->data, old->len) != PROTO_OK ||
        proto_hasher_final(h, have_hex) != PROTO_OK) {
        fprintf(stderr, "modeld patch: digest mismatch\n");
    } else if (strcmp(have_hex, from_hex) != 0) {
        fprintf(stderr,
                "modeld patch: %s is not the delta's base: have sha256:%s, "
                "delta wants sha256:%s\n",
                old_path, have_hex, from_hex);
    } else {
        fprintf(stderr,
                "modeld patch: the result is not sha256:%s named by the "
                "delta; the delta is corrupt\n",
                to_hex);
    }
    proto_hasher_free(h);
}

/* Applies and writes; returns the exit code. */
static int patch(const char *old_path, const char *delta_path,
                 const char *out_path)
{
    struct store_file_map old = { NULL, 0 }, delta = { NULL, 0 };
    struct file_sink fs = { -1, 0 };
    char *tmp = NULL;
    size_t out_len = strlen(out_path);
    enum proto_status st;
    mode_t mask;
    int code = 1;

    if (map_file(old_path, &old) != 0 || map_file(delta_path, &delta) != 0)
        goto out;
    tmp = malloc(out_len + sizeof(".XXXXXX"));
    if (!tmp) {
        fprintf(stderr, "modeld patch: out of memory\n");
        goto out;
    }
    memcpy(tmp, out_path, out_len);
    memcpy(tmp + out_len, ".XXXXXX", sizeof(".XXXXXX"));
    fs.fd = mkstemp(tmp);
    if (fs.fd < 0) {
        fprintf(stderr, "modeld patch: cannot create a file beside %s: %s\n",
                out_path, strerror(errno));
        free(tmp);
        tmp = NULL; /* nothing to unlink */
        goto out;
    }
    /* mkstemp makes 0600; give OUT the mode a plain create would. */
    mask = umask(0);
    umask(mask);
    (void)fchmod(fs.fd, 0666 & ~mask);

    st = proto_delta_apply(old.data, old.len, delta.data, delta.len,
                           write_sink, &fs);
    switch (st) {
    case PROTO_OK:
        break;
    case PROTO_MISMATCH:
        report_mismatch(old_path, &old, &delta);
        goto out;
    case PROTO_BAD_INPUT:
        fprintf(stderr,
                "modeld patch: %s is not a valid delta (bad header, corrupt "
                "or truncated)\n",
                delta_path);
        goto out;
    case PROTO_SINK_FAILED:
        fprintf(stderr, "modeld patch: cannot write %s: %s\n", tmp,
                strerror(fs.err));
        goto out;
    case PROTO_NO_MEMORY:
    default:
        fprintf(stderr, "modeld patch: out of memory\n");
        goto out;
    }
    if (fsync(fs.fd) != 0) {
        fprintf(stderr, "modeld patch: cannot sync %s: %s\n", tmp,
                strerror(errno));
        goto out;
    }
    if (close(fs.fd) != 0) {
        fs.fd = -1;
        fprintf(stderr, "modeld patch: cannot write %s: %s\n", tmp,
                strerror(errno));
        goto out;
    }
    fs.fd = -1;
    if (rename(tmp, out_path) != 0) {
        fprintf(stderr, "modeld patch: cannot rename %s to %s: %s\n", tmp,
                out_path, strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL; /* it is OUT now */
    if (store_file_fsync_parent(out_path) != 0) {
        fprintf(stderr, "modeld patch: wrote %s but cannot sync its "
                        "directory: %s\n",
                out_path, strerror(errno));
        goto out;
    }
    code = 0;
out:
    if (fs.fd >= 0)
        close(fs.fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    store_file_unmap(&delta);
    store_file_unmap(&old);
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
            fprintf(stderr, "modeld patch: unknown option %s\n%s", a,
                    usage_text);
            return EXIT_USAGE;
        }
        if (path_count == ARRAY_SIZE(paths)) {
            fprintf(stderr, "modeld patch: too many arguments\n%s",
                    usage_text);
            return EXIT_USAGE;
        }
        paths[path_count++] = a;
    }
    if (path_count != ARRAY_SIZE(paths)) {
        fprintf(stderr, "modeld patch: needs OLD, DELTA and OUT\n%s",
                usage_text);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < path_count; i++) {
        if (paths[i][0] == '\0') {
            fprintf(stderr, "modeld patch: empty path\n%s", usage_text);
            return EXIT_USAGE;
        }
    }
    return patch(paths[0], paths[1], paths[2]);
}
