/*
 * One socket write per small HTTPS answer (see tls_out.h): a GnuTLS vec
 * push that can hold one push back and send it with the next.
 *
 * Measured with wrk -t2 -c64 on the demo select over TLS 1.3 (README,
 * HTTPS throughput): libmicrohttpd 0.9.75 made two sendmsg per answer,
 * one for the header record and one for the body record, where nginx
 * makes one write.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <gnutls/gnutls.h>

#include "server/tls_out.h"

/* A held push larger than this is sent at once: the header records of
 * this daemon's answers are a few hundred bytes. */
#define HOLD_MAX 2048
/* GnuTLS gathers at most 32 buffers per push; one more for what is held. */
#define IOV_MAX_OUT 64

struct tls_out {
    int fd;
    bool hold;              /* keep the next push back */
    size_t held_len;        /* bytes in held[] ... */
    size_t held_off;        /* ... of which these went out already */
    unsigned char held[HOLD_MAX];
};

static ssize_t
send_iov(int fd, struct iovec *iov, size_t n)
{
    struct msghdr msg;
    ssize_t r;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    do
        r = sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r;
}

/* The push of a detached session: its transport pointer is the fd. */
static ssize_t
fd_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    struct iovec v[IOV_MAX_OUT];
    size_t n = iovcnt < IOV_MAX_OUT ? (size_t)iovcnt : IOV_MAX_OUT;

    for (size_t i = 0; i < n; i++) {
        v[i].iov_base = iov[i].iov_base;
        v[i].iov_len = iov[i].iov_len;
    }
    return send_iov((int)(intptr_t)p, v, n);
}

ssize_t
tls_out_write(struct tls_out *o, const struct iovec *iov, int iovcnt)
{
    struct iovec v[IOV_MAX_OUT + 1];
    size_t n = 0, total = 0, pending = o->held_len - o->held_off;
    size_t cnt = iovcnt < IOV_MAX_OUT ? (size_t)iovcnt : IOV_MAX_OUT;
    ssize_t r;

    for (size_t i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    if (o->hold && pending == 0 && total <= HOLD_MAX) {
        /* Kept back: GnuTLS and libmicrohttpd see it as sent. */
        size_t at = 0;

        o->hold = false;
        for (size_t i = 0; i < cnt; i++) {
            memcpy(o->held + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        o->held_len = total;
        o->held_off = 0;
        return (ssize_t)total;
    }
    o->hold = false;
    if (pending) {
        v[n].iov_base = o->held + o->held_off;
        v[n].iov_len = pending;
        n++;
    }
    for (size_t i = 0; i < cnt; i++, n++) {
        v[n].iov_base = iov[i].iov_base;
        v[n].iov_len = iov[i].iov_len;
    }
    r = send_iov(o->fd, v, n);
    if (r < 0 || !pending)
        return r;
    if ((size_t)r < pending) {
        /* Not even what was held went out: GnuTLS keeps this push and
         * tries it again when the socket is writable. */
        o->held_off += (size_t)r;
        errno = EAGAIN;
        return -1;
    }
    o->held_len = o->held_off = 0;
    r -= (ssize_t)pending;
    if (r == 0 && total > 0) {
        errno = EAGAIN;
        return -1;
    }
    return r;
}

static ssize_t
out_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    return tls_out_write(p, iov, iovcnt);
}

struct tls_out *
tls_out_new(int fd)
{
    struct tls_out *o;

    if (fd < 0)
        return NULL;
    o = malloc(sizeof(*o));
    if (!o)
        return NULL;
    o->fd = fd;
    o->hold = false;
    o->held_len = o->held_off = 0;
    return o;
}

struct tls_out *
tls_out_attach(void *session, int fd)
{
    struct tls_out *o = session ? tls_out_new(fd) : NULL;

    if (!o)
        return NULL;
    /* The receive side stays the fd (GnuTLS's own recv). */
    gnutls_transport_set_ptr2(session, (gnutls_transport_ptr_t)(intptr_t)fd,
                              o);
    gnutls_transport_set_vec_push_function(session, out_push);
    return o;
}

void
tls_out_hold_next(struct tls_out *o)
{
    if (o)
        o->hold = true;
}

bool
tls_out_flush(struct tls_out *o)
{
    if (!o)
        return true;
    o->hold = false;
    while (o->held_off < o->held_len) {
        struct iovec v = {o->held + o->held_off, o->held_len - o->held_off};
        ssize_t r = send_iov(o->fd, &v, 1);

        if (r <= 0)
            return false;
        o->held_off += (size_t)r;
    }
    o->held_len = o->held_off = 0;
    return true;
}

void
tls_out_detach(struct tls_out *o, void *session)
{
    if (!o)
        return;
    tls_out_flush(o);
    if (session) {
        gnutls_transport_set_ptr2(session,
                                  (gnutls_transport_ptr_t)(intptr_t)o->fd,
                                  (gnutls_transport_ptr_t)(intptr_t)o->fd);
        gnutls_transport_set_vec_push_function(session, fd_push);
    }
    free(o);
}
