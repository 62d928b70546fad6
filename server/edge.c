/*
 * Edge mode: pull-through of blobs and deltas from the origin
 * (server/edge.h). One flight per digest (or delta name): a thread of its
 * own fetches (libcurl, streaming into a store upload that hashes as it
 * writes); the requests that asked follow it through edge_pull_wait,
 * parked (their connections suspended by the caller) until it changes.
 * The store keeps the bytes only when they hash to the digest (a delta:
 * when applied to its from blob they give the to digest), so a corrupted
 * or hostile origin can make a request fail but never puts a wrong byte in
 * the cache. Bytes that have arrived are readable before that check, which
 * is why a flight says whether it is done and how. Fetches carry
 * "X-Modeld-Edge: 1", and an edge never pulls through for a request that
 * carries it, so two edges named each other's origin cannot loop.
 *
 * Locking: one mutex (e->mu) for the flight list and every flight's state.
 * park() runs under it, so a pull is parked before any thread can see it
 * to wake it; wake() runs without it, once per park, after the pull left
 * the flight's list.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "server/edge.h"
#include "server/log.h"

#define CONNECT_TIMEOUT_S 5L
/* A stalled origin: under 1 KiB/s for 30 s ends the fetch. */
#define LOW_SPEED_BYTES 1024L
#define LOW_SPEED_S 30L
#define KEY_SIZE (2 * PROTO_HEX_SIZE + 8)
/* Bytes per write callback: each one wakes the answers following the
 * flight, so fewer and larger (libcurl allows up to 512 KiB). */
#define ORIGIN_BUFFER_BYTES (256L << 10)

struct flight {
    struct flight *next;          /* in e->flights until done */
    struct edge *e;
    struct store *st;
    char key[KEY_SIZE];           /* hex, or from-to[.mt] */
    bool is_delta;
    char from_hex[PROTO_HEX_SIZE];
    char to_hex[PROTO_HEX_SIZE];
    enum proto_delta_format format;
    unsigned refs;                /* pulls, and the fetch thread's */
    struct edge_view v;           /* under e->mu */
    struct edge_pull *parked;     /* to wake on the next change */
};

struct edge_pull {
    struct flight *f;
    struct edge_pull *next;       /* in f->parked */
    bool parked;
    void (*wake)(void *);
    void *arg;
};

struct edge {
    char *origin;
    uint64_t cache_max_bytes;
    uint64_t max_blob_bytes;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* a fetch thread ended */
    struct flight *flights;
    unsigned running;             /* fetch threads */
    atomic_bool stopping;
    atomic_uint_fast64_t hits, misses, fetches, origin_bytes, refused,
        failed, evicted, early, cut;
};

/* Where a fetch's body goes: a blob upload or a delta's temporary file. */
struct sink {
    struct flight *f;
    CURL *curl;
    enum store_status (*write)(void *ctx, const void *data, size_t len);
    int (*read_fd)(const void *ctx);
    void *ctx;
    enum store_status rc;
    uint64_t bytes;
    bool started;                 /* the first body byte came */
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

void edge_shutdown(struct edge *e)
{
    if (!e)
        return;
    atomic_store(&e->stopping, true);
    pthread_mutex_lock(&e->mu);
    while (e->running > 0)
        pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

void edge_free(struct edge *e)
{
    if (!e)
        return;
    edge_shutdown(e);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e->origin);
    free(e);
}

void edge_hit(struct edge *e)
{
    atomic_fetch_add(&e->hits, 1);
}

void edge_count_early(struct edge *e)
{
    atomic_fetch_add(&e->early, 1);
}

void edge_count_cut(struct edge *e)
{
    atomic_fetch_add(&e->cut, 1);
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
    out->early = atomic_load(&e->early);
    out->cut = atomic_load(&e->cut);
}

/* ---- following a flight --------------------------------------------------- */

/* The flight changed (e->mu held): a new version, and the pulls parked on
 * it leave its list. Returns them, to wake once the lock is released. */
static struct edge_pull *changed(struct flight *f)
{
    struct edge_pull *list = f->parked;

    f->v.version++;
    f->parked = NULL;
    for (struct edge_pull *p = list; p; p = p->next)
        p->parked = false;
    return list;
}

/* Without the lock. The owner of a parked pull does not run before its
 * wake (its connection is suspended), so p is read before waking it. */
static void wake_all(struct edge_pull *list)
{
    while (list) {
        struct edge_pull *next = list->next;
        void (*wake)(void *) = list->wake;
        void *arg = list->arg;

        wake(arg);
        list = next;
    }
}

bool edge_pull_wait(struct edge_pull *p, uint64_t seen,
                    void (*park)(void *), void (*wake)(void *), void *arg,
                    struct edge_view *out)
{
    struct flight *f = p->f;
    struct edge *e = f->e;

    pthread_mutex_lock(&e->mu);
    if (f->v.version != seen || f->v.done) {
        *out = f->v;
        pthread_mutex_unlock(&e->mu);
        return false;
    }
    p->wake = wake;
    p->arg = arg;
    p->parked = true;
    p->next = f->parked;
    f->parked = p;
    if (park)
        park(arg);
    pthread_mutex_unlock(&e->mu);
    return true;
}

/* e->mu held. Returns f when that was its last reference (free it). */
static struct flight *unref(struct flight *f)
{
    return --f->refs == 0 ? f : NULL;
}

static void flight_free(struct flight *f)
{
    if (!f)
        return;
    if (f->v.fd >= 0)
        close(f->v.fd);
    free(f);
}

void edge_pull_release(struct edge_pull *p)
{
    struct flight *f, *last;

    if (!p)
        return;
    f = p->f;
    pthread_mutex_lock(&f->e->mu);
    if (p->parked) {
        /* Only a daemon stopping without edge_shutdown gets here. */
        log_msg(LOG_ERROR, 0, "BUG: edge: a parked pull released");
        for (struct edge_pull **link = &f->parked; *link;
             link = &(*link)->next) {
            if (*link == p) {
                *link = p->next;
                break;
            }
        }
    }
    last = unref(f);
    pthread_mutex_unlock(&f->e->mu);
    flight_free(last);
    free(p);
}

/* A blocking follower, for a fetch thread that needs another flight (a
 * delta's from blob): parks nothing, waits on a condition. */
struct blocker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
};

static void blocker_wake(void *arg)
{
    struct blocker *b = arg;

    pthread_mutex_lock(&b->mu);
    b->woken = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Follows p until its flight is done; its result. */
static enum edge_result follow_to_end(struct edge_pull *p)
{
    struct blocker b = { .woken = false };
    struct edge_view v;
    uint64_t seen = 0;

    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    for (;;) {
        b.woken = false;
        if (edge_pull_wait(p, seen, NULL, blocker_wake, &b, &v)) {
            pthread_mutex_lock(&b.mu);
            while (!b.woken)
                pthread_cond_wait(&b.cv, &b.mu);
            pthread_mutex_unlock(&b.mu);
            continue;
        }
        seen = v.version;
        if (v.done)
            break;
    }
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    return v.result;
}

/* ---- the fetch -------------------------------------------------------------- */

/* The origin's answer has begun (first body byte): a 200 of a size this
 * edge takes. Publishes the read descriptor and the size. */
static bool body_begins(struct edge *e, struct sink *s)
{
    long status = 0;
    curl_off_t length = -1;
    struct edge_pull *woken;
    int fd;

    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        return false;             /* the status decides; nothing kept */
    curl_easy_getinfo(s->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    if (length > 0 && (uint64_t)length > e->max_blob_bytes) {
        s->rc = STORE_TOO_LARGE;
        return false;
    }
    /* Without a descriptor or a length (chunked), the followers wait for
     * the end and read the kept file. */
    fd = s->read_fd(s->ctx);
    pthread_mutex_lock(&e->mu);
    s->f->v.fd = fd;
    if (fd >= 0 && length > 0) {
        s->f->v.size_known = true;
        s->f->v.size = (uint64_t)length;
    }
    woken = changed(s->f);
    pthread_mutex_unlock(&e->mu);
    wake_all(woken);
    return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct sink *s = ctx;
    struct edge *e = s->f->e;
    struct edge_pull *woken;
    size_t len = size * nmemb;

    if (s->rc != STORE_OK)
        return 0;
    if (!s->started) {
        if (!body_begins(e, s))
            return 0;             /* ends the transfer */
        s->started = true;
    }
    s->rc = s->write(s->ctx, data, len);
    if (s->rc != STORE_OK)
        return 0;
    s->bytes += len;
    /* After the write: a follower reads only what is in the file. */
    pthread_mutex_lock(&e->mu);
    s->f->v.arrived = s->bytes;
    woken = changed(s->f);
    pthread_mutex_unlock(&e->mu);
    wake_all(woken);
    return len;
}

/* Ends the transfer when the edge shuts down. */
static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct edge *e = ctx;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&e->stopping) ? 1 : 0;
}

static enum store_status upload_write(void *ctx, const void *data,
                                      size_t len)
{
    return store_upload_write(ctx, data, len);
}

static int upload_read_fd(const void *ctx)
{
    return store_upload_read_fd(ctx);
}

static enum store_status delta_write(void *ctx, const void *data, size_t len)
{
    return store_delta_in_write(ctx, data, len);
}

static int delta_read_fd(const void *ctx)
{
    return store_delta_in_read_fd(ctx);
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
    s->curl = curl;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, e);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, ORIGIN_BUFFER_BYTES);
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
    } else if (atomic_load(&e->stopping)) {
        snprintf(err, err_len, "fetching %s: ended by shutdown", url);
    } else if (status != 200 && status != 0) {
        snprintf(err, err_len, "fetching %s: HTTP %ld", url, status);
    } else if (cc != CURLE_OK || s->rc != STORE_OK) {
        snprintf(err, err_len, "fetching %s: %s (HTTP %ld)", url,
                 cc != CURLE_OK ? curl_easy_strerror(cc)
                                : store_errmsg(st),
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

static enum edge_result join(struct edge *e, struct store *st,
                             const char *from_hex, const char *to_hex,
                             enum proto_delta_format format,
                             struct edge_pull **out);

/* The one fetch of a flight, verified by the store before it keeps it. */
static enum edge_result fetch(struct edge *e, struct flight *f, char *err,
                              size_t err_len)
{
    struct store *st = f->st;
    char path[512];
    struct store_upload *up = NULL;
    struct store_delta_in *in = NULL;
    struct sink s = { .f = f, .rc = STORE_OK };
    enum edge_result result;
    enum store_status rc;
    bool created = false;
    uint64_t size = 0;

    if (f->is_delta) {
        /* A delta is verified by applying it to its from blob: that
         * blob first (here, or pulled through itself). */
        struct edge_pull *p = NULL;

        result = join(e, st, NULL, f->from_hex, PROTO_DELTA_ZSTD_PATCH, &p);
        if (result == EDGE_FETCHED && p)
            result = follow_to_end(p);
        edge_pull_release(p);
        if (result != EDGE_FETCHED) {
            snprintf(err, err_len, "the delta's from blob sha256:%s could "
                                   "not be pulled through",
                     f->from_hex);
            return result == EDGE_NOT_FOUND ? EDGE_FAILED : result;
        }
        snprintf(path, sizeof(path), "/v1/deltas/sha256:%s/sha256:%s%s",
                 f->from_hex, f->to_hex,
                 f->format == PROTO_DELTA_TENSOR ? "?format=modeld-tensor/1"
                                                 : "");
        rc = store_delta_in_begin(st, e->max_blob_bytes, &in);
        s.write = delta_write;
        s.read_fd = delta_read_fd;
        s.ctx = in;
    } else {
        snprintf(path, sizeof(path), "/v1/blobs/sha256:%s", f->to_hex);
        rc = store_upload_begin(st, f->to_hex, e->max_blob_bytes, &up);
        s.write = upload_write;
        s.read_fd = upload_read_fd;
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
    /* A blob's digest is known before it is made durable: the answers
     * following it may end now, while finish syncs and records it. */
    if (up) {
        struct edge_pull *woken;

        rc = store_upload_check(up);
        if (rc == STORE_OK) {
            pthread_mutex_lock(&e->mu);
            f->v.verified = true;
            woken = changed(f);
            pthread_mutex_unlock(&e->mu);
            wake_all(woken);
        } else if (rc == STORE_DIGEST_MISMATCH) {
            store_upload_abort(up);
            snprintf(err, err_len, "origin sent bytes for %s that do not "
                                   "verify; refused, nothing kept", path);
            return EDGE_REFUSED;
        }
    }
    /* finish frees the upload, whatever it says */
    rc = f->is_delta ? store_delta_in_finish(in, f->from_hex, f->to_hex,
                                             f->format)
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

/* A flight's thread: fetch, trim the cache, tell the followers. */
static void *run(void *arg)
{
    struct flight *f = arg, *last;
    struct edge *e = f->e;
    struct edge_pull *woken;
    enum edge_result result;
    uint64_t evicted = 0;
    char err[8192] = "";         /* a URL, a path and a reason */

    result = fetch(e, f, err, sizeof(err));
    if (result == EDGE_REFUSED)
        atomic_fetch_add(&e->refused, 1);
    else if (result == EDGE_FAILED)
        atomic_fetch_add(&e->failed, 1);
    if (result != EDGE_FETCHED)
        log_msg(result == EDGE_NOT_FOUND ? LOG_INFO : LOG_ERROR, 0,
                "edge: %s", err);
    /* Before the flight ends (its answers may have ended already, once
     * the digest matched): a request after it finds the bound held. */
    if (result == EDGE_FETCHED && e->cache_max_bytes &&
        store_blob_cache_trim(f->st, e->cache_max_bytes, f->key,
                              &evicted) == STORE_OK)
        atomic_fetch_add(&e->evicted, evicted);

    pthread_mutex_lock(&e->mu);
    for (struct flight **link = &e->flights; *link; link = &(*link)->next) {
        if (*link == f) {
            *link = f->next;
            break;
        }
    }
    f->v.done = true;
    f->v.result = result;
    if (result == EDGE_FETCHED)
        f->v.verified = true;
    woken = changed(f);
    last = unref(f);
    pthread_mutex_unlock(&e->mu);
    wake_all(woken);
    flight_free(last);

    pthread_mutex_lock(&e->mu);
    e->running--;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Is it in the store already? */
static bool present(struct store *st, const struct flight *f)
{
    enum store_status rc;
    uint64_t size;
    int64_t mtime;
    int fd = -1;

    rc = f->is_delta ? store_delta_format_open(st, f->from_hex, f->to_hex,
                                               f->format, &fd, &size,
                                               &mtime)
                     : store_blob_open(st, f->to_hex, &fd, &size, &mtime);
    if (fd >= 0)
        close(fd);
    return rc == STORE_OK;
}

/* One flight per key: joins the one in the air or starts one. from_hex
 * NULL: the blob to_hex. */
static enum edge_result join(struct edge *e, struct store *st,
                             const char *from_hex, const char *to_hex,
                             enum proto_delta_format format,
                             struct edge_pull **out)
{
    struct edge_pull *p = calloc(1, sizeof(*p));
    struct flight *f = NULL, *probe = NULL;
    pthread_attr_t attr;
    pthread_t tid;
    char key[KEY_SIZE];
    bool started = false;

    *out = NULL;
    if (from_hex)
        snprintf(key, sizeof(key), "%s-%s%s", from_hex, to_hex,
                 format == PROTO_DELTA_TENSOR ? ".mt" : "");
    else
        snprintf(key, sizeof(key), "%s", to_hex);
    probe = calloc(1, sizeof(*probe));
    if (!p || !probe) {
        free(p);
        free(probe);
        return EDGE_FAILED;
    }
    probe->e = e;
    probe->st = st;
    probe->v.fd = -1;
    probe->v.version = 1;
    probe->v.started_s = (int64_t)time(NULL);
    probe->is_delta = from_hex != NULL;
    snprintf(probe->key, sizeof(probe->key), "%s", key);
    if (from_hex)
        snprintf(probe->from_hex, sizeof(probe->from_hex), "%s", from_hex);
    snprintf(probe->to_hex, sizeof(probe->to_hex), "%s", to_hex);
    probe->format = format;

    pthread_mutex_lock(&e->mu);
    for (f = e->flights; f; f = f->next)
        if (strcmp(f->key, key) == 0)
            break;
    if (!f) {
        /* Under the lock: a flight that ended has put its file in place
         * before leaving the list, so this sees it. */
        if (atomic_load(&e->stopping) || present(st, probe)) {
            bool here = !atomic_load(&e->stopping);

            pthread_mutex_unlock(&e->mu);
            free(p);
            free(probe);
            return here ? EDGE_FETCHED : EDGE_FAILED;
        }
        f = probe;
        probe = NULL;
        f->refs = 1;              /* the thread's */
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, run, f) == 0) {
            f->next = e->flights;
            e->flights = f;
            e->running++;
            started = true;
        }
        pthread_attr_destroy(&attr);
        if (!started) {
            pthread_mutex_unlock(&e->mu);
            log_msg(LOG_ERROR, 0, "edge: cannot start a fetch thread");
            free(f);
            free(p);
            return EDGE_FAILED;
        }
    }
    f->refs++;
    p->f = f;
    pthread_mutex_unlock(&e->mu);
    free(probe);
    atomic_fetch_add(&e->misses, 1);
    *out = p;
    return EDGE_FETCHED;
}

enum edge_result edge_pull_blob(struct edge *e, struct store *st,
                                const char hex[PROTO_HEX_SIZE],
                                struct edge_pull **out)
{
    return join(e, st, NULL, hex, PROTO_DELTA_ZSTD_PATCH, out);
}

enum edge_result edge_pull_delta(struct edge *e, struct store *st,
                                 const char from_hex[PROTO_HEX_SIZE],
                                 const char to_hex[PROTO_HEX_SIZE],
                                 enum proto_delta_format format,
                                 struct edge_pull **out)
{
    return join(e, st, from_hex, to_hex, format, out);
}
