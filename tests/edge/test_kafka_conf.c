/*
 * test_kafka_conf.c: the kafka.* -> rd_kafka_conf_t adapter
 * (src/kafka_conf.c): a user's properties reach the side they name, the
 * bridge's defaults can be overridden, the settings the delivery guarantee
 * depends on cannot (a transactional dead-letter producer is refused), and
 * librdkafka's refusal names the key as given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "kafka_conf.h"

static char err[512];

static lb_config_t *conf_with(const char *const *kv)
{
        lb_config_t *c = lb_config_new();
        for (; *kv; kv += 2)
                if (lb_config_set(c, kv[0], kv[1], "test", err, sizeof(err)))
                        fail_msg("%s", err);
        return c;
}

static void expect(rd_kafka_conf_t *kc, const char *name, const char *want)
{
        char v[256];
        size_t n = sizeof(v);
        if (rd_kafka_conf_get(kc, name, v, &n) != RD_KAFKA_CONF_OK)
                fail_msg("%s is unknown", name);
        if (strcmp(v, want))
                fail_msg("%s = %s, want %s", name, v, want);
}

static void test_forced_consumer_settings_win(void **state)
{
        (void)state;
        static const char *const kv[] = {
            "kafka.consumer.enable.auto.offset.store",
            "true",
            "kafka.enable.auto.commit",
            "true",
            "kafka.consumer.auto.commit.interval.ms",
            "250",
            "kafka.producer.linger.ms",
            "50",
            NULL};
        lb_config_t *c = conf_with(kv);
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(c, LB_KAFKA_CONSUMER, err, sizeof(err));
        assert_non_null(kc);
        expect(kc, "enable.auto.offset.store", "false");
        expect(kc, "enable.auto.commit", "false");
        expect(kc, "auto.commit.interval.ms", "250"); /* a default: theirs */
        expect(kc, "linger.ms",
               "5"); /* librdkafka's: the producer's is not here */
        rd_kafka_conf_destroy(kc);
        lb_config_destroy(c);
}

/* The consumer's prefetch is what the memory limit sized; a key set wins */
static void test_prefetch_sized(void **state)
{
        (void)state;
        static const char *const kv[] = {
            "kafka.consumer.queued.min.messages", "7000",
            "kafka.consumer.fetch.max.bytes", "0x200000", NULL};
        lb_config_t *c = conf_with(kv);
        lb_config_resolve_memory(c, INT64_C(134217728), "test");
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(c, LB_KAFKA_CONSUMER, err, sizeof(err));
        assert_non_null(kc);
        char want[24];
        snprintf(want, sizeof(want), "%lld",
                 (long long)lb_config_prefetch_kbytes(c));
        expect(kc, "queued.max.messages.kbytes", want);
        assert_true(lb_config_prefetch_kbytes(c) < 32768);
        expect(kc, "queued.min.messages", "7000");
        /* the user's own line: librdkafka reads 0x200000 */
        expect(kc, "fetch.max.bytes", "2097152");
        rd_kafka_conf_destroy(kc);
        /* the producer has none of it */
        kc = lb_kafka_conf_new(c, LB_KAFKA_PRODUCER, err, sizeof(err));
        assert_non_null(kc);
        expect(kc, "queued.min.messages", "100000");
        rd_kafka_conf_destroy(kc);
        lb_config_destroy(c);
}

static void test_forced_producer_settings_win(void **state)
{
        (void)state;
        static const char *const kv[] = {
            "kafka.producer.enable.idempotence", "false", "kafka.producer.acks",
            "1", "kafka.producer.linger.ms", "50",
            "kafka.consumer.auto.commit.interval.ms", "250",
            /* no report of a success: a dead letter never acknowledged */
            "kafka.producer.delivery.report.only.error", "true", NULL};
        lb_config_t *c = conf_with(kv);
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(c, LB_KAFKA_PRODUCER, err, sizeof(err));
        assert_non_null(kc);
        expect(kc, "enable.idempotence", "true");
        expect(kc, "acks", "-1"); /* all */
        expect(kc, "linger.ms", "50");
        expect(kc, "auto.commit.interval.ms", "5000"); /* consumer's only */
        expect(kc, "delivery.report.only.error", "false");
        rd_kafka_conf_destroy(kc);
        lb_config_destroy(c);
}

/* name=value on side is refused at startup, naming the key and why. */
static void expect_refused(lb_kafka_side_t side, const char *name,
                           const char *value, const char *why)
{
        const char *const kv[] = {name, value, NULL};
        lb_config_t *c = conf_with(kv);
        assert_null(lb_kafka_conf_new(c, side, err, sizeof(err)));
        assert_non_null(strstr(err, name));
        assert_non_null(strstr(err, why));
        lb_config_destroy(c);
}

/* name=value on side is taken. */
static void expect_taken(lb_kafka_side_t side, const char *name,
                         const char *value)
{
        const char *const kv[] = {name, value, NULL};
        lb_config_t *c = conf_with(kv);
        rd_kafka_conf_t *kc = lb_kafka_conf_new(c, side, err, sizeof(err));
        assert_non_null(kc);
        rd_kafka_conf_destroy(kc);
        lb_config_destroy(c);
}

/* A transactional producer refuses every record produced outside a
 * transaction: each dead letter would be retried for ever. */
static void test_transactional_producer_refused(void **state)
{
        (void)state;
        expect_refused(LB_KAFKA_PRODUCER, "kafka.producer.transactional.id",
                       "tx-1", "transaction");
        expect_refused(LB_KAFKA_PRODUCER, "kafka.transactional.id", "tx-1",
                       "transaction");
}

/* With auto.offset.reset=error librdkafka stops reading a partition whose
 * position is gone and reports an error the bridge cannot act on: refused
 * (in any case, by either name), while earliest and latest pass. */
static void test_offset_reset_error_refused(void **state)
{
        (void)state;
        static const char *const names[] = {"kafka.consumer.auto.offset.reset",
                                            "kafka.auto.offset.reset"};
        for (size_t i = 0; i < 2; i++) {
                expect_refused(LB_KAFKA_CONSUMER, names[i], "error",
                               "earliest or latest");
                expect_refused(LB_KAFKA_CONSUMER, names[i], "ERROR",
                               "earliest or latest");
                expect_taken(LB_KAFKA_CONSUMER, names[i], "earliest");
                expect_taken(LB_KAFKA_CONSUMER, names[i], "latest");
                expect_taken(LB_KAFKA_CONSUMER, names[i], "smallest");
        }
}

/* With enable.gapless.guarantee a record the DLQ topic refuses is fatal to
 * the producer: refused in every spelling librdkafka takes; false passes. */
static void test_gapless_producer_refused(void **state)
{
        (void)state;
        static const char *const names[] = {
            "kafka.producer.enable.gapless.guarantee",
            "kafka.enable.gapless.guarantee"};
        static const char *const on[] = {"true", "t", "1", "TRUE"};
        for (size_t i = 0; i < 2; i++) {
                for (size_t v = 0; v < 4; v++)
                        expect_refused(LB_KAFKA_PRODUCER, names[i], on[v],
                                       "fatal");
                expect_taken(LB_KAFKA_PRODUCER, names[i], "false");
        }
}

static void test_refused_key_is_named(void **state)
{
        (void)state;
        static const char *const kv[] = {"kafka.consumer.no.such.property", "1",
                                         NULL};
        lb_config_t *c = conf_with(kv);
        assert_null(lb_kafka_conf_new(c, LB_KAFKA_CONSUMER, err, sizeof(err)));
        assert_non_null(strstr(err, "kafka.consumer.no.such.property"));
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(c, LB_KAFKA_PRODUCER, err, sizeof(err));
        assert_non_null(kc); /* the other side does not see it */
        rd_kafka_conf_destroy(kc);
        lb_config_destroy(c);
}

/* librdkafka's messages lose what follows a secret property's name and
 * any secret value; others pass as they are. Runs first: the secrets are
 * those of the first configuration a client is made from. */
static void test_secrets_redacted(void **state)
{
        (void)state;
        static const char *const kv[] = {"kafka.sasl.oauthbearer.config",
                                         "principal=x bogus=TOPSECRET",
                                         "kafka.sasl.password",
                                         "hunter22",
                                         "kafka.sasl.username",
                                         "alice",
                                         NULL};
        lb_config_t *c = conf_with(kv);
        rd_kafka_conf_t *kc =
            lb_kafka_conf_new(c, LB_KAFKA_CONSUMER, err, sizeof(err));
        assert_non_null(kc);
        char buf[256];
        const char *r = lb_kafka_redact("Unrecognized sasl.oauthbearer.config "
                                        "beginning at: bogus=TOPSECRET",
                                        buf, sizeof(buf));
        assert_string_equal(r,
                            "Unrecognized sasl.oauthbearer.config [redacted]");
        r = lb_kafka_redact("login with hunter22 refused", buf, sizeof(buf));
        assert_string_equal(r, "login with  [redacted]");
        const char *plain = "Authentication failed for alice";
        assert_ptr_equal(lb_kafka_redact(plain, buf, sizeof(buf)), plain);
        assert_null(lb_kafka_redact(NULL, buf, sizeof(buf)));
        rd_kafka_conf_destroy(kc);
        lb_config_destroy(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_secrets_redacted),
            cmocka_unit_test(test_forced_consumer_settings_win),
            cmocka_unit_test(test_forced_producer_settings_win),
            cmocka_unit_test(test_prefetch_sized),
            cmocka_unit_test(test_offset_reset_error_refused),
            cmocka_unit_test(test_gapless_producer_refused),
            cmocka_unit_test(test_refused_key_is_named),
            cmocka_unit_test(test_transactional_producer_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
