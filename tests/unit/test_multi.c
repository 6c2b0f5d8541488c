/*
 * test_multi.c: the multi codec: buffers and JSON string escaping, the exact
 * request body, the "time" splice, the size bound the batcher relies on
 * (a property over many random requests), the outcome table row by row
 * (including malformed, truncated and hostile bodies) and Retry-After.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>
#include <jansson.h>

#include "event.h"
#include "multi.h"
#include "arena.h"

/* The arena every action of this test lives in (reachable: no leak). */
static lb_arena_t *arena(void)
{
        static lb_arena_t *a;
        if (!a)
                a = lb_arena_new();
        return a;
}

/* --- helpers ------------------------------------------------------------- */

static lb_action_t *action(const char *value, int time_missing, int64_t ts_ms)
{
        lb_action_t *a = lb_action_new(arena(), NULL, 0, value, strlen(value));
        assert_non_null(a);
        a->time_missing = time_missing != 0;
        a->timestamp_ms = ts_ms;
        json_t *v = json_loads(value, 0, NULL);
        assert_non_null(v);
        a->object_empty = json_object_size(v) == 0;
        json_decref(v);
        return a;
}

/* The piece sizes encode() reads a body in, in turn: one byte at a time,
 * odd sizes that split every part somewhere, and libcurl's upload buffer. */
static const size_t pieces[] = {1, 3, 7, 64, 65536};
static size_t piece_turn;

/* The whole body lb_multi_body writes for actions[0..n), into out (its
 * contents replaced), read in pieces of one of the sizes above: each read
 * gives its whole size until the end, none after, and the bytes add up to
 * the length the body announced (its Content-Length). @returns 0 or -1. */
static int encode(lb_buf_t *out, const char *app_id, const char *client_key,
                  const char *api_version, double now_s,
                  lb_action_t *const *actions, size_t n)
{
        lb_multi_body_t w = {0};
        if (lb_multi_body_start(&w, app_id, client_key, api_version, now_s,
                                actions, n))
                return -1;
        size_t piece =
            pieces[piece_turn++ % (sizeof(pieces) / sizeof(*pieces))];
        lb_buf_reset(out);
        assert_int_equal(lb_buf_reserve(out, w.len + piece), 0);
        size_t got;
        do {
                got = lb_multi_body_read(&w, out->data + out->len, piece);
                out->len += got;
                assert_true(got == piece || out->len == w.len);
        } while (got == piece);
        assert_int_equal(out->len, w.len);
        assert_int_equal(w.written, w.len);
        assert_int_equal(lb_multi_body_read(&w, out->data, piece), 0);
        out->data[out->len] = '\0';
        lb_multi_body_free(&w);
        return 0;
}

/* Encodes one action alone and returns its text inside "data":[...]. */
static char *encode_one(const char *value, int time_missing, int64_t ts_ms)
{
        lb_action_t *a = action(value, time_missing, ts_ms);
        lb_buf_t b = {0};
        assert_int_equal(encode(&b, "a", "k", "v", 0, &a, 1), 0);
        const char *start = strstr(b.data, "\"data\":[") + 8;
        size_t n = b.len - (size_t)(start - b.data) - 2;
        char *s = strndup(start, n);
        assert_non_null(s);
        assert_true(b.len <=
                    lb_multi_overhead("a", "k", "v") +
                        lb_event_body_len(a->value_len, a->time_missing));
        lb_buf_free(&b);
        lb_action_destroy(a);
        return s;
}

static lb_outcome_t classify(int status, const char *body, size_t n,
                             lb_action_result_t *res, char *reason,
                             size_t reason_size)
{
        return lb_multi_classify(status, body, body ? strlen(body) : 0, n, 0,
                                 res, reason, reason_size);
}

/* --- buffers and strings ------------------------------------------------- */

static void test_buf(void **state)
{
        (void)state;
        lb_buf_t b = {0};
        lb_buf_free(&b); /* zeroed: no-op */
        lb_buf_reset(&b);
        assert_int_equal(lb_buf_append(&b, "ab", 2), 0);
        assert_int_equal(lb_buf_append(&b, NULL, 0), 0);
        assert_int_equal(lb_buf_printf(&b, "-%d-%s", 42, "x"), 0);
        assert_string_equal(b.data, "ab-42-x");
        assert_int_equal(b.len, 7);
        char big[5000];
        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(lb_buf_printf(&b, "%s", big), 0);
        assert_int_equal(b.len, 7 + 4999);
        assert_int_equal(b.data[b.len], '\0');
        assert_true(b.cap > b.len);
        size_t cap = b.cap;
        lb_buf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, cap);
        assert_string_equal(b.data, "");
        assert_int_equal(lb_buf_reserve(&b, SIZE_MAX), -1);
        assert_int_equal(lb_buf_append(&b, "q", 1), 0);
        assert_string_equal(b.data, "q");
        lb_buf_free(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
}

/* A buffer read up to a limit grows by doubling, but never past the
 * limit's room; past it, it grows as any buffer (the caller's check). */
static void test_buf_upto(void **state)
{
        (void)state;
        lb_buf_t b = {0};
        char chunk[300];
        memset(chunk, 'r', sizeof(chunk));
        assert_int_equal(lb_buf_append_upto(&b, chunk, 200, 1001), 0);
        assert_int_equal(b.cap, 256);
        assert_int_equal(lb_buf_append_upto(&b, chunk, 300, 1001), 0);
        assert_int_equal(b.cap, 512);
        assert_int_equal(lb_buf_append_upto(&b, chunk, 300, 1001), 0);
        assert_int_equal(b.cap, 1001); /* not 1024 */
        assert_int_equal(lb_buf_append_upto(&b, chunk, 200, 1001), 0);
        assert_int_equal(b.len, 1000);
        assert_int_equal(b.cap, 1001);
        assert_int_equal(b.data[1000], '\0');
        assert_int_equal(lb_buf_append_upto(&b, chunk, 1, 1001), 0);
        assert_int_equal(b.len, 1001);
        assert_true(b.cap > 1001);
        lb_buf_free(&b);
}

static void expect_json_string(const char *in, size_t n, const char *want)
{
        lb_buf_t b = {0};
        assert_int_equal(lb_buf_append(&b, "x", 1), 0);
        assert_int_equal(lb_buf_append_json_string(&b, in, n), 0);
        assert_string_equal(b.data + 1, want);
        assert_int_equal(lb_buf_json_string_len(in, n), strlen(want));
        /* And jansson reads it back as valid JSON. */
        json_t *v = json_loadb(b.data + 1, b.len - 1,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(v);
        assert_true(json_is_string(v));
        json_decref(v);
        lb_buf_free(&b);
}

static void test_json_string_escaping(void **state)
{
        (void)state;
        expect_json_string("", 0, "\"\"");
        expect_json_string("plain", 5, "\"plain\"");
        expect_json_string("a\"b\\c/", 6, "\"a\\\"b\\\\c/\"");
        expect_json_string("\n\t\x01\x1f\x7f", 5,
                           "\"\\u000a\\u0009\\u0001\\u001f\x7f\"");
        expect_json_string("n\0l", 3, "\"n\\u0000l\"");
        /* Valid UTF-8 is kept; invalid bytes become U+FFFD one by one. */
        expect_json_string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
                           "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        expect_json_string("\xff", 1, "\"\\ufffd\"");
        expect_json_string("\xe2\x82", 2, "\"\\ufffd\\ufffd\"");
        expect_json_string("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
        expect_json_string("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
        expect_json_string("\xf4\x90\x80\x80", 4,
                           "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
        expect_json_string("a\xc3", 2, "\"a\\ufffd\"");
        /* Every byte value, alone: always valid JSON, length agrees. */
        for (int c = 0; c < 256; c++) {
                char in = (char)c;
                lb_buf_t b = {0};
                assert_int_equal(lb_buf_append_json_string(&b, &in, 1), 0);
                assert_int_equal(b.len, lb_buf_json_string_len(&in, 1));
                json_t *v = json_loadb(b.data, b.len,
                                       JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                assert_non_null(v);
                json_decref(v);
                lb_buf_free(&b);
        }
}

/* --- encoding ------------------------------------------------------------ */

static void test_encode_exact(void **state)
{
        (void)state;
        lb_action_t *a[2] = {
            action("{\"action\":\"start\",\"userId\":\"u1\",\"time\":1}", 0,
                   99),
            action("{\"action\":\"track\",\"userId\":\"u1\"}", 1,
                   1375295830250),
        };
        lb_buf_t b = {0};
        assert_int_equal(lb_buf_append(&b, "stale", 5), 0);
        assert_int_equal(
            encode(&b, "app1", "key1", "1.0.6", 1375295890.5, a, 2), 0);
        assert_string_equal(
            b.data,
            "{\"appId\":\"app1\",\"clientKey\":\"key1\",\"apiVersion\":"
            "\"1.0.6\",\"time\":1375295890.5,\"data\":["
            "{\"action\":\"start\",\"userId\":\"u1\",\"time\":1},"
            "{\"action\":\"track\",\"userId\":\"u1\",\"time\":1375295830.25}"
            "]}");
        assert_int_equal(b.len, strlen(b.data));
        assert_true(b.len <= lb_multi_overhead("app1", "key1", "1.0.6") +
                                 lb_event_body_len(a[0]->value_len, 0) +
                                 lb_event_body_len(a[1]->value_len, 1));
        /* No actions at all still gives a valid body. */
        assert_int_equal(encode(&b, "app1", "key1", "1.0.6", 1375295890, a, 0),
                         0);
        assert_string_equal(b.data, "{\"appId\":\"app1\",\"clientKey\":"
                                    "\"key1\",\"apiVersion\":\"1.0.6\","
                                    "\"time\":1375295890,\"data\":[]}");
        lb_buf_free(&b);
        lb_action_destroy(a[0]);
        lb_action_destroy(a[1]);
}

static void test_encode_escapes_ids(void **state)
{
        (void)state;
        static const char id[] = "a\"p\\p\n";
        static const char key[] = "k\x01\xff";
        lb_action_t *a = action("{\"action\":\"a\",\"userId\":\"u\"}", 0, 0);
        lb_buf_t b = {0};
        assert_int_equal(encode(&b, id, key, "1.0.6", 5, &a, 1), 0);
        assert_non_null(strstr(b.data, "{\"appId\":\"a\\\"p\\\\p\\u000a\","
                                       "\"clientKey\":\"k\\u0001\\ufffd\","));
        json_t *root = json_loadb(b.data, b.len, 0, NULL);
        assert_non_null(root);
        assert_string_equal(json_string_value(json_object_get(root, "appId")),
                            id);
        json_decref(root);
        assert_true(b.len <= lb_multi_overhead(id, key, "1.0.6") +
                                 lb_event_body_len(a->value_len, 0));
        /* NULL strings encode as "". */
        assert_int_equal(encode(&b, NULL, NULL, NULL, 5, &a, 1), 0);
        assert_non_null(strstr(b.data, "{\"appId\":\"\",\"clientKey\":\"\","
                                       "\"apiVersion\":\"\",\"time\":5,"));
        assert_true(b.len <= lb_multi_overhead(NULL, NULL, NULL) +
                                 lb_event_body_len(a->value_len, 0));
        lb_buf_free(&b);
        lb_action_destroy(a);
}

static void expect_splice(const char *value, int64_t ts, const char *want)
{
        char *got = encode_one(value, 1, ts);
        assert_string_equal(got, want);
        free(got);
}

static void test_time_splice(void **state)
{
        (void)state;
        expect_splice("{}", 1500, "{\"time\":1.5}");
        expect_splice("{ }", 1500, "{ \"time\":1.5}");
        expect_splice("{}\n", 1500, "{\"time\":1.5}");
        expect_splice("{\"a\":1}", 1500, "{\"a\":1,\"time\":1.5}");
        expect_splice("{\"a\":1}  \r\n\t", 1500, "{\"a\":1,\"time\":1.5}");
        expect_splice(" {\"a\":{}} ", 1500, " {\"a\":{},\"time\":1.5}");
        expect_splice("{\"a\":\"}\"}", 0, "{\"a\":\"}\",\"time\":0}");
        /* Millisecond formatting: trailing zeros dropped, exact. */
        expect_splice("{}", 1000, "{\"time\":1}");
        expect_splice("{}", 1001, "{\"time\":1.001}");
        expect_splice("{}", 1010, "{\"time\":1.01}");
        expect_splice("{}", 1005, "{\"time\":1.005}");
        expect_splice("{}", 1050, "{\"time\":1.05}");
        expect_splice("{}", 1100, "{\"time\":1.1}");
        expect_splice("{}", 1110, "{\"time\":1.11}");
        expect_splice("{}", 999, "{\"time\":0.999}");
        expect_splice("{}", 10000, "{\"time\":10}");
        expect_splice("{}", 1375295830123, "{\"time\":1375295830.123}");
        expect_splice("{}", -1500, "{\"time\":-1.5}");
        expect_splice("{}", -1, "{\"time\":-0.001}");
        expect_splice("{}", INT64_MAX, "{\"time\":9223372036854775.807}");
        expect_splice("{}", INT64_MIN, "{\"time\":-9223372036854775.808}");
        /* With time present the value is copied verbatim, blanks and all. */
        char *got = encode_one(" {\"time\":2} \n", 0, 1500);
        assert_string_equal(got, " {\"time\":2} \n");
        free(got);
}

/* The actions of one request written one after another: a second shared
 * with the previous action (or the request's own time), or not, and the
 * sign of a second that is 0. */
static void test_time_splice_in_turn(void **state)
{
        (void)state;
        const int64_t ts[] = {1500, 1250,  1000, 2001, -500, 500,
                              -500, -1500, 0,    999,  1999, 1999000};
        const char *want = "{\"time\":1.5},{\"time\":1.25},{\"time\":1},"
                           "{\"time\":2.001},{\"time\":-0.5},{\"time\":0.5},"
                           "{\"time\":-0.5},{\"time\":-1.5},{\"time\":0},"
                           "{\"time\":0.999},{\"time\":1.999},"
                           "{\"time\":1999}";
        size_t n = sizeof(ts) / sizeof(ts[0]);
        lb_action_t *acts[sizeof(ts) / sizeof(ts[0])];
        size_t need = lb_multi_overhead("a", "k", "v");
        for (size_t i = 0; i < n; i++) {
                acts[i] = action("{}", 1, ts[i]);
                need += lb_event_body_len(acts[i]->value_len, 1);
        }
        lb_buf_t b = {0};
        assert_int_equal(encode(&b, "a", "k", "v", 1.5, acts, n), 0);
        assert_non_null(strstr(b.data, "\"time\":1.5,\"data\":["));
        const char *start = strstr(b.data, "\"data\":[") + 8;
        assert_int_equal(strlen(start), strlen(want) + 2);
        assert_memory_equal(start, want, strlen(want));
        assert_true(b.len <= need);
        lb_buf_free(&b);
        for (size_t i = 0; i < n; i++)
                lb_action_destroy(acts[i]);
}

/* A body detached after any number of bytes written gives the same
 * bytes, its actions gone (their memory written over) before the rest is
 * read; detaching again, or once every action is read, changes nothing. */
static void test_body_detach(void **state)
{
        (void)state;
        static const char *values[] = {
            "{\"action\":\"start\",\"userId\":\"u\"}", "{\"time\":2} \n", "{}"};
        lb_action_t *a[3];
        for (size_t i = 0; i < 3; i++)
                a[i] = action(values[i], i != 1, 1375295830250 + (int64_t)i);
        lb_buf_t whole = {0};
        assert_int_equal(encode(&whole, "app", "key", "1.0.6", 7.5, a, 3), 0);
        for (size_t cut = 0; cut <= whole.len; cut++) {
                lb_multi_body_t w = {0};
                char got[512];
                assert_true(whole.len < sizeof(got));
                assert_int_equal(
                    lb_multi_body_start(&w, "app", "key", "1.0.6", 7.5, a, 3),
                    0);
                assert_int_equal(lb_multi_body_read(&w, got, cut), cut);
                assert_int_equal(lb_multi_body_detach(&w), 0);
                assert_int_equal(lb_multi_body_detach(&w), 0);
                for (size_t i = 0; i < 3; i++) /* what a freed action was */
                        memset((char *)lb_action_value(a[i]), 'x',
                               a[i]->value_len);
                size_t rest =
                    lb_multi_body_read(&w, got + cut, sizeof(got) - cut);
                assert_int_equal(cut + rest, whole.len);
                assert_int_equal(w.written, whole.len);
                assert_memory_equal(got, whole.data, whole.len);
                for (size_t i = 0; i < 3; i++)
                        memcpy((char *)lb_action_value(a[i]), values[i],
                               a[i]->value_len);
                lb_multi_body_free(&w);
        }
        lb_buf_free(&whole);
        for (size_t i = 0; i < 3; i++)
                lb_action_destroy(a[i]);
}

static void test_request_time_clamped(void **state)
{
        (void)state;
        lb_buf_t b = {0};
        assert_int_equal(encode(&b, "a", "k", "v", NAN, NULL, 0), 0);
        assert_non_null(strstr(b.data, "\"time\":0,"));
        assert_int_equal(encode(&b, "a", "k", "v", INFINITY, NULL, 0), 0);
        assert_non_null(strstr(b.data, "\"time\":9000000000000000,"));
        assert_int_equal(encode(&b, "a", "k", "v", -INFINITY, NULL, 0), 0);
        assert_non_null(strstr(b.data, "\"time\":-9000000000000000,"));
        assert_true(b.len <= lb_multi_overhead("a", "k", "v"));
        assert_int_equal(encode(&b, "a", "k", "v", 0.0004, NULL, 0), 0);
        assert_non_null(strstr(b.data, "\"time\":0,"));
        lb_buf_free(&b);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void random_bytes(char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                s[i] = (char)(rnd() % 256);
        s[n] = '\0';
}

/* A random valid JSON object value: random keys, blanks, nesting. */
static char *random_value(void)
{
        lb_buf_t b = {0};
        const char *ws[] = {"", " ", "\n", "\t ", "\r\n  "};
        int fields = (int)(rnd() % 6);
        assert_int_equal(lb_buf_printf(&b, "%s{", ws[rnd() % 5]), 0);
        for (int i = 0; i < fields; i++) {
                char raw[40];
                random_bytes(raw, rnd() % 40);
                size_t rl = strlen(raw);
                if (i)
                        assert_int_equal(lb_buf_append(&b, ",", 1), 0);
                assert_int_equal(lb_buf_printf(&b, "%s\"f%d\"%s:%s",
                                               ws[rnd() % 5], i, ws[rnd() % 5],
                                               ws[rnd() % 5]),
                                 0);
                switch (rnd() % 3) {
                case 0:
                        assert_int_equal(lb_buf_append_json_string(&b, raw, rl),
                                         0);
                        break;
                case 1:
                        assert_int_equal(
                            lb_buf_printf(&b, "%lld", (long long)rnd()), 0);
                        break;
                default:
                        assert_int_equal(lb_buf_printf(&b, "{\"n\":[1,{}]}"),
                                         0);
                }
        }
        assert_int_equal(
            lb_buf_printf(&b, "%s}%s", ws[rnd() % 5], ws[rnd() % 5]), 0);
        return b.data;
}

static void test_size_bound_property(void **state)
{
        (void)state;
        static const int64_t stamps[] = {
            0, -1, 1, 999, 1000, INT64_MAX, INT64_MIN, 1375295830250};
        static const double nows[] = {0, 1375295890.123456, -5.5, 1e300,
                                      -1e300};
        lb_buf_t b = {0};
        for (int iter = 0; iter < 2000; iter++) {
                size_t n = 1 + rnd() % 60;
                lb_action_t **a = calloc(n, sizeof(*a));
                assert_non_null(a);
                char id[24], key[24];
                random_bytes(id, rnd() % 24);
                random_bytes(key, rnd() % 24);
                size_t bound = lb_multi_overhead(id, key, "1.0.6");
                for (size_t i = 0; i < n; i++) {
                        char *v = random_value();
                        int64_t ts =
                            rnd() % 2 ? stamps[rnd() % 8] : (int64_t)rnd();
                        a[i] = action(v, (int)(rnd() % 2), ts);
                        free(v);
                        bound += lb_event_body_len(a[i]->value_len,
                                                   a[i]->time_missing);
                }
                double now = nows[rnd() % 5];
                assert_int_equal(encode(&b, id, key, "1.0.6", now, a, n), 0);
                assert_true(b.len <= bound);
                assert_int_equal(strlen(b.data), b.len);
                json_error_t err;
                json_t *root =
                    json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
                if (!root)
                        fail_msg("invalid body (%s): %s", err.text, b.data);
                json_t *data = json_object_get(root, "data");
                assert_int_equal(json_array_size(data), n);
                assert_true(json_is_number(json_object_get(root, "time")));
                for (size_t i = 0; i < n; i++) {
                        json_t *t =
                            json_object_get(json_array_get(data, i), "time");
                        if (a[i]->time_missing)
                                assert_true(json_is_number(t));
                        else
                                assert_null(t);
                }
                json_decref(root);
                for (size_t i = 0; i < n; i++)
                        lb_action_destroy(a[i]);
                free(a);
        }
        lb_buf_free(&b);
}

/* --- classification ------------------------------------------------------ */

static void test_classify_done(void **state)
{
        (void)state;
        lb_action_result_t r[4];
        char reason[256];
        const char *body =
            "{\"response\":[{\"success\":true},"
            "{\"success\":true,\"warning\":{\"message\":\"User not found; "
            "request skipped.\"}},"
            "{\"success\":false,\"error\":{\"message\":\"Action not found\"}},"
            "{\"success\":true,\"warning\":null}]}";
        strcpy(reason, "stale");
        assert_int_equal(classify(200, body, 4, r, reason, sizeof(reason)),
                         LB_OUTCOME_DONE);
        assert_string_equal(reason, "");
        assert_true(r[0].ok);
        assert_false(r[0].warning);
        assert_null(r[0].message);
        assert_int_equal(r[0].stage, LB_STAGE_NONE);
        /* A warning: probably skipped, so not delivered. */
        assert_false(r[1].ok);
        assert_true(r[1].warning);
        assert_int_equal(r[1].stage, LB_STAGE_API_WARNING);
        assert_string_equal(r[1].message, "User not found; request skipped.");
        assert_false(r[2].ok);
        assert_false(r[2].warning);
        assert_int_equal(r[2].stage, LB_STAGE_API);
        assert_string_equal(r[2].message, "Action not found");
        assert_true(r[3].ok);
        assert_false(r[3].warning);
        lb_multi_results_clear(r, 4);
        assert_null(r[1].message);
        assert_false(r[1].warning);
        assert_int_equal(r[1].stage, LB_STAGE_NONE);
        /* Any 2xx. */
        assert_int_equal(classify(201, "{\"response\":[{\"success\":true}]}", 1,
                                  r, reason, sizeof(reason)),
                         LB_OUTCOME_DONE);
        assert_true(r[0].ok);
        lb_multi_results_clear(r, 1);
        lb_multi_results_clear(NULL, 3);
}

/* The plain all-success answer is decided without jansson; near misses of
 * that shape must still get jansson's verdict. */
static void test_classify_plain_successes(void **state)
{
        (void)state;
        lb_action_result_t r[3];
        char reason[256];
        static const char *const done[] = {
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true}]}",
            " \r\n{ \"response\" :\t[ { \"success\" : true } ,\n"
            "{\"success\":true},{\"success\":true} ] }\n ",
            /* Not the plain shape, still all ok (jansson path). */
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true,\"x\":1}],\"extra\":0}",
        };
        for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++) {
                strcpy(reason, "stale");
                assert_int_equal(
                    classify(200, done[i], 3, r, reason, sizeof(reason)),
                    LB_OUTCOME_DONE);
                assert_string_equal(reason, "");
                for (size_t k = 0; k < 3; k++) {
                        assert_true(r[k].ok);
                        assert_false(r[k].warning);
                        assert_null(r[k].message);
                }
                lb_multi_results_clear(r, 3);
        }
        static const char *const retry[] = {
            "{\"response\":[{\"success\":true},{\"success\":true}]}",
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true},{\"success\":true}]}",
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true}]}x",
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true}]",
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true}]}{\"response\":[]}",
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true}],\"response\":[]}",
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":truex}]}",
            "{\"response\":[{\"success\":true},{\"success\":true},"
            "{\"success\":true}]}\v",
        };
        for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
                assert_int_equal(
                    classify(200, retry[i], 3, r, reason, sizeof(reason)),
                    LB_OUTCOME_RETRY);
        /* Same bytes but one entry false: a per-action failure. */
        assert_int_equal(
            classify(200,
                     "{\"response\":[{\"success\":true},{\"success\":false},"
                     "{\"success\":true}]}",
                     3, r, reason, sizeof(reason)),
            LB_OUTCOME_DONE);
        assert_true(r[0].ok);
        assert_false(r[1].ok);
        assert_non_null(r[1].message);
        assert_true(r[2].ok);
        lb_multi_results_clear(r, 3);
        /* A NUL inside the body is not whitespace. */
        assert_int_equal(lb_multi_classify(200, "{\"response\":[]}\0", 17, 0, 0,
                                           r, reason, sizeof(reason)),
                         LB_OUTCOME_RETRY);
}

static void test_classify_entry_shapes(void **state)
{
        (void)state;
        static const char *const bad[] = {
            "1",
            "\"success\"",
            "null",
            "[true]",
            "{}",
            "{\"success\":\"true\"}",
            "{\"success\":1}",
            "{\"success\":null}",
            "{\"Success\":true}",
            "{\"ok\":true,\"warning\":{\"message\":\"w\"}}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char body[256];
                snprintf(body, sizeof(body),
                         "{\"response\":[{\"success\":true},%s]}", bad[i]);
                lb_action_result_t r[2];
                char reason[256];
                assert_int_equal(
                    classify(200, body, 2, r, reason, sizeof(reason)),
                    LB_OUTCOME_DONE);
                assert_true(r[0].ok);
                if (r[1].ok)
                        fail_msg("entry %s acknowledged", bad[i]);
                assert_string_equal(r[1].message, "malformed response entry");
                lb_multi_results_clear(r, 2);
        }
}

/* Every combination of success (true, false, missing), error (object with
 * a message, bare string, null, missing), warning (object, bare string,
 * null, missing) and the accept-warnings flag: delivered only when the API
 * applied the action; a skip is never a delivery, whatever the flag. */
static void test_classify_entry_exhaustive(void **state)
{
        (void)state;
        static const char *const succ[] = {"\"success\":true",
                                           "\"success\":false", NULL};
        static const char *const err[] = {"\"error\":{\"message\":\"E\"}",
                                          "\"error\":\"E\"", "\"error\":null",
                                          NULL};
        static const char *const warn[] = {"\"warning\":{\"message\":\"W\"}",
                                           "\"warning\":\"W\"",
                                           "\"warning\":null", NULL};
        for (size_t s = 0; s < 3; s++)
                for (size_t e = 0; e < 4; e++)
                        for (size_t w = 0; w < 4; w++)
                                for (unsigned acc = 0; acc < 2; acc++) {
                                        char entry[256] = "{", body[512];
                                        const char *parts[] = {succ[s], err[e],
                                                               warn[w]};
                                        int first = 1;
                                        for (size_t k = 0; k < 3; k++) {
                                                if (!parts[k])
                                                        continue;
                                                if (!first)
                                                        strcat(entry, ",");
                                                strcat(entry, parts[k]);
                                                first = 0;
                                        }
                                        strcat(entry, "}");
                                        snprintf(body, sizeof(body),
                                                 "{\"response\":[%s]}", entry);
                                        int has_e = e < 2, has_w = w < 2;
                                        int want_ok =
                                            s == 0 && !has_e && (!has_w || acc);
                                        lb_stage_t want_stage =
                                            want_ok  ? LB_STAGE_NONE
                                            : s != 0 ? LB_STAGE_API
                                            : has_e  ? LB_STAGE_API_SKIPPED
                                                     : LB_STAGE_API_WARNING;
                                        const char *want_msg =
                                            s == 2 ? "malformed response entry"
                                            : s == 1 ? (has_e ? "E"
                                                              : "success false "
                                                                "without error "
                                                                "message")
                                            : has_e  ? "E"
                                            : has_w  ? "W"
                                                     : NULL;
                                        lb_action_result_t r[1];
                                        char reason[256];
                                        lb_outcome_t o = lb_multi_classify(
                                            200, body, strlen(body), 1,
                                            acc ? LB_MULTI_ACCEPT_WARNINGS : 0,
                                            r, reason, sizeof(reason));
                                        if (o != LB_OUTCOME_DONE ||
                                            r[0].ok != want_ok ||
                                            r[0].stage != want_stage ||
                                            r[0].warning != has_w ||
                                            (want_msg ? !r[0].message ||
                                                            strcmp(r[0].message,
                                                                   want_msg)
                                                      : r[0].message != NULL))
                                                fail_msg(
                                                    "%s accept=%u: outcome %d "
                                                    "ok %d stage %d warning %d "
                                                    "message '%s'",
                                                    entry, acc, o, r[0].ok,
                                                    r[0].stage, r[0].warning,
                                                    r[0].message ? r[0].message
                                                                 : "(null)");
                                        lb_multi_results_clear(r, 1);
                                }
}

static void test_classify_messages(void **state)
{
        (void)state;
        lb_action_result_t r[3];
        char reason[512];
        /* success:false without a usable message. */
        assert_int_equal(
            classify(200,
                     "{\"response\":[{\"success\":false},"
                     "{\"success\":false,\"error\":\"plain\"},"
                     "{\"success\":false,\"error\":{\"message\":7}}]}",
                     3, r, reason, sizeof(reason)),
            LB_OUTCOME_DONE);
        assert_string_equal(r[0].message,
                            "success false without error message");
        assert_string_equal(r[1].message, "plain");
        assert_string_equal(r[2].message,
                            "success false without error message");
        lb_multi_results_clear(r, 3);
        /* Warnings: a string, or an object without message. */
        assert_int_equal(
            classify(200,
                     "{\"response\":[{\"success\":true,\"warning\":\"w1\"},"
                     "{\"success\":true,\"warning\":{}}]}",
                     2, r, reason, sizeof(reason)),
            LB_OUTCOME_DONE);
        assert_true(!r[0].ok && r[0].warning);
        assert_string_equal(r[0].message, "w1");
        assert_true(!r[1].ok && r[1].warning);
        assert_string_equal(r[1].message,
                            "success true with a warning: probably skipped");
        lb_multi_results_clear(r, 2);
        /* Accepted warnings keep their message (for the log), if any. */
        assert_int_equal(
            lb_multi_classify(
                200,
                "{\"response\":[{\"success\":true,\"warning\":\"w1\"},"
                "{\"success\":true,\"warning\":{}}]}",
                strlen("{\"response\":[{\"success\":true,\"warning\":\"w1\"},"
                       "{\"success\":true,\"warning\":{}}]}"),
                2, LB_MULTI_ACCEPT_WARNINGS, r, reason, sizeof(reason)),
            LB_OUTCOME_DONE);
        assert_true(r[0].ok && r[0].warning);
        assert_string_equal(r[0].message, "w1");
        assert_true(r[1].ok && r[1].warning);
        assert_null(r[1].message);
        lb_multi_results_clear(r, 2);
        /* success:true with an error without a usable message. */
        assert_int_equal(
            classify(200, "{\"response\":[{\"success\":true,\"error\":{}}]}", 1,
                     r, reason, sizeof(reason)),
            LB_OUTCOME_DONE);
        assert_false(r[0].ok);
        assert_int_equal(r[0].stage, LB_STAGE_API_SKIPPED);
        assert_string_equal(r[0].message,
                            "success true with an error: skipped");
        lb_multi_results_clear(r, 1);
        /* Long and non-printable messages are cut and cleaned. */
        char body[2048], msg[1001];
        memset(msg, 'm', 1000);
        msg[0] = '\x01';
        msg[1000] = '\0';
        snprintf(body, sizeof(body),
                 "{\"response\":[{\"success\":false,\"error\":{\"message\":"
                 "\"\\u0001\\u00e9%s\"}}]}",
                 msg + 2);
        assert_int_equal(classify(200, body, 1, r, reason, sizeof(reason)),
                         LB_OUTCOME_DONE);
        assert_int_equal(strlen(r[0].message), LB_MULTI_MESSAGE_MAX);
        assert_memory_equal(r[0].message, "???mmm", 6);
        lb_multi_results_clear(r, 1);
}

static void expect_retry_2xx(const char *body, size_t n, const char *want)
{
        lb_action_result_t r[4];
        char reason[512];
        lb_outcome_t o = classify(200, body, n, r, reason, sizeof(reason));
        if (o != LB_OUTCOME_RETRY || !strstr(reason, want))
                fail_msg("body %.60s: outcome %d reason '%s' (want '%s')",
                         body ? body : "(null)", o, reason, want);
        assert_memory_equal(reason, "HTTP 200", 8);
}

static void test_classify_2xx_wrong_shape(void **state)
{
        (void)state;
        expect_retry_2xx(NULL, 1, "empty body");
        expect_retry_2xx("", 1, "empty body");
        expect_retry_2xx("not json", 1, "invalid JSON");
        expect_retry_2xx("{\"response\":[{\"success\":true}]", 1,
                         "invalid JSON");
        expect_retry_2xx("{\"response\":[{\"success\":true}]}x", 1,
                         "invalid JSON");
        expect_retry_2xx("[{\"success\":true}]", 1, "no response array");
        expect_retry_2xx("\"ok\"", 1, "invalid JSON");
        expect_retry_2xx("{\"response\":{\"success\":true}}", 1,
                         "no response array");
        expect_retry_2xx("{\"response\":null}", 1, "no response array");
        expect_retry_2xx("{}", 1, "no response array");
        expect_retry_2xx("{\"response\":[],\"response\":[{\"success\":true}]}",
                         1, "invalid JSON");
        expect_retry_2xx("{\"error\":{\"message\":\"Invalid access key\"}}", 1,
                         "no response array: Invalid access key");
        /* Length mismatch, both ways, with the server's words when any. */
        expect_retry_2xx(
            "{\"response\":[{\"success\":true},{\"success\":true}]}", 3,
            "2 responses for 3 actions");
        expect_retry_2xx("{\"response\":[{\"success\":true},{\"success\":true},"
                         "{\"success\":true},{\"success\":true}]}",
                         3, "4 responses for 3 actions");
        expect_retry_2xx("{\"response\":[{\"success\":false,\"error\":"
                         "{\"message\":\"App not found\"}}]}",
                         3, "1 responses for 3 actions: App not found");
        expect_retry_2xx("{\"response\":[]}", 1, "0 responses for 1 actions");
}

/* A 2xx answer of the largest size taken (16 MiB), made of the smallest
 * entries, is counted and refused without a tree: jansson's took over a
 * GiB for it (an OOM kill in any container the bound is sized for, and
 * the request retried after the restart: a crash loop). Its peak RSS, the
 * body aside, stays small. First in the list: the high-water mark is the
 * process's. */
static void test_classify_2xx_huge_answer(void **state)
{
        (void)state;
        static const char head[] = "{\"response\":[", tail[] = "{}]}";
        size_t entries =
            (LB_MULTI_RESPONSE_MAX - sizeof(head) - sizeof(tail)) / 3;
        size_t len = sizeof(head) - 1 + 3 * entries + sizeof(tail) - 1;
        char *body = malloc(len);
        assert_non_null(body);
        memcpy(body, head, sizeof(head) - 1);
        for (size_t k = 0; k < entries; k++)
                memcpy(body + sizeof(head) - 1 + 3 * k, "{},", 3);
        memcpy(body + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        lb_action_result_t r[500];
        char reason[256];
        assert_int_equal(lb_multi_classify(200, body, len, 500, 0, r, reason,
                                           sizeof(reason)),
                         LB_OUTCOME_RETRY);
        if (!strstr(reason, "responses for 500 actions"))
                fail_msg("reason: %s", reason);
        getrusage(RUSAGE_SELF, &after);
        long grew_kb = after.ru_maxrss - before.ru_maxrss;
        if (grew_kb > 64 * 1024)
                fail_msg("classifying a 16 MiB answer took %ld MiB more",
                         grew_kb / 1024);
        free(body);
}

static char *nested(size_t depth)
{
        char *p = malloc(2 * depth + 1);
        assert_non_null(p);
        memset(p, '[', depth);
        memset(p + depth, ']', depth);
        p[2 * depth] = '\0';
        return p;
}

static void test_classify_hostile_bodies(void **state)
{
        (void)state;
        lb_action_result_t r[2];
        char reason[256];
        /* Deep nesting, as the body and inside an entry. */
        char *deep = nested(100000);
        assert_int_equal(classify(200, deep, 1, r, reason, sizeof(reason)),
                         LB_OUTCOME_RETRY);
        assert_int_equal(classify(500, deep, 1, r, reason, sizeof(reason)),
                         LB_OUTCOME_RETRY);
        assert_string_equal(reason, "HTTP 500");
        /* small enough to be decoded, but no message of the API in it */
        char *deep_small = nested(10000);
        assert_int_equal(
            classify(403, deep_small, 1, r, reason, sizeof(reason)),
            LB_OUTCOME_MISDIRECTED);
        assert_string_equal(reason, "HTTP 403: not the API's answer: a proxy "
                                    "before the API refused it?");
        free(deep_small);
        size_t n = strlen(deep) + 64;
        char *body = malloc(n);
        assert_non_null(body);
        snprintf(body, n, "{\"response\":[%s]}", deep);
        assert_int_equal(classify(200, body, 1, r, reason, sizeof(reason)),
                         LB_OUTCOME_RETRY);
        free(body);
        free(deep);

        /* Too large to read: the API applied the request and would answer
         * it as large again, so it is split (one action: dead-lettered),
         * never sent again as it is. */
        size_t big = LB_MULTI_RESPONSE_MAX + 1;
        body = malloc(big);
        assert_non_null(body);
        memset(body, ' ', big);
        assert_int_equal(
            lb_multi_classify(200, body, big, 2, 0, r, reason, sizeof(reason)),
            LB_OUTCOME_SPLIT);
        assert_string_equal(reason, "HTTP 200: answer too large to read (the "
                                    "API applied the request)");
        assert_int_equal(
            lb_multi_classify(200, body, big, 1, 0, r, reason, sizeof(reason)),
            LB_OUTCOME_DEAD);
        assert_int_equal(
            lb_multi_classify(503, body, big, 1, 0, r, reason, sizeof(reason)),
            LB_OUTCOME_RETRY);
        free(body);
        /* The sender read up to the limit, then ended the transfer: what
         * it kept, even a good start or nothing, decides nothing. */
        const char *start = "{\"response\":[{\"success\":true},{\"suc";
        assert_int_equal(lb_multi_classify(201, start, strlen(start), 2,
                                           LB_MULTI_ANSWER_CUT, r, reason,
                                           sizeof(reason)),
                         LB_OUTCOME_SPLIT);
        assert_int_equal(
            lb_multi_classify(200, NULL, 0, 7,
                              LB_MULTI_ANSWER_CUT | LB_MULTI_ACCEPT_WARNINGS, r,
                              reason, sizeof(reason)),
            LB_OUTCOME_SPLIT);
        const char *whole = "{\"response\":[{\"success\":true}]}";
        assert_int_equal(lb_multi_classify(200, whole, strlen(whole), 1,
                                           LB_MULTI_ANSWER_CUT, r, reason,
                                           sizeof(reason)),
                         LB_OUTCOME_DEAD);

        /* Every truncation of a good body is a retry, never a verdict. */
        const char *good = "{\"response\":[{\"success\":true},"
                           "{\"success\":true,\"warning\":{\"message\":"
                           "\"w\"}}]}";
        for (size_t cut = 0; cut < strlen(good); cut++) {
                lb_outcome_t o = lb_multi_classify(200, good, cut, 2, 0, r,
                                                   reason, sizeof(reason));
                if (o != LB_OUTCOME_RETRY)
                        fail_msg("truncated at %zu: outcome %d", cut, o);
        }
        /* Embedded NUL and bad UTF-8. */
        assert_int_equal(lb_multi_classify(200, "{\"response\":[\0]}", 16, 1, 0,
                                           r, reason, sizeof(reason)),
                         LB_OUTCOME_RETRY);
        assert_int_equal(
            classify(200, "{\"response\":[{\"success\":true,\"x\":\"\xff\"}]}",
                     1, r, reason, sizeof(reason)),
            LB_OUTCOME_RETRY);
        /* A reason buffer is optional, and a short one is cut. */
        assert_int_equal(classify(200, "x", 1, r, NULL, 0), LB_OUTCOME_RETRY);
        char tiny[6];
        assert_int_equal(classify(429, NULL, 1, r, tiny, sizeof(tiny)),
                         LB_OUTCOME_RETRY);
        assert_string_equal(tiny, "HTTP ");
}

static void expect_status(int status, size_t n, lb_outcome_t want,
                          const char *body, const char *want_reason)
{
        lb_action_result_t r[2];
        char reason[512];
        lb_outcome_t o = classify(status, body, n, r, reason, sizeof(reason));
        if (o != want || strcmp(reason, want_reason) != 0)
                fail_msg("status %d n %zu: outcome %d (want %d), reason '%s' "
                         "(want '%s')",
                         status, n, o, want, reason, want_reason);
}

static void test_classify_status_table(void **state)
{
        (void)state;
        const char *key_err =
            "{\"error\":{\"message\":\"Invalid access key\"}}";
        /* Transport errors. */
        expect_status(0, 2, LB_OUTCOME_RETRY, NULL,
                      "no HTTP response (transport error)");
        expect_status(-1, 2, LB_OUTCOME_RETRY, NULL,
                      "no HTTP response (transport error)");
        /* 403: split several, dead-letter one; never split when the
         * answer says the key or the app is wrong (no half would pass). */
        expect_status(403, 2, LB_OUTCOME_SPLIT,
                      "{\"error\":{\"message\":\"Too many users in one "
                      "request (51 > 50)\"}}",
                      "HTTP 403: Too many users in one request (51 > 50)");
        /* A 403 without the API's message is a proxy's or a firewall's:
         * every request gets it; retried, a failure for outage mode,
         * never split nor dead-lettered at once. */
        expect_status(403, 2, LB_OUTCOME_MISDIRECTED, "<html>Forbidden</html>",
                      "HTTP 403: not the API's answer: a proxy before the API "
                      "refused it?");
        expect_status(403, 2, LB_OUTCOME_MISDIRECTED, "{\"error\":{}}",
                      "HTTP 403: not the API's answer: a proxy before the API "
                      "refused it?");
        expect_status(403, 2, LB_OUTCOME_KEY_REFUSED, key_err,
                      "HTTP 403: Invalid access key");
        expect_status(403, 500, LB_OUTCOME_DEAD,
                      "{\"error\":{\"message\":\"app not found\"}}",
                      "HTTP 403: app not found");
        expect_status(403, 2, LB_OUTCOME_DEAD,
                      "{\"error\":{\"message\":\"Development mode "
                      "requested but not permitted\"}}",
                      "HTTP 403: Development mode requested but not "
                      "permitted");
        expect_status(403, 1, LB_OUTCOME_KEY_REFUSED, key_err,
                      "HTTP 403: Invalid access key");
        expect_status(403, 1, LB_OUTCOME_MISDIRECTED, NULL,
                      "HTTP 403: not the API's answer: a proxy before the API "
                      "refused it?");
        expect_status(403, 1, LB_OUTCOME_DEAD,
                      "{\"error\":{\"message\":\"Too many users\"}}",
                      "HTTP 403: Too many users");
        /* 3xx: retried (a failure for outage mode), never followed (the
         * body carries the client key), never dead-lettered at once (a
         * redirecting proxy would take everything to the DLQ). */
        expect_status(301, 2, LB_OUTCOME_MISDIRECTED, NULL,
                      "HTTP 301: api.url or a proxy before the API is wrong?");
        expect_status(307, 1, LB_OUTCOME_MISDIRECTED, NULL,
                      "HTTP 307: api.url or a proxy before the API is wrong?");
        expect_status(399, 2, LB_OUTCOME_MISDIRECTED, NULL,
                      "HTTP 399: api.url or a proxy before the API is wrong?");
        /* Retryable statuses. */
        expect_status(408, 2, LB_OUTCOME_RETRY, NULL, "HTTP 408");
        expect_status(429, 2, LB_OUTCOME_RETRY, "", "HTTP 429");
        expect_status(500, 1, LB_OUTCOME_RETRY,
                      "{\"response\":[{\"success\":false,\"error\":"
                      "{\"message\":\"boom\"}}]}",
                      "HTTP 500: boom");
        expect_status(502, 2, LB_OUTCOME_RETRY, "Bad Gateway", "HTTP 502");
        expect_status(503, 2, LB_OUTCOME_RETRY, NULL, "HTTP 503");
        expect_status(599, 2, LB_OUTCOME_RETRY, NULL, "HTTP 599");
        /* Everything else is permanent. */
        expect_status(400, 2, LB_OUTCOME_DEAD,
                      "{\"error\":{\"message\":\"App not found\"}}",
                      "HTTP 400: App not found");
        /* What never reached the API: a setting is wrong, every request
         * would get it; retried (and outage mode pauses the input), never
         * dead-lettered at once. */
        expect_status(401, 2, LB_OUTCOME_MISDIRECTED, NULL,
                      "HTTP 401: api.url or a proxy before the API is wrong?");
        expect_status(404, 2, LB_OUTCOME_MISDIRECTED, "Not found",
                      "HTTP 404: api.url or a proxy before the API is wrong?");
        expect_status(405, 1, LB_OUTCOME_MISDIRECTED, NULL,
                      "HTTP 405: api.url or a proxy before the API is wrong?");
        expect_status(407, 2, LB_OUTCOME_MISDIRECTED, NULL,
                      "HTTP 407: api.url or a proxy before the API is wrong?");
        /* ... but the API's own word about an app or its key is that
         * app's: dead-lettered, as a 403 saying so is */
        expect_status(404, 2, LB_OUTCOME_DEAD,
                      "{\"response\":[{\"success\":false,\"error\":"
                      "{\"message\":\"App not found\"}}]}",
                      "HTTP 404: App not found");
        expect_status(401, 1, LB_OUTCOME_KEY_REFUSED, key_err,
                      "HTTP 401: Invalid access key");
        expect_status(406, 2, LB_OUTCOME_DEAD, NULL, "HTTP 406");
        /* A body over a cap (the API's, a proxy's): halves may pass. */
        expect_status(413, 2, LB_OUTCOME_SPLIT, "Request body too large",
                      "HTTP 413");
        expect_status(413, 1, LB_OUTCOME_DEAD, NULL, "HTTP 413");
        expect_status(418, 2, LB_OUTCOME_DEAD, NULL, "HTTP 418");
        expect_status(499, 2, LB_OUTCOME_DEAD, NULL, "HTTP 499");
        expect_status(100, 2, LB_OUTCOME_DEAD, NULL, "HTTP 100");
        expect_status(199, 2, LB_OUTCOME_DEAD, NULL, "HTTP 199");
        expect_status(600, 2, LB_OUTCOME_DEAD, NULL, "HTTP 600");
        /* A bare-string error and a non-string message. */
        expect_status(400, 1, LB_OUTCOME_DEAD, "{\"error\":\"nope\"}",
                      "HTTP 400: nope");
        expect_status(400, 1, LB_OUTCOME_DEAD, "{\"error\":{\"message\":1}}",
                      "HTTP 400");
        /* Reasons are printable and bounded. */
        char body[1024], want[300];
        memset(want, 0, sizeof(want));
        snprintf(body, sizeof(body), "{\"error\":{\"message\":\"\\n");
        for (int i = 0; i < 300; i++)
                strcat(body, "e");
        strcat(body, "\"}}");
        strcpy(want, "HTTP 400: ?");
        memset(want + strlen(want), 'e', LB_MULTI_MESSAGE_MAX - 1);
        expect_status(400, 1, LB_OUTCOME_DEAD, body, want);
}

/* --- Retry-After --------------------------------------------------------- */

static void test_retry_after(void **state)
{
        (void)state;
        /* Sun, 06 Nov 1994 08:49:37 GMT */
        const int64_t now = 784111777;
        assert_int_equal(lb_multi_retry_after_ms("120", now), 120000);
        assert_int_equal(lb_multi_retry_after_ms("0", now), 0);
        assert_int_equal(lb_multi_retry_after_ms(" \t5 ", now), 5000);
        assert_int_equal(lb_multi_retry_after_ms(" 7\r\n", now), 7000);
        assert_int_equal(lb_multi_retry_after_ms("007", now), 7000);
        assert_int_equal(
            lb_multi_retry_after_ms("99999999999999999999999", now),
            INT64_MAX / 1000 * 1000);
        assert_int_equal(lb_multi_retry_after_ms(NULL, now), -1);
        assert_int_equal(lb_multi_retry_after_ms("", now), -1);
        assert_int_equal(lb_multi_retry_after_ms("   ", now), -1);
        assert_int_equal(lb_multi_retry_after_ms("-1", now), -1);
        assert_int_equal(lb_multi_retry_after_ms("+1", now), -1);
        assert_int_equal(lb_multi_retry_after_ms("1.5", now), -1);
        assert_int_equal(lb_multi_retry_after_ms("5s", now), -1);
        assert_int_equal(lb_multi_retry_after_ms("1 2", now), -1);
        assert_int_equal(lb_multi_retry_after_ms("soon", now), -1);

        assert_int_equal(
            lb_multi_retry_after_ms("Sun, 06 Nov 1994 08:50:37 GMT", now),
            60000);
        assert_int_equal(
            lb_multi_retry_after_ms(" Sun, 06 Nov 1994 08:49:38 GMT ", now),
            1000);
        assert_int_equal(
            lb_multi_retry_after_ms(" Sun, 06 Nov 1994 08:49:47 GMT\r\n", now),
            10000);
        assert_int_equal(
            lb_multi_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", now), 0);
        assert_int_equal(
            lb_multi_retry_after_ms("Sat, 05 Nov 1994 08:49:37 GMT", now), 0);
        assert_int_equal(
            lb_multi_retry_after_ms("Thu, 01 Jan 1970 00:00:00 GMT", now), 0);
        assert_int_equal(lb_multi_retry_after_ms(
                             "Wed, 01 Jan 2025 00:00:00 GMT", 1735689600 - 30),
                         30000);
        assert_int_equal(
            lb_multi_retry_after_ms("Sun, 06 Nov 1994 23:59:60 GMT", now),
            (int64_t)(23 * 3600 + 60 * 60 - (8 * 3600 + 49 * 60 + 37)) * 1000);

        static const char *const bad[] = {
            "Sun, 06 Nov 1994 08:49:37 UTC",  "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",   "Sun, 6 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",  "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",  "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",  "Sun, 06 Nov 94 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 GMTX", "Sun, 06 Nov 199a 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:3  GMT",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (lb_multi_retry_after_ms(bad[i], now) != -1)
                        fail_msg("accepted '%s'", bad[i]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_classify_2xx_huge_answer),
            cmocka_unit_test(test_buf),
            cmocka_unit_test(test_buf_upto),
            cmocka_unit_test(test_json_string_escaping),
            cmocka_unit_test(test_encode_exact),
            cmocka_unit_test(test_encode_escapes_ids),
            cmocka_unit_test(test_time_splice),
            cmocka_unit_test(test_time_splice_in_turn),
            cmocka_unit_test(test_body_detach),
            cmocka_unit_test(test_request_time_clamped),
            cmocka_unit_test(test_size_bound_property),
            cmocka_unit_test(test_classify_done),
            cmocka_unit_test(test_classify_plain_successes),
            cmocka_unit_test(test_classify_entry_shapes),
            cmocka_unit_test(test_classify_entry_exhaustive),
            cmocka_unit_test(test_classify_messages),
            cmocka_unit_test(test_classify_2xx_wrong_shape),
            cmocka_unit_test(test_classify_hostile_bodies),
            cmocka_unit_test(test_classify_status_table),
            cmocka_unit_test(test_retry_after),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
