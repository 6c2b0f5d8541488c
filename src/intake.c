/*
 * intake.c: the loop's first stage. Takes messages from the consumer,
 * tracks their offsets, parses and validates each event and queues it in
 * the batcher, or dead-letters it; keeps the memory bound
 * (pending.max.actions / pending.max.bytes) by pausing the input. Owns an
 * action's end too: finished (its offset done when it was handled) or
 * handed to the dead-letter topic, whose acknowledgement finishes it.
 * Never skips an offset silently: a record batch the consumer cannot read
 * is crossed (skip.h) and dead-lettered as what was lost (stage
 * consumer_error).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "loop.h"
#include "skip.h"

/* Messages taken from the consumer per loop turn before serving the rest
 * (~1.5 ms of parsing: a finished request waits at most that long). */
#define LB_CONSUME_BURST 500

void lb_action_finish(lb_bridge_t *b, lb_action_t *a, int handled)
{
        lb_partition_t *p = a->partition;
        if (handled)
                lb_partition_done(p, a->offset);
        b->live_actions--;
        b->live_bytes -= lb_action_footprint(a);
        lb_action_destroy(a);
        lb_partition_unref(p);
}

void lb_action_drop(lb_action_t *a, void *opaque)
{
        lb_action_finish(opaque, a, 0);
}

void lb_dead_letter(lb_bridge_t *b, lb_action_t *a, lb_stage_t stage,
                    int http_status, const char *reason)
{
        lb_action_set_error(a, stage, http_status, reason);
        b->live_bytes += lb_action_dead_letter_cost(a);
        lb_debug("dlq", "%s[%d]@%" PRId64 " -> %s: %s",
                 lb_partition_topic(a->partition),
                 lb_partition_id(a->partition), a->offset, lb_stage_name(stage),
                 reason ? reason : "");
        lb_dlq_send(b->dlq, a);
}

/* A dead letter counts once the topic has acknowledged it: one given up at
 * shutdown or revocation is the next owner's to write. */
void lb_intake_dlq_report(void *opaque, lb_action_t *a, int err,
                          const char *errstr)
{
        lb_bridge_t *b = opaque;
        (void)errstr;
        b->live_bytes -= lb_action_dead_letter_cost(a);
        if (!err)
                atomic_fetch_add(&b->metrics.dead_lettered[a->stage], 1);
        lb_action_finish(b, a, !err);
}

/* A consumed action: parsed, then queued in the batcher or dead-lettered. */
static void take_action(lb_bridge_t *b, lb_action_t *a)
{
        lb_event_t ev;
        char reason[256];
        ev.app = -1;
        lb_stage_t stage = lb_event_parse(b->conf, b->app_overhead, b->shapes,
                                          lb_action_value(a), a->value_len, &ev,
                                          reason, sizeof(reason));
        a->app = ev.app;
        if (stage != LB_STAGE_NONE) {
                lb_dead_letter(b, a, stage, 0, reason);
                return;
        }
        a->time_missing = ev.time_missing != 0;
        a->object_empty = ev.object_empty != 0;
        a->closes = ev.closes;
        /* fits: the event is at most batch.max.bytes (lb_event_parse) */
        a->body_len =
            (uint32_t)lb_event_body_len(a->value_len, ev.time_missing);
        int64_t wall_ms = b->burst_wall_ms;
        if (lb_event_too_old(!ev.time_missing, ev.time_s, a->timestamp_ms,
                             wall_ms, b->conf->input_max_age_ms, reason,
                             sizeof(reason))) {
                lb_dead_letter(b, a, LB_STAGE_TOO_OLD, 0, reason);
                return;
        }
        if (a->time_missing && a->timestamp_ms <= 0)
                a->timestamp_ms = wall_ms;
        /* how long ago it was written: the wait budget counts from then */
        int64_t age = a->timestamp_ms > 0 ? wall_ms - a->timestamp_ms : 0;
        int r = lb_batcher_add(b->batcher, a, ev.user, ev.user_len, age);
        if (r == -2) {
                lb_dead_letter(b, a, LB_STAGE_VALIDATE, 0,
                               "event larger than batch.max.bytes");
        } else if (r) {
                lb_error("batcher", "out of memory");
                b->fatal = 1;
                lb_action_finish(b, a, 0);
        }
}

/* The first messages of a partition after its assignment, or after a
 * jump in its offsets: when they come past the group's committed offset
 * (or the one after the last consumed) and the log now starts past it
 * too, retention deleted events the group never consumed. The bridge
 * cannot bring them back; the operator must hear of it from it, not from
 * users. The log start is librdkafka's last seen (fetches, statistics):
 * until it is known, the next message checks again. */
static void check_retention(lb_bridge_t *b, lb_assigned_t *e, const char *topic,
                            const rd_kafka_message_t *m)
{
        if (e->resumed < 0)
                e->resumed = m->offset;
        if (e->resumed <= e->start) {
                e->start = -1;
                return;
        }
        int64_t log_start = lb_kafka_in_log_start(b->in, topic, m->partition);
        if (log_start < 0)
                return;
        int64_t from = e->start;
        e->start = -1;
        int64_t lost = lb_retention_lost(from, e->resumed, log_start);
        if (!lost)
                return;
        atomic_fetch_add(&b->metrics.events_lost_retention, (uint64_t)lost);
        if (e->fell_behind)
                lb_error("consumer",
                         "%s[%d]: %" PRId64 " event(s) lost to retention: "
                         "offsets %" PRId64 "..%" PRId64 " were deleted "
                         "before the bridge consumed them (the log now "
                         "starts at %" PRId64 "; raise the topic's retention "
                         "or the bridge's capacity)",
                         topic, m->partition, lost, from, from + lost - 1,
                         log_start);
        else
                lb_error("consumer",
                         "%s[%d]: %" PRId64 " event(s) lost to retention: "
                         "the group committed offset %" PRId64 " but the log "
                         "now starts at %" PRId64 "; they were deleted before "
                         "being consumed (raise the topic's retention or the "
                         "bridge's capacity)",
                         topic, m->partition, lost, from, log_start);
}

/* A message that jumps past the offset expected (after the last consumed,
 * or where the bridge's own seek resumed the partition): retention may
 * have overtaken the consumer (librdkafka then resets its fetch, by
 * auto.offset.reset, and logs a warning), or the gap is one of compaction
 * or transaction markers: check_retention tells. */
static void note_jump(lb_assigned_t *e, int64_t next, int64_t offset)
{
        if (e->sought > next)
                next = e->sought;
        e->sought = -1;
        if (next < 0 || offset <= next || e->start >= 0)
                return;
        e->start = next;
        e->resumed = offset;
        e->fell_behind = 1;
}

/* m's offset is not after the last tracked of its partition e: the
 * consumer started the partition over. librdkafka hands no offset out
 * twice by itself; it starts over at auto.offset.reset when the broker
 * says its position is out of range: the topic was deleted and created
 * again (there was no rebalance between, or the group's offset outlived
 * the topic), or its log was truncated (an unclean leader election).
 * Then the offsets tracked name a log that is gone, and those consumed now
 * are new events, never read here: a new tracker takes the partition from
 * m. The old one is retired (lb_commits_restart): the actions taken from
 * it go on as the partition's (nobody could read them again), and until
 * they are done the offset committed stays at or below its committable
 * one. So were it the same log read again (a consumer's stale rewind),
 * what is read twice is a duplicate, never a loss.
 * @returns 0, or -1 out of memory (fatal: nothing is tracked). */
static int restart(lb_bridge_t *b, lb_assigned_t *e,
                   const rd_kafka_message_t *m)
{
        int64_t last = lb_partition_next(e->p) - 1;
        size_t live = lb_partition_holders(e->p);
        if (lb_commits_restart(b, e) || lb_partition_track(e->p, m->offset)) {
                lb_error("consumer", "out of memory");
                b->fatal = 1;
                return -1;
        }
        atomic_fetch_add(&b->metrics.partition_restarts, 1);
        lb_warn(
            "consumer",
            "%s[%d] restarted below the last offset consumed: %" PRId64
            " after %" PRId64 " (the topic was deleted and created again, "
            "or its log was truncated); tracking it afresh from %" PRId64
            ", %zu action(s) taken before still go on (commits wait for them)",
            lb_partition_topic(e->p), m->partition, m->offset, last, m->offset,
            live);
        return 0;
}

/* Tracks m's offset in its partition e unless it is being revoked (or
 * the partition starts over there: restart()). @returns whether it was
 * (0: said why). */
static int track(lb_bridge_t *b, lb_assigned_t *e, const rd_kafka_message_t *m)
{
        if (e->revoking)
                return 0; /* the next owner reads it; nothing after it is
                           * tracked here either */
        int tracked = lb_partition_track(e->p, m->offset);
        if (tracked < 0) {
                /* Never a skip: the offset stays uncommitted, and nothing
                 * after it is taken (the loop stops at a fatal error). */
                lb_error("consumer", "out of memory");
                b->fatal = 1;
                return 0;
        }
        if (tracked && restart(b, e, m))
                return 0;
        if (e->first < 0)
                e->first = m->offset; /* a map read later is not used */
        return 1;
}

/* Whether m's offset is to be taken in its partition e: not being
 * revoked, and after the last offset tracked (0 otherwise, said why).
 * What it jumped over, and after an assignment what the group had
 * committed, is checked against the log start (check_retention). */
static int take_offset(lb_bridge_t *b, lb_assigned_t *e,
                       const rd_kafka_message_t *m)
{
        int64_t next = lb_partition_next(e->p);
        if (!track(b, e, m))
                return 0;
        note_jump(e, next, m->offset);
        if (e->start >= 0)
                check_retention(b, e, lb_partition_topic(e->p), m);
        return 1;
}

/* The end of partition e, reached at m->offset: every message before it
 * came before this, so what was not handed out (transaction markers,
 * aborted records) is committed past once the rest is done. Not while
 * revoking, stopping or after a fatal error (what came then was not
 * taken). An end past the offset expected is a jump as a message's is:
 * retention may have deleted what was there (check_retention). */
static void read_to_end(lb_bridge_t *b, lb_assigned_t *e,
                        const rd_kafka_message_t *m)
{
        if (e->revoking)
                return;
        note_jump(e, lb_partition_next(e->p), m->offset);
        if (e->start >= 0)
                check_retention(b, e, lb_partition_topic(e->p), m);
        lb_partition_read_to(e->p, m->offset);
}

/* A new action of partition e at offset, not counted in the bound yet
 * (count_in(), once it has all it holds).
 * @returns NULL out of memory (fatal: the offset stays uncommitted). */
static lb_action_t *action_of(lb_bridge_t *b, lb_assigned_t *e, int64_t offset,
                              int64_t timestamp_ms, const void *key,
                              size_t key_len, const void *value, size_t len)
{
        lb_action_t *a = lb_action_new(b->arena, key, key_len, value, len);
        if (!a) {
                lb_error("consumer", "out of memory");
                b->fatal = 1;
                return NULL;
        }
        a->app = -1; /* not known until parsed */
        a->partition = e->p;
        lb_partition_ref(e->p);
        a->offset = offset;
        a->timestamp_ms = timestamp_ms;
        a->arrival_ms = b->burst_now_ms;
        return a;
}

/* a counts in the memory bound, with what it holds by now (its headers):
 * lb_action_finish() takes the same footprint back. */
static void count_in(lb_bridge_t *b, const lb_action_t *a)
{
        b->live_actions++;
        b->live_bytes += lb_action_footprint(a);
}

static void handle_message(lb_bridge_t *b, lb_assigned_t *e,
                           rd_kafka_message_t *m)
{
        if (!take_offset(b, e, m))
                return;
        LB_METRIC_ADD(b->metrics.events_consumed, 1);
        int64_t ts_ms = rd_kafka_message_timestamp(m, NULL);
        e->last_ts_ms = ts_ms;
        e->caught_up = 0;
        if (lb_partition_already_done(e->p, m->offset)) {
                /* done before a crash or a handover: the offset map said so */
                lb_partition_done(e->p, m->offset);
                atomic_fetch_add(&b->metrics.events_already_done, 1);
                return;
        }
        if (!m->payload) { /* tombstone */
                lb_partition_done(e->p, m->offset);
                atomic_fetch_add(&b->metrics.events_skipped, 1);
                return;
        }
        lb_action_t *a = action_of(b, e, m->offset, ts_ms, m->key, m->key_len,
                                   m->payload, m->len);
        if (!a)
                return;
        /* Its own headers go into its dead letter. librdkafka hands an
         * empty list for a record without any: only a real one is kept,
         * taken from the message rather than copied. Asking costs a parse
         * buffer: most records surely have none (kafka_in.h). */
        rd_kafka_headers_t *hdrs;
        if (!lb_kafka_in_headerless(m) && !rd_kafka_message_headers(m, &hdrs) &&
            rd_kafka_header_cnt(hdrs) &&
            !rd_kafka_message_detach_headers(m, &hdrs) &&
            lb_action_take_headers(a, hdrs)) {
                rd_kafka_headers_destroy(hdrs);
                lb_error("consumer", "out of memory");
                b->fatal = 1; /* its dead letter could not carry them */
        }
        count_in(b, a);
        take_action(b, a);
}

/* Moves e's consumer position on while crossing an unreadable batch; once
 * its end is known, dead-letters it as one record saying what was lost
 * (the error, the source topic, partition and first offset, and the
 * batch's offsets) and reads on after it. */
static void cross(lb_bridge_t *b, lb_assigned_t *e, int64_t pos)
{
        const char *topic = lb_partition_topic(e->p);
        int32_t partition = lb_partition_id(e->p);
        if (lb_skip_done(&e->skip)) {
                char why[512];
                int64_t first = e->skip.base, last = e->skip.hi - 1;
                snprintf(why, sizeof(why),
                         "%s; offsets %" PRId64 "..%" PRId64
                         " (one record batch) could not be read",
                         e->skip_error ? e->skip_error : "unreadable", first,
                         last);
                lb_error("consumer",
                         "%s[%d]: offsets %" PRId64 "..%" PRId64
                         " cannot be read (%s): dead-lettered with stage "
                         "consumer_error, reading on at %" PRId64,
                         topic, partition, first, last,
                         e->skip_error ? e->skip_error : "", e->skip.hi);
                free(e->skip_error);
                e->skip_error = NULL;
                lb_skip_init(&e->skip);
                e->sought = pos; /* the batch's offsets are no jump */
                lb_action_t *a =
                    action_of(b, e, first, lb_loop_wall_ms(), NULL, 0, "", 0);
                if (a) {
                        count_in(b, a);
                        lb_dead_letter(b, a, LB_STAGE_CONSUMER_ERROR, 0, why);
                }
        }
        lb_kafka_in_seek(b->in, topic, partition, pos);
}

/* A consumer error that names an offset of an assigned partition: an
 * unreadable record batch starts a crossing (skip.h); its first offset is
 * tracked at once, so nothing is committed past it until its dead letter
 * is acknowledged. Any other error is logged. */
static void consumer_error(lb_bridge_t *b, rd_kafka_message_t *m,
                           lb_assigned_t *e)
{
        const char *why = rd_kafka_message_errstr(m);
        const char *topic = lb_partition_topic(e->p);
        int64_t end = lb_kafka_in_log_end(b->in, topic, m->partition);
        if (!lb_skip_unreadable(m->err) || m->offset < 0 ||
            (end >= 0 && m->offset >= end) || b->state != LB_RUNNING ||
            b->fatal || e->revoking) {
                lb_warn("consumer", "%s", why);
                return;
        }
        if (lb_skip_active(&e->skip)) {
                cross(b, e, lb_skip_error(&e->skip, m->offset, end));
                return;
        }
        if (!take_offset(b, e, m))
                return;
        lb_warn("consumer",
                "%s[%d]@%" PRId64 " cannot be read (%s): finding where its "
                "record batch ends, to dead-letter it and read on",
                topic, m->partition, m->offset, why);
        LB_METRIC_ADD(b->metrics.events_consumed, 1);
        e->skip_error = strdup(why);
        cross(b, e, lb_skip_error(&e->skip, m->offset, end));
}

/* A message or the log's end at offset while crossing: not taken (it is
 * read again once the crossing ends). */
static void crossing_read(lb_bridge_t *b, lb_assigned_t *e, int64_t offset)
{
        if (e->revoking)
                return;
        int64_t end = lb_kafka_in_log_end(b->in, lb_partition_topic(e->p),
                                          lb_partition_id(e->p));
        cross(b, e, lb_skip_message(&e->skip, offset, end));
}

size_t lb_intake_held_bytes(const lb_bridge_t *b)
{
        return b->live_bytes + lb_batcher_bytes(b->batcher) + b->body_bytes +
               b->ring_bytes;
}

static int over_limit(const lb_bridge_t *b)
{
        return b->live_actions >= (size_t)b->conf->pending_max_actions ||
               lb_intake_held_bytes(b) >= (size_t)b->conf->pending_max_bytes;
}

int lb_intake_consume(lb_bridge_t *b)
{
        int n = 0;
        rd_kafka_message_t *m;
        b->burst_now_ms = lb_loop_now_ms();
        b->burst_wall_ms = lb_loop_wall_ms();
        /* Poll at least once per turn (it serves the rebalance, commit and
         * statistics callbacks, also while paused), but stop at the memory
         * bound rather than at the end of a burst: the input is paused right
         * after, and librdkafka resumes after the last message handed out. */
        while (n < LB_CONSUME_BURST && (m = lb_kafka_in_poll(b->in, 0))) {
                lb_assigned_t *e = m->rkt ? lb_commits_of(b, m) : NULL;
                if (e && lb_skip_active(&e->skip) &&
                    (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
                        crossing_read(b, e, m->offset);
                } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        if (e && b->state == LB_RUNNING && !b->fatal)
                                read_to_end(b, e, m);
                        if (e)
                                e->caught_up = 1;
                } else if (m->err) {
                        if (e)
                                consumer_error(b, m, e);
                        else
                                lb_warn("consumer", "%s",
                                        rd_kafka_message_errstr(m));
                } else if (!e) {
                        lb_warn("consumer",
                                "message for unassigned %s[%d]; ignored",
                                rd_kafka_topic_name(m->rkt), m->partition);
                } else if (b->state == LB_RUNNING && !b->fatal) {
                        /* Stopping, or after a fatal error: take nothing
                         * new (and, so nothing is skipped, nothing after
                         * it either). */
                        handle_message(b, e, m);
                }
                rd_kafka_message_destroy(m);
                n++;
                if (over_limit(b))
                        break;
        }
        lb_kafka_in_serve(b->in);
        return n >= LB_CONSUME_BURST;
}

void lb_intake_backpressure(lb_bridge_t *b)
{
        const lb_config_t *c = b->conf;
        /* In an outage, consume only while nothing is left to probe with
         * (after a revocation gave everything up, say): outage mode ends
         * with a probe's success. */
        int outage = lb_outage_active(&b->outage) && b->live_actions > 0;
        int over = over_limit(b) || outage;
        int under = !outage &&
                    b->live_actions <= (size_t)c->pending_max_actions / 2 &&
                    lb_intake_held_bytes(b) <= (size_t)c->pending_max_bytes / 2;
        int paused = lb_kafka_in_paused(b->in);
        if (b->state != LB_RUNNING)
                return;
        if (!paused && over) {
                lb_info("consumer",
                        "pausing input: %s; %zu actions / %zu bytes pending",
                        outage ? "API outage" : "memory bound", b->live_actions,
                        lb_intake_held_bytes(b));
                lb_kafka_in_pause_all(b->in, 1);
        } else if (paused && under) {
                lb_info("consumer", "resuming input");
                lb_kafka_in_pause_all(b->in, 0);
        }
        atomic_store(&b->metrics.partitions_paused,
                     lb_kafka_in_paused(b->in) ? (int64_t)b->assigned_cnt : 0);
}

/* How far behind the newest events this member consumes: the age of the
 * last message taken from each partition that has not reached its end
 * since, at most over the partitions (0 when all are caught up). Unlike
 * lag, it does not grow with the wait budget: held actions were taken. */
int64_t lb_intake_consume_delay_ms(const lb_bridge_t *b, int64_t wall_ms)
{
        int64_t worst = 0;
        for (size_t i = 0; i < b->assigned_cnt; i++) {
                const lb_assigned_t *e = &b->assigned[i];
                if (e->caught_up || e->last_ts_ms <= 0)
                        continue;
                if (wall_ms - e->last_ts_ms > worst)
                        worst = wall_ms - e->last_ts_ms;
        }
        return worst;
}
