/*
 * test_config.c: unit tests of the config module: defaults, each type's
 * parsing and range errors, the file, environment and -X layers, apps
 * (inline and @file), kafka.* sides, validation, --help, the example file
 * conf/leanbridge.conf, and that no output ever carries a client key.
 * Files are written under a mkdtemp directory removed at the end.
 *
 * `test_config --write-example PATH` rewrites the example file from the table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "tmpdir.h"

#define SECRET "SeCrEt-ClientKey-7f3a9c"

static char err[512];

/* ------------------------------------------------------------------ */
/* helpers                                                            */

static void set_ok(lb_config_t *c, const char *key, const char *value)
{
        err[0] = '\0';
        if (lb_config_set(c, key, value, "-X", err, sizeof(err)))
                fail_msg("setting %s failed: %s", key, err);
}

/* Sets a bad value; returns the error message (in err). */
static const char *set_bad(lb_config_t *c, const char *key, const char *value)
{
        err[0] = '\0';
        if (!lb_config_set(c, key, value, "-X", err, sizeof(err)))
                fail_msg("setting %s=%s unexpectedly succeeded", key, value);
        assert_true(err[0] != '\0');
        return err;
}

static void assert_contains(const char *hay, const char *needle)
{
        if (!strstr(hay, needle))
                fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

static void assert_lacks(const char *hay, const char *needle)
{
        if (strstr(hay, needle))
                fail_msg("did not expect \"%s\" in \"%s\"", needle, hay);
}

/* Writes a file under tmpdir with the given mode; returns its path in a
 * static buffer (one of four, so a few can be alive at once). */
static const char *write_file(const char *name, const char *content,
                              mode_t mode)
{
        static char paths[4][128];
        static int next;
        char *path = paths[next++ % 4];
        snprintf(path, sizeof(paths[0]), "%s/%s", tmpdir, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path, mode), 0);
        return path;
}

/* A config with every required key set to a valid value. */
static lb_config_t *valid_config(void)
{
        lb_config_t *c = lb_config_new();
        assert_non_null(c);
        set_ok(c, "kafka.bootstrap.servers", "127.0.0.1:9092");
        set_ok(c, "input.topics", "events");
        set_ok(c, "dlq.topic", "events.dlq");
        set_ok(c, "apps", "app1:" SECRET);
        return c;
}

static void validate_ok(const lb_config_t *c)
{
        if (lb_config_validate(c, err, sizeof(err)))
                fail_msg("validate failed: %s", err);
}

static const char *validate_bad(const lb_config_t *c)
{
        err[0] = '\0';
        assert_int_equal(lb_config_validate(c, err, sizeof(err)), -1);
        return err;
}

static char *capture(void (*fn)(FILE *))
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        fn(f);
        fclose(f);
        return buf;
}

static char *read_all(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        char *buf = NULL;
        size_t cap = 0, len = 0;
        for (;;) {
                if (len + 4096 + 1 > cap) {
                        cap = (len + 4096 + 1) * 2;
                        buf = realloc(buf, cap);
                        assert_non_null(buf);
                }
                size_t n = fread(buf + len, 1, 4096, f);
                len += n;
                if (n < 4096)
                        break;
        }
        buf[len] = '\0';
        fclose(f);
        return buf;
}

/* ------------------------------------------------------------------ */
/* defaults                                                           */

static void test_defaults(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        assert_non_null(c);
        assert_string_equal(c->api_url,
                            "https://api.leanplum.com/api?action=multi");
        assert_string_equal(c->api_version, "1.0.6");
        assert_string_equal(c->api_ca_file, "");
        assert_int_equal(c->api_tls_insecure, 0);
        assert_int_equal(c->api_timeout_ms, 30000);
        assert_int_equal(c->batch_max_users, 50);
        assert_int_equal(c->batch_max_actions, 500);
        assert_int_equal(c->batch_max_bytes, 1048576);
        assert_int_equal(c->batch_linger_ms, 500);
        assert_int_equal(c->batch_max_wait_ms, 30000);
        assert_int_equal(c->sender_max_inflight, 16);
        assert_int_equal(c->retry_max_attempts, 10);
        assert_int_equal(c->retry_backoff_initial_ms, 250);
        assert_int_equal(c->retry_backoff_max_ms, 30000);
        /* the memory bound: auto until lb_config_resolve_memory */
        assert_int_equal(c->pending_max_actions, 0);
        assert_int_equal(c->pending_max_bytes, 0);
        assert_int_equal(c->memory_limit_bytes, 0);
        assert_null(c->memory_limit_source);
        assert_int_equal(c->shutdown_timeout_ms, 10000);
        assert_int_equal(c->rebalance_timeout_ms, 10000);
        assert_string_equal(c->metrics_listen, "");
        assert_int_equal(c->log_level, LB_LOG_INFO);
        assert_int_equal(c->log_json, 0);
        /* required keys start unset */
        assert_null(c->dlq_topic);
        assert_int_equal(c->topic_cnt, 0);
        assert_int_equal(c->app_cnt, 0);
        assert_int_equal(c->apps_file_world_readable, 0);
        /* default kafka props: consumer side only */
        assert_int_equal(c->kafka_cnt, 2);
        assert_string_equal(c->kafka[0].name, "group.id");
        assert_string_equal(c->kafka[0].value, "leanbridge");
        assert_int_equal(c->kafka[0].side, LB_KAFKA_CONSUMER);
        assert_string_equal(c->kafka[1].name, "auto.offset.reset");
        assert_string_equal(c->kafka[1].value, "earliest");
        assert_int_equal(c->kafka[1].side, LB_KAFKA_CONSUMER);
        assert_null(lb_config_kafka_get(c, "group.id", LB_KAFKA_PRODUCER));
        assert_null(
            lb_config_kafka_get(c, "bootstrap.servers", LB_KAFKA_CONSUMER));
        assert_contains(validate_bad(c), "missing required configuration key "
                                         "'kafka.bootstrap.servers'");
        lb_config_destroy(c);
        lb_config_destroy(NULL);
}

/* The exit bound: the drain, the wait for requests at the API, the margin
 * (the dead-letter flush and the rest); it follows each of its keys. */
static void test_exit_bound(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        assert_int_equal(LB_EXIT_MARGIN_MS, 10000);
        assert_true(LB_EXIT_MARGIN_MS > LB_DLQ_CLOSE_FLUSH_MS);
        assert_int_equal(lb_config_exit_bound_ms(c),
                         10000 + 30000 + 30000 + LB_EXIT_MARGIN_MS);
        set_ok(c, "shutdown.timeout.ms", "0");
        assert_int_equal(lb_config_exit_bound_ms(c),
                         30000 + 30000 + LB_EXIT_MARGIN_MS);
        set_ok(c, "api.timeout.ms", "5000");
        set_ok(c, "api.timeout.hold.ms", "2000");
        set_ok(c, "shutdown.timeout.ms", "3000");
        assert_int_equal(lb_config_exit_bound_ms(c),
                         3000 + 5000 + 2000 + LB_EXIT_MARGIN_MS);
        /* Not part of it: revocations during the drain are capped by it. */
        set_ok(c, "rebalance.timeout.ms", "600000");
        assert_int_equal(lb_config_exit_bound_ms(c),
                         3000 + 5000 + 2000 + LB_EXIT_MARGIN_MS);
        /* The largest values do not overflow. */
        set_ok(c, "shutdown.timeout.ms", "3600000");
        set_ok(c, "api.timeout.ms", "3600000");
        set_ok(c, "api.timeout.hold.ms", "3600000");
        assert_int_equal(lb_config_exit_bound_ms(c),
                         INT64_C(3 * 3600000) + LB_EXIT_MARGIN_MS);
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* types                                                              */

static void test_int(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "batch.max.users", "1");
        assert_int_equal(c->batch_max_users, 1);
        set_ok(c, "batch.max.users", "50");
        assert_int_equal(c->batch_max_users, 50);
        set_ok(c, "batch.max.users", "007");
        assert_int_equal(c->batch_max_users, 7);

        const char *bad[] = {"0",
                             "51",
                             "",
                             "abc",
                             "12x",
                             " 12",
                             "12 ",
                             "+12",
                             "0x10",
                             "1e3",
                             "-",
                             "--1",
                             "4.5",
                             "99999999999999999999",
                             "-99999999999999999999"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                const char *e = set_bad(c, "batch.max.users", bad[i]);
                assert_contains(e, "invalid value for 'batch.max.users' "
                                   "(from -X): must be an integer from 1 "
                                   "to 50");
                assert_int_equal(c->batch_max_users, 7); /* unchanged */
        }
        /* the bad value is quoted for keys that are not secret */
        assert_contains(set_bad(c, "batch.max.users", "51"), "got '51'");

        /* the exact message shape with a file origin */
        assert_int_equal(lb_config_set(c, "batch.max.users", "99",
                                       "file x.conf:12", err, sizeof(err)),
                         -1);
        assert_string_equal(err, "invalid value for 'batch.max.users' (from "
                                 "file x.conf:12): must be an integer from 1 "
                                 "to 50, got '99'");

        /* each integer key with its range */
        struct {
                const char *key;
                const char *lo, *hi, *below, *above;
        } r[] = {
            {"api.timeout.ms", "1", "3600000", "0", "3600001"},
            {"batch.max.actions", "1", "500", "0", "501"},
            {"batch.max.bytes", "1024", "67108864", "1023", "67108865"},
            {"batch.linger.ms", "0", "600000", "-1", "600001"},
            {"batch.max.wait.ms", "0", "3600000", "-1", "3600001"},
            {"sender.max.inflight", "1", "1024", "0", "1025"},
            {"retry.backoff.initial.ms", "1", "3600000", "0", "3600001"},
            {"retry.backoff.max.ms", "1", "3600000", "0", "3600001"},
            {"shutdown.timeout.ms", "0", "3600000", "-1", "3600001"},
            {"rebalance.timeout.ms", "0", "3600000", "-1", "3600001"},
        };
        for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
                set_ok(c, r[i].key, r[i].lo);
                set_ok(c, r[i].key, r[i].hi);
                char want[128];
                snprintf(want, sizeof(want), "must be an integer from %s to %s",
                         r[i].lo, r[i].hi);
                assert_contains(set_bad(c, r[i].key, r[i].below), want);
                assert_contains(set_bad(c, r[i].key, r[i].above), want);
                assert_contains(err, r[i].key);
        }
        lb_config_destroy(c);
}

static void test_int_auto(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        struct {
                const char *key;
                const char *lo, *hi, *below, *above;
        } r[] = {
            {"pending.max.actions", "1", "100000000", "-1", "100000001"},
            {"pending.max.bytes", "1024", "17179869184", "1023", "17179869185"},
            {"memory.limit.bytes", "16777216", "1099511627776", "16777215",
             "1099511627777"},
        };
        for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
                set_ok(c, r[i].key, r[i].lo);
                set_ok(c, r[i].key, r[i].hi);
                set_ok(c, r[i].key, "0");
                char want[128];
                snprintf(want, sizeof(want),
                         "must be 0 (auto) or an integer from %s to %s",
                         r[i].lo, r[i].hi);
                assert_contains(set_bad(c, r[i].key, r[i].below), want);
                assert_contains(set_bad(c, r[i].key, r[i].above), want);
                assert_contains(err, r[i].key);
        }
        set_ok(c, "pending.max.bytes", "17179869184");
        assert_int_equal(c->pending_max_bytes, INT64_C(17179869184));
        lb_config_destroy(c);
}

/* The consumer's prefetch at its full size (config.h) */
#define FULL_PREFETCH INT64_C(116786560)

/* An answer is read up to 20% of the memory limit over
 * sender.max.inflight, between 64 KiB and 16 MiB; 16 MiB before the limit is
 * sized. */
static void test_answer_max(void **state)
{
        (void)state;
        lb_config_t *c = valid_config();
        assert_int_equal(lb_config_answer_max_bytes(c), 16 << 20);
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(1) << 30, "x"), 0);
        /* 1 GiB: 214,748,364 bytes for 16 answers */
        assert_int_equal(lb_config_answer_max_bytes(c), 13421772);
        set_ok(c, "sender.max.inflight", "4");
        assert_int_equal(lb_config_answer_max_bytes(c), 16 << 20);
        set_ok(c, "sender.max.inflight", "1024");
        assert_int_equal(lb_config_answer_max_bytes(c), 209715); /* 20% */
        lb_config_destroy(c);
        c = valid_config();
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(32) << 20, "x"),
                         0);
        set_ok(c, "sender.max.inflight", "1024");
        assert_int_equal(lb_config_answer_max_bytes(c), 64 << 10); /* floor */
        lb_config_destroy(c);
        c = valid_config();
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(256) << 20, "x"),
                         0);
        assert_int_equal(lb_config_answer_max_bytes(c), 3355443);
        lb_config_destroy(c);
}

static void test_resolve_memory(void **state)
{
        (void)state;
        char line[1024];
        lb_config_t *c = valid_config();
        /* unsized bounds are not checked yet */
        validate_ok(c);
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(1073741824),
                                                  "cgroup v1 /m/memory."
                                                  "limit_in_bytes"),
                         0);
        assert_int_equal(c->memory_limit_bytes, INT64_C(1073741824));
        assert_string_equal(c->memory_limit_source,
                            "cgroup v1 /m/memory.limit_in_bytes");
        /* 40% less the consumer's prefetch at its full size: 32 MiB
         * queued, 8 MiB fetched past it, 320 bytes for each of 150,000
         * queued messages and of the 83,886 100-byte records of a fetch */
        assert_int_equal(lb_config_prefetch_bytes(c), FULL_PREFETCH);
        assert_int_equal(c->pending_max_bytes, 429496729 - FULL_PREFETCH);
        assert_int_equal(c->pending_max_actions,
                         (429496729 - FULL_PREFETCH) / 64);
        assert_true(c->memory_limit_auto && c->pending_max_bytes_auto &&
                    c->pending_max_actions_auto);
        validate_ok(c);
        lb_config_describe_memory(c, line, sizeof(line));
        assert_string_equal(
            line, "memory limit 1073741824 bytes (cgroup v1 "
                  "/m/memory.limit_in_bytes); consumer prefetch 116786560 "
                  "bytes (queued.max.messages.kbytes 32768, "
                  "queued.min.messages 150000, fetch.max.bytes 8388608); "
                  "pending.max.bytes 312710169 (auto: 40% less the "
                  "consumer's prefetch, at least 20%), "
                  "pending.max.actions 4886096 (auto)");

        /* resolved again (another limit): the auto ones follow it, the
         * prefetch shrinks to 20% of it, each setting in proportion */
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(536870912), "default 1 GiB"),
            0);
        int64_t prefetch = lb_config_prefetch_bytes(c);
        assert_in_range(prefetch, 107374182 - 1000000, 107374182);
        assert_in_range(lb_config_prefetch_kbytes(c), 29000, 31000);
        assert_in_range(lb_config_prefetch_messages(c), 130000, 145000);
        assert_int_equal(lb_config_prefetch_fetch(c),
                         lb_config_prefetch_kbytes(c) * 1024 / 4);
        assert_int_equal(c->pending_max_bytes, 214748364 - prefetch);
        assert_int_equal(c->pending_max_actions, (214748364 - prefetch) / 64);
        /* ... and grows back with a larger one */
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(1073741824), "x"),
                         0);
        assert_int_equal(lb_config_prefetch_bytes(c), FULL_PREFETCH);
        lb_config_destroy(c);

        /* small limits: the prefetch takes 20% of them, fetch.max.bytes
         * no less than librdkafka allows (message.max.bytes) */
        static const int64_t small[] = {33554432, 67108864, 134217728};
        for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
                c = valid_config();
                assert_int_equal(lb_config_resolve_memory(c, small[i], "x"), 0);
                int64_t budget = small[i] / 5;
                assert_in_range(lb_config_prefetch_bytes(c), budget * 9 / 10,
                                budget * 11 / 10);
                assert_true(lb_config_prefetch_fetch(c) >= 1000000);
                assert_true(lb_config_prefetch_messages(c) >= 1000);
                assert_true(lb_config_prefetch_kbytes(c) >= 1024);
                assert_in_range(c->pending_max_bytes, budget, budget * 11 / 10);
                validate_ok(c);
                lb_config_destroy(c);
        }
        c = valid_config();
        set_ok(c, "kafka.message.max.bytes", "4000000");
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(134217728), "x"),
                         0);
        assert_int_equal(lb_config_prefetch_fetch(c), 4000000);
        /* values as librdkafka reads them: hex and octal too */
        set_ok(c, "kafka.consumer.queued.max.messages.kbytes", "0x8000");
        assert_int_equal(lb_config_prefetch_kbytes(c), 32768);
        /* a floor that leaves no room is named */
        set_ok(c, "kafka.message.max.bytes", "10000000");
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(67108864), "x"),
                         0);
        assert_contains(validate_bad(c),
                        "at least 'kafka.consumer.message.max.bytes' 10000000");
        lb_config_destroy(c);

        /* a prefetch setting set by the user is what counts; the others
         * are still sized */
        c = valid_config();
        set_ok(c, "kafka.consumer.queued.max.messages.kbytes", "1024");
        assert_int_equal(lb_config_prefetch_kbytes(c), 1024);
        assert_int_equal(lb_config_prefetch_fetch(c), 1000000);
        assert_int_equal(lb_config_prefetch_bytes(c),
                         1048576 + 1000000 + (150000 + 10000) * 320);
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(536870912), "cgroup v2 /m"), 0);
        assert_int_equal(c->pending_max_bytes, 214748364 - 53248576);
        set_ok(c, "kafka.consumer.fetch.max.bytes", "2000000");
        set_ok(c, "kafka.consumer.queued.min.messages", "5000");
        assert_int_equal(lb_config_prefetch_bytes(c),
                         1048576 + 2000000 + (5000 + 20000) * 320);
        /* ... but the bound is never below 20% of the limit */
        set_ok(c, "kafka.consumer.queued.max.messages.kbytes", "1000000");
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(536870912), "cgroup v2 /m"), 0);
        assert_int_equal(c->pending_max_bytes, 107374182);
        lb_config_destroy(c);

        /* an explicit pending.max.bytes wins; actions still follow the
         * memory limit */
        c = valid_config();
        set_ok(c, "pending.max.bytes", "2000000");
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(1073741824), "cgroup v2 /m"),
            0);
        assert_int_equal(c->pending_max_bytes, 2000000);
        assert_int_equal(c->pending_max_bytes_auto, 0);
        assert_int_equal(c->pending_max_actions,
                         (429496729 - FULL_PREFETCH) / 64);
        lb_config_describe_memory(c, line, sizeof(line));
        assert_contains(line, "pending.max.bytes 2000000 (set), "
                              "pending.max.actions 4886096 (auto)");
        lb_config_destroy(c);

        /* an explicit pending.max.actions wins */
        c = valid_config();
        set_ok(c, "pending.max.actions", "5000");
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(1073741824), "cgroup v2 /m"),
            0);
        assert_int_equal(c->pending_max_actions, 5000);
        assert_int_equal(c->pending_max_bytes, 429496729 - FULL_PREFETCH);
        lb_config_describe_memory(c, line, sizeof(line));
        assert_contains(line, "pending.max.bytes 312710169 (auto: 40% less "
                              "the consumer's prefetch, at least 20%), "
                              "pending.max.actions 5000 (set)");
        lb_config_destroy(c);

        /* an explicit memory.limit.bytes wins over what was found */
        c = valid_config();
        set_ok(c, "memory.limit.bytes", "2147483648");
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(536870912), "cgroup v2 /m"), 0);
        assert_int_equal(c->memory_limit_bytes, INT64_C(2147483648));
        assert_int_equal(c->memory_limit_auto, 0);
        assert_string_equal(c->memory_limit_source, "memory.limit.bytes");
        assert_int_equal(c->pending_max_bytes, 858993459 - FULL_PREFETCH);
        lb_config_destroy(c);

        /* a large machine: each bound capped at its key's maximum */
        c = valid_config();
        assert_int_equal(lb_config_resolve_memory(c, INT64_C(1) << 40, "x"), 0);
        assert_int_equal(c->pending_max_bytes, INT64_C(17179869184));
        assert_int_equal(c->pending_max_actions, 100000000);
        validate_ok(c);
        lb_config_destroy(c);

        /* too small a limit: the error names the key and the limit */
        c = valid_config();
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(2097152), "cgroup v1 /small"),
            0);
        assert_string_equal(validate_bad(c),
                            "'pending.max.bytes' (419430, auto from the "
                            "memory limit 2097152 bytes, cgroup v1 /small) "
                            "must be >= 'batch.max.bytes' (1048576): set "
                            "memory.limit.bytes or 'pending.max.bytes'");
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(16384), "cgroup v1 /tiny"), 0);
        assert_contains(validate_bad(c), "'pending.max.actions' (51, auto "
                                         "from the memory limit 16384 bytes");
        lb_config_destroy(c);

        /* a prefetch set larger than half the limit is refused, naming
         * the keys; one set smaller passes */
        c = valid_config();
        set_ok(c, "kafka.consumer.queued.max.messages.kbytes", "32768");
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(50331648), "cgroup v2 /m"), 0);
        assert_contains(validate_bad(c),
                        "the memory limit (50331648 bytes, cgroup v2 /m) "
                        "leaves no room for the consumer's prefetch (");
        assert_contains(validate_bad(c),
                        "'kafka.consumer.queued.max.messages.kbytes' 32768, "
                        "'kafka.consumer.queued.min.messages' 1000, "
                        "'kafka.consumer.fetch.max.bytes' 8388608, at least "
                        "'kafka.consumer.message.max.bytes' 1000000)");
        set_ok(c, "kafka.consumer.queued.max.messages.kbytes", "8192");
        assert_int_equal(
            lb_config_resolve_memory(c, INT64_C(50331648), "cgroup v2 /m"), 0);
        validate_ok(c);
        lb_config_destroy(c);
}

static void test_int_forever(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "retry.max.attempts", "-1");
        assert_int_equal(c->retry_max_attempts, -1);
        set_ok(c, "retry.max.attempts", "1");
        assert_int_equal(c->retry_max_attempts, 1);
        set_ok(c, "retry.max.attempts", "1000000");
        const char *bad[] = {"0", "-2", "1000001", "forever", ""};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_contains(set_bad(c, "retry.max.attempts", bad[i]),
                                "must be -1 (forever) or an integer from 1 "
                                "to 1000000");
        assert_int_equal(c->retry_max_attempts, 1000000);
        lb_config_destroy(c);
}

static void test_bool(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        const char *t[] = {"true", "1", "yes", "on", "TRUE", "Yes", "ON"};
        const char *f[] = {"false", "0", "no", "off", "False", "NO", "Off"};
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
                set_ok(c, "api.tls.insecure", t[i]);
                assert_int_equal(c->api_tls_insecure, 1);
                set_ok(c, "api.tls.insecure", f[i]);
                assert_int_equal(c->api_tls_insecure, 0);
        }
        const char *bad[] = {"", "2", "y", "truee", "enable", " true"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_contains(set_bad(c, "api.tls.insecure", bad[i]),
                                "invalid value for 'api.tls.insecure' (from "
                                "-X): must be true, false, yes, no, on, off, "
                                "1 or 0");
        lb_config_destroy(c);
}

static void test_enum(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "log.level", "error");
        assert_int_equal(c->log_level, LB_LOG_ERROR);
        set_ok(c, "log.level", "warn");
        assert_int_equal(c->log_level, LB_LOG_WARN);
        set_ok(c, "log.level", "debug");
        assert_int_equal(c->log_level, LB_LOG_DEBUG);
        set_ok(c, "log.level", "INFO");
        assert_int_equal(c->log_level, LB_LOG_INFO);
        assert_string_equal(set_bad(c, "log.level", "verbose"),
                            "invalid value for 'log.level' (from -X): must be "
                            "error, warn, info or debug, got 'verbose'");
        assert_int_equal(c->log_level, LB_LOG_INFO);

        set_ok(c, "log.format", "json");
        assert_int_equal(c->log_json, 1);
        set_ok(c, "log.format", "text");
        assert_int_equal(c->log_json, 0);
        assert_contains(set_bad(c, "log.format", "xml"),
                        "must be text or json");
        lb_config_destroy(c);
}

static void test_strings(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "api.url", "http://127.0.0.1:8080/api?action=multi#frag");
        assert_string_equal(c->api_url,
                            "http://127.0.0.1:8080/api?action=multi#frag");
        set_ok(c, "api.url", "https://x");
        const char *bad_url[] = {"", "ftp://x", "127.0.0.1:8080", "HTTP:/x",
                                 "httpx://y"};
        for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++)
                assert_contains(set_bad(c, "api.url", bad_url[i]),
                                "must start with http:// or https://");
        assert_string_equal(c->api_url, "https://x");

        set_ok(c, "api.version", "1.0.7");
        assert_string_equal(c->api_version, "1.0.7");
        assert_contains(set_bad(c, "api.version", ""), "must not be empty");

        set_ok(c, "api.ca.file", "/etc/ssl/ca.pem");
        assert_string_equal(c->api_ca_file, "/etc/ssl/ca.pem");
        set_ok(c, "api.ca.file", "");
        assert_string_equal(c->api_ca_file, "");

        set_ok(c, "dlq.topic", "dead");
        assert_string_equal(c->dlq_topic, "dead");

        const char *good_listen[] = {
            "",           "127.0.0.1:9464", "localhost:0",
            "[::1]:9100", "0.0.0.0:65535",  "[::]:1"};
        for (size_t i = 0; i < sizeof(good_listen) / sizeof(good_listen[0]);
             i++) {
                set_ok(c, "metrics.listen", good_listen[i]);
                assert_string_equal(c->metrics_listen, good_listen[i]);
        }
        /* What the admin server would refuse to bind (listen.c), at
         * startup: a host name too (it binds literals only). */
        const struct {
                const char *value, *why;
        } bad_listen[] = {{"9100", "expected host:port"},
                          {":9100", "the host is empty"},
                          {"host:", "the port must be 0..65535"},
                          {"host:65536", "the port must be 0..65535"},
                          {"host:12a", "the port must be 0..65535"},
                          {"::1:9100", "put an IPv6 address in brackets"},
                          {"[::1]9100", "the port must be 0..65535"},
                          {"[]:80", "expected [IPv6]:port"},
                          {"host :80", "not an IPv4 address"},
                          {"host:-1", "the port must be 0..65535"},
                          {"host:123456", "the port must be 0..65535"},
                          {"myhost:9464", "not an IPv4 address"},
                          {"127.1:9464", "not an IPv4 address"},
                          {"[fe80::zz]:80", "not a valid IPv6 address"}};
        for (size_t i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++)
                assert_contains(
                    set_bad(c, "metrics.listen", bad_listen[i].value),
                    bad_listen[i].why);
        lb_config_destroy(c);
}

static void test_list(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "input.topics", " a , b,c  ");
        assert_int_equal(c->topic_cnt, 3);
        assert_string_equal(c->topics[0], "a");
        assert_string_equal(c->topics[1], "b");
        assert_string_equal(c->topics[2], "c");
        set_ok(c, "input.topics", "only");
        assert_int_equal(c->topic_cnt, 1);
        assert_string_equal(c->topics[0], "only");

        assert_contains(set_bad(c, "input.topics", "a,,b"),
                        "element 2 is empty");
        assert_contains(set_bad(c, "input.topics", "a,"), "element 2 is empty");
        assert_contains(set_bad(c, "input.topics", ",a"), "element 1 is empty");
        assert_contains(set_bad(c, "input.topics", " "), "element 1 is empty");
        assert_contains(set_bad(c, "input.topics", ""), "element 1 is empty");
        assert_contains(set_bad(c, "input.topics", "a, b ,a"),
                        "lists 'a' twice");
        /* a failed set leaves the previous value */
        assert_int_equal(c->topic_cnt, 1);
        assert_string_equal(c->topics[0], "only");
        lb_config_destroy(c);
}

static void test_unknown_key(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        assert_string_equal(set_bad(c, "batch.max.user", "5"),
                            "unknown configuration key 'batch.max.user' (from "
                            "-X); did you mean 'batch.max.users'?");
        assert_string_equal(set_bad(c, "completely.different", "5"),
                            "unknown configuration key 'completely.different' "
                            "(from -X)");
        assert_int_equal(lb_config_set(c, "nope", "1", NULL, err, sizeof(err)),
                         -1);
        assert_string_equal(err, "unknown configuration key 'nope'");
        assert_contains(set_bad(c, "kafka.", "x"), "names no librdkafka");
        assert_contains(set_bad(c, "kafka.consumer.", "x"),
                        "names no librdkafka");
        assert_contains(set_bad(c, "kafka.producer.", "x"),
                        "names no librdkafka");
        assert_contains(set_bad(c, "kafka.consumer", "x"),
                        "configuration key 'kafka.consumer' (from -X) names no "
                        "librdkafka property");
        assert_contains(set_bad(c, "kafka.producer", "x"),
                        "names no librdkafka");
        assert_int_equal(
            lb_config_set(c, "api.url", NULL, "-X", err, sizeof(err)), -1);
        assert_contains(err, "needs a value");
        /* no errstr buffer, or a tiny one, is fine */
        assert_int_equal(lb_config_set(c, "nope", "1", "-X", NULL, 0), -1);
        char tiny[8];
        assert_int_equal(
            lb_config_set(c, "nope", "1", "-X", tiny, sizeof(tiny)), -1);
        assert_string_equal(tiny, "unknown");
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* kafka.*                                                            */

static void test_kafka_props(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "kafka.bootstrap.servers", "b1:9092");
        set_ok(c, "kafka.consumer.fetch.wait.max.ms", "10");
        set_ok(c, "kafka.producer.linger.ms", "5");
        set_ok(c, "kafka.client.id", "lb");
        set_ok(c, "kafka.consumer.client.id", "lb-in");
        assert_int_equal(c->kafka_cnt, 7);
        assert_string_equal(c->kafka[2].name, "bootstrap.servers");
        assert_int_equal(c->kafka[2].side, LB_KAFKA_BOTH);
        assert_string_equal(c->kafka[3].name, "fetch.wait.max.ms");
        assert_int_equal(c->kafka[3].side, LB_KAFKA_CONSUMER);
        assert_string_equal(c->kafka[4].name, "linger.ms");
        assert_int_equal(c->kafka[4].side, LB_KAFKA_PRODUCER);

        assert_string_equal(
            lb_config_kafka_get(c, "bootstrap.servers", LB_KAFKA_PRODUCER),
            "b1:9092");
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_CONSUMER), "lb-in");
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_PRODUCER), "lb");
        assert_string_equal(lb_config_kafka_get(c, "client.id", LB_KAFKA_BOTH),
                            "lb");
        assert_null(lb_config_kafka_get(c, "linger.ms", LB_KAFKA_CONSUMER));
        assert_null(lb_config_kafka_get(c, "linger.ms", LB_KAFKA_BOTH));

        /* same name and side: replaced, and moved to the end (set last) */
        set_ok(c, "kafka.bootstrap.servers", "b2:9092");
        assert_int_equal(c->kafka_cnt, 7);
        assert_string_equal(c->kafka[6].name, "bootstrap.servers");
        assert_string_equal(c->kafka[6].value, "b2:9092");
        /* the generic one set last now wins for the consumer too */
        set_ok(c, "kafka.client.id", "lb2");
        assert_int_equal(c->kafka_cnt, 7);
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_CONSUMER), "lb2");

        /* kafka.group.id replaces the default consumer group.id */
        set_ok(c, "kafka.group.id", "g1");
        assert_int_equal(c->kafka_cnt, 7);
        assert_string_equal(c->kafka[6].name, "group.id");
        assert_int_equal(c->kafka[6].side, LB_KAFKA_CONSUMER);
        assert_null(lb_config_kafka_get(c, "group.id", LB_KAFKA_PRODUCER));
        /* ... and so does kafka.consumer.group.id */
        set_ok(c, "kafka.consumer.group.id", "g2");
        assert_int_equal(c->kafka_cnt, 7);
        assert_string_equal(
            lb_config_kafka_get(c, "group.id", LB_KAFKA_CONSUMER), "g2");
        set_ok(c, "kafka.consumer.auto.offset.reset", "latest");
        assert_int_equal(c->kafka_cnt, 7);
        assert_string_equal(
            lb_config_kafka_get(c, "auto.offset.reset", LB_KAFKA_CONSUMER),
            "latest");
        /* empty values pass through: librdkafka judges them */
        set_ok(c, "kafka.producer.linger.ms", "");
        assert_string_equal(
            lb_config_kafka_get(c, "linger.ms", LB_KAFKA_PRODUCER), "");
        /* no uniqueness across sides */
        int n = 0;
        for (size_t i = 0; i < c->kafka_cnt; i++)
                n += !strcmp(c->kafka[i].name, "client.id");
        assert_int_equal(n, 2);
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* apps                                                               */

static void test_apps_inline(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "apps", " zeta:kz , alpha : ka:with:colons ,mid:km");
        assert_int_equal(c->app_cnt, 3);
        /* sorted by id */
        assert_string_equal(c->apps[0].id, "alpha");
        assert_string_equal(c->apps[0].client_key, "ka:with:colons");
        assert_string_equal(c->apps[1].id, "mid");
        assert_string_equal(c->apps[1].client_key, "km");
        assert_string_equal(c->apps[2].id, "zeta");
        assert_string_equal(c->apps[2].client_key, "kz");
        assert_int_equal(lb_config_app_index(c, "alpha", 5), 0);
        assert_int_equal(lb_config_app_index(c, "mid", 3), 1);
        assert_int_equal(lb_config_app_index(c, "zeta", 4), 2);
        assert_int_equal(c->apps_file_world_readable, 0);

        struct {
                const char *value, *msg;
        } bad[] = {
            {"a:k,b", "invalid value for 'apps' (from -X): entry 2: expected "
                      "APPID:CLIENTKEY (no ':')"},
            {":k", "entry 1: empty app id"},
            {"a: ", "entry 1: empty client key"},
            {"a:k,", "entry 2 is empty"},
            {"", "entry 1 is empty"},
            {"a:k,,b:k", "entry 2 is empty"},
            {"a:k1,b:k2,a:k3", "entries 1 and 3 have the same app id"},
            {"@", "'@' must be followed by a path"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_contains(set_bad(c, "apps", bad[i].value), bad[i].msg);
        /* failures keep the previous apps */
        assert_int_equal(c->app_cnt, 3);
        set_ok(c, "apps", "one:k1");
        assert_int_equal(c->app_cnt, 1);
        lb_config_destroy(c);
}

static void test_app_index(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        set_ok(c, "apps", "app:k0,app_1:k1,app_10:k2,b:k3");
        /* app_id need not be NUL-terminated */
        const char buf[] = "app_10xyz";
        assert_int_equal(lb_config_app_index(c, buf, 6), 2);
        assert_int_equal(lb_config_app_index(c, buf, 5), 1);
        assert_int_equal(lb_config_app_index(c, buf, 3), 0);
        assert_int_equal(lb_config_app_index(c, buf, 4), -1);
        assert_int_equal(lb_config_app_index(c, buf, 9), -1);
        assert_int_equal(lb_config_app_index(c, "b", 1), 3);
        assert_int_equal(lb_config_app_index(c, "", 0), -1);
        assert_int_equal(lb_config_app_index(c, "c", 1), -1);
        assert_int_equal(lb_config_app_index(c, "app\0", 4), -1);
        assert_int_equal(lb_config_app_index(c, "a", 1), -1);
        lb_config_destroy(c);

        /* no apps at all */
        c = lb_config_new();
        assert_int_equal(lb_config_app_index(c, "app", 3), -1);

        /* many apps (the hash index's slots collide): every one is found
         * at its sorted position, near misses are not */
        char list[8192] = "", id[32];
        size_t used = 0;
        for (int i = 0; i < 300; i++)
                used += (size_t)snprintf(list + used, sizeof(list) - used,
                                         "%sid%d:k%d", i ? "," : "", i, i);
        set_ok(c, "apps", list);
        assert_int_equal(c->app_cnt, 300);
        for (size_t i = 0; i < c->app_cnt; i++)
                assert_int_equal(lb_config_app_index(c, c->apps[i].id,
                                                     strlen(c->apps[i].id)),
                                 (int)i);
        for (int i = 300; i < 1000; i++) {
                int n = snprintf(id, sizeof(id), "id%d", i);
                assert_int_equal(lb_config_app_index(c, id, (size_t)n), -1);
        }
        assert_int_equal(lb_config_app_index(c, "id", 2), -1);
        assert_int_equal(lb_config_app_index(c, "id1x", 4), -1);

        /* new apps replace the index: the old ids are gone */
        set_ok(c, "apps", "x:1,id7:2");
        assert_int_equal(lb_config_app_index(c, "id7", 3), 0);
        assert_int_equal(lb_config_app_index(c, "x", 1), 1);
        assert_int_equal(lb_config_app_index(c, "id8", 3), -1);
        /* a failed set keeps the apps and their index */
        set_bad(c, "apps", "a:k,a:k");
        assert_int_equal(lb_config_app_index(c, "x", 1), 1);
        lb_config_destroy(c);
}

static void test_apps_file(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        const char *path = write_file("apps.conf",
                                      "# apps of the demo\n"
                                      "\n"
                                      "  app_b : key-b  \n"
                                      "\t# indented comment\n"
                                      "app_a:key-a#not-a-comment\r\n",
                                      0600);
        char value[256];
        snprintf(value, sizeof(value), "@%s", path);
        set_ok(c, "apps", value);
        assert_int_equal(c->app_cnt, 2);
        assert_string_equal(c->apps[0].id, "app_a");
        assert_string_equal(c->apps[0].client_key, "key-a#not-a-comment");
        assert_string_equal(c->apps[1].id, "app_b");
        assert_string_equal(c->apps[1].client_key, "key-b");
        assert_int_equal(c->apps_file_world_readable, 0);

        /* group-readable is not world-readable */
        assert_int_equal(chmod(path, 0640), 0);
        set_ok(c, "apps", value);
        assert_int_equal(c->apps_file_world_readable, 0);
        assert_int_equal(chmod(path, 0644), 0);
        set_ok(c, "apps", value);
        assert_int_equal(c->apps_file_world_readable, 1);
        /* an inline value afterwards clears the flag */
        set_ok(c, "apps", "x:y");
        assert_int_equal(c->apps_file_world_readable, 0);

        path = write_file("dup.conf", "a:1\nb:2\n# c\na:3\n", 0600);
        snprintf(value, sizeof(value), "@%s", path);
        assert_contains(set_bad(c, "apps", value),
                        "lines 1 and 4 have the same app id");

        path = write_file("nocolon.conf", "a:1\n\nbroken\n", 0600);
        snprintf(value, sizeof(value), "@%s", path);
        assert_contains(set_bad(c, "apps", value), "line 3: expected "
                                                   "APPID:CLIENTKEY (no ':')");
        assert_contains(err, path);

        path = write_file("emptykey.conf", "a:\n", 0600);
        snprintf(value, sizeof(value), "@%s", path);
        assert_contains(set_bad(c, "apps", value), "line 1: empty client key");

        path = write_file("none.conf", "# nothing\n\n", 0600);
        snprintf(value, sizeof(value), "@%s", path);
        assert_contains(set_bad(c, "apps", value), "lists no app");

        snprintf(value, sizeof(value), "@%s/missing.conf", tmpdir);
        assert_contains(set_bad(c, "apps", value), "cannot open apps file");
        assert_contains(err, "missing.conf");
        assert_contains(err, strerror(ENOENT));

        snprintf(value, sizeof(value), "@%s", tmpdir);
        assert_contains(set_bad(c, "apps", value), "cannot read apps file");

        /* the last good value stays */
        assert_int_equal(c->app_cnt, 1);
        assert_string_equal(c->apps[0].id, "x");
        lb_config_destroy(c);
}

/* Reloading the apps file takes new keys for the same apps, and nothing
 * from a file that is bad or lists other apps. */
static void test_apps_reload(void **state)
{
        (void)state;
        char why[512];
        lb_config_t *c = lb_config_new();
        set_ok(c, "apps", "a:1,b:2");
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "not a file"));

        const char *path = write_file("reload.conf", "b:2\na:1\n", 0600);
        char value[256];
        snprintf(value, sizeof(value), "@%s", path);
        set_ok(c, "apps", value);
        assert_string_equal(c->apps_path, path);
        /* unchanged file: nothing changes */
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), 0);

        /* one key rotated, in another order: one change, ids kept */
        write_file("reload.conf", "a:1\n#rotated\nb:2-new\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), 1);
        assert_int_equal(c->app_cnt, 2);
        assert_string_equal(c->apps[0].id, "a");
        assert_string_equal(c->apps[0].client_key, "1");
        assert_string_equal(c->apps[1].id, "b");
        assert_string_equal(c->apps[1].client_key, "2-new");
        assert_int_equal(lb_config_app_index(c, "a", 1), 0);
        assert_int_equal(lb_config_app_index(c, "b", 1), 1);

        /* bad files keep the keys, and say why */
        write_file("reload.conf", "a:1-x\nb\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "line 2"));
        write_file("reload.conf", "a:1-x\nb:2-x\nc:3\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "adds app 'c'"));
        write_file("reload.conf", "b:2-x\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "drops app 'a'"));
        write_file("reload.conf", "a:1-x\nc:2-x\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "adds app 'c'"));
        write_file("reload.conf", "a0:1-x\na:1-x\nb:2-x\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "adds app 'a0'"));
        write_file("reload.conf", "a:1-x\na:1-y\nb:2\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "same app id"));
        assert_null(strstr(why, "1-x")); /* never a key in a message */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "cannot open"));
        assert_string_equal(c->apps[0].client_key, "1");
        assert_string_equal(c->apps[1].client_key, "2-new");

        /* an inline value afterwards: no file to reload */
        set_ok(c, "apps", "x:y");
        assert_null(c->apps_path);
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* per-app policy                                                     */

static void test_app_policy_layers(void **state)
{
        (void)state;
        lb_config_t *c = valid_config();
        set_ok(c, "apps", "a:1,b:2");
        char line[1024];
        /* Defaults: the keys for all apps. */
        assert_int_equal(c->apps[0].policy.max_wait_ms, 30000);
        assert_int_equal(c->apps[0].policy.urgent->cnt, 0);
        assert_int_equal(c->apps[0].policy.session_end->cnt, 1);
        assert_string_equal(c->apps[0].policy.session_end->v[0].name, "stop");
        lb_config_describe_app(c, 0, line, sizeof(line));
        assert_string_equal(line, "app a: batch.max.wait.ms 30000 (all apps), "
                                  "batch.urgent (none) (all apps), "
                                  "batch.session.end stop (all apps)");
        /* A per-app key, set before the key for all apps: it stays. */
        set_ok(c, "app.b.batch.max.wait.ms", "5000");
        set_ok(c, "batch.max.wait.ms", "60000");
        set_ok(c, "batch.urgent", "event:Purchase, setUserAttributes");
        set_ok(c, "app.b.batch.session.end", "");
        assert_int_equal(c->apps[0].policy.max_wait_ms, 60000);
        assert_int_equal(c->apps[1].policy.max_wait_ms, 5000);
        assert_int_equal(c->apps[1].policy.urgent->cnt, 2);
        assert_int_equal(c->apps[1].policy.urgent->v[0].field, LB_MATCH_EVENT);
        assert_string_equal(c->apps[1].policy.urgent->v[0].name, "Purchase");
        assert_int_equal(c->apps[1].policy.session_end->cnt, 0);
        lb_config_describe_app(c, 1, line, sizeof(line));
        assert_string_equal(
            line, "app b: batch.max.wait.ms 5000 (app.b.batch.max.wait.ms), "
                  "batch.urgent event:Purchase, setUserAttributes (all "
                  "apps), batch.session.end (none) "
                  "(app.b.batch.session.end)");
        validate_ok(c);
        /* Set again: the later value wins. */
        set_ok(c, "app.b.batch.max.wait.ms", "7000");
        assert_int_equal(c->apps[1].policy.max_wait_ms, 7000);
        /* The apps may come after their keys. */
        set_ok(c, "apps", "b:2,a:1");
        assert_int_equal(c->apps[1].policy.max_wait_ms, 7000);

        /* Errors name the key. */
        assert_contains(set_bad(c, "app.b.batch.max.wait.ms", "soon"),
                        "invalid value for 'app.b.batch.max.wait.ms'");
        assert_contains(set_bad(c, "app.b.batch.linger.ms", "5"),
                        "'app.b.batch.linger.ms' is no per-app key");
        assert_contains(set_bad(c, "app..batch.urgent", "x"),
                        "is no per-app key");
        assert_contains(set_bad(c, "app.b.batch.urgent", "x,,y"),
                        "element 2 is empty");
        assert_contains(set_bad(c, "app.b.batch.urgent", "x, x"),
                        "lists 'x' twice");
        assert_contains(set_bad(c, "batch.urgent", "event:"), "names no event");
        set_ok(c, "app.b.batch.max.wait.ms", "100");
        assert_contains(validate_bad(c), "'app.b.batch.max.wait.ms' (100) "
                                         "must be >= 'batch.linger.ms' (500)");
        set_ok(c, "app.b.batch.max.wait.ms", "500");
        validate_ok(c);
        set_ok(c, "app.c.batch.urgent", "start");
        assert_contains(validate_bad(c),
                        "'app.c.batch.urgent' names app 'c', which is not in "
                        "'apps'");
        lb_config_destroy(c);
}

static void test_app_policy_env(void **state)
{
        (void)state;
        lb_config_t *c = valid_config();
        set_ok(c, "apps", "app_Mixed:1,b:2");
        char *env[] = {"LEANBRIDGE_APP_app_Mixed_BATCH_MAX_WAIT_MS=2500",
                       "LEANBRIDGE_APP_b_BATCH_URGENT=event:Sign Up",
                       "LEANBRIDGE_APP_b_BATCH_SESSION_END=", NULL};
        assert_int_equal(lb_config_load_env(c, env, err, sizeof(err)), 0);
        assert_int_equal(c->apps[0].policy.max_wait_ms, 2500);
        assert_string_equal(c->apps[1].policy.urgent->v[0].name, "Sign Up");
        assert_int_equal(c->apps[1].policy.session_end->cnt, 0);
        validate_ok(c);
        char *bad[] = {"LEANBRIDGE_APP_b_BATCH_LINGER_MS=5", NULL};
        assert_int_equal(lb_config_load_env(c, bad, err, sizeof(err)), -1);
        assert_contains(err, "unknown environment variable "
                             "'LEANBRIDGE_APP_b_BATCH_LINGER_MS'");
        char *badval[] = {"LEANBRIDGE_APP_b_BATCH_MAX_WAIT_MS=x", NULL};
        assert_int_equal(lb_config_load_env(c, badval, err, sizeof(err)), -1);
        assert_contains(err, "'app.b.batch.max.wait.ms' (from environment "
                             "LEANBRIDGE_APP_b_BATCH_MAX_WAIT_MS)");
        lb_config_destroy(c);
}

/* An apps file with per-app settings, one before its app. */
#define POLICY_FILE                                                            \
        "# per-app settings may come before their app\n"                       \
        "app.b.batch.urgent = event:Purchase Complete\n"                       \
        "a:" SECRET "=\n"                                                      \
        "b:2\n"                                                                \
        "app.a.batch.max.wait.ms = 5000\n"

static void test_app_policy_file(void **state)
{
        (void)state;
        char why[512], value[256], line[1024];
        lb_config_t *c = valid_config();
        const char *path = write_file("policy.conf", POLICY_FILE, 0600);
        snprintf(value, sizeof(value), "@%s", path);
        set_ok(c, "apps", value);
        assert_string_equal(c->apps[0].client_key, SECRET "=");
        assert_int_equal(c->apps[0].policy.max_wait_ms, 5000);
        /* keys only (a key the API refused): the settings wait */
        unsigned gen = c->apps[0].key_gen;
        write_file("policy.conf",
                   "a:rotated\nb:2\napp.a.batch.max.wait.ms = 700\n", 0600);
        assert_int_equal(lb_config_reload_apps(c, 1, why, sizeof(why)), 1);
        assert_string_equal(c->apps[0].client_key, "rotated");
        assert_int_equal(c->apps[0].key_gen, gen + 1);
        assert_int_equal(c->apps[0].policy.max_wait_ms, 5000);
        /* ... until a whole reload, which takes the same keys: no change */
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), 0);
        assert_int_equal(c->apps[0].policy.max_wait_ms, 700);
        assert_int_equal(c->apps[0].key_gen, gen + 1);
        write_file("policy.conf", POLICY_FILE, 0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), 1);
        assert_int_equal(c->apps[1].policy.max_wait_ms, 30000);
        assert_string_equal(c->apps[1].policy.urgent->v[0].name,
                            "Purchase Complete");
        lb_config_describe_app(c, 0, line, sizeof(line));
        assert_contains(line, "batch.max.wait.ms 5000 (apps file line 5)");
        validate_ok(c);

        /* A reload takes new settings, and drops removed ones. */
        write_file("policy.conf",
                   "a:" SECRET "=\nb:2\napp.b.batch.max.wait.ms = 1000\n",
                   0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), 0);
        assert_int_equal(c->apps[0].policy.max_wait_ms, 30000);
        assert_int_equal(c->apps[1].policy.max_wait_ms, 1000);
        assert_int_equal(c->apps[1].policy.urgent->cnt, 0);

        /* Bad files change nothing, say why, and never quote a value. */
        const struct {
                const char *text, *why;
        } bad[] = {
            {"a:1\nb:2\napp.a.batch.max.wait.ms = 10\n",
             "'app.a.batch.max.wait.ms' (apps file line 3) (10) must be >= "
             "'batch.linger.ms' (500)"},
            {"a:1\nb:2\napp.c.batch.urgent = x\n",
             "line 3 sets a key of app 'c', which the file does not list"},
            {"a:1\nb:2\napp.a.batch.linger.ms = 10\n",
             "line 3 'app.a.batch.linger.ms' is no per-app key"},
            {"a:1\nb:2\napp.a.batch.max.wait.ms = " SECRET "\n",
             "line 3: 'app.a.batch.max.wait.ms' must be an integer"},
            {"a:1\nb:2\napp.a.batch.urgent=x\napp.a.batch.urgent=y\n",
             "line 4 sets 'app.a.batch.urgent' again (line 3)"},
            /* A line with '=' and no ':' that is no setting at all (a
             * base64 key pasted alone, or without its app id): quoted
             * back, it would print the key. */
            {"a:1\nb:2\n" SECRET "==\n",
             "line 3 is no APPID:CLIENTKEY entry and no per-app key "
             "(app.APPID.KEY = VALUE)"},
            {"a:1\nb:2\nc " SECRET "=\n",
             "line 3 is no APPID:CLIENTKEY entry and no per-app key"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                write_file("policy.conf", bad[i].text, 0600);
                assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)),
                                 -1);
                assert_contains(why, bad[i].why);
                assert_lacks(why, SECRET);
                assert_int_equal(c->apps[1].policy.max_wait_ms, 1000);
        }
        /* A key set both in the file and in a layer is refused. */
        set_ok(c, "app.b.batch.max.wait.ms", "2000");
        assert_contains(validate_bad(c),
                        "'app.b.batch.max.wait.ms' is set both in the apps "
                        "file (line 3) and in the configuration");
        write_file("policy.conf", "a:1\nb:2\napp.a.batch.max.wait.ms=900\n",
                   0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), 1);
        validate_ok(c);
        assert_int_equal(c->apps[0].policy.max_wait_ms, 900);
        assert_int_equal(c->apps[1].policy.max_wait_ms, 2000);
        write_file("policy.conf", "a:1\nb:2\napp.b.batch.max.wait.ms=900\n",
                   0600);
        assert_int_equal(lb_config_reload_apps(c, 0, why, sizeof(why)), -1);
        assert_contains(why, "set both in the apps file");
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* file layer                                                         */

static void test_file(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        const char *path =
            write_file("good.conf",
                       "\xEF\xBB\xBF# leading comment after a byte order mark\n"
                       "\n"
                       "   # indented comment\n"
                       "kafka.bootstrap.servers = b1:9092,b2:9092\n"
                       "input.topics=t1, t2\n"
                       "\tdlq.topic\t=\tdead  \r\n"
                       "api.url = http://127.0.0.1:1/api?action=multi#anchor\n"
                       "api.version = 1.0.6 # not a comment either\n"
                       "apps = a:k=with=equals\n"
                       "batch.linger.ms = 100\n"
                       "batch.linger.ms = 200\n"
                       "api.ca.file =\n"
                       "kafka.consumer.session.timeout.ms = 45000\n",
                       0600);
        if (lb_config_load_file(c, path, err, sizeof(err)))
                fail_msg("load failed: %s", err);
        assert_string_equal(
            lb_config_kafka_get(c, "bootstrap.servers", LB_KAFKA_CONSUMER),
            "b1:9092,b2:9092");
        assert_int_equal(c->topic_cnt, 2);
        assert_string_equal(c->topics[1], "t2");
        assert_string_equal(c->dlq_topic, "dead");
        assert_string_equal(c->api_url,
                            "http://127.0.0.1:1/api?action=multi#anchor");
        assert_string_equal(c->api_version, "1.0.6 # not a comment either");
        assert_string_equal(c->apps[0].client_key, "k=with=equals");
        assert_int_equal(c->batch_linger_ms, 200); /* later line wins */
        assert_string_equal(c->api_ca_file, "");
        assert_string_equal(
            lb_config_kafka_get(c, "session.timeout.ms", LB_KAFKA_CONSUMER),
            "45000");
        validate_ok(c);
        lb_config_destroy(c);

        /* an empty file is fine */
        c = lb_config_new();
        path = write_file("empty.conf", "", 0600);
        assert_int_equal(lb_config_load_file(c, path, err, sizeof(err)), 0);
        lb_config_destroy(c);
}

static void test_file_errors(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        char want[256];

        const char *path = write_file("noeq.conf",
                                      "# ok\n"
                                      "batch.linger.ms = 10\n"
                                      "this line has no equals sign\n",
                                      0600);
        assert_int_equal(lb_config_load_file(c, path, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s:3: expected 'key = value' (no '=')",
                 path);
        assert_string_equal(err, want);
        assert_int_equal(c->batch_linger_ms, 10); /* lines before applied */

        path = write_file("nokey.conf", "\n = value\n", 0600);
        assert_int_equal(lb_config_load_file(c, path, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s:2: expected 'key = value' (no key",
                 path);
        assert_contains(err, want);

        path =
            write_file("badval.conf", "\n\n\n\nbatch.max.users = 51\n", 0600);
        assert_int_equal(lb_config_load_file(c, path, err, sizeof(err)), -1);
        snprintf(want, sizeof(want),
                 "invalid value for 'batch.max.users' (from file %s:5): must "
                 "be an integer from 1 to 50, got '51'",
                 path);
        assert_string_equal(err, want);

        path = write_file("unknown.conf", "batch.max.user = 5\n", 0600);
        assert_int_equal(lb_config_load_file(c, path, err, sizeof(err)), -1);
        snprintf(want, sizeof(want),
                 "unknown configuration key 'batch.max.user' (from file "
                 "%s:1)",
                 path);
        assert_contains(err, want);

        char missing[128];
        snprintf(missing, sizeof(missing), "%s/nope.conf", tmpdir);
        assert_int_equal(lb_config_load_file(c, missing, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "cannot open configuration file '%s': %s",
                 missing, strerror(ENOENT));
        assert_string_equal(err, want);

        assert_int_equal(lb_config_load_file(c, tmpdir, err, sizeof(err)), -1);
        assert_contains(err, "cannot read configuration file");
        assert_contains(err, tmpdir);
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* environment layer                                                  */

static void test_env(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        char *env[] = {
            "PATH=/usr/bin",
            "LEANBRIDGE_KAFKA_BOOTSTRAP_SERVERS=e1:9092",
            "LEANBRIDGE_INPUT_TOPICS=x,y",
            "LEANBRIDGE_DLQ_TOPIC=dead",
            "LEANBRIDGE_APPS=a:" SECRET,
            "LEANBRIDGE_BATCH_MAX_USERS=10",
            "LEANBRIDGE_LOG_FORMAT=json",
            "LEANBRIDGE_API_URL=http://h/api?x=a=b",
            /* side-specific wins over generic, whatever the order */
            "LEANBRIDGE_KAFKA_CONSUMER_CLIENT_ID=specific",
            "LEANBRIDGE_KAFKA_CLIENT_ID=generic",
            "LEANBRIDGE_KAFKA_PRODUCER_ACKS=all",
            "LEANBRIDGE_NO_EQUALS_IS_IGNORED",
            "leanbridge_lowercase=ignored",
            NULL,
        };
        if (lb_config_load_env(c, env, err, sizeof(err)))
                fail_msg("env failed: %s", err);
        assert_string_equal(
            lb_config_kafka_get(c, "bootstrap.servers", LB_KAFKA_PRODUCER),
            "e1:9092");
        assert_int_equal(c->topic_cnt, 2);
        assert_string_equal(c->dlq_topic, "dead");
        assert_string_equal(c->apps[0].client_key, SECRET);
        assert_int_equal(c->batch_max_users, 10);
        assert_int_equal(c->log_json, 1);
        assert_string_equal(c->api_url, "http://h/api?x=a=b");
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_CONSUMER), "specific");
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_PRODUCER), "generic");
        assert_string_equal(lb_config_kafka_get(c, "acks", LB_KAFKA_PRODUCER),
                            "all");
        validate_ok(c);

        char *unknown[] = {"LEANBRIDGE_BATCH_MAX_USER=5", NULL};
        assert_int_equal(lb_config_load_env(c, unknown, err, sizeof(err)), -1);
        assert_string_equal(err, "unknown environment variable "
                                 "'LEANBRIDGE_BATCH_MAX_USER': no "
                                 "configuration key 'batch.max.user'; did you "
                                 "mean 'batch.max.users'?");
        char *unknown2[] = {"LEANBRIDGE_CONFIG=/etc/x.conf", NULL};
        assert_int_equal(lb_config_load_env(c, unknown2, err, sizeof(err)), -1);
        assert_string_equal(err, "unknown environment variable "
                                 "'LEANBRIDGE_CONFIG': no configuration key "
                                 "'config'");
        char *empty[] = {"LEANBRIDGE_=1", NULL};
        assert_int_equal(lb_config_load_env(c, empty, err, sizeof(err)), -1);
        assert_contains(err, "'LEANBRIDGE_'");

        char *bad[] = {"LEANBRIDGE_BATCH_MAX_USERS=99", NULL};
        assert_int_equal(lb_config_load_env(c, bad, err, sizeof(err)), -1);
        assert_string_equal(err, "invalid value for 'batch.max.users' (from "
                                 "environment LEANBRIDGE_BATCH_MAX_USERS): "
                                 "must be an integer from 1 to 50, got '99'");

        assert_int_equal(lb_config_load_env(c, NULL, err, sizeof(err)), 0);
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* layering: defaults < file < env < -X                               */

static void test_layering(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        const char *path = write_file("layer.conf",
                                      "batch.linger.ms = 100\n"
                                      "batch.max.users = 20\n"
                                      "sender.max.inflight = 4\n"
                                      "kafka.client.id = from-file\n"
                                      "kafka.consumer.client.id = file-c\n",
                                      0600);
        assert_int_equal(lb_config_load_file(c, path, err, sizeof(err)), 0);
        char *env[] = {"LEANBRIDGE_BATCH_LINGER_MS=200",
                       "LEANBRIDGE_BATCH_MAX_USERS=30",
                       "LEANBRIDGE_KAFKA_CLIENT_ID=from-env", NULL};
        assert_int_equal(lb_config_load_env(c, env, err, sizeof(err)), 0);
        set_ok(c, "batch.linger.ms", "300");

        assert_int_equal(c->batch_linger_ms, 300);   /* -X */
        assert_int_equal(c->batch_max_users, 30);    /* env */
        assert_int_equal(c->sender_max_inflight, 4); /* file */
        assert_int_equal(c->batch_max_actions, 500); /* default */
        /* the env's generic client.id came after the file's consumer one */
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_CONSUMER), "from-env");
        set_ok(c, "kafka.consumer.client.id", "from-x");
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_CONSUMER), "from-x");
        assert_string_equal(
            lb_config_kafka_get(c, "client.id", LB_KAFKA_PRODUCER), "from-env");
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* validation                                                         */

static void test_validate(void **state)
{
        (void)state;
        lb_config_t *c = valid_config();
        validate_ok(c);
        lb_config_destroy(c);

        struct {
                const char *skip;
                const char *msg;
        } req[] = {
            {"kafka.bootstrap.servers",
             "missing required configuration key 'kafka.bootstrap.servers'"},
            {"input.topics",
             "missing required configuration key 'input.topics'"},
            {"dlq.topic", "missing required configuration key 'dlq.topic'"},
            {"apps", "missing required configuration key 'apps'"},
        };
        const char *all[][2] = {{"kafka.bootstrap.servers", "b:9092"},
                                {"input.topics", "t"},
                                {"dlq.topic", "d"},
                                {"apps", "a:k"}};
        for (size_t i = 0; i < 4; i++) {
                c = lb_config_new();
                for (size_t j = 0; j < 4; j++)
                        if (strcmp(all[j][0], req[i].skip))
                                set_ok(c, all[j][0], all[j][1]);
                assert_string_equal(validate_bad(c), req[i].msg);
                lb_config_destroy(c);
        }

        /* empty values count as missing */
        c = valid_config();
        set_ok(c, "dlq.topic", "");
        assert_string_equal(validate_bad(c),
                            "missing required configuration key 'dlq.topic'");
        lb_config_destroy(c);
        c = valid_config();
        set_ok(c, "kafka.bootstrap.servers", "");
        assert_contains(validate_bad(c), "'kafka.bootstrap.servers'");
        lb_config_destroy(c);
        c = valid_config();
        set_ok(c, "kafka.group.id", "");
        assert_string_equal(
            validate_bad(c),
            "missing required configuration key 'kafka.group.id'");
        lb_config_destroy(c);

        /* bootstrap per side */
        c = lb_config_new();
        set_ok(c, "input.topics", "t");
        set_ok(c, "dlq.topic", "d");
        set_ok(c, "apps", "a:k");
        set_ok(c, "kafka.consumer.bootstrap.servers", "b:1");
        assert_contains(validate_bad(c), "(the dead-letter producer has none)");
        set_ok(c, "kafka.producer.bootstrap.servers", "b:1");
        validate_ok(c);
        lb_config_destroy(c);
        c = lb_config_new();
        set_ok(c, "input.topics", "t");
        set_ok(c, "dlq.topic", "d");
        set_ok(c, "apps", "a:k");
        set_ok(c, "kafka.producer.bootstrap.servers", "b:1");
        assert_contains(validate_bad(c), "(the consumer has none)");
        lb_config_destroy(c);

        /* cross-key rules */
        c = valid_config();
        set_ok(c, "batch.linger.ms", "31000");
        assert_string_equal(validate_bad(c), "'batch.max.wait.ms' (30000) must "
                                             "be >= 'batch.linger.ms' (31000)");
        set_ok(c, "batch.max.wait.ms", "31000");
        validate_ok(c);

        set_ok(c, "retry.backoff.initial.ms", "40000");
        assert_string_equal(validate_bad(c),
                            "'retry.backoff.max.ms' (30000) must be >= "
                            "'retry.backoff.initial.ms' (40000)");
        set_ok(c, "retry.backoff.max.ms", "40000");
        validate_ok(c);

        set_ok(c, "pending.max.actions", "499");
        assert_string_equal(validate_bad(c),
                            "'pending.max.actions' (499) must be >= "
                            "'batch.max.actions' (500)");
        set_ok(c, "batch.max.actions", "499");
        validate_ok(c);

        set_ok(c, "pending.max.bytes", "2048");
        assert_string_equal(validate_bad(c),
                            "'pending.max.bytes' (2048) must be >= "
                            "'batch.max.bytes' (1048576)");
        set_ok(c, "batch.max.bytes", "2048");
        validate_ok(c);

        set_ok(c, "input.topics", "a,events.dlq,b");
        assert_string_equal(validate_bad(c), "'dlq.topic' (events.dlq) must "
                                             "not be one of 'input.topics'");
        set_ok(c, "input.topics", "a,b");
        validate_ok(c);
        lb_config_destroy(c);
}

/* ------------------------------------------------------------------ */
/* help, the example file, and secrets                                */

static const char *const all_keys[] = {
    "kafka.bootstrap.servers",
    "kafka.group.id",
    "input.topics",
    "dlq.topic",
    "apps",
    "api.url",
    "api.version",
    "api.ca.file",
    "api.tls.insecure",
    "api.timeout.ms",
    "api.timeout.hold.ms",
    "batch.urgent",
    "batch.session.end",
    "batch.max.users",
    "batch.max.actions",
    "batch.max.bytes",
    "batch.linger.ms",
    "batch.max.wait.ms",
    "sender.max.inflight",
    "retry.max.attempts",
    "retry.backoff.initial.ms",
    "retry.backoff.max.ms",
    "pending.max.actions",
    "pending.max.bytes",
    "memory.limit.bytes",
    "shutdown.timeout.ms",
    "rebalance.timeout.ms",
    "input.max.age.ms",
    "api.accept.warnings",
    "handover.flush",
    "commit.metadata.max.bytes",
    "metrics.listen",
    "log.level",
    "log.format",
};

static void test_help(void **state)
{
        (void)state;
        char *help = capture(lb_config_print_help);
        for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++) {
                char want[64];
                snprintf(want, sizeof(want), "\n  %s  (", all_keys[i]);
                assert_contains(help, want);
        }
        assert_contains(help, "kafka.bootstrap.servers  (string, required)");
        assert_contains(help, "apps  (secret, required)");
        assert_contains(help, "batch.max.users  (integer 1..50, default 50)");
        assert_contains(help, "retry.max.attempts  (integer, -1 or 1..1000000, "
                              "default 10)");
        assert_contains(help, "pending.max.bytes  (integer, 0 (auto) or "
                              "1024..17179869184, default 0)");
        assert_contains(help, "log.level  (error|warn|info|debug, default "
                              "info)");
        assert_contains(help, "api.url  (string, default "
                              "https://api.leanplum.com/api?action=multi)");
        assert_contains(help, "metrics.listen  (string, default empty)");
        assert_contains(help, "kafka.group.id  (consumer property, default "
                              "leanbridge)");
        assert_contains(help, "kafka.consumer.PROP");
        assert_contains(help, "kafka.producer.PROP");
        assert_contains(help, "LEANBRIDGE_KAFKA_BOOTSTRAP_SERVERS");
        assert_contains(help, "later wins");
        /* every line fits 80 columns */
        for (char *line = help; *line;) {
                char *nl = strchr(line, '\n');
                assert_non_null(nl);
                if (nl - line > 80)
                        fail_msg("help line too long: %.*s", (int)(nl - line),
                                 line);
                line = nl + 1;
        }
        free(help);
}

static const char *example_path(void)
{
        static char path[1024];
        snprintf(path, sizeof(path), "%s", __FILE__);
        char *slash = strrchr(path, '/');
        size_t dir_len = slash ? (size_t)(slash - path) : 0;
        snprintf(path + dir_len, sizeof(path) - dir_len, "%s",
                 slash ? "/../../conf/leanbridge.conf"
                       : "../../conf/leanbridge.conf");
        return path;
}

static void test_example_file(void **state)
{
        (void)state;
        const char *path = example_path();
        char *want = capture(lb_config_print_example);
        char *have = read_all(path);
        if (!have)
                fail_msg("cannot read %s", path);
        if (strcmp(want, have))
                fail_msg("%s differs from the key table: regenerate it with "
                         "`test_config --write-example %s`",
                         path, path);
        for (size_t i = 0; i < sizeof(all_keys) / sizeof(all_keys[0]); i++)
                assert_contains(have, all_keys[i]);

        /* it loads and validates as it is */
        lb_config_t *c = lb_config_new();
        if (lb_config_load_file(c, path, err, sizeof(err)))
                fail_msg("%s", err);
        validate_ok(c);
        assert_string_equal(c->topics[0], "leanbridge.events");
        assert_string_equal(c->dlq_topic, "leanbridge.dlq");
        assert_string_equal(c->apps[0].id, "app_demo");
        lb_config_destroy(c);

        /* every commented "# key = value" line is itself valid */
        c = lb_config_new();
        char *copy = strdup(have);
        int key_lines = 0;
        for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
                if (strncmp(line, "# ", 2) || !strstr(line, " ="))
                        continue;
                char *key = line + 2, *eq = strstr(key, " =");
                if (strchr(key, ' ') != eq)
                        continue; /* prose, not a key line */
                *eq = '\0';
                const char *value = eq[2] == ' ' ? eq + 3 : eq + 2;
                if (lb_config_set(c, key, value, "example", err, sizeof(err)))
                        fail_msg("example line for %s: %s", key, err);
                key_lines++;
        }
        /* the defaulted keys, metrics.listen and batch.urgent twice, the
         * kafka examples */
        assert_int_equal(key_lines, 31 + 2 + 7);
        free(copy);
        lb_config_destroy(c);
        free(want);
        free(have);
}

static void test_secret_keys(void **state)
{
        (void)state;
        static const char *const secret[] = {
            "apps",
            "kafka.sasl.password",
            "kafka.consumer.sasl.password",
            "kafka.producer.ssl.key.password",
            "kafka.ssl.keystore.password",
            "kafka.sasl.oauthbearer.client.secret",
            "kafka.ssl.key.pem",
            "kafka.sasl.oauthbearer.config",
        };
        static const char *const plain[] = {
            "api.url",
            "kafka.bootstrap.servers",
            "kafka.sasl.username",
            "kafka.ssl.ca.location",
            "kafka.ssl.certificate.pem",
            "input.topics",
            "password", /* not a key of ours, nor a kafka.* one */
        };
        for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
                assert_int_equal(lb_config_key_is_secret(secret[i]), 1);
        for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
                assert_int_equal(lb_config_key_is_secret(plain[i]), 0);
}

static void test_no_secret_in_output(void **state)
{
        (void)state;
        lb_config_t *c = lb_config_new();
        /* every apps error, with the secret somewhere in the value */
        const char *inline_bad[] = {
            SECRET,         "a:k," SECRET,   ":" SECRET,
            SECRET ":",     "a:" SECRET ",", "a:" SECRET ",b:x,a:" SECRET,
            "a:k,," SECRET, "@" SECRET,      "@/nonexistent/" SECRET,
        };
        for (size_t i = 0; i < sizeof(inline_bad) / sizeof(inline_bad[0]);
             i++) {
                assert_int_equal(lb_config_set(c, "apps", inline_bad[i], "-X",
                                               err, sizeof(err)),
                                 -1);
                if (inline_bad[i][0] == '@')
                        continue; /* a path is not a secret: it is named */
                assert_lacks(err, SECRET);
        }
        const char *files[] = {
            SECRET "\n",
            "a:" SECRET "\n" SECRET "\n",
            "a:" SECRET "\nb:x\na:" SECRET "\n",
            ":" SECRET "\n",
        };
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                const char *path = write_file("secret.conf", files[i], 0600);
                char value[256];
                snprintf(value, sizeof(value), "@%s", path);
                assert_int_equal(
                    lb_config_set(c, "apps", value, "-X", err, sizeof(err)),
                    -1);
                assert_lacks(err, SECRET);
        }
        /* the environment and the file layer */
        char *env[] = {"LEANBRIDGE_APPS=" SECRET, NULL};
        assert_int_equal(lb_config_load_env(c, env, err, sizeof(err)), -1);
        assert_lacks(err, SECRET);
        const char *path =
            write_file("secret-main.conf", "apps = x" SECRET "\n", 0600);
        assert_int_equal(lb_config_load_file(c, path, err, sizeof(err)), -1);
        assert_lacks(err, SECRET);

        /* a good value, then every error and output afterwards */
        set_ok(c, "apps", "a:" SECRET);
        set_ok(c, "kafka.bootstrap.servers", "b:1");
        assert_int_equal(lb_config_validate(c, err, sizeof(err)), -1);
        assert_lacks(err, SECRET);
        set_bad(c, "batch.max.users", "0");
        assert_lacks(err, SECRET);
        char *help = capture(lb_config_print_help);
        assert_lacks(help, SECRET);
        free(help);
        char *example = capture(lb_config_print_example);
        assert_lacks(example, SECRET);
        free(example);
        lb_config_destroy(c);
}

int main(int argc, char **argv)
{
        if (argc == 3 && !strcmp(argv[1], "--write-example")) {
                FILE *f = fopen(argv[2], "w");
                if (!f) {
                        perror(argv[2]);
                        return 1;
                }
                lb_config_print_example(f);
                return fclose(f) ? 1 : 0;
        }
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_int),
            cmocka_unit_test(test_int_forever),
            cmocka_unit_test(test_int_auto),
            cmocka_unit_test(test_answer_max),
            cmocka_unit_test(test_resolve_memory),
            cmocka_unit_test(test_bool),
            cmocka_unit_test(test_enum),
            cmocka_unit_test(test_strings),
            cmocka_unit_test(test_list),
            cmocka_unit_test(test_unknown_key),
            cmocka_unit_test(test_kafka_props),
            cmocka_unit_test(test_apps_inline),
            cmocka_unit_test(test_app_index),
            cmocka_unit_test(test_apps_file),
            cmocka_unit_test(test_apps_reload),
            cmocka_unit_test(test_app_policy_layers),
            cmocka_unit_test(test_app_policy_env),
            cmocka_unit_test(test_app_policy_file),
            cmocka_unit_test(test_file),
            cmocka_unit_test(test_file_errors),
            cmocka_unit_test(test_env),
            cmocka_unit_test(test_layering),
            cmocka_unit_test(test_validate),
            cmocka_unit_test(test_help),
            cmocka_unit_test(test_example_file),
            cmocka_unit_test(test_secret_keys),
            cmocka_unit_test(test_no_secret_in_output),
            cmocka_unit_test(test_exit_bound),
        };
        return cmocka_run_group_tests(tests, tmpdir_make, tmpdir_remove);
}
