/*
 * kafka_in.c: librdkafka high-level consumer behind a small interface.
 * Owns the rebalance callback (eager: assign/assign(NULL); cooperative:
 * incremental), the pause state (re-applied to newly assigned partitions)
 * and the queue wake-up. Never decides what is handled: the bridge does.
 */
#include "kafka_in.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_conf.h"
#include "log.h"

struct lb_kafka_in_s {
        rd_kafka_t *rk;
        rd_kafka_queue_t *queue;
        lb_kafka_in_cbs_t cbs;
        int paused;
        int commit_interval_ms;
};

static void pause_list(lb_kafka_in_t *in,
                       rd_kafka_topic_partition_list_t *parts, int pause)
{
        rd_kafka_resp_err_t err =
            pause ? rd_kafka_pause_partitions(in->rk, parts)
                  : rd_kafka_resume_partitions(in->rk, parts);
        if (err)
                lb_warn("consumer", "%s failed: %s", pause ? "pause" : "resume",
                        rd_kafka_err2str(err));
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        lb_kafka_in_t *in = opaque;
        int cooperative =
            !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t aerr = 0;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                lb_info("consumer", "assigned %d partition(s)", parts->cnt);
                if (cooperative)
                        error = rd_kafka_incremental_assign(rk, parts);
                else
                        aerr = rd_kafka_assign(rk, parts);
                if (!error && !aerr) {
                        /* librdkafka keeps a partition's pause flag across
                         * an unassign: one paused before a revocation comes
                         * back paused. Set every new partition's state to
                         * ours, or it may never be fetched again. */
                        pause_list(in, parts, in->paused);
                        if (in->cbs.assigned)
                                in->cbs.assigned(in->cbs.opaque, parts);
                }
        } else {
                int lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ||
                           rd_kafka_assignment_lost(rk);
                lb_info("consumer", "%s %d partition(s)",
                        lost ? "lost" : "revoking", parts->cnt);
                if (in->cbs.revoking)
                        in->cbs.revoking(in->cbs.opaque, parts, lost);
                if (cooperative)
                        error = rd_kafka_incremental_unassign(rk, parts);
                else
                        aerr = rd_kafka_assign(rk, NULL);
        }
        if (error) {
                lb_error("consumer", "rebalance: %s",
                         rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        } else if (aerr) {
                lb_error("consumer", "rebalance: %s", rd_kafka_err2str(aerr));
        }
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
        (void)rk;
        lb_kafka_in_t *in = opaque;
        if (in->cbs.stats)
                in->cbs.stats(in->cbs.opaque, json, len);
        return 0; /* librdkafka frees json */
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char buf[512];
                rd_kafka_fatal_error(rk, buf, sizeof(buf));
                lb_error("consumer", "fatal: %s", buf);
        } else {
                lb_warn("consumer", "%s: %s", rd_kafka_err2name(err), reason);
        }
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
        (void)rk;
        lb_kafka_in_t *in = opaque;
        if (in->cbs.committed)
                in->cbs.committed(in->cbs.opaque, err, offsets);
}

int lb_kafka_in_check_conf(const lb_config_t *conf, char *errstr,
                           size_t errstr_size)
{
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(conf, LB_KAFKA_CONSUMER, errstr, errstr_size);
        if (!kc)
                return -1;
        rd_kafka_conf_destroy(kc);
        return 0;
}

lb_kafka_in_t *lb_kafka_in_new(const lb_config_t *conf,
                               const lb_kafka_in_cbs_t *cbs, int wake_fd,
                               char *errstr, size_t errstr_size)
{
        lb_kafka_in_t *in = calloc(1, sizeof(*in));
        rd_kafka_topic_partition_list_t *topics = NULL;
        rd_kafka_conf_t *kc = NULL;
        if (!in) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        in->cbs = *cbs;
        kc = lb_kafka_conf_new(conf, LB_KAFKA_CONSUMER, errstr, errstr_size);
        if (!kc)
                goto fail;
        rd_kafka_conf_set_opaque(kc, in);
        rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
        rd_kafka_conf_set_stats_cb(kc, stats_cb);
        rd_kafka_conf_set_error_cb(kc, error_cb);
        rd_kafka_conf_set_offset_commit_cb(kc, commit_cb);
        char ival[32];
        size_t ival_len = sizeof(ival);
        in->commit_interval_ms =
            rd_kafka_conf_get(kc, "auto.commit.interval.ms", ival, &ival_len)
                ? 5000
                : atoi(ival);
        in->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size);
        if (!in->rk)
                goto fail; /* kc is still ours */
        kc = NULL;         /* now owned by rk */
        rd_kafka_poll_set_consumer(in->rk);
        in->queue = rd_kafka_queue_get_consumer(in->rk);
        if (wake_fd >= 0)
                rd_kafka_queue_io_event_enable(in->queue, wake_fd, "c", 1);

        topics = rd_kafka_topic_partition_list_new((int)conf->topic_cnt);
        for (size_t i = 0; i < conf->topic_cnt; i++)
                rd_kafka_topic_partition_list_add(topics, conf->topics[i],
                                                  RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(in->rk, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errstr, errstr_size, "subscribe: %s",
                         rd_kafka_err2str(err));
                goto fail;
        }
        return in;
fail:
        if (kc)
                rd_kafka_conf_destroy(kc);
        if (in->queue)
                rd_kafka_queue_destroy(in->queue);
        if (in->rk)
                rd_kafka_destroy(in->rk);
        free(in);
        return NULL;
}

rd_kafka_message_t *lb_kafka_in_poll(lb_kafka_in_t *in, int timeout_ms)
{
        return rd_kafka_consumer_poll(in->rk, timeout_ms);
}

void lb_kafka_in_pause_all(lb_kafka_in_t *in, int pause)
{
        rd_kafka_topic_partition_list_t *parts;
        if (in->paused == pause)
                return;
        in->paused = pause;
        if (rd_kafka_assignment(in->rk, &parts))
                return;
        if (parts->cnt)
                pause_list(in, parts, pause);
        rd_kafka_topic_partition_list_destroy(parts);
}

int lb_kafka_in_paused(const lb_kafka_in_t *in)
{
        return in->paused;
}

int lb_kafka_in_commit_interval_ms(const lb_kafka_in_t *in)
{
        return in->commit_interval_ms;
}

rd_kafka_topic_partition_list_t *
lb_kafka_in_committed(lb_kafka_in_t *in,
                      const rd_kafka_topic_partition_list_t *parts,
                      int timeout_ms)
{
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_copy(parts);
        rd_kafka_resp_err_t err = rd_kafka_committed(in->rk, l, timeout_ms);
        if (err) {
                lb_warn("offsets", "reading the group's commits: %s",
                        rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_destroy(l);
                return NULL;
        }
        return l;
}

int lb_kafka_in_fatal(const lb_kafka_in_t *in, char *errstr, size_t errstr_size)
{
        return rd_kafka_fatal_error(in->rk, errstr, errstr_size) != 0;
}

int64_t lb_kafka_in_log_start(lb_kafka_in_t *in, const char *topic,
                              int32_t partition)
{
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(in->rk, topic, partition, &lo,
                                           &hi) ||
            lo < 0)
                return -1;
        return lo;
}

int lb_kafka_in_cooperative(const lb_kafka_in_t *in)
{
        return !strcmp(rd_kafka_rebalance_protocol(in->rk), "COOPERATIVE");
}

rd_kafka_resp_err_t lb_kafka_in_commit(lb_kafka_in_t *in,
                                       rd_kafka_topic_partition_list_t *offsets,
                                       int async)
{
        if (!offsets->cnt)
                return 0;
        if (async) {
                rd_kafka_resp_err_t err = rd_kafka_commit(in->rk, offsets, 1);
                return err == RD_KAFKA_RESP_ERR__NO_OFFSET ? 0 : err;
        }
        /* librdkafka's own wait has no bound: with the coordinator behind
         * a partition it never returns. The result comes to a queue of its
         * own (no message, no rebalance served meanwhile), waited for a
         * while; a late one is dropped with the queue. */
        rd_kafka_queue_t *q = rd_kafka_queue_new(in->rk);
        if (!q)
                return RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
        rd_kafka_resp_err_t err =
            rd_kafka_commit_queue(in->rk, offsets, q, NULL, NULL);
        rd_kafka_event_t *ev =
            err ? NULL : rd_kafka_queue_poll(q, LB_COMMIT_WAIT_MS);
        if (!err && !ev)
                err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (ev) {
                err = rd_kafka_event_error(ev);
                const rd_kafka_topic_partition_list_t *r =
                    rd_kafka_event_topic_partition_list(ev);
                for (int i = 0; r && i < r->cnt; i++) {
                        rd_kafka_topic_partition_t *t =
                            rd_kafka_topic_partition_list_find(
                                offsets, r->elems[i].topic,
                                r->elems[i].partition);
                        if (t)
                                t->err = r->elems[i].err;
                }
                rd_kafka_event_destroy(ev);
        }
        rd_kafka_queue_destroy(q);
        if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
                for (int i = 0; i < offsets->cnt; i++)
                        offsets->elems[i].err = err;
        return err == RD_KAFKA_RESP_ERR__NO_OFFSET ? 0 : err;
}

/* Leaves the group (the revocation's callback runs) within
 * LB_CLOSE_WAIT_MS: librdkafka's own close has no bound, and with the
 * coordinator behind a partition it never returns. @returns 1 closed. */
static int close_bounded(lb_kafka_in_t *in)
{
        rd_kafka_queue_t *q = rd_kafka_queue_new(in->rk);
        if (!q)
                return 0;
        rd_kafka_error_t *error = rd_kafka_consumer_close_queue(in->rk, q);
        if (error) {
                lb_warn("consumer", "close: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        for (int waited = 0; !error && !rd_kafka_consumer_closed(in->rk) &&
                             waited < LB_CLOSE_WAIT_MS;
             waited += 100)
                rd_kafka_queue_poll_callback(q, 100);
        int closed = rd_kafka_consumer_closed(in->rk);
        if (!closed)
                lb_warn("consumer",
                        "leaving the group took over %d ms: closed without "
                        "it (the group's coordinator is unreachable)",
                        LB_CLOSE_WAIT_MS);
        rd_kafka_queue_destroy(q);
        return closed;
}

void lb_kafka_in_destroy(lb_kafka_in_t *in)
{
        if (!in)
                return;
        int closed = close_bounded(in);
        rd_kafka_queue_destroy(in->queue);
        rd_kafka_destroy_flags(
            in->rk, closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        free(in);
}
