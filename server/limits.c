/*
 * Automatic HTTP sizing (see limits.h). Why these numbers: libmicrohttpd's
 * epoll threads mostly wait on sockets, so more threads than cores cost
 * little and keep one thread that blocks (a disk read, a catalog write)
 * from stalling every connection; four per core served a normal client
 * at a 4 ms p99 beside 500 slowloris connections on two cores where one
 * per core let it wait 15 s. The budget is what those threads can poll
 * (125 each), bounded by the descriptors a download needs (its socket and
 * its file).
 */
#include <sys/resource.h>
#include <unistd.h>

#include "server/limits.h"

#define THREADS_PER_CORE 4
#define THREADS_MIN 4
#define THREADS_MAX 64
#define SPARE_FDS 128

void
limits_resolve(struct config *cfg)
{
    struct rlimit rl;
    unsigned long long fd_budget = ~0ull;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY)
            fd_budget = rl.rlim_cur > 2 * SPARE_FDS
                            ? (rl.rlim_cur - SPARE_FDS) / 2
                            : SPARE_FDS / 2;
    }
    if (cfg->threads == 0) {
        unsigned long long t =
            (unsigned long long)(cores > 0 ? cores : 1) * THREADS_PER_CORE;

        cfg->threads = (unsigned)(t < THREADS_MIN   ? THREADS_MIN
                                  : t > THREADS_MAX ? THREADS_MAX
                                                    : t);
    }
    if (cfg->max_connections == 0)
        cfg->max_connections = cfg->threads * LIMITS_CONNECTIONS_PER_THREAD;
    if (cfg->max_connections > fd_budget)
        cfg->max_connections = (unsigned)fd_budget;
}
