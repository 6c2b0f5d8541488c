/*
 * test_dlq.c: the dead-letter producer (src/dlq.c) against librdkafka's
 * mock cluster in this process: the header contract (stage, message, HTTP
 * status only when there was a response, source, app id only when known,
 * attempts, the source's timestamp: the record's own is when it was
 * written), the original message's own headers carried (not its
 * leanbridge.* ones), key and value unchanged, and a record too large for
 * the producer written cut with the original length in a header; one in a
 * batch the broker refused as too large written again alone, whole. Each
 * record is reported exactly once, acknowledged. Dead letters not written
 * are counted, with the oldest one's wait, also while others are.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "dlq.h"
#include "offsets.h"
#include "arena.h"

/* The arena every action of this test lives in (reachable: no leak). */
static lb_arena_t *arena(void)
{
        static lb_arena_t *a;
        if (!a)
                a = lb_arena_new();
        return a;
}

#define BIG 3000

typedef struct {
        int reported;
        int failed;
} reports_t;

static void on_report(void *opaque, lb_action_t *a, int err, const char *errstr)
{
        reports_t *r = opaque;
        (void)errstr;
        r->reported++;
        r->failed += err != 0;
        lb_partition_unref(a->partition);
        lb_action_destroy(a);
}

static lb_action_t *action(lb_partition_t *p, const char *key,
                           const char *value, size_t value_len, int64_t offset,
                           lb_stage_t stage, int status, const char *msg,
                           int attempts)
{
        lb_action_t *a = lb_action_new(arena(), key, key ? strlen(key) : 0,
                                       value, value_len);
        assert_non_null(a);
        a->partition = p;
        lb_partition_ref(p);
        a->offset = offset;
        a->timestamp_ms = 1700000000000 + offset;
        a->attempts = attempts;
        a->app = -1; /* unknown: no leanbridge.app.id */
        lb_action_set_error(a, stage, status, msg);
        return a;
}

/* The header's value as a string, or NULL when absent. */
static const char *header(rd_kafka_message_t *m, const char *name)
{
        static char buf[4][256];
        static int turn;
        rd_kafka_headers_t *h;
        const void *v;
        size_t n;
        if (rd_kafka_message_headers(m, &h) ||
            rd_kafka_header_get_last(h, name, &v, &n))
                return NULL;
        char *out = buf[turn++ % 4];
        snprintf(out, sizeof(buf[0]), "%.*s", (int)n, (const char *)v);
        return out;
}

/* Reads n records of topic partition 0 from the start. @returns the
 * consumer, to be destroyed after the messages (it waits for them). */
static rd_kafka_t *read_back(const char *bootstrap, rd_kafka_message_t **out,
                             int n)
{
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(c, "group.id", "test", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, "dlq", 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(rk, parts), 0);
        rd_kafka_topic_partition_list_destroy(parts);
        for (int got = 0; got < n;) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (m && !m->err)
                        out[got++] = m;
                else if (m)
                        rd_kafka_message_destroy(m);
        }
        return rk;
}

/* Frees what read_back returned: the n messages, then their consumer. */
static void read_done(rd_kafka_t *consumer, rd_kafka_message_t **m, int n)
{
        for (int i = 0; i < n; i++)
                rd_kafka_message_destroy(m[i]);
        rd_kafka_consumer_close(consumer);
        rd_kafka_destroy(consumer);
}

/* A dead-letter producer on a mock cluster of its own, with topic "dlq". */
typedef struct {
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc;
        lb_config_t *conf;
        lb_dlq_t *d;
        reports_t r;
} fixture_t;

/* Starts f with the producer setting name = value (a kafka.producer.*),
 * on a cluster of brokers, "dlq" of parts partitions. */
static void fixture_start_err(fixture_t *f, int brokers, int parts,
                              rd_kafka_resp_err_t topic_err, const char *name,
                              const char *value)
{
        char err[512];
        memset(f, 0, sizeof(*f));
        rd_kafka_conf_t *mc_conf = rd_kafka_conf_new();
        rd_kafka_conf_set(mc_conf, "log_level", "3", err, sizeof(err));
        f->host = rd_kafka_new(RD_KAFKA_PRODUCER, mc_conf, err, sizeof(err));
        assert_non_null(f->host);
        f->mc = rd_kafka_mock_cluster_new(f->host, brokers);
        assert_non_null(f->mc);
        assert_int_equal(rd_kafka_mock_topic_create(f->mc, "dlq", parts, 1), 0);
        if (topic_err) /* every Metadata answer says it of the topic */
                rd_kafka_mock_topic_set_error(f->mc, "dlq", topic_err);
        f->conf = lb_config_new();
        const char *kv[] = {"kafka.bootstrap.servers",
                            rd_kafka_mock_cluster_bootstraps(f->mc),
                            "dlq.topic",
                            "dlq",
                            "apps",
                            "app1:k1",
                            name,
                            value};
        for (size_t i = 0; i < 8; i += 2)
                assert_int_equal(lb_config_set(f->conf, kv[i], kv[i + 1], "t",
                                               err, sizeof(err)),
                                 0);
        f->d = lb_dlq_new(f->conf, on_report, &f->r, -1, err, sizeof(err));
        assert_non_null(f->d);
}

static void fixture_start_on(fixture_t *f, int brokers, int parts,
                             const char *name, const char *value)
{
        fixture_start_err(f, brokers, parts, 0, name, value);
}

static void fixture_start(fixture_t *f, const char *name, const char *value)
{
        fixture_start_on(f, 1, 1, name, value);
}

static void fixture_stop(fixture_t *f)
{
        lb_dlq_destroy(f->d, 1000);
        lb_config_destroy(f->conf);
        rd_kafka_mock_cluster_destroy(f->mc);
        rd_kafka_destroy(f->host);
}

static void test_headers_and_cut_record(void **state)
{
        (void)state;
        fixture_t f;
        int64_t written_from = (int64_t)time(NULL) * 1000 - 1000;
        fixture_start(&f, "kafka.producer.message.max.bytes", "2000");
        lb_dlq_t *d = f.d;
        rd_kafka_mock_cluster_t *mc = f.mc;
        lb_partition_t *p = lb_partition_new("events", 3);
        char *big = malloc(BIG);
        memset(big, 'b', BIG);

        lb_action_t *a1 = action(p, "k1", "{\"a\":1}", 7, 10, LB_STAGE_HTTP,
                                 403, "HTTP 403: Invalid access key", 1);
        rd_kafka_headers_t *h1 = rd_kafka_headers_new(3);
        rd_kafka_header_add(h1, "traceparent", -1, "00-abc-01", -1);
        rd_kafka_header_add(h1, "x-null", -1, NULL, 0);
        rd_kafka_header_add(h1, "leanbridge.error.stage", -1, "old", -1);
        assert_int_equal(lb_action_take_headers(a1, h1), 0);
        a1->app = 0; /* app1 */
        lb_dlq_send(d, a1);
        lb_dlq_send(d, action(p, NULL, "{\"b\":2}", 7, 11,
                              LB_STAGE_RETRIES_EXHAUSTED, 0,
                              "transport: timed out", 3));
        lb_action_t *cut =
            action(p, "k3", big, BIG, 12, LB_STAGE_PARSE, 0, "not JSON", 0);
        rd_kafka_headers_t *h3 = rd_kafka_headers_new(1);
        rd_kafka_header_add(h3, "traceparent", -1, "00-def-01", -1);
        assert_int_equal(lb_action_take_headers(cut, h3), 0);
        lb_dlq_send(d, cut);
        assert_int_equal(cut->dlq_cut, 1);
        assert_int_equal(lb_dlq_outstanding(d), 3);
        while (f.r.reported < 3)
                lb_dlq_poll(d);
        assert_int_equal(f.r.failed, 0);
        assert_int_equal(lb_dlq_outstanding(d), 0);

        rd_kafka_message_t *m[3];
        rd_kafka_t *consumer =
            read_back(rd_kafka_mock_cluster_bootstraps(mc), m, 3);
        /* 1: an HTTP refusal */
        assert_string_equal(header(m[0], "leanbridge.error.stage"), "http");
        assert_string_equal(header(m[0], "leanbridge.error.message"),
                            "HTTP 403: Invalid access key");
        assert_string_equal(header(m[0], "leanbridge.error.http.status"),
                            "403");
        assert_string_equal(header(m[0], "leanbridge.source.topic"), "events");
        assert_string_equal(header(m[0], "leanbridge.source.partition"), "3");
        assert_string_equal(header(m[0], "leanbridge.source.offset"), "10");
        assert_string_equal(header(m[0], "leanbridge.app.id"), "app1");
        assert_string_equal(header(m[0], "leanbridge.attempts"), "1");
        assert_null(header(m[0], "leanbridge.value.truncated"));
        assert_null(header(m[0], "leanbridge.headers.dropped"));
        /* Stamped when written, so that the topic's retention counts from
         * then, not from the event's (2023) time; that one is a header. */
        assert_string_equal(header(m[0], "leanbridge.source.timestamp"),
                            "1700000000010");
        assert_true(rd_kafka_message_timestamp(m[0], NULL) >= written_from);
        /* The original's headers, first and unchanged; not its stale
         * leanbridge.* one. */
        rd_kafka_headers_t *h0;
        const char *name;
        const void *v;
        size_t n;
        assert_int_equal(rd_kafka_message_headers(m[0], &h0), 0);
        assert_int_equal(rd_kafka_header_get_all(h0, 0, &name, &v, &n), 0);
        assert_string_equal(name, "traceparent");
        assert_string_equal(header(m[0], "traceparent"), "00-abc-01");
        assert_int_equal(rd_kafka_header_get_all(h0, 1, &name, &v, &n), 0);
        assert_string_equal(name, "x-null");
        assert_null(v);
        assert_int_equal(
            rd_kafka_header_get(h0, 1, "leanbridge.error.stage", &v, &n),
            RD_KAFKA_RESP_ERR__NOENT);
        assert_int_equal(m[0]->key_len, 2);
        assert_memory_equal(m[0]->key, "k1", 2);
        assert_int_equal(m[0]->len, 7);
        assert_memory_equal(m[0]->payload, "{\"a\":1}", 7);
        /* 2: no response, no app, no key */
        assert_string_equal(header(m[1], "leanbridge.error.stage"),
                            "retries_exhausted");
        assert_null(header(m[1], "leanbridge.error.http.status"));
        assert_null(header(m[1], "leanbridge.app.id"));
        assert_string_equal(header(m[1], "leanbridge.attempts"), "3");
        assert_null(m[1]->key);
        /* 3: too large for the producer: written cut, saying so */
        assert_int_equal(m[2]->len, LB_DLQ_CUT_VALUE);
        assert_memory_equal(m[2]->payload, big, LB_DLQ_CUT_VALUE);
        assert_string_equal(header(m[2], "leanbridge.value.truncated"), "3000");
        assert_null(header(m[2], "leanbridge.key.truncated"));
        assert_string_equal(header(m[2], "leanbridge.source.offset"), "12");
        assert_string_equal(header(m[2], "leanbridge.error.stage"), "parse");
        assert_null(header(m[2], "traceparent")); /* a cut copy: none */
        assert_string_equal(header(m[2], "leanbridge.headers.dropped"), "1");
        read_done(consumer, m, 3);
        free(big);
        lb_partition_unref(p);
        fixture_stop(&f);
}

/* Records the producer's queue has no room for wait their turn, counted as
 * retries (the metric an operator watches when the DLQ cannot be written),
 * and every one is written in the end. A round of retries stops at the
 * first record the queue has no room for: only that one was tried again,
 * not the ones behind it. */
static void test_queue_full_counted(void **state)
{
        (void)state;
        fixture_t f;
        fixture_start(&f, "kafka.producer.queue.buffering.max.messages", "1");
        lb_partition_t *p = lb_partition_new("events", 3);
        for (int64_t o = 0; o < 5; o++)
                lb_dlq_send(f.d, action(p, "k", "{}", 2, o, LB_STAGE_PARSE, 0,
                                        "not JSON", 0));
        assert_int_equal(lb_dlq_outstanding(f.d), 1);
        assert_int_equal(lb_dlq_retries(f.d), 4);
        while (f.r.reported < 5)
                lb_dlq_poll(f.d);
        assert_int_equal(f.r.failed, 0);
        /* a round a second, each writing one and trying the next: 3 more
         * (a slow round may add one); counting those behind made it 10 */
        uint64_t retries = lb_dlq_retries(f.d);
        assert_true(retries >= 7 && retries <= 8);
        lb_partition_unref(p);
        fixture_stop(&f);
}

/* The broker refuses a batch as too large (MESSAGE_TOO_LARGE: the topic's
 * max.message.bytes applies to the batch) for each record in it, also for
 * records that fit alone. Such a record is written again alone and whole;
 * only one refused alone too is written cut. The refusals come from the
 * mock cluster's next Produce requests: one for the first record (then
 * accepted alone), two for the second (refused alone too). */
static void test_refused_batch_written_alone(void **state)
{
        (void)state;
        fixture_t f;
        fixture_start(&f, "kafka.producer.linger.ms", "5");
        lb_partition_t *p = lb_partition_new("events", 3);
        char *big = malloc(BIG);
        memset(big, 'w', BIG);
        rd_kafka_mock_push_request_errors(f.mc, 0 /* Produce */, 1,
                                          RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
        lb_action_t *whole =
            action(p, "k1", big, BIG, 20, LB_STAGE_PARSE, 0, "not JSON", 0);
        lb_dlq_send(f.d, whole);
        while (f.r.reported < 1)
                lb_dlq_poll(f.d);
        rd_kafka_mock_push_request_errors(f.mc, 0 /* Produce */, 2,
                                          RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                          RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
        lb_dlq_send(f.d, action(p, "k2", big, BIG, 21, LB_STAGE_PARSE, 0,
                                "not JSON", 0));
        while (f.r.reported < 2)
                lb_dlq_poll(f.d);
        assert_int_equal(f.r.failed, 0);

        rd_kafka_message_t *m[2];
        rd_kafka_t *consumer =
            read_back(rd_kafka_mock_cluster_bootstraps(f.mc), m, 2);
        assert_string_equal(header(m[0], "leanbridge.source.offset"), "20");
        assert_int_equal(m[0]->len, BIG);
        assert_memory_equal(m[0]->payload, big, BIG);
        assert_null(header(m[0], "leanbridge.value.truncated"));
        assert_string_equal(header(m[1], "leanbridge.source.offset"), "21");
        assert_int_equal(m[1]->len, LB_DLQ_CUT_VALUE);
        assert_string_equal(header(m[1], "leanbridge.value.truncated"), "3000");
        read_done(consumer, m, 2);
        free(big);
        lb_partition_unref(p);
        fixture_stop(&f);
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One partition of the DLQ topic cannot be written (its leader is down)
 * while the other's records are acknowledged all along: the stuck ones
 * are seen waiting, and for how long, although reports keep coming (a
 * quiet time measured from the last report never grew past 200 ms here,
 * so nothing was said before message.timeout.ms). Once the leader is
 * back, nothing waits. */
static void test_stuck_partition_seen(void **state)
{
        (void)state;
        fixture_t f;
        fixture_start_on(&f, 2, 2, "kafka.producer.message.timeout.ms",
                         "60000");
        rd_kafka_mock_partition_set_leader(f.mc, "dlq", 0, 1);
        rd_kafka_mock_partition_set_leader(f.mc, "dlq", 1, 2);
        rd_kafka_mock_broker_set_down(f.mc, 2);
        lb_partition_t *p = lb_partition_new("events", 3);
        assert_int_equal(lb_dlq_waiting(f.d), 0);
        assert_int_equal(lb_dlq_oldest_ms(f.d, now_ms()), 0);
        int64_t start = now_ms(), next = start;
        int sent = 0, reported_before = 0;
        char key[16];
        while (now_ms() - start < 2500) {
                if (now_ms() >= next) { /* keys land on both partitions */
                        snprintf(key, sizeof(key), "k%d", sent);
                        lb_dlq_send(f.d,
                                    action(p, key, "{}", 2, sent,
                                           LB_STAGE_PARSE, 0, "not JSON", 0));
                        sent++;
                        next += 100;
                }
                if (now_ms() - start < 1500)
                        reported_before = f.r.reported;
                lb_dlq_poll(f.d);
                struct timespec nap = {0, 5 * 1000 * 1000};
                nanosleep(&nap, NULL);
        }
        /* written all along, on partition 0 */
        assert_true(reported_before > 0);
        assert_true(f.r.reported > reported_before);
        size_t waiting = lb_dlq_waiting(f.d);
        assert_true(waiting > 0);
        assert_int_equal(waiting, (size_t)(sent - f.r.reported));
        assert_true(lb_dlq_oldest_ms(f.d, now_ms()) >= 2000);

        rd_kafka_mock_broker_set_up(f.mc, 2);
        while (f.r.reported < sent)
                lb_dlq_poll(f.d);
        assert_int_equal(f.r.failed, 0);
        assert_int_equal(lb_dlq_waiting(f.d), 0);
        assert_int_equal(lb_dlq_oldest_ms(f.d, now_ms()), 0);
        lb_partition_unref(p);
        fixture_stop(&f);
}

/* Counts the lines holding what in what the code under test writes to
 * stderr while run(opaque) runs. */
static int stderr_lines(void (*run)(void *), void *opaque, const char *what)
{
        char path[] = "/tmp/test_dlq_stderr_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        fflush(stderr);
        int saved = dup(2);
        assert_true(saved >= 0);
        assert_true(dup2(fd, 2) >= 0);
        run(opaque);
        fflush(stderr);
        assert_true(dup2(saved, 2) >= 0);
        close(saved);
        FILE *in = fdopen(fd, "r");
        assert_non_null(in);
        rewind(in);
        char line[1024];
        int n = 0;
        while (fgets(line, sizeof(line), in))
                n += strstr(line, what) != NULL;
        fclose(in);
        unlink(path);
        return n;
}

typedef struct {
        fixture_t *f;
        lb_partition_t *p;
} missing_run_t;

/* 200 dead letters for a topic that is not there, retried for 2.5 s. */
static void send_to_missing(void *opaque)
{
        missing_run_t *m = opaque;
        for (int64_t o = 0; o < 200; o++)
                lb_dlq_send(m->f->d, action(m->p, "k", "{}", 2, o,
                                            LB_STAGE_PARSE, 0, "not JSON", 0));
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
                lb_dlq_poll(m->f->d);
                nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
                clock_gettime(CLOCK_MONOTONIC, &t);
        } while ((t.tv_sec - t0.tv_sec) * 1000 +
                     (t.tv_nsec - t0.tv_nsec) / 1000000 <
                 2500);
}

/* A topic librdkafka knows is missing (or is not allowed to write to)
 * makes it refuse each record at once: the round of retries ends at the
 * first refusal, as at a full queue, and the refusal is said at most every
 * 10 s, not once per record per round (hundreds of lines a second). The
 * records wait, counted, and are never given up while they are ours. */
static void test_missing_topic_refusals_throttled(void **state)
{
        (void)state;
        fixture_t f;
        fixture_start_err(&f, 1, 1, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                          "kafka.producer.topic.metadata.propagation.max.ms",
                          "0");
        missing_run_t m = {&f, lb_partition_new("events", 3)};
        int said = stderr_lines(send_to_missing, &m, "produce to dlq");
        assert_true(said >= 1);
        assert_true(said <= 2);
        assert_int_equal(f.r.reported, 0); /* none given up */
        assert_int_equal(lb_dlq_waiting(f.d), 200);
        lb_partition_unref(m.p);
        fixture_stop(&f);
        assert_int_equal(f.r.reported, 200); /* handed back at the stop */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_headers_and_cut_record),
            cmocka_unit_test(test_queue_full_counted),
            cmocka_unit_test(test_refused_batch_written_alone),
            cmocka_unit_test(test_stuck_partition_seen),
            cmocka_unit_test(test_missing_topic_refusals_throttled),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
