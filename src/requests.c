/*
 * requests.c: the loop's second stage, the flights (batches on their way;
 * their ranges, attempts and holds are flight.c's). Takes due users from
 * the batcher while a sender slot is free, encodes and sends each range,
 * classifies the answer (delivered, dead-lettered, split, retried) and
 * feeds outage mode and the adaptive concurrency limit.
 *
 * Who the API is busy with is the ledger's (ledger.h), not the flights':
 * every request on the wire, and for api.timeout.hold.ms every request
 * whose answer never came, keeps its users busy there, whatever happened
 * to its actions. The batcher's busy gate, a retry, a revocation and the
 * shutdown ask the ledger whether a user may be sent or handed over. A
 * sender slot (the adaptive limit) is taken only by a request on the wire:
 * a flight waiting for its backoff or for the ledger takes none, so one
 * app's failures never hold back another app's due users.
 *
 * Outage mode (outage.h): when retriable failures hit every request for a
 * while, the input is paused, one request at a time goes out as a probe
 * after a capped backoff, and retriable failures neither count as attempts
 * nor dead-letter; the first success ends it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "hash.h"
#include "log.h"
#include "loop.h"

/* Above this share of pending.max.* (in percent), the nearest deadlines
 * are sent early, so the input pauses only when the API has no room. */
#define LB_EARLY_MARK_PCT 75
/* The longest wait between two probes in outage mode (and
 * retry.backoff.max.ms if lower): the bridge is back at full speed within
 * about this long of the API's recovery. */
#define LB_PROBE_MAX_MS 5000
/* Deadlines are whole milliseconds of a clock read in whole milliseconds,
 * counted from Kafka timestamps in whole milliseconds: a user whose
 * deadline is the next millisecond goes now, or its request would reach
 * the API up to a millisecond past its budget. */
#define LB_DUE_AHEAD_MS 1
/* A refused client key reads the apps file again at most this often (a
 * wrong key is refused for every request). */
#define LB_KEY_REREAD_MS 1000
/* Answers too large to read are warned about at most this often. */
#define LB_ANSWER_CUT_WARN_MS 10000

/* A batch on its way (see flight.h for its states). Keeps its users in the
 * batcher's busy gate from its creation to its end (the ordering gate); the
 * ledger keeps them busy at the API. */
struct flight_s {
        struct flight_s *next; /* in the bridge's flight list */
        lb_batch_t *batch;
        lb_flight_t fl;   /* owns the unresolved slots of batch->actions */
        lb_user_t **wire; /* the users of the attempt on the wire */
        size_t wire_n;
        lb_request_t req;
        lb_multi_body_t body; /* req's, written as it is sent */
        size_t body_counted;  /* its room, in the bridge's body_bytes */
        unsigned key_gen;     /* of the client key its last attempt carried */
        size_t cap_held;      /* the cap it holds its app at (0: none) */
};

uint64_t lb_requests_partition_tag(const char *topic, int32_t partition)
{
        /* a collision only makes a revocation wait longer */
        return lb_fnv1a(LB_FNV1A_SEED, topic, strlen(topic)) ^
               ((uint64_t)(uint32_t)partition * 0x9e3779b97f4a7c15ULL);
}

/* Puts the users of acts[lo..hi) (a user's actions are adjacent) in the
 * ledger as on the wire, and remembers them for the answer. An action's
 * tag is its partition's: hashed once for a run of actions of one
 * partition (a user's usually are, and a topic name is hashed bytewise). */
static void wire_sent(lb_bridge_t *b, flight_t *f, size_t lo, size_t hi)
{
        lb_action_t **acts = f->batch->actions;
        uint64_t tags[hi - lo];
        const lb_partition_t *last = NULL;
        uint64_t t = 0;
        f->wire_n = 0;
        for (size_t i = lo, j; i < hi; i = j) {
                lb_user_t *u = lb_batch_user(f->batch, i);
                size_t nt = 0;
                for (j = i; j < hi && lb_batch_user(f->batch, j) == u; j++) {
                        if (acts[j]->partition != last) {
                                last = acts[j]->partition;
                                t = lb_requests_partition_tag(
                                    lb_partition_topic(last),
                                    lb_partition_id(last));
                        }
                        size_t k = 0;
                        while (k < nt && tags[k] != t)
                                k++;
                        if (k == nt)
                                tags[nt++] = t;
                }
                if (lb_ledger_sent(b->ledger, lb_batcher_ledger_entry(u), tags,
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
        for (size_t i = 0; i < f->wire_n; i++)
                lb_ledger_answered(b->ledger,
                                   lb_batcher_ledger_entry(f->wire[i]),
                                   hold_until, now);
        f->wire_n = 0;
}

/* @returns until when the ledger holds a user of f's current range (a
 *          retry waits for it), or 0. */
static int64_t range_busy_until(const lb_bridge_t *b, const flight_t *f)
{
        size_t lo, hi;
        int64_t until = 0;
        lb_flight_range(&f->fl, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
                /* once per user: its actions are adjacent */
                if (!f->batch->actions[i] ||
                    (i > lo && f->batch->actions[i - 1] &&
                     f->batch->user_of[i - 1] == f->batch->user_of[i]))
                        continue;
                int64_t t = lb_ledger_until(
                    b->ledger,
                    lb_batcher_ledger_entry(lb_batch_user(f->batch, i)));
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
                       lb_loop_now_ms() >= b->probe_at;
        return lb_sender_inflight(b->sender) <
               (size_t)lb_concurrency_limit(&b->conc);
}

/* Counts what f's body holds in the bridge's body_bytes. */
static void count_body(lb_bridge_t *b, flight_t *f)
{
        b->body_bytes += f->body.head.cap - f->body_counted;
        f->body_counted = f->body.head.cap;
}

static size_t body_read(void *source, char *dst, size_t cap)
{
        return lb_multi_body_read(source, dst, cap);
}

/* Starts f's body for actions [lo, hi) and puts it on the wire.
 * @returns 0, or -1 (no memory, or the sender refused it). */
static int flight_submit(lb_bridge_t *b, flight_t *f, const lb_app_t *app,
                         size_t lo, size_t hi)
{
        if (lb_multi_body_start(
                &f->body, app->id, app->client_key, b->conf->api_version,
                lb_loop_wall_ms() / 1000.0, f->batch->actions + lo, hi - lo))
                return -1;
        count_body(b, f);
        f->req.body_len = f->body.len;
        return lb_sender_submit(b->sender, &f->req);
}

static void flight_send(lb_bridge_t *b, flight_t *f)
{
        size_t lo, hi;
        lb_flight_range(&f->fl, &lo, &hi);
        const lb_app_t *app = &b->conf->apps[f->batch->app];
        f->key_gen = app->key_gen;
        if (flight_submit(b, f, app, lo, hi)) {
                lb_error("sender", "cannot start a request; retrying");
                lb_flight_retry_at(&f->fl,
                                   lb_loop_now_ms() +
                                       b->conf->retry_backoff_initial_ms);
                return;
        }
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
        lb_multi_body_free(&f->body);
        lb_buf_free(&f->req.response);
        free(f);
}

/* Whether f's batch has several users: one user's actions answered too
 * large together (a start is answered with the user's variables) say how
 * large that user's answers are, not the app's requests. */
static int of_many(const flight_t *f)
{
        return f->batch->n_users > 1;
}

/* A flight ends: when its whole batch's answer was too large to read and
 * its parts were read whole, its app's requests carry from now on at most
 * the longest of them (never fewer than a request of the app read whole
 * before: lb_batcher_cap_actions); not when one user's or one action's
 * answers were too large, nor after give-ups (lb_flight_cut_cap 0). */
static void answer_cap(lb_bridge_t *b, flight_t *f)
{
        size_t app = (size_t)f->batch->app;
        size_t read = lb_flight_cut_cap(&f->fl);
        if (read) {
                size_t before =
                    lb_batcher_cap_actions(b->batcher, app, SIZE_MAX);
                size_t cap = lb_batcher_cap_actions(b->batcher, app, read);
                if (cap < before)
                        lb_warn("sender",
                                "%s: requests now carry at most %zu actions "
                                "(a request of %zu had an answer too large "
                                "to read, its parts of %zu were read whole; "
                                "set batch.max.actions, now %" PRId64
                                ", lower to start there)",
                                b->conf->apps[app].id, cap, f->batch->n, read,
                                b->conf->batch_max_actions);
        }
}

/* A request of n actions of f's app was answered with len bytes, read
 * whole, of at most budget (the request's answer_max): a cap answer_cap
 * lowered may rise again (lb_batcher_answer_read). */
static void answer_read(lb_bridge_t *b, const flight_t *f, size_t n, size_t len,
                        size_t budget)
{
        size_t app = (size_t)f->batch->app;
        size_t cap = lb_batcher_answer_read(b->batcher, app, n, len, budget);
        if (cap)
                lb_info("sender",
                        "%s: requests carry up to %zu actions again (the "
                        "answers read since their cap was lowered would "
                        "fit twice over)",
                        b->conf->apps[app].id, cap);
}

/* Ends a flight: its users may be batched again once the ledger frees
 * them, and its hold on its app's cap ends (after answer_cap settled the
 * cap: users full by the hold only, not by the cap, wait for their
 * deadline again). */
static void flight_end(lb_bridge_t *b, flight_t *f)
{
        if (f->cap_held)
                lb_batcher_cap_release(b->batcher, (size_t)f->batch->app,
                                       f->cap_held);
        lb_batcher_release(b->batcher, f->batch, lb_loop_now_ms());
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
                answer_cap(b, f);
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
        lb_flight_abandon(&f->fl, lb_action_drop, b);
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
                        lb_action_finish(b, batch->actions[i], 0);
                lb_batcher_release(b->batcher, batch, lb_loop_now_ms());
                return;
        }
        f->batch = batch;
        f->req.opaque = f;
        f->req.body_read = body_read;
        f->req.body_source = &f->body;
        f->next = b->flights;
        b->flights = f;
        lb_hist_observe(&b->metrics.batch_actions, (double)batch->n);
        lb_hist_observe(&b->metrics.batch_users, (double)batch->n_users);
        int64_t now = lb_loop_now_ms();
        uint64_t early[LB_SEND__COUNT] = {0};
        for (size_t i = 0; i < batch->n; i++) {
                const lb_action_t *a = batch->actions[i];
                double wait_s = (double)(now - a->arrival_ms) / 1000.0;
                lb_hist_observe(&b->metrics.action_wait, wait_s);
                if (a->closes == LB_CLOSE_URGENT)
                        lb_hist_observe(&b->metrics.urgent_wait, wait_s);
                /* a window closed early is why it went, whatever the
                 * batch's reason; else only a batch not due sends early */
                if (a->closed_by)
                        early[lb_close_reason(a->closed_by)]++;
                else if (a->due_ms > now)
                        early[batch->reason]++;
        }
        for (int r = LB_SEND_DUE + 1; r < LB_SEND__COUNT; r++)
                if (early[r])
                        atomic_fetch_add(&b->metrics.sent_early[r], early[r]);
        flight_step(b, f, now);
}

/* @returns the users of bt's actions lo..lo+n still in it (not NULL). */
static size_t distinct_users(const lb_batch_t *bt, size_t lo, size_t n)
{
        size_t d = 0;
        const lb_user_t *last = NULL;
        for (size_t i = lo; i < lo + n; i++)
                if (bt->actions[i] && bt->user_of[i] != last) {
                        last = bt->user_of[i]; /* a user's are adjacent */
                        d++;
                }
        return d;
}

/* Resolves f's current range to its outcome, taking each action out of the
 * flight: delivered (results[i].ok), dead-lettered with results[i].stage
 * where the API did not apply it, or with stage when results is NULL. The
 * records and their offsets' slots are asked for ahead: last touched
 * before the request went, they are out of cache after its round trip. */
static void range_resolve(lb_bridge_t *b, flight_t *f,
                          const lb_action_result_t *results, lb_stage_t stage,
                          int http_status, const char *reason)
{
        size_t lo, hi;
        lb_flight_range(&f->fl, &lo, &hi);
        lb_actions_prefetch_start(f->fl.acts, lo, hi);
        for (size_t i = lo; i < hi; i++) {
                const lb_action_t *ahead =
                    lb_actions_prefetch(f->fl.acts, i, hi);
                if (ahead)
                        lb_partition_prefetch(ahead->partition, ahead->offset);
                lb_action_t *a = lb_flight_take(&f->fl, i);
                const lb_action_result_t *r = results ? &results[i - lo] : NULL;
                if (!a)
                        continue; /* given up while its request ran */
                if (r && r->warning)
                        LB_METRIC_ADD(b->metrics.actions_warned, 1);
                if (r && r->ok) {
                        LB_METRIC_ADD(b->metrics.actions_delivered, 1);
                        lb_action_finish(b, a, 1);
                } else if (r) {
                        lb_dead_letter(b, a, r->stage, http_status, r->message);
                } else {
                        lb_dead_letter(b, a, stage, http_status, reason);
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
        int64_t now = lb_loop_now_ms();
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
                            const lb_request_t *req, lb_outcome_t out,
                            size_t lo, size_t n)
{
        atomic_fetch_sub(&b->metrics.inflight_requests, 1);
        lb_metrics_count_request(&b->metrics, req->http_status);
        lb_hist_observe(&b->metrics.request_duration, req->duration_s);
        int64_t now = lb_loop_now_ms();
        if (req->http_status)
                b->api_answered_ms = now;
        if (req->http_status >= 200 && req->http_status < 300)
                b->api_ok_ms = now;
        atomic_store(&b->health.api_unreachable,
                     req->http_status == 0 &&
                         now - b->api_answered_ms >= LB_READY_API_SILENT_MS);
        int overload = req->http_status == 0 || req->http_status == 429 ||
                       req->http_status >= 500;
        /* a wrong api.url or proxy fails every request: outage mode
         * pauses the input rather than dead-letter it all, but it says
         * nothing about the API's load */
        outage_observe(b, f, req, overload || out == LB_OUTCOME_MISDIRECTED);
        if (!req->unknown)
                lb_concurrency_observe(&b->conc,
                                       overload ? LB_CONC_OVERLOAD : LB_CONC_OK,
                                       req->duration_s, now);
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
                         const char *reason, size_t live)
{
        if (!live) { /* all given up meanwhile: nothing to retry */
                lb_flight_retry_at(&f->fl, 0);
                return;
        }
        int64_t max = b->conf->retry_max_attempts;
        if (lb_outage_active(&b->outage))
                lb_flight_uncount(&f->fl);
        else if (max >= 0 && f->fl.attempt >= max) {
                lb_warn("sender",
                        "%s; giving up after %d attempt(s), "
                        "dead-lettering %zu action(s)",
                        reason, f->fl.attempt, live);
                range_resolve(b, f, NULL, LB_STAGE_RETRIES_EXHAUSTED,
                              req->http_status, reason);
                return;
        }
        /* In outage mode no later than the probes' cap: the attempts
         * counted before it began would otherwise keep their backoff, and
         * the API's recovery would be seen that much later. */
        int64_t cap = lb_outage_active(&b->outage)
                          ? probe_cap(b)
                          : b->conf->retry_backoff_max_ms;
        int64_t delay = lb_backoff_delay_ms(
            f->fl.attempt, b->conf->retry_backoff_initial_ms, cap, rand01(b),
            retry_after(b, req));
        atomic_fetch_add(&b->metrics.request_retries, 1);
        lb_info("sender", "%s; retry %d in %" PRId64 " ms", reason,
                f->fl.attempt, delay);
        lb_flight_retry_at(&f->fl, lb_loop_now_ms() + delay);
}

/* The API refused f's client key: whether a newer one for its app is
 * loaded since the attempt was encoded (a rotation), reading the apps file
 * for it at most once every LB_KEY_REREAD_MS. */
static int newer_key(lb_bridge_t *b, const flight_t *f, int64_t now)
{
        const lb_app_t *app = &b->conf->apps[f->batch->app];
        if (app->key_gen == f->key_gen &&
            now - b->keys_reread_ms >= LB_KEY_REREAD_MS) {
                b->keys_reread_ms = now;
                lb_bridge_reread_keys(b);
        }
        return app->key_gen != f->key_gen;
}

/* A request of n actions for f's app got an answer too large to read: the
 * API applied it, and it is sent again in halves (its actions reach the
 * API twice or more), or its one action is dead-lettered. A whole batch
 * of several users holds its app's requests to n / 2 until the flight ends
 * (answer_cap), so that they are not cut the same way meanwhile. Said at most
 * every LB_ANSWER_CUT_WARN_MS. */
static void answer_too_large(lb_bridge_t *b, flight_t *f, size_t n, int64_t now)
{
        size_t app = (size_t)f->batch->app;
        if (lb_flight_answer_cut(&f->fl) && n > 1 && of_many(f) &&
            !f->cap_held && !lb_batcher_cap_hold(b->batcher, app, n / 2))
                f->cap_held = n / 2;
        uint64_t held;
        if (lb_log_throttle(&b->answer_cut_warn, now, LB_ANSWER_CUT_WARN_MS,
                            &held))
                lb_warn("sender",
                        "the API answered a request of %zu actions for %s "
                        "with over %" PRId64
                        " bytes, the most an answer is read to (%d%% of "
                        "memory.limit.bytes over sender.max.inflight, 64 "
                        "KiB to 16 MiB): it applied them, and they are sent "
                        "again in halves (duplicates at the API; "
                        "batch.max.actions, now %" PRId64
                        ", set lower makes requests smaller; %" PRIu64
                        " more since the last warning)",
                        n, b->conf->apps[app].id,
                        lb_config_answer_max_bytes(b->conf), LB_ANSWERS_PCT,
                        b->conf->batch_max_actions, held);
}

/* An attempt ended: classify the answer, resolve, split or retry the
 * current range, then go on with the flight. */
void lb_requests_done(void *opaque, lb_request_t *req)
{
        lb_bridge_t *b = opaque;
        flight_t *f = req->opaque;
        size_t lo, hi;
        lb_flight_range(&f->fl, &lo, &hi);
        size_t n = hi - lo, live = 0; /* positions, and actions still ours */
        for (size_t i = lo; i < hi; i++)
                live += f->fl.acts[i] != NULL;
        char reason[512];
        lb_action_result_t results[n]; /* filled for LB_OUTCOME_DONE */
        int64_t now = lb_loop_now_ms();

        lb_flight_answered(&f->fl);
        wire_answered(
            b, f, req->unknown ? now + b->conf->api_timeout_hold_ms : 0, now);
        lb_outcome_t out = lb_multi_classify(
            req->http_status, req->response.data, req->response.len, n,
            (b->conf->api_accept_warnings ? LB_MULTI_ACCEPT_WARNINGS : 0) |
                (req->answer_cut ? LB_MULTI_ANSWER_CUT : 0),
            results, reason, sizeof(reason));
        /* A 403 that is not the API's while other requests are answered
         * 2xx (one within the outage window): a firewall refused this
         * one's content, not every request; a split finds the action, as
         * for the API's 403. Without a 2xx that recent, every request may
         * be refused: retried, and outage mode pauses the input. */
        if (out == LB_OUTCOME_MISDIRECTED && req->http_status == 403 &&
            b->api_ok_ms && now - b->api_ok_ms <= LB_OUTAGE_WINDOW_MS)
                out = n > 1 ? LB_OUTCOME_SPLIT : LB_OUTCOME_DEAD;
        observe_attempt(b, f, req, out, lo, n);
        size_t answer_len = req->response.len;
        lb_buf_free(&req->response); /* not kept across retries */
        if (req->http_status == 0 && req->error[0])
                snprintf(reason, sizeof(reason), "transport: %s", req->error);

        /* sent again: a retry, a split, a refused key a newer one replaces */
        int again = out == LB_OUTCOME_SPLIT || out == LB_OUTCOME_RETRY ||
                    out == LB_OUTCOME_MISDIRECTED ||
                    (out == LB_OUTCOME_KEY_REFUSED && newer_key(b, f, now));
        if (b->last_attempts && again) {
                size_t left =
                    lb_flight_give_up_waiting(&f->fl, lb_action_drop, b);
                lb_info("sender",
                        "%s; shutting down: %zu action(s) given up, not sent "
                        "again (they will be redone)",
                        reason, left);
                flight_step(b, f, now);
                return;
        }
        switch (out) {
        case LB_OUTCOME_DONE:
                answer_read(b, f, n, answer_len, req->answer_max);
                lb_flight_answer_read(&f->fl);
                range_resolve(b, f, results, LB_STAGE_API, req->http_status,
                              NULL);
                lb_multi_results_clear(results, n);
                break;
        case LB_OUTCOME_SPLIT:
                atomic_fetch_add(&b->metrics.request_splits, 1);
                lb_info("sender", "%s; splitting %zu actions", reason, live);
                if (req->answer_cut)
                        answer_too_large(b, f, n, now);
                if (lb_flight_split(&f->fl)) {
                        lb_error("sender", "out of memory");
                        b->fatal = 1;
                        return;
                }
                break;
        case LB_OUTCOME_KEY_REFUSED:
                if (again) {
                        lb_info("sender",
                                "%s; %s has a new client key since: sending "
                                "the request again with it",
                                reason, b->conf->apps[f->batch->app].id);
                        lb_flight_uncount(&f->fl);
                        lb_flight_retry_at(&f->fl, now);
                        break;
                }
                /* the key it has is refused */
                __attribute__((fallthrough));
        case LB_OUTCOME_DEAD:
                if (req->answer_cut)
                        answer_too_large(b, f, n, now);
                lb_warn("sender",
                        "request refused: %s; dead-lettering %zu action(s)",
                        reason, live);
                range_resolve(b, f, NULL, LB_STAGE_HTTP, req->http_status,
                              reason);
                break;
        case LB_OUTCOME_RETRY:
        case LB_OUTCOME_MISDIRECTED:
                flight_retry(b, f, req, reason, live);
                break;
        }
        flight_step(b, f, lb_loop_now_ms());
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
        size_t held = lb_intake_held_bytes(b);
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
void lb_requests_dispatch(lb_bridge_t *b, int64_t now)
{
        lb_ledger_expire(b->ledger, now);
        flights_due(b, now);
        lb_send_reason_t flush = lb_handover_flush_reason(b);
        size_t early = memory_excess(b);
        while (slot_free(b)) {
                lb_batch_t *batch = lb_batcher_next(
                    b->batcher, now + LB_DUE_AHEAD_MS, flush, early);
                if (!batch)
                        break;
                early = early > batch->n ? early - batch->n : 0;
                start_batch(b, batch);
        }
        if (!b->flights && !lb_batcher_pending(b->batcher)) {
                /* nothing left to ask the API: the next requests tell */
                atomic_store(&b->health.api_unreachable, 0);
                if (lb_outage_leave(&b->outage)) {
                        lb_info("sender",
                                "outage mode left: nothing is left to probe "
                                "the API with (the next requests tell)");
                        atomic_store(&b->metrics.api_outage, 0);
                }
        }
        atomic_store(&b->metrics.pending_actions, (int64_t)b->live_actions);
        atomic_store(&b->metrics.held_bytes, (int64_t)lb_intake_held_bytes(b));
}

/* The earliest time something is due, capped at now + cap: a hold's end,
 * and while a slot is free, a deadline or a retry (with none free, an answer
 * frees one and wakes the loop). */
int64_t lb_requests_next_due(lb_bridge_t *b, int64_t now, int64_t cap)
{
        int64_t t = now + cap;
        int64_t e = lb_ledger_next_expiry(b->ledger);
        if (e < t)
                t = e;
        if (lb_outage_active(&b->outage) && b->probe_at < t)
                t = b->probe_at;
        if (slot_free(b)) {
                int64_t d =
                    lb_batcher_next_deadline(b->batcher) - LB_DUE_AHEAD_MS;
                if (d < t)
                        t = d;
                for (flight_t *f = b->flights; f; f = f->next)
                        if (lb_flight_wake(&f->fl) < t)
                                t = lb_flight_wake(&f->fl);
        }
        return t;
}

/* Whether f's body is being sent with an action pred picks. */
static int sending_any(const flight_t *f, int (*pred)(const lb_action_t *a))
{
        size_t lo, hi;
        if (!f->fl.sending || !lb_flight_range(&f->fl, &lo, &hi))
                return 0;
        for (size_t i = lo; i < hi; i++)
                if (f->fl.acts[i] && pred(f->fl.acts[i]))
                        return 1;
        return 0;
}

size_t lb_requests_give_up(lb_bridge_t *b, int (*pred)(const lb_action_t *a))
{
        size_t dropped = 0;
        for (flight_t *f = b->flights; f; f = f->next) {
                /* A body being sent reads its actions: it keeps what it
                 * has yet to send before one of them goes. */
                if (sending_any(f, pred)) {
                        if (lb_multi_body_detach(&f->body)) {
                                lb_error("sender", "out of memory");
                                b->fatal = 1;
                                continue;
                        }
                        count_body(b, f);
                }
                dropped += lb_flight_give_up(&f->fl, pred, lb_action_drop, b);
        }
        return dropped;
}

size_t lb_requests_last_attempts(lb_bridge_t *b)
{
        size_t dropped = 0;
        b->last_attempts = 1;
        for (flight_t *f = b->flights; f; f = f->next)
                dropped += lb_flight_give_up_waiting(&f->fl, lb_action_drop, b);
        return dropped;
}

void lb_requests_abandon_all(lb_bridge_t *b)
{
        while (b->flights)
                flight_abandon(b, b->flights);
}
