/*
 * GET /healthz and GET /metrics.
 */
#include <inttypes.h>
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

/* Edge mode's counters after the rest (text is freed on failure). */
static char *
append_edge(char *text, struct edge *e)
{
    struct edge_stats es;
    char add[2560];
    size_t len = strlen(text);
    char *n;

    edge_stats_get(e, &es);
    snprintf(add, sizeof(add),
             "# HELP modeld_edge_blob_requests_total Blob requests of an "
             "edge, by where the bytes were.\n"
             "# TYPE modeld_edge_blob_requests_total counter\n"
             "modeld_edge_blob_requests_total{result=\"hit\"} %" PRIu64 "\n"
             "modeld_edge_blob_requests_total{result=\"miss\"} %" PRIu64 "\n"
             "# HELP modeld_edge_origin_fetches_total Fetches from the "
             "origin, by outcome.\n"
             "# TYPE modeld_edge_origin_fetches_total counter\n"
             "modeld_edge_origin_fetches_total %" PRIu64 "\n"
             "modeld_edge_origin_refused_total %" PRIu64 "\n"
             "modeld_edge_origin_failed_total %" PRIu64 "\n"
             "# HELP modeld_edge_origin_bytes_total Bytes received from the "
             "origin.\n# TYPE modeld_edge_origin_bytes_total counter\n"
             "modeld_edge_origin_bytes_total %" PRIu64 "\n"
             "# HELP modeld_edge_evicted_total Blobs evicted by "
             "blob_cache_max_bytes.\n"
             "# TYPE modeld_edge_evicted_total counter\n"
             "modeld_edge_evicted_total %" PRIu64 "\n"
             "# HELP modeld_edge_early_answers_total Answers begun from "
             "the bytes of a pull-through still in flight.\n"
             "# TYPE modeld_edge_early_answers_total counter\n"
             "modeld_edge_early_answers_total %" PRIu64 "\n"
             "# HELP modeld_edge_cut_answers_total Early answers cut "
             "before their last byte because the pull-through failed.\n"
             "# TYPE modeld_edge_cut_answers_total counter\n"
             "modeld_edge_cut_answers_total %" PRIu64 "\n",
             es.hits, es.misses, es.fetches, es.refused, es.failed,
             es.origin_bytes, es.evicted, es.early, es.cut);
    n = realloc(text, len + strlen(add) + 1);
    if (!n) {
        free(text);
        return NULL;
    }
    memcpy(n + len, add, strlen(add) + 1);
    return n;
}

enum MHD_Result
handle_metrics(struct MHD_Connection *c, struct request *rq)
{
    const char *labels[METRICS_ROUTES];
    struct store_stats ss;
    struct MHD_Response *resp;
    size_t n = router_route_count;
    char *text;
    size_t len;

    if (n > METRICS_ROUTES - 1)
        n = METRICS_ROUTES - 1;
    for (size_t i = 0; i < n; i++)
        labels[i] = router_routes[i].pattern;
    store_stats_get(rq->app->store, &ss);
    text = metrics_render(&rq->app->metrics, labels, n, &ss);
    if (text && rq->app->edge)
        text = append_edge(text, rq->app->edge);
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
