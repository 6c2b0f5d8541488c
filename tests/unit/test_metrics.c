/*
 * test_metrics.c: the Prometheus exposition (names, types, values, label
 * escaping), histogram buckets, lag parsing from librdkafka statistics, and
 * promtool's lint of the whole output when promtool is installed.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip_or_fail.h"

#include "metrics.h"

/* A trimmed consumer statistics document as librdkafka emits it: the
 * internal partition -1, a partition with unknown lag (-1) and one no
 * longer assigned here (desired: false, after a revocation) included. */
static const char stats_json[] =
    "{\"name\":\"rdkafka#consumer-1\",\"client_id\":\"leanbridge\","
    "\"type\":\"consumer\",\"ts\":5016483227792,\"time\":1700000000,"
    "\"age\":5000123,\"replyq\":0,\"msg_cnt\":0,\"msg_size\":0,"
    "\"brokers\":{\"localhost:9092/1\":{\"name\":\"localhost:9092/1\","
    "\"nodeid\":1,\"state\":\"UP\",\"rtt\":{\"min\":100,\"max\":900}}},"
    "\"topics\":{"
    "\"events\":{\"topic\":\"events\",\"age\":5000,\"metadata_age\":4000,"
    "\"partitions\":{"
    "\"0\":{\"partition\":0,\"broker\":1,\"leader\":1,\"desired\":true,"
    "\"fetch_state\":\"active\",\"committed_offset\":100,"
    "\"hi_offset\":142,\"lo_offset\":0,\"consumer_lag\":42,"
    "\"consumer_lag_stored\":40},"
    "\"1\":{\"partition\":1,\"broker\":1,\"leader\":1,\"desired\":true,"
    "\"fetch_state\":\"offset-query\",\"committed_offset\":-1001,"
    "\"hi_offset\":-1,\"lo_offset\":-1,\"consumer_lag\":-1},"
    "\"2\":{\"partition\":2,\"broker\":1,\"leader\":1,\"desired\":true,"
    "\"fetch_state\":\"active\",\"committed_offset\":7,\"hi_offset\":7,"
    "\"consumer_lag\":0},"
    "\"4\":{\"partition\":4,\"broker\":1,\"leader\":1,\"desired\":false,"
    "\"fetch_state\":\"none\",\"committed_offset\":10,\"hi_offset\":87,"
    "\"consumer_lag\":77},"
    "\"-1\":{\"partition\":-1,\"broker\":-1,\"leader\":-1,"
    "\"desired\":false,\"consumer_lag\":-1}}},"
    "\"other.events\":{\"topic\":\"other.events\",\"partitions\":{"
    "\"3\":{\"partition\":3,\"consumer_lag\":1234567}}}},"
    "\"cgrp\":{\"state\":\"up\",\"join_state\":\"steady\","
    "\"assignment_size\":4}}";

/* Whether text contains line as a whole line (line without its '\n'). */
static int has_line(const char *text, const char *line)
{
        size_t n = strlen(line);
        const char *p = text;

        while ((p = strstr(p, line)) != NULL) {
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return 1;
                p++;
        }
        return 0;
}

#define assert_line(text, line)                                                \
        do {                                                                   \
                if (!has_line(text, line))                                     \
                        fail_msg("missing line: %s", line);                    \
        } while (0)

#define assert_no_line(text, line)                                             \
        do {                                                                   \
                if (has_line(text, line))                                      \
                        fail_msg("unexpected line: %s", line);                 \
        } while (0)

static int setup(void **state)
{
        lb_metrics_t *m = malloc(sizeof(*m));

        if (!m)
                return -1;
        lb_metrics_init(m);
        *state = m;
        return 0;
}

static int teardown(void **state)
{
        free(*state);
        return 0;
}

static void test_counters_and_gauges(void **state)
{
        lb_metrics_t *m = *state;
        char *text;

        atomic_store(&m->events_consumed, 3);
        atomic_store(&m->actions_delivered, 2);
        atomic_store(&m->actions_warned, 1);
        atomic_store(&m->events_skipped, 4);
        atomic_store(&m->request_retries, 5);
        atomic_store(&m->request_splits, 6);
        atomic_store(&m->billable_lookups, 7);
        atomic_store(&m->dlq_produce_retries, 8);
        atomic_store(&m->offsets_committed, 9);
        atomic_store(&m->apps_reloads, 15);
        atomic_store(&m->offset_maps_truncated, 17);
        atomic_store(&m->offset_maps_ignored, 18);
        atomic_store(&m->offset_map_reads_failed, 31);
        atomic_store(&m->events_lost_retention, 30);
        atomic_store(&m->partition_restarts, 32);
        atomic_store(&m->events_already_done, 19);
        atomic_store(&m->apps_reload_failures, 16);
        atomic_store(&m->inflight_requests, 10);
        atomic_store(&m->pending_actions, 11);
        atomic_store(&m->held_bytes, 4096);
        atomic_store(&m->held_bytes_limit, 214748364);
        atomic_store(&m->partitions_paused, 12);
        atomic_store(&m->partitions_assigned, 13);
        atomic_store(&m->concurrency_limit, 14);
        atomic_store(&m->consume_delay_ms, 2500);
        atomic_store(&m->dlq_waiting, 7);
        atomic_store(&m->dlq_oldest_ms, 61250);
        atomic_store(&m->api_outage, 1);
        text = lb_metrics_render(m, "1.2.3");
        assert_non_null(text);

        assert_line(text, "# HELP leanbridge_events_consumed_total Kafka "
                          "messages consumed from the input topics.");
        assert_line(text, "# TYPE leanbridge_events_consumed_total counter");
        assert_line(text, "leanbridge_events_consumed_total 3");
        assert_line(text, "leanbridge_actions_delivered_total 2");
        assert_line(text, "leanbridge_actions_warned_total 1");
        assert_line(text, "leanbridge_events_skipped_total 4");
        assert_line(text, "leanbridge_request_retries_total 5");
        assert_line(text, "leanbridge_request_splits_total 6");
        assert_line(text, "leanbridge_billable_user_lookups_total 7");
        assert_line(text, "leanbridge_dlq_produce_retries_total 8");
        assert_line(text, "leanbridge_offsets_committed_total 9");
        assert_line(text, "# TYPE leanbridge_inflight_requests gauge");
        assert_line(text, "leanbridge_inflight_requests 10");
        assert_line(text, "leanbridge_pending_actions 11");
        assert_line(text, "leanbridge_held_bytes 4096");
        assert_line(text, "leanbridge_held_bytes_limit 214748364");
        assert_line(text, "leanbridge_partitions_paused 12");
        assert_line(text, "leanbridge_partitions_assigned 13");
        assert_line(text, "leanbridge_concurrency_limit 14");
        assert_line(text, "leanbridge_apps_reloads_total 15");
        assert_line(text, "leanbridge_offset_maps_truncated_total 17");
        assert_line(text, "leanbridge_offset_maps_ignored_total 18");
        assert_line(text, "leanbridge_offset_map_reads_failed_total 31");
        assert_line(text, "leanbridge_events_lost_to_retention_total 30");
        assert_line(text, "leanbridge_partition_restarts_total 32");
        assert_line(text, "leanbridge_events_already_done_total 19");
        assert_line(text, "leanbridge_apps_reload_failures_total 16");
        assert_line(text, "# TYPE leanbridge_consume_delay_seconds gauge");
        assert_line(text, "leanbridge_consume_delay_seconds 2.5");
        assert_line(text, "# TYPE leanbridge_dlq_waiting gauge");
        assert_line(text, "leanbridge_dlq_waiting 7");
        assert_line(text, "# TYPE leanbridge_dlq_oldest_waiting_seconds gauge");
        assert_line(text, "leanbridge_dlq_oldest_waiting_seconds 61.25");
        assert_line(text, "# TYPE leanbridge_api_outage gauge");
        assert_line(text, "leanbridge_api_outage 1");
        assert_line(text, "# TYPE leanbridge_consumer_lag gauge");
        assert_line(text, "# TYPE leanbridge_build_info gauge");
        assert_line(text, "leanbridge_build_info{version=\"1.2.3\"} 1");
        free(text);
}

static void test_every_counter_family_is_total(void **state)
{
        char *text = lb_metrics_render(*state, "v");
        char *line, *save = NULL;

        assert_non_null(text);
        for (line = strtok_r(text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                const char *suffix = " counter";
                size_t n = strlen(line), sn = strlen(suffix);

                if (strncmp(line, "# TYPE ", 7) != 0 || n < sn ||
                    strcmp(line + n - sn, suffix) != 0)
                        continue;
                line[n - sn] = '\0';
                n -= sn;
                if (n < 6 || strcmp(line + n - 6, "_total") != 0)
                        fail_msg("counter without _total: %s", line + 7);
        }
        free(text);
}

static void test_dead_lettered_all_stages(void **state)
{
        lb_metrics_t *m = *state;
        char *text;

        atomic_fetch_add(&m->dead_lettered[LB_STAGE_API], 2);
        atomic_fetch_add(&m->dead_lettered[LB_STAGE_NONE], 9);
        text = lb_metrics_render(m, "v");
        assert_non_null(text);
        assert_line(text,
                    "# TYPE leanbridge_actions_dead_lettered_total counter");
        assert_line(
            text, "leanbridge_actions_dead_lettered_total{stage=\"parse\"} 0");
        assert_line(
            text,
            "leanbridge_actions_dead_lettered_total{stage=\"validate\"} 0");
        assert_line(text,
                    "leanbridge_actions_dead_lettered_total{stage=\"api\"} 2");
        assert_line(text,
                    "leanbridge_actions_dead_lettered_total{stage=\"http\"} 0");
        assert_line(text, "leanbridge_actions_dead_lettered_total"
                          "{stage=\"retries_exhausted\"} 0");
        assert_null(strstr(text, "stage=\"none\""));
        free(text);
}

static void test_requests_by_status(void **state)
{
        lb_metrics_t *m = *state;
        char *text;

        text = lb_metrics_render(m, "v");
        assert_non_null(text);
        /* error is always present, statuses only once seen */
        assert_line(text, "leanbridge_requests_total{status=\"error\"} 0");
        assert_null(strstr(text, "leanbridge_requests_total{status=\"2"));
        free(text);

        lb_metrics_count_request(m, 200);
        lb_metrics_count_request(m, 200);
        lb_metrics_count_request(m, 429);
        lb_metrics_count_request(m, 599);
        lb_metrics_count_request(m, 0);
        lb_metrics_count_request(m, 600);
        lb_metrics_count_request(m, -1);
        text = lb_metrics_render(m, "v");
        assert_non_null(text);
        assert_line(text, "# TYPE leanbridge_requests_total counter");
        assert_line(text, "leanbridge_requests_total{status=\"200\"} 2");
        assert_line(text, "leanbridge_requests_total{status=\"429\"} 1");
        assert_line(text, "leanbridge_requests_total{status=\"599\"} 1");
        assert_line(text, "leanbridge_requests_total{status=\"error\"} 3");
        assert_null(strstr(text, "status=\"500\""));
        free(text);
}

static void test_wait_and_sent_early(void **state)
{
        lb_metrics_t *m = *state;
        char *text;

        lb_hist_observe(&m->action_wait, 0.05);
        lb_hist_observe(&m->action_wait, 29.5);
        lb_hist_observe(&m->action_wait, 700);
        atomic_fetch_add(&m->sent_early[LB_SEND_MEMORY], 7);
        atomic_fetch_add(&m->sent_early[LB_SEND_REVOCATION], 2);
        text = lb_metrics_render(m, "v");
        assert_non_null(text);
        assert_line(text, "# TYPE leanbridge_action_wait_seconds histogram");
        assert_line(text,
                    "leanbridge_action_wait_seconds_bucket{le=\"0.1\"} 1");
        assert_line(text, "leanbridge_action_wait_seconds_bucket{le=\"20\"} 1");
        assert_line(text, "leanbridge_action_wait_seconds_bucket{le=\"30\"} 2");
        assert_line(text,
                    "leanbridge_action_wait_seconds_bucket{le=\"600\"} 2");
        assert_line(text,
                    "leanbridge_action_wait_seconds_bucket{le=\"+Inf\"} 3");
        assert_line(text, "leanbridge_action_wait_seconds_count 3");
        assert_line(text, "# TYPE leanbridge_actions_sent_early_total counter");
        assert_line(text,
                    "leanbridge_actions_sent_early_total{reason=\"full\"} 0");
        assert_line(text,
                    "leanbridge_actions_sent_early_total{reason=\"memory\"} 7");
        assert_line(
            text, "leanbridge_actions_sent_early_total{reason=\"shutdown\"} 0");
        assert_line(
            text,
            "leanbridge_actions_sent_early_total{reason=\"revocation\"} 2");
        /* "due" is on time by definition: no series */
        assert_null(strstr(text, "reason=\"due\""));
        free(text);
}

static void test_histogram_buckets(void **state)
{
        lb_metrics_t *m = *state;
        char *text;

        lb_hist_observe(&m->batch_actions, 1);
        lb_hist_observe(&m->batch_actions, 3);
        lb_hist_observe(&m->batch_actions, 500);
        lb_hist_observe(&m->batch_actions, 501);
        lb_hist_observe(&m->request_duration, 0.004);
        lb_hist_observe(&m->request_duration, 0.3);
        lb_hist_observe(&m->request_duration, 1.5);
        text = lb_metrics_render(m, "v");
        assert_non_null(text);

        assert_line(text, "# TYPE leanbridge_batch_actions histogram");
        assert_line(text, "leanbridge_batch_actions_bucket{le=\"1\"} 1");
        assert_line(text, "leanbridge_batch_actions_bucket{le=\"2\"} 1");
        assert_line(text, "leanbridge_batch_actions_bucket{le=\"5\"} 2");
        assert_line(text, "leanbridge_batch_actions_bucket{le=\"400\"} 2");
        assert_line(text, "leanbridge_batch_actions_bucket{le=\"500\"} 3");
        assert_line(text, "leanbridge_batch_actions_bucket{le=\"+Inf\"} 4");
        assert_line(text, "leanbridge_batch_actions_sum 1005");
        assert_line(text, "leanbridge_batch_actions_count 4");
        assert_int_equal(atomic_load(&m->batch_actions.count), 4);

        assert_line(text, "# TYPE leanbridge_batch_users histogram");
        assert_line(text, "leanbridge_batch_users_bucket{le=\"50\"} 0");
        assert_line(text, "leanbridge_batch_users_bucket{le=\"+Inf\"} 0");
        assert_line(text, "leanbridge_batch_users_sum 0");
        assert_line(text, "leanbridge_batch_users_count 0");

        assert_line(text,
                    "# TYPE leanbridge_request_duration_seconds histogram");
        assert_line(text, "leanbridge_request_duration_seconds_bucket"
                          "{le=\"0.005\"} 1");
        assert_line(text, "leanbridge_request_duration_seconds_bucket"
                          "{le=\"0.25\"} 1");
        assert_line(text, "leanbridge_request_duration_seconds_bucket"
                          "{le=\"0.5\"} 2");
        assert_line(text, "leanbridge_request_duration_seconds_bucket"
                          "{le=\"1\"} 2");
        assert_line(text, "leanbridge_request_duration_seconds_bucket"
                          "{le=\"2.5\"} 3");
        assert_line(text, "leanbridge_request_duration_seconds_bucket"
                          "{le=\"30\"} 3");
        assert_line(text, "leanbridge_request_duration_seconds_bucket"
                          "{le=\"+Inf\"} 3");
        assert_line(text, "leanbridge_request_duration_seconds_sum 1.804");
        assert_line(text, "leanbridge_request_duration_seconds_count 3");
        free(text);
}

static void test_histogram_bounds(void **state)
{
        lb_metrics_t *m = *state;

        assert_int_equal(m->batch_actions.n_bounds, 11);
        assert_true(m->batch_actions.bounds[10] == 500);
        assert_int_equal(m->batch_users.n_bounds, 8);
        assert_true(m->batch_users.bounds[7] == 50);
        assert_int_equal(m->request_duration.n_bounds, 12);
        assert_true(m->request_duration.bounds[0] == 0.005);
        assert_true(m->request_duration.bounds[11] == 30);
}

static void test_histogram_odd_values(void **state)
{
        lb_metrics_t *m = *state;

        lb_hist_observe(&m->batch_users, NAN);
        assert_int_equal(atomic_load(&m->batch_users.count), 0);
        lb_hist_observe(&m->batch_users, -3);
        assert_int_equal(atomic_load(&m->batch_users.counts[0]), 1);
        assert_int_equal(atomic_load(&m->batch_users.sum_micro), 0);
        lb_hist_observe(&m->batch_users, 1e300);
        assert_int_equal(atomic_load(&m->batch_users.counts[8]), 1);
        assert_true(atomic_load(&m->batch_users.sum_micro) == UINT64_MAX);
}

static void test_lag_from_stats(void **state)
{
        lb_metrics_t *m = *state;
        char *text;

        assert_int_equal(
            lb_metrics_update_lag(m, stats_json, strlen(stats_json)), 0);
        assert_int_equal(m->lag_cnt, 3);
        text = lb_metrics_render(m, "v");
        assert_non_null(text);
        assert_line(text, "leanbridge_consumer_lag"
                          "{topic=\"events\",partition=\"0\"} 42");
        assert_line(text, "leanbridge_consumer_lag"
                          "{topic=\"events\",partition=\"2\"} 0");
        assert_line(text, "leanbridge_consumer_lag"
                          "{topic=\"other.events\",partition=\"3\"} 1234567");
        assert_null(strstr(text, "partition=\"-1\""));
        assert_null(strstr(text, "partition=\"1\""));
        assert_null(strstr(text, "partition=\"4\""));
        free(text);

        /* Not JSON, or not an object: the table stays as it was. */
        assert_int_equal(lb_metrics_update_lag(m, "{\"topics\":", 10), -1);
        assert_int_equal(lb_metrics_update_lag(m, "[1,2]", 5), -1);
        assert_int_equal(m->lag_cnt, 3);

        /* Unassigned: no topics, no series; the family stays. */
        assert_int_equal(lb_metrics_update_lag(m, "{\"topics\":{}}", 13), 0);
        assert_int_equal(m->lag_cnt, 0);
        text = lb_metrics_render(m, "v");
        assert_non_null(text);
        assert_line(text, "# TYPE leanbridge_consumer_lag gauge");
        assert_null(strstr(text, "leanbridge_consumer_lag{"));
        free(text);
}

static void test_lag_table_bounded(void **state)
{
        lb_metrics_t *m = *state;
        size_t cap = 64 + LB_METRICS_MAX_LAG * 40, len = 0;
        char *json = malloc(cap);
        int i;

        assert_non_null(json);
        len += (size_t)snprintf(json + len, cap - len,
                                "{\"topics\":{\"t\":{\"partitions\":{");
        for (i = 0; i < LB_METRICS_MAX_LAG + 10; i++)
                len += (size_t)snprintf(json + len, cap - len,
                                        "%s\"%d\":{\"consumer_lag\":%d}",
                                        i ? "," : "", i, i);
        len += (size_t)snprintf(json + len, cap - len, "}}}}");
        assert_true(len < cap);
        assert_int_equal(lb_metrics_update_lag(m, json, len), 0);
        assert_int_equal(m->lag_cnt, LB_METRICS_MAX_LAG);
        free(json);
}

static void test_label_escaping(void **state)
{
        lb_metrics_t *m = *state;
        const char stats[] = "{\"topics\":{\"a\\\\b\\\"c\\nd\":{\"partitions\":"
                             "{\"0\":{\"consumer_lag\":5}}}}}";
        char *text;

        assert_int_equal(lb_metrics_update_lag(m, stats, strlen(stats)), 0);
        text = lb_metrics_render(m, "1.0 \"beta\"\\x\ny");
        assert_non_null(text);
        assert_line(text, "leanbridge_consumer_lag"
                          "{topic=\"a\\\\b\\\"c\\nd\",partition=\"0\"} 5");
        assert_line(text, "leanbridge_build_info"
                          "{version=\"1.0 \\\"beta\\\"\\\\x\\ny\"} 1");
        free(text);

        text = lb_metrics_render(m, NULL);
        assert_non_null(text);
        assert_line(text, "leanbridge_build_info{version=\"unknown\"} 1");
        free(text);
}

static void test_promtool_lint(void **state)
{
        lb_metrics_t *m = *state;
        char path[] = "/tmp/lb_metrics_XXXXXX";
        char cmd[128];
        char *text;
        FILE *f;
        int fd, rc;

        if (system("command -v promtool >/dev/null 2>&1") != 0)
                skip_or_fail("promtool not installed (Debian package "
                             "prometheus) for the lint");
        atomic_store(&m->events_consumed, 10);
        lb_metrics_count_request(m, 200);
        lb_metrics_count_request(m, 503);
        lb_hist_observe(&m->batch_actions, 7);
        lb_hist_observe(&m->batch_users, 2);
        lb_hist_observe(&m->request_duration, 0.12);
        assert_int_equal(
            lb_metrics_update_lag(m, stats_json, strlen(stats_json)), 0);
        text = lb_metrics_render(m, "0.1.0");
        assert_non_null(text);

        fd = mkstemp(path);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        free(text);

        snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
        rc = system(cmd);
        unlink(path);
        assert_int_equal(rc, 0);
}

/* The operator's summary line: due once a minute (or forced), rates over
 * the span since the last line, and the memory-bound early sends since
 * then. */
static void test_summary_line(void **state)
{
        lb_metrics_t *m = *state;
        lb_summary_t s = {.last_ms = 1000};
        lb_summary_loop_t loop = {.pending = 7,
                                  .live = 9,
                                  .inflight = 2,
                                  .concurrency = 4,
                                  .paused = 1};
        char line[512];
        uint64_t early = 99;
        assert_int_equal(lb_metrics_summary(m, &s, &loop, 1000 + 59999, 0, line,
                                            sizeof(line), &early),
                         0);
        atomic_store(&m->events_consumed, 1200);
        atomic_store(&m->actions_delivered, 600);
        atomic_store(&m->dead_lettered[LB_STAGE_PARSE], 3);
        atomic_store(&m->dead_lettered[LB_STAGE_CONSUMER_ERROR], 1);
        atomic_store(&m->sent_early[LB_SEND_MEMORY], 50);
        assert_int_equal(lb_metrics_summary(m, &s, &loop, 1000 + 60000, 0, line,
                                            sizeof(line), &early),
                         1);
        assert_non_null(strstr(line, "consumed=1200 (20/s) delivered=600 "
                                     "(10/s) dead_lettered=4 "));
        assert_non_null(strstr(line, "pending=7 live=9 inflight=2 "
                                     "concurrency=4 paused=1"));
        assert_int_equal(early, 50);
        /* forced, 30 s later: rates over those 30 s; no new early sends */
        atomic_store(&m->events_consumed, 1500);
        assert_int_equal(lb_metrics_summary(m, &s, &loop, 1000 + 90000, 1, line,
                                            sizeof(line), &early),
                         1);
        assert_non_null(strstr(line, "consumed=1500 (10/s)"));
        assert_int_equal(early, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_counters_and_gauges, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_every_counter_family_is_total,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_dead_lettered_all_stages,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_requests_by_status, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_wait_and_sent_early, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_histogram_buckets, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_histogram_bounds, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_histogram_odd_values, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_lag_from_stats, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_lag_table_bounded, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_label_escaping, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_promtool_lint, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_summary_line, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
