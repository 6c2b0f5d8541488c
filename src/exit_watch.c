/*
 * exit_watch.c: the exit bound's backstop (exit_watch.h): a detached thread
 * that sleeps until the deadline and, if the process is still there, logs
 * the step it was in and calls _exit. Only the step's name is shared, by
 * an atomic pointer.
 */
#include "exit_watch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static _Atomic(const char *) step = "the cleanup";

typedef struct {
        int64_t ms;
        int code;
} watch_t;

void lb_exit_watch_step(const char *name)
{
        atomic_store(&step, name);
}

static void *watch(void *arg)
{
        watch_t w = *(watch_t *)arg;
        free(arg);
        struct timespec ts = {.tv_sec = (time_t)(w.ms / 1000),
                              .tv_nsec = (long)(w.ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) == -1)
                ; /* a signal: sleep what is left */
        /* not lb_log: a writer stuck on a full stderr holds its lock */
        lb_log_unlocked(LB_LOG_ERROR, "main",
                        "the exit bound's last %lld ms are spent, in %s (a "
                        "call that did not return): exiting now; what was "
                        "not committed is redone by the next owner",
                        (long long)w.ms, atomic_load(&step));
        _exit(w.code);
}

int lb_exit_watch_start(int64_t ms, int code)
{
        watch_t *w = malloc(sizeof(*w));
        if (!w)
                return -1;
        w->ms = ms > 0 ? ms : 0;
        w->code = code;
        pthread_attr_t attr;
        pthread_t t;
        int rc = pthread_attr_init(&attr);
        if (!rc)
                rc =
                    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (!rc)
                rc = pthread_create(&t, &attr, watch, w);
        pthread_attr_destroy(&attr);
        if (rc) {
                free(w);
                return -1;
        }
        return 0;
}
