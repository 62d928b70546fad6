/*
 * Unit tests of the UE client library (client/): the state file (round
 * trip, crash-safe writes on real temporary directories, refusals), the
 * resume arithmetic of range answers, Retry-After and backoff, report
 * building (layers, overrides, refusals named by field), decision parsing,
 * and the RFC 9421 / RFC 9530 verifier against signatures this test makes
 * itself with OpenSSL, the way API.md "v1 additions" fixes them.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "client/internal.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
/* A wall-clock time at the start of a clock minute, for the histories. */
#define T0 ((int64_t)1796126400)

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_client.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' || (e->d_name[1] && e->d_name[1] != '.'))
            n++;
    closedir(d);
    return n;
}

/* ---- state ----------------------------------------------------------------- */

static void full_state(struct client_state *st)
{
    client_state_init(st, "fam");
    memcpy(st->current.hex, HEX_A, sizeof(HEX_A));
    snprintf(st->current.variant, sizeof(st->current.variant), "v-a");
    st->current.version = 3;
    memcpy(st->previous.hex, HEX_B, sizeof(HEX_B));
    st->previous.version = 2;
    st->inflight.active = true;
    st->inflight.is_delta = true;
    memcpy(st->inflight.target_hex, HEX_B, sizeof(HEX_B));
    memcpy(st->inflight.from_hex, HEX_A, sizeof(HEX_A));
    snprintf(st->inflight.url, sizeof(st->inflight.url),
             "/v1/deltas/sha256:%s/sha256:%s", HEX_A, HEX_B);
    st->inflight.size_bytes = 123456789012ull;
    snprintf(st->inflight.validator, sizeof(st->inflight.validator),
             "\"sha256:x\"");
    st->inflight.bytes_done = 77;
    st->generation = 41;
    st->has_generation = true;
    st->rtt_ms = 12.5;
    st->has_rtt = true;
    st->gflops = 7.25;
    st->gflops_at_s = 1700000000;
    for (int i = 1; i <= 20; i++)
        client_state_add_downlink(st, T0 + i, "wlan0", i * 1e6);
    client_state_add_memory(st, T0, 5000);
    client_state_add_memory(st, T0 + 61, 3000);
    client_state_add_memory(st, T0 + 122, 4000);
    snprintf(st->current.receipt, sizeof(st->current.receipt), "rcpt-a_1");
    snprintf(st->inflight.receipt, sizeof(st->inflight.receipt), "rcpt-i");
    snprintf(st->last_action, sizeof(st->last_action), "delta");
    st->last_decision_at_s = 1700000001;
    st->last_recheck_after_s = 300;
    st->has_pinned_key = true;
    snprintf(st->pinned_kid, sizeof(st->pinned_kid), "k1");
    for (int i = 0; i < 32; i++)
        st->pinned_key[i] = (unsigned char)(i * 7);
}

START_TEST(test_client_state_round_trip)
{
    struct client_state st, back;
    char *text;

    full_state(&st);
    text = client_state_write(&st);
    ck_assert_ptr_nonnull(text);
    memset(&back, 0x5a, sizeof(back));
    ck_assert_int_eq(client_state_parse(text, &back), CLIENT_OK);
    ck_assert_str_eq(back.family, "fam");
    ck_assert_str_eq(back.ue, st.ue);
    ck_assert_str_eq(back.current.hex, HEX_A);
    ck_assert_str_eq(back.current.variant, "v-a");
    ck_assert_int_eq(back.current.version, 3);
    /* The event receipts kept with the model and the transfer. */
    ck_assert_str_eq(back.current.receipt, "rcpt-a_1");
    ck_assert_str_eq(back.previous.receipt, "");
    ck_assert_str_eq(back.inflight.receipt, "rcpt-i");
    ck_assert_str_eq(back.previous.hex, HEX_B);
    ck_assert(back.inflight.active && back.inflight.is_delta);
    ck_assert_str_eq(back.inflight.url, st.inflight.url);
    ck_assert_str_eq(back.inflight.validator, "\"sha256:x\"");
    ck_assert(back.inflight.size_bytes == 123456789012ull);
    ck_assert(back.inflight.bytes_done == 77);
    ck_assert(back.has_generation && back.generation == 41);
    ck_assert(back.has_rtt && back.rtt_ms == 12.5);
    ck_assert(back.gflops == 7.25 && back.gflops_at_s == 1700000000);
    /* 20 samples in, the newest 16 kept, oldest first, with their times
     * and link */
    ck_assert_uint_eq(back.downlink_count, 16);
    ck_assert(back.downlink[0].bps == 5e6 && back.downlink[15].bps == 20e6);
    ck_assert(back.downlink[0].at_s == T0 + 5 &&
              back.downlink[15].at_s == T0 + 20);
    ck_assert_str_eq(back.downlink_iface, "wlan0");
    ck_assert_uint_eq(back.memory_count, 3);
    ck_assert(back.memory[1].minute == T0 / 60 + 1 &&
              back.memory[1].low_bytes == 3000);
    ck_assert_uint_eq(client_state_memory_floor(&back, T0 + 130), 3000);
    ck_assert_str_eq(back.last_action, "delta");
    ck_assert(back.has_pinned_key);
    ck_assert_mem_eq(back.pinned_key, st.pinned_key, 32);
    free(text);
}
END_TEST

START_TEST(test_client_state_estimates)
{
    struct client_state st;

    client_state_init(&st, "f");
    ck_assert(client_state_downlink_estimate(&st, T0, "") < 0);
    ck_assert_uint_eq(client_state_memory_floor(&st, T0), 0);
    client_state_add_downlink(&st, T0, "", 10);
    client_state_add_downlink(&st, T0, "", 1000);
    client_state_add_downlink(&st, T0, "", 30);
    ck_assert(client_state_downlink_estimate(&st, T0, "") == 30); /* median */
    client_state_add_downlink(&st, T0, "", 50);
    ck_assert(client_state_downlink_estimate(&st, T0, "") == 40);
    client_state_add_downlink(&st, T0, "", -5); /* not a sample */
    client_state_add_downlink(&st, T0, "", 0.0 / 0.0);
    ck_assert_uint_eq(st.downlink_count, 4);
    client_state_add_downlink(&st, T0, "", 0); /* an outage seen */
    ck_assert_uint_eq(st.downlink_count, 5);
    ck_assert(client_state_downlink_estimate(&st, T0, "") == 30);
    ck_assert(strncmp(st.ue, "ue-", 3) == 0 && strlen(st.ue) == 35);
}
END_TEST

/* device.memory_history_bytes: one low per clock minute, the newest 16,
 * only the last 16 minutes sent, persisted with their minute. */
START_TEST(test_client_history_memory_minutes)
{
    struct client_state st, back;
    uint64_t out[CLIENT_HISTORY_MAX];
    char *text;
    size_t n;

    client_state_init(&st, "f");
    /* several samples in one minute: one entry, its lowest */
    ck_assert(client_state_add_memory(&st, T0 + 1, 900));
    ck_assert(client_state_add_memory(&st, T0 + 20, 700));
    ck_assert(!client_state_add_memory(&st, T0 + 40, 800)); /* no change */
    ck_assert(!client_state_add_memory(&st, T0 + 50, 0));   /* unknown */
    ck_assert_uint_eq(st.memory_count, 1);
    n = client_state_fresh_memory(&st, T0 + 59, out);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(out[0], 700);
    /* the next minute starts a new entry, newest last */
    ck_assert(client_state_add_memory(&st, T0 + 60, 950));
    n = client_state_fresh_memory(&st, T0 + 61, out);
    ck_assert_uint_eq(n, 2);
    ck_assert(out[0] == 700 && out[1] == 950);
    ck_assert_uint_eq(client_state_memory_floor(&st, T0 + 61), 700);

    /* 20 minutes in: the newest 16 kept */
    client_state_init(&st, "f");
    for (int i = 0; i < 20; i++)
        client_state_add_memory(&st, T0 + 60 * i + 5, (uint64_t)(1000 + i));
    ck_assert_uint_eq(st.memory_count, CLIENT_HISTORY_MAX);
    n = client_state_fresh_memory(&st, T0 + 60 * 19 + 30, out);
    ck_assert_uint_eq(n, 16);
    ck_assert(out[0] == 1004 && out[15] == 1019);

    /* staleness: minutes before the last 16 clock minutes are not sent */
    n = client_state_fresh_memory(&st, T0 + 60 * 24, out);
    ck_assert_uint_eq(n, 11); /* minutes 9..19 of 9..24 */
    ck_assert(out[0] == 1009 && out[10] == 1019);
    ck_assert_uint_eq(client_state_memory_floor(&st, T0 + 60 * 24), 1009);
    ck_assert_uint_eq(client_state_fresh_memory(&st, T0 + 60 * 35, out), 0);
    ck_assert_uint_eq(client_state_memory_floor(&st, T0 + 60 * 35), 0);

    /* gaps (the client did not run) are left out, not guessed */
    client_state_init(&st, "f");
    client_state_add_memory(&st, T0, 500);
    client_state_add_memory(&st, T0 + 60 * 5, 600);
    n = client_state_fresh_memory(&st, T0 + 60 * 5, out);
    ck_assert(n == 2 && out[0] == 500 && out[1] == 600);

    /* the clock went back: later minutes are dropped, not reordered */
    ck_assert(client_state_add_memory(&st, T0 + 60 * 2, 550));
    n = client_state_fresh_memory(&st, T0 + 60 * 2, out);
    ck_assert(n == 2 && out[0] == 500 && out[1] == 550);
    /* and entries from the future are not sent */
    client_state_add_memory(&st, T0 + 60 * 3, 560);
    ck_assert_uint_eq(client_state_fresh_memory(&st, T0 + 60 * 2, out), 2);

    /* persistence: the minutes survive a write and a parse */
    text = client_state_write(&st);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(client_state_parse(text, &back), CLIENT_OK);
    ck_assert_uint_eq(back.memory_count, 3);
    n = client_state_fresh_memory(&back, T0 + 60 * 3 + 59, out);
    ck_assert(n == 3 && out[0] == 500 && out[1] == 550 && out[2] == 560);
    free(text);
}
END_TEST

/* The compute probe against a scripted clock: what it computes from the
 * block times, whatever the machine's speed. */
struct fake_clock {
    const double *t;
    size_t n, calls;
};

static double fake_now(void *ctx)
{
    struct fake_clock *k = ctx;
    double v = k->t[k->calls < k->n ? k->calls : k->n - 1];

    k->calls++;
    return v;
}

START_TEST(test_client_compute_probe)
{
    /* blocks of 1 ms, 0.5 ms (the fastest), 1 ms: the budget (2 ms) is
     * spent after the third; the fastest block is the figure */
    static const double t1[] = { 10.0, 10.001, 10.0015, 10.0025, 99 };
    /* a block the clock could not see (0 s), then 2.5 ms blocks: at least
     * CLIENT_PROBE_MIN_BLOCKS blocks, then the budget is spent */
    static const double t2[] = { 5.0, 5.0, 5.0025, 5.005, 99 };
    /* a clock that never moves: every block, nothing measured */
    static const double t3[] = { 1.0 };
    struct fake_clock k1 = { t1, ARRAY_SIZE(t1), 0 };
    struct fake_clock k2 = { t2, ARRAY_SIZE(t2), 0 };
    struct fake_clock k3 = { t3, ARRAY_SIZE(t3), 0 };
    double g;

    g = client_compute_probe(fake_now, &k1);
    ck_assert_double_eq_tol(g, CLIENT_PROBE_FLOP_PER_BLOCK / 0.0005 / 1e9,
                            1e-6);
    ck_assert_uint_eq(k1.calls, 4); /* the start and three blocks */
    g = client_compute_probe(fake_now, &k2);
    ck_assert_double_eq_tol(g, CLIENT_PROBE_FLOP_PER_BLOCK / 0.0025 / 1e9,
                            1e-3);
    ck_assert_uint_eq(k2.calls, 3);
    g = client_compute_probe(fake_now, &k3);
    ck_assert(g == 0);
    ck_assert_uint_eq(k3.calls, 1 + CLIENT_PROBE_MAX_BLOCKS);
    /* the real clock: some figure, bounded work */
    g = client_compute_probe(NULL, NULL);
    ck_assert(g > 0 && isfinite(g));
}
END_TEST

/* device.gflops_history: per-minute lows of the probe as a share of the
 * fastest probe, times the device's peak. */
START_TEST(test_client_history_compute)
{
    struct client_state st, back;
    double out[CLIENT_HISTORY_MAX];
    char *text;
    size_t n;

    client_state_init(&st, "f");
    ck_assert(!client_state_add_compute(&st, T0, 0));    /* unknown */
    ck_assert(!client_state_add_compute(&st, T0, -1));
    ck_assert(!client_state_add_compute(&st, T0, NAN));
    ck_assert_uint_eq(client_state_fresh_compute(&st, T0, 50, out), 0);
    ck_assert(client_state_compute_now(&st, T0, 50) < 0);

    /* minute 0: 20 then 10 (throttled to half); minute 1: 20 */
    ck_assert(client_state_add_compute(&st, T0 + 1, 20));
    ck_assert(client_state_add_compute(&st, T0 + 30, 10));
    ck_assert(!client_state_add_compute(&st, T0 + 40, 15)); /* no change */
    ck_assert_uint_eq(st.compute_count, 1);
    ck_assert(st.probe_ref == 20);
    /* now (the newest probe, 15 of 20) and the minute's low, of a peak
     * of 50 GFLOP/s */
    ck_assert_double_eq_tol(client_state_compute_now(&st, T0 + 41, 50), 37.5,
                            1e-9);
    n = client_state_fresh_compute(&st, T0 + 41, 50, out);
    ck_assert_uint_eq(n, 1);
    ck_assert_double_eq_tol(out[0], 25, 1e-9);
    ck_assert(client_state_add_compute(&st, T0 + 61, 20));
    n = client_state_fresh_compute(&st, T0 + 61, 50, out);
    ck_assert(n == 2 && out[1] == 50);
    /* jitter within CLIENT_PROBE_NOISE of the reference is the reference */
    ck_assert(client_state_add_compute(&st, T0 + 121, 18.5));
    n = client_state_fresh_compute(&st, T0 + 121, 50, out);
    ck_assert(n == 3 && out[2] == 50);
    ck_assert(client_state_compute_now(&st, T0 + 121, 50) == 50);
    /* a faster probe raises the reference: the lows read lower */
    ck_assert(client_state_add_compute(&st, T0 + 125, 40));
    ck_assert(st.probe_ref == 40);
    n = client_state_fresh_compute(&st, T0 + 125, 100, out);
    ck_assert(n == 3);
    ck_assert_double_eq_tol(out[0], 25, 1e-9);
    ck_assert_double_eq_tol(out[2], 46.25, 1e-9);
    /* the newest probe is "now" for a minute only */
    ck_assert(client_state_compute_now(&st, T0 + 125 + 59, 100) == 100);
    ck_assert(client_state_compute_now(&st, T0 + 125 + 60, 100) < 0);
    /* no peak (no benchmark, nothing configured): nothing to scale */
    ck_assert_uint_eq(client_state_fresh_compute(&st, T0 + 125, 0, out), 0);

    /* staleness as the memory minutes: 16 clock minutes, now's included */
    ck_assert_uint_eq(client_state_fresh_compute(&st, T0 + 60 * 16, 100, out),
                      2);
    ck_assert_uint_eq(client_state_fresh_compute(&st, T0 + 60 * 18, 100, out),
                      0);
    /* the clock went back: later minutes dropped; future ones not sent */
    ck_assert(client_state_add_compute(&st, T0 + 70, 30));
    ck_assert_uint_eq(st.compute_count, 2);
    ck_assert_uint_eq(client_state_fresh_compute(&st, T0 + 10, 100, out), 1);
    /* the newest 16 minutes kept */
    client_state_init(&st, "f");
    for (int i = 0; i < 20; i++)
        client_state_add_compute(&st, T0 + 60 * i, 10 + i);
    ck_assert_uint_eq(st.compute_count, CLIENT_HISTORY_MAX);
    ck_assert(st.compute[0].low_gflops == 14);

    /* a reference older than a week (or from the future) is replaced by
     * the next probe, even a slower one */
    client_state_init(&st, "f");
    client_state_add_compute(&st, T0, 40);
    client_state_add_compute(&st, T0 + CLIENT_PROBE_REF_MAX_AGE_S - 1, 20);
    ck_assert(st.probe_ref == 40);
    client_state_add_compute(&st, T0 + CLIENT_PROBE_REF_MAX_AGE_S, 20);
    ck_assert(st.probe_ref == 20);
    st.probe_ref_at_s = T0 + 2 * CLIENT_PROBE_REF_MAX_AGE_S;
    client_state_add_compute(&st, T0 + CLIENT_PROBE_REF_MAX_AGE_S + 60, 5);
    ck_assert(st.probe_ref == 5);

    /* persistence: the minutes and the reference survive a write and a
     * parse (the newest probe does not: every report probes first) */
    client_state_init(&st, "f");
    client_state_add_compute(&st, T0, 20);
    client_state_add_compute(&st, T0 + 60, 10);
    text = client_state_write(&st);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(client_state_parse(text, &back), CLIENT_OK);
    free(text);
    ck_assert_uint_eq(back.compute_count, 2);
    ck_assert(back.probe_ref == 20 && back.probe_ref_at_s == T0);
    n = client_state_fresh_compute(&back, T0 + 60, 50, out);
    ck_assert(n == 2 && out[0] == 50 && out[1] == 25);
    /* entries that are not ours are skipped */
    ck_assert_int_eq(
        client_state_parse("{\"format\":1,\"family\":\"f\",\"ue\":"
                           "\"u-1\",\"compute_minutes\":[{\"minute\":5,"
                           "\"low_gflops\":-1},{\"minute\":6,\"low_gflops\":"
                           "\"x\"},{\"minute\":7,\"low_gflops\":3},"
                           "{\"minute\":7,\"low_gflops\":2}],"
                           "\"probe_ref\":{\"gflops\":0}}",
                           &back),
        CLIENT_OK);
    ck_assert_uint_eq(back.compute_count, 1);
    ck_assert(back.probe_ref == 0);
}
END_TEST

/* network.downlink_history_bps: the newest 16 samples, sent for 30
 * minutes, on the link they were measured on only. */
START_TEST(test_client_history_downlink)
{
    struct client_state st, back;
    double out[CLIENT_HISTORY_MAX];
    char *text;

    client_state_init(&st, "f");
    for (int i = 0; i < 20; i++)
        client_state_add_downlink(&st, T0 + 10 * i, "wlan0", 1e6 * (i + 1));
    ck_assert_uint_eq(st.downlink_count, CLIENT_HISTORY_MAX);
    ck_assert_uint_eq(client_state_fresh_downlink(&st, T0 + 200, "wlan0", out),
                      16);
    ck_assert(out[0] == 5e6 && out[15] == 20e6);
    /* another link now: nothing is fresh; a sample on it forgets the rest */
    ck_assert_uint_eq(client_state_fresh_downlink(&st, T0 + 200, "rmnet0", out),
                      0);
    ck_assert(client_state_downlink_estimate(&st, T0 + 200, "rmnet0") < 0);
    /* older than 30 minutes: stale (samples at T0+40..T0+190) */
    ck_assert_uint_eq(
        client_state_fresh_downlink(&st, T0 + 40 + CLIENT_DOWNLINK_MAX_AGE_S,
                                    "wlan0", out),
        15);
    ck_assert_uint_eq(
        client_state_fresh_downlink(&st, T0 + 190 + CLIENT_DOWNLINK_MAX_AGE_S,
                                    "wlan0", out),
        0);
    /* from the future (the clock went back): not sent */
    ck_assert_uint_eq(client_state_fresh_downlink(&st, T0 + 95, "wlan0", out),
                      6);
    /* persisted with time and link */
    text = client_state_write(&st);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(client_state_parse(text, &back), CLIENT_OK);
    ck_assert_uint_eq(client_state_fresh_downlink(&back, T0 + 200, "wlan0",
                                                  out),
                      16);
    ck_assert(out[15] == 20e6);
    free(text);
    client_state_add_downlink(&st, T0 + 300, "rmnet0", 7e5);
    ck_assert_uint_eq(st.downlink_count, 1);
    ck_assert(client_state_downlink_estimate(&st, T0 + 300, "rmnet0") == 7e5);

    /* an older client's arrays carry no time: of unknown age, not read */
    ck_assert_int_eq(
        client_state_parse("{\"format\":1,\"family\":\"f\",\"ue\":\"u\","
                           "\"downlink_history_bps\":[1e6,2e6],"
                           "\"memory_history_bytes\":[5000]}",
                           &back),
        CLIENT_OK);
    ck_assert_uint_eq(back.downlink_count, 0);
    ck_assert_uint_eq(back.memory_count, 0);
}
END_TEST

static const char *const bad_states[] = {
    "",
    "[]",
    "{\"format\":2,\"family\":\"f\",\"ue\":\"u\"}",
    "{\"format\":1,\"ue\":\"u\"}",
    "{\"format\":1,\"family\":\"f\",\"ue\":\"u\",\"current\":"
    "{\"digest_hex\":\"xyz\"}}",
    "{\"format\":1,\"family\":\"f\",\"ue\":\"u\",\"inflight\":"
    "{\"target_hex\":\"" HEX_A "\"}}", /* no url */
    "{\"format\":1,\"family\":\"f\",\"ue\":\"u\",\"inflight\":"
    "{\"target_hex\":\"" HEX_A "\",\"url\":\"/v1/x\",\"is_delta\":true}}",
    "{\"format\":1,\"family\":\"f\",\"ue\":\"u\",\"pinned_key\":"
    "{\"kid\":\"k\",\"x\":\"AAAA\"}}",
};

START_TEST(test_client_state_parse_refuses)
{
    struct client_state st;

    ck_assert_int_eq(client_state_parse(bad_states[_i], &st),
                     CLIENT_LOCAL_ERROR);
}
END_TEST

START_TEST(test_client_state_save_load)
{
    struct client_state st, back;
    char err[256], path[512];
    FILE *f;

    make_tmpdir();
    /* no file: a fresh state */
    ck_assert_int_eq(client_state_load(tmpdir, "fam", &back, err,
                                       sizeof(err)),
                     CLIENT_OK);
    ck_assert_str_eq(back.family, "fam");
    ck_assert(!back.current.hex[0] && !back.inflight.active);

    full_state(&st);
    ck_assert_int_eq(client_state_save(tmpdir, &st, err, sizeof(err)),
                     CLIENT_OK);
    ck_assert_int_eq(client_state_save(tmpdir, &st, err, sizeof(err)),
                     CLIENT_OK);
    /* only state.json: no temporary file left behind */
    ck_assert_uint_eq(dir_entries(tmpdir), 1);
    ck_assert_int_eq(client_state_load(tmpdir, "fam", &back, err,
                                       sizeof(err)),
                     CLIENT_OK);
    ck_assert_str_eq(back.current.hex, HEX_A);

    /* another family's state directory is refused */
    ck_assert_int_eq(client_state_load(tmpdir, "other", &back, err,
                                       sizeof(err)),
                     CLIENT_LOCAL_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "one state directory per family"));

    /* a damaged file is refused, not silently replaced */
    snprintf(path, sizeof(path), "%s/state.json", tmpdir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"format\":1,\"fam", f);
    fclose(f);
    ck_assert_int_eq(client_state_load(tmpdir, "fam", &back, err,
                                       sizeof(err)),
                     CLIENT_LOCAL_ERROR);

    /* an unwritable directory: the old file stays, no temp file */
    snprintf(path, sizeof(path), "%s/missing-dir", tmpdir);
    ck_assert_int_eq(client_state_save(path, &st, err, sizeof(err)),
                     CLIENT_LOCAL_ERROR);
    ck_assert_uint_eq(dir_entries(tmpdir), 1);
    remove_tmpdir();
}
END_TEST

/* ---- resume arithmetic ---------------------------------------------------- */

static const struct resume_case {
    long status;
    const char *content_range;
    uint64_t have, expected;
    enum client_resume want;
    uint64_t want_total;
} resume_cases[] = {
    /* a fresh download */
    { 200, NULL, 0, 1000, CLIENT_RESUME_RESTART, 1000 },
    /* the server ignored our range (other validator): start again */
    { 200, NULL, 400, 1000, CLIENT_RESUME_RESTART, 1000 },
    /* exactly the missing bytes */
    { 206, "bytes 400-999/1000", 400, 1000, CLIENT_RESUME_APPEND, 1000 },
    { 206, "bytes 400-999/1000", 400, 0, CLIENT_RESUME_APPEND, 1000 },
    /* a range starting elsewhere cannot be appended */
    { 206, "bytes 0-999/1000", 400, 1000, CLIENT_RESUME_RETRY_FROM_ZERO, 0 },
    { 206, "bytes 500-999/1000", 400, 1000, CLIENT_RESUME_RETRY_FROM_ZERO,
      0 },
    /* a range that stops short of the end */
    { 206, "bytes 400-899/1000", 400, 1000, CLIENT_RESUME_RETRY_FROM_ZERO,
      0 },
    /* another object's size */
    { 206, "bytes 400-1999/2000", 400, 1000, CLIENT_RESUME_FAIL, 0 },
    /* malformed Content-Range */
    { 206, NULL, 400, 1000, CLIENT_RESUME_FAIL, 0 },
    { 206, "bytes 400-/1000", 400, 1000, CLIENT_RESUME_FAIL, 0 },
    { 206, "bytes 999-400/1000", 400, 1000, CLIENT_RESUME_FAIL, 0 },
    { 206, "items 400-999/1000", 400, 1000, CLIENT_RESUME_FAIL, 0 },
    /* 416: complete when we hold exactly the whole object */
    { 416, "bytes */1000", 1000, 1000, CLIENT_RESUME_COMPLETE, 1000 },
    { 416, "bytes */1000", 1000, 0, CLIENT_RESUME_COMPLETE, 1000 },
    { 416, "bytes */900", 1000, 1000, CLIENT_RESUME_RETRY_FROM_ZERO, 0 },
    { 416, "bytes */1000", 1200, 0, CLIENT_RESUME_RETRY_FROM_ZERO, 0 },
    { 416, NULL, 1000, 1000, CLIENT_RESUME_RETRY_FROM_ZERO, 0 },
    /* anything else is not bytes */
    { 404, NULL, 0, 1000, CLIENT_RESUME_FAIL, 0 },
    { 503, NULL, 400, 1000, CLIENT_RESUME_FAIL, 0 },
};

START_TEST(test_client_resume_decide_cases)
{
    const struct resume_case *c = &resume_cases[_i];
    uint64_t total = 0;

    ck_assert_int_eq(client_resume_decide(c->status, c->content_range,
                                          c->have, c->expected, &total),
                     c->want);
    if (c->want == CLIENT_RESUME_APPEND || c->want == CLIENT_RESUME_COMPLETE ||
        c->want == CLIENT_RESUME_RESTART)
        ck_assert_uint_eq(total, c->want_total);
}
END_TEST

START_TEST(test_client_retry_after_parse)
{
    int64_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */

    ck_assert_int_eq(client_retry_after_parse("120", now), 120);
    ck_assert_int_eq(client_retry_after_parse(" 0", now), 0);
    ck_assert_int_eq(client_retry_after_parse(
                         "Sun, 06 Nov 1994 08:50:07 GMT", now),
                     30);
    ck_assert_int_eq(client_retry_after_parse(
                         "Sun, 06 Nov 1994 08:00:00 GMT", now),
                     0); /* in the past: now */
    ck_assert_int_eq(client_retry_after_parse(NULL, now), -1);
    ck_assert_int_eq(client_retry_after_parse("", now), -1);
    ck_assert_int_eq(client_retry_after_parse("-5", now), -1);
    ck_assert_int_eq(client_retry_after_parse("12abc", now), -1);
    ck_assert_int_eq(client_retry_after_parse("tomorrow", now), -1);
}
END_TEST

START_TEST(test_client_backoff_ms)
{
    /* equal jitter: [cap/2, cap], cap doubling up to the maximum */
    ck_assert_uint_eq(client_backoff_ms(0, 500, 60000, 0), 250);
    ck_assert_uint_eq(client_backoff_ms(0, 500, 60000, 0.999999), 499);
    ck_assert_uint_eq(client_backoff_ms(3, 500, 60000, 0), 2000);
    ck_assert_uint_eq(client_backoff_ms(10, 500, 60000, 0), 30000);
    ck_assert_uint_le(client_backoff_ms(40, 500, 60000, 0.999999), 60000);
    ck_assert_uint_ge(client_backoff_ms(40, 500, 60000, 0), 30000);
    /* out-of-range random numbers are clamped */
    ck_assert_uint_eq(client_backoff_ms(0, 1000, 60000, -3), 500);
    ck_assert_uint_le(client_backoff_ms(0, 1000, 60000, 7), 1000);
    for (int i = 0; i < 1000; i++) {
        double r = client_random();

        ck_assert(r >= 0 && r < 1);
    }
}
END_TEST

START_TEST(test_client_transfer_deadline)
{
    /* 60 s, plus the missing bytes at the minimum rate (bits/s) */
    ck_assert_double_eq_tol(client_transfer_deadline_s(0, 64000, 21600), 60,
                            1e-9);
    ck_assert_double_eq_tol(client_transfer_deadline_s(8000000, 64000, 21600),
                            60 + 1000, 1e-9);
    /* at most the cap: 1 GB at 64 kbit/s would be 34.7 hours */
    ck_assert_double_eq_tol(
        client_transfer_deadline_s(1000000000, 64000, 21600), 21600, 1e-9);
    /* no cap: the size alone */
    ck_assert_double_eq_tol(client_transfer_deadline_s(1000000000, 64000, 0),
                            60 + 125000, 1e-6);
    /* no minimum rate: the cap alone; neither: no deadline */
    ck_assert_double_eq_tol(client_transfer_deadline_s(1000000000, 0, 30), 30,
                            1e-9);
    ck_assert_double_eq_tol(client_transfer_deadline_s(1000000000, 0, 0), 0,
                            1e-9);
    ck_assert_double_eq_tol(client_transfer_deadline_s(5, -1, 7), 7, 1e-9);
}
END_TEST

/* ---- report ---------------------------------------------------------------- */

static json_t *make(const struct client_report_in *in,
                    const struct client_state *st, enum client_status want,
                    char *err, size_t err_len)
{
    char *text = NULL;
    json_t *root;

    ck_assert_int_eq(client_report_make(in, st, &text, err, err_len), want);
    if (want != CLIENT_OK)
        return NULL;
    root = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(root);
    free(text);
    return root;
}

#define JGET(root, a, b) json_object_get(json_object_get(root, a), b)

START_TEST(test_client_report_layers)
{
    struct client_facts f = { .memory_bytes = 500000000,
                              .battery_percent = 42,
                              .has_battery = true,
                              .charging = false,
                              .metered = true,
                              .has_metered = true };
    struct client_state st;
    const char *sets[] = { "device.memory_bytes=60000000",
                           "device.formats=tflite,onnx",
                           "device.class=npu-class-a",
                           "requirements.max_latency_ms=100",
                           "context.scene=night",
                           "network.metered=false",
                           "preference=saver" };
    struct client_report_in in = {
        .facts = &f,
        .base_json = "{\"device\":{\"gflops\":80,\"class\":\"cpu\"},"
                     "\"requirements\":{\"min_accuracy\":0.5}}",
        .sets = sets,
        .set_count = ARRAY_SIZE(sets),
        .nonce = "abcdefabcdefabcdef",
        .now_s = T0 + 5,
    };
    char err[256];
    json_t *r, *hist;

    client_state_init(&st, "f");
    st.gflops = 12; /* the benchmark: replaced by the base report */
    client_state_add_downlink(&st, T0 - 30, "", 8e6);
    client_state_add_downlink(&st, T0 - 20, "", 2e6);
    client_state_add_downlink(&st, T0 - 10, "", 4e6);
    client_state_add_memory(&st, T0 - 60, 400000000);
    client_state_add_memory(&st, T0, 300000000);
    st.rtt_ms = 35;
    st.has_rtt = true;
    memcpy(st.current.hex, HEX_A, sizeof(HEX_A));
    st.inflight.active = true;
    memcpy(st.inflight.target_hex, HEX_B, sizeof(HEX_B));
    st.inflight.bytes_done = 4096;

    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    ck_assert_int_eq(json_integer_value(JGET(r, "device", "memory_bytes")),
                     60000000);
    /* the floor never above what is reported */
    ck_assert_int_eq(
        json_integer_value(JGET(r, "device", "memory_floor_bytes")),
        60000000);
    ck_assert(json_number_value(JGET(r, "device", "gflops")) == 80);
    ck_assert_str_eq(json_string_value(JGET(r, "device", "class")),
                     "npu-class-a");
    ck_assert_uint_eq(json_array_size(JGET(r, "device", "formats")), 2);
    ck_assert_str_eq(
        json_string_value(json_array_get(JGET(r, "device", "formats"), 1)),
        "onnx");
    ck_assert(json_number_value(JGET(r, "device", "battery_percent")) == 42);
    ck_assert(json_is_false(JGET(r, "device", "charging")));
    ck_assert(json_number_value(JGET(r, "network", "downlink_bps")) == 4e6);
    hist = JGET(r, "network", "downlink_history_bps");
    ck_assert_uint_eq(json_array_size(hist), 3);
    ck_assert(json_number_value(json_array_get(hist, 2)) == 4e6);
    hist = JGET(r, "device", "memory_history_bytes");
    ck_assert_uint_eq(json_array_size(hist), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(hist, 1)), 300000000);
    ck_assert(json_number_value(JGET(r, "network", "rtt_ms")) == 35);
    ck_assert(json_is_false(JGET(r, "network", "metered")));
    ck_assert(json_number_value(JGET(r, "requirements", "max_latency_ms")) ==
              100);
    ck_assert(json_number_value(JGET(r, "requirements", "min_accuracy")) ==
              0.5);
    ck_assert_str_eq(json_string_value(json_array_get(
                         JGET(r, "context", "scene"), 0)),
                     "night");
    ck_assert_str_eq(json_string_value(json_object_get(r, "preference")),
                     "saver");
    ck_assert_str_eq(json_string_value(json_object_get(r, "ue")), st.ue);
    ck_assert_str_eq(json_string_value(json_object_get(r, "current")),
                     "sha256:" HEX_A);
    ck_assert_str_eq(json_string_value(JGET(r, "fetching", "digest")),
                     "sha256:" HEX_B);
    ck_assert_int_eq(json_integer_value(JGET(r, "fetching", "bytes_done")),
                     4096);
    ck_assert_str_eq(json_string_value(json_object_get(r, "nonce")),
                     "abcdefabcdefabcdef");
    ck_assert(json_is_true(JGET(r, "accept", "signed")));
    json_decref(r);

    /* 31 minutes on: nothing measured then is sent any more */
    in.now_s = T0 + 31 * 60;
    in.set_count = 0;
    in.base_json = NULL;
    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    ck_assert_ptr_null(JGET(r, "network", "downlink_bps"));
    ck_assert_ptr_null(JGET(r, "network", "downlink_history_bps"));
    ck_assert_ptr_null(JGET(r, "device", "memory_history_bytes"));
    ck_assert_ptr_null(JGET(r, "device", "memory_floor_bytes"));
    json_decref(r);
}
END_TEST

/* device.gflops and device.gflops_history from the probe, calibrated
 * against the configured device.gflops (the peak) or the benchmark. */
START_TEST(test_client_report_compute)
{
    struct client_facts f = { .memory_bytes = 1000 };
    struct client_state st;
    const char *sets[] = { "device.gflops=50" };
    struct client_report_in in = { .facts = &f, .now_s = T0 + 65,
                                   .compute = true };
    char err[256];
    json_t *r, *hist;

    client_state_init(&st, "f");
    st.gflops = 8; /* the benchmark */
    client_state_add_compute(&st, T0, 20);
    client_state_add_compute(&st, T0 + 10, 5);  /* a quarter */
    client_state_add_compute(&st, T0 + 61, 10); /* half, now */
    /* the benchmark is the peak */
    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    ck_assert_double_eq_tol(json_number_value(JGET(r, "device", "gflops")),
                            4, 1e-9);
    hist = JGET(r, "device", "gflops_history");
    ck_assert_uint_eq(json_array_size(hist), 2);
    ck_assert_double_eq_tol(json_number_value(json_array_get(hist, 0)), 2,
                            1e-9);
    ck_assert_double_eq_tol(json_number_value(json_array_get(hist, 1)), 4,
                            1e-9);
    json_decref(r);
    /* the configured figure is the peak: the report sends its share */
    in.sets = sets;
    in.set_count = 1;
    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    ck_assert_double_eq_tol(json_number_value(JGET(r, "device", "gflops")),
                            25, 1e-9);
    hist = JGET(r, "device", "gflops_history");
    ck_assert_double_eq_tol(json_number_value(json_array_get(hist, 0)), 12.5,
                            1e-9);
    json_decref(r);
    /* the same from the base report */
    in.sets = NULL;
    in.set_count = 0;
    in.base_json = "{\"device\":{\"gflops\":100}}";
    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    ck_assert_double_eq_tol(json_number_value(JGET(r, "device", "gflops")),
                            50, 1e-9);
    json_decref(r);
    /* --set device.gflops_history=null removes it; a list replaces it */
    {
        const char *s2[] = { "device.gflops=50",
                             "device.gflops_history=null" };
        const char *s3[] = { "device.gflops_history=[7,8]" };

        in.base_json = NULL;
        in.sets = s2;
        in.set_count = 2;
        r = make(&in, &st, CLIENT_OK, err, sizeof(err));
        ck_assert_ptr_null(JGET(r, "device", "gflops_history"));
        json_decref(r);
        in.sets = s3;
        in.set_count = 1;
        r = make(&in, &st, CLIENT_OK, err, sizeof(err));
        ck_assert_uint_eq(json_array_size(JGET(r, "device", "gflops_history")),
                          2);
        json_decref(r);
    }
    /* no probing (--no-benchmark): the configured figure as it is, no
     * history */
    in.compute = false;
    in.sets = sets;
    in.set_count = 1;
    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    ck_assert(json_number_value(JGET(r, "device", "gflops")) == 50);
    ck_assert_ptr_null(JGET(r, "device", "gflops_history"));
    json_decref(r);
    /* the probe of a minute ago is not "now": the peak, and the history */
    in.compute = true;
    in.now_s = T0 + 61 + 60;
    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    ck_assert(json_number_value(JGET(r, "device", "gflops")) == 50);
    ck_assert_uint_eq(json_array_size(JGET(r, "device", "gflops_history")), 2);
    json_decref(r);
}
END_TEST

START_TEST(test_client_report_minimal)
{
    struct client_facts f = { .memory_bytes = 1000 };
    struct client_state st;
    struct client_report_in in = { .facts = &f };
    char err[256];
    json_t *r;

    client_state_init(&st, "f");
    st.gflops = 3;
    r = make(&in, &st, CLIENT_OK, err, sizeof(err));
    /* nothing measured about the network: no network member, no current */
    ck_assert_ptr_null(json_object_get(r, "network"));
    ck_assert_ptr_null(json_object_get(r, "current"));
    ck_assert_ptr_null(json_object_get(r, "fetching"));
    ck_assert_ptr_null(json_object_get(r, "nonce"));
    /* the codings it decodes; no signed answer asked for */
    ck_assert_uint_eq(json_array_size(JGET(r, "accept", "delta_formats")), 2);
    ck_assert_str_eq(json_string_value(json_array_get(
                         JGET(r, "accept", "encodings"), 0)),
                     "modeld-bg/1");
    ck_assert_ptr_null(JGET(r, "accept", "signed"));
    json_decref(r);
}
END_TEST

static const struct bad_report_case {
    const char *base;
    const char *set;
    const char *err_has;
} bad_report_cases[] = {
    { NULL, "device.memroy_bytes=5", "not a report field" },
    { NULL, "novalue", "KEY=VALUE" },
    { NULL, "=5", "KEY=VALUE" },
    { NULL, "device.gflops=-1", "device.gflops" },
    { NULL, "device.memory_bytes=lots", "device.memory_bytes" },
    { NULL, "preference=fastest", "preference" },
    { NULL, "device.memory_bytes=null", "device.memory_bytes" },
    { "[1,2]", NULL, "--report" },
    { "{\"device\":", NULL, "--report" },
    { "{\"network\":{\"load\":7}}", NULL, "network.load" },
};

START_TEST(test_client_report_refuses)
{
    const struct bad_report_case *c = &bad_report_cases[_i];
    struct client_facts f = { .memory_bytes = 1000 };
    struct client_state st;
    const char *sets[1] = { c->set };
    struct client_report_in in = { .facts = &f,
                                   .base_json = c->base,
                                   .sets = sets,
                                   .set_count = c->set ? 1 : 0 };
    char err[256] = "";

    client_state_init(&st, "f");
    st.gflops = 3;
    (void)make(&in, &st, CLIENT_BAD_ARGS, err, sizeof(err));
    ck_assert_msg(strstr(err, c->err_has) != NULL, "error \"%s\" lacks \"%s\"",
                  err, c->err_has);
}
END_TEST

/* ---- decision ---------------------------------------------------------------- */

START_TEST(test_client_decision_parse)
{
    struct client_decision d;
    char err[256];
    const char *dl =
        "{\"action\":\"download\",\"family\":\"f\",\"variant\":\"m\","
        "\"version\":2,\"model\":{\"digest\":\"sha256:" HEX_A "\","
        "\"size_bytes\":1234,\"url\":\"/v1/blobs/sha256:" HEX_A "\"},"
        "\"recheck_after_s\":300,\"generation\":9,"
        "\"expires_at\":\"2026-12-01T12:00:00Z\",\"nonce\":\"n1\"}";
    const char *delta =
        "{\"action\":\"delta\",\"variant\":\"m\",\"version\":3,"
        "\"model\":{\"digest\":\"sha256:" HEX_B "\",\"size_bytes\":99,"
        "\"url\":\"/v1/blobs/sha256:" HEX_B "\"},\"delta\":{\"from\":"
        "\"sha256:" HEX_A "\",\"size_bytes\":12,\"url\":\"/v1/deltas/x/y\"}}";

    ck_assert_int_eq(client_decision_parse(dl, strlen(dl), &d, err,
                                           sizeof(err)),
                     CLIENT_OK);
    ck_assert_int_eq(d.action, PROTO_ACTION_DOWNLOAD);
    ck_assert_str_eq(d.model_hex, HEX_A);
    ck_assert_uint_eq(d.model_size, 1234);
    ck_assert_uint_eq(d.recheck_after_s, 300);
    ck_assert(d.has_generation && d.generation == 9);
    ck_assert(d.has_expires_at && d.expires_at_s == 1796126400);
    ck_assert_str_eq(d.nonce, "n1");

    ck_assert_int_eq(client_decision_parse(delta, strlen(delta), &d, err,
                                           sizeof(err)),
                     CLIENT_OK);
    ck_assert_int_eq(d.action, PROTO_ACTION_DELTA);
    ck_assert_str_eq(d.delta_from_hex, HEX_A);
    ck_assert_str_eq(d.delta_format, "zstd-patch");
    ck_assert_uint_eq(d.delta_size, 12);

    /* an encoded form: its size, and the model's own as the bound */
    {
        const char *enc =
            "{\"action\":\"download\",\"variant\":\"m\",\"model\":{"
            "\"digest\":\"sha256:" HEX_A "\",\"size_bytes\":600,"
            "\"url\":\"/v1/blobs/sha256:" HEX_A "?encoding=modeld-bg/1\","
            "\"encoding\":\"modeld-bg/1\",\"decoded_size_bytes\":1000}}";

        ck_assert_int_eq(client_decision_parse(enc, strlen(enc), &d, err,
                                               sizeof(err)),
                         CLIENT_OK);
        ck_assert_str_eq(d.model_encoding, "modeld-bg/1");
        ck_assert_uint_eq(d.model_size, 600);
        ck_assert_uint_eq(d.model_decoded_size, 1000);
    }

    ck_assert_int_eq(client_decision_parse("{\"action\":\"none\"}", 17, &d,
                                           err, sizeof(err)),
                     CLIENT_OK);
    ck_assert_int_eq(d.action, PROTO_ACTION_NONE);
}
END_TEST

static const char *const bad_decisions[] = {
    "",
    "{}",
    "{\"action\":\"fly\"}",
    "{\"action\":\"download\"}",
    "{\"action\":\"download\",\"model\":{\"digest\":\"sha256:12\","
    "\"size_bytes\":1,\"url\":\"/v1/blobs/x\"}}",
    "{\"action\":\"download\",\"model\":{\"digest\":\"sha256:" HEX_A "\","
    "\"size_bytes\":-1,\"url\":\"/v1/blobs/x\"}}",
    /* a URL elsewhere on the host, or with odd characters */
    "{\"action\":\"download\",\"model\":{\"digest\":\"sha256:" HEX_A "\","
    "\"size_bytes\":1,\"url\":\"/etc/passwd\"}}",
    "{\"action\":\"download\",\"model\":{\"digest\":\"sha256:" HEX_A "\","
    "\"size_bytes\":1,\"url\":\"/v1/a b\"}}",
    "{\"action\":\"delta\",\"model\":{\"digest\":\"sha256:" HEX_A "\","
    "\"size_bytes\":1,\"url\":\"/v1/blobs/x\"}}",
    "{\"action\":\"none\",\"expires_at\":\"yesterday\"}",
    "{\"action\":\"download\",\"model\":{\"digest\":\"sha256:" HEX_A "\","
    "\"size_bytes\":1,\"url\":\"/v1/blobs/x\",\"encoding\":\"modeld-bg/1\","
    "\"decoded_size_bytes\":-5}}",
};

START_TEST(test_client_decision_refuses)
{
    struct client_decision d;
    char err[256];

    ck_assert_int_eq(client_decision_parse(bad_decisions[_i],
                                           strlen(bad_decisions[_i]), &d, err,
                                           sizeof(err)),
                     CLIENT_REFUSED);
}
END_TEST

START_TEST(test_client_rfc3339_parse)
{
    ck_assert_int_eq(client_rfc3339_parse("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(client_rfc3339_parse("2026-12-01T12:00:00.250Z"),
                     1796126400);
    ck_assert_int_eq(client_rfc3339_parse("2026-12-01T12:00:00+00:00"),
                     1796126400);
    ck_assert_int_eq(client_rfc3339_parse("2026-12-01T12:00:00+02:00"), -1);
    ck_assert_int_eq(client_rfc3339_parse("2026-12-01"), -1);
    ck_assert_int_eq(client_rfc3339_parse(NULL), -1);
}
END_TEST

/* ---- signatures --------------------------------------------------------------- */

START_TEST(test_client_base64)
{
    unsigned char in[40], out[64];
    char enc[80];

    for (size_t len = 0; len <= sizeof(in); len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len);
        client_base64_encode(in, len, enc);
        ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)out, in, (int)len),
                         (int)strlen(enc));
        ck_assert_mem_eq(out, enc, strlen(enc));
        ck_assert_int_eq(client_base64_decode(enc, strlen(enc), out,
                                              sizeof(out)),
                         (long)len);
        ck_assert_mem_eq(out, in, len);
    }
    /* url alphabet, no padding */
    ck_assert_int_eq(client_base64_decode("-_8", 3, out, sizeof(out)), 2);
    ck_assert_int_eq(out[0], 0xfb);
    ck_assert_int_eq(client_base64_decode("a*bc", 4, out, sizeof(out)), -1);
    ck_assert_int_eq(client_base64_decode("A", 1, out, sizeof(out)), -1);
    ck_assert_int_eq(client_base64_decode("AAAA", 4, out, 2), -1);
}
END_TEST

/* A signer written from RFC 9421 section 2.5 and 3.1, independent of the
 * verifier's code. */
struct signer {
    EVP_PKEY *key;
    unsigned char pub[32];
    char jwks[256];
    char content_digest[128];
    char sig_input[600];
    char signature[256];
};

static void signer_new(struct signer *s)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    size_t len = sizeof(s->pub);
    unsigned char x[64];
    char *p;

    memset(s, 0, sizeof(*s));
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_PKEY_keygen_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_keygen(ctx, &s->key), 1);
    EVP_PKEY_CTX_free(ctx);
    ck_assert_int_eq(EVP_PKEY_get_raw_public_key(s->key, s->pub, &len), 1);
    EVP_EncodeBlock(x, s->pub, 32);
    /* JWK x is base64url without padding */
    for (p = (char *)x; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    if ((p = strchr((char *)x, '=')) != NULL)
        *p = '\0';
    snprintf(s->jwks, sizeof(s->jwks),
             "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":"
             "\"k1\",\"x\":\"%s\",\"alg\":\"EdDSA\",\"use\":\"sig\"}]}",
             x);
}

/* req: the request-bound forms "@method";req "@path";req (RFC 9421
 * section 2.4); else the plain "@method" "@path". */
static void signer_sign(struct signer *s, const char *body,
                        const char *components, bool req, int64_t created,
                        int64_t expires, const char *kid, const char *alg)
{
    unsigned char md[32], sig[64], b64[100];
    char base[2048], params[512];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    SHA256((const unsigned char *)body, strlen(body), md);
    EVP_EncodeBlock(b64, md, 32);
    snprintf(s->content_digest, sizeof(s->content_digest), "sha-256=:%s:",
             b64);
    snprintf(params, sizeof(params),
             "(%s);created=%lld;expires=%lld;keyid=\"%s\";alg=\"%s\"",
             components, (long long)created, (long long)expires, kid, alg);
    snprintf(base, sizeof(base),
             "%s\"@method\"%s: POST\n\"@path\"%s: /v1/families/f/select\n"
             "\"content-digest\": %s\n\"content-type\": application/json\n"
             "\"@signature-params\": %s",
             strncmp(components, "\"@status\"", 9) == 0 ? "\"@status\": 200\n"
                                                       : "",
             req ? ";req" : "", req ? ";req" : "", s->content_digest, params);
    ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->key), 1);
    ck_assert_int_eq(EVP_DigestSign(ctx, sig, &sig_len,
                                    (const unsigned char *)base,
                                    strlen(base)),
                     1);
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock(b64, sig, 64);
    snprintf(s->sig_input, sizeof(s->sig_input), "modeld=%s", params);
    snprintf(s->signature, sizeof(s->signature), "modeld=:%s:", b64);
}

#define COMPONENTS "\"@method\" \"@path\" \"content-digest\" \"content-type\""
#define BODY "{\"action\":\"keep\",\"generation\":3}"

static struct client_signed signed_of(const struct signer *s,
                                      const char *body)
{
    struct client_signed m = {
        .status = 200,
        .method = "POST",
        .path = "/v1/families/f/select",
        .content_type = "application/json",
        .content_digest = s->content_digest,
        .signature_input = s->sig_input,
        .signature = s->signature,
        .body = body,
        .body_len = strlen(body),
    };
    return m;
}

START_TEST(test_client_signature_verify_ok)
{
    struct signer s;
    struct client_keyring ring;
    struct client_signed m;
    char err[256];
    int64_t now = 1796126400;

    signer_new(&s);
    ck_assert_int_eq(client_keyring_parse(s.jwks, strlen(s.jwks), NULL,
                                          &ring, err, sizeof(err)),
                     CLIENT_OK);
    ck_assert_uint_eq(ring.count, 1);
    ck_assert_mem_eq(ring.keys[0].key, s.pub, 32);

    signer_sign(&s, BODY, COMPONENTS, false, now - 5, now + 300,
                "k1", "ed25519");
    m = signed_of(&s, BODY);
    ck_assert_msg(client_signature_verify(&m, &ring, NULL, now, err,
                                          sizeof(err)) == CLIENT_OK,
                  "%s", err);
    ck_assert_int_eq(client_signature_verify(&m, &ring, "k1", now, err,
                                             sizeof(err)),
                     CLIENT_OK);
    /* the request-bound form of RFC 9421 section 2.4 */
    signer_sign(&s, BODY,
                "\"@method\";req \"@path\";req \"content-digest\" "
                "\"content-type\"",
                true, now, now + 60, "k1", "ed25519");
    m = signed_of(&s, BODY);
    ck_assert_msg(client_signature_verify(&m, &ring, NULL, now, err,
                                          sizeof(err)) == CLIENT_OK,
                  "%s", err);
    /* what server/sign.c signs (README "Signed decisions") */
    signer_sign(&s, BODY,
                "\"@status\" \"@method\";req \"@path\";req "
                "\"content-digest\" \"content-type\"",
                true, now, now + 60, "k1", "ed25519");
    m = signed_of(&s, BODY);
    ck_assert_msg(client_signature_verify(&m, &ring, NULL, now, err,
                                          sizeof(err)) == CLIENT_OK,
                  "%s", err);
    m.status = 203; /* @status is covered */
    ck_assert_int_eq(client_signature_verify(&m, &ring, NULL, now, err,
                                             sizeof(err)),
                     CLIENT_VERIFY_FAILED);
    /* another signature label before ours is skipped */
    signer_sign(&s, BODY, COMPONENTS, false, now, now + 60, "k1",
                "ed25519");
    {
        char in2[700], sig2[300];

        snprintf(in2, sizeof(in2), "other=(\"@status\");created=1, %s",
                 s.sig_input);
        snprintf(sig2, sizeof(sig2), "other=:AAAA:, %s", s.signature);
        m = signed_of(&s, BODY);
        m.signature_input = in2;
        m.signature = sig2;
        ck_assert_msg(client_signature_verify(&m, &ring, NULL, now, err,
                                              sizeof(err)) == CLIENT_OK,
                      "%s", err);
    }
    EVP_PKEY_free(s.key);
}
END_TEST

/* Each way a signed answer must be refused, and the words that say why. */
enum sig_fault {
    FAULT_BODY,          /* body changed after signing */
    FAULT_DIGEST_HEADER, /* Content-Digest rewritten to the new body */
    FAULT_EXPIRED,
    FAULT_FUTURE,
    FAULT_KID,           /* pinned kid differs */
    FAULT_UNKNOWN_KEY,
    FAULT_ALG,
    FAULT_MISSING_COMPONENT,
    FAULT_NO_HEADERS,
    FAULT_PATH,          /* answer to another request */
    FAULT_SIG_BYTES,
    FAULT_CONTENT_TYPE,
};

static const struct sig_case {
    enum sig_fault fault;
    const char *err_has;
} sig_cases[] = {
    { FAULT_BODY, "Content-Digest" },
    { FAULT_DIGEST_HEADER, "does not verify" },
    { FAULT_EXPIRED, "expired" },
    { FAULT_FUTURE, "future" },
    { FAULT_KID, "pinned" },
    { FAULT_UNKNOWN_KEY, "no key" },
    { FAULT_ALG, "alg" },
    { FAULT_MISSING_COMPONENT, "not covered" },
    { FAULT_NO_HEADERS, "no Signature" },
    { FAULT_PATH, "does not verify" },
    { FAULT_SIG_BYTES, "does not verify" },
    { FAULT_CONTENT_TYPE, "does not verify" },
};

START_TEST(test_client_signature_verify_refuses)
{
    const struct sig_case *c = &sig_cases[_i];
    struct signer s, other;
    struct client_keyring ring;
    struct client_signed m;
    char err[256] = "", digest[128];
    int64_t now = 1796126400;
    const char *tampered = "{\"action\":\"keep\",\"generation\":4}";

    signer_new(&s);
    ck_assert_int_eq(client_keyring_parse(s.jwks, strlen(s.jwks), NULL,
                                          &ring, err, sizeof(err)),
                     CLIENT_OK);
    signer_sign(&s, BODY, COMPONENTS, false, now - 5, now + 300,
                "k1", "ed25519");
    m = signed_of(&s, BODY);
    switch (c->fault) {
    case FAULT_BODY:
        m.body = tampered;
        m.body_len = strlen(tampered);
        break;
    case FAULT_DIGEST_HEADER: {
        unsigned char md[32], b64[64];

        SHA256((const unsigned char *)tampered, strlen(tampered), md);
        EVP_EncodeBlock(b64, md, 32);
        snprintf(digest, sizeof(digest), "sha-256=:%s:", b64);
        m.body = tampered;
        m.body_len = strlen(tampered);
        m.content_digest = digest;
        break;
    }
    case FAULT_EXPIRED:
        signer_sign(&s, BODY, COMPONENTS, false, now - 600, now - 1,
                    "k1", "ed25519");
        break;
    case FAULT_FUTURE:
        signer_sign(&s, BODY, COMPONENTS, false, now + 3600,
                    now + 7200, "k1", "ed25519");
        break;
    case FAULT_KID:
        ck_assert_int_eq(client_signature_verify(&m, &ring, "k2", now, err,
                                                 sizeof(err)),
                         CLIENT_VERIFY_FAILED);
        ck_assert_ptr_nonnull(strstr(err, c->err_has));
        EVP_PKEY_free(s.key);
        return;
    case FAULT_UNKNOWN_KEY:
        signer_sign(&s, BODY, COMPONENTS, false, now, now + 60, "k9",
                    "ed25519");
        break;
    case FAULT_ALG:
        signer_sign(&s, BODY, COMPONENTS, false, now, now + 60, "k1",
                    "rsa-pss-sha512");
        break;
    case FAULT_MISSING_COMPONENT:
        signer_sign(&s, BODY, "\"@method\" \"@path\" \"content-type\"",
                    false, now, now + 60, "k1", "ed25519");
        break;
    case FAULT_NO_HEADERS:
        m.signature = NULL;
        break;
    case FAULT_PATH:
        m.path = "/v1/families/g/select";
        break;
    case FAULT_SIG_BYTES: {
        /* the right key of another signer */
        signer_new(&other);
        signer_sign(&other, BODY, COMPONENTS, false, now, now + 60,
                    "k1", "ed25519");
        snprintf(s.signature, sizeof(s.signature), "%s", other.signature);
        snprintf(s.sig_input, sizeof(s.sig_input), "%s", other.sig_input);
        EVP_PKEY_free(other.key);
        break;
    }
    case FAULT_CONTENT_TYPE:
        m.content_type = "text/plain";
        break;
    }
    ck_assert_int_eq(client_signature_verify(&m, &ring, NULL, now, err,
                                             sizeof(err)),
                     CLIENT_VERIFY_FAILED);
    ck_assert_msg(strstr(err, c->err_has) != NULL, "error \"%s\" lacks \"%s\"",
                  err, c->err_has);
    EVP_PKEY_free(s.key);
}
END_TEST

START_TEST(test_client_keyring_pem)
{
    struct signer s;
    struct client_keyring ring;
    char err[256], pem[512];
    BIO *bio = BIO_new(BIO_s_mem());
    long n;
    char *p;

    signer_new(&s);
    ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, s.key), 1);
    n = BIO_get_mem_data(bio, &p);
    ck_assert(n > 0 && (size_t)n < sizeof(pem));
    memcpy(pem, p, (size_t)n);
    ck_assert_int_eq(client_keyring_parse(pem, (size_t)n, "kid-x", &ring, err,
                                          sizeof(err)),
                     CLIENT_OK);
    ck_assert_str_eq(ring.keys[0].kid, "kid-x");
    ck_assert_mem_eq(ring.keys[0].key, s.pub, 32);
    /* a private key file gives its public half */
    (void)BIO_reset(bio);
    ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, s.key, NULL, NULL, 0, NULL,
                                              NULL),
                     1);
    n = BIO_get_mem_data(bio, &p);
    ck_assert(n > 0 && (size_t)n < sizeof(pem));
    memcpy(pem, p, (size_t)n);
    ck_assert_int_eq(client_keyring_parse(pem, (size_t)n, NULL, &ring, err,
                                          sizeof(err)),
                     CLIENT_OK);
    ck_assert_mem_eq(ring.keys[0].key, s.pub, 32);
    ck_assert_int_eq(client_keyring_parse("nonsense", 8, NULL, &ring, err,
                                          sizeof(err)),
                     CLIENT_BAD_ARGS);
    ck_assert_int_eq(client_keyring_parse("{\"keys\":[]}", 11, NULL, &ring,
                                          err, sizeof(err)),
                     CLIENT_BAD_ARGS);
    BIO_free(bio);
    EVP_PKEY_free(s.key);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc;

    tc = tcase_create("state");
    tcase_add_test(tc, test_client_state_round_trip);
    tcase_add_test(tc, test_client_state_estimates);
    tcase_add_test(tc, test_client_history_memory_minutes);
    tcase_add_test(tc, test_client_history_downlink);
    tcase_add_test(tc, test_client_compute_probe);
    tcase_add_test(tc, test_client_history_compute);
    tcase_add_loop_test(tc, test_client_state_parse_refuses, 0,
                        ARRAY_SIZE(bad_states));
    tcase_add_test(tc, test_client_state_save_load);
    suite_add_tcase(s, tc);

    tc = tcase_create("resume");
    tcase_add_loop_test(tc, test_client_resume_decide_cases, 0,
                        ARRAY_SIZE(resume_cases));
    tcase_add_test(tc, test_client_retry_after_parse);
    tcase_add_test(tc, test_client_backoff_ms);
    tcase_add_test(tc, test_client_transfer_deadline);
    suite_add_tcase(s, tc);

    tc = tcase_create("report");
    tcase_add_test(tc, test_client_report_layers);
    tcase_add_test(tc, test_client_report_minimal);
    tcase_add_test(tc, test_client_report_compute);
    tcase_add_loop_test(tc, test_client_report_refuses, 0,
                        ARRAY_SIZE(bad_report_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("decision");
    tcase_add_test(tc, test_client_decision_parse);
    tcase_add_loop_test(tc, test_client_decision_refuses, 0,
                        ARRAY_SIZE(bad_decisions));
    tcase_add_test(tc, test_client_rfc3339_parse);
    suite_add_tcase(s, tc);

    tc = tcase_create("signature");
    tcase_add_test(tc, test_client_base64);
    tcase_add_test(tc, test_client_signature_verify_ok);
    tcase_add_loop_test(tc, test_client_signature_verify_refuses, 0,
                        ARRAY_SIZE(sig_cases));
    tcase_add_test(tc, test_client_keyring_pem);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
