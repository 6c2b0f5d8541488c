/*
 * multi.c: the multi call's codec: growable buffers and JSON string
 * escaping, request bodies written as they are sent (within the size
 * bound the batcher packs against), the outcome classifier of issue 3 (2xx
 * answers checked with json_scan.h, entry by entry, without a tree; other
 * statuses' small bodies with jansson) and Retry-After parsing.
 * Pure: no I/O, no clock (times are passed in), no globals. Server text that
 * reaches a reason or a result is cut and made printable here, once.
 */
#include "multi.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "grow.h"
#include "json_scan.h"

/* ',"time":' plus a number must fit the splice bound the batcher counts. */
_Static_assert(LB_EVENT_TIME_SPLICE_MAX >= 8 + LB_MULTI_TIME_MAX,
               "time splice bound too small");

/* --- buffers ----------------------------------------------------------- */

int lb_buf_reserve(lb_buf_t *b, size_t n)
{
        if (n > SIZE_MAX - 1 - b->len)
                return -1;
        char *p = lb_grow(b->data, &b->cap, b->len + n + 1 /* + NUL */, 1, 256);
        if (!p)
                return -1;
        b->data = p;
        return 0;
}

int lb_buf_append(lb_buf_t *b, const void *p, size_t n)
{
        if (lb_buf_reserve(b, n))
                return -1;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int lb_buf_append_upto(lb_buf_t *b, const void *p, size_t n, size_t most)
{
        size_t need = b->len + n + 1;
        if (n <= SIZE_MAX - 1 - b->len && need > b->cap && need <= most &&
            b->cap > most / 2) {
                char *d = realloc(b->data, most);
                if (!d)
                        return -1;
                b->data = d;
                b->cap = most;
        }
        return lb_buf_append(b, p, n);
}

int lb_buf_printf(lb_buf_t *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || lb_buf_reserve(b, (size_t)n))
                return -1;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void lb_buf_reset(lb_buf_t *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void lb_buf_free(lb_buf_t *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

/* --- JSON strings -------------------------------------------------------- */

/* Escapes the unit at p: writes it to out (room for 6 bytes) unless out is
 * NULL, sets *used to the input bytes consumed, returns the bytes written.
 * The one place that decides escaping, so the length and the append agree. */
static size_t json_escape_unit(const unsigned char *p, size_t n, char *out,
                               size_t *used)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char c = p[0];
        *used = 1;
        if (c == '"' || c == '\\') {
                if (out) {
                        out[0] = '\\';
                        out[1] = (char)c;
                }
                return 2;
        }
        if (c < 0x20) {
                if (out)
                        memcpy(out,
                               (char[]){'\\', 'u', '0', '0', hex[c >> 4],
                                        hex[c & 15]},
                               6);
                return 6;
        }
        if (c < 0x80) {
                if (out)
                        out[0] = (char)c;
                return 1;
        }
        size_t len = lb_utf8_len(p, n);
        if (!len) {
                if (out)
                        memcpy(out, "\\ufffd", 6);
                return 6;
        }
        if (out)
                memcpy(out, p, len);
        *used = len;
        return len;
}

size_t lb_buf_json_string_len(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t total = 2, used;
        for (size_t i = 0; i < n; i += used)
                total += json_escape_unit(p + i, n - i, NULL, &used);
        return total;
}

int lb_buf_append_json_string(lb_buf_t *b, const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t used;
        if (lb_buf_reserve(b, lb_buf_json_string_len(s, n)))
                return -1;
        char *w = b->data + b->len;
        *w++ = '"';
        for (size_t i = 0; i < n; i += used)
                w += json_escape_unit(p + i, n - i, w, &used);
        *w++ = '"';
        b->len = (size_t)(w - b->data);
        *w = '\0';
        return 0;
}

/* --- encoding ------------------------------------------------------------ */

#define KEY_APP     "{\"appId\":"
#define KEY_CLIENT  ",\"clientKey\":"
#define KEY_VERSION ",\"apiVersion\":"
#define KEY_TIME    ",\"time\":"
#define KEY_DATA    ",\"data\":["
#define TAIL        "]}"
#define LIT_LEN(s)  (sizeof(s) - 1)

/* "00" .. "99": two digits a step. */
static const char digit_pairs[] = "0001020304050607080910111213141516171819"
                                  "2021222324252627282930313233343536373839"
                                  "4041424344454647484950515253545556575859"
                                  "6061626364656667686970717273747576777879"
                                  "8081828384858687888990919293949596979899";

/* Writes [-]whole to c->text, built from its end two digits a step. */
static __attribute__((noinline, cold)) void format_secs(lb_multi_secs_t *c,
                                                        uint64_t whole, int neg)
{
        char tmp[LB_MULTI_TIME_MAX + 1];
        char *end = tmp + sizeof(tmp), *s = end;
        for (; whole >= 100; whole /= 100) {
                s -= 2;
                memcpy(s, digit_pairs + whole % 100 * 2, 2);
        }
        if (whole >= 10) {
                s -= 2;
                memcpy(s, digit_pairs + whole * 2, 2);
        } else {
                *--s = (char)('0' + whole);
        }
        if (neg)
                *--s = '-';
        c->len = (size_t)(end - s);
        memcpy(c->text, s, c->len);
}

/* ms's milliseconds past its whole seconds, with those seconds in c (the
 * last call's kept when they are the same). */
static unsigned secs_of(int64_t ms, lb_multi_secs_t *c)
{
        uint64_t mag = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
        uint64_t whole = mag / 1000;
        int neg = ms < 0;
        if (!c->len || c->whole != whole || c->neg != neg) {
                format_secs(c, whole, neg);
                c->whole = whole;
                c->neg = neg;
        }
        return (unsigned)(mag % 1000);
}

/* The bytes of the fraction format_ms writes for frac milliseconds: no
 * trailing zeros (.5, .25, .125), none at all for 0. */
static size_t frac_len(unsigned frac)
{
        return !frac ? 0 : frac % 10 ? 4 : frac % 100 ? 3 : 2;
}

/* Writes ms/1000 as a JSON number with up to 3 decimals (trailing zeros
 * dropped) at out, which has room for LB_MULTI_TIME_MAX bytes (all may be
 * written); returns its length. Exact for every int64. It runs for every
 * action: the seconds come from c when they are the last call's, copied
 * whole (a fixed size copies without a call). */
static size_t format_ms(char *out, int64_t ms, lb_multi_secs_t *c)
{
        unsigned frac = secs_of(ms, c);
        memcpy(out, c->text, sizeof(c->text));
        if (!frac)
                return c->len;
        char *d = out + c->len;
        d[0] = '.';
        d[1] = (char)('0' + frac / 100);
        memcpy(d + 2, digit_pairs + frac % 100 * 2, 2);
        return c->len + frac_len(frac);
}

static size_t str_len(const char *s)
{
        return s ? strlen(s) : 0;
}

size_t lb_multi_overhead(const char *app_id, const char *client_key,
                         const char *api_version)
{
        return LIT_LEN(KEY_APP) +
               lb_buf_json_string_len(app_id, str_len(app_id)) +
               LIT_LEN(KEY_CLIENT) +
               lb_buf_json_string_len(client_key, str_len(client_key)) +
               LIT_LEN(KEY_VERSION) +
               lb_buf_json_string_len(api_version, str_len(api_version)) +
               LIT_LEN(KEY_TIME) + LB_MULTI_TIME_MAX + LIT_LEN(KEY_DATA) +
               LIT_LEN(TAIL);
}

/* JSON whitespace; also the blanks around a header value, including the
 * CRLF of a raw header line (curl's header callback passes it). */
static int is_json_ws(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The bytes of a's value an encoded action begins with: all of them, or
 * when "time" is spliced in, those before its final '}' (and the
 * whitespace after it). */
static size_t action_keep(const lb_action_t *a, const char *value)
{
        size_t n = a->value_len;
        if (!a->time_missing)
                return n;
        while (n > 0 && is_json_ws(value[n - 1]))
                n--;
        if (n > 0 && value[n - 1] == '}')
                n--;
        return n;
}

/* The splice after action_keep's bytes: [,]"time":T} (none when the
 * action has its own time). At dst (LB_EVENT_TIME_SPLICE_MAX bytes);
 * returns its length. */
static size_t action_splice(const lb_action_t *a, char *dst,
                            lb_multi_secs_t *secs)
{
        if (!a->time_missing)
                return 0;
        size_t n = 0;
        if (!a->object_empty)
                dst[n++] = ',';
        memcpy(dst + n, "\"time\":", 7);
        n += 7;
        n += format_ms(dst + n, a->timestamp_ms, secs);
        dst[n++] = '}';
        return n;
}

/* The bytes action a takes in a body (its comma not counted). */
static size_t action_len(const lb_action_t *a, lb_multi_secs_t *secs)
{
        size_t n = action_keep(a, lb_action_value(a));
        if (a->time_missing) {
                size_t frac = frac_len(secs_of(a->timestamp_ms, secs));
                n += !a->object_empty + 7 + secs->len + frac + 1;
        }
        return n;
}

/* Writes action a whole at dst (room for its value_len +
 * LB_EVENT_TIME_SPLICE_MAX bytes); returns its length. */
static size_t write_action(char *dst, const lb_action_t *a,
                           lb_multi_secs_t *secs)
{
        const char *value = lb_action_value(a);
        size_t n = action_keep(a, value);
        memcpy(dst, value, n);
        return n + action_splice(a, dst + n, secs);
}

/* The parts of a body, in order (lb_multi_body_t.part). */
enum {
        PART_HEAD,   /* {"appId":...,"data":[ */
        PART_GAP,    /* none: before action i, or the tail when i == n */
        PART_COMMA,  /* before action i (i > 0) */
        PART_VALUE,  /* action i's value (action_keep's bytes) */
        PART_SPLICE, /* action i's "time", when it has none */
        PART_TAIL,   /* ]} */
        PART_END,
};

static void put_lit(lb_buf_t *out, const char *s, size_t n)
{
        memcpy(out->data + out->len, s, n);
        out->len += n;
}

static void set_part(lb_multi_body_t *w, int part, const char *at, size_t len)
{
        w->part = part;
        w->at = at;
        w->left = len;
}

int lb_multi_body_start(lb_multi_body_t *w, const char *app_id,
                        const char *client_key, const char *api_version,
                        double now_s, lb_action_t *const *actions, size_t n)
{
        lb_buf_t *h = &w->head;
        size_t need = lb_multi_overhead(app_id, client_key, api_version);
        if (h->cap > 2 * (need + 256)) /* a detached rest's: not kept */
                lb_buf_free(h);
        lb_buf_reset(h);
        if (lb_buf_reserve(h, need))
                return -1;
        /* Clamp so the number always fits LB_MULTI_TIME_MAX; a clock this
         * far off is a bug elsewhere, not a reason to emit invalid JSON. */
        if (isnan(now_s))
                now_s = 0.0;
        else if (now_s < -9e15)
                now_s = -9e15;
        else if (now_s > 9e15)
                now_s = 9e15;
        w->secs = (lb_multi_secs_t){0};
        char num[LB_MULTI_TIME_MAX];
        size_t num_len = format_ms(num, llround(now_s * 1000.0), &w->secs);

        /* Room is reserved: the writes below cannot fail. */
        put_lit(h, KEY_APP, LIT_LEN(KEY_APP));
        lb_buf_append_json_string(h, app_id ? app_id : "", str_len(app_id));
        put_lit(h, KEY_CLIENT, LIT_LEN(KEY_CLIENT));
        lb_buf_append_json_string(h, client_key ? client_key : "",
                                  str_len(client_key));
        put_lit(h, KEY_VERSION, LIT_LEN(KEY_VERSION));
        lb_buf_append_json_string(h, api_version ? api_version : "",
                                  str_len(api_version));
        put_lit(h, KEY_TIME, LIT_LEN(KEY_TIME));
        put_lit(h, num, num_len);
        put_lit(h, KEY_DATA, LIT_LEN(KEY_DATA));

        w->actions = actions;
        w->n = n;
        w->len = h->len + LIT_LEN(TAIL) + (n ? n - 1 : 0);
        lb_multi_secs_t secs = w->secs;
        /* the first pass over the actions since they were taken
         * (lb_multi_body_read's, the copy, finds them there) */
        lb_actions_prefetch_start(actions, 0, n);
        for (size_t i = 0; i < n; i++) {
                const lb_action_t *ahead = lb_actions_prefetch(actions, i, n);
                if (ahead)
                        lb_action_prefetch_value(ahead);
                w->len += action_len(actions[i], &secs);
        }
        w->written = 0;
        w->i = 0;
        set_part(w, PART_HEAD, h->data, h->len);
        return 0;
}

/* Moves w on from a part it has written to the next one with bytes (at,
 * left); at PART_GAP the caller may write whole actions first.
 * @returns 0 at the body's end. */
static int next_part(lb_multi_body_t *w)
{
        const lb_action_t *a;
        switch (w->part) {
        case PART_HEAD:
                w->part = PART_GAP;
                return 1;
        case PART_GAP:
                if (w->i == w->n)
                        set_part(w, PART_TAIL, TAIL, LIT_LEN(TAIL));
                else if (w->i)
                        set_part(w, PART_COMMA, ",", 1);
                else
                        goto value;
                return 1;
        case PART_COMMA:
        value:
                a = w->actions[w->i];
                set_part(w, PART_VALUE, lb_action_value(a),
                         action_keep(a, lb_action_value(a)));
                return 1;
        case PART_VALUE:
                a = w->actions[w->i];
                if (a->time_missing) {
                        set_part(w, PART_SPLICE, w->splice,
                                 action_splice(a, w->splice, &w->secs));
                        return 1;
                }
                __attribute__((fallthrough));
        case PART_SPLICE:
                w->i++;
                w->part = PART_GAP;
                return 1;
        default:
                w->part = PART_END;
                return 0;
        }
}

size_t lb_multi_body_read(lb_multi_body_t *w, char *dst, size_t cap)
{
        size_t n = 0;
        while (n < cap) {
                if (w->left) {
                        size_t k = w->left < cap - n ? w->left : cap - n;
                        memcpy(dst + n, w->at, k);
                        w->at += k;
                        w->left -= k;
                        n += k;
                        continue;
                }
                /* Between actions, those with room for their most are
                 * written whole; the one at the buffer's end goes part by
                 * part. */
                while (w->part == PART_GAP && w->i < w->n) {
                        const lb_action_t *a = w->actions[w->i];
                        if (cap - n <= a->value_len + LB_EVENT_TIME_SPLICE_MAX)
                                break;
                        if (w->i)
                                dst[n++] = ',';
                        n += write_action(dst + n, a, &w->secs);
                        w->i++;
                }
                if (!next_part(w))
                        break;
        }
        w->written += n;
        return n;
}

int lb_multi_body_detach(lb_multi_body_t *w)
{
        if (w->part >= PART_TAIL)
                return 0; /* the rest is the tail's, or nothing */
        lb_buf_t rest = {0};
        size_t written = w->written;
        if (lb_buf_reserve(&rest, w->len - written))
                return -1;
        rest.len = lb_multi_body_read(w, rest.data, w->len - written);
        rest.data[rest.len] = '\0';
        w->written = written;
        lb_buf_free(&w->head);
        w->head = rest;
        w->actions = NULL;
        w->i = w->n = 0;
        set_part(w, PART_TAIL, rest.data, rest.len);
        return 0;
}

void lb_multi_body_free(lb_multi_body_t *w)
{
        lb_buf_free(&w->head);
}

/* --- classification ------------------------------------------------------ */

/* Writes s[0..n) to dst as a string, bytes outside printable ASCII
 * replaced by '?' (dst holds n + 1). */
static void printable(char *dst, const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        dst[n] = '\0';
}

/* Copies at most LB_MULTI_MESSAGE_MAX bytes of s into a new string, made
 * printable. */
static char *message_dup(const char *s, size_t n)
{
        if (n > LB_MULTI_MESSAGE_MAX)
                n = LB_MULTI_MESSAGE_MAX;
        char *m = malloc(n + 1);
        if (m)
                printable(m, s, n);
        return m;
}

/* The message of an "error" or "warning" value: {"message": "..."} or a
 * bare string. NULL when there is none. */
static json_t *message_of(json_t *v)
{
        if (json_is_object(v))
                v = json_object_get(v, "message");
        return json_is_string(v) ? v : NULL;
}

/* The server's own words in a body: error.message at the top, or the first
 * response entry's error.message. NULL when there are none. */
static json_t *body_message(json_t *root)
{
        json_t *m = message_of(json_object_get(root, "error"));
        if (m)
                return m;
        json_t *resp = json_object_get(root, "response");
        size_t i;
        json_t *e;
        json_array_foreach(resp, i, e)
        {
                m = message_of(json_object_get(e, "error"));
                if (m)
                        return m;
        }
        return NULL;
}

/* A server's message, decoded: at most its first LB_MULTI_MESSAGE_MAX
 * bytes (all a reason or a result keeps). */
typedef struct {
        char text[LB_MULTI_MESSAGE_MAX];
        size_t len;
        int set;
} message_t;

static message_t *message_of_json(json_t *m, message_t *out)
{
        if (!m)
                return NULL;
        out->len = json_string_length(m);
        if (out->len > LB_MULTI_MESSAGE_MAX)
                out->len = LB_MULTI_MESSAGE_MAX;
        memcpy(out->text, json_string_value(m), out->len);
        out->set = 1;
        return out;
}

/* reason = "HTTP <status>[: <what>][: <server message>]", printable. */
static void set_reason(char *reason, size_t size, int status, const char *what,
                       const message_t *msg)
{
        if (!reason || !size)
                return;
        char clean[LB_MULTI_MESSAGE_MAX + 1] = "";
        if (msg)
                printable(clean, msg->text, msg->len);
        snprintf(reason, size, "HTTP %d%s%s%s%s", status, what ? ": " : "",
                 what ? what : "", msg ? ": " : "", clean);
}

/* The message of an "error" or "warning" value v of body: its "message"
 * when it is an object, or itself when a string (decoded, cut to
 * LB_MULTI_MESSAGE_MAX). @returns out, or NULL when there is none. */
static message_t *scanned_message(const char *body, const lb_json_value_t *v,
                                  message_t *out)
{
        lb_json_value_t str = *v;
        if (v->type == LB_JSON_OBJECT) {
                lb_json_field_t f = {.name = "message", .name_len = 7};
                lb_json_result_t res;
                /* a member of a valid document: valid itself */
                if (lb_json_scan(body + v->off, v->len, &f, 1, &res) ||
                    f.value.type != LB_JSON_STRING)
                        return NULL;
                str = f.value;
                str.off += v->off;
        } else if (v->type != LB_JSON_STRING) {
                return NULL;
        }
        out->len = lb_json_unescape(body + str.off, str.len, out->text,
                                    sizeof(out->text));
        out->set = 1;
        return out;
}

/* A present "error" or "warning": any value but null. */
static int present(const lb_json_value_t *v)
{
        return v->type != LB_JSON_ABSENT && v->type != LB_JSON_NULL;
}

/* One response entry, body[off..off+len) (a valid JSON value) -> one
 * result: delivered only when the API applied it (success:true, no
 * error, no warning). @returns 0, or -1 (no memory). */
static int classify_entry(const char *body, size_t off, size_t len,
                          unsigned flags, lb_action_result_t *r)
{
        enum { SUCCESS, ERROR, WARNING };
        lb_json_field_t f[] = {{.name = "success", .name_len = 7},
                               {.name = "error", .name_len = 5},
                               {.name = "warning", .name_len = 7}};
        lb_json_result_t res;
        if (lb_json_scan(body + off, len, f, 3, &res) ||
            res.type != LB_JSON_OBJECT) /* not an object: none of them */
                for (size_t i = 0; i < 3; i++)
                        f[i].value.type = LB_JSON_ABSENT;
        for (size_t i = 0; i < 3; i++)
                f[i].value.off += off;
        lb_json_type_t success = f[SUCCESS].value.type;
        const lb_json_value_t *error = &f[ERROR].value;
        const lb_json_value_t *warning = &f[WARNING].value;
        message_t buf, *m = NULL;
        const char *fallback = NULL;
        r->warning = present(warning);
        r->stage = LB_STAGE_API;
        if (success != LB_JSON_TRUE && success != LB_JSON_FALSE) {
                fallback = "malformed response entry";
        } else if (success == LB_JSON_FALSE) {
                m = present(error) ? scanned_message(body, error, &buf) : NULL;
                if (!m)
                        fallback = "success false without error message";
        } else if (present(error)) {
                r->stage = LB_STAGE_API_SKIPPED;
                m = scanned_message(body, error, &buf);
                if (!m)
                        fallback = "success true with an error: skipped";
        } else if (present(warning)) {
                r->ok = (flags & LB_MULTI_ACCEPT_WARNINGS) != 0;
                r->stage = r->ok ? LB_STAGE_NONE : LB_STAGE_API_WARNING;
                m = scanned_message(body, warning, &buf);
                if (!m && !r->ok)
                        fallback = "success true with a warning: probably "
                                   "skipped";
        } else {
                r->ok = 1;
                r->stage = LB_STAGE_NONE;
        }
        if (m)
                r->message = message_dup(m->text, m->len);
        else if (fallback)
                r->message = message_dup(fallback, strlen(fallback));
        return (m || fallback) && !r->message ? -1 : 0;
}

/* The end of the JSON value at p[i] (valid: the document was scanned). */
static size_t value_end(const char *p, size_t i, size_t end)
{
        size_t depth = 0;
        do {
                char c = p[i];
                if (c == '"') {
                        for (i++; p[i] != '"'; i++)
                                if (p[i] == '\\')
                                        i++;
                        i++;
                } else if (c == '{' || c == '[') {
                        depth++;
                        i++;
                } else if (c == '}' || c == ']') {
                        depth--;
                        i++;
                } else if (!depth) { /* a number or a literal */
                        while (i < end && p[i] != ',' && p[i] != ']' &&
                               p[i] != '}' && !is_json_ws(p[i]))
                                i++;
                } else {
                        i++;
                }
        } while (depth && i < end);
        return i;
}

/* The elements of the valid array body[a.off..a.off+a.len): calls each
 * (when not NULL) with one's span, in order, until it returns nonzero.
 * @returns how many were visited. */
static size_t array_each(const char *body, const lb_json_value_t *a,
                         int (*each)(const char *body, size_t off, size_t len,
                                     void *arg),
                         void *arg)
{
        size_t end = a->off + a->len - 1, i = a->off + 1, n = 0; /* ']' */
        for (;;) {
                while (i < end && is_json_ws(body[i]))
                        i++;
                if (i >= end)
                        return n;
                size_t e = value_end(body, i, end);
                n++;
                if (each && each(body, i, e - i, arg))
                        return n;
                i = e;
                while (i < end && (is_json_ws(body[i]) || body[i] == ','))
                        i++;
        }
}

/* array_each: the first entry with an error message. */
static int entry_message(const char *body, size_t off, size_t len, void *arg)
{
        lb_json_field_t f = {.name = "error", .name_len = 5};
        lb_json_result_t res;
        if (lb_json_scan(body + off, len, &f, 1, &res) ||
            res.type != LB_JSON_OBJECT)
                return 0;
        f.value.off += off;
        return scanned_message(body, &f.value, arg) != NULL;
}

/* The server's own words in a valid 2xx body: error.message at the top
 * (top: its top-level error and response members), or the first response
 * entry's error.message. NULL when there are none. */
static message_t *scanned_body_message(const char *body,
                                       const lb_json_field_t *top,
                                       message_t *out)
{
        if (scanned_message(body, &top[0].value, out))
                return out;
        out->set = 0;
        if (top[1].value.type == LB_JSON_ARRAY)
                array_each(body, &top[1].value, entry_message, out);
        return out->set ? out : NULL;
}

/* array_each: classifies entry i of the answer into its result. */
typedef struct {
        unsigned flags;
        lb_action_result_t *results;
        size_t i;
        int failed; /* out of memory */
} classify_t;

static int classify_next(const char *body, size_t off, size_t len, void *arg)
{
        classify_t *c = arg;
        c->failed =
            classify_entry(body, off, len, c->flags, &c->results[c->i++]);
        return c->failed;
}

/* Whitespace at p, skipped. */
static const char *skip_ws(const char *p, const char *end)
{
        while (p < end && is_json_ws(*p))
                p++;
        return p;
}

/* Consumes optional whitespace, then tok; a NULL p or a mismatch gives
 * NULL. */
static const char *expect(const char *p, const char *end, const char *tok)
{
        size_t n = strlen(tok);
        if (!p)
                return NULL;
        p = skip_ws(p, end);
        return (size_t)(end - p) >= n && !memcmp(p, tok, n) ? p + n : NULL;
}

/* 1 when body is exactly {"response":[{"success":true}, ...]} with n
 * entries (any JSON whitespace between tokens): the answer to nearly every
 * request, decided in one pass. Anything else, even valid and equivalent
 * JSON, returns 0 and goes through the scanner, entry by entry. An entry
 * without blanks inside is matched whole (one fixed-size compare an
 * action). */
static int all_plain_successes(const char *body, size_t len, size_t n)
{
        static const char entry[] = "{\"success\":true}";
        const char *end = body + len;
        const char *p = expect(body, end, "{");
        p = expect(p, end, "\"response\"");
        p = expect(p, end, ":");
        p = expect(p, end, "[");
        for (size_t i = 0; i < n && p; i++) {
                if (i)
                        p = expect(p, end, ",");
                p = p ? skip_ws(p, end) : NULL;
                if (p && (size_t)(end - p) >= LIT_LEN(entry) &&
                    !memcmp(p, entry, LIT_LEN(entry))) {
                        p += LIT_LEN(entry);
                        continue;
                }
                p = expect(p, end, "{");
                p = expect(p, end, "\"success\"");
                p = expect(p, end, ":");
                p = expect(p, end, "true");
                p = expect(p, end, "}");
        }
        p = expect(p, end, "]");
        p = expect(p, end, "}");
        return p && skip_ws(p, end) == end;
}

static lb_outcome_t classify_2xx(int status, const char *body, size_t len,
                                 size_t n, unsigned flags,
                                 lb_action_result_t *results, char *reason,
                                 size_t reason_size)
{
        char what[96];
        /* Applied, and answered as large each time it is sent: halves
         * get answers half as large. */
        if ((flags & LB_MULTI_ANSWER_CUT) || len > LB_MULTI_RESPONSE_MAX) {
                set_reason(reason, reason_size, status,
                           "answer too large to read (the API applied the "
                           "request)",
                           NULL);
                return n > 1 ? LB_OUTCOME_SPLIT : LB_OUTCOME_DEAD;
        }
        if (!body || !len) {
                set_reason(reason, reason_size, status, "empty body", NULL);
                return LB_OUTCOME_RETRY;
        }
        if (all_plain_successes(body, len, n)) {
                for (size_t i = 0; i < n; i++)
                        results[i] = (lb_action_result_t){.ok = 1};
                if (reason && reason_size)
                        reason[0] = '\0';
                return LB_OUTCOME_DONE;
        }
        /* Checked without building a tree (json_scan.h: jansson's verdict,
         * allocating nothing for answers of this shape): a 16 MiB body of
         * small entries would take jansson over a GiB. */
        lb_json_field_t top[] = {{.name = "error", .name_len = 5},
                                 {.name = "response", .name_len = 8}};
        lb_json_result_t res;
        message_t buf;
        if (lb_json_scan(body, len, top, 2, &res)) {
                snprintf(what, sizeof(what), "invalid JSON at byte %zu",
                         res.err_pos);
                set_reason(reason, reason_size, status, what, NULL);
                return LB_OUTCOME_RETRY;
        }
        if (res.type != LB_JSON_OBJECT && res.type != LB_JSON_ARRAY) {
                /* jansson without JSON_DECODE_ANY, as before */
                set_reason(reason, reason_size, status,
                           "invalid JSON: '[' or '{' expected", NULL);
                return LB_OUTCOME_RETRY;
        }
        if (res.type != LB_JSON_OBJECT)
                top[0].value.type = top[1].value.type = LB_JSON_ABSENT;
        if (top[1].value.type != LB_JSON_ARRAY) {
                set_reason(reason, reason_size, status, "no response array",
                           scanned_body_message(body, top, &buf));
                return LB_OUTCOME_RETRY;
        }
        size_t got = array_each(body, &top[1].value, NULL, NULL);
        if (got != n) {
                snprintf(what, sizeof(what), "%zu responses for %zu actions",
                         got, n);
                set_reason(reason, reason_size, status, what,
                           scanned_body_message(body, top, &buf));
                return LB_OUTCOME_RETRY;
        }
        memset(results, 0, n * sizeof(*results));
        classify_t c = {.flags = flags, .results = results};
        array_each(body, &top[1].value, classify_next, &c);
        if (c.failed) {
                lb_multi_results_clear(results, n);
                set_reason(reason, reason_size, status, "out of memory", NULL);
                return LB_OUTCOME_RETRY;
        }
        if (reason && reason_size)
                reason[0] = '\0';
        return LB_OUTCOME_DONE;
}

/* Whole-request errors that no smaller request would escape: the key or
 * the app is wrong (the messages the API and its SDKs are seen to use). */
static int about_key_or_app(json_t *msg)
{
        static const char *const what[] = {"access key", "app not found",
                                           "not permitted"};
        const char *m = json_string_value(msg);
        for (size_t i = 0; m && i < sizeof(what) / sizeof(what[0]); i++)
                if (strcasestr(m, what[i]))
                        return 1;
        return 0;
}

/* Whether the server's message says the client key is wrong. */
static int about_key(json_t *msg)
{
        const char *m = json_string_value(msg);
        return m && strcasestr(m, "access key");
}

lb_outcome_t lb_multi_classify(int http_status, const char *body, size_t len,
                               size_t n, unsigned flags,
                               lb_action_result_t *results, char *reason,
                               size_t reason_size)
{
        if (http_status < 100) {
                if (reason && reason_size)
                        snprintf(reason, reason_size,
                                 "no HTTP response (transport error)");
                return LB_OUTCOME_RETRY;
        }
        if (http_status >= 200 && http_status <= 299)
                return classify_2xx(http_status, body, len, n, flags, results,
                                    reason, reason_size);

        json_t *root = NULL;
        if (body && len && len <= LB_MULTI_ERROR_BODY_MAX)
                root = json_loadb(body, len, 0, NULL);
        message_t buf;
        json_t *m = body_message(root);
        const message_t *msg = message_of_json(m, &buf);
        /* unless the API itself answered about this app or its key */
        int misdirected =
            lb_multi_misdirected(http_status) && !about_key_or_app(m);
        /* The API words its 403s (over the limits, a key, an app): one
         * without its message is a proxy's or a firewall's, which every
         * request would get (a split would only double them). */
        int refused_before = http_status == 403 && !m;
        set_reason(reason, reason_size, http_status,
                   misdirected ? "api.url or a proxy before the API is wrong?"
                   : refused_before ? "not the API's answer: a proxy before "
                                      "the API refused it?"
                                    : NULL,
                   msg);
        int split = n > 1 && !about_key_or_app(m);
        int key_refused =
            (http_status == 401 || http_status == 403) && about_key(m);
        json_decref(root);

        if (key_refused)
                return LB_OUTCOME_KEY_REFUSED;
        if (misdirected || refused_before)
                return LB_OUTCOME_MISDIRECTED;
        /* Refused whole: over the API's limits (403), or a body over a
         * cap, the API's or a proxy's in front of it (413); halves may
         * pass. */
        if (http_status == 403 || http_status == 413)
                return split ? LB_OUTCOME_SPLIT : LB_OUTCOME_DEAD;
        if (http_status == 408 || http_status == 429 ||
            (http_status >= 500 && http_status <= 599))
                return LB_OUTCOME_RETRY;
        return LB_OUTCOME_DEAD;
}

int lb_multi_misdirected(int http_status)
{
        return (http_status >= 300 && http_status <= 399) ||
               http_status == 401 || http_status == 404 || http_status == 405 ||
               http_status == 407;
}

void lb_multi_results_clear(lb_action_result_t *results, size_t n)
{
        if (!results)
                return;
        for (size_t i = 0; i < n; i++) {
                if (results[i].message) { /* few answers have one */
                        free(results[i].message);
                        results[i].message = NULL;
                }
                results[i].ok = results[i].warning = 0;
                results[i].stage = LB_STAGE_NONE;
        }
}

/* --- Retry-After ---------------------------------------------------------- */

static int is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* n decimal digits at s, or -1 when one is not a digit. */
static int parse_digits(const char *s, int n)
{
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (!is_digit(s[i]))
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        return v;
}

/* IMF-fixdate, exactly 29 bytes: "Sun, 06 Nov 1994 08:49:37 GMT".
 * Parsed by hand: strptime's %a and %b follow the locale. */
static int parse_imf_fixdate(const char *s, size_t n, time_t *out)
{
        static const char days[] = "MonTueWedThuFriSatSun";
        static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        if (n != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' ||
            s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' ||
            s[25] != ' ' || memcmp(s + 26, "GMT", 3) != 0)
                return -1;
        int day_ok = 0, mon = -1;
        for (int i = 0; i < 7; i++)
                day_ok |= memcmp(s, days + 3 * i, 3) == 0;
        for (int i = 0; i < 12 && mon < 0; i++)
                if (memcmp(s + 8, months + 3 * i, 3) == 0)
                        mon = i;
        int mday = parse_digits(s + 5, 2), year = parse_digits(s + 12, 4);
        int hour = parse_digits(s + 17, 2), min = parse_digits(s + 20, 2);
        int sec = parse_digits(s + 23, 2);
        if (!day_ok || mon < 0 || mday < 1 || mday > 31 || year < 0 ||
            hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 60)
                return -1;
        struct tm tm = {.tm_year = year - 1900,
                        .tm_mon = mon,
                        .tm_mday = mday,
                        .tm_hour = hour,
                        .tm_min = min,
                        .tm_sec = sec};
        *out = timegm(&tm);
        return 0;
}

int64_t lb_multi_retry_after_ms(const char *value, int64_t now_epoch_s)
{
        if (!value)
                return -1;
        while (is_json_ws(*value))
                value++;
        size_t n = strlen(value);
        while (n > 0 && is_json_ws(value[n - 1]))
                n--;
        if (!n)
                return -1;

        if (is_digit(value[0])) {
                const int64_t max_s = INT64_MAX / 1000;
                int64_t secs = 0;
                for (size_t i = 0; i < n; i++) {
                        if (!is_digit(value[i]))
                                return -1;
                        if (secs < max_s)
                                secs = secs * 10 + (value[i] - '0');
                        if (secs > max_s)
                                secs = max_s;
                }
                return secs * 1000;
        }

        time_t t;
        if (parse_imf_fixdate(value, n, &t))
                return -1;
        int64_t delta;
        if ((int64_t)t <= now_epoch_s)
                return 0;
        if (__builtin_sub_overflow((int64_t)t, now_epoch_s, &delta) ||
            delta > INT64_MAX / 1000)
                return INT64_MAX / 1000 * 1000;
        return delta * 1000;
}
