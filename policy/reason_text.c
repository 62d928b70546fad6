/*
 * Reason texts without printf (see reason_text.h). The select answer
 * carries a few reasons per candidate; spelling their numbers through
 * vsnprintf's float path was most of the printf left in a plain select.
 */
#include "policy/reason_text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

static size_t
put_u64(char *out, uint64_t u)
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

/*
 * "%.<prec>g" of a, 1e-4 <= a < 10^prec (the fixed-point spelling), by
 * hand; 0 when it cannot be sure to write what printf would. a is
 * scaled by an exact power of ten (at most 10^(prec+3)), off by far
 * less than the 1e-6 kept clear of a rounding tie.
 */
static size_t
g_fixed(char *out, double a, int prec)
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
    n = put_u64(out, ip);
    if (fp) {
        int w = k;

        while (fp % 10 == 0) {    /* %g drops trailing zeros */
            fp /= 10;
            w--;
        }
        out[n++] = '.';
        for (int i = w - 1; i >= 0; i--) {
            out[n + (size_t)i] = (char)('0' + fp % 10);
            fp /= 10;
        }
        n += (size_t)w;
    }
    return n;
}

size_t
rt_fmt_g(char out[RT_NUM_SIZE], double x, int prec)
{
    double a = fabs(x);
    int r;

    if (prec >= 1 && prec <= 9 && a >= 1e-4 && a < (double)ipow[prec]) {
        size_t sign = x < 0;
        size_t n;

        if (sign)
            out[0] = '-';
        n = g_fixed(out + sign, a, prec);
        if (n) {
            out[n + sign] = '\0';
            return n + sign;
        }
    }
    r = snprintf(out, RT_NUM_SIZE, "%.*g", prec, x);
    return r > 0 ? (size_t)r : 0;
}

size_t
rt_fmt_f0(char out[RT_NUM_SIZE], double x)
{
    int r;

    /* below 2^53 the fraction x - floor(x) is exact: only a true .5
     * tie (printf rounds it to even) is left to printf */
    if (!signbit(x) && x < 9007199254740992.0) {
        double fl = floor(x), fr = x - fl;

        if (fr != 0.5) {
            size_t n = put_u64(out, (uint64_t)fl + (fr > 0.5));

            out[n] = '\0';
            return n;
        }
    }
    r = snprintf(out, RT_NUM_SIZE, "%.0f", x);
    return r > 0 ? (size_t)r : 0;
}

void
rt_begin(struct rtext *t, struct proto_reasons *rs)
{
    t->n = 0;
    t->cap = PROTO_REASON_SIZE - 1;
    if (rs->count >= PROTO_MAX_REASONS) {
        t->rs = NULL;
        t->p = NULL;
        return;
    }
    t->rs = rs;
    t->p = rs->text[rs->count];
}

void
rt_begin_buf(struct rtext *t, char *buf, size_t size)
{
    t->n = 0;
    t->rs = NULL;
    t->p = size ? buf : NULL;
    t->cap = size ? size - 1 : 0;
}

/* Appends like vsnprintf: what does not fit in cap is cut off. */
static void
rt_putn(struct rtext *t, const char *s, size_t len)
{
    size_t room;

    if (!t->p)
        return;
    room = t->cap - t->n;
    if (len > room)
        len = room;
    memcpy(t->p + t->n, s, len);
    t->n += len;
}

void
rt_s(struct rtext *t, const char *s)
{
    rt_putn(t, s, strlen(s));
}

void
rt_g(struct rtext *t, double x, int prec)
{
    char tmp[RT_NUM_SIZE];

    rt_putn(t, tmp, rt_fmt_g(tmp, x, prec));
}

void
rt_f0(struct rtext *t, double x)
{
    char tmp[RT_NUM_SIZE];

    rt_putn(t, tmp, rt_fmt_f0(tmp, x));
}

void
rt_u64(struct rtext *t, uint64_t v)
{
    char tmp[24];

    rt_putn(t, tmp, put_u64(tmp, v));
}

void
rt_i(struct rtext *t, int v)
{
    char tmp[24];
    size_t n = 0;

    if (v < 0)
        tmp[n++] = '-';
    n += put_u64(tmp + n, v < 0 ? (uint64_t)0 - (uint64_t)(int64_t)v
                                : (uint64_t)v);
    rt_putn(t, tmp, n);
}

void
rt_end(struct rtext *t)
{
    if (!t->p)
        return;
    t->p[t->n] = '\0';
    if (t->rs)
        t->rs->count++;
}
