/*
 * metrics.h: the bridge's counters, gauges and histograms, and their
 * Prometheus text rendering. Written by the loop thread (and librdkafka's
 * statistics callback for lag), read by the admin server's thread: every
 * value is a C11 atomic, the lag table sits behind a spinlock. Per-app series
 * are not kept (the number of apps is bounded but labels by app id would
 * expose config). Metric names are a contract with operators' dashboards and
 * alerts: never rename one.
 */
#ifndef LB_METRICS_H
#define LB_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "action.h"

#define LB_HIST_MAX_BUCKETS 16

/** Adds v to counter x that only the loop's thread writes (the admin
 *  server's thread reads it): a relaxed load and store, which a reader
 *  sees whole, without the locked add of an atomic read-modify-write.
 *  For counters the loop moves per event. */
#define LB_METRIC_ADD(x, v)                                                    \
        atomic_store_explicit(                                                 \
            &(x), atomic_load_explicit(&(x), memory_order_relaxed) + (v),      \
            memory_order_relaxed)

typedef struct {
        const double *bounds; /* upper bounds, ascending; +Inf implied */
        size_t n_bounds;
        /* counts[i]: observations in (bounds[i-1], bounds[i]] (not
         * cumulative); counts[n_bounds] is the +Inf overflow bucket. */
        atomic_uint_fast64_t counts[LB_HIST_MAX_BUCKETS + 1];
        atomic_uint_fast64_t sum_micro; /* sum * 1e6, as an integer */
        atomic_uint_fast64_t count;
} lb_hist_t;

typedef struct lb_consumer_lag_s {
        char topic[256]; /* Kafka topic names are at most 249 bytes */
        int32_t partition;
        int64_t lag;
} lb_consumer_lag_t;

#define LB_METRICS_MAX_LAG 256

/** Lowest and highest HTTP status kept as its own requests_total series. */
#define LB_METRICS_STATUS_MIN 100
#define LB_METRICS_STATUS_MAX 599

typedef struct lb_metrics_s {
        atomic_uint_fast64_t events_consumed;
        atomic_uint_fast64_t actions_delivered;
        atomic_uint_fast64_t actions_warned;
        atomic_uint_fast64_t dead_lettered[LB_STAGE__COUNT];
        atomic_uint_fast64_t events_skipped;
        /* index: HTTP code; use lb_metrics_count_request() to update */
        atomic_uint_fast64_t requests_by_status[LB_METRICS_STATUS_MAX + 1];
        atomic_uint_fast64_t requests_error; /* no (valid) HTTP response */
        atomic_uint_fast64_t request_retries;
        atomic_uint_fast64_t request_splits;
        atomic_uint_fast64_t billable_lookups;
        atomic_uint_fast64_t dlq_produce_retries;
        atomic_uint_fast64_t offsets_committed;
        atomic_uint_fast64_t offset_maps_truncated; /* commits with part */
        atomic_uint_fast64_t offset_maps_ignored;   /* unreadable maps */
        /* reads of the group's commits failed or unanswered in time */
        atomic_uint_fast64_t offset_map_reads_failed;
        /* deleted by retention before the group consumed them */
        atomic_uint_fast64_t events_lost_retention;
        /* partitions the consumer started over below what it consumed */
        atomic_uint_fast64_t partition_restarts;
        atomic_uint_fast64_t events_already_done;  /* skipped by a map */
        atomic_uint_fast64_t apps_reloads;         /* apps file re-read */
        atomic_uint_fast64_t apps_reload_failures; /* ... and kept old keys */
        /* actions sent before their deadline, by lb_send_reason_t (the DUE
         * slot stays 0) */
        atomic_uint_fast64_t sent_early[LB_SEND__COUNT];
        atomic_int_fast64_t inflight_requests;
        atomic_int_fast64_t pending_actions;
        /* what pending.max.bytes counts (every live action's footprint)
         * and that bound */
        atomic_int_fast64_t held_bytes;
        atomic_int_fast64_t held_bytes_limit;
        atomic_int_fast64_t offset_map_room; /* bytes; 0: maps off */
        atomic_int_fast64_t partitions_paused;
        atomic_int_fast64_t partitions_assigned;
        /* age of the newest events not yet taken (see bridge.c) */
        atomic_int_fast64_t consume_delay_ms;
        /* dead letters not yet written, and the oldest one's wait (dlq.h) */
        atomic_int_fast64_t dlq_waiting;
        atomic_int_fast64_t dlq_oldest_ms;
        atomic_int_fast64_t concurrency_limit;
        atomic_int_fast64_t api_outage; /* 1 in outage mode (outage.h) */
        /* the loop turned, or the consumer polled, from within a callback
         * or a turn (a bug: stays 0) */
        atomic_uint_fast64_t loop_nested;
        lb_hist_t batch_actions;
        lb_hist_t batch_users;
        lb_hist_t request_duration; /* seconds */
        lb_hist_t action_wait;      /* seconds, consumed -> first sent */
        lb_hist_t urgent_wait;      /* the same, of urgent actions */
        /* Consumer lag from librdkafka statistics; guarded by lag_lock. */
        atomic_flag lag_lock;
        lb_consumer_lag_t lag[LB_METRICS_MAX_LAG];
        size_t lag_cnt;
} lb_metrics_t;

/** @brief Zeroes m and sets the histogram bucket bounds. */
void lb_metrics_init(lb_metrics_t *m);

/**
 * @brief Records one observation. NaN is ignored; negative values count in
 *        the lowest bucket and add nothing to the sum. One thread (the
 *        loop's) writes a histogram (LB_METRIC_ADD).
 */
void lb_hist_observe(lb_hist_t *h, double value);

/**
 * @brief Counts one finished API request: http_status 100..599 under its
 *        own status series, anything else (0 = no response) as "error".
 */
void lb_metrics_count_request(lb_metrics_t *m, int http_status);

/**
 * @brief Replaces the lag table from a librdkafka statistics JSON
 *        (topics.<t>.partitions.<p>.consumer_lag). Skips the internal
 *        partition -1, unknown lags (-1) and partitions not assigned
 *        here any more (desired: false). Keeps at most
 *        LB_METRICS_MAX_LAG partitions. Safe to call from librdkafka's
 *        statistics callback while another thread renders.
 * @returns 0, or -1 if stats_json is not a JSON object (table unchanged).
 */
int lb_metrics_update_lag(lb_metrics_t *m, const char *stats_json, size_t len);

/** @returns the sum of the consumer lag table (0 when empty). */
int64_t lb_metrics_total_lag(lb_metrics_t *m);

/* How often the operator's summary line is due. */
#define LB_SUMMARY_INTERVAL_MS 60000

/** The counters at the last summary line. */
typedef struct {
        int64_t last_ms;
        uint64_t consumed, delivered, memory_early;
} lb_summary_t;

/** The loop's figures a summary line shows. */
typedef struct {
        size_t pending, live, inflight;
        int concurrency, paused;
} lb_summary_loop_t;

/**
 * @brief The operator's once-a-minute line: rates since the last one, lag,
 *        pending work, dead letters by now. Written to buf when
 *        LB_SUMMARY_INTERVAL_MS passed since the last one (or force).
 * @param memory_early set to the actions sent early to stay under the
 *        memory bound since the last line.
 * @returns 1 when a line was written (s moves on), else 0.
 */
int lb_metrics_summary(lb_metrics_t *m, lb_summary_t *s,
                       const lb_summary_loop_t *loop, int64_t now, int force,
                       char *buf, size_t size, uint64_t *memory_early);

/**
 * @brief Renders every metric in Prometheus text exposition format 0.0.4.
 *        version is the build_info label (NULL renders "unknown").
 * @returns a malloc'd NUL-terminated string (caller frees), or NULL.
 */
char *lb_metrics_render(lb_metrics_t *m, const char *version);

#endif
