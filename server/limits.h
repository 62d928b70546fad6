/*
 * The HTTP sizing taken from the machine when the config leaves it to
 * the daemon (threads = 0, max_connections = 0): thread count from the
 * online cores, the connection budget from the threads and the file
 * descriptors the process may open.
 */
#ifndef SERVER_LIMITS_H
#define SERVER_LIMITS_H

#include "server/config.h"

/* At most this many connections per epoll thread: one epoll thread stalls
 * when more are ready at once. */
#define LIMITS_CONNECTIONS_PER_THREAD 125

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit, then fills in
 * cfg->threads (when 0: four per online core, 4 to 64) and
 * cfg->max_connections (when 0: LIMITS_CONNECTIONS_PER_THREAD a thread);
 * either is then lowered so that every connection can hold a socket and a
 * file (two descriptors each, 128 spare). Never fails: the worst case is
 * a smaller budget.
 */
void limits_resolve(struct config *cfg);

#endif
