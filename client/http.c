/*
 * The client's HTTP: one keep-alive libcurl handle with TLS (system CAs, or
 * only a pinned CA bundle or public key), connect and stall timeouts, small
 * answers into memory and resumable downloads into a file with Range and
 * If-Range. The pure parts (what an answer to a range request means,
 * Retry-After, backoff) are separate functions so that they are unit tests.
 * Retrying is the caller's (client/fetch.c): this file makes one request.
 */
#define _XOPEN_SOURCE 700 /* strptime */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client/internal.h"

#define MAX_ANSWER_BYTES (1u << 20)
#define MAX_ERROR_BODY 4096
#define MAX_HEADER_BYTES (64u << 10) /* all header lines of one request */

/* ---- pure parts ---------------------------------------------------------- */

/* "bytes A-B/N" or "bytes * /N" (no space); false when malformed. */
static bool content_range_parse(const char *v, bool *out_star, uint64_t *a,
                                uint64_t *b, uint64_t *n)
{
    char *end;

    if (!v || strncasecmp(v, "bytes ", 6) != 0)
        return false;
    v += 6;
    while (*v == ' ')
        v++;
    if (*v == '*') {
        *out_star = true;
        v++;
    } else {
        *out_star = false;
        if (!isdigit((unsigned char)*v))
            return false;
        *a = strtoull(v, &end, 10);
        if (*end != '-' || !isdigit((unsigned char)end[1]))
            return false;
        *b = strtoull(end + 1, &end, 10);
        v = end;
        if (*b < *a)
            return false;
    }
    if (*v != '/' || !isdigit((unsigned char)v[1]))
        return false;
    *n = strtoull(v + 1, &end, 10);
    while (*end == ' ' || *end == '\r' || *end == '\n')
        end++;
    if (*end != '\0')
        return false;
    return *out_star || *b < *n;
}

enum client_resume client_resume_decide(long status,
                                        const char *content_range,
                                        uint64_t have, uint64_t expected,
                                        uint64_t *out_total)
{
    uint64_t a = 0, b = 0, n = 0;
    bool star = false;

    switch (status) {
    case 200:
        *out_total = expected;
        return CLIENT_RESUME_RESTART;
    case 206:
        if (!content_range_parse(content_range, &star, &a, &b, &n) || star)
            return CLIENT_RESUME_FAIL;
        if (expected != 0 && n != expected)
            return CLIENT_RESUME_FAIL; /* not the object we were promised */
        if (a != have || b + 1 != n)
            return CLIENT_RESUME_RETRY_FROM_ZERO;
        *out_total = n;
        return CLIENT_RESUME_APPEND;
    case 416:
        if (content_range_parse(content_range, &star, &a, &b, &n) && star &&
            n == have && (expected == 0 || expected == n) && have > 0) {
            *out_total = n;
            return CLIENT_RESUME_COMPLETE;
        }
        return CLIENT_RESUME_RETRY_FROM_ZERO;
    default:
        return CLIENT_RESUME_FAIL;
    }
}

double client_transfer_deadline_s(uint64_t missing_bytes, double min_rate_bps,
                                  unsigned cap_s)
{
    double t;

    if (!(min_rate_bps > 0))
        return cap_s;
    t = CLIENT_DEADLINE_GRACE_S + (double)missing_bytes * 8 / min_rate_bps;
    return cap_s > 0 && t > cap_s ? cap_s : t;
}

long client_retry_after_parse(const char *value, int64_t now_s)
{
    struct tm tm;
    const char *p;
    char *end;
    time_t t;

    if (!value)
        return -1;
    while (*value == ' ')
        value++;
    if (*value == '\0')
        return -1;
    if (isdigit((unsigned char)*value)) {
        unsigned long long s = strtoull(value, &end, 10);

        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        if (*end != '\0' || s > 100000000ull)
            return -1;
        return (long)s;
    }
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    memset(&tm, 0, sizeof(tm));
    p = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!p)
        return -1;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return (int64_t)t > now_s ? (long)((int64_t)t - now_s) : 0;
}

unsigned client_backoff_ms(unsigned attempt, unsigned base_ms,
                           unsigned max_ms, double r)
{
    uint64_t cap = base_ms;

    for (unsigned i = 0; i < attempt && cap < max_ms; i++)
        cap *= 2;
    if (cap > max_ms)
        cap = max_ms;
    if (r < 0)
        r = 0;
    if (r >= 1)
        r = 0.999999;
    return (unsigned)((double)cap / 2 + r * (double)cap / 2);
}

/* ---- libcurl ------------------------------------------------------------- */

int client_http_open(struct client_http *h, const struct client_options *o,
                     char *err, size_t err_len)
{
    static int global_done;
    size_t n;

    memset(h, 0, sizeof(*h));
    h->o = o;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, err_len, "libcurl initialisation failed");
            return -1;
        }
        global_done = 1;
    }
    if (strncmp(o->server_url, "http://", 7) != 0 &&
        strncmp(o->server_url, "https://", 8) != 0) {
        snprintf(err, err_len, "--server must start with http:// or https://");
        return -1;
    }
    n = strlen(o->server_url);
    while (n > 0 && o->server_url[n - 1] == '/')
        n--;
    if (n >= sizeof(h->base)) {
        snprintf(err, err_len, "--server URL too long");
        return -1;
    }
    memcpy(h->base, o->server_url, n);
    h->base[n] = '\0';
    h->curl = curl_easy_init();
    if (!h->curl) {
        snprintf(err, err_len, "libcurl: out of memory");
        return -1;
    }
    return 0;
}

void client_http_close(struct client_http *h)
{
    if (h->curl)
        curl_easy_cleanup(h->curl);
    h->curl = NULL;
}

void client_http_url(const struct client_http *h, const char *path_or_url,
                     char *out, size_t out_cap)
{
    if (strncmp(path_or_url, "http://", 7) == 0 ||
        strncmp(path_or_url, "https://", 8) == 0)
        snprintf(out, out_cap, "%s", path_or_url);
    else
        snprintf(out, out_cap, "%s%s", h->base, path_or_url);
}

/* Header capture shared by both kinds of request. */
struct hdr_ctx {
    struct client_answer *ans;
    size_t bytes;                 /* header bytes so far (1xx included) */
    bool too_long;
};

static void header_value(const char *line, size_t len, const char *name,
                         char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *v;
    size_t vlen;

    if (len <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen))
        return;
    v = line + nlen + 1;
    vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
                        v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= cap)
        vlen = cap - 1; /* an oversized value fails to verify later */
    memcpy(out, v, vlen);
    out[vlen] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ctx)
{
    struct hdr_ctx *hc = ctx;
    struct client_answer *a = hc->ans;
    size_t len = size * nitems;

    /* A server must not keep us reading headers (or 1xx answers). */
    hc->bytes += len;
    if (hc->bytes > MAX_HEADER_BYTES) {
        hc->too_long = true;
        return 0;
    }
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new status line (after a 100 Continue): forget the last. */
        a->content_type[0] = a->content_digest[0] = a->signature[0] = '\0';
        a->signature_input[0] = a->retry_after[0] = a->etag[0] = '\0';
        a->content_range[0] = '\0';
        return len;
    }
    header_value(line, len, "Content-Type", a->content_type,
                 sizeof(a->content_type));
    header_value(line, len, "Content-Digest", a->content_digest,
                 sizeof(a->content_digest));
    header_value(line, len, "Signature-Input", a->signature_input,
                 sizeof(a->signature_input));
    header_value(line, len, "Signature", a->signature, sizeof(a->signature));
    header_value(line, len, "Retry-After", a->retry_after,
                 sizeof(a->retry_after));
    header_value(line, len, "ETag", a->etag, sizeof(a->etag));
    header_value(line, len, "Content-Range", a->content_range,
                 sizeof(a->content_range));
    return len;
}

struct mem_body {
    char *p;
    size_t len;
    size_t cap;
    size_t max;
    bool too_long;
};

static int mem_append(struct mem_body *m, const void *data, size_t len)
{
    if (m->len + len > m->max) {
        m->too_long = true;
        return -1;
    }
    if (m->len + len + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        char *p;

        while (cap < m->len + len + 1)
            cap *= 2;
        p = realloc(m->p, cap);
        if (!p)
            return -1;
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, len);
    m->len += len;
    m->p[m->len] = '\0';
    return 0;
}

static size_t on_mem_body(char *data, size_t size, size_t nitems, void *ctx)
{
    size_t len = size * nitems;

    return mem_append(ctx, data, len) == 0 ? len : 0;
}

static void common_setup(struct client_http *h, const char *url,
                         struct hdr_ctx *hc, char *errbuf)
{
    CURL *c = h->curl;
    const struct client_options *o = h->o;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)o->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)o->stall_timeout_s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, hc);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "modeld-client/1");
    if (o->ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    if (o->pinned_pubkey)
        curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, o->pinned_pubkey);
}

/* Connect time of a fresh connection (the TCP handshake is one round trip),
 * -1 when the connection was reused. */
static double measured_rtt_ms(CURL *c)
{
    long connects = 0;
    curl_off_t lookup = 0, connect = 0;

    if (curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects) != CURLE_OK ||
        connects == 0 ||
        curl_easy_getinfo(c, CURLINFO_NAMELOOKUP_TIME_T, &lookup) !=
            CURLE_OK ||
        curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &connect) != CURLE_OK ||
        connect <= 0)
        return -1;
    return (double)(connect - lookup) / 1000.0;
}

enum client_http_rc client_http_request(struct client_http *h,
                                        const char *method, const char *path,
                                        const char *content_type,
                                        const char *body,
                                        struct client_answer *ans)
{
    char url[CLIENT_URL_SIZE + 64], ctype[160];
    char errbuf[CURL_ERROR_SIZE] = "";
    struct hdr_ctx hc = { ans, 0, false };
    struct mem_body mb = { NULL, 0, 0, MAX_ANSWER_BYTES, false };
    struct curl_slist *hdrs = NULL;
    CURLcode cc;

    memset(ans, 0, sizeof(*ans));
    client_http_url(h, path, url, sizeof(url));
    common_setup(h, url, &hc, errbuf);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS,
                     (long)h->o->request_timeout_ms);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_mem_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &mb);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (content_type) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, ctype);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
    cc = curl_easy_perform(h->curl);
    curl_slist_free_all(hdrs);
    ans->rtt_ms = measured_rtt_ms(h->curl);
    if (cc != CURLE_OK) {
        if (hc.too_long || mb.too_long)
            snprintf(ans->error, sizeof(ans->error),
                     "the answer's %s are over %u bytes: cut",
                     hc.too_long ? "headers" : "body",
                     hc.too_long ? MAX_HEADER_BYTES : MAX_ANSWER_BYTES);
        else
            snprintf(ans->error, sizeof(ans->error), "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        free(mb.p);
        return cc == CURLE_OUT_OF_MEMORY && !mb.too_long
                   ? CLIENT_HTTP_LOCAL
                   : CLIENT_HTTP_NETWORK;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &ans->status);
    if (!mb.p && mem_append(&mb, "", 0) != 0)
        return CLIENT_HTTP_LOCAL;
    ans->body = mb.p;
    ans->body_len = mb.len;
    return CLIENT_HTTP_ANSWERED;
}

/* ---- downloads ----------------------------------------------------------- */

struct dl_ctx {
    struct client_http *h;
    struct client_download *d;
    struct client_answer *ans;
    bool decided;
    bool to_file;
    bool local_error;
    bool too_long;                /* more than announced: cut */
    bool err_cut;                 /* an error body over MAX_ERROR_BODY */
    struct mem_body err_body;
    uint64_t total;
    /* throughput: the body's time is cut into windows */
    double t0;                    /* the request started (monotonic) */
    bool body_started;
    bool windowed;                /* a window sample was taken */
    double win_start;
    uint64_t win_base;            /* d->received at win_start */
    double last_tick;
};

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A throughput sample of the body since the window started: every
 * rate_window_s while it flows; at the end (final) the rest, when it says
 * something: after a window sample, a quarter window at least; else 16 KiB
 * or a second (a slow second is a measurement; a small fast body is not).
 */
static void rate_sample(struct dl_ctx *x, double now, bool final)
{
    struct client_download *d = x->d;
    double w = d->rate_window_s > 0 ? d->rate_window_s : CLIENT_RATE_WINDOW_S;
    double el = now - x->win_start;
    uint64_t bytes = d->received - x->win_base;

    if (!x->body_started || !x->to_file || el <= 0)
        return;
    if (!final && el < w)
        return;
    if (final && (x->windowed ? el < w / 4
                              : !(el >= 1.0 || (bytes >= 16384 && el >= 0.001))))
        return;
    if (d->on_sample)
        d->on_sample(d->cb_ctx, (double)bytes * 8 / el);
    x->windowed = true;
    x->win_start = now;
    x->win_base = d->received;
}

/* The first body byte: decide what this answer means for the file. */
static bool dl_decide(struct dl_ctx *x)
{
    struct client_download *d = x->d;
    long status = 0;
    curl_off_t len = -1, first_us = 0;

    curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &status);
    d->how = client_resume_decide(status, x->ans->content_range[0]
                                              ? x->ans->content_range
                                              : NULL,
                                  d->have, d->expected, &x->total);
    x->decided = true;
    switch (d->how) {
    case CLIENT_RESUME_APPEND:
        x->to_file = true;
        break;
    case CLIENT_RESUME_RESTART:
        x->to_file = true;
        d->have = 0;
        break;
    default:
        x->to_file = false;
        break;
    }
    if (!x->to_file)
        return true;
    /* A body announced longer than the object: cut before a byte lands. */
    if (curl_easy_getinfo(x->h->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                          &len) == CURLE_OK &&
        len >= 0 && (uint64_t)len > d->expected - d->have) {
        x->too_long = true;
        return false;
    }
    if (ftruncate(d->fd, (off_t)d->have) != 0) {
        x->local_error = true;
        return false;
    }
    if (x->ans->etag[0] && strcmp(x->ans->etag, d->validator) != 0) {
        snprintf(d->validator, sizeof(d->validator), "%s", x->ans->etag);
        d->validator_changed = true;
        if (d->on_validator)
            d->on_validator(d->cb_ctx, d->validator);
    }
    x->body_started = true;
    x->win_start = x->t0;
    if (curl_easy_getinfo(x->h->curl, CURLINFO_STARTTRANSFER_TIME_T,
                          &first_us) == CURLE_OK && first_us > 0)
        x->win_start = x->t0 + (double)first_us / 1e6;
    x->win_base = 0;
    return true;
}

static size_t on_dl_body(char *data, size_t size, size_t nitems, void *ctx)
{
    struct dl_ctx *x = ctx;
    struct client_download *d = x->d;
    size_t len = size * nitems;

    if (!x->decided && !dl_decide(x))
        return 0;
    if (!x->to_file) {
        /* An error answer: keep its start for the message, and stop
         * reading there (a server must not keep us reading). */
        size_t room = MAX_ERROR_BODY - x->err_body.len;

        (void)mem_append(&x->err_body, data, len < room ? len : room);
        if (len > room) {
            x->err_cut = true;
            return 0;
        }
        return len;
    }
    if (d->have + d->received + len > d->expected) {
        x->too_long = true; /* more than announced: not the object */
        return 0;
    }
    if (fileio_pwrite_all(d->fd, data, len, d->have + d->received) != 0) {
        x->local_error = true;
        return 0;
    }
    d->received += len;
    return len;
}

static int on_dl_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow,
                          curl_off_t ultotal, curl_off_t ulnow)
{
    struct dl_ctx *x = ctx;
    struct client_download *d = x->d;
    const struct client_options *o = x->h->o;
    curl_off_t speed = 0;
    double now = mono();

    (void)dltotal;
    (void)ultotal;
    (void)ulnow;
    (void)dlnow;
    if (o->on_progress && x->to_file) {
        curl_easy_getinfo(x->h->curl, CURLINFO_SPEED_DOWNLOAD_T, &speed);
        o->on_progress(o->cb_ctx, d->have + d->received, d->expected,
                       (double)speed * 8);
    }
    rate_sample(x, now, false);
    if (d->on_tick && now - x->last_tick >= 1.0) {
        x->last_tick = now;
        d->on_tick(d->cb_ctx);
    }
    /* curl calls this at least once a second, also while nothing flows. */
    if (d->deadline_s > 0 && now >= d->deadline_s) {
        d->deadline_hit = true;
        return 1; /* aborts the transfer: CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

enum client_http_rc client_http_download(struct client_http *h,
                                         const char *url,
                                         struct client_download *d,
                                         struct client_answer *ans)
{
    char full[CLIENT_URL_SIZE + 64], range[64], ifr[CLIENT_VALIDATOR_SIZE + 16];
    char errbuf[CURL_ERROR_SIZE] = "";
    struct hdr_ctx hc = { ans, 0, false };
    struct dl_ctx x;
    struct curl_slist *hdrs = NULL;
    struct stat sb;
    CURLcode cc;

    memset(ans, 0, sizeof(*ans));
    memset(&x, 0, sizeof(x));
    x.h = h;
    x.d = d;
    x.ans = ans;
    x.err_body.max = MAX_ERROR_BODY;
    d->received = 0;
    d->complete = false;
    d->validator_changed = false;
    d->deadline_hit = false;
    if (fstat(d->fd, &sb) != 0)
        return CLIENT_HTTP_LOCAL;
    d->have = (uint64_t)sb.st_size;
    if (d->have > d->expected) {
        if (ftruncate(d->fd, 0) != 0)
            return CLIENT_HTTP_LOCAL;
        d->have = 0;
    }
    if (d->expected && d->have == d->expected) {
        d->complete = true;
        d->how = CLIENT_RESUME_COMPLETE;
        ans->status = 206;
        return CLIENT_HTTP_ANSWERED;
    }
    if (d->have > 0 && !d->validator[0]) {
        /* Bytes without a validator cannot be trusted to match. */
        if (ftruncate(d->fd, 0) != 0)
            return CLIENT_HTTP_LOCAL;
        d->have = 0;
    }
    client_http_url(h, url, full, sizeof(full));
    common_setup(h, full, &hc, errbuf);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_dl_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION, on_dl_progress);
    curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, 0L);
    if (d->have > 0) {
        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", d->have);
        snprintf(ifr, sizeof(ifr), "If-Range: %s", d->validator);
        hdrs = curl_slist_append(hdrs, range);
        hdrs = curl_slist_append(hdrs, ifr);
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
    }
    x.t0 = mono();
    x.last_tick = x.t0;
    cc = curl_easy_perform(h->curl);
    curl_slist_free_all(hdrs);
    /* What this request measured, however it ended. */
    rate_sample(&x, mono(), true);
    ans->rtt_ms = measured_rtt_ms(h->curl);
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &ans->status);
    if (!x.decided && cc == CURLE_OK) /* an empty body */
        (void)dl_decide(&x);
    ans->body = x.err_body.p;
    ans->body_len = x.err_body.len;
    if (x.local_error)
        return CLIENT_HTTP_LOCAL;
    if (x.too_long) {
        snprintf(ans->error, sizeof(ans->error),
                 "more than the %" PRIu64 " bytes announced: cut",
                 d->expected);
        return CLIENT_HTTP_TOO_LONG;
    }
    if (d->deadline_hit) {
        snprintf(ans->error, sizeof(ans->error), "transfer deadline");
        return CLIENT_HTTP_DEADLINE;
    }
    if (hc.too_long) {
        snprintf(ans->error, sizeof(ans->error),
                 "the answer's headers are over %u bytes: cut",
                 MAX_HEADER_BYTES);
        return CLIENT_HTTP_NETWORK;
    }
    if (cc != CURLE_OK && !x.err_cut) {
        snprintf(ans->error, sizeof(ans->error), "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return CLIENT_HTTP_NETWORK;
    }
    if (x.to_file) {
        uint64_t done = d->have + d->received;

        d->complete = x.total ? done == x.total : true;
        if (!d->complete)
            return CLIENT_HTTP_NETWORK; /* cut short: resume */
    } else if (d->how == CLIENT_RESUME_COMPLETE) {
        d->complete = true;
    }
    return CLIENT_HTTP_ANSWERED;
}
