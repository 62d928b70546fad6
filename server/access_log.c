/*
 * The buffered access log (server/access_log.h).
 *
 * Locks, always taken in this order: al.mu (the buffer list, the log's
 * descriptor and settings, the flusher's sleep), a buffer's mu (its bytes,
 * whether it is live), log.c's write lock (the descriptor's writes).
 *
 * While the log is open every thread that logs owns a buffer (without
 * bytes when buffer_bytes is 0) and does all its work on a line, the write
 * included, under that buffer's lock: nobody else wants it except the
 * flusher once every flush_ms and a reopen or close, so a line costs one
 * uncontended lock and no shared write. al.fd, al.chunks and al.cap change
 * only under al.mu with every buffer's lock taken in turn (access_log_close
 * marks each buffer dead under its lock, which waits for the line in
 * progress), so a thread holding a live buffer's lock reads them safely:
 * no line goes to a closed or reused descriptor or into a buffer nobody
 * will write. A reopen replaces the file behind the same descriptor number
 * (dup2), so a write in progress never sees it change.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/access_log.h"
#include "server/config.h"
#include "server/log.h"

struct abuf {
    pthread_mutex_t mu;
    char *data;           /* al.cap bytes; NULL when unbuffered */
    size_t len;
    bool live;            /* (mu) of the open log: not yet swept by a close */
    bool owned;           /* (al.mu) a live thread appends to it */
    bool orphan;          /* (al.mu) the log was closed while it was owned:
                             its thread frees it */
    struct abuf *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct abuf *head;
    int fd;               /* the log's descriptor (STDERR_FILENO: stderr) */
    bool own_fd;
    bool chunks;          /* not a regular file: PIPE_BUF pieces */
    char path[CONFIG_PATH_SIZE];
    size_t cap;
    unsigned flush_ms;
    bool stop;
    bool flusher_started;
    pthread_t flusher;
} al = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .fd = STDERR_FILENO,
    .chunks = true,
};

/* Set from access_log_open to access_log_close: lines go through the
 * buffers. Clear, they go straight to stderr, which is never closed. */
static atomic_bool is_open;
static _Thread_local struct abuf *mine;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static bool
is_pipe_like(int fd)
{
    struct stat st;

    return fstat(fd, &st) != 0 || !S_ISREG(st.st_mode);
}

/* Writes b's lines (b->mu held, b live). A failing descriptor drops
 * them: the access log never blocks or fails a request. */
static void
flush_locked(struct abuf *b)
{
    if (b->len == 0)
        return;
    (void)log_write_lines(al.fd, b->data, b->len, al.chunks);
    b->len = 0;
}

static void
abuf_free(struct abuf *b)
{
    pthread_mutex_destroy(&b->mu);
    free(b->data);
    free(b);
}

static void
thread_exit(void *arg)
{
    struct abuf *b = arg;
    bool free_it;

    pthread_mutex_lock(&b->mu);
    if (b->live)
        flush_locked(b);
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_lock(&al.mu);
    free_it = b->orphan;
    b->owned = false;
    pthread_mutex_unlock(&al.mu);
    if (free_it)
        abuf_free(b);
}

static void
make_exit_key(void)
{
    if (pthread_key_create(&exit_key, thread_exit) != 0)
        abort();
}

/* A buffer of the open log for the calling thread: a free one, else a new
 * one. NULL when the log is closed or out of memory. */
static struct abuf *
my_buffer(void)
{
    struct abuf *b, *old;

    pthread_once(&exit_key_once, make_exit_key);
    old = pthread_getspecific(exit_key);
    pthread_mutex_lock(&al.mu);
    if (old && old->orphan) {
        /* A buffer of an earlier open that this thread still held. */
        abuf_free(old);
        old = NULL;
        pthread_setspecific(exit_key, NULL);
    }
    if (!atomic_load(&is_open)) {
        pthread_mutex_unlock(&al.mu);
        return NULL;
    }
    for (b = al.head; b; b = b->next)
        if (!b->owned)
            break;
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (b && al.cap)
            b->data = malloc(al.cap);
        if (!b || (al.cap && !b->data)) {
            free(b);
            pthread_mutex_unlock(&al.mu);
            return NULL;
        }
        pthread_mutex_init(&b->mu, NULL);
        b->live = true;
        b->next = al.head;
        al.head = b;
    }
    b->owned = true;
    pthread_mutex_unlock(&al.mu);
    pthread_setspecific(exit_key, b);
    mine = b;
    return b;
}

static void
flush_all_locked(void)
{
    for (struct abuf *b = al.head; b; b = b->next) {
        pthread_mutex_lock(&b->mu);
        flush_locked(b);
        pthread_mutex_unlock(&b->mu);
    }
}

static void *
flusher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&al.mu);
    while (!al.stop) {
        struct timespec at;

        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_sec += al.flush_ms / 1000;
        at.tv_nsec += (long)(al.flush_ms % 1000) * 1000000L;
        if (at.tv_nsec >= 1000000000L) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000L;
        }
        while (!al.stop &&
               pthread_cond_timedwait(&al.cond, &al.mu, &at) != ETIMEDOUT)
            ;
        if (al.stop)
            break;
        flush_all_locked();
    }
    pthread_mutex_unlock(&al.mu);
    return NULL;
}

static int
open_path(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        log_errbuf(err, err_len, "access_log %s: %s", path, strerror(errno));
    return fd;
}

int
access_log_open(const char *path, size_t buffer_bytes, unsigned flush_ms,
                char *err, size_t err_len)
{
    pthread_condattr_t ca;
    int fd = STDERR_FILENO;

    if (path && path[0]) {
        if (strlen(path) >= sizeof(al.path)) {
            log_errbuf(err, err_len, "access_log: path too long");
            return -1;
        }
        fd = open_path(path, err, err_len);
        if (fd < 0)
            return -1;
    }
    pthread_mutex_lock(&al.mu);
    al.fd = fd;
    al.own_fd = fd != STDERR_FILENO;
    al.chunks = is_pipe_like(fd);
    snprintf(al.path, sizeof(al.path), "%s", path ? path : "");
    al.cap = buffer_bytes;
    al.flush_ms = flush_ms ? flush_ms : 1;
    al.stop = false;
    pthread_mutex_unlock(&al.mu);
    if (buffer_bytes == 0) {
        atomic_store(&is_open, true);
        return 0;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&al.cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&al.flusher, NULL, flusher_main, NULL) != 0) {
        pthread_cond_destroy(&al.cond);
        log_errbuf(err, err_len, "access_log: cannot start its flusher");
        pthread_mutex_lock(&al.mu);
        if (al.own_fd)
            close(al.fd);
        al.fd = STDERR_FILENO;
        al.own_fd = false;
        al.cap = 0;
        pthread_mutex_unlock(&al.mu);
        return -1;
    }
    al.flusher_started = true;
    atomic_store(&is_open, true);
    return 0;
}

static void append(const char *line, size_t n);

void
access_log_line(uint64_t request_id, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    size_t n;
    va_list ap;

    if (!log_enabled(LOG_INFO))
        return;
    va_start(ap, fmt);
    n = log_vformat(line, sizeof(line), LOG_INFO, request_id, fmt, ap);
    va_end(ap);
    append(line, n);
}

void
access_log_text(uint64_t request_id, const char *text, size_t len)
{
    char line[LOG_LINE_MAX];
    size_t n;

    if (!log_enabled(LOG_INFO))
        return;
    n = log_prefix(line, LOG_INFO, request_id);
    if (len > sizeof(line) - n - 1)
        len = sizeof(line) - n - 1;
    memcpy(line + n, text, len);
    n += len;
    line[n++] = '\n';
    append(line, n);
}

/* One whole line (newline included) into the caller's buffer, written
 * when the buffer is full or the log unbuffered; straight to stderr while
 * the log is closed. */
static void
append(const char *line, size_t n)
{
    /* Twice at most: a buffer found dead (a close swept it) is dropped and
     * one of the next open, if any, taken. */
    for (int tries = 0; tries < 2; tries++) {
        struct abuf *b;

        if (!atomic_load(&is_open)) {
            (void)log_write_lines(STDERR_FILENO, line, n, true);
            return;
        }
        b = mine ? mine : my_buffer();
        if (!b)
            break;
        pthread_mutex_lock(&b->mu);
        if (b->live) {
            if (b->len + n > al.cap)
                flush_locked(b);
            if (n > al.cap) {
                (void)log_write_lines(al.fd, line, n, al.chunks);
            } else {
                memcpy(b->data + b->len, line, n);
                b->len += n;
            }
            pthread_mutex_unlock(&b->mu);
            return;
        }
        pthread_mutex_unlock(&b->mu);
        mine = NULL;
    }
    /* Out of memory, or closed and opened again twice meanwhile: the slow
     * path, under the lock that every change of the descriptor holds. */
    pthread_mutex_lock(&al.mu);
    (void)log_write_lines(al.fd, line, n, al.chunks);
    pthread_mutex_unlock(&al.mu);
}

void
access_log_flush(void)
{
    pthread_mutex_lock(&al.mu);
    flush_all_locked();
    pthread_mutex_unlock(&al.mu);
}

int
access_log_reopen(char *err, size_t err_len)
{
    int rc = -1, fd = -1;

    pthread_mutex_lock(&al.mu);
    flush_all_locked();
    if (!al.own_fd) {
        rc = 0;
        goto out;
    }
    fd = open_path(al.path, err, err_len);
    if (fd < 0)
        goto out;
    /* Same descriptor number, the new file behind it: atomic for every
     * writer. */
    if (dup2(fd, al.fd) < 0) {
        log_errbuf(err, err_len, "access_log %s: %s", al.path,
                   strerror(errno));
        goto out;
    }
    (void)fcntl(al.fd, F_SETFD, FD_CLOEXEC);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    pthread_mutex_unlock(&al.mu);
    return rc;
}

void
access_log_close(void)
{
    struct abuf *b, *next;

    if (al.flusher_started) {
        pthread_mutex_lock(&al.mu);
        al.stop = true;
        pthread_cond_signal(&al.cond);
        pthread_mutex_unlock(&al.mu);
        pthread_join(al.flusher, NULL);
        al.flusher_started = false;
        pthread_cond_destroy(&al.cond);
    }
    pthread_mutex_lock(&al.mu);
    /* Lines logged from now on go to stderr at once. */
    atomic_store(&is_open, false);
    for (b = al.head; b; b = next) {
        next = b->next;
        /* Waits for the line its thread may be writing. */
        pthread_mutex_lock(&b->mu);
        flush_locked(b);
        b->live = false;
        pthread_mutex_unlock(&b->mu);
        b->next = NULL;
        if (b->owned)
            b->orphan = true;
        else
            abuf_free(b);
    }
    al.head = NULL;
    if (al.own_fd)
        close(al.fd);
    al.fd = STDERR_FILENO;
    al.own_fd = false;
    al.chunks = is_pipe_like(STDERR_FILENO);
    al.cap = 0;
    pthread_mutex_unlock(&al.mu);
}
