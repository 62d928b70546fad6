/*
 * The SQL layer under the catalog (store/db.h): SQLite through sqlite3,
 * PostgreSQL through libpq. The dialect table and translate() below are
 * the one place that knows how the two differ; the catalog's SQL is
 * written once, for SQLite, and translated for PostgreSQL when it is
 * prepared. PostgreSQL statements are prepared server-side (PQprepare) on
 * first use in each session, run with PQexecPrepared and read in text
 * format.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "store/db.h"

#define ERR_SIZE 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define MAX_PARAMS 32
#define NAME_SIZE 24

struct db {
    enum db_kind kind;
    sqlite3 *lite;
    PGconn *pg;
    unsigned epoch;               /* PostgreSQL session; moves on reconnect */
    unsigned next_name;           /* for server-side statement names */
    bool force_reset;             /* reconnect before the next statement */
    int64_t next_try_ms;          /* monotonic; no reconnect before it */
    int64_t backoff_ms;
    char *listen_channel;         /* LISTEN again after a reconnect */
    bool notified;
    enum db_error errclass;
    char err[ERR_SIZE];
};

struct db_stmt {
    struct db *db;
    sqlite3_stmt *lite;
    /* PostgreSQL */
    char *sql;                    /* translated */
    char name[NAME_SIZE];
    unsigned prepared_epoch;      /* 0: not prepared in any session */
    int nparams;
    char *values[MAX_PARAMS];
    PGresult *res;
    int row;
    int nrows;
    int64_t changes;
    /* A bind since the last reset failed (out of memory, an index out of
     * range): the next step fails instead of running with that parameter
     * missing (NULL), which would answer "no such row" or write a NULL. */
    bool bind_failed;
};

/* ---- errors and the clock ------------------------------------------------ */

static void set_err(struct db *db, enum db_error cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(struct db *db, enum db_error cls, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    db->errclass = cls;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof(db->err), fmt, ap);
    va_end(ap);
    /* libpq's messages end in a newline; the log adds its own. */
    n = strlen(db->err);
    while (n > 0 && (db->err[n - 1] == '\n' || db->err[n - 1] == ' '))
        db->err[--n] = '\0';
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum db_error lite_class(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return DB_ERR_NONE;
    case SQLITE_FULL:
        return DB_ERR_FULL;
    case SQLITE_NOMEM:
        return DB_ERR_NOMEM;
    case SQLITE_CONSTRAINT:
        return DB_ERR_CONFLICT;
    default:
        return DB_ERR_OTHER;
    }
}

static void lite_err(struct db *db, int rc)
{
    set_err(db, lite_class(rc), "%s",
            db->lite ? sqlite3_errmsg(db->lite) : sqlite3_errstr(rc));
}

/*
 * A failed PostgreSQL result's class. Connection exceptions (08), an
 * administrator's shutdown or a server still starting (57P0x), and a write
 * sent to a read-only server (25006: the URL now names a standby) all mean
 * "this server cannot take it now": the store answers 503 and the
 * connection is re-established, which follows a failover.
 */
static enum db_error pg_class(struct db *db, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
                            : NULL;

    if (PQstatus(db->pg) != CONNECTION_OK || !state)
        return DB_ERR_UNAVAILABLE;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
        strcmp(state, "25006") == 0) {
        db->force_reset = true;
        return DB_ERR_UNAVAILABLE;
    }
    if (strcmp(state, "53100") == 0)
        return DB_ERR_FULL;
    if (strcmp(state, "53200") == 0)
        return DB_ERR_NOMEM;
    if (strncmp(state, "23", 2) == 0 || strcmp(state, "40001") == 0 ||
        strcmp(state, "40P01") == 0)
        return DB_ERR_CONFLICT;
    return DB_ERR_OTHER;
}

static void pg_err(struct db *db, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";

    if (!msg || !msg[0])
        msg = PQerrorMessage(db->pg);
    set_err(db, pg_class(db, res), "%s", msg && msg[0] ? msg : "unknown");
}

const char *db_errmsg(const struct db *db)
{
    return db && db->err[0] ? db->err : "no error";
}

enum db_error db_errclass(const struct db *db)
{
    return db ? db->errclass : DB_ERR_OTHER;
}

/* ---- the dialect ------------------------------------------------------- */

/*
 * SQLite text -> PostgreSQL text, applied in this order to every statement
 * and script. Phrases first (they may contain literals), then words
 * outside string literals, then placeholders.
 */
static const struct {
    const char *sqlite;
    const char *pg;
    bool conflict_clause;         /* append ON CONFLICT DO NOTHING */
} phrases[] = {
    { "CAST(strftime('%s', 'now') AS INTEGER)",
      "CAST(extract(epoch FROM now()) AS BIGINT)", false },
    { "BEGIN IMMEDIATE", "BEGIN", false },
    { "INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY "
                             "PRIMARY KEY", false },
    /* The conflict clause goes at the end: see translate(). */
    { "INSERT OR IGNORE INTO", "INSERT INTO", true },
}, words[] = {
    /* SQLite's INTEGER is 64-bit; PostgreSQL's is 32. */
    { "INTEGER", "BIGINT", false },
    { "REAL", "DOUBLE PRECISION", false },
    { "BLOB", "BYTEA", false },
};

struct buf {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, ncap);

        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/*
 * Translates sql for PostgreSQL; with params, ?N and ? become $N. Returns
 * a malloc'd string (NULL on ENOMEM) and the highest parameter number.
 */
static char *translate(const char *sql, bool params, int *out_nparams)
{
    struct buf pass = { 0 };
    struct buf out = { 0 };
    bool ignore = false;
    bool quoted = false;
    int next = 0;
    int highest = 0;
    const char *p;

    /* Phrases. */
    for (p = sql; *p;) {
        size_t i;

        for (i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++) {
            size_t n = strlen(phrases[i].sqlite);

            if (strncmp(p, phrases[i].sqlite, n) == 0) {
                buf_add(&pass, phrases[i].pg, strlen(phrases[i].pg));
                if (phrases[i].conflict_clause)
                    ignore = true;
                p += n;
                break;
            }
        }
        if (i == sizeof(phrases) / sizeof(phrases[0]))
            buf_add(&pass, p++, 1);
    }
    if (!pass.p)
        buf_add(&pass, "", 0);
    /* Words and placeholders, outside literals. */
    for (p = pass.p; p && *p;) {
        if (*p == '\'') {
            quoted = !quoted;
            buf_add(&out, p++, 1);
            continue;
        }
        if (quoted) {
            buf_add(&out, p++, 1);
            continue;
        }
        if (params && *p == '?') {
            char num[16];
            int n;

            p++;
            if (*p >= '0' && *p <= '9') {
                char *end;

                n = (int)strtol(p, &end, 10);
                p = end;
            } else {
                n = ++next;
            }
            if (n > highest)
                highest = n;
            snprintf(num, sizeof(num), "$%d", n);
            buf_add(&out, num, strlen(num));
            continue;
        }
        if (is_word_char(*p) && (p == pass.p || !is_word_char(p[-1]))) {
            size_t len = 0;
            size_t i;

            while (is_word_char(p[len]))
                len++;
            for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
                if (strlen(words[i].sqlite) == len &&
                    strncmp(p, words[i].sqlite, len) == 0) {
                    buf_add(&out, words[i].pg, strlen(words[i].pg));
                    break;
                }
            }
            if (i == sizeof(words) / sizeof(words[0]))
                buf_add(&out, p, len);
            p += len;
            continue;
        }
        buf_add(&out, p++, 1);
    }
    if (ignore) {
        /* INSERT OR IGNORE: PostgreSQL says it after the values. */
        while (out.len > 0 &&
               (out.p[out.len - 1] == ';' || out.p[out.len - 1] == ' '))
            out.p[--out.len] = '\0';
        buf_add(&out, " ON CONFLICT DO NOTHING", 23);
    }
    free(pass.p);
    if (pass.failed || out.failed || !out.p) {
        free(out.p);
        return NULL;
    }
    *out_nparams = highest;
    return out.p;
}

/* ---- opening ------------------------------------------------------------ */

bool db_url_is_postgresql(const char *url)
{
    return url && (strncmp(url, "postgresql://", 13) == 0 ||
                   strncmp(url, "postgres://", 11) == 0);
}

static struct db *db_new(enum db_kind kind)
{
    struct db *db = calloc(1, sizeof(*db));

    if (db) {
        db->kind = kind;
        db->epoch = 1;
        db->backoff_ms = BACKOFF_MIN_MS;
    }
    return db;
}

int db_open_sqlite(const char *path, bool read_only, struct db **out,
                   char *err, size_t err_len)
{
    struct db *db = db_new(DB_SQLITE);
    int rc;

    if (!db) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    rc = sqlite3_open_v2(path, &db->lite,
                         read_only ? SQLITE_OPEN_READONLY
                                   : SQLITE_OPEN_READWRITE |
                                         SQLITE_OPEN_CREATE,
                         NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "opening %s: %s", path,
                 db->lite ? sqlite3_errmsg(db->lite) : sqlite3_errstr(rc));
        db_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

/* Quiet: the store reports what matters through its own errors. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int db_open_postgresql(const char *url, struct db **out, char *err,
                       size_t err_len)
{
    /* Defaults first: the URL's own values override them. A dead host
     * must not hold a request for libpq's default of forever. */
    static const char *const keys[] = { "connect_timeout",
                                        "application_name", "dbname", NULL };
    const char *values[] = { "3", "modeld", url, NULL };
    struct db *db = db_new(DB_POSTGRESQL);

    if (!db) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    db->pg = PQconnectdbParams(keys, values, 1);
    if (!db->pg || PQstatus(db->pg) != CONNECTION_OK) {
        const char *m = db->pg ? PQerrorMessage(db->pg) : "out of memory";
        size_t n;

        snprintf(err, err_len, "connecting to the PostgreSQL catalog: %s",
                 m);
        n = strlen(err);
        while (n > 0 && err[n - 1] == '\n')
            err[--n] = '\0';
        db_close(db);
        return -1;
    }
    PQsetNoticeProcessor(db->pg, pg_notice, NULL);
    *out = db;
    return 0;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    if (db->lite)
        sqlite3_close(db->lite);
    if (db->pg)
        PQfinish(db->pg);
    free(db->listen_channel);
    free(db);
}

enum db_kind db_kind(const struct db *db)
{
    return db->kind;
}

struct sqlite3 *db_sqlite(struct db *db)
{
    return db->lite;
}

/*
 * PostgreSQL: makes sure the session is up, reconnecting (PQreset: the
 * same URL, so whatever server it names now) when it is not and the
 * backoff allows. 0 when usable.
 */
static int pg_ready(struct db *db)
{
    int64_t now;

    if (!db->force_reset && PQstatus(db->pg) == CONNECTION_OK)
        return 0;
    now = now_ms();
    if (now < db->next_try_ms) {
        set_err(db, DB_ERR_UNAVAILABLE,
                "PostgreSQL catalog unreachable; next attempt in %" PRId64
                " ms",
                db->next_try_ms - now);
        return -1;
    }
    PQreset(db->pg);
    db->force_reset = false;
    if (PQstatus(db->pg) != CONNECTION_OK) {
        set_err(db, DB_ERR_UNAVAILABLE, "reconnecting to PostgreSQL: %s",
                PQerrorMessage(db->pg));
        db->next_try_ms = now_ms() + db->backoff_ms;
        db->backoff_ms *= 2;
        if (db->backoff_ms > BACKOFF_MAX_MS)
            db->backoff_ms = BACKOFF_MAX_MS;
        return -1;
    }
    PQsetNoticeProcessor(db->pg, pg_notice, NULL);
    db->epoch++;
    db->backoff_ms = BACKOFF_MIN_MS;
    db->next_try_ms = 0;
    if (db->listen_channel) {
        char sql[128];
        PGresult *res;

        snprintf(sql, sizeof(sql), "LISTEN %s", db->listen_channel);
        res = PQexec(db->pg, sql);
        PQclear(res);
        /* Whatever was missed while away: the caller re-reads. */
        db->notified = true;
    }
    return 0;
}

int64_t db_retry_after_ms(const struct db *db)
{
    int64_t left;

    if (!db || db->kind != DB_POSTGRESQL)
        return 0;
    left = db->next_try_ms - now_ms();
    return left > 0 ? left : 0;
}

/* ---- scripts ------------------------------------------------------------ */

int db_exec(struct db *db, const char *sql)
{
    char *text;
    PGresult *res;
    int nparams = 0;
    int rc;

    if (db->kind == DB_SQLITE) {
        rc = sqlite3_exec(db->lite, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            lite_err(db, rc);
            return -1;
        }
        return 0;
    }
    if (pg_ready(db) != 0)
        return -1;
    text = translate(sql, false, &nparams);
    if (!text) {
        set_err(db, DB_ERR_NOMEM, "out of memory");
        return -1;
    }
    res = PQexec(db->pg, text);
    free(text);
    rc = PQresultStatus(res);
    if (rc != PGRES_COMMAND_OK && rc != PGRES_TUPLES_OK) {
        pg_err(db, res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* ---- statements --------------------------------------------------------- */

int db_prepare(struct db *db, const char *sql, struct db_stmt **out)
{
    struct db_stmt *s = calloc(1, sizeof(*s));
    int rc;

    if (!s) {
        set_err(db, DB_ERR_NOMEM, "out of memory");
        return -1;
    }
    s->db = db;
    if (db->kind == DB_SQLITE) {
        rc = sqlite3_prepare_v3(db->lite, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &s->lite, NULL);
        if (rc != SQLITE_OK) {
            lite_err(db, rc);
            free(s);
            return -1;
        }
        *out = s;
        return 0;
    }
    s->sql = translate(sql, true, &s->nparams);
    if (!s->sql || s->nparams > MAX_PARAMS) {
        set_err(db, s->sql ? DB_ERR_OTHER : DB_ERR_NOMEM,
                "preparing: %s", s->sql ? "too many parameters"
                                        : "out of memory");
        free(s->sql);
        free(s);
        return -1;
    }
    snprintf(s->name, sizeof(s->name), "modeld_%u", db->next_name++);
    *out = s;
    return 0;
}

static void pg_clear_values(struct db_stmt *s)
{
    for (int i = 0; i < MAX_PARAMS; i++) {
        free(s->values[i]);
        s->values[i] = NULL;
    }
}

void db_reset(struct db_stmt *s)
{
    s->bind_failed = false;
    if (s->lite) {
        sqlite3_reset(s->lite);
        sqlite3_clear_bindings(s->lite);
        return;
    }
    PQclear(s->res);
    s->res = NULL;
    s->row = 0;
    s->nrows = 0;
    pg_clear_values(s);
}

void db_finalize(struct db_stmt *s)
{
    if (!s)
        return;
    if (s->lite) {
        sqlite3_finalize(s->lite);
    } else {
        PQclear(s->res);
        pg_clear_values(s);
        /* The server's copy goes with the session. */
        free(s->sql);
    }
    free(s);
}

/* Takes value (a copy made for this bind, NULL for SQL NULL). wanted: a
 * value was asked for, so a NULL here is a failed copy, not SQL NULL. */
static void pg_bind(struct db_stmt *s, int idx, char *value, bool wanted)
{
    if (idx < 1 || idx > MAX_PARAMS || (wanted && !value)) {
        free(value);
        s->bind_failed = true;
        return;
    }
    free(s->values[idx - 1]);
    s->values[idx - 1] = value;
}

/* An SQLite bind's result code: a copy that could not be made (NOMEM,
 * TOOBIG) fails the next step, as on PostgreSQL. */
static void lite_bound(struct db_stmt *s, int rc)
{
    if (rc == SQLITE_NOMEM || rc == SQLITE_TOOBIG)
        s->bind_failed = true;
}

void db_bind_int64(struct db_stmt *s, int idx, int64_t v)
{
    char num[24];

    if (s->lite) {
        lite_bound(s, sqlite3_bind_int64(s->lite, idx, v));
        return;
    }
    snprintf(num, sizeof(num), "%" PRId64, v);
    pg_bind(s, idx, strdup(num), true);
}

void db_bind_double(struct db_stmt *s, int idx, double v)
{
    char num[40];

    if (s->lite) {
        lite_bound(s, sqlite3_bind_double(s->lite, idx, v));
        return;
    }
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN");
    else if (isinf(v))
        snprintf(num, sizeof(num), "%sInfinity", v < 0 ? "-" : "");
    else
        snprintf(num, sizeof(num), "%.17g", v);
    pg_bind(s, idx, strdup(num), true);
}

void db_bind_text(struct db_stmt *s, int idx, const char *text)
{
    if (s->lite) {
        lite_bound(s, sqlite3_bind_text(s->lite, idx, text, -1,
                                        SQLITE_TRANSIENT));
        return;
    }
    pg_bind(s, idx, text ? strdup(text) : NULL, text != NULL);
}

void db_bind_null(struct db_stmt *s, int idx)
{
    if (s->lite) {
        lite_bound(s, sqlite3_bind_null(s->lite, idx));
        return;
    }
    pg_bind(s, idx, NULL, false);
}

static enum db_result lite_step(struct db_stmt *s)
{
    int rc = sqlite3_step(s->lite);

    if (rc == SQLITE_ROW)
        return DB_ROW;
    if (rc == SQLITE_DONE) {
        s->changes = sqlite3_changes64(s->db->lite);
        return DB_DONE;
    }
    lite_err(s->db, rc);
    return DB_ERROR;
}

static enum db_result pg_step(struct db_stmt *s)
{
    struct db *db = s->db;
    const char *const *values = (const char *const *)s->values;
    ExecStatusType st;

    if (s->res) {
        s->row++;
        return s->row < s->nrows ? DB_ROW : DB_DONE;
    }
    if (pg_ready(db) != 0)
        return DB_ERROR;
    if (s->prepared_epoch != db->epoch) {
        PGresult *res = PQprepare(db->pg, s->name, s->sql, 0, NULL);

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            pg_err(db, res);
            PQclear(res);
            return DB_ERROR;
        }
        PQclear(res);
        s->prepared_epoch = db->epoch;
    }
    s->res = PQexecPrepared(db->pg, s->name, s->nparams, values, NULL, NULL,
                            0);
    st = PQresultStatus(s->res);
    if (st == PGRES_TUPLES_OK) {
        s->nrows = PQntuples(s->res);
        s->row = 0;
        s->changes = 0;
        return s->nrows > 0 ? DB_ROW : DB_DONE;
    }
    if (st == PGRES_COMMAND_OK) {
        const char *n = PQcmdTuples(s->res);

        s->changes = n && n[0] ? strtoll(n, NULL, 10) : 0;
        s->nrows = 0;
        return DB_DONE;
    }
    pg_err(db, s->res);
    PQclear(s->res);
    s->res = NULL;
    return DB_ERROR;
}

enum db_result db_step(struct db_stmt *s)
{
    if (s->bind_failed) {
        set_err(s->db, DB_ERR_NOMEM,
                "binding a parameter failed (out of memory or no such "
                "parameter); the statement was not run");
        return DB_ERROR;
    }
    return s->lite ? lite_step(s) : pg_step(s);
}

static const char *pg_cell(struct db_stmt *s, int col)
{
    if (!s->res || s->row >= s->nrows || col >= PQnfields(s->res) ||
        PQgetisnull(s->res, s->row, col))
        return NULL;
    return PQgetvalue(s->res, s->row, col);
}

int64_t db_column_int64(struct db_stmt *s, int col)
{
    const char *v;

    if (s->lite)
        return sqlite3_column_int64(s->lite, col);
    v = pg_cell(s, col);
    if (!v)
        return 0;
    /* A boolean column reads as 0/1, like SQLite's. */
    if (v[0] == 't' && v[1] == '\0')
        return 1;
    return strtoll(v, NULL, 10);
}

double db_column_double(struct db_stmt *s, int col)
{
    const char *v;

    if (s->lite)
        return sqlite3_column_double(s->lite, col);
    v = pg_cell(s, col);
    return v ? strtod(v, NULL) : 0.0;
}

const char *db_column_text(struct db_stmt *s, int col)
{
    if (s->lite)
        return (const char *)sqlite3_column_text(s->lite, col);
    return pg_cell(s, col);
}

bool db_column_is_null(struct db_stmt *s, int col)
{
    if (s->lite)
        return sqlite3_column_type(s->lite, col) == SQLITE_NULL;
    return pg_cell(s, col) == NULL;
}

int64_t db_changes(const struct db_stmt *s)
{
    return s->changes;
}

bool db_in_transaction(struct db *db)
{
    if (db->kind == DB_SQLITE)
        return !sqlite3_get_autocommit(db->lite);
    return PQtransactionStatus(db->pg) != PQTRANS_IDLE &&
           PQtransactionStatus(db->pg) != PQTRANS_UNKNOWN;
}

/* ---- notifications ------------------------------------------------------ */

int db_listen(struct db *db, const char *channel)
{
    char sql[128];

    if (db->kind != DB_POSTGRESQL)
        return -1;
    free(db->listen_channel);
    db->listen_channel = strdup(channel);
    if (!db->listen_channel) {
        set_err(db, DB_ERR_NOMEM, "out of memory");
        return -1;
    }
    snprintf(sql, sizeof(sql), "LISTEN %s", channel);
    return db_exec(db, sql);
}

int db_socket(struct db *db)
{
    if (db->kind != DB_POSTGRESQL || PQstatus(db->pg) != CONNECTION_OK)
        return -1;
    return PQsocket(db->pg);
}

bool db_notified(struct db *db)
{
    bool got = db->notified;
    PGnotify *n;

    db->notified = false;
    if (db->kind != DB_POSTGRESQL || PQstatus(db->pg) != CONNECTION_OK)
        return got;
    if (PQconsumeInput(db->pg) == 0)
        return got;
    while ((n = PQnotifies(db->pg)) != NULL) {
        got = true;
        PQfreemem(n);
    }
    return got;
}
