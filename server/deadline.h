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

#endif
