/*
 * bridge.c: the loop. Owns the assignment table, the requests in flight
 * (with their 403 split ranges and retry timers), the dead-letter retry
 * queue, backpressure and shutdown. The rule it enforces: a message's offset
 * counts as done only when its action was delivered, its dead-letter record
 * was acknowledged, or it was a tombstone; only the contiguous done prefix
 * of a partition is stored for commit.
 */
#include "bridge.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "backoff.h"
#include "batcher.h"
#include "concurrency.h"
#include "dlq.h"
#include "event.h"
#include "kafka_in.h"
#include "log.h"
#include "metrics.h"
#include "multi.h"
#include "offsets.h"
#include "sender.h"
#include "version.h"

/* Messages taken from the consumer per loop turn before serving the rest
 * (~1.5 ms of parsing: a finished request waits at most that long). */
#define LB_CONSUME_BURST 500
/* How often the summary line is logged. */
#define LB_SUMMARY_INTERVAL_MS 60000
/* Delay before re-producing a dead-letter record that failed. */
#define LB_DLQ_RETRY_MS 1000

/* One assigned partition. */
typedef struct {
        lb_partition_t *p;
        int64_t stored; /* last offset stored for commit, or -1 */
} lb_assigned_t;

/* A batch on its way: the ranges still to send (403 splits them), the
 * current attempt, and the HTTP exchange. Holds a sender slot from creation
 * to resolution, including backoff waits. Owns exactly the actions of its
 * unresolved ranges: a resolved action's slot in batch->actions is NULL
 * (it was freed or handed to the dead-letter producer). */
typedef struct lb_flight_s {
        struct lb_flight_s *next; /* in the bridge's flight list */
        lb_batch_t *batch;
        size_t *ranges; /* stack of (lo, hi) pairs; top is being sent */
        size_t range_cnt, range_cap;
        int attempt;    /* attempts of the current range */
        int64_t due_ms; /* waiting: when the next attempt goes out, or (no
                           range left: holding) when the batch ends */
        int64_t hold_until_ms; /* a timed-out attempt may still be running
                                  at the API: its users stay busy until then */
        int sending;           /* an HTTP exchange is running */
        int abandoned; /* actions were given up at the last revocation */
        lb_request_t req;
} lb_flight_t;

struct lb_bridge_s {
        const lb_config_t *conf;
        int wake_fd;
        lb_kafka_in_t *in;
        lb_dlq_t *dlq;
        lb_sender_t *sender;
        lb_batcher_t *batcher;
        lb_admin_t *admin;
        size_t *app_overhead;
        lb_metrics_t metrics;
        lb_health_t health;
        lb_concurrency_t conc; /* adaptive limit on flights */

        lb_assigned_t *assigned;
        size_t assigned_cnt, assigned_cap;

        lb_flight_t *flights; /* every unresolved batch */
        size_t flight_cnt;

        lb_action_t *dlq_retry_head, *dlq_retry_tail; /* to re-produce */
        int64_t dlq_retry_at;

        size_t live_actions; /* consumed and not yet freed */
        size_t live_bytes;
        int stopping;
        int64_t stop_deadline; /* stopping: when the drain gives up */
        int flushing;   /* a revocation is draining: send without waiting */
        int destroying; /* tearing down: failed records are not retried */
        int fatal;
        int64_t last_summary_ms;
        uint64_t last_consumed, last_delivered; /* at the last summary */
        unsigned int rand_state;
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

static void store_offset(lb_bridge_t *b, lb_assigned_t *e)
{
        int64_t off = lb_partition_committable(e->p);
        if (off < 0 || off <= e->stored)
                return;
        rd_kafka_resp_err_t err = lb_kafka_in_store(
            b->in, lb_partition_topic(e->p), lb_partition_id(e->p), off);
        if (err) {
                lb_warn("offsets", "store %s[%d]@%" PRId64 ": %s",
                        lb_partition_topic(e->p), lb_partition_id(e->p), off,
                        rd_kafka_err2str(err));
                return;
        }
        e->stored = off;
        atomic_fetch_add(&b->metrics.offsets_committed, 1);
}

static void store_all(lb_bridge_t *b)
{
        for (size_t i = 0; i < b->assigned_cnt; i++)
                store_offset(b, &b->assigned[i]);
}

/* ---- action lifetime ---- */

/* Frees an action; if handled, its offset counts as done. */
static void action_finish(lb_bridge_t *b, lb_action_t *a, int handled)
{
        lb_partition_t *p = a->partition;
        if (handled)
                lb_partition_done(p, a->offset);
        b->live_actions--;
        b->live_bytes -= a->key_len + a->value_len;
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
        if (b->destroying) {
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
        atomic_fetch_add(&b->metrics.events_consumed, 1);
        if (!m->payload) { /* tombstone */
                lb_partition_done(e->p, m->offset);
                atomic_fetch_add(&b->metrics.events_skipped, 1);
                return;
        }
        lb_action_t *a = lb_action_new(m->key, m->key_len, m->payload, m->len);
        if (!a) {
                lb_error("consumer", "out of memory");
                b->fatal = 1;
                return;
        }
        rd_kafka_timestamp_type_t tstype;
        a->partition = e->p;
        lb_partition_ref(e->p);
        b->live_actions++;
        b->live_bytes += a->key_len + a->value_len; /* both are copied */
        a->offset = m->offset;
        a->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
        a->arrival_ms = now_ms();

        lb_event_t ev;
        char reason[256];
        ev.app = -1;
        lb_stage_t stage =
            lb_event_parse(b->conf, b->app_overhead, a->value, a->value_len,
                           &ev, reason, sizeof(reason));
        a->app = ev.app;
        if (stage != LB_STAGE_NONE) {
                dead_letter(b, a, stage, 0, reason);
                return;
        }
        a->time_missing = (uint8_t)ev.time_missing;
        a->object_empty = (uint8_t)ev.object_empty;
        a->body_len = lb_event_body_len(a->value_len, ev.time_missing);
        if (a->time_missing && a->timestamp_ms <= 0)
                a->timestamp_ms = (int64_t)(wall_s() * 1000);
        int r = lb_batcher_add(b->batcher, a, ev.user, ev.user_len);
        if (r == -2) {
                dead_letter(b, a, LB_STAGE_VALIDATE, 0,
                            "event larger than batch.max.bytes");
        } else if (r) {
                lb_error("batcher", "out of memory");
                b->fatal = 1;
                action_finish(b, a, 0);
        }
}

static int over_limit(const lb_bridge_t *b)
{
        return b->live_actions >= (size_t)b->conf->pending_max_actions ||
               b->live_bytes >= (size_t)b->conf->pending_max_bytes;
}

static int consume(lb_bridge_t *b)
{
        int n = 0;
        rd_kafka_message_t *m;
        /* Poll at least once per turn (it serves the rebalance, commit and
         * statistics callbacks, also while paused), but stop at the memory
         * bound rather than at the end of a burst: the input is paused right
         * after, and librdkafka resumes after the last message handed out. */
        while (n < LB_CONSUME_BURST && (m = lb_kafka_in_poll(b->in, 0))) {
                if (m->err) {
                        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                lb_warn("consumer", "%s",
                                        rd_kafka_message_errstr(m));
                } else if (!b->stopping && !b->fatal) {
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
        int over = over_limit(b);
        int under = b->live_actions <= (size_t)c->pending_max_actions / 2 &&
                    b->live_bytes <= (size_t)c->pending_max_bytes / 2;
        int paused = lb_kafka_in_paused(b->in);
        if (b->stopping)
                return;
        if (!paused && over) {
                lb_info("consumer",
                        "pausing input: %zu actions / %zu bytes pending",
                        b->live_actions, b->live_bytes);
                lb_kafka_in_pause_all(b->in, 1);
        } else if (paused && under) {
                lb_info("consumer", "resuming input");
                lb_kafka_in_pause_all(b->in, 0);
        }
        atomic_store(&b->metrics.partitions_paused,
                     lb_kafka_in_paused(b->in) ? (int64_t)b->assigned_cnt : 0);
}

/* ---- requests ---- */

static void flight_send(lb_bridge_t *b, lb_flight_t *f)
{
        size_t lo = f->ranges[f->range_cnt - 2];
        size_t hi = f->ranges[f->range_cnt - 1];
        const lb_app_t *app = &b->conf->apps[f->batch->app];
        lb_buf_reset(&f->req.body);
        if (lb_multi_encode(&f->req.body, app->id, app->client_key,
                            b->conf->api_version, wall_s(),
                            f->batch->actions + lo, hi - lo) ||
            lb_sender_submit(b->sender, &f->req)) {
                lb_error("sender", "cannot start a request; retrying");
                f->due_ms = now_ms() + b->conf->retry_backoff_initial_ms;
                return;
        }
        for (size_t i = lo; i < hi; i++)
                f->batch->actions[i]->attempts++;
        f->attempt++;
        f->sending = 1;
        f->due_ms = 0;
        atomic_fetch_add(&b->metrics.inflight_requests, 1);
}

static int push_range(lb_flight_t *f, size_t lo, size_t hi)
{
        if (f->range_cnt + 2 > f->range_cap) {
                size_t cap = f->range_cap ? f->range_cap * 2 : 8;
                size_t *r = realloc(f->ranges, cap * sizeof(*r));
                if (!r)
                        return -1;
                f->ranges = r;
                f->range_cap = cap;
        }
        f->ranges[f->range_cnt++] = lo;
        f->ranges[f->range_cnt++] = hi;
        return 0;
}

static void flight_free(lb_bridge_t *b, lb_flight_t *f)
{
        lb_flight_t **pp = &b->flights;
        while (*pp != f)
                pp = &(*pp)->next;
        *pp = f->next;
        b->flight_cnt--;
        lb_buf_free(&f->req.body);
        lb_buf_free(&f->req.response);
        free(f->ranges);
        free(f);
}

static void start_batch(lb_bridge_t *b, lb_batch_t *batch)
{
        lb_flight_t *f = calloc(1, sizeof(*f));
        if (!f || push_range(f, 0, batch->n)) {
                free(f);
                lb_error("sender", "out of memory");
                b->fatal = 1;
                for (size_t i = 0; i < batch->n; i++)
                        action_finish(b, batch->actions[i], 0);
                lb_batcher_release(b->batcher, batch);
                return;
        }
        f->batch = batch;
        f->req.opaque = f;
        f->next = b->flights;
        b->flights = f;
        b->flight_cnt++;
        lb_hist_observe(&b->metrics.batch_actions, (double)batch->n);
        lb_hist_observe(&b->metrics.batch_users, (double)batch->n_users);
        flight_send(b, f);
}

/* Ends a resolved flight: its users may be batched again. */
static void flight_end(lb_bridge_t *b, lb_flight_t *f)
{
        lb_batcher_release(b->batcher, f->batch);
        flight_free(b, f);
}

/* Goes on with the top range, or ends the flight, once no attempt of it
 * may still be running at the API; until then the flight waits. */
static void flight_continue(lb_bridge_t *b, lb_flight_t *f)
{
        if (now_ms() < f->hold_until_ms)
                f->due_ms = f->hold_until_ms;
        else if (f->range_cnt)
                flight_send(b, f);
        else
                flight_end(b, f);
}

/* The current range is resolved: go on with the next, or end the batch. */
static void flight_next_range(lb_bridge_t *b, lb_flight_t *f)
{
        f->range_cnt -= 2;
        f->attempt = 0;
        flight_continue(b, f);
}

/* Ends a flight without an outcome: its unresolved actions are freed
 * unhandled (their offsets stay uncommitted; they will be redone). */
static void flight_abandon(lb_bridge_t *b, lb_flight_t *f)
{
        for (size_t i = 0; i < f->batch->n; i++)
                if (f->batch->actions[i])
                        action_finish(b, f->batch->actions[i], 0);
        lb_batcher_release(b->batcher, f->batch);
        flight_free(b, f);
}

/* Closes the gaps that given-up actions left in f's ranges (keeping the
 * order) and removes emptied ranges; the range of a running request is
 * left as sent, its answer is still to be matched by position. */
static void flight_compact(lb_flight_t *f)
{
        lb_action_t **acts = f->batch->actions;
        size_t w = 0;
        for (size_t r = 0; r < f->range_cnt; r += 2) {
                size_t lo = f->ranges[r], hi = f->ranges[r + 1];
                if (!(f->sending && r + 2 == f->range_cnt)) {
                        size_t k = lo;
                        for (size_t i = lo; i < hi; i++)
                                if (acts[i])
                                        acts[k++] = acts[i];
                        for (size_t i = k; i < hi; i++)
                                acts[i] = NULL;
                        hi = k;
                        if (hi == lo)
                                continue;
                }
                f->ranges[w++] = lo;
                f->ranges[w++] = hi;
        }
        f->range_cnt = w;
}

/* Gives up f's actions of revoked partitions: freed unhandled, never
 * retried or dead-lettered (the next owner redoes them). The flight goes
 * on with the rest; its users stay busy while its request runs.
 * @returns how many were given up. */
static size_t flight_drop_revoked(lb_bridge_t *b, lb_flight_t *f)
{
        size_t dropped = 0;
        size_t top = f->range_cnt ? f->ranges[f->range_cnt - 2] : 0;
        for (size_t i = 0; i < f->batch->n; i++) {
                lb_action_t *a = f->batch->actions[i];
                if (a && lb_partition_revoked(a->partition)) {
                        f->batch->actions[i] = NULL;
                        action_finish(b, a, 0);
                        dropped++;
                }
        }
        if (!dropped)
                return 0;
        flight_compact(f);
        if (!f->sending) {
                if (!f->range_cnt || f->ranges[f->range_cnt - 2] != top)
                        f->attempt = 0; /* its current range is gone */
                if (!f->range_cnt)
                        f->due_ms = now_ms(); /* ends (after any hold) */
        }
        return dropped;
}

static size_t distinct_users(lb_action_t *const *a, size_t n)
{
        size_t d = 0;
        for (size_t i = 0; i < n; i++) {
                size_t j = 0;
                if (!a[i])
                        continue;
                while (j < i && (!a[j] || a[j]->user != a[i]->user))
                        j++;
                d += j == i;
        }
        return d;
}

/* Resolves actions[lo, hi) of f: each is taken out of the flight, then
 * delivered (results[i].ok) or dead-lettered, with stage, or with
 * LB_STAGE_API where results say it failed. results may be NULL. */
static void range_resolve(lb_bridge_t *b, lb_flight_t *f, size_t lo, size_t hi,
                          const lb_action_result_t *results, lb_stage_t stage,
                          int http_status, const char *reason)
{
        for (size_t i = lo; i < hi; i++) {
                lb_action_t *a = f->batch->actions[i];
                const lb_action_result_t *r = results ? &results[i - lo] : NULL;
                if (!a)
                        continue; /* given up while its request ran */
                f->batch->actions[i] = NULL;
                if (r && r->ok) {
                        atomic_fetch_add(&b->metrics.actions_delivered, 1);
                        if (r->warning)
                                atomic_fetch_add(&b->metrics.actions_warned, 1);
                        action_finish(b, a, 1);
                } else if (r) {
                        dead_letter(b, a, LB_STAGE_API, http_status,
                                    r->message);
                } else {
                        dead_letter(b, a, stage, http_status, reason);
                }
        }
}

static void request_done(void *opaque, lb_request_t *req)
{
        lb_bridge_t *b = opaque;
        lb_flight_t *f = req->opaque;
        size_t lo = f->ranges[f->range_cnt - 2];
        size_t hi = f->ranges[f->range_cnt - 1];
        size_t n = hi - lo;
        lb_action_t **acts = f->batch->actions + lo;
        char reason[512];
        lb_action_result_t results[n];

        f->sending = 0;
        if (req->timed_out)
                f->hold_until_ms = now_ms() + b->conf->api_timeout_hold_ms;
        atomic_fetch_sub(&b->metrics.inflight_requests, 1);
        lb_metrics_count_request(&b->metrics, req->http_status);
        lb_hist_observe(&b->metrics.request_duration, req->duration_s);
        atomic_store(&b->health.api_ok, req->http_status != 0);
        int overload = req->http_status == 0 || req->http_status == 429 ||
                       req->http_status >= 500;
        lb_concurrency_observe(&b->conc,
                               overload ? LB_CONC_OVERLOAD : LB_CONC_OK,
                               req->duration_s, now_ms());
        atomic_store(&b->metrics.concurrency_limit,
                     lb_concurrency_limit(&b->conc));
        if (req->http_status >= 200 && req->http_status < 300)
                atomic_fetch_add(&b->metrics.billable_lookups,
                                 n == f->batch->n ? f->batch->n_users
                                                  : distinct_users(acts, n));

        memset(results, 0, sizeof(results));
        lb_outcome_t out = lb_multi_classify(
            req->http_status, req->response.data, req->response.len, n, results,
            reason, sizeof(reason));
        lb_buf_free(&req->response); /* not kept across retries */
        if (req->http_status == 0 && req->error[0])
                snprintf(reason, sizeof(reason), "transport: %s", req->error);
        if (out != LB_OUTCOME_DONE) {
                /* Only the actions still ours go on. */
                size_t cnt = f->range_cnt;
                flight_compact(f);
                if (f->range_cnt < cnt) {
                        f->attempt = 0;
                        flight_continue(b, f);
                        return;
                }
                hi = f->ranges[f->range_cnt - 1];
                n = hi - lo;
                if (out == LB_OUTCOME_SPLIT && n == 1) {
                        flight_continue(b, f);
                        return;
                }
        }

        switch (out) {
        case LB_OUTCOME_DONE:
                range_resolve(b, f, lo, hi, results, LB_STAGE_API,
                              req->http_status, NULL);
                lb_multi_results_clear(results, n);
                flight_next_range(b, f);
                return;
        case LB_OUTCOME_SPLIT: {
                atomic_fetch_add(&b->metrics.request_splits, 1);
                lb_info("sender", "%s; splitting %zu actions", reason, n);
                size_t mid = lo + n / 2;
                f->range_cnt -= 2;
                f->attempt = 0;
                /* Second half below the first: halves go in order. */
                if (push_range(f, mid, hi) || push_range(f, lo, mid)) {
                        b->fatal = 1;
                        return;
                }
                flight_continue(b, f);
                return;
        }
        case LB_OUTCOME_DEAD:
                lb_warn("sender",
                        "request refused: %s; dead-lettering %zu "
                        "action(s)",
                        reason, n);
                range_resolve(b, f, lo, hi, NULL, LB_STAGE_HTTP,
                              req->http_status, reason);
                flight_next_range(b, f);
                return;
        case LB_OUTCOME_RETRY:
                break;
        }
        int64_t max = b->conf->retry_max_attempts;
        if (max >= 0 && f->attempt >= max) {
                lb_warn("sender",
                        "%s; giving up after %d attempt(s), "
                        "dead-lettering %zu action(s)",
                        reason, f->attempt, n);
                range_resolve(b, f, lo, hi, NULL, LB_STAGE_RETRIES_EXHAUSTED,
                              req->http_status, reason);
                flight_next_range(b, f);
                return;
        }
        double rnd = (double)rand_r(&b->rand_state) / ((double)RAND_MAX + 1);
        int64_t delay = lb_backoff_delay_ms(
            f->attempt, b->conf->retry_backoff_initial_ms,
            b->conf->retry_backoff_max_ms, rnd, req->retry_after_ms);
        atomic_fetch_add(&b->metrics.request_retries, 1);
        lb_info("sender", "%s; retry %d in %" PRId64 " ms", reason, f->attempt,
                delay);
        f->due_ms = now_ms() + delay;
        if (f->due_ms < f->hold_until_ms)
                f->due_ms = f->hold_until_ms;
}

/* Flights whose wait is over: the next attempt, or the end of a hold. */
static void flights_due(lb_bridge_t *b, int64_t now)
{
        lb_flight_t *next;
        for (lb_flight_t *f = b->flights; f; f = next) {
                next = f->next;
                if (!f->sending && f->due_ms && f->due_ms <= now)
                        flight_continue(b, f);
        }
}

/* Starts due retries, then new batches while the adaptive limit allows
 * (a flight waiting to retry holds its slot: during an outage the bridge
 * does not open new requests). */
static void dispatch(lb_bridge_t *b, int64_t now)
{
        flights_due(b, now);
        while (b->flight_cnt < (size_t)lb_concurrency_limit(&b->conc)) {
                lb_batch_t *batch = lb_batcher_next(b->batcher, now,
                                                    b->stopping || b->flushing);
                if (!batch)
                        break;
                start_batch(b, batch);
        }
        atomic_store(&b->metrics.pending_actions,
                     (int64_t)lb_batcher_pending(b->batcher));
}

/* The earliest time something is due, capped at now + cap. */
static int64_t next_due(lb_bridge_t *b, int64_t now, int64_t cap)
{
        int64_t t = now + cap;
        if (b->flight_cnt < (size_t)lb_concurrency_limit(&b->conc)) {
                int64_t d = lb_batcher_next_deadline(b->batcher);
                if (d < t)
                        t = d;
        }
        for (lb_flight_t *f = b->flights; f; f = f->next)
                if (!f->sending && f->due_ms && f->due_ms < t)
                        t = f->due_ms;
        if (b->dlq_retry_head && b->dlq_retry_at < t)
                t = b->dlq_retry_at;
        return t;
}

/* ---- rebalances ---- */

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
                b->assigned[b->assigned_cnt++] =
                    (lb_assigned_t){.p = p, .stored = -1};
        }
        atomic_store(&b->metrics.partitions_assigned, (int64_t)b->assigned_cnt);
}

static void drop_abandoned(lb_action_t *a, void *opaque)
{
        action_finish(opaque, a, 0);
}

static void service(lb_bridge_t *b, int wait_ms);

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

/* Whether a request that carried given-up actions may still be running at
 * the API (sending, or timed out and within its hold). */
static int abandoned_running(lb_bridge_t *b)
{
        int64_t now = now_ms();
        for (lb_flight_t *f = b->flights; f; f = f->next)
                if (f->abandoned && (f->sending || now < f->hold_until_ms))
                        return 1;
        return 0;
}

/* Gives up the flights' actions of revoked partitions. Unless the
 * partitions were lost (their new owner may be sending already), waits
 * until the requests that carried them have ended, so the next owner's
 * requests for those users cannot overlap them at the API: bounded by
 * api.timeout.ms plus api.timeout.hold.ms, and while stopping by the
 * shutdown drain's deadline. */
static size_t abandon_revoked(lb_bridge_t *b, int lost)
{
        size_t dropped = 0;
        for (lb_flight_t *f = b->flights; f; f = f->next) {
                size_t n = flight_drop_revoked(b, f);
                f->abandoned = n > 0;
                dropped += n;
        }
        int64_t deadline =
            now_ms() + b->conf->api_timeout_ms + b->conf->api_timeout_hold_ms;
        if (b->stopping && b->stop_deadline < deadline)
                deadline = b->stop_deadline;
        while (!lost && !b->fatal && abandoned_running(b) &&
               now_ms() < deadline)
                service(b, 10);
        return dropped;
}

static void on_revoking(void *opaque,
                        const rd_kafka_topic_partition_list_t *parts, int lost)
{
        lb_bridge_t *b = opaque;
        size_t abandoned = 0;
        /* Finish the revoked partitions' work (queued actions are sent now,
         * without waiting for company) so their offsets are committed here
         * and the next owner starts where this one stopped. Bounded by
         * rebalance.timeout.ms, and while stopping by the shutdown drain's
         * deadline (a rebalance may come in the middle of that drain; the
         * one at close comes after it); lost partitions are not waited for. */
        int64_t deadline = now_ms() + b->conf->rebalance_timeout_ms;
        if (b->stopping && b->stop_deadline < deadline)
                deadline = b->stop_deadline;
        b->flushing = 1;
        while (!lost && !b->fatal && live_in(b, parts) && now_ms() < deadline)
                service(b, 10);
        b->flushing = 0;
        for (int i = 0; i < parts->cnt; i++) {
                lb_assigned_t *e = find_assigned(b, parts->elems[i].topic,
                                                 parts->elems[i].partition);
                if (!e)
                        continue;
                abandoned +=
                    lb_batcher_abandon(b->batcher, e->p, drop_abandoned, b);
                if (!lost)
                        store_offset(b, e);
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
        size_t given_up = abandon_revoked(b, lost);
        /* Commit now rather than trusting the commit librdkafka makes as it
         * unassigns: the next owner may fetch the group's offsets before
         * that one lands, and redo work that was done. Not with the
         * cooperative protocol: librdkafka 2.0.2 can lose the assignment
         * when committing during a cooperative rebalance (fixed in 2.10.0,
         * #4908); its commit at unassign is used there. */
        if (!lost && !lb_kafka_in_cooperative(b->in)) {
                rd_kafka_resp_err_t err = lb_kafka_in_commit(b->in);
                if (err)
                        lb_warn("offsets", "commit at revocation: %s",
                                rd_kafka_err2str(err));
        }
        if (abandoned || given_up)
                lb_info("consumer",
                        "%zu queued and %zu in-flight action(s) of revoked "
                        "partitions left for the next owner",
                        abandoned, given_up);
        atomic_store(&b->metrics.partitions_assigned, (int64_t)b->assigned_cnt);
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

/* One turn without consuming: send, receive, dead-letter, store. */
static void service(lb_bridge_t *b, int wait_ms)
{
        int64_t now = now_ms();
        dispatch(b, now);
        lb_sender_perform(b->sender, request_done, b);
        lb_dlq_poll(b->dlq);
        dlq_retry_due(b, now);
        store_all(b);
        if (wait_ms > 0) {
                int64_t due = next_due(b, now, wait_ms);
                int t = due > now ? (int)(due - now) : 0;
                lb_sender_wait(b->sender, b->wake_fd, t);
                drain_wake(b->wake_fd);
                lb_sender_perform(b->sender, request_done, b);
        }
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
}

int lb_bridge_run(lb_bridge_t *b, volatile sig_atomic_t *stop)
{
        b->last_summary_ms = now_ms();
        while (!b->fatal) {
                int64_t now = now_ms();
                lb_health_beat(&b->health);
                if (*stop && !b->stopping) {
                        b->stopping = 1;
                        atomic_store(&b->health.stopping, 1);
                        b->stop_deadline = now + b->conf->shutdown_timeout_ms;
                        lb_kafka_in_pause_all(b->in, 1);
                        lb_info("bridge",
                                "stopping: draining %zu action(s) for up to "
                                "%" PRId64 " ms",
                                b->live_actions, b->conf->shutdown_timeout_ms);
                }
                if (b->stopping &&
                    (!b->live_actions || now >= b->stop_deadline))
                        break;
                int got = consume(b);
                backpressure(b);
                service(b, got >= LB_CONSUME_BURST ? 0 : 1000);
                summary(b, now, 0);
                char err[256];
                if (lb_dlq_fatal(b->dlq, err, sizeof(err))) {
                        lb_error("dlq", "fatal producer error: %s", err);
                        b->fatal = 1;
                } else if (lb_kafka_in_fatal(b->in, err, sizeof(err))) {
                        lb_error("consumer", "fatal consumer error: %s", err);
                        b->fatal = 1;
                }
        }
        if (b->live_actions)
                lb_warn("bridge",
                        "%zu action(s) not finished at shutdown; their "
                        "offsets are not committed (they will be redone)",
                        b->live_actions);
        store_all(b);
        rd_kafka_resp_err_t err = lb_kafka_in_commit(b->in);
        if (err)
                lb_warn("offsets", "final commit: %s", rd_kafka_err2str(err));
        /* From here (and on a fatal error) a revocation at close waits for
         * nothing: the drain is over or was not wanted. */
        b->stopping = 1;
        b->stop_deadline = 0;
        summary(b, now_ms(), 1);
        return b->fatal ? 1 : 0;
}

lb_bridge_t *lb_bridge_new(const lb_config_t *conf, int wake_fd, int wake_wfd,
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
        lb_concurrency_init(&b->conc, (int)conf->sender_max_inflight,
                            1 + (int)conf->sender_max_inflight / 4);
        atomic_store(&b->metrics.concurrency_limit,
                     lb_concurrency_limit(&b->conc));
        lb_health_beat(&b->health);

        b->app_overhead = calloc(conf->app_cnt, sizeof(*b->app_overhead));
        if (!b->app_overhead)
                goto oom;
        for (size_t i = 0; i < conf->app_cnt; i++)
                b->app_overhead[i] = lb_multi_overhead(conf->apps[i].id,
                                                       conf->apps[i].client_key,
                                                       conf->api_version);
        lb_batcher_conf_t bc = {
            .app_cnt = conf->app_cnt,
            .app_overhead = b->app_overhead,
            .max_users = conf->batch_max_users,
            .max_actions = conf->batch_max_actions,
            .max_bytes = conf->batch_max_bytes,
            .linger_ms = conf->batch_linger_ms,
            .max_wait_ms = conf->batch_max_wait_ms,
        };
        if (!(b->batcher = lb_batcher_new(&bc)))
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
        lb_kafka_in_cbs_t cbs = {.opaque = b,
                                 .assigned = on_assigned,
                                 .revoking = on_revoking,
                                 .stats = on_stats};
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
        b->destroying = 1;
        lb_dlq_destroy(b->dlq, 5000); /* reports free their actions */
        if (b->batcher)
                lb_batcher_destroy(b->batcher, free_queued);
        for (size_t i = 0; i < b->assigned_cnt; i++)
                lb_partition_unref(b->assigned[i].p);
        free(b->assigned);
        free(b->app_overhead);
        free(b);
}
