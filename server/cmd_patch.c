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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/proto.h"
#include "server/commands.h"

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

/* A read-only view of a whole file; data is NULL for an empty file. */
struct mapped {
    const void *data;
    size_t len;
};

struct file_sink {
    int fd;
    int err; /* errno of the failed write */
};

static int map_file(const char *path, struct mapped *out)
{
    struct stat st;
    void *p;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        fprintf(stderr, "modeld patch: cannot open %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "modeld patch: cannot stat %s: %s\n", path,
                strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "modeld patch: %s is not a regular file\n", path);
        close(fd);
        return -1;
    }
    out->data = NULL;
    out->len = (size_t)st.st_size;
    if (out->len > 0) {
        p = mmap(NULL, out->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "modeld patch: cannot map %s: %s\n", path,
                    strerror(errno));
            close(fd);
            return -1;
        }
        (void)madvise(p, out->len, MADV_SEQUENTIAL);
        out->data = p;
    }
    close(fd);
    return 0;
}

static void unmap_file(struct mapped *m)
{
    if (m->data)
        munmap((void *)(uintptr_t)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

static int write_sink(void *ctx, const void *data, size_t len)
{
    struct file_sink *fs = ctx;
    const unsigned char *p = data;

    while (len > 0) {
        ssize_t n = write(fs->fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fs->err = n < 0 ? errno : EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Says, in one line, why the digests did not match: the base or the
 * result. */
static void report_mismatch(const char *old_path, const struct mapped *old,
                            const struct mapped *delta)
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

/* "dir/name" -> "dir", "name" -> ".", "/name" -> "/". */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int fsync_dir(const char *dir)
{
    int rc;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Applies and writes; returns the exit code. */
static int patch(const char *old_path, const char *delta_path,
                 const char *out_path)
{
    struct mapped old = { NULL, 0 }, delta = { NULL, 0 };
    struct file_sink fs = { -1, 0 };
    char *tmp = NULL, *dir = NULL;
    size_t out_len = strlen(out_path);
    enum proto_status st;
    mode_t mask;
    int code = 1;

    if (map_file(old_path, &old) != 0 || map_file(delta_path, &delta) != 0)
        goto out;
    tmp = malloc(out_len + sizeof(".XXXXXX"));
    dir = dir_of(out_path);
    if (!tmp || !dir) {
        fprintf(stderr, "modeld patch: out of memory\n");
        goto out;
    }
    memcpy(tmp, out_path, out_len);
    memcpy(tmp + out_len, ".XXXXXX", sizeof(".XXXXXX"));
    fs.fd = mkstemp(tmp);
    if (fs.fd < 0) {
        fprintf(stderr, "modeld patch: cannot create a file in %s: %s\n",
                dir, strerror(errno));
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
    if (fsync_dir(dir) != 0) {
        fprintf(stderr, "modeld patch: wrote %s but cannot sync %s: %s\n",
                out_path, dir, strerror(errno));
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
    free(dir);
    unmap_file(&delta);
    unmap_file(&old);
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
