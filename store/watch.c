/*
 * The catalog watcher (PostgreSQL only): one thread that follows the
 * catalog generation on its own connection to the read server, so that
 * this daemon's snapshots are read again when any daemon writes, and that
 * probes the write server, so that /healthz tells when it is away and the
 * connection comes back (with backoff, store/db.c) without waiting for an
 * admin request. It sleeps catalog_poll_ms between looks; where the read
 * server takes LISTEN (a primary, not a standby), a NOTIFY from the
 * generation trigger wakes it at once.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/internal.h"

#define DEFAULT_POLL_MS 1000
#define CHANNEL "modeld_catalog"

/* Reads the catalog generation on the watch connection. */
static enum store_status read_generation(struct store *st, uint64_t *out)
{
    struct db_stmt *s;
    enum store_status rc = STORE_OK;
    int src;

    store_db_lock(st, STORE_ROLE_WATCH);
    s = store_stmt(st, STMT_GENERATION);
    src = db_step(s);
    if (src == DB_ROW)
        *out = (uint64_t)db_column_int64(s, 0);
    else
        rc = store_err_db(st, "reading the catalog generation", src);
    db_reset(s);
    store_db_unlock(st);
    return rc;
}

/* One round trip on the write connection (reconnecting when due). */
static enum store_status ping_writer(struct store *st)
{
    enum store_status rc;

    store_db_lock(st, STORE_ROLE_WRITE);
    (void)store_stmt(st, STMT_PING);
    rc = store_stmt_run(st, STMT_PING, "reaching the catalog primary");
    store_db_unlock(st);
    return rc;
}

/* Waits up to ms for a notification or the stop flag; true: stop. */
static bool wait_a_while(struct store *st, unsigned ms)
{
    struct timespec deadline;
    bool stop;
    int fd;

    store_db_lock(st, STORE_ROLE_WATCH);
    fd = db_socket(st->watch.conn.db);
    store_db_unlock(st);
    if (fd >= 0) {
        /* Wake on a NOTIFY; the stop flag is checked at least every
         * 100 ms so that closing the store stays quick. */
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        for (unsigned waited = 0; waited < ms; waited += 100) {
            bool got;

            pthread_mutex_lock(&st->watch_mu);
            stop = st->watch_stop;
            pthread_mutex_unlock(&st->watch_mu);
            if (stop)
                return true;
            if (poll(&pfd, 1, 100) > 0) {
                store_db_lock(st, STORE_ROLE_WATCH);
                got = db_notified(st->watch.conn.db);
                store_db_unlock(st);
                if (got)
                    return false;
            }
        }
        return false;
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->watch_mu);
    while (!st->watch_stop &&
           pthread_cond_timedwait(&st->watch_cv, &st->watch_mu, &deadline) !=
               ETIMEDOUT)
        ;
    stop = st->watch_stop;
    pthread_mutex_unlock(&st->watch_mu);
    return stop;
}

static void *watch_main(void *arg)
{
    struct store *st = arg;
    unsigned ms = st->opt.catalog_poll_ms ? st->opt.catalog_poll_ms
                                          : DEFAULT_POLL_MS;
    bool listening = false;

    for (;;) {
        uint64_t gen = 0;
        bool read_ok;
        bool write_ok;

        if (!listening) {
            /* A standby refuses LISTEN; polling alone then. */
            store_db_lock(st, STORE_ROLE_WATCH);
            listening = db_listen(st->watch.conn.db, CHANNEL) == 0;
            store_db_unlock(st);
        }
        read_ok = read_generation(st, &gen) == STORE_OK;
        write_ok = ping_writer(st) == STORE_OK;
        atomic_store(&st->catalog_down, !read_ok || !write_ok);
        if (read_ok) {
            bool moved = false;

            store_generation_seen(st, gen, &moved);
            if (moved) {
                atomic_fetch_add(&st->catalog_refreshes, 1);
                store_generation_bump(st);
                store_worker_kick(st);
            }
        }
        /* Jobs that other daemons queued, or that waited for the
         * catalog to come back: the worker looks once per interval. */
        if (write_ok)
            store_worker_kick(st);
        if (wait_a_while(st, ms))
            break;
    }
    return NULL;
}

enum store_status store_watch_start(struct store *st)
{
    uint64_t gen = 0;
    bool moved = false;
    int err;

    /* Known before the first select: signed answers carry it. */
    if (read_generation(st, &gen) == STORE_OK)
        store_generation_seen(st, gen, &moved);
    err = pthread_create(&st->watcher, NULL, watch_main, st);

    if (err != 0)
        return store_err_os(st, "starting the catalog watcher", "", err);
    st->watcher_started = true;
    return STORE_OK;
}

void store_watch_stop(struct store *st)
{
    if (!st->watcher_started)
        return;
    pthread_mutex_lock(&st->watch_mu);
    st->watch_stop = true;
    pthread_cond_broadcast(&st->watch_cv);
    pthread_mutex_unlock(&st->watch_mu);
    pthread_join(st->watcher, NULL);
    st->watcher_started = false;
}
