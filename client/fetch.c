/*
 * The client's one job: keep the state directory on the right model.
 * select -> download or delta -> verify -> switch, with retries (backoff
 * with jitter, Retry-After), resumption from the bytes on disk, a fall back
 * from a refused delta to the full model once, and the rename that makes
 * DIR/path name the new model only once it is verified and synced.
 *
 * The state directory:
 *   DIR/lock          flock: one process per directory (released on exit,
 *                     also after kill -9)
 *   DIR/state.json    client/state.c
 *   DIR/models/<hex>  verified models: the current one and the previous one
 *   DIR/partial/...   the transfer in flight (<hex>.model, <from>-<to>.delta)
 *   DIR/path          symlink to models/<hex>: the model to load
 *
 * Order of a switch, each step durable before the next: the model file in
 * models/ (fsync, dir fsync); state.json naming it current; the path
 * symlink (made beside it, renamed over it, dir fsync). A crash between two
 * steps is finished by client_open: path always ends up naming the model
 * state.json calls current.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "client/internal.h"
#include "proto/tensor.h"

#define GFLOPS_MAX_AGE_S (7 * 24 * 3600)
#define EVENT_SIZE 1024
#define PATH_SIZE (PATH_MAX + 512) /* DIR (< PATH_MAX) plus a name */

struct client {
    struct client_options o;
    char dir[PATH_MAX];
    char link[PATH_SIZE];          /* DIR/path */
    int lock_fd;
    struct client_state st;
    struct client_http http;
    bool verify;                      /* ask for and check signed answers */
    struct client_keyring ring;
    char select_path[CLIENT_URL_SIZE];/* the request's @path */
    char device_class[PROTO_TOKEN_SIZE];
    char err[CLIENT_ERR_SIZE];
    volatile sig_atomic_t *stop;
    uint64_t reported_memory;         /* measured, at the last report */
    double reported_compute;          /* the probe's share of its reference
                                         at the last report, -1 none */
    uint64_t memory_override;         /* device.memory_bytes of --report or
                                         --set: the sample; 0 measure */
    double next_memory_s;             /* monotonic: the next sample due */
    char iface[CLIENT_IFACE_SIZE];    /* the default route's interface */
};

void client_options_default(struct client_options *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 10000;
    o->request_timeout_ms = 30000;
    o->stall_timeout_s = 30;
    o->deadline_s = 6 * 3600;
    o->min_rate_bps = 64000;
    o->retries = 6;
    o->backoff_base_ms = 500;
    o->backoff_max_ms = 60000;
    o->max_retry_after_s = 3600;
    o->recheck_jitter = 0.2;
    o->facts_interval_s = 10;
    o->change_margin = 0.25;
    o->rate_window_s = CLIENT_RATE_WINDOW_S;
}

const char *client_errmsg(const struct client *c)
{
    return c->err;
}

const char *client_model_path(const struct client *c)
{
    return c->link;
}

static void emit(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void emit(struct client *c, const char *fmt, ...)
{
    char line[EVENT_SIZE];
    va_list ap;

    if (!c->o.on_event)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->o.on_event(c->o.cb_ctx, line);
}

static enum client_status fail(struct client *c, enum client_status rc,
                               const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum client_status fail(struct client *c, enum client_status rc,
                               const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return rc;
}

static int64_t wall_s(void)
{
    return (int64_t)time(NULL);
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps ms, in steps, returning false early when asked to stop. */
static bool nap(struct client *c, unsigned ms, volatile sig_atomic_t *wake)
{
    double end = mono_s() + ms / 1000.0;

    for (;;) {
        double left = end - mono_s();
        struct timespec ts;

        if (c->stop && *c->stop)
            return false;
        if (wake && *wake)
            return true;
        if (left <= 0)
            return true;
        if (left > 0.1)
            left = 0.1;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(left * 1e9);
        nanosleep(&ts, NULL);
    }
}

static enum client_status save(struct client *c)
{
    return client_state_save(c->dir, &c->st, c->err, sizeof(c->err));
}

static void model_file(const struct client *c, const char *hex, char *out,
                       size_t cap)
{
    snprintf(out, cap, "%s/models/%s", c->dir, hex);
}

/* The codings this client decodes (proto/delta.c, proto/tensor.h), and
 * the suffix of their partial files. */
static const struct coding {
    const char *name;
    bool is_delta;
    const char *suffix;
} codings[] = {
    { "zstd-patch", true, "delta" },
    { "modeld-tensor/1", true, "tensor" },
    { "modeld-bg/1", false, "bg" },
};

static const struct coding *coding_of(const char *name, bool is_delta)
{
    for (size_t i = 0; i < ARRAY_SIZE(codings); i++)
        if (strcmp(codings[i].name, name) == 0 &&
            codings[i].is_delta == is_delta)
            return &codings[i];
    return NULL;
}

static void partial_file(const struct client *c,
                         const struct client_inflight *f, char *out,
                         size_t cap)
{
    const struct coding *k = coding_of(f->coding, f->is_delta);

    if (f->is_delta)
        snprintf(out, cap, "%s/partial/%s-%s.%s", c->dir, f->from_hex,
                 f->target_hex, k ? k->suffix : "delta");
    else
        snprintf(out, cap, "%s/partial/%s.%s", c->dir, f->target_hex,
                 k ? k->suffix : "model");
}

static bool exists(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* DIR/path -> models/<hex>, replaced atomically; hex "" removes it. */
static int point_link(struct client *c, const char *hex)
{
    char target[PATH_MAX], cur[PATH_MAX], tmp[PATH_SIZE];
    ssize_t n = readlink(c->link, cur, sizeof(cur) - 1);

    if (!hex[0]) {
        if (unlink(c->link) != 0 && errno != ENOENT)
            return -1;
        return fileio_fsync_dir(c->dir);
    }
    snprintf(target, sizeof(target), "models/%s", hex);
    if (n > 0) {
        cur[n] = '\0';
        if (strcmp(cur, target) == 0)
            return 0;
    }
    snprintf(tmp, sizeof(tmp), "%s/.path.tmp", c->dir);
    (void)unlink(tmp);
    if (symlink(target, tmp) != 0)
        return -1;
    if (rename(tmp, c->link) != 0) {
        (void)unlink(tmp);
        return -1;
    }
    return fileio_fsync_dir(c->dir);
}

/* Removes models other than current and previous, and partial files other
 * than the one in flight (leftovers of a crash or an abandoned transfer). */
static void prune(struct client *c)
{
    char sub[PATH_SIZE], keep[PATH_SIZE], p[PATH_SIZE + 512];
    DIR *d;
    struct dirent *e;

    snprintf(sub, sizeof(sub), "%s/models", c->dir);
    if ((d = opendir(sub)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (strcmp(e->d_name, c->st.current.hex) == 0 ||
                strcmp(e->d_name, c->st.previous.hex) == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", sub, e->d_name);
            (void)unlink(p);
        }
        closedir(d);
    }
    keep[0] = '\0';
    if (c->st.inflight.active)
        partial_file(c, &c->st.inflight, keep, sizeof(keep));
    snprintf(sub, sizeof(sub), "%s/partial", c->dir);
    if ((d = opendir(sub)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", sub, e->d_name);
            if (strcmp(p, keep) != 0)
                (void)unlink(p);
        }
        closedir(d);
    }
    /* A state.json write a kill interrupted leaves its temporary file
     * (never read: the rename did not happen); we hold the lock. */
    if ((d = opendir(c->dir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, "state.json.tmp-", 15) != 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", c->dir, e->d_name);
            (void)unlink(p);
        }
        closedir(d);
    }
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

/* The request path of the select ("@path"): the server URL's own path,
 * if any, then /v1/families/F/select. */
static void select_path(struct client *c)
{
    const char *p = strstr(c->http.base, "://");
    const char *slash = p ? strchr(p + 3, '/') : NULL;

    snprintf(c->select_path, sizeof(c->select_path),
             "%s/v1/families/%s/select", slash ? slash : "", c->o.family);
}

static enum client_status load_key_file(struct client *c)
{
    FILE *f = fopen(c->o.verify_key_file, "rb");
    char buf[16384];
    size_t n;

    if (!f)
        return fail(c, CLIENT_BAD_ARGS, "cannot read %s: %s",
                    c->o.verify_key_file, strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return client_keyring_parse(buf, n, c->o.verify_kid, &c->ring, c->err,
                                sizeof(c->err));
}

enum client_status client_open(const struct client_options *opts,
                               struct client **out, char *errbuf,
                               size_t errbuf_len)
{
    struct client *c = calloc(1, sizeof(*c));
    enum client_status rc = CLIENT_LOCAL_ERROR;
    char sub[PATH_SIZE];

    if (!c) {
        snprintf(errbuf, errbuf_len, "out of memory");
        return CLIENT_LOCAL_ERROR;
    }
    c->lock_fd = -1;
    c->o = *opts;
    c->memory_override = client_report_memory_override(
        opts->report_json, opts->sets, opts->set_count);
    if (!opts->server_url || !opts->family || !opts->state_dir) {
        rc = fail(c, CLIENT_BAD_ARGS, "server, family and state are needed");
        goto out;
    }
    if (!proto_name_is_valid(opts->family, strlen(opts->family))) {
        rc = fail(c, CLIENT_BAD_ARGS,
                  "family must match [a-z0-9][a-z0-9._-]{0,63}");
        goto out;
    }
    if (strlen(opts->state_dir) + 64 >= sizeof(c->dir)) {
        rc = fail(c, CLIENT_BAD_ARGS, "state directory path too long");
        goto out;
    }
    snprintf(c->dir, sizeof(c->dir), "%s", opts->state_dir);
    snprintf(c->link, sizeof(c->link), "%s/path", c->dir);
    if (client_http_open(&c->http, &c->o, c->err, sizeof(c->err)) != 0) {
        rc = CLIENT_BAD_ARGS;
        goto out;
    }
    select_path(c);
    if (make_dir(c->dir) != 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot create %s: %s", c->dir,
                  strerror(errno));
        goto out;
    }
    snprintf(sub, sizeof(sub), "%s/lock", c->dir);
    c->lock_fd = open(sub, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lock_fd < 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot open %s: %s", sub,
                  strerror(errno));
        goto out;
    }
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR,
                  "%s is in use by another modeld client", c->dir);
        goto out;
    }
    snprintf(sub, sizeof(sub), "%s/models", c->dir);
    if (make_dir(sub) != 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot create %s: %s", sub,
                  strerror(errno));
        goto out;
    }
    snprintf(sub, sizeof(sub), "%s/partial", c->dir);
    if (make_dir(sub) != 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot create %s: %s", sub,
                  strerror(errno));
        goto out;
    }
    rc = client_state_load(c->dir, opts->family, &c->st, c->err,
                           sizeof(c->err));
    if (rc != CLIENT_OK)
        goto out;

    /* Finish what a crash interrupted: models that vanished are forgotten,
     * path names the current model, leftovers go. */
    model_file(c, c->st.current.hex, sub, sizeof(sub));
    if (c->st.current.hex[0] && !exists(sub))
        memset(&c->st.current, 0, sizeof(c->st.current));
    model_file(c, c->st.previous.hex, sub, sizeof(sub));
    if (c->st.previous.hex[0] && !exists(sub))
        memset(&c->st.previous, 0, sizeof(c->st.previous));
    if (point_link(c, c->st.current.hex) != 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot update %s: %s", c->link,
                  strerror(errno));
        goto out;
    }
    prune(c);

    if (opts->verify_key_file) {
        c->verify = true;
        rc = load_key_file(c);
        if (rc != CLIENT_OK)
            goto out;
    } else if (opts->verify_kid) {
        c->verify = true;
    }
    /* The benchmark gives the peak the compute probe scales; a configured
     * device.gflops is the peak instead. */
    if (!opts->no_benchmark &&
        client_report_gflops_override(opts->report_json, opts->sets,
                                      opts->set_count) <= 0 &&
        (c->st.gflops <= 0 || wall_s() - c->st.gflops_at_s > GFLOPS_MAX_AGE_S ||
         c->st.gflops_at_s > wall_s())) {
        c->st.gflops = client_benchmark_gflops();
        c->st.gflops_at_s = wall_s();
        emit(c, "benchmark gflops=%.2f", c->st.gflops);
    }
    rc = save(c);
    if (rc != CLIENT_OK)
        goto out;
    *out = c;
    return CLIENT_OK;
out:
    snprintf(errbuf, errbuf_len, "%s", c->err);
    client_close(c);
    return rc;
}

void client_close(struct client *c)
{
    if (!c)
        return;
    client_http_close(&c->http);
    if (c->lock_fd >= 0)
        close(c->lock_fd); /* releases the flock */
    free(c);
}

/* ---- reports ------------------------------------------------------------ */

/*
 * One free-memory sample into the per-minute lows (client/history.c):
 * device.memory_bytes of --report/--set when they give it (the device's
 * own figure, then constant), else MemAvailable (measured, 0 unknown).
 * The state is saved when the history changed, so that a restart (also
 * after kill -9: the file is replaced atomically) keeps it.
 */
static void sample_memory(struct client *c, uint64_t measured)
{
    uint64_t v = c->memory_override ? c->memory_override : measured;
    unsigned every = c->o.facts_interval_s ? c->o.facts_interval_s : 10;
    bool changed = false;

    c->next_memory_s = mono_s() + every;
    if (v && client_state_add_memory(&c->st, wall_s(), v))
        changed = true;
    /* Compute, at the same times: the probe (a few ms) into the
     * per-minute lows of device.gflops_history; not with --no-benchmark. */
    if (!c->o.no_benchmark &&
        client_state_add_compute(&c->st, wall_s(),
                                 client_facts_compute(&c->o)))
        changed = true;
    if (changed)
        (void)save(c); /* a failure shows at the next save */
}

static enum client_status build_report(struct client *c, const char *nonce,
                                       char **out_json)
{
    struct client_facts facts;
    struct client_report_in in;
    char part[PATH_SIZE];
    struct stat sb;
    enum client_status rc;
    json_t *root;
    const char *cls;

    client_facts_measure(&c->o, &facts);
    snprintf(c->iface, sizeof(c->iface), "%s", facts.route_iface);
    sample_memory(c, facts.memory_bytes);
    if (facts.memory_bytes)
        c->reported_memory = facts.memory_bytes;
    c->reported_compute = client_state_compute_now(&c->st, wall_s(), 1);
    if (c->st.inflight.active) {
        partial_file(c, &c->st.inflight, part, sizeof(part));
        c->st.inflight.bytes_done =
            stat(part, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    }
    memset(&in, 0, sizeof(in));
    in.facts = &facts;
    in.base_json = c->o.report_json;
    in.sets = c->o.sets;
    in.set_count = c->o.set_count;
    in.nonce = nonce;
    in.now_s = wall_s();
    in.compute = !c->o.no_benchmark;
    rc = client_report_make(&in, &c->st, out_json, c->err, sizeof(c->err));
    if (rc != CLIENT_OK)
        return rc;
    root = json_loads(*out_json, 0, NULL);
    cls = json_string_value(
        json_object_get(json_object_get(root, "device"), "class"));
    snprintf(c->device_class, sizeof(c->device_class), "%s", cls ? cls : "");
    json_decref(root);
    return CLIENT_OK;
}

enum client_status client_report_build(struct client *c, char **out_json)
{
    return build_report(c, NULL, out_json);
}

/* ---- requests with retries ---------------------------------------------- */

static bool retryable(long status)
{
    return status == 408 || status == 429 || status >= 500;
}

/* How long to wait before retry attempt: Retry-After when the server gave
 * one (bounded), else backoff with jitter. */
static unsigned wait_ms(struct client *c, unsigned attempt,
                        const struct client_answer *a)
{
    long ra = -1;

    if (a && a->retry_after[0] && (a->status == 429 || a->status == 503))
        ra = client_retry_after_parse(a->retry_after, wall_s());
    if (ra >= 0) {
        if ((unsigned long)ra > c->o.max_retry_after_s)
            ra = (long)c->o.max_retry_after_s;
        return (unsigned)ra * 1000u;
    }
    return client_backoff_ms(attempt, c->o.backoff_base_ms,
                             c->o.backoff_max_ms, client_random());
}

static void note_rtt(struct client *c, const struct client_answer *a)
{
    if (a->rtt_ms >= 0) {
        c->st.rtt_ms = a->rtt_ms;
        c->st.has_rtt = true;
    }
}

/* A request answered with a final (non-retryable) status, or
 * CLIENT_NETWORK after every retry. The caller frees ans->body. */
static enum client_status request(struct client *c, const char *method,
                                  const char *path, const char *body,
                                  struct client_answer *ans)
{
    for (unsigned attempt = 0;; attempt++) {
        enum client_http_rc hr = client_http_request(
            &c->http, method, path, body ? "application/json" : NULL, body,
            ans);
        unsigned ms;

        if (hr == CLIENT_HTTP_LOCAL)
            return fail(c, CLIENT_LOCAL_ERROR, "out of memory");
        if (hr == CLIENT_HTTP_ANSWERED) {
            note_rtt(c, ans);
            if (!retryable(ans->status))
                return CLIENT_OK;
        }
        if (attempt + 1 >= c->o.retries) {
            if (hr == CLIENT_HTTP_ANSWERED)
                return fail(c, CLIENT_NETWORK, "%s %s: status %ld after %u "
                            "attempts", method, path, ans->status,
                            attempt + 1);
            return fail(c, CLIENT_NETWORK, "%s %s: %s (after %u attempts)",
                        method, path, ans->error, attempt + 1);
        }
        ms = wait_ms(c, attempt, hr == CLIENT_HTTP_ANSWERED ? ans : NULL);
        emit(c, "retry request=\"%s %s\" attempt=%u wait_ms=%u reason=\"%s\"",
             method, path, attempt + 1, ms,
             hr == CLIENT_HTTP_ANSWERED ? "status" : ans->error);
        if (hr == CLIENT_HTTP_ANSWERED)
            emit(c, "retry-status status=%ld retry_after=\"%s\"",
                 ans->status, ans->retry_after);
        free(ans->body);
        ans->body = NULL;
        if (!nap(c, ms, NULL))
            return fail(c, CLIENT_NETWORK, "stopped");
    }
}

/* The detail of a problem+json answer, for the message. */
static void problem_detail(const struct client_answer *a, char *out,
                           size_t cap)
{
    json_t *root = a->body ? json_loadb(a->body, a->body_len, 0, NULL) : NULL;
    const char *d = json_string_value(json_object_get(root, "detail"));

    snprintf(out, cap, "%s", d ? d : "no detail");
    json_decref(root);
}

/* ---- keys and signed answers -------------------------------------------- */

static enum client_status ensure_keys(struct client *c)
{
    struct client_answer a;
    struct client_keyring all;
    enum client_status rc;

    if (!c->verify || c->ring.count > 0)
        return CLIENT_OK;
    if (c->st.has_pinned_key && strcmp(c->st.pinned_kid, c->o.verify_kid) == 0) {
        snprintf(c->ring.keys[0].kid, CLIENT_KID_SIZE, "%s", c->st.pinned_kid);
        memcpy(c->ring.keys[0].key, c->st.pinned_key, 32);
        c->ring.count = 1;
        return CLIENT_OK;
    }
    rc = request(c, "GET", "/v1/keys", NULL, &a);
    if (rc != CLIENT_OK)
        return rc;
    if (a.status != 200) {
        free(a.body);
        return fail(c, CLIENT_REFUSED, "GET /v1/keys: status %ld", a.status);
    }
    rc = client_keyring_parse(a.body, a.body_len, NULL, &all, c->err,
                              sizeof(c->err));
    free(a.body);
    if (rc != CLIENT_OK)
        return CLIENT_VERIFY_FAILED;
    for (size_t i = 0; i < all.count; i++) {
        if (strcmp(all.keys[i].kid, c->o.verify_kid) == 0) {
            c->ring.keys[0] = all.keys[i];
            c->ring.count = 1;
            snprintf(c->st.pinned_kid, sizeof(c->st.pinned_kid), "%s",
                     c->o.verify_kid);
            memcpy(c->st.pinned_key, all.keys[i].key, 32);
            c->st.has_pinned_key = true;
            emit(c, "key pinned kid=%s", c->o.verify_kid);
            return save(c);
        }
    }
    return fail(c, CLIENT_VERIFY_FAILED, "GET /v1/keys has no key %s",
                c->o.verify_kid);
}

/* The signature and the Content-Digest, before anything in the body is
 * believed. */
static enum client_status check_signature(struct client *c,
                                          const struct client_answer *a)
{
    struct client_signed s = {
        .status = a->status,
        .method = "POST",
        .path = c->select_path,
        .content_type = a->content_type[0] ? a->content_type : NULL,
        .content_digest = a->content_digest[0] ? a->content_digest : NULL,
        .signature_input = a->signature_input[0] ? a->signature_input : NULL,
        .signature = a->signature[0] ? a->signature : NULL,
        .body = a->body,
        .body_len = a->body_len,
    };

    if (client_signature_verify(&s, &c->ring, c->o.verify_kid, wall_s(),
                                c->err, sizeof(c->err)) != CLIENT_OK)
        return CLIENT_VERIFY_FAILED;
    return CLIENT_OK;
}

/* The signed body's own members: our nonce, not expired, not older than
 * an answer accepted before. */
static enum client_status check_signed_body(struct client *c,
                                            const struct client_decision *d,
                                            const char *nonce)
{
    int64_t now = wall_s();

    if (strcmp(d->nonce, nonce) != 0)
        return fail(c, CLIENT_VERIFY_FAILED,
                    "signed answer: nonce \"%s\" is not ours", d->nonce);
    if (!d->has_expires_at || d->expires_at_s <= now)
        return fail(c, CLIENT_VERIFY_FAILED,
                    "signed answer: expired or no expires_at (%s)",
                    d->expires_at);
    if (!d->has_generation)
        return fail(c, CLIENT_VERIFY_FAILED,
                    "signed answer: no generation");
    if (c->st.has_generation && d->generation < c->st.generation)
        return fail(c, CLIENT_VERIFY_FAILED,
                    "signed answer: generation %" PRId64
                    " is older than %" PRId64 " seen before (a replay?)",
                    d->generation, c->st.generation);
    c->st.generation = d->generation;
    c->st.has_generation = true;
    return CLIENT_OK;
}

/* ---- events ------------------------------------------------------------- */

/* Tells the server what happened, when it has the endpoint; best effort:
 * no retries, failures are only an event line. */
static void post_event(struct client *c, const char *event,
                       const struct client_model_ref *m)
{
    char path[CLIENT_URL_SIZE], digest[PROTO_DIGEST_SIZE];
    struct client_answer a;
    json_t *body;
    char *text;

    if (!m->hex[0])
        return;
    snprintf(path, sizeof(path), "/v1/families/%s/events", c->o.family);
    snprintf(digest, sizeof(digest), "sha256:%s", m->hex);
    body = json_pack("{s:s, s:s, s:I, s:s, s:s}", "ue", c->st.ue, "variant",
                     m->variant, "version", (json_int_t)m->version, "digest",
                     digest, "event", event);
    if (!body)
        return;
    /* The select answer's receipt: what makes a failure count toward
     * pausing the version (README "Event receipts"). */
    if (m->receipt[0])
        json_object_set_new(body, "receipt", json_string(m->receipt));
    if (c->device_class[0])
        json_object_set_new(body, "device",
                            json_pack("{s:s}", "class", c->device_class));
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return;
    if (client_http_request(&c->http, "POST", path, "application/json", text,
                            &a) == CLIENT_HTTP_ANSWERED)
        emit(c, "event %s status=%ld%s", event, a.status,
             a.status == 404 || a.status == 405 ? " (not offered)" : "");
    else
        emit(c, "event %s not sent: %s", event, a.error);
    free(a.body);
    free(text);
}

/* ---- transfer, verify, switch ------------------------------------------- */

static int hash_piece(void *ctx, const void *data, size_t len)
{
    return proto_hasher_update(ctx, data, len) == PROTO_OK ? 0 : -1;
}

static enum client_status hash_file(struct client *c, const char *path,
                                    char out_hex[PROTO_HEX_SIZE])
{
    unsigned char buf[1 << 16];
    struct proto_hasher *h = proto_hasher_new();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    enum client_status rc = CLIENT_LOCAL_ERROR;
    int got;

    if (!h || fd < 0) {
        fail(c, rc, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    got = fileio_read_each(fd, buf, sizeof(buf), hash_piece, h);
    if (got > 0)
        goto out;
    if (got < 0 || proto_hasher_final(h, out_hex) != PROTO_OK) {
        fail(c, rc, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    rc = CLIENT_OK;
out:
    if (fd >= 0)
        close(fd);
    proto_hasher_free(h);
    return rc;
}

static void on_validator(void *ctx, const char *validator)
{
    struct client *c = ctx;

    snprintf(c->st.inflight.validator, sizeof(c->st.inflight.validator), "%s",
             validator);
    (void)save(c); /* a failure shows at the next save */
}

/* A throughput measurement of the transfer (a window of a long one, or
 * what a request moved): kept with its time and link, saved. */
static void on_sample(void *ctx, double bps)
{
    struct client *c = ctx;

    client_state_add_downlink(&c->st, wall_s(), c->iface, bps);
    emit(c, "throughput bps=%.0f", bps);
    (void)save(c);
}

/* While bytes flow: free memory keeps being sampled. */
static void on_tick(void *ctx)
{
    struct client *c = ctx;

    if (mono_s() >= c->next_memory_s)
        sample_memory(c, c->memory_override ? 0
                                            : client_facts_memory(&c->o));
}

/*
 * The transfer's deadline passed (README "Transfer deadline"): the fetch
 * ends with CLIENT_NETWORK; the bytes on disk and the state's transfer in
 * flight stay, so that the next fetch (or select: "fetching") resumes
 * from them; the throughput measured meanwhile is in the history, so the
 * next decision knows how slow the link was.
 */
static enum client_status deadline(struct client *c,
                                   struct client_download *d, double limit_s,
                                   double spent_s)
{
    const struct client_inflight *f = &c->st.inflight;
    uint64_t done = d->have + d->received;

    d->deadline_hit = true;
    emit(c, "deadline after_s=%.1f bytes=%" PRIu64 " of=%" PRIu64
         " limit_s=%.0f; the partial file is kept",
         spent_s, done, f->size_bytes, limit_s);
    return fail(c, CLIENT_NETWORK,
                "transfer deadline: %" PRIu64 " of %" PRIu64 " bytes after "
                "%.0f s (the limit: %d s plus the missing bytes at "
                "--min-rate-bps %.0f, at most --deadline-s %u: %.0f s); the "
                "partial file is kept for a resume",
                done, f->size_bytes, spent_s, CLIENT_DEADLINE_GRACE_S,
                c->o.min_rate_bps, c->o.deadline_s, limit_s);
}

/*
 * Brings the in-flight transfer's bytes to disk: resumes from what the
 * partial file holds, retries network failures (the attempt count starts
 * again whenever bytes arrived), honours Retry-After.
 * CLIENT_REFUSED with *out_status for a final 4xx (a delta that is gone).
 */
static enum client_status transfer(struct client *c, long *out_status,
                                   struct client_result *res)
{
    struct client_inflight *f = &c->st.inflight;
    char part[PATH_SIZE];
    struct client_download d;
    struct client_answer a;
    enum client_status rc = CLIENT_OK;
    unsigned attempt = 0;
    uint64_t missing = 0;
    double limit_s, started_s;
    struct stat sb;

    *out_status = 0;
    partial_file(c, f, part, sizeof(part));
    memset(&d, 0, sizeof(d));
    d.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d.fd < 0)
        return fail(c, CLIENT_LOCAL_ERROR, "cannot open %s: %s", part,
                    strerror(errno));
    d.expected = f->size_bytes;
    d.on_validator = on_validator;
    d.on_sample = on_sample;
    d.on_tick = on_tick;
    d.cb_ctx = c;
    d.rate_window_s = c->o.rate_window_s;
    if (fstat(d.fd, &sb) == 0 && (uint64_t)sb.st_size < f->size_bytes)
        missing = f->size_bytes - (uint64_t)sb.st_size;
    limit_s = client_transfer_deadline_s(missing, c->o.min_rate_bps,
                                         c->o.deadline_s);
    started_s = mono_s();
    if (limit_s > 0)
        d.deadline_s = started_s + limit_s;
    for (;;) {
        enum client_http_rc hr;
        unsigned ms;

        snprintf(d.validator, sizeof(d.validator), "%s", f->validator);
        hr = client_http_download(&c->http, f->url, &d, &a);
        if (d.received > 0 || d.have > 0)
            emit(c, "transfer %s from=%" PRIu64 " received=%" PRIu64
                 " of=%" PRIu64 " status=%ld%s",
                 f->is_delta ? "delta" : "model", d.have, d.received,
                 f->size_bytes, a.status,
                 d.how == CLIENT_RESUME_APPEND && d.have > 0 ? " resumed"
                                                             : "");
        res->bytes_transferred += d.received;
        note_rtt(c, &a);
        if (hr == CLIENT_HTTP_LOCAL) {
            rc = fail(c, CLIENT_LOCAL_ERROR, "cannot write %s: %s", part,
                      strerror(errno));
            break;
        }
        if (hr == CLIENT_HTTP_TOO_LONG) {
            /* Not the object announced: no retry, the caller deletes. */
            rc = fail(c, CLIENT_VERIFY_FAILED, "GET %s: %s", f->url,
                      a.error);
            break;
        }
        if (hr == CLIENT_HTTP_ANSWERED && d.complete)
            break;
        if (hr == CLIENT_HTTP_DEADLINE ||
            (hr == CLIENT_HTTP_NETWORK && d.deadline_s > 0 &&
             mono_s() >= d.deadline_s)) {
            rc = deadline(c, &d, limit_s, mono_s() - started_s);
            break;
        }
        if (hr == CLIENT_HTTP_ANSWERED) {
            if (d.how == CLIENT_RESUME_RETRY_FROM_ZERO) {
                emit(c, "transfer restart reason=\"range not served\"");
                if (ftruncate(d.fd, 0) != 0) {
                    rc = fail(c, CLIENT_LOCAL_ERROR, "cannot truncate %s",
                              part);
                    break;
                }
                f->validator[0] = '\0';
            } else if (!retryable(a.status)) {
                char detail[200];

                problem_detail(&a, detail, sizeof(detail));
                *out_status = a.status;
                rc = fail(c, CLIENT_REFUSED, "GET %s: status %ld: %s",
                          f->url, a.status, detail);
                break;
            }
        }
        if (d.received > 0)
            attempt = 0; /* progress: a flaky link is not a dead one */
        if (attempt + 1 >= c->o.retries) {
            rc = fail(c, CLIENT_NETWORK, "GET %s: %s (after %u attempts)",
                      f->url,
                      hr == CLIENT_HTTP_ANSWERED ? "no progress" : a.error,
                      attempt + 1);
            break;
        }
        ms = wait_ms(c, attempt, hr == CLIENT_HTTP_ANSWERED ? &a : NULL);
        emit(c, "retry request=\"GET %s\" attempt=%u wait_ms=%u reason=\"%s\"",
             f->url, attempt + 1, ms,
             hr == CLIENT_HTTP_ANSWERED ? "status" : a.error);
        free(a.body);
        a.body = NULL;
        attempt++;
        if (d.deadline_s > 0 && mono_s() + ms / 1000.0 > d.deadline_s) {
            /* The wait would end past the deadline: end now. */
            rc = deadline(c, &d, limit_s, mono_s() - started_s);
            break;
        }
        if (!nap(c, ms, NULL)) {
            rc = fail(c, CLIENT_NETWORK, "stopped");
            break;
        }
    }
    free(a.body);
    /* The bytes so far are kept for a resume (also past a deadline). */
    if ((rc == CLIENT_OK || d.deadline_hit) && fsync(d.fd) != 0)
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot sync %s: %s", part,
                  strerror(errno));
    close(d.fd);
    f->bytes_done = d.have + d.received;
    return rc;
}

/* The decoder's output: a file, bounded by the model's announced size
 * (a coded file that expands beyond it is refused, not written on). */
struct fd_sink {
    int fd;
    uint64_t written;
    uint64_t limit;
    bool too_long;
};

static int sink_write(void *ctx, const void *data, size_t len)
{
    struct fd_sink *k = ctx;

    if (k->written + len > k->limit) {
        k->too_long = true;
        return -1;
    }
    k->written += len;
    return fileio_write_all(k->fd, data, len);
}

/*
 * A delta (modeld-tensor/1 here, zstd-patch through
 * proto_delta_apply_trusted) against the model in use, whose digest is known:
 * it is the name the model was installed under, after its bytes were
 * verified (hashed as downloaded, or checked by the decoder that made
 * them). The decoder is told that digest (proto_tensor_dec_trust_base)
 * instead of hashing the whole base again through the mapping, which
 * would fault every page of it in; only the base ranges the delta uses are
 * read. What this gives up: a base whose bytes changed on disk after
 * installation is not caught by name before decoding; it is caught by the
 * result, whose SHA-256 the decoder still checks against the header's
 * target digest (which the caller checked is the decision's model): a
 * wrong result is refused like a corrupt delta (the full model is fetched
 * instead), never installed.
 */
static enum proto_status tensor_trusted(const void *old, size_t old_len,
                                        const char *base_hex,
                                        const void *coded, size_t coded_len,
                                        struct fd_sink *sink)
{
    enum { PIECE = 1 << 20 };
    struct proto_tensor_dec *d = NULL;
    const unsigned char *p = coded;
    enum proto_status st;

    st = proto_tensor_dec_new(old, old_len, sink_write, sink, &d);
    if (st == PROTO_OK)
        st = proto_tensor_dec_trust_base(d, base_hex);
    for (size_t off = 0; st == PROTO_OK && off < coded_len; off += PIECE)
        st = proto_tensor_dec_feed(
            d, p + off, coded_len - off < PIECE ? coded_len - off : PIECE);
    if (st == PROTO_OK)
        st = proto_tensor_dec_finish(d);
    proto_tensor_dec_free(d);
    return st;
}

/*
 * Decodes the coded bytes in partial/ (a delta from the current model, or
 * a model in an encoded form) streaming into a temporary file in models/:
 * the base model and the coded file are mapped, the result is written in
 * pieces (proto_coded_apply: zstd-patch, modeld-tensor/1, modeld-bg/1).
 * CLIENT_VERIFY_FAILED when the coded file is not the announced coding
 * from current (deltas) to the decision's model, or its result has another
 * digest, or decodes to more than limit bytes (the model's announced
 * size). On CLIENT_OK out_tmp names the verified, synced result.
 */
static enum client_status apply_coded(struct client *c, uint64_t limit,
                                      char *out_tmp, size_t cap)
{
    const struct client_inflight *f = &c->st.inflight;
    char part[PATH_SIZE], base[PATH_SIZE];
    char from_hex[PROTO_HEX_SIZE] = "", to_hex[PROTO_HEX_SIZE] = "";
    struct fileio_map old = { 0 }, coded = { 0 };
    struct fd_sink sink = { -1, 0, limit, false };
    enum client_status rc = CLIENT_VERIFY_FAILED;
    enum proto_coded_kind want, kind;
    enum proto_status ps;

    out_tmp[0] = '\0';
    partial_file(c, f, part, sizeof(part));
    want = strcmp(f->coding, "zstd-patch") == 0       ? PROTO_CODED_ZSTD_PATCH
           : strcmp(f->coding, "modeld-tensor/1") == 0 ? PROTO_CODED_TENSOR
                                                      : PROTO_CODED_BG;
    if (f->is_delta) {
        model_file(c, f->from_hex, base, sizeof(base));
        if (strcmp(f->from_hex, c->st.current.hex) != 0) {
            rc = fail(c, CLIENT_VERIFY_FAILED,
                      "the delta's base is not the model in use");
            goto out;
        }
        if (fileio_map_path(base, &old) != 0) {
            rc = fail(c, CLIENT_LOCAL_ERROR, "cannot map %s: %s", base,
                      strerror(errno));
            goto out;
        }
    }
    if (fileio_map_path(part, &coded) != 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot map %s: %s", part,
                  strerror(errno));
        goto out;
    }
    kind = proto_coded_kind(coded.data, coded.len, from_hex, to_hex);
    if (kind != want || strcmp(to_hex, f->target_hex) != 0 ||
        (f->is_delta && strcmp(from_hex, f->from_hex) != 0)) {
        rc = fail(c, CLIENT_VERIFY_FAILED,
                  "the %s bytes do not name sha256:%.12s... -> "
                  "sha256:%.12s...",
                  f->coding, f->is_delta ? f->from_hex : "",
                  f->target_hex);
        goto out;
    }
    snprintf(out_tmp, cap, "%s/models/.tmp-XXXXXX", c->dir);
    sink.fd = mkstemp(out_tmp);
    if (sink.fd < 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot create %s: %s", out_tmp,
                  strerror(errno));
        out_tmp[0] = '\0';
        goto out;
    }
    if (kind == PROTO_CODED_TENSOR)
        ps = tensor_trusted(old.data, old.len, f->from_hex, coded.data,
                            coded.len, &sink);
    else if (kind == PROTO_CODED_ZSTD_PATCH)
        ps = proto_delta_apply_trusted(old.data, old.len, f->from_hex,
                                       coded.data, coded.len, sink_write,
                                       &sink);
    else
        ps = proto_coded_apply(old.data, old.len, coded.data, coded.len,
                               sink_write, &sink, to_hex);
    if (sink.too_long) {
        rc = fail(c, CLIENT_VERIFY_FAILED,
                  "the %s bytes decode to more than the %" PRIu64
                  " bytes announced for sha256:%.12s...",
                  f->coding, limit, f->target_hex);
        goto out;
    }
    if (ps == PROTO_NO_MEMORY || ps == PROTO_SINK_FAILED) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "decoding %s: %s", f->coding,
                  ps == PROTO_NO_MEMORY ? "out of memory"
                                        : "cannot write the result");
        goto out;
    }
    if (ps != PROTO_OK || strcmp(to_hex, f->target_hex) != 0) {
        rc = fail(c, CLIENT_VERIFY_FAILED,
                  "the %s bytes are corrupt or do not give sha256:%.12s...",
                  f->coding, f->target_hex);
        goto out;
    }
    if (fsync(sink.fd) != 0) {
        rc = fail(c, CLIENT_LOCAL_ERROR, "cannot sync %s: %s", out_tmp,
                  strerror(errno));
        goto out;
    }
    rc = CLIENT_OK;
out:
    if (sink.fd >= 0)
        close(sink.fd);
    if (rc != CLIENT_OK && out_tmp[0]) {
        unlink(out_tmp);
        out_tmp[0] = '\0';
    }
    fileio_unmap(&old);
    fileio_unmap(&coded);
    return rc;
}

/* Moves a verified file into models/ and makes it current: state first,
 * then the path symlink. */
static enum client_status install(struct client *c, const char *src)
{
    const struct client_inflight *f = &c->st.inflight;
    char dst[PATH_SIZE], sub[PATH_SIZE];
    enum client_status rc;

    model_file(c, f->target_hex, dst, sizeof(dst));
    if (rename(src, dst) != 0)
        return fail(c, CLIENT_LOCAL_ERROR, "cannot rename %s: %s", src,
                    strerror(errno));
    snprintf(sub, sizeof(sub), "%s/models", c->dir);
    if (fileio_fsync_dir(sub) != 0)
        return fail(c, CLIENT_LOCAL_ERROR, "cannot sync %s: %s", sub,
                    strerror(errno));
    if (strcmp(c->st.current.hex, f->target_hex) != 0)
        c->st.previous = c->st.current;
    snprintf(c->st.current.hex, sizeof(c->st.current.hex), "%s",
             f->target_hex);
    snprintf(c->st.current.variant, sizeof(c->st.current.variant), "%s",
             f->variant);
    c->st.current.version = f->version;
    snprintf(c->st.current.receipt, sizeof(c->st.current.receipt), "%s",
             f->receipt);
    c->st.installed_reported = false;
    memset(&c->st.inflight, 0, sizeof(c->st.inflight));
    rc = save(c);
    if (rc != CLIENT_OK)
        return rc;
    if (point_link(c, c->st.current.hex) != 0)
        return fail(c, CLIENT_LOCAL_ERROR, "cannot update %s: %s", c->link,
                    strerror(errno));
    prune(c);
    emit(c, "switch digest=sha256:%s variant=%s version=%" PRId64
         " path=%s",
         c->st.current.hex, c->st.current.variant, c->st.current.version,
         c->link);
    return CLIENT_OK;
}

/* How the model is brought over. */
enum route {
    ROUTE_DELTA,      /* delta.url, decoded against the current model */
    ROUTE_ENCODED,    /* model.url in model.encoding, decoded */
    ROUTE_PLAIN,      /* the model's own bytes */
};

/* The size of the model itself (what a plain download or any decoding
 * must give): with an encoding the decision's model.decoded_size_bytes,
 * else model.size_bytes; 0 when the decision does not say. */
static uint64_t plain_size(const struct client_decision *d)
{
    return d->model_encoding[0] ? d->model_decoded_size : d->model_size;
}

/* Starts (or continues) the in-flight transfer for this decision. */
static void begin(struct client *c, const struct client_decision *d,
                  enum route route)
{
    struct client_inflight want;
    const struct client_inflight *f = &c->st.inflight;

    memset(&want, 0, sizeof(want));
    want.active = true;
    want.is_delta = route == ROUTE_DELTA;
    snprintf(want.target_hex, sizeof(want.target_hex), "%s", d->model_hex);
    snprintf(want.variant, sizeof(want.variant), "%s", d->variant);
    want.version = d->version;
    snprintf(want.receipt, sizeof(want.receipt), "%s", d->receipt);
    switch (route) {
    case ROUTE_DELTA:
        snprintf(want.coding, sizeof(want.coding), "%s", d->delta_format);
        snprintf(want.from_hex, sizeof(want.from_hex), "%s",
                 d->delta_from_hex);
        snprintf(want.url, sizeof(want.url), "%s", d->delta_url);
        want.size_bytes = d->delta_size;
        break;
    case ROUTE_ENCODED:
        snprintf(want.coding, sizeof(want.coding), "%s", d->model_encoding);
        snprintf(want.url, sizeof(want.url), "%s", d->model_url);
        want.size_bytes = d->model_size; /* the encoded form's */
        break;
    case ROUTE_PLAIN:
        snprintf(want.url, sizeof(want.url), "/v1/blobs/sha256:%s",
                 d->model_hex);
        /* The model's own size: never unbounded (deliver checks). */
        want.size_bytes = plain_size(d);
        break;
    }
    if (f->active && f->is_delta == want.is_delta &&
        strcmp(f->coding, want.coding) == 0 &&
        strcmp(f->target_hex, want.target_hex) == 0 &&
        strcmp(f->from_hex, want.from_hex) == 0 &&
        f->size_bytes == want.size_bytes) {
        /* The same bytes: keep what is on disk and its validator. */
        snprintf(want.validator, sizeof(want.validator), "%s", f->validator);
    }
    c->st.inflight = want;
    prune(c); /* the partial file of another transfer goes */
}

static void drop_inflight(struct client *c)
{
    char part[PATH_SIZE];

    if (!c->st.inflight.active)
        return;
    partial_file(c, &c->st.inflight, part, sizeof(part));
    (void)unlink(part);
    memset(&c->st.inflight, 0, sizeof(c->st.inflight));
}

/* Download (or delta) -> verify -> switch. A refused (or vanished)
 * delta or encoded form falls back to the model's own bytes once; refused
 * plain bytes are deleted and reported, and fetched once more. */
static enum client_status deliver(struct client *c,
                                  const struct client_decision *d,
                                  struct client_result *res)
{
    enum route route = ROUTE_PLAIN;
    struct client_model_ref target;
    unsigned plain_tries = 0;
    enum client_status rc;

    if (d->action == PROTO_ACTION_DELTA &&
        strcmp(d->delta_from_hex, c->st.current.hex) == 0 &&
        coding_of(d->delta_format, true))
        route = ROUTE_DELTA;
    else if (d->model_encoding[0] && coding_of(d->model_encoding, false))
        route = ROUTE_ENCODED;
    memset(&target, 0, sizeof(target));
    snprintf(target.hex, sizeof(target.hex), "%s", d->model_hex);
    snprintf(target.variant, sizeof(target.variant), "%s", d->variant);
    target.version = d->version;
    snprintf(target.receipt, sizeof(target.receipt), "%s", d->receipt);
    if (plain_size(d) == 0 && d->model_encoding[0])
        return fail(c, CLIENT_VERIFY_FAILED,
                    "the decision names encoding %s without "
                    "model.decoded_size_bytes: no bound for the model's "
                    "bytes, not fetched",
                    d->model_encoding);
    for (;;) {
        char part[PATH_SIZE], tmp[PATH_SIZE];
        char got[PROTO_HEX_SIZE];
        long status;

        if (route == ROUTE_PLAIN && c->o.max_bytes &&
            plain_size(d) > c->o.max_bytes) {
            /* A fall back moves more than the decision's form did. */
            emit(c, "deferred reason=max-bytes bytes=%" PRIu64,
                 plain_size(d));
            return fail(c, CLIENT_DEFERRED, "%" PRIu64 " bytes to transfer "
                        "(the model's own bytes), over --max-bytes %" PRIu64,
                        plain_size(d), c->o.max_bytes);
        }
        begin(c, d, route);
        rc = save(c);
        if (rc != CLIENT_OK)
            return rc;
        emit(c, "download %s%s%s url=%s size=%" PRIu64,
             route == ROUTE_DELTA ? "delta" : "model",
             c->st.inflight.coding[0] ? " coding=" : "",
             c->st.inflight.coding, c->st.inflight.url,
             c->st.inflight.size_bytes);
        rc = transfer(c, &status, res);
        (void)save(c);
        if (rc == CLIENT_REFUSED && route != ROUTE_PLAIN && status == 404) {
            emit(c, "%s gone: falling back to the full model",
                 c->st.inflight.coding);
            drop_inflight(c);
            route = ROUTE_PLAIN;
            continue;
        }
        if (rc == CLIENT_VERIFY_FAILED) {
            /* More bytes than announced: cut, deleted, reported. */
            emit(c, "refused %s; deleting the bytes", c->err);
            drop_inflight(c);
            (void)save(c);
            post_event(c, "verify_failed", &target);
            if (route == ROUTE_PLAIN && ++plain_tries >= 2)
                return rc;
            route = ROUTE_PLAIN;
            continue;
        }
        if (rc != CLIENT_OK)
            return rc;
        partial_file(c, &c->st.inflight, part, sizeof(part));
        if (route != ROUTE_PLAIN) {
            rc = apply_coded(c, plain_size(d), tmp, sizeof(tmp));
            if (rc == CLIENT_OK) {
                emit(c, "verify ok digest=sha256:%s (%s decoded)",
                     d->model_hex, c->st.inflight.coding);
                rc = install(c, tmp);
                prune(c); /* the coded file goes */
                return rc;
            }
            if (rc != CLIENT_VERIFY_FAILED)
                return rc;
            emit(c, "verify failed %s; deleting the %s bytes, falling back "
                 "to the full model", c->err, c->st.inflight.coding);
            drop_inflight(c);
            (void)save(c);
            post_event(c, "verify_failed", &target);
            route = ROUTE_PLAIN;
            continue;
        }
        rc = hash_file(c, part, got);
        if (rc != CLIENT_OK)
            return rc;
        if (strcmp(got, d->model_hex) == 0) {
            emit(c, "verify ok digest=sha256:%s", got);
            return install(c, part);
        }
        emit(c, "verify failed digest=sha256:%s want=sha256:%s; deleting "
             "the bytes", got, d->model_hex);
        drop_inflight(c);
        (void)save(c);
        post_event(c, "verify_failed", &target);
        if (++plain_tries >= 2)
            return fail(c, CLIENT_VERIFY_FAILED,
                        "the bytes of sha256:%s are not that digest (refused "
                        "twice); the model in use is unchanged",
                        d->model_hex);
    }
}

enum client_status client_fetch_once(struct client *c,
                                     struct client_result *out)
{
    struct client_result res;
    struct client_decision d;
    struct client_answer a;
    char nonce[33], *report = NULL, path[CLIENT_URL_SIZE];
    enum client_status rc;
    json_t *rj;
    bool metered;
    uint64_t bytes, have = 0;

    memset(&res, 0, sizeof(res));
    memset(&a, 0, sizeof(a));
    c->err[0] = '\0';
    rc = ensure_keys(c);
    if (rc != CLIENT_OK)
        goto out;
    if (c->verify) {
        unsigned char r[16];
        static const char hex[] = "0123456789abcdef";

        if (RAND_bytes(r, sizeof(r)) != 1) {
            rc = fail(c, CLIENT_LOCAL_ERROR, "no randomness for a nonce");
            goto out;
        }
        for (size_t i = 0; i < sizeof(r); i++) {
            nonce[2 * i] = hex[r[i] >> 4];
            nonce[2 * i + 1] = hex[r[i] & 15];
        }
        nonce[32] = '\0';
    }
    rc = build_report(c, c->verify ? nonce : NULL, &report);
    if (rc != CLIENT_OK)
        goto out;
    rj = json_loads(report, 0, NULL);
    metered = json_is_true(
        json_object_get(json_object_get(rj, "network"), "metered"));
    json_decref(rj);

    snprintf(path, sizeof(path), "/v1/families/%s/select", c->o.family);
    rc = request(c, "POST", path, report, &a);
    if (rc != CLIENT_OK)
        goto out;
    if (a.status != 200) {
        char detail[200];

        problem_detail(&a, detail, sizeof(detail));
        rc = fail(c, CLIENT_REFUSED, "select: status %ld: %s", a.status,
                  detail);
        goto out;
    }
    if (c->verify && (rc = check_signature(c, &a)) != CLIENT_OK) {
        emit(c, "refused %s", c->err);
        goto out;
    }
    rc = client_decision_parse(a.body, a.body_len, &d, c->err,
                               sizeof(c->err));
    if (rc != CLIENT_OK)
        goto out;
    if (c->verify && (rc = check_signed_body(c, &d, nonce)) != CLIENT_OK) {
        emit(c, "refused %s", c->err);
        goto out;
    }
    snprintf(res.action, sizeof(res.action), "%s",
             d.action == PROTO_ACTION_DOWNLOAD ? "download"
             : d.action == PROTO_ACTION_DELTA  ? "delta"
             : d.action == PROTO_ACTION_KEEP   ? "keep"
                                               : "none");
    snprintf(res.variant, sizeof(res.variant), "%s", d.variant);
    res.version = d.version;
    res.recheck_after_s = d.recheck_after_s;
    snprintf(c->st.last_action, sizeof(c->st.last_action), "%s", res.action);
    c->st.last_decision_at_s = wall_s();
    c->st.last_recheck_after_s = d.recheck_after_s;
    emit(c, "select action=%s variant=%s version=%" PRId64
         " digest=sha256:%s bytes=%" PRIu64 " recheck_after_s=%u%s",
         res.action, d.variant[0] ? d.variant : "-", d.version,
         d.action == PROTO_ACTION_NONE ? "-" : d.model_hex,
         d.action == PROTO_ACTION_DELTA ? d.delta_size : d.model_size,
         d.recheck_after_s, c->verify ? " signed=ok" : "");

    if (d.action == PROTO_ACTION_NONE) {
        rc = c->st.current.hex[0]
                 ? CLIENT_OK
                 : fail(c, CLIENT_REFUSED,
                        "no variant of %s fits this device", c->o.family);
        goto done;
    }
    if (d.action == PROTO_ACTION_KEEP ||
        strcmp(d.model_hex, c->st.current.hex) == 0) {
        if (!c->st.current.hex[0]) {
            rc = fail(c, CLIENT_REFUSED, "the server says keep, but no "
                      "model is in place");
            goto done;
        }
        /* The receipt of the model in place (its events send it). */
        if (d.receipt[0] && strcmp(d.model_hex, c->st.current.hex) == 0)
            snprintf(c->st.current.receipt, sizeof(c->st.current.receipt),
                     "%s", d.receipt);
        drop_inflight(c);
        rc = CLIENT_OK;
        goto done;
    }
    bytes = d.action == PROTO_ACTION_DELTA ? d.delta_size : d.model_size;
    if (c->st.inflight.active &&
        strcmp(c->st.inflight.target_hex, d.model_hex) == 0)
        have = c->st.inflight.bytes_done;
    if (c->o.wifi_only && metered) {
        rc = fail(c, CLIENT_DEFERRED, "metered link and --wifi-only: "
                  "%" PRIu64 " bytes deferred", bytes);
        emit(c, "deferred reason=metered bytes=%" PRIu64, bytes);
        goto done;
    }
    if (c->o.max_bytes && bytes > have && bytes - have > c->o.max_bytes) {
        rc = fail(c, CLIENT_DEFERRED, "%" PRIu64 " bytes to transfer, over "
                  "--max-bytes %" PRIu64, bytes - have, c->o.max_bytes);
        emit(c, "deferred reason=max-bytes bytes=%" PRIu64, bytes - have);
        goto done;
    }
    rc = deliver(c, &d, &res);
    if (rc == CLIENT_OK) {
        res.switched = true;
        post_event(c, "installed", &c->st.current);
    }
done:
    if (c->st.current.hex[0])
        snprintf(res.digest, sizeof(res.digest), "sha256:%s",
                 c->st.current.hex);
    {
        char keep_err[CLIENT_ERR_SIZE];
        enum client_status src;

        memcpy(keep_err, c->err, sizeof(keep_err));
        src = save(c);
        if (src != CLIENT_OK && rc == CLIENT_OK)
            rc = src;
        else
            memcpy(c->err, keep_err, sizeof(keep_err));
    }
out:
    free(a.body);
    free(report);
    if (out)
        *out = res;
    return rc;
}

enum client_status client_model_loaded(struct client *c, bool ok,
                                       double latency_ms)
{
    struct client_model_ref bad;

    (void)latency_ms;
    if (!c->st.current.hex[0])
        return fail(c, CLIENT_LOCAL_ERROR, "no model in place");
    if (ok) {
        if (!c->st.installed_reported) {
            c->st.installed_reported = true;
            return save(c);
        }
        return CLIENT_OK;
    }
    if (!c->st.previous.hex[0])
        return fail(c, CLIENT_LOCAL_ERROR, "no previous model to roll back "
                    "to");
    bad = c->st.current;
    post_event(c, "load_failed", &bad);
    c->st.current = c->st.previous;
    memset(&c->st.previous, 0, sizeof(c->st.previous));
    if (save(c) != CLIENT_OK)
        return CLIENT_LOCAL_ERROR;
    if (point_link(c, c->st.current.hex) != 0)
        return fail(c, CLIENT_LOCAL_ERROR, "cannot update %s: %s", c->link,
                    strerror(errno));
    prune(c);
    post_event(c, "rolled_back", &c->st.current);
    emit(c, "rollback digest=sha256:%s", c->st.current.hex);
    return CLIENT_OK;
}

/* ---- watch -------------------------------------------------------------- */

/* A watch trigger's test: a measured figure moved from the one of the
 * last report by more than the margin, either way (both known). */
static bool moved(double before, double now, double margin)
{
    if (!(before > 0) || !(now > 0))
        return false;
    return now < before * (1 - margin) || now > before * (1 + margin);
}

/*
 * Measured conditions moved by the margin since the last report: free
 * memory, or the compute probe's share of its reference (a device
 * throttling, or back to speed; the share device.gflops is sent as). What
 * moved, for the event line, or NULL.
 */
static const char *conditions_changed(struct client *c)
{
    uint64_t measured = client_facts_memory(&c->o);

    sample_memory(c, measured); /* the per-minute lows, and a probe */
    if (moved((double)c->reported_memory, (double)measured,
              c->o.change_margin))
        return "conditions changed";
    if (moved(c->reported_compute,
              client_state_compute_now(&c->st, wall_s(), 1),
              c->o.change_margin))
        return "compute changed";
    return NULL;
}

enum client_status client_watch(struct client *c, volatile sig_atomic_t *stop,
                                volatile sig_atomic_t *wake)
{
    enum client_status rc = CLIENT_OK;
    unsigned failures = 0;

    c->stop = stop;
    while (!*stop) {
        struct client_result res;
        double delay_s, end, next_facts;

        if (wake)
            *wake = 0;
        rc = client_fetch_once(c, &res);
        if (*stop)
            break;
        if (rc == CLIENT_OK || rc == CLIENT_DEFERRED ||
            rc == CLIENT_VERIFY_FAILED || rc == CLIENT_REFUSED) {
            failures = rc == CLIENT_OK ? 0 : failures;
            delay_s = res.recheck_after_s ? res.recheck_after_s : 300;
            if (rc == CLIENT_VERIFY_FAILED || rc == CLIENT_REFUSED)
                failures++;
        } else {
            failures++;
            delay_s = 0;
        }
        if (failures > 0) {
            /* Failing: back off, but never wait longer than the server
             * asked for rechecks. */
            double b = client_backoff_ms(failures - 1, 1000,
                                         c->o.backoff_max_ms > 1000
                                             ? c->o.backoff_max_ms
                                             : 1000,
                                         client_random()) / 1000.0;

            if (delay_s == 0 || b < delay_s)
                delay_s = b;
        } else {
            /* A fleet told the same recheck_after_s must not come back in
             * lockstep: spread it by +- recheck_jitter. */
            delay_s *= 1 + c->o.recheck_jitter * (2 * client_random() - 1);
        }
        if (rc != CLIENT_OK)
            emit(c, "error %s", c->err);
        emit(c, "recheck in_s=%.3f", delay_s);
        end = mono_s() + delay_s;
        next_facts = mono_s() + c->o.facts_interval_s;
        while (!*stop && !(wake && *wake) && mono_s() < end) {
            double step = end - mono_s();
            const char *why;

            /* Time moved on since the loop's test: a negative step cast
             * to unsigned would sleep for weeks. */
            if (step <= 0)
                break;
            if (step > 0.2)
                step = 0.2;
            if (!nap(c, (unsigned)(step * 1000), wake))
                break;
            if (c->o.facts_interval_s && mono_s() >= next_facts) {
                next_facts = mono_s() + c->o.facts_interval_s;
                if ((why = conditions_changed(c)) != NULL) {
                    emit(c, "recheck now reason=\"%s\"", why);
                    break;
                }
            }
        }
        if (wake && *wake)
            emit(c, "recheck now reason=signal");
    }
    c->stop = NULL;
    return rc;
}
