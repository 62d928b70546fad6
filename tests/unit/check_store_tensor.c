/*
 * Unit tests of the store's side of model-aware updates (store/worker.c,
 * store/catalog.c): modeld-tensor/1 deltas made beside zstd-patch ones and
 * kept only when smaller, modeld-bg/1 copies, TF.js weights through a
 * version's weights_manifest, deltas from the last K versions, on-demand
 * deltas for older ones, and the LRU bound on delta storage. Real SQLite
 * in a fresh mkdtemp directory per test; synthetic models from
 * tests/lib/tensorgen.h.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/tensor.h"
#include "store/store.h"
#include "tests/lib/fixture.h"
#include "tests/lib/tensorgen.h"

#define WAIT_MS 60000

static char data_dir[64];

static void dir_setup(void)
{
    fixture_dir_make(data_dir, sizeof(data_dir), "/tmp/modeld-st-XXXXXX");
}

static void dir_teardown(void)
{
    fixture_dir_remove(data_dir);
}

static struct store *open_with(unsigned k, uint64_t max_bytes)
{
    struct store_options opt;
    struct store *st = NULL;

    store_options_default(&opt);
    opt.delta_level = 3;
    opt.compress_level = 3;
    opt.delta_versions = k;
    opt.delta_storage_max_bytes = max_bytes;
    ck_assert_int_eq(store_open(data_dir, &opt, &st), STORE_OK);
    return st;
}

static void upload(struct store *st, const struct tg_buf *b,
                   char out_hex[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();
    struct store_upload *up = NULL;
    bool created = false;
    uint64_t size = 0;

    ck_assert_int_eq(proto_hasher_update(h, b->p, b->len), PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, out_hex), PROTO_OK);
    proto_hasher_free(h);
    ck_assert_int_eq(store_upload_begin(st, out_hex, b->len, &up), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, b->p, b->len), STORE_OK);
    ck_assert_int_eq(store_upload_finish(up, &created, &size), STORE_OK);
}

static enum store_status publish(struct store *st, const char *hex,
                                 const char *manifest_hex)
{
    struct proto_variant m;
    int64_t version = 0;

    memset(&m, 0, sizeof(m));
    snprintf(m.blob_hex, sizeof(m.blob_hex), "%s", hex);
    if (manifest_hex)
        snprintf(m.weights_manifest_hex, sizeof(m.weights_manifest_hex),
                 "%s", manifest_hex);
    m.flops = 1e6;
    m.accuracy = 0.7;
    m.rollout_percent = 100;
    return store_variant_publish(st, "fam", "m", &m, 1700000000, &version);
}

static void family(struct store *st)
{
    struct proto_family f;
    bool created;

    memset(&f, 0, sizeof(f));
    ck_assert_int_eq(store_family_put(st, "fam", &f, &created), STORE_OK);
}

static const struct proto_delta *find(const struct store_snapshot *s,
                                      const char *from, const char *to,
                                      enum proto_delta_format f)
{
    for (size_t i = 0; i < s->delta_count; i++)
        if (strcmp(s->deltas[i].from_hex, from) == 0 &&
            strcmp(s->deltas[i].to_hex, to) == 0 && s->deltas[i].format == f)
            return &s->deltas[i];
    return NULL;
}

static int mem_sink(void *ctx, const void *data, size_t len)
{
    tg_put(ctx, data, len);
    return 0;
}

/* Versions of a model, each a fine-tune (all values) of the previous. */
static void versions(size_t count, struct tg_buf *out, struct tg_buf *json)
{
    struct tg_model m = tg_model_new(64 << 10, 3);

    for (size_t v = 0; v < count; v++) {
        if (v)
            tg_finetune(&m, 1.0, 1e-3, 0, 100 + v);
        memset(&out[v], 0, sizeof(out[v]));
        if (json) {
            memset(&json[v], 0, sizeof(json[v]));
            tg_tfjs(&m, &out[v], &json[v]);
        } else {
            tg_safetensors(&m, &out[v]);
        }
    }
    tg_model_free(&m);
}

START_TEST(test_store_worker_tensor_delta_and_bg)
{
    struct store *st = open_with(4, 0);
    struct tg_buf v[2], got = { 0 };
    char h[2][PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    const struct proto_delta *d;
    unsigned char *coded;
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    versions(2, v, NULL);
    family(st);
    upload(st, &v[0], h[0]);
    upload(st, &v[1], h[1]);
    ck_assert_int_eq(publish(st, h[0], NULL), STORE_OK);
    ck_assert_int_eq(publish(st, h[1], NULL), STORE_OK);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    /* Every value moved: patch-from is no delta at all, the tensor delta
     * is, and it is the only one kept. */
    ck_assert_ptr_null(find(snap, h[0], h[1], PROTO_DELTA_ZSTD_PATCH));
    d = find(snap, h[0], h[1], PROTO_DELTA_TENSOR);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_lt(d->size_bytes, v[1].len * 7 / 10);
    ck_assert_uint_gt(snap->variants[0].bg_size_bytes, 0);
    ck_assert_uint_lt(snap->variants[0].bg_size_bytes, v[1].len);
    store_snapshot_release(snap);

    ck_assert_int_eq(store_delta_format_open(st, h[0], h[1],
                                             PROTO_DELTA_TENSOR, &fd, &size,
                                             &mtime),
                     STORE_OK);
    coded = fixture_read_fd(fd, size);
    ck_assert_int_eq(proto_tensor_apply(v[0].p, v[0].len, coded, size,
                                        mem_sink, &got),
                     PROTO_OK);
    ck_assert_uint_eq(got.len, v[1].len);
    ck_assert_mem_eq(got.p, v[1].p, got.len);
    free(coded);
    ck_assert_int_eq(store_delta_open(st, h[0], h[1], &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_blob_bg_open(st, h[1], &fd, &size, &mtime),
                     STORE_OK);
    coded = fixture_read_fd(fd, size);
    got.len = 0;
    ck_assert_int_eq(proto_tensor_apply(NULL, 0, coded, size, mem_sink,
                                        &got),
                     PROTO_OK);
    ck_assert_mem_eq(got.p, v[1].p, v[1].len);
    free(coded);
    free(got.p);
    free(v[0].p);
    free(v[1].p);
    store_close(st);
}
END_TEST

START_TEST(test_store_worker_tfjs_manifest)
{
    struct store *st = open_with(4, 0);
    struct tg_buf v[2], j[2];
    char h[2][PROTO_HEX_SIZE], jh[2][PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    struct tg_buf never = { (unsigned char *)"{}", 2, 2 };
    char never_hex[PROTO_HEX_SIZE];

    versions(2, v, j);
    family(st);
    for (int i = 0; i < 2; i++) {
        upload(st, &v[i], h[i]);
        upload(st, &j[i], jh[i]);
    }
    /* A manifest that was never uploaded: refused, like a missing blob. */
    upload(st, &never, never_hex);
    never_hex[0] = never_hex[0] == 'a' ? 'b' : 'a';
    ck_assert_int_eq(publish(st, h[0], never_hex), STORE_BLOB_MISSING);
    ck_assert_int_eq(publish(st, h[0], jh[0]), STORE_OK);
    ck_assert_int_eq(publish(st, h[1], jh[1]), STORE_OK);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_str_eq(snap->variants[0].weights_manifest_hex, jh[1]);
    ck_assert_ptr_nonnull(find(snap, h[0], h[1], PROTO_DELTA_TENSOR));
    store_snapshot_release(snap);
    for (int i = 0; i < 2; i++) {
        free(v[i].p);
        free(j[i].p);
    }
    store_close(st);
}
END_TEST

START_TEST(test_store_delta_versions_and_on_demand)
{
    struct store *st = open_with(2, 0);
    struct tg_buf v[5];
    char h[5][PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    struct store_stats stats;
    bool pending = false;

    versions(5, v, NULL);
    family(st);
    for (int i = 0; i < 5; i++) {
        upload(st, &v[i], h[i]);
        ck_assert_int_eq(publish(st, h[i], NULL), STORE_OK);
    }
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    /* K = 2: into v5 from v4 and v3, not from v2 or v1. */
    ck_assert_ptr_nonnull(find(snap, h[3], h[4], PROTO_DELTA_TENSOR));
    ck_assert_ptr_nonnull(find(snap, h[2], h[4], PROTO_DELTA_TENSOR));
    ck_assert_ptr_null(find(snap, h[1], h[4], PROTO_DELTA_TENSOR));
    ck_assert_ptr_null(find(snap, h[0], h[4], PROTO_DELTA_TENSOR));
    store_snapshot_release(snap);

    ck_assert_int_eq(store_delta_request(st, h[0], h[4], &pending),
                     STORE_OK);
    ck_assert(pending);
    /* Asking twice queues once. */
    ck_assert_int_eq(store_delta_request(st, h[0], h[4], &pending),
                     STORE_OK);
    /* A digest of no version of the family: nothing queued. */
    ck_assert_int_eq(store_delta_request(st, h[4], h[4], &pending),
                     STORE_OK);
    ck_assert(!pending);
    {
        char other[PROTO_HEX_SIZE];

        memset(other, 'e', PROTO_HEX_LEN);
        other[PROTO_HEX_LEN] = '\0';
        ck_assert_int_eq(store_delta_request(st, other, h[4], &pending),
                         STORE_OK);
        ck_assert(!pending);
    }
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_ptr_nonnull(find(snap, h[0], h[4], PROTO_DELTA_TENSOR));
    store_snapshot_release(snap);
    ck_assert_int_eq(store_delta_request(st, h[0], h[4], &pending),
                     STORE_OK);
    ck_assert(!pending);          /* made */
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_on_demand, 1);
    for (int i = 0; i < 5; i++)
        free(v[i].p);
    store_close(st);
}
END_TEST

/* A bound below one delta: each new delta evicts every other one, and the
 * newest always stays. */
START_TEST(test_store_delta_storage_bound)
{
    struct store *st = open_with(4, 1);
    struct tg_buf v[4];
    char h[4][PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    struct store_stats stats;
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    versions(4, v, NULL);
    family(st);
    for (int i = 0; i < 4; i++) {
        upload(st, &v[i], h[i]);
        ck_assert_int_eq(publish(st, h[i], NULL), STORE_OK);
        ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    }
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_ready, 1);
    ck_assert_uint_ge(stats.deltas_evicted, 5); /* 6 made, 1 left */
    ck_assert_uint_gt(stats.delta_storage_bytes, 0);
    ck_assert_uint_eq(stats.delta_storage_max_bytes, 1);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->delta_count, 1);
    /* The file of an evicted delta is gone. */
    ck_assert_ptr_null(find(snap, h[0], h[1], PROTO_DELTA_TENSOR));
    ck_assert_int_eq(store_delta_format_open(st, h[0], h[1],
                                             PROTO_DELTA_TENSOR, &fd, &size,
                                             &mtime),
                     STORE_NOT_FOUND);
    store_snapshot_release(snap);
    for (int i = 0; i < 4; i++)
        free(v[i].p);
    store_close(st);
}
END_TEST

/*
 * The bound drops the least recently served delta first, not the oldest:
 * with d01 served after d12 was made, a new delta that overflows the bound
 * evicts d12 and keeps d01. last_served_s has a resolution of a second,
 * so the serve waits (bounded) for the clock to pass d12's creation.
 */
START_TEST(test_store_delta_storage_lru_by_last_served)
{
    struct store *st = open_with(1, 0);
    struct tg_buf v[4];
    char h[4][PROTO_HEX_SIZE];
    const struct store_snapshot *snap = NULL;
    struct store_stats stats;
    uint64_t size = 0, two_deltas;
    int64_t mtime = 0;
    time_t made;
    int fd = -1;

    versions(4, v, NULL);
    family(st);
    for (int i = 0; i < 3; i++) {
        upload(st, &v[i], h[i]);
        ck_assert_int_eq(publish(st, h[i], NULL), STORE_OK);
    }
    upload(st, &v[3], h[3]);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    made = time(NULL);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_ready, 2);           /* d01, d12 */
    two_deltas = stats.delta_storage_bytes;
    store_close(st);

    for (int i = 0; i < 300 && time(NULL) <= made; i++)
        usleep(10000);
    ck_assert_int_gt(time(NULL), made);
    /* Room for two and a half deltas of this size. */
    st = open_with(1, two_deltas + two_deltas / 4);
    ck_assert_int_eq(store_delta_format_open(st, h[0], h[1],
                                             PROTO_DELTA_TENSOR, &fd, &size,
                                             &mtime),
                     STORE_OK);
    close(fd);
    ck_assert_int_eq(publish(st, h[3], NULL), STORE_OK);   /* makes d23 */
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_evicted, 1);
    ck_assert_uint_eq(stats.deltas_ready, 2);
    /* The served d01 stays, the unserved d12 is gone (row and file). */
    ck_assert_int_eq(store_delta_format_open(st, h[0], h[1],
                                             PROTO_DELTA_TENSOR, &fd, &size,
                                             &mtime),
                     STORE_OK);
    close(fd);
    ck_assert_int_eq(store_delta_format_open(st, h[1], h[2],
                                             PROTO_DELTA_TENSOR, &fd, &size,
                                             &mtime),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_ptr_nonnull(find(snap, h[2], h[3], PROTO_DELTA_TENSOR));
    store_snapshot_release(snap);
    for (int i = 0; i < 4; i++)
        free(v[i].p);
    store_close(st);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("store_tensor");
    TCase *tc = tcase_create("worker");

    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_store_worker_tensor_delta_and_bg);
    tcase_add_test(tc, test_store_worker_tfjs_manifest);
    tcase_add_test(tc, test_store_delta_versions_and_on_demand);
    tcase_add_test(tc, test_store_delta_storage_bound);
    tcase_add_test(tc, test_store_delta_storage_lru_by_last_served);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
