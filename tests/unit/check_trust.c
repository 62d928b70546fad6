/*
 * Unit tests of trust and control: store/trust.c (events counted once,
 * the automatic pause at exactly the threshold, statistics, measured
 * latency in snapshots, rollout changes, retiring a version, the audit
 * log), the idempotent publish, the epoch-based generation, the admission
 * rule (policy/admission.c), admin tokens and scopes (server/auth.c), and
 * proto's event, rollout and time parsers. A fresh data directory per
 * store test; the real SQLite.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy/admission.h"
#include "proto/proto.h"
#include "server/auth.h"
#include "server/decide.h"
#include "store/db.h"      /* the receipt key, for the reference HMAC */
#include "store/store.h"
#include "tests/lib/fixture.h"

static char data_dir[64];

static void
dir_setup(void)
{
    fixture_dir_make(data_dir, sizeof(data_dir), "/tmp/check_trust.XXXXXX");
}

static void
dir_teardown(void)
{
    fixture_dir_remove(data_dir);
}

static struct store *
open_store(bool worker)
{
    struct store_options opt;
    struct store *st = NULL;

    store_options_default(&opt);
    opt.run_worker = worker;
    opt.delta_level = 3;
    opt.compress_level = 3;
    opt.rollout_min_reports = 4;
    opt.rollout_max_failure_share = 0.5;
    opt.latency_min_reports = 3;
    ck_assert_int_eq(store_open(data_dir, &opt, &st), STORE_OK);
    return st;
}

/* Uploads len pseudo-random (incompressible) bytes, the same for every
 * call but for the first `edit` bytes; writes its hex. */
static void
put_blob(struct store *st, size_t len, unsigned edit,
         char out_hex[PROTO_HEX_SIZE])
{
    unsigned char *b = malloc(len);
    struct proto_hasher *h = proto_hasher_new();
    struct store_upload *up = NULL;
    bool created = false;
    uint64_t size = 0;
    uint32_t x = 2463534242u;

    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (unsigned char)(x >> 24);
    }
    for (size_t i = 0; i < edit && i < len; i++)
        b[i] ^= 0x5a;
    ck_assert_int_eq(proto_hasher_update(h, b, len), PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, out_hex), PROTO_OK);
    proto_hasher_free(h);
    ck_assert_int_eq(store_upload_begin(st, out_hex, len, &up), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, b, len), STORE_OK);
    ck_assert_int_eq(store_upload_finish(up, &created, &size), STORE_OK);
    free(b);
}

static void
meta_of(struct proto_variant *v, const char *hex, double accuracy,
        unsigned rollout)
{
    memset(v, 0, sizeof(*v));
    memcpy(v->blob_hex, hex, PROTO_HEX_SIZE);
    v->flops = 1e9;
    v->accuracy = accuracy;
    v->rollout_percent = rollout;
}

/* A family "f" with variant "m": v1 (100 %) and v2 (rollout2 %). */
static void
two_versions(struct store *st, unsigned rollout2, char h1[PROTO_HEX_SIZE],
             char h2[PROTO_HEX_SIZE])
{
    struct proto_family fam = {0};
    struct proto_variant v;
    bool created = false;
    int64_t version = 0;

    ck_assert_int_eq(store_family_put(st, "f", &fam, &created), STORE_OK);
    put_blob(st, 50000, 0, h1);
    put_blob(st, 50000, 100, h2);
    meta_of(&v, h1, 0.7, 100);
    ck_assert_int_eq(store_variant_publish(st, "f", "m", &v, 1000, &version),
                     STORE_OK);
    meta_of(&v, h2, 0.8, rollout2);
    ck_assert_int_eq(store_variant_publish(st, "f", "m", &v, 1001, &version),
                     STORE_OK);
    ck_assert_int_eq(version, 2);
}

static struct proto_event
ev_of(const char *ue, int64_t version, enum proto_event_kind kind)
{
    struct proto_event e;

    memset(&e, 0, sizeof(e));
    snprintf(e.ue, sizeof(e.ue), "%s", ue);
    snprintf(e.variant, sizeof(e.variant), "m");
    e.version = version;
    e.kind = kind;
    return e;
}

static bool
add(struct store *st, const struct proto_event *e, bool *paused)
{
    bool counted = false, p = false;

    ck_assert_int_eq(store_event_add(st, "f", e, 2000, &counted, &p),
                     STORE_OK);
    if (paused)
        *paused = p;
    return counted;
}

/* ---- events and the automatic pause ------------------------------------ */

START_TEST(test_store_event_add_counts_once)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    struct proto_event e = ev_of("u1", 2, PROTO_EVENT_INSTALLED);
    bool counted, paused;

    two_versions(st, 100, h1, h2);
    ck_assert(add(st, &e, NULL));
    ck_assert(!add(st, &e, NULL));
    e.kind = PROTO_EVENT_LOAD_FAILED;
    ck_assert(add(st, &e, NULL));
    /* Unknown version, variant or family; a digest not the version's. */
    e.version = 9;
    ck_assert_int_eq(store_event_add(st, "f", &e, 1, &counted, &paused),
                     STORE_NOT_FOUND);
    e.version = 2;
    ck_assert_int_eq(store_event_add(st, "nope", &e, 1, &counted, &paused),
                     STORE_NOT_FOUND);
    e.has_digest = true;
    memcpy(e.digest_hex, h1, PROTO_HEX_SIZE);
    ck_assert_int_eq(store_event_add(st, "f", &e, 1, &counted, &paused),
                     STORE_MISMATCH);
    memcpy(e.digest_hex, h2, PROTO_HEX_SIZE);
    e.kind = PROTO_EVENT_ROLLED_BACK;
    ck_assert_int_eq(store_event_add(st, "f", &e, 1, &counted, &paused),
                     STORE_OK);
    ck_assert(counted);
    store_close(st);
}
END_TEST

/* min_reports 4, share 0.5: one UE's report of version 2 after another,
 * and whether that report paused it. */
static const struct pause_step {
    const char *ue;
    enum proto_event_kind kind;
    bool paused;
} pause_steps[] = {
    { "u1", PROTO_EVENT_INSTALLED, false },
    { "u2", PROTO_EVENT_INSTALLED, false },
    { "u3", PROTO_EVENT_LOAD_FAILED, false },   /* 1 of 3: too few UEs */
    /* u1 failing later: still 3 UEs, 2 failed, under min_reports. */
    { "u1", PROTO_EVENT_ROLLED_BACK, false },
    { "u4", PROTO_EVENT_INSTALLED, false },     /* installed never pauses */
    { "u5", PROTO_EVENT_VERIFY_FAILED, true },  /* 3 of 5 >= 0.5 */
    { "u6", PROTO_EVENT_VERIFY_FAILED, false }, /* once */
};

START_TEST(test_store_event_pauses_at_threshold)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    struct proto_version_stats *stats = NULL;
    struct proto_audit_entry *a = NULL;
    size_t n = 0;

    two_versions(st, 100, h1, h2);
    for (size_t i = 0; i < ARRAY_SIZE(pause_steps); i++) {
        const struct pause_step *step = &pause_steps[i];
        struct proto_event e = ev_of(step->ue, 2, step->kind);
        bool paused = !step->paused;

        e.verified = true;            /* their receipts checked out */
        add(st, &e, &paused);
        ck_assert_msg(paused == step->paused, "step %zu (%s): paused %d",
                      i, step->ue, paused);
    }

    ck_assert_int_eq(store_variant_stats(st, "f", "m", &stats, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(stats[1].ues, 6);
    ck_assert_uint_eq(stats[1].failed_ues, 4);
    ck_assert_uint_eq(stats[1].counts[PROTO_EVENT_INSTALLED], 3);
    ck_assert_uint_eq(stats[1].counts[PROTO_EVENT_VERIFY_FAILED], 2);
    ck_assert_uint_eq(stats[0].ues, 0);
    free(stats);

    /* Paused: v2 is still in the snapshot (for its holders), and v1 below
     * it competes again. */
    ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 2);
    ck_assert(snap->variants[0].paused);
    ck_assert_int_eq(snap->variants[1].version, 1);
    store_snapshot_release(snap);

    ck_assert_int_eq(store_audit_list(st, 0, 10, &a, &n), STORE_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(a[0].token, "auto");
    ck_assert_str_eq(a[0].path, "/v1/families/f/variants/m/versions/2");
    ck_assert_ptr_nonnull(strstr(a[0].detail, "paused false -> true"));
    free(a);
    store_close(st);
}
END_TEST

/* Events without a valid receipt (not verified) are recorded and shown
 * but neither push a version over the failure share nor hold it under:
 * 30 forged failures do not pause; verified UEs still do, and a verified
 * report upgrades an earlier forged one of the same UE id. With
 * pause_needs_receipt off every event counts, as before receipts. */
START_TEST(test_store_event_unverified_do_not_pause)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE], ue[32];
    struct proto_version_stats *stats = NULL;
    bool paused = false;
    size_t n = 0;

    two_versions(st, 100, h1, h2);
    for (int i = 0; i < 30; i++) {
        struct proto_event e;

        snprintf(ue, sizeof(ue), "forged-%d", i);
        e = ev_of(ue, 2, PROTO_EVENT_LOAD_FAILED);
        ck_assert(add(st, &e, &paused));
        ck_assert_msg(!paused, "forged event %d paused the version", i);
    }
    /* Forged installs do not dilute the verified failures either. */
    for (int i = 0; i < 30; i++) {
        struct proto_event e;

        snprintf(ue, sizeof(ue), "forged-ok-%d", i);
        e = ev_of(ue, 2, PROTO_EVENT_INSTALLED);
        ck_assert(add(st, &e, &paused));
    }
    /* Verified: u1 installed, then forged-0 (already recorded unverified)
     * and u2, u3 failing: 3 of 4 verified UEs, over min_reports 4. */
    {
        static const struct { const char *ue; enum proto_event_kind kind;
                              bool paused; } steps[] = {
            { "u1", PROTO_EVENT_INSTALLED, false },
            { "forged-0", PROTO_EVENT_LOAD_FAILED, false },
            { "u2", PROTO_EVENT_LOAD_FAILED, false },
            { "u3", PROTO_EVENT_LOAD_FAILED, true },
        };

        for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
            struct proto_event e = ev_of(steps[i].ue, 2, steps[i].kind);

            e.verified = true;
            ck_assert_msg(add(st, &e, &paused), "step %zu not counted", i);
            ck_assert_msg(paused == steps[i].paused, "step %zu: paused %d",
                          i, paused);
        }
    }
    ck_assert_int_eq(store_variant_stats(st, "f", "m", &stats, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(stats[1].ues, 63);
    ck_assert_uint_eq(stats[1].failed_ues, 32);
    ck_assert_uint_eq(stats[1].verified_ues, 4);
    ck_assert_uint_eq(stats[1].verified_failed_ues, 3);
    free(stats);
    store_close(st);

    /* The same forged failures pause when receipts are not needed. */
    dir_teardown();
    dir_setup();
    {
        struct store_options opt;

        store_options_default(&opt);
        opt.rollout_min_reports = 4;
        opt.rollout_max_failure_share = 0.5;
        opt.pause_needs_receipt = false;
        ck_assert_int_eq(store_open(data_dir, &opt, &st), STORE_OK);
    }
    two_versions(st, 100, h1, h2);
    for (int i = 0; i < 4; i++) {
        struct proto_event e;

        snprintf(ue, sizeof(ue), "forged-%d", i);
        e = ev_of(ue, 2, PROTO_EVENT_LOAD_FAILED);
        add(st, &e, &paused);
    }
    ck_assert(paused);
    store_close(st);
}
END_TEST

/* A receipt is bound to every field: another UE id, family, variant,
 * version or digest does not check; the same ones do, across a reopen and
 * on a second store of the same catalog. */
START_TEST(test_store_receipts_bind_fields)
{
    struct store *st = open_store(false), *again;
    char r[PROTO_RECEIPT_SIZE], h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];

    two_versions(st, 100, h1, h2);
    ck_assert(store_receipt_make(st, "ue-1", "f", "m", 2, h2, r));
    ck_assert_uint_eq(strlen(r), 43);
    ck_assert(store_receipt_check(st, "ue-1", "f", "m", 2, h2, r));
    ck_assert(!store_receipt_check(st, "ue-2", "f", "m", 2, h2, r));
    ck_assert(!store_receipt_check(st, "ue-1", "g", "m", 2, h2, r));
    ck_assert(!store_receipt_check(st, "ue-1", "f", "n", 2, h2, r));
    ck_assert(!store_receipt_check(st, "ue-1", "f", "m", 1, h2, r));
    ck_assert(!store_receipt_check(st, "ue-1", "f", "m", 2, h1, r));
    ck_assert(!store_receipt_check(st, "ue-1", "f", "m", 2, h2, ""));
    r[5] = r[5] == 'A' ? 'B' : 'A';
    ck_assert(!store_receipt_check(st, "ue-1", "f", "m", 2, h2, r));
    ck_assert(store_receipt_make(st, "ue-1", "f", "m", 2, h2, r));
    store_close(st);
    /* The format README documents, computed here with OpenSSL's one-shot
     * HMAC() from the catalog's key: base64url (no padding) of
     * HMAC-SHA256(key, "modeld-receipt/1\nue\nfamily\nvariant\nversion\n
     * digest hex"). */
    {
        char path[128], msg[256], b64[48], err[128], hex[65];
        unsigned char key[32], mac[32];
        unsigned mac_len = 0;
        struct db *db = NULL;
        struct db_stmt *q = NULL;
        int n;

        snprintf(path, sizeof(path), "%s/catalog.db", data_dir);
        ck_assert_int_eq(db_open_sqlite(path, true, &db, err, sizeof(err)), 0);
        ck_assert_int_eq(db_prepare(db, "SELECT value FROM secrets WHERE "
                                        "name = 'event_receipt_key'", &q), 0);
        ck_assert_int_eq(db_step(q), DB_ROW);
        snprintf(hex, sizeof(hex), "%s", db_column_text(q, 0));
        db_finalize(q);
        db_close(db);
        ck_assert_uint_eq(strlen(hex), 64);
        for (int i = 0; i < 32; i++) {
            unsigned v = 0;

            ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
            key[i] = (unsigned char)v;
        }
        n = snprintf(msg, sizeof(msg), "modeld-receipt/1\nue-1\nf\nm\n2\n%s",
                     h2);
        ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, 32,
                                   (const unsigned char *)msg, (size_t)n, mac,
                                   &mac_len));
        ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)b64, mac, 32), 44);
        b64[43] = '\0';                       /* the '=' of padding */
        for (char *c = b64; *c; c++)
            *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
        ck_assert_str_eq(r, b64);
    }
    again = open_store(false);
    ck_assert(store_receipt_check(again, "ue-1", "f", "m", 2, h2, r));
    store_close(again);
}
END_TEST

START_TEST(test_store_measured_latency)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    struct proto_version_stats *stats = NULL;
    static const double lat[] = {40, 10, 30, 20};
    size_t n = 0;
    const struct proto_variant *v1 = NULL;

    two_versions(st, 100, h1, h2);
    for (size_t i = 0; i < 4; i++) {
        char ue[8];
        struct proto_event e;

        snprintf(ue, sizeof(ue), "u%zu", i);
        e = ev_of(ue, 2, PROTO_EVENT_INSTALLED);
        snprintf(e.device_class, sizeof(e.device_class), "npu-a");
        e.latency_ms = lat[i];
        e.has_latency_ms = true;
        e.energy_mj = lat[i] * 2;
        e.has_energy_mj = i < 2;
        add(st, &e, NULL);
        ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
        v1 = &snap->variants[0];
        ck_assert_int_eq(v1->version, 2);
        /* From the third report on (latency_min_reports 3). */
        ck_assert_uint_eq(v1->latency_count, i >= 2 ? 1 : 0);
        if (i == 2)
            ck_assert_double_eq(v1->latency_ms[0].value, 30);
        ck_assert_uint_eq(v1->energy_count, 0);  /* only 2 energy reports */
        store_snapshot_release(snap);
    }
    ck_assert_int_eq(store_variant_stats(st, "f", "m", &stats, &n), STORE_OK);
    ck_assert_uint_eq(stats[1].latency_count, 1);
    ck_assert_str_eq(stats[1].latency[0].device_class, "npu-a");
    ck_assert_uint_eq(stats[1].latency[0].count, 4);
    ck_assert_double_eq(stats[1].latency[0].p50_ms, 20);
    ck_assert_double_eq(stats[1].latency[0].p90_ms, 40);
    ck_assert_double_eq(stats[1].latency[0].p99_ms, 40);
    free(stats);
    store_close(st);
}
END_TEST

/* ---- rollout control ------------------------------------------------------ */

START_TEST(test_store_version_rollout)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    struct proto_rollout_patch p = {50, true, false, false};
    struct proto_variant before, after;
    const struct store_snapshot *snap = NULL;
    uint64_t gen;

    two_versions(st, 10, h1, h2);
    ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
    gen = snap->generation;
    store_snapshot_release(snap);
    ck_assert_int_eq(store_version_rollout(st, "f", "m", 2, &p, &before,
                                           &after),
                     STORE_OK);
    ck_assert_uint_eq(before.rollout_percent, 10);
    ck_assert_uint_eq(after.rollout_percent, 50);
    ck_assert(!after.paused);
    ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
    ck_assert_uint_gt(snap->generation, gen);
    ck_assert_uint_eq(snap->variants[0].rollout_percent, 50);
    store_snapshot_release(snap);
    p = (struct proto_rollout_patch){0, false, true, true};
    ck_assert_int_eq(store_version_rollout(st, "f", "m", 2, &p, &before,
                                           &after),
                     STORE_OK);
    ck_assert_uint_eq(after.rollout_percent, 50);
    ck_assert(after.paused);
    ck_assert_int_eq(store_version_rollout(st, "f", "m", 3, &p, &before,
                                           &after),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_version_rollout(st, "f", "x", 1, &p, &before,
                                           &after),
                     STORE_NOT_FOUND);
    store_close(st);
}
END_TEST

START_TEST(test_store_version_retire_sends_back)
{
    struct store *st = open_store(true);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    int64_t prev = -1;
    bool found = false;

    two_versions(st, 100, h1, h2);
    ck_assert_int_eq(store_version_retire(st, "f", "m", 2, &prev), STORE_OK);
    ck_assert_int_eq(prev, 1);
    ck_assert_int_eq(store_version_retire(st, "f", "m", 2, &prev),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_worker_wait_idle(st, 60000), STORE_OK);
    ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 1);
    ck_assert_int_eq(snap->variants[0].version, 1);
    for (size_t i = 0; i < snap->delta_count; i++)
        found = found || (strcmp(snap->deltas[i].from_hex, h2) == 0 &&
                          strcmp(snap->deltas[i].to_hex, h1) == 0);
    ck_assert_msg(found, "the reverse delta v2 -> v1 is made");
    store_snapshot_release(snap);
    /* Retiring the only live version leaves nothing to go back to. */
    ck_assert_int_eq(store_version_retire(st, "f", "m", 1, &prev), STORE_OK);
    ck_assert_int_eq(prev, 0);
    store_close(st);
}
END_TEST

/* ---- idempotent publish, generation across restarts ---------------------- */

START_TEST(test_store_variant_put_idempotent)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    struct proto_variant v;
    int64_t version = 0;
    bool created = true;

    two_versions(st, 100, h1, h2);
    meta_of(&v, h2, 0.8, 100);
    ck_assert_int_eq(store_variant_put(st, "f", "m", &v, 5, &version,
                                       &created),
                     STORE_OK);
    ck_assert(!created);
    ck_assert_int_eq(version, 2);
    v.latency_count = 1;
    snprintf(v.latency_ms[0].device_class, PROTO_TOKEN_SIZE, "c");
    v.latency_ms[0].value = 3;
    ck_assert_int_eq(store_variant_put(st, "f", "m", &v, 5, &version,
                                       &created),
                     STORE_OK);
    ck_assert(created);
    ck_assert_int_eq(version, 3);
    ck_assert_int_eq(store_variant_put(st, "f", "m", &v, 5, &version,
                                       &created),
                     STORE_OK);
    ck_assert(!created);
    ck_assert_int_eq(version, 3);
    /* A retired variant comes back with a new version. */
    ck_assert_int_eq(store_variant_retire(st, "f", "m"), STORE_OK);
    ck_assert_int_eq(store_variant_put(st, "f", "m", &v, 5, &version,
                                       &created),
                     STORE_OK);
    ck_assert(created);
    ck_assert_int_eq(version, 4);
    store_close(st);
}
END_TEST

START_TEST(test_store_generation_grows_across_restarts)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    uint64_t g1, g2;

    two_versions(st, 100, h1, h2);
    ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
    g1 = snap->generation;
    store_snapshot_release(snap);
    store_close(st);
    st = open_store(false);
    ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
    g2 = snap->generation;
    store_snapshot_release(snap);
    ck_assert_uint_gt(g2, g1);
    store_close(st);
}
END_TEST

START_TEST(test_store_audit_since)
{
    struct store *st = open_store(false);
    struct proto_audit_entry e = {0}, *list = NULL;
    size_t n = 0;

    for (int i = 0; i < 5; i++) {
        e.time_s = 100 + i;
        snprintf(e.token, sizeof(e.token), "t%d", i);
        snprintf(e.method, sizeof(e.method), "PUT");
        snprintf(e.path, sizeof(e.path), "/v1/families/x");
        e.status = 201;
        ck_assert_int_eq(store_audit_add(st, &e), STORE_OK);
    }
    ck_assert_int_eq(store_audit_list(st, 102, 10, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(list[0].token, "t2");
    ck_assert_uint_eq(list[2].status, 201);
    free(list);
    ck_assert_int_eq(store_audit_list(st, 0, 2, &list, &n), STORE_OK);
    ck_assert_uint_eq(n, 2);
    free(list);
    store_close(st);
}
END_TEST

/* ---- admission ------------------------------------------------------------ */

static const struct admission_case {
    bool has_load;
    double load;
    int current;          /* index of the held variant, -1 none */
    uint64_t memory;
    enum proto_action action;
    enum proto_action want;
} admission_cases[] = {
    {true, 0.9, 1, 100, PROTO_ACTION_DOWNLOAD, PROTO_ACTION_KEEP},
    {true, 0.8, 1, 100, PROTO_ACTION_DELTA, PROTO_ACTION_KEEP},
    {true, 0.79, 1, 100, PROTO_ACTION_DOWNLOAD, PROTO_ACTION_DOWNLOAD},
    {false, 0, 1, 100, PROTO_ACTION_DOWNLOAD, PROTO_ACTION_DOWNLOAD},
    {true, 0.9, -1, 100, PROTO_ACTION_DOWNLOAD, PROTO_ACTION_DOWNLOAD},
    {true, 0.9, 1, 10, PROTO_ACTION_DOWNLOAD, PROTO_ACTION_DOWNLOAD},
    {true, 0.9, 1, 100, PROTO_ACTION_KEEP, PROTO_ACTION_KEEP},
    {true, 0.9, 1, 100, PROTO_ACTION_NONE, PROTO_ACTION_NONE},
};

START_TEST(test_policy_admission_cases)
{
    const struct admission_case *c = &admission_cases[_i];
    struct policy_admission cfg = {0.8, 30};
    struct proto_variant v[2];
    struct proto_candidate cands[2];
    struct proto_reasons reasons[2];
    struct policy_input in = {.family = "f", .variants = v,
                              .variant_count = 2};
    struct proto_report r;
    struct proto_decision d;
    bool deferred;

    memset(v, 0, sizeof(v));
    memset(&r, 0, sizeof(r));
    memset(&d, 0, sizeof(d));
    for (int i = 0; i < 2; i++) {
        snprintf(v[i].name, sizeof(v[i].name), "v%d", i);
        memset(v[i].blob_hex, 'a' + i, PROTO_HEX_LEN);
        v[i].flops = 1e9;
        v[i].memory_bytes = 50;
        v[i].version = 1;
    }
    r.has_load = c->has_load;
    r.load = c->load;
    r.memory_bytes = c->memory;
    r.gflops = 10;
    if (c->current >= 0) {
        r.has_current = true;
        memcpy(r.current_hex, v[c->current].blob_hex, PROTO_HEX_SIZE);
    }
    d.action = c->action;
    d.chosen = 0;
    d.recheck_after_s = 300;
    d.candidates = cands;
    d.candidate_reasons = reasons;
    d.candidate_count = 1;
    cands[0].variant = 1;
    deferred = policy_admission_defer(&cfg, &in, &r, &d);
    ck_assert_int_eq(d.action, c->want);
    ck_assert(deferred == (c->want != c->action));
    if (deferred) {
        ck_assert_uint_eq(d.chosen, 1);
        ck_assert_uint_eq(d.recheck_after_s, 30);
        ck_assert_ptr_nonnull(strstr(d.reasons.text[0], "admission"));
        ck_assert_uint_eq(d.candidate_count, 1);
        ck_assert_uint_eq(cands[0].variant, 0);
        ck_assert_ptr_nonnull(strstr(reasons[0].text[0], "deferred"));
        ck_assert_double_eq(d.estimates.latency_ms, 100);
        ck_assert(!d.has_delta);
    }
}
END_TEST

/* ---- the select pipeline (server/decide.c) --------------------------------- */

static void
decide_for(struct store *st, const char *current_hex, double load,
           struct decision_run *run, const struct store_snapshot **snap)
{
    static struct proto_candidate cands[8];
    static struct proto_reasons reasons[8];
    struct policy_config pol;
    struct policy_admission adm = {0.8, 30};
    struct proto_report r;

    policy_config_default(&pol);
    memset(&r, 0, sizeof(r));
    r.memory_bytes = 1000000;
    r.gflops = 10;
    if (current_hex) {
        r.has_current = true;
        memcpy(r.current_hex, current_hex, PROTO_HEX_SIZE);
    }
    if (load >= 0) {
        r.has_load = true;
        r.load = load;
    }
    ck_assert_int_eq(store_snapshot_get(st, "f", snap), STORE_OK);
    ck_assert_uint_lt((*snap)->variant_count, 8);
    ck_assert_int_eq(decide_run(&pol, &adm, *snap, &r, cands, reasons, run),
                     DECIDE_OK);
}

/* The policy table each snapshot carries (store_options.snapshot_derive):
 * built once per snapshot read, freed with it, used by decide_run as is;
 * a paused version's view gets a table of its own for the run. */
static int derived_live;

static void *
counted_table(const struct store_snapshot *snap)
{
    void *t = decide_snapshot_table(snap);

    derived_live += t != NULL;
    return t;
}

static void
counted_table_free(void *t)
{
    derived_live--;
    decide_snapshot_table_free(t);
}

START_TEST(test_decide_run_snapshot_table)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    struct proto_rollout_patch pause = {0, false, true, true};
    struct proto_variant before, after;
    const struct store_snapshot *snap = NULL;
    struct decision_run *run = calloc(1, sizeof(*run));
    struct decision_run *own = calloc(1, sizeof(*own));
    struct store_options opt;
    struct store *hooked = NULL;
    static struct proto_candidate cands[8];
    static struct proto_reasons reasons[8];
    struct policy_config pol;
    struct policy_admission adm = {0.8, 30};
    struct proto_report r;

    ck_assert_ptr_nonnull(run);
    ck_assert_ptr_nonnull(own);
    two_versions(st, 100, h1, h2);
    store_close(st);

    store_options_default(&opt);
    opt.run_worker = false;
    opt.snapshot_derive = counted_table;
    opt.snapshot_derived_free = counted_table_free;
    derived_live = 0;
    ck_assert_int_eq(store_open(data_dir, &opt, &hooked), STORE_OK);
    policy_config_default(&pol);
    memset(&r, 0, sizeof(r));
    r.memory_bytes = 1000000;
    r.gflops = 10;

    ck_assert_int_eq(store_snapshot_get(hooked, "f", &snap), STORE_OK);
    ck_assert_ptr_nonnull(snap->derived);
    ck_assert_int_eq(derived_live, 1);
    ck_assert_uint_eq(snap->paused_count, 0);
    ck_assert_int_eq(decide_run(&pol, &adm, snap, &r, cands, reasons, run),
                     DECIDE_OK);
    ck_assert_ptr_null(run->table);           /* the snapshot's was used */
    ck_assert_int_eq(run->variants[run->d.chosen].version, 2);
    decide_run_free(run);
    store_snapshot_release(snap);

    /* paused v2: a view without it, and a table of the view's own */
    ck_assert_int_eq(store_version_rollout(hooked, "f", "m", 2, &pause,
                                           &before, &after),
                     STORE_OK);
    ck_assert_int_eq(store_snapshot_get(hooked, "f", &snap), STORE_OK);
    ck_assert_uint_eq(snap->paused_count, 1);
    ck_assert_int_eq(decide_run(&pol, &adm, snap, &r, cands, reasons, run),
                     DECIDE_OK);
    ck_assert_ptr_nonnull(run->table);
    ck_assert_int_eq(run->variants[run->d.chosen].version, 1);
    decide_run_free(run);
    store_snapshot_release(snap);
    store_close(hooked);
    ck_assert_int_eq(derived_live, 0);        /* freed with the snapshots */

    /* without the hook: the same decision from a table built per run */
    st = open_store(false);
    ck_assert_int_eq(store_snapshot_get(st, "f", &snap), STORE_OK);
    ck_assert_ptr_null(snap->derived);
    ck_assert_int_eq(decide_run(&pol, &adm, snap, &r, cands, reasons, own),
                     DECIDE_OK);
    ck_assert_ptr_nonnull(own->table);
    ck_assert_int_eq(own->variants[own->d.chosen].version, 1);
    decide_run_free(own);
    store_snapshot_release(snap);
    free(run);
    free(own);
    store_close(st);
}
END_TEST

START_TEST(test_decide_run_paused_and_held)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    struct proto_rollout_patch pause = {0, false, true, true};
    struct proto_variant before, after;
    const struct store_snapshot *snap = NULL;
    struct decision_run *run = calloc(1, sizeof(*run));

    ck_assert_ptr_nonnull(run);
    two_versions(st, 100, h1, h2);
    /* v2 (100 %, more accurate) wins; a v1 holder on a loaded cell keeps
     * v1 (an older version: only in snap->older). */
    decide_for(st, NULL, -1, run, &snap);
    ck_assert_int_eq(run->d.action, PROTO_ACTION_DOWNLOAD);
    ck_assert_int_eq(run->variants[run->d.chosen].version, 2);
    decide_run_free(run);
    store_snapshot_release(snap);
    decide_for(st, h1, 0.9, run, &snap);
    ck_assert_uint_eq(snap->older_count, 1);
    ck_assert(run->deferred);
    ck_assert_int_eq(run->d.action, PROTO_ACTION_KEEP);
    ck_assert_int_eq(run->variants[run->d.chosen].version, 1);
    decide_run_free(run);
    store_snapshot_release(snap);
    decide_for(st, h1, 0.5, run, &snap);
    ck_assert(!run->deferred);
    ck_assert_int_ne(run->d.action, PROTO_ACTION_KEEP);
    decide_run_free(run);
    store_snapshot_release(snap);

    /* Paused v2: new UEs get v1, its holders keep it. */
    ck_assert_int_eq(store_version_rollout(st, "f", "m", 2, &pause, &before,
                                           &after),
                     STORE_OK);
    decide_for(st, NULL, -1, run, &snap);
    ck_assert_int_eq(run->variants[run->d.chosen].version, 1);
    decide_run_free(run);
    store_snapshot_release(snap);
    decide_for(st, h2, -1, run, &snap);
    ck_assert_int_eq(run->d.action, PROTO_ACTION_KEEP);
    ck_assert_int_eq(run->variants[run->d.chosen].version, 2);
    decide_run_free(run);
    store_snapshot_release(snap);
    free(run);
    store_close(st);
}
END_TEST

/* ---- tokens and scopes ------------------------------------------------------ */

START_TEST(test_auth_tokens_file_and_scopes)
{
    char path[128], err[256];
    struct auth_tokens t;
    const struct auth_token *tok = NULL;
    FILE *f;

    memset(&t, 0, sizeof(t));
    ck_assert_int_eq(auth_check(&t, "Bearer x", AUTH_PUBLISH, &tok),
                     AUTH_NO_TOKENS);
    ck_assert_int_eq(auth_tokens_add(&t, "admin", AUTH_ADMIN,
                                     "  admin-token-0123456789\n", 25, err,
                                     sizeof(err)),
                     0);
    snprintf(path, sizeof(path), "%s/tokens", data_dir);
    f = fopen(path, "w");
    fputs("# comment\n\npub publish pub-token-0123456789\n"
          "  roll\trollout roll-token-0123456789  \n",
          f);
    fclose(f);
    ck_assert_int_eq(auth_tokens_load(&t, path, err, sizeof(err)), 0);
    ck_assert_uint_eq(t.count, 3);

    ck_assert_int_eq(auth_check(&t, NULL, AUTH_PUBLISH, &tok), AUTH_MISSING);
    ck_assert_int_eq(auth_check(&t, "Basic x", AUTH_PUBLISH, &tok),
                     AUTH_MISSING);
    ck_assert_int_eq(auth_check(&t, "Bearer nope-nope-nope-nope", AUTH_PUBLISH,
                                &tok),
                     AUTH_UNKNOWN);
    ck_assert_int_eq(auth_check(&t, "Bearer admin-token-0123456789",
                                AUTH_ROLLOUT, &tok),
                     AUTH_OK);
    ck_assert_str_eq(tok->name, "admin");
    ck_assert_int_eq(auth_check(&t, "bearer pub-token-0123456789",
                                AUTH_PUBLISH, &tok),
                     AUTH_OK);
    ck_assert_str_eq(tok->name, "pub");
    ck_assert_int_eq(auth_check(&t, "Bearer pub-token-0123456789",
                                AUTH_ROLLOUT, &tok),
                     AUTH_OUT_OF_SCOPE);
    ck_assert_int_eq(auth_check(&t, "Bearer roll-token-0123456789",
                                AUTH_ROLLOUT, &tok),
                     AUTH_OK);
    ck_assert_int_eq(auth_check(&t, "Bearer roll-token-0123456789",
                                AUTH_ADMIN, &tok),
                     AUTH_OUT_OF_SCOPE);
}
END_TEST

static const struct bad_tokens_case {
    const char *text;
    const char *want;      /* in the message */
} bad_tokens_cases[] = {
    {"pub publish\n", "NAME SCOPE TOKEN"},
    {"pub everything tok-0123456789abcdef\n", "scope"},
    {"pub publish short\n", "at least 16"},
    {"p/b publish tok-0123456789abcdef\n", "name"},
    {"a admin tok-0123456789abcdef\na admin tok-0123456789abcdeg\n",
     "twice"},
    {"a admin tok-0123456789 abcdef\n", "whitespace"},
};

START_TEST(test_auth_tokens_file_refusals)
{
    const struct bad_tokens_case *c = &bad_tokens_cases[_i];
    char path[128], err[256] = "";
    struct auth_tokens t;
    FILE *f;

    memset(&t, 0, sizeof(t));
    snprintf(path, sizeof(path), "%s/tokens", data_dir);
    f = fopen(path, "w");
    fputs(c->text, f);
    fclose(f);
    ck_assert_int_eq(auth_tokens_load(&t, path, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, c->want), "%s: %s", c->text, err);
    ck_assert_msg(strstr(err, ":1:") || strstr(err, ":2:"), "%s", err);
    ck_assert_ptr_null(strstr(err, "0123456789"));
}
END_TEST

/* ---- proto -------------------------------------------------------------------- */

static const struct time_case {
    const char *s;
    bool ok;
    int64_t want;
} time_cases[] = {
    {"1970-01-01T00:00:00Z", true, 0},
    {"2026-12-01T12:00:00Z", true, 1796126400},
    {"2026-12-01t12:00:00.250z", true, 1796126400},
    {"2026-12-01T14:00:00+02:00", true, 1796126400},
    {"2026-12-01T10:30:00-01:30", true, 1796126400},
    {"2000-02-29T00:00:00Z", true, 951782400},
    {"2026-12-01 12:00:00Z", false, 0},
    {"2026-13-01T12:00:00Z", false, 0},
    {"2026-12-01T12:00:00", false, 0},
    {"2026-12-01T12:00:00Zx", false, 0},
    {"yesterday", false, 0},
    {"", false, 0},
};

START_TEST(test_proto_time_parse_cases)
{
    const struct time_case *c = &time_cases[_i];
    int64_t t = -1;

    ck_assert_msg(proto_time_parse(c->s, &t) == c->ok, "%s", c->s);
    if (c->ok)
        ck_assert_int_eq(t, c->want);
}
END_TEST

static const struct event_case {
    const char *body;
    enum proto_status want;
    const char *field;
} event_cases[] = {
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":2,\"event\":\"installed\","
     "\"device\":{\"class\":\"c\"},\"latency_ms\":3.5,\"energy_mj\":0}",
     PROTO_OK, ""},
    {"{\"variant\":\"m\",\"version\":2,\"event\":\"installed\"}",
     PROTO_BAD_INPUT, "ue"},
    {"{\"ue\":\"u\",\"version\":2,\"event\":\"installed\"}", PROTO_BAD_INPUT,
     "variant"},
    {"{\"ue\":\"u\",\"variant\":\"M\",\"version\":2,\"event\":\"installed\"}",
     PROTO_BAD_INPUT, "variant"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"event\":\"installed\"}",
     PROTO_BAD_INPUT, "version"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":0,\"event\":\"installed\"}",
     PROTO_BAD_INPUT, "version"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":1.5,\"event\":\"installed\"}",
     PROTO_BAD_INPUT, "version"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":1}", PROTO_BAD_INPUT,
     "event"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":1,\"event\":\"boom\"}",
     PROTO_BAD_INPUT, "event"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":1,\"event\":\"installed\","
     "\"digest\":\"sha256:zz\"}",
     PROTO_BAD_INPUT, "digest"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":1,\"event\":\"installed\","
     "\"latency_ms\":0}",
     PROTO_BAD_INPUT, "latency_ms"},
    {"{\"ue\":\"u\",\"variant\":\"m\",\"version\":1,\"event\":\"installed\","
     "\"device\":{\"class\":\"a b\"}}",
     PROTO_BAD_INPUT, "device.class"},
    {"[]", PROTO_BAD_INPUT, ""},
};

START_TEST(test_proto_event_parse_cases)
{
    const struct event_case *c = &event_cases[_i];
    struct proto_limits lim;
    struct proto_event e;
    struct proto_error err;

    proto_limits_default(&lim);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(proto_event_parse(c->body, strlen(c->body), &lim, &e,
                                       &err),
                     c->want);
    if (c->want == PROTO_OK) {
        ck_assert_str_eq(e.ue, "u");
        ck_assert_int_eq(e.version, 2);
        ck_assert_int_eq(e.kind, PROTO_EVENT_INSTALLED);
        ck_assert_str_eq(e.device_class, "c");
        ck_assert(e.has_latency_ms && e.has_energy_mj);
    } else if (c->field[0]) {
        ck_assert_str_eq(err.field, c->field);
    }
}
END_TEST

START_TEST(test_proto_rollout_patch_parse)
{
    struct proto_limits lim;
    struct proto_rollout_patch p;
    struct proto_error err;
    const char *ok = "{\"rollout_percent\":25,\"paused\":false}";
    const char *bad[] = {"{}", "{\"rollout_percent\":101}",
                         "{\"rollout_percent\":2.5}", "{\"paused\":1}"};

    proto_limits_default(&lim);
    ck_assert_int_eq(proto_rollout_patch_parse(ok, strlen(ok), &lim, &p,
                                               &err),
                     PROTO_OK);
    ck_assert(p.has_rollout_percent && p.has_paused && !p.paused);
    ck_assert_uint_eq(p.rollout_percent, 25);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        ck_assert_int_eq(proto_rollout_patch_parse(bad[i], strlen(bad[i]),
                                                   &lim, &p, &err),
                         PROTO_BAD_INPUT);
}
END_TEST

static Suite *
trust_suite(void)
{
    Suite *s = suite_create("trust");
    TCase *tc = tcase_create("store");

    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_store_event_add_counts_once);
    tcase_add_test(tc, test_store_event_unverified_do_not_pause);
    tcase_add_test(tc, test_store_receipts_bind_fields);
    tcase_add_test(tc, test_store_event_pauses_at_threshold);
    tcase_add_test(tc, test_store_measured_latency);
    tcase_add_test(tc, test_store_version_rollout);
    tcase_add_test(tc, test_store_version_retire_sends_back);
    tcase_add_test(tc, test_store_variant_put_idempotent);
    tcase_add_test(tc, test_store_generation_grows_across_restarts);
    tcase_add_test(tc, test_store_audit_since);
    tcase_add_test(tc, test_decide_run_paused_and_held);
    tcase_add_test(tc, test_decide_run_snapshot_table);
    suite_add_tcase(s, tc);
    tc = tcase_create("admission");
    tcase_add_loop_test(tc, test_policy_admission_cases, 0,
                        (int)ARRAY_SIZE(admission_cases));
    suite_add_tcase(s, tc);
    tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_auth_tokens_file_and_scopes);
    tcase_add_loop_test(tc, test_auth_tokens_file_refusals, 0,
                        (int)ARRAY_SIZE(bad_tokens_cases));
    suite_add_tcase(s, tc);
    tc = tcase_create("proto");
    tcase_add_loop_test(tc, test_proto_time_parse_cases, 0,
                        (int)ARRAY_SIZE(time_cases));
    tcase_add_loop_test(tc, test_proto_event_parse_cases, 0,
                        (int)ARRAY_SIZE(event_cases));
    tcase_add_test(tc, test_proto_rollout_patch_parse);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(trust_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
