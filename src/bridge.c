/*
 * bridge.c: the loop. Owns the assignment table, the flights (batches on
 * their way; their ranges, attempts and holds are flight.c's), the
 * dead-letter retry queue, backpressure and the loop's state. The rule it
 * enforces: a message's offset counts as done only when its action was
 * delivered, its dead-letter record was acknowledged, or it was a
 * tombstone; only the contiguous done prefix of a partition is stored.
 *
 * The lifecycle: RUNNING (consume, batch, send) -> on SIGTERM, DRAINING
 * (take nothing new, send what is pending at once, until done or
 * shutdown.timeout.ms) -> STOPPING (final commit; nothing waits any more).
 * A flight ends with every action resolved (delivered or dead-lettered),
 * or is abandoned (teardown; revoked or lost partitions give their actions
 * up): an abandoned action is never retried or dead-lettered again.
 *
 * Who the API is busy with is the ledger's (ledger.h), not the flights':
 * every request on the wire, and for api.timeout.hold.ms every request
 * whose answer never came, keeps its users busy there, whatever happened
 * to its actions. The batcher's busy gate, a retry, a revocation and the
 * shutdown ask the ledger whether a user may be sent or handed over: a
 * handover leaves the group only once no user of what it hands over is
 * busy (bounded: see shutdown_wait_api() and revoke_wait_api()). A sender
 * slot (the adaptive limit) is taken only by a request on the wire: a flight
 * waiting for its backoff or for the ledger takes none, so one app's
 * failures never hold back another app's due users.
 *
 * Outage mode (outage.h): when retriable failures hit every request for a
 * while, the input is paused, one request at a time goes out as a probe
 * after a capped backoff, and retriable failures neither count as attempts
 * nor dead-letter; the first success ends it.
 */
#include "bridge.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "arena.h"
#include "backoff.h"
#include "batcher.h"
#include "concurrency.h"
#include "dlq.h"
#include "event.h"
#include "flight.h"
#include "kafka_in.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "multi.h"
#include "offset_map.h"
#include "offsets.h"
#include "outage.h"
#include "sender.h"
#include "version.h"

/* Messages taken from the consumer per loop turn before serving the rest
 * (~1.5 ms of parsing: a finished request waits at most that long). */
#define LB_CONSUME_BURST 500
/* How often the apps file is checked for a change (a rotated key). */
#define LB_APPS_WATCH_MS 5000
/* How often the summary line is logged. */
#define LB_SUMMARY_INTERVAL_MS 60000
/* Above this share of pending.max.* (in percent), the nearest deadlines
 * are sent early, so the input pauses only when the API has no room. */
#define LB_EARLY_MARK_PCT 75
/* Delay before re-producing a dead-letter record that failed. */
#define LB_DLQ_RETRY_MS 1000
/* Outage mode starts after this long of nothing but retriable failures, at
 * least LB_OUTAGE_MIN_FAILURES of them (of two requests or more). */
#define LB_OUTAGE_WINDOW_MS    2000
#define LB_OUTAGE_MIN_FAILURES 3
/* The longest wait between two probes in outage mode (and
 * retry.backoff.max.ms if lower): the bridge is back at full speed within
 * about this long of the API's recovery. */
#define LB_PROBE_MAX_MS 5000

/* One assigned partition. */
typedef struct {
        lb_partition_t *p;
        int64_t committed;      /* offset of the last commit sent, or -1 */
        uint64_t committed_map; /* hash of that commit's offset map */
        int64_t last_ts_ms;     /* Kafka timestamp of the last message taken */
        int caught_up;          /* reached the end (partition EOF) since */
        /* the group's committed offset when assigned here, until the
         * messages after it are checked against the log start; -1: nothing
         * to check. first: the first offset consumed since (-1: none). */
        int64_t start, first;
} lb_assigned_t;

/* A batch on its way (see flight.h for its states). Keeps its users in the
 * batcher's busy gate from its creation to its end (the ordering gate); the
 * ledger keeps them busy at the API (see the top of the file). */
typedef struct flight_s {
        struct flight_s *next; /* in the bridge's flight list */
        lb_batch_t *batch;
        lb_flight_t fl;   /* owns the unresolved slots of batch->actions */
        lb_user_t **wire; /* the users of the attempt on the wire */
        size_t wire_n;
        lb_request_t req;
        size_t body_counted; /* its body's room, in the bridge's body_bytes */
} flight_t;

/* The loop's state. Running: consuming and sending. Draining (SIGTERM):
 * nothing new is taken; pending work is sent at once until it is done or
 * shutdown.timeout.ms has passed. Stopping: the drain is over, or was not
 * wanted (fatal error, teardown): a revocation waits for nothing, and a
 * failed dead-letter record is not retried. */
typedef enum { LB_RUNNING, LB_DRAINING, LB_STOPPING } lb_loop_state_t;

struct lb_bridge_s {
        lb_config_t *conf; /* written only by reload_apps() */
        int wake_fd;
        lb_kafka_in_t *in;
        lb_dlq_t *dlq;
        lb_sender_t *sender;
        lb_batcher_t *batcher;
        lb_arena_t *arena; /* where actions live (arena.h) */
        lb_admin_t *admin;
        size_t *app_overhead;
        lb_metrics_t metrics;
        lb_health_t health;
        lb_concurrency_t conc; /* adaptive limit on requests on the wire */
        lb_ledger_t *ledger;   /* users the API may still be working on */
        lb_outage_t outage;    /* whether the API fails for everyone */
        int64_t probe_at;      /* outage mode: no request before this */

        lb_assigned_t *assigned;
        size_t assigned_cnt, assigned_cap;

        flight_t *flights; /* every batch on its way */

        lb_action_t *dlq_retry_head, *dlq_retry_tail; /* to re-produce */
        int64_t dlq_retry_at;

        /* The clocks of the current consume burst: read once for up to
         * LB_CONSUME_BURST messages, taken in well under a millisecond. */
        int64_t burst_now_ms, burst_wall_ms;
        size_t live_actions; /* consumed and not yet freed */
        size_t live_bytes;
        size_t body_bytes; /* room of the request bodies of the flights */
        lb_loop_state_t state;
        int64_t stop_deadline; /* draining: when the drain gives up */
        int flushes;           /* flushing drains running (handover.flush) */
        int fatal;
        int64_t last_summary_ms;
        uint64_t last_consumed, last_delivered; /* at the last summary */
        uint64_t last_memory_early;
        unsigned int rand_state;
        struct stat apps_st; /* the apps file when last read */
        int64_t apps_checked_ms;
        int64_t next_commit_ms;
        lb_map_room_t map_room; /* what an offset map may take now */
        char *map; /* an encoded map, commit.metadata.max.bytes + 1 bytes */
        lb_range_t *ranges; /* a partition's done ranges, ranges_cap */
        size_t ranges_cap;
};

static int64_t now_ms(void)
{
        return lb_admin_now_ms();
}

static double wall_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- assignment table ---- */

static lb_assigned_t *find_assigned(lb_bridge_t *b, const char *topic,
                                    int32_t partition)
{
        for (size_t i = 0; i < b->assigned_cnt; i++) {
                lb_partition_t *p = b->assigned[i].p;
                if (lb_partition_id(p) == partition &&
                    !strcmp(lb_partition_topic(p), topic))
                        return &b->assigned[i];
        }
        return NULL;
}

/* ---- commits: each partition's offset and offset map ---- */

/* FNV-1a: a partition is committed again when its offset or map changed. */
static uint64_t map_hash(const char *s, size_t n)
{
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
        return h;
}

/* Adds e's committable offset, with the map of the done offsets above it,
 * to l when either changed since e's last commit. */
static void commit_add(lb_bridge_t *b, lb_assigned_t *e,
                       rd_kafka_topic_partition_list_t *l)
{
        int64_t off = lb_partition_committable(e->p);
        size_t len = 0;
        int truncated = 0;
        if (off < 0)
                return;
        if (b->map_room.room > 0) {
                size_t n =
                    lb_partition_done_ranges(e->p, b->ranges, b->ranges_cap);
                size_t w = n < b->ranges_cap ? n : b->ranges_cap;
                len =
                    lb_offset_map_encode(off, b->ranges, w, b->map,
                                         (size_t)b->map_room.room, &truncated);
                truncated |= n > w;
        }
        uint64_t h = map_hash(b->map, len);
        if (off == e->committed && h == e->committed_map)
                return;
        rd_kafka_topic_partition_t *t = rd_kafka_topic_partition_list_add(
            l, lb_partition_topic(e->p), lb_partition_id(e->p));
        t->offset = off;
        if (len && (t->metadata = malloc(len))) { /* freed with l */
                memcpy(t->metadata, b->map, len);
                t->metadata_size = len;
        }
        e->committed = off;
        e->committed_map = h;
        if (truncated)
                atomic_fetch_add(&b->metrics.offset_maps_truncated, 1);
}

/* A commit's result, per partition. A failed one is sent again at the next
 * interval; maps the broker refuses as too large cut the room for maps
 * once per commit (the part nearest the committed offset is kept), and the
 * room is probed back up later (lb_map_room_t). */
static void on_committed(void *opaque, rd_kafka_resp_err_t err,
                         const rd_kafka_topic_partition_list_t *l)
{
        lb_bridge_t *b = opaque;
        size_t refused = 0; /* the smallest map refused as too large */
        for (int i = 0; i < l->cnt; i++) {
                const rd_kafka_topic_partition_t *t = &l->elems[i];
                rd_kafka_resp_err_t e = t->err ? t->err : err;
                if (!e) {
                        atomic_fetch_add(&b->metrics.offsets_committed, 1);
                        continue;
                }
                lb_assigned_t *a = find_assigned(b, t->topic, t->partition);
                if (a)
                        a->committed = -1;
                if (e == RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE &&
                    t->metadata_size > 0) {
                        if (!refused || t->metadata_size < refused)
                                refused = t->metadata_size;
                } else {
                        lb_warn("offsets", "commit %s[%d]@%" PRId64 ": %s",
                                t->topic, t->partition, t->offset,
                                rd_kafka_err2str(e));
                }
        }
        int change = lb_map_room_observe(&b->map_room, refused, now_ms());
        if (change < 0)
                lb_warn("offsets",
                        "the broker refused an offset map of %zu bytes (set "
                        "commit.metadata.max.bytes to its "
                        "offset.metadata.max.bytes); maps now take at most "
                        "%" PRId64 " bytes%s, more tried in %d s",
                        refused, b->map_room.room,
                        b->map_room.room ? ""
                                         : " (off: a crash or handover "
                                           "redoes what they would skip)",
                        LB_MAP_ROOM_PROBE_MS / 1000);
        else if (change > 0)
                lb_info("offsets",
                        "offset maps may take %" PRId64 " bytes again",
                        b->map_room.room);
        atomic_store(&b->metrics.offset_map_room, b->map_room.room);
}

static void commit_list(lb_bridge_t *b, rd_kafka_topic_partition_list_t *l,
                        int async)
{
        rd_kafka_resp_err_t err = lb_kafka_in_commit(b->in, l, async);
        if (!async || err)
                on_committed(b, err, l);
}

/* Commits every assigned partition whose offset or map changed: every
 * auto.commit.interval.ms without waiting, and at the end waiting. */
static void commit_all(lb_bridge_t *b, int async)
{
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new((int)b->assigned_cnt + 1);
        for (size_t i = 0; i < b->assigned_cnt; i++)
                commit_add(b, &b->assigned[i], l);
        commit_list(b, l, async);
        rd_kafka_topic_partition_list_destroy(l);
}

/* Reads the offset maps committed with the newly assigned partitions: the
 * offsets they mark done are skipped when consumed. A map that cannot be
 * used is ignored (those offsets are redone, never skipped). */
static void read_maps(lb_bridge_t *b,
                      const rd_kafka_topic_partition_list_t *parts)
{
        rd_kafka_topic_partition_list_t *c = lb_kafka_in_committed(
            b->in, parts, (int)b->conf->rebalance_timeout_ms);
        for (int i = 0; c && i < c->cnt; i++) {
                const rd_kafka_topic_partition_t *t = &c->elems[i];
                lb_assigned_t *e = find_assigned(b, t->topic, t->partition);
                lb_range_t *r;
                if (e && t->offset >= 0)
                        e->start = t->offset;
                if (!e || t->offset < 0 || !t->metadata_size)
                        continue;
                int n = lb_offset_map_decode(t->metadata, t->metadata_size,
                                             t->offset, &r);
                if (n < 0) {
                        atomic_fetch_add(&b->metrics.offset_maps_ignored, 1);
                        lb_warn("offsets",
                                "%s[%d]: the committed offset map is not one "
                                "this version reads; ignored (what it marks "
                                "done is redone)",
                                t->topic, t->partition);
                        continue;
                }
                lb_partition_set_already_done(e->p, r, (size_t)n);
                e->committed = t->offset;
                e->committed_map = map_hash(t->metadata, t->metadata_size);
        }
        if (c)
                rd_kafka_topic_partition_list_destroy(c);
}

/* ---- action lifetime ---- */

/* Frees an action; if handled, its offset counts as done. */
static void action_finish(lb_bridge_t *b, lb_action_t *a, int handled)
{
        lb_partition_t *p = a->partition;
        if (handled)
                lb_partition_done(p, a->offset);
        b->live_actions--;
        b->live_bytes -= lb_action_footprint(a);
        lb_action_destroy(a);
        lb_partition_unref(p);
}

static void dlq_retry_push(lb_bridge_t *b, lb_action_t *a)
{
        a->next = NULL;
        if (b->dlq_retry_tail)
                b->dlq_retry_tail->next = a;
        else
                b->dlq_retry_head = a;
        b->dlq_retry_tail = a;
        if (!b->dlq_retry_at)
                b->dlq_retry_at = now_ms() + LB_DLQ_RETRY_MS;
}

static const char *app_id_of(const lb_bridge_t *b, const lb_action_t *a)
{
        return a->app >= 0 && (size_t)a->app < b->conf->app_cnt
                   ? b->conf->apps[a->app].id
                   : NULL;
}

/* Hands an action to the dead-letter topic; it is freed (and its offset
 * done) when Kafka acknowledges the record. */
static void dead_letter(lb_bridge_t *b, lb_action_t *a, lb_stage_t stage,
                        int http_status, const char *reason)
{
        lb_action_set_error(a, stage, http_status, reason);
        atomic_fetch_add(&b->metrics.dead_lettered[stage], 1);
        lb_debug("dlq", "%s[%d]@%" PRId64 " -> %s: %s",
                 lb_partition_topic(a->partition),
                 lb_partition_id(a->partition), a->offset, lb_stage_name(stage),
                 reason ? reason : "");
        if (lb_dlq_produce(b->dlq, a, app_id_of(b, a)))
                dlq_retry_push(b, a);
}

static void dlq_report(void *opaque, lb_action_t *a, int err,
                       const char *errstr)
{
        lb_bridge_t *b = opaque;
        if (!err) {
                action_finish(b, a, 1);
                return;
        }
        if (b->state == LB_STOPPING) {
                action_finish(b, a, 0);
                return;
        }
        lb_warn("dlq",
                "dead-letter record for %s[%d]@%" PRId64
                " failed (%s); retrying",
                lb_partition_topic(a->partition), lb_partition_id(a->partition),
                a->offset, errstr);
        atomic_fetch_add(&b->metrics.dlq_produce_retries, 1);
        dlq_retry_push(b, a);
}

/* Re-produces the records due. One the producer refuses waits for the
 * next round without holding up the others; a full queue ends the round. */
static void dlq_retry_due(lb_bridge_t *b, int64_t now)
{
        if (!b->dlq_retry_head || now < b->dlq_retry_at)
                return;
        lb_action_t *a = b->dlq_retry_head;
        b->dlq_retry_head = b->dlq_retry_tail = NULL;
        b->dlq_retry_at = 0;
        while (a) {
                lb_action_t *next = a->next;
                int r = lb_dlq_produce(b->dlq, a, app_id_of(b, a));
                if (r == -1) {
                        a->next = next; /* the rest, in order */
                        if (b->dlq_retry_tail)
                                b->dlq_retry_tail->next = a;
                        else
                                b->dlq_retry_head = a;
                        while (a->next)
                                a = a->next;
                        b->dlq_retry_tail = a;
                        b->dlq_retry_at = now + LB_DLQ_RETRY_MS;
                        return;
                }
                if (r)
                        dlq_retry_push(b, a);
                a = next;
        }
}

/* ---- consuming ---- */

/* A consumed action: parsed, then queued in the batcher or dead-lettered. */
static void take_action(lb_bridge_t *b, lb_action_t *a)
{
        lb_event_t ev;
        char reason[256];
        ev.app = -1;
        lb_stage_t stage =
            lb_event_parse(b->conf, b->app_overhead, lb_action_value(a),
                           a->value_len, &ev, reason, sizeof(reason));
        a->app = ev.app;
        if (stage != LB_STAGE_NONE) {
                dead_letter(b, a, stage, 0, reason);
                return;
        }
        a->time_missing = ev.time_missing != 0;
        a->object_empty = ev.object_empty != 0;
        /* fits: the event is at most batch.max.bytes (lb_event_parse) */
        a->body_len =
            (uint32_t)lb_event_body_len(a->value_len, ev.time_missing);
        int64_t wall_ms = b->burst_wall_ms;
        if (lb_event_too_old(!ev.time_missing, ev.time_s, a->timestamp_ms,
                             wall_ms, b->conf->input_max_age_ms, reason,
                             sizeof(reason))) {
                dead_letter(b, a, LB_STAGE_TOO_OLD, 0, reason);
                return;
        }
        if (a->time_missing && a->timestamp_ms <= 0)
                a->timestamp_ms = wall_ms;
        /* how long ago it was written: the wait budget counts from then */
        int64_t age = a->timestamp_ms > 0 ? wall_ms - a->timestamp_ms : 0;
        int r = lb_batcher_add(b->batcher, a, ev.user, ev.user_len, age);
        if (r == -2) {
                dead_letter(b, a, LB_STAGE_VALIDATE, 0,
                            "event larger than batch.max.bytes");
        } else if (r) {
                lb_error("batcher", "out of memory");
                b->fatal = 1;
                action_finish(b, a, 0);
        }
}

/* The first messages of a partition after its assignment: when they come
 * past the group's committed offset and the log now starts past it too,
 * retention deleted events the group never consumed. The bridge cannot
 * bring them back; the operator must hear of it from it, not from users.
 * The log start is librdkafka's last seen (fetches, statistics): until it
 * is known, the next message checks again. */
static void check_retention(lb_bridge_t *b, lb_assigned_t *e, const char *topic,
                            const rd_kafka_message_t *m)
{
        if (e->first < 0)
                e->first = m->offset;
        if (e->first <= e->start) {
                e->start = -1;
                return;
        }
        int64_t log_start = lb_kafka_in_log_start(b->in, topic, m->partition);
        if (log_start < 0)
                return;
        int64_t committed = e->start;
        e->start = -1;
        if (log_start <= committed)
                return; /* a gap of compaction or transaction markers */
        int64_t lost =
            (log_start < e->first ? log_start : e->first) - committed;
        atomic_fetch_add(&b->metrics.events_lost_retention, (uint64_t)lost);
        lb_error("consumer",
                 "%s[%d]: %" PRId64 " event(s) lost to retention: the group "
                 "committed offset %" PRId64 " but the log now starts at "
                 "%" PRId64 "; they were deleted before being consumed "
                 "(raise the topic's retention or the bridge's capacity)",
                 topic, m->partition, lost, committed, log_start);
}

static void handle_message(lb_bridge_t *b, rd_kafka_message_t *m)
{
        const char *topic = rd_kafka_topic_name(m->rkt);
        lb_assigned_t *e = find_assigned(b, topic, m->partition);
        if (!e) {
                lb_warn("consumer", "message for unassigned %s[%d]; ignored",
                        topic, m->partition);
                return;
        }
        int tracked = lb_partition_track(e->p, m->offset);
        if (tracked < 0) {
                /* Never a skip: the offset stays uncommitted, and nothing
                 * after it is taken (the loop stops at a fatal error). */
                lb_error("consumer", "out of memory");
                b->fatal = 1;
                return;
        }
        if (tracked) {
                lb_warn("consumer",
                        "%s[%d]@%" PRId64 " is not after the last tracked "
                        "offset; ignored (already in progress)",
                        topic, m->partition, m->offset);
                return;
        }
        if (e->start >= 0)
                check_retention(b, e, topic, m);
        atomic_fetch_add(&b->metrics.events_consumed, 1);
        e->last_ts_ms = rd_kafka_message_timestamp(m, NULL);
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
        lb_action_t *a =
            lb_action_new(b->arena, m->key, m->key_len, m->payload, m->len);
        if (!a) {
                lb_error("consumer", "out of memory");
                b->fatal = 1;
                return;
        }
        rd_kafka_timestamp_type_t tstype;
        a->partition = e->p;
        lb_partition_ref(e->p);
        a->offset = m->offset;
        a->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
        /* Its own headers go into its dead letter. librdkafka hands an
         * empty list for a record without any: only a real one is kept,
         * taken from the message rather than copied. */
        rd_kafka_headers_t *hdrs;
        if (!rd_kafka_message_headers(m, &hdrs) && rd_kafka_header_cnt(hdrs) &&
            !rd_kafka_message_detach_headers(m, &hdrs) &&
            lb_action_take_headers(a, hdrs)) {
                rd_kafka_headers_destroy(hdrs);
                lb_error("consumer", "out of memory");
                b->fatal = 1; /* its dead letter could not carry them */
        }
        b->live_actions++;
        b->live_bytes += lb_action_footprint(a);
        a->arrival_ms = b->burst_now_ms;
        take_action(b, a);
}

/* What pending.max.bytes bounds: the actions alive, the batcher's records
 * of their users and the bodies of their requests. */
static size_t held_bytes(const lb_bridge_t *b)
{
        return b->live_bytes + lb_batcher_bytes(b->batcher) + b->body_bytes;
}

static int over_limit(const lb_bridge_t *b)
{
        return b->live_actions >= (size_t)b->conf->pending_max_actions ||
               held_bytes(b) >= (size_t)b->conf->pending_max_bytes;
}

static int consume(lb_bridge_t *b)
{
        int n = 0;
        rd_kafka_message_t *m;
        b->burst_now_ms = now_ms();
        b->burst_wall_ms = (int64_t)(wall_s() * 1000);
        /* Poll at least once per turn (it serves the rebalance, commit and
         * statistics callbacks, also while paused), but stop at the memory
         * bound rather than at the end of a burst: the input is paused right
         * after, and librdkafka resumes after the last message handed out. */
        while (n < LB_CONSUME_BURST && (m = lb_kafka_in_poll(b->in, 0))) {
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        lb_assigned_t *e = find_assigned(
                            b, rd_kafka_topic_name(m->rkt), m->partition);
                        if (e)
                                e->caught_up = 1;
                } else if (m->err) {
                        lb_warn("consumer", "%s", rd_kafka_message_errstr(m));
                } else if (b->state == LB_RUNNING && !b->fatal) {
                        /* Stopping, or after a fatal error: take nothing
                         * new (and, so nothing is skipped, nothing after
                         * it either). */
                        handle_message(b, m);
                }
                rd_kafka_message_destroy(m);
                n++;
                if (over_limit(b))
                        break;
        }
        return n;
}

static void backpressure(lb_bridge_t *b)
{
        const lb_config_t *c = b->conf;
        /* In an outage, consume only while nothing is left to probe with
         * (after a revocation gave everything up, say): outage mode ends
         * with a probe's success. */
        int outage = lb_outage_active(&b->outage) && b->live_actions > 0;
        int over = over_limit(b) || outage;
        int under = !outage &&
                    b->live_actions <= (size_t)c->pending_max_actions / 2 &&
                    held_bytes(b) <= (size_t)c->pending_max_bytes / 2;
        int paused = lb_kafka_in_paused(b->in);
        if (b->state != LB_RUNNING)
                return;
        if (!paused && over) {
                lb_info("consumer",
                        "pausing input: %s; %zu actions / %zu bytes pending",
                        outage ? "API outage" : "memory bound", b->live_actions,
                        held_bytes(b));
                lb_kafka_in_pause_all(b->in, 1);
        } else if (paused && under) {
                lb_info("consumer", "resuming input");
                lb_kafka_in_pause_all(b->in, 0);
        }
        atomic_store(&b->metrics.partitions_paused,
                     lb_kafka_in_paused(b->in) ? (int64_t)b->assigned_cnt : 0);
}

/* ---- requests ---- */

static void drop_abandoned(lb_action_t *a, void *opaque)
{
        action_finish(opaque, a, 0);
}

/* The ledger's tag of a partition: a revocation waits for the users whose
 * requests carried its actions. A collision only makes it wait longer. */
static uint64_t partition_tag(const char *topic, int32_t partition)
{
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const char *c = topic; *c; c++) {
                h ^= (unsigned char)*c;
                h *= 0x100000001b3ULL;
        }
        return h ^ ((uint64_t)(uint32_t)partition * 0x9e3779b97f4a7c15ULL);
}

static uint64_t action_tag(const lb_action_t *a)
{
        return partition_tag(lb_partition_topic(a->partition),
                             lb_partition_id(a->partition));
}

/* Puts the users of acts[lo..hi) (a user's actions are adjacent) in the
 * ledger as on the wire, and remembers them for the answer. */
static void wire_sent(lb_bridge_t *b, flight_t *f, size_t lo, size_t hi)
{
        lb_action_t **acts = f->batch->actions;
        uint64_t tags[hi - lo];
        f->wire_n = 0;
        for (size_t i = lo, j; i < hi; i = j) {
                lb_user_t *u = lb_batch_user(f->batch, i);
                size_t nt = 0, len;
                for (j = i; j < hi && lb_batch_user(f->batch, j) == u; j++) {
                        uint64_t t = action_tag(acts[j]);
                        size_t k = 0;
                        while (k < nt && tags[k] != t)
                                k++;
                        if (k == nt)
                                tags[nt++] = t;
                }
                const char *id = lb_batcher_user_id(u, &len);
                if (lb_ledger_sent(b->ledger, f->batch->app, id, len, tags,
                                   nt)) {
                        lb_error("sender", "out of memory");
                        b->fatal = 1;
                }
                f->wire[f->wire_n++] = u;
        }
}

/* The attempt on the wire ended: its users leave the ledger, or stay busy
 * until hold_until when its answer never came (0: it came). */
static void wire_answered(lb_bridge_t *b, flight_t *f, int64_t hold_until,
                          int64_t now)
{
        for (size_t i = 0; i < f->wire_n; i++) {
                size_t len;
                const char *id = lb_batcher_user_id(f->wire[i], &len);
                lb_ledger_answered(b->ledger, f->batch->app, id, len,
                                   hold_until, now);
        }
        f->wire_n = 0;
}

/* @returns until when the ledger holds a user of f's current range (a
 *          retry waits for it), or 0. */
static int64_t range_busy_until(const lb_bridge_t *b, const flight_t *f)
{
        size_t lo, hi, len;
        int64_t until = 0;
        lb_flight_range(&f->fl, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
                /* once per user: its actions are adjacent */
                if (!f->batch->actions[i] ||
                    (i > lo && f->batch->actions[i - 1] &&
                     f->batch->user_of[i - 1] == f->batch->user_of[i]))
                        continue;
                const char *id =
                    lb_batcher_user_id(lb_batch_user(f->batch, i), &len);
                int64_t t = lb_ledger_until(b->ledger, f->batch->app, id, len);
                if (t > until)
                        until = t;
        }
        return until;
}

/* Whether a request may go on the wire now: the adaptive limit, or in
 * outage mode one probe at a time, once its backoff is over. */
static int slot_free(const lb_bridge_t *b)
{
        if (lb_outage_active(&b->outage))
                return lb_sender_inflight(b->sender) == 0 &&
                       now_ms() >= b->probe_at;
        return lb_sender_inflight(b->sender) <
               (size_t)lb_concurrency_limit(&b->conc);
}

static void flight_send(lb_bridge_t *b, flight_t *f)
{
        size_t lo, hi;
        lb_flight_range(&f->fl, &lo, &hi);
        const lb_app_t *app = &b->conf->apps[f->batch->app];
        lb_buf_reset(&f->req.body);
        if (lb_multi_encode(&f->req.body, app->id, app->client_key,
                            b->conf->api_version, wall_s(),
                            f->batch->actions + lo, hi - lo) ||
            lb_sender_submit(b->sender, &f->req)) {
                lb_error("sender", "cannot start a request; retrying");
                lb_flight_retry_at(
                    &f->fl, now_ms() + b->conf->retry_backoff_initial_ms);
                return;
        }
        b->body_bytes += f->req.body.cap - f->body_counted;
        f->body_counted = f->req.body.cap;
        for (size_t i = lo; i < hi; i++)
                f->batch->actions[i]->attempts++;
        wire_sent(b, f, lo, hi);
        lb_flight_sent(&f->fl);
        atomic_fetch_add(&b->metrics.inflight_requests, 1);
}

static void flight_free(lb_bridge_t *b, flight_t *f)
{
        flight_t **pp = &b->flights;
        while (*pp != f)
                pp = &(*pp)->next;
        *pp = f->next;
        lb_flight_clear(&f->fl);
        free(f->wire);
        b->body_bytes -= f->body_counted;
        lb_buf_free(&f->req.body);
        lb_buf_free(&f->req.response);
        free(f);
}

/* Ends a flight: its users may be batched again once the ledger frees
 * them. */
static void flight_end(lb_bridge_t *b, flight_t *f)
{
        lb_batcher_release(b->batcher, f->batch, now_ms());
        flight_free(b, f);
}

/* Does what the flight needs now: send its current range (once the ledger
 * frees its users and a slot is free), or end. */
static void flight_step(lb_bridge_t *b, flight_t *f, int64_t now)
{
        int64_t busy;
        switch (lb_flight_next(&f->fl, now)) {
        case LB_FLIGHT_SEND:
                busy = range_busy_until(b, f);
                if (busy > now)
                        lb_flight_defer(&f->fl, busy);
                else if (slot_free(b))
                        flight_send(b, f);
                break;
        case LB_FLIGHT_END:
                flight_end(b, f);
                break;
        case LB_FLIGHT_WAIT:
                break;
        }
}

/* Ends a flight without an outcome (teardown): its unresolved actions are
 * freed unhandled (their offsets stay uncommitted; they will be redone). */
static void flight_abandon(lb_bridge_t *b, flight_t *f)
{
        lb_flight_abandon(&f->fl, drop_abandoned, b);
        flight_end(b, f);
}

static void start_batch(lb_bridge_t *b, lb_batch_t *batch)
{
        flight_t *f = calloc(1, sizeof(*f));
        if (f)
                f->wire = malloc(batch->n_users * sizeof(*f->wire));
        if (!f || !f->wire ||
            lb_flight_init(&f->fl, batch->actions, batch->user_of, batch->n)) {
                if (f)
                        free(f->wire);
                free(f);
                lb_error("sender", "out of memory");
                b->fatal = 1;
                for (size_t i = 0; i < batch->n; i++)
                        action_finish(b, batch->actions[i], 0);
                lb_batcher_release(b->batcher, batch, now_ms());
                return;
        }
        f->batch = batch;
        f->req.opaque = f;
        f->next = b->flights;
        b->flights = f;
        lb_hist_observe(&b->metrics.batch_actions, (double)batch->n);
        lb_hist_observe(&b->metrics.batch_users, (double)batch->n_users);
        int64_t now = now_ms();
        uint64_t early = 0;
        for (size_t i = 0; i < batch->n; i++) {
                const lb_action_t *a = batch->actions[i];
                lb_hist_observe(&b->metrics.action_wait,
                                (double)(now - a->arrival_ms) / 1000.0);
                early += a->due_ms > now;
        }
        if (batch->reason != LB_SEND_DUE)
                atomic_fetch_add(&b->metrics.sent_early[batch->reason], early);
        flight_step(b, f, now);
}

/* @returns the users of bt's actions lo..lo+n still in it (not NULL). */
static size_t distinct_users(const lb_batch_t *bt, size_t lo, size_t n)
{
        size_t d = 0, last = SIZE_MAX;
        for (size_t i = lo; i < lo + n; i++)
                if (bt->actions[i] && bt->user_of[i] != last) {
                        last = bt->user_of[i]; /* a user's are adjacent */
                        d++;
                }
        return d;
}

/* Resolves f's current range to its outcome, taking each action out of the
 * flight: delivered (results[i].ok), dead-lettered with results[i].stage
 * where the API did not apply it, or with stage when results is NULL. */
static void range_resolve(lb_bridge_t *b, flight_t *f,
                          const lb_action_result_t *results, lb_stage_t stage,
                          int http_status, const char *reason)
{
        size_t lo, hi;
        lb_flight_range(&f->fl, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
                lb_action_t *a = lb_flight_take(&f->fl, i);
                const lb_action_result_t *r = results ? &results[i - lo] : NULL;
                if (!a)
                        continue; /* given up while its request ran */
                if (r && r->warning)
                        atomic_fetch_add(&b->metrics.actions_warned, 1);
                if (r && r->ok) {
                        atomic_fetch_add(&b->metrics.actions_delivered, 1);
                        action_finish(b, a, 1);
                } else if (r) {
                        dead_letter(b, a, r->stage, http_status, r->message);
                } else {
                        dead_letter(b, a, stage, http_status, reason);
                }
        }
        lb_flight_resolved(&f->fl);
}

static double rand01(lb_bridge_t *b)
{
        return (double)rand_r(&b->rand_state) / ((double)RAND_MAX + 1);
}

/* The longest wait between two probes in outage mode. */
static int64_t probe_cap(const lb_bridge_t *b)
{
        return b->conf->retry_backoff_max_ms < LB_PROBE_MAX_MS
                   ? b->conf->retry_backoff_max_ms
                   : LB_PROBE_MAX_MS;
}

/* The answer's Retry-After as a retry's floor: honoured, but in outage mode
 * no more than the probes' cap (one probe at a time is all the API gets,
 * and input stays paused until one succeeds). */
static int64_t retry_after(const lb_bridge_t *b, const lb_request_t *req)
{
        if (lb_outage_active(&b->outage) && req->retry_after_ms > probe_cap(b))
                return probe_cap(b);
        return req->retry_after_ms;
}

/* Feeds a finished attempt to outage mode; in it, a failure sets when the
 * next probe may go (capped backoff, Retry-After within the cap). Entering
 * it, retries that wait longer than the cap (a long Retry-After before)
 * are brought forward. */
static void outage_observe(lb_bridge_t *b, const flight_t *f,
                           const lb_request_t *req, int failed)
{
        int64_t now = now_ms();
        if (lb_outage_observe(&b->outage, (uintptr_t)f, failed, now)) {
                int on = lb_outage_active(&b->outage);
                if (on) {
                        lb_warn("sender",
                                "API outage: every request failed for %d ms "
                                "or more; pausing input, probing one request "
                                "at a time, dead-lettering nothing for "
                                "retriable failures",
                                LB_OUTAGE_WINDOW_MS);
                        for (flight_t *g = b->flights; g; g = g->next)
                                lb_flight_hasten(&g->fl, now + probe_cap(b));
                } else {
                        lb_info("sender", "API answering again: outage over");
                }
                atomic_store(&b->metrics.api_outage, on);
        }
        if (!failed || !lb_outage_active(&b->outage))
                return;
        b->probe_at = now + lb_backoff_delay_ms(
                                lb_outage_probes(&b->outage),
                                b->conf->retry_backoff_initial_ms, probe_cap(b),
                                rand01(b), retry_after(b, req));
}

/* Feeds a finished attempt of f's actions lo..lo+n to the metrics (billing
 * included),
 * to outage mode and to the concurrency limit: not an attempt whose answer
 * never came (its hold takes no slot and does not shrink the others'
 * limit). */
static void observe_attempt(lb_bridge_t *b, const flight_t *f,
                            const lb_request_t *req, size_t lo, size_t n)
{
        atomic_fetch_sub(&b->metrics.inflight_requests, 1);
        lb_metrics_count_request(&b->metrics, req->http_status);
        lb_hist_observe(&b->metrics.request_duration, req->duration_s);
        atomic_store(&b->health.api_unreachable, req->http_status == 0);
        int overload = req->http_status == 0 || req->http_status == 429 ||
                       req->http_status >= 500;
        outage_observe(b, f, req, overload);
        if (!req->unknown)
                lb_concurrency_observe(&b->conc,
                                       overload ? LB_CONC_OVERLOAD : LB_CONC_OK,
                                       req->duration_s, now_ms());
        atomic_store(&b->metrics.concurrency_limit,
                     lb_concurrency_limit(&b->conc));
        if (req->http_status >= 200 && req->http_status < 300)
                atomic_fetch_add(&b->metrics.billable_lookups,
                                 n == f->batch->n
                                     ? f->batch->n_users
                                     : distinct_users(f->batch, lo, n));
}

/* A retryable failure: the current range is retried after a backoff, or
 * dead-lettered once its attempts are exhausted. In outage mode (entered or
 * kept by this very failure) the attempt does not count. */
static void flight_retry(lb_bridge_t *b, flight_t *f, const lb_request_t *req,
                         const char *reason)
{
        size_t lo, hi;
        lb_flight_range(&f->fl, &lo, &hi);
        int64_t max = b->conf->retry_max_attempts;
        if (lb_outage_active(&b->outage))
                lb_flight_uncount(&f->fl);
        else if (max >= 0 && f->fl.attempt >= max) {
                lb_warn("sender",
                        "%s; giving up after %d attempt(s), "
                        "dead-lettering %zu action(s)",
                        reason, f->fl.attempt, hi - lo);
                range_resolve(b, f, NULL, LB_STAGE_RETRIES_EXHAUSTED,
                              req->http_status, reason);
                return;
        }
        int64_t delay = lb_backoff_delay_ms(
            f->fl.attempt, b->conf->retry_backoff_initial_ms,
            b->conf->retry_backoff_max_ms, rand01(b), retry_after(b, req));
        atomic_fetch_add(&b->metrics.request_retries, 1);
        lb_info("sender", "%s; retry %d in %" PRId64 " ms", reason,
                f->fl.attempt, delay);
        lb_flight_retry_at(&f->fl, now_ms() + delay);
}

/* An attempt ended: classify the answer, resolve, split or retry the
 * current range, then go on with the flight. */
static void request_done(void *opaque, lb_request_t *req)
{
        lb_bridge_t *b = opaque;
        flight_t *f = req->opaque;
        size_t lo, hi;
        lb_flight_range(&f->fl, &lo, &hi);
        size_t n = hi - lo;
        char reason[512];
        lb_action_result_t results[n];
        int64_t now = now_ms();

        lb_flight_answered(&f->fl);
        wire_answered(
            b, f, req->unknown ? now + b->conf->api_timeout_hold_ms : 0, now);
        observe_attempt(b, f, req, lo, n);
        memset(results, 0, sizeof(results));
        lb_outcome_t out = lb_multi_classify(
            req->http_status, req->response.data, req->response.len, n,
            b->conf->api_accept_warnings ? LB_MULTI_ACCEPT_WARNINGS : 0,
            results, reason, sizeof(reason));
        lb_buf_free(&req->response); /* not kept across retries */
        if (req->http_status == 0 && req->error[0])
                snprintf(reason, sizeof(reason), "transport: %s", req->error);

        switch (out) {
        case LB_OUTCOME_DONE:
                range_resolve(b, f, results, LB_STAGE_API, req->http_status,
                              NULL);
                lb_multi_results_clear(results, n);
                break;
        case LB_OUTCOME_SPLIT:
                atomic_fetch_add(&b->metrics.request_splits, 1);
                lb_info("sender", "%s; splitting %zu actions", reason, n);
                if (lb_flight_split(&f->fl)) {
                        lb_error("sender", "out of memory");
                        b->fatal = 1;
                        return;
                }
                break;
        case LB_OUTCOME_DEAD:
                lb_warn("sender",
                        "request refused: %s; dead-lettering %zu action(s)",
                        reason, n);
                range_resolve(b, f, NULL, LB_STAGE_HTTP, req->http_status,
                              reason);
                break;
        case LB_OUTCOME_RETRY:
                flight_retry(b, f, req, reason);
                break;
        }
        flight_step(b, f, now_ms());
}

/* Flights whose wait is over: their next attempt, or their end. */
static void flights_due(lb_bridge_t *b, int64_t now)
{
        flight_t *next;
        for (flight_t *f = b->flights; f; f = next) {
                next = f->next;
                flight_step(b, f, now);
        }
}

/* Whether everything pending goes now, without waiting for its deadline,
 * and why: LB_SEND_DUE when not. */
static lb_send_reason_t flush_reason(const lb_bridge_t *b)
{
        if (!b->flushes)
                return LB_SEND_DUE;
        return b->state != LB_RUNNING ? LB_SEND_SHUTDOWN : LB_SEND_REVOCATION;
}

/* @returns how many queued actions to send early so that live work falls
 *          back to LB_EARLY_MARK_PCT of pending.max.* (0 below it), at
 *          least a full request's worth: early sends go out in full
 *          requests, not a user at a time as each new action crosses the
 *          mark. */
static size_t memory_excess(const lb_bridge_t *b)
{
        const lb_config_t *c = b->conf;
        size_t mark_n =
            (size_t)c->pending_max_actions * LB_EARLY_MARK_PCT / 100;
        size_t mark_b = (size_t)c->pending_max_bytes / 100 * LB_EARLY_MARK_PCT;
        size_t n = b->live_actions > mark_n ? b->live_actions - mark_n : 0;
        size_t queued = lb_batcher_pending(b->batcher);
        size_t held = held_bytes(b);
        if (held > mark_b && queued) {
                size_t per = lb_batcher_pending_bytes(b->batcher) / queued + 1;
                size_t by_bytes = (held - mark_b) / per + 1;
                if (by_bytes > n)
                        n = by_bytes;
        }
        if (n && n < (size_t)c->batch_max_actions)
                n = (size_t)c->batch_max_actions;
        return n;
}

/* Starts due retries first, then new batches, while the adaptive limit on
 * requests on the wire allows. */
static void dispatch(lb_bridge_t *b, int64_t now)
{
        lb_ledger_expire(b->ledger, now);
        flights_due(b, now);
        lb_send_reason_t flush = flush_reason(b);
        size_t early = memory_excess(b);
        while (slot_free(b)) {
                lb_batch_t *batch =
                    lb_batcher_next(b->batcher, now, flush, early);
                if (!batch)
                        break;
                early = early > batch->n ? early - batch->n : 0;
                start_batch(b, batch);
        }
        atomic_store(&b->metrics.pending_actions,
                     (int64_t)lb_batcher_pending(b->batcher));
        atomic_store(&b->metrics.held_bytes, (int64_t)held_bytes(b));
}

/* The earliest time something is due, capped at now + cap: a hold's end,
 * and while a slot is free, a deadline or a retry (with none free, an answer
 * frees one and wakes the loop). */
static int64_t next_due(lb_bridge_t *b, int64_t now, int64_t cap)
{
        int64_t t = now + cap;
        int64_t e = lb_ledger_next_expiry(b->ledger);
        if (e < t)
                t = e;
        if (lb_outage_active(&b->outage) && b->probe_at < t)
                t = b->probe_at;
        if (slot_free(b)) {
                int64_t d = lb_batcher_next_deadline(b->batcher);
                if (d < t)
                        t = d;
                for (flight_t *f = b->flights; f; f = f->next)
                        if (lb_flight_wake(&f->fl) < t)
                                t = lb_flight_wake(&f->fl);
        }
        if (b->dlq_retry_head && b->dlq_retry_at < t)
                t = b->dlq_retry_at;
        return t;
}

/* ---- rebalances ---- */

typedef int drain_pred_t(lb_bridge_t *b, const void *arg);
static void drain(lb_bridge_t *b, drain_pred_t *pred, const void *arg,
                  int64_t deadline, int flush);

static void on_assigned(void *opaque,
                        const rd_kafka_topic_partition_list_t *parts)
{
        lb_bridge_t *b = opaque;
        atomic_store(&b->health.joined, 1);
        for (int i = 0; i < parts->cnt; i++) {
                const char *t = parts->elems[i].topic;
                int32_t pid = parts->elems[i].partition;
                if (find_assigned(b, t, pid))
                        continue;
                if (b->assigned_cnt == b->assigned_cap) {
                        size_t cap = b->assigned_cap ? b->assigned_cap * 2 : 16;
                        lb_assigned_t *n =
                            realloc(b->assigned, cap * sizeof(*n));
                        if (!n) {
                                b->fatal = 1;
                                return;
                        }
                        b->assigned = n;
                        b->assigned_cap = cap;
                }
                lb_partition_t *p = lb_partition_new(t, pid);
                if (!p) {
                        b->fatal = 1;
                        return;
                }
                b->assigned[b->assigned_cnt++] = (lb_assigned_t){
                    .p = p, .committed = -1, .start = -1, .first = -1};
        }
        atomic_store(&b->metrics.partitions_assigned, (int64_t)b->assigned_cnt);
        if (parts->cnt)
                read_maps(b, parts);
}

static size_t live_in(lb_bridge_t *b,
                      const rd_kafka_topic_partition_list_t *parts)
{
        size_t live = 0;
        for (int i = 0; i < parts->cnt; i++) {
                lb_assigned_t *e = find_assigned(b, parts->elems[i].topic,
                                                 parts->elems[i].partition);
                live += e ? lb_partition_holders(e->p) : 0;
        }
        return live;
}

/* Whether actions of the revoked partitions are still under way (the done
 * fact: their offsets are not committed yet). */
static int revoked_live(lb_bridge_t *b, const void *parts)
{
        return live_in(b, parts) > 0;
}

/* The revoked partitions' ledger tags. */
typedef struct {
        const uint64_t *tags;
        size_t n;
} tagset_t;

static int tag_in(uint64_t tag, const void *arg)
{
        const tagset_t *set = arg;
        for (size_t i = 0; i < set->n; i++)
                if (set->tags[i] == tag)
                        return 1;
        return 0;
}

/* Whether the API may still be working on a user whose request carried
 * actions of the revoked partitions (the busy fact). */
static int revoked_busy(lb_bridge_t *b, const void *tagset)
{
        return lb_ledger_busy_tagged(b->ledger, now_ms(), tag_in, tagset);
}

static int partition_revoked(const lb_action_t *a)
{
        return lb_partition_revoked(a->partition);
}

/* now + span, but no later than the shutdown drain's deadline while
 * draining, and now once stopping: a revocation then waits for nothing. */
static int64_t revocation_deadline(const lb_bridge_t *b, int64_t span)
{
        int64_t now = now_ms(), deadline = now + span;
        if (b->state == LB_DRAINING && b->stop_deadline < deadline)
                deadline = b->stop_deadline;
        return b->state == LB_STOPPING ? now : deadline;
}

/* Drops the revoked partitions' queued actions (the next owner re-reads
 * them), commits their offsets and offset maps (not for lost ones: their
 * new owner may be ahead), and revokes their trackers. The commit is made
 * here, waiting, so that the next owner, which reads the group's offsets
 * as soon as it is assigned, starts where this one stopped. With the
 * cooperative protocol too: the consumer commits nothing by itself (its
 * offset store drops metadata), although librdkafka 2.0.2 can lose the
 * assignment when committing during a cooperative rebalance (#4908, fixed
 * in 2.10.0): the default protocol is eager. @returns how many queued
 * actions were dropped. */
static size_t release_partitions(lb_bridge_t *b,
                                 const rd_kafka_topic_partition_list_t *parts,
                                 int lost)
{
        size_t dropped = 0;
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(parts->cnt + 1);
        for (int i = 0; i < parts->cnt; i++) {
                lb_assigned_t *e = find_assigned(b, parts->elems[i].topic,
                                                 parts->elems[i].partition);
                if (!e)
                        continue;
                dropped +=
                    lb_batcher_abandon(b->batcher, e->p, drop_abandoned, b);
                if (!lost)
                        commit_add(b, e, l);
        }
        commit_list(b, l, 0);
        rd_kafka_topic_partition_list_destroy(l);
        for (int i = 0; i < parts->cnt; i++) {
                lb_assigned_t *e = find_assigned(b, parts->elems[i].topic,
                                                 parts->elems[i].partition);
                if (!e)
                        continue;
                size_t live = lb_partition_holders(e->p);
                if (live)
                        lb_info("consumer",
                                "%s[%d]: %zu action(s) still under way at "
                                "revocation; the next owner redoes them",
                                lb_partition_topic(e->p), lb_partition_id(e->p),
                                live);
                lb_partition_revoke(e->p);
                lb_partition_unref(e->p);
                *e = b->assigned[--b->assigned_cnt];
        }
        atomic_store(&b->metrics.partitions_assigned, (int64_t)b->assigned_cnt);
        return dropped;
}

/* While draining: the end of every wait for requests still at the API, so
 * the shutdown fits lb_config_exit_bound_ms(): the drain's deadline plus
 * api.timeout.ms + api.timeout.hold.ms. */
static int64_t exit_wait_deadline(const lb_bridge_t *b)
{
        return b->stop_deadline + b->conf->api_timeout_ms +
               b->conf->api_timeout_hold_ms;
}

/* Gives up the flights' actions that pred picks (never retried or
 * dead-lettered here; their offsets stay uncommitted). Their requests may
 * run on: the ledger keeps their users busy.
 * @returns how many were given up. */
static size_t give_up_flights(lb_bridge_t *b, int (*pred)(const lb_action_t *a))
{
        size_t dropped = 0;
        for (flight_t *f = b->flights; f; f = f->next)
                dropped += lb_flight_give_up(&f->fl, pred, drop_abandoned, b);
        return dropped;
}

/* Unless the partitions were lost (their new owner may be sending already)
 * or the bridge is stopping (after a fatal error, or at close once the
 * shutdown has waited), serves the loop until no user whose request carried
 * their actions is busy in the ledger, so the next owner's requests cannot
 * overlap them at the API: bounded by api.timeout.ms + api.timeout.hold.ms
 * (a request on the wire ends within the first, its hold within the
 * second). Not capped by a shutdown drain's deadline (leaving while a
 * request runs is what lets the next owner overlap it), but by the exit
 * bound's (exit_wait_deadline()). */
static void revoke_wait_api(lb_bridge_t *b, const tagset_t *tags, int lost)
{
        if (lost || b->state == LB_STOPPING)
                return;
        int64_t until =
            now_ms() + b->conf->api_timeout_ms + b->conf->api_timeout_hold_ms;
        if (b->state == LB_DRAINING && until > exit_wait_deadline(b))
                until = exit_wait_deadline(b);
        drain(b, revoked_busy, tags, until, 0);
}

/* Drops the actions held (queued, never sent) for the partitions of parts,
 * or of every assigned partition (parts NULL): the next owner reads them
 * again, with the same Kafka timestamps and so the same deadlines, and
 * looks each user up once, not once here and once there.
 * @returns how many were dropped. */
static size_t hand_over_held(lb_bridge_t *b,
                             const rd_kafka_topic_partition_list_t *parts)
{
        size_t dropped = 0;
        for (size_t i = 0; i < b->assigned_cnt; i++) {
                lb_partition_t *p = b->assigned[i].p;
                int in_parts = !parts;
                for (int k = 0; parts && k < parts->cnt && !in_parts; k++)
                        in_parts =
                            parts->elems[k].partition == lb_partition_id(p) &&
                            !strcmp(parts->elems[k].topic,
                                    lb_partition_topic(p));
                if (in_parts)
                        dropped += lb_batcher_abandon(b->batcher, p,
                                                      drop_abandoned, b);
        }
        return dropped;
}

/* Hands the revoked partitions over: their held actions stay unsent (or,
 * with handover.flush, are sent at once), the requests already on their
 * way are finished so their offsets are committed, with the offset map,
 * and the next owner skips them; for up to rebalance.timeout.ms, then what
 * is left is given up, and the bridge waits until the API is done with
 * their users (revoke_wait_api()). Lost partitions are not waited for.
 *
 * Why this still turns the loop inside librdkafka's rebalance callback:
 * librdkafka 2.0.2 would allow a revocation to be a state of the loop (the
 * application may call rd_kafka_assign() after the callback has returned,
 * within the session timeout: librdkafka issue 1323), but that change is
 * more than moving these waits. kafka_in must keep the revoked list and
 * answer it from the loop, tagged with the rebalance it belongs to, and
 * drop the answer when a newer rebalance came meanwhile (else a deferred
 * unassign throws a fresh assignment away: scality/backbeat PRs 2818 and
 * 2837); messages of the partitions being revoked, which
 * rd_kafka_consumer_poll() may still hand out, must be ignored; and
 * rd_kafka_consumer_close(), which runs the callback and waits for the
 * answer, needs it at once. Until then the waits run here, bounded as the
 * README says; the consumer polled from within this callback serves
 * messages, delivery reports and statistics. */
static void on_revoking(void *opaque,
                        const rd_kafka_topic_partition_list_t *parts, int lost)
{
        lb_bridge_t *b = opaque;
        uint64_t tags[parts->cnt > 0 ? parts->cnt : 1];
        tagset_t set = {tags, 0};
        for (int i = 0; i < parts->cnt; i++)
                tags[set.n++] = partition_tag(parts->elems[i].topic,
                                              parts->elems[i].partition);
        size_t held = b->conf->handover_flush ? 0 : hand_over_held(b, parts);
        if (!lost)
                drain(b, revoked_live, parts,
                      revocation_deadline(b, b->conf->rebalance_timeout_ms),
                      b->conf->handover_flush);
        size_t queued = release_partitions(b, parts, lost);
        size_t given_up = give_up_flights(b, partition_revoked);
        revoke_wait_api(b, &set, lost);
        if (held || queued || given_up)
                lb_info("consumer",
                        "revoked partitions: %zu held action(s) handed over "
                        "unsent, %zu queued and %zu in-flight given up; the "
                        "next owner reads them again",
                        held, queued, given_up);
}

static void on_stats(void *opaque, const char *json, size_t len)
{
        lb_bridge_t *b = opaque;
        lb_metrics_update_lag(&b->metrics, json, len);
}

/* ---- the loop ---- */

static void drain_wake(int fd)
{
        char buf[256];
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}

static void check_fatal(lb_bridge_t *b)
{
        char err[256];
        if (lb_dlq_fatal(b->dlq, err, sizeof(err))) {
                lb_error("dlq", "fatal producer error: %s", err);
                b->fatal = 1;
        } else if (lb_kafka_in_fatal(b->in, err, sizeof(err))) {
                lb_error("consumer", "fatal consumer error: %s", err);
                b->fatal = 1;
        }
}

/* One turn without consuming: send, receive, dead-letter, store. */
static void service(lb_bridge_t *b, int wait_ms)
{
        int64_t now = now_ms();
        lb_health_beat(&b->health);
        dispatch(b, now);
        lb_sender_perform(b->sender, request_done, b);
        lb_dlq_poll(b->dlq);
        dlq_retry_due(b, now);
        if (now >= b->next_commit_ms) {
                commit_all(b, 1);
                b->next_commit_ms = now + lb_kafka_in_commit_interval_ms(b->in);
        }
        if (wait_ms > 0) {
                int64_t due = next_due(b, now, wait_ms);
                int t = due > now ? (int)(due - now) : 0;
                lb_sender_wait(b->sender, b->wake_fd, t);
                drain_wake(b->wake_fd);
                lb_sender_perform(b->sender, request_done, b);
        }
        check_fatal(b);
}

/* The operator's once-a-minute line: rates since the last one, lag,
 * pending work, dead letters by now. */
static void summary(lb_bridge_t *b, int64_t now, int force)
{
        int64_t span = now - b->last_summary_ms;
        if (span < LB_SUMMARY_INTERVAL_MS && !force)
                return;
        if (span < 1)
                span = 1;
        b->last_summary_ms = now;
        uint64_t dead = 0;
        for (int s = 0; s < LB_STAGE__COUNT; s++)
                dead += atomic_load(&b->metrics.dead_lettered[s]);
        uint64_t consumed = atomic_load(&b->metrics.events_consumed);
        uint64_t delivered = atomic_load(&b->metrics.actions_delivered);
        double secs = span / 1000.0;
        lb_info("bridge",
                "consumed=%" PRIu64 " (%.0f/s) delivered=%" PRIu64
                " (%.0f/s) dead_lettered=%" PRIu64 " skipped=%" PRIuFAST64
                " lag=%" PRId64 " pending=%zu live=%zu inflight=%zu "
                "concurrency=%d paused=%d",
                consumed, (consumed - b->last_consumed) / secs, delivered,
                (delivered - b->last_delivered) / secs, dead,
                atomic_load(&b->metrics.events_skipped),
                lb_metrics_total_lag(&b->metrics),
                lb_batcher_pending(b->batcher), b->live_actions,
                lb_sender_inflight(b->sender), lb_concurrency_limit(&b->conc),
                lb_kafka_in_paused(b->in));
        b->last_consumed = consumed;
        b->last_delivered = delivered;
        uint64_t early = atomic_load(&b->metrics.sent_early[LB_SEND_MEMORY]);
        if (early > b->last_memory_early)
                lb_warn("batcher",
                        "%" PRIu64 " action(s) sent before their deadline to "
                        "stay under pending.max.actions / pending.max.bytes: "
                        "the input holds more than they allow for "
                        "batch.max.wait.ms (about rate x budget actions); "
                        "give the bridge more memory (memory.limit.bytes or "
                        "its container's limit) to keep the budget's savings",
                        early - b->last_memory_early);
        b->last_memory_early = early;
}

/* How far behind the newest events this member consumes: the age of the
 * last message taken from each partition that has not reached its end
 * since, at most over the partitions (0 when all are caught up). Unlike
 * lag, it does not grow with the wait budget: held actions were taken. */
static int64_t consume_delay_ms(const lb_bridge_t *b, int64_t wall_ms)
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

/* One turn of the loop: take messages (none unless running), then serve.
 * The consumer is polled even while draining: it serves the rebalance
 * callbacks, which may come in the middle of the drain. */
static void turn(lb_bridge_t *b, int wait_ms)
{
        int got = consume(b);
        atomic_store(&b->metrics.consume_delay_ms,
                     consume_delay_ms(b, (int64_t)(wall_s() * 1000)));
        backpressure(b);
        service(b, got >= LB_CONSUME_BURST ? 0 : wait_ms);
        summary(b, now_ms(), 0);
}

/* Serves the loop while pred holds, until deadline or a fatal error;
 * flush: sending pending work at once rather than at its deadline. */
static void drain(lb_bridge_t *b, drain_pred_t *pred, const void *arg,
                  int64_t deadline, int flush)
{
        b->flushes += flush;
        while (!b->fatal && pred(b, arg) && now_ms() < deadline)
                turn(b, 1000);
        b->flushes -= flush;
}

/* Whether the shutdown has work left: actions under way, or users the API
 * may still be working on. */
static int shutdown_left(lb_bridge_t *b, const void *arg)
{
        (void)arg;
        return b->live_actions > 0 || lb_ledger_busy(b->ledger, now_ms()) > 0;
}

static int api_busy(lb_bridge_t *b, const void *arg)
{
        (void)arg;
        return lb_ledger_busy(b->ledger, now_ms()) > 0;
}

/* Running -> draining: nothing new is taken; the held actions are handed
 * over unsent (or, with handover.flush, sent at once); what is on its way
 * is finished, until it is done and the API is done with every user, or
 * shutdown.timeout.ms has passed. */
static void shutdown_drain(lb_bridge_t *b)
{
        b->state = LB_DRAINING;
        atomic_store(&b->health.stopping, 1);
        b->stop_deadline = now_ms() + b->conf->shutdown_timeout_ms;
        lb_kafka_in_pause_all(b->in, 1);
        size_t held = b->conf->handover_flush ? 0 : hand_over_held(b, NULL);
        lb_info("bridge",
                "stopping: %zu held action(s) left for the next owner; "
                "draining %zu action(s) and %zu user(s) busy at the API for "
                "up to %" PRId64 " ms",
                held, b->live_actions, lb_ledger_busy(b->ledger, now_ms()),
                b->conf->shutdown_timeout_ms);
        drain(b, shutdown_left, NULL, b->stop_deadline,
              b->conf->handover_flush);
}

static int any_action(const lb_action_t *a)
{
        (void)a;
        return 1;
}

/* The shutdown drain ran out of time: the queued actions are dropped and
 * the flights' actions given up (their offsets stay uncommitted: the next
 * owner redoes them). */
static void shutdown_give_up(lb_bridge_t *b)
{
        lb_warn("bridge",
                "%zu action(s) not finished within shutdown.timeout.ms: "
                "given up, their offsets are not committed (they will be "
                "redone)",
                b->live_actions);
        for (size_t i = 0; i < b->assigned_cnt; i++)
                lb_batcher_abandon(b->batcher, b->assigned[i].p, drop_abandoned,
                                   b);
        give_up_flights(b, any_action);
}

/* Before leaving the group: waits, up to api.timeout.ms +
 * api.timeout.hold.ms after the drain (so the whole shutdown stays within
 * shutdown.timeout.ms + api.timeout.ms + api.timeout.hold.ms), until the
 * ledger holds no user, so the next owner's requests cannot overlap the
 * ones still running at the API (on the wire, or unanswered and held). */
static void shutdown_wait_api(lb_bridge_t *b)
{
        int64_t now = now_ms();
        size_t busy = lb_ledger_busy(b->ledger, now);
        if (!busy)
                return;
        lb_info("bridge",
                "waiting for %zu user(s) the API may still be working on",
                busy);
        drain(b, api_busy, NULL,
              now + b->conf->api_timeout_ms + b->conf->api_timeout_hold_ms, 0);
        busy = lb_ledger_busy(b->ledger, now_ms());
        if (busy)
                lb_warn("bridge",
                        "leaving with %zu user(s) the API may still be "
                        "working on",
                        busy);
}

/* ---- client keys ---- */

/* Whether two stats of the apps file are of the same file, unchanged. A
 * Kubernetes Secret volume swaps a symlink: a new inode. */
static int same_file(const struct stat *x, const struct stat *y)
{
        return x->st_dev == y->st_dev && x->st_ino == y->st_ino &&
               x->st_size == y->st_size &&
               x->st_mtim.tv_sec == y->st_mtim.tv_sec &&
               x->st_mtim.tv_nsec == y->st_mtim.tv_nsec;
}

/* Each app's request overhead, from its current key. */
static void app_overheads(lb_bridge_t *b)
{
        for (size_t i = 0; i < b->conf->app_cnt; i++) {
                b->app_overhead[i] = lb_multi_overhead(
                    b->conf->apps[i].id, b->conf->apps[i].client_key,
                    b->conf->api_version);
                if (b->batcher)
                        lb_batcher_set_overhead(b->batcher, i,
                                                b->app_overhead[i]);
        }
}

/* Takes the apps file's client keys: requests encoded from now on (retries
 * included) carry them; one on the wire keeps the key it was sent with. A
 * bad file changes nothing. */
static void reload_apps(lb_bridge_t *b, const char *cause)
{
        char why[512];
        int n = lb_config_reload_apps(b->conf, why, sizeof(why));
        if (n < 0) {
                atomic_fetch_add(&b->metrics.apps_reload_failures, 1);
                lb_warn("config",
                        "%s: the apps file was not reloaded, the "
                        "client keys stay as they were: %s",
                        cause, why);
                return;
        }
        app_overheads(b);
        atomic_fetch_add(&b->metrics.apps_reloads, 1);
        lb_info("config", "%s: apps file reloaded, %d client key(s) changed",
                cause, n);
}

/* SIGHUP, or the apps file changed since it was read. */
static void watch_apps(lb_bridge_t *b, volatile sig_atomic_t *reload)
{
        if (*reload) {
                *reload = 0;
                if (b->conf->apps_path)
                        stat(b->conf->apps_path, &b->apps_st);
                reload_apps(b, "SIGHUP");
                return;
        }
        int64_t now = now_ms();
        if (!b->conf->apps_path || now - b->apps_checked_ms < LB_APPS_WATCH_MS)
                return;
        b->apps_checked_ms = now;
        struct stat st;
        if (stat(b->conf->apps_path, &st) || same_file(&st, &b->apps_st))
                return;
        b->apps_st = st;
        reload_apps(b, "apps file changed");
}

int lb_bridge_run(lb_bridge_t *b, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *reload)
{
        b->last_summary_ms = now_ms();
        if (b->conf->apps_path)
                stat(b->conf->apps_path, &b->apps_st);
        b->apps_checked_ms = b->last_summary_ms;
        while (!b->fatal && !*stop) {
                turn(b, 1000);
                watch_apps(b, reload);
        }
        if (!b->fatal)
                shutdown_drain(b);
        if (!b->fatal && b->live_actions)
                shutdown_give_up(b);
        if (!b->fatal)
                shutdown_wait_api(b);
        /* Stopping: from here (and on a fatal error) a revocation at close
         * waits for nothing, and a failed dead-letter record is not
         * retried. */
        b->state = LB_STOPPING;
        if (b->live_actions)
                lb_warn("bridge",
                        "%zu action(s) not finished at shutdown; their "
                        "offsets are not committed (they will be redone)",
                        b->live_actions);
        commit_all(b, 0);
        summary(b, now_ms(), 1);
        return b->fatal ? 1 : 0;
}

lb_bridge_t *lb_bridge_new(lb_config_t *conf, int wake_fd, int wake_wfd,
                           char *errstr, size_t errstr_size)
{
        lb_bridge_t *b = calloc(1, sizeof(*b));
        if (!b) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        b->conf = conf;
        b->wake_fd = wake_fd;
        b->rand_state = (unsigned int)(now_ms() ^ getpid());
        lb_metrics_init(&b->metrics);
        if (!(b->ledger = lb_ledger_new()))
                goto oom;
        lb_outage_init(&b->outage, LB_OUTAGE_WINDOW_MS, LB_OUTAGE_MIN_FAILURES);
        lb_concurrency_init(&b->conc, (int)conf->sender_max_inflight,
                            1 + (int)conf->sender_max_inflight / 4);
        atomic_store(&b->metrics.concurrency_limit,
                     lb_concurrency_limit(&b->conc));
        atomic_store(&b->metrics.held_bytes_limit, conf->pending_max_bytes);
        lb_health_beat(&b->health);

        b->app_overhead = calloc(conf->app_cnt, sizeof(*b->app_overhead));
        if (!b->app_overhead)
                goto oom;
        app_overheads(b);
        lb_batcher_conf_t bc = {
            .app_cnt = conf->app_cnt,
            .app_overhead = b->app_overhead,
            .max_users = conf->batch_max_users,
            .max_actions = conf->batch_max_actions,
            .max_bytes = conf->batch_max_bytes,
            .linger_ms = conf->batch_linger_ms,
            .max_wait_ms = conf->batch_max_wait_ms,
            .ledger = b->ledger,
        };
        if (!(b->batcher = lb_batcher_new(&bc)))
                goto oom;
        if (!(b->arena = lb_arena_new()))
                goto oom;
        if (!(b->sender = lb_sender_new(conf, errstr, errstr_size)))
                goto fail;
        if (!(b->dlq = lb_dlq_new(conf, dlq_report, b, wake_wfd, errstr,
                                  errstr_size)))
                goto fail;
        if (*conf->metrics_listen &&
            !(b->admin =
                  lb_admin_start(conf->metrics_listen, &b->metrics, &b->health,
                                 LB_VERSION, errstr, errstr_size)))
                goto fail;
        lb_map_room_init(&b->map_room, conf->commit_metadata_max_bytes);
        atomic_store(&b->metrics.offset_map_room, b->map_room.room);
        b->ranges_cap = (size_t)b->map_room.max / 2 + 1;
        b->map = malloc((size_t)b->map_room.max + 1);
        b->ranges = malloc(b->ranges_cap * sizeof(*b->ranges));
        if (!b->map || !b->ranges)
                goto oom;
        b->map[0] = '\0';
        lb_kafka_in_cbs_t cbs = {.opaque = b,
                                 .assigned = on_assigned,
                                 .revoking = on_revoking,
                                 .stats = on_stats,
                                 .committed = on_committed};
        if (!(b->in =
                  lb_kafka_in_new(conf, &cbs, wake_wfd, errstr, errstr_size)))
                goto fail;
        return b;
oom:
        snprintf(errstr, errstr_size, "out of memory");
fail:
        lb_bridge_destroy(b);
        return NULL;
}

static void free_queued(lb_action_t *a)
{
        lb_partition_unref(a->partition);
        lb_action_destroy(a);
}

void lb_bridge_destroy(lb_bridge_t *b)
{
        if (!b)
                return;
        /* Leaving the group runs the revoke callback, which needs the
         * rest of the bridge: close the consumer first. */
        b->state = LB_STOPPING;
        lb_kafka_in_destroy(b->in);
        b->in = NULL;
        lb_admin_stop(b->admin);
        /* Requests still running are abandoned: not handled, not committed. */
        lb_sender_destroy(b->sender);
        while (b->flights)
                flight_abandon(b, b->flights);
        while (b->dlq_retry_head) {
                lb_action_t *a = b->dlq_retry_head;
                b->dlq_retry_head = a->next;
                free_queued(a);
        }
        /* Reports free their actions. */
        lb_dlq_destroy(b->dlq, LB_DLQ_CLOSE_FLUSH_MS);
        if (b->batcher)
                lb_batcher_destroy(b->batcher, free_queued);
        lb_ledger_destroy(b->ledger);
        lb_arena_destroy(b->arena); /* last: every action is freed by now */
        for (size_t i = 0; i < b->assigned_cnt; i++)
                lb_partition_unref(b->assigned[i].p);
        free(b->assigned);
        free(b->app_overhead);
        free(b->map);
        free(b->ranges);
        free(b);
}
