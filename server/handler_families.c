/*
 * The catalog resources: /v1/families, /v1/families/{family} and
 * /v1/families/{family}/variants/{variant}[/versions]. Thin: parse with
 * proto, change or read through store, answer with proto.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/http.h"
#include "server/log.h"

static enum MHD_Result
unknown_family(struct MHD_Connection *c, struct request *rq)
{
    return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_FAMILY, "family",
                            "family \"%s\" does not exist", rq->params[0]);
}

static enum MHD_Result
unknown_variant(struct MHD_Connection *c, struct request *rq)
{
    return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_VARIANT, "variant",
                            "variant \"%s\" of family \"%s\" does not exist",
                            rq->params[1], rq->params[0]);
}

enum MHD_Result
handle_families_list(struct MHD_Connection *c, struct request *rq)
{
    struct proto_family *f = NULL;
    size_t n = 0;
    enum store_status rc = store_family_list(rq->app->store, &f, &n);

    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "listing families");
    char *json = proto_families_write(f, n);
    free(f);
    return http_reply_json(c, rq, 200, json);
}

/* The family with the newest version of each live variant. */
static enum MHD_Result
reply_family(struct MHD_Connection *c, struct request *rq, unsigned status)
{
    const struct store_snapshot *snap = NULL;
    struct proto_variant *latest = NULL;
    enum store_status rc;
    size_t n = 0;
    char *json;

    rc = store_snapshot_get(rq->app->store, rq->params[0], &snap);
    if (rc == STORE_NOT_FOUND)
        return unknown_family(c, rq);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "reading the family");
    if (snap->variant_count) {
        latest = malloc(snap->variant_count * sizeof(*latest));
        if (!latest) {
            store_snapshot_release(snap);
            return http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                                    "out of memory");
        }
    }
    for (size_t i = 0; i < snap->variant_count; i++)
        if (snap->latest[i])
            latest[n++] = snap->variants[i];
    json = proto_family_write(&snap->family, latest, n);
    free(latest);
    store_snapshot_release(snap);
    return http_reply_json(c, rq, status, json);
}

enum MHD_Result
handle_family_get(struct MHD_Connection *c, struct request *rq)
{
    return reply_family(c, rq, 200);
}

enum MHD_Result
handle_family_put(struct MHD_Connection *c, struct request *rq)
{
    struct proto_family f;
    struct proto_error err;
    bool created = false;
    enum store_status rc;

    memset(&f, 0, sizeof(f));
    if (proto_family_parse(rq->body ? rq->body : "", rq->body_len,
                           &rq->app->cfg.limits, &f, &err) != PROTO_OK)
        return http_reply_problem(c, rq, &err);
    rc = store_family_put(rq->app->store, rq->params[0], &f, &created);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "saving the family");
    snprintf(rq->audit, sizeof(rq->audit), "family %s",
             created ? "created" : "updated");
    log_msg(LOG_INFO, rq->id, "family %s %s", rq->params[0],
            created ? "created" : "updated");
    return reply_family(c, rq, created ? 201 : 200);
}

enum MHD_Result
handle_family_delete(struct MHD_Connection *c, struct request *rq)
{
    enum store_status rc = store_family_delete(rq->app->store, rq->params[0]);

    if (rc == STORE_NOT_FOUND)
        return unknown_family(c, rq);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "deleting the family");
    snprintf(rq->audit, sizeof(rq->audit), "family deleted");
    log_msg(LOG_INFO, rq->id, "family %s deleted", rq->params[0]);
    return http_reply_empty(c, rq, 204);
}

enum MHD_Result
handle_variant_put(struct MHD_Connection *c, struct request *rq)
{
    struct proto_variant *v = calloc(1, sizeof(*v));
    struct proto_error err;
    int64_t version = 0;
    bool created = false;
    enum store_status rc;
    enum MHD_Result ret;
    char *json;

    if (!v)
        return http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                                "out of memory");
    if (proto_variant_parse(rq->body ? rq->body : "", rq->body_len,
                            &rq->app->cfg.limits, v, &err) != PROTO_OK) {
        ret = http_reply_problem(c, rq, &err);
        goto out;
    }
    rc = store_variant_put(rq->app->store, rq->params[0], rq->params[1], v,
                           (int64_t)time(NULL), &version, &created);
    if (rc == STORE_NOT_FOUND) {
        ret = unknown_family(c, rq);
        goto out;
    }
    if (rc == STORE_BLOB_MISSING) {
        ret = http_reply_error(c, rq, PROTO_ERR_BLOB_NOT_UPLOADED, "blob",
                               "blob: sha256:%s is not uploaded; PUT it to "
                               "/v1/blobs/sha256:%s first",
                               v->blob_hex, v->blob_hex);
        goto out;
    }
    if (rc != STORE_OK) {
        ret = http_reply_store_error(c, rq, rc, "publishing the variant");
        goto out;
    }
    snprintf(rq->audit, sizeof(rq->audit),
             created ? "published version %lld, blob sha256:%s"
                     : "unchanged: the body equals version %lld (blob "
                       "sha256:%s)",
             (long long)version, v->blob_hex);
    log_msg(LOG_INFO, rq->id, "variant %s/%s: %s", rq->params[0],
            rq->params[1], rq->audit);
    json = malloc(256);
    if (json)
        snprintf(json, 256,
                 "{\"family\":\"%s\",\"variant\":\"%s\",\"version\":%lld}",
                 rq->params[0], rq->params[1], (long long)version);
    ret = http_reply_json(c, rq, created ? 201 : 200, json);
out:
    free(v);
    return ret;
}

enum MHD_Result
handle_variant_delete(struct MHD_Connection *c, struct request *rq)
{
    enum store_status rc = store_variant_retire(rq->app->store,
                                                rq->params[0], rq->params[1]);

    if (rc == STORE_NOT_FOUND)
        return unknown_variant(c, rq);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "retiring the variant");
    snprintf(rq->audit, sizeof(rq->audit), "variant retired");
    log_msg(LOG_INFO, rq->id, "variant %s/%s retired", rq->params[0],
            rq->params[1]);
    return http_reply_empty(c, rq, 204);
}

enum MHD_Result
handle_variant_versions(struct MHD_Connection *c, struct request *rq)
{
    struct proto_variant *v = NULL;
    struct proto_version_stats *stats = NULL;
    size_t n = 0, sn = 0;
    enum store_status rc;
    char *json;

    rc = store_variant_versions(rq->app->store, rq->params[0], rq->params[1],
                                &v, &n);
    if (rc == STORE_NOT_FOUND)
        return unknown_variant(c, rq);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "reading versions");
    /* What UEs reported about each version (a version published between
     * the two reads is shown without). */
    rc = store_variant_stats(rq->app->store, rq->params[0], rq->params[1],
                             &stats, &sn);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        free(v);
        return http_reply_store_error(c, rq, rc, "reading version events");
    }
    json = proto_versions_stats_write(v, sn >= n ? stats : NULL, n);
    free(stats);
    free(v);
    return http_reply_json(c, rq, 200, json);
}
