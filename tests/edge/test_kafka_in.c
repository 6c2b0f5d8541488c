/*
 * test_kafka_in.c: the consumer adapter (src/kafka_in.c) against
 * librdkafka's mock cluster in this process. New partitions are paused
 * until the group's committed offsets (with their metadata, the offset
 * map) are read, which the loop serves without blocking, or until the
 * read's deadline (rebalance.timeout.ms), after which a late answer, or a
 * late coordinator lookup, harms nothing, and a read unanswered for too
 * long is a fatal error; leaving the group
 * with fetched messages still queued does not abort, and its revocation is
 * answered at once (librdkafka 2.0.2 asserts when a queue served with
 * callbacks holds a fetched message, and the close forwards the consumer's
 * queue, prefetch included, to the queue it is served from). A record
 * without headers is known as such without asking librdkafka to parse
 * them; one with headers (or an empty value) never is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "admin.h"
#include "kafka_in.h"

#define TOPIC "ev"
#define MSGS  2000

typedef struct {
        int assigned, read, unread, revoking, at_once, commits;
        uint64_t assign_tag;
        int64_t committed; /* the offset read for partition 0 */
        char metadata[64];
} seen_t;

static void on_assigned(void *opaque,
                        const rd_kafka_topic_partition_list_t *parts,
                        uint64_t tag)
{
        seen_t *s = opaque;
        s->assigned += parts->cnt;
        s->assign_tag = tag;
}

static void on_read(void *opaque, const rd_kafka_topic_partition_list_t *offs,
                    uint64_t tag)
{
        seen_t *s = opaque;
        assert_non_null(offs);
        assert_true(tag == s->assign_tag);
        s->read++;
        for (int i = 0; i < offs->cnt; i++)
                if (offs->elems[i].partition == 0) {
                        s->committed = offs->elems[i].offset;
                        if (offs->elems[i].metadata_size &&
                            offs->elems[i].metadata_size < sizeof(s->metadata))
                                memcpy(s->metadata, offs->elems[i].metadata,
                                       offs->elems[i].metadata_size);
                }
}

/* A read that may fail (offs NULL: counted in unread). */
static void on_read_any(void *opaque,
                        const rd_kafka_topic_partition_list_t *offs,
                        uint64_t tag)
{
        seen_t *s = opaque;
        if (offs) {
                on_read(opaque, offs, tag);
                return;
        }
        assert_true(tag == s->assign_tag);
        s->read++;
        s->unread++;
}

static void on_revoking(void *opaque,
                        const rd_kafka_topic_partition_list_t *parts, int lost,
                        uint64_t tag, int at_once)
{
        seen_t *s = opaque;
        (void)parts;
        (void)lost;
        (void)tag;
        s->revoking++;
        s->at_once += at_once;
}

static void on_committed(void *opaque, rd_kafka_resp_err_t err,
                         const rd_kafka_topic_partition_list_t *offsets)
{
        seen_t *s = opaque;
        assert_int_equal(err, 0);
        s->commits += offsets->cnt;
}

static rd_kafka_mock_cluster_t *cluster(rd_kafka_t **host)
{
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "log_level", "3", err, sizeof(err));
        *host = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        assert_non_null(*host);
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(*host, 1);
        assert_non_null(mc);
        assert_int_equal(rd_kafka_mock_topic_create(mc, TOPIC, 2, 1), 0);
        return mc;
}

static void produce(const char *bootstrap, int n)
{
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        assert_non_null(p);
        for (int i = 0; i < n; i++)
                assert_int_equal(
                    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC),
                                      RD_KAFKA_V_PARTITION(i % 2),
                                      RD_KAFKA_V_VALUE("{}", 2),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END),
                    0);
        assert_int_equal(rd_kafka_flush(p, 10000), 0);
        rd_kafka_destroy(p);
}

/* The group's commit of partition 0 at offset, with metadata. */
static void commit(const char *bootstrap, const char *group, int64_t offset,
                   const char *metadata)
{
        char err[256];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(c, "group.id", group, err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_t *t =
            rd_kafka_topic_partition_list_add(l, TOPIC, 0);
        t->offset = offset;
        t->metadata = strdup(metadata);
        t->metadata_size = strlen(metadata);
        assert_int_equal(rd_kafka_commit(rk, l, 0), 0);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
}

/* A consumer of TOPIC in group; extra: NULL or "key=value" settings. */
static lb_kafka_in_t *consumer_with(
    const char *bootstrap, const char *group, seen_t *s, const char *extra,
    void (*read)(void *, const rd_kafka_topic_partition_list_t *, uint64_t))
{
        char err[512];
        lb_config_t *conf = lb_config_new();
        const char *kv[] = {"kafka.bootstrap.servers",
                            bootstrap,
                            "kafka.group.id",
                            group,
                            "input.topics",
                            TOPIC,
                            "dlq.topic",
                            "dlq",
                            "apps",
                            "app1:k1"};
        for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i += 2)
                assert_int_equal(lb_config_set(conf, kv[i], kv[i + 1], "t", err,
                                               sizeof(err)),
                                 0);
        lb_kafka_in_cbs_t cbs = {.opaque = s,
                                 .assigned = on_assigned,
                                 .committed_read = read,
                                 .revoking = on_revoking,
                                 .committed = on_committed};
        if (extra) {
                char key[128];
                const char *eq = strchr(extra, '=');
                assert_non_null(eq);
                snprintf(key, sizeof(key), "%.*s", (int)(eq - extra), extra);
                assert_int_equal(
                    lb_config_set(conf, key, eq + 1, "t", err, sizeof(err)), 0);
        }
        lb_kafka_in_t *in = lb_kafka_in_new(conf, &cbs, -1, err, sizeof(err));
        assert_non_null(in);
        lb_config_destroy(conf);
        return in;
}

static lb_kafka_in_t *consumer(const char *bootstrap, const char *group,
                               seen_t *s)
{
        return consumer_with(bootstrap, group, s, NULL, on_read);
}

/* Polls (and, with serve, serves the committed offsets read) for up to ms
 * or until done; @returns messages taken. */
static int poll_for(lb_kafka_in_t *in, int ms, int (*done)(const seen_t *),
                    const seen_t *s, int serve)
{
        int got = 0;
        for (int64_t end = lb_admin_now_ms() + ms;
             lb_admin_now_ms() < end && !(done && done(s));) {
                rd_kafka_message_t *m = lb_kafka_in_poll(in, 10);
                if (serve)
                        lb_kafka_in_serve(in);
                if (m) {
                        got += !m->err;
                        rd_kafka_message_destroy(m);
                }
        }
        return got;
}

static int was_read(const seen_t *s)
{
        return s->read > 0;
}

static int was_assigned(const seen_t *s)
{
        return s->assigned > 0;
}

/* New partitions wait, paused, for their committed offsets and map; then
 * they are fetched. */
static void test_paused_until_read(void **state)
{
        (void)state;
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc = cluster(&host);
        const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
        produce(bs, MSGS);
        commit(bs, "g1", 10, "lb1:map");
        seen_t s = {.committed = -2};
        lb_kafka_in_t *in = consumer(bs, "g1", &s);
        /* polled without serving the read: assigned, nothing fetched */
        int got = poll_for(in, 15000, was_assigned, &s, 0);
        got += poll_for(in, 2000, NULL, &s, 0);
        assert_int_equal(s.assigned, 2);
        assert_int_equal(got, 0);
        assert_int_equal(s.read, 0);
        /* served: the offsets and the map come, then the messages */
        poll_for(in, 10000, was_read, &s, 1);
        assert_int_equal(s.read, 1);
        assert_int_equal(s.committed, 10);
        assert_string_equal(s.metadata, "lb1:map");
        got = poll_for(in, 3000, NULL, &s, 1);
        assert_int_equal(got, MSGS - 10);
        assert_int_equal(lb_kafka_in_reentries(in), 0);
        lb_kafka_in_destroy(in);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(host);
}

/* The next n answers of broker 1 to requests of kind api come ms late. */
static void answer_late(rd_kafka_mock_cluster_t *mc, int16_t api, int n, int ms)
{
        for (int i = 0; i < n; i++)
                assert_int_equal(
                    rd_kafka_mock_broker_push_request_error_rtts(
                        mc, 1, api, 1, RD_KAFKA_RESP_ERR_NO_ERROR, ms),
                    0);
}

#define API_OFFSET_FETCH     9
#define API_FIND_COORDINATOR 10

/* A consumer of group reads the group's commits (partition 0's at 10,
 * with a map) while broker 1's answers to API key api come ms late, more
 * than the read may take (rebalance.timeout.ms 300): the partitions go on
 * without their maps at its deadline, every message comes once, and the
 * late answer is dropped. */
static void read_late(const char *group, int16_t api, int ms)
{
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc = cluster(&host);
        const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
        produce(bs, MSGS);
        commit(bs, group, 10, "lb1:map");
        answer_late(mc, api, 8, ms);
        seen_t s = {.committed = -2};
        lb_kafka_in_t *in = consumer_with(
            bs, group, &s, "rebalance.timeout.ms=300", on_read_any);
        poll_for(in, 20000, was_read, &s, 1);
        assert_int_equal(s.read, 1);
        assert_int_equal(s.unread, 1);
        int got = poll_for(in, 5000, NULL, &s, 1);
        assert_int_equal(got, MSGS - 10);
        assert_int_equal(s.read, 1); /* the late answer: dropped */
        assert_int_equal(s.committed, -2);
        lb_kafka_in_destroy(in);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(host);
}

/* The coordinator lookup answers late. librdkafka 2.0.2 frees an admin
 * request timed out during its coordinator lookup, then uses it when the
 * lookup answers: an abort, or librdkafka's main thread deadlocked (no
 * commit ever completes), as the churn test under load and this test on
 * the old code showed. */
static void test_read_outlasts_lookup(void **state)
{
        (void)state;
        read_late("g4", API_FIND_COORDINATOR, 1500);
}

/* The commits themselves answer late. */
static void test_read_answered_late(void **state)
{
        (void)state;
        read_late("g5", API_OFFSET_FETCH, 2000);
}

/* A read of the commits unanswered for longer than the bridge lets one
 * be (limits shortened here: 3 s, librdkafka's own timeout 8 s, every
 * OffsetFetch answered 10 s late) is a fatal error before librdkafka's
 * timeout can arm its bug: the bridge exits for a clean restart. */
static void test_read_unanswered_fatal(void **state)
{
        (void)state;
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc = cluster(&host);
        const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
        produce(bs, 10);
        answer_late(mc, API_OFFSET_FETCH, 8, 10000);
        seen_t s = {.committed = -2};
        lb_kafka_in_t *in = consumer_with(
            bs, "g6", &s, "rebalance.timeout.ms=300", on_read_any);
        lb_kafka_in_set_read_limits(in, 8000, 3000);
        char err[512] = "";
        poll_for(in, 20000, was_read, &s, 1);
        assert_int_equal(s.unread, 1); /* given up at 300 ms */
        assert_false(lb_kafka_in_fatal(in, err, sizeof(err)));
        for (int64_t end = lb_admin_now_ms() + 8000;
             lb_admin_now_ms() < end &&
             !lb_kafka_in_fatal(in, err, sizeof(err));)
                poll_for(in, 50, NULL, &s, 1);
        assert_true(lb_kafka_in_fatal(in, err, sizeof(err)));
        assert_non_null(strstr(err, "unanswered after 3 s"));
        lb_kafka_in_destroy(in);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(host);
}

/* A commit that waits returns its result to its caller only; one that
 * does not wait gives it to the committed callback, once. (librdkafka 2.0.2
 * also posts a waited commit's result to the configured commit callback
 * when the request names none: every such commit was counted twice.) */
static void test_commit_results_once(void **state)
{
        (void)state;
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc = cluster(&host);
        const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
        produce(bs, 20);
        seen_t s = {.committed = -2};
        lb_kafka_in_t *in = consumer(bs, "g5", &s);
        poll_for(in, 15000, was_read, &s, 1);
        assert_int_equal(poll_for(in, 3000, NULL, &s, 1), 20);
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, TOPIC, 0)->offset = 5;
        assert_int_equal(lb_kafka_in_commit(in, l, 0), 0);
        assert_int_equal(l->elems[0].err, 0);
        poll_for(in, 2000, NULL, &s, 1);
        assert_int_equal(s.commits, 0);
        l->elems[0].offset = 7;
        assert_int_equal(lb_kafka_in_commit(in, l, 1), 0);
        poll_for(in, 2000, NULL, &s, 1);
        assert_int_equal(s.commits, 1);
        rd_kafka_topic_partition_list_destroy(l);
        lb_kafka_in_destroy(in);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(host);
}

/* Leaving the group with a prefetch still queued: no abort, and the close's
 * revocation is answered at once. */
static void test_close_with_prefetch(void **state)
{
        (void)state;
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc = cluster(&host);
        const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
        produce(bs, MSGS);
        seen_t s = {0};
        lb_kafka_in_t *in = consumer(bs, "g3", &s);
        poll_for(in, 10000, was_read, &s, 1);
        /* one message taken: the rest of the fetch sits in the queue */
        rd_kafka_message_t *m = NULL;
        for (int t = 0; t < 10000 && !m; t += 10)
                m = lb_kafka_in_poll(in, 10);
        assert_non_null(m);
        rd_kafka_message_destroy(m);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL); /* more fetched meanwhile */
        lb_kafka_in_destroy(in);
        assert_int_equal(s.revoking, 1);
        assert_int_equal(s.at_once, 1);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(host);
}

/* Records with and without headers, compressed or not, and empty values:
 * lb_kafka_in_headerless() says 1 only for those librdkafka finds no
 * headers in, and on librdkafka 2.0 for every such record with a value
 * (an empty value is not where its headers are: it may say 0). */
static void test_headerless(void **state)
{
        (void)state;
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc = cluster(&host);
        const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
        char err[256];
        enum { N = 64 };
        for (int z = 0; z < 2; z++) {
                rd_kafka_conf_t *c = rd_kafka_conf_new();
                rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err,
                                  sizeof(err));
                rd_kafka_conf_set(c, "compression.codec", z ? "lz4" : "none",
                                  err, sizeof(err));
                rd_kafka_t *p =
                    rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
                assert_non_null(p);
                for (int i = 0; i < N; i++) {
                        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
                        if (i % 3 == 1)
                                rd_kafka_header_add(h, "h", -1, "v", -1);
                        if (i % 3 == 2)
                                rd_kafka_header_add(h, "", -1, NULL, 0);
                        const char *v = i % 5 ? "{\"a\":1}" : "";
                        size_t n = strlen(v);
                        assert_int_equal(
                            rd_kafka_producev(
                                p, RD_KAFKA_V_TOPIC(TOPIC),
                                RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE((void *)v, n),
                                RD_KAFKA_V_HEADERS(h),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
                            0);
                }
                assert_int_equal(rd_kafka_flush(p, 10000), 0);
                rd_kafka_destroy(p);
        }
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err));
        rd_kafka_conf_set(c, "group.id", "hdr", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, TOPIC, 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(rk, l), 0);
        rd_kafka_topic_partition_list_destroy(l);
        int got = 0, without = 0;
        int v2_0 = (rd_kafka_version() & 0xffff0000) == 0x02000000;
        for (int64_t end = lb_admin_now_ms() + 20000;
             got < 2 * N && lb_admin_now_ms() < end;) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m)
                        continue;
                if (!m->err) {
                        int sure = lb_kafka_in_headerless(m);
                        rd_kafka_headers_t *h;
                        int none = rd_kafka_message_headers(m, &h) ==
                                   RD_KAFKA_RESP_ERR__NOENT;
                        int i = (int)(m->offset % N);
                        assert_int_equal(none, i % 3 == 0);
                        if (sure)
                                assert_true(none);
                        if (none && m->len && v2_0)
                                assert_true(sure);
                        /* Asked once, the parsed list is the answer. */
                        assert_int_equal(lb_kafka_in_headerless(m),
                                         sure && none);
                        without += sure;
                        got++;
                }
                rd_kafka_message_destroy(m);
        }
        assert_int_equal(got, 2 * N);
        if (v2_0)
                assert_true(without > 0);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(host);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_paused_until_read),
            cmocka_unit_test(test_close_with_prefetch),
            cmocka_unit_test(test_commit_results_once),
            cmocka_unit_test(test_read_outlasts_lookup),
            cmocka_unit_test(test_read_answered_late),
            cmocka_unit_test(test_read_unanswered_fatal),
            cmocka_unit_test(test_headerless),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
