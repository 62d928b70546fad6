/*
 * Rollouts driven by what UEs report, and the admin side of trust:
 * POST /v1/families/{family}/events (public, bounded, rate limited per
 * address), PATCH and DELETE .../variants/{variant}/versions/{version}
 * (scope rollout), GET /v1/audit (scope admin), and the per-version lines
 * of /metrics. The counting, pausing and statistics are store/trust.c's.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "server/http.h"
#include "server/log.h"

#define RATE_SLOTS 4096           /* addresses tracked at once */
#define AUDIT_MAX_ENTRIES 1000
#define METRIC_MAX_VERSIONS 64    /* bounded labels */
#define METRIC_MAX_CLASSES 4

/* ---- the per-address rate limit -------------------------------------------- */

/*
 * A fixed table of per-minute counters, one slot per address hash: memory
 * stays at RATE_SLOTS slots whatever the number of clients. Two addresses
 * that share a slot take it from each other (each reset starts a fresh
 * minute), which can only let a client through, never block one unfairly
 * for longer than a minute.
 */
struct rate_slot {
    uint64_t key;
    int64_t minute;
    unsigned count;
};

struct ratelimit {
    pthread_mutex_t mu;
    struct rate_slot slots[RATE_SLOTS];
};

struct ratelimit *
ratelimit_new(void)
{
    struct ratelimit *r = calloc(1, sizeof(*r));

    if (r)
        pthread_mutex_init(&r->mu, NULL);
    return r;
}

void
ratelimit_free(struct ratelimit *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/*
 * The key of a client address for the rate limit: the IPv4 address, or
 * the /64 prefix of an IPv6 one. One IPv6 host is routinely given a whole
 * /64 and may pick any address in it, so a per-/128 limit would not
 * bound it at all; an IPv4-mapped address counts as its IPv4 address.
 */
uint64_t
ratelimit_key(const struct sockaddr *sa)
{
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0,
                                                0, 0, 0, 0, 0xff, 0xff};
    uint64_t h = PROTO_FNV1A64_OFFSET;

    if (!sa)
        return h;
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a =
            ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;

        if (memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0)
            return proto_fnv1a64_add(h, a + 12, 4);
        return proto_fnv1a64_add(h, a, 8);
    }
    if (sa->sa_family == AF_INET)
        return proto_fnv1a64_add(
            h, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    return h;
}

static uint64_t
client_key(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    return ratelimit_key(info ? info->client_addr : NULL);
}

/* Counts one request of key; false when over per_minute this minute, with
 * the seconds until the next minute in *out_retry_s. */
static bool
ratelimit_take(struct ratelimit *r, uint64_t key, unsigned per_minute,
               unsigned *out_retry_s)
{
    time_t now = time(NULL);
    int64_t minute = (int64_t)now / 60;
    struct rate_slot *s = &r->slots[key % RATE_SLOTS];
    bool ok;

    pthread_mutex_lock(&r->mu);
    if (s->key != key || s->minute != minute) {
        s->key = key;
        s->minute = minute;
        s->count = 0;
    }
    ok = s->count < per_minute;
    if (ok)
        s->count++;
    pthread_mutex_unlock(&r->mu);
    *out_retry_s = (unsigned)(60 - now % 60);
    return ok;
}

/* ---- events ---------------------------------------------------------------- */

enum { EVENT_COUNTED, EVENT_REPEAT, EVENT_REFUSED };

/* 404 for an event the catalog does not know, naming what is missing:
 * the family, the variant or only the version. */
static enum MHD_Result
unknown_event_target(struct MHD_Connection *c, struct request *rq,
                     const struct proto_event *ev)
{
    const struct store_snapshot *snap = NULL;
    enum store_status rc;
    bool variant = false;

    rc = store_snapshot_get(rq->app->store, rq->params[0], &snap);
    if (rc == STORE_NOT_FOUND)
        return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_FAMILY, "family",
                                "family \"%s\" does not exist",
                                rq->params[0]);
    for (size_t i = 0; rc == STORE_OK && i < snap->variant_count && !variant;
         i++)
        variant = strcmp(snap->variants[i].name, ev->variant) == 0;
    for (size_t i = 0; rc == STORE_OK && i < snap->older_count && !variant;
         i++)
        variant = strcmp(snap->older[i].name, ev->variant) == 0;
    if (rc == STORE_OK)
        store_snapshot_release(snap);
    if (rc == STORE_OK && !variant)
        return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_VARIANT, "variant",
                                "family \"%s\" has no variant \"%s\"",
                                rq->params[0], ev->variant);
    return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_VERSION, "version",
                            "family \"%s\" has no variant \"%s\" version "
                            "%" PRId64,
                            rq->params[0], ev->variant, ev->version);
}

enum MHD_Result
handle_events_post(struct MHD_Connection *c, struct request *rq)
{
    struct app *app = rq->app;
    struct proto_event ev;
    struct proto_error err;
    bool counted = false, paused = false;
    enum store_status rc;
    unsigned retry = 0;

    if (app->event_limit &&
        !ratelimit_take(app->event_limit, client_key(c),
                        app->cfg.events_per_minute_per_ip, &retry)) {
        rq->retry_after_s = retry;
        return http_reply_error(c, rq, PROTO_ERR_RATE_LIMITED, "",
                                "at most %u event reports per address and "
                                "minute",
                                app->cfg.events_per_minute_per_ip);
    }
    if (proto_event_parse(rq->body ? rq->body : "", rq->body_len,
                          &app->cfg.limits, &ev, &err) != PROTO_OK)
        return http_reply_problem(c, rq, &err);
    /* A receipt vouches for the UE id, version and digest it was given
     * for; the digest it covers is the one the event names (the store
     * checks that it is the version's). */
    ev.verified = ev.has_receipt && ev.has_digest &&
                  store_receipt_check(app->store, ev.ue, rq->params[0],
                                      ev.variant, ev.version, ev.digest_hex,
                                      ev.receipt);
    rc = store_event_add(app->store, rq->params[0], &ev, (int64_t)time(NULL),
                         &counted, &paused);
    if (rc == STORE_NOT_FOUND) {
        atomic_fetch_add(&app->events[ev.kind][EVENT_REFUSED], 1);
        return unknown_event_target(c, rq, &ev);
    }
    if (rc == STORE_MISMATCH) {
        atomic_fetch_add(&app->events[ev.kind][EVENT_REFUSED], 1);
        return http_reply_error(c, rq, PROTO_ERR_BAD_FIELD, "digest",
                                "digest: sha256:%s is not the blob of %s "
                                "version %" PRId64,
                                ev.digest_hex, ev.variant, ev.version);
    }
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "recording the event");
    atomic_fetch_add(&app->events[ev.kind][counted ? EVENT_COUNTED
                                                   : EVENT_REPEAT],
                     1);
    atomic_fetch_add(&app->receipts[ev.verified      ? APP_RECEIPT_VALID
                                    : ev.has_receipt ? APP_RECEIPT_INVALID
                                                     : APP_RECEIPT_MISSING],
                     1);
    if (paused)
        log_msg(LOG_WARN, rq->id,
                "rollout of %s/%s version %" PRId64 " paused: failure share "
                "reached rollout_max_failure_share",
                rq->params[0], ev.variant, ev.version);
    {
        char *json = malloc(64);

        if (json)
            snprintf(json, 64,
                     "{\"counted\":%s,\"paused\":%s,\"verified\":%s}",
                     counted ? "true" : "false", paused ? "true" : "false",
                     ev.verified ? "true" : "false");
        return http_reply_json(c, rq, 202, json);
    }
}

/* ---- versions -------------------------------------------------------------- */

/* The {version} segment: 1..2^53 in plain decimal. */
static bool
parse_version(const char *s, int64_t *out)
{
    int64_t v = 0;

    if (!*s || *s == '0' || strlen(s) > 16)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return v <= ((int64_t)1 << 53);
}

static enum MHD_Result
bad_version(struct MHD_Connection *c, struct request *rq)
{
    return http_reply_error(c, rq, PROTO_ERR_BAD_FIELD, "version",
                            "version must be a version number (1, 2, ...)");
}

static enum MHD_Result
unknown_version(struct MHD_Connection *c, struct request *rq)
{
    return http_reply_error(c, rq, PROTO_ERR_UNKNOWN_VERSION, "version",
                            "family \"%s\" has no live variant \"%s\" "
                            "version %s",
                            rq->params[0], rq->params[1], rq->params[2]);
}

/* 200 with the version's full metadata as it is now. */
static enum MHD_Result
reply_version(struct MHD_Connection *c, struct request *rq, int64_t version)
{
    struct proto_variant *list = NULL;
    enum MHD_Result ret;
    enum store_status rc;
    size_t n = 0;

    rc = store_variant_versions(rq->app->store, rq->params[0], rq->params[1],
                                &list, &n);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "reading the version");
    for (size_t i = 0; i < n; i++) {
        if (list[i].version == version) {
            ret = http_reply_json(c, rq, 200, proto_variant_write(&list[i]));
            free(list);
            return ret;
        }
    }
    free(list);
    return unknown_version(c, rq);
}

enum MHD_Result
handle_version_patch(struct MHD_Connection *c, struct request *rq)
{
    struct proto_rollout_patch patch;
    struct proto_variant *v = calloc(2, sizeof(*v));
    struct proto_error err;
    enum store_status rc;
    enum MHD_Result ret;
    int64_t version = 0;

    if (!v)
        return http_reply_error(c, rq, PROTO_ERR_INTERNAL, "",
                                "out of memory");
    if (!parse_version(rq->params[2], &version)) {
        ret = bad_version(c, rq);
        goto out;
    }
    if (proto_rollout_patch_parse(rq->body ? rq->body : "", rq->body_len,
                                  &rq->app->cfg.limits, &patch,
                                  &err) != PROTO_OK) {
        ret = http_reply_problem(c, rq, &err);
        goto out;
    }
    rc = store_version_rollout(rq->app->store, rq->params[0], rq->params[1],
                               version, &patch, &v[0], &v[1]);
    if (rc == STORE_NOT_FOUND) {
        ret = unknown_version(c, rq);
        goto out;
    }
    if (rc != STORE_OK) {
        ret = http_reply_store_error(c, rq, rc, "changing the rollout");
        goto out;
    }
    snprintf(rq->audit, sizeof(rq->audit),
             "rollout_percent %u -> %u; paused %s -> %s", v[0].rollout_percent,
             v[1].rollout_percent, v[0].paused ? "true" : "false",
             v[1].paused ? "true" : "false");
    log_msg(LOG_INFO, rq->id, "%s/%s version %" PRId64 ": %s", rq->params[0],
            rq->params[1], version, rq->audit);
    ret = reply_version(c, rq, version);
out:
    free(v);
    return ret;
}

enum MHD_Result
handle_version_delete(struct MHD_Connection *c, struct request *rq)
{
    int64_t version = 0, previous = 0;
    enum store_status rc;

    if (!parse_version(rq->params[2], &version))
        return bad_version(c, rq);
    rc = store_version_retire(rq->app->store, rq->params[0], rq->params[1],
                              version, &previous);
    if (rc == STORE_NOT_FOUND)
        return unknown_version(c, rq);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "retiring the version");
    snprintf(rq->audit, sizeof(rq->audit),
             "retired version %" PRId64 "; holders go back to version %" PRId64,
             version, previous);
    log_msg(LOG_INFO, rq->id, "%s/%s: %s", rq->params[0], rq->params[1],
            rq->audit);
    return http_reply_empty(c, rq, 204);
}

/* ---- audit --------------------------------------------------------------- */

/* The since= query value, percent-decoding %3A (':') and %2B ('+') that
 * clients may send for an RFC 3339 time. */
static bool
since_value(struct MHD_Connection *c, int64_t *out)
{
    const char *raw = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                  "since");
    char buf[64];
    size_t n = 0;

    *out = 0;
    if (!raw)
        return true;
    for (const char *p = raw; *p && n + 1 < sizeof(buf); p++) {
        if (p[0] == '%' && (strncasecmp(p + 1, "3A", 2) == 0 ||
                            strncasecmp(p + 1, "2B", 2) == 0)) {
            buf[n++] = (p[1] == '3') ? ':' : '+';
            p += 2;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
    return strlen(raw) < sizeof(buf) && proto_time_parse(buf, out);
}

enum MHD_Result
handle_audit(struct MHD_Connection *c, struct request *rq)
{
    struct proto_audit_entry *e = NULL;
    size_t n = 0;
    int64_t since = 0;
    enum store_status rc;
    char *json;

    if (!since_value(c, &since))
        return http_reply_error(c, rq, PROTO_ERR_BAD_FIELD, "since",
                                "since must be an RFC 3339 time, e.g. "
                                "2026-12-01T12:00:00Z");
    rc = store_audit_list(rq->app->store, since, AUDIT_MAX_ENTRIES, &e, &n);
    if (rc != STORE_OK)
        return http_reply_store_error(c, rq, rc, "reading the audit log");
    json = proto_audit_write(e, n);
    free(e);
    return http_reply_json(c, rq, 200, json);
}

/* ---- metrics --------------------------------------------------------------- */

char *
rollout_metrics_render(struct app *app)
{
    static const char *const outcomes[] = {"counted", "repeat", "refused"};
    struct store_rollout_metric *m = NULL;
    struct metrics_text t = {0};
    size_t n = 0;

    metrics_text_head(&t, "modeld_events_total", "counter",
                      "UE event reports by kind and outcome (counted, "
                      "repeat: the UE had reported it, refused: unknown "
                      "version or wrong digest).");
    for (unsigned k = 0; k < PROTO_EVENT_KINDS; k++)
        for (unsigned o = 0; o < 3; o++)
            metrics_text_printf(
                &t, "modeld_events_total{event=\"%s\",outcome=\"%s\"} %llu\n",
                proto_event_kind_name((enum proto_event_kind)k), outcomes[o],
                (unsigned long long)atomic_load(&app->events[k][o]));
    metrics_text_head(&t, "modeld_event_receipts_total", "counter",
                      "Accepted (202) UE event reports by receipt (valid: counts "
                      "toward the automatic pause; missing or invalid: "
                      "unverified, counts only with "
                      "rollout_pause_needs_receipt = false).");
    {
        static const char *const results[] = {"valid", "missing", "invalid"};

        for (unsigned r = 0; r < 3; r++)
            metrics_text_printf(
                &t, "modeld_event_receipts_total{result=\"%s\"} %llu\n",
                results[r], (unsigned long long)atomic_load(&app->receipts[r]));
    }
    metrics_text_line(&t, "modeld_transfers_in_progress", "gauge",
                      "Blob and delta downloads in flight.",
                      atomic_load(&app->transfers));
    metrics_text_line(&t, "modeld_transfers_refused_total", "counter",
                      "Downloads refused with 503 beyond max_transfers.",
                      atomic_load(&app->transfers_refused));
    metrics_text_line(&t, "modeld_decisions_deferred_total", "counter",
                      "Transfers deferred by admission (reported load at or "
                      "above admission_load).",
                      atomic_load(&app->deferred));
    if (store_rollout_metrics(app->store, METRIC_MAX_VERSIONS, &m, &n) !=
        STORE_OK)
        n = 0;
    metrics_text_head(&t, "modeld_version_ues", "gauge",
                      "Distinct UEs that reported on a version, by event "
                      "kind (the newest %d versions with reports).",
                      METRIC_MAX_VERSIONS);
    for (size_t i = 0; i < n; i++)
        for (unsigned k = 0; k < PROTO_EVENT_KINDS; k++)
            metrics_text_printf(
                &t, "modeld_version_ues{family=\"%s\",variant=\"%s\","
                    "version=\"%" PRId64 "\",event=\"%s\"} %llu\n",
                m[i].family, m[i].variant, m[i].version,
                proto_event_kind_name((enum proto_event_kind)k),
                (unsigned long long)m[i].stats.counts[k]);
    metrics_text_head(&t, "modeld_version_failure_share", "gauge",
                      "Share of a version's reporting UEs with a failure.");
    for (size_t i = 0; i < n; i++)
        metrics_text_printf(
            &t, "modeld_version_failure_share{family=\"%s\",variant=\"%s\","
                "version=\"%" PRId64 "\"} %g\n",
            m[i].family, m[i].variant, m[i].version,
            proto_failure_share(&m[i].stats));
    metrics_text_head(&t, "modeld_version_paused", "gauge",
                      "Whether a version's rollout is paused.");
    for (size_t i = 0; i < n; i++)
        metrics_text_printf(
            &t, "modeld_version_paused{family=\"%s\",variant=\"%s\","
                "version=\"%" PRId64 "\"} %d\n",
            m[i].family, m[i].variant, m[i].version, m[i].paused ? 1 : 0);
    metrics_text_head(&t, "modeld_version_latency_ms", "gauge",
                      "Measured latency of a version by device class "
                      "(installed events; at most %d classes).",
                      METRIC_MAX_CLASSES);
    for (size_t i = 0; i < n; i++) {
        const struct proto_version_stats *s = &m[i].stats;

        for (size_t j = 0; j < s->latency_count && j < METRIC_MAX_CLASSES;
             j++) {
            static const char *const qs[] = {"0.5", "0.9", "0.99"};
            const double vals[] = {s->latency[j].p50_ms, s->latency[j].p90_ms,
                                   s->latency[j].p99_ms};

            for (unsigned q = 0; q < 3; q++)
                metrics_text_printf(
                    &t, "modeld_version_latency_ms{family=\"%s\","
                        "variant=\"%s\",version=\"%" PRId64 "\",class=\"%s\","
                        "quantile=\"%s\"} %g\n",
                    m[i].family, m[i].variant, m[i].version,
                    s->latency[j].device_class, qs[q], vals[q]);
        }
    }
    free(m);
    return metrics_text_take(&t);
}
