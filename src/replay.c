/*
 * replay.c: `leanbridge replay` over librdkafka. Owns the replay's consumer
 * (its own group, partitions assigned by hand, no automatic commits), its
 * idempotent producer, the stopping point (each partition's high watermark
 * at start), the checkpoints (flush, then commit what was consumed), the
 * fetcher that reads the whole original of a dead letter written cut from
 * its source offset, and the operator's output. Every decision about a
 * record is replay_filter's (and the age bound event's).
 */
#include "replay.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "kafka_conf.h"
#include "kafka_in.h"
#include "log.h"
#include "skip.h"

/* A checkpoint (flush, commit) after this many records or this long. */
#define CHECKPOINT_RECORDS 1000
#define CHECKPOINT_S       1.0
#define KAFKA_TIMEOUT_MS   10000
/* Dry-run messages printed; the rest are summed up in one line. */
#define MESSAGES_SHOWN 20

typedef struct {
        const lb_config_t *conf;
        const lb_replay_opts_t *o;
        char group[512];
        rd_kafka_t *consumer;
        rd_kafka_t *producer; /* NULL in a dry run */
        rd_kafka_t *fetcher;  /* reads originals of cut records; lazy */
        int32_t nparts;
        int64_t *high;   /* per partition: high watermark at start */
        int64_t *next;   /* per partition: offset to commit; -1 = none */
        uint8_t *done;   /* per partition: reached its high watermark */
        lb_skip_t *skip; /* per partition: an unreadable batch crossed */
        int32_t parts_done;
        int64_t todo; /* records up to the high watermarks at start */
        size_t batch; /* records consumed since the last checkpoint */
        size_t outstanding;
        uint64_t read, replayed, skip_filter, skip_max, skip_target;
        uint64_t skip_unreadable;
        uint64_t unreadable_batch; /* offsets of batches that cannot be read */
        uint64_t skip_old;         /* older than input.max.age.ms */
        uint64_t skip_gone;        /* written cut, the original is gone */
        uint64_t refetched;        /* written cut, the original replayed */
        uint64_t failed;
        char failure[512]; /* the first failed produce */
        int fatal;
        lb_tally_t by_stage, by_app, by_message;
        double t0, last_progress, last_checkpoint;
        int tty;
} replay_t;

/* The bytes, time and headers of what goes back. */
typedef struct {
        void *key; /* NULL: no key (non-const: producev takes void *) */
        size_t key_len;
        void *value;
        size_t len;
        int64_t timestamp_ms;
        rd_kafka_headers_t *hdrs; /* borrowed; NULL: none */
} source_t;

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)rk;
        (void)opaque;
        lb_kafka_warn("replay", err, reason);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        (void)rk;
        replay_t *r = opaque;
        r->outstanding--;
        if (!m->err) {
                r->replayed++;
                return;
        }
        if (!r->failed++)
                snprintf(r->failure, sizeof(r->failure), "%s [%" PRId32 "]: %s",
                         rd_kafka_topic_name(m->rkt), m->partition,
                         rd_kafka_err2str(m->err));
}

static int conf_set(rd_kafka_conf_t *kc, const char *name, const char *value,
                    char *errstr, size_t errstr_size)
{
        char err[512];
        if (rd_kafka_conf_set(kc, name, value, err, sizeof(err)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        /* bounded: errstr may be as small as 512 bytes */
        snprintf(errstr, errstr_size, "replay consumer '%.48s': %.380s", name,
                 err);
        return -1;
}

/* The bridge's consumer settings, then replay's own: a group of its own,
 * no static membership (the bridge's group.instance.id would fence a
 * running bridge), commits only at checkpoints, end-of-partition events,
 * and a new group starts at the beginning of the dead-letter topic
 * whatever the bridge's auto.offset.reset says. */
static rd_kafka_conf_t *consumer_conf(const lb_config_t *conf,
                                      const char *group, char *errstr,
                                      size_t errstr_size)
{
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(conf, LB_KAFKA_CONSUMER, errstr, errstr_size);
        if (!kc)
                return NULL;
        if (conf_set(kc, "group.id", group, errstr, errstr_size) ||
            conf_set(kc, "group.instance.id", NULL, errstr, errstr_size) ||
            conf_set(kc, "enable.auto.commit", "false", errstr, errstr_size) ||
            conf_set(kc, "enable.partition.eof", "true", errstr, errstr_size) ||
            conf_set(kc, "auto.offset.reset", "earliest", errstr,
                     errstr_size) ||
            conf_set(kc, "statistics.interval.ms", "0", errstr, errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        return kc;
}

static void group_name(const lb_config_t *conf, const lb_replay_opts_t *o,
                       char *buf, size_t size)
{
        if (o->group) {
                snprintf(buf, size, "%s", o->group);
                return;
        }
        const char *g =
            lb_config_kafka_get(conf, "group.id", LB_KAFKA_CONSUMER);
        snprintf(buf, size, "%s.replay", g && *g ? g : "leanbridge");
}

int lb_replay_check_conf(const lb_config_t *conf, const lb_replay_opts_t *o,
                         char *errstr, size_t errstr_size)
{
        static const lb_kafka_side_t sides[] = {LB_KAFKA_CONSUMER,
                                                LB_KAFKA_PRODUCER};
        for (size_t i = 0; i < 2; i++) {
                const char *b =
                    lb_config_kafka_get(conf, "bootstrap.servers", sides[i]);
                if (!b || !*b) {
                        snprintf(errstr, errstr_size,
                                 "missing required key "
                                 "'kafka.bootstrap.servers'");
                        return -1;
                }
        }
        if (!conf->dlq_topic || !*conf->dlq_topic) {
                snprintf(errstr, errstr_size,
                         "missing required key 'dlq.topic'");
                return -1;
        }
        if (lb_replay_opts_check(o, conf->dlq_topic, errstr, errstr_size))
                return -1;
        char group[512];
        group_name(conf, o, group, sizeof(group));
        rd_kafka_conf_t *kc = consumer_conf(conf, group, errstr, errstr_size);
        if (!kc)
                return -1;
        rd_kafka_conf_destroy(kc);
        kc = lb_kafka_conf_new(conf, LB_KAFKA_PRODUCER, errstr, errstr_size);
        if (!kc)
                return -1;
        rd_kafka_conf_destroy(kc);
        return 0;
}

static void progress(replay_t *r, int final)
{
        double now = now_s();
        if (!final && now - r->last_progress < (r->tty ? 0.5 : 5.0))
                return;
        r->last_progress = now;
        double secs = now - r->t0;
        char of[32] = ""; /* a follower has no end to count towards */
        if (!r->o->follow)
                snprintf(of, sizeof(of), " of %" PRId64, r->todo);
        fprintf(stderr,
                "%sreplay: read %" PRIu64 "%s, %s %" PRIu64 ", skipped %" PRIu64
                " by filter, %" PRIu64 " at --max-replays, %" PRIu64
                " without target, %" PRIu64 " unreadable, %" PRIu64
                " too old, %" PRIu64 " cut with the original gone, %" PRIu64
                " unreadable in the topic; %.0f/s%s",
                r->tty ? "\r" : "", r->read, of,
                r->o->dry_run ? "would replay" : "replayed", r->replayed,
                r->skip_filter, r->skip_max, r->skip_target, r->skip_unreadable,
                r->skip_old, r->skip_gone, r->unreadable_batch,
                secs > 0 ? (double)r->read / secs : 0.0,
                r->tty && !final ? "" : "\n");
        fflush(stderr);
}

static void mark_done(replay_t *r, int32_t p)
{
        if (!r->done[p]) {
                r->done[p] = 1;
                r->parts_done++;
        }
}

static void fatal(replay_t *r, const char *fmt, const char *arg)
{
        char msg[1024];
        snprintf(msg, sizeof(msg), fmt, arg);
        lb_error("replay", "%s", msg);
        r->fatal = 1;
}

/* Produces src's key, value, timestamp and own headers (not the
 * leanbridge.* ones) to the target, with its replay count. QUEUE_FULL waits
 * for room: a record is never dropped. */
static void produce(replay_t *r, const source_t *src,
                    const lb_dlq_record_t *rec)
{
        char topic[LB_TOPIC_MAX + 1], count[32];
        int32_t part;
        lb_replay_target(r->o, rec, r->conf->dlq_topic, topic, &part);
        size_t clen = lb_replay_next_count(rec, count, sizeof(count));
        for (;;) {
                rd_kafka_headers_t *h = rd_kafka_headers_new(8);
                const char *name;
                const void *value;
                size_t size;
                for (size_t i = 0;
                     src->hdrs && !rd_kafka_header_get_all(src->hdrs, i, &name,
                                                           &value, &size);
                     i++)
                        if (lb_replay_header_carried(name))
                                rd_kafka_header_add(h, name, -1, value,
                                                    value ? (ssize_t)size : -1);
                rd_kafka_header_add(h, LB_REPLAY_HEADER, -1, count,
                                    (ssize_t)clen);
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    r->producer, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_PARTITION(part >= 0 ? part
                                                   : RD_KAFKA_PARTITION_UA),
                    RD_KAFKA_V_KEY(src->key, src->key ? src->key_len : 0),
                    RD_KAFKA_V_VALUE(src->value, src->len),
                    RD_KAFKA_V_TIMESTAMP(
                        src->timestamp_ms > 0 ? src->timestamp_ms : 0),
                    RD_KAFKA_V_HEADERS(h),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                if (!err) {
                        r->outstanding++;
                        return;
                }
                /* The headers belong to the message only on success. */
                rd_kafka_headers_destroy(h);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        char msg[512];
                        snprintf(msg, sizeof(msg), "%s: %s", topic,
                                 rd_kafka_err2str(err));
                        fatal(r, "cannot produce to %s", msg);
                        return;
                }
                rd_kafka_poll(r->producer, 100);
        }
}

/* The fetcher: the bridge's consumer settings, no group work, and an
 * offset out of range is an error, never a jump to another record. */
static rd_kafka_t *fetcher(replay_t *r)
{
        char errstr[512];
        if (r->fetcher)
                return r->fetcher;
        rd_kafka_conf_t *kc = lb_kafka_conf_new(r->conf, LB_KAFKA_CONSUMER,
                                                errstr, sizeof(errstr));
        if (kc && (conf_set(kc, "enable.auto.commit", "false", errstr,
                            sizeof(errstr)) ||
                   conf_set(kc, "enable.auto.offset.store", "false", errstr,
                            sizeof(errstr)) ||
                   conf_set(kc, "auto.offset.reset", "error", errstr,
                            sizeof(errstr)) ||
                   conf_set(kc, "enable.partition.eof", "true", errstr,
                            sizeof(errstr)) ||
                   conf_set(kc, "statistics.interval.ms", "0", errstr,
                            sizeof(errstr)))) {
                rd_kafka_conf_destroy(kc);
                kc = NULL;
        }
        if (kc) {
                rd_kafka_conf_set_error_cb(kc, error_cb);
                r->fetcher =
                    rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
                if (!r->fetcher)
                        rd_kafka_conf_destroy(kc);
        }
        if (!r->fetcher)
                fatal(r, "cannot create the original-record reader: %s",
                      errstr);
        return r->fetcher;
}

/* Whether n bytes at p start with the cut copy's bytes. */
static int starts_with(const void *p, size_t n, const void *cut, size_t cn)
{
        return cn <= n && (!cn || !memcmp(p, cut, cn));
}

/*
 * The whole original of a record written cut (dlq: the cut copy), read
 * from its source topic, partition and offset: exactly that offset, and
 * its bytes must start with the cut copy's. @returns the message (to
 * destroy), or NULL: gone (out of range, compacted away, not the same
 * record; counted by the caller), or not readable in time (fatal: rerun).
 */
static rd_kafka_message_t *fetch_original(replay_t *r,
                                          const rd_kafka_message_t *dlq,
                                          const lb_dlq_record_t *rec)
{
        lb_bytes_t t = rec->source_topic;
        if (!t.ptr || !t.len || t.len > LB_TOPIC_MAX ||
            memchr(t.ptr, 0, t.len) || rec->source_partition < 0 ||
            rec->source_offset < 0)
                return NULL;
        char topic[LB_TOPIC_MAX + 1];
        memcpy(topic, t.ptr, t.len);
        topic[t.len] = '\0';
        rd_kafka_t *rk = fetcher(r);
        if (!rk)
                return NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (!rkt) {
                fatal(r, "cannot read the source topic %s", topic);
                return NULL;
        }
        int32_t p = rec->source_partition;
        rd_kafka_message_t *found = NULL;
        int gone = 0;
        if (rd_kafka_consume_start(rkt, p, rec->source_offset) == -1) {
                gone = 1; /* no such partition */
                goto out;
        }
        double deadline = now_s() + KAFKA_TIMEOUT_MS / 1000.0;
        while (!found && !gone && now_s() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consume(rkt, p, 500);
                if (!m)
                        continue;
                if (!m->err && m->offset == rec->source_offset)
                        found = m;
                else if (!m->err ||
                         m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
                         m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                         m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
                         m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                         m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                         m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
                        gone = 1; /* deleted, out of range, or compacted away
                                     (a later offset came back) */
                else
                        lb_warn("replay", "reading %s [%" PRId32 "]: %s", topic,
                                p, rd_kafka_message_errstr(m));
                if (m != found)
                        rd_kafka_message_destroy(m);
        }
        rd_kafka_consume_stop(rkt, p);
        if (found &&
            !(starts_with(found->payload, found->len, dlq->payload, dlq->len) &&
              starts_with(found->key, found->key ? found->key_len : 0, dlq->key,
                          dlq->key ? dlq->key_len : 0))) {
                lb_warn("replay",
                        "%s [%" PRId32 "] @%" PRId64
                        " is not the record its dead letter was cut from",
                        topic, p, rec->source_offset);
                rd_kafka_message_destroy(found);
                found = NULL;
                gone = 1;
        }
        if (!found && !gone) {
                char msg[512];
                snprintf(msg, sizeof(msg), "%s [%" PRId32 "] @%" PRId64, topic,
                         p, rec->source_offset);
                fatal(r,
                      "cannot read the original of a dead letter written cut "
                      "(%s) in time; rerun",
                      msg);
        }
out:
        rd_kafka_topic_destroy(rkt);
        return found;
}

static int tally(lb_tally_t *t, lb_bytes_t b)
{
        return b.ptr ? lb_tally_add(t, b.ptr, b.len)
                     : lb_tally_add(t, "(none)", 6);
}

/* Where partition p's log ends, as far as a crossing may look (never
 * past it: the consumer would reset to the earliest offset): the high
 * watermark at the start (a run stops there), or following, the last one
 * the consumer saw when it is later. */
static int64_t log_end(replay_t *r, int32_t p)
{
        int64_t lo, hi;
        if (r->o->follow &&
            !rd_kafka_get_watermark_offsets(r->consumer, r->conf->dlq_topic, p,
                                            &lo, &hi) &&
            hi > r->high[p])
                return hi;
        return r->high[p];
}

/* Moves partition p's position on while crossing a record batch that
 * cannot be read (skip.h: librdkafka reports it at its first offset and
 * fetches it again for ever); once its end is known, says which offsets
 * were lost, counts them and reads on after them (committed past at the
 * next checkpoint: the next run does not stop there again). */
static void cross(replay_t *r, int32_t p, int64_t pos)
{
        lb_skip_t *s = &r->skip[p];
        if (lb_skip_done(s)) {
                lb_error("replay",
                         "%s[%d]: offsets %" PRId64 "..%" PRId64
                         " (one record batch) cannot be read: not replayed, "
                         "reading on at %" PRId64,
                         r->conf->dlq_topic, p, s->base, s->hi - 1, s->hi);
                r->unreadable_batch += (uint64_t)(s->hi - s->base);
                r->next[p] = s->hi;
                r->batch++;
                lb_skip_init(s);
                if (!r->o->follow && pos >= r->high[p]) {
                        mark_done(r, p);
                        return;
                }
        }
        lb_kafka_seek(r->consumer, "replay", r->conf->dlq_topic, p, pos);
}

static void handle(replay_t *r, const rd_kafka_message_t *m)
{
        int32_t p = m->partition;
        int ours = p >= 0 && p < r->nparts;
        if (ours && lb_skip_active(&r->skip[p]) &&
            (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
                /* past the batch: read again once its end is known */
                cross(r, p,
                      lb_skip_message(&r->skip[p], m->offset, log_end(r, p)));
                return;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (ours && m->offset >= r->high[p])
                        mark_done(r, p);
                return;
        }
        if (m->err) {
                int64_t end = ours ? log_end(r, p) : -1;
                if (!ours || !lb_skip_unreadable(m->err) || m->offset < 0 ||
                    m->offset >= end) {
                        lb_warn("replay", "%s", rd_kafka_message_errstr(m));
                        return;
                }
                if (!lb_skip_active(&r->skip[p]))
                        lb_warn("replay",
                                "%s[%d]@%" PRId64 " cannot be read (%s): "
                                "finding where its record batch ends, to "
                                "read on after it",
                                r->conf->dlq_topic, p, m->offset,
                                rd_kafka_message_errstr(m));
                cross(r, p, lb_skip_error(&r->skip[p], m->offset, end));
                return;
        }
        if (!ours)
                return;
        /* The stopping point: what came after the start waits for the
         * next run (it may be a replayed record that failed again). */
        if (!r->o->follow && m->offset >= r->high[p]) {
                mark_done(r, p);
                return;
        }
        r->read++;
        r->batch++;
        r->next[p] = m->offset + 1;
        if (!r->o->follow && m->offset + 1 >= r->high[p])
                mark_done(r, p);

        rd_kafka_timestamp_type_t tstype;
        lb_dlq_record_t rec;
        lb_replay_record_init(&rec, rd_kafka_message_timestamp(m, &tstype));
        rd_kafka_headers_t *hdrs = NULL, *ohdrs = NULL;
        if (rd_kafka_message_headers(m, &hdrs))
                hdrs = NULL;
        if (hdrs) {
                const char *name;
                const void *value;
                size_t size;
                for (size_t i = 0;
                     !rd_kafka_header_get_all(hdrs, i, &name, &value, &size);
                     i++)
                        lb_replay_record_header(&rec, name, value, size);
        }
        switch (lb_replay_decide(r->o, &rec, r->conf->dlq_topic)) {
        case LB_REPLAY_SKIP_FILTER:
                r->skip_filter++;
                return;
        case LB_REPLAY_SKIP_MAX_REPLAYS:
                r->skip_max++;
                return;
        case LB_REPLAY_SKIP_NO_TARGET:
                r->skip_target++;
                return;
        case LB_REPLAY_SKIP_UNREADABLE:
                r->skip_unreadable++;
                return;
        case LB_REPLAY_GO:
                break;
        }
        /* A record written cut is never the event: the whole original
         * goes back, or nothing (the cut copy stays in the DLQ). */
        rd_kafka_message_t *orig = NULL;
        source_t src = {m->key,
                        m->key_len,
                        m->payload,
                        m->len,
                        lb_replay_event_timestamp(&rec),
                        hdrs};
        if (rec.cut) {
                orig = fetch_original(r, m, &rec);
                if (!orig) {
                        if (!r->fatal)
                                r->skip_gone++;
                        return;
                }
                if (rd_kafka_message_headers(orig, &ohdrs))
                        ohdrs = NULL;
                src = (source_t){orig->key,
                                 orig->key_len,
                                 orig->payload,
                                 orig->len,
                                 rd_kafka_message_timestamp(orig, &tstype),
                                 ohdrs};
        }
        double t = 0;
        int has_t = !lb_event_time(src.value, src.len, &t);
        if (lb_event_too_old(has_t, t, src.timestamp_ms,
                             (int64_t)time(NULL) * 1000,
                             r->conf->input_max_age_ms, NULL, 0)) {
                r->skip_old++;
        } else if (r->producer) {
                r->refetched += orig != NULL;
                produce(r, &src, &rec);
        } else {
                r->refetched += orig != NULL;
                r->replayed++; /* a dry run counts what it would replay */
                if (tally(&r->by_stage, rec.stage) ||
                    tally(&r->by_app, rec.app) ||
                    tally(&r->by_message, rec.message))
                        fatal(r, "%s", "out of memory");
        }
        if (orig)
                rd_kafka_message_destroy(orig);
}

/* Waits until every produce so far is acknowledged, then commits what was
 * consumed. A failed produce commits nothing of its batch: the next run
 * reads it again. */
static void checkpoint(replay_t *r)
{
        r->last_checkpoint = now_s();
        while (r->producer && r->outstanding) {
                rd_kafka_flush(r->producer, 1000);
                progress(r, 0);
        }
        if (r->failed) {
                fatal(r,
                      "a replayed record was not acknowledged (%s); nothing "
                      "after the last checkpoint is committed, a rerun "
                      "replays it",
                      r->failure);
                return;
        }
        if (!r->batch || r->o->dry_run)
                return;
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new((int)r->nparts);
        for (int32_t p = 0; p < r->nparts; p++) {
                if (r->next[p] < 0)
                        continue;
                rd_kafka_topic_partition_list_add(l, r->conf->dlq_topic, p)
                    ->offset = r->next[p];
        }
        rd_kafka_resp_err_t err = rd_kafka_commit(r->consumer, l, 0);
        for (int i = 0; !err && i < l->cnt; i++)
                err = l->elems[i].err;
        rd_kafka_topic_partition_list_destroy(l);
        if (err) {
                fatal(r, "cannot commit the replay's progress: %s",
                      rd_kafka_err2str(err));
                return;
        }
        lb_debug("replay", "checkpoint: %zu record(s) committed", r->batch);
        for (int32_t p = 0; p < r->nparts; p++)
                r->next[p] = -1;
        r->batch = 0;
}

/* Reads the partition count, high watermarks and committed offsets, then
 * assigns every partition at its committed offset. */
static int start(replay_t *r)
{
        const char *dlq = r->conf->dlq_topic;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->consumer, dlq, NULL);
        rd_kafka_resp_err_t err =
            rkt ? rd_kafka_metadata(r->consumer, 0, rkt, &md, KAFKA_TIMEOUT_MS)
                : rd_kafka_last_error();
        if (!err && md->topic_cnt == 1)
                err = md->topics[0].err;
        if (err) {
                char msg[512];
                snprintf(msg, sizeof(msg), "%s: %s", dlq,
                         rd_kafka_err2str(err));
                fatal(r, "cannot read the dead-letter topic %s", msg);
        } else {
                r->nparts = md->topics[0].partition_cnt;
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        if (err)
                return -1;
        r->high = calloc((size_t)r->nparts + 1, sizeof(*r->high));
        r->next = calloc((size_t)r->nparts + 1, sizeof(*r->next));
        r->done = calloc((size_t)r->nparts + 1, 1);
        r->skip = calloc((size_t)r->nparts + 1, sizeof(*r->skip));
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new((int)r->nparts);
        if (!r->high || !r->next || !r->done || !r->skip) {
                fatal(r, "%s", "out of memory");
                goto out;
        }
        for (int32_t p = 0; p < r->nparts; p++) {
                int64_t lo;
                r->next[p] = -1;
                lb_skip_init(&r->skip[p]);
                err = rd_kafka_query_watermark_offsets(
                    r->consumer, dlq, p, &lo, &r->high[p], KAFKA_TIMEOUT_MS);
                if (err) {
                        fatal(r, "cannot read the high watermarks: %s",
                              rd_kafka_err2str(err));
                        goto out;
                }
                rd_kafka_topic_partition_list_add(l, dlq, p)->offset = lo;
        }
        /* The committed offsets replace the low watermarks (kept as the
         * start where the group has none, or where retention removed it). */
        rd_kafka_topic_partition_list_t *c =
            rd_kafka_topic_partition_list_copy(l);
        err = rd_kafka_committed(r->consumer, c, KAFKA_TIMEOUT_MS);
        for (int i = 0; !err && i < c->cnt; i++) {
                rd_kafka_topic_partition_t *e =
                    rd_kafka_topic_partition_list_find(l, dlq,
                                                       c->elems[i].partition);
                err = c->elems[i].err;
                if (err || !e)
                        continue;
                if (c->elems[i].offset > e->offset)
                        e->offset = c->elems[i].offset;
                if (!r->o->follow && e->offset >= r->high[e->partition])
                        mark_done(r, e->partition);
                else
                        r->todo += r->high[e->partition] - e->offset;
        }
        rd_kafka_topic_partition_list_destroy(c);
        if (err) {
                fatal(r, "cannot read the replay group's offsets: %s",
                      rd_kafka_err2str(err));
                goto out;
        }
        err = rd_kafka_assign(r->consumer, l);
        if (err)
                fatal(r, "cannot assign the dead-letter topic: %s",
                      rd_kafka_err2str(err));
out:
        rd_kafka_topic_partition_list_destroy(l);
        return r->fatal ? -1 : 0;
}

static void print_tally(const char *title, lb_tally_t *t, size_t shown)
{
        lb_tally_by_count(t);
        printf("  by %s:\n", title);
        uint64_t rest = 0;
        for (size_t i = 0; i < t->n; i++) {
                if (i < shown)
                        printf("    %8" PRIu64 "  %s\n", t->v[i].count,
                               t->v[i].name);
                else
                        rest += t->v[i].count;
        }
        if (t->n > shown)
                printf("    %8" PRIu64 "  (%zu other %ss)\n", rest,
                       t->n - shown, title);
}

static void summary(replay_t *r)
{
        double secs = now_s() - r->t0;
        printf("leanbridge replay%s: dead-letter topic %s, group %s\n",
               r->o->dry_run ? " (dry run)" : "", r->conf->dlq_topic, r->group);
        printf("  records read              %" PRIu64 "\n", r->read);
        printf("  %-25s %" PRIu64 "\n",
               r->o->dry_run ? "would be replayed" : "replayed", r->replayed);
        printf("  skipped by filter         %" PRIu64 "\n", r->skip_filter);
        printf("  skipped at --max-replays  %" PRIu64 "\n", r->skip_max);
        printf("  skipped, no target topic  %" PRIu64 "\n", r->skip_target);
        printf("  skipped, unreadable event %" PRIu64 "\n", r->skip_unreadable);
        printf("  unreadable in the topic   %" PRIu64 "\n",
               r->unreadable_batch);
        printf("  skipped, too old          %" PRIu64 "\n", r->skip_old);
        printf("  cut, original replayed    %" PRIu64 "\n", r->refetched);
        printf("  cut, original gone        %" PRIu64 "\n", r->skip_gone);
        printf("  time                      %.1f s\n", secs);
        if (r->o->dry_run) {
                print_tally("stage", &r->by_stage, SIZE_MAX);
                print_tally("app", &r->by_app, SIZE_MAX);
                print_tally("message", &r->by_message, MESSAGES_SHOWN);
        }
        fflush(stdout);
}

/* A client from kc (NULL: its builder failed with errstr), which it owns
 * from here on. @returns the client, or NULL after a fatal error. */
static rd_kafka_t *client_new(replay_t *r, rd_kafka_type_t type,
                              rd_kafka_conf_t *kc, char *errstr, size_t size)
{
        rd_kafka_t *rk = NULL;
        if (kc) {
                rd_kafka_conf_set_opaque(kc, r);
                rd_kafka_conf_set_error_cb(kc, error_cb);
                if (type == RD_KAFKA_PRODUCER) {
                        rd_kafka_conf_set_dr_msg_cb(kc, dr_msg_cb);
                        /* It writes back records the input topics held:
                         * only their limit (the broker's) applies, not the
                         * dead-letter producer's, which may be why a dead
                         * letter was cut. */
                        rd_kafka_conf_set(kc, "message.max.bytes", "1000000000",
                                          NULL, 0);
                }
                rk = rd_kafka_new(type, kc, errstr, size);
                if (!rk)
                        rd_kafka_conf_destroy(kc);
        }
        if (!rk)
                fatal(r, "%s", errstr);
        return rk;
}

static int run(replay_t *r, volatile sig_atomic_t *stop)
{
        char errstr[512];
        r->consumer =
            client_new(r, RD_KAFKA_CONSUMER,
                       consumer_conf(r->conf, r->group, errstr, sizeof(errstr)),
                       errstr, sizeof(errstr));
        if (!r->consumer)
                return -1;
        rd_kafka_poll_set_consumer(r->consumer);
        if (!r->o->dry_run &&
            !(r->producer =
                  client_new(r, RD_KAFKA_PRODUCER,
                             lb_kafka_conf_new(r->conf, LB_KAFKA_PRODUCER,
                                               errstr, sizeof(errstr)),
                             errstr, sizeof(errstr))))
                return -1;
        if (start(r))
                return -1;
        lb_info("replay",
                "%s %s from group %s: %" PRId32 " partition(s)%s%" PRId64
                " record(s) to the high watermarks%s",
                r->o->dry_run ? "counting" : "replaying", r->conf->dlq_topic,
                r->group, r->nparts, r->o->follow ? ", following; " : ", ",
                r->todo, r->o->to ? " (to --to)" : "");
        while (!r->fatal && !*stop &&
               (r->o->follow || r->parts_done < r->nparts)) {
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(r->consumer, 100);
                if (m) {
                        handle(r, m);
                        rd_kafka_message_destroy(m);
                }
                if (r->producer)
                        rd_kafka_poll(r->producer, 0);
                char ferr[512];
                if (rd_kafka_fatal_error(r->consumer, ferr, sizeof(ferr)) ||
                    (r->producer &&
                     rd_kafka_fatal_error(r->producer, ferr, sizeof(ferr))))
                        fatal(r, "fatal Kafka error: %s", ferr);
                if (!r->fatal &&
                    (r->batch >= CHECKPOINT_RECORDS ||
                     (r->batch &&
                      (!m || now_s() - r->last_checkpoint >= CHECKPOINT_S))))
                        checkpoint(r);
                progress(r, 0);
        }
        if (!r->fatal)
                checkpoint(r);
        return r->fatal ? -1 : 0;
}

int lb_replay_run(const lb_config_t *conf, const lb_replay_opts_t *o,
                  volatile sig_atomic_t *stop)
{
        replay_t r = {.conf = conf, .o = o, .tty = isatty(2)};
        group_name(conf, o, r.group, sizeof(r.group));
        r.t0 = r.last_progress = r.last_checkpoint = now_s();

        int rc = run(&r, stop) ? 1 : 0;
        if (r.high) { /* it got as far as reading the topic */
                progress(&r, 1);
                summary(&r);
        }
        if (r.producer) {
                /* After a failure: what is still queued is not committed. */
                rd_kafka_purge(r.producer, RD_KAFKA_PURGE_F_QUEUE |
                                               RD_KAFKA_PURGE_F_INFLIGHT);
                rd_kafka_flush(r.producer, 1000);
                rd_kafka_destroy(r.producer);
        }
        if (r.consumer) {
                rd_kafka_consumer_close(r.consumer);
                rd_kafka_destroy(r.consumer);
        }
        if (r.fetcher)
                rd_kafka_destroy(r.fetcher);
        lb_tally_free(&r.by_stage);
        lb_tally_free(&r.by_app);
        lb_tally_free(&r.by_message);
        free(r.high);
        free(r.skip);
        free(r.next);
        free(r.done);
        return rc;
}
