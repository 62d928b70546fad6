/*
 * JSON out: variants, families and select decisions written from the plain
 * structs of proto/types.h. The select answer is on the hot path, so every
 * writer here appends to one small growable buffer instead of building a
 * jansson tree; strings are escaped (invalid UTF-8 becomes U+FFFD) and
 * numbers are never NaN or Inf (null instead). Which variant to choose is
 * policy/'s business; this file only spells the answer.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/proto.h"

#define SB_INITIAL_CAP 1024

/* A growable string; after an allocation failure every append is a no-op
 * and sb_finish returns NULL. */
struct sb {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
};

static bool sb_reserve(struct sb *b, size_t extra)
{
    size_t want;
    char *p;

    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    want = b->cap ? b->cap : SB_INITIAL_CAP;
    while (want < b->len + extra + 1)
        want *= 2;
    p = realloc(b->buf, want);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->buf = p;
    b->cap = want;
    return true;
}

static void sb_putn(struct sb *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_putc(struct sb *b, char c)
{
    if (!b->failed && b->len + 2 <= b->cap) {
        b->buf[b->len++] = c;
        b->buf[b->len] = '\0';
        return;
    }
    sb_putn(b, &c, 1);
}

static char *sb_finish(struct sb *b)
{
    if (!b->failed && !b->buf)
        sb_putn(b, "", 0);
    if (b->failed) {
        free(b->buf);
        return NULL;
    }
    return b->buf;
}

/* Length of the valid UTF-8 sequence at s, 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* A JSON string literal, escaped (the slow path of sb_str_then). */
static void sb_str_escaped(struct sb *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    sb_putc(b, '"');
    while (i < len) {
        size_t run = i;
        size_t n;

        /* Copy the longest stretch that needs no escaping in one go. */
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 &&
               p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            sb_putn(b, s + i, run - i);
            i = run;
            continue;
        }
        if (p[i] == '"' || p[i] == '\\') {
            char esc[2] = {'\\', (char)p[i]};

            sb_putn(b, esc, 2);
            i++;
        } else if (p[i] < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[p[i] >> 4],
                           hex[p[i] & 0xf]};

            sb_putn(b, esc, sizeof(esc));
            i++;
        } else if ((n = utf8_len(p + i, len - i)) > 0) {
            sb_putn(b, s + i, n);
            i += n;
        } else {
            sb_puts(b, "\\ufffd");
            i++;
        }
    }
    sb_putc(b, '"');
}

/*
 * A JSON string literal followed by tail (0: none). Keys and most values
 * (reasons, names) are printable ASCII: those are copied while checked,
 * in one reservation; anything else takes the escaping path.
 */
static void sb_str_then(struct sb *b, const char *s, char tail)
{
    size_t len = strlen(s);
    size_t i;
    char *o;

    if (!sb_reserve(b, len + 3))
        return;
    o = b->buf + b->len;
    o[0] = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            break;
        o[1 + i] = (char)c;
    }
    if (i == len) {
        o[1 + len] = '"';
        b->len += len + 2;
        if (tail)
            b->buf[b->len++] = tail;
        b->buf[b->len] = '\0';
        return;
    }
    sb_str_escaped(b, s, len);
    if (tail)
        sb_putc(b, tail);
}

static void sb_str(struct sb *b, const char *s)
{
    sb_str_then(b, s, 0);
}

/* A comma unless this is the first member or element. */
static void sb_sep(struct sb *b)
{
    if (b->len > 0 && b->buf[b->len - 1] != '{' && b->buf[b->len - 1] != '[')
        sb_putc(b, ',');
}

static void sb_key(struct sb *b, const char *key)
{
    sb_sep(b);
    sb_str_then(b, key, ':');
}

/* Integers by hand: the select answer is mostly integers, and printf's
 * format parsing costs more than the digits. */
static void sb_u64(struct sb *b, uint64_t x)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    sb_putn(b, tmp + i, sizeof(tmp) - i);
}

static void sb_i64(struct sb *b, int64_t x)
{
    if (x < 0) {
        sb_putc(b, '-');
        sb_u64(b, (uint64_t)0 - (uint64_t)x);
    } else {
        sb_u64(b, (uint64_t)x);
    }
}

/* A whole number that a double holds exactly: written as an integer. */
static bool is_exact_integer(double x)
{
    return x == floor(x) && fabs(x) <= 9007199254740992.0;
}

static void sb_bool(struct sb *b, bool x)
{
    sb_puts(b, x ? "true" : "false");
}

static const uint64_t ipow[] = {1ULL,
                                10ULL,
                                100ULL,
                                1000ULL,
                                10000ULL,
                                100000ULL,
                                1000000ULL,
                                10000000ULL,
                                100000000ULL,
                                1000000000ULL,
                                10000000000ULL,
                                100000000000ULL,
                                1000000000000ULL,
                                10000000000000ULL};

size_t proto_put_u64(char *out, uint64_t u)
{
    char tmp[24];
    size_t i = sizeof(tmp), n;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    n = sizeof(tmp) - i;
    memcpy(out, tmp + i, n);
    return n;
}

/* ".<digits>" of frac, a fraction of width digits, without its trailing
 * zeros as %g drops them; nothing when frac is 0. Returns the count. */
static size_t put_frac(char *out, uint64_t frac, int width)
{
    size_t n = 0;

    if (!frac)
        return 0;
    while (frac % 10 == 0) {
        frac /= 10;
        width--;
    }
    out[n++] = '.';
    for (int i = width - 1; i >= 0; i--) {
        out[n + (size_t)i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return n + (size_t)width;
}

/*
 * "%.<prec>g" of a, 1e-4 <= a < 10^prec (the fixed-point spelling), by
 * hand; 0 when it cannot be sure to write what printf would. a is
 * scaled by an exact power of ten (at most 10^(prec+3)), off by far
 * less than the 1e-6 kept clear of a rounding tie.
 */
size_t proto_g_fixed(char *out, double a, int prec)
{
    static const double p10[] = {1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2,
                                 1e3,  1e4,  1e5,  1e6,  1e7, 1e8, 1e9};
    static const double scale[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5, 1e6,
                                   1e7, 1e8, 1e9, 1e10, 1e11, 1e12};
    double scaled, fl;
    uint64_t m, ip, fp;
    int x = prec - 1;             /* decade: 10^x <= a < 10^(x+1) */
    int k;
    size_t n;

    while (x > -4 && a < p10[x + 4])
        x--;
    k = prec - 1 - x;             /* digits after the point, 0..prec+3 */
    scaled = a * scale[k];
    fl = floor(scaled);
    if (fabs(scaled - fl - 0.5) < 1e-6)
        return 0;
    m = (uint64_t)fl + (scaled - fl > 0.5);
    if (m < ipow[prec - 1] || m >= ipow[prec])
        return 0;                 /* the decade guess was off: printf */
    ip = m / ipow[k];
    fp = m % ipow[k];
    n = proto_put_u64(out, ip);
    return n + put_frac(out + n, fp, k);
}

/*
 * "%.<prec>g" of a, 1e-30 <= a < 1e-4 (the exponent spelling: small
 * costs and sizes in reasons), by hand; 0 when it cannot be sure to write
 * what printf would. a is scaled into [10^(prec-1), 10^prec) by 10^e,
 * e <= 38 (a double off by at most half an ulp from 10^23 on), so the
 * scaled value, below 10^9, is off by less than 3e-7: inside the 1e-6
 * kept clear of a rounding tie. A value that rounds up into the next
 * decade takes its exponent (9.96e-06 to 2 digits is 1e-05), unless
 * that is the fixed spelling (9.96e-05 is 0.0001): left to printf.
 */
size_t proto_g_exp(char *out, double a, int prec)
{
    static const double tiny[] = {
        1e-5,  1e-6,  1e-7,  1e-8,  1e-9,  1e-10, 1e-11, 1e-12, 1e-13,
        1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
        1e-23, 1e-24, 1e-25, 1e-26, 1e-27, 1e-28, 1e-29, 1e-30};
    static const double up[] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
        1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
        1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38};
    double scaled, fl;
    uint64_t m;
    int x = 0;                    /* decade: 10^-(x+5) <= a < 10^-(x+4) */
    size_t n = 0;

    if (!(a >= 1e-30 && a < 1e-4) || prec < 1 || prec > 9)
        return 0;
    while (x < 25 && a < tiny[x])
        x++;
    scaled = a * up[prec - 1 + x + 5];
    fl = floor(scaled);
    if (fabs(scaled - fl - 0.5) < 1e-6)
        return 0;
    m = (uint64_t)fl + (scaled - fl > 0.5);
    if (m == ipow[prec] && x > 0) {
        m = ipow[prec - 1];       /* rounded up into the next decade */
        x--;
    }
    if (m < ipow[prec - 1] || m >= ipow[prec])
        return 0;
    out[n++] = (char)('0' + m / ipow[prec - 1]);
    n += put_frac(out + n, m % ipow[prec - 1], prec - 1);
    out[n++] = 'e';
    out[n++] = '-';
    out[n++] = (char)('0' + (x + 5) / 10);
    out[n++] = (char)('0' + (x + 5) % 10);
    return n;
}

size_t proto_num_short(char out[PROTO_NUM_SHORT_SIZE], double x)
{
    double a = fabs(x);
    size_t n;
    int k;

    if (!isfinite(x)) {
        memcpy(out, "null", 5);
        return 4;
    }
    if (is_exact_integer(x) && a < 1e15) {
        int64_t v = (int64_t)x;
        size_t sign = v < 0;

        if (sign)
            out[0] = '-';
        n = sign + proto_put_u64(out + sign, sign ? (uint64_t)0 - (uint64_t)v
                                            : (uint64_t)v);
        out[n] = '\0';
        return n;
    }
    if (a >= 1e-30 && a < 1e5) {
        size_t sign = x < 0;

        if (sign)
            out[0] = '-';
        n = a < 1e-4 ? proto_g_exp(out + sign, a, 6)
                     : proto_g_fixed(out + sign, a, 6);
        if (n) {
            out[n + sign] = '\0';
            return n + sign;
        }
    }
    if (a >= 1e5 && a < 1e15)
        k = snprintf(out, PROTO_NUM_SHORT_SIZE, "%.0f", x);
    else
        k = snprintf(out, PROTO_NUM_SHORT_SIZE, "%.6g", x);
    return k > 0 ? (size_t)k : 0;
}

/* An estimate for people: about 6 significant digits (57, 38.4, 0.706),
 * whole numbers from 100000 up (proto_num_short). */
static void sb_num_short(struct sb *b, double x)
{
    char tmp[PROTO_NUM_SHORT_SIZE];

    sb_putn(b, tmp, proto_num_short(tmp, x));
}

/* Metadata as given: the shortest form that reads back as the same
 * double, whole numbers without exponent below 2^53. */
static void sb_num_exact(struct sb *b, double x)
{
    char tmp[40];

    if (!isfinite(x)) {
        sb_puts(b, "null");
        return;
    }
    if (x == 0) {
        sb_putc(b, '0');
        return;
    }
    if (is_exact_integer(x)) {
        sb_i64(b, (int64_t)x);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    sb_puts(b, tmp);
}

static void sb_digest(struct sb *b, const char *hex)
{
    sb_putc(b, '"');
    sb_puts(b, "sha256:");
    sb_puts(b, hex);
    sb_putc(b, '"');
}

static void sb_blob_url(struct sb *b, const char *hex)
{
    sb_putc(b, '"');
    sb_puts(b, "/v1/blobs/sha256:");
    sb_puts(b, hex);
    sb_putc(b, '"');
}

static void sb_tokens(struct sb *b, const char (*t)[PROTO_TOKEN_SIZE],
                      size_t count)
{
    sb_putc(b, '[');
    for (size_t i = 0; i < count; i++) {
        sb_sep(b);
        sb_str(b, t[i]);
    }
    sb_putc(b, ']');
}

static void sb_class_map(struct sb *b, const struct proto_class_value *cv,
                         size_t count)
{
    sb_putc(b, '{');
    for (size_t i = 0; i < count; i++) {
        sb_key(b, cv[i].device_class);
        sb_num_exact(b, cv[i].value);
    }
    sb_putc(b, '}');
}

/* Tags grouped by key in first-seen order: one value as a string, more
 * as an array, the shapes the parser accepts. */
static void sb_context(struct sb *b, const struct proto_tag *tags,
                       size_t count)
{
    sb_putc(b, '{');
    for (size_t i = 0; i < count; i++) {
        size_t same = 0;
        bool seen = false;

        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(tags[j].key, tags[i].key) == 0;
        if (seen)
            continue;
        for (size_t j = i; j < count; j++)
            same += strcmp(tags[j].key, tags[i].key) == 0;
        sb_key(b, tags[i].key);
        if (same == 1) {
            sb_str(b, tags[i].value);
            continue;
        }
        sb_putc(b, '[');
        for (size_t j = i; j < count; j++) {
            if (strcmp(tags[j].key, tags[i].key) != 0)
                continue;
            sb_sep(b);
            sb_str(b, tags[j].value);
        }
        sb_putc(b, ']');
    }
    sb_putc(b, '}');
}

static void sb_created(struct sb *b, int64_t created_s)
{
    time_t t = (time_t)created_s;
    struct tm tm;
    char tmp[40];

    if (!gmtime_r(&t, &tm) ||
        strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        sb_puts(b, "null");
        return;
    }
    sb_str(b, tmp);
}

static void sb_variant(struct sb *b, const struct proto_variant *v)
{
    sb_putc(b, '{');
    sb_key(b, "family");
    sb_str(b, v->family);
    sb_key(b, "variant");
    sb_str(b, v->name);
    sb_key(b, "version");
    sb_i64(b, v->version);
    sb_key(b, "blob");
    sb_digest(b, v->blob_hex);
    sb_key(b, "size_bytes");
    sb_u64(b, v->size_bytes);
    sb_key(b, "digest");
    sb_digest(b, v->blob_hex);
    sb_key(b, "url");
    sb_blob_url(b, v->blob_hex);
    sb_key(b, "created");
    sb_created(b, v->created_s);
    if (v->format[0]) {
        sb_key(b, "format");
        sb_str(b, v->format);
    }
    if (v->technique_count > 0) {
        sb_key(b, "techniques");
        sb_tokens(b, v->techniques, v->technique_count);
    }
    if (v->params > 0) {
        sb_key(b, "params");
        sb_u64(b, v->params);
    }
    sb_key(b, "flops");
    sb_num_exact(b, v->flops);
    sb_key(b, "accuracy");
    sb_num_exact(b, v->accuracy);
    if (v->memory_bytes > 0) {
        sb_key(b, "memory_bytes");
        sb_u64(b, v->memory_bytes);
    }
    if (v->latency_count > 0) {
        sb_key(b, "latency_ms");
        sb_class_map(b, v->latency_ms, v->latency_count);
    }
    if (v->energy_count > 0) {
        sb_key(b, "energy_mj");
        sb_class_map(b, v->energy_mj, v->energy_count);
    }
    if (v->exit_count > 0) {
        sb_key(b, "exits");
        sb_putc(b, '[');
        for (size_t i = 0; i < v->exit_count; i++) {
            sb_sep(b);
            sb_putc(b, '{');
            sb_key(b, "flops");
            sb_num_exact(b, v->exits[i].flops);
            sb_key(b, "accuracy");
            sb_num_exact(b, v->exits[i].accuracy);
            sb_putc(b, '}');
        }
        sb_putc(b, ']');
    }
    if (v->context_count > 0) {
        sb_key(b, "context");
        sb_context(b, v->context, v->context_count);
    }
    if (v->accelerator_count > 0) {
        sb_key(b, "requires");
        sb_putc(b, '{');
        sb_key(b, "accelerators");
        sb_tokens(b, v->accelerators, v->accelerator_count);
        sb_putc(b, '}');
    }
    sb_key(b, "rollout_percent");
    sb_u64(b, v->rollout_percent);
    if (v->weights_manifest_hex[0]) {
        sb_key(b, "weights_manifest");
        sb_digest(b, v->weights_manifest_hex);
    }
    sb_key(b, "paused");
    sb_bool(b, v->paused);
    if (v->retired) {
        sb_key(b, "retired");
        sb_bool(b, true);
    }
    sb_putc(b, '}');
}

char *proto_variant_write(const struct proto_variant *v)
{
    struct sb b = {0};

    sb_variant(&b, v);
    return sb_finish(&b);
}

char *proto_versions_write(const struct proto_variant *v, size_t count)
{
    struct sb b = {0};

    sb_puts(&b, "{\"versions\":[");
    for (size_t i = 0; i < count; i++) {
        sb_sep(&b);
        sb_variant(&b, &v[i]);
    }
    sb_puts(&b, "]}");
    return sb_finish(&b);
}

double proto_failure_share(const struct proto_version_stats *s)
{
    return s->ues ? (double)s->failed_ues / (double)s->ues : 0;
}

/* "events":{"installed":N,...,"ues":N,"failure_share":x,
 * "latency_ms":{"class":{"count","p50","p90","p99"}}} */
static void sb_stats(struct sb *b, const struct proto_version_stats *s)
{
    sb_key(b, "events");
    sb_putc(b, '{');
    for (unsigned k = 0; k < PROTO_EVENT_KINDS; k++) {
        sb_key(b, proto_event_kind_name((enum proto_event_kind)k));
        sb_u64(b, s->counts[k]);
    }
    sb_key(b, "ues");
    sb_u64(b, s->ues);
    sb_key(b, "failed_ues");
    sb_u64(b, s->failed_ues);
    sb_key(b, "verified_ues");
    sb_u64(b, s->verified_ues);
    sb_key(b, "verified_failed_ues");
    sb_u64(b, s->verified_failed_ues);
    sb_key(b, "failure_share");
    sb_num_short(b, proto_failure_share(s));
    sb_key(b, "latency_ms");
    sb_putc(b, '{');
    for (size_t i = 0; i < s->latency_count && i < PROTO_MAX_LATENCIES; i++) {
        const struct proto_class_latency *l = &s->latency[i];

        sb_key(b, l->device_class);
        sb_putc(b, '{');
        sb_key(b, "count");
        sb_u64(b, l->count);
        sb_key(b, "p50");
        sb_num_short(b, l->p50_ms);
        sb_key(b, "p90");
        sb_num_short(b, l->p90_ms);
        sb_key(b, "p99");
        sb_num_short(b, l->p99_ms);
        sb_putc(b, '}');
    }
    sb_puts(b, "}}");
}

char *proto_versions_stats_write(const struct proto_variant *v,
                                 const struct proto_version_stats *stats,
                                 size_t count)
{
    struct sb b = {0};

    sb_puts(&b, "{\"versions\":[");
    for (size_t i = 0; i < count; i++) {
        sb_sep(&b);
        sb_variant(&b, &v[i]);
        if (stats && !b.failed) {
            /* Reopen the variant's object for its events member. */
            b.len--;
            sb_stats(&b, &stats[i]);
            sb_putc(&b, '}');
        }
    }
    sb_puts(&b, "]}");
    return sb_finish(&b);
}

char *proto_families_write(const struct proto_family *f, size_t count)
{
    struct sb b = {0};

    sb_puts(&b, "{\"families\":[");
    for (size_t i = 0; i < count; i++) {
        sb_sep(&b);
        sb_putc(&b, '{');
        sb_key(&b, "name");
        sb_str(&b, f[i].name);
        sb_key(&b, "task");
        sb_str(&b, f[i].task);
        sb_key(&b, "description");
        sb_str(&b, f[i].description);
        sb_key(&b, "variants");
        sb_u64(&b, f[i].variant_count);
        sb_putc(&b, '}');
    }
    sb_puts(&b, "]}");
    return sb_finish(&b);
}

char *proto_family_write(const struct proto_family *f,
                         const struct proto_variant *v, size_t count)
{
    struct sb b = {0};

    sb_putc(&b, '{');
    sb_key(&b, "name");
    sb_str(&b, f->name);
    sb_key(&b, "task");
    sb_str(&b, f->task);
    sb_key(&b, "description");
    sb_str(&b, f->description);
    sb_key(&b, "variants");
    sb_putc(&b, '[');
    for (size_t i = 0; i < count; i++) {
        sb_sep(&b);
        sb_variant(&b, &v[i]);
    }
    sb_puts(&b, "]}");
    return sb_finish(&b);
}

const char *proto_action_name(enum proto_action a)
{
    switch (a) {
    case PROTO_ACTION_DOWNLOAD:
        return "download";
    case PROTO_ACTION_DELTA:
        return "delta";
    case PROTO_ACTION_KEEP:
        return "keep";
    case PROTO_ACTION_NONE:
        break;
    }
    return "none";
}

static void sb_reasons(struct sb *b, const struct proto_reasons *r)
{
    size_t count = r->count < PROTO_MAX_REASONS ? r->count : PROTO_MAX_REASONS;

    sb_putc(b, '[');
    for (size_t i = 0; i < count; i++) {
        sb_sep(b);
        sb_str(b, r->text[i]);
    }
    sb_putc(b, ']');
}

/* The candidates not listed, counted by the cause they lost to (extension:
 * "omitted": {"count": N, "by_cause": {"memory": 120, ...}}). */
static void sb_omitted(struct sb *b, const struct proto_decision *d)
{
    static const char *const names[PROTO_CAUSE_COUNT] = {
        [PROTO_CAUSE_MEMORY] = "memory",
        [PROTO_CAUSE_FORMAT] = "format",
        [PROTO_CAUSE_ACCELERATOR] = "accelerator",
        [PROTO_CAUSE_LATENCY] = "latency",
        [PROTO_CAUSE_ACCURACY] = "accuracy",
        [PROTO_CAUSE_DOWNLOAD] = "download",
        [PROTO_CAUSE_ENERGY] = "energy",
        [PROTO_CAUSE_HORIZON] = "horizon",
        [PROTO_CAUSE_OUTRANKED] = "outranked",
    };

    if (d->omitted_count == 0)
        return;
    sb_key(b, "omitted");
    sb_puts(b, "{\"count\":");
    sb_u64(b, d->omitted_count);
    sb_key(b, "by_cause");
    sb_putc(b, '{');
    for (size_t i = 0; i < PROTO_CAUSE_COUNT; i++) {
        if (d->omitted[i] == 0)
            continue;
        sb_sep(b);
        sb_str(b, names[i]);
        sb_putc(b, ':');
        sb_u64(b, d->omitted[i]);
    }
    sb_puts(b, "}}");
}

char *proto_decision_write(const struct proto_decision *d, const char *family,
                           const struct proto_variant *variants,
                           const struct proto_delta *deltas)
{
    struct sb b = {0};
    bool chosen = d->action != PROTO_ACTION_NONE && variants;
    const struct proto_variant *v = chosen ? &variants[d->chosen] : NULL;
    bool has_exit = v && d->exit_index >= 0 &&
                    (size_t)d->exit_index < v->exit_count;

    sb_puts(&b, "{\"action\":");
    sb_str(&b, proto_action_name(d->action));
    sb_key(&b, "family");
    sb_str(&b, family ? family : "");
    if (v) {
        sb_key(&b, "variant");
        sb_str(&b, v->name);
        sb_key(&b, "version");
        sb_i64(&b, v->version);
        if (d->receipt[0]) {
            sb_key(&b, "receipt");
            sb_str(&b, d->receipt);
        }
        sb_puts(&b, ",\"model\":{\"digest\":");
        sb_digest(&b, v->blob_hex);
        sb_key(&b, "size_bytes");
        if (d->model_bg && v->bg_size_bytes) {
            /* The bytes to transfer: the encoded form's. */
            sb_u64(&b, v->bg_size_bytes);
            sb_puts(&b, ",\"url\":\"/v1/blobs/sha256:");
            sb_puts(&b, v->blob_hex);
            sb_puts(&b, "?encoding=modeld-bg/1\",\"encoding\":"
                        "\"modeld-bg/1\"");
            /* The model's own size: bounds the decoding and a client's
             * fall back to the plain blob (README "Client"). */
            sb_key(&b, "decoded_size_bytes");
            sb_u64(&b, v->size_bytes);
        } else {
            sb_u64(&b, v->size_bytes);
            sb_key(&b, "url");
            sb_blob_url(&b, v->blob_hex);
        }
        sb_putc(&b, '}');
        sb_key(&b, "accuracy");
        sb_num_short(&b, has_exit ? v->exits[d->exit_index].accuracy
                                  : v->accuracy);
        if (d->has_delta && deltas) {
            const struct proto_delta *dl = &deltas[d->delta];

            sb_puts(&b, ",\"delta\":{\"from\":");
            sb_digest(&b, dl->from_hex);
            sb_key(&b, "size_bytes");
            sb_u64(&b, dl->size_bytes);
            sb_puts(&b, ",\"url\":\"/v1/deltas/sha256:");
            sb_puts(&b, dl->from_hex);
            sb_puts(&b, "/sha256:");
            sb_puts(&b, dl->to_hex);
            if (dl->format == PROTO_DELTA_TENSOR)
                sb_puts(&b, "?format=modeld-tensor/1\",\"format\":"
                            "\"modeld-tensor/1\"}");
            else
                sb_puts(&b, "\",\"format\":\"zstd-patch\"}");
        }
    }
    sb_key(&b, "degraded");
    sb_bool(&b, d->degraded);
    sb_key(&b, "violations");
    sb_reasons(&b, &d->violations);
    if (v) {
        sb_puts(&b, ",\"estimates\":{\"latency_ms\":");
        sb_num_short(&b, d->estimates.latency_ms);
        sb_key(&b, "download_s");
        sb_num_short(&b, d->estimates.download_s);
        sb_key(&b, "memory_bytes");
        sb_u64(&b, d->estimates.memory_bytes);
        if (d->estimates.has_energy_mj) {
            sb_key(&b, "energy_mj");
            sb_num_short(&b, d->estimates.energy_mj);
        }
        sb_putc(&b, '}');
    }
    if (has_exit) {
        sb_key(&b, "exit");
        sb_i64(&b, d->exit_index);
    }
    if (d->reasons.count > 0) {
        /* extension: why the chosen variant won */
        sb_key(&b, "reasons");
        sb_reasons(&b, &d->reasons);
    }
    sb_key(&b, "candidates");
    sb_putc(&b, '[');
    for (size_t i = 0; i < d->candidate_count && variants; i++) {
        const struct proto_candidate *c = &d->candidates[i];
        const struct proto_variant *cv = &variants[c->variant];

        sb_sep(&b);
        sb_puts(&b, "{\"variant\":");
        sb_str(&b, cv->name);
        sb_key(&b, "version");
        sb_i64(&b, cv->version);
        sb_key(&b, "feasible");
        sb_bool(&b, c->feasible);
        sb_key(&b, "reasons");
        sb_reasons(&b, &d->candidate_reasons[i]);
        sb_putc(&b, '}');
    }
    sb_putc(&b, ']');
    sb_omitted(&b, d);
    sb_key(&b, "recheck_after_s");
    sb_u64(&b, d->recheck_after_s);
    if (d->is_signed) {
        sb_key(&b, "issued_at");
        sb_created(&b, d->issued_at_s);
        sb_key(&b, "expires_at");
        sb_created(&b, d->expires_at_s);
        sb_key(&b, "generation");
        sb_u64(&b, d->generation);
        if (d->nonce[0]) {
            sb_key(&b, "nonce");
            sb_str(&b, d->nonce);
        }
    }
    sb_putc(&b, '}');
    return sb_finish(&b);
}

char *proto_audit_write(const struct proto_audit_entry *e, size_t count)
{
    struct sb b = {0};

    sb_puts(&b, "{\"entries\":[");
    for (size_t i = 0; i < count; i++) {
        sb_sep(&b);
        sb_putc(&b, '{');
        sb_key(&b, "time");
        sb_created(&b, e[i].time_s);
        sb_key(&b, "token");
        sb_str(&b, e[i].token);
        sb_key(&b, "method");
        sb_str(&b, e[i].method);
        sb_key(&b, "path");
        sb_str(&b, e[i].path);
        sb_key(&b, "status");
        sb_u64(&b, e[i].status);
        sb_key(&b, "detail");
        sb_str(&b, e[i].detail);
        sb_putc(&b, '}');
    }
    sb_puts(&b, "]}");
    return sb_finish(&b);
}
