/*
 * test_replay_filter.c: replay's pure decisions: every option's accepted and
 * refused values, the cross-option rules, time parsing (epoch ms, dates,
 * zones, impossible dates), header reading (last wins, absent, malformed
 * counts and partitions), each filter alone and combined, --max-replays at
 * its boundary, the target (--to, source topic and partition, a loop into
 * the dead-letter topic refused), the next replay count, and the tallies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "replay_filter.h"

static lb_replay_opts_t opts(void)
{
        lb_replay_opts_t o;
        lb_replay_opts_init(&o);
        return o;
}

static int set(lb_replay_opts_t *o, const char *name, const char *value)
{
        char err[256];
        int rc = lb_replay_opts_set(o, name, value, err, sizeof(err));
        if (rc)
                assert_non_null(strstr(err, name));
        return rc;
}

static void hdr(lb_dlq_record_t *r, const char *name, const char *value)
{
        lb_replay_record_header(r, name, value, value ? strlen(value) : 0);
}

/* A dead-letter record as dlq.c writes it. */
static lb_dlq_record_t record(const char *stage, const char *app,
                              const char *message, int64_t ts)
{
        lb_dlq_record_t r;
        lb_replay_record_init(&r, ts);
        hdr(&r, "leanbridge.error.stage", stage);
        hdr(&r, "leanbridge.error.message", message);
        if (app)
                hdr(&r, "leanbridge.app.id", app);
        hdr(&r, "leanbridge.source.topic", "events");
        hdr(&r, "leanbridge.source.partition", "3");
        hdr(&r, "leanbridge.source.offset", "42");
        hdr(&r, "leanbridge.attempts", "1");
        return r;
}

static void test_defaults(void **state)
{
        (void)state;
        lb_replay_opts_t o = opts();
        assert_null(o.stage);
        assert_null(o.app);
        assert_null(o.message);
        assert_null(o.to);
        assert_null(o.group);
        assert_int_equal(o.since_ms, LB_REPLAY_NO_TIME);
        assert_int_equal(o.until_ms, LB_REPLAY_NO_TIME);
        assert_int_equal(o.max_replays, -1);
        assert_int_equal(o.dry_run, 0);
        assert_int_equal(o.follow, 0);
        lb_dlq_record_t r = record("api", "app_a", "boom", 1000);
        assert_int_equal(lb_replay_decide(&o, &r, "dlq"), LB_REPLAY_GO);
}

static void test_option_values(void **state)
{
        (void)state;
        lb_replay_opts_t o = opts();
        assert_int_equal(set(&o, "stage", "api"), 0);
        assert_string_equal(o.stage, "api");
        assert_int_equal(set(&o, "stage", "api,http"), 0);
        assert_int_equal(set(&o, "app", "app_a"), 0);
        assert_string_equal(o.app, "app_a");
        assert_int_equal(set(&o, "message", "Unknown action"), 0);
        assert_int_equal(set(&o, "max-replays", "1"), 0);
        assert_int_equal(o.max_replays, 1);
        assert_int_equal(set(&o, "max-replays", "250"), 0);
        assert_int_equal(o.max_replays, 250);
        assert_int_equal(set(&o, "to", "retry.events"), 0);
        assert_string_equal(o.to, "retry.events");
        assert_int_equal(set(&o, "group", "ops-2026-11-30"), 0);
        assert_string_equal(o.group, "ops-2026-11-30");
        assert_int_equal(set(&o, "since", "1000"), 0);
        assert_int_equal(o.since_ms, 1000);
        assert_int_equal(set(&o, "until", "2026-11-30"), 0);
        assert_int_equal(o.until_ms, INT64_C(1795996800000));
        assert_int_equal(set(&o, "dry-run", NULL), 0);
        assert_int_equal(o.dry_run, 1);
        assert_int_equal(set(&o, "follow", NULL), 0);
        assert_int_equal(o.follow, 1);

        static const char *const bad[][2] = {
            {"stage", ""},
            {"stage", ","},
            {"stage", "api,"},
            {"stage", ",api"},
            {"app", "a,,b"},
            {"message", ""},
            {"max-replays", "0"},
            {"max-replays", "-1"},
            {"max-replays", "x"},
            {"max-replays", "1x"},
            {"max-replays", ""},
            {"max-replays", " 1"},
            {"max-replays", "99999999999999999999"},
            {"to", ""},
            {"group", ""},
            {"since", "yesterday"},
            {"until", ""},
            {"nosuch", "x"},
            {"stage", NULL},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                lb_replay_opts_t b = opts();
                if (!set(&b, bad[i][0], bad[i][1]))
                        fail_msg("--%s '%s' accepted", bad[i][0],
                                 bad[i][1] ? bad[i][1] : "(null)");
        }
        char longname[300];
        memset(longname, 't', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        assert_int_equal(set(&o, "to", longname), -1);
        longname[LB_TOPIC_MAX] = '\0';
        assert_int_equal(set(&o, "to", longname), 0);
}

static void test_option_rules(void **state)
{
        (void)state;
        char err[256];
        lb_replay_opts_t o = opts();
        assert_int_equal(lb_replay_opts_check(&o, "dlq", err, sizeof(err)), 0);
        o.since_ms = 2000;
        o.until_ms = 2000;
        assert_int_equal(lb_replay_opts_check(&o, "dlq", err, sizeof(err)), -1);
        assert_non_null(strstr(err, "--since"));
        o.until_ms = 2001;
        assert_int_equal(lb_replay_opts_check(&o, "dlq", err, sizeof(err)), 0);
        o.until_ms = LB_REPLAY_NO_TIME; /* one bound alone is fine */
        assert_int_equal(lb_replay_opts_check(&o, "dlq", err, sizeof(err)), 0);
        o.dry_run = o.follow = 1;
        assert_int_equal(lb_replay_opts_check(&o, "dlq", err, sizeof(err)), -1);
        assert_non_null(strstr(err, "--follow"));
        o.follow = 0;
        o.to = "dlq";
        assert_int_equal(lb_replay_opts_check(&o, "dlq", err, sizeof(err)), -1);
        assert_non_null(strstr(err, "--to"));
        o.to = "events";
        assert_int_equal(lb_replay_opts_check(&o, "dlq", err, sizeof(err)), 0);
}

static void test_parse_time(void **state)
{
        (void)state;
        static const struct {
                const char *s;
                int64_t ms;
        } good[] = {
            {"0", 0},
            {"1764525600000", INT64_C(1764525600000)},
            {"1970-01-01", 0},
            {"1970-01-01T00:00Z", 0},
            {"1970-01-01T00:00:01Z", 1000},
            {"2026-11-30", INT64_C(1795996800000)},
            {"2026-11-30T18:00:00Z", INT64_C(1796061600000)},
            {"2026-11-30T20:00:00+02:00", INT64_C(1796061600000)},
            {"2026-11-30T13:30:00-04:30", INT64_C(1796061600000)},
            {"2024-02-29T00:00:00Z", INT64_C(1709164800000)},
        };
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                int64_t ms = -1;
                if (lb_replay_parse_time(good[i].s, &ms) || ms != good[i].ms)
                        fail_msg("'%s': got %lld, want %lld", good[i].s,
                                 (long long)ms, (long long)good[i].ms);
        }
        static const char *const bad[] = {
            "",
            "-1",
            "1e9",
            "1234567890123456",
            "2026-11-30T18:00:00",
            "2026-11-30 18:00:00Z",
            "2026-11-3",
            "2026-13-01",
            "2026-00-10",
            "2026-02-29",
            "2026-04-31",
            "2026-11-30T24:00Z",
            "2026-11-30T18:60Z",
            "2026-11-30T18:00:60Z",
            "2026-11-30T18:00:00+2:00",
            "2026-11-30T18:00:00+24:00",
            "2026-11-30T18:00:00+02:60",
            "2026-11-30T18:00:00Zjunk",
            "2026-11-30junk",
            "26-11-30",
            "today",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                int64_t ms;
                if (!lb_replay_parse_time(bad[i], &ms))
                        fail_msg("'%s' accepted as %lld", bad[i],
                                 (long long)ms);
        }
}

static void test_headers(void **state)
{
        (void)state;
        lb_dlq_record_t r;
        lb_replay_record_init(&r, 77);
        assert_null(r.stage.ptr);
        assert_null(r.source_topic.ptr);
        assert_int_equal(r.source_partition, -1);
        assert_int_equal(r.source_offset, -1);
        assert_int_equal(r.cut, 0);
        assert_int_equal(r.replayed, 0);
        assert_int_equal(r.replayed_bad, 0);
        assert_int_equal(r.timestamp_ms, 77);
        assert_int_equal(r.source_timestamp_ms, -1);
        /* A dead letter without the header (an older bridge's) has the
         * event's own timestamp. */
        assert_int_equal(lb_replay_event_timestamp(&r), 77);
        hdr(&r, "leanbridge.source.timestamp", "1700000000000");
        assert_int_equal(r.source_timestamp_ms, 1700000000000);
        assert_int_equal(lb_replay_event_timestamp(&r), 1700000000000);
        hdr(&r, "leanbridge.source.timestamp", "x");
        assert_int_equal(r.source_timestamp_ms, -1);
        assert_int_equal(lb_replay_event_timestamp(&r), 77);

        r = record("validate", "app_b", "unknown app", 5);
        assert_int_equal(r.stage.len, 8);
        assert_memory_equal(r.stage.ptr, "validate", 8);
        assert_memory_equal(r.app.ptr, "app_b", 5);
        assert_memory_equal(r.message.ptr, "unknown app", 11);
        assert_memory_equal(r.source_topic.ptr, "events", 6);
        assert_int_equal(r.source_partition, 3);

        /* The last header of a name wins; unknown names are ignored. */
        hdr(&r, "leanbridge.error.stage", "api");
        hdr(&r, "x-other", "api");
        assert_int_equal(r.stage.len, 3);
        /* Value bytes are taken by length, not up to a NUL. */
        lb_replay_record_header(&r, "leanbridge.app.id", "app_cX", 5);
        assert_int_equal(r.app.len, 5);
        /* A null header value is absent. */
        lb_replay_record_header(&r, "leanbridge.error.message", NULL, 9);
        assert_null(r.message.ptr);
        assert_int_equal(r.message.len, 0);

        static const struct {
                const char *v;
                int32_t want;
        } parts[] = {{"0", 0},   {"11", 11}, {"2147483647", INT32_MAX},
                     {"", -1},   {"-1", -1}, {"2147483648", -1},
                     {"1a", -1}, {" 1", -1}};
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                hdr(&r, "leanbridge.source.partition", parts[i].v);
                assert_int_equal(r.source_partition, parts[i].want);
        }
        hdr(&r, "leanbridge.source.partition", NULL);
        assert_int_equal(r.source_partition, -1);

        /* Where the whole original is, and whether this copy is cut. */
        assert_int_equal(r.cut, 0);
        hdr(&r, "leanbridge.source.offset", "1234567890123");
        assert_int_equal(r.source_offset, INT64_C(1234567890123));
        hdr(&r, "leanbridge.source.offset", "-3");
        assert_int_equal(r.source_offset, -1);
        hdr(&r, "leanbridge.key.truncated", "300");
        assert_int_equal(r.cut, 1);
        lb_replay_record_init(&r, 1);
        hdr(&r, "leanbridge.value.truncated", "3098");
        assert_int_equal(r.cut, 1);
        lb_replay_record_init(&r, 1);
        hdr(&r, "leanbridge.headers.dropped", "2"); /* key, value whole */
        assert_int_equal(r.cut, 1);

        static const struct {
                const char *v;
                int64_t n;
                int bad;
        } counts[] = {{"0", 0, 0},  {"1", 1, 0},  {"17", 17, 0},
                      {"", 0, 1},   {"-2", 0, 1}, {"x", 0, 1},
                      {"3 ", 0, 1}, {"+3", 0, 1}, {"9999999999999999999", 0, 1},
                      {NULL, 0, 1}, {"007", 7, 0}};
        for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                hdr(&r, LB_REPLAY_HEADER, counts[i].v);
                assert_int_equal(r.replayed, counts[i].n);
                assert_int_equal(r.replayed_bad, counts[i].bad);
        }
}

static lb_replay_verdict_t decide(const lb_replay_opts_t *o,
                                  const lb_dlq_record_t *r)
{
        return lb_replay_decide(o, r, "dlq");
}

static void test_filters(void **state)
{
        (void)state;
        lb_dlq_record_t api = record("api", "app_a", "Unknown action x", 1000);
        lb_dlq_record_t http = record("http", "app_b", "HTTP 400", 2000);
        lb_dlq_record_t parse = record("parse", NULL, "not JSON", 3000);
        lb_dlq_record_t bare;
        lb_replay_record_init(&bare, -1);
        hdr(&bare, "leanbridge.source.topic", "events");

        lb_replay_opts_t o = opts();
        o.stage = "api";
        assert_int_equal(decide(&o, &api), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &http), LB_REPLAY_SKIP_FILTER);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_FILTER);
        o.stage = "http,api";
        assert_int_equal(decide(&o, &api), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &http), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &parse), LB_REPLAY_SKIP_FILTER);
        o.stage = "ap"; /* a stage matches whole, never as a prefix */
        assert_int_equal(decide(&o, &api), LB_REPLAY_SKIP_FILTER);
        o.stage = "apis";
        assert_int_equal(decide(&o, &api), LB_REPLAY_SKIP_FILTER);

        o = opts();
        o.app = "app_a";
        assert_int_equal(decide(&o, &api), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &http), LB_REPLAY_SKIP_FILTER);
        assert_int_equal(decide(&o, &parse), LB_REPLAY_SKIP_FILTER);
        o.app = "app_b,app_a";
        assert_int_equal(decide(&o, &http), LB_REPLAY_GO);
        o.app = "app_";
        assert_int_equal(decide(&o, &api), LB_REPLAY_SKIP_FILTER);

        o = opts();
        o.message = "Unknown action";
        assert_int_equal(decide(&o, &api), LB_REPLAY_GO);
        o.message = "action x";
        assert_int_equal(decide(&o, &api), LB_REPLAY_GO);
        o.message = "unknown action"; /* case matters */
        assert_int_equal(decide(&o, &api), LB_REPLAY_SKIP_FILTER);
        o.message = "x y";
        assert_int_equal(decide(&o, &api), LB_REPLAY_SKIP_FILTER);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_FILTER);

        /* Time: [since, until). */
        o = opts();
        o.since_ms = 2000;
        assert_int_equal(decide(&o, &api), LB_REPLAY_SKIP_FILTER);
        assert_int_equal(decide(&o, &http), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &parse), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_FILTER);
        o.until_ms = 3000;
        assert_int_equal(decide(&o, &http), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &parse), LB_REPLAY_SKIP_FILTER);
        o.since_ms = LB_REPLAY_NO_TIME;
        assert_int_equal(decide(&o, &api), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_FILTER);
        o.since_ms = 0; /* an explicit epoch bound is a bound */
        o.until_ms = LB_REPLAY_NO_TIME;
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_FILTER);
        assert_int_equal(decide(&o, &api), LB_REPLAY_GO);

        /* All filters together: each must hold. */
        o = opts();
        o.stage = "api,http";
        o.app = "app_a,app_b";
        o.message = "HTTP";
        o.since_ms = 1500;
        assert_int_equal(decide(&o, &http), LB_REPLAY_GO);
        assert_int_equal(decide(&o, &api), LB_REPLAY_SKIP_FILTER);
        o.until_ms = 2000;
        assert_int_equal(decide(&o, &http), LB_REPLAY_SKIP_FILTER);
}

static void test_max_replays(void **state)
{
        (void)state;
        lb_replay_opts_t o = opts();
        lb_dlq_record_t r = record("api", "app_a", "boom", 1);
        char buf[32];

        assert_int_equal(lb_replay_next_count(&r, buf, sizeof(buf)), 1);
        assert_string_equal(buf, "1");
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO);
        o.max_replays = 1;
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO); /* never replayed */

        hdr(&r, LB_REPLAY_HEADER, "1");
        assert_int_equal(decide(&o, &r), LB_REPLAY_SKIP_MAX_REPLAYS);
        o.max_replays = 2;
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO);
        assert_int_equal(lb_replay_next_count(&r, buf, sizeof(buf)), 1);
        assert_string_equal(buf, "2");
        hdr(&r, LB_REPLAY_HEADER, "2");
        assert_int_equal(decide(&o, &r), LB_REPLAY_SKIP_MAX_REPLAYS);
        o.max_replays = -1; /* no limit */
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO);
        hdr(&r, LB_REPLAY_HEADER, "999999999999999998");
        lb_replay_next_count(&r, buf, sizeof(buf));
        assert_string_equal(buf, "999999999999999999");

        /* An unreadable count: over any limit, and restarts at 1. */
        hdr(&r, LB_REPLAY_HEADER, "lots");
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO);
        o.max_replays = 1000;
        assert_int_equal(decide(&o, &r), LB_REPLAY_SKIP_MAX_REPLAYS);
        lb_replay_next_count(&r, buf, sizeof(buf));
        assert_string_equal(buf, "1");

        /* A filter miss is reported before the limit. */
        o.stage = "http";
        assert_int_equal(decide(&o, &r), LB_REPLAY_SKIP_FILTER);
}

/* --follow never loops a failing record forever: without --max-replays
 * it stops at LB_REPLAY_FOLLOW_MAX_REPLAYS; an explicit value wins. */
static void test_follow_default_max_replays(void **state)
{
        (void)state;
        lb_replay_opts_t o = opts();
        lb_dlq_record_t r = record("api", "app_a", "boom", 1);
        assert_int_equal(lb_replay_max_replays(&o), -1);
        o.follow = 1;
        assert_int_equal(lb_replay_max_replays(&o),
                         LB_REPLAY_FOLLOW_MAX_REPLAYS);
        assert_true(LB_REPLAY_FOLLOW_MAX_REPLAYS >= 1);
        char n[32];
        snprintf(n, sizeof(n), "%d", LB_REPLAY_FOLLOW_MAX_REPLAYS - 1);
        hdr(&r, LB_REPLAY_HEADER, n);
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO);
        snprintf(n, sizeof(n), "%d", LB_REPLAY_FOLLOW_MAX_REPLAYS);
        hdr(&r, LB_REPLAY_HEADER, n);
        assert_int_equal(decide(&o, &r), LB_REPLAY_SKIP_MAX_REPLAYS);
        o.max_replays = 10;
        assert_int_equal(lb_replay_max_replays(&o), 10);
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO);
        o.follow = 0;
        o.max_replays = -1;
        assert_int_equal(decide(&o, &r), LB_REPLAY_GO);
}

static void test_header_carried(void **state)
{
        (void)state;
        assert_true(lb_replay_header_carried("traceparent"));
        assert_true(lb_replay_header_carried("x-producer"));
        assert_true(lb_replay_header_carried(""));
        assert_true(lb_replay_header_carried("leanbridge"));
        assert_true(lb_replay_header_carried("Leanbridge.error.stage"));
        assert_false(lb_replay_header_carried("leanbridge.error.stage"));
        assert_false(lb_replay_header_carried(LB_REPLAY_HEADER));
        assert_false(lb_replay_header_carried("leanbridge."));
}

static void test_target(void **state)
{
        (void)state;
        lb_replay_opts_t o = opts();
        lb_dlq_record_t r = record("api", "app_a", "boom", 1);
        char topic[LB_TOPIC_MAX + 1];
        int32_t part = 99;

        assert_int_equal(lb_replay_target(&o, &r, "dlq", topic, &part), 0);
        assert_string_equal(topic, "events");
        assert_int_equal(part, 3);
        hdr(&r, "leanbridge.source.partition", "x");
        assert_int_equal(lb_replay_target(&o, &r, "dlq", topic, &part), 0);
        assert_int_equal(part, -1);

        o.to = "elsewhere";
        hdr(&r, "leanbridge.source.partition", "3");
        assert_int_equal(lb_replay_target(&o, &r, "dlq", topic, &part), 0);
        assert_string_equal(topic, "elsewhere");
        assert_int_equal(part, -1); /* its partitions may differ: by key */

        /* No source topic: only --to can place it. */
        lb_dlq_record_t bare;
        lb_replay_record_init(&bare, 1);
        assert_int_equal(lb_replay_target(&o, &bare, "dlq", topic, &part), 0);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_GO);
        o.to = NULL;
        assert_int_equal(lb_replay_target(&o, &bare, "dlq", topic, &part), -1);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_NO_TARGET);
        hdr(&bare, "leanbridge.source.topic", "");
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_NO_TARGET);
        hdr(&bare, "leanbridge.source.topic", "dlq"); /* would loop */
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_NO_TARGET);
        lb_replay_record_header(&bare, "leanbridge.source.topic", "a\0b", 3);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_NO_TARGET);
        char longname[LB_TOPIC_MAX + 2];
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        hdr(&bare, "leanbridge.source.topic", longname);
        assert_int_equal(decide(&o, &bare), LB_REPLAY_SKIP_NO_TARGET);
        longname[LB_TOPIC_MAX] = '\0';
        hdr(&bare, "leanbridge.source.topic", longname);
        assert_int_equal(lb_replay_target(&o, &bare, "dlq", topic, &part), 0);
        assert_string_equal(topic, longname);
}

static void test_tally(void **state)
{
        (void)state;
        lb_tally_t t = {0};
        static const char *const names[] = {"api", "http", "api", "parse",
                                            "api", "http", "ap",  "apiX"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                assert_int_equal(lb_tally_add(&t, names[i], strlen(names[i])),
                                 0);
        /* By length: "apiX" counted as "api" when only 3 bytes are given,
         * and bytes after a NUL do not count. */
        assert_int_equal(lb_tally_add(&t, "apiX", 3), 0);
        assert_int_equal(lb_tally_add(&t, "ap\0zz", 5), 0);
        assert_int_equal(t.n, 5);
        for (size_t i = 1; i < t.n; i++) /* kept sorted by name */
                assert_true(strcmp(t.v[i - 1].name, t.v[i].name) < 0);
        lb_tally_by_count(&t);
        assert_string_equal(t.v[0].name, "api");
        assert_int_equal(t.v[0].count, 4);
        assert_string_equal(t.v[1].name, "ap");
        assert_int_equal(t.v[1].count, 2);
        assert_string_equal(t.v[2].name, "http");
        assert_int_equal(t.v[2].count, 2);
        assert_string_equal(t.v[3].name, "apiX");
        assert_string_equal(t.v[4].name, "parse");
        lb_tally_free(&t);
        assert_int_equal(t.n, 0);
        assert_null(t.v);
        lb_tally_by_count(&t); /* empty: no-op */

        /* Many distinct names: grows, stays sorted, counts each. */
        char name[16];
        for (int round = 0; round < 2; round++)
                for (int i = 999; i >= 0; i--) {
                        int n = snprintf(name, sizeof(name), "m%d", i);
                        assert_int_equal(lb_tally_add(&t, name, (size_t)n), 0);
                }
        assert_int_equal(t.n, 1000);
        for (size_t i = 0; i < t.n; i++)
                assert_int_equal(t.v[i].count, 2);
        lb_tally_free(&t);
}

/* A consumer_error record carries no event (Kafka could not hand it
 * out): never replayed, whatever the filters; another stage that merely
 * starts the same is. */
static void test_unreadable_never_replayed(void **state)
{
        (void)state;
        lb_replay_opts_t o = opts();
        lb_dlq_record_t r = record("consumer_error", NULL, "Decompression", 1);
        assert_int_equal(decide(&o, &r), LB_REPLAY_SKIP_UNREADABLE);
        o.stage = "consumer_error";
        assert_int_equal(decide(&o, &r), LB_REPLAY_SKIP_UNREADABLE);
        o.stage = NULL;
        lb_dlq_record_t p = record("consumer", NULL, "x", 1);
        assert_int_equal(decide(&o, &p), LB_REPLAY_GO);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_option_values),
            cmocka_unit_test(test_option_rules),
            cmocka_unit_test(test_parse_time),
            cmocka_unit_test(test_headers),
            cmocka_unit_test(test_filters),
            cmocka_unit_test(test_max_replays),
            cmocka_unit_test(test_follow_default_max_replays),
            cmocka_unit_test(test_header_carried),
            cmocka_unit_test(test_target),
            cmocka_unit_test(test_tally),
            cmocka_unit_test(test_unreadable_never_replayed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
