/*
 * Whole-file reads of small configuration files. Client strings never
 * reach here: every path comes from the config or the command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

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
    file_secret_free(buf, len);
    close(fd);
    errno = err;
    return NULL;
}

void
file_secret_free(void *buf, size_t len)
{
    if (!buf)
        return;
    explicit_bzero(buf, len);
    free(buf);
}

int
file_token_sha256(const char *token, size_t min_len, unsigned char out[32])
{
    size_t start = 0, end = strlen(token);
    unsigned int len = 0;

    while (start < end && strchr(" \t\r\n", token[start]))
        start++;
    while (end > start && strchr(" \t\r\n", token[end - 1]))
        end--;
    if (end - start < min_len)
        return -2;
    if (!EVP_Digest(token + start, end - start, out, &len, EVP_sha256(),
                    NULL) ||
        len != 32)
        return -3;
    return 0;
}

int
file_token_sha256_read(const char *path, size_t max_bytes, size_t min_len,
                       unsigned char out[32])
{
    size_t len = 0;
    char *buf = file_read_small(path, max_bytes, &len);
    int rc;

    if (!buf)
        return -1;
    rc = file_token_sha256(buf, min_len, out);
    file_secret_free(buf, len);
    return rc;
}
