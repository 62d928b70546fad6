/*
 * The libmicrohttpd glue: daemon start-up, the per-request state machine
 * (first call: route, authenticate, check the declared size; body calls:
 * buffer or stream; last call: run the handler), the completion callback
 * (access log, metrics, cleanup) and the reply helpers. Handlers only see
 * a validated route, their parameters and a complete body.
 *
 * Threading: an epoll thread pool (cfg.threads threads, at most 125
 * connections each: one epoll thread stalls when more are ready at once);
 * over TLS a poll(2) thread pool of the same size (see http_start).
 * Replies are queued on the second call at the earliest so keep-alive
 * stays on; only errors that refuse a body are queued on the first call.
 * No handler blocks: at an edge, a request waiting for a pull-through is
 * suspended (MHD_ALLOW_SUSPEND_RESUME) and runs again when resumed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "server/access_log.h"
#include "server/deadline.h"
#include "server/http.h"
#include "server/limits.h"
#include "server/log.h"
#include "server/tls.h"
#include "server/tls_out.h"

/* Body bytes read and dropped after a request was refused mid-body, so
 * that the client still gets its 4xx; past this the connection closes. */
#define DISCARD_MAX_BYTES (16u << 20)
#define EARLY_DRAIN_MAX_BYTES (1u << 20)

static double
elapsed_s(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) +
           (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void watch_transfer(struct MHD_Connection *c, struct app *app,
                           uint64_t body_len);
static void coalesce_answer(struct MHD_Connection *c);

enum MHD_Result
http_queue(struct MHD_Connection *c, struct request *rq, unsigned status,
           struct MHD_Response *resp, uint64_t body_len)
{
    enum MHD_Result ret;

    if (!resp) {
        log_msg(LOG_ERROR, rq->id, "cannot create a response (no memory)");
        return MHD_NO;
    }
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    watch_transfer(c, rq->app, ret == MHD_YES ? body_len : 0);
    rq->responded = true;
    rq->status = status;
    /* A HEAD answer carries the headers only: no body bytes to count. */
    rq->body_bytes_out = strcmp(rq->method, "HEAD") == 0 ? 0 : body_len;
    return ret;
}

static struct MHD_Response *
text_response(char *text, const char *content_type)
{
    size_t len = strlen(text);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);

    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type);
    return resp;
}

/*
 * Queues an answer built in memory. libmicrohttpd 0.9.75 sends its header
 * and its body with two gnutls_record_send calls right after each other;
 * over TLS the header is held back so that both go in one TLS record
 * (server/tls_out.h). HEAD answers and empty bodies are one send: nothing
 * is held.
 */
static enum MHD_Result
queue_buffer(struct MHD_Connection *c, struct request *rq, unsigned status,
             struct MHD_Response *resp, uint64_t body_len)
{
    enum MHD_Result ret = http_queue(c, rq, status, resp, body_len);

    if (ret == MHD_YES && rq->app->tls && rq->body_bytes_out > 0)
        coalesce_answer(c);
    return ret;
}

enum MHD_Result
http_reply_json(struct MHD_Connection *c, struct request *rq,
                unsigned status, char *json)
{
    size_t len;

    if (!json) {
        struct proto_error err;

        proto_error_set(&err, PROTO_ERR_INTERNAL, "", "out of memory");
        return http_reply_problem(c, rq, &err);
    }
    len = strlen(json);
    return queue_buffer(c, rq, status,
                        text_response(json, "application/json"), len);
}

enum MHD_Result
http_reply_json_with(struct MHD_Connection *c, struct request *rq,
                     unsigned status, char *json,
                     const char *const *headers)
{
    struct MHD_Response *resp;
    size_t len;

    if (!json)
        return http_reply_json(c, rq, status, json);
    len = strlen(json);
    resp = text_response(json, "application/json");
    for (size_t i = 0; resp && headers && headers[i]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    return queue_buffer(c, rq, status, resp, len);
}

/*
 * The route's entry for method. HEAD is served wherever GET is (RFC 9110
 * 9.3.2): without an entry of its own it runs the GET handler, and
 * libmicrohttpd sends the same headers without the body.
 */
static const struct route_method *
route_method_find(const struct route *r, const char *method)
{
    const struct route_method *get = NULL;

    for (size_t i = 0; i < ROUTE_MAX_METHODS && r->methods[i].method; i++) {
        if (strcmp(r->methods[i].method, method) == 0)
            return &r->methods[i];
        if (strcmp(r->methods[i].method, "GET") == 0)
            get = &r->methods[i];
    }
    return strcmp(method, "HEAD") == 0 ? get : NULL;
}

static void
add_allow(struct MHD_Response *resp, int route)
{
    char allow[64] = "";
    const struct route *r;

    if (route < 0)
        return;
    r = &router_routes[route];
    for (size_t i = 0; i < ROUTE_MAX_METHODS && r->methods[i].method; i++) {
        if (i)
            strcat(allow, ", ");
        strcat(allow, r->methods[i].method);
    }
    if (route_method_find(r, "HEAD") && !strstr(allow, "HEAD"))
        strcat(allow, ", HEAD");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
}

enum MHD_Result
http_reply_problem(struct MHD_Connection *c, struct request *rq,
                   const struct proto_error *err)
{
    unsigned status = proto_code_status(err->code);
    char *body = proto_problem_write(err);
    struct MHD_Response *resp;
    size_t len;

    if (!body)
        return MHD_NO;
    len = strlen(body);
    resp = text_response(body, "application/problem+json");
    if (!resp)
        return MHD_NO;
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"modeld\"");
    if (status == 405)
        add_allow(resp, rq->route);
    if ((status == 429 || status == 503) && rq->retry_after_s) {
        char ra[16];

        snprintf(ra, sizeof(ra), "%u", rq->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (status >= 500)
        log_msg(LOG_ERROR, rq->id, "%u %s", status, err->detail);
    else
        log_msg(LOG_DEBUG, rq->id, "%u %s", status, err->detail);
    return queue_buffer(c, rq, status, resp, len);
}

enum MHD_Result
http_reply_error(struct MHD_Connection *c, struct request *rq,
                 enum proto_code code, const char *field, const char *fmt,
                 ...)
{
    struct proto_error err;
    char detail[PROTO_DETAIL_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    proto_error_set(&err, code, field, "%s", detail);
    return http_reply_problem(c, rq, &err);
}

enum MHD_Result
http_reply_store_error(struct MHD_Connection *c, struct request *rq,
                       enum store_status rc, const char *what)
{
    log_msg(LOG_ERROR, rq->id, "store: %s failed (status %d): %s", what,
            (int)rc, store_errmsg(rq->app->store));
    if (rc == STORE_NO_SPACE)
        return http_reply_error(c, rq, PROTO_ERR_INSUFFICIENT_STORAGE, "",
                                "%s: the server's disk is full", what);
    if (rc == STORE_UNAVAILABLE) {
        rq->retry_after_s = store_retry_after_s(rq->app->store);
        return http_reply_error(c, rq, PROTO_ERR_UNAVAILABLE, "",
                                "%s: the catalog database cannot be reached "
                                "now; retry later",
                                what);
    }
    return http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                            "%s failed; see the server log, request %" PRIu64,
                            what, rq->id);
}

enum MHD_Result
http_reply_empty(struct MHD_Connection *c, struct request *rq,
                 unsigned status)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    return http_queue(c, rq, status, resp, 0);
}

/* ---- the request state machine ------------------------------------------ */

/*
 * Per-connection state, the socket context of libmicrohttpd: the header
 * deadline and the request that on_uri started. libmicrohttpd calls the
 * completion callback only once the access handler has run; a request it
 * answers by itself (414, 431, a malformed Content-Length, ...) or drops
 * before its headers are complete never completes. Such a request is
 * freed here when the connection closes (the CLOSED notification always
 * comes, and after any completion), so no path leaks it.
 */
struct conn {
    struct deadline_conn *deadline;
    struct request *rq;               /* started, not yet completed */
    int fd;                           /* the socket, -1 if unknown */
    struct tls_out *out;              /* HTTPS: the session's sends */
    bool watched;                     /* a large answer's progress is
                                         watched (deadline.h) instead of
                                         libmicrohttpd's idle timeout */
};

/*
 * libmicrohttpd stores every query argument in its per-connection pool
 * (connection_memory_bytes) right after the URI callback; when the pool
 * runs out, 0.9.75 neither answers nor closes (the request hangs until a
 * timeout): past ~400 arguments in 32 KiB, ~230 in 16 KiB, ~120 in 8 KiB.
 * No route takes more than a few arguments, so a query over one argument
 * per 128 bytes of pool (256 in 32 KiB, 128 in 16 KiB) is answered here,
 * before the library parses it.
 */
#define QUERY_ARG_POOL_BYTES 128

static size_t
query_args_max(const struct app *app)
{
    return app->cfg.connection_memory_bytes / QUERY_ARG_POOL_BYTES;
}

static bool
query_too_long(const char *uri, size_t max_args)
{
    const char *q = strchr(uri, '?');
    size_t args = 1;

    if (!q)
        return false;
    for (q++; *q; q++)
        if (*q == '&' && ++args > max_args)
            return true;
    return false;
}

/*
 * Answers 431 problem+json straight on the socket (plain HTTP; over TLS
 * the bytes would have to go through the session, so it only closes) and
 * shuts the socket down, which makes libmicrohttpd close the connection
 * at its next read. Used only before libmicrohttpd has sent anything for
 * the request.
 */
static void
refuse_query(const struct app *app, const struct conn *conn)
{
    struct proto_error err;
    char head[256];
    char *body;

    if (conn->fd < 0)
        return;
    proto_error_set(&err, PROTO_ERR_HEADERS_TOO_LARGE, "query",
                    "the query string has more than %zu arguments",
                    query_args_max(app));
    body = app->tls ? NULL : proto_problem_write(&err);
    if (body) {
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                         "Content-Type: application/problem+json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         strlen(body));
        struct iovec iov[2] = {{head, (size_t)n}, {body, strlen(body)}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};

        /* Non-blocking; a short write only truncates the answer. */
        if (sendmsg(conn->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_msg(LOG_DEBUG, 0, "431 for a long query: %s",
                    strerror(errno));
        free(body);
    }
    shutdown(conn->fd, SHUT_RDWR);
}

static struct conn *
conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

static void
coalesce_answer(struct MHD_Connection *c)
{
    struct conn *conn = conn_of(c);

    if (conn)
        tls_out_hold_next(conn->out);
}

static void *
tls_session_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);

    return info ? info->tls_session : NULL;
}

/*
 * Answers this large can outlast libmicrohttpd's idle timeout while the
 * client keeps reading (see deadlines_watch_transfers): their progress is
 * judged by the bytes the client acknowledges, and libmicrohttpd's own
 * timeout is off until the answer completes.
 */
#define WATCH_MIN_BYTES (256u << 10)

static void
watch_transfer(struct MHD_Connection *c, struct app *app, uint64_t body_len)
{
    struct conn *conn;

    if (body_len < WATCH_MIN_BYTES)
        return;
    conn = conn_of(c);
    if (conn && deadlines_watch(app->deadlines, conn->deadline, true)) {
        conn->watched = true;
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    }
}

void
http_transfer_pause(struct MHD_Connection *c, struct app *app, bool paused)
{
    struct conn *conn = conn_of(c);

    if (conn && conn->watched)
        deadlines_watch(app->deadlines, conn->deadline, !paused);
}

static void
request_free(struct request *rq)
{
    if (!rq)
        return;
    if (rq->upload)
        store_upload_abort(rq->upload);
    edge_pull_release(rq->pull);
    if (rq->upload_counted)
        atomic_fetch_sub(&rq->app->metrics.uploads, 1);
    if (rq->transfer_counted)
        atomic_fetch_sub(&rq->app->transfers, 1);
    free(rq->body);
    free(rq->path);
    free(rq);
}

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct app *app = cls;
    struct conn *conn = conn_of(c);
    struct request *rq;

    /* Without a connection record the request could not be freed on
     * every path: refuse it (the access handler then closes). */
    if (!conn)
        return NULL;
    request_free(conn->rq);
    conn->rq = NULL;
    if (uri && query_too_long(uri, query_args_max(app))) {
        metrics_limit(&app->metrics, METRICS_LIMIT_QUERY_ARGS);
        refuse_query(app, conn);
        return NULL;
    }
    rq = calloc(1, sizeof(*rq));
    if (!rq)
        return NULL;
    conn->rq = rq;
    rq->app = app;
    rq->id = atomic_fetch_add(&app->next_request_id, 1) + 1;
    rq->route = -1;
    clock_gettime(CLOCK_MONOTONIC, &rq->start);
    rq->path = strndup(uri ? uri : "", 2048);
    return rq;
}

/* Admin authentication and scope (server/auth.c). The token's name is
 * kept for the audit log. */
static bool
authorized(struct MHD_Connection *c, struct request *rq)
{
    const struct auth_token *tok = NULL;
    const char *auth = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

    switch (auth_check(&rq->app->tokens, auth, rq->rm->scope, &tok)) {
    case AUTH_OK:
        snprintf(rq->token_name, sizeof(rq->token_name), "%s", tok->name);
        return true;
    case AUTH_NO_TOKENS:
        proto_error_set(&rq->pending, PROTO_ERR_FORBIDDEN, "",
                        "no admin token is configured on this server");
        return false;
    case AUTH_MISSING:
        proto_error_set(&rq->pending, PROTO_ERR_UNAUTHORIZED,
                        "Authorization",
                        "this endpoint needs Authorization: Bearer TOKEN");
        return false;
    case AUTH_OUT_OF_SCOPE:
        snprintf(rq->token_name, sizeof(rq->token_name), "%s", tok->name);
        proto_error_set(&rq->pending, PROTO_ERR_FORBIDDEN, "Authorization",
                        "token \"%s\" has scope %s; this endpoint needs "
                        "scope %s (or admin)",
                        tok->name, auth_scope_name(tok->scope),
                        auth_scope_name(rq->rm->scope));
        return false;
    case AUTH_UNKNOWN:
        break;
    }
    proto_error_set(&rq->pending, PROTO_ERR_FORBIDDEN, "Authorization",
                    "the bearer token is not an admin token");
    return false;
}

static uint64_t
body_limit(const struct app *app, enum body_kind kind)
{
    switch (kind) {
    case BODY_SELECT:
        return app->cfg.max_select_bytes;
    case BODY_BLOB:
        return app->cfg.max_upload_bytes;
    default:
        return app->cfg.max_json_bytes;
    }
}

static void
set_too_large(struct request *rq, uint64_t limit)
{
    metrics_limit(&rq->app->metrics, METRICS_LIMIT_BODY);
    proto_error_set(&rq->pending, PROTO_ERR_BODY_TOO_LARGE, "body",
                    "the request body is over this endpoint's limit of "
                    "%" PRIu64 " bytes",
                    limit);
    rq->has_pending = true;
}

/* A JSON body must come as application/json or a +json type (RFC 8259);
 * with no Content-Type at all it is taken as JSON. Anything else is 415,
 * so that a form post or text/plain is not parsed as if it were JSON. */
static bool
json_type_refused(struct MHD_Connection *c, struct request *rq)
{
    const char *ct;

    if (rq->rm->body != BODY_JSON && rq->rm->body != BODY_SELECT)
        return false;
    ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || proto_media_type_is_json(ct))
        return false;
    proto_error_set(&rq->pending, PROTO_ERR_UNSUPPORTED_MEDIA_TYPE,
                    "Content-Type",
                    "Content-Type: this endpoint takes a JSON body, sent as "
                    "application/json (or a +json type)");
    return true;
}

/* First call: route, method, authentication, media type, declared size.
 * Fills rq->pending when the request is refused. */
static void
first_call(struct MHD_Connection *c, struct request *rq, const char *url,
           const char *method)
{
    const struct route *r;
    const char *clen;
    bool bad_param;

    snprintf(rq->method, sizeof(rq->method), "%s", method);
    rq->route = router_match(url, rq->params, &rq->pending, &bad_param);
    if (rq->route < 0) {
        proto_error_set(&rq->pending, PROTO_ERR_NOT_FOUND, "",
                        "no resource at this path");
        rq->has_pending = true;
        return;
    }
    r = &router_routes[rq->route];
    rq->rm = route_method_find(r, method);
    if (!rq->rm) {
        proto_error_set(&rq->pending, PROTO_ERR_METHOD_NOT_ALLOWED, "",
                        "%s is not allowed here", rq->method);
        rq->has_pending = true;
        return;
    }
    if (rq->rm->scope != AUTH_PUBLIC && !authorized(c, rq)) {
        rq->has_pending = true;
        return;
    }
    if (bad_param || json_type_refused(c, rq)) {
        rq->has_pending = true;
        return;
    }
    rq->body_max = body_limit(rq->app, rq->rm->body);
    clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(clen, &end, 10);
        if (errno == 0 && *end == '\0' && n > rq->body_max)
            set_too_large(rq, rq->body_max);
    }
}

/* The transfer bound (max_transfers): one slot per blob or delta GET until
 * its answer completes. Beyond it, 503 with Retry-After; selects and the
 * rest are not counted. */
static bool
transfer_admit(struct request *rq)
{
    struct app *app = rq->app;
    unsigned max = app->cfg.max_transfers;

    if (max == 0)
        return true;
    if (atomic_fetch_add(&app->transfers, 1) >= max) {
        atomic_fetch_sub(&app->transfers, 1);
        atomic_fetch_add(&app->transfers_refused, 1);
        rq->retry_after_s = app->cfg.transfer_retry_after_s;
        proto_error_set(&rq->pending, PROTO_ERR_UNAVAILABLE, "",
                        "%u transfers are in progress, the most this "
                        "server runs at once; retry later",
                        max);
        return false;
    }
    rq->transfer_counted = true;
    return true;
}

/* An admin write by a known token (or its refused attempt) into the audit
 * log: who, what, the status and what changed. A failure to record is
 * logged. */
static void
audit_record(const struct request *rq)
{
    struct proto_audit_entry e;
    size_t path_len;

    memset(&e, 0, sizeof(e));
    e.time_s = (int64_t)time(NULL);
    snprintf(e.token, sizeof(e.token), "%s", rq->token_name);
    snprintf(e.method, sizeof(e.method), "%s", rq->method);
    /* Paths reach here matched against the route table: printable. */
    path_len = strcspn(rq->path ? rq->path : "", "?");
    if (path_len >= sizeof(e.path))
        path_len = sizeof(e.path) - 1;
    memcpy(e.path, rq->path ? rq->path : "", path_len);
    e.status = rq->status;
    snprintf(e.detail, sizeof(e.detail), "%s", rq->audit);
    if (store_audit_add(rq->app->store, &e) != STORE_OK)
        log_msg(LOG_ERROR, rq->id, "audit: cannot record: %s",
                store_errmsg(rq->app->store));
}

static bool
has_body(struct MHD_Connection *c)
{
    const char *clen = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (clen && strcmp(clen, "0") != 0)
        return true;
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING) !=
           NULL;
}

/*
 * A request refused on its headers whose small body is already on the way
 * (no "Expect: 100-continue", Content-Length at most EARLY_DRAIN_MAX_BYTES)
 * is read and dropped before the refusal goes out. Answering at once would
 * close the connection while the client still sends: its send fails with
 * EPIPE/ECONNRESET and many clients (curl among them) then lose the answer.
 * A client that asked for 100-continue gets the answer without sending.
 */
static bool
drain_before_reply(struct MHD_Connection *c)
{
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_EXPECT);
    const char *clen = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long len;

    if (expect || !clen || *clen < '0' || *clen > '9')
        return false;
    errno = 0;
    len = strtoull(clen, &end, 10);
    return errno == 0 && *end == '\0' && len <= EARLY_DRAIN_MAX_BYTES;
}

/* Upload bodies reach the store in writes of this size (see take_body). */
#define UPLOAD_CHUNK_BYTES (256u << 10)

/* Writes len bytes of an upload to the store; false (rq->pending set)
 * when it failed. */
static bool
upload_write(struct request *rq, const char *data, size_t len)
{
    enum store_status rc = store_upload_write(rq->upload, data, len);

    if (rc == STORE_OK)
        return true;
    if (rc == STORE_TOO_LARGE) {
        set_too_large(rq, rq->body_max);
    } else {
        log_msg(LOG_ERROR, rq->id, "store: upload write: %s",
                store_errmsg(rq->app->store));
        proto_error_set(&rq->pending,
                        rc == STORE_NO_SPACE ? PROTO_ERR_INSUFFICIENT_STORAGE
                                             : PROTO_ERR_INTERNAL,
                        "", "the upload could not be stored");
        rq->has_pending = true;
    }
    return false;
}

/* Writes the gathered part of an upload (rq->body) to the store. */
static bool
upload_flush(struct request *rq)
{
    size_t n = rq->body_len;

    rq->body_len = 0;
    return n == 0 || upload_write(rq, rq->body, n);
}

/* One piece of the body. Returns false when the request must be answered
 * now (rq->pending set). */
static bool
take_body(struct request *rq, const char *data, size_t len)
{
    enum body_kind kind = rq->rm ? rq->rm->body : BODY_NONE;

    if (rq->body_seen + len > rq->body_max) {
        set_too_large(rq, rq->body_max);
        return false;
    }
    rq->body_seen += len;
    if (kind == BODY_BLOB) {
        /* libmicrohttpd hands the body over in pieces of its read buffer
         * (a few KiB: connection_memory_bytes); they are gathered into
         * UPLOAD_CHUNK_BYTES so that the file gets one write per chunk. */
        if (rq->body_len == 0 && len >= UPLOAD_CHUNK_BYTES)
            return upload_write(rq, data, len);
        if (!rq->body) {
            rq->body = malloc(UPLOAD_CHUNK_BYTES);
            if (!rq->body) {
                proto_error_set(&rq->pending, PROTO_ERR_INTERNAL, "",
                                "out of memory");
                rq->has_pending = true;
                return false;
            }
            rq->body_cap = UPLOAD_CHUNK_BYTES;
        }
        while (len > 0) {
            size_t n = rq->body_cap - rq->body_len;

            if (n > len)
                n = len;
            memcpy(rq->body + rq->body_len, data, n);
            rq->body_len += n;
            data += n;
            len -= n;
            if (rq->body_len == rq->body_cap && !upload_flush(rq))
                return false;
        }
        return true;
    }
    if (kind == BODY_NONE)
        return true;
    if (rq->body_len + len + 1 > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap : 1024;
        char *p;

        while (cap < rq->body_len + len + 1)
            cap *= 2;
        p = realloc(rq->body, cap);
        if (!p) {
            proto_error_set(&rq->pending, PROTO_ERR_INTERNAL, "",
                            "out of memory");
            rq->has_pending = true;
            return false;
        }
        rq->body = p;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, len);
    rq->body_len += len;
    rq->body[rq->body_len] = '\0';
    return true;
}

static struct deadline_conn *
conn_deadline(struct MHD_Connection *c)
{
    struct conn *conn = conn_of(c);

    return conn ? conn->deadline : NULL;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
    struct request *rq = *con_cls;

    (void)cls;
    (void)version;
    if (!rq)
        return MHD_NO;
    if (!rq->started) {
        rq->started = true;
        deadlines_disarm(conn_deadline(c));
        first_call(c, rq, url, method);
        if (rq->has_pending && has_body(c) && !drain_before_reply(c))
            return http_reply_problem(c, rq, &rq->pending);
        if (!rq->has_pending && rq->rm->body == BODY_BLOB) {
            enum store_status rc = store_upload_begin(
                rq->app->store, rq->params[0], rq->body_max, &rq->upload);

            if (rc != STORE_OK)
                return http_reply_store_error(c, rq, rc, "starting upload");
            atomic_fetch_add(&rq->app->metrics.uploads, 1);
            rq->upload_counted = true;
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t len = *upload_data_size;

        *upload_data_size = 0;
        if (rq->responded)
            return MHD_YES;
        if (rq->has_pending) {
            /* libmicrohttpd cannot queue a reply while a body arrives:
             * the rest is read and dropped, up to a bound, and the error
             * goes out on the final call. Past the bound, close. */
            rq->discarded += len;
            return rq->discarded > DISCARD_MAX_BYTES ? MHD_NO : MHD_YES;
        }
        if (!take_body(rq, upload_data, len)) {
            store_upload_abort(rq->upload);
            rq->upload = NULL;
        }
        return MHD_YES;
    }
    if (rq->responded)
        return MHD_YES;
    /* The upload's last gathered bytes, before its handler commits it. */
    if (!rq->has_pending && rq->upload && !upload_flush(rq)) {
        store_upload_abort(rq->upload);
        rq->upload = NULL;
    }
    if (rq->has_pending)
        return http_reply_problem(c, rq, &rq->pending);
    /* A request parked on a pull-through comes back here when resumed:
     * admitted once. */
    if (rq->rm->fn == handle_blob_get || rq->rm->fn == handle_delta_get) {
        if (strcmp(rq->method, "GET") == 0 && !rq->transfer_counted &&
            !rq->pull && !transfer_admit(rq))
            return http_reply_problem(c, rq, &rq->pending);
    }
    return rq->rm->fn(c, rq);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct app *app = cls;
    struct request *rq = *con_cls;
    struct conn *conn = conn_of(c);
    char path[256];
    double secs;

    if (app->deadlines)
        deadlines_arm(app->deadlines, conn_deadline(c));
    /* Normally the body's push took what was held; never leave an answer
     * behind. */
    if (conn && !tls_out_flush(conn->out, tls_session_of(c)))
        log_msg(LOG_DEBUG, 0, "tls: a held record waits for the socket");
    if (conn && conn->watched) {
        conn->watched = false;
        deadlines_watch(app->deadlines, conn->deadline, false);
        /* The connection may serve another request: its idle timeout
         * again. (A connection that is closing needs none.) */
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
                                      app->cfg.connection_timeout_s);
    }
    if (!rq)
        return;
    *con_cls = NULL;
    if (conn && conn->rq == rq)
        conn->rq = NULL;
    if (rq->upload) {
        store_upload_abort(rq->upload);
        rq->upload = NULL;
    }
    secs = elapsed_s(&rq->start);
    if (rq->started && log_enabled(LOG_INFO)) {
        uint64_t us = (uint64_t)(secs * 1e6);
        char text[sizeof(rq->method) + sizeof(path) + 96];
        size_t n, k;

        /* METHOD "PATH" STATUS BYTES MS.USms[ (aborted)], by hand: this
         * line is on every request's path. */
        log_quote(rq->path, path, sizeof(path));
        k = strnlen(rq->method, sizeof(rq->method) - 1);
        memcpy(text, rq->method, k);
        n = k;
        text[n++] = ' ';
        text[n++] = '"';
        k = strlen(path);
        memcpy(text + n, path, k);
        n += k;
        text[n++] = '"';
        text[n++] = ' ';
        n += log_put_u64(text + n, rq->status);
        text[n++] = ' ';
        n += log_put_u64(text + n, rq->body_bytes_out);
        text[n++] = ' ';
        n += log_put_u64(text + n, us / 1000);
        text[n++] = '.';
        text[n++] = (char)('0' + us % 1000 / 100);
        text[n++] = (char)('0' + us % 100 / 10);
        text[n++] = (char)('0' + us % 10);
        text[n++] = 'm';
        text[n++] = 's';
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
            memcpy(text + n, " (aborted)", 10);
            n += 10;
        }
        access_log_text(rq->id, text, n);
    }
    if (rq->started) {
        metrics_request(&app->metrics, rq->route, rq->status,
                        toe == MHD_REQUEST_TERMINATED_COMPLETED_OK
                            ? rq->body_bytes_out
                            : 0,
                        secs);
    }
    /* Only requests with a known token: anyone could send the others,
     * and each entry is a durable write. */
    if (rq->started && rq->rm && rq->rm->scope != AUTH_PUBLIC &&
        rq->token_name[0] && strcmp(rq->method, "GET") != 0 &&
        strcmp(rq->method, "HEAD") != 0)
        audit_record(rq);
    request_free(rq);
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    struct app *app = cls;
    struct conn *conn = *socket_context;
    const union MHD_ConnectionInfo *info;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&app->metrics.connections, 1);
        conn = calloc(1, sizeof(*conn));
        *socket_context = conn;
        if (!conn)
            return;
        info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn->fd = info ? info->connect_fd : -1;
        if (info && app->deadlines)
            conn->deadline = deadlines_open(app->deadlines, info->connect_fd);
        if (app->tls)
            conn->out = tls_out_attach(tls_session_of(c));
    } else {
        atomic_fetch_sub(&app->metrics.connections, 1);
        *socket_context = NULL;
        if (!conn)
            return;
        if (app->deadlines)
            deadlines_close(app->deadlines, conn->deadline);
        request_free(conn->rq);
        tls_out_detach(conn->out, tls_session_of(c));
        free(conn);
    }
}


/*
 * libmicrohttpd would decode the whole path before it is split, letting
 * %00 cut it short and %2F add a segment. So it is passed on as sent and
 * router_match() (server/router.c) splits it on '/' first, then decodes
 * each segment on its own.
 */
static size_t
no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * libmicrohttpd's own messages. Some are answers it sent by itself, with
 * no hook to shape them (0.9.75): a malformed or oversized request line,
 * header block, Content-Length or chunk size gets its status line and a
 * text/html page, then the connection closes. Those are counted here,
 * under route "other" (and 414/431 as limit "header_size"), and logged at
 * INFO like any client error; refusals at accept (connection limits) are
 * counted as limit "connections". Anything else is a WARN.
 */
static void
on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    struct app *app = cls;
    char msg[512];
    const char *code;
    unsigned status;
    size_t n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    code = strstr(msg, "HTTP response code is ");
    if (app && code && sscanf(code + 22, "%u", &status) == 1) {
        metrics_request(&app->metrics, -1, status, 0, 0.0);
        if (status == 414 || status == 431)
            metrics_limit(&app->metrics, METRICS_LIMIT_HEADER_SIZE);
        log_msg(LOG_INFO, 0, "microhttpd answered %u by itself and closed "
                             "the connection",
                status);
        return;
    }
    if (app && strstr(msg, "reached connection limit")) {
        metrics_limit(&app->metrics, METRICS_LIMIT_CONNECTIONS);
        log_msg(LOG_INFO, 0, "connection closed at accept: "
                             "max_connections or max_connections_per_ip");
        return;
    }
    log_msg(LOG_WARN, 0, "microhttpd: %s", msg);
}

struct MHD_Daemon *
http_start(struct app *app, unsigned *out_port)
{
    const struct config *cfg = &app->cfg;
    struct addrinfo hints = {0}, *ai = NULL;
    struct sockaddr_storage addr;
    unsigned flags = MHD_USE_ITC | MHD_USE_ERROR_LOG;
    unsigned limit = cfg->max_connections;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    int gai;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    gai = getaddrinfo(cfg->listen_host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        log_msg(LOG_ERROR, 0, "listen: cannot resolve \"%s\": %s",
                cfg->listen_host, gai_strerror(gai));
        return NULL;
    }
    memset(&addr, 0, sizeof(addr));
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    if (ai->ai_family == AF_INET6) {
        ((struct sockaddr_in6 *)&addr)->sin6_port =
            htons((uint16_t)cfg->listen_port);
        flags |= MHD_USE_IPv6;
    } else {
        ((struct sockaddr_in *)&addr)->sin_port =
            htons((uint16_t)cfg->listen_port);
    }
    freeaddrinfo(ai);
    /*
     * TLS goes through the poll(2) loop. In libmicrohttpd 0.9.75's epoll
     * loop a TLS handshake waiting for the client's next flight leaves its
     * connection marked readable, so the thread calls epoll_wait with a
     * zero timeout and recv on that connection in a loop until the client
     * answers: 64 new connections cost the daemon 80-160 ms of CPU that
     * way against 40-60 ms with poll(2), and on a busy machine the spinning
     * threads take the CPU the clients need to answer (README, HTTPS).
     * poll(2) waits for the direction GnuTLS asks for; answers cost the
     * same either way.
     */
    if (app->tls)
        flags |= MHD_USE_TLS | MHD_USE_POLL_INTERNAL_THREAD;
    else
        flags |= MHD_USE_EPOLL_INTERNAL_THREAD;
    /* An edge parks requests on pull-throughs (server/pull.c). */
    if (app->edge)
        flags |= MHD_ALLOW_SUSPEND_RESUME;
    if (limit > cfg->threads * LIMITS_CONNECTIONS_PER_THREAD)
        limit = cfg->threads * LIMITS_CONNECTIONS_PER_THREAD;

    struct MHD_OptionItem opts[] = {
        /* First, so that every later option's complaint reaches our log. */
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_error, app},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT,
         (intptr_t)cfg->max_connections_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->connection_timeout_s,
         NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, app},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)no_unescape, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, app},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, app},
        {MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL},
        /* Zeroed whole on every keep-alive request (MHD_pool_reset) and
         * half again when the answer's header is built: 48 KiB a request
         * at the library's 32 KiB default, 24 KiB at our 16 KiB (README,
         * Limits). */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT,
         (intptr_t)cfg->connection_memory_bytes, NULL},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {app->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, 0,
         tls_cert_callback()},
        {MHD_OPTION_HTTPS_PRIORITIES, 0,
         (void *)(uintptr_t)cfg->tls_priorities},
        {MHD_OPTION_END, 0, NULL},
    };

    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, app,
                         MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!d) {
        if (app->tls)
            log_msg(LOG_ERROR, 0, "cannot start HTTPS on %s:%u (see the "
                                  "messages above): %s",
                    cfg->listen_host, cfg->listen_port, strerror(errno));
        else
            log_msg(LOG_ERROR, 0, "cannot listen on %s:%u: %s",
                    cfg->listen_host, cfg->listen_port, strerror(errno));
        return NULL;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *out_port = info ? info->port : cfg->listen_port;
    return d;
}
