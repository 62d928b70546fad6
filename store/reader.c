/*
 * The catalog's read connections: a small pool of read-only SQLite
 * connections beside the one writer. In WAL mode a reader sees the last
 * commit and never waits for the writer, so a cache-miss select, a
 * version or family listing does not queue behind the worker's commits
 * (synchronous = FULL: an fsync each). The writer and its mutex stay in
 * store/store.c; snapshots and listings use these (store/catalog.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

/* Statements a reader needs: every SELECT and the read transaction. */
static bool is_read_stmt(enum stmt_id id, const char *sql)
{
    return id == STMT_READ_BEGIN || id == STMT_COMMIT ||
           id == STMT_ROLLBACK || strncmp(sql, "SELECT", 6) == 0;
}

static enum store_status reader_open(struct store *st, const char *path,
                                     struct store_reader *r)
{
    int rc = sqlite3_open_v2(path, &r->conn.db, SQLITE_OPEN_READONLY, NULL);

    r->conn.stmt = r->stmt;
    if (rc != SQLITE_OK)
        return store_err_conn(st, r->conn.db, "opening a read connection",
                              rc);
    rc = sqlite3_busy_timeout(r->conn.db, st->opt.busy_timeout_ms);
    if (rc != SQLITE_OK)
        return store_err_conn(st, r->conn.db, "busy_timeout", rc);
    for (size_t i = 0; i < STMT_COUNT; i++) {
        const char *sql = store_stmt_sql((enum stmt_id)i);

        if (!is_read_stmt((enum stmt_id)i, sql))
            continue;
        rc = sqlite3_prepare_v3(r->conn.db, sql, -1,
                                SQLITE_PREPARE_PERSISTENT, &r->stmt[i],
                                NULL);
        if (rc != SQLITE_OK)
            return store_err_conn(st, r->conn.db, "prepare (reader)", rc);
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
            sqlite3_finalize(r->stmt[k]);
        if (r->conn.db)
            sqlite3_close(r->conn.db);
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

sqlite3_stmt *store_conn_stmt(struct store_conn *c, enum stmt_id id)
{
    sqlite3_stmt *s = c->stmt[id];

    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

enum store_status store_conn_run(struct store *st, struct store_conn *c,
                                 enum stmt_id id, const char *op)
{
    sqlite3_stmt *s = store_conn_stmt(c, id);
    int rc = sqlite3_step(s);
    enum store_status status = STORE_OK;

    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        status = store_err_conn(st, c->db, op, rc);
    sqlite3_reset(s);
    return status;
}

void store_conn_end_read(struct store_conn *c)
{
    sqlite3_stmt *s = store_conn_stmt(c, STMT_COMMIT);

    if (sqlite3_step(s) != SQLITE_DONE && !sqlite3_get_autocommit(c->db)) {
        sqlite3_reset(s);
        s = store_conn_stmt(c, STMT_ROLLBACK);
        (void)sqlite3_step(s);
    }
    sqlite3_reset(s);
}
