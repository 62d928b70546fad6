/*
 * server/tls_out.c: the send that keeps an answer's header back and seals
 * it into one record with the body. A fake record layer stands for
 * GnuTLS: it notes each record's plaintext and can refuse (EAGAIN) or
 * take less than asked, as GnuTLS does on a full socket or when the peer
 * asked for small records. Checked: header and body make one record, in
 * order, nothing lost or doubled across EAGAIN and short records; what is
 * not a complete header block, or too large, goes out at once; flush
 * sends what is held.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "server/tls_out.h"

#define MAX_RECORDS 16

/* The fake GnuTLS: records[] holds what each record carried. */
static struct fake {
    unsigned char records[MAX_RECORDS][20000];
    size_t record_len[MAX_RECORDS];
    int count;
    int again;             /* refuse this many calls after queueing */
    size_t cap;            /* largest record taken (0: no cap) */
    unsigned char queued[20000];
    size_t queued_len;
    bool has_queued;
    int null_calls;        /* calls with NULL, 0 (the retry) */
} fk;

static void
fake_reset(void)
{
    memset(&fk, 0, sizeof(fk));
}

static void
emit(const unsigned char *p, size_t n)
{
    ck_assert_int_lt(fk.count, MAX_RECORDS);
    memcpy(fk.records[fk.count], p, n);
    fk.record_len[fk.count++] = n;
}

static ssize_t
fake_send(void *session, const void *data, size_t len)
{
    (void)session;
    if (!data && len == 0) {
        fk.null_calls++;
        ck_assert(fk.has_queued);
        if (fk.again > 0) {
            fk.again--;
            return GNUTLS_E_AGAIN;
        }
        fk.has_queued = false;
        emit(fk.queued, fk.queued_len);
        return (ssize_t)fk.queued_len;
    }
    ck_assert(!fk.has_queued);
    if (fk.cap && len > fk.cap)
        len = fk.cap;
    if (fk.again > 0) {
        /* Sealed and queued, not written: the retry finishes it. */
        fk.again--;
        memcpy(fk.queued, data, len);
        fk.queued_len = len;
        fk.has_queued = true;
        return GNUTLS_E_AGAIN;
    }
    emit(data, len);
    return (ssize_t)len;
}

static const char HDR[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
#define HDR_LEN (sizeof(HDR) - 1)

static void
assert_record(int i, const char *want, size_t want_len)
{
    ck_assert_uint_eq(fk.record_len[i], want_len);
    ck_assert_int_eq(memcmp(fk.records[i], want, want_len), 0);
}

START_TEST(test_tls_out_send_header_and_body_one_record)
{
    struct tls_out *o = tls_out_new();
    char want[256];

    fake_reset();
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, HDR, HDR_LEN, fake_send),
                     (ssize_t)HDR_LEN);
    ck_assert_int_eq(fk.count, 0);
    ck_assert_int_eq(tls_out_send(o, NULL, "hello", 5, fake_send), 5);
    ck_assert_int_eq(fk.count, 1);
    snprintf(want, sizeof(want), "%shello", HDR);
    assert_record(0, want, HDR_LEN + 5);
    /* The next answer is not held unless asked. */
    ck_assert_int_eq(tls_out_send(o, NULL, HDR, HDR_LEN, fake_send),
                     (ssize_t)HDR_LEN);
    ck_assert_int_eq(fk.count, 2);
    tls_out_free(o);
}
END_TEST

START_TEST(test_tls_out_send_not_a_header_block_goes_out)
{
    struct tls_out *o = tls_out_new();
    char big[3000];

    fake_reset();
    /* Header and body in one send (a libmicrohttpd that joins them). */
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, "HTTP/1.1 200 OK\r\n\r\n{}", 21,
                                  fake_send), 21);
    ck_assert_int_eq(fk.count, 1);
    /* A header block over the hold buffer. */
    memset(big, 'h', sizeof(big));
    memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, big, sizeof(big), fake_send),
                     (ssize_t)sizeof(big));
    ck_assert_int_eq(fk.count, 2);
    tls_out_free(o);
}
END_TEST

START_TEST(test_tls_out_send_again_keeps_one_record)
{
    struct tls_out *o = tls_out_new();
    char want[256];

    fake_reset();
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, HDR, HDR_LEN, fake_send),
                     (ssize_t)HDR_LEN);
    fk.again = 2; /* queued, then one retry refused too */
    ck_assert_int_eq(tls_out_send(o, NULL, "hello", 5, fake_send),
                     GNUTLS_E_AGAIN);
    ck_assert_int_eq(tls_out_send(o, NULL, "hello", 5, fake_send),
                     GNUTLS_E_AGAIN);
    ck_assert_int_eq(tls_out_send(o, NULL, "hello", 5, fake_send), 5);
    ck_assert_int_eq(fk.null_calls, 2);
    ck_assert_int_eq(fk.count, 1);
    snprintf(want, sizeof(want), "%shello", HDR);
    assert_record(0, want, HDR_LEN + 5);
    /* Back to plain sends. */
    ck_assert_int_eq(tls_out_send(o, NULL, "next", 4, fake_send), 4);
    assert_record(1, "next", 4);
    tls_out_free(o);
}
END_TEST

START_TEST(test_tls_out_send_short_records_keep_order)
{
    struct tls_out *o = tls_out_new();
    char body[40], all[256], got[256];
    size_t n = 0, off = 0;
    int guard = 0;

    fake_reset();
    memset(body, 'b', sizeof(body));
    snprintf(all, sizeof(all), "%s", HDR);
    memcpy(all + HDR_LEN, body, sizeof(body));
    fk.cap = 16; /* smaller than the header: it leaves in pieces */
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, HDR, HDR_LEN, fake_send),
                     (ssize_t)HDR_LEN);
    while (off < sizeof(body)) {
        ssize_t r = tls_out_send(o, NULL, body + off, sizeof(body) - off,
                                 fake_send);

        ck_assert_int_lt(guard++, 20);
        if (r == GNUTLS_E_AGAIN)
            continue;
        ck_assert_int_gt(r, 0);
        off += (size_t)r;
    }
    for (int i = 0; i < fk.count; i++) {
        ck_assert_uint_le(fk.record_len[i], 16);
        memcpy(got + n, fk.records[i], fk.record_len[i]);
        n += fk.record_len[i];
    }
    ck_assert_uint_eq(n, HDR_LEN + sizeof(body));
    ck_assert_int_eq(memcmp(got, all, n), 0);
    tls_out_free(o);
}
END_TEST

START_TEST(test_tls_out_send_large_body_first_record_full)
{
    struct tls_out *o = tls_out_new();
    static char body[40000];
    size_t off = 0;

    fake_reset();
    memset(body, 'x', sizeof(body));
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, HDR, HDR_LEN, fake_send),
                     (ssize_t)HDR_LEN);
    off += (size_t)tls_out_send(o, NULL, body, sizeof(body), fake_send);
    ck_assert_int_eq(fk.count, 1);
    ck_assert_uint_eq(fk.record_len[0], 16384);
    ck_assert_uint_eq(off, 16384 - HDR_LEN);
    ck_assert_int_eq(memcmp(fk.records[0], HDR, HDR_LEN), 0);
    tls_out_free(o);
}
END_TEST

START_TEST(test_tls_out_flush_with_sends_what_is_held)
{
    struct tls_out *o = tls_out_new();

    fake_reset();
    ck_assert(tls_out_flush_with(o, NULL, fake_send));
    ck_assert_int_eq(fk.count, 0);
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, HDR, HDR_LEN, fake_send),
                     (ssize_t)HDR_LEN);
    ck_assert(tls_out_flush_with(o, NULL, fake_send));
    ck_assert_int_eq(fk.count, 1);
    assert_record(0, HDR, HDR_LEN);
    /* Queued by GnuTLS: finished by the next send, before its data. */
    tls_out_hold_next(o);
    ck_assert_int_eq(tls_out_send(o, NULL, HDR, HDR_LEN, fake_send),
                     (ssize_t)HDR_LEN);
    fk.again = 1;
    ck_assert(!tls_out_flush_with(o, NULL, fake_send));
    ck_assert_int_eq(tls_out_send(o, NULL, "next", 4, fake_send),
                     GNUTLS_E_AGAIN);
    ck_assert_int_eq(fk.count, 2);
    assert_record(1, HDR, HDR_LEN);
    ck_assert_int_eq(tls_out_send(o, NULL, "next", 4, fake_send), 4);
    assert_record(2, "next", 4);
    tls_out_free(o);
}
END_TEST

static Suite *
tls_out_suite(void)
{
    Suite *s = suite_create("tls_out");
    TCase *tc = tcase_create("send");

    tcase_add_test(tc, test_tls_out_send_header_and_body_one_record);
    tcase_add_test(tc, test_tls_out_send_not_a_header_block_goes_out);
    tcase_add_test(tc, test_tls_out_send_again_keeps_one_record);
    tcase_add_test(tc, test_tls_out_send_short_records_keep_order);
    tcase_add_test(tc, test_tls_out_send_large_body_first_record_full);
    tcase_add_test(tc, test_tls_out_flush_with_sends_what_is_held);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tls_out_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
