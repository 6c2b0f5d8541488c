/*
 * fuzz_json_diff.c: libFuzzer target holding json_scan to jansson. For any
 * bytes, lb_json_scan must accept exactly what jansson's json_loadb accepts
 * with the flags event.c used (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY);
 * when both reject, with jansson's message (less " near ...") and position;
 * when both accept, with the same top-level type and member count, and for
 * every wanted member of a top-level object the same presence, type,
 * decoded string bytes or number. jansson silently drops a raw NUL byte
 * that follows a number or a literal; the scanner rejects every raw NUL
 * (json_scan.h), so an input with NUL bytes is compared against jansson
 * given the same input with each NUL turned into 0x01, which jansson treats
 * the way the scanner treats NUL. Each input is scanned under every first
 * pass this machine has (json_struct.h: portable, SSE2, AVX2) and under the
 * byte-by-byte path alone, and all must agree on everything they report;
 * under each first pass it is also scanned twice with the shapes learned
 * from every input so far (lb_json_scan_shaped: the second scan may be
 * decided by the shape the first learned), with the same result.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_scan.h"
#include "json_struct.h"

#define FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

_Static_assert(LB_JSON_MAX_DEPTH == JSON_PARSER_MAX_DEPTH,
               "json_scan's depth limit is jansson's");

static const char *const names[] = {
    "appId",     "action", "userId", "deviceId", "time",
    "clientKey", "a",      "",       "\xc3\xa9", "\xf0\x9f\x98\x80",
};
#define NAME_CNT (sizeof(names) / sizeof(names[0]))

static void check(int ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "json_scan differs from jansson: %s\n", what);
                abort();
        }
}

static lb_json_type_t type_of(const json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return LB_JSON_OBJECT;
        case JSON_ARRAY:
                return LB_JSON_ARRAY;
        case JSON_STRING:
                return LB_JSON_STRING;
        case JSON_INTEGER:
                return LB_JSON_INTEGER;
        case JSON_REAL:
                return LB_JSON_REAL;
        case JSON_TRUE:
                return LB_JSON_TRUE;
        case JSON_FALSE:
                return LB_JSON_FALSE;
        case JSON_NULL:
                return LB_JSON_NULL;
        }
        return LB_JSON_ABSENT;
}

/* A NUL-terminated copy of buf[off..off+len). */
static char *span(const char *buf, size_t off, size_t len)
{
        char *s = malloc(len + 1);
        if (!s)
                abort();
        memcpy(s, buf + off, len);
        s[len] = '\0';
        return s;
}

static void check_string(const char *buf, const lb_json_value_t *v,
                         const json_t *j)
{
        size_t n = json_string_length(j);
        const char *want = json_string_value(j);
        check(v->dlen == n, "decoded string length");
        check((v->dlen == v->len) == !memchr(buf + v->off, '\\', v->len),
              "dlen < len iff escaped");
        char *got = malloc(n + 1);
        if (!got)
                abort();
        check(lb_json_unescape(buf + v->off, v->len, got, n) == n &&
                  memcmp(got, want, n) == 0,
              "decoded string bytes");
        size_t half = n / 2;
        check(lb_json_unescape(buf + v->off, v->len, got, half) == half &&
                  memcmp(got, want, half) == 0,
              "decoded string prefix");
        check(lb_json_string_eq(buf, v, want, n), "string_eq on its value");
        if (n) {
                memcpy(got, want, n);
                got[n - 1] ^= 1;
                check(!lb_json_string_eq(buf, v, got, n),
                      "string_eq on another value");
                check(!lb_json_string_eq(buf, v, want, n - 1),
                      "string_eq on a prefix");
        }
        free(got);
}

static void check_value(const char *buf, const lb_json_value_t *v,
                        const json_t *j)
{
        check(v->type == type_of(j), "member type");
        char *text = span(buf, v->off, v->len);
        switch (v->type) {
        case LB_JSON_STRING:
                check_string(buf, v, j);
                break;
        case LB_JSON_INTEGER:
                check(strtoll(text, NULL, 10) == json_integer_value(j),
                      "integer value");
                break;
        case LB_JSON_REAL: {
                double got = strtod(text, NULL), want = json_real_value(j);
                check(memcmp(&got, &want, sizeof(got)) == 0, "real value");
                break;
        }
        case LB_JSON_OBJECT:
        case LB_JSON_ARRAY: {
                /* The span is the container, valid on its own. */
                lb_json_result_t res;
                check(lb_json_scan(text, v->len, NULL, 0, &res) == 0 &&
                          res.type == v->type,
                      "container span");
                if (v->type == LB_JSON_OBJECT)
                        check(res.members == json_object_size(j),
                              "container members");
                break;
        }
        default:
                check(strcmp(text, v->type == LB_JSON_TRUE    ? "true"
                                   : v->type == LB_JSON_FALSE ? "false"
                                                              : "null") == 0,
                      "literal span");
                break;
        }
        free(text);
}

static void check_accepted(const char *buf, const lb_json_result_t *res,
                           const lb_json_field_t *f, const json_t *root)
{
        check(res->type == type_of(root), "top-level type");
        if (!json_is_object(root)) {
                for (size_t i = 0; i < NAME_CNT; i++)
                        check(f[i].value.type == LB_JSON_ABSENT,
                              "member of a non-object");
                return;
        }
        check(res->members == json_object_size(root), "member count");
        for (size_t i = 0; i < NAME_CNT; i++) {
                const json_t *j =
                    json_object_getn(root, f[i].name, f[i].name_len);
                check((f[i].value.type != LB_JSON_ABSENT) == (j != NULL),
                      "member presence");
                if (j)
                        check_value(buf, &f[i].value, j);
        }
}

static void check_rejected(const uint8_t *data, size_t size,
                           const json_error_t *jerr,
                           const lb_json_result_t *res)
{
        char want[sizeof(jerr->text)];
        const char *near = strstr(jerr->text, " near ");
        size_t n = near ? (size_t)(near - jerr->text) : strlen(jerr->text);
        memcpy(want, jerr->text, n);
        want[n] = '\0';
        /* A NUL at the position jansson reports was a 0x01 for jansson. */
        if (!strcmp(want, "control character 0x1") &&
            (size_t)jerr->position < size && data[jerr->position] == 0)
                strcpy(want, "control character 0x0");
        if (strcmp(want, res->err_text) ||
            (size_t)jerr->position != res->err_pos) {
                fprintf(stderr, "jansson: %d '%s', json_scan: %zu '%s'\n",
                        jerr->position, want, res->err_pos, res->err_text);
                check(0, "error message or position");
        }
}

/* Whether a and b report the same (values compared member by member). */
static int same_fields(const lb_json_field_t *a, const lb_json_field_t *b)
{
        for (size_t i = 0; i < NAME_CNT; i++) {
                const lb_json_value_t *x = &a[i].value, *y = &b[i].value;
                if (x->type != y->type || x->off != y->off ||
                    x->len != y->len || x->dlen != y->dlen)
                        return 0;
        }
        return 1;
}

/* buf scanned with the shapes learned so far, twice, under pass p: the
 * result of the scan without them (rc, res, f). */
static void check_shaped(const char *buf, size_t size, int rc,
                         const lb_json_result_t *res, const lb_json_field_t *f)
{
        static lb_json_field_t fields[NAME_CNT];
        static lb_json_names_t nm;
        static lb_json_shapes_t sh;
        if (!nm.fields) {
                for (size_t i = 0; i < NAME_CNT; i++) {
                        fields[i].name = names[i];
                        fields[i].name_len = strlen(names[i]);
                }
                lb_json_names_init(&nm, fields, NAME_CNT);
                lb_json_shapes_init(&sh, &nm);
        }
        lb_json_field_t g[NAME_CNT];
        lb_json_result_t r;
        for (int k = 0; k < 2; k++) {
                memset(g, 0x5a, sizeof(g)); /* stale values must not show */
                check(lb_json_scan_shaped(buf, size, &sh, g, &r) == rc &&
                          r.type == res->type,
                      "shaped: verdict");
                if (rc)
                        check(r.err_pos == res->err_pos &&
                                  !strcmp(r.err_text, res->err_text),
                              "shaped: error");
                else
                        check(r.members == res->members && same_fields(g, f),
                              "shaped: members and fields");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        char *nonul = NULL;
        if (memchr(data, 0, size)) {
                nonul = span(buf, 0, size);
                for (size_t i = 0; i < size; i++)
                        if (!nonul[i])
                                nonul[i] = 1;
        }
        json_error_t jerr;
        json_t *root = json_loadb(nonul ? nonul : buf, size, FLAGS, &jerr);

        static const lb_json_pass_t passes[] = {
            LB_JSON_PASS_EXACT, LB_JSON_PASS_PORTABLE, LB_JSON_PASS_SSE2,
            LB_JSON_PASS_AVX2};
        lb_json_field_t f[NAME_CNT], g[NAME_CNT];
        lb_json_result_t res, other;
        int rc = 0;
        for (size_t p = 0; p < sizeof(passes) / sizeof(passes[0]); p++) {
                if (lb_json_pass_select(passes[p]))
                        continue;
                lb_json_field_t *h = p ? g : f;
                for (size_t i = 0; i < NAME_CNT; i++) {
                        h[i].name = names[i];
                        h[i].name_len = strlen(names[i]);
                }
                lb_json_result_t *r = p ? &other : &res;
                int c = lb_json_scan(buf, size, h, NAME_CNT, r);
                if (!p) {
                        rc = c;
                        continue;
                }
                check_shaped(buf, size, rc, &res, f);
                check(c == rc && r->type == res.type, "pass: verdict");
                if (rc)
                        check(r->err_pos == res.err_pos &&
                                  !strcmp(r->err_text, res.err_text),
                              "pass: error");
                else
                        check(r->members == res.members &&
                                  !memcmp(g, f, sizeof(f)),
                              "pass: members and fields");
        }

        check((rc == 0) == (root != NULL), "accept/reject");
        if (root)
                check_accepted(buf, &res, f, root);
        else
                check_rejected(data, size, &jerr, &res);
        json_decref(root);
        free(nonul);
        return 0;
}
