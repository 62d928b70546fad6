/*
 * The catalog's SQL layer: one small interface (open, prepare, bind, step,
 * column, exec) over two engines, SQLite (embedded, the default) and
 * PostgreSQL (libpq). The catalog code in store/ writes its SQL once, in
 * SQLite's dialect with ?N placeholders; every difference between the two
 * dialects is translated here, in one table (store/db.c), so that a new
 * statement or migration runs on both. Prepared statements only: values
 * are always bound, never spliced into SQL text.
 *
 * A PostgreSQL connection that breaks is reconnected lazily, with backoff,
 * to whatever its URL names now (a libpq multi-host URL with
 * target_session_attrs=read-write follows a failover); its statements are
 * prepared again on the new session. Until then db_step fails fast with
 * DB_ERR_UNAVAILABLE.
 *
 * Not thread safe: one thread at a time per struct db (the store holds a
 * mutex per connection).
 */
#ifndef STORE_DB_H
#define STORE_DB_H

#include <stdbool.h>
#include <stdint.h>

enum db_kind {
    DB_SQLITE,
    DB_POSTGRESQL,
};

/* What db_step returns. */
enum db_result {
    DB_ERROR = -1,
    DB_DONE = 0,
    DB_ROW = 1,
};

/* The class of the last error, for the store's status. */
enum db_error {
    DB_ERR_NONE = 0,
    DB_ERR_OTHER,
    DB_ERR_FULL,          /* disk full */
    DB_ERR_NOMEM,
    DB_ERR_UNAVAILABLE,   /* no connection to a usable server (now) */
    DB_ERR_CONFLICT,      /* a constraint or serialization failure */
};

struct db;
struct db_stmt;

/* Whether url names a PostgreSQL catalog (postgresql:// or postgres://). */
bool db_url_is_postgresql(const char *url);

/*
 * Opens an SQLite database file (created unless read_only) or connects to
 * a PostgreSQL URL. On 0 the caller owns *out (db_close); on -1 err holds
 * the reason. A PostgreSQL catalog that cannot be reached at open is an
 * error: the daemon does not start without having seen its catalog once.
 */
int db_open_sqlite(const char *path, bool read_only, struct db **out,
                   char *err, size_t err_len);
int db_open_postgresql(const char *url, struct db **out, char *err,
                       size_t err_len);
/* Finalizes nothing: finalize the statements first. NULL does nothing. */
void db_close(struct db *db);

enum db_kind db_kind(const struct db *db);
/* The underlying sqlite3 handle (DB_SQLITE only; pragmas at open). */
struct sqlite3 *db_sqlite(struct db *db);

/* The last error's text and class on this connection. */
const char *db_errmsg(const struct db *db);
enum db_error db_errclass(const struct db *db);

/*
 * Runs a script of statements without results (migrations, pragmas). For
 * PostgreSQL the text is translated (types, SQLite idioms) but its
 * placeholders are not: scripts take no values. 0 or -1.
 */
int db_exec(struct db *db, const char *sql);

/* Prepares sql (SQLite dialect, ?N placeholders). 0 or -1. */
int db_prepare(struct db *db, const char *sql, struct db_stmt **out);
void db_finalize(struct db_stmt *s);

/* Ends the statement's last execution and clears its bindings. */
void db_reset(struct db_stmt *s);

/* Parameters count from 1. Text is copied. A bind that fails (the copy
 * cannot be allocated; on PostgreSQL also an index beyond the limit) makes
 * the next db_step fail with DB_ERR_NOMEM without running the statement:
 * callers check db_step, never each bind. db_reset clears it. */
void db_bind_int64(struct db_stmt *s, int idx, int64_t v);
void db_bind_double(struct db_stmt *s, int idx, double v);
void db_bind_text(struct db_stmt *s, int idx, const char *text);
void db_bind_null(struct db_stmt *s, int idx);

/* Runs the statement (first call) or moves to its next row. */
enum db_result db_step(struct db_stmt *s);

/* The current row's columns, from 0. Text: NULL for SQL NULL; valid until
 * the next step or reset. */
int64_t db_column_int64(struct db_stmt *s, int col);
double db_column_double(struct db_stmt *s, int col);
const char *db_column_text(struct db_stmt *s, int col);
bool db_column_is_null(struct db_stmt *s, int col);

/* Rows changed by the statement's last run (INSERT, UPDATE, DELETE). */
int64_t db_changes(const struct db_stmt *s);

/* Whether a transaction is open on the connection. */
bool db_in_transaction(struct db *db);

/* PostgreSQL only: LISTEN on channel, again after every reconnect. */
int db_listen(struct db *db, const char *channel);

/*
 * PostgreSQL only: the connection's socket (for LISTEN), or -1. And
 * whether a notification arrived since the last call (consumes them).
 */
int db_socket(struct db *db);
bool db_notified(struct db *db);

/* Milliseconds until the next reconnect attempt is allowed (0: now or
 * connected). For Retry-After. */
int64_t db_retry_after_ms(const struct db *db);

#endif
