/*
 * One TLS record per small HTTPS answer.
 *
 * libmicrohttpd 0.9.75 sends a buffered answer over TLS with two
 * gnutls_record_send calls right after each other (mhd_send.c,
 * MHD_send_hdr_and_body_): the status line and headers, then the body.
 * GnuTLS seals each into its own record, so every small answer (a select,
 * a problem) cost two AEAD seals and two records, and the client two
 * record decryptions and four reads (an OpenSSL client reads a record's
 * 5-byte header, then its body) where nginx sends one record.
 *
 * This daemon defines gnutls_record_send itself (tls_out.c), so that
 * libmicrohttpd's calls come here; a session without a tls_out goes
 * straight to GnuTLS's gnutls_record_send2, which is what GnuTLS's own
 * gnutls_record_send does. After tls_out_hold_next(), the next send's
 * plaintext, when it is a complete header block, is kept back and sealed
 * into one record with the send that follows (the body). Nothing is sent
 * out of order: the header is only kept while no byte of the answer has
 * been given to GnuTLS.
 */
#ifndef SERVER_TLS_OUT_H
#define SERVER_TLS_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tls_out;

/* Makes session (a gnutls_session_t) send through a new tls_out (its
 * session pointer, gnutls_session_set_ptr). NULL when out of memory or
 * without a session: the session then sends as GnuTLS does, which is
 * correct, only two records an answer. */
struct tls_out *tls_out_attach(void *session);

/* Keeps the next send back to go out in one record with the one after
 * it. Call it only when another send follows for sure (a buffered answer
 * with a body, not HEAD: libmicrohttpd sends the body right after the
 * header). */
void tls_out_hold_next(struct tls_out *o);

/* Gives GnuTLS anything still kept back (a safety net: normally the body's
 * send took it). Returns true when nothing is left kept back (what GnuTLS
 * could not write yet, it sends before anything else). */
bool tls_out_flush(struct tls_out *o, void *session);

/* Detaches o from session (none when NULL) after a flush, and frees o. */
void tls_out_detach(struct tls_out *o, void *session);

/*
 * The send itself, for unit tests: record_send(session, data, len) stands
 * for gnutls_record_send2 (plaintext bytes taken, or a negative GnuTLS
 * error; GNUTLS_E_AGAIN: that record is queued, call again with NULL, 0).
 * Returns what gnutls_record_send would for (data, len).
 */
typedef ssize_t (*tls_out_record_fn)(void *session, const void *data,
                                     size_t len);
struct tls_out *tls_out_new(void);
void tls_out_free(struct tls_out *o);
ssize_t tls_out_send(struct tls_out *o, void *session, const void *data,
                     size_t len, tls_out_record_fn record_send);
bool tls_out_flush_with(struct tls_out *o, void *session,
                        tls_out_record_fn record_send);

#endif
