/*
 * Edge mode: pull-through of blobs from the origin (server/edge.h). One
 * flight per digest: the first request fetches (libcurl, streaming into a
 * store upload that hashes as it writes), later ones wait for its result.
 * The store keeps the bytes only when they hash to the digest, so a
 * corrupted or hostile origin can make a request fail but never puts a
 * wrong byte in the cache. Fetches carry "X-Modeld-Edge: 1", and an edge
 * never pulls through for a request that carries it, so two edges named
 * each other's origin cannot loop.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "server/edge.h"

#define CONNECT_TIMEOUT_S 5L
/* A stalled origin: under 1 KiB/s for 30 s ends the fetch. */
#define LOW_SPEED_BYTES 1024L
#define LOW_SPEED_S 30L

struct flight {
    struct flight *next;
    char hex[PROTO_HEX_SIZE];
    bool done;
    enum edge_result result;
    unsigned waiters;
};

struct edge {
    char *origin;
    uint64_t cache_max_bytes;
    uint64_t max_blob_bytes;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct flight *flights;
    atomic_uint_fast64_t hits, misses, fetches, origin_bytes, refused,
        failed, evicted;
};

struct sink {
    struct store_upload *up;
    enum store_status rc;
    uint64_t bytes;
};

struct edge *edge_new(const char *origin, uint64_t cache_max_bytes,
                      uint64_t max_blob_bytes)
{
    struct edge *e = calloc(1, sizeof(*e));
    size_t n;

    if (!e)
        return NULL;
    e->origin = strdup(origin);
    if (!e->origin) {
        free(e);
        return NULL;
    }
    n = strlen(e->origin);
    while (n > 0 && e->origin[n - 1] == '/')
        e->origin[--n] = '\0';
    e->cache_max_bytes = cache_max_bytes;
    e->max_blob_bytes = max_blob_bytes;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    return e;
}

void edge_free(struct edge *e)
{
    if (!e)
        return;
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e->origin);
    free(e);
}

void edge_hit(struct edge *e)
{
    atomic_fetch_add(&e->hits, 1);
}

void edge_stats_get(struct edge *e, struct edge_stats *out)
{
    out->hits = atomic_load(&e->hits);
    out->misses = atomic_load(&e->misses);
    out->fetches = atomic_load(&e->fetches);
    out->origin_bytes = atomic_load(&e->origin_bytes);
    out->refused = atomic_load(&e->refused);
    out->failed = atomic_load(&e->failed);
    out->evicted = atomic_load(&e->evicted);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct sink *s = ctx;
    size_t len = size * nmemb;

    if (s->rc != STORE_OK)
        return 0;
    s->rc = store_upload_write(s->up, data, len);
    if (s->rc != STORE_OK)
        return 0;                 /* ends the transfer */
    s->bytes += len;
    return len;
}

/* The one fetch of a flight: origin GET streamed into a store upload. */
static enum edge_result fetch(struct edge *e, struct store *st,
                              const char *hex, char *err, size_t err_len)
{
    char url[4096];
    struct sink s = { .rc = STORE_OK };
    struct curl_slist *hdrs = NULL;
    enum edge_result result = EDGE_FAILED;
    bool created = false;
    uint64_t size = 0;
    long status = 0;
    CURLcode cc;
    CURL *curl;
    enum store_status rc;

    snprintf(url, sizeof(url), "%s/v1/blobs/sha256:%s", e->origin, hex);
    rc = store_upload_begin(st, hex, e->max_blob_bytes, &s.up);
    if (rc != STORE_OK) {
        snprintf(err, err_len, "starting the upload: %s", store_errmsg(st));
        return EDGE_FAILED;
    }
    curl = curl_easy_init();
    hdrs = curl_slist_append(NULL, "X-Modeld-Edge: 1");
    if (!curl || !hdrs) {
        snprintf(err, err_len, "out of memory");
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_S);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 0L);
    atomic_fetch_add(&e->fetches, 1);
    cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    atomic_fetch_add(&e->origin_bytes, s.bytes);
    if (status == 404) {
        snprintf(err, err_len, "origin has no sha256:%s", hex);
        result = EDGE_NOT_FOUND;
        goto out;
    }
    if (s.rc == STORE_TOO_LARGE) {
        snprintf(err, err_len, "origin's blob is over max_upload_bytes");
        goto out;
    }
    if (cc != CURLE_OK || status != 200 || s.rc != STORE_OK) {
        snprintf(err, err_len, "fetching %s: %s (HTTP %ld)", url,
                 cc != CURLE_OK ? curl_easy_strerror(cc)
                                : s.rc != STORE_OK ? store_errmsg(st) : "",
                 status);
        goto out;
    }
    rc = store_upload_finish(s.up, &created, &size);
    s.up = NULL;                  /* finish frees it, whatever it says */
    if (rc == STORE_DIGEST_MISMATCH) {
        snprintf(err, err_len, "origin sent bytes that are not sha256:%s; "
                               "refused, nothing kept", hex);
        result = EDGE_REFUSED;
    } else if (rc != STORE_OK) {
        snprintf(err, err_len, "keeping sha256:%s: %s", hex,
                 store_errmsg(st));
    } else {
        result = EDGE_FETCHED;
    }
out:
    store_upload_abort(s.up);
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    return result;
}

enum edge_result edge_fetch_blob(struct edge *e, struct store *st,
                                 const char hex[PROTO_HEX_SIZE], char *err,
                                 size_t err_len)
{
    struct flight *f;
    enum edge_result result;
    uint64_t evicted = 0;

    atomic_fetch_add(&e->misses, 1);
    err[0] = '\0';
    pthread_mutex_lock(&e->mu);
    for (f = e->flights; f; f = f->next)
        if (strcmp(f->hex, hex) == 0)
            break;
    if (f) {
        /* Someone is fetching it: its result is ours. */
        f->waiters++;
        while (!f->done)
            pthread_cond_wait(&e->cv, &e->mu);
        result = f->result;
        if (--f->waiters == 0)
            free(f);
        pthread_mutex_unlock(&e->mu);
        if (result != EDGE_FETCHED)
            snprintf(err, err_len, "the shared fetch of sha256:%s failed",
                     hex);
        return result;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        pthread_mutex_unlock(&e->mu);
        snprintf(err, err_len, "out of memory");
        return EDGE_FAILED;
    }
    snprintf(f->hex, sizeof(f->hex), "%s", hex);
    f->waiters = 1;
    f->next = e->flights;
    e->flights = f;
    pthread_mutex_unlock(&e->mu);

    result = fetch(e, st, hex, err, err_len);
    if (result == EDGE_REFUSED)
        atomic_fetch_add(&e->refused, 1);
    else if (result == EDGE_FAILED)
        atomic_fetch_add(&e->failed, 1);
    if (result == EDGE_FETCHED && e->cache_max_bytes &&
        store_blob_cache_trim(st, e->cache_max_bytes, hex, &evicted) ==
            STORE_OK)
        atomic_fetch_add(&e->evicted, evicted);

    pthread_mutex_lock(&e->mu);
    for (struct flight **link = &e->flights; *link; link = &(*link)->next) {
        if (*link == f) {
            *link = f->next;
            break;
        }
    }
    f->done = true;
    f->result = result;
    pthread_cond_broadcast(&e->cv);
    if (--f->waiters == 0)
        free(f);
    pthread_mutex_unlock(&e->mu);
    return result;
}
