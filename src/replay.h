/*
 * replay.h: `leanbridge replay`, the dead-letter topic read back: each chosen
 * record's original key, value and timestamp produced again to its source
 * topic (or --to), idempotently with acks=all, and the replay's own consumer
 * group progress committed only after those produces were acknowledged.
 */
#ifndef LB_REPLAY_H
#define LB_REPLAY_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "replay_filter.h"

/**
 * @brief Checks what replay needs: kafka.bootstrap.servers, dlq.topic, the
 *        options' cross rules, and that librdkafka accepts every kafka.*
 *        property of the consumer and the producer. The bridge's other keys
 *        are accepted and ignored.
 * @returns 0, or -1 with errstr.
 */
int lb_replay_check_conf(const lb_config_t *conf, const lb_replay_opts_t *o,
                         char *errstr, size_t errstr_size);

/**
 * @brief Runs the replay until caught up with the high watermarks taken at
 *        start (or, with --follow, until *stop). A progress line goes to
 *        stderr while it runs, the summary (or the dry run's counts) to
 *        stdout at the end.
 * @returns 0 when done or stopped cleanly, 1 on a fatal error (nothing is
 *          committed past a record whose produce was not acknowledged).
 */
int lb_replay_run(const lb_config_t *conf, const lb_replay_opts_t *o,
                  volatile sig_atomic_t *stop);

#endif
