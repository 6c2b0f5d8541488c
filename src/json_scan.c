/*
 * json_scan.c: jansson's JSON acceptance, without jansson. Owns a lexer and
 * an iterative grammar walk that follow jansson 2.14's load.c step by step
 * (its one-byte lookahead, where it validates UTF-8, which error it sets
 * first and at which position) so that verdicts, messages and positions
 * match; the differential fuzzer fuzz_json_diff holds it to that. Before
 * that exact path, a structural walk that finds the end of each string
 * many bytes at a time (json_struct.h) decides the values events are made
 * of, several times cheaper; whatever it does not know (every error
 * included) goes the exact way, so both give one result. Before both, a
 * tree of the shapes of objects accepted so far (lb_json_shapes_t) lets a
 * document of a known shape be accepted by comparing the bytes between its
 * scalars and checking only the scalars. Nothing here allocates except the
 * key index of huge objects, and nothing writes to the input.
 */
#include "json_scan.h"
#include "json_struct.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tokens; structural ones are their own character. */
#define TOK_ERROR   (-1) /* the error is set */
#define TOK_EOF     0
#define TOK_INVALID 1
#define TOK_STRING  2
#define TOK_INTEGER 3
#define TOK_REAL    4
#define TOK_TRUE    5
#define TOK_FALSE   6
#define TOK_NULL    7

/* What peek() sees past the end, or on a byte that starts no UTF-8. */
#define LOOK_END (-1)
#define LOOK_BAD (-2)

/* Objects with at most this many keys are checked pair by pair. */
#define SMALL_KEYS 16

/* Significant digits handed to strtod to decide an overflow: more than the
 * 309 of the boundary between DBL_MAX and infinity (2^1024 - 2^970). */
#define REAL_DIGITS 330

/* One key of an open object, as read: raw span and decoded length. */
typedef struct {
        size_t off;   /* first raw byte, after the quote */
        size_t len;   /* raw bytes */
        size_t dlen;  /* decoded bytes; < len iff escaped */
        size_t depth; /* open containers when read: names its object */
} skey_t;

typedef struct {
        const unsigned char *p;
        size_t len;
        size_t pos; /* jansson's stream position: bytes taken */
        /* The last token: its first byte, and for strings the body. */
        size_t tok_off;
        size_t str_off, str_len, str_dlen;
        int str_nul; /* decodes to a NUL ("\u0000") */
        /* Open containers; bit set for objects. */
        size_t open;
        unsigned char is_obj[LB_JSON_MAX_DEPTH / 8];
        /* Keys of all open objects, innermost last. */
        skey_t *keys;
        size_t key_cnt, key_cap;
        /* Top-level object: the wanted names, their values (out), and
         * the one being filled. */
        const lb_json_names_t *names;
        lb_json_field_t *out;
        lb_json_value_t *slot;
        lb_json_result_t *res;
        skey_t inline_keys[LB_JSON_KEYS_INLINE];
        /* The structural walk's scalars, for a shape to learn (spans
         * NULL: none is); SPANS_NONE: the document has no shape to learn. */
        struct span *spans;
        size_t span_cnt;
} scan_t;

/* A scalar value of a document whose shape is learned. */
typedef struct span {
        size_t tok, end;    /* its bytes */
        unsigned char slot; /* the wanted name it is the value of, or NONE */
} span_t;

#define SPANS_NONE SIZE_MAX

/* What follows a gap of a shape (lb_json_gap_t.kind). */
#define GAP_LAST   0 /* nothing: it ends the document */
#define GAP_STRING 1 /* a string, whose opening quote ends the gap */
#define GAP_OTHER  2 /* a number or a literal */
#define GAP_ROOT   3 /* none: gap 0, the root (no step takes it) */

#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x

/* String bytes taken as they are: printable ASCII but '"' and '\\'. */
/* clang-format off */
static const unsigned char plain[256] = {
    R16(0), R16(0),                                 /* 0x00: control */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: '"' */
    R16(1), R16(1),                                 /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50: '\\' */
    R16(1), R16(1),                                 /* 0x60 */
};                                                  /* 0x80: UTF-8 */
/* clang-format on */

static int is_digit(int c)
{
        return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_value(int c)
{
        if (is_digit(c))
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int fail(scan_t *s, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the error (the first one wins, as in jansson). */
static int fail(scan_t *s, size_t pos, const char *fmt, ...)
{
        if (!s->res->err_text[0]) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(s->res->err_text, sizeof(s->res->err_text), fmt, ap);
                va_end(ap);
                s->res->err_pos = pos;
        }
        return TOK_ERROR;
}

size_t lb_utf8_len(const unsigned char *p, size_t n)
{
        unsigned char lo = 0x80, hi = 0xBF;
        size_t need;
        if (p[0] >= 0xC2 && p[0] <= 0xDF) {
                need = 2;
        } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
                need = 3;
                if (p[0] == 0xE0)
                        lo = 0xA0;
                else if (p[0] == 0xED)
                        hi = 0x9F;
        } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
                need = 4;
                if (p[0] == 0xF0)
                        lo = 0x90;
                else if (p[0] == 0xF4)
                        hi = 0x8F;
        } else {
                return 0;
        }
        if (n < need || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < need; i++)
                if (p[i] < 0x80 || p[i] > 0xBF)
                        return 0;
        return need;
}

/* jansson validates a character when it first reads its lead byte, and
 * reports the lead byte at the position of the character. */
static int bad_utf8(scan_t *s, size_t pos)
{
        return fail(s, pos, "unable to decode byte 0x%x", s->p[pos]);
}

/* jansson's lookahead: reads the next character (validating it) without
 * taking it. @returns its first byte, LOOK_END or LOOK_BAD (error set). */
static int peek(scan_t *s)
{
        if (s->pos == s->len)
                return LOOK_END;
        unsigned char c = s->p[s->pos];
        if (c >= 0x80 && !lb_utf8_len(s->p + s->pos, s->len - s->pos)) {
                bad_utf8(s, s->pos);
                return LOOK_BAD;
        }
        return c;
}

/* A character after a backslash (one of want) or inside \uXXXX (a hex
 * digit, want NULL): jansson takes one byte of it, even of a multi-byte
 * one, before it names the escape invalid. @returns the byte, or TOK_ERROR
 * with the error set. */
static int escape_char(scan_t *s, size_t *pos, const char *want)
{
        if (*pos == s->len)
                return fail(s, *pos, "invalid escape");
        unsigned char c = s->p[*pos];
        if (c >= 0x80 && !lb_utf8_len(s->p + *pos, s->len - *pos))
                return bad_utf8(s, *pos);
        (*pos)++;
        int ok = want ? c && strchr(want, c) : hex_value(c) >= 0;
        if (!ok)
                return fail(s, *pos, "invalid escape");
        return c;
}

static size_t utf8_put(unsigned long cp, unsigned char *out)
{
        if (cp < 0x80) {
                out[0] = (unsigned char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (unsigned char)(0xC0 | cp >> 6);
                out[1] = (unsigned char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (unsigned char)(0xE0 | cp >> 12);
                out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
                out[2] = (unsigned char)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (unsigned char)(0xF0 | cp >> 18);
        out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        return 4;
}

/* The rest of a string body from pos. jansson first scans it (bytes,
 * escape syntax: errors at the offending byte), then decodes it (surrogate
 * pairing: errors after the closing quote); one pass here does both and
 * keeps the first decoding error until the scan is through. */
__attribute__((noinline)) static int lex_string_rest(scan_t *s, size_t pos)
{
        const unsigned char *p = s->p;
        size_t len = s->len, dlen = pos - s->str_off;
        unsigned long hi = 0;          /* high surrogate awaiting its pair */
        unsigned long bad[2] = {0, 0}; /* first bad escape(s) */
        int bad_cnt = 0, nul = 0;

        for (;;) {
                if (pos == len)
                        return fail(s, pos, "premature end of input");
                unsigned char c = p[pos];
                if (hi && !(c == '\\' && pos + 1 < len && p[pos + 1] == 'u')) {
                        if (!bad_cnt) {
                                bad[0] = hi;
                                bad_cnt = 1;
                        }
                        hi = 0;
                }
                if (plain[c]) {
                        size_t run = pos;
                        do
                                pos++;
                        while (pos < len && plain[p[pos]]);
                        dlen += pos - run;
                        continue;
                }
                if (c == '"')
                        break;
                if (c < 0x20) {
                        if (c == '\n')
                                return fail(s, pos, "unexpected newline");
                        return fail(s, pos, "control character 0x%x", c);
                }
                if (c >= 0x80) {
                        size_t n = lb_utf8_len(p + pos, len - pos);
                        if (!n)
                                return bad_utf8(s, pos);
                        pos += n;
                        dlen += n;
                        continue;
                }
                pos++; /* the backslash */
                int e = escape_char(s, &pos, "\"\\/bfnrtu");
                if (e == TOK_ERROR)
                        return TOK_ERROR;
                if (e != 'u') {
                        dlen++;
                        continue;
                }
                unsigned long v = 0;
                for (int i = 0; i < 4; i++) {
                        int h = escape_char(s, &pos, NULL);
                        if (h == TOK_ERROR)
                                return TOK_ERROR;
                        v = v << 4 | (unsigned long)hex_value(h);
                }
                if (hi) {
                        if (v >= 0xDC00 && v <= 0xDFFF) {
                                dlen += 4;
                        } else if (!bad_cnt) {
                                bad[0] = hi;
                                bad[1] = v;
                                bad_cnt = 2;
                        }
                        hi = 0;
                } else if (v >= 0xD800 && v <= 0xDBFF) {
                        hi = v;
                } else if (v >= 0xDC00 && v <= 0xDFFF) {
                        if (!bad_cnt) {
                                bad[0] = v;
                                bad_cnt = 1;
                        }
                } else {
                        dlen += v < 0x80 ? 1 : v < 0x800 ? 2 : 3;
                        nul |= v == 0;
                }
        }
        s->pos = pos + 1;
        s->str_len = pos - s->str_off;
        s->str_dlen = dlen;
        s->str_nul = nul;
        if (bad_cnt == 1)
                return fail(s, s->pos, "invalid Unicode '\\u%04lX'", bad[0]);
        if (bad_cnt == 2)
                return fail(s, s->pos, "invalid Unicode '\\u%04lX\\u%04lX'",
                            bad[0], bad[1]);
        return TOK_STRING;
}

/* Most strings are plain ASCII up to the closing quote. */
static int lex_string(scan_t *s)
{
        const unsigned char *p = s->p;
        size_t pos = s->pos, len = s->len;
        s->str_off = pos;
        while (pos < len && plain[p[pos]])
                pos++;
        if (pos == len || p[pos] != '"')
                return lex_string_rest(s, pos);
        s->str_len = s->str_dlen = pos - s->str_off;
        s->str_nul = 0;
        s->pos = pos + 1;
        return TOK_STRING;
}

/* Whether strtod overflows (to +-HUGE_VAL) on the real number t[0..n),
 * valid JSON. Decided from the power of ten of its first significant
 * digit; only at 10^308 does strtod round, on a short copy whose digits
 * past REAL_DIGITS become one sticky digit (which rounds the same). */

/* One or more digits at s->pos (a fraction's or an exponent's), consumed;
 * *c is left at the byte after them. Returns 0, or the token that ends the
 * number: TOK_ERROR for a bad byte, TOK_INVALID for no digit. */
static int digit_run(scan_t *s, int *c)
{
        *c = peek(s);
        if (*c == LOOK_BAD)
                return TOK_ERROR;
        if (!is_digit(*c))
                return TOK_INVALID;
        do {
                s->pos++;
                *c = peek(s);
        } while (is_digit(*c));
        return *c == LOOK_BAD ? TOK_ERROR : 0;
}

static int real_overflows(const unsigned char *t, size_t n)
{
        size_t i = t[0] == '-';
        if (n - i < DBL_MAX_10_EXP && !memchr(t, 'e', n) && !memchr(t, 'E', n))
                return 0; /* fewer than 308 digits and no exponent */
        size_t int_end = i, q = i;
        while (int_end < n && is_digit(t[int_end]))
                int_end++;
        size_t frac = int_end, frac_end = int_end;
        if (frac < n && t[frac] == '.') {
                frac_end = ++frac;
                while (frac_end < n && is_digit(t[frac_end]))
                        frac_end++;
        }
        long long p10;
        while (q < int_end && t[q] == '0')
                q++;
        if (q < int_end) {
                p10 = (long long)(int_end - q) - 1;
        } else {
                q = frac;
                while (q < frac_end && t[q] == '0')
                        q++;
                if (q == frac_end)
                        return 0; /* zero */
                p10 = -(long long)(q - frac) - 1;
        }
        if (frac_end < n) {
                size_t j = frac_end + 1;
                int neg = t[j] == '-';
                long long e = 0;
                if (t[j] == '+' || t[j] == '-')
                        j++;
                for (; j < n; j++)
                        if (e < 1000000000)
                                e = e * 10 + (t[j] - '0');
                p10 += neg ? -e : e;
        }
        if (p10 != DBL_MAX_10_EXP)
                return p10 > DBL_MAX_10_EXP;

        char buf[REAL_DIGITS + 32];
        size_t k = 0;
        for (size_t x = q; x < frac_end; x++) {
                if (t[x] == '.')
                        continue;
                if (k < REAL_DIGITS) {
                        buf[k++] = (char)t[x];
                } else if (t[x] != '0') {
                        buf[k++] = '1';
                        break;
                }
        }
        snprintf(buf + k, sizeof(buf) - k, "e%lld", p10 + 1 - (long long)k);
        errno = 0;
        double v = strtod(buf, NULL);
        return v == HUGE_VAL && errno == ERANGE;
}

/* A number whose first character c ('-' or a digit) is taken. */
__attribute__((noinline)) static int lex_number(scan_t *s, int c)
{
        size_t start = s->pos - 1;
        int neg = c == '-';
        /* The magnitude must stay within LLONG_MAX (+ 1 when negative). */
        unsigned long long mag = 0;
        unsigned long long max10 = (unsigned long long)LLONG_MAX / 10;
        unsigned max1 = (unsigned)(LLONG_MAX % 10) + (unsigned)neg;
        int big = 0;

        if (neg) {
                c = peek(s);
                if (c == LOOK_BAD)
                        return TOK_ERROR;
                if (!is_digit(c))
                        return TOK_INVALID;
                s->pos++;
        }
        if (c == '0') {
                c = peek(s);
                if (is_digit(c))
                        return TOK_INVALID; /* leading zero */
        } else {
                for (;;) {
                        unsigned d = (unsigned)(c - '0');
                        if (big || mag > max10 || (mag == max10 && d > max1))
                                big = 1;
                        else
                                mag = mag * 10 + d;
                        c = peek(s);
                        if (!is_digit(c))
                                break;
                        s->pos++;
                }
        }
        if (c == LOOK_BAD)
                return TOK_ERROR;
        if (c != '.' && c != 'e' && c != 'E') {
                if (big)
                        return fail(s, s->pos,
                                    neg ? "too big negative integer"
                                        : "too big integer");
                return TOK_INTEGER;
        }
        if (c == '.') {
                s->pos++;
                int t = digit_run(s, &c);
                if (t)
                        return t;
        }
        if (c == 'e' || c == 'E') {
                s->pos++;
                c = peek(s);
                if (c == '+' || c == '-')
                        s->pos++;
                int t = digit_run(s, &c);
                if (t)
                        return t;
        }
        if (real_overflows(s->p + start, s->pos - start))
                return fail(s, s->pos, "real number overflow");
        return TOK_REAL;
}

/* A run of letters: true, false, null or an invalid token. */
__attribute__((noinline)) static int lex_word(scan_t *s)
{
        size_t start = s->pos - 1;
        while (s->pos < s->len && is_alpha(s->p[s->pos]))
                s->pos++;
        if (peek(s) == LOOK_BAD)
                return TOK_ERROR;
        const unsigned char *w = s->p + start;
        size_t n = s->pos - start;
        if (n == 4 && !memcmp(w, "true", 4))
                return TOK_TRUE;
        if (n == 5 && !memcmp(w, "false", 5))
                return TOK_FALSE;
        if (n == 4 && !memcmp(w, "null", 4))
                return TOK_NULL;
        return TOK_INVALID;
}

static int lex(scan_t *s)
{
        const unsigned char *p = s->p;
        size_t pos = s->pos, len = s->len;
        while (pos < len && (p[pos] == ' ' || p[pos] == '\t' ||
                             p[pos] == '\n' || p[pos] == '\r'))
                pos++;
        s->pos = s->tok_off = pos;
        if (pos == len)
                return TOK_EOF;
        unsigned char c = p[pos];
        if (c >= 0x80) {
                /* A whole valid character is taken as one invalid token. */
                size_t n = lb_utf8_len(p + s->pos, s->len - s->pos);
                if (!n)
                        return bad_utf8(s, s->pos);
                s->pos += n;
                return TOK_INVALID;
        }
        s->pos++;
        switch (c) {
        case '{':
        case '}':
        case '[':
        case ']':
        case ':':
        case ',':
                return c;
        case '"':
                return lex_string(s);
        case '-':
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
        case '8':
        case '9':
                return lex_number(s, c);
        default:
                return is_alpha(c) ? lex_word(s) : TOK_INVALID;
        }
}

/* Reads a validated string body (or, unless esc, plain bytes) decoded,
 * byte by byte. */
typedef struct {
        const unsigned char *p, *end;
        int esc;
        unsigned char buf[4];
        size_t n, i;
} decoder_t;

static unsigned long hex4(const unsigned char *p)
{
        unsigned long v = 0;
        for (int i = 0; i < 4; i++)
                v = v << 4 | (unsigned long)hex_value(p[i]);
        return v;
}

/* @returns the next decoded byte, or -1 at the end. */
static int decode_next(decoder_t *d)
{
        if (d->i < d->n)
                return d->buf[d->i++];
        if (d->p == d->end)
                return -1;
        unsigned char c = *d->p++;
        if (c != '\\' || !d->esc)
                return c;
        c = *d->p++;
        switch (c) {
        case 'b':
                return '\b';
        case 'f':
                return '\f';
        case 'n':
                return '\n';
        case 'r':
                return '\r';
        case 't':
                return '\t';
        case 'u':
                break;
        default:
                return c; /* '"', '\\' or '/' */
        }
        unsigned long cp = hex4(d->p);
        d->p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
                cp =
                    0x10000 + ((cp - 0xD800) << 10) + (hex4(d->p + 2) - 0xDC00);
                d->p += 6;
        }
        d->n = utf8_put(cp, d->buf);
        d->i = 1;
        return d->buf[0];
}

static void decoder_init(decoder_t *d, const unsigned char *raw, size_t len,
                         int esc)
{
        d->p = raw;
        d->end = raw + len;
        d->esc = esc;
        d->n = d->i = 0;
}

/* Orders two strings by their decoded bytes; a_esc (b_esc) says that a (b)
 * is a string body with escapes to decode. */
static int body_cmp(const unsigned char *a, size_t a_len, int a_esc,
                    const unsigned char *b, size_t b_len, int b_esc)
{
        if (!a_esc && !b_esc) {
                size_t n = a_len < b_len ? a_len : b_len;
                int c = 0;
                if (n > 16)
                        c = memcmp(a, b, n);
                else /* keys are short: a loop beats a call */
                        for (size_t i = 0; i < n && !c; i++)
                                c = a[i] - b[i];
                return c ? c : (a_len > b_len) - (a_len < b_len);
        }
        decoder_t x, y;
        decoder_init(&x, a, a_len, a_esc);
        decoder_init(&y, b, b_len, b_esc);
        for (;;) {
                int cx = decode_next(&x), cy = decode_next(&y);
                if (cx != cy || cx < 0)
                        return cx - cy;
        }
}

static int key_cmp(const unsigned char *buf, const skey_t *a, const skey_t *b)
{
        int c = body_cmp(buf + a->off, a->len, a->dlen < a->len, buf + b->off,
                         b->len, b->dlen < b->len);
        return c ? c : (a->off > b->off) - (a->off < b->off);
}

static void sift_down(const unsigned char *buf, skey_t *v, size_t i, size_t n)
{
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= n)
                        return;
                if (c + 1 < n && key_cmp(buf, &v[c], &v[c + 1]) < 0)
                        c++;
                if (key_cmp(buf, &v[i], &v[c]) >= 0)
                        return;
                skey_t t = v[i];
                v[i] = v[c];
                v[c] = t;
                i = c;
        }
}

/* Heapsort: in place, O(k log k) whatever the keys (no hash to flood). */
static void keys_sort(const unsigned char *buf, skey_t *v, size_t n)
{
        for (size_t i = n / 2; i-- > 0;)
                sift_down(buf, v, i, n);
        for (size_t end = n; end-- > 1;) {
                skey_t t = v[0];
                v[0] = v[end];
                v[end] = t;
                sift_down(buf, v, 0, end);
        }
}

static int key_eq(const unsigned char *buf, const skey_t *a, const skey_t *b)
{
        if (a->dlen != b->dlen)
                return 0;
        /* Unescaped keys of one length mostly differ in the first byte. */
        if (a->len && a->dlen == a->len && b->dlen == b->len &&
            buf[a->off] != buf[b->off])
                return 0;
        return body_cmp(buf + a->off, a->len, a->dlen < a->len, buf + b->off,
                        b->len, b->dlen < b->len) == 0;
}

/* @returns the earliest key of v[0..k) (one object's keys, in order unless
 * sorted by an earlier call) that repeats an earlier one, or NULL. */
static const skey_t *first_dup(const unsigned char *buf, skey_t *v, size_t k)
{
        const skey_t *best = NULL;
        if (k <= SMALL_KEYS) {
                for (size_t j = 1; j < k && !best; j++)
                        for (size_t i = 0; i < j && !best; i++)
                                if (key_eq(buf, &v[i], &v[j]))
                                        best = &v[j];
                return best;
        }
        keys_sort(buf, v, k);
        for (size_t i = 1; i < k; i++)
                if (key_eq(buf, &v[i - 1], &v[i]) &&
                    (!best || v[i].off < best->off))
                        best = &v[i];
        return best;
}

/* @returns the first key of the innermost open object: its keys are the
 * top ones with its depth. */
static size_t keys_base(const scan_t *s, size_t end)
{
        size_t depth = s->keys[end - 1].depth, base = end - 1;
        while (base > 0 && s->keys[base - 1].depth == depth)
                base--;
        return base;
}

static size_t key_end(const skey_t *k)
{
        return k->off + k->len + 1; /* after the closing quote */
}

/* jansson rejects a duplicate as soon as it reads the key; objects here are
 * checked when they close. An error met first leaves duplicates unseen in
 * the open objects: the earliest of those is what jansson reports. */
static void open_dups_first(scan_t *s)
{
        const skey_t *best = NULL;
        for (size_t end = s->key_cnt; end > 0;) {
                size_t base = keys_base(s, end);
                const skey_t *d = first_dup(s->p, s->keys + base, end - base);
                if (d && (!best || d->off < best->off))
                        best = d;
                end = base;
        }
        if (best) {
                s->res->err_pos = key_end(best);
                snprintf(s->res->err_text, sizeof(s->res->err_text),
                         "duplicate object key");
        }
}

static int push_key(scan_t *s)
{
        if (s->key_cnt == s->key_cap) {
                size_t cap = s->key_cap * 2;
                skey_t *k = s->keys == s->inline_keys
                                ? malloc(cap * sizeof(*k))
                                : realloc(s->keys, cap * sizeof(*k));
                if (!k)
                        return fail(s, s->pos, "out of memory");
                if (s->keys == s->inline_keys)
                        memcpy(k, s->keys, s->key_cnt * sizeof(*k));
                s->keys = k;
                s->key_cap = cap;
        }
        skey_t *k = &s->keys[s->key_cnt++];
        k->off = s->str_off;
        k->len = s->str_len;
        k->dlen = s->str_dlen;
        k->depth = s->open;
        return 0;
}

static int top_is_obj(const scan_t *s)
{
        size_t i = s->open - 1;
        return s->is_obj[i / 8] >> (i % 8) & 1;
}

/* A member's key (tok), its colon and the first token of its value.
 * @returns that token. */
static int member(scan_t *s, int tok)
{
        if (tok == TOK_ERROR)
                return TOK_ERROR;
        if (tok != TOK_STRING)
                return fail(s, s->pos, "string or '}' expected");
        if (s->str_nul)
                return fail(s, s->pos, "NUL byte in object key not supported");
        if (push_key(s))
                return TOK_ERROR;
        if (s->open == 1) {
                const unsigned char *key = s->p + s->str_off;
                int esc = s->str_dlen < s->str_len;
                s->res->members++;
                s->slot = NULL;
                size_t bit = s->str_dlen < 63 ? s->str_dlen : 63;
                const lb_json_names_t *nm = s->names;
                for (size_t i = 0;
                     i < nm->cnt && !s->slot && (nm->lens >> bit & 1); i++) {
                        const unsigned char *name =
                            (const unsigned char *)nm->fields[i].name;
                        size_t n = nm->fields[i].name_len;
                        if (n != s->str_dlen || (!esc && n && *key != *name))
                                continue;
                        if (!body_cmp(key, s->str_len, esc, name, n, 0))
                                s->slot = &s->out[i].value;
                }
        }
        tok = lex(s);
        if (tok == TOK_ERROR)
                return TOK_ERROR;
        if (tok != ':')
                return fail(s, s->pos, "':' expected");
        return lex(s);
}

/* The value that tok starts. @returns 1 if it opened a container, 0 if it
 * is complete, TOK_ERROR. */
static int begin_value(scan_t *s, int tok)
{
        lb_json_type_t type;
        if (tok == TOK_ERROR)
                return TOK_ERROR;
        if (s->open == LB_JSON_MAX_DEPTH)
                return fail(s, s->pos, "maximum parsing depth reached");
        switch (tok) {
        case TOK_STRING:
                if (s->str_nul)
                        return fail(s, s->pos,
                                    "\\u0000 is not allowed without "
                                    "JSON_ALLOW_NUL");
                type = LB_JSON_STRING;
                break;
        case TOK_INTEGER:
                type = LB_JSON_INTEGER;
                break;
        case TOK_REAL:
                type = LB_JSON_REAL;
                break;
        case TOK_TRUE:
                type = LB_JSON_TRUE;
                break;
        case TOK_FALSE:
                type = LB_JSON_FALSE;
                break;
        case TOK_NULL:
                type = LB_JSON_NULL;
                break;
        case '{':
                type = LB_JSON_OBJECT;
                break;
        case '[':
                type = LB_JSON_ARRAY;
                break;
        case TOK_INVALID:
                return fail(s, s->pos, "invalid token");
        default:
                return fail(s, s->pos, "unexpected token");
        }
        if (s->open == 0)
                s->res->type = type;
        if (s->open == 1 && s->slot) {
                s->slot->type = type;
                s->slot->off = type == LB_JSON_STRING ? s->str_off : s->tok_off;
                s->slot->len =
                    type == LB_JSON_STRING ? s->str_len : s->pos - s->tok_off;
                s->slot->dlen = type == LB_JSON_STRING ? s->str_dlen : 0;
        }
        if (type != LB_JSON_OBJECT && type != LB_JSON_ARRAY) {
                if (s->open == 1)
                        s->slot = NULL;
                return 0;
        }
        size_t i = s->open++;
        unsigned char bit = (unsigned char)(1u << (i % 8));
        if (type == LB_JSON_OBJECT)
                s->is_obj[i / 8] |= bit;
        else
                s->is_obj[i / 8] &= (unsigned char)~bit;
        return 1;
}

/* The closing bracket of the innermost container is taken. */
static int end_container(scan_t *s)
{
        if (top_is_obj(s) && s->key_cnt &&
            s->keys[s->key_cnt - 1].depth == s->open) {
                size_t base = keys_base(s, s->key_cnt);
                const skey_t *d =
                    first_dup(s->p, s->keys + base, s->key_cnt - base);
                if (d)
                        return fail(s, key_end(d), "duplicate object key");
                s->key_cnt = base;
        }
        if (s->open == 2 && s->slot) {
                s->slot->len = s->pos - s->slot->off;
                s->slot = NULL;
        }
        s->open--;
        return 0;
}

/* jansson's parse_json, parse_value, parse_object and parse_array, as a
 * loop over an explicit stack. @returns 0 or TOK_ERROR. */
static int parse(scan_t *s)
{
        int tok = lex(s);
        for (;;) {
                int opened = begin_value(s, tok);
                if (opened == TOK_ERROR)
                        return TOK_ERROR;
                if (opened) {
                        int obj = top_is_obj(s);
                        tok = lex(s);
                        if (tok == TOK_ERROR)
                                return TOK_ERROR;
                        if (tok != (obj ? '}' : ']')) {
                                if (obj)
                                        tok = member(s, tok);
                                else if (tok == TOK_EOF)
                                        return fail(s, s->pos, "']' expected");
                                continue;
                        }
                        if (end_container(s))
                                return TOK_ERROR;
                }
                /* A value is complete: its container goes on or closes. */
                for (;;) {
                        tok = lex(s);
                        if (tok == TOK_ERROR)
                                return TOK_ERROR;
                        if (s->open == 0)
                                return tok == TOK_EOF
                                           ? 0
                                           : fail(s, s->pos,
                                                  "end of file expected");
                        int obj = top_is_obj(s);
                        if (tok == ',') {
                                tok = lex(s);
                                if (obj)
                                        tok = member(s, tok);
                                else if (tok == TOK_EOF)
                                        return fail(s, s->pos, "']' expected");
                                break;
                        }
                        if (tok != (obj ? '}' : ']'))
                                return fail(s, s->pos,
                                            obj ? "'}' expected"
                                                : "']' expected");
                        if (end_container(s))
                                return TOK_ERROR;
                }
        }
}

/* The structural walk: the fast path for what events are made of. It
 * accepts a subset of what the exact path accepts (an object or an array
 * at the top; strings with no escape but \" \\ \/ \b \f \n \r \t, and keys
 * with none; integers of at most 18 digits; reals of at most 200 integer
 * digits and a 2-digit exponent; at most FAST_DEPTH open containers and
 * LB_JSON_KEYS_INLINE open keys) with the same result, and leaves anything
 * else, every error included, to the exact path. String bodies are passed
 * over 16 or 32 bytes at a time (json_struct.h), not byte by byte. */

/* Containers open at once on the fast path: one bit each in a word. */
#define FAST_DEPTH 64

/* What may follow a number or a literal, and what whitespace is. */
#define C_END 1 /* whitespace, ',', ']', '}' */
#define C_WS  2

static const unsigned char cls[256] = {
    ['\t'] = C_END | C_WS, ['\n'] = C_END | C_WS, ['\r'] = C_END | C_WS,
    [' '] = C_END | C_WS,  [','] = C_END,         [']'] = C_END,
    ['}'] = C_END,
};

/* The single-character escapes: each decodes to one byte. */
static const unsigned char short_esc[256] = {
    ['"'] = 1, ['\\'] = 1, ['/'] = 1, ['b'] = 1,
    ['f'] = 1, ['n'] = 1,  ['r'] = 1, ['t'] = 1,
};

/* The rest of a string body from q, the first byte the probe stopped at
 * in it; escapes only if esc_ok. @returns the position of the closing
 * quote, or 0 (the exact path decides); *escapes counts the escapes. */
__attribute__((noinline)) static size_t string_rest(lb_json_pass_t pass,
                                                    const unsigned char *p,
                                                    size_t len, size_t q,
                                                    int esc_ok, size_t *escapes)
{
        size_t n = 0;
        for (;; q += lb_json_stop(pass, p + q, len - q)) {
                if (q >= len)
                        return 0;
                unsigned char c = p[q];
                if (c == '"')
                        break;
                if (c == '\\') {
                        if (!esc_ok || q + 1 == len || !short_esc[p[q + 1]])
                                return 0;
                        q += 2;
                        n++;
                        continue;
                }
                size_t u = c >= 0x80 ? lb_utf8_len(p + q, len - q) : 0;
                if (!u)
                        return 0;
                q += u;
        }
        *escapes = n;
        return q;
}

/* 8 bytes at p, in the machine's order. */
static inline __attribute__((always_inline)) uint64_t load8(const void *p)
{
        uint64_t w;
        memcpy(&w, p, sizeof(w));
        return w;
}

/* The bytes of w (byte i: bit 8i+7) that are not digits. Byte by byte,
 * x = b ^ '0' is 0..9 for a digit: x + 0x76 then stays below 0x80 and
 * carries nothing to the next byte; any other byte sets the top bit of x
 * or x + 0x76 (a carry out of it only reaches the bytes above it, past
 * the first that is not a digit, so the lowest bit set is exact). */
static inline __attribute__((always_inline)) uint64_t non_digits8(uint64_t w)
{
        uint64_t x = w ^ 0x3030303030303030u;
        return (x | (x + 0x7676767676767676u)) & 0x8080808080808080u;
}

/* Digits from q (< len), 8 at a time: most numbers in events are short,
 * so the first 8 are one load and one test, even when fewer than 8 bytes
 * are left before len (then the last 8, shifted down to start at q: the
 * zero bytes shifted in are not digits). The walk's input ends with a
 * bracket: the byte by byte rest needs no bound. */
static inline __attribute__((always_inline)) size_t
digits_end(const unsigned char *p, size_t len, size_t q)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (len >= 8) {
                uint64_t w = q + 8 <= len
                                 ? load8(p + q)
                                 : load8(p + len - 8) >> 8 * (q + 8 - len);
                uint64_t stop = non_digits8(w);
                if (stop)
                        return q + ((unsigned)__builtin_ctzll(stop) >> 3);
                /* 8 digits: they were at p + q, 8 before len or more */
                for (q += 8; q + 8 <= len; q += 8) {
                        stop = non_digits8(load8(p + q));
                        if (stop)
                                return q +
                                       ((unsigned)__builtin_ctzll(stop) >> 3);
                }
        }
#else
        (void)len;
#endif
        while (is_digit(p[q]))
                q++;
        return q;
}

/* A number at p[pos] whose digits start at d (pos, or pos + 1 after a
 * '-'). @returns its end (*type set), or 0 (the exact path decides). */
static inline __attribute__((always_inline)) size_t
fast_number(const unsigned char *p, size_t len, size_t d, lb_json_type_t *type)
{
        size_t q = digits_end(p, len, d);
        if (q == d || (p[d] == '0' && q - d > 1))
                return 0;
        /* An integer (the commonest) ends at a byte that ends values,
         * which '.', 'e' and 'E' are not. */
        if (cls[p[q]] & C_END) {
                *type = LB_JSON_INTEGER;
                return q - d > 18 ? 0 : q; /* else may not fit long long */
        }
        if (p[q] != '.' && (p[q] | 0x20) != 'e')
                return 0;
        /* At most 10^200 * 10^99: no overflow. */
        if (q - d > 200)
                return 0;
        if (p[q] == '.') {
                size_t f = ++q;
                q = digits_end(p, len, q);
                if (q == f)
                        return 0;
        }
        if ((p[q] | 0x20) == 'e') {
                q++;
                if (p[q] == '+' || p[q] == '-')
                        q++;
                size_t e = q;
                q = digits_end(p, len, q);
                if (q == e || q - e > 2)
                        return 0;
        }
        *type = LB_JSON_REAL;
        return cls[p[q]] & C_END ? q : 0;
}

/* true, false or null at p[pos]. @returns its end (*type set), or 0. */
static size_t fast_word(const unsigned char *p, size_t len, size_t pos,
                        lb_json_type_t *type)
{
        const char *w = p[pos] == 't'   ? "true"
                        : p[pos] == 'f' ? "false"
                                        : "null";
        size_t n = strlen(w);
        if (len - pos < n || memcmp(p + pos, w, n))
                return 0;
        *type = p[pos] == 't'   ? LB_JSON_TRUE
                : p[pos] == 'f' ? LB_JSON_FALSE
                                : LB_JSON_NULL;
        pos += n;
        return pos < len && (cls[p[pos]] & C_END) ? pos : 0;
}

/* A key as the walk compares it: its first 8 bytes (zero-padded; byte i
 * in bits 8i..8i+7) and where it lies. */
typedef struct {
        uint64_t sig;
        size_t off, len;
} fkey_t;

/* The low n bytes of a word, by n (8 and more: all). */
static const uint64_t low_bytes[9] = {
    0,           0xff,         0xffff,         0xffffff,
    0xffffffff,  0xffffffffff, 0xffffffffffff, 0xffffffffffffff,
    ~(uint64_t)0};

/* The sig of k[0..n); wide: 8 bytes are readable at k, taken in one load
 * with those past n masked off. */
static inline __attribute__((always_inline)) uint64_t
key_sig(const unsigned char *k, size_t n, int wide)
{
        uint64_t v = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (wide) {
                memcpy(&v, k, sizeof(v));
                return v & low_bytes[n < 8 ? n : 8];
        }
#endif
        for (size_t i = 0; i < n && i < sizeof(v); i++)
                v |= (uint64_t)k[i] << 8 * i;
        return v;
}

/* A key's bucket of 64 (duplicates, wanted names). */
static unsigned key_hash(uint64_t sig, size_t n)
{
        return (unsigned)(((sig ^ n) * 0x9E3779B97F4A7C15u) >> 58);
}

static int fkey_eq(const unsigned char *p, const fkey_t *a, const fkey_t *b)
{
        return a->len == b->len && a->sig == b->sig &&
               (a->len <= 8 ||
                !memcmp(p + a->off + 8, p + b->off + 8, a->len - 8));
}

void lb_json_names_init(lb_json_names_t *nm, const lb_json_field_t *fields,
                        size_t cnt)
{
        nm->fields = fields;
        nm->cnt = cnt;
        nm->lens = nm->buckets = nm->shared = 0;
        memset(nm->first, 0, sizeof(nm->first));
        for (size_t i = 0; i < cnt; i++) {
                const lb_json_field_t *f = &fields[i];
                nm->lens |= (uint64_t)1
                            << (f->name_len < 63 ? f->name_len : 63);
                if (i >= LB_JSON_NAMES_FAST)
                        continue;
                nm->sig[i] =
                    key_sig((const unsigned char *)f->name, f->name_len, 0);
                unsigned h = key_hash(nm->sig[i], f->name_len);
                uint64_t bit = (uint64_t)1 << h;
                if (nm->buckets & bit)
                        nm->shared |= bit;
                else
                        nm->first[h] = (unsigned char)i;
                nm->buckets |= bit;
        }
}

static int wanted_is(const lb_json_field_t *f, uint64_t sig,
                     const unsigned char *p, const fkey_t *k)
{
        return f->name_len == k->len && sig == k->sig &&
               (k->len <= 8 ||
                !memcmp(f->name + 8, p + k->off + 8, k->len - 8));
}

/* The names after the first of bucket h: the value slot of the one that is
 * key k, or NULL. */
__attribute__((noinline)) static lb_json_value_t *
wanted_shared(const lb_json_names_t *nm, lb_json_field_t *out,
              const unsigned char *p, const fkey_t *k, unsigned h)
{
        for (size_t i = nm->first[h] + 1u; i < nm->cnt; i++)
                if (wanted_is(&nm->fields[i], nm->sig[i], p, k))
                        return &out[i].value;
        return NULL;
}

/* @returns the value slot of the wanted name that is key k, in bucket h
 * (which holds a name), or NULL. */
static inline __attribute__((always_inline)) lb_json_value_t *
wanted(const lb_json_names_t *nm, lb_json_field_t *out, const unsigned char *p,
       const fkey_t *k, unsigned h)
{
        size_t i = nm->first[h];
        if (wanted_is(&nm->fields[i], nm->sig[i], p, k))
                return &out[i].value;
        return nm->shared >> h & 1 ? wanted_shared(nm, out, p, k, h) : NULL;
}

/* The value of kind k that starts at p[pos] (past the quote of a string):
 * its end (*type and *esc set), or 0 when there is none. */
static inline __attribute__((always_inline)) size_t
value_end(unsigned k, lb_json_pass_t pass, const unsigned char *p, size_t len,
          size_t pos, lb_json_type_t *type, size_t *esc)
{
        if (k == GAP_STRING) {
                size_t end = pos + lb_json_stop(pass, p + pos, len - pos);
                *esc = 0;
                if (end >= len || p[end] != '"') {
                        end = string_rest(pass, p, len, end, 1, esc);
                        if (!end)
                                return 0;
                }
                *type = LB_JSON_STRING;
                return end + 1;
        }
        *esc = 0;
        unsigned char c = p[pos];
        if (is_digit(c))
                return fast_number(p, len, pos, type);
        if (c == '-')
                return fast_number(p, len, pos + 1, type);
        if (c == 't' || c == 'f' || c == 'n')
                return fast_word(p, len, pos, type);
        return 0;
}

/* The end of the string, number or literal at p[pos] (*type and *esc, the
 * escapes of a string, set), or 0 (the exact path decides). */
static inline __attribute__((always_inline)) size_t
scalar_end(lb_json_pass_t pass, const unsigned char *p, size_t len, size_t pos,
           lb_json_type_t *type, size_t *esc)
{
        if (p[pos] == '"')
                return value_end(GAP_STRING, pass, p, len, pos + 1, type, esc);
        return value_end(GAP_OTHER, pass, p, len, pos, type, esc);
}

/* A scalar p[tok..end) of the given type and escapes, as a member's value. */
static inline __attribute__((always_inline)) void
put_value(lb_json_value_t *v, lb_json_type_t type, size_t tok, size_t end,
          size_t esc)
{
        v->type = type;
        if (type == LB_JSON_STRING) {
                v->off = tok + 1;
                v->len = end - tok - 2;
                v->dlen = v->len - esc;
        } else {
                v->off = tok;
                v->len = end - tok;
                v->dlen = 0;
        }
}

/* The field whose value v is. */
static const lb_json_field_t *field_of(const lb_json_value_t *v)
{
        return (const lb_json_field_t *)((const char *)v -
                                         offsetof(lb_json_field_t, value));
}

/* Records the scalar p[tok..end) (the value of wanted member slot, or
 * NULL) for the shape the walk is learning. */
static void note_span(scan_t *s, size_t tok, size_t end,
                      const lb_json_value_t *slot)
{
        if (s->span_cnt >= LB_JSON_SHAPE_VALUES) {
                s->span_cnt = SPANS_NONE;
                return;
        }
        s->spans[s->span_cnt++] =
            (span_t){.tok = tok,
                     .end = end,
                     .slot = slot ? (unsigned char)(field_of(slot) - s->out)
                                  : LB_JSON_SHAPE_NONE};
}

/* The structural walk (see above) of the top-level object or array at
 * p[pos], over an explicit stack; the top-level object's wanted members
 * go to s->out. Its input, less trailing whitespace, ends with a bracket
 * that no token runs past: it reads up to that without bounds checks.
 * @returns 0 when the value is accepted (s->res and s->out filled), -1
 * when the exact path must decide. */
static int fast_walk(scan_t *s, lb_json_pass_t pass, size_t len, size_t pos)
{
        const unsigned char *p = s->p;
        const lb_json_names_t *nm = s->names;
        size_t depth = 0, esc = 0, esc_rest, end, tok, q, n;
        /* The innermost open container: whether an object, its keys'
         * buckets and its first key; those of the ones around it are
         * kept at their depths. */
        int in_obj = 0;
        uint64_t seen = 0, sig, bit;
        size_t first = 0, nkeys = 0;
        uint64_t obj_at = 0; /* bit d: depth d is an object */
        uint64_t seen_at[FAST_DEPTH];
        size_t first_at[FAST_DEPTH];
        fkey_t keys[LB_JSON_KEYS_INLINE];  /* those of the open objects */
        lb_json_value_t *slot = NULL;      /* the member being read */
        lb_json_value_t *open_slot = NULL; /* ... when it is a container */
        lb_json_type_t type;
        unsigned char c = p[pos];

open:
        if (depth == FAST_DEPTH)
                return -1;
        if (slot) {
                slot->type = c == '{' ? LB_JSON_OBJECT : LB_JSON_ARRAY;
                slot->off = pos;
                open_slot = slot;
                slot = NULL;
                s->span_cnt = SPANS_NONE; /* no shape: a wanted container */
        }
        obj_at = (obj_at & ~((uint64_t)1 << depth)) | (uint64_t)in_obj << depth;
        seen_at[depth] = seen;
        first_at[depth] = first;
        in_obj = c == '{';
        seen = 0;
        first = nkeys;
        depth++;
        pos++;
        while (cls[p[pos]] & C_WS)
                pos++;
        if (p[pos] == c + 2) { /* '}' or ']' */
                pos++;
                goto close;
        }
        if (in_obj)
                goto key;
value:
        c = p[pos];
        if (c == '{' || c == '[')
                goto open;
        if (cls[c] & C_WS) {
                pos++;
                goto value;
        }
        tok = pos;
        pos = scalar_end(pass, p, len, pos, &type, &esc);
        if (!pos)
                return -1;
        if (slot)
                put_value(slot, type, tok, pos, esc);
        if (s->spans)
                note_span(s, tok, pos, slot);
        slot = NULL;
after:
        c = p[pos++];
        if (c == ',') {
                if (in_obj)
                        goto key;
                goto value;
        }
        if (cls[c] & C_WS)
                goto after;
        if (c != (in_obj ? '}' : ']'))
                return -1;
close:
        if (in_obj) {
                if (depth == 1)
                        s->res->members = nkeys;
                nkeys = first;
        }
        if (--depth == 0) {
                s->res->type = in_obj ? LB_JSON_OBJECT : LB_JSON_ARRAY;
                return pos == len ? 0 : -1;
        }
        in_obj = obj_at >> depth & 1;
        seen = seen_at[depth];
        first = first_at[depth];
        if (depth == 1 && open_slot) {
                open_slot->len = pos - open_slot->off;
                open_slot = NULL;
        }
        if (pos == len) /* the last bracket, with containers open */
                return -1;
        goto after;
key:
        while (p[pos] != '"') {
                if (!(cls[p[pos]] & C_WS))
                        return -1;
                pos++;
        }
        /* Keys with escapes go the exact way. */
        q = pos + 1;
        end = q + lb_json_stop(pass, p + q, len - q);
        if ((end >= len || p[end] != '"') &&
            !(end = string_rest(pass, p, len, end, 0, &esc_rest)))
                return -1;
        if (nkeys == LB_JSON_KEYS_INLINE)
                return -1;
        n = end - q;
        sig = key_sig(p + q, n, q + 8 <= len);
        unsigned h = key_hash(sig, n);
        bit = (uint64_t)1 << h;
        keys[nkeys] = (fkey_t){.sig = sig, .off = q, .len = n};
        if (seen & bit)
                for (size_t i = first; i < nkeys; i++)
                        if (fkey_eq(p, &keys[i], &keys[nkeys]))
                                return -1;
        seen |= bit;
        if (depth == 1 && (nm->buckets & bit))
                slot = wanted(nm, s->out, p, &keys[nkeys], h);
        nkeys++;
        pos = end + 1;
        while (p[pos] != ':') {
                if (!(cls[p[pos]] & C_WS))
                        return -1;
                pos++;
        }
        pos++;
        goto value;
}

/* The structural walk's way in: an object or an array at the top (then
 * only whitespace), and no more names than it looks for. */
static int fast_scan(scan_t *s, lb_json_pass_t pass)
{
        const unsigned char *p = s->p;
        size_t len = s->len, pos = 0;

        while (len && (cls[p[len - 1]] & C_WS))
                len--;
        if (!len || (p[len - 1] != '}' && p[len - 1] != ']') ||
            s->names->cnt > LB_JSON_NAMES_FAST)
                return -1;
        while (cls[p[pos]] & C_WS)
                pos++;
        if (p[pos] != '{' && p[pos] != '[')
                return -1;
        return fast_walk(s, pass, len, pos);
}

static void scan_init(scan_t *s, lb_json_result_t *res)
{
        res->type = LB_JSON_ABSENT;
        res->members = 0;
        res->err_pos = 0;
        res->err_text[0] = '\0';
        res->shaped = 0;
        for (size_t i = 0; i < s->names->cnt; i++)
                s->out[i].value = (lb_json_value_t){0};
}

/* lb_json_scan_names; the structural walk's scalars go to spans (unless
 * NULL), and how many to *span_cnt (SPANS_NONE: no shape to learn). */
static int scan(const char *buf, size_t len, const lb_json_names_t *names,
                lb_json_field_t *out, lb_json_result_t *res, span_t *spans,
                size_t *span_cnt)
{
        scan_t s;
        s.p = (const unsigned char *)buf;
        s.len = len;
        s.names = names;
        s.out = out;
        s.res = res;
        s.spans = spans;
        s.span_cnt = 0;
        scan_init(&s, res);
        lb_json_pass_t pass = lb_json_pass();
        res->exact = pass == LB_JSON_PASS_EXACT || fast_scan(&s, pass) != 0;
        if (span_cnt)
                *span_cnt = res->exact ? SPANS_NONE : s.span_cnt;
        if (!res->exact)
                return 0;
        scan_init(&s, res);

        s.pos = 0;
        s.open = 0;
        s.keys = s.inline_keys;
        s.key_cnt = 0;
        s.key_cap = LB_JSON_KEYS_INLINE;
        s.slot = NULL;

        int rc = parse(&s);
        if (rc)
                open_dups_first(&s);
        if (s.keys != s.inline_keys)
                free(s.keys);
        return rc ? -1 : 0;
}

int lb_json_scan_names(const char *buf, size_t len,
                       const lb_json_names_t *names, lb_json_field_t *out,
                       lb_json_result_t *res)
{
        return scan(buf, len, names, out, res, NULL, NULL);
}

/* Known shapes (lb_json_shapes_t). A gap before a string value ends with
 * its opening quote, so that the string is read without a look at its
 * first byte; one before a number or a literal ends before it. */

void lb_json_shapes_init(lb_json_shapes_t *sh, const lb_json_names_t *names)
{
        sh->names = names;
        sh->gap[0] =
            (lb_json_gap_t){.slot = LB_JSON_SHAPE_NONE, .kind = GAP_ROOT};
        sh->gap_cnt = 1;
        sh->bytes_used = 0;
        sh->hits = sh->misses = sh->passed = 0;
}

#if defined(__x86_64__)
/* Whether the 16 bytes at q are those at w where mask m has a bit. */
static inline __attribute__((always_inline)) int
bytes16_are(const unsigned char *q, const unsigned char *w, unsigned m)
{
        unsigned eq = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)q),
                           _mm_load_si128((const __m128i *)w)));
        return (~eq & m) == 0;
}
#endif

/* Whether gap at, n bytes, is at p[pos..pos+n) (n <= len - pos). With
 * SSE2 (simd), one of at most 32 bytes is compared by 16-byte words: the
 * 16 that end with it (and its first 16 when longer), or at the
 * document's start the 16 that start with it; others byte by byte. */
static inline __attribute__((always_inline)) int
gap_is(const lb_json_shapes_t *sh, unsigned at, size_t n,
       const unsigned char *p, size_t pos, size_t len, int simd)
{
        const unsigned char *q = p + pos;
#if defined(__x86_64__)
        if (simd && n <= 32) {
                if (pos + n >= 16)
                        return bytes16_are(q + n - 16, sh->tail[at],
                                           sh->gap[at].tail_mask) &&
                               (n <= 16 ||
                                bytes16_are(q, sh->head[at], 0xffff));
                if (len - pos >= 16)
                        return bytes16_are(q, sh->head[at], (1u << n) - 1);
        }
#else
        (void)len;
        (void)simd;
#endif
        return !memcmp(q, sh->bytes + sh->gap[at].off, n);
}

/* Whether gap at is the one at p[pos..len): it fits there, has its bytes,
 * and ends the document (*end = len) or has a value of its kind after it
 * (*end, *type, *esc: that value's). One gap may be the start of
 * another: the value is what tells them apart. */
static inline __attribute__((always_inline)) int
gap_here(const lb_json_shapes_t *sh, lb_json_pass_t pass, unsigned at,
         const unsigned char *p, size_t pos, size_t len, int simd, size_t *end,
         lb_json_type_t *type, size_t *esc)
{
        const lb_json_gap_t *g = &sh->gap[at];
        size_t n = g->len, rem = len - pos;
        if (n > rem || !gap_is(sh, at, n, p, pos, len, simd))
                return 0;
        if (g->kind == GAP_LAST) {
                *end = len;
                return n == rem;
        }
        return n < rem &&
               (*end = value_end(g->kind, pass, p, len, pos + n, type, esc));
}

/* Gap parent's child at, first (gap_find's order: the commonest shapes
 * are tried first). */
static void to_front(lb_json_shapes_t *sh, unsigned parent, unsigned at)
{
        lb_json_gap_t *gap = sh->gap;
        unsigned prev = gap[parent].child;
        if (prev == at)
                return;
        while (gap[prev].sibling != at)
                prev = gap[prev].sibling;
        gap[prev].sibling = gap[at].sibling;
        gap[at].sibling = gap[parent].child;
        gap[parent].child = (uint8_t)at;
}

/* The child of gap parent that is at p[pos..len) (gap_here), when its
 * first is not; it becomes the first, so that the commonest shapes are
 * found first. @returns its index, or 0. */
__attribute__((noinline)) static unsigned
gap_find(lb_json_shapes_t *sh, lb_json_pass_t pass, unsigned parent,
         const unsigned char *p, size_t pos, size_t len, size_t *end,
         lb_json_type_t *type, size_t *esc)
{
        int simd = pass != LB_JSON_PASS_PORTABLE;
        for (unsigned at = sh->gap[sh->gap[parent].child].sibling; at;
             at = sh->gap[at].sibling) {
                if (!gap_here(sh, pass, at, p, pos, len, simd, end, type, esc))
                        continue;
                to_front(sh, parent, at);
                return at;
        }
        return 0;
}

/* The child of gap parent (whose fork is set) that may be at
 * p[pos..len): the one whose byte at the fork is there (forks[] hold
 * each child's, all different), or 0 when none can be. */
static inline __attribute__((always_inline)) unsigned
fork_pick(const lb_json_shapes_t *sh, unsigned parent, const unsigned char *p,
          size_t pos, size_t len)
{
        const lb_json_fork_t *f = &sh->forks[parent];
        size_t at = sh->gap[parent].fork - 1u;
        if (at >= len - pos)
                return 0;
        /* The byte of f->bytes that is p's is the one that is zero in x:
         * the lowest byte the subtraction borrows through (a borrow only
         * sets bytes above a zero one, and no two of f's bytes are equal). */
        uint64_t x = f->bytes ^ 0x0101010101010101u * p[pos + at];
        uint64_t z = (x - 0x0101010101010101u) & ~x & f->mask;
        return z ? f->child[__builtin_ctzll(z) >> 3] : 0;
}

/* Sets gap parent's fork after its children changed: the first offset
 * within all of them at which they are not all the same byte, when there
 * each has its own; else none (one of them is the start of another up to
 * where the shortest ends: the values tell them apart, gap_find). */
static void fork_update(lb_json_shapes_t *sh, unsigned parent)
{
        const lb_json_gap_t *gap = sh->gap;
        unsigned first = gap[parent].child, cnt = 0;
        size_t shortest = SIZE_MAX;
        sh->gap[parent].fork = 0;
        for (unsigned c = first; c; c = gap[c].sibling, cnt++)
                if (gap[c].len < shortest)
                        shortest = gap[c].len;
        if (cnt < 2)
                return;
        const unsigned char *a = sh->bytes + gap[first].off;
        size_t at = 0;
        for (int same = 1; same; at += same) {
                if (at >= shortest || at >= UINT8_MAX)
                        return;
                for (unsigned c = gap[first].sibling; c && same;
                     c = gap[c].sibling)
                        same = sh->bytes[gap[c].off + at] == a[at];
        }
        lb_json_fork_t *f = &sh->forks[parent];
        f->bytes = 0;
        unsigned i = 0;
        for (unsigned c = first; c; c = gap[c].sibling, i++) {
                uint64_t b = sh->bytes[gap[c].off + at];
                for (unsigned k = 0; k < i; k++)
                        if ((f->bytes >> 8 * k & 0xff) == b)
                                return;
                f->bytes |= b << 8 * i;
                f->child[i] = (uint8_t)c;
        }
        f->mask = 0x8080808080808080u & low_bytes[cnt];
        sh->gap[parent].fork = (uint8_t)(at + 1);
}

/* The document's end, at gap at: what it lacks, and res. */
static void shape_end(const lb_json_shapes_t *sh, unsigned at,
                      lb_json_field_t *out, lb_json_result_t *res)
{
        for (uint32_t a = sh->ends[at].absent; a; a &= a - 1)
                out[(unsigned)__builtin_ctz(a)].value = (lb_json_value_t){0};
        res->type = LB_JSON_OBJECT;
        res->members = sh->ends[at].members;
}

/* One step of shape_match, the general way: the child of gap *parent that
 * is at p[*pos..len), first trying at (gap_here; not when first_absent:
 * its bytes are known not to be there), then, unless at is the only one
 * that can be (only: picked by the fork), its siblings (gap_find; at is
 * then the first child), and its value put in out. @returns 1 (*parent
 * and *pos moved on), 0 (the document's end: res filled) or -1 (no known
 * shape). */
static int shape_step(lb_json_shapes_t *sh, lb_json_pass_t pass,
                      unsigned *parent, unsigned at, const unsigned char *p,
                      size_t *pos, size_t len, lb_json_field_t *out,
                      lb_json_result_t *res, int first_absent, int only)
{
        int simd = pass != LB_JSON_PASS_PORTABLE;
        size_t end, esc;
        lb_json_type_t type;
        if (!at)
                return -1;
        if (first_absent ||
            !gap_here(sh, pass, at, p, *pos, len, simd, &end, &type, &esc)) {
                if (only)
                        return -1;
                at = gap_find(sh, pass, *parent, p, *pos, len, &end, &type,
                              &esc);
                if (!at)
                        return -1;
        }
        const lb_json_gap_t *g = &sh->gap[at];
        if (g->kind == GAP_LAST) {
                shape_end(sh, at, out, res);
                return 0;
        }
        if (g->slot != LB_JSON_SHAPE_NONE)
                put_value(&out[g->slot].value, type,
                          *pos + g->len - (g->kind == GAP_STRING), end, esc);
        *pos = end;
        *parent = at;
        return 1;
}

/* The end of the string whose body starts at p[v] (v < len), past its
 * closing quote, when it has no escapes; else 0. pass: not PORTABLE (its
 * first 16 bytes are probed inline, where most strings end). */
static inline __attribute__((always_inline)) size_t
plain_string_end(lb_json_pass_t pass, const unsigned char *p, size_t len,
                 size_t v)
{
        size_t e;
#if defined(__x86_64__)
        if (len - v >= 16) {
                unsigned m = lb_json_stops16(p + v);
                if (m) { /* within p: no bound to check */
                        e = v + (unsigned)__builtin_ctz(m);
                        return p[e] == '"' ? e + 1 : 0;
                }
        }
#endif
        e = v + lb_json_stop(pass, p + v, len - v);
        return e < len && p[e] == '"' ? e + 1 : 0;
}

/* The commonest step of shape_match, inline: child at of the gap the walk
 * is at, when its bytes are at p[*pos..len) (else *absent set), followed by
 * a string without escapes, a number or a literal (its value put in out,
 * *pos moved past it: 1), or ending the document (res filled: 0).
 * @returns -1 for any other step (shape_step's), the root's (at 0, no
 * child: it matches nothing) included. p[len - 1] is '}' (shape_match):
 * a gap before a value ends with a byte that may precede one (a quote,
 * ':', ',', '[' or whitespace), so the value starts before len. */
static inline __attribute__((always_inline)) int
step_inline(const lb_json_shapes_t *sh, lb_json_pass_t pass, unsigned at,
            const unsigned char *p, size_t *pos, size_t len,
            lb_json_field_t *out, lb_json_result_t *res, int *absent)
{
        const lb_json_gap_t *g = &sh->gap[at];
        size_t n = g->len, v = *pos + n, e, esc;
        lb_json_type_t type;
        /* The commonest gap first: at most 16 bytes, 16 before its end
         * (gap_is's first case, its own branch). */
        if (v > len ||
            !(n <= 16 && v >= 16
                  ? bytes16_are(p + v - 16, sh->tail[at], g->tail_mask)
                  : gap_is(sh, at, n, p, *pos, len, 1))) {
                *absent = 1;
                return -1;
        }
        if (g->kind == GAP_STRING) {
                e = plain_string_end(pass, p, len, v);
                if (!e)
                        return -1;
                if (g->slot != LB_JSON_SHAPE_NONE) {
                        lb_json_value_t *val = &out[g->slot].value;
                        val->type = LB_JSON_STRING;
                        val->off = v;
                        val->len = val->dlen = e - 1 - v;
                }
        } else if (g->kind == GAP_OTHER) {
                e = value_end(GAP_OTHER, pass, p, len, v, &type, &esc);
                if (!e)
                        return -1;
                if (g->slot != LB_JSON_SHAPE_NONE) {
                        lb_json_value_t *val = &out[g->slot].value;
                        val->type = type;
                        val->off = v;
                        val->len = e - v;
                        val->dlen = 0;
                }
        } else if (g->kind == GAP_LAST && v == len) {
                shape_end(sh, at, out, res);
                return 0;
        } else {
                return -1;
        }
        *pos = e;
        return 1;
}

/* Every step of shape_match but its commonest (step_inline's on the first
 * child, whose bytes were not there when absent): where one byte tells the
 * children apart (a fork), the child it picks (the only one that can be
 * there), tried inline then the general way; else the general way from
 * the first child (shape_step). Apart from shape_match's loop, so that
 * the loop keeps its state in registers. @returns as shape_step. */
__attribute__((noinline, cold)) static int
step_slow(lb_json_shapes_t *sh, lb_json_pass_t pass, int simd, unsigned *parent,
          unsigned at, const unsigned char *p, size_t *pos, size_t len,
          lb_json_field_t *out, lb_json_result_t *res, int absent)
{
        int only = sh->gap[*parent].fork != 0;
        if (only) {
                unsigned pick = fork_pick(sh, *parent, p, *pos, len);
                if (!pick)
                        return -1;
                if (pick != at) {
                        to_front(sh, *parent, pick);
                        at = pick;
                        absent = 0;
                        int r = simd ? step_inline(sh, pass, at, p, pos, len,
                                                   out, res, &absent)
                                     : -1;
                        if (r > 0)
                                *parent = at;
                        if (r >= 0)
                                return r;
                }
        }
        return shape_step(sh, pass, parent, at, p, pos, len, out, res, absent,
                          only);
}

/* The document p[0..len) (a '}' last) by the known shapes: 0 with out and
 * res filled, or -1 when it has none of them (out then half filled). Each
 * step tries the first child of the gap the walk is at, with SSE2 inline
 * (step_inline, the commonest step); any other step is step_slow's. */
__attribute__((noinline)) static int
shape_match(lb_json_shapes_t *sh, lb_json_pass_t pass, const unsigned char *p,
            size_t len, lb_json_field_t *out, lb_json_result_t *res)
{
#if defined(__x86_64__)
        int simd = pass != LB_JSON_PASS_PORTABLE;
#else
        int simd = 0;
#endif
        unsigned parent = 0;
        size_t pos = 0;
        for (;;) {
                unsigned at = sh->gap[parent].child;
                int absent = 0, r = -1;
                if (simd)
                        r = step_inline(sh, pass, at, p, &pos, len, out, res,
                                        &absent);
                if (__builtin_expect(r > 0, 1)) {
                        parent = at;
                        continue;
                }
                if (!r)
                        return 0;
                /* copies: pos and parent stay in registers */
                size_t step_pos = pos;
                unsigned step_parent = parent;
                r = step_slow(sh, pass, simd, &step_parent, at, p, &step_pos,
                              len, out, res, absent);
                if (r <= 0)
                        return r;
                pos = step_pos;
                parent = step_parent;
        }
}

/* The child of gap at with bytes g[0..n), slot and kind, added unless it
 * is there: first, and when at has LB_JSON_SHAPE_SIBLINGS children, in
 * place of the last (the least recently found: gap_find moves what it
 * finds to the front), whose gaps then wait for the next emptying.
 * @returns its index, or 0 when the shapes are full. */
static unsigned shape_child(lb_json_shapes_t *sh, unsigned at,
                            const unsigned char *g, size_t n, unsigned slot,
                            unsigned kind)
{
        unsigned children = 0, before_last = 0;
        for (unsigned c = sh->gap[at].child; c; c = sh->gap[c].sibling) {
                const lb_json_gap_t *x = &sh->gap[c];
                if (x->len == n && x->kind == kind && x->slot == slot &&
                    !memcmp(sh->bytes + x->off, g, n))
                        return c;
                if (x->sibling && !sh->gap[x->sibling].sibling)
                        before_last = c;
                children++;
        }
        size_t padded = (n + 15) & ~(size_t)15;
        if (sh->gap_cnt > LB_JSON_SHAPE_GAPS ||
            padded > LB_JSON_SHAPE_BYTES - sh->bytes_used)
                return 0;
        unsigned c = (unsigned)sh->gap_cnt++;
        unsigned char *b = sh->bytes + sh->bytes_used;
        memcpy(b, g, n);
        memset(b + n, 0, padded - n);
        size_t k = n < 16 ? n : 16;
        memset(sh->head[c], 0, 16);
        memset(sh->tail[c], 0, 16);
        memcpy(sh->head[c], g, k);
        memcpy(sh->tail[c] + 16 - k, g + n - k, k);
        sh->gap[c] =
            (lb_json_gap_t){.off = (uint16_t)sh->bytes_used,
                            .len = (uint16_t)n,
                            .tail_mask = (uint16_t)(0xffffu << (16 - k)),
                            .sibling = sh->gap[at].child,
                            .slot = (uint8_t)slot,
                            .kind = (uint8_t)kind};
        sh->gap[at].child = (uint8_t)c;
        sh->bytes_used += padded;
        if (children >= LB_JSON_SHAPE_SIBLINGS)
                sh->gap[before_last].sibling = 0;
        fork_update(sh, at);
        return c;
}

/* Adds the shape of p[0..len) (an accepted object, trailing whitespace
 * cut off) whose scalars are spans[0..cnt). @returns 0, or -1 when full. */
static int shape_add(lb_json_shapes_t *sh, const unsigned char *p, size_t len,
                     const span_t *spans, size_t cnt, size_t members)
{
        unsigned at = 0;
        size_t from = 0;
        uint32_t absent = (uint32_t)((uint64_t)1 << sh->names->cnt) - 1;
        for (size_t i = 0; i <= cnt; i++) {
                unsigned kind = GAP_LAST, slot = LB_JSON_SHAPE_NONE;
                size_t to = len;
                if (i < cnt) {
                        slot = spans[i].slot;
                        if (slot != LB_JSON_SHAPE_NONE)
                                absent &= ~((uint32_t)1 << slot);
                        kind = p[spans[i].tok] == '"' ? GAP_STRING : GAP_OTHER;
                        to = spans[i].tok + (kind == GAP_STRING);
                }
                at = shape_child(sh, at, p + from, to - from, slot, kind);
                if (!at)
                        return -1;
                if (i < cnt)
                        from = spans[i].end;
        }
        sh->ends[at].members = (uint32_t)members;
        sh->ends[at].absent = absent;
        return 0;
}

/* Counts a hit or a miss. The counts halve every 256 or so: the last few
 * hundred lookups decide, so that a change of traffic shows soon. */
static void shape_count(lb_json_shapes_t *sh, int hit)
{
        if (hit)
                sh->hits++;
        else
                sh->misses++;
        if (sh->hits + sh->misses >= 256) {
                sh->hits /= 2;
                sh->misses /= 2;
        }
}

/* A miss (an accepted object of no known shape): whether to learn its
 * shape. Yes for the first 16, then while the known shapes pay well (four
 * hits a miss or more: a new shape among steady ones), and at every 16th
 * miss in any case, so that shapes that repeat are learned among many
 * that do not (keys in ever new orders, say), at a sixteenth of the cost. */
static int shape_worth_learning(lb_json_shapes_t *sh)
{
        shape_count(sh, 0);
        return sh->misses <= 16 || sh->hits >= 4 * sh->misses ||
               sh->misses % 16 == 0;
}

/* A document of no known shape p[0..len) (n without trailing whitespace):
 * scanned, and its shape learned when that is worth it. Apart, so that a
 * hit does not set up its spans. */
__attribute__((noinline)) static int
scan_and_learn(lb_json_shapes_t *sh, const char *buf, size_t len, size_t n,
               lb_json_field_t *out, lb_json_result_t *res)
{
        const unsigned char *p = (const unsigned char *)buf;
        span_t spans[LB_JSON_SHAPE_VALUES];
        size_t cnt;
        int rc = scan(buf, len, sh->names, out, res, spans, &cnt);
        if (rc || res->type != LB_JSON_OBJECT || cnt == SPANS_NONE ||
            !shape_worth_learning(sh))
                return rc;
        if (shape_add(sh, p, n, spans, cnt, res->members)) {
                lb_json_shapes_init(sh, sh->names);
                (void)shape_add(sh, p, n, spans, cnt, res->members);
        }
        return 0;
}

/* Not inlined into its caller by link-time optimisation: the bench
 * measures the scan by this function's name (tests/bench, SCAN_FN). */
__attribute__((noinline)) int lb_json_scan_shaped(const char *buf, size_t len,
                                                  lb_json_shapes_t *sh,
                                                  lb_json_field_t *out,
                                                  lb_json_result_t *res)
{
        const unsigned char *p = (const unsigned char *)buf;
        lb_json_pass_t pass = lb_json_pass();
        size_t n = len;
        while (n && (cls[p[n - 1]] & C_WS))
                n--;
        /* A hit saves about two thirds of a scan and a miss costs about
         * two thirds more: while the known shapes do not pay (fewer than
         * two hits a miss, after the first 16: keys in ever new orders,
         * say), only every 16th document is looked up and may be learned;
         * the others go straight to the scan. */
        if (!n || p[n - 1] != '}' || pass == LB_JSON_PASS_EXACT ||
            (2 * sh->misses > sh->hits + 16 && ++sh->passed % 16 != 0))
                return scan(buf, len, sh->names, out, res, NULL, NULL);
        if (shape_match(sh, pass, p, n, out, res))
                return scan_and_learn(sh, buf, len, n, out, res);
        res->err_pos = 0;
        res->err_text[0] = '\0';
        res->exact = 0;
        res->shaped = 1;
        shape_count(sh, 1);
        return 0;
}

int lb_json_scan(const char *buf, size_t len, lb_json_field_t *fields,
                 size_t field_cnt, lb_json_result_t *res)
{
        lb_json_names_t names;
        lb_json_names_init(&names, fields, field_cnt);
        return lb_json_scan_names(buf, len, &names, fields, res);
}

size_t lb_json_decoded_len(const char *raw, size_t raw_len)
{
        decoder_t d;
        size_t n = 0;
        decoder_init(&d, (const unsigned char *)raw, raw_len, 1);
        while (decode_next(&d) >= 0)
                n++;
        return n;
}

size_t lb_json_unescape(const char *raw, size_t raw_len, char *dst, size_t cap)
{
        /* Bytes up to the first backslash are themselves. */
        const char *esc = memchr(raw, '\\', raw_len);
        size_t n = esc ? (size_t)(esc - raw) : raw_len;
        if (n > cap)
                n = cap;
        memcpy(dst, raw, n);
        if (!esc || n == cap)
                return n;
        decoder_t d;
        int c;
        decoder_init(&d, (const unsigned char *)esc,
                     raw_len - (size_t)(esc - raw), 1);
        while (n < cap && (c = decode_next(&d)) >= 0)
                dst[n++] = (char)c;
        return n;
}

int lb_json_string_eq(const char *buf, const lb_json_value_t *v, const char *s,
                      size_t n)
{
        return v->type == LB_JSON_STRING && v->dlen == n &&
               !body_cmp((const unsigned char *)buf + v->off, v->len,
                         v->dlen < v->len, (const unsigned char *)s, n, 0);
}
