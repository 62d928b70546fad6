/*
 * One TLS record per small HTTPS answer (see tls_out.h): this daemon's
 * gnutls_record_send, which keeps an answer's header back, when asked
 * to, and seals it into one record with the body.
 *
 * Measured with wrk -t2 -c64 on the demo select over TLS 1.3 (README,
 * HTTPS throughput): libmicrohttpd 0.9.75 made two records per answer,
 * and wrk four reads to get them, where nginx makes one record.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "server/tls_out.h"

/* A header block larger than this is sent as it comes: this daemon's
 * headers are a few hundred bytes. */
#define HOLD_MAX 2048
/* The largest plaintext of one TLS record (RFC 8446, 5.1); GnuTLS takes
 * less when the peer asked for smaller records, and says so. */
#define RECORD_MAX 16384
#define TLS_OUT_MAGIC 0x746c736fu

struct tls_out {
    uint32_t magic;
    bool hold;        /* keep the next send back */
    bool queued;      /* GnuTLS took a record starting with held[] but
                         could not write it yet (GNUTLS_E_AGAIN) */
    size_t held_len;  /* plaintext kept back: reported sent, not yet
                         written to the socket */
    unsigned char held[HOLD_MAX];
};

struct tls_out *
tls_out_new(void)
{
    struct tls_out *o = calloc(1, sizeof(*o));

    if (o)
        o->magic = TLS_OUT_MAGIC;
    return o;
}

void
tls_out_free(struct tls_out *o)
{
    free(o);
}

static bool
is_retry(ssize_t r)
{
    return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED;
}

/*
 * A record of r plaintext bytes left: the held ones first, then the
 * caller's. Returns the caller's bytes in it; when it held only (part of)
 * what was kept back, the rest stays held and the caller is told to come
 * again.
 */
static ssize_t
took(struct tls_out *o, ssize_t r)
{
    size_t n = (size_t)r;

    if (n > o->held_len) {
        n -= o->held_len;
        o->held_len = 0;
        return (ssize_t)n;
    }
    memmove(o->held, o->held + n, o->held_len - n);
    o->held_len -= n;
    return GNUTLS_E_AGAIN;
}

ssize_t
tls_out_send(struct tls_out *o, void *session, const void *data, size_t len,
             tls_out_record_fn record_send)
{
    unsigned char rec[RECORD_MAX];
    size_t body;
    ssize_t r;

    if (o->queued) {
        /* GnuTLS wants the same call again; NULL, 0 means exactly that.
         * The record it finishes is the one that began with held[]. */
        r = record_send(session, NULL, 0);
        if (r <= 0)
            return r;
        o->queued = false;
        return took(o, r);
    }
    if (o->held_len > 0) {
        body = len < RECORD_MAX - o->held_len ? len : RECORD_MAX - o->held_len;
        memcpy(rec, o->held, o->held_len);
        if (body > 0)
            memcpy(rec + o->held_len, data, body);
        r = record_send(session, rec, o->held_len + body);
        if (is_retry(r)) {
            /* The record is sealed and queued inside GnuTLS. */
            o->queued = true;
            return r;
        }
        if (r <= 0)
            return r;
        return took(o, r);
    }
    if (o->hold) {
        o->hold = false;
        /* Only a complete header block waits: a send that also carries
         * the body (another libmicrohttpd) goes out now. */
        if (len >= 4 && len <= HOLD_MAX &&
            memcmp((const char *)data + len - 4, "\r\n\r\n", 4) == 0) {
            memcpy(o->held, data, len);
            o->held_len = len;
            return (ssize_t)len;
        }
    }
    return record_send(session, data, len);
}

bool
tls_out_flush_with(struct tls_out *o, void *session,
                   tls_out_record_fn record_send)
{
    if (!o)
        return true;
    o->hold = false;
    while (o->held_len > 0 && !o->queued) {
        ssize_t r = record_send(session, o->held, o->held_len);

        if (is_retry(r))
            o->queued = true;
        else if (r <= 0)
            return false;
        else
            (void)took(o, r);
    }
    return o->held_len == 0;
}

static ssize_t
gnutls_send(void *session, const void *data, size_t len)
{
    return gnutls_record_send2(session, data, len, 0, 0);
}

/*
 * Takes the place of GnuTLS's gnutls_record_send for the whole process
 * (the executable's definition comes first in symbol lookup, so
 * libmicrohttpd's calls land here). GnuTLS's own is gnutls_record_send2
 * with no padding and no flags, which is what every session without a
 * tls_out, or with nothing to hold, gets.
 */
ssize_t
gnutls_record_send(gnutls_session_t session, const void *data,
                   size_t data_size)
{
    struct tls_out *o = gnutls_session_get_ptr(session);

    if (!o || o->magic != TLS_OUT_MAGIC ||
        (!o->hold && o->held_len == 0 && !o->queued))
        return gnutls_record_send2(session, data, data_size, 0, 0);
    return tls_out_send(o, session, data, data_size, gnutls_send);
}

struct tls_out *
tls_out_attach(void *session)
{
    struct tls_out *o;

    if (!session)
        return NULL;
    o = tls_out_new();
    if (o)
        gnutls_session_set_ptr(session, o);
    return o;
}

void
tls_out_hold_next(struct tls_out *o)
{
    if (o)
        o->hold = true;
}

bool
tls_out_flush(struct tls_out *o, void *session)
{
    return !session || tls_out_flush_with(o, session, gnutls_send);
}

void
tls_out_detach(struct tls_out *o, void *session)
{
    if (!o)
        return;
    if (session) {
        tls_out_flush(o, session);
        if (gnutls_session_get_ptr(session) == o)
            gnutls_session_set_ptr(session, NULL);
    }
    tls_out_free(o);
}
