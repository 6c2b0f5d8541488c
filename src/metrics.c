/*
 * metrics.c: bucket bounds, observation, the lag table parsed from
 * librdkafka statistics, and the Prometheus text exposition (format 0.0.4).
 * Pure: no sockets, no clocks; the admin server serves what this renders.
 * Counters and gauges use relaxed atomics: a scrape may see one value a
 * little ahead of another, which Prometheus tolerates.
 */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "grow.h"

#define LOAD(x)   atomic_load_explicit(&(x), memory_order_relaxed)
#define ADD(x, v) atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed)

static const double batch_actions_bounds[] = {1,   2,   5,   10,  25, 50,
                                              100, 200, 300, 400, 500};
static const double batch_users_bounds[] = {1, 2, 5, 10, 20, 30, 40, 50};
static const double request_duration_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static const double action_wait_bounds[] = {0.1, 0.5, 1,  2,  5,   10,  20,
                                            30,  45,  60, 90, 120, 300, 600};

/* Urgent actions should go within batch.linger.ms (500 ms by default). */
static const double urgent_wait_bounds[] = {0.05, 0.1, 0.25, 0.5, 0.75, 1,
                                            1.5,  2,   5,    10,  30,   60};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(COUNT_OF(batch_actions_bounds) <= LB_HIST_MAX_BUCKETS,
               "batch_actions bounds");
_Static_assert(COUNT_OF(batch_users_bounds) <= LB_HIST_MAX_BUCKETS,
               "batch_users bounds");
_Static_assert(COUNT_OF(request_duration_bounds) <= LB_HIST_MAX_BUCKETS,
               "request_duration bounds");
_Static_assert(COUNT_OF(action_wait_bounds) <= LB_HIST_MAX_BUCKETS,
               "action_wait bounds");
_Static_assert(COUNT_OF(urgent_wait_bounds) <= LB_HIST_MAX_BUCKETS,
               "urgent_wait bounds");

static void hist_init(lb_hist_t *h, const double *bounds, size_t n)
{
        h->bounds = bounds;
        h->n_bounds = n;
}

void lb_metrics_init(lb_metrics_t *m)
{
        memset(m, 0, sizeof(*m));
        atomic_flag_clear(&m->lag_lock);
        hist_init(&m->batch_actions, batch_actions_bounds,
                  COUNT_OF(batch_actions_bounds));
        hist_init(&m->batch_users, batch_users_bounds,
                  COUNT_OF(batch_users_bounds));
        hist_init(&m->request_duration, request_duration_bounds,
                  COUNT_OF(request_duration_bounds));
        hist_init(&m->action_wait, action_wait_bounds,
                  COUNT_OF(action_wait_bounds));
        hist_init(&m->urgent_wait, urgent_wait_bounds,
                  COUNT_OF(urgent_wait_bounds));
}

void lb_hist_observe(lb_hist_t *h, double value)
{
        size_t i = 0;

        if (isnan(value))
                return;
        while (i < h->n_bounds && value > h->bounds[i])
                i++;
        LB_METRIC_ADD(h->counts[i], 1);
        if (value > 0) {
                /* Saturate rather than wrap on absurd values. */
                double micro = value * 1e6 + 0.5;
                uint_fast64_t v =
                    micro >= 1.8e19 ? UINT64_MAX : (uint_fast64_t)micro;
                LB_METRIC_ADD(h->sum_micro, v);
        }
        LB_METRIC_ADD(h->count, 1);
}

void lb_metrics_count_request(lb_metrics_t *m, int http_status)
{
        if (http_status >= LB_METRICS_STATUS_MIN &&
            http_status <= LB_METRICS_STATUS_MAX)
                ADD(m->requests_by_status[http_status], 1);
        else
                ADD(m->requests_error, 1);
}

static void lag_lock(lb_metrics_t *m)
{
        while (atomic_flag_test_and_set_explicit(&m->lag_lock,
                                                 memory_order_acquire))
                sched_yield();
}

static void lag_unlock(lb_metrics_t *m)
{
        atomic_flag_clear_explicit(&m->lag_lock, memory_order_release);
}

/* Partition keys are decimal; "-1" is librdkafka's internal UA partition. */
static int parse_partition(const char *key, int32_t *out)
{
        char *end;
        long v;

        if (*key < '0' || *key > '9')
                return -1;
        v = strtol(key, &end, 10);
        if (*end != '\0' || v > INT32_MAX)
                return -1;
        *out = (int32_t)v;
        return 0;
}

static size_t collect_lag(json_t *root, lb_consumer_lag_t *out, size_t max)
{
        json_t *topics = json_object_get(root, "topics");
        const char *tname, *pkey;
        json_t *tobj, *pobj;
        size_t n = 0;

        if (!json_is_object(topics))
                return 0;
        json_object_foreach(topics, tname, tobj)
        {
                json_t *parts = json_object_get(tobj, "partitions");

                if (strlen(tname) >= sizeof(out->topic) ||
                    !json_is_object(parts))
                        continue;
                json_object_foreach(parts, pkey, pobj)
                {
                        json_t *lag = json_object_get(pobj, "consumer_lag");
                        json_t *desired = json_object_get(pobj, "desired");
                        int32_t partition;

                        if (n == max)
                                return n;
                        /* not desired: revoked from this member, whose
                         * statistics still list it with a stale lag */
                        if (parse_partition(pkey, &partition) != 0 ||
                            json_is_false(desired) || !json_is_integer(lag) ||
                            json_integer_value(lag) < 0)
                                continue;
                        strcpy(out[n].topic, tname);
                        out[n].partition = partition;
                        out[n].lag = json_integer_value(lag);
                        n++;
                }
        }
        return n;
}

int lb_metrics_update_lag(lb_metrics_t *m, const char *stats_json, size_t len)
{
        lb_consumer_lag_t *tmp = NULL;
        json_t *root;
        size_t n;
        int rc = -1;

        root = json_loadb(stats_json, len, 0, NULL);
        if (!json_is_object(root))
                goto out;
        /* Parse outside the lock so a scrape never waits on jansson. */
        tmp = malloc(sizeof(*tmp) * LB_METRICS_MAX_LAG);
        if (!tmp)
                goto out;
        n = collect_lag(root, tmp, LB_METRICS_MAX_LAG);
        lag_lock(m);
        memcpy(m->lag, tmp, sizeof(*tmp) * n);
        m->lag_cnt = n;
        lag_unlock(m);
        rc = 0;
out:
        free(tmp);
        json_decref(root);
        return rc;
}

int64_t lb_metrics_total_lag(lb_metrics_t *m)
{
        int64_t total = 0;
        lag_lock(m);
        for (size_t i = 0; i < m->lag_cnt; i++)
                total += m->lag[i].lag;
        lag_unlock(m);
        return total;
}

/* Output buffer: appends never fail visibly; oom is checked once at the
 * end so the rendering code reads as a list of lines. */
typedef struct {
        char *buf;
        size_t len;
        size_t cap;
        int oom;
} sb_t;

static int sb_reserve(sb_t *sb, size_t more)
{
        char *p;

        if (sb->oom)
                return -1;
        p = lb_grow(sb->buf, &sb->cap, sb->len + more + 1, 1, 4096);
        if (!p) {
                sb->oom = 1;
                return -1;
        }
        sb->buf = p;
        return 0;
}

static void sb_printf(sb_t *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(sb_t *sb, const char *fmt, ...)
{
        va_list ap;

        /* Formatted in place when it fits (nearly always: the buffer grows
         * by pages), else once more after growing: a scrape formats each
         * line once, not once to measure and once to write. */
        for (int grown = 0; !sb->oom; grown = 1) {
                size_t room = sb->cap - sb->len;
                va_start(ap, fmt);
                int n =
                    vsnprintf(room ? sb->buf + sb->len : NULL, room, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        sb->oom = 1;
                } else if ((size_t)n < room) {
                        sb->len += (size_t)n;
                        return;
                } else if (grown || sb_reserve(sb, (size_t)n) != 0) {
                        sb->oom = 1;
                }
        }
}

/* Appends s[0..n). */
static void sb_put(sb_t *sb, const char *s, size_t n)
{
        if (sb_reserve(sb, n) != 0)
                return;
        memcpy(sb->buf + sb->len, s, n);
        sb->len += n;
        sb->buf[sb->len] = '\0';
}

/* A label value per the exposition format: \ " and newline escaped. */
static void sb_label_value(sb_t *sb, const char *s)
{
        for (;;) {
                size_t n = strcspn(s, "\\\"\n");
                sb_put(sb, s, n);
                s += n;
                if (!*s)
                        return;
                sb_put(sb, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
                s++;
        }
}

static void family(sb_t *sb, const char *name, const char *type,
                   const char *help)
{
        sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(sb_t *sb, const char *name, const char *help,
                    uint_fast64_t v)
{
        family(sb, name, "counter", help);
        sb_printf(sb, "%s %" PRIuFAST64 "\n", name, v);
}

/* One series per label value: values[i] labelled label="names(i)" for i in
 * [first, count). */
static void labelled_counter(sb_t *sb, const char *name, const char *help,
                             const char *label, const char *(*names)(int),
                             const atomic_uint_fast64_t *values, int first,
                             int count)
{
        family(sb, name, "counter", help);
        for (int i = first; i < count; i++)
                sb_printf(sb, "%s{%s=\"%s\"} %" PRIuFAST64 "\n", name, label,
                          names(i), LOAD(values[i]));
}

static const char *stage_name(int i)
{
        return lb_stage_name((lb_stage_t)i);
}

static const char *reason_name(int i)
{
        return lb_send_reason_name((lb_send_reason_t)i);
}

static void gauge(sb_t *sb, const char *name, const char *help, int_fast64_t v)
{
        family(sb, name, "gauge", help);
        sb_printf(sb, "%s %" PRIdFAST64 "\n", name, v);
}

/* Exact decimal for a micro-unit integer: 1500000 -> "1.5", 3000000 -> "3".
 */
static void sb_micro(sb_t *sb, uint_fast64_t micro)
{
        char frac[8];
        int i;

        sb_printf(sb, "%" PRIuFAST64, micro / 1000000);
        if (micro % 1000000 == 0)
                return;
        snprintf(frac, sizeof(frac), "%06" PRIuFAST64, micro % 1000000);
        for (i = 5; frac[i] == '0'; i--)
                frac[i] = '\0';
        sb_printf(sb, ".%s", frac);
}

/* A gauge of seconds, given in milliseconds (exact decimal). */
static void gauge_seconds(sb_t *sb, const char *name, const char *help,
                          int_fast64_t ms)
{
        family(sb, name, "gauge", help);
        sb_printf(sb, "%s ", name);
        sb_micro(sb, (uint_fast64_t)(ms > 0 ? ms : 0) * 1000);
        sb_printf(sb, "\n");
}

static void histogram(sb_t *sb, const char *name, const char *help,
                      const lb_hist_t *h)
{
        uint_fast64_t cum = 0;
        size_t i;

        family(sb, name, "histogram", help);
        /* Bounds are short decimals, so %g prints them exactly. */
        for (i = 0; i < h->n_bounds; i++) {
                cum += LOAD(h->counts[i]);
                sb_printf(sb, "%s_bucket{le=\"%g\"} %" PRIuFAST64 "\n", name,
                          h->bounds[i], cum);
        }
        cum += LOAD(h->counts[h->n_bounds]);
        sb_printf(sb, "%s_bucket{le=\"+Inf\"} %" PRIuFAST64 "\n", name, cum);
        sb_printf(sb, "%s_sum ", name);
        sb_micro(sb, LOAD(h->sum_micro));
        /* _count is the bucket total, not h->count, so that it always
         * equals the +Inf bucket even while observations race the scrape.
         */
        sb_printf(sb, "\n%s_count %" PRIuFAST64 "\n", name, cum);
}

static void render_lag(sb_t *sb, lb_metrics_t *m)
{
        lb_consumer_lag_t *copy;
        size_t i, n;

        family(sb, "leanbridge_consumer_lag", "gauge",
               "Messages between the committed position and the partition's "
               "high watermark, from librdkafka statistics.");
        copy = malloc(sizeof(*copy) * LB_METRICS_MAX_LAG);
        if (!copy) {
                sb->oom = 1;
                return;
        }
        lag_lock(m);
        n = m->lag_cnt;
        memcpy(copy, m->lag, sizeof(*copy) * n);
        lag_unlock(m);
        for (i = 0; i < n; i++) {
                sb_printf(sb, "leanbridge_consumer_lag{topic=\"");
                sb_label_value(sb, copy[i].topic);
                sb_printf(sb, "\",partition=\"%" PRId32 "\"} %" PRId64 "\n",
                          copy[i].partition, copy[i].lag);
        }
        free(copy);
}

char *lb_metrics_render(lb_metrics_t *m, const char *version)
{
        sb_t sb = {0};
        int code;

        counter(&sb, "leanbridge_events_consumed_total",
                "Kafka messages consumed from the input topics.",
                LOAD(m->events_consumed));
        counter(&sb, "leanbridge_actions_delivered_total",
                "Actions the API acknowledged.", LOAD(m->actions_delivered));
        counter(&sb, "leanbridge_actions_warned_total",
                "Actions the API acknowledged with a warning.",
                LOAD(m->actions_warned));

        labelled_counter(&sb, "leanbridge_actions_dead_lettered_total",
                         "Actions written to the dead-letter topic, by stage.",
                         "stage", stage_name, m->dead_lettered,
                         LB_STAGE_NONE + 1, LB_STAGE__COUNT);

        counter(&sb, "leanbridge_events_skipped_total",
                "Messages skipped without a request (tombstones).",
                LOAD(m->events_skipped));

        family(&sb, "leanbridge_requests_total", "counter",
               "API requests finished, by HTTP status (\"error\": no HTTP "
               "response).");
        for (code = LB_METRICS_STATUS_MIN; code <= LB_METRICS_STATUS_MAX;
             code++) {
                uint_fast64_t v = LOAD(m->requests_by_status[code]);

                if (v)
                        sb_printf(&sb,
                                  "leanbridge_requests_total{status=\"%d\"} "
                                  "%" PRIuFAST64 "\n",
                                  code, v);
        }
        sb_printf(&sb,
                  "leanbridge_requests_total{status=\"error\"} %" PRIuFAST64
                  "\n",
                  LOAD(m->requests_error));

        counter(&sb, "leanbridge_request_retries_total",
                "API requests sent again after a retryable failure.",
                LOAD(m->request_retries));
        counter(&sb, "leanbridge_request_splits_total",
                "Requests split in two after a 403 or 413 on several "
                "actions.",
                LOAD(m->request_splits));
        counter(
            &sb, "leanbridge_billable_user_lookups_total",
            "Billable user lookups sent (distinct users per request, summed).",
            LOAD(m->billable_lookups));
        counter(&sb, "leanbridge_dlq_produce_retries_total",
                "Dead-letter records produced again after a failure.",
                LOAD(m->dlq_produce_retries));
        counter(&sb, "leanbridge_offsets_committed_total",
                "Partition offsets committed, each with its offset map "
                "(every auto.commit.interval.ms while they move).",
                LOAD(m->offsets_committed));
        counter(&sb, "leanbridge_offset_maps_truncated_total",
                "Commits whose offset map did not fit "
                "commit.metadata.max.bytes whole (the farthest done offsets "
                "left out: redone by a next owner).",
                LOAD(m->offset_maps_truncated));
        counter(&sb, "leanbridge_events_lost_to_retention_total",
                "Events the group never consumed that Kafka deleted first: "
                "the committed offset was below the partition's log start "
                "when it was assigned here. Not recoverable by the bridge.",
                LOAD(m->events_lost_retention));
        counter(&sb, "leanbridge_partition_restarts_total",
                "Times a partition's offsets started over below the last "
                "consumed without a rebalance (its topic deleted and "
                "created again, or its log truncated): tracked afresh.",
                LOAD(m->partition_restarts));
        counter(&sb, "leanbridge_loop_nested_total",
                "Times the loop was turned, or the consumer polled, from "
                "within a librdkafka callback or another turn: a bug, "
                "always 0.",
                LOAD(m->loop_nested));
        counter(&sb, "leanbridge_offset_maps_ignored_total",
                "Committed offset maps found on assignment that could not be "
                "read (another version, corrupt): their offsets are redone.",
                LOAD(m->offset_maps_ignored));
        counter(&sb, "leanbridge_offset_map_reads_failed_total",
                "Reads of the group's committed offsets and maps on "
                "assignment that failed or got no answer within "
                "rebalance.timeout.ms: those partitions went on without "
                "their maps (what the maps mark done is redone).",
                LOAD(m->offset_map_reads_failed));
        counter(&sb, "leanbridge_events_already_done_total",
                "Consumed events skipped because the committed offset map "
                "marks them done (after a crash or a handover).",
                LOAD(m->events_already_done));
        counter(&sb, "leanbridge_apps_reloads_total",
                "Times the apps file's client keys were read again (SIGHUP "
                "or a changed file).",
                LOAD(m->apps_reloads));
        counter(&sb, "leanbridge_apps_reload_failures_total",
                "Reloads of the apps file refused (unreadable, malformed, or "
                "other apps); the old keys stay.",
                LOAD(m->apps_reload_failures));

        labelled_counter(&sb, "leanbridge_actions_sent_early_total",
                         "Actions sent before their deadline (the wait "
                         "budget), by reason: urgent and session_end are "
                         "actions whose user's window an urgent action or "
                         "a session's end closed.",
                         "reason", reason_name, m->sent_early, LB_SEND_DUE + 1,
                         LB_SEND__COUNT);

        histogram(&sb, "leanbridge_batch_actions", "Actions per API request.",
                  &m->batch_actions);
        histogram(&sb, "leanbridge_batch_users",
                  "Distinct users per API request.", &m->batch_users);
        histogram(&sb, "leanbridge_request_duration_seconds",
                  "API request duration, from send to full response.",
                  &m->request_duration);
        histogram(&sb, "leanbridge_action_wait_seconds",
                  "Time an action waited in the bridge, from consumed to "
                  "first sent.",
                  &m->action_wait);
        histogram(&sb, "leanbridge_urgent_action_wait_seconds",
                  "Time an urgent action (batch.urgent) waited in the "
                  "bridge, from consumed to first sent.",
                  &m->urgent_wait);

        gauge(&sb, "leanbridge_inflight_requests",
              "API requests currently in flight.", LOAD(m->inflight_requests));
        gauge(&sb, "leanbridge_pending_actions",
              "Actions consumed and not yet delivered or dead-lettered.",
              LOAD(m->pending_actions));
        gauge(&sb, "leanbridge_held_bytes",
              "Bytes of the actions alive (held, in flight or at the DLQ) "
              "as pending.max.bytes counts them: what their memory costs.",
              LOAD(m->held_bytes));
        gauge(&sb, "leanbridge_offset_map_room_bytes",
              "What an offset map may take now: commit.metadata.max.bytes, "
              "less after the broker refused a map as too large (probed "
              "back up every 5 minutes); 0: maps off.",
              LOAD(m->offset_map_room));
        gauge(&sb, "leanbridge_held_bytes_limit",
              "pending.max.bytes: the bound on leanbridge_held_bytes.",
              LOAD(m->held_bytes_limit));
        gauge(&sb, "leanbridge_partitions_paused",
              "Assigned partitions paused for backpressure.",
              LOAD(m->partitions_paused));
        gauge(&sb, "leanbridge_partitions_assigned",
              "Partitions assigned to this consumer.",
              LOAD(m->partitions_assigned));
        gauge_seconds(&sb, "leanbridge_consume_delay_seconds",
                      "How far behind the newest events this instance "
                      "consumes: the age of the last message taken from a "
                      "partition not yet at its end (0 when caught up). The "
                      "scaling signal.",
                      LOAD(m->consume_delay_ms));
        gauge(&sb, "leanbridge_dlq_waiting",
              "Dead letters produced and not yet written (acknowledged by "
              "the DLQ topic) nor given up: their partitions' commits wait.",
              LOAD(m->dlq_waiting));
        gauge_seconds(&sb, "leanbridge_dlq_oldest_waiting_seconds",
                      "How long the oldest of leanbridge_dlq_waiting has "
                      "waited since it was first produced (0: none).",
                      LOAD(m->dlq_oldest_ms));
        gauge(&sb, "leanbridge_concurrency_limit",
              "Current adaptive limit on concurrent API requests.",
              LOAD(m->concurrency_limit));
        gauge(&sb, "leanbridge_api_outage",
              "1 while the API fails every request (outage mode: input "
              "paused, one probe at a time, nothing dead-lettered for "
              "retriable failures).",
              LOAD(m->api_outage));
        render_lag(&sb, m);

        family(&sb, "leanbridge_build_info", "gauge",
               "Always 1; the version label names the running build.");
        sb_printf(&sb, "leanbridge_build_info{version=\"");
        sb_label_value(&sb, version ? version : "unknown");
        sb_printf(&sb, "\"} 1\n");

        if (sb.oom) {
                free(sb.buf);
                return NULL;
        }
        return sb.buf;
}

int lb_metrics_summary(lb_metrics_t *m, lb_summary_t *s,
                       const lb_summary_loop_t *loop, int64_t now, int force,
                       char *buf, size_t size, uint64_t *memory_early)
{
        int64_t span = now - s->last_ms;
        if (span < LB_SUMMARY_INTERVAL_MS && !force)
                return 0;
        if (span < 1)
                span = 1;
        s->last_ms = now;
        uint64_t dead = 0;
        for (int i = 0; i < LB_STAGE__COUNT; i++)
                dead += LOAD(m->dead_lettered[i]);
        uint64_t consumed = LOAD(m->events_consumed);
        uint64_t delivered = LOAD(m->actions_delivered);
        double secs = (double)span / 1000.0;
        snprintf(buf, size,
                 "consumed=%" PRIu64 " (%.0f/s) delivered=%" PRIu64
                 " (%.0f/s) dead_lettered=%" PRIu64 " skipped=%" PRIuFAST64
                 " lag=%" PRId64 " pending=%zu live=%zu inflight=%zu "
                 "concurrency=%d paused=%d",
                 consumed, (double)(consumed - s->consumed) / secs, delivered,
                 (double)(delivered - s->delivered) / secs, dead,
                 LOAD(m->events_skipped), lb_metrics_total_lag(m),
                 loop->pending, loop->live, loop->inflight, loop->concurrency,
                 loop->paused);
        s->consumed = consumed;
        s->delivered = delivered;
        uint64_t early = LOAD(m->sent_early[LB_SEND_MEMORY]);
        *memory_early = early - s->memory_early;
        s->memory_early = early;
        return 1;
}
