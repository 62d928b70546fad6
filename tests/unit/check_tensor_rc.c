/*
 * Unit tests of the range coder behind modeld-tensor/1's RC ops
 * (proto/tensor_rc.c): round trips over element widths, both modes and
 * densities of change, decoded from pieces of every size the container
 * hands it; the model carried from one tensor to the next; corrupt and
 * truncated codings refused; and a sparse fine-tune coded within a few
 * percent of its information content (positions and the changes' bits,
 * computed here from the generator's own distribution).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tensor_rc.h"
#include "tests/lib/tensorgen.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A base of n elements of width w and a target with a share of them
 * changed: SUB cases by a small amount, SET cases to zero. */
static void make_pair(unsigned w, size_t n, double share, bool set,
                      uint64_t seed, unsigned char **out_old,
                      unsigned char **out_new)
{
    unsigned char *a = malloc(n * w), *b = malloc(n * w);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    tg_seed(seed);
    for (size_t i = 0; i < n * w; i++)
        a[i] = (unsigned char)tg_next();
    memcpy(b, a, n * w);
    for (size_t i = 0; i < n; i++) {
        if ((double)(tg_next() >> 11) / 9007199254740992.0 >= share)
            continue;
        if (set) {
            memset(b + i * w, 0, w);
        } else {
            /* a small signed difference, modulo the width */
            uint64_t v = 0, k = tg_next() % 300 + 1;

            for (unsigned j = w; j-- > 0;)
                v = v << 8 | b[i * w + j];
            v = tg_next() & 1 ? v + k : v - k;
            for (unsigned j = 0; j < w; j++)
                b[i * w + j] = (unsigned char)(v >> (8 * j));
        }
    }
    *out_old = a;
    *out_new = b;
}

/* Decodes coded (len bytes) in pieces of piece bytes, the way the
 * container does: what is left of a piece is carried to the next. */
static enum proto_status decode_pieces(struct proto_trc_dec *t,
                                       const unsigned char *coded,
                                       size_t len, size_t piece,
                                       const unsigned char *src,
                                       unsigned char *out, size_t elems)
{
    unsigned char *buf = malloc(piece + PROTO_TRC_MARGIN);
    size_t have = 0, pos = 0, at = 0, done = 0;
    enum proto_status rc = PROTO_OK;

    ck_assert_ptr_nonnull(buf);
    while (at < len && rc == PROTO_OK) {
        size_t n = len - at < piece ? len - at : piece;
        bool final = at + n == len;

        memmove(buf, buf + pos, have - pos);
        have -= pos;
        pos = 0;
        memcpy(buf + have, coded + at, n);
        have += n;
        at += n;
        for (;;) {
            size_t got = 0;

            rc = proto_trc_dec_run(t, buf, have, &pos, final, src,
                                   out + done * t->width, elems - done,
                                   &got);
            if (rc != PROTO_OK || got == 0)
                break;
            done += got;
        }
        if (rc == PROTO_OK && final && (done != elems || pos != have))
            rc = PROTO_BAD_INPUT;
    }
    if (rc == PROTO_OK && done != elems)
        rc = PROTO_BAD_INPUT;
    free(buf);
    return rc;
}

static const struct rt_case {
    unsigned width;
    size_t elems;
    double share;
    bool set;
} rt_cases[] = {
    { 4, 20000, 0.01, false }, { 4, 20000, 0.10, false },
    { 4, 20000, 1.00, false }, { 4, 20000, 0.50, true },
    { 2, 30000, 0.05, false }, { 2, 30000, 0.50, true },
    { 1, 50000, 0.20, false }, { 8, 8000, 0.30, false },
    { 8, 8000, 0.30, true },   { 4, 1, 1.00, false },
};

static const size_t pieces[] = { 1, 7, 64, 65, 1000, 1 << 20 };

START_TEST(test_proto_trc_roundtrip_cases)
{
    const struct rt_case *c = &rt_cases[_i];
    unsigned char *a, *b, *coded = NULL, *out;
    struct proto_trc_model *m = malloc(sizeof(*m));
    struct proto_trc_dec *t = malloc(sizeof(*t));
    size_t len = 0;
    uint64_t changed = 0, steps = 0;

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(t);
    make_pair(c->width, c->elems, c->share, c->set, 7 + _i, &a, &b);
    proto_trc_model_init(m);
    ck_assert_int_eq(proto_trc_encode(m, a, b, c->elems, c->width, c->set,
                                      &coded, &len, &changed, &steps),
                     PROTO_OK);
    ck_assert_uint_gt(changed, 0);
    ck_assert_uint_ge(steps, c->elems);
    out = malloc(c->elems * c->width);
    for (size_t k = 0; k < ARRAY_LEN(pieces); k++) {
        memset(out, 0xee, c->elems * c->width);
        proto_trc_dec_new_model(t);
        proto_trc_dec_init(t, c->elems, c->width, c->set);
        ck_assert_int_eq(decode_pieces(t, coded, len, pieces[k], a, out,
                                       c->elems),
                         PROTO_OK);
        ck_assert_uint_eq(t->changed, changed);
        ck_assert_int_eq(memcmp(out, b, c->elems * c->width), 0);
    }
    free(out);
    free(coded);
    free(a);
    free(b);
    free(m);
    free(t);
}
END_TEST

/* Two tensors in a row: the second starts from the model the first left,
 * on both sides; decoding it from a fresh model does not give it back. */
START_TEST(test_proto_trc_model_carries_over)
{
    unsigned char *a1, *b1, *a2, *b2, *c1 = NULL, *c2 = NULL, *out;
    struct proto_trc_model *m = malloc(sizeof(*m));
    struct proto_trc_dec *t = malloc(sizeof(*t));
    size_t l1, l2, n = 20000;
    uint64_t ch, st;

    make_pair(4, n, 0.02, false, 1, &a1, &b1);
    make_pair(4, n, 0.02, false, 2, &a2, &b2);
    proto_trc_model_init(m);
    ck_assert_int_eq(proto_trc_encode(m, a1, b1, n, 4, false, &c1, &l1, &ch,
                                      &st),
                     PROTO_OK);
    ck_assert_int_eq(proto_trc_encode(m, a2, b2, n, 4, false, &c2, &l2, &ch,
                                      &st),
                     PROTO_OK);
    out = malloc(n * 4);
    proto_trc_dec_new_model(t);
    proto_trc_dec_init(t, n, 4, false);
    ck_assert_int_eq(decode_pieces(t, c1, l1, 4096, a1, out, n), PROTO_OK);
    ck_assert_int_eq(memcmp(out, b1, n * 4), 0);
    proto_trc_dec_init(t, n, 4, false);
    ck_assert_int_eq(decode_pieces(t, c2, l2, 4096, a2, out, n), PROTO_OK);
    ck_assert_int_eq(memcmp(out, b2, n * 4), 0);
    proto_trc_dec_new_model(t);
    proto_trc_dec_init(t, n, 4, false);
    if (decode_pieces(t, c2, l2, 4096, a2, out, n) == PROTO_OK)
        ck_assert_int_ne(memcmp(out, b2, n * 4), 0);
    free(out);
    free(c1);
    free(c2);
    free(a1);
    free(b1);
    free(a2);
    free(b2);
    free(m);
    free(t);
}
END_TEST

/* Truncated or changed anywhere: an error or other elements, never a
 * read past the input or a crash (ASan). A byte after the end: an error. */
START_TEST(test_proto_trc_dec_corrupt)
{
    unsigned char *a, *b, *coded = NULL, *bad, *out;
    struct proto_trc_model *m = malloc(sizeof(*m));
    struct proto_trc_dec *t = malloc(sizeof(*t));
    size_t len, n = 5000;
    uint64_t ch, st;

    make_pair(4, n, 0.05, false, 3, &a, &b);
    proto_trc_model_init(m);
    ck_assert_int_eq(proto_trc_encode(m, a, b, n, 4, false, &coded, &len,
                                      &ch, &st),
                     PROTO_OK);
    out = malloc(n * 4);
    bad = malloc(len + 1);
    for (size_t cut = 0; cut < len; cut += 1 + cut / 8) {
        proto_trc_dec_new_model(t);
        proto_trc_dec_init(t, n, 4, false);
        ck_assert_int_ne(decode_pieces(t, coded, cut, 100, a, out, n),
                         PROTO_OK);
    }
    /* (the last 4 bytes only refine the final interval: a change there
     * may decode the same elements, which the container's digest
     * catches) */
    for (size_t at = 0; at + 4 < len; at += 1 + at / 8) {
        memcpy(bad, coded, len);
        bad[at] ^= 0x21;
        proto_trc_dec_new_model(t);
        proto_trc_dec_init(t, n, 4, false);
        if (decode_pieces(t, bad, len, 100, a, out, n) == PROTO_OK)
            ck_assert_int_ne(memcmp(out, b, n * 4), 0);
    }
    memcpy(bad, coded, len);
    bad[len] = 0;
    proto_trc_dec_new_model(t);
    proto_trc_dec_init(t, n, 4, false);
    ck_assert_int_ne(decode_pieces(t, bad, len + 1, 100, a, out, n),
                     PROTO_OK);
    free(bad);
    free(out);
    free(coded);
    free(a);
    free(b);
    free(m);
    free(t);
}
END_TEST

/*
 * A 1% fine-tune (tests/lib/tensorgen.h: N(0, 1e-3 |x|) on 1% of the
 * values) against its information (tg_finetune_info_bits): no lossless
 * coding does better on average; the RC coding, tensor by tensor with the
 * model carried over, must come within 4% of it.
 */
START_TEST(test_proto_trc_finetune_near_information)
{
    struct tg_model base = tg_model_new(600 << 10, 21);
    struct tg_model next = tg_model_copy(&base);
    struct proto_trc_model *m = malloc(sizeof(*m));
    double info_bits, coded_bytes = 0;

    tg_finetune(&next, 0.01, 1e-3, 0, 11);
    info_bits = tg_finetune_info_bits(&base, &next, 1e-3);
    proto_trc_model_init(m);
    for (size_t i = 0; i < base.count; i++) {
        unsigned char *coded = NULL;
        size_t len = 0;
        uint64_t ch, st;

        ck_assert_int_eq(proto_trc_encode(m, base.t[i].data, next.t[i].data,
                                          base.t[i].len / 4, 4, false,
                                          &coded, &len, &ch, &st),
                         PROTO_OK);
        coded_bytes += (double)len;
        free(coded);
    }
    ck_assert_msg(coded_bytes <= info_bits / 8 * 1.04,
                  "coded %.0f bytes, information %.0f bytes", coded_bytes,
                  info_bits / 8);
    free(m);
    tg_model_free(&base);
    tg_model_free(&next);
}
END_TEST

static Suite *tensor_rc_suite(void)
{
    Suite *s = suite_create("tensor_rc");
    TCase *tc = tcase_create("trc");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_proto_trc_roundtrip_cases, 0,
                        ARRAY_LEN(rt_cases));
    tcase_add_test(tc, test_proto_trc_model_carries_over);
    tcase_add_test(tc, test_proto_trc_dec_corrupt);
    tcase_add_test(tc, test_proto_trc_finetune_near_information);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tensor_rc_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
