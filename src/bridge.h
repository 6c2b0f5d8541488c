/*
 * bridge.h: the loop that ties the modules together. One thread owns every
 * mutable structure: it consumes, validates, batches, sends, classifies,
 * dead-letters and stores offsets; librdkafka and curl callbacks are served
 * from its own poll calls.
 */
#ifndef LB_BRIDGE_H
#define LB_BRIDGE_H

#include <signal.h>
#include <stddef.h>

#include "config.h"

typedef struct lb_bridge_s lb_bridge_t;

/**
 * @brief Builds the bridge: consumer (subscribed), DLQ producer, sender,
 *        admin endpoint if metrics.listen is set. wake_fd is the read end of
 *        a non-blocking pipe whose write end (wake_wfd) is poked by
 *        librdkafka and by signal handlers. conf stays owned by the caller
 *        and must outlive the bridge; the bridge writes only its client
 *        keys (lb_config_reload_apps).
 * @returns NULL with errstr on failure.
 */
lb_bridge_t *lb_bridge_new(lb_config_t *conf, int wake_fd, int wake_wfd,
                           char *errstr, size_t errstr_size);

/**
 * @brief Runs until *stop becomes nonzero, then drains (up to
 *        shutdown.timeout.ms), commits and leaves the group. When *reload
 *        becomes nonzero (SIGHUP), or the apps file changes, the client
 *        keys are read again from it (and *reload cleared).
 * @returns 0 after a clean shutdown, 1 after a fatal runtime error.
 */
int lb_bridge_run(lb_bridge_t *b, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *reload);

/** @brief Frees everything; NULL is a no-op. */
void lb_bridge_destroy(lb_bridge_t *b);

#endif
