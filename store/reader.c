/*
 * The catalog's read connections: a small pool of read-only SQLite
 * connections beside the one writer (on PostgreSQL: sessions on
 * catalog_read_url, a streaming replica, else on the primary). In WAL mode a reader sees the last
 * commit and never waits for the writer, so a cache-miss select, a
 * version or family listing does not queue behind the worker's commits
 * (synchronous = FULL: an fsync each). The writer and its mutex stay in
 * store/store.c; snapshots and listings use these (store/catalog.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/internal.h"

/* Statements a reader needs: every SELECT and the read transaction. */
static bool is_read_stmt(enum stmt_id id, const char *sql)
{
    return id == STMT_READ_BEGIN || id == STMT_COMMIT ||
           id == STMT_ROLLBACK || strncmp(sql, "SELECT", 6) == 0;
}

/* A read connection: read-only SQLite on the catalog file, or a
 * PostgreSQL session on the read URL (a replica, else the primary). */
static enum store_status reader_open(struct store *st, const char *path,
                                     struct store_reader *r)
{
    char err[STORE_ERR_SIZE];
    const char *url = st->opt.catalog_read_url[0] ? st->opt.catalog_read_url
                                                  : st->opt.catalog_url;
    int rc;

    r->conn.stmt = r->stmt;
    if (st->opt.catalog_url[0])
        rc = db_open_postgresql(url, &r->conn.db, err, sizeof(err));
    else
        rc = db_open_sqlite(path, true, &r->conn.db, err, sizeof(err));
    if (rc != 0) {
        store_err_text("opening a read connection: %s", err);
        atomic_fetch_add(&st->errors, 1);
        return st->opt.catalog_url[0] ? STORE_UNAVAILABLE : STORE_DB_ERROR;
    }
    if (db_kind(r->conn.db) == DB_SQLITE &&
        sqlite3_busy_timeout(db_sqlite(r->conn.db),
                             st->opt.busy_timeout_ms) != SQLITE_OK) {
        store_err_text("busy_timeout (reader)");
        return STORE_DB_ERROR;
    }
    for (size_t i = 0; i < STMT_COUNT; i++) {
        const char *sql = store_stmt_sql_for(r->conn.db, (enum stmt_id)i);

        if (!is_read_stmt((enum stmt_id)i, sql))
            continue;
        if (db_prepare(r->conn.db, sql, &r->stmt[i]) != 0)
            return store_err_conn(st, r->conn.db, "prepare (reader)", DB_ERROR);
    }
    return STORE_OK;
}

enum store_status store_readers_open(struct store *st, const char *path)
{
    size_t n = st->opt.read_connections;

    if (n == 0)
        return STORE_OK;
    st->readers = calloc(n, sizeof(*st->readers));
    if (!st->readers) {
        store_err_text("out of memory opening read connections");
        return STORE_NO_MEMORY;
    }
    st->reader_count = n;
    for (size_t i = 0; i < n; i++) {
        enum store_status rc = reader_open(st, path, &st->readers[i]);

        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

void store_readers_close(struct store *st)
{
    for (size_t i = 0; i < st->reader_count; i++) {
        struct store_reader *r = &st->readers[i];

        for (size_t k = 0; k < STMT_COUNT; k++)
            db_finalize(r->stmt[k]);
        db_close(r->conn.db);
    }
    free(st->readers);
    st->readers = NULL;
    st->reader_count = 0;
}

struct store_conn *store_reader_acquire(struct store *st)
{
    struct store_conn *c = NULL;

    if (st->reader_count == 0) {
        pthread_mutex_lock(&st->db_mu);
        return &st->writer;
    }
    pthread_mutex_lock(&st->readers_mu);
    while (!c) {
        for (size_t i = 0; i < st->reader_count && !c; i++) {
            if (!st->readers[i].busy) {
                st->readers[i].busy = true;
                c = &st->readers[i].conn;
            }
        }
        if (!c)
            pthread_cond_wait(&st->readers_cv, &st->readers_mu);
    }
    pthread_mutex_unlock(&st->readers_mu);
    return c;
}

void store_reader_release(struct store *st, struct store_conn *c)
{
    if (c == &st->writer) {
        pthread_mutex_unlock(&st->db_mu);
        return;
    }
    pthread_mutex_lock(&st->readers_mu);
    for (size_t i = 0; i < st->reader_count; i++)
        if (&st->readers[i].conn == c)
            st->readers[i].busy = false;
    pthread_cond_signal(&st->readers_cv);
    pthread_mutex_unlock(&st->readers_mu);
}

struct db_stmt *store_conn_stmt(struct store_conn *c, enum stmt_id id)
{
    struct db_stmt *s = c->stmt[id];

    db_reset(s);
    return s;
}

enum store_status store_conn_run(struct store *st, struct store_conn *c,
                                 enum stmt_id id, const char *op)
{
    struct db_stmt *s = store_conn_stmt(c, id);
    int rc = db_step(s);
    enum store_status status = STORE_OK;

    if (rc != DB_DONE && rc != DB_ROW)
        status = store_err_conn(st, c->db, op, rc);
    db_reset(s);
    return status;
}

void store_conn_end_read(struct store_conn *c)
{
    struct db_stmt *s = store_conn_stmt(c, STMT_COMMIT);

    if (db_step(s) != DB_DONE && db_in_transaction(c->db)) {
        db_reset(s);
        s = store_conn_stmt(c, STMT_ROLLBACK);
        (void)db_step(s);
    }
    db_reset(s);
}
