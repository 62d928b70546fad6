/*
 * The small file helpers every writer and reader of files shares: write
 * everything, fsync a directory, map a whole file. One copy each, for
 * store/ (blobs, deltas, compressed copies) and for the commands in
 * server/ (patch, demo). They report with errno; callers say what failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

int store_file_put(const char *path, const void *data, size_t len,
                   unsigned mode, bool exclusive)
{
    static const char suffix[] = ".tmp-XXXXXX";
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof(suffix));
    mode_t mask;
    int fd = -1, rc = -1, err;

    if (!tmp)
        return -1;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof(suffix));
    fd = mkstemp(tmp);
    if (fd < 0) {
        tmp[0] = '\0';
        goto out;
    }
    mask = umask(0);
    umask(mask);
    if (fchmod(fd, (mode_t)mode & ~mask) != 0 ||
        store_file_write_all(fd, data, len) != 0 || fsync(fd) != 0)
        goto out;
    rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto out;
    rc = exclusive ? link(tmp, path) : rename(tmp, path);
    if (rc != 0)
        goto out;
    if (!exclusive)
        tmp[0] = '\0';           /* it is path now */
    rc = store_file_fsync_parent(path);
out:
    err = errno;
    if (fd >= 0)
        close(fd);
    if (tmp[0])
        unlink(tmp);
    free(tmp);
    errno = err;
    return rc;
}

/* What an empty file maps to: a valid pointer, nothing behind it. */
static const unsigned char empty_map[1];

int store_file_write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

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
    }
    return 0;
}

int store_file_fsync_dir(const char *dir)
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

int store_file_fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int rc, err;

    if (!slash)
        return store_file_fsync_dir(".");
    if (slash == path)
        return store_file_fsync_dir("/");
    dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return -1;
    rc = store_file_fsync_dir(dir);
    err = errno;
    free(dir);
    errno = err;
    return rc;
}

int store_file_map_fd(int fd, struct store_file_map *out)
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

void store_file_unmap(struct store_file_map *m)
{
    if (m->data && m->data != empty_map)
        munmap((void *)(uintptr_t)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}
