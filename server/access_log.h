/*
 * The access log: one line per request (server/http.c), buffered per
 * thread like nginx's `access_log ... buffer= flush=`. Each thread appends
 * whole lines to a buffer of its own; a buffer is written (one write of
 * whole lines, server/log.c's log_write_lines) when the next line does
 * not fit, by a flusher thread every flush_ms, before a reopen and at
 * access_log_close. Lines never mix or tear; a thread's lines (so one
 * connection's requests) keep their order; lines of different threads are
 * ordered by flush, not by time. kill -9 loses what the buffers hold: at
 * most buffer_bytes per HTTP thread, written less than flush_ms ago.
 *
 * Without access_log_open (or after access_log_close), access_log_line
 * writes each line to stderr at once. Lines may be logged from any thread
 * while another reopens or closes the log: access_log_close waits for the
 * lines being written, so each line goes, whole and once, to the file or
 * (logged after the close) to stderr.
 */
#ifndef SERVER_ACCESS_LOG_H
#define SERVER_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

/*
 * Starts the access log: lines go to path (appended; created 0640), or to
 * stderr when path is empty, through per-thread buffers of buffer_bytes
 * (0: each line written at once) flushed every flush_ms. 0, or -1 with a
 * message in err.
 */
int access_log_open(const char *path, size_t buffer_bytes,
                    unsigned flush_ms, char *err, size_t err_len);

/*
 * One access-log record ("TIME INFO req=N " then fmt), appended to the
 * calling thread's buffer. Skipped below log level info.
 */
void access_log_line(uint64_t request_id, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The same with the message already written: text (len bytes, no
 * newline; cut at LOG_LINE_MAX) after the record's prefix.
 */
void access_log_text(uint64_t request_id, const char *text, size_t len);

/* Writes every thread's buffered lines now. */
void access_log_flush(void);

/*
 * SIGHUP: flushes, then opens the path again (after a rotation renamed
 * it) and writes there from now on. Nothing to do for stderr. 0, or -1
 * with a message in err (the old file is kept).
 */
int access_log_reopen(char *err, size_t err_len);

/*
 * Stops the flusher, waits for the lines other threads are writing,
 * writes what is buffered and closes the file; later lines go to stderr.
 */
void access_log_close(void);

#endif
