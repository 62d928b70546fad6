/*
 * Unit tests of store/: a fresh data directory per test (checked fixture),
 * the real SQLite and the real filesystem. sqlite3.h is included only to
 * build old catalogs for the migration tests; zstd.h only to check that a
 * compressed copy decompresses to the blob; store/internal.h only to hold
 * the writer (its mutex and a write transaction) in the reads tests.
 *
 * With MODELD_TEST_CATALOG=postgresql://... (tests/pg/run.sh starts a
 * throw-away server and sets it) the same suite runs on the PostgreSQL
 * catalog: each test starts from an empty schema (libpq is used only for
 * that), and the tests of SQLite's own file and migrations are left out.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <zstd.h>

#include "proto/proto.h"
#include "store/internal.h"   /* the writer's mutex, for the reads tests */
#include "store/store.h"
#include "tests/lib/fixture.h"

#define BLOB_FLOATS (256 * 1024)          /* 1 MiB of float32 */
#define WAIT_MS 60000
#define READERS 3
#define WRITES 40

static char data_dir[64];
static const char *catalog_url;   /* NULL: SQLite */

/* An empty catalog schema on the PostgreSQL server. */
static void pg_reset(void)
{
    PGconn *c = PQconnectdb(catalog_url);
    PGresult *r;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PostgreSQL: %s",
                  PQerrorMessage(c));
    r = PQexec(c, "SET client_min_messages = warning;"
                  "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "reset: %s",
                  PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static void dir_setup(void)
{
    fixture_dir_make(data_dir, sizeof(data_dir), "/tmp/check_store.XXXXXX");
    if (catalog_url)
        pg_reset();
}

/* The defaults, on the catalog under test. */
static void test_options(struct store_options *opt)
{
    store_options_default(opt);
    if (catalog_url)
        snprintf(opt->catalog_url, sizeof(opt->catalog_url), "%s",
                 catalog_url);
}

static void dir_teardown(void)
{
    fixture_dir_remove(data_dir);
}

/* ---- helpers ------------------------------------------------------------- */

static struct store *open_store(bool worker)
{
    struct store_options opt;
    struct store *st = NULL;

    test_options(&opt);
    opt.run_worker = worker;
    opt.delta_level = 3;
    opt.compress_level = 3;
    ck_assert_int_eq(store_open(data_dir, &opt, &st), STORE_OK);
    ck_assert_ptr_nonnull(st);
    return st;
}

static void path_in(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/%s", data_dir, rel);
}

/* Regular files under data_dir/rel, recursively. */
static size_t count_files(const char *rel)
{
    char path[512];
    size_t n = 0;
    struct dirent *de;
    DIR *d;

    path_in(path, sizeof(path), rel);
    d = opendir(path);
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char sub[512];
        char full[1024];
        struct stat sb;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
        path_in(full, sizeof(full), sub);
        if (lstat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            n += count_files(sub);
        else
            n++;
    }
    closedir(d);
    return n;
}

static void hex_of(const void *data, size_t len, char out[PROTO_HEX_SIZE])
{
    struct proto_hasher *h = proto_hasher_new();

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(proto_hasher_update(h, data, len), PROTO_OK);
    ck_assert_int_eq(proto_hasher_final(h, out), PROTO_OK);
    proto_hasher_free(h);
}

/* Uploads data in 64 KiB pieces; returns created. */
static bool upload(struct store *st, const void *data, size_t len,
                   char out_hex[PROTO_HEX_SIZE])
{
    const unsigned char *p = data;
    struct store_upload *up = NULL;
    bool created = false;
    uint64_t size = 0;

    hex_of(data, len, out_hex);
    ck_assert_int_eq(store_upload_begin(st, out_hex, len, &up), STORE_OK);
    for (size_t off = 0; off < len; off += 65536) {
        size_t n = len - off < 65536 ? len - off : 65536;

        ck_assert_int_eq(store_upload_write(up, p + off, n), STORE_OK);
    }
    ck_assert_int_eq(store_upload_finish(up, &created, &size), STORE_OK);
    ck_assert_uint_eq(size, len);
    return created;
}

static void upload_text(struct store *st, const char *text,
                        char out_hex[PROTO_HEX_SIZE])
{
    (void)upload(st, text, strlen(text), out_hex);
}

static void meta_init(struct proto_variant *m, const char *hex,
                      unsigned rollout)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->blob_hex, sizeof(m->blob_hex), "%s", hex);
    m->flops = 2.8e8;
    m->accuracy = 0.7;
    m->rollout_percent = rollout;
}

static void put_family(struct store *st, const char *name)
{
    struct proto_family f;
    bool created = false;

    memset(&f, 0, sizeof(f));
    snprintf(f.task, sizeof(f.task), "task of %s", name);
    ck_assert_int_eq(store_family_put(st, name, &f, &created), STORE_OK);
}

static int64_t publish(struct store *st, const char *family,
                       const char *variant, const char *hex,
                       unsigned rollout)
{
    struct proto_variant m;
    int64_t version = 0;

    meta_init(&m, hex, rollout);
    ck_assert_int_eq(
        store_variant_publish(st, family, variant, &m, 1700000000, &version),
        STORE_OK);
    return version;
}

static uint64_t generation_of(struct store *st)
{
    struct store_stats s;

    store_stats_get(st, &s);
    return s.generation;
}

/* xorshift: deterministic pseudo-random data. */
static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Pseudo-weights: float32 in [-1, 1). */
static float *weights_new(uint32_t seed)
{
    float *w = malloc(BLOB_FLOATS * sizeof(*w));

    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < BLOB_FLOATS; i++)
        w[i] = (float)((double)rng_next(&seed) / 2147483648.0 - 1.0);
    return w;
}

static unsigned char *random_bytes(size_t len, uint32_t seed)
{
    unsigned char *b = malloc(len);

    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(rng_next(&seed) >> 24);
    return b;
}

struct membuf {
    unsigned char *data;
    size_t len;
    size_t cap;
};

static int membuf_sink(void *ctx, const void *data, size_t len)
{
    struct membuf *b = ctx;

    if (b->len + len > b->cap)
        return 1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static const struct proto_delta *find_delta(const struct store_snapshot *s,
                                            const char *from,
                                            const char *to)
{
    for (size_t i = 0; i < s->delta_count; i++)
        if (strcmp(s->deltas[i].from_hex, from) == 0 &&
            strcmp(s->deltas[i].to_hex, to) == 0)
            return &s->deltas[i];
    return NULL;
}

/* ---- open and migrations ------------------------------------------------- */

START_TEST(test_store_open_reopen_keeps_data)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    struct proto_family *list = NULL;
    size_t count = 0;
    char hex[PROTO_HEX_SIZE];
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    put_family(st, "fam");
    upload_text(st, "model bytes", hex);
    ck_assert_int_eq(publish(st, "fam", "small", hex, 100), 1);
    store_close(st);

    st = open_store(false);
    ck_assert_int_eq(store_family_list(st, &list, &count), STORE_OK);
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(list[0].name, "fam");
    ck_assert_str_eq(list[0].task, "task of fam");
    ck_assert_uint_eq(list[0].variant_count, 1);
    free(list);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 1);
    ck_assert_str_eq(snap->variants[0].blob_hex, hex);
    store_snapshot_release(snap);
    ck_assert_int_eq(store_blob_open(st, hex, &fd, &size, &mtime), STORE_OK);
    ck_assert_uint_eq(size, strlen("model bytes"));
    ck_assert_int_gt(mtime, 0);
    close(fd);
    /* The next version continues from the stored one. */
    ck_assert_int_eq(publish(st, "fam", "small", hex, 100), 2);
    store_close(st);
}
END_TEST

static int64_t user_version(void)
{
    char path[512];
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v = -1;

    path_in(path, sizeof(path), "catalog.db");
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL),
        SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void make_old_db(const char *sql)
{
    char path[512];
    sqlite3 *db = NULL;

    path_in(path, sizeof(path), "catalog.db");
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A catalog the store then has to migrate and use. */
static void check_migrated(void)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    char hex[PROTO_HEX_SIZE];

    ck_assert_int_ge(user_version(), 1);
    put_family(st, "fam");
    upload_text(st, "after migration", hex);
    ck_assert_int_eq(publish(st, "fam", "v", hex, 100), 1);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 1);
    store_snapshot_release(snap);
    store_close(st);
    /* And opening the migrated catalog again changes nothing. */
    st = open_store(false);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 1);
    store_snapshot_release(snap);
    store_close(st);
}

/* One store per data directory: a second open (another daemon) would
 * empty tmp/ under the first one's uploads. */
START_TEST(test_store_open_refuses_a_second_opener)
{
    struct store *st = open_store(false);
    struct store *second = NULL;
    struct store_options opt;

    test_options(&opt);
    opt.run_worker = false;
    ck_assert_int_eq(store_open(data_dir, &opt, &second), STORE_IO_ERROR);
    ck_assert_ptr_null(second);
    ck_assert_ptr_nonnull(strstr(store_errmsg(st), "in use"));
    store_close(st);
    ck_assert_int_eq(store_open(data_dir, &opt, &second), STORE_OK);
    store_close(second);
}
END_TEST

START_TEST(test_store_open_migrates_empty_file)
{
    char path[512];
    int fd;

    path_in(path, sizeof(path), "catalog.db");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    ck_assert_int_ge(fd, 0);
    close(fd);
    check_migrated();
}
END_TEST

START_TEST(test_store_open_migrates_version_zero)
{
    make_old_db("CREATE TABLE t (x); DROP TABLE t; PRAGMA user_version = 0;");
    ck_assert_int_eq(user_version(), 0);
    check_migrated();
}
END_TEST

START_TEST(test_store_open_newer_schema_refused)
{
    struct store *st = NULL;

    make_old_db("PRAGMA user_version = 999;");
    ck_assert_int_eq(store_open(data_dir, NULL, &st), STORE_DB_ERROR);
    ck_assert_ptr_null(st);
    ck_assert_ptr_nonnull(strstr(store_errmsg(NULL), "999"));
    ck_assert_int_eq(user_version(), 999);
}
END_TEST

START_TEST(test_store_open_cleans_tmp)
{
    char path[512];
    struct store *st;
    int fd;

    path_in(path, sizeof(path), "tmp");
    ck_assert_int_eq(mkdir(path, 0750), 0);
    path_in(path, sizeof(path), "tmp/upload-crashed");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "half", 4), 4);
    close(fd);
    path_in(path, sizeof(path), "tmp/empty-dir");
    ck_assert_int_eq(mkdir(path, 0750), 0);
    path_in(path, sizeof(path), "tmp/upload-crashed");
    ck_assert_uint_eq(count_files("tmp"), 1);
    st = open_store(false);
    ck_assert_uint_eq(count_files("tmp"), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    store_close(st);
}
END_TEST

/* ---- families ------------------------------------------------------------ */

START_TEST(test_store_family_lifecycle)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    struct proto_family f;
    struct proto_family *list = NULL;
    size_t count = 9;
    bool created = false;

    memset(&f, 0, sizeof(f));
    snprintf(f.task, sizeof(f.task), "classification");
    snprintf(f.description, sizeof(f.description), "first");
    ck_assert_int_eq(store_family_put(st, "b-fam", &f, &created), STORE_OK);
    ck_assert(created);
    ck_assert_int_eq(store_family_put(st, "a-fam", &f, &created), STORE_OK);
    ck_assert(created);
    snprintf(f.description, sizeof(f.description), "second");
    ck_assert_int_eq(store_family_put(st, "b-fam", &f, &created), STORE_OK);
    ck_assert(!created);

    ck_assert_int_eq(store_family_list(st, &list, &count), STORE_OK);
    ck_assert_uint_eq(count, 2);
    ck_assert_str_eq(list[0].name, "a-fam");
    ck_assert_str_eq(list[1].name, "b-fam");
    ck_assert_str_eq(list[1].task, "classification");
    ck_assert_str_eq(list[1].description, "second");
    ck_assert_uint_eq(list[1].variant_count, 0);
    free(list);

    ck_assert_int_eq(store_snapshot_get(st, "b-fam", &snap), STORE_OK);
    ck_assert_str_eq(snap->family.description, "second");
    ck_assert_uint_eq(snap->variant_count, 0);
    store_snapshot_release(snap);

    ck_assert_int_eq(store_family_delete(st, "b-fam"), STORE_OK);
    ck_assert_int_eq(store_family_delete(st, "b-fam"), STORE_NOT_FOUND);
    ck_assert_int_eq(store_family_delete(st, "nope"), STORE_NOT_FOUND);
    ck_assert_int_eq(store_family_list(st, &list, &count), STORE_OK);
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(list[0].name, "a-fam");
    free(list);
    ck_assert_int_eq(store_snapshot_get(st, "b-fam", &snap),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_snapshot_get(st, "nope", &snap), STORE_NOT_FOUND);

    snprintf(f.description, sizeof(f.description), "third");
    ck_assert_int_eq(store_family_put(st, "b-fam", &f, &created), STORE_OK);
    ck_assert(created);
    ck_assert_int_eq(store_snapshot_get(st, "b-fam", &snap), STORE_OK);
    ck_assert_str_eq(snap->family.description, "third");
    store_snapshot_release(snap);
    ck_assert_int_eq(store_family_list(st, &list, &count), STORE_OK);
    ck_assert_uint_eq(count, 2);
    free(list);
    store_close(st);
}
END_TEST

START_TEST(test_store_family_list_empty)
{
    struct store *st = open_store(false);
    struct proto_family *list = NULL;
    size_t count = 9;

    ck_assert_int_eq(store_family_list(st, &list, &count), STORE_OK);
    ck_assert_uint_eq(count, 0);
    free(list);
    store_close(st);
}
END_TEST

/* ---- variants ------------------------------------------------------------ */

START_TEST(test_store_variant_publish_versions)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE], h3[PROTO_HEX_SIZE];

    put_family(st, "fam");
    upload_text(st, "one", h1);
    upload_text(st, "two", h2);
    upload_text(st, "three", h3);
    ck_assert_int_eq(publish(st, "fam", "v", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "v", h2, 100), 2);
    ck_assert_int_eq(publish(st, "fam", "v", h3, 100), 3);
    ck_assert_int_eq(publish(st, "fam", "other", h1, 100), 1);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->family.variant_count, 2);
    ck_assert_uint_eq(snap->variant_count, 2);
    ck_assert_str_eq(snap->variants[0].name, "other");
    ck_assert_int_eq(snap->variants[0].version, 1);
    ck_assert_str_eq(snap->variants[1].name, "v");
    ck_assert_int_eq(snap->variants[1].version, 3);
    ck_assert_str_eq(snap->variants[1].blob_hex, h3);
    ck_assert_uint_eq(snap->variants[1].size_bytes, strlen("three"));
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

START_TEST(test_store_variant_publish_failures)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    struct proto_variant m;
    char hex[PROTO_HEX_SIZE];
    char missing[PROTO_HEX_SIZE];
    int64_t version = 77;
    uint64_t generation;

    put_family(st, "fam");
    put_family(st, "gone");
    ck_assert_int_eq(store_family_delete(st, "gone"), STORE_OK);
    upload_text(st, "present", hex);
    hex_of("never uploaded", 14, missing);
    generation = generation_of(st);

    meta_init(&m, hex, 100);
    ck_assert_int_eq(
        store_variant_publish(st, "nope", "v", &m, 1, &version),
        STORE_NOT_FOUND);
    ck_assert_int_eq(
        store_variant_publish(st, "gone", "v", &m, 1, &version),
        STORE_NOT_FOUND);
    meta_init(&m, missing, 100);
    ck_assert_int_eq(store_variant_publish(st, "fam", "v", &m, 1, &version),
                     STORE_BLOB_MISSING);
    ck_assert_str_ne(store_errmsg(st), "");
    snprintf(m.blob_hex, sizeof(m.blob_hex), "../../etc/passwd");
    ck_assert_int_eq(store_variant_publish(st, "fam", "v", &m, 1, &version),
                     STORE_BLOB_MISSING);
    ck_assert_int_eq(version, 77);
    ck_assert_uint_eq(generation_of(st), generation);

    /* Nothing was written: the variant does not exist, and the first
     * successful publish is still version 1. */
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 0);
    ck_assert_uint_eq(snap->family.variant_count, 0);
    store_snapshot_release(snap);
    ck_assert_int_eq(store_variant_retire(st, "fam", "v"), STORE_NOT_FOUND);
    ck_assert_int_eq(publish(st, "fam", "v", hex, 100), 1);
    store_close(st);
}
END_TEST

START_TEST(test_store_variant_retire)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    struct proto_family *list = NULL;
    size_t count = 0;
    char ha[PROTO_HEX_SIZE], hb[PROTO_HEX_SIZE];
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    put_family(st, "fam");
    upload_text(st, "aaa", ha);
    upload_text(st, "bbb", hb);
    ck_assert_int_eq(publish(st, "fam", "a", ha, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "b", hb, 100), 1);
    ck_assert_int_eq(store_variant_retire(st, "fam", "a"), STORE_OK);
    ck_assert_int_eq(store_variant_retire(st, "fam", "a"), STORE_NOT_FOUND);
    ck_assert_int_eq(store_variant_retire(st, "fam", "zzz"),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_variant_retire(st, "nope", "b"), STORE_NOT_FOUND);

    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 1);
    ck_assert_uint_eq(snap->family.variant_count, 1);
    ck_assert_str_eq(snap->variants[0].name, "b");
    store_snapshot_release(snap);
    ck_assert_int_eq(store_family_list(st, &list, &count), STORE_OK);
    ck_assert_uint_eq(list[0].variant_count, 1);
    free(list);
    /* The blob stays. */
    ck_assert_int_eq(store_blob_open(st, ha, &fd, &size, &mtime), STORE_OK);
    close(fd);

    /* Publishing a retired variant brings it back. */
    ck_assert_int_eq(publish(st, "fam", "a", ha, 100), 2);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->family.variant_count, 2);
    ck_assert_str_eq(snap->variants[0].name, "a");
    ck_assert_int_eq(snap->variants[0].version, 2);
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

START_TEST(test_store_variant_versions)
{
    struct store *st = open_store(false);
    struct proto_variant *list = NULL;
    size_t count = 0;
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];

    put_family(st, "fam");
    upload_text(st, "first", h1);
    upload_text(st, "second", h2);
    ck_assert_int_eq(publish(st, "fam", "v", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "v", h2, 100), 2);
    ck_assert_int_eq(store_variant_retire(st, "fam", "v"), STORE_OK);

    /* Oldest first, retired included. */
    ck_assert_int_eq(store_variant_versions(st, "fam", "v", &list, &count),
                     STORE_OK);
    ck_assert_uint_eq(count, 2);
    ck_assert_int_eq(list[0].version, 1);
    ck_assert_str_eq(list[0].blob_hex, h1);
    ck_assert_str_eq(list[0].family, "fam");
    ck_assert_str_eq(list[0].name, "v");
    ck_assert_int_eq(list[1].version, 2);
    ck_assert_uint_eq(list[1].size_bytes, strlen("second"));
    free(list);
    ck_assert_int_eq(store_variant_versions(st, "fam", "w", &list, &count),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_variant_versions(st, "nope", "v", &list, &count),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_family_delete(st, "fam"), STORE_OK);
    ck_assert_int_eq(store_variant_versions(st, "fam", "v", &list, &count),
                     STORE_NOT_FOUND);
    store_close(st);
}
END_TEST

/* ---- snapshots ----------------------------------------------------------- */

START_TEST(test_store_snapshot_rollout)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE], h3[PROTO_HEX_SIZE];
    char hx[PROTO_HEX_SIZE];

    put_family(st, "fam");
    upload_text(st, "v1", h1);
    upload_text(st, "v2", h2);
    upload_text(st, "v3", h3);
    upload_text(st, "x1", hx);
    ck_assert_int_eq(publish(st, "fam", "m", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "m", h2, 30), 2);
    ck_assert_int_eq(publish(st, "fam", "x", hx, 100), 1);

    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->family.variant_count, 2);
    ck_assert_uint_eq(snap->variant_count, 3);
    ck_assert_str_eq(snap->variants[0].name, "m");
    ck_assert_int_eq(snap->variants[0].version, 2);
    ck_assert_uint_eq(snap->variants[0].rollout_percent, 30);
    ck_assert(snap->latest[0]);
    ck_assert_str_eq(snap->variants[1].name, "m");
    ck_assert_int_eq(snap->variants[1].version, 1);
    ck_assert(!snap->latest[1]);
    ck_assert_str_eq(snap->variants[2].name, "x");
    ck_assert(snap->latest[2]);
    store_snapshot_release(snap);

    ck_assert_int_eq(publish(st, "fam", "m", h3, 100), 3);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 2);
    ck_assert_str_eq(snap->variants[0].name, "m");
    ck_assert_int_eq(snap->variants[0].version, 3);
    ck_assert_str_eq(snap->variants[0].blob_hex, h3);
    ck_assert(snap->latest[0]);
    ck_assert_str_eq(snap->variants[1].name, "x");
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

START_TEST(test_store_snapshot_lists_round_trip)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    const struct proto_variant *v;
    struct proto_variant m;
    char hex[PROTO_HEX_SIZE];
    int64_t version = 0;

    put_family(st, "fam");
    upload_text(st, "listy model", hex);
    meta_init(&m, hex, 100);
    snprintf(m.format, sizeof(m.format), "tflite");
    m.params = 3300000;
    m.memory_bytes = 13200000;
    m.technique_count = 2;
    snprintf(m.techniques[0], PROTO_TOKEN_SIZE, "quantized");
    snprintf(m.techniques[1], PROTO_TOKEN_SIZE, "pruned");
    m.latency_count = 2;
    snprintf(m.latency_ms[0].device_class, PROTO_TOKEN_SIZE, "npu-class-a");
    m.latency_ms[0].value = 4.0;
    snprintf(m.latency_ms[1].device_class, PROTO_TOKEN_SIZE, "cpu-class-b");
    m.latency_ms[1].value = 41.5;
    m.energy_count = 1;
    snprintf(m.energy_mj[0].device_class, PROTO_TOKEN_SIZE, "npu-class-a");
    m.energy_mj[0].value = 12.25;
    m.exit_count = 3;
    for (size_t i = 0; i < 3; i++) {
        m.exits[i].flops = 1e8 * (double)(i + 1);
        m.exits[i].accuracy = 0.5 + 0.05 * (double)i;
    }
    m.context_count = 2;
    snprintf(m.context[0].key, PROTO_TOKEN_SIZE, "scene");
    snprintf(m.context[0].value, PROTO_TOKEN_SIZE, "night");
    snprintf(m.context[1].key, PROTO_TOKEN_SIZE, "scene");
    snprintf(m.context[1].value, PROTO_TOKEN_SIZE, "dusk");
    m.accelerator_count = 1;
    snprintf(m.accelerators[0], PROTO_TOKEN_SIZE, "npu");
    ck_assert_int_eq(
        store_variant_publish(st, "fam", "listy", &m, 1712345678, &version),
        STORE_OK);
    ck_assert_int_eq(version, 1);

    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 1);
    v = &snap->variants[0];
    ck_assert_str_eq(v->family, "fam");
    ck_assert_str_eq(v->name, "listy");
    ck_assert_int_eq(v->version, 1);
    ck_assert_str_eq(v->blob_hex, hex);
    ck_assert_uint_eq(v->size_bytes, strlen("listy model"));
    ck_assert_int_eq(v->created_s, 1712345678);
    ck_assert_str_eq(v->format, "tflite");
    ck_assert_uint_eq(v->params, m.params);
    ck_assert_double_eq(v->flops, m.flops);
    ck_assert_double_eq(v->accuracy, m.accuracy);
    ck_assert_uint_eq(v->memory_bytes, m.memory_bytes);
    ck_assert_uint_eq(v->rollout_percent, 100);
    ck_assert_uint_eq(v->technique_count, 2);
    ck_assert_str_eq(v->techniques[0], "quantized");
    ck_assert_str_eq(v->techniques[1], "pruned");
    ck_assert_uint_eq(v->latency_count, 2);
    ck_assert_mem_eq(v->latency_ms, m.latency_ms, 2 * sizeof(m.latency_ms[0]));
    ck_assert_uint_eq(v->energy_count, 1);
    ck_assert_mem_eq(v->energy_mj, m.energy_mj, sizeof(m.energy_mj[0]));
    ck_assert_uint_eq(v->exit_count, 3);
    ck_assert_mem_eq(v->exits, m.exits, 3 * sizeof(m.exits[0]));
    ck_assert_uint_eq(v->context_count, 2);
    ck_assert_mem_eq(v->context, m.context, 2 * sizeof(m.context[0]));
    ck_assert_uint_eq(v->accelerator_count, 1);
    ck_assert_str_eq(v->accelerators[0], "npu");
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

START_TEST(test_store_snapshot_cached_until_write)
{
    struct store *st = open_store(false);
    const struct store_snapshot *a = NULL;
    const struct store_snapshot *b = NULL;
    const struct store_snapshot *c = NULL;
    char hex[PROTO_HEX_SIZE];

    put_family(st, "fam");
    upload_text(st, "cached", hex);
    ck_assert_int_eq(publish(st, "fam", "v", hex, 100), 1);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &a), STORE_OK);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &b), STORE_OK);
    ck_assert_ptr_eq(a, b);
    store_snapshot_release(b);

    /* A new blob is not in any family until published: the cache stays. */
    upload_text(st, "not published yet", hex);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &b), STORE_OK);
    ck_assert_ptr_eq(a, b);
    store_snapshot_release(b);

    ck_assert_int_eq(publish(st, "fam", "v", hex, 100), 2);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &c), STORE_OK);
    ck_assert_ptr_ne(a, c);
    ck_assert_uint_gt(c->generation, a->generation);
    ck_assert_int_eq(c->variants[0].version, 2);
    /* The old snapshot is still whole after the write. */
    ck_assert_int_eq(a->variants[0].version, 1);
    ck_assert_uint_eq(a->variant_count, 1);
    store_snapshot_release(a);
    store_snapshot_release(c);
    /* Snapshots outlive the store. */
    ck_assert_int_eq(store_snapshot_get(st, "fam", &c), STORE_OK);
    store_close(st);
    ck_assert_int_eq(c->variants[0].version, 2);
    store_snapshot_release(c);
}
END_TEST

/* ---- uploads ------------------------------------------------------------- */

/* Many families: the cache table grows and probes past collisions; every
 * family keeps its own cached snapshot. */
START_TEST(test_store_snapshot_cache_many_families)
{
    enum { FAMILIES = 300 };
    const struct store_snapshot *first[FAMILIES];
    struct store *st = open_store(false);
    char name[PROTO_NAME_SIZE];

    for (int i = 0; i < FAMILIES; i++) {
        snprintf(name, sizeof(name), "fam-%d", i);
        put_family(st, name);
    }
    for (int i = 0; i < FAMILIES; i++) {
        snprintf(name, sizeof(name), "fam-%d", i);
        ck_assert_int_eq(store_snapshot_get(st, name, &first[i]), STORE_OK);
        ck_assert_str_eq(first[i]->family.name, name);
    }
    for (int i = FAMILIES - 1; i >= 0; i--) {
        const struct store_snapshot *again = NULL;

        snprintf(name, sizeof(name), "fam-%d", i);
        ck_assert_int_eq(store_snapshot_get(st, name, &again), STORE_OK);
        ck_assert_ptr_eq(again, first[i]);
        store_snapshot_release(again);
        store_snapshot_release(first[i]);
    }
    store_close(st);
}
END_TEST

START_TEST(test_store_upload_dedup)
{
    struct store *st = open_store(false);
    char hex[PROTO_HEX_SIZE];
    char hex2[PROTO_HEX_SIZE];
    unsigned char *data = random_bytes(200000, 7);
    unsigned char *back;
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    ck_assert(upload(st, data, 200000, hex));
    ck_assert(!upload(st, data, 200000, hex2));
    ck_assert_str_eq(hex, hex2);
    ck_assert_uint_eq(count_files("blobs"), 1);
    ck_assert_uint_eq(count_files("tmp"), 0);
    ck_assert_int_eq(store_blob_open(st, hex, &fd, &size, &mtime), STORE_OK);
    ck_assert_uint_eq(size, 200000);
    back = fixture_read_fd(fd, size);
    ck_assert_mem_eq(back, data, 200000);
    free(back);
    free(data);
    store_close(st);
}
END_TEST

START_TEST(test_store_upload_digest_mismatch)
{
    struct store *st = open_store(false);
    struct store_upload *up = NULL;
    char hex[PROTO_HEX_SIZE];
    bool created = false;
    uint64_t size = 0;
    int fd = -1;
    int64_t mtime = 0;
    struct proto_variant m;
    int64_t version = 0;

    put_family(st, "fam");
    hex_of("the real thing", 14, hex);
    ck_assert_int_eq(store_upload_begin(st, hex, 1000, &up), STORE_OK);
    ck_assert_uint_eq(count_files("tmp"), 1);
    ck_assert_int_eq(store_upload_write(up, "something else", 14), STORE_OK);
    ck_assert_int_eq(store_upload_finish(up, &created, &size),
                     STORE_DIGEST_MISMATCH);
    ck_assert_uint_eq(count_files("tmp"), 0);
    ck_assert_uint_eq(count_files("blobs"), 0);
    ck_assert_int_eq(store_blob_open(st, hex, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    meta_init(&m, hex, 100);
    ck_assert_int_eq(store_variant_publish(st, "fam", "v", &m, 1, &version),
                     STORE_BLOB_MISSING);
    store_close(st);
}
END_TEST

START_TEST(test_store_upload_too_large)
{
    struct store *st = open_store(false);
    struct store_upload *up = NULL;
    char hex[PROTO_HEX_SIZE];

    hex_of("0123456789", 10, hex);
    ck_assert_int_eq(store_upload_begin(st, hex, 9, &up), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, "01234", 5), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, "56789", 5), STORE_TOO_LARGE);
    ck_assert_int_eq(store_upload_write(up, "5", 1), STORE_TOO_LARGE);
    store_upload_abort(up);
    ck_assert_uint_eq(count_files("tmp"), 0);
    ck_assert_uint_eq(count_files("blobs"), 0);

    /* Exactly max_bytes is fine. */
    ck_assert_int_eq(store_upload_begin(st, hex, 10, &up), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, "0123456789", 10), STORE_OK);
    {
        bool created = false;
        uint64_t size = 0;

        ck_assert_int_eq(store_upload_finish(up, &created, &size), STORE_OK);
        ck_assert(created);
        ck_assert_uint_eq(size, 10);
    }
    store_close(st);
}
END_TEST

START_TEST(test_store_upload_abort)
{
    struct store *st = open_store(false);
    struct store_upload *up = NULL;
    char hex[PROTO_HEX_SIZE];

    hex_of("abc", 3, hex);
    ck_assert_int_eq(store_upload_begin(st, hex, 100, &up), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, "abc", 3), STORE_OK);
    store_upload_abort(up);
    store_upload_abort(NULL);
    ck_assert_uint_eq(count_files("tmp"), 0);
    ck_assert_uint_eq(count_files("blobs"), 0);
    store_close(st);
}
END_TEST

/* store_upload_check: the digest before the blob is kept, readable
 * through store_upload_read_fd meanwhile; finish then keeps it (or not). */
START_TEST(test_store_upload_check)
{
    struct store *st = open_store(false);
    struct store_upload *up = NULL;
    char hex[PROTO_HEX_SIZE], buf[16];
    bool created = false;
    uint64_t size = 0;
    int rfd;

    hex_of("the real thing", 14, hex);
    ck_assert_int_eq(store_upload_begin(st, hex, 1000, &up), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, "the real", 8), STORE_OK);
    rfd = store_upload_read_fd(up);
    ck_assert_int_ge(rfd, 0);
    ck_assert_int_eq(pread(rfd, buf, sizeof(buf), 0), 8);
    ck_assert_int_eq(store_upload_write(up, " thing", 6), STORE_OK);
    ck_assert_int_eq(store_upload_check(up), STORE_OK);
    ck_assert_int_eq(store_upload_check(up), STORE_OK);
    ck_assert_uint_eq(count_files("blobs"), 0);
    ck_assert_int_eq(store_upload_finish(up, &created, &size), STORE_OK);
    ck_assert(created);
    ck_assert_uint_eq(size, 14);
    /* The descriptor still reads the same bytes, now the blob's. */
    ck_assert_int_eq(pread(rfd, buf, sizeof(buf), 0), 14);
    ck_assert_mem_eq(buf, "the real thing", 14);
    close(rfd);

    hex_of("another thing", 13, hex);
    ck_assert_int_eq(store_upload_begin(st, hex, 1000, &up), STORE_OK);
    ck_assert_int_eq(store_upload_write(up, "not the thing", 13), STORE_OK);
    ck_assert_int_eq(store_upload_check(up), STORE_DIGEST_MISMATCH);
    ck_assert_int_eq(store_upload_check(up), STORE_DIGEST_MISMATCH);
    ck_assert_int_eq(store_upload_finish(up, &created, &size),
                     STORE_DIGEST_MISMATCH);
    ck_assert_uint_eq(count_files("tmp"), 0);
    ck_assert_uint_eq(count_files("blobs"), 1);
    store_close(st);
}
END_TEST

START_TEST(test_store_open_rejects_bad_hex)
{
    struct store *st = open_store(false);
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;
    char hex[PROTO_HEX_SIZE];
    struct store_upload *up = NULL;

    memset(hex, 'A', PROTO_HEX_LEN);
    hex[PROTO_HEX_LEN] = '\0';
    ck_assert_int_eq(store_blob_open(st, hex, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    snprintf(hex, sizeof(hex), "../catalog.db");
    ck_assert_int_eq(store_blob_open(st, hex, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    memset(hex, 'A', PROTO_HEX_LEN);
    ck_assert_int_eq(store_delta_open(st, hex, hex, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_blob_zstd_open(st, hex, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    ck_assert_int_ne(store_upload_begin(st, hex, 10, &up), STORE_OK);
    ck_assert_int_eq(fd, -1);
    store_close(st);
}
END_TEST

/* ---- concurrency --------------------------------------------------------- */

struct reader_ctx {
    struct store *st;
    atomic_bool *done;
    int errors;
    int reads;
};

static void *reader_main(void *arg)
{
    struct reader_ctx *c = arg;
    int64_t last_version = 0;
    uint64_t last_generation = 0;

    while (!atomic_load(c->done) || c->reads == 0) {
        const struct store_snapshot *s = NULL;
        size_t latest = 0;

        if (store_snapshot_get(c->st, "fam", &s) != STORE_OK) {
            c->errors++;
            continue;
        }
        for (size_t i = 0; i < s->variant_count; i++) {
            if (s->latest[i])
                latest++;
            else if (strcmp(s->variants[i].name, s->variants[i - 1].name) ||
                     s->variants[i].version >= s->variants[i - 1].version)
                c->errors++;
        }
        if (latest != s->family.variant_count || s->variant_count < 1 ||
            strcmp(s->variants[0].name, "a") != 0 ||
            s->variants[0].version < last_version ||
            s->generation < last_generation)
            c->errors++;
        last_version = s->variants[0].version;
        last_generation = s->generation;
        store_snapshot_release(s);
        c->reads++;
    }
    return NULL;
}

START_TEST(test_store_snapshot_concurrent_readers)
{
    struct store *st = open_store(false);
    struct reader_ctx ctx[READERS];
    pthread_t threads[READERS];
    atomic_bool done;
    char ha[PROTO_HEX_SIZE], hb[PROTO_HEX_SIZE];

    atomic_init(&done, false);
    put_family(st, "fam");
    upload_text(st, "a-blob", ha);
    upload_text(st, "b-blob", hb);
    ck_assert_int_eq(publish(st, "fam", "a", ha, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "b", hb, 100), 1);
    for (int i = 0; i < READERS; i++) {
        ctx[i] = (struct reader_ctx){ .st = st, .done = &done };
        ck_assert_int_eq(
            pthread_create(&threads[i], NULL, reader_main, &ctx[i]), 0);
    }
    for (int64_t v = 2; v <= WRITES; v++) {
        char name[16];

        /* Alternate rollouts so that snapshots hold one or two versions
         * of a; now and then another variant comes and goes. */
        ck_assert_int_eq(publish(st, "fam", "a", v % 2 ? hb : ha,
                                 v % 3 ? 100 : 50),
                         v);
        snprintf(name, sizeof(name), "c%lld", (long long)((v - 1) / 2 % 3));
        if (v % 2)
            (void)publish(st, "fam", name, ha, 100);
        else if (v > 2)
            ck_assert_int_eq(store_variant_retire(st, "fam", name), STORE_OK);
    }
    atomic_store(&done, true);
    for (int i = 0; i < READERS; i++) {
        pthread_join(threads[i], NULL);
        ck_assert_int_eq(ctx[i].errors, 0);
        ck_assert_int_gt(ctx[i].reads, 0);
    }
    store_close(st);
}
END_TEST

/* ---- worker -------------------------------------------------------------- */

/* Two versions of pseudo-weights: v2 is v1 with 1% of the values changed. */
static void similar_blobs(float **v1, float **v2)
{
    uint32_t seed = 99;

    *v1 = weights_new(12345);
    *v2 = malloc(BLOB_FLOATS * sizeof(float));
    ck_assert_ptr_nonnull(*v2);
    memcpy(*v2, *v1, BLOB_FLOATS * sizeof(float));
    for (size_t i = 0; i < BLOB_FLOATS / 100; i++)
        (*v2)[rng_next(&seed) % BLOB_FLOATS] += 0.01f;
}

/* Fetches the delta from_hex -> to_hex and applies it to old. */
static void check_delta_applies(struct store *st, const char *from_hex,
                                const char *to_hex, const void *old,
                                const void *want, size_t len)
{
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;
    unsigned char *delta;
    struct membuf out = { .cap = len };

    ck_assert_int_eq(
        store_delta_open(st, from_hex, to_hex, &fd, &size, &mtime),
        STORE_OK);
    delta = fixture_read_fd(fd, size);
    out.data = malloc(len);
    ck_assert_ptr_nonnull(out.data);
    ck_assert_int_eq(proto_delta_apply(old, len, delta, size, membuf_sink,
                                       &out),
                     PROTO_OK);
    ck_assert_uint_eq(out.len, len);
    ck_assert_mem_eq(out.data, want, len);
    free(out.data);
    free(delta);
}

START_TEST(test_store_worker_makes_delta)
{
    struct store *st = open_store(true);
    const struct store_snapshot *snap = NULL;
    const struct proto_delta *d;
    struct store_stats stats;
    float *v1, *v2;
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const size_t len = BLOB_FLOATS * sizeof(float);

    similar_blobs(&v1, &v2);
    put_family(st, "fam");
    ck_assert(upload(st, v1, len, h1));
    ck_assert(upload(st, v2, len, h2));
    ck_assert_int_eq(publish(st, "fam", "w", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "w", h2, 100), 2);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);

    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, 1);
    d = find_delta(snap, h1, h2);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_lt(d->size_bytes, len / 10);
    ck_assert_uint_gt(d->size_bytes, PROTO_DELTA_HEADER_LEN);
    store_snapshot_release(snap);
    check_delta_applies(st, h1, h2, v1, v2, len);
    /* No delta the other way round. */
    {
        int fd = -1;
        uint64_t size = 0;
        int64_t mtime = 0;

        ck_assert_int_eq(store_delta_open(st, h2, h1, &fd, &size, &mtime),
                         STORE_NOT_FOUND);
    }
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_made, 1);
    ck_assert_uint_eq(stats.deltas_ready, 1);
    ck_assert_uint_eq(stats.deltas_pending, 0);
    ck_assert_uint_eq(stats.deltas_failed, 0);
    ck_assert_uint_eq(count_files("tmp"), 0);
    free(v1);
    free(v2);
    store_close(st);
}
END_TEST

START_TEST(test_store_worker_resumes_after_crash)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;
    struct store_stats stats;
    float *v1, *v2;
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const size_t len = BLOB_FLOATS * sizeof(float);
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    similar_blobs(&v1, &v2);
    put_family(st, "fam");
    ck_assert(upload(st, v1, len, h1));
    ck_assert(upload(st, v2, len, h2));
    ck_assert_int_eq(publish(st, "fam", "w", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "w", h2, 100), 2);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_pending, 1);
    ck_assert_int_eq(store_delta_open(st, h1, h2, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->delta_count, 0);
    store_snapshot_release(snap);
    store_close(st);

    st = open_store(true);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_pending, 0);
    ck_assert_uint_eq(stats.deltas_ready, 1);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_ptr_nonnull(find_delta(snap, h1, h2));
    store_snapshot_release(snap);
    check_delta_applies(st, h1, h2, v1, v2, len);
    free(v1);
    free(v2);
    store_close(st);
}
END_TEST

START_TEST(test_store_worker_rejects_big_delta)
{
    struct store *st = open_store(true);
    const struct store_snapshot *snap = NULL;
    struct store_stats stats;
    const size_t len = 512 * 1024;
    unsigned char *r1 = random_bytes(len, 1);
    unsigned char *r2 = random_bytes(len, 2);
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    put_family(st, "fam");
    ck_assert(upload(st, r1, len, h1));
    ck_assert(upload(st, r2, len, h2));
    ck_assert_int_eq(publish(st, "fam", "r", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "r", h2, 100), 2);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_rejected, 1);
    ck_assert_uint_eq(stats.deltas_made, 0);
    ck_assert_uint_eq(stats.deltas_ready, 0);
    ck_assert_uint_eq(stats.deltas_pending, 0);
    /* Not smaller is deterministic: final at once, never retried, not
     * failed, and an admin retry does not start it again. */
    ck_assert_uint_eq(stats.job_retries, 0);
    ck_assert_uint_eq(stats.jobs_gave_up, 0);
    ck_assert_uint_eq(stats.deltas_failed, 0);
    {
        uint64_t deltas = 1, compressed = 0;

        ck_assert_int_eq(store_jobs_retry(st, &deltas, &compressed),
                         STORE_OK);
        ck_assert_uint_eq(deltas, 0);
    }
    ck_assert_int_eq(store_delta_open(st, h1, h2, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->delta_count, 0);
    store_snapshot_release(snap);
    ck_assert_uint_eq(count_files("deltas"), 0);
    ck_assert_uint_eq(count_files("tmp"), 0);
    free(r1);
    free(r2);
    store_close(st);
}
END_TEST

/* The bar is the target's compressed size: a delta into a very
 * compressible model from an unrelated one is no better than the zstd copy,
 * though far smaller than the model itself. */
START_TEST(test_store_worker_rejects_against_zstd_size)
{
    struct store *st = open_store(true);
    struct store_stats stats;
    const size_t len = 300000;
    unsigned char *noise = random_bytes(len, 3);
    unsigned char *text = malloc(len);
    char hn[PROTO_HEX_SIZE], ht[PROTO_HEX_SIZE];
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < len; i++)
        text[i] = (unsigned char)("0123456789abcdefghijklmnopqrstu"[i % 31]);
    put_family(st, "fam");
    ck_assert(upload(st, noise, len, hn));
    ck_assert(upload(st, text, len, ht));
    ck_assert_int_eq(publish(st, "fam", "m", hn, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "m", ht, 100), 2);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_rejected, 1);
    ck_assert_uint_eq(stats.deltas_ready, 0);
    ck_assert_int_eq(store_blob_zstd_open(st, ht, &fd, &size, &mtime),
                     STORE_OK);
    close(fd);
    ck_assert_uint_lt(size, len / 100);
    free(noise);
    free(text);
    store_close(st);
}
END_TEST

START_TEST(test_store_worker_cross_variant_deltas)
{
    struct store *st = open_store(true);
    const struct store_snapshot *snap = NULL;
    float *v1, *v2;
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const size_t len = BLOB_FLOATS * sizeof(float);

    similar_blobs(&v1, &v2);
    put_family(st, "fam");
    ck_assert(upload(st, v1, len, h1));
    ck_assert(upload(st, v2, len, h2));
    ck_assert_int_eq(publish(st, "fam", "big", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "small", h2, 100), 1);
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->delta_count, 2);
    ck_assert_ptr_nonnull(find_delta(snap, h1, h2));
    ck_assert_ptr_nonnull(find_delta(snap, h2, h1));
    store_snapshot_release(snap);
    check_delta_applies(st, h2, h1, v2, v1, len);
    free(v1);
    free(v2);
    store_close(st);
}
END_TEST

START_TEST(test_store_worker_zstd_copy)
{
    struct store *st = open_store(true);
    struct store_stats stats;
    const size_t len = 300000;
    unsigned char *text = malloc(len);
    unsigned char *noise = random_bytes(len, 5);
    unsigned char *zst;
    unsigned char *plain;
    char ht[PROTO_HEX_SIZE], hn[PROTO_HEX_SIZE];
    int fd = -1;
    uint64_t size = 0;
    int64_t mtime = 0;

    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < len; i++)
        text[i] = (unsigned char)("model weights, layer by layer\n"[i % 30]);
    ck_assert(upload(st, text, len, ht));
    ck_assert(upload(st, noise, len, hn));
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);

    ck_assert_int_eq(store_blob_zstd_open(st, ht, &fd, &size, &mtime),
                     STORE_OK);
    ck_assert_uint_lt(size, len / 10);
    zst = fixture_read_fd(fd, size);
    plain = malloc(len);
    ck_assert_ptr_nonnull(plain);
    ck_assert_uint_eq(ZSTD_decompress(plain, len, zst, size), len);
    ck_assert_mem_eq(plain, text, len);
    ck_assert_int_eq(store_blob_zstd_open(st, hn, &fd, &size, &mtime),
                     STORE_NOT_FOUND);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.compressed_made, 1);
    ck_assert_uint_eq(count_files("tmp"), 0);
    free(plain);
    free(zst);
    free(text);
    free(noise);
    store_close(st);
}
END_TEST

START_TEST(test_store_worker_wait_idle_without_work)
{
    struct store *st = open_store(true);
    struct store_stats stats;

    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_made, 0);
    ck_assert_uint_eq(stats.errors, 0);
    store_close(st);
    store_close(NULL);
}
END_TEST

START_TEST(test_store_worker_close_while_busy)
{
    struct store *st = open_store(true);
    struct store_stats stats;
    float *v1, *v2;
    char h1[PROTO_HEX_SIZE], h2[PROTO_HEX_SIZE];
    const size_t len = BLOB_FLOATS * sizeof(float);

    similar_blobs(&v1, &v2);
    put_family(st, "fam");
    ck_assert(upload(st, v1, len, h1));
    ck_assert(upload(st, v2, len, h2));
    ck_assert_int_eq(publish(st, "fam", "w", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "w", h2, 100), 2);
    store_close(st);
    /* Whatever was in progress left no temp file, and the delta is either
     * made or still pending, never failed. */
    ck_assert_uint_eq(count_files("tmp"), 0);
    st = open_store(false);
    store_stats_get(st, &stats);
    ck_assert_uint_eq(stats.deltas_pending + stats.deltas_ready, 1);
    free(v1);
    free(v2);
    store_close(st);
}
END_TEST

/* ---- worker retries -------------------------------------------------- */

static struct store *open_store_retrying(unsigned attempts)
{
    struct store_options opt;
    struct store *st = NULL;

    test_options(&opt);
    opt.delta_level = 3;
    opt.compress_level = 3;
    opt.retry_base_ms = 20;
    opt.retry_max_ms = 100;
    opt.retry_attempts = attempts;
    ck_assert_int_eq(store_open(data_dir, &opt, &st), STORE_OK);
    return st;
}

static void blob_path(const char *hex, char *out, size_t size)
{
    char rel[128];

    snprintf(rel, sizeof(rel), "blobs/sha256/%.2s/%s", hex, hex);
    path_in(out, size, rel);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Polls the stats until pred holds; false after about 20 s. */
static bool wait_stats(struct store *st, bool (*pred)(const struct store_stats *))
{
    struct store_stats s;

    for (int i = 0; i < 2000; i++) {
        store_stats_get(st, &s);
        if (pred(&s))
            return true;
        usleep(10000);
    }
    return false;
}

static bool one_ready(const struct store_stats *s)
{
    return s->deltas_ready == 1 && s->deltas_pending == 0;
}

static bool retried_twice(const struct store_stats *s)
{
    return s->job_retries >= 2;
}

static bool gave_up(const struct store_stats *s)
{
    return s->deltas_failed == 1 && s->deltas_pending == 0;
}

/* Publishes v1 and v2 of fam/w with the worker off, then removes v1's
 * file: the delta's first attempts fail with ENOENT, a transient error
 * (an operator may restore the file, as after EMFILE or EIO). */
static void stage_missing_base(float **v1, float **v2, char h1[PROTO_HEX_SIZE],
                               char path1[512])
{
    struct store *st = open_store(false);
    const size_t len = BLOB_FLOATS * sizeof(float);
    char h2[PROTO_HEX_SIZE];

    similar_blobs(v1, v2);
    put_family(st, "fam");
    ck_assert(upload(st, *v1, len, h1));
    ck_assert(upload(st, *v2, len, h2));
    ck_assert_int_eq(publish(st, "fam", "w", h1, 100), 1);
    ck_assert_int_eq(publish(st, "fam", "w", h2, 100), 2);
    store_close(st);
    blob_path(h1, path1, 512);
    ck_assert_int_eq(unlink(path1), 0);
}

START_TEST(test_store_worker_retries_transient_failure)
{
    const size_t len = BLOB_FLOATS * sizeof(float);
    char h1[PROTO_HEX_SIZE], path1[512];
    struct store_stats s;
    struct store *st;
    float *v1, *v2;

    stage_missing_base(&v1, &v2, h1, path1);
    st = open_store_retrying(1000);
    ck_assert(wait_stats(st, retried_twice));
    store_stats_get(st, &s);
    ck_assert_uint_eq(s.deltas_failed, 0);     /* not failed for ever */
    ck_assert_uint_eq(s.deltas_pending, 1);
    write_file(path1, v1, len);                /* the operator's fix */
    ck_assert(wait_stats(st, one_ready));
    store_stats_get(st, &s);
    ck_assert_uint_eq(s.deltas_made, 1);
    ck_assert_uint_eq(s.jobs_gave_up, 0);
    free(v1);
    free(v2);
    store_close(st);
}
END_TEST

START_TEST(test_store_worker_retries_bounded_then_admin_retry)
{
    const size_t len = BLOB_FLOATS * sizeof(float);
    char h1[PROTO_HEX_SIZE], path1[512];
    uint64_t deltas = 0, compressed = 0;
    struct store_stats s;
    struct store *st;
    float *v1, *v2;

    stage_missing_base(&v1, &v2, h1, path1);
    st = open_store_retrying(3);
    ck_assert(wait_stats(st, gave_up));
    store_stats_get(st, &s);
    /* Three attempts: two retries, then final. */
    ck_assert_uint_ge(s.job_retries, 2);
    ck_assert_uint_ge(s.jobs_gave_up, 1);
    ck_assert_uint_eq(s.deltas_ready, 0);
    /* The counters move as a result is recorded; on PostgreSQL the job's
     * transaction commits just after. */
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    write_file(path1, v1, len);
    ck_assert_int_eq(store_jobs_retry(st, &deltas, &compressed), STORE_OK);
    ck_assert_uint_eq(deltas, 1);
    ck_assert_uint_ge(compressed, 1);          /* v1's zstd copy failed too */
    ck_assert(wait_stats(st, one_ready));
    /* Nothing left to retry. */
    ck_assert_int_eq(store_worker_wait_idle(st, WAIT_MS), STORE_OK);
    ck_assert_int_eq(store_jobs_retry(st, &deltas, &compressed), STORE_OK);
    ck_assert_uint_eq(deltas, 0);
    ck_assert_uint_eq(compressed, 0);
    free(v1);
    free(v2);
    store_close(st);
}
END_TEST

/* ---- reads beside the writer --------------------------------------------- */

#define FLIGHT_THREADS 8

struct reads_job {
    struct store *st;
    pthread_barrier_t *barrier;
    const struct store_snapshot *snap;
    enum store_status rc;
    atomic_int *done;
};

/* Everything a request thread reads: a snapshot (a cache miss), the
 * family and version listings, the versions' statistics and what a
 * /metrics scrape reads (counters and per-version lines). */
static void *reads_main(void *arg)
{
    struct reads_job *j = arg;
    struct proto_family *fams = NULL;
    struct proto_variant *vers = NULL;
    struct proto_version_stats *vstats = NULL;
    struct store_rollout_metric *rm = NULL;
    struct store_stats stats;
    size_t n = 0;

    if (j->barrier)
        pthread_barrier_wait(j->barrier);
    j->rc = store_snapshot_get(j->st, "fam", &j->snap);
    if (!j->barrier) {
        if (j->rc == STORE_OK)
            j->rc = store_family_list(j->st, &fams, &n);
        free(fams);
        if (j->rc == STORE_OK)
            j->rc = store_variant_versions(j->st, "fam", "v", &vers, &n);
        free(vers);
        /* The versions listing's statistics and a /metrics scrape. */
        if (j->rc == STORE_OK)
            j->rc = store_variant_stats(j->st, "fam", "v", &vstats, &n);
        free(vstats);
        if (j->rc == STORE_OK)
            j->rc = store_rollout_metrics(j->st, 8, &rm, &n);
        free(rm);
        store_stats_get(j->st, &stats);
    }
    atomic_fetch_add(j->done, 1);
    return NULL;
}

/* One event on fam/v version 1. */
static void add_event(struct store *st, const char *ue,
                      enum proto_event_kind kind)
{
    struct proto_event ev;
    bool counted = false, paused = false;

    memset(&ev, 0, sizeof(ev));
    snprintf(ev.ue, sizeof(ev.ue), "%s", ue);
    snprintf(ev.variant, sizeof(ev.variant), "v");
    ev.version = 1;
    ev.kind = kind;
    ck_assert_int_eq(store_event_add(st, "fam", &ev, 1000, &counted,
                                     &paused), STORE_OK);
    ck_assert(counted);
}

/* Waits up to ms for *done to reach want. */
static bool wait_done(atomic_int *done, int want, int ms)
{
    for (int i = 0; i < ms && atomic_load(done) < want; i++)
        usleep(1000);
    return atomic_load(done) >= want;
}

/* The writer busy with a write transaction (as the worker is while its
 * commit fsyncs): db_mu held, BEGIN IMMEDIATE and an insert pending. */
static void writer_hold(struct store *st)
{
    pthread_mutex_lock(&st->db_mu);
    ck_assert_int_eq(store_tx_begin(st), STORE_OK);
    ck_assert_int_eq(db_exec(st->db, "UPDATE families SET task = "
                                     "'uncommitted' WHERE name = 'fam'"),
                     0);
}

static void writer_release(struct store *st)
{
    store_tx_rollback(st);
    pthread_mutex_unlock(&st->db_mu);
}

START_TEST(test_store_reads_not_blocked_by_writer)
{
    struct store *st = open_store(false);
    char h1[PROTO_HEX_SIZE];
    atomic_int done = 0;
    struct reads_job j = { .st = st, .done = &done };
    pthread_t t;
    bool finished;

    put_family(st, "fam");
    upload_text(st, "one", h1);
    publish(st, "fam", "v", h1, 100);          /* the cache is empty now */
    add_event(st, "ue-1", PROTO_EVENT_LOAD_FAILED);  /* statistics to read */
    writer_hold(st);
    ck_assert_int_eq(pthread_create(&t, NULL, reads_main, &j), 0);
    finished = wait_done(&done, 1, 10000);
    writer_release(st);
    pthread_join(t, NULL);
    ck_assert_msg(finished, "a read (cache miss, listing, statistics or "
                            "/metrics) waited for the writer");
    ck_assert_int_eq(j.rc, STORE_OK);
    /* The snapshot is the last commit, not the pending write. */
    ck_assert_str_eq(j.snap->family.task, "task of fam");
    store_snapshot_release(j.snap);
    store_close(st);
}
END_TEST

START_TEST(test_store_snapshot_single_flight)
{
    struct store *st = open_store(false);
    struct reads_job jobs[FLIGHT_THREADS];
    pthread_t t[FLIGHT_THREADS];
    pthread_barrier_t barrier;
    struct store_stats before, after;
    char h1[PROTO_HEX_SIZE];
    atomic_int done = 0;

    put_family(st, "fam");
    upload_text(st, "one", h1);
    publish(st, "fam", "v", h1, 100);
    store_stats_get(st, &before);
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, FLIGHT_THREADS), 0);
    /* Held while the misses start: had they to wait for the writer, they
     * would all have missed the cache before any of them could fill it. */
    writer_hold(st);
    for (int i = 0; i < FLIGHT_THREADS; i++) {
        jobs[i] = (struct reads_job){ .st = st, .barrier = &barrier,
                                      .done = &done };
        ck_assert_int_eq(pthread_create(&t[i], NULL, reads_main, &jobs[i]),
                         0);
    }
    (void)wait_done(&done, FLIGHT_THREADS, 2000);
    writer_release(st);
    for (int i = 0; i < FLIGHT_THREADS; i++)
        pthread_join(t[i], NULL);
    store_stats_get(st, &after);
    ck_assert_uint_eq(after.snapshot_builds - before.snapshot_builds, 1);
    for (int i = 0; i < FLIGHT_THREADS; i++) {
        ck_assert_int_eq(jobs[i].rc, STORE_OK);
        ck_assert_ptr_eq(jobs[i].snap, jobs[0].snap);
        store_snapshot_release(jobs[i].snap);
    }
    pthread_barrier_destroy(&barrier);
    store_close(st);
}
END_TEST

START_TEST(test_store_snapshot_single_flight_unknown_family)
{
    struct store *st = open_store(false);
    const struct store_snapshot *snap = NULL;

    ck_assert_int_eq(store_snapshot_get(st, "nope", &snap), STORE_NOT_FOUND);
    ck_assert_ptr_null(snap);
    /* The reader that failed is usable again. */
    put_family(st, "fam");
    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    store_snapshot_release(snap);
    store_close(st);
}
END_TEST

/*
 * A catalog of many families: every family's snapshot stays cached (the
 * table grows, nothing is evicted), so selects going round all of them
 * read each once per generation and never again: no thrashing.
 */
START_TEST(test_store_snapshot_cache_holds_many_families)
{
    enum { FAMILIES = 300 };
    struct store *st = open_store(false);
    struct store_stats before, after;
    char hex[PROTO_HEX_SIZE], name[32];

    upload_text(st, "shared", hex);
    for (int i = 0; i < FAMILIES; i++) {
        snprintf(name, sizeof(name), "family-%03d", i);
        put_family(st, name);
        publish(st, name, "model", hex, 100);
    }
    store_stats_get(st, &before);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < FAMILIES; i++) {
            const struct store_snapshot *snap = NULL;

            snprintf(name, sizeof(name), "family-%03d", i);
            ck_assert_int_eq(store_snapshot_get(st, name, &snap), STORE_OK);
            ck_assert_str_eq(snap->family.name, name);
            store_snapshot_release(snap);
        }
        store_stats_get(st, &after);
        ck_assert_uint_eq(after.snapshot_builds - before.snapshot_builds,
                          FAMILIES);
    }
    /* A write moves the generation: each is read once more. */
    put_family(st, "family-new");
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < FAMILIES; i++) {
            const struct store_snapshot *snap = NULL;

            snprintf(name, sizeof(name), "family-%03d", i);
            ck_assert_int_eq(store_snapshot_get(st, name, &snap), STORE_OK);
            store_snapshot_release(snap);
        }
    store_stats_get(st, &after);
    ck_assert_uint_eq(after.snapshot_builds - before.snapshot_builds,
                      2 * FAMILIES);
    store_close(st);
}
END_TEST

/* ---- a snapshot's lists ----------------------------------------------------- */

/* Variant metadata with the lists whose bits (1 techniques, 2 latencies,
 * 4 energies, 8 exits, 16 context, 32 accelerators) are in lists. */
static void meta_lists(struct proto_variant *m, const char *hex,
                       unsigned lists)
{
    meta_init(m, hex, 100);
    if (lists & 1) {
        snprintf(m->techniques[0], PROTO_TOKEN_SIZE, "quantized");
        snprintf(m->techniques[1], PROTO_TOKEN_SIZE, "pruned");
        m->technique_count = 2;
    }
    if (lists & 2) {
        snprintf(m->latency_ms[0].device_class, PROTO_TOKEN_SIZE, "npu-a");
        m->latency_ms[0].value = 12.5;
        m->latency_count = 1;
    }
    if (lists & 4) {
        snprintf(m->energy_mj[0].device_class, PROTO_TOKEN_SIZE, "npu-a");
        m->energy_mj[0].value = 40;
        m->energy_count = 1;
    }
    if (lists & 8) {
        m->exits[0].flops = 1e8;
        m->exits[0].accuracy = 0.6;
        m->exit_count = 1;
    }
    if (lists & 16) {
        snprintf(m->context[0].key, PROTO_TOKEN_SIZE, "scene");
        snprintf(m->context[0].value, PROTO_TOKEN_SIZE, "night");
        m->context_count = 1;
    }
    if (lists & 32) {
        snprintf(m->accelerators[0], PROTO_TOKEN_SIZE, "npu");
        m->accelerator_count = 1;
    }
}

/* The snapshot of "fam" holds, for variant "l<bits>", the lists meta_lists
 * gives those bits. */
static void check_lists(struct store *st, const unsigned *bits, size_t n)
{
    const struct store_snapshot *snap = NULL;

    ck_assert_int_eq(store_snapshot_get(st, "fam", &snap), STORE_OK);
    ck_assert_uint_eq(snap->variant_count, n);
    for (size_t i = 0; i < n; i++) {
        const struct proto_variant *v = NULL;
        struct proto_variant want;
        char name[16];

        snprintf(name, sizeof(name), "l%u", bits[i]);
        for (size_t k = 0; k < snap->variant_count; k++)
            if (strcmp(snap->variants[k].name, name) == 0)
                v = &snap->variants[k];
        ck_assert_ptr_nonnull(v);
        meta_lists(&want, v->blob_hex, bits[i]);
        ck_assert_msg(proto_variant_meta_equal(&want, v),
                      "variant %s: lists differ", name);
        ck_assert_uint_eq(v->technique_count, bits[i] & 1 ? 2 : 0);
        ck_assert_uint_eq(v->accelerator_count, bits[i] & 32 ? 1 : 0);
    }
    store_snapshot_release(snap);
}

/*
 * A snapshot reads only the lists a version has (versions.lists, written
 * when it is published), and every list of a version published before
 * that column existed (NULL): both give the lists that were published.
 */
START_TEST(test_store_snapshot_reads_published_lists)
{
    static const unsigned bits[] = {0, 1, 3, 12, 48, 63, 34};
    struct store *st = open_store(false);
    size_t n = ARRAY_SIZE(bits);

    put_family(st, "fam");
    for (size_t i = 0; i < n; i++) {
        struct proto_variant m;
        char hex[PROTO_HEX_SIZE], text[32], name[16];
        int64_t version = 0;

        snprintf(text, sizeof(text), "lists %u", bits[i]);
        upload_text(st, text, hex);
        meta_lists(&m, hex, bits[i]);
        snprintf(name, sizeof(name), "l%u", bits[i]);
        ck_assert_int_eq(store_variant_publish(st, "fam", name, &m,
                                               1700000000, &version),
                         STORE_OK);
    }
    check_lists(st, bits, n);
    store_close(st);
    if (!catalog_url) {
        /* Versions published before migration 9. */
        make_old_db("UPDATE versions SET lists = NULL;");
        st = open_store(false);
        check_lists(st, bits, n);
        store_close(st);
    }
}
END_TEST

/* ---- query plans at catalog scale ------------------------------------------ */

/* The lines of SQLite's plan for sql that scan a whole catalog table
 * (families, variants, versions), joined with "; " into out ("" when
 * none). */
static void plan_scans(sqlite3 *db, const char *sql, char *out, size_t size)
{
    static const char *const tables[] = { "families", "variants",
                                          "versions" };
    char q[4096];
    sqlite3_stmt *s = NULL;
    size_t len = 0;

    out[0] = '\0';
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    ck_assert_msg(sqlite3_prepare_v2(db, q, -1, &s, NULL) == SQLITE_OK,
                  "%s: %s", sql, sqlite3_errmsg(db));
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(s, 3);
        char word[64];

        /* "SCAN <table>" or "SCAN <alias>": resolve the alias by the
         * "<table> <alias>" it was given in the SQL text. */
        if (!d || sscanf(d, "SCAN %63s", word) != 1)
            continue;
        for (size_t t = 0; t < ARRAY_SIZE(tables); t++) {
            char as[80];

            snprintf(as, sizeof(as), "%s %s", tables[t], word);
            if (strcmp(word, tables[t]) == 0 || strstr(sql, as))
                len += (size_t)snprintf(out + len, len < size ? size - len
                                                              : 0,
                                        "%s%s (%s)", len ? "; " : "", d,
                                        tables[t]);
        }
    }
    sqlite3_finalize(s);
}

/*
 * What a select on one family reads (its snapshot, the on-demand delta
 * lookup) and the worker's manifest lookup find their rows through an
 * index: none scans every family, variant or version of the catalog. The
 * same-family lookup of an on-demand delta (store_delta_request) scanned
 * all versions under the writer's mutex: ~6M instructions a lookup on a
 * catalog of 10,000 families (README, Performance).
 */
START_TEST(test_store_select_reads_use_indexes)
{
    static const enum stmt_id ids[] = {
        STMT_FAMILY_GET, STMT_SNAP_VERSIONS, STMT_SNAP_DELTAS,
        STMT_TECH_LIST, STMT_LATENCY_LIST, STMT_ENERGY_LIST, STMT_EXIT_LIST,
        STMT_CONTEXT_LIST, STMT_ACCEL_LIST, STMT_CROSS_LIST,
        STMT_MEASURED_LATENCY_CLASSES, STMT_MEASURED_LATENCY_NTH,
        STMT_MEASURED_ENERGY_CLASSES, STMT_MEASURED_ENERGY_NTH,
        STMT_DELTA_SAME_FAMILY, STMT_DELTA_DEMAND, STMT_DELTA_STATE,
        STMT_DELTA_TOUCH, STMT_MANIFEST_OF, STMT_VARIANT_VERSION_IDS,
    };
    struct store *st = open_store(false);
    char path[512], scans[1024];
    sqlite3 *db = NULL;

    store_close(st);            /* migrated: the schema the daemon uses */
    path_in(path, sizeof(path), "catalog.db");
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
        const char *sql = store_stmt_sql(ids[i]);

        plan_scans(db, sql, scans, sizeof(scans));
        ck_assert_msg(scans[0] == '\0', "statement %d scans: %s\n%s",
                      (int)ids[i], scans, sql);
    }
    sqlite3_close(db);
}
END_TEST

/* ---- the SQL layer's binds ------------------------------------------------- */

/* check_store links with --wrap=strdup (Makefile): set to 1, the next
 * strdup fails, as when memory runs out (the PostgreSQL binds copy their
 * values with it). */
static atomic_int strdup_fail_next;
char *__real_strdup(const char *s);
char *__wrap_strdup(const char *s);

char *__wrap_strdup(const char *s)
{
    if (atomic_exchange(&strdup_fail_next, 0))
        return NULL;
    return __real_strdup(s);
}

/* A bind whose copy cannot be made fails the step (it used to run the
 * statement with that parameter NULL: a lookup answered "no such row", an
 * insert wrote NULL); after a reset the statement runs again. PostgreSQL:
 * the copy's strdup fails; SQLite: the value is over the length limit. */
START_TEST(test_db_bind_failure_fails_the_step)
{
    struct db *db = NULL;
    struct db_stmt *s = NULL;
    char err[256], path[512];

    if (catalog_url) {
        ck_assert_int_eq(db_open_postgresql(catalog_url, &db, err,
                                            sizeof(err)), 0);
    } else {
        path_in(path, sizeof(path), "binds.db");
        ck_assert_int_eq(db_open_sqlite(path, false, &db, err, sizeof(err)),
                         0);
    }
    ck_assert_int_eq(db_prepare(db, "SELECT CAST(?1 AS TEXT) IS NULL, "
                                    "CAST(?2 AS BIGINT) IS NULL", &s), 0);
    if (catalog_url)
        atomic_store(&strdup_fail_next, 1);
    else
        (void)sqlite3_limit(db_sqlite(db), SQLITE_LIMIT_LENGTH, 8);
    db_bind_text(s, 1, "longer than eight bytes");
    db_bind_int64(s, 2, 7);
    ck_assert_int_eq(atomic_load(&strdup_fail_next), 0);
    ck_assert_int_eq(db_step(s), DB_ERROR);
    ck_assert_int_eq(db_errclass(db), DB_ERR_NOMEM);
    ck_assert_ptr_nonnull(strstr(db_errmsg(db), "binding"));
    db_reset(s);
    if (catalog_url) {
        /* A number's copy too. */
        db_bind_text(s, 1, "x");
        atomic_store(&strdup_fail_next, 1);
        db_bind_int64(s, 2, 7);
        ck_assert_int_eq(db_step(s), DB_ERROR);
        ck_assert_int_eq(db_errclass(db), DB_ERR_NOMEM);
        db_reset(s);
    }
    db_bind_text(s, 1, "short");
    db_bind_int64(s, 2, 7);
    ck_assert_int_eq(db_step(s), DB_ROW);
    ck_assert_int_eq(db_column_int64(s, 0), 0);
    ck_assert_int_eq(db_column_int64(s, 1), 0);
    db_reset(s);
    /* SQL NULL is still a NULL, not a failure. */
    db_bind_null(s, 1);
    db_bind_text(s, 2, NULL);
    ck_assert_int_eq(db_step(s), DB_ROW);
    ck_assert_int_eq(db_column_int64(s, 0), 1);
    ck_assert_int_eq(db_column_int64(s, 1), 1);
    db_finalize(s);
    db_close(db);
}
END_TEST

/* PostgreSQL: the catalog's generation, read on a connection of our own. */
static uint64_t pg_generation(void)
{
    PGconn *c = PQconnectdb(catalog_url);
    PGresult *r;
    uint64_t gen;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PostgreSQL: %s",
                  PQerrorMessage(c));
    r = PQexec(c, "SELECT generation FROM catalog_generation WHERE id = 1");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    gen = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return gen;
}

static uint64_t noted_generation(struct store *st)
{
    uint64_t gen;

    pthread_mutex_lock(&st->watch_mu);
    gen = st->db_generation;
    pthread_mutex_unlock(&st->watch_mu);
    return gen;
}

/*
 * PostgreSQL: every write of ours notes the generation it left, so that
 * the watcher never takes it for another daemon's (a second refresh, and
 * a local generation that moved later, after the write had returned:
 * test_store_variant_publish_failures saw that now and then). A family
 * delete and a variant retire were autocommitted, not noted. The watcher
 * is stopped, so only the writer notes anything here.
 */
START_TEST(test_store_own_writes_noted)
{
    struct store *st = open_store(false);
    char hex[PROTO_HEX_SIZE];

    store_watch_stop(st);
    put_family(st, "fam");
    ck_assert_uint_eq(noted_generation(st), pg_generation());
    put_family(st, "gone");
    ck_assert_int_eq(store_family_delete(st, "gone"), STORE_OK);
    ck_assert_uint_eq(noted_generation(st), pg_generation());
    upload_text(st, "present", hex);
    ck_assert_int_eq(publish(st, "fam", "v", hex, 100), 1);
    ck_assert_uint_eq(noted_generation(st), pg_generation());
    ck_assert_int_eq(store_variant_retire(st, "fam", "v"), STORE_OK);
    ck_assert_uint_eq(noted_generation(st), pg_generation());
    /* Not found: nothing written, nothing to note. */
    ck_assert_int_eq(store_family_delete(st, "gone"), STORE_NOT_FOUND);
    ck_assert_int_eq(store_variant_retire(st, "fam", "v"), STORE_NOT_FOUND);
    ck_assert_uint_eq(noted_generation(st), pg_generation());
    store_close(st);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create(catalog_url ? "store (PostgreSQL catalog)"
                                        : "store");
    TCase *tc;

    tc = tcase_create("open");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_store_open_reopen_keeps_data);
    tcase_add_test(tc, test_store_open_refuses_a_second_opener);
    if (!catalog_url) {
        /* SQLite's file and PRAGMA user_version. */
        tcase_add_test(tc, test_store_open_migrates_empty_file);
        tcase_add_test(tc, test_store_open_migrates_version_zero);
        tcase_add_test(tc, test_store_open_newer_schema_refused);
    }
    tcase_add_test(tc, test_store_open_cleans_tmp);
    suite_add_tcase(s, tc);

    tc = tcase_create("catalog");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_store_family_lifecycle);
    tcase_add_test(tc, test_store_family_list_empty);
    tcase_add_test(tc, test_store_variant_publish_versions);
    tcase_add_test(tc, test_store_variant_publish_failures);
    tcase_add_test(tc, test_store_variant_retire);
    tcase_add_test(tc, test_store_variant_versions);
    if (catalog_url)
        tcase_add_test(tc, test_store_own_writes_noted);
    suite_add_tcase(s, tc);

    tc = tcase_create("snapshot");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    /* Hundreds of commits at synchronous = FULL: seconds on a busy disk. */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_store_snapshot_rollout);
    tcase_add_test(tc, test_store_snapshot_lists_round_trip);
    tcase_add_test(tc, test_store_snapshot_cached_until_write);
    tcase_add_test(tc, test_store_snapshot_cache_many_families);
    tcase_add_test(tc, test_store_snapshot_concurrent_readers);
    suite_add_tcase(s, tc);

    tc = tcase_create("blob");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_store_upload_dedup);
    tcase_add_test(tc, test_store_upload_digest_mismatch);
    tcase_add_test(tc, test_store_upload_too_large);
    tcase_add_test(tc, test_store_upload_abort);
    tcase_add_test(tc, test_store_upload_check);
    tcase_add_test(tc, test_store_open_rejects_bad_hex);
    suite_add_tcase(s, tc);

    tc = tcase_create("worker");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_store_worker_makes_delta);
    tcase_add_test(tc, test_store_worker_resumes_after_crash);
    tcase_add_test(tc, test_store_worker_rejects_big_delta);
    tcase_add_test(tc, test_store_worker_rejects_against_zstd_size);
    tcase_add_test(tc, test_store_worker_cross_variant_deltas);
    tcase_add_test(tc, test_store_worker_zstd_copy);
    tcase_add_test(tc, test_store_worker_wait_idle_without_work);
    tcase_add_test(tc, test_store_worker_close_while_busy);
    suite_add_tcase(s, tc);

    tc = tcase_create("reads");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_store_reads_not_blocked_by_writer);
    tcase_add_test(tc, test_store_snapshot_single_flight);
    tcase_add_test(tc, test_store_snapshot_single_flight_unknown_family);
    tcase_add_test(tc, test_store_snapshot_reads_published_lists);
    tcase_add_test(tc, test_store_snapshot_cache_holds_many_families);
    suite_add_tcase(s, tc);

    /* SQLite's plans (PostgreSQL plans by its statistics). */
    if (!catalog_url) {
        tc = tcase_create("plans");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_add_test(tc, test_store_select_reads_use_indexes);
        suite_add_tcase(s, tc);
    }

    tc = tcase_create("db");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_db_bind_failure_fails_the_step);
    suite_add_tcase(s, tc);

    tc = tcase_create("retry");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_store_worker_retries_transient_failure);
    tcase_add_test(tc, test_store_worker_retries_bounded_then_admin_retry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;

    catalog_url = getenv("MODELD_TEST_CATALOG");
    if (catalog_url && !catalog_url[0])
        catalog_url = NULL;
    sr = srunner_create(store_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
