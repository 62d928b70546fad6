/*
 * One socket write per small HTTPS answer.
 *
 * libmicrohttpd 0.9.75 sends a buffered answer over TLS with two
 * gnutls_record_send calls, the status line and headers, then the body;
 * GnuTLS pushes each record with its own sendmsg, so every small answer
 * (a select, a problem) costs two system calls, two TCP segments and two
 * wake-ups of the client. These functions take over the GnuTLS push of a
 * connection's session: after tls_out_hold_next(), the next push (the
 * header record) is kept back and goes out in one sendmsg with the push
 * after it (the body record). Every byte still leaves through the same
 * function in the order GnuTLS produced it, so nothing can overtake what
 * is held (a close_notify after a held header goes out behind it).
 */
#ifndef SERVER_TLS_OUT_H
#define SERVER_TLS_OUT_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

struct tls_out;

/* Takes over the push of session (a gnutls_session_t whose transport is
 * the socket fd). NULL when out of memory: the session keeps GnuTLS's own
 * push, which is correct, only not coalesced. */
struct tls_out *tls_out_attach(void *session, int fd);

/* The next push is held back to go out with the one after it. Call it
 * only when another push follows for sure (a buffered answer with a
 * body: libmicrohttpd sends the body right after the header). */
void tls_out_hold_next(struct tls_out *o);

/* Sends anything still held (a safety net: normally the next push took
 * it). Returns true when nothing is left held. */
bool tls_out_flush(struct tls_out *o);

/* Gives the session back a plain push on its fd (none when session is
 * NULL) and frees o. */
void tls_out_detach(struct tls_out *o, void *session);

/* The push itself, for a tls_out made by tls_out_new (unit tests): like
 * sendmsg on the fd, or keeps the data back after tls_out_hold_next.
 * Returns the bytes taken, or -1 with errno (EAGAIN: nothing of this
 * call went out, call again with the same data). */
struct tls_out *tls_out_new(int fd);
ssize_t tls_out_write(struct tls_out *o, const struct iovec *iov,
                      int iovcnt);

#endif
