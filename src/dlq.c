/*
 * dlq.c: the dead-letter producer over librdkafka. Owns the header layout
 * (a contract: the original message's own headers, then
 * leanbridge.error.stage, .error.message, .error.http.status,
 * .source.topic, .source.partition, .source.offset, .app.id, .attempts,
 * and .value.truncated/.key.truncated on a record written cut because it
 * can never be written whole, which carries no original headers) and the
 * mapping of delivery reports back to actions. Decides nothing about offsets:
 * the bridge does, from the reports.
 */
#include "dlq.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_conf.h"
#include "log.h"
#include "offsets.h"
#include "replay_filter.h"

struct lb_dlq_s {
        rd_kafka_t *rk;
        rd_kafka_queue_t *queue;
        char *topic;
        lb_dlq_report_cb *report;
        void *opaque;
        size_t outstanding;
};

/* Whether err says the record can never be written whole. */
static int too_large(rd_kafka_resp_err_t err)
{
        return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
               err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        (void)rk;
        lb_dlq_t *d = opaque;
        lb_action_t *a = m->_private;
        d->outstanding--;
        if (too_large(m->err))
                a->dlq_cut = 1;
        d->report(d->opaque, m->_private, m->err,
                  m->err ? rd_kafka_err2str(m->err) : NULL);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)rk;
        (void)opaque;
        lb_warn("dlq", "%s: %s", rd_kafka_err2name(err), reason);
}

int lb_dlq_check_conf(const lb_config_t *conf, char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(conf, LB_KAFKA_PRODUCER, errstr, errstr_size);
        if (!kc)
                return -1;
        rd_kafka_conf_destroy(kc);
        return 0;
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
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(conf, LB_KAFKA_PRODUCER, errstr, errstr_size);
        if (!kc)
                goto fail;
        rd_kafka_conf_set_opaque(kc, d);
        rd_kafka_conf_set_dr_msg_cb(kc, dr_msg_cb);
        rd_kafka_conf_set_error_cb(kc, error_cb);
        d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, errstr_size);
        if (!d->rk) {
                rd_kafka_conf_destroy(kc);
                goto fail;
        }
        d->queue = rd_kafka_queue_get_main(d->rk);
        if (wake_fd >= 0)
                rd_kafka_queue_io_event_enable(d->queue, wake_fd, "d", 1);
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
        const char *key = lb_action_key(a);
        size_t key_len = a->key_len, value_len = a->value_len;
        rd_kafka_headers_t *h = rd_kafka_headers_new(12);
        const rd_kafka_headers_t *hdrs = lb_action_headers(a);
        const char *name;
        const void *value;
        size_t size;
        /* The original's own headers (trace context, producers' metadata),
         * not its leanbridge.* ones: this record says its own. A record
         * written cut is not the event; replay reads the original. */
        for (size_t i = 0;
             hdrs && !a->dlq_cut &&
             !rd_kafka_header_get_all(hdrs, i, &name, &value, &size);
             i++)
                if (lb_replay_header_carried(name))
                        rd_kafka_header_add(h, name, -1, value,
                                            value ? (ssize_t)size : -1);
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
            d->rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE(a->data, value_len),
            RD_KAFKA_V_TIMESTAMP(a->timestamp_ms > 0 ? a->timestamp_ms : 0),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(a),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err) /* the headers belong to the message only on success */
                rd_kafka_headers_destroy(h);
        return err;
}

int lb_dlq_produce(lb_dlq_t *d, lb_action_t *a, const char *app_id)
{
        rd_kafka_resp_err_t err = produce(d, a, app_id);
        if (too_large(err) && !a->dlq_cut) {
                a->dlq_cut = 1;
                err = produce(d, a, app_id);
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return -1;
        if (err) {
                lb_warn("dlq", "produce to %s: %s", d->topic,
                        rd_kafka_err2str(err));
                return -2;
        }
        d->outstanding++;
        return 0;
}

void lb_dlq_poll(lb_dlq_t *d)
{
        rd_kafka_poll(d->rk, 0);
}

size_t lb_dlq_outstanding(const lb_dlq_t *d)
{
        return d->outstanding;
}

int lb_dlq_fatal(const lb_dlq_t *d, char *errstr, size_t errstr_size)
{
        return rd_kafka_fatal_error(d->rk, errstr, errstr_size) != 0;
}

void lb_dlq_destroy(lb_dlq_t *d, int timeout_ms)
{
        if (!d)
                return;
        if (d->outstanding)
                rd_kafka_flush(d->rk, timeout_ms);
        if (d->outstanding) {
                lb_warn("dlq",
                        "%zu dead-letter record(s) unacknowledged at "
                        "shutdown; their offsets are not committed",
                        d->outstanding);
                /* Purged records are reported (with an error), so their
                 * actions are handed back to the caller to free. */
                rd_kafka_purge(d->rk, RD_KAFKA_PURGE_F_QUEUE |
                                          RD_KAFKA_PURGE_F_INFLIGHT);
                for (int i = 0; i < 100 && d->outstanding; i++)
                        rd_kafka_poll(d->rk, 10);
        }
        rd_kafka_queue_destroy(d->queue);
        rd_kafka_destroy(d->rk);
        free(d->topic);
        free(d);
}
