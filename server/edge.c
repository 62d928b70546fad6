/*
 * Edge mode: pull-through of blobs and deltas from the origin
 * (server/edge.h). One flight per digest (or delta name): the first request fetches (libcurl, streaming into a
 * store upload that hashes as it writes), later ones wait for its result.
 * The store keeps the bytes only when they hash to the digest (a delta:
 * when applied to its from blob they give the to digest), so a
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
#include <unistd.h>

#include <curl/curl.h>

#include "server/edge.h"

#define CONNECT_TIMEOUT_S 5L
/* A stalled origin: under 1 KiB/s for 30 s ends the fetch. */
#define LOW_SPEED_BYTES 1024L
#define LOW_SPEED_S 30L

struct flight {
    struct flight *next;
    char key[2 * PROTO_HEX_SIZE + 8]; /* hex, or from-to[.mt] */
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

/* Where a fetch's body goes: a blob upload or a delta's temporary file. */
struct sink {
    enum store_status (*write)(void *ctx, const void *data, size_t len);
    void *ctx;
    enum store_status rc;
    uint64_t bytes;
};

/* What a flight fetches: the blob to_hex, or a
 * delta from from_hex to to_hex in format. */
struct want {
    const char *from_hex;         /* NULL: the blob to_hex */
    const char *to_hex;
    enum proto_delta_format format;
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
    s->rc = s->write(s->ctx, data, len);
    if (s->rc != STORE_OK)
        return 0;                 /* ends the transfer */
    s->bytes += len;
    return len;
}

static enum store_status upload_write(void *ctx, const void *data,
                                      size_t len)
{
    return store_upload_write(ctx, data, len);
}

static enum store_status delta_write(void *ctx, const void *data, size_t len)
{
    return store_delta_in_write(ctx, data, len);
}

/* Origin GET of path streamed into s: EDGE_FETCHED when all of a 200
 * went in. */
static enum edge_result transfer(struct edge *e, struct store *st,
                                 const char *path, struct sink *s,
                                 char *err, size_t err_len)
{
    char url[4096];
    struct curl_slist *hdrs = NULL;
    enum edge_result result = EDGE_FAILED;
    long status = 0;
    CURLcode cc;
    CURL *curl;

    snprintf(url, sizeof(url), "%s%s", e->origin, path);
    curl = curl_easy_init();
    hdrs = curl_slist_append(NULL, "X-Modeld-Edge: 1");
    if (!curl || !hdrs) {
        snprintf(err, err_len, "out of memory");
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_S);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 0L);
    atomic_fetch_add(&e->fetches, 1);
    cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    atomic_fetch_add(&e->origin_bytes, s->bytes);
    if (status == 404) {
        snprintf(err, err_len, "origin has no %s", path);
        result = EDGE_NOT_FOUND;
    } else if (s->rc == STORE_TOO_LARGE) {
        snprintf(err, err_len, "origin's %s is over max_upload_bytes", path);
    } else if (cc != CURLE_OK || status != 200 || s->rc != STORE_OK) {
        snprintf(err, err_len, "fetching %s: %s (HTTP %ld)", url,
                 cc != CURLE_OK ? curl_easy_strerror(cc)
                                : s->rc != STORE_OK ? store_errmsg(st) : "",
                 status);
    } else {
        result = EDGE_FETCHED;
    }
out:
    curl_slist_free_all(hdrs);
    if (curl)
        curl_easy_cleanup(curl);
    return result;
}

/* The one fetch of a flight, verified by the store before it keeps it. */
static enum edge_result fetch(struct edge *e, struct store *st,
                              const struct want *w, char *err,
                              size_t err_len)
{
    char path[512];
    struct store_upload *up = NULL;
    struct store_delta_in *in = NULL;
    struct sink s = { .rc = STORE_OK };
    enum edge_result result;
    enum store_status rc;
    bool created = false;
    uint64_t size = 0;

    if (w->from_hex) {
        /* A delta is verified by applying it to its from blob: that
         * blob first (here, or pulled through itself). */
        int fd = -1;
        int64_t mtime;

        rc = store_blob_open(st, w->from_hex, &fd, &size, &mtime);
        if (fd >= 0)
            close(fd);
        if (rc == STORE_NOT_FOUND) {
            result = edge_fetch_blob(e, st, w->from_hex, err, err_len);
            if (result != EDGE_FETCHED)
                return result == EDGE_NOT_FOUND ? EDGE_FAILED : result;
        }
        snprintf(path, sizeof(path), "/v1/deltas/sha256:%s/sha256:%s%s",
                 w->from_hex, w->to_hex,
                 w->format == PROTO_DELTA_TENSOR ? "?format=modeld-tensor/1"
                                                 : "");
        rc = store_delta_in_begin(st, e->max_blob_bytes, &in);
        s.write = delta_write;
        s.ctx = in;
    } else {
        snprintf(path, sizeof(path), "/v1/blobs/sha256:%s", w->to_hex);
        rc = store_upload_begin(st, w->to_hex, e->max_blob_bytes, &up);
        s.write = upload_write;
        s.ctx = up;
    }
    if (rc != STORE_OK) {
        snprintf(err, err_len, "starting the upload: %s", store_errmsg(st));
        return EDGE_FAILED;
    }
    result = transfer(e, st, path, &s, err, err_len);
    if (result != EDGE_FETCHED) {
        store_upload_abort(up);
        store_delta_in_abort(in);
        return result;
    }
    /* finish frees the upload, whatever it says */
    rc = w->from_hex ? store_delta_in_finish(in, w->from_hex, w->to_hex,
                                             w->format)
                     : store_upload_finish(up, &created, &size);
    if (rc == STORE_DIGEST_MISMATCH) {
        snprintf(err, err_len, "origin sent bytes for %s that do not "
                               "verify; refused, nothing kept", path);
        return EDGE_REFUSED;
    }
    if (rc != STORE_OK) {
        snprintf(err, err_len, "keeping %s: %s", path, store_errmsg(st));
        return EDGE_FAILED;
    }
    return EDGE_FETCHED;
}

/* One flight per key: the first caller fetches, the others wait for its
 * result. */
static enum edge_result fly(struct edge *e, struct store *st,
                            const struct want *w, char *err, size_t err_len)
{
    char key[2 * PROTO_HEX_SIZE + 8];
    struct flight *f;
    enum edge_result result;
    uint64_t evicted = 0;

    if (w->from_hex)
        snprintf(key, sizeof(key), "%s-%s%s", w->from_hex, w->to_hex,
                 w->format == PROTO_DELTA_TENSOR ? ".mt" : "");
    else
        snprintf(key, sizeof(key), "%s", w->to_hex);
    atomic_fetch_add(&e->misses, 1);
    err[0] = '\0';
    pthread_mutex_lock(&e->mu);
    for (f = e->flights; f; f = f->next)
        if (strcmp(f->key, key) == 0)
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
            snprintf(err, err_len, "the shared fetch of %s failed", key);
        return result;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        pthread_mutex_unlock(&e->mu);
        snprintf(err, err_len, "out of memory");
        return EDGE_FAILED;
    }
    snprintf(f->key, sizeof(f->key), "%s", key);
    f->waiters = 1;
    f->next = e->flights;
    e->flights = f;
    pthread_mutex_unlock(&e->mu);

    result = fetch(e, st, w, err, err_len);
    if (result == EDGE_REFUSED)
        atomic_fetch_add(&e->refused, 1);
    else if (result == EDGE_FAILED)
        atomic_fetch_add(&e->failed, 1);
    if (result == EDGE_FETCHED && e->cache_max_bytes &&
        store_blob_cache_trim(st, e->cache_max_bytes, key, &evicted) ==
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

enum edge_result edge_fetch_blob(struct edge *e, struct store *st,
                                 const char hex[PROTO_HEX_SIZE], char *err,
                                 size_t err_len)
{
    const struct want w = { .to_hex = hex };

    return fly(e, st, &w, err, err_len);
}

enum edge_result edge_fetch_delta(struct edge *e, struct store *st,
                                  const char from_hex[PROTO_HEX_SIZE],
                                  const char to_hex[PROTO_HEX_SIZE],
                                  enum proto_delta_format format, char *err,
                                  size_t err_len)
{
    const struct want w = { .from_hex = from_hex, .to_hex = to_hex,
                            .format = format };

    return fly(e, st, &w, err, err_len);
}
