/*
 * Reason texts without printf (see reason_text.h). The select answer
 * carries a few reasons per candidate; spelling their numbers through
 * vsnprintf's float path was most of the printf left in a plain select.
 */
#include "policy/reason_text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

/* 10^prec: the fixed-point spelling of "%.<prec>g" holds below it. */
static const double pow10_upto9[] = {1e0, 1e1, 1e2, 1e3, 1e4,
                                     1e5, 1e6, 1e7, 1e8, 1e9};

size_t
rt_fmt_g(char out[RT_NUM_SIZE], double x, int prec)
{
    double a = fabs(x);
    int r;

    if (prec >= 1 && prec <= 9 && a >= 1e-30 && a < pow10_upto9[prec]) {
        size_t sign = x < 0;
        size_t n;

        if (sign)
            out[0] = '-';
        n = a < 1e-4 ? proto_g_exp(out + sign, a, prec)
                     : proto_g_fixed(out + sign, a, prec);
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
            size_t n = proto_put_u64(out, (uint64_t)fl + (fr > 0.5));

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

    rt_putn(t, tmp, proto_put_u64(tmp, v));
}

void
rt_i(struct rtext *t, int v)
{
    char tmp[24];
    size_t n = 0;

    if (v < 0)
        tmp[n++] = '-';
    n += proto_put_u64(tmp + n, v < 0 ? (uint64_t)0 - (uint64_t)(int64_t)v
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
