/*
 * kafka_in.h: the consumer adapter. A thin layer over librdkafka's
 * high-level consumer: subscribe, poll, pause/resume, commit (offsets with
 * their metadata, explicitly: librdkafka 2.0.2's offset store drops
 * metadata), read the group's commits, and rebalances handed to the bridge
 * as assign/revoke calls (eager or cooperative protocol alike) whose answers
 * the loop gives later (rebalance.h). Served from the loop thread only.
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
        /** Partitions were added to the assignment (already assigned, and
         *  paused until committed_read() has run for tag). */
        void (*assigned)(void *opaque,
                         const rd_kafka_topic_partition_list_t *parts,
                         uint64_t tag);
        /** The group's committed offsets and metadata of the partitions
         *  assigned with tag (NULL: they could not be read); the
         *  partitions are resumed (unless input is paused) on return. */
        void (*committed_read)(void *opaque,
                               const rd_kafka_topic_partition_list_t *offs,
                               uint64_t tag);
        /** Partitions are being revoked (paused now). lost: another member
         *  may own them already (do not commit). The answer is the
         *  bridge's: lb_kafka_in_revoked(tag) from the loop once it has let
         *  go of them, or on return when at_once (the consumer is
         *  closing). The consumer commits nothing by itself. */
        void (*revoking)(void *opaque,
                         const rd_kafka_topic_partition_list_t *parts, int lost,
                         uint64_t tag, int at_once);
        /** A newer rebalance came while the answer to revocation tag is
         *  owed: let go of its partitions now, without waiting (the answer
         *  is given or dropped on return, see rebalance.h). */
        void (*settle)(void *opaque, uint64_t tag);
        /** librdkafka statistics JSON (may be NULL). */
        void (*stats)(void *opaque, const char *json, size_t len);
        /** The result of an asynchronous commit, per partition in
         *  offsets->elems[i].err (may be NULL). */
        void (*committed)(void *opaque, rd_kafka_resp_err_t err,
                          const rd_kafka_topic_partition_list_t *offsets);
} lb_kafka_in_cbs_t;

/**
 * @brief Creates the consumer and subscribes to conf->topics. wake_fd (or
 *        -1) is written to when the consumer queue becomes non-empty.
 * @returns NULL with errstr naming the key or the failure.
 */
lb_kafka_in_t *lb_kafka_in_new(const lb_config_t *conf,
                               const lb_kafka_in_cbs_t *cbs, int wake_fd,
                               char *errstr, size_t errstr_size);

/** @returns the next message (caller destroys), or NULL. Serves callbacks. */
rd_kafka_message_t *lb_kafka_in_poll(lb_kafka_in_t *in, int timeout_ms);

/**
 * @returns 1 when consumed message m surely has no headers, else 0 (then
 *          rd_kafka_message_headers() says). librdkafka 2.0's
 *          rd_kafka_message_headers() allocates and frees a parse buffer
 *          for every record (a v2 record without headers still has one
 *          byte of them, its count 0), about 1,000 instructions; this
 *          reads that byte where librdkafka 2.0 keeps it, and on any other
 *          version, or when the record's layout is not the expected one,
 *          answers 0.
 */
int lb_kafka_in_headerless(const rd_kafka_message_t *m);

/** @brief Pauses (pause=1) or resumes every assigned partition. */
void lb_kafka_in_pause_all(lb_kafka_in_t *in, int pause);
int lb_kafka_in_paused(const lb_kafka_in_t *in);

/** @returns auto.commit.interval.ms of the consumer's settings: how often
 *           the bridge commits. */
int lb_kafka_in_commit_interval_ms(const lb_kafka_in_t *in);

/** @brief Serves what the consumer's own poll does not: the committed
 *         offsets read for new partitions (the committed_read callback),
 *         and the reads past their deadline (rebalance.timeout.ms: then
 *         with NULL, and a late answer is dropped). */
void lb_kafka_in_serve(lb_kafka_in_t *in);

/** @returns when lb_kafka_in_serve() gives up the next read of committed
 *           offsets (lb_admin_now_ms()), or INT64_MAX when none is due. */
int64_t lb_kafka_in_read_deadline(const lb_kafka_in_t *in);

/** @brief Answers revocation tag: the partitions leave the assignment,
 *         unless a newer rebalance made the answer stale (then nothing). */
void lb_kafka_in_revoked(lb_kafka_in_t *in, uint64_t tag);

/** @returns how often the consumer was polled, or its results served, from
 *           within one of its own callbacks (a bug: always 0). */
uint64_t lb_kafka_in_reentries(const lb_kafka_in_t *in);

/** @returns nonzero once the consumer hit a fatal error (restart needed),
 *           or a read of the group's commits stayed unanswered so long that
 *           librdkafka 2.0.2's own timeout of it would arm a use after free
 *           (kafka_in.c, LB_READ_REQUEST_TIMEOUT_MS). */
int lb_kafka_in_fatal(const lb_kafka_in_t *in, char *errstr,
                      size_t errstr_size);

/** @brief Tests: librdkafka's timeout of the next reads of the group's
 *         commits (1 h by default), and how long one may stay unanswered
 *         before lb_kafka_in_fatal() says so (55 min by default). */
void lb_kafka_in_set_read_limits(lb_kafka_in_t *in, int request_ms,
                                 int stuck_ms);

/** @returns the partition's log start offset as last seen in a fetch (no
 *           request), or -1 when none is known yet. */
int64_t lb_kafka_in_log_start(lb_kafka_in_t *in, const char *topic,
                              int32_t partition);

/** @returns the partition's log end (high watermark) as last seen in a
 *           fetch (no request), or -1 when none is known yet. */
int64_t lb_kafka_in_log_end(lb_kafka_in_t *in, const char *topic,
                            int32_t partition);

/** @brief Moves consumer rk's position in topic[partition] to offset
 *         (without waiting): what was fetched before is dropped. A failure
 *         is logged as component's. Any consumer: the bridge's (through
 *         lb_kafka_in_seek()) and replay's. */
void lb_kafka_seek(rd_kafka_t *rk, const char *component, const char *topic,
                   int32_t partition, int64_t offset);

/** @brief Moves the partition's consume position to offset (without
 *         waiting): what was fetched before is dropped. */
void lb_kafka_in_seek(lb_kafka_in_t *in, const char *topic, int32_t partition,
                      int64_t offset);

/** @returns nonzero when the group uses the cooperative protocol (as
 *           librdkafka last named it, when it cannot be asked any more). */
int lb_kafka_in_cooperative(lb_kafka_in_t *in);

/* The longest a waited-for commit waits (at revocation and shutdown):
 * part of the exit bound's margin. */
#define LB_COMMIT_WAIT_MS 2000

/**
 * @brief Commits each entry's .offset (the next to consume) with its
 *        .metadata. async: returns at once, the result goes to the
 *        committed callback; else waits at most LB_COMMIT_WAIT_MS, and
 *        per-partition errors are in offsets->elems[i].err (all
 *        RD_KAFKA_RESP_ERR__TIMED_OUT when no answer came in time).
 * @returns 0 or the request's error (0 with async).
 */
rd_kafka_resp_err_t lb_kafka_in_commit(lb_kafka_in_t *in,
                                       rd_kafka_topic_partition_list_t *offsets,
                                       int async);

/* The longest leaving the group waits at exit: part of the exit bound's
 * margin. */
#define LB_CLOSE_WAIT_MS 3000

/* The longest librdkafka's destroy of a consumer that left its group is
 * waited for at exit (it takes a few ms; see lb_kafka_in_destroy): taken
 * from what the exit bound's margin leaves the dead-letter flush. */
#define LB_DESTROY_WAIT_MS 1000

/** @brief Leaves the group (revoke callbacks run) within LB_CLOSE_WAIT_MS,
 *         and frees; librdkafka's destroy runs on a thread of its own,
 *         waited for at most LB_DESTROY_WAIT_MS after leaving the group,
 *         and not at all when the consumer could not leave (at exit: the
 *         process does not wait for the rest). NULL ok. */
void lb_kafka_in_destroy(lb_kafka_in_t *in);

/** @returns 1 when a consumer's destroy was left running (at exit): the
 *           process then ends without running exit handlers, which could
 *           tear down what librdkafka's threads still use. */
int lb_kafka_in_destroy_left(void);

#endif
