/*
 * Unit tests of the buffered access log (server/access_log.c): lines stay
 * whole and in each thread's order under concurrent writers and buffer
 * overflows, buffered lines are held until a flush, the flusher writes
 * them within the interval, a reopen moves on to a new file after a
 * rotation, a buffer size of 0 writes every line at once, and lines
 * logged while other threads reopen, close and open the log again are
 * each written exactly once (to the file, or to stderr while closed).
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/access_log.h"
#include "server/log.h"

#define THREADS 8
#define LINES_PER_THREAD 4000

static char dir[] = "/tmp/check_access_log.XXXXXX";

static void
setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
    log_set_level(LOG_INFO);
}

static void
teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

static char *
slurp(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f) {
        *out_len = 0;
        return calloc(1, 1);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *out_len = (size_t)n;
    return buf;
}

static size_t
count_lines(const char *path)
{
    size_t len, n = 0;
    char *s = slurp(path, &len);

    for (size_t i = 0; i < len; i++)
        n += s[i] == '\n';
    free(s);
    return n;
}

static void *
writer(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;

    for (unsigned i = 0; i < LINES_PER_THREAD; i++) {
        /* Lengths vary so that buffer boundaries fall anywhere. */
        unsigned pad = (t * 7919u + i * 104729u) % 300u;

        access_log_line(t + 1, "GET \"/t%u/n%u\" 200 %u %.*s|", t, i, pad,
                        (int)pad,
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    return NULL;
}

/* 8 threads x 4000 lines through 4 KiB buffers flushed every 5 ms: every
 * line whole, none lost or doubled, each thread's in its order. */
START_TEST(test_lines_whole_and_ordered)
{
    char path[128], err[256];
    pthread_t th[THREADS];
    unsigned next[THREADS] = {0};
    size_t len, lines = 0;
    char *s, *p, *nl;

    snprintf(path, sizeof(path), "%s/access.log", dir);
    ck_assert_int_eq(access_log_open(path, 4096, 5, err, sizeof(err)), 0);
    for (unsigned t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, writer,
                                        (void *)(uintptr_t)t), 0);
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    access_log_close();

    s = slurp(path, &len);
    for (p = s; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        unsigned t, i, pad, req;
        int used = 0;

        *nl = '\0';
        ck_assert_msg(sscanf(p, "%*s INFO req=%u GET \"/t%u/n%u\" 200 %u %n",
                             &req, &t, &i, &pad, &used) == 4 && used > 0,
                      "malformed line: %s", p);
        ck_assert_uint_lt(t, THREADS);
        ck_assert_uint_eq(req, t + 1);
        ck_assert_msg(i == next[t], "thread %u: line %u after %u", t, i,
                      next[t]);
        next[t]++;
        ck_assert_uint_eq(strlen(p + used), pad + 1);
        ck_assert_int_eq(p[used + pad], '|');
        lines++;
    }
    ck_assert_ptr_eq(p, s + len);     /* no partial last line */
    ck_assert_uint_eq(lines, THREADS * LINES_PER_THREAD);
    free(s);
}
END_TEST

static void *
one_line(void *arg)
{
    access_log_line(7, "GET \"/%s\" 200 0 0.001ms", (const char *)arg);
    return NULL;
}

/* With a long interval a line waits in its buffer until a flush; a thread
 * that ends leaves nothing behind. */
START_TEST(test_held_until_flush)
{
    char path[128], err[256];
    pthread_t th;

    snprintf(path, sizeof(path), "%s/held.log", dir);
    ck_assert_int_eq(access_log_open(path, 65536, 60000, err, sizeof(err)),
                     0);
    access_log_line(1, "GET \"/held\" 200 0 0.001ms");
    ck_assert_uint_eq(count_lines(path), 0);
    access_log_flush();
    ck_assert_uint_eq(count_lines(path), 1);
    ck_assert_int_eq(pthread_create(&th, NULL, one_line, "exiting"), 0);
    pthread_join(th, NULL);
    ck_assert_uint_eq(count_lines(path), 2);
    access_log_line(1, "GET \"/at-close\" 200 0 0.001ms");
    access_log_close();
    ck_assert_uint_eq(count_lines(path), 3);
}
END_TEST

/* The flusher writes a lone line without any other activity. */
START_TEST(test_flushed_within_interval)
{
    char path[128], err[256];
    struct timespec t0, t1;
    double waited;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/timer.log", dir);
    ck_assert_int_eq(access_log_open(path, 65536, 100, err, sizeof(err)),
                     0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    access_log_line(1, "GET \"/timer\" 200 0 0.001ms");
    /* Bounded: 10 s even on a loaded machine; expected ~100 ms. */
    for (int i = 0; i < 1000 && n == 0; i++) {
        n = count_lines(path);
        if (n == 0)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waited = (double)(t1.tv_sec - t0.tv_sec) +
             (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_uint_eq(n, 1);
    ck_assert_msg(waited < 10.0, "flushed after %.3f s", waited);
    access_log_close();
}
END_TEST

/* After a rotation (rename) a reopen sends new lines to the new file;
 * what was buffered before goes to the old one. */
START_TEST(test_reopen_after_rename)
{
    char path[128], old[160], err[256];
    size_t len;
    char *s;

    snprintf(path, sizeof(path), "%s/rot.log", dir);
    snprintf(old, sizeof(old), "%s/rot.log.1", dir);
    ck_assert_int_eq(access_log_open(path, 65536, 60000, err, sizeof(err)),
                     0);
    access_log_line(1, "GET \"/before\" 200 0 0.001ms");
    ck_assert_int_eq(rename(path, old), 0);
    ck_assert_int_eq(access_log_reopen(err, sizeof(err)), 0);
    access_log_line(2, "GET \"/after\" 200 0 0.001ms");
    access_log_close();
    s = slurp(old, &len);
    ck_assert_ptr_nonnull(strstr(s, "/before"));
    ck_assert_ptr_null(strstr(s, "/after"));
    free(s);
    s = slurp(path, &len);
    ck_assert_ptr_nonnull(strstr(s, "/after"));
    ck_assert_ptr_null(strstr(s, "/before"));
    free(s);
}
END_TEST

/* Buffer 0: every line is written at once; below level info none is. */
START_TEST(test_unbuffered_and_level)
{
    char path[128], err[256];

    snprintf(path, sizeof(path), "%s/now.log", dir);
    ck_assert_int_eq(access_log_open(path, 0, 1000, err, sizeof(err)), 0);
    access_log_line(1, "GET \"/now\" 200 0 0.001ms");
    ck_assert_uint_eq(count_lines(path), 1);
    log_set_level(LOG_WARN);
    access_log_line(1, "GET \"/quiet\" 200 0 0.001ms");
    log_set_level(LOG_INFO);
    ck_assert_uint_eq(count_lines(path), 1);
    access_log_close();
}
END_TEST

/* The hand-written prefix of access_log_text reads as log_vformat's. */
START_TEST(test_text_as_formatted)
{
    char path[128], err[256];
    size_t len;
    char *s, *nl;
    int y, mo, d, h, mi, sec, ms;
    unsigned req;
    char rest[64];
    const char *text = "GET \"/t\" 200 7 0.042ms";

    snprintf(path, sizeof(path), "%s/text.log", dir);
    ck_assert_int_eq(access_log_open(path, 0, 1000, err, sizeof(err)), 0);
    access_log_text(18446744073709551615ull, text, strlen(text));
    access_log_line(42, "GET \"/t\" %u %u 0.042ms", 200, 7);
    access_log_close();
    s = slurp(path, &len);
    nl = strchr(s, '\n');
    ck_assert_ptr_nonnull(nl);
    ck_assert_int_eq(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ INFO "
                               "req=18446744073709551615 %63[^\n]",
                            &y, &mo, &d, &h, &mi, &sec, &ms, rest),
                     8);
    ck_assert_str_eq(rest, "GET \"/t\" 200 7 0.042ms");
    ck_assert_int_eq(s[23], 'Z');      /* millisecond field: 3 digits */
    ck_assert_int_eq(sscanf(nl + 1, "%*s INFO req=%u %63[^\n]", &req, rest),
                     2);
    ck_assert_uint_eq(req, 42);
    ck_assert_str_eq(rest, "GET \"/t\" 200 7 0.042ms");
    free(s);
}
END_TEST

#define RACE_THREADS 4
#define RACE_CYCLES 300
#define RACE_MAX_LINES 20000u

static atomic_bool race_stop;
static atomic_uint race_done;
static unsigned race_lines[RACE_THREADS];

/* Logs until told to stop, then says how many lines it logged. */
static void *
race_writer(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg, i;

    for (i = 0; i < RACE_MAX_LINES && !atomic_load(&race_stop); i++)
        access_log_line(t + 1, "GET \"/t%u/n%u\" 200 0 0.001ms", t, i);
    race_lines[t] = i;
    atomic_fetch_add(&race_done, 1);
    return NULL;
}

/* Counts path's lines into seen[thread][line]; each thread's lines in the
 * file must be in its order and whole. Lines that are not access lines
 * (stderr may hold others) are skipped when others_ok. */
static void
tally(const char *path, bool others_ok, unsigned char *seen[RACE_THREADS])
{
    size_t len;
    char *s = slurp(path, &len), *p, *nl;
    long last[RACE_THREADS];

    for (unsigned t = 0; t < RACE_THREADS; t++)
        last[t] = -1;
    for (p = s; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        unsigned t, i, req;

        *nl = '\0';
        if (sscanf(p, "%*s INFO req=%u GET \"/t%u/n%u\" 200 0 0.001ms", &req,
                   &t, &i) != 3) {
            ck_assert_msg(others_ok, "%s: malformed line: %s", path, p);
            continue;
        }
        ck_assert_uint_lt(t, RACE_THREADS);
        ck_assert_uint_lt(i, race_lines[t]);
        ck_assert_uint_eq(req, t + 1);
        ck_assert_msg((long)i > last[t], "%s: thread %u: line %u after %ld",
                      path, t, i, last[t]);
        last[t] = (long)i;
        seen[t][i]++;
    }
    ck_assert_ptr_eq(p, s + len);     /* no partial last line */
    free(s);
}

/* Writers log while the main thread reopens, closes and opens the log
 * again (buffered and not, as SIGHUP and shutdown do): every line is
 * written exactly once, whole, to the file while it is open and to stderr
 * in between; nothing is written to a closed descriptor or lost in a
 * buffer of an earlier open. */
START_TEST(test_close_races_writers)
{
    char path[128], errpath[128], err[256];
    pthread_t th[RACE_THREADS];
    unsigned char *seen[RACE_THREADS];
    int saved, errfd;

    snprintf(path, sizeof(path), "%s/race.log", dir);
    snprintf(errpath, sizeof(errpath), "%s/stderr.log", dir);
    errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    ck_assert_int_ge(errfd, 0);
    saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(errfd, STDERR_FILENO), 0);
    close(errfd);
    atomic_store(&race_stop, false);
    atomic_store(&race_done, 0);
    ck_assert_int_eq(access_log_open(path, 4096, 1, err, sizeof(err)), 0);
    for (unsigned t = 0; t < RACE_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, race_writer,
                                        (void *)(uintptr_t)t), 0);
    for (unsigned c = 0;
         c < RACE_CYCLES && atomic_load(&race_done) < RACE_THREADS; c++) {
        ck_assert_int_eq(access_log_reopen(err, sizeof(err)), 0);
        access_log_close();
        sched_yield();
        ck_assert_int_eq(access_log_open(path, c % 2 ? 0 : 4096, 1, err,
                                         sizeof(err)),
                         0);
        sched_yield();
    }
    atomic_store(&race_stop, true);
    for (unsigned t = 0; t < RACE_THREADS; t++)
        pthread_join(th[t], NULL);
    access_log_close();
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);

    for (unsigned t = 0; t < RACE_THREADS; t++) {
        seen[t] = calloc(race_lines[t] + 1, 1);
        ck_assert_ptr_nonnull(seen[t]);
    }
    tally(path, false, seen);
    tally(errpath, true, seen);
    for (unsigned t = 0; t < RACE_THREADS; t++) {
        for (unsigned i = 0; i < race_lines[t]; i++)
            ck_assert_msg(seen[t][i] == 1,
                          "thread %u line %u of %u written %u times", t, i,
                          race_lines[t], seen[t][i]);
        free(seen[t]);
    }
}
END_TEST

START_TEST(test_open_refuses_bad_path)
{
    char err[256] = "";

    ck_assert_int_eq(access_log_open("/nonexistent-dir/x/access.log", 4096,
                                     100, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/x/access.log"));
}
END_TEST

static Suite *
access_log_suite(void)
{
    Suite *s = suite_create("access_log");
    TCase *tc = tcase_create("buffered");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lines_whole_and_ordered);
    tcase_add_test(tc, test_held_until_flush);
    tcase_add_test(tc, test_flushed_within_interval);
    tcase_add_test(tc, test_reopen_after_rename);
    tcase_add_test(tc, test_unbuffered_and_level);
    tcase_add_test(tc, test_text_as_formatted);
    tcase_add_test(tc, test_open_refuses_bad_path);
    suite_add_tcase(s, tc);
    tc = tcase_create("race");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_close_races_writers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(access_log_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
