/*
 * Trust and control in the catalog: what UEs report about versions
 * (events), the statistics drawn from them (counts, failure share, latency
 * percentiles), rollout changes (PATCH, automatic pause, retiring one
 * version) and the audit log of admin writes. Kept apart from the
 * catalog's statements: plain SQL (no SQLite-only functions beyond the
 * upsert's ON CONFLICT DO NOTHING, which PostgreSQL shares), one function
 * per operation. Percentiles are nearest-rank, read with ORDER BY ...
 * LIMIT 1 OFFSET k over an index, so no row set is loaded whole.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define KINDS_NOT_INSTALLED "kind <> 'installed'"

static const char *const tsql[TSTMT_COUNT] = {
    [TSTMT_VERSION_FIND] =
        "SELECT ver.id, ver.variant_id, ver.blob_digest, ver.paused, "
        "  ver.retired, ver.rollout_percent, ver.size_bytes "
        "FROM families f JOIN variants v ON v.family_id = f.id "
        "JOIN versions ver ON ver.variant_id = v.id "
        "WHERE f.name = ?1 AND f.deleted = 0 AND v.name = ?2 "
        "AND ver.version = ?3",
    /* A repeat changes nothing, except that a verified event (a valid
     * receipt) upgrades the unverified one of its UE and kind: an id seen
     * first in a forged event is not locked out. */
    [TSTMT_EVENT_INSERT] =
        "INSERT INTO events(version_id, ue, kind, device_class, latency_ms, "
        "  energy_mj, created_s, verified) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
        "ON CONFLICT (version_id, ue, kind) DO UPDATE SET verified = 1 "
        "WHERE excluded.verified = 1 AND events.verified = 0",
    [TSTMT_CLASS_COUNT] =
        "SELECT count(latency_ms), count(energy_mj) FROM events "
        "WHERE version_id = ?1 AND kind = 'installed' "
        "AND device_class = ?2",
    [TSTMT_PAUSE] =
        "UPDATE versions SET paused = 1 WHERE id = ?1 AND paused = 0",
    [TSTMT_ROLLOUT_SET] =
        "UPDATE versions SET rollout_percent = ?2, paused = ?3 WHERE id = ?1",
    [TSTMT_VERSION_RETIRE] =
        "UPDATE versions SET retired = 1 WHERE id = ?1 AND retired = 0",
    [TSTMT_VERSION_PREVIOUS] =
        "SELECT version, blob_digest FROM versions WHERE variant_id = ?1 "
        "AND version < ?2 AND retired = 0 ORDER BY version DESC LIMIT 1",
    [TSTMT_AUDIT_INSERT] =
        "INSERT INTO audit(time_s, token, method, path, status, detail) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [TSTMT_AUDIT_LIST] =
        "SELECT time_s, token, method, path, status, detail FROM audit "
        "WHERE time_s >= ?1 ORDER BY id LIMIT ?2",
};

enum store_status store_trust_prepare(struct store *st)
{
    for (size_t i = 0; i < TSTMT_COUNT; i++)
        if (db_prepare(st->db, tsql[i], &st->tstmt[i]) != 0)
            return store_err_conn(st, st->db, "prepare", DB_ERROR);
    return STORE_OK;
}

void store_trust_finalize(struct store *st)
{
    for (size_t i = 0; i < TSTMT_COUNT; i++) {
        db_finalize(st->tstmt[i]);
        st->tstmt[i] = NULL;
    }
}

/* The statement, reset and with its bindings cleared. */
static struct db_stmt *tstmt(struct store *st, enum trust_stmt_id id)
{
    struct db_stmt *s = st->tstmt[id];

    db_reset(s);
    return s;
}

/* Steps a statement without rows; resets it. */
static enum store_status trun(struct store *st, enum trust_stmt_id id,
                              const char *op)
{
    struct db_stmt *s = st->tstmt[id];
    int rc = db_step(s);

    db_reset(s);
    if (rc != DB_DONE && rc != DB_ROW)
        return store_err_db(st, op, rc);
    return STORE_OK;
}

static void bind_text(struct db_stmt *s, int idx, const char *text)
{
    db_bind_text(s, idx, text);
}

static void col_text(struct db_stmt *s, int col, char *out, size_t size)
{
    const char *t = db_column_text(s, col);

    snprintf(out, size, "%s", t ? t : "");
}

/* ---- versions ------------------------------------------------------------ */

struct version_row {
    int64_t id;
    int64_t variant_id;
    char blob_hex[PROTO_HEX_SIZE];
    bool paused;
    bool retired;
    unsigned rollout_percent;
    uint64_t size_bytes;
};

/* Caller holds db_mu. STORE_NOT_FOUND when there is no such version. */
static enum store_status version_find(struct store *st, const char *family,
                                      const char *variant, int64_t version,
                                      struct version_row *out)
{
    struct db_stmt *s = tstmt(st, TSTMT_VERSION_FIND);
    enum store_status rc = STORE_OK;
    int src;

    bind_text(s, 1, family);
    bind_text(s, 2, variant);
    db_bind_int64(s, 3, version);
    src = db_step(s);
    if (src == DB_ROW) {
        out->id = db_column_int64(s, 0);
        out->variant_id = db_column_int64(s, 1);
        col_text(s, 2, out->blob_hex, sizeof(out->blob_hex));
        out->paused = db_column_int64(s, 3) != 0;
        out->retired = db_column_int64(s, 4) != 0;
        out->rollout_percent = (unsigned)db_column_int64(s, 5);
        out->size_bytes = (uint64_t)db_column_int64(s, 6);
    } else if (src == DB_DONE) {
        store_err_text("version %s/%s/%lld not found", family, variant,
                       (long long)version);
        rc = STORE_NOT_FOUND;
    } else {
        rc = store_err_db(st, "looking up version", src);
    }
    db_reset(s);
    return rc;
}

/* ---- statistics ----------------------------------------------------------- */

/* The k-th smallest (0-based) value of a class, by an index scan. */
static enum store_status nth_value(struct store *st, struct store_conn *c,
                                   enum stmt_id id, int64_t ver_id,
                                   const char *device_class, uint64_t k,
                                   double *out)
{
    struct db_stmt *s = store_conn_stmt(c, id);
    enum store_status rc = STORE_OK;
    int src;

    db_bind_int64(s, 1, ver_id);
    bind_text(s, 2, device_class);
    db_bind_int64(s, 3, (int64_t)k);
    src = db_step(s);
    if (src == DB_ROW)
        *out = db_column_double(s, 0);
    else
        rc = store_err_conn(st, c->db, "reading a percentile", src);
    db_reset(s);
    return rc;
}

/* Nearest rank of percentile p among n values, 0-based. */
static uint64_t rank_of(double p, uint64_t n)
{
    double r = ceil(p / 100.0 * (double)n);

    return r < 1 ? 0 : (uint64_t)r - 1;
}

/* Device classes of a version with measured values, and their counts. */
struct class_count {
    char device_class[PROTO_TOKEN_SIZE];
    uint64_t count;
};

static enum store_status class_counts(struct store *st, struct store_conn *c,
                                      enum stmt_id id, int64_t ver_id,
                                      struct class_count out[PROTO_MAX_LATENCIES],
                                      size_t *out_count)
{
    struct db_stmt *s = store_conn_stmt(c, id);
    size_t n = 0;
    int src;

    db_bind_int64(s, 1, ver_id);
    while ((src = db_step(s)) == DB_ROW && n < PROTO_MAX_LATENCIES) {
        col_text(s, 0, out[n].device_class, sizeof(out[n].device_class));
        out[n].count = (uint64_t)db_column_int64(s, 1);
        n++;
    }
    db_reset(s);
    if (src != DB_DONE && src != DB_ROW)
        return store_err_conn(st, c->db, "reading device classes", src);
    *out_count = n;
    return STORE_OK;
}

/* Distinct UEs of a version, any event and a failure, of all events and
 * of verified ones, read on c. */
static enum store_status event_ues(struct store *st, struct store_conn *c,
                                   int64_t ver_id,
                                   struct proto_version_stats *out)
{
    struct db_stmt *s = store_conn_stmt(c, STMT_EVENT_UES);
    int src;

    db_bind_int64(s, 1, ver_id);
    src = db_step(s);
    if (src == DB_ROW) {
        out->ues = (uint64_t)db_column_int64(s, 0);
        out->failed_ues = (uint64_t)db_column_int64(s, 1);
        out->verified_ues = (uint64_t)db_column_int64(s, 2);
        out->verified_failed_ues = (uint64_t)db_column_int64(s, 3);
    }
    db_reset(s);
    return src == DB_ROW ? STORE_OK
                         : store_err_conn(st, c->db, "counting UEs", src);
}

/* A version's statistics, read on c (a read connection in its read
 * transaction, or the writer under db_mu). */
static enum store_status version_stats(struct store *st, struct store_conn *c,
                                       int64_t ver_id,
                                       struct proto_version_stats *out)
{
    struct class_count classes[PROTO_MAX_LATENCIES];
    size_t class_count = 0;
    struct db_stmt *s;
    enum store_status rc;
    int src;

    memset(out, 0, sizeof(*out));
    rc = event_ues(st, c, ver_id, out);
    if (rc != STORE_OK)
        return rc;

    s = store_conn_stmt(c, STMT_EVENT_KINDS);
    db_bind_int64(s, 1, ver_id);
    while ((src = db_step(s)) == DB_ROW) {
        const char *kind = db_column_text(s, 0);

        for (unsigned k = 0; kind && k < PROTO_EVENT_KINDS; k++)
            if (strcmp((const char *)kind,
                       proto_event_kind_name((enum proto_event_kind)k)) == 0)
                out->counts[k] = (uint64_t)db_column_int64(s, 1);
    }
    db_reset(s);
    if (src != DB_DONE)
        return store_err_conn(st, c->db, "counting events", src);

    rc = class_counts(st, c, STMT_MEASURED_LATENCY_CLASSES, ver_id, classes,
                      &class_count);
    for (size_t i = 0; rc == STORE_OK && i < class_count; i++) {
        struct proto_class_latency *l = &out->latency[out->latency_count++];

        memcpy(l->device_class, classes[i].device_class,
               sizeof(l->device_class));
        l->count = classes[i].count;
        rc = nth_value(st, c, STMT_MEASURED_LATENCY_NTH, ver_id,
                       l->device_class, rank_of(50, l->count), &l->p50_ms);
        if (rc == STORE_OK)
            rc = nth_value(st, c, STMT_MEASURED_LATENCY_NTH, ver_id,
                           l->device_class, rank_of(90, l->count),
                           &l->p90_ms);
        if (rc == STORE_OK)
            rc = nth_value(st, c, STMT_MEASURED_LATENCY_NTH, ver_id,
                           l->device_class, rank_of(99, l->count),
                           &l->p99_ms);
    }
    return rc;
}

/* Sets the value of device_class in a per-class list (adding it when there
 * is room). */
static void set_class_value(struct proto_class_value *list, size_t *count,
                            const char *device_class, double value)
{
    for (size_t i = 0; i < *count; i++) {
        if (strcmp(list[i].device_class, device_class) == 0) {
            list[i].value = value;
            return;
        }
    }
    if (*count >= PROTO_MAX_LATENCIES)
        return;
    snprintf(list[*count].device_class, sizeof(list[*count].device_class),
             "%.*s", (int)sizeof(list[*count].device_class) - 1,
             device_class);
    list[*count].value = value;
    (*count)++;
}

/* The median of one measure (classes_id and nth_id: its statements) per
 * device class with at least min reports, set in list. */
static enum store_status class_medians(struct store *st, struct store_conn *c,
                                       enum stmt_id classes_id,
                                       enum stmt_id nth_id, int64_t ver_id,
                                       unsigned min,
                                       struct proto_class_value *list,
                                       size_t *count)
{
    struct class_count classes[PROTO_MAX_LATENCIES];
    size_t n = 0;
    enum store_status rc;
    double x;

    rc = class_counts(st, c, classes_id, ver_id, classes, &n);
    for (size_t i = 0; rc == STORE_OK && i < n; i++) {
        if (classes[i].count < min)
            continue;
        rc = nth_value(st, c, nth_id, ver_id, classes[i].device_class,
                       rank_of(50, classes[i].count), &x);
        if (rc == STORE_OK)
            set_class_value(list, count, classes[i].device_class, x);
    }
    return rc;
}

enum store_status store_trust_measured(struct store *st,
                                       struct store_conn *c, int64_t ver_id,
                                       struct proto_variant *v)
{
    unsigned min = st->opt.latency_min_reports ? st->opt.latency_min_reports
                                               : 1;
    enum store_status rc;

    rc = class_medians(st, c, STMT_MEASURED_LATENCY_CLASSES,
                       STMT_MEASURED_LATENCY_NTH, ver_id, min, v->latency_ms,
                       &v->latency_count);
    if (rc == STORE_OK)
        rc = class_medians(st, c, STMT_MEASURED_ENERGY_CLASSES,
                           STMT_MEASURED_ENERGY_NTH, ver_id, min, v->energy_mj,
                           &v->energy_count);
    return rc;
}

/* ---- events ------------------------------------------------------------------ */

/* True when n is latency_min_reports times a power of two: the points at
 * which a class's measured median enters or refreshes the snapshot. */
static bool is_refresh_point(uint64_t n, unsigned min)
{
    if (min == 0 || n < min || n % min != 0)
        return false;
    n /= min;
    return (n & (n - 1)) == 0;
}

/* Whether this insert moves what snapshots hold: a class's measured
 * latency or energy reaching a refresh point. */
static enum store_status measured_moved(struct store *st, int64_t ver_id,
                                        const struct proto_event *ev,
                                        bool *out_moved)
{
    struct db_stmt *s;
    int src;

    *out_moved = false;
    if (ev->kind != PROTO_EVENT_INSTALLED || !ev->device_class[0] ||
        (!ev->has_latency_ms && !ev->has_energy_mj))
        return STORE_OK;
    s = tstmt(st, TSTMT_CLASS_COUNT);
    db_bind_int64(s, 1, ver_id);
    bind_text(s, 2, ev->device_class);
    src = db_step(s);
    if (src == DB_ROW)
        *out_moved =
            (ev->has_latency_ms &&
             is_refresh_point((uint64_t)db_column_int64(s, 0),
                              st->opt.latency_min_reports)) ||
            (ev->has_energy_mj &&
             is_refresh_point((uint64_t)db_column_int64(s, 1),
                              st->opt.latency_min_reports));
    db_reset(s);
    return src == DB_ROW ? STORE_OK
                             : store_err_db(st, "counting measures", src);
}

static enum store_status audit_insert(struct store *st,
                                      const struct proto_audit_entry *e)
{
    struct db_stmt *s = tstmt(st, TSTMT_AUDIT_INSERT);

    db_bind_int64(s, 1, e->time_s);
    bind_text(s, 2, e->token);
    bind_text(s, 3, e->method);
    bind_text(s, 4, e->path);
    db_bind_int64(s, 5, e->status);
    bind_text(s, 6, e->detail);
    return trun(st, TSTMT_AUDIT_INSERT, "recording audit entry");
}

/* The failure-share rule, after a counted event. Caller holds db_mu in a
 * transaction. */
static enum store_status maybe_pause(struct store *st, const char *family,
                                     const struct proto_event *ev,
                                     const struct version_row *row,
                                     int64_t now_s, bool *out_paused)
{
    struct proto_version_stats stats;
    struct proto_audit_entry a;
    struct db_stmt *s;
    enum store_status rc;

    *out_paused = false;
    if (row->paused || ev->kind == PROTO_EVENT_INSTALLED)
        return STORE_OK;
    memset(&stats, 0, sizeof(stats));
    rc = event_ues(st, &st->writer, row->id, &stats);
    if (rc != STORE_OK)
        return rc;
    if (st->opt.pause_needs_receipt) {
        /* Only what receipts vouch for: forged failures cannot push the
         * share up, forged installs cannot hold it down. */
        if (!ev->verified)
            return STORE_OK;
        stats.ues = stats.verified_ues;
        stats.failed_ues = stats.verified_failed_ues;
    }
    if (stats.ues < st->opt.rollout_min_reports ||
        proto_failure_share(&stats) < st->opt.rollout_max_failure_share)
        return STORE_OK;
    s = tstmt(st, TSTMT_PAUSE);
    db_bind_int64(s, 1, row->id);
    rc = trun(st, TSTMT_PAUSE, "pausing version");
    if (rc != STORE_OK)
        return rc;
    memset(&a, 0, sizeof(a));
    a.time_s = now_s;
    snprintf(a.token, sizeof(a.token), "auto");
    snprintf(a.method, sizeof(a.method), "PATCH");
    snprintf(a.path, sizeof(a.path), "/v1/families/%s/variants/%s/versions/%lld",
             family, ev->variant, (long long)ev->version);
    a.status = 200;
    snprintf(a.detail, sizeof(a.detail),
             "paused false -> true: failure share %.3f of %llu %sUEs "
             "reached rollout_max_failure_share %g",
             proto_failure_share(&stats), (unsigned long long)stats.ues,
             st->opt.pause_needs_receipt ? "verified " : "",
             st->opt.rollout_max_failure_share);
    rc = audit_insert(st, &a);
    if (rc == STORE_OK)
        *out_paused = true;
    return rc;
}

enum store_status store_event_add(struct store *st, const char *family,
                                  const struct proto_event *ev, int64_t now_s,
                                  bool *out_counted, bool *out_paused)
{
    struct version_row row;
    bool counted = false, paused = false, moved = false;
    struct db_stmt *s;
    enum store_status rc;

    pthread_mutex_lock(&st->db_mu);
    rc = store_tx_begin(st);
    if (rc != STORE_OK)
        goto out;
    rc = version_find(st, family, ev->variant, ev->version, &row);
    if (rc == STORE_OK && ev->has_digest &&
        strcmp(ev->digest_hex, row.blob_hex) != 0) {
        store_err_text("digest is not version %lld's",
                       (long long)ev->version);
        rc = STORE_MISMATCH;
    }
    if (rc == STORE_OK) {
        s = tstmt(st, TSTMT_EVENT_INSERT);
        db_bind_int64(s, 1, row.id);
        bind_text(s, 2, ev->ue);
        bind_text(s, 3, proto_event_kind_name(ev->kind));
        bind_text(s, 4, ev->device_class);
        if (ev->has_latency_ms)
            db_bind_double(s, 5, ev->latency_ms);
        if (ev->has_energy_mj)
            db_bind_double(s, 6, ev->energy_mj);
        db_bind_int64(s, 7, now_s);
        db_bind_int64(s, 8, ev->verified ? 1 : 0);
        rc = trun(st, TSTMT_EVENT_INSERT, "recording event");
        counted = rc == STORE_OK && db_changes(s) > 0;
    }
    if (rc == STORE_OK && counted)
        rc = maybe_pause(st, family, ev, &row, now_s, &paused);
    if (rc == STORE_OK && counted)
        rc = measured_moved(st, row.id, ev, &moved);
    if (rc == STORE_OK)
        rc = store_tx_commit(st);
    if (rc != STORE_OK) {
        store_tx_rollback(st);
        goto out;
    }
    if (paused || moved)
        store_generation_bump(st);
    *out_counted = counted;
    *out_paused = paused;
out:
    pthread_mutex_unlock(&st->db_mu);
    return rc;
}

enum store_status store_variant_stats(struct store *st, const char *family,
                                      const char *variant,
                                      struct proto_version_stats **out,
                                      size_t *out_count)
{
    struct proto_version_stats *list = NULL;
    int64_t *ids = NULL;
    size_t count = 0, cap = 0;
    struct store_conn *c = store_reader_acquire(st);
    struct db_stmt *s;
    enum store_status rc;
    int src;

    /* One read transaction beside the writer: the versions and their
     * statistics agree, and no commit of the writer is waited for. */
    rc = store_conn_run(st, c, STMT_READ_BEGIN, "BEGIN (read)");
    if (rc != STORE_OK)
        goto out_release;
    s = store_conn_stmt(c, STMT_VARIANT_VERSION_IDS);
    bind_text(s, 1, family);
    bind_text(s, 2, variant);
    while ((src = db_step(s)) == DB_ROW) {
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            int64_t *n = realloc(ids, ncap * sizeof(*n));

            if (!n) {
                store_err_text("version stats: out of memory");
                rc = STORE_NO_MEMORY;
                break;
            }
            ids = n;
            cap = ncap;
        }
        ids[count++] = db_column_int64(s, 0);
    }
    if (rc == STORE_OK && src != DB_DONE)
        rc = store_err_conn(st, c->db, "listing versions", src);
    db_reset(s);
    if (rc == STORE_OK && count == 0) {
        store_err_text("variant %s/%s not found", family, variant);
        rc = STORE_NOT_FOUND;
    }
    if (rc == STORE_OK) {
        list = calloc(count, sizeof(*list));
        if (!list) {
            store_err_text("version stats: out of memory");
            rc = STORE_NO_MEMORY;
        }
    }
    for (size_t i = 0; rc == STORE_OK && i < count; i++)
        rc = version_stats(st, c, ids[i], &list[i]);
    store_conn_end_read(c);
out_release:
    store_reader_release(st, c);
    free(ids);
    if (rc != STORE_OK) {
        free(list);
        return rc;
    }
    *out = list;
    *out_count = count;
    return STORE_OK;
}

/* ---- rollout control --------------------------------------------------------- */

static void row_to_variant(const struct version_row *row, const char *family,
                           const char *variant, int64_t version,
                           struct proto_variant *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->family, sizeof(out->family), "%s", family);
    snprintf(out->name, sizeof(out->name), "%s", variant);
    out->version = version;
    memcpy(out->blob_hex, row->blob_hex, sizeof(out->blob_hex));
    out->size_bytes = row->size_bytes;
    out->rollout_percent = row->rollout_percent;
    out->paused = row->paused;
    out->retired = row->retired;
}

enum store_status store_version_rollout(struct store *st, const char *family,
                                        const char *variant, int64_t version,
                                        const struct proto_rollout_patch *patch,
                                        struct proto_variant *out_before,
                                        struct proto_variant *out_after)
{
    struct version_row row, after;
    struct db_stmt *s;
    enum store_status rc;

    pthread_mutex_lock(&st->db_mu);
    rc = version_find(st, family, variant, version, &row);
    if (rc != STORE_OK)
        goto out;
    after = row;
    if (patch->has_rollout_percent)
        after.rollout_percent = patch->rollout_percent;
    if (patch->has_paused)
        after.paused = patch->paused;
    s = tstmt(st, TSTMT_ROLLOUT_SET);
    db_bind_int64(s, 1, row.id);
    db_bind_int64(s, 2, after.rollout_percent);
    db_bind_int64(s, 3, after.paused ? 1 : 0);
    rc = trun(st, TSTMT_ROLLOUT_SET, "changing rollout");
    if (rc != STORE_OK)
        goto out;
    store_generation_bump(st);
    row_to_variant(&row, family, variant, version, out_before);
    row_to_variant(&after, family, variant, version, out_after);
out:
    pthread_mutex_unlock(&st->db_mu);
    return rc;
}

enum store_status store_version_retire(struct store *st, const char *family,
                                       const char *variant, int64_t version,
                                       int64_t *out_previous)
{
    struct version_row row;
    char prev_hex[PROTO_HEX_SIZE] = "";
    int64_t prev = 0, queued = 0;
    struct db_stmt *s;
    enum store_status rc;
    int src;

    pthread_mutex_lock(&st->db_mu);
    rc = store_tx_begin(st);
    if (rc != STORE_OK)
        goto out;
    rc = version_find(st, family, variant, version, &row);
    if (rc == STORE_OK && row.retired) {
        store_err_text("version %lld is already retired", (long long)version);
        rc = STORE_NOT_FOUND;
    }
    if (rc == STORE_OK) {
        s = tstmt(st, TSTMT_VERSION_RETIRE);
        db_bind_int64(s, 1, row.id);
        rc = trun(st, TSTMT_VERSION_RETIRE, "retiring version");
    }
    if (rc == STORE_OK) {
        s = tstmt(st, TSTMT_VERSION_PREVIOUS);
        db_bind_int64(s, 1, row.variant_id);
        db_bind_int64(s, 2, version);
        src = db_step(s);
        if (src == DB_ROW) {
            prev = db_column_int64(s, 0);
            col_text(s, 1, prev_hex, sizeof(prev_hex));
        } else if (src != DB_DONE) {
            rc = store_err_db(st, "looking up the previous version", src);
        }
        db_reset(s);
    }
    /* The reverse delta, so that holders go back by a delta. */
    if (rc == STORE_OK && prev_hex[0] && strcmp(prev_hex, row.blob_hex)) {
        s = store_stmt(st, STMT_DELTA_QUEUE);
        bind_text(s, 1, row.blob_hex);
        bind_text(s, 2, prev_hex);
        rc = store_stmt_run(st, STMT_DELTA_QUEUE, "queueing reverse delta");
        if (rc == STORE_OK)
            queued = db_changes(s);
    }
    if (rc == STORE_OK)
        rc = store_tx_commit(st);
    if (rc != STORE_OK) {
        store_tx_rollback(st);
        goto out;
    }
    atomic_fetch_add(&st->deltas_pending_now, queued);
    store_generation_bump(st);
out:
    pthread_mutex_unlock(&st->db_mu);
    if (rc == STORE_OK) {
        store_worker_kick(st);
        *out_previous = prev;
    }
    return rc;
}

/* ---- audit --------------------------------------------------------------------- */

enum store_status store_audit_add(struct store *st,
                                  const struct proto_audit_entry *e)
{
    enum store_status rc;

    pthread_mutex_lock(&st->db_mu);
    rc = audit_insert(st, e);
    pthread_mutex_unlock(&st->db_mu);
    return rc;
}

enum store_status store_audit_list(struct store *st, int64_t since_s,
                                   size_t max,
                                   struct proto_audit_entry **out,
                                   size_t *out_count)
{
    struct proto_audit_entry *list = NULL;
    size_t count = 0, cap = 0;
    struct db_stmt *s;
    enum store_status rc = STORE_OK;
    int src;

    pthread_mutex_lock(&st->db_mu);
    s = tstmt(st, TSTMT_AUDIT_LIST);
    db_bind_int64(s, 1, since_s);
    db_bind_int64(s, 2, (int64_t)max);
    while ((src = db_step(s)) == DB_ROW) {
        struct proto_audit_entry *e;

        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct proto_audit_entry *n = realloc(list, ncap * sizeof(*n));

            if (!n) {
                store_err_text("audit: out of memory");
                rc = STORE_NO_MEMORY;
                break;
            }
            list = n;
            cap = ncap;
        }
        e = &list[count++];
        e->time_s = db_column_int64(s, 0);
        col_text(s, 1, e->token, sizeof(e->token));
        col_text(s, 2, e->method, sizeof(e->method));
        col_text(s, 3, e->path, sizeof(e->path));
        e->status = (unsigned)db_column_int64(s, 4);
        col_text(s, 5, e->detail, sizeof(e->detail));
    }
    if (rc == STORE_OK && src != DB_DONE)
        rc = store_err_db(st, "reading audit", src);
    db_reset(s);
    pthread_mutex_unlock(&st->db_mu);
    if (rc != STORE_OK) {
        free(list);
        return rc;
    }
    *out = list;
    *out_count = count;
    return STORE_OK;
}

/* ---- metrics --------------------------------------------------------------------- */

enum store_status store_rollout_metrics(struct store *st, size_t max,
                                        struct store_rollout_metric **out,
                                        size_t *out_count)
{
    struct store_rollout_metric *list = NULL;
    int64_t *ids = NULL;
    size_t count = 0;
    struct store_conn *c;
    struct db_stmt *s;
    enum store_status rc;
    int src;

    list = calloc(max ? max : 1, sizeof(*list));
    ids = calloc(max ? max : 1, sizeof(*ids));
    if (!list || !ids) {
        free(list);
        free(ids);
        store_err_text("rollout metrics: out of memory");
        return STORE_NO_MEMORY;
    }
    /* A scrape reads beside the writer: never behind its commits. */
    c = store_reader_acquire(st);
    rc = store_conn_run(st, c, STMT_READ_BEGIN, "BEGIN (read)");
    if (rc != STORE_OK)
        goto out_release;
    s = store_conn_stmt(c, STMT_METRIC_VERSIONS);
    db_bind_int64(s, 1, (int64_t)max);
    while ((src = db_step(s)) == DB_ROW && count < max) {
        struct store_rollout_metric *m = &list[count];

        col_text(s, 0, m->family, sizeof(m->family));
        col_text(s, 1, m->variant, sizeof(m->variant));
        m->version = db_column_int64(s, 2);
        ids[count] = db_column_int64(s, 3);
        m->paused = db_column_int64(s, 4) != 0;
        count++;
    }
    if (src != DB_DONE && src != DB_ROW)
        rc = store_err_conn(st, c->db, "listing versions with events", src);
    db_reset(s);
    for (size_t i = 0; rc == STORE_OK && i < count; i++)
        rc = version_stats(st, c, ids[i], &list[i].stats);
    store_conn_end_read(c);
out_release:
    store_reader_release(st, c);
    free(ids);
    if (rc != STORE_OK) {
        free(list);
        return rc;
    }
    *out = list;
    *out_count = count;
    return STORE_OK;
}
