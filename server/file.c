/*
 * Whole-file reads of small configuration files. Client strings never
 * reach here: every path comes from the config or the command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/file.h"

char *
file_read_small(const char *path, size_t max_bytes, size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0;
    ssize_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err;

    if (fd < 0)
        return NULL;
    buf = malloc(max_bytes + 1);
    if (!buf)
        goto fail;
    while (len < max_bytes &&
           ((n = read(fd, buf + len, max_bytes - len)) > 0 ||
            (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t)n : 0;
    if (n < 0)
        goto fail;
    if (len == max_bytes) {
        errno = EFBIG;
        goto fail;
    }
    buf[len] = '\0';
    close(fd);
    *out_len = len;
    return buf;
fail:
    err = errno;
    free(buf);
    close(fd);
    errno = err;
    return NULL;
}
