/*
 * GET /healthz and GET /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"

/* "degraded" while the catalog server cannot be reached: selects are
 * still answered from the last snapshots (so still 200: the daemon is
 * alive and serving), admin writes answer 503. */
enum MHD_Result
handle_healthz(struct MHD_Connection *c, struct request *rq)
{
    if (rq->app->store && store_catalog_is_down(rq->app->store))
        return http_reply_json(
            c, rq, 200,
            strdup("{\"status\":\"degraded\",\"catalog\":\"unreachable\"}"));
    return http_reply_json(c, rq, 200, strdup("{\"status\":\"ok\"}"));
}

enum MHD_Result
handle_metrics(struct MHD_Connection *c, struct request *rq)
{
    const char *labels[METRICS_ROUTES];
    struct store_stats ss;
    struct edge_stats es;
    struct MHD_Response *resp;
    size_t n = router_route_count;
    char *text;
    size_t len;

    if (n > METRICS_ROUTES - 1)
        n = METRICS_ROUTES - 1;
    for (size_t i = 0; i < n; i++)
        labels[i] = router_routes[i].pattern;
    store_stats_get(rq->app->store, &ss);
    if (rq->app->edge)
        edge_stats_get(rq->app->edge, &es);
    text = metrics_render(&rq->app->metrics, labels, n, &ss,
                          rq->app->edge ? &es : NULL);
    if (text) {
        char *more = rollout_metrics_render(rq->app);
        char *both = more ? malloc(strlen(text) + strlen(more) + 1) : NULL;

        if (both) {
            strcpy(both, text);
            strcat(both, more);
        }
        free(text);
        free(more);
        text = both;
    }
    if (!text)
        return http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                                "out of memory");
    len = strlen(text);
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    return http_queue(c, rq, 200, resp, len);
}
