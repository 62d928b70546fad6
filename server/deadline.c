/*
 * The deadline watchdog: a list of open connections under a mutex and
 * one thread that wakes four times a second. It also watches the progress
 * of large transfers (deadlines_watch) through the kernel's count of
 * acknowledged bytes. shutdown(2) on a late socket
 * makes libmicrohttpd see the connection fail and close it in its own
 * thread; the socket stays valid until then because the CLOSED
 * notification (deadlines_close, under the same mutex) comes before
 * libmicrohttpd closes the descriptor.
 */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "server/deadline.h"

#define TICK_MS 250

enum watch_state { WATCH_OFF = 0, WATCH_START, WATCH_ON };

struct deadline_conn {
    int fd;
    atomic_int_fast64_t due_ms;      /* 0: none */
    atomic_int watch;                /* enum watch_state */
    /* Progress of a watched transfer; the watchdog thread's only. */
    uint64_t acked;                  /* tcpi_bytes_acked at the last look */
    int64_t progress_ms;             /* when acked last moved */
    uint64_t window_acked;           /* acked when the rate window began */
    int64_t window_ms;
    struct deadline_conn *prev;
    struct deadline_conn *next;
};

struct deadlines {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool stopping;
    unsigned timeout_ms;
    struct deadline_conn *head;
    void (*on_expired)(void *ctx);
    void *ctx;
    unsigned idle_ms;                /* 0: transfers are not watched */
    unsigned min_bytes_per_s;
    void (*on_stalled)(void *ctx);
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A watched transfer progresses when the peer acknowledges bytes: the
 * kernel's count (TCP_INFO) moves whether or not libmicrohttpd has been
 * woken to write. Returns true when the connection must be cut: nothing
 * acknowledged for idle_ms, or less than min_bytes_per_s on average over
 * the last idle_ms.
 */
static bool
transfer_stalled(const struct deadlines *d, struct deadline_conn *dc,
                 int64_t now)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (getsockopt(dc->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) +
                  sizeof(ti.tcpi_bytes_acked))
        return false;
    if (atomic_load(&dc->watch) == WATCH_START) {
        int expected = WATCH_START;

        dc->acked = dc->window_acked = ti.tcpi_bytes_acked;
        dc->progress_ms = dc->window_ms = now;
        atomic_compare_exchange_strong(&dc->watch, &expected, WATCH_ON);
        return false;
    }
    if (ti.tcpi_bytes_acked != dc->acked) {
        dc->acked = ti.tcpi_bytes_acked;
        dc->progress_ms = now;
    }
    if (now - dc->progress_ms > (int64_t)d->idle_ms)
        return true;
    if (now - dc->window_ms >= (int64_t)d->idle_ms) {
        uint64_t moved = dc->acked - dc->window_acked;

        if (moved * 1000 <
            (uint64_t)d->min_bytes_per_s * (uint64_t)(now - dc->window_ms))
            return true;
        dc->window_acked = dc->acked;
        dc->window_ms = now;
    }
    return false;
}

static void *
watch(void *arg)
{
    struct deadlines *d = arg;

    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        struct timespec until;
        int64_t now = now_ms();

        for (struct deadline_conn *dc = d->head; dc; dc = dc->next) {
            int64_t due = atomic_load(&dc->due_ms);

            if (due != 0 && now > due) {
                atomic_store(&dc->due_ms, 0);
                shutdown(dc->fd, SHUT_RDWR);
                if (d->on_expired)
                    d->on_expired(d->ctx);
            } else if (d->idle_ms && atomic_load(&dc->watch) != WATCH_OFF &&
                       transfer_stalled(d, dc, now)) {
                atomic_store(&dc->watch, WATCH_OFF);
                shutdown(dc->fd, SHUT_RDWR);
                if (d->on_stalled)
                    d->on_stalled(d->ctx);
            }
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->wake, &d->lock, &until);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

struct deadlines *
deadlines_start(unsigned timeout_ms, void (*on_expired)(void *ctx),
                void *ctx)
{
    struct deadlines *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->timeout_ms = timeout_ms;
    d->on_expired = on_expired;
    d->ctx = ctx;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->wake, NULL);
    if (pthread_create(&d->thread, NULL, watch, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    return d;
}

void
deadlines_stop(struct deadlines *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    while (d->head) {
        struct deadline_conn *next = d->head->next;

        free(d->head);
        d->head = next;
    }
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

struct deadline_conn *
deadlines_open(struct deadlines *d, int fd)
{
    struct deadline_conn *dc = calloc(1, sizeof(*dc));

    if (!dc)
        return NULL;
    dc->fd = fd;
    atomic_store(&dc->due_ms, now_ms() + d->timeout_ms);
    pthread_mutex_lock(&d->lock);
    dc->next = d->head;
    if (d->head)
        d->head->prev = dc;
    d->head = dc;
    pthread_mutex_unlock(&d->lock);
    return dc;
}

void
deadlines_close(struct deadlines *d, struct deadline_conn *dc)
{
    if (!dc)
        return;
    pthread_mutex_lock(&d->lock);
    if (dc->prev)
        dc->prev->next = dc->next;
    else
        d->head = dc->next;
    if (dc->next)
        dc->next->prev = dc->prev;
    pthread_mutex_unlock(&d->lock);
    free(dc);
}

void
deadlines_disarm(struct deadline_conn *dc)
{
    if (dc)
        atomic_store(&dc->due_ms, 0);
}

void
deadlines_arm(struct deadlines *d, struct deadline_conn *dc)
{
    if (dc)
        atomic_store(&dc->due_ms, now_ms() + d->timeout_ms);
}

void
deadlines_watch_transfers(struct deadlines *d, unsigned idle_ms,
                          unsigned min_bytes_per_s,
                          void (*on_stalled)(void *ctx))
{
    pthread_mutex_lock(&d->lock);
    d->idle_ms = idle_ms;
    d->min_bytes_per_s = min_bytes_per_s;
    d->on_stalled = on_stalled;
    pthread_mutex_unlock(&d->lock);
}

bool
deadlines_watch(struct deadlines *d, struct deadline_conn *dc, bool on)
{
    if (!d || !dc || !d->idle_ms)
        return false;
    atomic_store(&dc->watch, on ? WATCH_START : WATCH_OFF);
    return true;
}
