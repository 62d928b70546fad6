/*
 * The small file helpers every writer and reader of files shares (see
 * fileio.h): write everything, read to the end, fsync a directory, put a
 * file crash-safely, map a whole file. The one copy of each in the tree,
 * for store/, the commands in server/ and the UE library in client/
 * (tests/source_rules.sh keeps it so). They report with errno; callers say what failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio/fileio.h"

int fileio_tmp_open(struct fileio_tmp *t, const char *path, unsigned mode)
{
    static const char suffix[] = ".tmp-XXXXXX";
    size_t plen = strlen(path);
    mode_t mask;
    int err;

    t->fd = -1;
    t->path = malloc(plen + sizeof(suffix));
    if (!t->path)
        return -1;
    memcpy(t->path, path, plen);
    memcpy(t->path + plen, suffix, sizeof(suffix));
    t->fd = mkstemp(t->path);
    if (t->fd < 0) {
        err = errno;
        free(t->path);
        t->path = NULL;          /* not ours: nothing to unlink */
        errno = err;
        return -1;
    }
    /* mkstemp made it 0600 less the umask; another mode has to read the
     * umask, which takes setting it for a moment (process-wide: the UE
     * library's 0600 never does). */
    if (mode != 0600) {
        mask = umask(0);
        umask(mask);
        if (fchmod(t->fd, (mode_t)mode & ~mask) != 0) {
            fileio_tmp_discard(t);
            return -1;
        }
    }
    return 0;
}

int fileio_tmp_commit(struct fileio_tmp *t, const char *path, bool exclusive)
{
    int rc = fsync(t->fd);

    if (close(t->fd) != 0 && rc == 0)
        rc = -1;
    t->fd = -1;
    if (rc == 0)
        rc = exclusive ? link(t->path, path) : rename(t->path, path);
    if (rc == 0 && !exclusive) {
        free(t->path);           /* it is path now */
        t->path = NULL;
    }
    if (rc == 0)
        rc = fileio_fsync_parent(path);
    fileio_tmp_discard(t);
    return rc;
}

void fileio_tmp_discard(struct fileio_tmp *t)
{
    int err = errno;

    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    if (t->path)
        unlink(t->path);
    free(t->path);
    t->path = NULL;
    errno = err;
}

int fileio_put(const char *path, const void *data, size_t len,
               unsigned mode, bool exclusive)
{
    struct fileio_tmp t;

    if (fileio_tmp_open(&t, path, mode) != 0)
        return -1;
    if (fileio_write_all(t.fd, data, len) != 0) {
        fileio_tmp_discard(&t);
        return -1;
    }
    return fileio_tmp_commit(&t, path, exclusive);
}

/* What an empty file maps to: a valid pointer, nothing behind it. */
static const unsigned char empty_map[1];

/* Both write-alls: at the file position when at_pos, else at off. */
static int
write_loop(int fd, const void *data, size_t len, bool at_pos, uint64_t off)
{
    const unsigned char *p = data;

    while (len > 0) {
        ssize_t n = at_pos ? write(fd, p, len)
                           : pwrite(fd, p, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {             /* never for a file; do not spin */
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int fileio_write_all(int fd, const void *data, size_t len)
{
    return write_loop(fd, data, len, true, 0);
}

int fileio_pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
    if (off > (uint64_t)INT64_MAX - len) {
        errno = EFBIG;
        return -1;
    }
    return write_loop(fd, data, len, false, off);
}

int fileio_read_each(int fd, void *buf, size_t buf_len,
                     int (*fn)(void *ctx, const void *data, size_t len),
                     void *ctx)
{
    for (;;) {
        ssize_t n = read(fd, buf, buf_len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (fn(ctx, buf, (size_t)n) != 0)
            return 1;
    }
}

int fileio_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc, err;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    err = errno;
    close(fd);
    errno = err;
    return rc;
}

int fileio_fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int rc, err;

    if (!slash)
        return fileio_fsync_dir(".");
    if (slash == path)
        return fileio_fsync_dir("/");
    dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return -1;
    rc = fileio_fsync_dir(dir);
    err = errno;
    free(dir);
    errno = err;
    return rc;
}

int fileio_map_fd(int fd, struct fileio_map *out)
{
    struct stat sb;
    void *p;

    if (fstat(fd, &sb) != 0)
        return -1;
    if (!S_ISREG(sb.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        errno = EFBIG;
        return -1;
    }
    if (sb.st_size == 0) {
        out->data = empty_map;
        out->len = 0;
        return 0;
    }
    p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return -1;
    out->data = p;
    out->len = (size_t)sb.st_size;
    return 0;
}

int fileio_map_path(const char *path, struct fileio_map *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc, err;

    if (fd < 0)
        return -1;
    rc = fileio_map_fd(fd, out);
    err = errno;
    close(fd);
    errno = err;
    return rc;
}

void fileio_unmap(struct fileio_map *m)
{
    if (m->data && m->data != empty_map)
        munmap((void *)(uintptr_t)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}
