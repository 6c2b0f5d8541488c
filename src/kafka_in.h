/*
 * kafka_in.h: the consumer adapter. A thin layer over librdkafka's
 * high-level consumer: subscribe, poll, pause/resume, store offsets, commit,
 * and rebalances handed to the bridge as assign/revoke calls (eager or
 * cooperative protocol alike). Served from the loop thread only.
 */
#ifndef LB_KAFKA_IN_H
#define LB_KAFKA_IN_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct lb_kafka_in_s lb_kafka_in_t;

typedef struct {
        void *opaque;
        /** Partitions were added to the assignment (already assigned). */
        void (*assigned)(void *opaque,
                         const rd_kafka_topic_partition_list_t *parts);
        /** Partitions are about to be removed. lost: another member may own
         *  them already (do not commit). Stores made during this call are
         *  committed by librdkafka as it removes them. */
        void (*revoking)(void *opaque,
                         const rd_kafka_topic_partition_list_t *parts,
                         int lost);
        /** librdkafka statistics JSON (may be NULL). */
        void (*stats)(void *opaque, const char *json, size_t len);
} lb_kafka_in_cbs_t;

/**
 * @brief Creates the consumer and subscribes to conf->topics. wake_fd (or
 *        -1) is written to when the consumer queue becomes non-empty.
 * @returns NULL with errstr naming the key or the failure.
 */
lb_kafka_in_t *lb_kafka_in_new(const lb_config_t *conf,
                               const lb_kafka_in_cbs_t *cbs, int wake_fd,
                               char *errstr, size_t errstr_size);

/** @brief Checks that librdkafka accepts every consumer-side property. */
int lb_kafka_in_check_conf(const lb_config_t *conf, char *errstr,
                           size_t errstr_size);

/** @returns the next message (caller destroys), or NULL. Serves callbacks. */
rd_kafka_message_t *lb_kafka_in_poll(lb_kafka_in_t *in, int timeout_ms);

/** @brief Pauses (pause=1) or resumes every assigned partition. */
void lb_kafka_in_pause_all(lb_kafka_in_t *in, int pause);
int lb_kafka_in_paused(const lb_kafka_in_t *in);

/** @brief Stores offset (the next to consume) for commit.
 *  @returns 0, or the librdkafka error (e.g. __STATE if not assigned). */
rd_kafka_resp_err_t lb_kafka_in_store(lb_kafka_in_t *in, const char *topic,
                                      int32_t partition, int64_t offset);

/** @returns nonzero once the consumer hit a fatal error (restart needed). */
int lb_kafka_in_fatal(const lb_kafka_in_t *in, char *errstr,
                      size_t errstr_size);

/** @returns nonzero when the group uses the cooperative protocol. */
int lb_kafka_in_cooperative(const lb_kafka_in_t *in);

/** @brief Commits stored offsets synchronously. */
rd_kafka_resp_err_t lb_kafka_in_commit(lb_kafka_in_t *in);

/** @brief Leaves the group (revoke callbacks run) and frees. NULL ok. */
void lb_kafka_in_destroy(lb_kafka_in_t *in);

#endif
