/*
 * test_json_scan.c: the validating scanner (lb_json_scan) on grammar edge
 * cases, UTF-8, escapes and surrogates, numbers at their limits, nesting
 * depth, duplicate keys (nested, escaped, large objects) and the members it
 * reports. Every verdict, message and position is also checked against
 * jansson itself, except where json_scan.h documents the one difference.
 * The whole group runs once for each string-stop finder (json_struct.h)
 * this machine has, and every scan is also compared with the byte-by-byte path
 * alone (LB_JSON_PASS_EXACT): the structural walk must give its result,
 * and with shapes (lb_json_scan_shaped), once learning and once by the
 * shape learned: they must too. test_shapes holds the shapes to the scan
 * over documents of many shapes, and checks that known ones decide.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_scan.h"
#include "json_struct.h"

#define FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* The pass the group runs under. */
static lb_json_pass_t pass;

/* lb_json_scan under the group's pass, asserted to give what the exact
 * path gives: return value, result and every field. */
static int scan(const char *v, size_t n, lb_json_field_t *f, size_t cnt,
                lb_json_result_t *res)
{
        lb_json_field_t *g = cnt ? malloc(cnt * sizeof(*g)) : NULL;
        if (cnt)
                memcpy(g, f, cnt * sizeof(*g));
        lb_json_result_t want;
        assert_int_equal(lb_json_pass_select(LB_JSON_PASS_EXACT), 0);
        int rc_want = lb_json_scan(v, n, g, cnt, &want);
        assert_int_equal(lb_json_pass_select(pass), 0);
        int rc = lb_json_scan(v, n, f, cnt, res);
        assert_int_equal(rc, rc_want);
        assert_int_equal(want.exact, 1);
        assert_int_equal(res->type, want.type);
        if (rc) {
                assert_int_equal(res->err_pos, want.err_pos);
                assert_string_equal(res->err_text, want.err_text);
                assert_int_equal(res->exact, 1);
        } else {
                assert_int_equal(res->members, want.members);
        }
        for (size_t i = 0; i < cnt && !rc; i++)
                assert_memory_equal(&f[i].value, &g[i].value,
                                    sizeof(g[i].value));
        /* Names prepared once, values into another array: the same. */
        lb_json_names_t names;
        lb_json_names_init(&names, f, cnt);
        lb_json_field_t *out = cnt ? malloc(cnt * sizeof(*out)) : NULL;
        lb_json_result_t again;
        assert_int_equal(lb_json_scan_names(v, n, &names, out, &again), rc);
        assert_int_equal(again.type, res->type);
        assert_int_equal(again.exact, res->exact);
        assert_int_equal(again.members, res->members);
        assert_int_equal(again.err_pos, res->err_pos);
        assert_string_equal(again.err_text, res->err_text);
        for (size_t i = 0; i < cnt && !rc; i++)
                assert_memory_equal(&out[i].value, &f[i].value,
                                    sizeof(f[i].value));
        /* With shapes: the first scan may learn the shape, the second may
         * be decided by it. Both the same. */
        lb_json_shapes_t *sh = malloc(sizeof(*sh));
        assert_non_null(sh);
        lb_json_shapes_init(sh, &names);
        for (int k = 0; k < 2; k++) {
                assert_int_equal(lb_json_scan_shaped(v, n, sh, out, &again),
                                 rc);
                assert_int_equal(again.type, res->type);
                assert_int_equal(again.members, res->members);
                assert_int_equal(again.err_pos, res->err_pos);
                assert_string_equal(again.err_text, res->err_text);
                assert_true(!again.shaped || (k == 1 && !rc));
                for (size_t i = 0; i < cnt && !rc; i++)
                        assert_memory_equal(&out[i].value, &f[i].value,
                                            sizeof(f[i].value));
        }
        free(sh);
        free(out);
        free(g);
        return rc;
}

static lb_json_type_t jansson_type(const json_t *v)
{
        static const lb_json_type_t map[] = {
            [JSON_OBJECT] = LB_JSON_OBJECT, [JSON_ARRAY] = LB_JSON_ARRAY,
            [JSON_STRING] = LB_JSON_STRING, [JSON_INTEGER] = LB_JSON_INTEGER,
            [JSON_REAL] = LB_JSON_REAL,     [JSON_TRUE] = LB_JSON_TRUE,
            [JSON_FALSE] = LB_JSON_FALSE,   [JSON_NULL] = LB_JSON_NULL,
        };
        return map[json_typeof(v)];
}

/* Scans v[0..n) and asserts acceptance with the given top-level type, as
 * jansson does. */
static void accepted(const char *v, size_t n, lb_json_type_t type)
{
        lb_json_result_t res;
        if (scan(v, n, NULL, 0, &res))
                fail_msg("'%.60s' rejected: %zu %s", v, res.err_pos,
                         res.err_text);
        assert_int_equal(res.type, type);
        json_t *j = json_loadb(v, n, FLAGS, NULL);
        if (!j)
                fail_msg("'%.60s': jansson rejects it", v);
        assert_int_equal(jansson_type(j), type);
        json_decref(j);
}

/* Asserts rejection with jansson's message (no " near" tail) and position;
 * with_jansson = 0 skips asking jansson (the documented NUL difference). */
static void rejected_as(const char *v, size_t n, size_t pos, const char *msg,
                        int with_jansson)
{
        lb_json_result_t res;
        if (!scan(v, n, NULL, 0, &res))
                fail_msg("'%.60s' accepted", v);
        if (res.err_pos != pos || strcmp(res.err_text, msg))
                fail_msg("'%.60s': got %zu '%s', want %zu '%s'", v, res.err_pos,
                         res.err_text, pos, msg);
        if (!with_jansson)
                return;
        json_error_t e;
        json_t *j = json_loadb(v, n, FLAGS, &e);
        if (j)
                fail_msg("'%.60s': jansson accepts it", v);
        const char *near = strstr(e.text, " near ");
        size_t len = near ? (size_t)(near - e.text) : strlen(e.text);
        if ((size_t)e.position != pos || strlen(msg) != len ||
            memcmp(e.text, msg, len))
                fail_msg("'%.60s': jansson says %d '%s'", v, e.position,
                         e.text);
}

static void rejected(const char *v, size_t n, size_t pos, const char *msg)
{
        rejected_as(v, n, pos, msg, 1);
}

#define OK(lit, type)      accepted(lit, sizeof(lit) - 1, type)
#define BAD(lit, pos, msg) rejected(lit, sizeof(lit) - 1, pos, msg)

static char *repeat(const char *head, size_t times, const char *mid,
                    const char *tail, size_t tail_times)
{
        size_t hl = strlen(head), ml = strlen(mid), tl = strlen(tail);
        char *p = malloc(hl * times + ml + tl * tail_times + 1);
        assert_non_null(p);
        char *w = p;
        for (size_t i = 0; i < times; i++, w += hl)
                memcpy(w, head, hl);
        memcpy(w, mid, ml);
        w += ml;
        for (size_t i = 0; i < tail_times; i++, w += tl)
                memcpy(w, tail, tl);
        *w = '\0';
        return p;
}

static void test_values(void **state)
{
        (void)state;
        OK("{}", LB_JSON_OBJECT);
        OK("[]", LB_JSON_ARRAY);
        OK("\"\"", LB_JSON_STRING);
        OK("0", LB_JSON_INTEGER);
        OK("-0", LB_JSON_INTEGER);
        OK("-0.0", LB_JSON_REAL);
        OK("1E2", LB_JSON_REAL);
        OK("true", LB_JSON_TRUE);
        OK("false", LB_JSON_FALSE);
        OK("null", LB_JSON_NULL);
        OK(" \t\r\n[ 1 , { \"a\" : [ ] } , \"x\" ]\n\t\r ", LB_JSON_ARRAY);
        OK("{\"a\":{\"b\":[null,true,false,{\"c\":-1.5e-3}]}}", LB_JSON_OBJECT);
}

static void test_grammar_errors(void **state)
{
        (void)state;
        BAD("", 0, "unexpected token");
        BAD(" \n ", 3, "unexpected token");
        BAD("]", 1, "unexpected token");
        BAD("[1,]", 4, "unexpected token");
        BAD("[,1]", 2, "unexpected token");
        BAD("[", 1, "']' expected");
        BAD("[1,", 3, "']' expected");
        BAD("[1 2]", 4, "']' expected");
        BAD("[1 -]", 4, "']' expected");
        BAD("{", 1, "string or '}' expected");
        BAD("{1:2}", 2, "string or '}' expected");
        BAD("{\"a\":1,}", 8, "string or '}' expected");
        BAD("{'a':1}", 2, "string or '}' expected");
        BAD("{\"a\"}", 5, "':' expected");
        BAD("{\"clientKey\" \"SECRET-123\"}", 25, "':' expected");
        BAD("{\"a\":}", 6, "unexpected token");
        BAD("{\"a\":1 \"b\":2}", 10, "'}' expected");
        BAD("{\"a\":1]", 7, "'}' expected");
        BAD("{} x", 4, "end of file expected");
        BAD("{}{}", 3, "end of file expected");
        BAD("1 2", 3, "end of file expected");
        BAD("{}#", 3, "end of file expected");
        BAD("#", 1, "invalid token");
        BAD("[tru]", 4, "invalid token");
        BAD("[True]", 5, "invalid token");
        BAD("nulls", 5, "invalid token");
        BAD("[NaN]", 4, "invalid token");
        BAD("\xef\xbb\xbf{}", 3, "invalid token");
        BAD("{}\xc3\xa9", 4, "end of file expected");
}

static void test_utf8(void **state)
{
        (void)state;
        OK("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80"
           "\xf4\x8f\xbf\xbf\x7f\"",
           LB_JSON_STRING);
        static const struct {
                const char *v;
                int byte;
        } bad[] = {
            {"\"x\x80\"", 0x80},             /* lone continuation */
            {"\"x\xbf\"", 0xbf},             /* lone continuation */
            {"\"x\xc0\xaf\"", 0xc0},         /* overlong '/' */
            {"\"x\xc1\xbf\"", 0xc1},         /* overlong */
            {"\"x\xe0\x9f\xbf\"", 0xe0},     /* overlong */
            {"\"x\xf0\x8f\xbf\xbf\"", 0xf0}, /* overlong */
            {"\"x\xed\xa0\x80\"", 0xed},     /* surrogate U+D800 */
            {"\"x\xed\xbf\xbf\"", 0xed},     /* surrogate U+DFFF */
            {"\"x\xf4\x90\x80\x80\"", 0xf4}, /* above U+10FFFF */
            {"\"x\xf5\x80\x80\x80\"", 0xf5}, /* never valid */
            {"\"x\xff\"", 0xff},             /* never valid */
            {"\"x\xe2\x82\"", 0xe2},         /* truncated by the quote */
            {"\"x\xc3", 0xc3},               /* truncated by the end */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char msg[64];
                snprintf(msg, sizeof(msg), "unable to decode byte 0x%x",
                         bad[i].byte);
                rejected(bad[i].v, strlen(bad[i].v), 2, msg);
        }
        /* Outside strings, and in the lookahead after tokens. */
        BAD("{}\xff", 2, "unable to decode byte 0xff");
        BAD("[1\xff]", 2, "unable to decode byte 0xff");
        BAD("[true\xc0]", 5, "unable to decode byte 0xc0");
        BAD("[nul\xff]", 4, "unable to decode byte 0xff");
        BAD("[-\xff]", 2, "unable to decode byte 0xff");
        BAD("[1.\xff]", 3, "unable to decode byte 0xff");
        BAD("[1e\xff]", 3, "unable to decode byte 0xff");
        /* A bad byte read as lookahead wins over the number's own error. */
        BAD("12345678901234567890\xff", 20, "unable to decode byte 0xff");
        BAD("1e999\xff", 5, "unable to decode byte 0xff");
        /* A valid character after a number is only looked at. */
        BAD("[1\xc3\xa9]", 4, "']' expected");
}

static void test_escapes(void **state)
{
        (void)state;
        const char *v = "{\"s\":\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC"
                        "\\ud83d\\ude00z\"}";
        lb_json_field_t f = {.name = "s", .name_len = 1};
        lb_json_result_t res;
        assert_int_equal(scan(v, strlen(v), &f, 1, &res), 0);
        const char want[] = "a\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac"
                            "\xf0\x9f\x98\x80z";
        assert_int_equal(f.value.type, LB_JSON_STRING);
        assert_int_equal(f.value.dlen, sizeof(want) - 1);
        assert_int_equal(lb_json_decoded_len(v + f.value.off, f.value.len),
                         sizeof(want) - 1);
        assert_int_equal(lb_json_decoded_len("plain", 5), 5);
        assert_int_equal(lb_json_decoded_len("", 0), 0);
        char out[64];
        assert_int_equal(
            lb_json_unescape(v + f.value.off, f.value.len, out, sizeof(out)),
            sizeof(want) - 1);
        assert_memory_equal(out, want, sizeof(want) - 1);
        /* A prefix only, cut inside a character. */
        assert_int_equal(
            lb_json_unescape(v + f.value.off, f.value.len, out, 11), 11);
        assert_memory_equal(out, want, 11);
        assert_true(lb_json_string_eq(v, &f.value, want, sizeof(want) - 1));
        assert_false(lb_json_string_eq(v, &f.value, want, sizeof(want) - 2));

        BAD("\"\\x\"", 3, "invalid escape");
        BAD("\"\\'\"", 3, "invalid escape");
        BAD("\"\\", 2, "invalid escape");
        BAD("\"\\u12\"", 6, "invalid escape");
        BAD("\"\\u12g4\"", 6, "invalid escape");
        BAD("\"\\u123", 6, "invalid escape");
        BAD("\"\\U0041\"", 3, "invalid escape");
        /* jansson takes one byte of a multi-byte character there. */
        BAD("\"\\\xc3\xa9\"", 3, "invalid escape");
        BAD("\"\\u1\xc3\xa9\"", 5, "invalid escape");
        BAD("\"\\u1\xff\"", 4, "unable to decode byte 0xff");
        /* Control characters must be escaped. */
        BAD("\"a\x01\"", 2, "control character 0x1");
        BAD("\"a\x1f\"", 2, "control character 0x1f");
        BAD("\"a\tb\"", 2, "control character 0x9");
        BAD("\"a\nb\"", 2, "unexpected newline");
        BAD("\"abc", 4, "premature end of input");
        OK("\"\x7f\"", LB_JSON_STRING);
}

static void test_surrogates(void **state)
{
        (void)state;
        OK("\"\\uD83D\\uDE00\\udbff\\udfff\"", LB_JSON_STRING);
        BAD("\"\\uD800\"", 8, "invalid Unicode '\\uD800'");
        BAD("\"\\uDBFFx\"", 9, "invalid Unicode '\\uDBFF'");
        BAD("\"\\ud800\\n\"", 10, "invalid Unicode '\\uD800'");
        BAD("\"\\uD800\\u0041\"", 14, "invalid Unicode '\\uD800\\u0041'");
        BAD("\"\\uD800\\uD800\"", 14, "invalid Unicode '\\uD800\\uD800'");
        BAD("\"\\uDC00\"", 8, "invalid Unicode '\\uDC00'");
        BAD("\"\\uDE00\\uD83D\"", 14, "invalid Unicode '\\uDE00'");
        /* Decoding errors come after the whole string is scanned: a later
         * scanning error wins, and the first decoding error is kept. */
        BAD("\"\\uD800\x01\"", 7, "control character 0x1");
        BAD("\"\\uD800\\q\"", 9, "invalid escape");
        BAD("\"\\uDC00\\uD800\"", 14, "invalid Unicode '\\uDC00'");
        BAD("[\"\\uD800\"", 9, "invalid Unicode '\\uD800'");
}

static void test_nul(void **state)
{
        (void)state;
        /* Raw NUL bytes: rejected as the control byte they are. */
        rejected("\"a\0b\"", 5, 2, "control character 0x0");
        rejected("{\0}", 3, 2, "string or '}' expected");
        rejected("{}\0", 3, 3, "end of file expected");
        rejected("\"\\\0\"", 4, 3, "invalid escape");
        /* jansson drops a NUL that follows a number or a literal and
         * accepts these; the original bytes would carry it on. */
        static const struct {
                const char *v;
                size_t n, pos;
                const char *msg;
        } dropped[] = {
            {"[1\0]", 4, 3, "']' expected"},
            {"{\"a\":true\0}", 11, 10, "'}' expected"},
            {"1.5\0", 4, 4, "end of file expected"},
            {"null\0", 5, 5, "end of file expected"},
        };
        for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
                json_t *j = json_loadb(dropped[i].v, dropped[i].n, FLAGS, NULL);
                assert_non_null(j);
                json_decref(j);
                rejected_as(dropped[i].v, dropped[i].n, dropped[i].pos,
                            dropped[i].msg, 0);
        }
        /* Escaped NULs: refused in values and keys. */
        BAD("\"\\u0000\"", 8, "\\u0000 is not allowed without JSON_ALLOW_NUL");
        BAD("[\"a\\u0000\"]", 10,
            "\\u0000 is not allowed without JSON_ALLOW_NUL");
        BAD("{\"\\u0000\":1}", 9, "NUL byte in object key not supported");
        BAD("{\"a\":1,\"b\\u0000c\":1}", 17,
            "NUL byte in object key not supported");
}

static void test_numbers(void **state)
{
        (void)state;
        OK("9223372036854775807", LB_JSON_INTEGER);
        OK("-9223372036854775808", LB_JSON_INTEGER);
        BAD("9223372036854775808", 19, "too big integer");
        BAD("-9223372036854775809", 20, "too big negative integer");
        BAD("[123456789012345678901234567890]", 31, "too big integer");
        OK("9223372036854775808.0", LB_JSON_REAL);
        OK("1e308", LB_JSON_REAL);
        OK("1.7976931348623157e308", LB_JSON_REAL);
        OK("1.7976931348623158e308", LB_JSON_REAL); /* rounds to DBL_MAX */
        BAD("1.7976931348623159e308", 22, "real number overflow");
        BAD("-1.7976931348623159e308", 23, "real number overflow");
        BAD("1e309", 5, "real number overflow");
        BAD("[1e999]", 6, "real number overflow");
        BAD("0.1e310", 7, "real number overflow");
        OK("0.1e309", LB_JSON_REAL);
        OK("1e-999", LB_JSON_REAL); /* underflow is no error */
        OK("-1e-999", LB_JSON_REAL);
        OK("0e99999999999999999999", LB_JSON_REAL);
        OK("1e-99999999999999999999", LB_JSON_REAL);
        BAD("1e99999999999999999999", 22, "real number overflow");
        OK("1e0000000000000000000000308", LB_JSON_REAL);
        OK("[-0,0.0,0E+1,0e-1,10.25e+2]", LB_JSON_ARRAY);
        BAD("01", 1, "invalid token");
        BAD("-01", 2, "invalid token");
        BAD("[00]", 2, "invalid token");
        BAD("1.", 2, "invalid token");
        BAD("[1.e5]", 3, "invalid token");
        BAD(".5", 1, "invalid token");
        BAD("+1", 1, "invalid token");
        BAD("-", 1, "invalid token");
        BAD("[-a]", 2, "invalid token");
        BAD("1e", 2, "invalid token");
        BAD("1e+", 3, "invalid token");
        BAD("[1E-x]", 4, "invalid token");
        BAD("0x10", 2, "end of file expected");
        BAD("[1.5.3]", 5, "']' expected");
}

/* Reals at 10^308, where rounding decides: the boundary between DBL_MAX
 * and infinity, 2^1024 - 2^970, has 309 significant digits. */
static void test_numbers_long(void **state)
{
        (void)state;
        static const char mid[] =
            "17976931348623158079372897140530341507993413271003782693617377"
            "89804449682927647509466490179775872070963302864166928879109465"
            "55547851940402630657488671505820681908902000708383676273854845"
            "81771153176447573027006985557136695962284291481986083493647529"
            "2719074168444365510704342711559699508093042880177904174497792";
        char low[sizeof(mid)];
        memcpy(low, mid, sizeof(mid));
        low[sizeof(mid) - 2]--; /* one less: ends in 1, not 2 */
        char *v = malloc(2048);
        assert_non_null(v);
        /* The boundary itself overflows (ties to even), just under does
         * not, however many digits follow. */
        snprintf(v, 2048, "%s.0", mid);
        rejected(v, strlen(v), strlen(v), "real number overflow");
        snprintf(v, 2048, "0.%se309", mid);
        rejected(v, strlen(v), strlen(v), "real number overflow");
        snprintf(v, 2048, "-%s.%0400d1", mid, 0);
        rejected(v, strlen(v), strlen(v), "real number overflow");
        snprintf(v, 2048, "%s%0200de-200", mid, 0);
        rejected(v, strlen(v), strlen(v), "real number overflow");
        snprintf(v, 2048, "%s.%0400d1", low, 0);
        accepted(v, strlen(v), LB_JSON_REAL);
        /* 809 significant digits: those past 330 become one sticky digit. */
        snprintf(v, 2048, "%s.", low);
        memset(v + sizeof(mid), '9', 500);
        strcpy(v + sizeof(mid) + 500, "e0");
        accepted(v, strlen(v), LB_JSON_REAL);
        snprintf(v, 2048, "0.0000%se313", low);
        accepted(v, strlen(v), LB_JSON_REAL);
        free(v);
}

static void test_depth(void **state)
{
        (void)state;
        char *v = repeat("[", LB_JSON_MAX_DEPTH, "", "]", LB_JSON_MAX_DEPTH);
        accepted(v, strlen(v), LB_JSON_ARRAY);
        free(v);
        /* The scalar inside counts as a level too. */
        v = repeat("[", LB_JSON_MAX_DEPTH, "1", "]", LB_JSON_MAX_DEPTH);
        rejected(v, strlen(v), LB_JSON_MAX_DEPTH + 1,
                 "maximum parsing depth reached");
        free(v);
        v = repeat("[", LB_JSON_MAX_DEPTH - 1, "1", "]", LB_JSON_MAX_DEPTH - 1);
        accepted(v, strlen(v), LB_JSON_ARRAY);
        free(v);
        v = repeat("[", LB_JSON_MAX_DEPTH + 1, "", "]", LB_JSON_MAX_DEPTH + 1);
        rejected(v, strlen(v), LB_JSON_MAX_DEPTH + 1,
                 "maximum parsing depth reached");
        free(v);
        v = repeat("{\"a\":", LB_JSON_MAX_DEPTH - 1, "{}", "}",
                   LB_JSON_MAX_DEPTH - 1);
        accepted(v, strlen(v), LB_JSON_OBJECT);
        free(v);
        v = repeat("{\"a\":", LB_JSON_MAX_DEPTH, "{}", "}", LB_JSON_MAX_DEPTH);
        rejected(v, strlen(v), 5 * LB_JSON_MAX_DEPTH + 1,
                 "maximum parsing depth reached");
        free(v);
        /* Far past the limit: stops there, no recursion to blow up. */
        v = repeat("[", 200000, "", "", 0);
        rejected(v, strlen(v), LB_JSON_MAX_DEPTH + 1,
                 "maximum parsing depth reached");
        free(v);
}

/* An object of n members "k0".."k<n-1>", then extra members. */
static char *object(size_t n, const char *extra)
{
        size_t cap = n * 24 + strlen(extra) + 8, w = 0;
        char *v = malloc(cap);
        assert_non_null(v);
        v[w++] = '{';
        for (size_t i = 0; i < n; i++)
                w += (size_t)snprintf(v + w, cap - w, "%s\"k%zu\":%zu",
                                      i ? "," : "", i, i);
        w += (size_t)snprintf(v + w, cap - w, "%s}", extra);
        return v;
}

static void test_duplicates(void **state)
{
        (void)state;
        BAD("{\"a\":1,\"a\":2}", 10, "duplicate object key");
        BAD("{\"a\":1,\"\\u0061\":2}", 15, "duplicate object key");
        BAD("{\"\\u00e9\":1,\"\xc3\xa9\":2}", 16, "duplicate object key");
        BAD("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", 24,
            "duplicate object key");
        BAD("{\"a\\/\":1,\"a/\":2}", 13, "duplicate object key");
        BAD("[{\"x\":[{\"k\":1,\"k\":2}]}]", 17, "duplicate object key");
        /* The earliest duplicate wins, outer before inner ... */
        BAD("{\"a\":1,\"a\":{\"x\":1,\"x\":2}}", 10, "duplicate object key");
        /* ... and before any later error. */
        BAD("{\"a\":1,\"a\":2,\"b\":", 10, "duplicate object key");
        BAD("{\"a\":1,\"a\"\xff", 10, "duplicate object key");
        BAD("{\"a\":1,\"a\":[1,}", 10, "duplicate object key");
        BAD("{\"a\":{\"b\":1,\"b\":2,\"c\":", 15, "duplicate object key");
        /* Not duplicates: other objects, other depths, other bytes. */
        OK("{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}",
           LB_JSON_OBJECT);
        OK("{\"a\":1,\"A\":2,\"a \":3,\"\":4,\"\\u00e9\":5,\"e\":6}",
           LB_JSON_OBJECT);

        /* Past the pairwise check: sorted, then past the inline index. */
        char *v = object(20, ",\"k\\u0031\\u0035\":0");
        rejected(v, strlen(v), strlen(v) - 3, "duplicate object key");
        free(v);
        v = object(200, "");
        accepted(v, strlen(v), LB_JSON_OBJECT);
        free(v);
        v = object(200, ",\"k150\":0,\"k3\":0");
        rejected(v, strlen(v), strlen(v) - 10, "duplicate object key");
        free(v);
        /* The earliest of several, found at the error that ends the scan. */
        v = object(200, ",\"k150\":0,\"k3\":0,");
        rejected(v, strlen(v) - 2, strlen(v) - 11, "duplicate object key");
        free(v);
        /* Large objects nested in one another: the inner duplicate, and
         * an outer one read before the inner object began. */
        char *inner = object(100, ",\"k99\":0");
        char *outer = object(100, ",\"k7\":1");
        size_t n = strlen(outer) + strlen(inner) + 16;
        v = malloc(n);
        assert_non_null(v);
        snprintf(v, n, "{\"x\":1,\"in\":%s}", inner);
        rejected(v, strlen(v), strlen(v) - 4, "duplicate object key");
        snprintf(v, n, "%.*s,\"in\":%s}", (int)strlen(outer) - 1, outer, inner);
        rejected(v, strlen(v), strlen(outer) - 3, "duplicate object key");
        free(v);
        free(outer);
        free(inner);
}

static void test_fields(void **state)
{
        (void)state;
        const char *v = "{\"appId\":\"app_07\",\"userId\":\"user-12345\","
                        "\"action\":\"track\",\"params\":{\"seq\":3},"
                        "\"list\":[1,[2]],\"time\":1700000000.5,"
                        "\"n\":-12,\"t\":true,\"f\":false,\"z\":null,"
                        "\"\\u0065sc\":\"a\\tb\"}";
        lb_json_field_t f[] = {
            {.name = "appId", .name_len = 5},
            {.name = "userId", .name_len = 6},
            {.name = "params", .name_len = 6},
            {.name = "list", .name_len = 4},
            {.name = "time", .name_len = 4},
            {.name = "n", .name_len = 1},
            {.name = "t", .name_len = 1},
            {.name = "f", .name_len = 1},
            {.name = "z", .name_len = 1},
            {.name = "esc", .name_len = 3},
            {.name = "seq", .name_len = 3},
            {.name = "nope", .name_len = 4},
        };
        static const struct {
                lb_json_type_t type;
                const char *raw;
                size_t dlen;
        } want[] = {
            {LB_JSON_STRING, "app_07", 6},
            {LB_JSON_STRING, "user-12345", 10},
            {LB_JSON_OBJECT, "{\"seq\":3}", 0},
            {LB_JSON_ARRAY, "[1,[2]]", 0},
            {LB_JSON_REAL, "1700000000.5", 0},
            {LB_JSON_INTEGER, "-12", 0},
            {LB_JSON_TRUE, "true", 0},
            {LB_JSON_FALSE, "false", 0},
            {LB_JSON_NULL, "null", 0},
            {LB_JSON_STRING, "a\\tb", 3},
            {LB_JSON_ABSENT, "", 0}, /* not at the top level */
            {LB_JSON_ABSENT, "", 0},
        };
        lb_json_result_t res;
        assert_int_equal(scan(v, strlen(v), f, 12, &res), 0);
        assert_int_equal(res.type, LB_JSON_OBJECT);
        assert_int_equal(res.members, 11);
        for (size_t i = 0; i < 12; i++) {
                assert_int_equal(f[i].value.type, want[i].type);
                assert_int_equal(f[i].value.len, strlen(want[i].raw));
                assert_memory_equal(v + f[i].value.off, want[i].raw,
                                    f[i].value.len);
                if (want[i].type == LB_JSON_STRING)
                        assert_int_equal(f[i].value.dlen, want[i].dlen);
        }
        assert_true(lb_json_string_eq(v, &f[9].value, "a\tb", 3));
        assert_false(lb_json_string_eq(v, &f[2].value, "{\"seq\":3}", 9));

        /* Names with backslashes or escapes compare decoded. */
        v = "{\"a\\\\b\":1,\"q\":\"x\\\\y\"}";
        lb_json_field_t g[] = {{.name = "a\\b", .name_len = 3},
                               {.name = "q", .name_len = 1}};
        assert_int_equal(scan(v, strlen(v), g, 2, &res), 0);
        assert_int_equal(g[0].value.type, LB_JSON_INTEGER);
        assert_true(lb_json_string_eq(v, &g[1].value, "x\\y", 3));
        assert_false(lb_json_string_eq(v, &g[1].value, "x\\\\y", 4));

        /* Empty object; not an object; a rejected value. */
        assert_int_equal(scan(" { } ", 5, f, 12, &res), 0);
        assert_int_equal(res.type, LB_JSON_OBJECT);
        assert_int_equal(res.members, 0);
        assert_int_equal(f[0].value.type, LB_JSON_ABSENT);
        v = "[{\"appId\":\"x\"}]";
        assert_int_equal(scan(v, strlen(v), f, 12, &res), 0);
        assert_int_equal(res.type, LB_JSON_ARRAY);
        assert_int_equal(f[0].value.type, LB_JSON_ABSENT);
        assert_int_equal(scan("{\"appId\":", 9, f, 12, &res), -1);
        assert_string_equal(res.err_text, "unexpected token");
}

/* Scans v with the contract's fields (all compared with the exact path by
 * scan()); asserts the verdict and whether the structural walk decided. */
static void walked(const char *v, size_t n, int ok, int fast)
{
        lb_json_field_t f[] = {
            {.name = "appId", .name_len = 5},
            {.name = "action", .name_len = 6},
            {.name = "userId", .name_len = 6},
            {.name = "deviceId", .name_len = 8},
            {.name = "time", .name_len = 4},
            {.name = "clientKey", .name_len = 9},
            {.name = "sessionLength", .name_len = 13},
            {.name = "", .name_len = 0},
        };
        lb_json_result_t res;
        int rc = scan(v, n, f, sizeof(f) / sizeof(f[0]), &res);
        if ((rc == 0) != ok)
                fail_msg("'%.60s': %s", v, rc ? res.err_text : "accepted");
        if (pass != LB_JSON_PASS_EXACT && res.exact == fast)
                fail_msg("'%.60s': decided %s", v,
                         res.exact ? "byte by byte" : "by the walk");
}

#define WALKED(lit, ok, fast) walked(lit, sizeof(lit) - 1, ok, fast)

static void test_fast_path(void **state)
{
        (void)state;
        /* The bench's events and their kin. */
        WALKED("{\"appId\":\"app_02\",\"userId\":\"u023148\",\"action\":"
               "\"track\",\"event\":\"Level Complete\",\"value\":0.00,"
               "\"params\":{\"level\":0,\"score\":0},\"eid\":\"e0000000\","
               "\"seq\":0}",
               1, 1);
        WALKED("{\"appId\":\"a\",\"deviceId\":\"d-1\",\"action\":\"start\","
               "\"time\":1700000000.25,\"clientKey\":\"k\",\"sessionLength\":"
               "-12,\"\":[true,false,null,[],{}],\"x\":1e5,\"y\":-0.5E-07}",
               1, 1);
        /* Whitespace anywhere, a trailing newline. */
        WALKED(" \t{ \"appId\" :\r\n \"a\" , \"v\" : [ 1 , { \"k\" : 2 } ] ,"
               "\"w\":{ } , \"z\" : [ ] }\n",
               1, 1);
        /* Short escapes in values and UTF-8 anywhere in strings. */
        WALKED("{\"action\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
               "\"caf\xc3\xa9\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}",
               1, 1);
        /* Left to the exact path: \u escapes, escaped keys, scalars at the
         * top, big numbers, deep nesting, many keys. */
        WALKED("{\"action\":\"\\u0041\"}", 1, 0);
        WALKED("{\"\\u0061ppId\":\"a\"}", 1, 0);
        WALKED("{\"app\\tId\":\"a\"}", 1, 0);
        WALKED("\"top\"", 1, 0);
        WALKED("12", 1, 0);
        WALKED("{\"n\":123456789012345678}", 1, 1);
        WALKED("{\"n\":1234567890123456789}", 1, 0);
        WALKED("{\"n\":-9223372036854775809}", 0, 0);
        WALKED("{\"n\":1e100}", 1, 0);
        WALKED("{\"n\":1e99}", 1, 1);
        /* Duplicates: equal in their first 8 bytes or not, nested, in
         * sibling objects (allowed). */
        WALKED("{\"sessionLength\":1,\"sessionLengthX\":2}", 1, 1);
        WALKED("{\"sessionLength\":1,\"sessionLength\":2}", 0, 0);
        WALKED("{\"a\":1,\"b\":2,\"a\":3}", 0, 0);
        WALKED("{\"a\":{\"k\":1,\"k\":2}}", 0, 0);
        WALKED("{\"a\":{\"k\":1},\"b\":[{\"k\":1},{\"k\":2}],\"k\":2}", 1, 1);
        /* Errors are never the walk's. */
        WALKED("{\"a\":1,}", 0, 0);
        WALKED("{\"a\":1}x}", 0, 0);
        WALKED("{\"a\":01}", 0, 0);
        WALKED("{\"a\":tru}", 0, 0);
        WALKED("{\"a\":[1}", 0, 0);
        WALKED("{\"a\":{\"b\":1}", 0, 0);
        WALKED("{\"a\":\"x\ty\"}", 0, 0);
        WALKED("{\"a\":\"\xc3\"}", 0, 0);
        WALKED("{\"a\":1}}", 0, 0);
        WALKED("{\"a\"}", 0, 0);
        WALKED("{}", 1, 1);
        WALKED("[]", 1, 1);
        WALKED("}", 0, 0);

        char *deep = repeat("[", 70, "1", "]", 70);
        walked(deep, strlen(deep), 1, 0);
        free(deep);
        char many[64 * 12 + 8];
        size_t n = 0;
        many[n++] = '{';
        for (int i = 0; i < 70 && n < sizeof(many) - 12; i++)
                n += (size_t)snprintf(many + n, sizeof(many) - n, "\"k%d\":%d,",
                                      i, i);
        many[n - 1] = '}';
        walked(many, n, 1, 0);

        /* Many wanted names: buckets shared between names. */
        lb_json_field_t f[40];
        char names[40][4];
        for (int i = 0; i < 40; i++) {
                snprintf(names[i], sizeof(names[i]), "k%d", i);
                f[i].name = names[i];
                f[i].name_len = strlen(names[i]);
        }
        lb_json_result_t res;
        assert_int_equal(scan(many, 64 * 3 + 20, f, 32, &res), -1);
        many[n - 1] = '}';
        const char *v = "{\"k1\":1,\"k12\":\"x\",\"k31\":[2],\"k0\":{}}";
        assert_int_equal(scan(v, strlen(v), f, 32, &res), 0);
        assert_int_equal(res.exact, pass == LB_JSON_PASS_EXACT);
        assert_int_equal(f[31].value.type, LB_JSON_ARRAY);
        assert_int_equal(scan(v, strlen(v), f, 40, &res), 0);
        assert_int_equal(res.exact, 1); /* more names than the walk takes */
}

/* v[n..) gets `at` copies of a, then stop, then `rest` copies of b.
 * @returns the new length. */
static size_t spell(char *v, size_t n, char a, size_t at, const char *stop,
                    char b, size_t rest)
{
        memset(v + n, a, at);
        n += at;
        n += (size_t)sprintf(v + n, "%s", stop);
        memset(v + n, b, rest);
        return n + rest;
}

/* Strings and keys of every length up to 2,300 bytes, so that their end
 * falls at every place of the probe's 16 bytes and the 32-byte steps after
 * it, with a byte that stops a string (an escape, UTF-8, a control byte)
 * at every place too. Keys take no escape on the walk. */
static void test_long_strings(void **state)
{
        (void)state;
        static const char *const stops[] = {"", "\\n", "\xc3\xa9", "\x01",
                                            "\\u00e9"};
        char *v = malloc(4800);
        assert_non_null(v);
        for (size_t len = 0; len < 2300; len += len < 300 ? 1 : 61) {
                for (size_t k = 0; k < sizeof(stops) / sizeof(stops[0]); k++) {
                        size_t at = len / 2;
                        size_t n = (size_t)sprintf(v, "{\"appId\":\"");
                        n = spell(v, n, 'x', at, stops[k], 'y', len - at);
                        n += (size_t)sprintf(v + n, "\",\"action\":\"z\"}");
                        walked(v, n, k != 3, k < 3);

                        n = (size_t)sprintf(v, "{\"a\":1,\"");
                        n = spell(v, n, 'k', at, stops[k], 'q', len - at);
                        n += (size_t)sprintf(v + n, "\":[\"");
                        n = spell(v, n, 'x', len, "", 'x', 0);
                        n += (size_t)sprintf(v + n, "\"]}");
                        walked(v, n, k != 3, k == 0 || k == 2);
                }
        }
        free(v);
}

/* The contract's names, as event.c has them. */
static const lb_json_field_t contract[] = {
    {.name = "appId", .name_len = 5},  {.name = "action", .name_len = 6},
    {.name = "userId", .name_len = 6}, {.name = "deviceId", .name_len = 8},
    {.name = "time", .name_len = 4},   {.name = "clientKey", .name_len = 9},
    {.name = "event", .name_len = 5},
};
#define CONTRACT_CNT (sizeof(contract) / sizeof(contract[0]))

/* Scans v[0..n) (copied to a buffer of exactly n bytes, so that a read
 * past it is caught) with sh and without, asserts the same result, and
 * returns whether sh decided it. */
static int shaped(lb_json_shapes_t *sh, const char *v, size_t n)
{
        char *buf = malloc(n ? n : 1);
        assert_non_null(buf);
        memcpy(buf, v, n);
        lb_json_field_t want[CONTRACT_CNT], got[CONTRACT_CNT];
        lb_json_result_t wr, gr;
        int rc = lb_json_scan_names(buf, n, sh->names, want, &wr);
        memset(got, 0x5a, sizeof(got)); /* stale values must not show */
        if (lb_json_scan_shaped(buf, n, sh, got, &gr) != rc)
                fail_msg("'%.80s': shaped %s", v, rc ? "accepts" : "rejects");
        assert_int_equal(gr.type, wr.type);
        assert_int_equal(gr.err_pos, wr.err_pos);
        assert_string_equal(gr.err_text, wr.err_text);
        if (!rc) {
                assert_int_equal(gr.members, wr.members);
                for (size_t i = 0; i < CONTRACT_CNT; i++) {
                        const lb_json_value_t *a = &got[i].value;
                        const lb_json_value_t *b = &want[i].value;
                        if (a->type != b->type || a->off != b->off ||
                            a->len != b->len || a->dlen != b->dlen)
                                fail_msg("'%.80s': %s differs", v,
                                         contract[i].name);
                }
        }
        free(buf);
        return gr.shaped;
}

#define SHAPED(sh, lit) shaped(sh, lit, sizeof(lit) - 1)

/* Empty shapes of the contract's names (which outlive them). */
static lb_json_shapes_t *contract_shapes(void)
{
        static lb_json_names_t names;
        lb_json_names_init(&names, contract, CONTRACT_CNT);
        lb_json_shapes_t *sh = malloc(sizeof(*sh));
        assert_non_null(sh);
        lb_json_shapes_init(sh, &names);
        return sh;
}

static void test_shapes(void **state)
{
        (void)state;
        lb_json_shapes_t *sh = contract_shapes();
        int known = pass != LB_JSON_PASS_EXACT; /* shapes decide at all */

        /* Learned, then strings of any length (past the 16-byte probe
         * too) with escapes (the short ones: "\\u" goes the exact way) or
         * UTF-8, and numbers and literals of any kind, in between. */
        assert_false(SHAPED(sh, "{\"appId\":\"a\",\"userId\":\"u1\","
                                "\"action\":\"track\",\"n\":1}"));
        static const char *const same[] = {
            "{\"appId\":\"app_2\",\"userId\":\"a-much-longer-user-id-"
            "0123456789\",\"action\":\"t\",\"n\":-12.5e+3}",
            "{\"appId\":\"\",\"userId\":\"\\\"\\n\",\"action\":\"\xc3\xa9\","
            "\"n\":true}",
            "{\"appId\":\"1\",\"userId\":\"null\",\"action\":\"\",\"n\":null}",
            "{\"appId\":\"a\",\"userId\":\"b\",\"action\":\"c\",\"n\":false}",
            "{\"appId\":\"a\",\"userId\":\"b\",\"action\":\"c\",\"n\":0}",
        };
        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
                assert_int_equal(shaped(sh, same[i], strlen(same[i])), known);
        /* A string where a number was (or the other way round) is another
         * shape: learned, then known. */
        static const char *const kinds[] = {
            "{\"appId\":1,\"userId\":null,\"action\":false,\"n\":\"x\"}",
            "{\"appId\":123456789012345678,\"userId\":0,\"action\":1e5,"
            "\"n\":\"\"}",
        };
        assert_false(shaped(sh, kinds[0], strlen(kinds[0])));
        assert_int_equal(shaped(sh, kinds[0], strlen(kinds[0])), known);
        assert_int_equal(shaped(sh, kinds[1], strlen(kinds[1])), known);

        /* The same gaps around bad scalars: the scan's verdict, never a
         * known shape's. */
        static const char *const bad[] = {
            "{\"appId\":\"a\x01\",\"userId\":\"u\",\"action\":\"t\",\"n\":1}",
            "{\"appId\":\"a\",\"userId\":\"\xff\",\"action\":\"t\",\"n\":1}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":01,\"n\":1}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":1.}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":tru}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":"
            "1234567890123456789012}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":1e999}",
            "{\"appId\":\"a\",\"userId\":\"u\\u0000\",\"action\":\"t\",\"n\":"
            "1}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":1",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":1}}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":{}}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\":[1]}",
            "{\"appId\":\"a\",\"userId\":\"u\",\"action\":\"t\",\"n\": 1}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_false(shaped(sh, bad[i], strlen(bad[i])));

        /* Gaps that begin other gaps: each shape is found, whichever was
         * learned last. */
        static const char *const prefixes[] = {
            "{\"appId\":\"a\",\"e\":1}",
            "{\"appId\":\"a\",\"e\":1,\"f\":2}",
            "{\"appId\":\"a\",\"e\":{\"f\":2}}",
            "{\"appId\":\"a\",\"e\":1}  \n",
            "{\"appId\":\"a\",\"e\":[1,\"x\",[true]],\"f\":{\"g\":[]}}",
            "{\"appId\":\"a\",\"e\":[]}",
            "{\"appId\":\"a\",\"e\" : 1 }",
        };
        size_t np = sizeof(prefixes) / sizeof(prefixes[0]);
        for (size_t i = 0; i < np; i++)
                SHAPED(sh, "{}"), shaped(sh, prefixes[i], strlen(prefixes[i]));
        for (int round = 0; round < 3; round++)
                for (size_t i = 0; i < np; i++)
                        if (shaped(sh, prefixes[i], strlen(prefixes[i])) !=
                            known)
                                fail_msg("'%s': shape %s (%zu gaps, %d "
                                         "hits, %d misses)",
                                         prefixes[i],
                                         known ? "unknown" : "known",
                                         sh->gap_cnt, (int)sh->hits,
                                         (int)sh->misses);

        /* Documents shorter than 16 bytes and keys longer than 32: the
         * byte-by-byte comparison. */
        assert_false(SHAPED(sh, "{\"time\":1}"));
        assert_int_equal(SHAPED(sh, "{\"time\":2}"), known);
        char key[200];
        memset(key, 'k', sizeof(key));
        char doc[300];
        int len = snprintf(doc, sizeof(doc), "{\"%.*s\":1,\"appId\":\"a\"}",
                           (int)sizeof(key), key);
        assert_false(shaped(sh, doc, (size_t)len));
        doc[len - 3] = 'b';
        assert_int_equal(shaped(sh, doc, (size_t)len), known);
        doc[5] = 'j'; /* another key: not that shape */
        assert_false(shaped(sh, doc, (size_t)len));

        /* Keys in varying orders: no gap gets more than
         * LB_JSON_SHAPE_SIBLINGS children (a new one replaces the least
         * recently found), the latest shapes are known, and every
         * document is still scanned right. */
        lb_json_shapes_init(sh, sh->names);
        for (int round = 0; round < 2; round++)
                for (int i = 0; i < 40; i++) {
                        len = snprintf(doc, sizeof(doc),
                                       "{\"appId\":\"a\",\"k%d\":1,\"userId\":"
                                       "\"u\",\"action\":\"t\"}",
                                       i);
                        /* learned, then known: shapes that pay */
                        for (int k = 0; k < 8; k++)
                                shaped(sh, doc, (size_t)len);
                        size_t children = 0;
                        for (unsigned c = sh->gap[sh->gap[0].child].child; c;
                             c = sh->gap[c].sibling)
                                children++;
                        assert_true(children <= LB_JSON_SHAPE_SIBLINGS);
                }
        for (int i = 40 - LB_JSON_SHAPE_SIBLINGS; i < 40; i++) {
                len = snprintf(doc, sizeof(doc),
                               "{\"appId\":\"a\",\"k%d\":1,\"userId\":\"u\","
                               "\"action\":\"t\"}",
                               i);
                assert_int_equal(shaped(sh, doc, (size_t)len), known);
        }

        /* Full: emptied and learned again, still right. */
        for (int i = 0; i < 600; i++) {
                len = snprintf(doc, sizeof(doc), "{\"k%d\":%d,\"appId\":\"x\"}",
                               i, i);
                shaped(sh, doc, (size_t)len);
                assert_true(sh->gap_cnt <= LB_JSON_SHAPE_GAPS + 1);
        }
        /* After many documents of no repeated shape (looked up one in
         * 16, then), one that repeats is learned and looked up at every
         * document again within a few thousand. */
        int hits = 0;
        for (int i = 0; i < 8000; i++)
                hits += SHAPED(sh, "{\"appId\":\"a\",\"userId\":\"u\"}");
        assert_true(known ? hits >= 4000 : hits == 0);
        free(sh);
}

/* Shapes that part after a value by the key that follows (by action, say):
 * one byte picks the child (a fork), whatever order they come in; a
 * document with a byte no child has there, or the picked child's bytes
 * past it, or a bad value after it, is the scan's, with its verdict. */
static void test_shape_forks(void **state)
{
        (void)state;
        lb_json_shapes_t *sh = contract_shapes();
        int known = pass != LB_JSON_PASS_EXACT;
        static const char *const kinds[] = {
            "{\"appId\":\"a\",\"action\":\"track\",\"event\":\"e\",\"n\":1}",
            "{\"appId\":\"a\",\"action\":\"start\",\"deviceId\":\"d\",\"n\":2}",
            "{\"appId\":\"a\",\"action\":\"stop\",\"x\":true}",
            "{\"appId\":\"a\",\"action\":\"set\",\"userId\":\"u\",\"m\":[1]}",
        };
        size_t nk = sizeof(kinds) / sizeof(kinds[0]);
        for (size_t i = 0; i < nk; i++)
                assert_false(shaped(sh, kinds[i], strlen(kinds[i])));
        if (known) {
                /* root -> '{"appId":"' -> '","action":"', whose
                 * children (',"event":"', ...) part at their third
                 * byte */
                unsigned g = sh->gap[sh->gap[0].child].child;
                assert_int_equal(sh->gap[g].fork, 3); /* e, d, x, u */
        }
        for (int round = 0; round < 3; round++)
                for (size_t i = 0; i < nk; i++) {
                        size_t k =
                            (i * (size_t)(round + 1) + (size_t)round) % nk;
                        assert_int_equal(shaped(sh, kinds[k], strlen(kinds[k])),
                                         known);
                }
        /* Escapes in the picked child's string: its general step. */
        assert_int_equal(SHAPED(sh, "{\"appId\":\"a\",\"action\":\"start\","
                                    "\"deviceId\":\"d\\n\\\"\",\"n\":2}"),
                         known);
        static const char *const not_known[] = {
            "{\"appId\":\"a\",\"action\":\"x\",\"zzz\":1}",
            "{\"appId\":\"a\",\"action\":\"start\",\"deviceIx\":\"d\",\"n\":2}",
            "{\"appId\":\"a\",\"action\":\"start\",\"deviceId\":\"d\",\"n\":"
            "01}",
            "{\"appId\":\"a\",\"action\":\"start\",\"deviceId\":\"d\",\"n\":2,"
            "\"n\":3}",
            "{\"appId\":\"a\",\"action\":\"stop\",\"x\":tru}",
            "{\"appId\":\"a\",\"action\":\"t\",\"e\"}",
        };
        for (size_t i = 0; i < sizeof(not_known) / sizeof(not_known[0]); i++)
                assert_false(shaped(sh, not_known[i], strlen(not_known[i])));
        free(sh);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_values),
            cmocka_unit_test(test_grammar_errors),
            cmocka_unit_test(test_utf8),
            cmocka_unit_test(test_escapes),
            cmocka_unit_test(test_surrogates),
            cmocka_unit_test(test_nul),
            cmocka_unit_test(test_numbers),
            cmocka_unit_test(test_numbers_long),
            cmocka_unit_test(test_depth),
            cmocka_unit_test(test_duplicates),
            cmocka_unit_test(test_fields),
            cmocka_unit_test(test_fast_path),
            cmocka_unit_test(test_long_strings),
            cmocka_unit_test(test_shapes),
            cmocka_unit_test(test_shape_forks),
        };
        static const struct {
                const char *name;
                lb_json_pass_t pass;
        } passes[] = {
            {"exact", LB_JSON_PASS_EXACT},
            {"portable", LB_JSON_PASS_PORTABLE},
            {"sse2", LB_JSON_PASS_SSE2},
            {"avx2", LB_JSON_PASS_AVX2},
        };
        int failed = 0;
        for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
                if (lb_json_pass_select(passes[i].pass)) {
                        printf("[ SKIPPED ] %s: not on this machine\n",
                               passes[i].name);
                        continue;
                }
                pass = passes[i].pass;
                failed += _cmocka_run_group_tests(
                    passes[i].name, tests, sizeof(tests) / sizeof(tests[0]),
                    NULL, NULL);
        }
        return failed;
}
