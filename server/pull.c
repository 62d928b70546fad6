/*
 * Answers from a pull-through in flight (edge mode, server/edge.h): a
 * request for a blob or delta that the edge is fetching from its origin
 * waits for the origin's size with its connection suspended, then streams
 * the bytes as they arrive. No HTTP thread waits: a connection with
 * nothing to send is suspended (MHD_ALLOW_SUSPEND_RESUME) and the fetch
 * thread resumes it when the flight moves. What the edge, the handlers
 * and the store do with the bytes is theirs; this file only paces them.
 *
 * Safety: the bytes before the last are sent unverified; the last byte of
 * every answer (whole or ranged) waits until the flight has hashed the
 * whole file and found the digest (a delta: applied it). When it fails instead (wrong digest, origin cut
 * short), the answer ends with an error, which makes libmicrohttpd close
 * the connection before its declared length: a client or a cache in front
 * (nginx stores only complete answers) never takes wrong bytes for a
 * complete answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/http.h"

/* Bytes read per call while streaming: the page cache's, not the
 * network's, so small; per answer in flight. */
#define PULL_BLOCK_BYTES (64u << 10)

static void
park(void *arg)
{
    MHD_suspend_connection(arg);
}

static void
wake(void *arg)
{
    MHD_resume_connection(arg);
}

enum pull_step
pull_follow(struct MHD_Connection *c, struct request *rq,
            struct edge_view *out_view)
{
    for (;;) {
        if (edge_pull_wait(rq->pull, rq->pull_seen, park, wake, c,
                           out_view))
            return PULL_PARKED;
        rq->pull_seen = out_view->version;
        if (out_view->done)
            return PULL_DONE;
        if (out_view->size_known)
            return PULL_SIZED;
    }
}

struct pull_body {
    struct app *app;
    struct edge *edge;
    struct edge_pull *pull;
    struct MHD_Connection *c;
    uint64_t start, end;          /* the bytes answered, [start, end) */
    struct edge_view v;           /* the flight as last seen (version 0:
                                     not yet) */
    bool paused;                  /* parked: the progress watch paused */
};

/* While the answer waits for the origin, the client's progress is not
 * what is slow. */
static void
park_body(void *arg)
{
    struct pull_body *b = arg;

    b->paused = true;
    http_transfer_pause(b->c, b->app, true);
    MHD_suspend_connection(b->c);
}

static void
wake_body(void *arg)
{
    struct pull_body *b = arg;

    MHD_resume_connection(b->c);
}

static ssize_t
pull_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct pull_body *b = cls;
    uint64_t at = b->start + pos, limit = 0;
    ssize_t n;

    /* What the last view allows first; a new view only when it allows
     * nothing more. */
    for (;;) {
        if (b->v.version != 0) {
            /* The answer's last byte only once the whole file verified. */
            if (b->v.verified) {
                limit = b->end;
            } else if (b->v.done) {
                edge_count_cut(b->edge);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            } else {
                limit = b->v.arrived < b->end ? b->v.arrived : b->end - 1;
            }
            if (at < limit)
                break;
        }
        if (edge_pull_wait(b->pull, b->v.version, park_body, wake_body, b,
                           &b->v))
            return 0;             /* suspended; called again on resume */
    }
    if (b->paused) {
        b->paused = false;
        http_transfer_pause(b->c, b->app, false);
    }
    if (max > limit - at)
        max = (size_t)(limit - at);
    do
        n = pread(b->v.fd, buf, max, (off_t)at);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void
pull_body_free(void *cls)
{
    struct pull_body *b = cls;

    edge_pull_release(b->pull);
    free(b);
}

struct MHD_Response *
pull_response(struct MHD_Connection *c, struct request *rq, uint64_t start,
              uint64_t len)
{
    struct pull_body *b = malloc(sizeof(*b));
    struct MHD_Response *resp;

    if (!b)
        return NULL;
    b->app = rq->app;
    b->edge = rq->app->edge;
    b->paused = false;
    b->pull = rq->pull;
    b->c = c;
    b->start = start;
    b->end = start + len;
    b->v.version = 0;             /* the first read looks at once */
    resp = MHD_create_response_from_callback(len, PULL_BLOCK_BYTES,
                                             pull_read, b, pull_body_free);
    if (!resp) {
        free(b);
        return NULL;
    }
    rq->pull = NULL;
    edge_count_early(b->edge);
    return resp;
}
