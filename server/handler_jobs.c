/*
 * POST /v1/jobs/retry (admin): starts the background worker's failed jobs
 * (deltas, compressed copies) again, and those waiting in a retry's
 * backoff at once. The worker's own schedule is in store/worker.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/http.h"
#include "server/log.h"

enum MHD_Result
handle_jobs_retry(struct MHD_Connection *c, struct request *rq)
{
    uint64_t deltas = 0, compressed = 0;
    enum store_status rc;
    char *json;

    rc = store_jobs_retry(rq->app->store, &deltas, &compressed);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "retrying jobs");
    log_msg(LOG_INFO, rq->id, "jobs retried: %" PRIu64 " deltas, %" PRIu64
                              " compressed copies", deltas, compressed);
    json = malloc(96);
    if (json)
        snprintf(json, 96, "{\"deltas\":%" PRIu64 ",\"compressed\":%" PRIu64
                           "}", deltas, compressed);
    return http_reply_json(c, rq, 200, json);
}
