/*
 * Reason texts written without printf: small appenders whose output is
 * byte-identical to the printf spelling of the same format ("%.3g",
 * "%g", "%.6g", "%.0f", PRIu64, "%d", "%s"), truncated like vsnprintf
 * at PROTO_REASON_SIZE - 1 bytes. Numbers printf would spell in a way
 * the fast path is not sure of (rounding ties, exponents other than
 * e-05..e-30, decade edges, zero, negative zero, non-finite) are handed
 * to snprintf.
 */
#ifndef MODELD_POLICY_REASON_TEXT_H
#define MODELD_POLICY_REASON_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/types.h"

#define RT_NUM_SIZE 48

/* "%.<prec>g" of x, 1 <= prec <= 9; returns the length, out NUL-ended. */
size_t rt_fmt_g(char out[RT_NUM_SIZE], double x, int prec);
/* "%.0f" of x; returns the length, out NUL-ended. */
size_t rt_fmt_f0(char out[RT_NUM_SIZE], double x);

struct rtext {
    char *p;                      /* NULL: nothing is written */
    size_t n, cap;                /* cap: at most this many bytes */
    struct proto_reasons *rs;     /* counted at rt_end; may be NULL */
};

/* The next reason of rs (nothing when rs is full). */
void rt_begin(struct rtext *t, struct proto_reasons *rs);
/* buf of size bytes, cut off like snprintf(buf, size, ...). */
void rt_begin_buf(struct rtext *t, char *buf, size_t size);
void rt_s(struct rtext *t, const char *s);
void rt_g(struct rtext *t, double x, int prec);
void rt_f0(struct rtext *t, double x);
void rt_u64(struct rtext *t, uint64_t v);
void rt_i(struct rtext *t, int v);
void rt_end(struct rtext *t);

#endif
