/*
 * Check suite for `modeld demo` (server/cmd_demo.c): runs the command into
 * a fresh mkdtemp directory at a tiny scale and reads the result back
 * through the store API: the families and variants of Table 6.1.1-1, blob
 * sizes, the retrained mobilenet's delta, realistic compressibility, the
 * token file, idempotence, and the selections the demo is meant to show.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "policy/policy.h"
#include "proto/proto.h"
#include "server/commands.h"
#include "store/store.h"
#include "tests/lib/fixture.h"

#define SCALE "0.001"

/*
 * Each TCase works under its own base directory, made and removed by an
 * unchecked fixture in the parent, so nothing is left behind even when a
 * forked test fails before its teardown. The read-only tests share one demo
 * run (base/shared); the others get a fresh base/t.XXXXXX each.
 */
static char base_dir[64];
static char shared_dir[96];
static int shared_rc = -1;
static char data_dir[96];

static const struct want_variant {
    const char *family;
    const char *name;
    uint64_t memory_bytes;   /* footprint from the table */
    uint64_t size_bytes;     /* footprint x 0.001, whole floats */
    int64_t version;
} want_variants[] = {
    { "image-classification", "mobilenet-v1-1.0-224", 13200000, 13200, 2 },
    { "image-classification", "efficientnet-b0", 21200000, 21200, 1 },
    { "image-classification", "densenet-169", 56000000, 56000, 1 },
    { "image-classification", "inception-v3", 96000000, 96000, 1 },
    { "image-classification", "resnet-50", 104000000, 104000, 1 },
    { "image-classification", "vgg-16", 552000000, 552000, 1 },
    { "object-detection", "ssd300-mobilenet", 27200000, 27200, 1 },
    { "object-detection", "efficientdet-d0", 15600000, 15600, 1 },
    { "object-detection", "fasterrcnn-mobilenet", 24400000, 24400, 1 },
    { "object-detection", "ssd300-deeplab", 132400000, 132400, 1 },
    { "object-detection", "fasterrcnn-vgg", 554000000, 554000, 1 },
    { "object-detection", "yolov3", 122000000, 122000, 1 },
};

static const char *const family_names[] = { "image-classification",
                                            "object-detection" };

static int
run_demo(char *dir, char *token_file)
{
    char *argv[] = { "demo", "--data", dir, "--scale", SCALE,
                     "--token-file", token_file, NULL };
    int argc = token_file ? 7 : 5;

    return cmd_demo(argc, argv);
}

static void
base_setup(void)
{
    snprintf(base_dir, sizeof(base_dir), "/tmp/check_demo.XXXXXX");
    if (!mkdtemp(base_dir))
        base_dir[0] = '\0';
}

static void
base_teardown(void)
{
    if (base_dir[0])
        fixture_dir_remove(base_dir);
}

static void
shared_setup(void)
{
    base_setup();
    snprintf(shared_dir, sizeof(shared_dir), "%s/shared", base_dir);
    if (base_dir[0] && mkdir(shared_dir, 0700) == 0)
        shared_rc = run_demo(shared_dir, NULL);
}

static void
setup(void)
{
    ck_assert(base_dir[0] != '\0');
    snprintf(data_dir, sizeof(data_dir), "%s/t.XXXXXX", base_dir);
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
}

static void
teardown(void)
{
    fixture_dir_remove(data_dir);
}

static struct store *
open_store(const char *dir)
{
    struct store_options opt;
    struct store *st = NULL;

    store_options_default(&opt);
    opt.run_worker = false;
    ck_assert_int_eq(store_open(dir, &opt, &st), STORE_OK);
    return st;
}

/* The shared demo run's store and its image-classification snapshot. */
static struct store *
open_shared_classification(const struct store_snapshot **out_snap)
{
    struct store *st;

    ck_assert_int_eq(shared_rc, 0);
    st = open_store(shared_dir);
    ck_assert_int_eq(
        store_snapshot_get(st, "image-classification", out_snap), STORE_OK);
    return st;
}

static const struct proto_variant *
find_latest(const struct store_snapshot *snap, const char *name)
{
    for (size_t i = 0; i < snap->variant_count; i++)
        if (snap->latest[i] && strcmp(snap->variants[i].name, name) == 0)
            return &snap->variants[i];
    return NULL;
}

static unsigned char *
read_blob(struct store *st, const char *hex, uint64_t *out_size)
{
    int fd = -1;
    int64_t mtime = 0;

    ck_assert_int_eq(store_blob_open(st, hex, &fd, out_size, &mtime),
                     STORE_OK);
    return fixture_read_fd(fd, *out_size);
}

static int
hash_sink(void *ctx, const void *data, size_t len)
{
    return proto_hasher_update(ctx, data, len) == PROTO_OK ? 0 : 1;
}

/* Number of regular files under dir/sub. */
static size_t file_count_result;

static int
count_entry(const char *path, const struct stat *sb, int flag,
            struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(sb->st_mode))
        file_count_result++;
    return 0;
}

static size_t
file_count(const char *dir, const char *sub)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    file_count_result = 0;
    nftw(path, count_entry, 16, FTW_PHYS);
    return file_count_result;
}

/* ---- usage --------------------------------------------------------------- */

static const struct usage_case {
    char *args[6];
    int want;
} usage_cases[] = {
    { { "demo", "--help" }, 0 },
    { { "demo", "-h" }, 0 },
    { { "demo" }, 2 },
    { { "demo", "--data" }, 2 },
    { { "demo", "--data", "/nonexistent/x", "--bogus" }, 2 },
    { { "demo", "--data", "/nonexistent/x", "--scale", "0" }, 2 },
    { { "demo", "--data", "/nonexistent/x", "--scale", "-1" }, 2 },
    { { "demo", "--data", "/nonexistent/x", "--scale", "abc" }, 2 },
    { { "demo", "--data", "/nonexistent/x", "--scale", "1e9" }, 2 },
    { { "demo", "--data=", "--scale", "0.1" }, 2 },
};

START_TEST(test_cmd_demo_usage)
{
    const struct usage_case *c = &usage_cases[_i];
    char *argv[7] = { NULL };
    int argc = 0;

    while (argc < 6 && c->args[argc]) {
        argv[argc] = c->args[argc];
        argc++;
    }
    ck_assert_int_eq(cmd_demo(argc, argv), c->want);
}
END_TEST

/* ---- the catalog --------------------------------------------------------- */

START_TEST(test_cmd_demo_catalog)
{
    struct store *st;
    struct proto_family *fams = NULL;
    size_t fam_count = 0;

    ck_assert_int_eq(shared_rc, 0);
    st = open_store(shared_dir);

    ck_assert_int_eq(store_family_list(st, &fams, &fam_count), STORE_OK);
    ck_assert_uint_eq(fam_count, 2);
    for (size_t f = 0; f < fam_count; f++) {
        ck_assert(strcmp(fams[f].name, family_names[0]) == 0 ||
                  strcmp(fams[f].name, family_names[1]) == 0);
        ck_assert_str_eq(fams[f].task, fams[f].name);
        ck_assert_uint_eq(fams[f].variant_count, 6);
    }
    free(fams);

    for (size_t f = 0; f < ARRAY_SIZE(family_names); f++) {
        const struct store_snapshot *snap = NULL;
        size_t latest_count = 0;

        ck_assert_int_eq(store_snapshot_get(st, family_names[f], &snap),
                         STORE_OK);
        for (size_t i = 0; i < snap->variant_count; i++)
            latest_count += snap->latest[i];
        ck_assert_uint_eq(latest_count, 6);
        for (size_t w = 0; w < ARRAY_SIZE(want_variants); w++) {
            const struct want_variant *wv = &want_variants[w];
            const struct proto_variant *v;
            unsigned char *bytes;
            uint64_t size = 0;

            if (strcmp(wv->family, family_names[f]) != 0)
                continue;
            v = find_latest(snap, wv->name);
            ck_assert_msg(v != NULL, "%s missing", wv->name);
            ck_assert_int_eq(v->version, wv->version);
            ck_assert_uint_eq(v->size_bytes, wv->size_bytes);
            ck_assert_uint_eq(v->memory_bytes, wv->memory_bytes);
            ck_assert_uint_eq(v->rollout_percent, 100);
            ck_assert(v->flops > 0 && v->accuracy > 0 && v->accuracy < 1);
            ck_assert(strcmp(v->format, "tflite") == 0 ||
                      strcmp(v->format, "onnx") == 0);
            ck_assert_uint_ge(v->technique_count, 1);
            ck_assert_uint_eq(v->accelerator_count, 0);
            bytes = read_blob(st, v->blob_hex, &size);
            ck_assert_uint_eq(size, wv->size_bytes);
            free(bytes);
        }
        store_snapshot_release(snap);
    }
    store_close(st);
}
END_TEST

START_TEST(test_cmd_demo_extras)
{
    const struct store_snapshot *snap = NULL;
    const struct proto_variant *v;
    struct store *st;

    st = open_shared_classification(&snap);
    v = find_latest(snap, "vgg-16");
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(v->exit_count, 2);
    ck_assert(v->exits[0].flops < v->exits[1].flops);
    ck_assert(v->exits[1].flops < v->flops);
    ck_assert(v->exits[1].accuracy < v->accuracy);
    v = find_latest(snap, "mobilenet-v1-1.0-224");
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(v->latency_count, 1);
    ck_assert_str_eq(v->latency_ms[0].device_class, "npu-class-a");
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

/* The retrained mobilenet: v2's delta from v1 is small and rebuilds v2. */
START_TEST(test_cmd_demo_delta)
{
    const struct store_snapshot *snap = NULL;
    const struct proto_variant *v2;
    const struct proto_delta *d = NULL;
    struct store *st;
    struct proto_hasher *h;
    unsigned char *old_bytes, *new_bytes, *delta;
    uint64_t old_size = 0, new_size = 0, delta_size = 0;
    size_t same = 0;
    int fd = -1;
    int64_t mtime = 0;
    char got_hex[PROTO_HEX_SIZE];

    st = open_shared_classification(&snap);
    v2 = find_latest(snap, "mobilenet-v1-1.0-224");
    ck_assert_ptr_nonnull(v2);
    ck_assert_int_eq(v2->version, 2);
    for (size_t i = 0; i < snap->delta_count; i++)
        if (strcmp(snap->deltas[i].to_hex, v2->blob_hex) == 0)
            d = &snap->deltas[i];
    ck_assert_msg(d != NULL, "no ready delta to mobilenet v2");
    ck_assert_str_ne(d->from_hex, v2->blob_hex);
    ck_assert_uint_lt(d->size_bytes * 4, v2->size_bytes);

    /* v1 is the same size and differs in a few percent of its bytes. */
    old_bytes = read_blob(st, d->from_hex, &old_size);
    new_bytes = read_blob(st, v2->blob_hex, &new_size);
    ck_assert_uint_eq(old_size, new_size);
    for (uint64_t i = 0; i < old_size; i++)
        same += old_bytes[i] == new_bytes[i];
    ck_assert_uint_lt(same, old_size);
    ck_assert_uint_gt(same * 100, old_size * 90);

    ck_assert_int_eq(store_delta_open(st, d->from_hex, v2->blob_hex, &fd,
                                      &delta_size, &mtime),
                     STORE_OK);
    ck_assert_uint_eq(delta_size, d->size_bytes);
    delta = fixture_read_fd(fd, delta_size);
    h = proto_hasher_new();
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(proto_delta_apply(old_bytes, old_size, delta, delta_size,
                                       hash_sink, h),
                     PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, got_hex), PROTO_OK);
    ck_assert_str_eq(got_hex, v2->blob_hex);

    proto_hasher_free(h);
    free(delta);
    free(new_bytes);
    free(old_bytes);
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

/* Pseudo-weights compress like real ones: a few percent, not 90%. */
START_TEST(test_cmd_demo_compressibility)
{
    const struct store_snapshot *snap = NULL;
    const struct proto_variant *v;
    struct store *st;
    unsigned char *bytes;
    void *out;
    uint64_t size = 0;
    size_t bound, packed;

    st = open_shared_classification(&snap);
    v = find_latest(snap, "vgg-16");
    ck_assert_ptr_nonnull(v);
    bytes = read_blob(st, v->blob_hex, &size);
    bound = ZSTD_compressBound(size);
    out = malloc(bound);
    ck_assert_ptr_nonnull(out);
    packed = ZSTD_compress(out, bound, bytes, size, 19);
    ck_assert(!ZSTD_isError(packed));
    ck_assert_msg(packed * 100 > size * 80 && packed * 100 < size * 98,
                  "zstd -19: %zu of %llu bytes", packed,
                  (unsigned long long)size);
    free(out);
    free(bytes);
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

/* ---- token file and idempotence ------------------------------------------ */

static void
read_token(const char *path, char *out, size_t out_size)
{
    struct stat sb;
    FILE *f;
    size_t n;

    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0600);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(out, 1, out_size - 1, f);
    fclose(f);
    out[n] = '\0';
    ck_assert_uint_eq(n, 65);
    ck_assert(proto_hex_is_valid(out, 64));
    ck_assert_int_eq(out[64], '\n');
}

struct catalog_state {
    char hex[ARRAY_SIZE(want_variants)][PROTO_HEX_SIZE];
    int64_t version[ARRAY_SIZE(want_variants)];
    size_t delta_count;
};

static void
catalog_state_get(const char *dir, struct catalog_state *out)
{
    struct store *st = open_store(dir);

    memset(out, 0, sizeof(*out));
    for (size_t w = 0; w < ARRAY_SIZE(want_variants); w++) {
        const struct store_snapshot *snap = NULL;
        const struct proto_variant *v;

        ck_assert_int_eq(
            store_snapshot_get(st, want_variants[w].family, &snap), STORE_OK);
        v = find_latest(snap, want_variants[w].name);
        ck_assert_ptr_nonnull(v);
        memcpy(out->hex[w], v->blob_hex, PROTO_HEX_SIZE);
        out->version[w] = v->version;
        if (w == 0)
            out->delta_count = snap->delta_count;
        store_snapshot_release(snap);
    }
    store_close(st);
}

START_TEST(test_cmd_demo_idempotent)
{
    char token_path[192], other_dir[128], token1[80], token2[80];
    struct catalog_state first, second, other;
    size_t blobs, deltas;

    snprintf(token_path, sizeof(token_path), "%s/admin.token", data_dir);
    ck_assert_int_eq(run_demo(data_dir, token_path), 0);
    read_token(token_path, token1, sizeof(token1));
    catalog_state_get(data_dir, &first);
    blobs = file_count(data_dir, "blobs");
    deltas = file_count(data_dir, "deltas");
    ck_assert_uint_ge(blobs, ARRAY_SIZE(want_variants) + 1);
    ck_assert_uint_ge(deltas, 1);

    /* Again: nothing new, the token is kept. */
    ck_assert_int_eq(run_demo(data_dir, token_path), 0);
    read_token(token_path, token2, sizeof(token2));
    ck_assert_str_eq(token1, token2);
    catalog_state_get(data_dir, &second);
    ck_assert_mem_eq(&first, &second, sizeof(first));
    ck_assert_uint_eq(file_count(data_dir, "blobs"), blobs);
    ck_assert_uint_eq(file_count(data_dir, "deltas"), deltas);

    /* Elsewhere: the same bytes (deterministic), a different token. */
    snprintf(other_dir, sizeof(other_dir), "%s/other", data_dir);
    snprintf(token_path, sizeof(token_path), "%s/admin.token", other_dir);
    ck_assert_int_eq(mkdir(other_dir, 0700), 0);
    ck_assert_int_eq(run_demo(other_dir, token_path), 0);
    read_token(token_path, token2, sizeof(token2));
    ck_assert_str_ne(token1, token2);
    catalog_state_get(other_dir, &other);
    ck_assert_mem_eq(first.hex, other.hex, sizeof(first.hex));
}
END_TEST

/* ---- what the demo is for ------------------------------------------------ */

static const struct select_case {
    uint64_t memory_bytes;
    double gflops;
    double max_latency_ms;          /* 0: none */
    enum proto_action want_action;
    const char *want_variant;       /* NULL with PROTO_ACTION_NONE */
} select_cases[] = {
    { 60000000, 100, 0, PROTO_ACTION_DOWNLOAD, "efficientnet-b0" },
    { 1000000000, 100, 100, PROTO_ACTION_DOWNLOAD, "inception-v3" },
    { 10000000, 100, 0, PROTO_ACTION_NONE, NULL },
};

START_TEST(test_cmd_demo_selects)
{
    struct store *st;
    const struct select_case *c = &select_cases[_i];
    const struct store_snapshot *snap = NULL;
    struct policy_config cfg;
    struct policy_input in;
    struct proto_report report;
    struct proto_decision dec;
    struct proto_candidate *cands;
    struct proto_reasons *reasons;
    void *table;

    st = open_shared_classification(&snap);
    policy_config_default(&cfg);
    in = (struct policy_input){ .family = "image-classification",
                                .variants = snap->variants,
                                .variant_count = snap->variant_count,
                                .deltas = snap->deltas,
                                .delta_count = snap->delta_count };
    memset(&report, 0, sizeof(report));
    report.memory_bytes = c->memory_bytes;
    report.gflops = c->gflops;
    report.max_latency_ms = c->max_latency_ms;
    report.has_max_latency_ms = c->max_latency_ms > 0;
    cands = calloc(snap->variant_count, sizeof(*cands));
    ck_assert_ptr_nonnull(cands);
    reasons = calloc(snap->variant_count, sizeof(*reasons));
    ck_assert_ptr_nonnull(reasons);
    table = malloc(policy_table_size(&in));
    ck_assert_ptr_nonnull(table);
    in.table = policy_table_build(&in, table, policy_table_size(&in));
    ck_assert_ptr_nonnull(in.table);
    memset(&dec, 0, sizeof(dec));
    dec.candidates = cands;
    dec.candidate_reasons = reasons;
    ck_assert_int_eq(policy_select(&cfg, &in, &report, &dec), POLICY_OK);
    ck_assert_int_eq(dec.action, c->want_action);
    if (c->want_variant) {
        ck_assert_str_eq(snap->variants[dec.chosen].name, c->want_variant);
        ck_assert(!dec.degraded);
    }
    free(cands);
    free(reasons);
    free(table);
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

static Suite *
demo_suite(void)
{
    Suite *s = suite_create("demo");
    TCase *tc;

    tc = tcase_create("usage");
    tcase_add_loop_test(tc, test_cmd_demo_usage, 0, ARRAY_SIZE(usage_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("catalog");
    tcase_add_unchecked_fixture(tc, shared_setup, base_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cmd_demo_catalog);
    tcase_add_test(tc, test_cmd_demo_extras);
    tcase_add_test(tc, test_cmd_demo_delta);
    tcase_add_test(tc, test_cmd_demo_compressibility);
    tcase_add_loop_test(tc, test_cmd_demo_selects, 0,
                        ARRAY_SIZE(select_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("rerun");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cmd_demo_idempotent);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(demo_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
