/*
 * The HTTP layer's shared pieces: the application state every handler
 * sees, the per-request state kept from the first libmicrohttpd callback
 * to the completion callback, the route table's shape, and the reply
 * helpers. Each handler queues exactly one response through them.
 */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "proto/proto.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/deadline.h"
#include "server/edge.h"
#include "server/metrics.h"
#include "server/sign.h"
#include "store/store.h"

struct app {
    struct config cfg;
    struct store *store;
    struct auth_tokens tokens;        /* hashes only, never a token */
    struct metrics metrics;
    atomic_uint_fast64_t next_request_id;
    bool tls;
    struct deadlines *deadlines;      /* NULL: no header deadline */
    struct edge *edge;                /* NULL: not an edge (blob_origin) */
    /* The signing keys (server/sign.c); replaced whole on SIGHUP, the old
     * one kept alive until exit. NULL: no keys configured. */
    _Atomic(struct keyring *) keyring;
    struct ratelimit *event_limit;    /* events per address and minute */
    atomic_uint transfers;            /* blob/delta GETs in flight */
    atomic_uint_fast64_t transfers_refused;
    atomic_uint_fast64_t events[PROTO_EVENT_KINDS][3]; /* counted, repeat,
                                                          refused */
    atomic_uint_fast64_t deferred;    /* admission deferrals */
    /* Event receipts checked: valid, missing, invalid (APP_RECEIPT_*). */
    atomic_uint_fast64_t receipts[3];
};

enum { APP_RECEIPT_VALID, APP_RECEIPT_MISSING, APP_RECEIPT_INVALID };

struct request;
typedef enum MHD_Result (*handler_fn)(struct MHD_Connection *c,
                                      struct request *rq);

enum body_kind {
    BODY_NONE = 0,   /* a body is read and dropped, up to max_json_bytes */
    BODY_JSON,       /* buffered up to max_json_bytes */
    BODY_SELECT,     /* buffered up to max_select_bytes */
    BODY_BLOB,       /* streamed to the store, up to max_upload_bytes */
};

struct route_method {
    const char *method;
    handler_fn fn;
    enum auth_scope scope;    /* AUTH_PUBLIC: no token */
    enum body_kind body;
};

#define ROUTE_MAX_METHODS 4
#define ROUTE_MAX_PARAMS 3

struct route {
    const char *pattern;  /* "/v1/families/{family}/select" */
    struct route_method methods[ROUTE_MAX_METHODS];
};

struct request {
    struct app *app;
    uint64_t id;
    struct timespec start;
    char method[16];
    char *path;                        /* as received, for the log */
    int route;                         /* index into the route table, -1 */
    const struct route_method *rm;
    char params[ROUTE_MAX_PARAMS][PROTO_HEX_SIZE]; /* names or hex */
    bool started;
    bool responded;
    unsigned status;
    uint64_t body_bytes_out;           /* response body size */
    struct proto_error pending;        /* an error decided before the body */
    bool has_pending;
    char *body;
    size_t body_len;
    size_t body_cap;
    uint64_t body_seen;
    uint64_t body_max;
    struct store_upload *upload;
    bool upload_counted;               /* in the uploads gauge */
    uint64_t discarded;                /* body bytes dropped after refusal */
    char token_name[AUTH_NAME_SIZE];   /* the admin token's name, "" none */
    char audit[PROTO_AUDIT_DETAIL_SIZE]; /* what an admin write changed */
    unsigned retry_after_s;            /* Retry-After of a 429/503, 0 none */
    bool transfer_counted;             /* in app->transfers */
    struct edge_pull *pull;            /* edge: the fetch followed */
    uint64_t pull_seen;                /* its last version seen */
};

/* ---- reply helpers (server/http.c) ---------------------------------- */

/* Queues resp with status, destroys it, records status and size. */
enum MHD_Result http_queue(struct MHD_Connection *c, struct request *rq,
                           unsigned status, struct MHD_Response *resp,
                           uint64_t body_len);

/* Takes ownership of json (NUL-terminated, malloc'd); NULL answers 500. */
enum MHD_Result http_reply_json(struct MHD_Connection *c, struct request *rq,
                                unsigned status, char *json);

/* As http_reply_json, with extra headers: NAME, VALUE pairs ending with
 * a NULL name. */
enum MHD_Result http_reply_json_with(struct MHD_Connection *c,
                                     struct request *rq, unsigned status,
                                     char *json, const char *const *headers);

enum MHD_Result http_reply_problem(struct MHD_Connection *c,
                                   struct request *rq,
                                   const struct proto_error *err);

enum MHD_Result http_reply_error(struct MHD_Connection *c,
                                 struct request *rq, enum proto_code code,
                                 const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* An error from the store, logged at ERROR with the store's message:
 * 507 for a full disk, else 500. */
enum MHD_Result http_reply_store_error(struct MHD_Connection *c,
                                       struct request *rq,
                                       enum store_status rc,
                                       const char *what);

enum MHD_Result http_reply_empty(struct MHD_Connection *c,
                                 struct request *rq, unsigned status);

/* Starts the daemon on cfg's address (HTTPS with server/tls.c's current
 * credentials when app->tls); NULL on failure (logged). Writes the bound
 * port. */
struct MHD_Daemon *http_start(struct app *app, unsigned *out_port);

/* A large answer's progress is watched (server/deadline.h); while it
 * waits for bytes of ours (a pull-through), paused, the client is not
 * judged by it. */
void http_transfer_pause(struct MHD_Connection *c, struct app *app,
                         bool paused);

/* ---- answers from a pull-through in flight (server/pull.c) ---------- */

enum pull_step {
    PULL_PARKED,    /* the connection is suspended until the flight moves:
                       return MHD_YES, the handler runs again */
    PULL_SIZED,     /* the origin named the size: answer with pull_response */
    PULL_DONE,      /* the flight ended (view.result says how) */
};

/* Follows rq->pull until its size is known or it ended. */
enum pull_step pull_follow(struct MHD_Connection *c, struct request *rq,
                           struct edge_view *out_view);

/*
 * A response of len bytes from start of the flight rq->pull follows
 * (taking it: rq->pull becomes NULL), sent as they arrive without holding
 * a thread while it waits. Its last byte goes out only once the flight
 * has verified the whole file; if the flight fails instead, the
 * connection is cut before it. NULL on ENOMEM (rq->pull kept).
 */
struct MHD_Response *pull_response(struct MHD_Connection *c,
                                   struct request *rq, uint64_t start,
                                   uint64_t len);

/* ---- route table (server/router.c) ----------------------------------- */

extern const struct route router_routes[];
extern const size_t router_route_count;

/*
 * Matches path against the table. Returns the route index or -1 (404).
 * On a match with a malformed parameter, fills err (400 naming the
 * parameter) and still returns the index.
 */
int router_match(const char *path,
                 char out_params[ROUTE_MAX_PARAMS][PROTO_HEX_SIZE],
                 struct proto_error *err, bool *out_bad_param);

/* ---- handlers (server/handler_*.c) ------------------------------------ */

enum MHD_Result handle_healthz(struct MHD_Connection *c, struct request *rq);
enum MHD_Result handle_metrics(struct MHD_Connection *c, struct request *rq);
enum MHD_Result handle_families_list(struct MHD_Connection *c,
                                     struct request *rq);
enum MHD_Result handle_family_get(struct MHD_Connection *c,
                                  struct request *rq);
enum MHD_Result handle_family_put(struct MHD_Connection *c,
                                  struct request *rq);
enum MHD_Result handle_family_delete(struct MHD_Connection *c,
                                     struct request *rq);
enum MHD_Result handle_variant_put(struct MHD_Connection *c,
                                   struct request *rq);
enum MHD_Result handle_variant_delete(struct MHD_Connection *c,
                                      struct request *rq);
enum MHD_Result handle_variant_versions(struct MHD_Connection *c,
                                        struct request *rq);
enum MHD_Result handle_select(struct MHD_Connection *c, struct request *rq);
enum MHD_Result handle_blob_get(struct MHD_Connection *c,
                                struct request *rq);
enum MHD_Result handle_blob_put(struct MHD_Connection *c,
                                struct request *rq);
enum MHD_Result handle_delta_get(struct MHD_Connection *c,
                                 struct request *rq);
enum MHD_Result handle_keys(struct MHD_Connection *c, struct request *rq);
enum MHD_Result handle_jobs_retry(struct MHD_Connection *c,
                                  struct request *rq);
enum MHD_Result handle_events_post(struct MHD_Connection *c,
                                   struct request *rq);
enum MHD_Result handle_version_patch(struct MHD_Connection *c,
                                     struct request *rq);
enum MHD_Result handle_version_delete(struct MHD_Connection *c,
                                      struct request *rq);
enum MHD_Result handle_audit(struct MHD_Connection *c, struct request *rq);

/* ---- rollouts (server/handler_rollout.c) --------------------------------- */

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit *r);
/* What the event rate limit counts a client address under: an IPv4
 * address, or an IPv6 /64 (NULL: one shared key). */
uint64_t ratelimit_key(const struct sockaddr *sa);
/* The event, transfer, admission and per-version lines of /metrics
 * (malloc'd; NULL when out of memory). */
char *rollout_metrics_render(struct app *app);

#endif
