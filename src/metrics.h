/*
 * metrics.h: the bridge's counters, gauges and histograms, and their
 * Prometheus text rendering. Written by the loop thread, read by the admin
 * server's thread: every value is a C11 atomic. Per-app series are not kept
 * (the number of apps is bounded but labels by app id would expose config).
 */
#ifndef LB_METRICS_H
#define LB_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "action.h"

#define LB_HIST_MAX_BUCKETS 16

typedef struct {
        const double *bounds; /* upper bounds, ascending; +Inf implied */
        size_t n_bounds;
        atomic_uint_fast64_t counts[LB_HIST_MAX_BUCKETS + 1];
        atomic_uint_fast64_t sum_micro; /* sum * 1e6, as an integer */
        atomic_uint_fast64_t count;
} lb_hist_t;

/* HTTP status classes kept as separate series; others count as "other". */
#define LB_METRICS_STATUS_SLOTS 8

typedef struct lb_consumer_lag_s {
        char topic[128];
        int32_t partition;
        int64_t lag;
} lb_consumer_lag_t;

#define LB_METRICS_MAX_LAG 256

typedef struct lb_metrics_s {
        atomic_uint_fast64_t events_consumed;
        atomic_uint_fast64_t actions_delivered;
        atomic_uint_fast64_t actions_warned;
        atomic_uint_fast64_t dead_lettered[LB_STAGE__COUNT];
        atomic_uint_fast64_t events_skipped;
        atomic_uint_fast64_t requests_by_status[600]; /* index: HTTP code */
        atomic_uint_fast64_t requests_error;          /* no HTTP response */
        atomic_uint_fast64_t request_retries;
        atomic_uint_fast64_t request_splits;
        atomic_uint_fast64_t billable_lookups;
        atomic_uint_fast64_t dlq_produce_retries;
        atomic_uint_fast64_t offsets_committed;
        atomic_int_fast64_t inflight_requests;
        atomic_int_fast64_t pending_actions;
        atomic_int_fast64_t partitions_paused;
        atomic_int_fast64_t partitions_assigned;
        atomic_int_fast64_t concurrency_limit;
        lb_hist_t batch_actions;
        lb_hist_t batch_users;
        lb_hist_t request_duration;
        /* Consumer lag from librdkafka statistics; guarded by lag_lock. */
        atomic_flag lag_lock;
        lb_consumer_lag_t lag[LB_METRICS_MAX_LAG];
        size_t lag_cnt;
} lb_metrics_t;

/** @brief Zeroes m and sets the histogram bucket bounds. */
void lb_metrics_init(lb_metrics_t *m);

void lb_hist_observe(lb_hist_t *h, double value);

/** @brief Replaces the lag table from a librdkafka statistics JSON. */
void lb_metrics_update_lag(lb_metrics_t *m, const char *stats_json,
                           size_t len);

/**
 * @brief Renders every metric in Prometheus text exposition format 0.0.4.
 * @returns a malloc'd NUL-terminated string (caller frees), or NULL.
 */
char *lb_metrics_render(lb_metrics_t *m, const char *version);

#endif
