/*
 * One-line log records to stderr: time, level, request id, message. The
 * only logging in modeld; other modules report through status codes.
 */
#ifndef SERVER_LOG_H
#define SERVER_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
};

/* Records below level are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);

/* Whether records of this level are written (to skip building them). */
bool log_enabled(enum log_level level);

/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int log_level_parse(const char *name);

/* Writes one line; request_id 0 means "no request". Thread-safe: lines
 * go out whole through log_write_lines. */
void log_msg(enum log_level level, uint64_t request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The longest record: longer ones are cut. */
#define LOG_LINE_MAX 2048

/* The longest prefix log_prefix writes. */
#define LOG_PREFIX_MAX 64

/* Writes a record's prefix ("TIME LEVEL req=N " or "TIME LEVEL - ") to
 * line (at least LOG_PREFIX_MAX bytes); returns its length. */
size_t log_prefix(char *line, enum log_level level, uint64_t request_id);

/* Writes x in decimal (at most 20 bytes, no terminator); its length. */
size_t log_put_u64(char *out, uint64_t x);

/*
 * Formats one record ("TIME LEVEL req=N message\n") into line (size at
 * least LOG_PREFIX_MAX + 2 bytes; LOG_LINE_MAX holds any) and returns its
 * length, the newline included.
 */
size_t log_vformat(char *line, size_t size, enum log_level level,
                   uint64_t request_id, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/*
 * Writes whole lines to fd under the one lock every log write takes, so
 * that no two threads' lines mix; with atomic_chunks (a pipe or a socket)
 * in pieces of at most PIPE_BUF bytes cut at line ends. 0, or -1 (errno
 * set) when the descriptor failed; what was not written is dropped.
 */
int log_write_lines(int fd, const char *buf, size_t len, bool atomic_chunks);

/*
 * Copies a client string for a log line: printable ASCII kept, the rest
 * escaped as \xNN, cut to out_size-1 bytes with "..." when longer.
 */
void log_quote(const char *s, char *out, size_t out_size);

/*
 * Formats an error message into err (err_len bytes, always terminated) for
 * the caller to log or print later; err NULL or err_len 0 does nothing.
 */
void log_errbuf(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
