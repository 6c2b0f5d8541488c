/*
 * test_event.c: the input contract (lb_event_parse): every parse and
 * validate rule with good and hostile inputs (deep nesting, bad UTF-8, NUL
 * bytes, duplicate keys, trailing bytes, huge values and numbers), exact
 * parse reasons, escaped member names and values, the user identity, and
 * the batch.max.bytes bound against lb_multi_overhead().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"
#include "multi.h"

/* Built by hand: config.c is not linked into this test. */
static lb_config_t *conf_new(void)
{
        lb_config_t *c = calloc(1, sizeof(*c));
        assert_non_null(c);
        c->app_cnt = 2;
        c->apps = calloc(c->app_cnt, sizeof(*c->apps));
        assert_non_null(c->apps);
        c->apps[0].id = "app1";
        c->apps[0].client_key = "key1";
        c->apps[1].id = "app2";
        c->apps[1].client_key = "k\"ey2";
        c->api_version = "1.0.6";
        c->batch_max_bytes = 1048576;
        return c;
}

static int setup(void **state)
{
        *state = conf_new();
        return 0;
}

static int teardown(void **state)
{
        lb_config_t *c = *state;
        free(c->apps);
        free(c);
        return 0;
}

static lb_stage_t parse_n(void **state, const char *v, size_t n, lb_event_t *ev,
                          char *err, size_t err_size)
{
        const lb_config_t *c = *state;
        size_t overhead[8];
        assert_true(c->app_cnt <= sizeof(overhead) / sizeof(overhead[0]));
        for (size_t i = 0; i < c->app_cnt; i++)
                overhead[i] = lb_multi_overhead(
                    c->apps[i].id, c->apps[i].client_key, c->api_version);
        lb_stage_t stage =
            lb_event_parse(c, overhead, NULL, v, n, ev, err, err_size);
        /* The same with the shapes learned from every value so far, twice:
         * the second parse may be decided by the shape the first learned. */
        static lb_json_shapes_t *shapes;
        if (!shapes)
                assert_non_null(shapes = lb_event_shapes_new());
        for (int i = 0; i < 2; i++) {
                lb_event_t again;
                char why[512];
                assert_true(err_size <= sizeof(why));
                assert_int_equal(lb_event_parse(c, overhead, shapes, v, n,
                                                &again, err ? why : NULL,
                                                err_size),
                                 stage);
                if (stage != LB_STAGE_NONE) {
                        if (err && err_size)
                                assert_string_equal(why, err);
                        continue;
                }
                assert_int_equal(again.app, ev->app);
                assert_int_equal(again.time_missing, ev->time_missing);
                assert_memory_equal(&again.time_s, &ev->time_s,
                                    sizeof(again.time_s));
                assert_int_equal(again.object_empty, ev->object_empty);
                assert_int_equal(again.closes, ev->closes);
                assert_int_equal(again.user_len, ev->user_len);
                assert_memory_equal(again.user, ev->user, ev->user_len + 1);
        }
        return stage;
}

/* Parses a C string; asserts the stage and that errstr contains want. */
static void expect(void **state, const char *v, lb_stage_t stage,
                   const char *want)
{
        lb_event_t ev;
        char err[512];
        lb_stage_t got = parse_n(state, v, strlen(v), &ev, err, sizeof(err));
        if (got != stage || (want && !strstr(err, want)))
                fail_msg("value %.80s: stage %s (want %s), reason '%s' "
                         "(want '%s')",
                         v, lb_stage_name(got), lb_stage_name(stage), err,
                         want ? want : "");
        if (stage == LB_STAGE_NONE)
                assert_string_equal(err, "");
}

static lb_event_t parse_ok(void **state, const char *v)
{
        lb_event_t ev;
        char err[512];
        memset(&ev, 0xAB, sizeof(ev));
        lb_stage_t got = parse_n(state, v, strlen(v), &ev, err, sizeof(err));
        if (got != LB_STAGE_NONE)
                fail_msg("value %.80s rejected: %s", v, err);
        return ev;
}

static char *repeat(const char *s, size_t times, const char *mid,
                    const char *end, size_t end_times)
{
        size_t sl = strlen(s), ml = strlen(mid), el = strlen(end);
        char *p = malloc(sl * times + ml + el * end_times + 1);
        assert_non_null(p);
        char *w = p;
        for (size_t i = 0; i < times; i++, w += sl)
                memcpy(w, s, sl);
        memcpy(w, mid, ml);
        w += ml;
        for (size_t i = 0; i < end_times; i++, w += el)
                memcpy(w, end, el);
        *w = '\0';
        return p;
}

static void test_valid_user_event(void **state)
{
        lb_event_t ev = parse_ok(state, "{\"appId\":\"app2\",\"action\":"
                                        "\"track\",\"userId\":\"user1\","
                                        "\"time\":1375295825,\"event\":\"L\"}");
        assert_int_equal(ev.app, 1);
        assert_int_equal(ev.time_missing, 0);
        assert_int_equal(ev.object_empty, 0);
        assert_int_equal(ev.user_len, 5);
        assert_string_equal(ev.user, "user1");
}

static void test_device_fallback_and_precedence(void **state)
{
        lb_event_t ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":"
                                        "\"start\",\"deviceId\":\"dev9\"}");
        assert_int_equal(ev.app, 0);
        assert_string_equal(ev.user, "dev9");
        assert_int_equal(ev.user_len, 4);
        ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"start\","
                             "\"deviceId\":\"dev9\",\"userId\":\"u\"}");
        assert_string_equal(ev.user, "u");
        assert_int_equal(ev.user_len, 1);
        /* a deviceId alone is the user's id to the API: one identity with
         * the same userId */
        ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"start\","
                             "\"deviceId\":\"X\"}");
        lb_event_t same = parse_ok(state, "{\"appId\":\"app1\",\"action\":"
                                          "\"track\",\"userId\":\"X\"}");
        assert_int_equal(ev.user_len, same.user_len);
        assert_memory_equal(ev.user, same.user, ev.user_len + 1);
}

static void test_time(void **state)
{
        lb_event_t ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"a\","
                                        "\"userId\":\"u\"}");
        assert_int_equal(ev.time_missing, 1);
        ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"a\","
                             "\"userId\":\"u\",\"time\":1375295825.25}");
        assert_int_equal(ev.time_missing, 0);
        assert_true(ev.time_s == 1375295825.25);
        ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"a\","
                             "\"userId\":\"u\",\"time\":-1}");
        assert_int_equal(ev.time_missing, 0);
        assert_true(ev.time_s == -1.0);
        ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"a\","
                             "\"time\":1.5e9,\"userId\":\"u\"}");
        assert_true(ev.time_s == 1.5e9);
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"time\":\"1375295825\"}",
               LB_STAGE_VALIDATE, "time must be a number, not a string");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"time\":null}",
               LB_STAGE_VALIDATE, "time must be a number, not null");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"time\":[1]}",
               LB_STAGE_VALIDATE, "time must be a number, not an array");
}

static void test_whitespace_around_object(void **state)
{
        lb_event_t ev = parse_ok(state, " \t\r\n{ \"appId\" : \"app1\" , "
                                        "\"action\":\"a\",\"userId\":\"u\" } "
                                        "\n");
        assert_int_equal(ev.time_missing, 1);
}

static void test_empty_value(void **state)
{
        lb_event_t ev;
        char err[128];
        assert_int_equal(parse_n(state, "", 0, &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        assert_string_equal(err, "empty value");
        assert_int_equal(parse_n(state, NULL, 0, &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
}

static void test_not_json(void **state)
{
        expect(state, "hello", LB_STAGE_PARSE, "invalid JSON");
        expect(state, "{\"appId\":", LB_STAGE_PARSE, "invalid JSON");
        expect(state, "{'appId':'app1'}", LB_STAGE_PARSE, "invalid JSON");
        expect(state, "{\"a\":1,}", LB_STAGE_PARSE, "invalid JSON");
        expect(state, "{\"a\":01}", LB_STAGE_PARSE, "invalid JSON");
        expect(state, "{\"a\":NaN}", LB_STAGE_PARSE, "invalid JSON");
        expect(state, "   ", LB_STAGE_PARSE, "invalid JSON");
}

static void test_not_an_object(void **state)
{
        expect(state,
               "[{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\"}]",
               LB_STAGE_PARSE, "not a JSON object (an array)");
        expect(state, "\"app1\"", LB_STAGE_PARSE,
               "not a JSON object (a string)");
        expect(state, "42", LB_STAGE_PARSE, "not a JSON object (a number)");
        expect(state, "-1.5e3", LB_STAGE_PARSE, "not a JSON object");
        expect(state, "true", LB_STAGE_PARSE, "not a JSON object (a boolean)");
        expect(state, "null", LB_STAGE_PARSE, "not a JSON object (null)");
}

static void test_deep_nesting(void **state)
{
        char *v = repeat("{\"a\":", 10000, "1", "}", 10000);
        expect(state, v, LB_STAGE_PARSE, "maximum parsing depth");
        free(v);
        v = repeat("[", 10000, "", "]", 10000);
        expect(state, v, LB_STAGE_PARSE, "maximum parsing depth");
        free(v);
        /* Deep inside an otherwise valid event. */
        v = repeat("[", 10000, "", "]", 10000);
        size_t n = strlen(v) + 128;
        char *e = malloc(n);
        assert_non_null(e);
        snprintf(e, n,
                 "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
                 "\"x\":%s}",
                 v);
        expect(state, e, LB_STAGE_PARSE, "maximum parsing depth");
        free(e);
        free(v);
        /* Unterminated nesting. */
        v = repeat("{\"a\":[", 10000, "", "", 0);
        expect(state, v, LB_STAGE_PARSE, "invalid JSON");
        free(v);
        /* Moderate nesting is fine. */
        v = repeat("[", 100, "", "]", 100);
        n = strlen(v) + 128;
        e = malloc(n);
        assert_non_null(e);
        snprintf(e, n,
                 "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
                 "\"x\":%s}",
                 v);
        parse_ok(state, e);
        free(e);
        free(v);
}

static void test_invalid_utf8(void **state)
{
        static const char *const bad[] = {
            "\xff",             /* never valid */
            "\xc0\xaf",         /* overlong '/' */
            "\xe0\x80\xaf",     /* overlong */
            "\xed\xa0\x80",     /* surrogate */
            "\xf4\x90\x80\x80", /* > U+10FFFF */
            "\x80",             /* lone continuation */
            "\xe2\x82",         /* truncated (closing quote follows) */
        };
        char v[256];
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(
                    v, sizeof(v),
                    "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
                    "\"event\":\"x%sy\"}",
                    bad[i]);
                expect(state, v, LB_STAGE_PARSE, "invalid JSON");
        }
        /* Outside a string, and truncated at the very end. */
        expect(state, "{\"appId\":\"app1\"}\xff", LB_STAGE_PARSE,
               "invalid JSON");
        expect(state, "{\"appId\":\"\xe2\x82", LB_STAGE_PARSE, "invalid JSON");
        /* Valid multi-byte UTF-8 and escapes are fine. */
        lb_event_t ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"a\","
                                        "\"userId\":\"\xc3\xa9\xe2\x82\xac"
                                        "\xf0\x9f\x98\x80\","
                                        "\"e\":\"\\ud83d\\ude00\\u00e9\"}");
        assert_string_equal(ev.user, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"e\":\"\\ud83d\"}",
               LB_STAGE_PARSE, "invalid JSON");
}

static void test_nul_bytes(void **state)
{
        static const char head[] =
            "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u";
        char v[128];
        size_t n = sizeof(head) - 1;
        memcpy(v, head, n);
        v[n++] = '\0';
        memcpy(v + n, "\"}", 2);
        n += 2;
        lb_event_t ev;
        char err[256];
        assert_int_equal(parse_n(state, v, n, &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        /* A NUL after a complete object (trailing) and between tokens. */
        static const char ok[] =
            "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\"}";
        memcpy(v, ok, sizeof(ok)); /* copies the NUL too */
        assert_int_equal(parse_n(state, v, sizeof(ok), &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        memcpy(v, "{\0\"a\":1}", 8);
        assert_int_equal(parse_n(state, v, 8, &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        /* The escaped form is refused too (jansson without
         * JSON_ALLOW_NUL), in keys and in values. */
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\\u0000\"}",
               LB_STAGE_PARSE, "invalid JSON");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"k\\u0000\":1}",
               LB_STAGE_PARSE, "invalid JSON");
        /* jansson dropped a NUL right after a number or a literal and took
         * the value; the API would have received the NUL. */
        static const char after_number[] =
            "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
            "\"time\":1\0}";
        assert_int_equal(parse_n(state, after_number, sizeof(after_number) - 1,
                                 &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        assert_string_equal(err, "invalid JSON at byte 51: '}' expected");
        static const char after_literal[] =
            "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
            "\"t\":true\0}";
        assert_int_equal(parse_n(state, after_literal,
                                 sizeof(after_literal) - 1, &ev, err,
                                 sizeof(err)),
                         LB_STAGE_PARSE);
}

static void test_parse_reasons(void **state)
{
        /* jansson's messages and positions, without the token. */
        static const struct {
                const char *v, *want;
        } cases[] = {
            {"{\"appId\":\"app1\",\"appId\":1}",
             "invalid JSON at byte 23: duplicate object key"},
            {"{\"a\":\"x\\ud800\"}", "invalid JSON at byte 14: invalid "
                                     "Unicode '\\uD800'"},
            {"{\"a\":1e999}", "invalid JSON at byte 10: real number overflow"},
            {"{\"a\":\"\xed\xa0\x80\"}",
             "invalid JSON at byte 6: unable to decode byte 0xed"},
            {"{\"a\":1} x", "invalid JSON at byte 9: end of file expected"},
            {"{\"a\":[1,]}", "invalid JSON at byte 9: unexpected token"},
            {"{\"a\":\"\\u0000\"}", "invalid JSON at byte 13: \\u0000 is "
                                    "not allowed without JSON_ALLOW_NUL"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                lb_event_t ev;
                char err[256];
                assert_int_equal(parse_n(state, cases[i].v, strlen(cases[i].v),
                                         &ev, err, sizeof(err)),
                                 LB_STAGE_PARSE);
                assert_string_equal(err, cases[i].want);
        }
}

static void test_escaped_fields(void **state)
{
        /* Names and values are compared and copied decoded. */
        lb_event_t ev = parse_ok(state, "{\"\\u0061ppId\":\"app\\u0032\","
                                        "\"act\\u0069on\":\"\\t\",\"user"
                                        "\\u0049d\":\"a\\\"b\\u00e9\\ud83d"
                                        "\\ude00\\/\"}");
        assert_int_equal(ev.app, 1);
        assert_string_equal(ev.user, "a\"b\xc3\xa9\xf0\x9f\x98\x80/");
        assert_int_equal(ev.user_len, 10);
        ev = parse_ok(state, "{\"appId\":\"app1\",\"action\":\"a\","
                             "\"device\\u0049d\":\"\\u0064ev\"}");
        assert_string_equal(ev.user, "dev");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"clie\\u006etKey\":\"k\"}",
               LB_STAGE_VALIDATE, "clientKey must not be in an event");
        expect(state,
               "{\"appId\":\"\\u0041pp1\",\"action\":\"a\",\"userId\":"
               "\"u\"}",
               LB_STAGE_VALIDATE, "unknown appId 'App1'");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"\\u0020\",\"userId\":\"\"}",
               LB_STAGE_VALIDATE, "userId is empty");
        /* The limit counts decoded bytes: 100 escapes of 4 bytes = 400. */
        char *id = repeat("\\ud83d\\ude00", 100, "", "", 0);
        char v[2048];
        snprintf(v, sizeof(v),
                 "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"%s\"}", id);
        ev = parse_ok(state, v);
        assert_int_equal(ev.user_len, 400);
        assert_memory_equal(ev.user + 396, "\xf0\x9f\x98\x80", 4);
        snprintf(v, sizeof(v),
                 "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"%sx\"}",
                 id);
        expect(state, v, LB_STAGE_VALIDATE, "userId is 401 bytes");
        free(id);
}

static void test_duplicate_keys(void **state)
{
        expect(state,
               "{\"appId\":\"app1\",\"appId\":\"app2\",\"action\":\"a\","
               "\"userId\":\"u\"}",
               LB_STAGE_PARSE, "duplicate object key");
        /* Same key once decoded: the API must not see a different one. */
        expect(state,
               "{\"appId\":\"app1\",\"app\\u0049d\":\"app2\",\"action\":\"a\","
               "\"userId\":\"u\"}",
               LB_STAGE_PARSE, "duplicate object key");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"p\":{\"x\":1,\"x\":2}}",
               LB_STAGE_PARSE, "duplicate object key");
}

static void test_trailing_garbage(void **state)
{
        static const char ok[] =
            "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\"}";
        static const char *const tails[] = {"x", "{}", ",",     "}",
                                            "]", "1",  " \"\"", "\n{\"a\":1}"};
        char v[256];
        for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
                snprintf(v, sizeof(v), "%s%s", ok, tails[i]);
                expect(state, v, LB_STAGE_PARSE, "invalid JSON");
        }
}

static void test_huge_numbers(void **state)
{
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"v\":123456789012345678901234567890}",
               LB_STAGE_PARSE, "too big integer");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"v\":-123456789012345678901234567890}",
               LB_STAGE_PARSE, "too big negative integer");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"time\":1e999}",
               LB_STAGE_PARSE, "real number overflow");
        parse_ok(state, "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":"
                        "\"u\",\"v\":9223372036854775807,\"w\":1e308}");
}

static void test_app_id(void **state)
{
        expect(state, "{\"action\":\"a\",\"userId\":\"u\"}", LB_STAGE_VALIDATE,
               "missing appId");
        expect(state, "{\"appId\":7,\"action\":\"a\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "appId must be a string, not a number");
        expect(state, "{\"appId\":null,\"action\":\"a\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "appId must be a string, not null");
        expect(state, "{\"appId\":\"nope\",\"action\":\"a\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "unknown appId 'nope'");
        expect(state, "{\"appId\":\"\",\"action\":\"a\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "unknown appId ''");
        /* A prefix or extension of a known id is not that id. */
        expect(state, "{\"appId\":\"app\",\"action\":\"a\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "unknown appId 'app'");
        expect(state, "{\"appId\":\"app10\",\"action\":\"a\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "unknown appId 'app10'");
}

static void test_unknown_app_id_echo_is_capped_and_clean(void **state)
{
        char *id = repeat("x", 300, "", "", 0);
        char v[512];
        snprintf(v, sizeof(v),
                 "{\"appId\":\"\\n\\u001b[31m%s\",\"action\":\"a\",\"userId\":"
                 "\"u\"}",
                 id);
        free(id);
        lb_event_t ev;
        char err[512];
        assert_int_equal(parse_n(state, v, strlen(v), &ev, err, sizeof(err)),
                         LB_STAGE_VALIDATE);
        assert_non_null(strstr(err, "unknown appId '??[31mxxx"));
        assert_non_null(strstr(err, "...'"));
        assert_true(strlen(err) < 100);
        for (const char *p = err; *p; p++)
                assert_true(*p >= 0x20 && *p < 0x7f);
}

static void test_action(void **state)
{
        expect(state, "{\"appId\":\"app1\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "missing action");
        expect(state, "{\"appId\":\"app1\",\"action\":1,\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "action must be a string, not a number");
        expect(state, "{\"appId\":\"app1\",\"action\":{},\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "action must be a string, not an object");
        expect(state, "{\"appId\":\"app1\",\"action\":\"\",\"userId\":\"u\"}",
               LB_STAGE_VALIDATE, "action is empty");
}

static void test_user_rules(void **state)
{
        expect(state, "{\"appId\":\"app1\",\"action\":\"a\"}",
               LB_STAGE_VALIDATE, "missing userId or deviceId");
        expect(state, "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":42}",
               LB_STAGE_VALIDATE, "userId must be a string, not a number");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":null,"
               "\"deviceId\":\"d\"}",
               LB_STAGE_VALIDATE, "userId must be a string, not null");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":[\"u\"]}",
               LB_STAGE_VALIDATE, "userId must be a string, not an array");
        expect(state, "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"\"}",
               LB_STAGE_VALIDATE, "userId is empty");
        expect(state, "{\"appId\":\"app1\",\"action\":\"a\",\"deviceId\":true}",
               LB_STAGE_VALIDATE, "deviceId must be a string, not a boolean");
        expect(state, "{\"appId\":\"app1\",\"action\":\"a\",\"deviceId\":\"\"}",
               LB_STAGE_VALIDATE, "deviceId is empty");
        /* A bad deviceId is an error even when userId is fine. */
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"deviceId\":1}",
               LB_STAGE_VALIDATE, "deviceId must be a string");
}

static void test_user_length(void **state)
{
        char v[1024];
        char *id = repeat("a", LB_USER_ID_MAX, "", "", 0);
        snprintf(v, sizeof(v),
                 "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"%s\"}", id);
        lb_event_t ev = parse_ok(state, v);
        assert_int_equal(ev.user_len, LB_USER_ID_MAX);
        assert_int_equal(strlen(ev.user), LB_USER_ID_MAX);
        snprintf(v, sizeof(v),
                 "{\"appId\":\"app1\",\"action\":\"a\",\"deviceId\":\"%s\"}",
                 id);
        ev = parse_ok(state, v);
        assert_int_equal(ev.user_len, LB_USER_ID_MAX);
        free(id);

        id = repeat("a", LB_USER_ID_MAX + 1, "", "", 0);
        snprintf(v, sizeof(v),
                 "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"%s\"}", id);
        expect(state, v, LB_STAGE_VALIDATE, "userId is 401 bytes");
        snprintf(v, sizeof(v),
                 "{\"appId\":\"app1\",\"action\":\"a\",\"deviceId\":\"%s\"}",
                 id);
        expect(state, v, LB_STAGE_VALIDATE, "deviceId is 401 bytes");
        free(id);

        /* The limit counts decoded bytes: 200 two-byte characters = 400. */
        id = repeat("\xc3\xa9", 200, "", "", 0);
        snprintf(v, sizeof(v),
                 "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"%s\"}", id);
        ev = parse_ok(state, v);
        assert_int_equal(ev.user_len, 400);
        free(id);
}

static void test_parse_reason_does_not_echo_tokens(void **state)
{
        lb_event_t ev;
        char err[256];
        const char *v = "{\"clientKey\" \"SECRET-123\"}";
        assert_int_equal(parse_n(state, v, strlen(v), &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        assert_string_equal(err, "invalid JSON at byte 25: ':' expected");
}

/* What an event does to its user's window, by its app's policy. */
static void test_policy_classify(void **state)
{
        lb_config_t *c = *state;
        lb_names_t urgent = {0}, end = {0};
        char why[256];
        assert_int_equal(lb_names_parse("event:Purchase, setUserAttributes",
                                        &urgent, why, sizeof(why)),
                         0);
        assert_int_equal(
            lb_names_parse("stop, event:Log out", &end, why, sizeof(why)), 0);
        c->apps[0].policy.urgent = &urgent;
        c->apps[0].policy.session_end = &end;
#define EV(rest) "{\"appId\":\"app1\",\"userId\":\"u\"," rest "}"
        const struct {
                const char *v;
                lb_close_t want;
        } cases[] = {
            {EV("\"action\":\"track\",\"event\":\"Purchase\""),
             LB_CLOSE_URGENT},
            /* decoded before it is compared */
            {EV("\"action\":\"track\",\"event\":\"Purch\\u0061se\""),
             LB_CLOSE_URGENT},
            {EV("\"action\":\"setUserAttributes\""), LB_CLOSE_URGENT},
            /* urgent wins over a session's end */
            {EV("\"action\":\"stop\",\"event\":\"Purchase\""), LB_CLOSE_URGENT},
            {EV("\"action\":\"stop\""), LB_CLOSE_SESSION_END},
            {EV("\"action\":\"track\",\"event\":\"Log out\""),
             LB_CLOSE_SESSION_END},
            /* names are exact: case, length, field and type count */
            {EV("\"action\":\"track\",\"event\":\"purchase\""), LB_CLOSE_NONE},
            {EV("\"action\":\"track\",\"event\":\"Purchase2\""), LB_CLOSE_NONE},
            {EV("\"action\":\"Purchase\""), LB_CLOSE_NONE},
            {EV("\"action\":\"track\",\"event\":[\"Purchase\"]"),
             LB_CLOSE_NONE},
            {EV("\"action\":\"start\""), LB_CLOSE_NONE},
            /* another app, another policy: app2 has none */
            {"{\"appId\":\"app2\",\"userId\":\"u\",\"action\":\"stop\"}",
             LB_CLOSE_NONE},
        };
#undef EV
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                lb_event_t ev = parse_ok(state, cases[i].v);
                if (ev.closes != cases[i].want)
                        fail_msg("%s: closes %d, want %d", cases[i].v,
                                 ev.closes, cases[i].want);
        }
        c->apps[0].policy.urgent = NULL;
        c->apps[0].policy.session_end = NULL;
        lb_names_free(&urgent);
        lb_names_free(&end);
}

static void test_client_key(void **state)
{
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"clientKey\":\"key1\"}",
               LB_STAGE_VALIDATE, "clientKey must not be in an event");
        expect(state,
               "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\","
               "\"clientKey\":null}",
               LB_STAGE_VALIDATE, "clientKey must not be in an event");
        /* The reason never echoes the value. */
        lb_event_t ev;
        char err[256];
        const char *v = "{\"clientKey\":\"SECRET-123\"}";
        assert_int_equal(parse_n(state, v, strlen(v), &ev, err, sizeof(err)),
                         LB_STAGE_VALIDATE);
        assert_null(strstr(err, "SECRET"));
}

/* Builds an event of exactly len bytes for app1 (time present or not). */
static char *event_of_len(size_t len, int with_time)
{
        const char *head = with_time ? "{\"appId\":\"app1\",\"action\":\"a\","
                                       "\"userId\":\"u\",\"time\":1,\"p\":\""
                                     : "{\"appId\":\"app1\",\"action\":\"a\","
                                       "\"userId\":\"u\",\"p\":\"";
        size_t hl = strlen(head);
        assert_true(len >= hl + 2);
        char *v = malloc(len + 1);
        assert_non_null(v);
        memcpy(v, head, hl);
        memset(v + hl, 'x', len - hl - 2);
        memcpy(v + len - 2, "\"}", 3);
        return v;
}

static void test_batch_max_bytes(void **state)
{
        lb_config_t *c = *state;
        size_t overhead = lb_multi_overhead("app1", "key1", "1.0.6");
        c->batch_max_bytes = 300;
        for (int with_time = 0; with_time <= 1; with_time++) {
                /* Largest value that fits: overhead + body_len == max. */
                size_t fit = 300 - overhead - 1 -
                             (with_time ? 0 : LB_EVENT_TIME_SPLICE_MAX);
                char *v = event_of_len(fit, with_time);
                lb_event_t ev = parse_ok(state, v);
                assert_int_equal(ev.time_missing, !with_time);
                assert_int_equal(
                    overhead + lb_event_body_len(fit, ev.time_missing), 300);
                free(v);
                v = event_of_len(fit + 1, with_time);
                expect(state, v, LB_STAGE_VALIDATE,
                       "event larger than batch.max.bytes");
                free(v);
        }
        /* The key of app2 escapes to more bytes: its bound is larger. */
        assert_true(lb_multi_overhead("app2", "k\"ey2", "1.0.6") > overhead);
}

static void test_ten_megabyte_value(void **state)
{
        lb_config_t *c = *state;
        size_t len = 10 * 1024 * 1024;
        char *v = event_of_len(len, 0);
        lb_event_t ev;
        char err[256];
        /* Refused before parsing at the default limit. */
        assert_int_equal(parse_n(state, v, len, &ev, err, sizeof(err)),
                         LB_STAGE_VALIDATE);
        assert_non_null(strstr(err, "event larger than batch.max.bytes"));
        /* Not JSON at all and too large: too large is the verdict. */
        memset(v, '!', len);
        assert_int_equal(parse_n(state, v, len, &ev, err, sizeof(err)),
                         LB_STAGE_VALIDATE);
        free(v);
        /* With a limit that allows it, it parses. */
        c->batch_max_bytes = 64 * 1024 * 1024;
        v = event_of_len(len, 0);
        ev = parse_ok(state, v);
        assert_int_equal(ev.time_missing, 1);
        v[len - 1] = ']';
        assert_int_equal(parse_n(state, v, len, &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        free(v);
}

static void test_errstr_optional(void **state)
{
        lb_event_t ev;
        const char *v = "[1]";
        assert_int_equal(parse_n(state, v, 3, &ev, NULL, 0), LB_STAGE_PARSE);
        char err[8];
        assert_int_equal(parse_n(state, v, 3, &ev, err, sizeof(err)),
                         LB_STAGE_PARSE);
        assert_int_equal(strlen(err), sizeof(err) - 1);
        v = "{\"appId\":\"app1\",\"action\":\"a\",\"userId\":\"u\"}";
        assert_int_equal(parse_n(state, v, strlen(v), &ev, NULL, 0),
                         LB_STAGE_NONE);
}

static void test_body_len(void **state)
{
        (void)state;
        assert_int_equal(lb_event_body_len(100, 0), 101);
        assert_int_equal(lb_event_body_len(100, 1),
                         101 + LB_EVENT_TIME_SPLICE_MAX);
        assert_int_equal(lb_event_body_len(0, 0), 1);
}

static void test_event_time(void **state)
{
        (void)state;
        double t = -7;
        assert_int_equal(lb_event_time("{\"time\":1700000000}", 19, &t), 0);
        assert_true(t == 1700000000.0);
        assert_int_equal(lb_event_time("{\"a\":[1],\"time\" : 12.5 }", 24, &t),
                         0);
        assert_true(t == 12.5);
        /* Cut short (a dead letter written cut), no time, wrong types. */
        assert_int_equal(lb_event_time("{\"time\":1700000000", 18, &t), -1);
        assert_int_equal(lb_event_time("{\"x\":1}", 7, &t), -1);
        assert_int_equal(lb_event_time("{\"time\":\"1\"}", 12, &t), -1);
        assert_int_equal(lb_event_time("[1]", 3, &t), -1);
        assert_int_equal(lb_event_time("", 0, &t), -1);
        assert_int_equal(lb_event_time(NULL, 0, &t), -1);
        /* Only the top-level member counts. */
        assert_int_equal(lb_event_time("{\"p\":{\"time\":1}}", 16, &t), -1);
}

/* The age bound: the event's time in UNIX seconds, else the Kafka
 * timestamp in ms; the clock is passed in. */
static void test_too_old(void **state)
{
        (void)state;
        const int64_t now = INT64_C(1700000000000), day = 86400000;
        char why[256];
        /* Off. */
        assert_int_equal(lb_event_too_old(1, 0, 1, now, 0, why, sizeof(why)),
                         0);
        /* By the event's time (seconds), which wins over the timestamp. */
        assert_int_equal(lb_event_too_old(1, 1700000000.0 - 8 * 86400, now, now,
                                          7 * day, why, sizeof(why)),
                         1);
        assert_non_null(strstr(why, "by its time"));
        assert_non_null(strstr(why, "691200 s old"));
        assert_int_equal(lb_event_too_old(1, 1700000000.0 - 6 * 86400,
                                          now - 30 * day, now, 7 * day, why,
                                          sizeof(why)),
                         0);
        /* Exactly at the bound is not older than it. */
        assert_int_equal(lb_event_too_old(1, 1700000000.0 - 7 * 86400, 0, now,
                                          7 * day, why, sizeof(why)),
                         0);
        assert_int_equal(lb_event_too_old(1, 1700000000.0 - 7 * 86400 - 0.5, 0,
                                          now, 7 * day, why, sizeof(why)),
                         1);
        /* In the future: not old. */
        assert_int_equal(
            lb_event_too_old(1, 1800000000.0, 0, now, 1, why, sizeof(why)), 0);
        /* No time: the Kafka timestamp (ms). */
        assert_int_equal(
            lb_event_too_old(0, 0, now - day - 1, now, day, why, sizeof(why)),
            1);
        assert_non_null(strstr(why, "by its Kafka timestamp"));
        assert_non_null(strstr(why, "input.max.age.ms"));
        assert_int_equal(
            lb_event_too_old(0, 0, now - day, now, day, why, sizeof(why)), 0);
        /* Nothing to judge by: never too old. errstr is optional. */
        assert_int_equal(lb_event_too_old(0, 0, 0, now, 1, NULL, 0), 0);
        assert_int_equal(lb_event_too_old(0, 0, -1, now, 1, NULL, 0), 0);
        assert_int_equal(lb_event_too_old(0, 0, 1, now, 1, NULL, 0), 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(test_valid_user_event),
            T(test_device_fallback_and_precedence),
            T(test_time),
            T(test_whitespace_around_object),
            T(test_empty_value),
            T(test_not_json),
            T(test_not_an_object),
            T(test_deep_nesting),
            T(test_invalid_utf8),
            T(test_nul_bytes),
            T(test_parse_reasons),
            T(test_escaped_fields),
            T(test_duplicate_keys),
            T(test_trailing_garbage),
            T(test_huge_numbers),
            T(test_app_id),
            T(test_unknown_app_id_echo_is_capped_and_clean),
            T(test_action),
            T(test_user_rules),
            T(test_user_length),
            T(test_policy_classify),
            T(test_client_key),
            T(test_parse_reason_does_not_echo_tokens),
            T(test_batch_max_bytes),
            T(test_ten_megabyte_value),
            T(test_errstr_optional),
            T(test_body_len),
            cmocka_unit_test(test_event_time),
            cmocka_unit_test(test_too_old),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
