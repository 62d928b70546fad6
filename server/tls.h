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

/* Writes a warning to buf and returns it when the current leaf
 * certificate is not valid at time now (expired or not yet valid);
 * NULL when it is, or when no pair is loaded. Clients refuse such a
 * certificate, but the daemon still serves it: an operator may be
 * replacing it. */
const char *tls_validity_warning(long long now, char *buf, size_t len);

/* The callback for MHD_OPTION_HTTPS_CERT_CALLBACK (a GnuTLS
 * gnutls_certificate_retrieve_function2). */
void *tls_cert_callback(void);

/* Frees every pair ever loaded; call after the daemon stopped. */
void tls_unload(void);

#endif
