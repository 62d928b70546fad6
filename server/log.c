/*
 * stderr logging: each record is formatted into a local buffer and written
 * under one lock (log_write_lines) so that lines from several threads never
 * mix. The access log's lines are buffered per thread (server/access_log.c).
 */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio/fileio.h"
#include "server/log.h"

static volatile int min_level = LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

static _Thread_local time_t stamp_s = -1;
static _Thread_local char stamp[32];
static _Thread_local size_t stamp_len;

void
log_set_level(enum log_level level)
{
    min_level = (int)level;
}

bool
log_enabled(enum log_level level)
{
    return (int)level >= min_level;
}

int
log_level_parse(const char *name)
{
    static const char *const lower[] = {"debug", "info", "warn", "error"};

    for (size_t i = 0; i < sizeof(lower) / sizeof(lower[0]); i++)
        if (strcmp(name, lower[i]) == 0)
            return (int)i;
    return -1;
}

size_t
log_put_u64(char *out, uint64_t x)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t
log_prefix(char *line, enum log_level level, uint64_t request_id)
{
    struct timespec now;
    struct tm tm;
    size_t n, k;
    long ms;

    clock_gettime(CLOCK_REALTIME, &now);
    /* The date part changes once a second: format it then, per thread. */
    if (now.tv_sec != stamp_s) {
        gmtime_r(&now.tv_sec, &tm);
        stamp_len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        stamp_s = now.tv_sec;
    }
    /* By hand: this is on every request's path (the access log). */
    memcpy(line, stamp, stamp_len);
    n = stamp_len;
    ms = now.tv_nsec / 1000000L;
    line[n++] = '.';
    line[n++] = (char)('0' + ms / 100);
    line[n++] = (char)('0' + ms / 10 % 10);
    line[n++] = (char)('0' + ms % 10);
    line[n++] = 'Z';
    line[n++] = ' ';
    k = strlen(level_names[level]);
    memcpy(line + n, level_names[level], k);
    n += k;
    line[n++] = ' ';
    if (request_id != 0) {
        memcpy(line + n, "req=", 4);
        n += 4;
        n += log_put_u64(line + n, request_id);
        line[n++] = ' ';
    } else {
        line[n++] = '-';
        line[n++] = ' ';
    }
    return n;
}

size_t
log_vformat(char *line, size_t size, enum log_level level,
            uint64_t request_id, const char *fmt, va_list ap)
{
    size_t n;
    int k;

    if (size < LOG_PREFIX_MAX + 2)
        return 0;
    n = log_prefix(line, level, request_id);
    k = vsnprintf(line + n, size - n, fmt, ap);
    if (k < 0)
        k = 0;
    n += (size_t)k;
    if (n > size - 2)
        n = size - 2;
    line[n++] = '\n';
    return n;
}

/* Every write of log lines, ours and the buffered access log's
 * (server/access_log.c), goes out under this lock: lines of two threads
 * never mix, whatever the descriptor is. */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

int
log_write_lines(int fd, const char *buf, size_t len, bool atomic_chunks)
{
    int rc = 0;

    pthread_mutex_lock(&write_mu);
    while (len > 0) {
        size_t n = len;

        /* A pipe takes a write of at most PIPE_BUF bytes whole: cut at a
         * line's end so that another process's lines cannot land inside
         * one of ours. */
        if (atomic_chunks && n > PIPE_BUF) {
            n = PIPE_BUF;
            while (n > 0 && buf[n - 1] != '\n')
                n--;
            if (n == 0)
                n = PIPE_BUF;
        }
        if (fileio_write_all(fd, buf, n) != 0) {
            rc = -1;
            break;
        }
        buf += n;
        len -= n;
    }
    pthread_mutex_unlock(&write_mu);
    return rc;
}

void
log_msg(enum log_level level, uint64_t request_id, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    size_t n;
    va_list ap;

    if ((int)level < min_level)
        return;
    va_start(ap, fmt);
    n = log_vformat(line, sizeof(line), level, request_id, fmt, ap);
    va_end(ap);
    if (log_write_lines(STDERR_FILENO, line, n, true) != 0) {
        /* Nowhere left to report a failing stderr. */
    }
}

void
log_quote(const char *s, char *out, size_t out_size)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (out_size == 0)
        return;
    if (!s)
        s = "";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        size_t need = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
                          ? 1 : 4;

        if (o + need + 4 > out_size) {
            if (o + 4 <= out_size) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (need == 1) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

void
log_errbuf(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (!err || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}
