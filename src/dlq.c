/*
 * dlq.c: the dead-letter producer over librdkafka. Owns the header layout
 * (a contract: the original message's own headers, then
 * leanbridge.error.stage, .error.message, .error.http.status,
 * .source.topic, .source.partition, .source.offset, .source.timestamp,
 * .app.id, .attempts,
 * and .value.truncated/.key.truncated on a record written cut because it
 * can never be written whole, which carries no original headers) and the
 * mapping of delivery reports back to actions, and the retry of records
 * that failed (every LB_DLQ_RETRY_MS, in order, never dropped until
 * stopping). A record whose batch the topic refused (too large, or with a
 * record it cannot take) is written again alone, by a second producer
 * that sends one record a batch (made on first need): only a record
 * refused alone as too large is cut. Decides nothing about offsets: the
 * bridge does, from the reports.
 */
#include "dlq.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "ages.h"
#include "kafka_conf.h"
#include "log.h"
#include "offsets.h"
#include "replay_filter.h"

/* Delay before re-producing a dead-letter record that failed. */
#define LB_DLQ_RETRY_MS 1000
/* After a batch refused (refused_batch), new records go alone for this
 * long: each refused batch costs a request, a retry delay per record and
 * the idempotent producer's epoch. */
#define LB_DLQ_ALONE_MS 60000
/* Dead letters not written this long after they were first produced (a
 * topic missing on a broker that does not create it, no broker reachable,
 * one partition's leader gone: librdkafka holds them up to
 * message.timeout.ms without a word) are warned about, at most every
 * LB_DLQ_WARN_MS. */
#define LB_DLQ_QUIET_MS 10000
/* A failed record is warned about at most this often (a topic that
 * refuses every record would otherwise log each one every retry). */
#define LB_DLQ_WARN_MS 10000

struct lb_dlq_s {
        rd_kafka_t *rk;
        rd_kafka_queue_t *queue;
        rd_kafka_t *alone; /* one record a batch; NULL until first needed */
        rd_kafka_queue_t *alone_queue;
        int wake_fd;
        int64_t alone_until;            /* new records go alone until then */
        lb_log_throttle_t alone_failed; /* the second could not be made */
        uint64_t written_alone;
        lb_log_throttle_t alone_info;
        const lb_config_t *conf; /* the apps' ids */
        char *topic;
        lb_dlq_report_cb *report;
        void *opaque;
        size_t outstanding; /* produced, their report not served yet */
        /* dead letters not yet written nor given up, by the second they
         * were first produced in (a->due_ms, see lb_dlq_send) */
        lb_ages_t waiting;
        lb_log_throttle_t quiet_warn;
        lb_action_t *retry_head, *retry_tail; /* to produce again, in order */
        int64_t retry_at;
        uint64_t retries;
        lb_log_throttle_t failed_warn;
        lb_log_throttle_t refused_warn; /* producev refused a record */
        int stopping; /* a failed record is reported, not retried */
};

/* Whether a's dead letter is no longer this instance's to write: stopping,
 * or its partition was revoked (the next owner reads the event again and
 * writes its own). */
static int not_ours(const lb_dlq_t *d, const lb_action_t *a)
{
        return d->stopping || lb_partition_revoked(a->partition);
}

/* a's dead letter is written (err 0) or given up: reported, no longer
 * waiting. */
static void finish(lb_dlq_t *d, lb_action_t *a, int err, const char *errstr)
{
        if (a->due_ms != INT64_MIN)
                lb_ages_remove(&d->waiting, a->due_ms / 1000);
        d->report(d->opaque, a, err, errstr);
}

/* Reports a as failed, given up: its offset stays uncommitted. */
static void give_up(lb_dlq_t *d, lb_action_t *a)
{
        finish(d, a, RD_KAFKA_RESP_ERR__DESTROY,
               d->stopping ? "stopping" : "partition revoked");
}

/* Queues a for another try after LB_DLQ_RETRY_MS, counted; or gives it up
 * when it is not ours to write any more. */
static void retry_push(lb_dlq_t *d, lb_action_t *a)
{
        if (not_ours(d, a)) {
                give_up(d, a);
                return;
        }
        d->retries++;
        a->next = NULL;
        if (d->retry_tail)
                d->retry_tail->next = a;
        else
                d->retry_head = a;
        d->retry_tail = a;
        if (!d->retry_at)
                d->retry_at = lb_admin_now_ms() + LB_DLQ_RETRY_MS;
}

/* Whether err says the record can never be written whole. */
static int too_large(rd_kafka_resp_err_t err)
{
        return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
               err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* Whether the broker refuses a whole batch for err: too large (the
 * topic's max.message.bytes applies to a batch), or a record it cannot
 * take (INVALID_RECORD: a compacted topic and a record without a key)
 * that the others were batched with. */
static int refused_batch(rd_kafka_resp_err_t err)
{
        return too_large(err) || err == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

/* A record in a batch the broker refused (refused_batch): written again
 * alone, so the others of the batch pass; one refused alone too large is
 * cut (and stays alone: cut records may still make too large a batch
 * together), one refused alone otherwise waits for another try.
 * @returns 1 when a is to be written alone from now on (said, throttled),
 * 0 when it was refused alone already. */
static int refused_in_batch(lb_dlq_t *d, rd_kafka_t *rk, lb_action_t *a,
                            rd_kafka_resp_err_t err)
{
        uint64_t held;
        int64_t now = lb_admin_now_ms();
        if (rk == d->alone) {
                if (too_large(err))
                        a->dlq_cut = 1;
                return 0;
        }
        a->dlq_alone = 1;
        d->alone_until = now + LB_DLQ_ALONE_MS;
        d->written_alone++;
        if (lb_log_throttle(&d->alone_info, now, LB_DLQ_WARN_MS, &held))
                lb_info("dlq",
                        "%s refused a batch of dead letters (%s%s): each is "
                        "written alone, and new ones for %d s; %" PRIu64
                        " refused in a batch so far",
                        d->topic, rd_kafka_err2str(err),
                        too_large(err) ? ": its max.message.bytes is below "
                                         "the producer's batch.size"
                                       : "",
                        LB_DLQ_ALONE_MS / 1000, d->written_alone);
        return 1;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        lb_dlq_t *d = opaque;
        lb_action_t *a = m->_private;
        d->outstanding--;
        int alone_now = refused_batch(m->err) && !d->stopping &&
                        refused_in_batch(d, rk, a, m->err);
        if (!m->err || d->stopping) {
                finish(d, a, m->err, m->err ? rd_kafka_err2str(m->err) : NULL);
                return;
        }
        uint64_t held;
        if (!alone_now && lb_log_throttle(&d->failed_warn, lb_admin_now_ms(),
                                          LB_DLQ_WARN_MS, &held))
                lb_warn("dlq",
                        "dead-letter record for %s[%d]@%" PRId64
                        " failed (%s%s); retrying (%" PRIu64
                        " other failure(s) since the last warning)",
                        lb_partition_topic(a->partition),
                        lb_partition_id(a->partition), a->offset,
                        rd_kafka_err2str(m->err),
                        m->err == RD_KAFKA_RESP_ERR_INVALID_RECORD &&
                                !a->has_key
                            ? ": it has no key, and a compacted topic "
                              "refuses records without a key (give "
                              "dlq.topic cleanup.policy=delete)"
                            : "",
                        held);
        retry_push(d, a);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)rk;
        (void)opaque;
        lb_kafka_warn("dlq", err, reason);
}

/* A producer of dead letters, its reports served on *queue (which wakes
 * the loop); alone: one record a batch. @returns NULL, errstr set. */
static rd_kafka_t *producer_new(lb_dlq_t *d, int alone,
                                rd_kafka_queue_t **queue, char *errstr,
                                size_t errstr_size)
{
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(d->conf, LB_KAFKA_PRODUCER, errstr, errstr_size);
        if (!kc)
                return NULL;
        if (alone && (rd_kafka_conf_set(kc, "batch.num.messages", "1", errstr,
                                        errstr_size) != RD_KAFKA_CONF_OK ||
                      rd_kafka_conf_set(kc, "linger.ms", "0", errstr,
                                        errstr_size) != RD_KAFKA_CONF_OK)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rd_kafka_conf_set_opaque(kc, d);
        rd_kafka_conf_set_dr_msg_cb(kc, dr_msg_cb);
        rd_kafka_conf_set_error_cb(kc, error_cb);
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        *queue = rd_kafka_queue_get_main(rk);
        if (d->wake_fd >= 0)
                rd_kafka_queue_io_event_enable(*queue, d->wake_fd, "d", 1);
        return rk;
}

/* The producer a's record goes to: the one-record-a-batch producer when a
 * batch with a was refused (refused_batch), or one was less than
 * LB_DLQ_ALONE_MS ago (made now; NULL when it cannot be: a waits for
 * another try, whole). */
static rd_kafka_t *producer_of(lb_dlq_t *d, lb_action_t *a, int64_t now)
{
        char errstr[256];
        uint64_t held;
        if (!a->dlq_alone && now >= d->alone_until)
                return d->rk;
        a->dlq_alone = 1;
        if (!d->alone) {
                d->alone =
                    producer_new(d, 1, &d->alone_queue, errstr, sizeof(errstr));
                if (!d->alone && lb_log_throttle(&d->alone_failed, now,
                                                 LB_DLQ_WARN_MS, &held))
                        lb_error("dlq",
                                 "no producer for dead letters written "
                                 "alone (%s); retrying",
                                 errstr);
        }
        return d->alone;
}

lb_dlq_t *lb_dlq_new(const lb_config_t *conf, lb_dlq_report_cb *report,
                     void *opaque, int wake_fd, char *errstr,
                     size_t errstr_size)
{
        lb_dlq_t *d = calloc(1, sizeof(*d));
        if (!d || !(d->topic = strdup(conf->dlq_topic))) {
                free(d);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        d->report = report;
        d->opaque = opaque;
        d->conf = conf;
        d->wake_fd = wake_fd;
        d->rk = producer_new(d, 0, &d->queue, errstr, errstr_size);
        if (!d->rk)
                goto fail;
        return d;
fail:
        free(d->topic);
        free(d);
        return NULL;
}

static void add_header(rd_kafka_headers_t *h, const char *name,
                       const char *value)
{
        rd_kafka_header_add(h, name, -1, value, -1);
}

/* The replay count a's dead letter carries on: its message's
 * leanbridge.replayed, 0 when it had none. */
static int64_t replay_count(const lb_action_t *a)
{
        const void *v;
        size_t n;
        lb_dlq_record_t rec;
        lb_replay_record_init(&rec, -1);
        const rd_kafka_headers_t *hdrs = lb_action_headers(a);
        if (hdrs && !rd_kafka_header_get_last(hdrs, LB_REPLAY_HEADER, &v, &n))
                lb_replay_record_header(&rec, LB_REPLAY_HEADER, v, n);
        return rec.replayed;
}

static rd_kafka_resp_err_t produce(lb_dlq_t *d, lb_action_t *a,
                                   const char *app_id)
{
        char num[32];
        rd_kafka_t *rk = producer_of(d, a, lb_admin_now_ms());
        if (!rk)
                return RD_KAFKA_RESP_ERR__QUEUE_FULL; /* another try later */
        const char *key = lb_action_key(a);
        size_t key_len = a->key_len, value_len = a->value_len;
        rd_kafka_headers_t *h = rd_kafka_headers_new(12);
        const rd_kafka_headers_t *hdrs = lb_action_headers(a);
        const char *name;
        const void *value;
        size_t size;
        /* The original's own headers (trace context, producers' metadata),
         * not its leanbridge.* ones: this record says its own. A record
         * written cut is not the event: it says how many it left out, so
         * that replay reads the original even when its key and value were
         * whole (the headers made it too large). */
        size_t dropped = 0;
        for (size_t i = 0;
             hdrs && !rd_kafka_header_get_all(hdrs, i, &name, &value, &size);
             i++) {
                if (!lb_replay_header_carried(name))
                        continue;
                if (a->dlq_cut)
                        dropped++;
                else
                        rd_kafka_header_add(h, name, -1, value,
                                            value ? (ssize_t)size : -1);
        }
        if (dropped) {
                snprintf(num, sizeof(num), "%zu", dropped);
                add_header(h, "leanbridge.headers.dropped", num);
        }
        if (a->dlq_cut && key_len > LB_DLQ_CUT_KEY) {
                snprintf(num, sizeof(num), "%zu", key_len);
                add_header(h, "leanbridge.key.truncated", num);
                key_len = LB_DLQ_CUT_KEY;
        }
        if (a->dlq_cut && value_len > LB_DLQ_CUT_VALUE) {
                snprintf(num, sizeof(num), "%zu", value_len);
                add_header(h, "leanbridge.value.truncated", num);
                value_len = LB_DLQ_CUT_VALUE;
        }
        const char *stage = lb_stage_name((lb_stage_t)a->stage);
        add_header(h, "leanbridge.error.stage", stage);
        const char *error = lb_action_error(a);
        add_header(h, "leanbridge.error.message", error ? error : stage);
        if (a->http_status) {
                snprintf(num, sizeof(num), "%d", a->http_status);
                add_header(h, "leanbridge.error.http.status", num);
        }
        add_header(h, "leanbridge.source.topic",
                   lb_partition_topic(a->partition));
        snprintf(num, sizeof(num), "%" PRId32, lb_partition_id(a->partition));
        add_header(h, "leanbridge.source.partition", num);
        snprintf(num, sizeof(num), "%" PRId64, a->offset);
        add_header(h, "leanbridge.source.offset", num);
        if (a->timestamp_ms > 0) {
                snprintf(num, sizeof(num), "%" PRId64, a->timestamp_ms);
                add_header(h, "leanbridge.source.timestamp", num);
        }
        if (app_id)
                add_header(h, "leanbridge.app.id", app_id);
        snprintf(num, sizeof(num), "%d", a->attempts);
        add_header(h, "leanbridge.attempts", num);
        int64_t replayed = replay_count(a);
        if (replayed) { /* so that replay --max-replays sees it */
                snprintf(num, sizeof(num), "%" PRId64, replayed);
                add_header(h, LB_REPLAY_HEADER, num);
        }

        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE(a->data, value_len),
            /* now: the topic's retention counts from the write */
            RD_KAFKA_V_TIMESTAMP(0), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_OPAQUE(a), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (err) /* the headers belong to the message only on success */
                rd_kafka_headers_destroy(h);
        return err;
}

/* Whether the producer refuses every record alike for err, at once: the
 * topic is known to be missing or not writable, or the producer failed. */
static int refuses_all(rd_kafka_resp_err_t err)
{
        return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ||
               err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
               err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
               err == RD_KAFKA_RESP_ERR__FATAL;
}

/* @returns 0 (a report will follow); -1 when nothing else can pass now
 *          (the local queue is full, or every record would be refused
 *          alike); -2 when the producer refused this record (others may
 *          pass). A refusal is warned about at most every LB_DLQ_WARN_MS:
 *          a missing topic refuses each record of each round. */
static int produce_one(lb_dlq_t *d, lb_action_t *a)
{
        const char *app_id = a->app >= 0 && (size_t)a->app < d->conf->app_cnt
                                 ? d->conf->apps[a->app].id
                                 : NULL;
        rd_kafka_resp_err_t err = produce(d, a, app_id);
        if (too_large(err) && !a->dlq_cut) {
                a->dlq_cut = 1;
                err = produce(d, a, app_id);
        }
        uint64_t held;
        if (err && err != RD_KAFKA_RESP_ERR__QUEUE_FULL &&
            lb_log_throttle(&d->refused_warn, lb_admin_now_ms(), LB_DLQ_WARN_MS,
                            &held))
                lb_warn("dlq",
                        "produce to %s: %s; retrying (%" PRIu64
                        " other refusal(s) since the last warning)",
                        d->topic, rd_kafka_err2str(err), held);
        if (err)
                return refuses_all(err) ? -1 : -2;
        d->outstanding++;
        return 0;
}

void lb_dlq_send(lb_dlq_t *d, lb_action_t *a)
{
        /* due_ms is the batcher's, done with: from now on it says since
         * when a's dead letter waits (INT64_MIN: not counted, no memory) */
        a->due_ms = lb_admin_now_ms();
        if (lb_ages_add(&d->waiting, a->due_ms / 1000))
                a->due_ms = INT64_MIN;
        if (produce_one(d, a))
                retry_push(d, a);
}

/* Produces the records due again. One the producer refuses waits for the
 * next round without holding up the others; a full queue, or a refusal
 * every record would meet, ends the round. */
static void retry_due(lb_dlq_t *d, int64_t now)
{
        if (!d->retry_head || now < d->retry_at)
                return;
        lb_action_t *a = d->retry_head;
        d->retry_head = d->retry_tail = NULL;
        d->retry_at = 0;
        while (a) {
                lb_action_t *next = a->next;
                int r = produce_one(d, a);
                if (r == -1) {
                        a->next = next; /* the rest, in order */
                        if (d->retry_tail)
                                d->retry_tail->next = a;
                        else
                                d->retry_head = a;
                        d->retries++; /* a: the rest were not tried */
                        while (a->next)
                                a = a->next;
                        d->retry_tail = a;
                        d->retry_at = now + LB_DLQ_RETRY_MS;
                        return;
                }
                if (r)
                        retry_push(d, a);
                a = next;
        }
}

/* Says when a dead letter waits LB_DLQ_QUIET_MS or more, whatever the
 * others do (one partition of the topic may be stuck while the rest are
 * written): librdkafka would only report it failed after
 * message.timeout.ms. */
static void warn_quiet(lb_dlq_t *d, int64_t now)
{
        uint64_t held;
        int64_t oldest = lb_dlq_oldest_ms(d, now);
        if (oldest >= LB_DLQ_QUIET_MS &&
            lb_log_throttle(&d->quiet_warn, now, LB_DLQ_WARN_MS, &held))
                lb_warn(
                    "dlq",
                    "%zu dead letter(s) not written, the oldest for %" PRId64
                    " s: is %s there (the brokers may not create it), "
                    "writable, and each of its partitions led? librdkafka "
                    "holds a record until message.timeout.ms before it "
                    "says it failed, and one the topic refused is produced "
                    "again every second; their partitions' commits wait",
                    lb_dlq_waiting(d), oldest / 1000, d->topic);
}

void lb_dlq_poll(lb_dlq_t *d)
{
        int64_t now = lb_admin_now_ms();
        rd_kafka_poll(d->rk, 0);
        if (d->alone)
                rd_kafka_poll(d->alone, 0);
        warn_quiet(d, now);
        retry_due(d, now);
}

int64_t lb_dlq_next_retry(const lb_dlq_t *d)
{
        return d->retry_head ? d->retry_at : INT64_MAX;
}

uint64_t lb_dlq_retries(const lb_dlq_t *d)
{
        return d->retries;
}

size_t lb_dlq_give_up_revoked(lb_dlq_t *d)
{
        size_t n = 0;
        lb_action_t *a = d->retry_head;
        d->retry_head = d->retry_tail = NULL;
        while (a) {
                lb_action_t *next = a->next;
                if (not_ours(d, a)) {
                        give_up(d, a);
                        n++;
                } else {
                        a->next = NULL; /* the others, in order */
                        if (d->retry_tail)
                                d->retry_tail->next = a;
                        else
                                d->retry_head = a;
                        d->retry_tail = a;
                }
                a = next;
        }
        if (!d->retry_head)
                d->retry_at = 0;
        return n;
}

void lb_dlq_stop_retrying(lb_dlq_t *d)
{
        d->stopping = 1;
        (void)lb_dlq_give_up_revoked(d);
}

size_t lb_dlq_outstanding(const lb_dlq_t *d)
{
        return d->outstanding;
}

size_t lb_dlq_waiting(const lb_dlq_t *d)
{
        return lb_ages_count(&d->waiting);
}

int64_t lb_dlq_oldest_ms(const lb_dlq_t *d, int64_t now_ms)
{
        int64_t sec = lb_ages_oldest(&d->waiting);
        /* counted from the start of its second: at most a second more */
        return sec == INT64_MAX ? 0 : now_ms - sec * 1000;
}

int lb_dlq_fatal(const lb_dlq_t *d, char *errstr, size_t errstr_size)
{
        return rd_kafka_fatal_error(d->rk, errstr, errstr_size) != 0 ||
               (d->alone &&
                rd_kafka_fatal_error(d->alone, errstr, errstr_size) != 0);
}

void lb_dlq_destroy(lb_dlq_t *d, int timeout_ms)
{
        if (!d)
                return;
        lb_dlq_stop_retrying(d);
        int64_t until = lb_admin_now_ms() + timeout_ms, left = timeout_ms;
        do { /* at least one poll of each: acknowledgements already in */
                rd_kafka_flush(d->rk, d->alone ? 0 : (int)left);
                if (d->alone)
                        rd_kafka_flush(d->alone, left < 10 ? (int)left : 10);
                left = until - lb_admin_now_ms();
        } while (d->outstanding && left > 0);
        if (d->outstanding) {
                lb_warn("dlq",
                        "%zu dead-letter record(s) unacknowledged at "
                        "shutdown; their offsets are not committed",
                        d->outstanding);
                /* Purged records are reported (with an error), so their
                 * actions are handed back to the caller to free. */
                const int purge =
                    RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT;
                rd_kafka_purge(d->rk, purge);
                if (d->alone)
                        rd_kafka_purge(d->alone, purge);
                for (int i = 0; i < LB_DLQ_PURGE_MS / 10 && d->outstanding;
                     i++) {
                        rd_kafka_poll(d->rk, d->alone ? 5 : 10);
                        if (d->alone)
                                rd_kafka_poll(d->alone, 5);
                }
        }
        if (d->alone) {
                rd_kafka_queue_destroy(d->alone_queue);
                rd_kafka_destroy(d->alone);
        }
        rd_kafka_queue_destroy(d->queue);
        rd_kafka_destroy(d->rk);
        lb_ages_free(&d->waiting);
        free(d->topic);
        free(d);
}
