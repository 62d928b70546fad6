/*
 * The byte path: GET/HEAD/PUT /v1/blobs/sha256:{hex} and GET/HEAD
 * /v1/deltas/sha256:{from}/sha256:{to}. Bytes are immutable and named by
 * digest, so every answer is cacheable forever. Bodies are served from file
 * descriptors (sendfile on plain HTTP), or at an edge from a pull-through
 * in flight (server/pull.c); uploads were streamed to the store while they
 * arrived, and this handler only finishes them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "server/http.h"
#include "server/log.h"

#define CACHE_FOREVER "public, max-age=31536000, immutable"

/* One stored file to serve, and the representation's validators. */
struct file_answer {
    int fd;
    uint64_t size;
    int64_t mtime_s;
    char etag[160];
    const char *encoding;        /* "zstd" or NULL */
    bool vary;                   /* Vary: Accept-Encoding */
    bool pull;                   /* the body comes from rq->pull (edge),
                                    fd is -1 */
};

static void
http_date(int64_t t, char out[64])
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 64, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void
add_validators(struct MHD_Response *resp, const struct file_answer *fa)
{
    char date[64];

    http_date(fa->mtime_s, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, fa->etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            CACHE_FOREVER);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (fa->vary)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
                                "Accept-Encoding");
}

/* Does If-Range allow the Range? An entity tag must match strongly; a date
 * must equal Last-Modified exactly (RFC 9110 13.1.5). */
static bool
if_range_holds(const char *if_range, const struct file_answer *fa)
{
    char date[64];

    if (!if_range)
        return true;
    if (if_range[0] == '"')
        return strcmp(if_range, fa->etag) == 0;
    http_date(fa->mtime_s, date);
    return strcmp(if_range, date) == 0;
}

/*
 * Over TLS the kernel cannot send the file (no sendfile into an encrypted
 * stream; no kernel TLS here), so libmicrohttpd reads it into user space:
 * its own fd responses read MHD_FILE_READ_BLOCK_SIZE (4 KiB) at a time,
 * one read and one small TLS record per 4 KiB. TLS_FILE_BLOCK_BYTES per
 * read instead: 16 full 16 KiB records per read(). The buffer is per
 * download in flight, so this bounds the memory of TLS downloads at
 * 256 KiB each.
 */
#define TLS_FILE_BLOCK_BYTES (256u << 10)

struct tls_file {
    int fd;
    uint64_t offset;              /* of the first byte served */
};

static ssize_t
tls_file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct tls_file *tf = cls;
    ssize_t n;

    do
        n = pread(tf->fd, buf, max, (off_t)(tf->offset + pos));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return n;
}

static void
tls_file_free(void *cls)
{
    struct tls_file *tf = cls;

    close(tf->fd);
    free(tf);
}

/* A response of len bytes of fd from start (taking fd): sendfile on
 * plain HTTP, large reads over TLS. */
static struct MHD_Response *
file_response(const struct app *app, int fd, uint64_t start, uint64_t len)
{
    struct tls_file *tf;
    struct MHD_Response *resp;

    if (!app->tls)
        return MHD_create_response_from_fd_at_offset64(len, fd,
                                                       (int64_t)start);
    tf = malloc(sizeof(*tf));
    if (!tf)
        return NULL;
    tf->fd = fd;
    tf->offset = start;
    resp = MHD_create_response_from_callback(len, TLS_FILE_BLOCK_BYTES,
                                             tls_file_read, tf,
                                             tls_file_free);
    if (!resp)
        free(tf);
    return resp;
}

/* Answers with fa's file (taking fa->fd): 304, 206, 416 or 200. */
static enum MHD_Result
serve_file(struct MHD_Connection *c, struct request *rq,
           struct file_answer *fa)
{
    const char *inm = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_RANGE);
    const char *if_range = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
    struct MHD_Response *resp;
    uint64_t start = 0, len = fa->size;
    enum proto_range_kind kind = PROTO_RANGE_FULL;
    char content_range[96];
    unsigned status = 200;

    if (inm && proto_etag_list_matches(inm, fa->etag)) {
        if (fa->fd >= 0)
            close(fa->fd);
        resp = MHD_create_response_from_buffer(0, NULL,
                                               MHD_RESPMEM_PERSISTENT);
        if (resp)
            add_validators(resp, fa);
        return http_queue(c, rq, 304, resp, 0);
    }
    if (range && !fa->encoding && if_range_holds(if_range, fa))
        kind = proto_range_parse(range, fa->size, &start, &len);
    if (kind == PROTO_RANGE_UNSATISFIABLE) {
        struct proto_error err;
        char *body;
        size_t blen;

        if (fa->fd >= 0)
            close(fa->fd);
        proto_error_set(&err, PROTO_ERR_RANGE_NOT_SATISFIABLE, "Range",
                        "Range: no byte of it lies within the %" PRIu64
                        " bytes of this resource",
                        fa->size);
        body = proto_problem_write(&err);
        if (!body)
            return MHD_NO;
        blen = strlen(body);
        resp = MHD_create_response_from_buffer(blen, body,
                                               MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(body);
            return MHD_NO;
        }
        snprintf(content_range, sizeof(content_range), "bytes */%" PRIu64,
                 fa->size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE,
                                content_range);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/problem+json");
        add_validators(resp, fa);
        return http_queue(c, rq, 416, resp, blen);
    }
    if (kind == PROTO_RANGE_PARTIAL)
        status = 206;
    else
        start = 0, len = fa->size;
    resp = fa->pull ? pull_response(c, rq, start, len)
                    : file_response(rq->app, fa->fd, start, len);
    if (!resp) {
        if (fa->fd >= 0)
            close(fa->fd);
        return MHD_NO;
    }
    if (status == 206) {
        snprintf(content_range, sizeof(content_range),
                 "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start,
                 start + len - 1, fa->size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE,
                                content_range);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    if (fa->encoding)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
                                fa->encoding);
    add_validators(resp, fa);
    return http_queue(c, rq, status, resp, len);
}

/* A coding named in the query (?format=, ?encoding=): 1 when it is name,
 * 0 when absent, -1 when something else. The value may come percent-
 * encoded ("%2F"): paths and queries are matched undecoded. */
static int
query_names(struct MHD_Connection *c, const char *key, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                key);
    const char *slash = strchr(name, '/');
    size_t head = slash ? (size_t)(slash - name) : strlen(name);

    if (!v)
        return 0;
    if (strcmp(v, name) == 0)
        return 1;
    if (slash && strncmp(v, name, head) == 0 &&
        strncasecmp(v + head, "%2F", 3) == 0 &&
        strcmp(v + head + 3, slash + 1) == 0)
        return 1;
    return -1;
}

/*
 * Edge mode: follows the pull-through rq->pull. Returns true with *out
 * when the request is answered or parked (its connection suspended: the
 * handler runs again when the flight moves), false once the flight has
 * ended and kept the file (rq->pull dropped): open it from the store.
 * A fetch that began answers from the bytes as they arrive. field and
 * what name the resource in a 502.
 */
static bool
follow_pull(struct MHD_Connection *c, struct request *rq,
            struct file_answer *fa, const char *field, const char *what,
            enum MHD_Result *out)
{
    struct edge_view v;

    switch (pull_follow(c, rq, &v)) {
    case PULL_PARKED:
        *out = MHD_YES;
        return true;
    case PULL_SIZED:
        fa->pull = true;
        fa->size = v.size;
        fa->mtime_s = v.started_s;
        *out = serve_file(c, rq, fa);
        return true;
    case PULL_DONE:
        break;
    }
    edge_pull_release(rq->pull);
    rq->pull = NULL;
    if (v.result == EDGE_FETCHED || v.result == EDGE_NOT_FOUND)
        return false;             /* in the store now, or a 404 */
    *out = http_reply_error(c, rq, PROTO_ERR_BAD_GATEWAY, field,
                            "the origin could not provide %s%s", what,
                            v.result == EDGE_REFUSED
                                ? " (its bytes did not verify; nothing "
                                  "was kept)"
                                : "");
    return true;
}

/* Edge mode: may this request be pulled through? Not for another edge's
 * fetch (no loops). */
static bool
may_pull(struct MHD_Connection *c, const struct request *rq)
{
    return rq->app->edge &&
           !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Modeld-Edge");
}

enum MHD_Result
handle_blob_get(struct MHD_Connection *c, struct request *rq)
{
    struct file_answer fa = {.fd = -1, .vary = true};
    const char *hex = rq->params[0];
    const char *ae = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_RANGE);
    enum store_status rc = STORE_NOT_FOUND;
    enum MHD_Result ret;
    char what[80];
    int q;

    snprintf(fa.etag, sizeof(fa.etag), "\"sha256:%s\"", hex);
    snprintf(what, sizeof(what), "sha256:%s", hex);
    /* Back from a wait on a pull-through. */
    if (rq->pull) {
        if (follow_pull(c, rq, &fa, "digest", what, &ret))
            return ret;
        goto stored;
    }
    q = query_names(c, "encoding", "modeld-bg/1");
    /* ?encoding=modeld-bg/1: the byte-grouped form as its own resource
     * (not a content coding: stock clients would not decode it). Ranges
     * address its bytes. */
    if (q < 0)
        return http_reply_error(c, rq, PROTO_ERR_BAD_FIELD, "encoding",
                                "encoding must be modeld-bg/1");
    if (q > 0) {
        rc = store_blob_bg_open(rq->app->store, hex, &fa.fd, &fa.size,
                                &fa.mtime_s);
        if (rc == STORE_NOT_FOUND)
            return http_reply_error(c, rq, PROTO_ERR_NOT_FOUND, "encoding",
                                    "no modeld-bg/1 form of sha256:%s",
                                    hex);
        if (rc != STORE_OK)
            return http_reply_store_error(c, rq, rc, "opening the blob");
        fa.vary = false;
        snprintf(fa.etag, sizeof(fa.etag), "\"sha256:%s+modeld-bg\"", hex);
        return serve_file(c, rq, &fa);
    }

    /* A compressed copy answers only whole-body requests: ranges always
     * address the identity bytes. */
    if (!range && proto_accepts_coding(ae, "zstd") &&
        store_blob_zstd_open(rq->app->store, hex, &fa.fd, &fa.size,
                             &fa.mtime_s) == STORE_OK) {
        fa.encoding = "zstd";
        snprintf(fa.etag, sizeof(fa.etag), "\"sha256:%s+zstd\"", hex);
        return serve_file(c, rq, &fa);
    }
    rc = store_blob_open(rq->app->store, hex, &fa.fd, &fa.size, &fa.mtime_s);
    if (rc == STORE_OK && rq->app->edge) {
        edge_hit(rq->app->edge);
        store_blob_touch(fa.fd);
    }
    /* Edge mode: fetched from the origin, once, verified; served from
     * its bytes as they arrive, then from the store. */
    if (rc == STORE_NOT_FOUND && may_pull(c, rq)) {
        if (edge_pull_blob(rq->app->edge, rq->app->store, hex, &rq->pull) !=
            EDGE_FETCHED)
            return http_reply_error(c, rq, PROTO_ERR_BAD_GATEWAY, "digest",
                                    "sha256:%s cannot be fetched from the "
                                    "origin now",
                                    hex);
        if (rq->pull && follow_pull(c, rq, &fa, "digest", what, &ret))
            return ret;
        goto stored;
    }
    goto opened;
stored:
    rc = store_blob_open(rq->app->store, hex, &fa.fd, &fa.size, &fa.mtime_s);
opened:
    if (rc == STORE_NOT_FOUND)
        return http_reply_error(c, rq, PROTO_ERR_NOT_FOUND, "digest",
                                "no blob sha256:%s", hex);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "opening the blob");
    return serve_file(c, rq, &fa);
}

enum MHD_Result
handle_delta_get(struct MHD_Connection *c, struct request *rq)
{
    struct file_answer fa = {.fd = -1};
    enum proto_delta_format format = PROTO_DELTA_ZSTD_PATCH;
    enum store_status rc;
    enum MHD_Result ret;
    char what[200];
    int q = query_names(c, "format", "modeld-tensor/1");

    if (q < 0 && query_names(c, "format", "zstd-patch") != 1)
        return http_reply_error(c, rq, PROTO_ERR_BAD_FIELD, "format",
                                "format must be zstd-patch or "
                                "modeld-tensor/1");
    if (q > 0)
        format = PROTO_DELTA_TENSOR;
    /* A delta's bytes are fixed once made; its digests and format name
     * it. */
    snprintf(fa.etag, sizeof(fa.etag), "\"sha256:%s-sha256:%s%s\"",
             rq->params[0], rq->params[1],
             format == PROTO_DELTA_TENSOR ? "+modeld-tensor" : "");
    snprintf(what, sizeof(what), "the delta from sha256:%s to sha256:%s",
             rq->params[0], rq->params[1]);
    /* Back from a wait on a pull-through. */
    if (rq->pull) {
        if (follow_pull(c, rq, &fa, "", what, &ret))
            return ret;
        goto stored;
    }
    rc = store_delta_format_open(rq->app->store, rq->params[0],
                                 rq->params[1], format, &fa.fd, &fa.size,
                                 &fa.mtime_s);
    if (rc == STORE_OK && rq->app->edge) {
        edge_hit(rq->app->edge);
        store_blob_touch(fa.fd);
    }
    /* Edge mode: as for blobs, verified by applying it to its from blob. */
    if (rc == STORE_NOT_FOUND && may_pull(c, rq)) {
        if (edge_pull_delta(rq->app->edge, rq->app->store, rq->params[0],
                            rq->params[1], format, &rq->pull) != EDGE_FETCHED)
            return http_reply_error(c, rq, PROTO_ERR_BAD_GATEWAY, "",
                                    "the delta to sha256:%s cannot be "
                                    "fetched from the origin now",
                                    rq->params[1]);
        if (rq->pull && follow_pull(c, rq, &fa, "", what, &ret))
            return ret;
        goto stored;
    }
    goto opened;
stored:
    rc = store_delta_format_open(rq->app->store, rq->params[0],
                                 rq->params[1], format, &fa.fd, &fa.size,
                                 &fa.mtime_s);
opened:
    if (rc == STORE_NOT_FOUND)
        return http_reply_error(c, rq, PROTO_ERR_NOT_FOUND, "",
                                "no %s delta from sha256:%s to sha256:%s "
                                "(yet)",
                                format == PROTO_DELTA_TENSOR
                                    ? "modeld-tensor/1"
                                    : "zstd-patch",
                                rq->params[0], rq->params[1]);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "opening the delta");
    return serve_file(c, rq, &fa);
}

enum MHD_Result
handle_blob_put(struct MHD_Connection *c, struct request *rq)
{
    struct store_upload *up = rq->upload;
    bool created = false;
    uint64_t size = 0;
    enum store_status rc;
    char *json;

    rq->upload = NULL;
    rc = store_upload_finish(up, &created, &size);
    if (rc == STORE_DIGEST_MISMATCH)
        return http_reply_error(c, rq, PROTO_ERR_DIGEST_MISMATCH, "body",
                                "the body's SHA-256 is not sha256:%s; "
                                "nothing was stored",
                                rq->params[0]);
    if (rc == STORE_TOO_LARGE)
        return http_reply_error(c, rq, PROTO_ERR_BODY_TOO_LARGE, "body",
                                "the upload is over the limit");
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "storing the upload");
    snprintf(rq->audit, sizeof(rq->audit), "blob %s (%" PRIu64 " bytes)",
             created ? "stored" : "already present", size);
    log_msg(LOG_INFO, rq->id, "blob sha256:%s %s (%" PRIu64 " bytes)",
            rq->params[0], created ? "stored" : "already present", size);
    json = malloc(160);
    if (json)
        snprintf(json, 160,
                 "{\"digest\":\"sha256:%s\",\"size_bytes\":%" PRIu64 "}",
                 rq->params[0], size);
    return http_reply_json(c, rq, created ? 201 : 200, json);
}
