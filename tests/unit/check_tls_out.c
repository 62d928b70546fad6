/*
 * server/tls_out.c: the push that holds a header record back so that it
 * leaves with the body record in one sendmsg. Over a non-blocking
 * socketpair: what is held is not sent, goes out with the next write in
 * order, survives a full socket buffer (EAGAIN, partial writes) without
 * loss or duplication, and is sent by tls_out_flush.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/tls_out.h"

static int sv[2];

static void
pair_open(void)
{
    int sndbuf = 4096;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

static void
pair_close(void)
{
    close(sv[0]);
    close(sv[1]);
}

static ssize_t
put(struct tls_out *o, const void *p, size_t n)
{
    struct iovec v = {(void *)(uintptr_t)p, n};

    return tls_out_write(o, &v, 1);
}

/* Everything readable on the peer now (0 when nothing). */
static size_t
drain(unsigned char *buf, size_t cap)
{
    size_t got = 0;

    for (;;) {
        ssize_t r = recv(sv[1], buf + got, cap - got, MSG_DONTWAIT);

        if (r <= 0)
            return got;
        got += (size_t)r;
    }
}

START_TEST(test_held_goes_out_with_the_next_write)
{
    struct tls_out *o;
    unsigned char buf[1024];
    ssize_t r;

    pair_open();
    o = tls_out_new(sv[0]);
    ck_assert_ptr_nonnull(o);
    tls_out_hold_next(o);
    ck_assert_int_eq(put(o, "HEADER", 6), 6);
    /* Reported as sent, but nothing on the wire yet. */
    r = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
    ck_assert_int_eq(r, -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(put(o, "BODY", 4), 4);
    /* One sendmsg: both arrive together, in order. */
    r = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
    ck_assert_int_eq(r, 10);
    ck_assert_int_eq(memcmp(buf, "HEADERBODY", 10), 0);
    /* The hold was for one push only. */
    ck_assert_int_eq(put(o, "NEXT", 4), 4);
    ck_assert_uint_eq(drain(buf, sizeof(buf)), 4);
    tls_out_detach(o, NULL);
    pair_close();
}
END_TEST

START_TEST(test_flush_sends_what_is_held)
{
    struct tls_out *o;
    unsigned char buf[64];

    pair_open();
    o = tls_out_new(sv[0]);
    tls_out_hold_next(o);
    ck_assert_int_eq(put(o, "ALONE", 5), 5);
    ck_assert_uint_eq(drain(buf, sizeof(buf)), 0);
    ck_assert(tls_out_flush(o));
    ck_assert_uint_eq(drain(buf, sizeof(buf)), 5);
    ck_assert_int_eq(memcmp(buf, "ALONE", 5), 0);
    /* Nothing held: flush is a no-op, and so is detaching. */
    ck_assert(tls_out_flush(o));
    tls_out_detach(o, NULL);
    ck_assert_uint_eq(drain(buf, sizeof(buf)), 0);
    pair_close();
}
END_TEST

START_TEST(test_large_push_is_not_held)
{
    struct tls_out *o;
    static unsigned char big[8192], buf[16384];

    memset(big, 'x', sizeof(big));
    pair_open();
    o = tls_out_new(sv[0]);
    tls_out_hold_next(o);
    ck_assert_int_gt(put(o, big, sizeof(big)), 0);
    ck_assert_uint_gt(drain(buf, sizeof(buf)), 0);
    tls_out_detach(o, NULL);
    pair_close();
}
END_TEST

/*
 * A full socket buffer: the held bytes go out first, partly or not at
 * all, and the caller (GnuTLS) retries its data on EAGAIN. The peer must
 * get every byte once, in order.
 */
START_TEST(test_full_socket_keeps_order)
{
    struct tls_out *o;
    static unsigned char filler[4096], body[3000], want[1 << 20],
        got[1 << 20];
    size_t nwant = 0, ngot = 0, sent = 0;
    unsigned char head[200];
    int eagain = 0;

    pair_open();
    o = tls_out_new(sv[0]);
    for (size_t i = 0; i < sizeof(filler); i++)
        filler[i] = (unsigned char)(i * 7);
    /* Fill the socket until it refuses. */
    for (;;) {
        ssize_t r = put(o, filler, sizeof(filler));

        if (r < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            break;
        }
        memcpy(want + nwant, filler, (size_t)r);
        nwant += (size_t)r;
        ck_assert_uint_lt(nwant, sizeof(want) - sizeof(filler));
    }
    memset(head, 'H', sizeof(head));
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (unsigned char)('a' + i % 26);
    tls_out_hold_next(o);
    ck_assert_int_eq(put(o, head, sizeof(head)), (int)sizeof(head));
    memcpy(want + nwant, head, sizeof(head));
    nwant += sizeof(head);
    memcpy(want + nwant, body, sizeof(body));
    nwant += sizeof(body);
    /* The body: retried like GnuTLS does until all of it is taken, the
     * reader taking a little at a time. */
    while (sent < sizeof(body)) {
        ssize_t r = put(o, body + sent, sizeof(body) - sent);

        if (r < 0) {
            ssize_t k;

            ck_assert_int_eq(errno, EAGAIN);
            eagain++;
            k = recv(sv[1], got + ngot, 512, MSG_DONTWAIT);
            ck_assert_int_gt(k, 0);
            ngot += (size_t)k;
            continue;
        }
        ck_assert_int_gt(r, 0);
        sent += (size_t)r;
    }
    ck_assert_int_gt(eagain, 0);
    ngot += drain(got + ngot, sizeof(got) - ngot);
    ck_assert_uint_eq(ngot, nwant);
    ck_assert_int_eq(memcmp(got, want, nwant), 0);
    tls_out_detach(o, NULL);
    pair_close();
}
END_TEST

static Suite *
tls_out_suite(void)
{
    Suite *s = suite_create("tls_out");
    TCase *tc = tcase_create("push");

    tcase_add_test(tc, test_held_goes_out_with_the_next_write);
    tcase_add_test(tc, test_flush_sends_what_is_held);
    tcase_add_test(tc, test_large_push_is_not_held);
    tcase_add_test(tc, test_full_socket_keeps_order);
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
