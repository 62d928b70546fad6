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
 * holds max_bytes bytes or more. What was read before a failure is wiped
 * (the file may be a secret).
 */
char *file_read_small(const char *path, size_t max_bytes, size_t *out_len);

/*
 * Frees a buffer that held a secret (an admin token, a private key) after
 * wiping its first len bytes with explicit_bzero, which the compiler may
 * not drop as a dead store before free. NULL does nothing.
 */
void file_secret_free(void *buf, size_t len);

/*
 * The SHA-256 of a bearer token (the admin token): token with surrounding
 * whitespace dropped, at least min_len characters. From memory (the
 * environment) or from the file path (read whole, at most max_bytes, and
 * wiped on every path). 0; -1 with errno when the file cannot be read;
 * -2 when the token is shorter than min_len; -3 when hashing fails.
 */
int file_token_sha256(const char *token, size_t min_len,
                      unsigned char out[32]);
int file_token_sha256_read(const char *path, size_t max_bytes,
                           size_t min_len, unsigned char out[32]);

#endif
