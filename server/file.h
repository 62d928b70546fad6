/*
 * Reading the daemon's own small files (admin token, TLS certificate and
 * key) whole, with a bound.
 */
#ifndef SERVER_FILE_H
#define SERVER_FILE_H

#include <stddef.h>

/*
 * Reads path whole into a malloc'd, NUL-terminated buffer (caller frees)
 * and writes its length. NULL with errno on failure; EFBIG when the file
 * holds max_bytes bytes or more.
 */
char *file_read_small(const char *path, size_t max_bytes, size_t *out_len);

#endif
