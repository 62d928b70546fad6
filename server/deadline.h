/*
 * Request deadlines against slow clients. libmicrohttpd's timeout counts
 * idle time only, so a client that sends one header byte a second would
 * hold its connection forever. Every connection here gets a deadline by
 * which its next request's headers must be complete; a watchdog thread
 * shuts down the sockets of connections past it.
 */
#ifndef SERVER_DEADLINE_H
#define SERVER_DEADLINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct deadlines;
struct deadline_conn;

/* Starts the watchdog. timeout_ms: time allowed for a request's headers;
 * on_expired(ctx) is called (from the watchdog thread) per connection
 * dropped. NULL on failure. */
struct deadlines *deadlines_start(unsigned timeout_ms,
                                  void (*on_expired)(void *ctx), void *ctx);

/* Stops the watchdog; NULL does nothing. Call after the HTTP daemon has
 * stopped (every connection closed). */
void deadlines_stop(struct deadlines *d);

/* A new connection on socket fd, armed now. NULL on ENOMEM (the
 * connection then has no deadline). */
struct deadline_conn *deadlines_open(struct deadlines *d, int fd);

/* The connection is closing; its socket must not be touched any more.
 * NULL does nothing. */
void deadlines_close(struct deadlines *d, struct deadline_conn *dc);

/* Headers complete: no deadline while the request is handled. */
void deadlines_disarm(struct deadline_conn *dc);

/* A response finished: the next request's headers are due in timeout. */
void deadlines_arm(struct deadlines *d, struct deadline_conn *dc);

/*
 * Progress instead of idle time for large transfers. libmicrohttpd's
 * connection timeout counts from its last write, and it writes only when
 * woken with room in the socket's send buffer: a slow reader behind a
 * large buffer can keep acknowledging bytes for longer than the timeout
 * between two wakeups. A watched connection is cut only when the peer
 * acknowledged nothing for idle_ms, or less than min_bytes_per_s on
 * average over a window of idle_ms (the guard against slow-read attacks);
 * on_stalled(ctx) is called per connection cut. Call once after
 * deadlines_start.
 */
void deadlines_watch_transfers(struct deadlines *d, unsigned idle_ms,
                               unsigned min_bytes_per_s,
                               void (*on_stalled)(void *ctx));

/* Starts (on) or stops watching dc's progress. Returns false when
 * transfers are not watched (d or dc NULL, or no idle_ms): the caller
 * then keeps libmicrohttpd's own timeout. */
bool deadlines_watch(struct deadlines *d, struct deadline_conn *dc, bool on);

#endif
