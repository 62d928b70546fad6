/*
 * HTTPS credentials that can be replaced while the daemon runs. The
 * certificate chain and key are handed to GnuTLS per handshake through
 * libmicrohttpd's certificate callback, so SIGHUP can load new files
 * without dropping a connection: handshakes after the reload use the new
 * pair, connections already up keep theirs.
 */
#ifndef SERVER_TLS_H
#define SERVER_TLS_H

#include <stddef.h>

/* Loads and checks (parses, key matches the certificate) a PEM pair and
 * makes it the current one. Returns 0, or -1 with a message in err. The
 * first call must come before the daemon starts. */
int tls_load(const char *cert_path, const char *key_path, char *err,
             size_t err_len);

/* The callback for MHD_OPTION_HTTPS_CERT_CALLBACK (a GnuTLS
 * gnutls_certificate_retrieve_function2). */
void *tls_cert_callback(void);

/* Frees every pair ever loaded; call after the daemon stopped. */
void tls_unload(void);

#endif
