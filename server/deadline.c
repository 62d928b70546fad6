/*
 * The deadline watchdog: a list of open connections under a mutex and
 * one thread that wakes four times a second. shutdown(2) on a late socket
 * makes libmicrohttpd see the connection fail and close it in its own
 * thread; the socket stays valid until then because the CLOSED
 * notification (deadlines_close, under the same mutex) comes before
 * libmicrohttpd closes the descriptor.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "server/deadline.h"

#define TICK_MS 250

struct deadline_conn {
    int fd;
    atomic_int_fast64_t due_ms;      /* 0: none */
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
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
