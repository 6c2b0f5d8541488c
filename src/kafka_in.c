/*
 * kafka_in.c: librdkafka high-level consumer behind a small interface.
 * Owns the rebalance callback, which only records: an assignment is taken
 * at once (eager: assign; cooperative: incremental) and its partitions stay
 * paused until the group's committed offsets for them are read (an admin
 * request served from the loop) or the read's deadline passes; a revocation's
 * answer (assign(NULL), or the incremental unassign) is given later, from the
 * loop, tagged so a stale one is dropped (rebalance.h), and at once while
 * closing. Owns the pause state too (which partitions wait for their offsets or
 * their revocation) and the queue wake-ups, and counts a poll made from within
 * a callback. Never decides what is handled: the bridge does.
 */
#include "kafka_in.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "grow.h"
#include "kafka_conf.h"
#include "log.h"
#include "rebalance.h"

/* A read of the group's commits librdkafka has not answered yet. */
typedef struct {
        uint64_t tag;
        int64_t sent_ms; /* lb_admin_now_ms() */
} read_sent_t;

struct lb_kafka_in_s {
        rd_kafka_t *rk;
        rd_kafka_queue_t *queue;
        rd_kafka_queue_t *reads; /* the committed offsets read (admin) */
        lb_kafka_in_cbs_t cbs;
        char *group;
        int paused;
        int commit_interval_ms;
        int read_timeout_ms;
        int closing;        /* a revocation is answered on return */
        int cooperative;    /* the group's protocol, as last named */
        int protocol_named; /* librdkafka named one ("NONE" before the
                               group is joined is none) */
        int in_callback;    /* callbacks running (nested polls are bugs) */
        uint64_t reentries;
        lb_rebalance_t rb;
        /* the partitions of the owed revocation; new ones paused until
         * their committed offsets are read (.opaque: the rebalance tag,
         * .offset: the read's deadline, lb_admin_now_ms()) */
        rd_kafka_topic_partition_list_t *owed, *waiting;
        /* the reads librdkafka has not answered, oldest first; one
         * unanswered for read_stuck_ms is fatal (LB_READ_REQUEST_TIMEOUT_MS) */
        read_sent_t *sent;
        size_t sent_cnt, sent_cap;
        int read_request_ms, read_stuck_ms;
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

static int listed(const rd_kafka_topic_partition_list_t *l,
                  const rd_kafka_topic_partition_t *t)
{
        return l && rd_kafka_topic_partition_list_find(l, t->topic,
                                                       t->partition) != NULL;
}

/* Resumes the assigned partitions of parts (all when NULL) that wait for
 * nothing: neither their committed offsets nor their revocation. */
static void resume_ready(lb_kafka_in_t *in,
                         const rd_kafka_topic_partition_list_t *parts)
{
        rd_kafka_topic_partition_list_t *a, *r;
        if (in->paused || rd_kafka_assignment(in->rk, &a))
                return;
        r = rd_kafka_topic_partition_list_new(a->cnt + 1);
        for (int i = 0; i < a->cnt; i++)
                if ((!parts || listed(parts, &a->elems[i])) &&
                    !listed(in->waiting, &a->elems[i]) &&
                    !listed(in->owed, &a->elems[i]))
                        rd_kafka_topic_partition_list_add(
                            r, a->elems[i].topic, a->elems[i].partition);
        if (r->cnt)
                pause_list(in, r, 0);
        rd_kafka_topic_partition_list_destroy(r);
        rd_kafka_topic_partition_list_destroy(a);
}

/* The rebalance tag a waiting entry carries. */
static uint64_t tag_of(const rd_kafka_topic_partition_t *t)
{
        return (uint64_t)(uintptr_t)t->opaque;
}

/* Removes from *l the entries of parts (or, parts NULL, those whose
 * .opaque is tag), adding them to out when not NULL. */
static void list_remove(rd_kafka_topic_partition_list_t *l,
                        const rd_kafka_topic_partition_list_t *parts,
                        uint64_t tag, rd_kafka_topic_partition_list_t *out)
{
        for (int i = l->cnt - 1; i >= 0; i--) {
                rd_kafka_topic_partition_t *t = &l->elems[i];
                if (parts ? !listed(parts, t) : tag_of(t) != tag)
                        continue;
                if (out)
                        rd_kafka_topic_partition_list_add(out, t->topic,
                                                          t->partition);
                rd_kafka_topic_partition_list_del_by_idx(l, i);
        }
}

/*
 * librdkafka's own timeout of a read of the group's commits. librdkafka
 * 2.0.2 (and its master still) frees an admin request that times out while
 * its coordinator is being looked up, then uses it when the lookup answers:
 * an abort, or a deadlock of librdkafka's main thread (tests/edge
 * test_kafka_in). So the request is given the most librdkafka takes, and
 * the read's own deadline (rebalance.timeout.ms) is kept here: past it the
 * partitions go on without their maps, and the late answer is dropped. A
 * read still unanswered LB_READ_STUCK_MS after it was sent (the coordinator
 * not found for 55 minutes) is a fatal error before librdkafka's timeout
 * can arm the bug: the bridge exits (1) for a clean restart.
 */
#define LB_READ_REQUEST_TIMEOUT_MS (3600 * 1000)
#define LB_READ_STUCK_MS           (LB_READ_REQUEST_TIMEOUT_MS - 300 * 1000)

/* Notes the read sent for tag, until librdkafka answers it. */
static void read_sent(lb_kafka_in_t *in, uint64_t tag)
{
        read_sent_t *s =
            lb_grow(in->sent, &in->sent_cap, in->sent_cnt + 1, sizeof(*s), 8);
        if (!s) {
                lb_warn("offsets", "out of memory: a read of the "
                                   "group's commits is not watched");
                return;
        }
        in->sent = s;
        in->sent[in->sent_cnt++] =
            (read_sent_t){.tag = tag, .sent_ms = lb_admin_now_ms()};
}

/* librdkafka answered the read sent for tag. */
static void read_answered(lb_kafka_in_t *in, uint64_t tag)
{
        for (size_t i = 0; i < in->sent_cnt; i++)
                if (in->sent[i].tag == tag) {
                        memmove(&in->sent[i], &in->sent[i + 1],
                                (in->sent_cnt - i - 1) * sizeof(in->sent[0]));
                        in->sent_cnt--;
                        return;
                }
}

/* Reads the group's committed offsets (and metadata) of parts without
 * waiting: the result comes to in->reads, served by lb_kafka_in_serve(). */
static void read_committed(lb_kafka_in_t *in,
                           const rd_kafka_topic_partition_list_t *parts,
                           uint64_t tag)
{
        char err[256];
        rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(
            in->rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
        rd_kafka_ListConsumerGroupOffsets_t *req =
            rd_kafka_ListConsumerGroupOffsets_new(in->group, parts);
        if (rd_kafka_AdminOptions_set_request_timeout(o, in->read_request_ms,
                                                      err, sizeof(err)))
                lb_warn("offsets", "reading the group's commits: %s", err);
        rd_kafka_AdminOptions_set_opaque(o, (void *)(uintptr_t)tag);
        rd_kafka_ListConsumerGroupOffsets(in->rk, &req, 1, o, in->reads);
        read_sent(in, tag);
        rd_kafka_ListConsumerGroupOffsets_destroy(req);
        rd_kafka_AdminOptions_destroy(o);
}

static void unassign(lb_kafka_in_t *in,
                     const rd_kafka_topic_partition_list_t *parts)
{
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t err = 0;
        if (lb_kafka_in_cooperative(in))
                error = rd_kafka_incremental_unassign(in->rk, parts);
        else
                err = rd_kafka_assign(in->rk, NULL);
        list_remove(in->waiting, parts, 0, NULL);
        if (error) {
                lb_error("consumer", "unassign: %s",
                         rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        } else if (err) {
                lb_error("consumer", "unassign: %s", rd_kafka_err2str(err));
        }
}

/* The answer owed to an older revocation, now that a newer rebalance came:
 * its partitions are let go of at once, then it is given (cooperative: in
 * order) or dropped (eager: the newer answer replaces the assignment). */
static void settle_owed(lb_kafka_in_t *in, lb_owed_action_t act)
{
        if (act == LB_OWED_ANSWER)
                unassign(in, in->owed);
        else if (act == LB_OWED_DROP)
                lb_info("consumer", "a newer rebalance came before the "
                                    "revocation's answer: dropped");
        rd_kafka_topic_partition_list_destroy(in->owed);
        in->owed = NULL;
}

static void on_assign(lb_kafka_in_t *in, rd_kafka_topic_partition_list_t *parts,
                      uint64_t tag)
{
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t err = 0;
        lb_info("consumer", "assigned %d partition(s)", parts->cnt);
        if (lb_kafka_in_cooperative(in))
                error = rd_kafka_incremental_assign(in->rk, parts);
        else
                err = rd_kafka_assign(in->rk, parts);
        if (error || err) {
                lb_error("consumer", "assign: %s",
                         error ? rd_kafka_error_string(error)
                               : rd_kafka_err2str(err));
                if (error)
                        rd_kafka_error_destroy(error);
                return;
        }
        if (parts->cnt) {
                /* Paused until their committed offset maps are read (and so
                 * that librdkafka's pause flag, kept across an unassign, is
                 * ours). */
                int64_t deadline = lb_admin_now_ms() + in->read_timeout_ms;
                pause_list(in, parts, 1);
                for (int i = 0; i < parts->cnt; i++) {
                        rd_kafka_topic_partition_t *w =
                            rd_kafka_topic_partition_list_add(
                                in->waiting, parts->elems[i].topic,
                                parts->elems[i].partition);
                        w->opaque = (void *)(uintptr_t)tag;
                        w->offset = deadline;
                }
                read_committed(in, parts, tag);
        }
        if (in->cbs.assigned) /* an empty assignment too: joined */
                in->cbs.assigned(in->cbs.opaque, parts, tag);
}

static void on_revoke(lb_kafka_in_t *in, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, uint64_t tag)
{
        int lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ||
                   rd_kafka_assignment_lost(in->rk);
        lb_info("consumer", "%s %d partition(s)", lost ? "lost" : "revoking",
                parts->cnt);
        in->owed = rd_kafka_topic_partition_list_copy(parts);
        if (parts->cnt)
                pause_list(in, parts, 1); /* nothing more is fetched */
        if (in->cbs.revoking)
                in->cbs.revoking(in->cbs.opaque, parts, lost, tag, in->closing);
        if (in->closing)
                lb_kafka_in_revoked(in, tag);
}

/* Records the rebalance and returns at once: an assignment is taken now;
 * a revocation is answered from the loop (lb_kafka_in_revoked()), or now
 * while closing. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        (void)rk;
        lb_kafka_in_t *in = opaque;
        int revoke = err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        uint64_t tag;
        in->in_callback++;
        if (in->rb.owed && in->cbs.settle)
                in->cbs.settle(in->cbs.opaque, in->rb.owed);
        lb_owed_action_t act = lb_rebalance_begin(
            &in->rb, lb_kafka_in_cooperative(in), revoke, &tag);
        if (act != LB_OWED_NONE)
                settle_owed(in, act);
        if (revoke)
                on_revoke(in, err, parts, tag);
        else
                on_assign(in, parts, tag);
        in->in_callback--;
}

void lb_kafka_in_revoked(lb_kafka_in_t *in, uint64_t tag)
{
        if (!lb_rebalance_answer(&in->rb, tag)) {
                lb_debug("consumer",
                         "the answer to rebalance %" PRIu64 " is stale: "
                         "dropped",
                         tag);
                return;
        }
        settle_owed(in, LB_OWED_ANSWER);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
        (void)rk;
        lb_kafka_in_t *in = opaque;
        in->in_callback++;
        if (in->cbs.stats)
                in->cbs.stats(in->cbs.opaque, json, len);
        in->in_callback--;
        return 0; /* librdkafka frees json */
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char buf[512], clean[600];
                rd_kafka_fatal_error(rk, buf, sizeof(buf));
                lb_error("consumer", "fatal: %s",
                         lb_kafka_redact(buf, clean, sizeof(clean)));
        } else {
                lb_kafka_warn("consumer", err, reason);
        }
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
        (void)rk;
        lb_kafka_in_t *in = opaque;
        in->in_callback++;
        if (in->cbs.committed)
                in->cbs.committed(in->cbs.opaque, err, offsets);
        in->in_callback--;
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
        char group[512];
        size_t group_len = sizeof(group);
        if (rd_kafka_conf_get(kc, "group.id", group, &group_len) ||
            !(in->group = strdup(group)) ||
            !(in->waiting = rd_kafka_topic_partition_list_new(16))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        in->read_timeout_ms = (int)conf->rebalance_timeout_ms;
        in->read_request_ms = LB_READ_REQUEST_TIMEOUT_MS;
        in->read_stuck_ms = LB_READ_STUCK_MS;
        in->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, errstr_size);
        if (!in->rk)
                goto fail; /* kc is still ours */
        kc = NULL;         /* now owned by rk */
        rd_kafka_poll_set_consumer(in->rk);
        in->queue = rd_kafka_queue_get_consumer(in->rk);
        in->reads = rd_kafka_queue_new(in->rk);
        if (wake_fd >= 0) {
                rd_kafka_queue_io_event_enable(in->queue, wake_fd, "c", 1);
                rd_kafka_queue_io_event_enable(in->reads, wake_fd, "r", 1);
        }

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
        if (in->reads)
                rd_kafka_queue_destroy(in->reads);
        if (in->rk)
                rd_kafka_destroy(in->rk);
        if (in->waiting)
                rd_kafka_topic_partition_list_destroy(in->waiting);
        free(in->group);
        free(in);
        return NULL;
}

/* The loop is never turned from a librdkafka callback: a poll from within
 * one is counted (and said once), for the tests that check it stays 0. */
static void check_nesting(lb_kafka_in_t *in)
{
        if (!in->in_callback)
                return;
        if (!in->reentries++)
                lb_error("consumer", "polled from within a consumer callback "
                                     "(a bug: the loop must not nest)");
}

rd_kafka_message_t *lb_kafka_in_poll(lb_kafka_in_t *in, int timeout_ms)
{
        check_nesting(in);
        return rd_kafka_consumer_poll(in->rk, timeout_ms);
}

/* librdkafka 2.0's rd_kafka_msg_t (src/rdkafka_msg.h, v2.0.2), as far as
 * a consumed record's raw headers (rkm_u.consumer.binhdrs, an
 * rd_kafkap_bytes_t): the public message comes first. */
typedef struct {
        rd_kafka_message_t rkmessage;
        void *link_next, **link_prev; /* TAILQ_ENTRY */
        int flags;
        rd_kafka_timestamp_type_t tstype;
        int64_t timestamp;
        rd_kafka_headers_t *headers; /* parsed, if asked for before */
        int status;
        int32_t broker_id;
        int32_t binhdrs_len; /* the bytes after the value, in the record */
        const void *binhdrs_data;
} rkm_2_0_t;

int lb_kafka_in_headerless(const rd_kafka_message_t *m)
{
        static int layout = -1;
        if (layout < 0)
                layout = (rd_kafka_version() & 0xffff0000) == 0x02000000;
        const rkm_2_0_t *r = (const rkm_2_0_t *)m;
        /* The raw headers follow the value directly, and a count of 0 is
         * the single byte 0 (a zigzag varint). */
        return layout && m->payload && !r->headers && r->binhdrs_len == 1 &&
               r->binhdrs_data == (const char *)m->payload + m->len &&
               *(const unsigned char *)r->binhdrs_data == 0;
}

uint64_t lb_kafka_in_reentries(const lb_kafka_in_t *in)
{
        return in->reentries;
}

/* The end of the read of the commits of the partitions assigned with tag
 * (some still waiting): they get offs (NULL: not read, their maps are not
 * used) and are resumed unless input is paused. */
static void read_over(lb_kafka_in_t *in, uint64_t tag,
                      const rd_kafka_topic_partition_list_t *offs)
{
        rd_kafka_topic_partition_list_t *ready =
            rd_kafka_topic_partition_list_new(in->waiting->cnt + 1);
        list_remove(in->waiting, NULL, tag, ready);
        if (in->cbs.committed_read)
                in->cbs.committed_read(in->cbs.opaque, offs, tag);
        resume_ready(in, ready);
        rd_kafka_topic_partition_list_destroy(ready);
}

static int waits(const lb_kafka_in_t *in, uint64_t tag)
{
        for (int i = 0; i < in->waiting->cnt; i++)
                if (tag_of(&in->waiting->elems[i]) == tag)
                        return 1;
        return 0;
}

/* The committed offsets of one rebalance's new partitions (an error: their
 * maps are not used). */
static void committed_read(lb_kafka_in_t *in, rd_kafka_event_t *ev)
{
        uint64_t tag = (uint64_t)(uintptr_t)rd_kafka_event_opaque(ev);
        const rd_kafka_topic_partition_list_t *offs = NULL;
        const rd_kafka_ListConsumerGroupOffsets_result_t *res =
            rd_kafka_event_ListConsumerGroupOffsets_result(ev);
        size_t n = 0;
        const rd_kafka_group_result_t **g =
            res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &n)
                : NULL;
        const rd_kafka_error_t *gerr =
            n == 1 ? rd_kafka_group_result_error(g[0]) : NULL;
        read_answered(in, tag);
        if (!waits(in, tag))
                return; /* given up at its deadline, or its partitions left */
        if (rd_kafka_event_error(ev) || n != 1 || gerr)
                lb_warn("offsets",
                        "reading the group's commits: %s; offset maps not "
                        "used (what they mark done is redone)",
                        rd_kafka_event_error(ev)
                            ? rd_kafka_event_error_string(ev)
                        : gerr ? rd_kafka_error_string(gerr)
                               : "no result");
        else
                offs = rd_kafka_group_result_partitions(g[0]);
        read_over(in, tag, offs);
}

/* Reads past their deadline: their partitions go on without maps. */
static void give_up_late_reads(lb_kafka_in_t *in)
{
        int64_t now = lb_admin_now_ms();
        for (int i = 0; i < in->waiting->cnt; i++) {
                if (in->waiting->elems[i].offset > now)
                        continue;
                uint64_t tag = tag_of(&in->waiting->elems[i]);
                lb_warn("offsets",
                        "reading the group's commits: no answer within %d ms "
                        "(rebalance.timeout.ms); offset maps not used (what "
                        "they mark done is redone)",
                        in->read_timeout_ms);
                read_over(in, tag, NULL);
                i = -1; /* the list changed */
        }
}

int64_t lb_kafka_in_read_deadline(const lb_kafka_in_t *in)
{
        int64_t t = INT64_MAX;
        for (int i = 0; i < in->waiting->cnt; i++)
                if (in->waiting->elems[i].offset < t)
                        t = in->waiting->elems[i].offset;
        return t;
}

void lb_kafka_in_serve(lb_kafka_in_t *in)
{
        rd_kafka_event_t *ev;
        check_nesting(in);
        in->in_callback++;
        while ((ev = rd_kafka_queue_poll(in->reads, 0))) {
                if (rd_kafka_event_type(ev) ==
                    RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT)
                        committed_read(in, ev);
                rd_kafka_event_destroy(ev);
        }
        give_up_late_reads(in);
        in->in_callback--;
}

void lb_kafka_in_pause_all(lb_kafka_in_t *in, int pause)
{
        rd_kafka_topic_partition_list_t *parts;
        if (in->paused == pause)
                return;
        in->paused = pause;
        if (!pause) {
                resume_ready(in, NULL);
                return;
        }
        if (rd_kafka_assignment(in->rk, &parts))
                return;
        if (parts->cnt)
                pause_list(in, parts, 1);
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

int lb_kafka_in_fatal(const lb_kafka_in_t *in, char *errstr, size_t errstr_size)
{
        if (rd_kafka_fatal_error(in->rk, errstr, errstr_size))
                return 1;
        if (!in->sent_cnt ||
            lb_admin_now_ms() - in->sent[0].sent_ms < in->read_stuck_ms)
                return 0;
        snprintf(errstr, errstr_size,
                 "a read of the group's commits is unanswered after %d s "
                 "(the group's coordinator cannot be found): librdkafka "
                 "2.0.2 would misuse it once its own timeout passes (%d s); "
                 "exiting for a clean restart",
                 in->read_stuck_ms / 1000, in->read_request_ms / 1000);
        return 1;
}

void lb_kafka_in_set_read_limits(lb_kafka_in_t *in, int request_ms,
                                 int stuck_ms)
{
        in->read_request_ms = request_ms;
        in->read_stuck_ms = stuck_ms;
}

/* The partition's log start (end: its end) as last seen in a fetch, or -1
 * when none is known yet. */
static int64_t watermark(lb_kafka_in_t *in, const char *topic,
                         int32_t partition, int end)
{
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(in->rk, topic, partition, &lo, &hi))
                return -1;
        return (end ? hi : lo) < 0 ? -1 : (end ? hi : lo);
}

int64_t lb_kafka_in_log_start(lb_kafka_in_t *in, const char *topic,
                              int32_t partition)
{
        return watermark(in, topic, partition, 0);
}

int64_t lb_kafka_in_log_end(lb_kafka_in_t *in, const char *topic,
                            int32_t partition)
{
        return watermark(in, topic, partition, 1);
}

void lb_kafka_seek(rd_kafka_t *rk, const char *component, const char *topic,
                   int32_t partition, int64_t offset)
{
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
        rd_kafka_error_t *error = rd_kafka_seek_partitions(rk, l, 0);
        if (error) {
                lb_warn(component, "seek %s[%d] to %" PRId64 ": %s", topic,
                        partition, offset, rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        rd_kafka_topic_partition_list_destroy(l);
}

void lb_kafka_in_seek(lb_kafka_in_t *in, const char *topic, int32_t partition,
                      int64_t offset)
{
        lb_kafka_seek(in->rk, "consumer", topic, partition, offset);
}

/* librdkafka answers NULL when its group cannot be asked any more (it is
 * terminating: a revocation served while the consumer closes, after the
 * broker forgot the member). The partitions let go of then were assigned
 * under the protocol it last named. While closing it is not asked again:
 * the question is a request to librdkafka's main thread that waits for
 * its answer without a bound, and in librdkafka 2.0.2 the group's end
 * purges that thread's queue, forwarded to it, dropping a request queued
 * meanwhile unanswered (fixed in 2.10.0): the process hung there, past
 * the exit bound. The protocol does not change while the consumer closes. */
int lb_kafka_in_cooperative(lb_kafka_in_t *in)
{
        if (in->closing && in->protocol_named)
                return in->cooperative;
        const char *protocol = rd_kafka_rebalance_protocol(in->rk);
        if (protocol) {
                in->cooperative = !strcmp(protocol, "COOPERATIVE");
                in->protocol_named = strcmp(protocol, "NONE") != 0;
        }
        return in->cooperative;
}

/* Named in a commit that waits, and never called: its result comes as an
 * event on the commit's own queue. A commit that names no callback of its
 * own also has its result posted to the configured one (commit_cb) in
 * librdkafka 2.0.2 (rd_kafka_cgrp_propagate_commit_result), where it would
 * be counted, and warned about, a second time. */
static void waited_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets,
                             void *opaque)
{
        (void)rk;
        (void)err;
        (void)offsets;
        (void)opaque;
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
            rd_kafka_commit_queue(in->rk, offsets, q, waited_commit_cb, NULL);
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

/* Leaves the group (the revocation is answered at once) within
 * LB_CLOSE_WAIT_MS: librdkafka's own close has no bound, and with the
 * coordinator behind a partition it never returns. The close forwards the
 * consumer's queue, with whatever it prefetched, to q: q is served as
 * events (a fetched message served as a callback trips librdkafka 2.0.2's
 * assert in rd_kafka_q_serve), the rebalance handed to rebalance_cb, the
 * rest dropped, as librdkafka's own close does. @returns 1 closed. */
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
        int64_t deadline = lb_admin_now_ms() + LB_CLOSE_WAIT_MS;
        while (!error && !rd_kafka_consumer_closed(in->rk) &&
               lb_admin_now_ms() < deadline) {
                rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
                if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                        rebalance_cb(
                            in->rk, rd_kafka_event_error(ev),
                            (rd_kafka_topic_partition_list_t *)
                                rd_kafka_event_topic_partition_list(ev),
                            in);
                if (ev)
                        rd_kafka_event_destroy(ev);
        }
        int closed = rd_kafka_consumer_closed(in->rk);
        if (!closed)
                lb_warn("consumer",
                        "leaving the group took over %d ms: closed without "
                        "it (the group's coordinator is unreachable)",
                        LB_CLOSE_WAIT_MS);
        rd_kafka_queue_destroy(q);
        return closed;
}

/* A consumer's destroy still runs on a thread of its own (at exit). */
static atomic_int destroys_left;

int lb_kafka_in_destroy_left(void)
{
        return atomic_load(&destroys_left);
}

static void *destroy_closed(void *rk)
{
        rd_kafka_destroy(rk);
        return NULL;
}

static void *destroy_unclosed(void *rk)
{
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NULL;
}

/* Destroys rk by fn on a thread of its own, waiting for it at most
 * wait_ms (only at exit is a consumer destroyed: the process does not wait
 * for what is left). A consumer that could not leave its group is not
 * waited for: librdkafka's destroy joins threads that wait for requests
 * the unreachable coordinator never answers, until they time out (the
 * session timeout: 45 s by default), which would break the exit bound.
 * One that left is, briefly: its destroy joins its threads, and after an
 * input topic was deleted and created again one of librdkafka 2.0.2's
 * never ends (the final commit is made and the group left by then, so
 * nothing is lost by going on without it). */
static void destroy_within(void *(*fn)(void *), rd_kafka_t *rk, int wait_ms)
{
        pthread_t t;
        struct timespec until;
        if (pthread_create(&t, NULL, fn, rk)) {
                fn(rk);
                return;
        }
        atomic_store(&destroys_left, 1); /* until joined */
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        if (wait_ms > 0 &&
            !pthread_clockjoin_np(t, NULL, CLOCK_MONOTONIC, &until)) {
                atomic_store(&destroys_left, 0);
                return;
        }
        pthread_detach(t);
        if (wait_ms > 0)
                lb_warn("consumer",
                        "librdkafka's consumer did not finish its destroy "
                        "within %d ms (a thread of it never ends, as after "
                        "an input topic was deleted and created again); "
                        "exiting without it: the group was left",
                        wait_ms);
}

void lb_kafka_in_destroy(lb_kafka_in_t *in)
{
        if (!in)
                return;
        in->closing = 1; /* a revocation is answered at once */
        int closed = close_bounded(in);
        /* librdkafka's threads may still forward to these queues while
         * its destroy runs on: they no longer write to the loop's pipe */
        rd_kafka_queue_io_event_enable(in->queue, -1, NULL, 0);
        rd_kafka_queue_io_event_enable(in->reads, -1, NULL, 0);
        rd_kafka_queue_destroy(in->queue);
        rd_kafka_queue_destroy(in->reads);
        rd_kafka_topic_partition_list_destroy(in->waiting);
        if (in->owed)
                rd_kafka_topic_partition_list_destroy(in->owed);
        free(in->sent);
        free(in->group);
        if (closed)
                destroy_within(destroy_closed, in->rk, LB_DESTROY_WAIT_MS);
        else
                destroy_within(destroy_unclosed, in->rk, 0);
        free(in);
}
