/*
 * The catalog: families, variants and their versions (SQLite or
 * PostgreSQL, through store/db.h), and the immutable, reference-counted
 * snapshots that selection reads. A snapshot is read in one read
 * transaction on a read connection (store/reader.c) and cached per family
 * until the generation moves (a write here, or another daemon's write seen
 * by store/watch.c). A hit takes only the short cache mutex; a miss reads
 * beside the writer (WAL) and never waits for its commits, and concurrent
 * misses for one family share one read. An outdated snapshot stays cached
 * until it is replaced: when the catalog server cannot be reached, it is
 * what selects get.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

struct snap_priv {
    struct store_snapshot pub;            /* first: the caller's pointer */
    atomic_uint refs;
    void (*derived_free)(void *derived);  /* frees pub.derived */
};

struct cross_target {
    char hex[PROTO_HEX_SIZE];
    uint64_t size_bytes;
};

/* versions.lists: which of a version's lists have rows, written when it
 * is published (migration 9), so that a snapshot reads only those; NULL
 * for versions published before, read as all (STMT_SNAP_VERSIONS). */
enum {
    LISTS_TECHNIQUES = 1 << 0,
    LISTS_LATENCIES = 1 << 1,
    LISTS_ENERGIES = 1 << 2,
    LISTS_EXITS = 1 << 3,
    LISTS_CONTEXT = 1 << 4,
    LISTS_ACCELERATORS = 1 << 5,
    LISTS_ALL = (1 << 6) - 1,
};

/*
 * A version's six lists, one child table each, as descriptors: where the
 * list's count and items are in struct proto_variant, how many it holds
 * at most, and its columns in SQL order after (version_id, pos) (a TEXT
 * from a char array, or a REAL from a double). One loop writes them all
 * (insert_lists), one reads them (read_lists), and which have rows is
 * lists_of. The macros check the field's type at compile time.
 */
enum list_col_type { LIST_COL_NONE, LIST_COL_TEXT, LIST_COL_DOUBLE };

struct list_col {
    enum list_col_type type;
    size_t off;                   /* in the item */
    size_t size;                  /* of the char array (TEXT) */
};

struct list_kind {
    unsigned flag;                /* LISTS_* */
    enum stmt_id insert_stmt;     /* INSERT (version_id, pos, cols) */
    enum stmt_id list_stmt;       /* SELECT cols WHERE version_id ORDER BY pos */
    const char *inserting;        /* for errors: "inserting <what>" */
    const char *reading;          /* for errors: "reading <what>" */
    size_t count_off;             /* the size_t count in proto_variant */
    size_t items_off;             /* the item array in proto_variant */
    size_t item_size;
    size_t max;
    struct list_col col[2];
};

#define LIST_TEXT(type, field)                                              \
    { LIST_COL_TEXT,                                                       \
      _Generic(((type *)0)->field, char *: offsetof(type, field)),         \
      sizeof(((type *)0)->field) }
#define LIST_DOUBLE(type, field)                                            \
    { LIST_COL_DOUBLE,                                                     \
      _Generic(((type *)0)->field, double: offsetof(type, field)), 0 }
/* A list of plain tokens: the item is the char array itself. */
#define LIST_TOKEN { LIST_COL_TEXT, 0, PROTO_TOKEN_SIZE }
#define LIST_OF(field, count, nmax)                                         \
    offsetof(struct proto_variant, count),                                 \
    offsetof(struct proto_variant, field),                                 \
    sizeof(((struct proto_variant *)0)->field[0]), nmax

static const struct list_kind list_kinds[] = {
    { LISTS_TECHNIQUES, STMT_TECH_INSERT, STMT_TECH_LIST,
      "inserting technique", "reading techniques",
      LIST_OF(techniques, technique_count, PROTO_MAX_TECHNIQUES),
      { LIST_TOKEN } },
    { LISTS_LATENCIES, STMT_LATENCY_INSERT, STMT_LATENCY_LIST,
      "inserting latency", "reading latencies",
      LIST_OF(latency_ms, latency_count, PROTO_MAX_LATENCIES),
      { LIST_TEXT(struct proto_class_value, device_class),
        LIST_DOUBLE(struct proto_class_value, value) } },
    { LISTS_ENERGIES, STMT_ENERGY_INSERT, STMT_ENERGY_LIST,
      "inserting energy", "reading energies",
      LIST_OF(energy_mj, energy_count, PROTO_MAX_LATENCIES),
      { LIST_TEXT(struct proto_class_value, device_class),
        LIST_DOUBLE(struct proto_class_value, value) } },
    { LISTS_EXITS, STMT_EXIT_INSERT, STMT_EXIT_LIST,
      "inserting exit", "reading exits",
      LIST_OF(exits, exit_count, PROTO_MAX_EXITS),
      { LIST_DOUBLE(struct proto_exit, flops),
        LIST_DOUBLE(struct proto_exit, accuracy) } },
    { LISTS_CONTEXT, STMT_CONTEXT_INSERT, STMT_CONTEXT_LIST,
      "inserting context", "reading context",
      LIST_OF(context, context_count, PROTO_MAX_TAGS),
      { LIST_TEXT(struct proto_tag, key),
        LIST_TEXT(struct proto_tag, value) } },
    { LISTS_ACCELERATORS, STMT_ACCEL_INSERT, STMT_ACCEL_LIST,
      "inserting accelerator", "reading accelerators",
      LIST_OF(accelerators, accelerator_count, PROTO_MAX_ACCELERATORS),
      { LIST_TOKEN } },
};

/* A snapshot version's row id and which of its lists to read. */
struct version_ref {
    int64_t id;
    unsigned lists;
};

/* A list's count in m. */
static size_t list_count(const struct list_kind *lk,
                         const struct proto_variant *m)
{
    return *(const size_t *)(const void *)((const char *)m + lk->count_off);
}

static unsigned lists_of(const struct proto_variant *m)
{
    unsigned lists = 0;

    for (size_t k = 0; k < ARRAY_SIZE(list_kinds); k++)
        if (list_count(&list_kinds[k], m) > 0)
            lists |= list_kinds[k].flag;
    return lists;
}

static void col_text(struct db_stmt *s, int col, char *out, size_t size)
{
    const char *t = db_column_text(s, col);

    snprintf(out, size, "%s", t ? t : "");
}

static void bind_text(struct db_stmt *s, int idx, const char *text)
{
    db_bind_text(s, idx, text);
}

/* ---- families ------------------------------------------------------------ */

/* Looks a family up on connection c (the writer under db_mu, or a
 * reader); *out_deleted tells whether it is deleted. STORE_NOT_FOUND when
 * there is no row. */
static enum store_status family_find(struct store *st, struct store_conn *c,
                                     const char *name, int64_t *out_id,
                                     bool *out_deleted,
                                     struct proto_family *out_f)
{
    struct db_stmt *s = store_conn_stmt(c, STMT_FAMILY_GET);
    enum store_status rc = STORE_OK;
    int src;

    bind_text(s, 1, name);
    src = db_step(s);
    if (src == DB_ROW) {
        *out_id = db_column_int64(s, 0);
        *out_deleted = db_column_int64(s, 1) != 0;
        if (out_f) {
            memset(out_f, 0, sizeof(*out_f));
            snprintf(out_f->name, sizeof(out_f->name), "%s", name);
            col_text(s, 2, out_f->task, sizeof(out_f->task));
            col_text(s, 3, out_f->description, sizeof(out_f->description));
        }
    } else if (src == DB_DONE) {
        rc = STORE_NOT_FOUND;
    } else {
        rc = store_err_conn(st, c->db, "looking up family", src);
    }
    db_reset(s);
    return rc;
}

enum store_status store_family_put(struct store *st, const char *name,
                                   const struct proto_family *f,
                                   bool *out_created)
{
    struct db_stmt *s;
    enum store_status rc;
    int64_t id = 0;
    bool deleted = false;
    bool created;

    pthread_mutex_lock(&st->db_mu);
    rc = store_tx_begin(st);
    if (rc != STORE_OK)
        goto out;
    rc = family_find(st, &st->writer, name, &id, &deleted, NULL);
    if (rc == STORE_OK) {
        created = deleted;
        s = store_stmt(st, STMT_FAMILY_UPDATE);
        db_bind_int64(s, 1, id);
        bind_text(s, 2, f->task);
        bind_text(s, 3, f->description);
        rc = store_stmt_run(st, STMT_FAMILY_UPDATE, "updating family");
    } else if (rc == STORE_NOT_FOUND) {
        created = true;
        s = store_stmt(st, STMT_FAMILY_INSERT);
        bind_text(s, 1, name);
        bind_text(s, 2, f->task);
        bind_text(s, 3, f->description);
        rc = store_stmt_run(st, STMT_FAMILY_INSERT, "creating family");
    }
    if (rc == STORE_OK)
        rc = store_tx_commit(st);
    if (rc != STORE_OK) {
        store_tx_rollback(st);
        goto out;
    }
    store_generation_bump(st);
    *out_created = created;
out:
    pthread_mutex_unlock(&st->db_mu);
    return rc;
}

/*
 * The end of a one-statement write (begun with store_tx_begin): commits
 * it when it changed a row (STORE_NOT_FOUND when none) and moves the
 * generation. In a transaction, not autocommitted: on PostgreSQL the
 * commit notes the generation our own write left (store_tx_commit), so
 * the watcher does not take it for another daemon's and refresh again.
 */
static enum store_status one_write_end(struct store *st,
                                       enum store_status rc, int64_t changes)
{
    if (rc == STORE_OK && changes == 0)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_OK)
        rc = store_tx_commit(st);
    if (rc != STORE_OK) {
        store_tx_rollback(st);
        return rc;
    }
    store_generation_bump(st);
    return STORE_OK;
}

enum store_status store_family_delete(struct store *st, const char *name)
{
    struct db_stmt *s;
    enum store_status rc;

    int64_t changes = 0;

    pthread_mutex_lock(&st->db_mu);
    rc = store_tx_begin(st);
    if (rc == STORE_OK) {
        s = store_stmt(st, STMT_FAMILY_DELETE);
        bind_text(s, 1, name);
        rc = store_stmt_run(st, STMT_FAMILY_DELETE, "deleting family");
        changes = db_changes(s);
    }
    rc = one_write_end(st, rc, changes);
    if (rc == STORE_NOT_FOUND)
        store_err_text("family %s not found", name);
    pthread_mutex_unlock(&st->db_mu);
    return rc;
}

enum store_status store_family_list(struct store *st,
                                    struct proto_family **out,
                                    size_t *out_count)
{
    struct proto_family *list = NULL;
    size_t count = 0;
    size_t cap = 0;
    struct store_conn *c = store_reader_acquire(st);
    struct db_stmt *s;
    enum store_status rc = STORE_OK;
    int src;

    s = store_conn_stmt(c, STMT_FAMILY_LIST);
    while ((src = db_step(s)) == DB_ROW) {
        struct proto_family *f;

        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            struct proto_family *n = realloc(list, ncap * sizeof(*list));

            if (!n) {
                store_err_text("listing families: out of memory");
                rc = STORE_NO_MEMORY;
                goto out;
            }
            list = n;
            cap = ncap;
        }
        f = &list[count++];
        memset(f, 0, sizeof(*f));
        col_text(s, 1, f->name, sizeof(f->name));
        col_text(s, 2, f->task, sizeof(f->task));
        col_text(s, 3, f->description, sizeof(f->description));
        f->variant_count = (size_t)db_column_int64(s, 4);
    }
    if (src != DB_DONE)
        rc = store_err_conn(st, c->db, "listing families", src);
out:
    db_reset(s);
    store_reader_release(st, c);
    if (rc != STORE_OK) {
        free(list);
        return rc;
    }
    if (!list) {
        list = calloc(1, sizeof(*list));
        if (!list) {
            store_err_text("listing families: out of memory");
            return STORE_NO_MEMORY;
        }
    }
    *out = list;
    *out_count = count;
    return STORE_OK;
}

/* ---- publish ------------------------------------------------------------- */

/* The version's lists, one child table each (list_kinds). Caller holds
 * db_mu. */
static enum store_status insert_lists(struct store *st, int64_t ver_id,
                                      const struct proto_variant *m)
{
    enum store_status rc = STORE_OK;

    for (size_t k = 0; rc == STORE_OK && k < ARRAY_SIZE(list_kinds); k++) {
        const struct list_kind *lk = &list_kinds[k];
        const char *items = (const char *)m + lk->items_off;
        size_t count = list_count(lk, m);

        for (size_t i = 0; rc == STORE_OK && i < count; i++) {
            const char *item = items + i * lk->item_size;
            struct db_stmt *s = store_stmt(st, lk->insert_stmt);

            db_bind_int64(s, 1, ver_id);
            db_bind_int64(s, 2, (int64_t)i);
            for (int j = 0; j < 2; j++) {
                const struct list_col *col = &lk->col[j];

                if (col->type == LIST_COL_TEXT)
                    bind_text(s, 3 + j, item + col->off);
                else if (col->type == LIST_COL_DOUBLE)
                    db_bind_double(s, 3 + j, *(const double *)(const void *)
                                                 (item + col->off));
            }
            rc = store_stmt_run(st, lk->insert_stmt, lk->inserting);
        }
    }
    return rc;
}

/* Queues one delta job; *queued counts the rows it added (the pending
 * counter moves only once the transaction commits). */
static enum store_status queue_delta(struct store *st, const char *from_hex,
                                     const char *to_hex, int64_t *queued)
{
    struct db_stmt *s = store_stmt(st, STMT_DELTA_QUEUE);
    enum store_status rc;

    bind_text(s, 1, from_hex);
    bind_text(s, 2, to_hex);
    rc = store_stmt_run(st, STMT_DELTA_QUEUE, "queueing delta");
    if (rc == STORE_OK)
        *queued += db_changes(s);
    return rc;
}

/* Deltas into the new version from each of the variant's last K versions
 * (the ones a UE is likely to hold); older ones are made on demand. */
static enum store_status queue_recent(struct store *st, int64_t variant_id,
                                      int64_t version, const char *hex,
                                      int64_t *queued)
{
    char (*from)[PROTO_HEX_SIZE] = NULL;
    size_t count = 0, cap = 0;
    struct db_stmt *s = store_stmt(st, STMT_VERSIONS_RECENT);
    enum store_status rc = STORE_OK;
    int src;

    db_bind_int64(s, 1, variant_id);
    db_bind_int64(s, 2, version - (int64_t)st->opt.delta_versions);
    while ((src = db_step(s)) == DB_ROW) {
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            char (*n)[PROTO_HEX_SIZE] = realloc(from, ncap * sizeof(*n));

            if (!n) {
                store_err_text("queueing deltas: out of memory");
                rc = STORE_NO_MEMORY;
                break;
            }
            from = n;
            cap = ncap;
        }
        col_text(s, 0, from[count++], PROTO_HEX_SIZE);
    }
    if (rc == STORE_OK && src != DB_DONE)
        rc = store_err_db(st, "listing recent versions", src);
    db_reset(s);
    for (size_t i = 0; rc == STORE_OK && i < count; i++)
        if (strcmp(from[i], hex) != 0)
            rc = queue_delta(st, from[i], hex, queued);
    free(from);
    return rc;
}

/* Deltas between the new blob and the newest version of each other live
 * variant of the family, both ways, when both are small enough. */
static enum store_status queue_cross(struct store *st, int64_t family_id,
                                     int64_t variant_id, const char *hex,
                                     uint64_t size_bytes, int64_t *queued)
{
    struct cross_target *targets = NULL;
    size_t count = 0;
    size_t cap = 0;
    struct db_stmt *s;
    enum store_status rc = STORE_OK;
    int src;

    if (size_bytes > st->opt.delta_cross_max_bytes)
        return STORE_OK;
    s = store_stmt(st, STMT_CROSS_LIST);
    db_bind_int64(s, 1, family_id);
    db_bind_int64(s, 2, variant_id);
    while ((src = db_step(s)) == DB_ROW) {
        uint64_t size = (uint64_t)db_column_int64(s, 1);

        if (size > st->opt.delta_cross_max_bytes)
            continue;
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            struct cross_target *n = realloc(targets, ncap * sizeof(*n));

            if (!n) {
                store_err_text("queueing deltas: out of memory");
                rc = STORE_NO_MEMORY;
                break;
            }
            targets = n;
            cap = ncap;
        }
        col_text(s, 0, targets[count].hex, PROTO_HEX_SIZE);
        targets[count++].size_bytes = size;
    }
    if (rc == STORE_OK && src != DB_DONE)
        rc = store_err_db(st, "listing variants for deltas", src);
    db_reset(s);
    for (size_t i = 0; rc == STORE_OK && i < count; i++) {
        if (strcmp(targets[i].hex, hex) == 0)
            continue;
        rc = queue_delta(st, targets[i].hex, hex, queued);
        if (rc == STORE_OK)
            rc = queue_delta(st, hex, targets[i].hex, queued);
    }
    free(targets);
    return rc;
}

static void read_version_row(struct db_stmt *s, const char *family,
                             struct proto_variant *v);
static enum store_status read_lists(struct store *st, struct store_conn *c,
                                    int64_t ver_id, unsigned lists,
                                    struct proto_variant *v);

/* Whether meta equals the metadata of the variant's latest version (both
 * live); *out_version is that version. Caller holds db_mu. */
static enum store_status latest_equals(struct store *st, int64_t family_id,
                                       const char *family,
                                       const char *variant,
                                       const struct proto_variant *meta,
                                       bool *out_equal,
                                       int64_t *out_version)
{
    struct proto_variant *latest = calloc(1, sizeof(*latest));
    struct db_stmt *s = store_stmt(st, STMT_VERSION_LATEST_ROW);
    enum store_status rc = STORE_OK;
    bool live = false;
    int64_t ver_id = 0;
    int src;

    *out_equal = false;
    if (!latest) {
        store_err_text("publish: out of memory");
        return STORE_NO_MEMORY;
    }
    db_bind_int64(s, 1, family_id);
    bind_text(s, 2, variant);
    src = db_step(s);
    if (src == DB_ROW) {
        read_version_row(s, family, latest);
        ver_id = db_column_int64(s, 0);
        live = !latest->retired && db_column_int64(s, 16) == 0;
    }
    db_reset(s);
    if (src != DB_ROW && src != DB_DONE)
        rc = store_err_db(st, "reading the latest version", src);
    if (rc == STORE_OK && live)
        rc = read_lists(st, &st->writer, ver_id, LISTS_ALL, latest);
    if (rc == STORE_OK && live && proto_variant_meta_equal(meta, latest)) {
        *out_equal = true;
        *out_version = latest->version;
    }
    free(latest);
    return rc;
}

/* The publish transaction's body. Caller holds db_mu inside BEGIN. With
 * out_created, a meta equal to the latest version's publishes nothing. */
static enum store_status publish_tx(struct store *st, const char *family,
                                    const char *variant,
                                    const struct proto_variant *meta,
                                    int64_t now_s, int64_t *out_version,
                                    int64_t *queued, bool *out_created)
{
    char prev_hex[PROTO_HEX_SIZE] = "";
    int64_t family_id = 0;
    int64_t variant_id = 0;
    int64_t version_id = 0;
    int64_t version = 1;
    uint64_t size_bytes = 0;
    bool deleted = false;
    struct db_stmt *s;
    enum store_status rc;
    int src;

    rc = family_find(st, &st->writer, family, &family_id, &deleted,
                     NULL);
    if (rc == STORE_OK && deleted)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        store_err_text("family %s not found", family);
    if (rc != STORE_OK)
        return rc;

    s = store_stmt(st, STMT_BLOB_GET);
    bind_text(s, 1, meta->blob_hex);
    src = db_step(s);
    if (src == DB_ROW)
        size_bytes = (uint64_t)db_column_int64(s, 0);
    db_reset(s);
    if (src == DB_DONE) {
        store_err_text("blob sha256:%s not uploaded", meta->blob_hex);
        return STORE_BLOB_MISSING;
    }
    if (src != DB_ROW)
        return store_err_db(st, "looking up blob", src);
    if (meta->weights_manifest_hex[0]) {
        s = store_stmt(st, STMT_BLOB_GET);
        bind_text(s, 1, meta->weights_manifest_hex);
        src = db_step(s);
        db_reset(s);
        if (src == DB_DONE) {
            store_err_text("weights_manifest sha256:%s not uploaded",
                           meta->weights_manifest_hex);
            return STORE_BLOB_MISSING;
        }
        if (src != DB_ROW)
            return store_err_db(st, "looking up the manifest", src);
    }

    if (out_created) {
        bool same = false;

        rc = latest_equals(st, family_id, family, variant, meta, &same,
                           out_version);
        if (rc != STORE_OK)
            return rc;
        *out_created = !same;
        if (same)
            return STORE_OK;
    }

    s = store_stmt(st, STMT_VARIANT_UPSERT);
    db_bind_int64(s, 1, family_id);
    bind_text(s, 2, variant);
    rc = store_stmt_run(st, STMT_VARIANT_UPSERT, "creating variant");
    if (rc != STORE_OK)
        return rc;
    s = store_stmt(st, STMT_VARIANT_ID);
    db_bind_int64(s, 1, family_id);
    bind_text(s, 2, variant);
    src = db_step(s);
    if (src == DB_ROW)
        variant_id = db_column_int64(s, 0);
    db_reset(s);
    if (src != DB_ROW)
        return store_err_db(st, "looking up variant", src);

    s = store_stmt(st, STMT_VERSION_LAST);
    db_bind_int64(s, 1, variant_id);
    src = db_step(s);
    if (src == DB_ROW) {
        version = db_column_int64(s, 0) + 1;
        col_text(s, 1, prev_hex, sizeof(prev_hex));
    }
    db_reset(s);
    if (src != DB_ROW && src != DB_DONE)
        return store_err_db(st, "looking up last version", src);

    s = store_stmt(st, STMT_VERSION_INSERT);
    db_bind_int64(s, 1, variant_id);
    db_bind_int64(s, 2, version);
    bind_text(s, 3, meta->blob_hex);
    bind_text(s, 4, meta->format);
    db_bind_int64(s, 5, (int64_t)meta->params);
    db_bind_double(s, 6, meta->flops);
    db_bind_double(s, 7, meta->accuracy);
    db_bind_int64(s, 8, (int64_t)meta->memory_bytes);
    db_bind_int64(s, 9, (int64_t)size_bytes);
    db_bind_int64(s, 10, (int64_t)meta->rollout_percent);
    db_bind_int64(s, 11, now_s);
    if (meta->weights_manifest_hex[0])
        bind_text(s, 12, meta->weights_manifest_hex);
    db_bind_int64(s, 13, (int64_t)lists_of(meta));
    src = db_step(s);
    if (src == DB_ROW)
        version_id = db_column_int64(s, 0);
    db_reset(s);
    if (src != DB_ROW)
        return store_err_db(st, "inserting version", src);
    rc = insert_lists(st, version_id, meta);
    if (rc != STORE_OK)
        return rc;

    if (prev_hex[0])
        rc = queue_recent(st, variant_id, version, meta->blob_hex, queued);
    if (rc == STORE_OK && st->opt.tensor_coding) {
        s = store_stmt(st, STMT_BG_QUEUE);
        bind_text(s, 1, meta->blob_hex);
        rc = store_stmt_run(st, STMT_BG_QUEUE, "queueing the bg copy");
    }
    if (rc == STORE_OK && st->opt.delta_cross_variants)
        rc = queue_cross(st, family_id, variant_id, meta->blob_hex,
                         size_bytes, queued);
    if (rc == STORE_OK)
        *out_version = version;
    return rc;
}

enum store_status store_variant_publish(struct store *st, const char *family,
                                        const char *variant,
                                        const struct proto_variant *meta,
                                        int64_t now_s, int64_t *out_version)
{
    return store_variant_put(st, family, variant, meta, now_s, out_version,
                             NULL);
}

enum store_status store_variant_put(struct store *st, const char *family,
                                    const char *variant,
                                    const struct proto_variant *meta,
                                    int64_t now_s, int64_t *out_version,
                                    bool *out_created)
{
    enum store_status rc;
    int64_t version = 0;
    int64_t queued = 0;
    bool created = true;

    if (!proto_hex_is_valid(meta->blob_hex,
                            strnlen(meta->blob_hex, PROTO_HEX_SIZE))) {
        store_err_text("publish: invalid blob digest");
        return STORE_BLOB_MISSING;
    }
    pthread_mutex_lock(&st->db_mu);
    rc = store_tx_begin(st);
    if (rc == STORE_OK) {
        rc = publish_tx(st, family, variant, meta, now_s, &version,
                        &queued, out_created ? &created : NULL);
        if (rc == STORE_OK)
            rc = store_tx_commit(st);
        if (rc != STORE_OK) {
            store_tx_rollback(st);
        } else {
            atomic_fetch_add(&st->deltas_pending_now, queued);
            if (created)
                store_generation_bump(st);
        }
    }
    pthread_mutex_unlock(&st->db_mu);
    if (rc != STORE_OK)
        return rc;
    if (created)
        store_worker_kick(st);
    *out_version = version;
    if (out_created)
        *out_created = created;
    return STORE_OK;
}

enum store_status store_variant_retire(struct store *st, const char *family,
                                       const char *variant)
{
    struct db_stmt *s;
    enum store_status rc;

    int64_t changes = 0;

    pthread_mutex_lock(&st->db_mu);
    rc = store_tx_begin(st);
    if (rc == STORE_OK) {
        s = store_stmt(st, STMT_VARIANT_RETIRE);
        bind_text(s, 1, family);
        bind_text(s, 2, variant);
        rc = store_stmt_run(st, STMT_VARIANT_RETIRE, "retiring variant");
        changes = db_changes(s);
    }
    rc = one_write_end(st, rc, changes);
    if (rc == STORE_NOT_FOUND)
        store_err_text("variant %s/%s not found", family, variant);
    pthread_mutex_unlock(&st->db_mu);
    return rc;
}

/* ---- snapshots ----------------------------------------------------------- */

static void snap_free(struct snap_priv *p)
{
    if (!p)
        return;
    if (p->pub.derived && p->derived_free)
        p->derived_free((void *)(uintptr_t)p->pub.derived);
    free(p->pub.variants);
    free(p->pub.latest);
    free(p->pub.deltas);
    free(p->pub.older);
    free(p);
}

void store_snapshot_release(const struct store_snapshot *snap)
{
    /* The snapshot is const to its readers only; pub is p's first member. */
    struct snap_priv *p = (struct snap_priv *)(uintptr_t)snap;

    if (p && atomic_fetch_sub(&p->refs, 1) == 1)
        snap_free(p);
}

static void snap_ref(const struct store_snapshot *snap)
{
    struct snap_priv *p = (struct snap_priv *)(uintptr_t)snap;

    atomic_fetch_add(&p->refs, 1);
}

/* Grows the variants, latest and ids arrays together. */
static int snap_grow(struct store_snapshot *s, struct version_ref **ids,
                     size_t *cap)
{
    size_t ncap = *cap ? 2 * *cap : 8;
    struct proto_variant *v = realloc(s->variants, ncap * sizeof(*v));
    bool *l;
    struct version_ref *i;

    if (!v)
        return -1;
    s->variants = v;
    l = realloc(s->latest, ncap * sizeof(*l));
    if (!l)
        return -1;
    s->latest = l;
    i = realloc(*ids, ncap * sizeof(*i));
    if (!i)
        return -1;
    *ids = i;
    *cap = ncap;
    return 0;
}

static void read_version_row(struct db_stmt *s, const char *family,
                             struct proto_variant *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->family, sizeof(v->family), "%s", family);
    col_text(s, 1, v->name, sizeof(v->name));
    v->version = db_column_int64(s, 2);
    col_text(s, 3, v->blob_hex, sizeof(v->blob_hex));
    v->size_bytes = (uint64_t)db_column_int64(s, 4);
    v->created_s = db_column_int64(s, 5);
    col_text(s, 6, v->format, sizeof(v->format));
    v->params = (uint64_t)db_column_int64(s, 7);
    v->flops = db_column_double(s, 8);
    v->accuracy = db_column_double(s, 9);
    v->memory_bytes = (uint64_t)db_column_int64(s, 10);
    v->rollout_percent = (unsigned)db_column_int64(s, 11);
    v->paused = db_column_int64(s, 12) != 0;
    v->retired = db_column_int64(s, 13) != 0;
    col_text(s, 14, v->weights_manifest_hex, sizeof(v->weights_manifest_hex));
    v->bg_size_bytes = (uint64_t)db_column_int64(s, 15);
}

/* Fills a version's lists from the child tables, on connection c; only
 * those lists names (LISTS_*): the others are empty. A list holds at most
 * its max items; rows past it are not read. */
static enum store_status read_lists(struct store *st, struct store_conn *c,
                                    int64_t ver_id, unsigned lists,
                                    struct proto_variant *v)
{
    for (size_t k = 0; k < ARRAY_SIZE(list_kinds); k++) {
        const struct list_kind *lk = &list_kinds[k];
        size_t *count = (size_t *)(void *)((char *)v + lk->count_off);
        char *items = (char *)v + lk->items_off;
        struct db_stmt *s;
        int src;

        if (!(lists & lk->flag))
            continue;
        s = store_conn_stmt(c, lk->list_stmt);
        db_bind_int64(s, 1, ver_id);
        while ((src = db_step(s)) == DB_ROW && *count < lk->max) {
            char *item = items + (*count)++ * lk->item_size;

            for (int j = 0; j < 2; j++) {
                const struct list_col *col = &lk->col[j];

                if (col->type == LIST_COL_TEXT)
                    col_text(s, j, item + col->off, col->size);
                else if (col->type == LIST_COL_DOUBLE)
                    *(double *)(void *)(item + col->off) =
                        db_column_double(s, j);
            }
        }
        db_reset(s);
        if (src != DB_DONE && src != DB_ROW)
            return store_err_conn(st, c->db, lk->reading, src);
    }
    return STORE_OK;
}

enum store_status store_variant_versions(struct store *st,
                                         const char *family,
                                         const char *variant,
                                         struct proto_variant **out,
                                         size_t *out_count)
{
    struct proto_variant *list = NULL;
    int64_t *ids = NULL;
    size_t count = 0;
    size_t cap = 0;
    int64_t family_id = 0;
    bool deleted = false;
    struct store_conn *c = store_reader_acquire(st);
    struct db_stmt *s;
    enum store_status rc;
    int src = DB_DONE;

    /* One read transaction: the versions and their lists agree. */
    rc = store_conn_run(st, c, STMT_READ_BEGIN, "BEGIN (read)");
    if (rc != STORE_OK)
        goto out_release;
    rc = family_find(st, c, family, &family_id, &deleted, NULL);
    if (rc == STORE_OK && deleted)
        rc = STORE_NOT_FOUND;
    if (rc != STORE_OK)
        goto out;
    s = store_conn_stmt(c, STMT_VARIANT_VERSIONS);
    db_bind_int64(s, 1, family_id);
    bind_text(s, 2, variant);
    while ((src = db_step(s)) == DB_ROW) {
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            struct proto_variant *nl = realloc(list, ncap * sizeof(*nl));
            int64_t *ni;

            if (nl)
                list = nl;
            ni = nl ? realloc(ids, ncap * sizeof(*ni)) : NULL;
            if (!ni) {
                store_err_text("listing versions: out of memory");
                rc = STORE_NO_MEMORY;
                break;
            }
            ids = ni;
            cap = ncap;
        }
        read_version_row(s, family, &list[count]);
        ids[count++] = db_column_int64(s, 0);
    }
    if (rc == STORE_OK && src != DB_DONE)
        rc = store_err_conn(st, c->db, "listing versions", src);
    db_reset(s);
    for (size_t i = 0; rc == STORE_OK && i < count; i++)
        rc = read_lists(st, c, ids[i], LISTS_ALL, &list[i]);
    if (rc == STORE_OK && count == 0)
        rc = STORE_NOT_FOUND;
out:
    store_conn_end_read(c);
out_release:
    store_reader_release(st, c);
    free(ids);
    if (rc == STORE_NOT_FOUND)
        store_err_text("variant %s/%s not found", family, variant);
    if (rc != STORE_OK) {
        free(list);
        return rc;
    }
    *out = list;
    *out_count = count;
    return STORE_OK;
}

/* Appends the ready deltas into blob hex. */
static enum store_status read_deltas(struct store *st, struct store_conn *c,
                                     const char *hex,
                                     struct store_snapshot *snap,
                                     size_t *cap)
{
    struct db_stmt *s = store_conn_stmt(c, STMT_SNAP_DELTAS);
    enum store_status rc = STORE_OK;
    int src;

    bind_text(s, 1, hex);
    while ((src = db_step(s)) == DB_ROW) {
        struct proto_delta *d;

        /* One entry per format kept: zstd-patch, modeld-tensor/1. */
        for (int f = 0; f < 2; f++) {
            if (db_column_is_null(s, 1 + f))
                continue;
            if (snap->delta_count == *cap) {
                size_t ncap = *cap ? 2 * *cap : 8;
                struct proto_delta *n =
                    realloc(snap->deltas, ncap * sizeof(*n));

                if (!n) {
                    store_err_text("snapshot: out of memory");
                    rc = STORE_NO_MEMORY;
                    break;
                }
                snap->deltas = n;
                *cap = ncap;
            }
            d = &snap->deltas[snap->delta_count++];
            memset(d, 0, sizeof(*d));
            col_text(s, 0, d->from_hex, sizeof(d->from_hex));
            snprintf(d->to_hex, sizeof(d->to_hex), "%s", hex);
            d->size_bytes = (uint64_t)db_column_int64(s, 1 + f);
            d->format = f ? PROTO_DELTA_TENSOR : PROTO_DELTA_ZSTD_PATCH;
        }
        if (rc != STORE_OK)
            break;
    }
    if (rc == STORE_OK && src != DB_DONE)
        rc = store_err_conn(st, c->db, "reading deltas", src);
    db_reset(s);
    return rc;
}

/* The id and lists of a STMT_SNAP_VERSIONS row. */
static struct version_ref version_ref_of(struct db_stmt *s)
{
    return (struct version_ref){db_column_int64(s, 0),
                                (unsigned)db_column_int64(s, 16) & LISTS_ALL};
}

/* Appends an older version (row s) and its id. */
static int older_push(struct store_snapshot *snap, struct db_stmt *s,
                      struct version_ref **ids, size_t *cap)
{
    if (snap->older_count == *cap) {
        size_t ncap = *cap ? 2 * *cap : 8;
        struct proto_variant *v = realloc(snap->older, ncap * sizeof(*v));
        struct version_ref *i;

        if (!v)
            return -1;
        snap->older = v;
        i = realloc(*ids, ncap * sizeof(*i));
        if (!i)
            return -1;
        *ids = i;
        *cap = ncap;
    }
    read_version_row(s, snap->family.name, &snap->older[snap->older_count]);
    (*ids)[snap->older_count++] = version_ref_of(s);
    return 0;
}

/* The versions of each live variant, newest first, down to and including
 * the newest one fully rolled out; the rest into snap->older. */
static enum store_status read_versions(struct store *st,
                                       struct store_conn *c,
                                       int64_t family_id,
                                       struct store_snapshot *snap,
                                       struct version_ref **ids,
                                       struct version_ref **older_ids)
{
    size_t older_cap = 0;
    char group[PROTO_NAME_SIZE] = "";
    bool group_done = false;
    size_t cap = 0;
    struct db_stmt *s = store_conn_stmt(c, STMT_SNAP_VERSIONS);
    enum store_status rc = STORE_OK;
    int src;

    db_bind_int64(s, 1, family_id);
    while ((src = db_step(s)) == DB_ROW) {
        const char *name = db_column_text(s, 1);
        bool first = false;
        struct proto_variant *v;

        if (!name || snap->family.variant_count == 0 ||
            strcmp(name, group) != 0) {
            snprintf(group, sizeof(group), "%s", name ? name : "");
            group_done = false;
            first = true;
            snap->family.variant_count++;
        }
        if (group_done) {
            if (older_push(snap, s, older_ids, &older_cap) != 0) {
                store_err_text("snapshot: out of memory");
                rc = STORE_NO_MEMORY;
                break;
            }
            continue;
        }
        if (snap->variant_count == cap && snap_grow(snap, ids, &cap) != 0) {
            store_err_text("snapshot: out of memory");
            rc = STORE_NO_MEMORY;
            break;
        }
        v = &snap->variants[snap->variant_count];
        read_version_row(s, snap->family.name, v);
        snap->latest[snap->variant_count] = first;
        (*ids)[snap->variant_count] = version_ref_of(s);
        snap->variant_count++;
        snap->paused_count += v->paused;
        /* A paused version is offered only to its holders: the one below
         * it still competes for everyone else. */
        group_done = v->rollout_percent >= 100 && !v->paused;
    }
    if (rc == STORE_OK && src != DB_DONE)
        rc = store_err_conn(st, c->db, "reading versions", src);
    db_reset(s);
    return rc;
}

/* Reads one family's snapshot in one read transaction on c, so that no
 * commit lands between its parts. generation was read before the
 * transaction began: the data are at least that new. */
static enum store_status read_snapshot(struct store *st, struct store_conn *c,
                                       const char *family,
                                       uint64_t generation,
                                       struct snap_priv **out)
{
    struct snap_priv *p = calloc(1, sizeof(*p));
    struct version_ref *ids = NULL, *older_ids = NULL;
    int64_t family_id = 0;
    size_t delta_cap = 0;
    bool deleted = false;
    enum store_status rc;

    if (!p) {
        store_err_text("snapshot: out of memory");
        return STORE_NO_MEMORY;
    }
    atomic_init(&p->refs, 1);
    p->pub.generation = generation;
    p->pub.answer_generation = generation;
    if (store_is_postgresql(st)) {
        /* Read (store_watch_start) before the first select; at least 1. */
        pthread_mutex_lock(&st->watch_mu);
        p->pub.answer_generation = st->db_generation ? st->db_generation : 1;
        pthread_mutex_unlock(&st->watch_mu);
    }
    atomic_fetch_add(&st->snapshot_builds, 1);
    rc = store_conn_run(st, c, STMT_READ_BEGIN, "BEGIN (read)");
    if (rc != STORE_OK) {
        snap_free(p);
        return rc;
    }
    rc = family_find(st, c, family, &family_id, &deleted, &p->pub.family);
    if (rc == STORE_OK && deleted)
        rc = STORE_NOT_FOUND;
    if (rc == STORE_NOT_FOUND)
        store_err_text("family %s not found", family);
    if (rc == STORE_OK)
        rc = read_versions(st, c, family_id, &p->pub, &ids, &older_ids);
    for (size_t i = 0; rc == STORE_OK && i < p->pub.variant_count; i++)
        rc = read_lists(st, c, ids[i].id, ids[i].lists,
                        &p->pub.variants[i]);
    for (size_t i = 0; rc == STORE_OK && i < p->pub.older_count; i++)
        rc = read_lists(st, c, older_ids[i].id, older_ids[i].lists,
                        &p->pub.older[i]);
    for (size_t i = 0; rc == STORE_OK && i < p->pub.variant_count; i++)
        rc = store_trust_measured(st, c, ids[i].id, &p->pub.variants[i]);
    for (size_t i = 0; rc == STORE_OK && i < p->pub.variant_count; i++) {
        const char *hex = p->pub.variants[i].blob_hex;
        bool seen = false;

        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(p->pub.variants[j].blob_hex, hex) == 0;
        if (!seen)
            rc = read_deltas(st, c, hex, &p->pub, &delta_cap);
    }
    free(ids);
    free(older_ids);
    store_conn_end_read(c);
    if (rc == STORE_OK && st->opt.snapshot_derive) {
        p->derived_free = st->opt.snapshot_derived_free;
        p->pub.derived = st->opt.snapshot_derive(&p->pub);
        if (!p->pub.derived) {
            store_err_text("snapshot: out of memory");
            rc = STORE_NO_MEMORY;
        }
    }
    if (rc != STORE_OK) {
        snap_free(p);
        return rc;
    }
    *out = p;
    return STORE_OK;
}

void store_cache_clear(struct store *st)
{
    for (size_t i = 0; i < st->cache_cap; i++) {
        if (st->cache[i].snap) {
            store_snapshot_release(st->cache[i].snap);
            st->cache[i].snap = NULL;
        }
    }
    st->cache_count = 0;
}

/* FNV-1a of a family name: its home slot in the cache's open-addressing
 * table (capacity a power of two, at most half full). */
static size_t cache_home(const struct store *st, const char *family)
{
    uint64_t h = proto_fnv1a64_str(PROTO_FNV1A64_OFFSET, family);

    return (size_t)h & (st->cache_cap - 1);
}

/* The slot holding family, or the free slot where it would go. Needs a
 * table with at least one free slot. */
static struct cache_entry *cache_slot(struct store *st, const char *family)
{
    size_t i = cache_home(st, family);

    while (st->cache[i].snap && strcmp(st->cache[i].name, family) != 0)
        i = (i + 1) & (st->cache_cap - 1);
    return &st->cache[i];
}

/* The cached snapshot of family at the current generation with a new
 * reference, or NULL; then *out_stale gets an older one, when cached, also
 * with a reference (or NULL). Caller holds cache_mu. One hash probe:
 * selects on a catalog of thousands of families cost the same as on a
 * handful. */
static const struct store_snapshot *
cache_find(struct store *st, const char *family,
           const struct store_snapshot **out_stale)
{
    struct cache_entry *e;

    *out_stale = NULL;
    if (st->cache_cap == 0)
        return NULL;
    e = cache_slot(st, family);
    if (!e->snap)
        return NULL;
    snap_ref(e->snap);
    if (e->snap->generation == st->generation)
        return e->snap;
    *out_stale = e->snap;
    return NULL;
}

/* Doubles the table (at least 16 slots), moving every entry. */
static bool cache_grow(struct store *st)
{
    size_t ncap = st->cache_cap ? 2 * st->cache_cap : 16;
    struct cache_entry *old = st->cache;
    size_t old_cap = st->cache_cap;
    struct cache_entry *n = calloc(ncap, sizeof(*n));

    if (!n)
        return false;
    st->cache = n;
    st->cache_cap = ncap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].snap)
            *cache_slot(st, old[i].name) = old[i];
    free(old);
    return true;
}

/* Caches snap (taking a new reference, replacing an older generation's)
 * unless the catalog moved on since it was read or another reader cached
 * the family first. Caller holds cache_mu. Failing to cache only costs a
 * later re-read. */
static void cache_put(struct store *st, const char *family,
                      const struct store_snapshot *snap)
{
    const struct store_snapshot *old;
    struct cache_entry *e;

    if (snap->generation != st->generation ||
        strlen(family) >= PROTO_NAME_SIZE)
        return;
    if ((st->cache_count + 1) * 2 > st->cache_cap && !cache_grow(st))
        return;
    e = cache_slot(st, family);
    old = e->snap;
    if (old) {
        if (old->generation == snap->generation)
            return;
        store_snapshot_release(old);
        st->cache_count--;
    }
    snprintf(e->name, PROTO_NAME_SIZE, "%s", family);
    snap_ref(snap);
    e->snap = snap;
    st->cache_count++;
}

/* The flight reading family's snapshot, or NULL. Caller holds cache_mu. */
static struct snapshot_flight *flight_find(struct store *st,
                                           const char *family)
{
    for (struct snapshot_flight *f = st->flights; f; f = f->next)
        if (strcmp(f->name, family) == 0)
            return f;
    return NULL;
}

/* Drops one hold on f; the last frees it. Caller holds cache_mu. */
static void flight_put(struct snapshot_flight *f)
{
    if (--f->refs > 0)
        return;
    store_snapshot_release(f->snap);
    free(f);
}

/* Waits for another thread's read of the same snapshot and shares its
 * result. Caller holds cache_mu (released while waiting). */
static enum store_status flight_join(struct store *st,
                                     struct snapshot_flight *f,
                                     const char *family,
                                     const struct store_snapshot **out)
{
    enum store_status rc;

    f->refs++;
    while (!f->done)
        pthread_cond_wait(&st->flight_cv, &st->cache_mu);
    rc = f->rc;
    if (rc == STORE_OK) {
        snap_ref(f->snap);
        *out = f->snap;
    } else if (rc == STORE_NOT_FOUND) {
        store_err_text("family %s not found", family);
    } else {
        store_err_text("reading family %s failed (see the first reader's "
                       "error)", family);
    }
    flight_put(f);
    return rc;
}

/*
 * The catalog server cannot be reached (STORE_UNAVAILABLE): selects go on
 * with the last snapshot read of the family, when there is one (store.h);
 * admin writes answer 503 meanwhile. Takes over stale's reference.
 */
static enum store_status serve_stale(enum store_status rc,
                                     const struct store_snapshot *stale,
                                     const struct store_snapshot **out)
{
    if (rc == STORE_UNAVAILABLE && stale) {
        *out = stale;
        return STORE_OK;
    }
    store_snapshot_release(stale);
    return rc;
}

/*
 * A hit takes only cache_mu. After a write moved the generation, the
 * first miss for a family reads its snapshot on a read connection (never
 * waiting for the writer) and every concurrent miss for the same family
 * waits for that one read instead of making its own.
 */
enum store_status store_snapshot_get(struct store *st, const char *family,
                                     const struct store_snapshot **out)
{
    const struct store_snapshot *snap;
    const struct store_snapshot *stale = NULL;
    struct snapshot_flight *f = NULL;
    struct snap_priv *p = NULL;
    struct store_conn *c;
    uint64_t generation;
    enum store_status rc;

    pthread_mutex_lock(&st->cache_mu);
    snap = cache_find(st, family, &stale);
    if (snap) {
        pthread_mutex_unlock(&st->cache_mu);
        *out = snap;
        return STORE_OK;
    }
    if (strlen(family) < PROTO_NAME_SIZE) {
        f = flight_find(st, family);
        if (f) {
            rc = flight_join(st, f, family, out);
            pthread_mutex_unlock(&st->cache_mu);
            return serve_stale(rc, stale, out);
        }
        f = calloc(1, sizeof(*f));
        if (f) {
            snprintf(f->name, sizeof(f->name), "%s", family);
            f->refs = 1;
            f->next = st->flights;
            st->flights = f;
        }
    }
    generation = st->generation;
    pthread_mutex_unlock(&st->cache_mu);

    c = store_reader_acquire(st);
    rc = read_snapshot(st, c, family, generation, &p);
    store_reader_release(st, c);

    pthread_mutex_lock(&st->cache_mu);
    if (rc == STORE_OK)
        cache_put(st, family, &p->pub);
    if (f) {
        struct snapshot_flight **link = &st->flights;

        while (*link != f)
            link = &(*link)->next;
        *link = f->next;
        f->done = true;
        f->rc = rc;
        if (rc == STORE_OK) {
            snap_ref(&p->pub);
            f->snap = &p->pub;
        }
        pthread_cond_broadcast(&st->flight_cv);
        flight_put(f);
    }
    pthread_mutex_unlock(&st->cache_mu);
    if (rc != STORE_OK)
        return serve_stale(rc, stale, out);
    store_snapshot_release(stale);
    if (!p)
        return STORE_NO_MEMORY;   /* not reached: read_snapshot set it */
    *out = &p->pub;
    return STORE_OK;
}

enum store_status store_delta_request(struct store *st,
                                      const char from_hex[PROTO_HEX_SIZE],
                                      const char to_hex[PROTO_HEX_SIZE],
                                      bool *out_pending)
{
    enum store_status rc = STORE_OK;
    bool queued = false;
    struct db_stmt *s;
    struct demand_memo *memo;
    struct timespec ts;
    uint64_t key, gen;
    int src;

    *out_pending = false;
    if (st->opt.read_only || strcmp(from_hex, to_hex) == 0)
        return STORE_OK;
    key = proto_fnv1a64_add(proto_fnv1a64_add(PROTO_FNV1A64_OFFSET, from_hex,
                                              PROTO_HEX_SIZE - 1),
                            to_hex, PROTO_HEX_SIZE - 1) | 1;
    memo = &st->demand_memo[key % STORE_DEMAND_MEMO_SIZE];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pthread_mutex_lock(&st->cache_mu);
    gen = st->generation;
    pthread_mutex_unlock(&st->cache_mu);
    pthread_mutex_lock(&st->demand_mu);
    if (memo->key == key && memo->asked_s == (int64_t)ts.tv_sec &&
        memo->generation == gen) {
        *out_pending = memo->pending;
        pthread_mutex_unlock(&st->demand_mu);
        return STORE_OK;
    }
    pthread_mutex_unlock(&st->demand_mu);
    pthread_mutex_lock(&st->db_mu);
    s = store_stmt(st, STMT_DELTA_SAME_FAMILY);
    bind_text(s, 1, from_hex);
    bind_text(s, 2, to_hex);
    src = db_step(s);
    db_reset(s);
    if (src == DB_ROW) {
        s = store_stmt(st, STMT_DELTA_DEMAND);
        bind_text(s, 1, from_hex);
        bind_text(s, 2, to_hex);
        rc = store_stmt_run(st, STMT_DELTA_DEMAND, "asking for a delta");
        queued = rc == STORE_OK && db_changes(s) > 0;
        if (queued)
            atomic_fetch_add(&st->deltas_pending_now, 1);
        s = store_stmt(st, STMT_DELTA_STATE);
        bind_text(s, 1, from_hex);
        bind_text(s, 2, to_hex);
        if (rc == STORE_OK && db_step(s) == DB_ROW) {
            const char *state = db_column_text(s, 0);

            *out_pending = state && strcmp((const char *)state,
                                           "pending") == 0;
        }
        db_reset(s);
    } else if (src != DB_DONE) {
        rc = store_err_db(st, "looking up the versions", src);
    }
    pthread_mutex_unlock(&st->db_mu);
    if (rc == STORE_OK) {
        pthread_mutex_lock(&st->demand_mu);
        memo->key = key;
        memo->asked_s = (int64_t)ts.tv_sec;
        memo->generation = gen;
        memo->pending = *out_pending;
        pthread_mutex_unlock(&st->demand_mu);
    }
    if (queued) {
        atomic_fetch_add(&st->deltas_on_demand, 1);
        store_worker_kick(st);
    }
    return rc;
}
